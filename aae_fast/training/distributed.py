"""Data-parallel training on torch.distributed: the pieces :class:`~aae_fast.training.Trainer` uses
when it runs under ``torchrun`` (or in any initialised default process group).

Design
------
The paper's step has three (four, with the semi-supervised classification) phases, each with its
own forward, backward and optimiser step, and networks shared between phases: the encoder is
updated in the reconstruction, generator and classification phases, the discriminator is frozen in
the generator phase, and the codes of one encoder forward serve both regularization phases.
``DistributedDataParallel`` wraps *modules* and all-reduces during *their* backward, which fights
that structure (one DDP forward per backward, ``find_unused_parameters`` for the frozen
discriminator, a module used by two backward passes, ``no_sync`` juggling). The equivalent on
torch.distributed's collectives used here is simpler and exact: right before each phase's
optimiser step, the gradients of that optimiser's parameters are averaged over the ranks
(:class:`GradientAllReduce`: one flat buffer per dtype, one ``all_reduce`` per phase). The Trainer
hands the model an ``amp`` object whose ``step(optimizer)`` it owns (see
:mod:`aae_fast.reference._common`), so no model knows it is distributed.

Parameters without a gradient in a phase (``grad is None``) are skipped. Which parameters have one
is decided by the model's code path, which is the same on every rank (every rank runs the same
step on a batch of the same shape), so every rank flattens the same tensors. A model whose
gradient-carrying parameters depended on the *data* would need DDP's ``find_unused_parameters``
kind of agreement; none in this package does.

What this computes: every loss of this package is a mean over the batch's rows (the
reconstruction loss a per-row sum averaged over rows), so with the same local batch size on every
rank the average of the ranks' gradients is the gradient of the loss over the *global* batch (the
union of the ranks' local batches), as a single process would compute it. The one exception: the
semi-supervised classification loss, when it reads its labels from ``batch["y"]`` with -1 for
unlabelled rows (no separate labelled mini-batch, i.e. no ``Trainer(labelled_data=...)``), divides
by each rank's own count of labelled rows; the average over the ranks then weighs the ranks'
labelled rows unequally when their counts differ (the single process divides by the global count).
With ``labelled_data`` (the CLI's way) every rank's labelled batch has the same size and the
equality holds. A model whose loss is not a mean over rows says so (``data_parallel_inexact``, a
reason) and the Trainer refuses to train it distributed: the GMMN+AE baseline, whose generator
minimises MMD, a sum over pairs of rows.

Parameters are identical on every rank: they start equal (rank 0's are broadcast when the Trainer
is built), and every rank applies the same averaged gradients (an ``all_reduce`` hands every rank
the same bits) with the same optimiser.

Random streams and data
-----------------------
Each rank draws its own shard of every epoch: the loaders of all ranks use the run's seed, so they
draw the same permutation, and rank r takes rows ``[r B, (r + 1) B)`` of each global batch of
``B * N`` rows (:class:`~aae_fast.data.TensorLoader` with ``num_replicas`` / ``rank``): the union
of the ranks' step-t batches is the step-t batch of a one-process run with batch ``B * N``.
``batch_size`` is per rank (PyTorch's convention for data parallelism). Prior samples and
posterior noise come from rank-offset streams: torch's global generators and the fused model's
Philox stream are seeded with :func:`rank_seed` (rank 0 keeps the run's seed). Rank r does *not*
draw the rows of the one-process draw that match its data rows (the ops advance their Philox
offsets by their own draw sizes; slicing a global draw per rank would need every sampling op to
take a row offset), so a data-parallel run equals a one-process run on the global batch in
distribution, and exactly (to fp32 rounding) only when both are handed the same prior samples, as
the tests do.

Checkpoints and failures
------------------------
Rank 0 writes; every rank contributes its random states (torch CPU / CUDA, the model's Philox
stream) and its local loss sums, gathered into the checkpoint, so that any rank resumes from the
file exactly where it was: a resumed run is bit-identical to an uninterrupted one on CPU. A
checkpoint resumes only with its number of processes (the shards and streams depend on it); its
weights load anywhere. Every rank reads the file on resume: multi-node runs need ``--out`` on a
shared file system (or a copy of the checkpoint on each node).

A rank that raises exits; its peers, blocked in the next collective, see the closed connection and
raise too (:class:`GradientAllReduce` names the likely cause), and torchrun stops the job and
reports the first failure. A rank that hangs instead makes the others raise after the collective
timeout (:data:`DEFAULT_TIMEOUT`, ``aae-fast train --dist-timeout``). Ctrl-C is not deferred to
the end of the step in a distributed run (ranks would stop at different steps): resume from the
latest periodic checkpoint.

Throughput: what to expect
--------------------------
Communication per step is independent of the batch size: every phase all-reduces its optimiser's
gradients, so the encoder's are sent twice (reconstruction and generator phases, three times with
the classification phase). The paper's model (784-1000-1000-8, discriminator 8-1000-1000-1):
6.39 M gradient elements = 25.6 MB in fp32 per step (measured by benchmarks/bench_distributed.py),
against about 24 M multiply-adds per row, 4.8 GFLOP per rank at the paper's batch of 100.

- This 2-core CPU (gloo, 1 thread per process, shared with other jobs; fused model, batch 100 per
  process, 20-30 steps, four runs each): 1 process 990-1,530 samples/s, 2 processes 1,030-1,950
  samples/s, the 25.6 MB all-reduce taking 34-69 ms of a 103-195 ms step (waiting for the slower
  rank included). Two processes on two busy cores give no reliable speed-up; the all-reduce alone
  costs about half a one-process step.
- 8 GPUs on NVLink (NCCL all-reduce bus bandwidth ~350-450 GB/s on H100): one step's all-reduce
  moves 2 (N-1)/N x 25.6 MB, about 0.1-0.15 ms plus ~3 x 20 us latency, against an eager step of
  ~1 ms at batch 100 (launch-bound) or a few tenths of a ms with ``cuda_graph=True``: expect
  roughly 70-90 % scaling eagerly, less with CUDA graphs, unless the per-GPU batch grows (compute
  grows with it, communication does not). Not measured: no multi-GPU machine was available.
- Several nodes (one 400 Gb/s NIC per GPU, ~45 GB/s bus bandwidth): ~1.1 ms of all-reduce per
  step, more than the step's compute at batch 100: use per-rank batches of 1,000 or more.
  On 10-25 GbE (1-3 GB/s), 20-50 ms per step: data parallelism across such nodes does not pay.

The all-reduce of a phase is not overlapped with that phase's backward (DDP's bucketed overlap);
with three short phases per step, most of it could be hidden only in the reconstruction phase.

Which fast paths combine
------------------------
- eager (reference) and fused models, fp32, gloo on CPU: tested (2 processes).
- ``precision="bf16"`` (autocast): gradients stay fp32, averaged as in fp32. ``"fp16"`` (CUDA):
  the scaled gradients are averaged before the GradScaler's step, so an overflow on one rank skips
  the step on every rank.
- ``compile=True``: each network compiled, the all-reduces between them eager: works on CPU.
- ``cuda_graph=True`` with NCCL: the all-reduces are inside ``training_step``, so they are
  captured into the whole-step graph (NCCL >= 2.9 supports capture; every rank captures and
  replays at the same steps, as NCCL requires, because the capture decisions depend only on batch
  shapes and learning rates, the same on every rank). Not tested here (no GPU). Not with gloo,
  which stages CUDA tensors through the host and cannot be captured: the Trainer refuses it.
- NCCL needs one GPU per process (``cuda:LOCAL_RANK``).

Launch
------
``torchrun --nproc-per-node N [--nnodes M --rdzv-backend c10d --rdzv-endpoint HOST:PORT] ...``
sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` / ``MASTER_PORT``;
:func:`init_distributed` reads them (``env://`` rendezvous), picks gloo on CPU and NCCL on CUDA,
binds each process to ``cuda:LOCAL_RANK``, and sets a collective timeout, so that a rank waiting for
a dead peer raises instead of hanging.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

__all__ = [
    "DEFAULT_TIMEOUT",
    "DistributedContext",
    "GradientAllReduce",
    "all_gather_objects",
    "all_reduce_mean",
    "barrier",
    "broadcast_module",
    "check_agreement",
    "current_context",
    "destroy_distributed",
    "env_world_size",
    "init_distributed",
    "rank_seed",
]

#: Collective timeout of :func:`init_distributed`: a rank blocked in a collective longer than this
#: (a peer died or hangs) raises instead of waiting for torch's default of 30 minutes.
DEFAULT_TIMEOUT = datetime.timedelta(minutes=10)

_MASK64 = (1 << 64) - 1
#: Seeds of the model's Philox stream must lie in [0, 2**62) (aae_fast.random).
_SEED_MASK = (1 << 62) - 1


def _dist():
    import torch.distributed as dist

    return dist


@dataclasses.dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in the default process group."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    #: Whether :func:`init_distributed` initialised the group (then :func:`destroy_distributed`
    #: tears it down).
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and shows progress."""
        return self.rank == 0

    def device(self, device: str | torch.device) -> torch.device:
        """This rank's device for a requested device type: ``cuda`` -> ``cuda:LOCAL_RANK``."""
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            return torch.device("cuda", self.local_rank)
        return device


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (torchrun sets it), 1 when absent."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ValueError(
            f"WORLD_SIZE must be an integer, got {os.environ['WORLD_SIZE']!r}"
        ) from None


def current_context() -> DistributedContext | None:
    """The default process group's rank and size, or None when torch.distributed is not
    initialised."""
    dist = _dist()
    if not (dist.is_available() and dist.is_initialized()):
        return None
    return DistributedContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", dist.get_rank())),
        backend=str(dist.get_backend()),
    )


def init_distributed(
    device: str | torch.device = "cpu",
    *,
    backend: str | None = None,
    timeout: datetime.timedelta | float | None = None,
) -> DistributedContext | None:
    """Initialise the default process group from torchrun's environment when ``WORLD_SIZE > 1``.

    Args:
        device: the device type the run trains on: ``"cpu"`` (gloo) or ``"cuda"`` (NCCL; this
            process is bound to ``cuda:LOCAL_RANK``).
        backend: override the backend (``"gloo"``, ``"nccl"``).
        timeout: collective timeout (a ``timedelta`` or seconds; default :data:`DEFAULT_TIMEOUT`).

    Returns:
        The context; None without torchrun (``WORLD_SIZE`` unset or 1). An already initialised
        group is used as it is (``owns_group=False``).
    """
    dist = _dist()
    existing = current_context()
    if existing is not None:
        return existing
    world = env_world_size()
    if world <= 1:
        return None
    if not dist.is_available():
        raise RuntimeError(
            f"WORLD_SIZE={world} asks for distributed training, but this torch build has no "
            "torch.distributed"
        )
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise RuntimeError(
                f"WORLD_SIZE={world} is set but {name} is not: launch with torchrun "
                "(e.g. torchrun --nproc-per-node 2 -m aae_fast.cli train ...), which sets "
                "RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT"
            )
    device = torch.device(device)
    if backend is None:
        backend = "nccl" if device.type == "cuda" else "gloo"
    if timeout is None:
        timeout = DEFAULT_TIMEOUT
    elif not isinstance(timeout, datetime.timedelta):
        timeout = datetime.timedelta(seconds=float(timeout))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    kwargs: dict[str, Any] = {}
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was requested but CUDA is not available")
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK={local_rank} but this node has {torch.cuda.device_count()} GPU(s): "
                "use --nproc-per-node <= the number of GPUs"
            )
        torch.cuda.set_device(local_rank)
        if backend == "nccl":
            kwargs["device_id"] = torch.device("cuda", local_rank)
    dist.init_process_group(backend=backend, init_method="env://", timeout=timeout, **kwargs)
    return dataclasses.replace(current_context(), local_rank=local_rank, owns_group=True)


def destroy_distributed(context: DistributedContext | None) -> None:
    """Tear down the default process group if ``context`` initialised it."""
    dist = _dist()
    if context is not None and context.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s random streams (torch's global generators and the model's
    Philox stream) in a run seeded with ``seed``.

    Rank 0 keeps ``seed``, so a one-process run is the non-distributed run. Other ranks get a
    splitmix64 hash of ``(seed, rank)`` in [0, 2**62): unlike ``seed + rank``, rank 1 of the run
    with seed 0 then does not replay rank 0 of the run with seed 1."""
    if rank == 0:
        return int(seed)
    x = (int(seed) + (int(rank) * 0x9E3779B97F4A7C15)) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    x ^= x >> 31
    return x & _SEED_MASK


def _buckets(tensors: Iterable[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Tensors grouped by (device, dtype), in order: each group flattens into one buffer."""
    groups: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.device, t.dtype), []).append(t)
    return list(groups.values())


def _flatten(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def _unflatten_into(flat: torch.Tensor, tensors: Sequence[torch.Tensor]) -> None:
    views, offset = [], 0
    for t in tensors:
        n = t.numel()
        views.append(flat[offset : offset + n].view_as(t))
        offset += n
    torch._foreach_copy_(list(tensors), views)


class GradientAllReduce:
    """Averages the gradients of an optimiser's parameters over the ranks, right before its step.

    Called by the Trainer's ``amp.step(optimizer)``: the gradients that exist (``grad is not
    None``) are flattened into one buffer per (device, dtype), summed with one ``all_reduce`` per
    buffer, divided by the world size and copied back. Every op is a device op (no host sync), so
    the same code runs inside a captured CUDA graph (NCCL collectives can be captured).

    Attributes:
        calls: all-reduces issued; ``elements``: gradient elements reduced (for reports).
    """

    def __init__(self, world_size: int, group=None, rank: int = 0) -> None:
        self.world_size = int(world_size)
        self.group = group
        self.rank = int(rank)
        self.calls = 0
        self.elements = 0

    @torch.no_grad()
    def __call__(self, optimizer: torch.optim.Optimizer) -> None:
        if self.world_size == 1:
            return
        grads = [
            p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None
        ]
        for bucket in _buckets(grads):
            if any(t.is_sparse for t in bucket):
                raise RuntimeError("GradientAllReduce: sparse gradients are not supported")
            flat = _flatten(bucket)
            try:
                _dist().all_reduce(flat, group=self.group)
            except Exception as exc:  # a peer died, hangs, or disagrees on the buffer
                raise RuntimeError(
                    f"rank {self.rank}/{self.world_size}: the gradient all-reduce failed "
                    f"({type(exc).__name__}: {exc}). Another rank has most likely failed or been "
                    "killed: its error is the root cause."
                ) from exc
            flat.div_(self.world_size)
            _unflatten_into(flat, bucket)
            self.calls += 1
            self.elements += flat.numel()


@torch.no_grad()
def broadcast_module(module: nn.Module, src: int = 0, group=None) -> None:
    """Copy rank ``src``'s parameters and persistent buffers (its ``state_dict``) to every rank, in
    place (what DDP does at construction): the ranks start from the same weights whatever their
    own initialisation drew."""
    dist = _dist()
    tensors = [t for t in module.state_dict().values() if isinstance(t, torch.Tensor)]
    for bucket in _buckets(tensors):
        flat = _flatten(bucket)
        dist.broadcast(flat, src=src, group=group)
        _unflatten_into(flat, bucket)


def all_gather_objects(obj: Any, group=None) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order."""
    dist = _dist()
    out: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(out, obj, group=group)
    return out


def check_agreement(values: Mapping[str, Any], what: str, group=None) -> None:
    """Raise on every rank when the ranks' ``values`` differ (a misconfigured launch would
    otherwise hang in a collective or train on mismatched data)."""
    gathered = all_gather_objects(dict(values), group)
    if any(g != gathered[0] for g in gathered[1:]):
        lines = "; ".join(f"rank {r}: {g}" for r, g in enumerate(gathered))
        raise ValueError(f"{what}: the ranks disagree ({lines})")


def all_reduce_mean(
    tensors: Sequence[torch.Tensor], world_size: int, group=None
) -> list[torch.Tensor]:
    """The ranks' mean of each 0-dim tensor (one collective for all of them, in float64)."""
    if not tensors:
        return []
    flat = torch.stack([t.detach().double().reshape(()) for t in tensors])
    _dist().all_reduce(flat, group=group)
    return list((flat / world_size).unbind())


def barrier(group=None) -> None:
    _dist().barrier(group=group)
