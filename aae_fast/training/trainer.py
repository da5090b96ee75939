"""The training loop shared by every model, reference or fused.

A model is trainable here when it implements the protocol described in
:mod:`aae_fast.reference._common`: ``configure_optimizers()``, ``configure_schedulers(optimizers)``
(optional; stepped once per epoch), ``training_step(batch, optimizers, amp=...)`` returning detached
loss tensors, and ``validation_step(batch)``.

The Trainer keeps the data on the device and batches it by index
(:class:`aae_fast.data.TensorLoader`), reads the losses once per logging interval (never every
step), applies autocast / gradient scaling through the ``amp`` object it hands to the model, and
checkpoints so that a resumed run continues exactly as the uninterrupted one would (same batches,
same random numbers, bitwise-equal parameters on CPU).

Two opt-in fast paths, both leaving the model's code and checkpoints unchanged:

- ``compile=True`` compiles each of the model's networks (its direct child modules with parameters)
  with ``torch.compile(fullgraph=True)``. The phase logic of ``training_step`` (losses of several
  networks, ``backward()``, ``zero_grad``, the optimiser steps) stays eager Python between the
  compiled regions.
- ``cuda_graph=True`` (CUDA only) captures one whole ``training_step``, every phase's forward,
  backward and optimiser step included, into a CUDA graph after a few eager warm-up steps, and
  replays it for every later batch of the same shapes: one graph launch per step instead of a few
  hundred kernel launches. Random numbers drawn from torch's default CUDA generator (and from any
  counter-based generator whose offset lives in a device tensor) are fresh on every replay.

Data-parallel training (``torchrun``; :mod:`aae_fast.training.distributed`): in an initialised
process group of several ranks, each rank trains on its shard of every global batch, and the
gradients of each phase are averaged over the ranks right before that phase's optimiser step
(inside ``amp.step``, so the models are unchanged). Rank 0 writes the checkpoints, which hold every
rank's random states, so that every rank resumes exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import operator
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._checks import positive_int
from ..data import ArrayDataset, TensorLoader
from ..data.loader import as_tensors
from . import distributed as _distributed
from .checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, load_checkpoint, save_checkpoint

__all__ = ["Trainer", "PRECISIONS", "CHECKPOINT_NAME"]

PRECISIONS = ("fp32", "bf16", "fp16")
#: File name of the checkpoint the Trainer keeps in ``out_dir``.
CHECKPOINT_NAME = "checkpoint.pt"


class _Amp:
    """Autocast and gradient scaling, handed to ``model.training_step`` as ``amp``."""

    def __init__(
        self,
        device: torch.device,
        precision: str,
        cache_enabled: bool = True,
        grad_sync: _distributed.GradientAllReduce | None = None,
    ) -> None:
        self.device_type = device.type
        # Data-parallel runs: averages each phase's gradients over the ranks before its step.
        self.grad_sync = grad_sync
        self.dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
        # PyTorch's CUDA-graph notes ask for autocast(cache_enabled=False) around captured code:
        # the cache keeps low-precision copies of the weights between calls, which would tie
        # memory of the graph's private pool to eager code (or serve eager copies to the graph).
        self.cache_enabled = cache_enabled

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(
            device_type=self.device_type, dtype=self.dtype, cache_enabled=self.cache_enabled
        )

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.grad_sync is not None:
            # Scaled gradients are averaged: an inf / NaN on one rank reaches every rank, so the
            # GradScaler skips the step everywhere.
            self.grad_sync(optimizer)
        if self.scaler is not None:
            self.scaler.step(optimizer)
        else:
            optimizer.step()


def _qualname(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _family(obj: Any) -> str:
    """The model's reference class: a fused model and its eager twin share it (and state_dict
    keys), so a checkpoint of either resumes the other."""
    cls = getattr(type(obj), "reference_class", type(obj))
    return f"{cls.__module__}.{cls.__qualname__}"


#: The networks' compiled calls share one code object (``call`` below; ``nn.Module.compile``'s
#: ``_call_impl`` too), and by default Dynamo's recompile limit (8) counts every compilation of a
#: code object: the encoder, the decoder, the discriminator with and without gradients, eval mode,
#: a new batch size... of every model in the process. Newer torch (2.13 here) can give each
#: ``torch.compile`` call a budget of its own.
_ISOLATE_RECOMPILES = (
    {"isolate_recompiles": True}
    if "isolate_recompiles" in inspect.signature(torch.compile).parameters
    else {}
)


def _compile_module(module: nn.Module, options: Mapping[str, Any]) -> None:
    """Compile ``module``'s calls in place, as ``module.compile(**options)`` would (parameters and
    state_dict keys untouched, unlike ``torch.compile(module)``, whose wrapper adds ``_orig_mod.``
    to every key).

    ``nn.Module.compile`` itself compiles the bound ``module._call_impl``; for torch.nn's own
    classes (``nn.Sequential``, ``nn.Linear``...) Dynamo skips that frame as library code and runs
    it eagerly (``fullgraph=True`` then raises "found no compiled frames"; pytorch/pytorch#150915).
    Compiling a function of this file that calls ``_call_impl`` gives Dynamo a frame to trace,
    from which it inlines the module (hooks included)."""
    call_impl = module._call_impl

    def call(*args: Any, **kwargs: Any) -> Any:
        return call_impl(*args, **kwargs)

    # nn.Module.__call__ runs _compiled_call_impl when set; __getstate__ drops it, so a deepcopy
    # or a pickle of the model is the eager model.
    module._compiled_call_impl = torch.compile(call, **options)


def _make_capturable(optimizers: Mapping[str, torch.optim.Optimizer]) -> None:
    """Switch Adam / AdamW to ``capturable=True``, which CUDA-graph capture of their step requires.

    Without it Adam keeps each parameter's step counter on the CPU and computes the bias
    corrections on the host, so a replayed graph would reuse the captured step forever; capturable
    Adam keeps the counter on the parameter's device and updates it with device ops. Counters made
    by earlier eager steps are moved there (what ``Adam.__setstate__`` does for capturable groups;
    the dtype is kept)."""
    for opt in optimizers.values():
        if not isinstance(opt, torch.optim.Adam):  # AdamW subclasses Adam
            continue
        for group in opt.param_groups:
            group["capturable"] = True
            for p in group["params"]:
                step = opt.state[p].get("step") if p in opt.state else None
                if isinstance(step, torch.Tensor) and step.device != p.device:
                    opt.state[p]["step"] = step.to(p.device)


def _signature(batch: Mapping[str, Any]) -> tuple:
    """What a captured graph is specialised to: the keys, each tensor's shape, dtype and device
    (the graph reads the memory of the static tensors it was captured with), and any other value
    (baked in at capture), by its repr."""
    return tuple(
        (k, (tuple(v.shape), v.dtype, v.device) if isinstance(v, torch.Tensor) else repr(v))
        for k, v in sorted(batch.items())
    )


@dataclasses.dataclass
class _CapturedStep:
    """One ``training_step`` captured in a CUDA graph."""

    graph: torch.cuda.CUDAGraph
    signature: tuple
    #: The batch the graph reads: each step's batch is copied into these tensors.
    inputs: dict[str, Any]
    #: The losses the graph writes: overwritten by every replay.
    losses: dict[str, torch.Tensor]
    #: The learning rates at capture: Python floats, baked into the captured kernels.
    learning_rates: tuple


class Trainer:
    """Trains a model with the paper's alternating phases, one mini-batch at a time.

    Args:
        model: a model implementing the training protocol (every :mod:`aae_fast.reference` class).
            It is moved to ``device``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        precision: ``"fp32"``; ``"bf16"`` (``torch.autocast`` with bfloat16, on CPU or GPU);
            ``"fp16"`` (autocast with float16 and a ``GradScaler``; CUDA only). Losses are reduced
            in fp32 either way.
        seed: seeds torch's global generators (CPU and CUDA) when the Trainer is built (the models
            draw prior samples and posterior noise from them) and the data loaders (``seed`` for the
            training data, ``seed + 1`` for the labelled data). Build the model after your own
            ``torch.manual_seed`` for a reproducible initialisation.
        batch_size: rows per training mini-batch (paper: 100, Appendix A).
        labelled_data: an :class:`~aae_fast.data.ArrayDataset` of labelled examples (e.g.
            :func:`~aae_fast.data.labelled_subset`): each step then also gets a labelled mini-batch
            (``batch["x_labelled"]``, ``batch["y_labelled"]``), as the semi-supervised phase needs
            (§5). Drawn in shuffled passes over the labelled set.
        labelled_batch_size: rows per labelled mini-batch (default ``batch_size``; at most the
            labelled set's size).
        log_every: read the losses (one device sync) every this many steps; their means over the
            interval go to the progress bar and to :attr:`log_history`.
        progress: show a tqdm progress bar.
        out_dir: where checkpoints go (``out_dir/checkpoint.pt``): every ``checkpoint_every``
            steps, at the end of :meth:`fit`, and when training is interrupted. None: no files.
        checkpoint_every: steps between checkpoints (needs ``out_dir``).
        drop_last: drop each epoch's last, incomplete training batch (default True: every step
            sees ``batch_size`` rows).
        compile: compile the model's networks with ``torch.compile(fullgraph=True)``: every direct
            child module that has parameters (``encoder``, ``decoder``, ``discriminator``...) is
            compiled in place, so its forward and backward run as compiled graphs, and state_dict
            keys do not change (checkpoints move freely between compiled and eager runs). What the
            model's ``training_step`` does between the networks stays eager Python: the losses,
            ``zero_grad``, each phase's ``backward()`` and optimiser step. The first steps are slow
            (one compilation per network, and again when its ``requires_grad`` pattern or the
            batch size changes). The modules stay compiled after training.
        compile_options: extra keyword arguments of ``torch.compile`` (``mode``, ``backend``,
            ``dynamic``, ``options``; ``fullgraph`` too, to override True). Needs ``compile=True``.
        cuda_graph: capture a whole ``model.training_step`` (every phase's forward, backward and
            optimiser step) in a CUDA graph and replay it for every later batch of the same shapes
            (CUDA only). The recipe of PyTorch's "whole network capture": ``cuda_graph_warmup``
            eager steps on a side stream first (optimiser states, lazy library handles and any
            compilation get created outside the graph), then one capture, then per step a copy of
            the batch into the graph's static input tensors and a replay. The model must not sync
            the host inside ``training_step`` (the reference models do not), and whatever Python
            decides there is frozen at capture (a replay re-runs the captured kernels only;
            random numbers stay fresh, see the module docstring). A batch of other
            shapes (the last one of an epoch with ``drop_last=False``) runs eagerly; if
            ``cuda_graph_warmup`` batches in a row have the new shapes, the graph is captured anew
            for them. Learning rates are baked into the graph, so it is captured again when one
            changed (a scheduler step). Adam / AdamW are switched to ``capturable=True`` (their
            step counters move to the device); checkpoints keep the optimisers' original flag.
            Not with ``precision="fp16"`` (the GradScaler's step reads the device).
        cuda_graph_warmup: eager steps with a batch's shapes before capturing them (>= 1: the
            optimiser states must exist before capture, or each replay would re-initialise them).
        distributed: data-parallel training over torch.distributed's default process group
            (``torchrun``; see :mod:`aae_fast.training.distributed`). None (default): when a
            process group is initialised; True: require one; False: ignore it. With a world of
            N > 1 ranks:

            - ``batch_size`` is per rank: a step trains on a global batch of ``batch_size * N``
              rows, rank r taking rows ``[r * batch_size, (r + 1) * batch_size)`` of each global
              batch of the shared, seeded permutation (``TensorLoader(num_replicas=N, rank=r)``),
              so the union of the ranks' batches is the global batch a one-process run with
              ``batch_size * N`` would draw. The labelled mini-batch is per rank too (at most
              ``len(labelled_data) // N`` rows). Every rank must pass the same data.
            - Each phase's gradients are averaged over the ranks before its optimiser step (one
              all-reduce per phase); rank 0's weights are broadcast when the Trainer is built.
            - Random streams are rank-offset: rank r seeds torch's global generators and the
              model's Philox stream with ``rank_seed(seed, r)`` (rank 0: ``seed``), the data
              loaders with ``seed`` on every rank.
            - Logged and per-epoch losses are means over the ranks; ``samples_per_s`` counts the
              global batch. Only rank 0 shows progress and writes checkpoints;
              :meth:`save_checkpoint` is collective (every rank calls it: it gathers every rank's
              random states into the file) and :meth:`load_checkpoint` restores each rank's own,
              so a resumed run continues bit-identically (on CPU) with the same number of ranks.
            - Ctrl-C is not deferred to the end of the step (the ranks could not agree on the
              step to stop at): resume from the latest periodic checkpoint.

    A model may carry its own counter-based random state: if it has ``manual_seed(seed)``, the
    Trainer calls it with ``seed`` right after ``torch.manual_seed``; if it has ``rng_state()``
    (returning a tensor) and ``set_rng_state(state)``, checkpoints store that state beside torch's
    and a resumed run restores it.

    Attributes:
        epoch: epochs completed. ``global_step``: optimisation steps (mini-batches) done.
        history: one dict per epoch (see :meth:`fit`). ``log_history``: one dict per log interval:
            ``step`` (the global step at its end), ``epoch`` (1-based, the epoch of that step, as
            in ``history``), the mean of each loss over the interval's steps, and ``complete``
            (see :meth:`fit`).
        optimizers, schedulers: what the model configured.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        seed: int = 0,
        batch_size: int = 100,
        labelled_data: ArrayDataset | None = None,
        labelled_batch_size: int | None = None,
        log_every: int = 100,
        progress: bool = True,
        out_dir: str | os.PathLike[str] | None = None,
        checkpoint_every: int | None = None,
        drop_last: bool = True,
        compile: bool = False,
        compile_options: Mapping[str, Any] | None = None,
        cuda_graph: bool = False,
        cuda_graph_warmup: int = 3,
        distributed: bool | None = None,
    ) -> None:
        for name in ("configure_optimizers", "training_step"):
            if not callable(getattr(model, name, None)):
                raise TypeError(
                    f"model: {type(model).__name__} has no {name}(); the Trainer needs a model "
                    "implementing the training protocol (see aae_fast.reference)"
                )
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device must name a torch device such as 'cpu' or 'cuda', got {device!r}") from exc
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device: {device!r} was requested but CUDA is not available")
        if precision == "fp16" and self.device.type != "cuda":
            raise ValueError(
                f"precision='fp16' needs a CUDA device (it uses a GradScaler), got device "
                f"{str(self.device)!r}; use precision='bf16' on CPU"
            )
        batch_size = positive_int(batch_size, "batch_size")
        log_every = positive_int(log_every, "log_every")
        if checkpoint_every is not None:
            try:
                checkpoint_every = positive_int(checkpoint_every, "checkpoint_every")
            except ValueError:
                raise ValueError(
                    f"checkpoint_every must be a positive int or None, got {checkpoint_every!r}"
                ) from None
            if out_dir is None:
                raise ValueError("checkpoint_every needs out_dir (where to write the checkpoints)")
        if labelled_data is not None and not isinstance(labelled_data, ArrayDataset):
            raise TypeError(
                "labelled_data must be an aae_fast.data.ArrayDataset, "
                f"got {type(labelled_data).__name__}"
            )
        for name, value in (("compile", compile), ("cuda_graph", cuda_graph)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, got {value!r}")
        if compile_options is not None:
            if not isinstance(compile_options, Mapping):
                raise TypeError(
                    "compile_options must be a dict of torch.compile keyword arguments or None, "
                    f"got {type(compile_options).__name__}"
                )
            if not compile:
                raise ValueError(
                    f"compile_options={dict(compile_options)!r} needs compile=True, got "
                    "compile=False"
                )
        if cuda_graph:
            if self.device.type != "cuda":
                raise ValueError(
                    f"cuda_graph=True needs a CUDA device (it captures CUDA graphs), got device "
                    f"{str(self.device)!r}"
                )
            if precision == "fp16":
                raise ValueError(
                    "cuda_graph=True does not support precision='fp16': the GradScaler's step "
                    "reads the device to skip non-finite steps, which a CUDA graph cannot "
                    "capture; use precision='bf16' or 'fp32'"
                )
            mode = (compile_options or {}).get("mode")
            if mode in ("reduce-overhead", "max-autotune"):
                raise ValueError(
                    f"compile_options: mode={mode!r} makes torch.compile capture CUDA graphs of "
                    "its own, which cannot nest in cuda_graph=True's capture; use "
                    "mode='max-autotune-no-cudagraphs' or 'default'"
                )
        if (
            isinstance(cuda_graph_warmup, bool)
            or not isinstance(cuda_graph_warmup, int)
            or cuda_graph_warmup < 1
        ):
            raise ValueError(f"cuda_graph_warmup must be an int >= 1, got {cuda_graph_warmup!r}")

        if distributed is not None and not isinstance(distributed, bool):
            raise TypeError(f"distributed must be a bool or None, got {distributed!r}")
        context = _distributed.current_context() if distributed is not False else None
        if distributed and context is None:
            raise ValueError(
                "distributed=True needs an initialised torch.distributed process group: launch "
                "with torchrun and call aae_fast.training.distributed.init_distributed() (or "
                "torch.distributed.init_process_group) before building the Trainer"
            )
        if context is not None and context.backend == "nccl" and self.device.type != "cuda":
            raise ValueError(
                f"the process group uses NCCL, which needs CUDA tensors, but device is "
                f"{str(self.device)!r}; use gloo for CPU training"
            )
        if (
            cuda_graph
            and context is not None
            and context.world_size > 1
            and context.backend != "nccl"
        ):
            raise ValueError(
                f"cuda_graph=True in a distributed run needs the NCCL backend (its collectives "
                f"can be captured in a CUDA graph), got {context.backend!r}"
            )
        #: This process's rank and the number of ranks (0 and 1 without a process group).
        self.rank = 0 if context is None else context.rank
        self.world_size = 1 if context is None else context.world_size
        self._dist = context if self.world_size > 1 else None
        reason = getattr(model, "data_parallel_inexact", None)
        if self._dist is not None and reason:
            raise ValueError(
                f"model: {type(model).__name__} cannot train data-parallel as it would in one "
                f"process: {reason}; train it in one process"
            )

        self.model = model.to(self.device)
        self.precision = precision
        try:
            if isinstance(seed, bool):
                raise TypeError
            self.seed = operator.index(seed)  # an int, numpy's too; not a float or a string
        except TypeError:
            raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}") from None
        self.batch_size = batch_size
        self.log_every = log_every
        self.progress = progress and self.rank == 0
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.checkpoint_every = checkpoint_every
        self.drop_last = drop_last
        self.compile = compile
        self.cuda_graph = cuda_graph
        self.cuda_graph_warmup = cuda_graph_warmup
        grad_sync = None
        if self._dist is not None:
            grad_sync = _distributed.GradientAllReduce(self.world_size, rank=self.rank)
            # The ranks start from rank 0's weights (as DDP does), whatever they initialised.
            _distributed.broadcast_module(self.model)
        self._amp = _Amp(self.device, precision, cache_enabled=not cuda_graph, grad_sync=grad_sync)
        # Rank-offset streams: every rank draws its own prior samples and noise.
        stream_seed = _distributed.rank_seed(self.seed, self.rank)
        torch.manual_seed(stream_seed)  # also seeds every CUDA device
        model_seed = getattr(model, "manual_seed", None)
        if callable(model_seed):  # a model-held (e.g. counter-based Philox) generator
            model_seed(stream_seed)

        if compile:
            options = {"fullgraph": True, **_ISOLATE_RECOMPILES, **(compile_options or {})}
            for child in model.children():
                if next(child.parameters(), None) is not None:
                    _compile_module(child, options)
        # The optimisers' steps stay eager. torch.compile(opt.step) works on CPU (torch 2.13: the
        # same parameters as eager within 1e-7 after 5 Adam or SGD steps) but costs ~13 s more
        # cold compilation on a 2-core CPU (45 s instead of 32 s for a 12-16-2 AAE), and a float
        # learning rate is guarded on, so every scheduler change recompiles (torch's recipe wraps
        # lr in a tensor, which would change the model's optimiser configuration). On CUDA,
        # cuda_graph=True removes the step's launch overhead instead.

        self.optimizers: dict[str, torch.optim.Optimizer] = dict(model.configure_optimizers())
        configure = getattr(model, "configure_schedulers", None)
        self.schedulers = dict(configure(self.optimizers)) if callable(configure) else {}
        # The capturable flags as configured: checkpoints store these, not the ones cuda_graph
        # sets, so that they resume anywhere (a capturable Adam refuses CPU parameters).
        self._configured_capturable = {
            name: [g.get("capturable") for g in opt.param_groups]
            for name, opt in self.optimizers.items()
        }
        self._graph: _CapturedStep | None = None
        self._graph_stream = torch.cuda.Stream(self.device) if cuda_graph else None
        # The shapes of the latest consecutive batches, and how many: a graph is captured for a
        # signature once cuda_graph_warmup steps in a row had it.
        self._run_signature: tuple | None = None
        self._run_length = 0

        self.epoch = 0
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self.log_history: list[dict[str, Any]] = []
        # Position inside the current epoch (for exact resume).
        self._batch_in_epoch = 0
        self._epoch_loader_state: dict[str, Any] | None = None
        self._train_rows: int | None = None  # of the data the epoch under way draws from
        self._epoch_sums: dict[str, torch.Tensor] = {}
        self._epoch_time = 0.0
        self._epoch_samples = 0
        self._interval_sums: dict[str, torch.Tensor] = {}
        self._interval_steps = 0
        self._warned_non_finite = False

        self._labelled_loader: TensorLoader | None = None
        if labelled_data is not None:
            n = len(labelled_data) // self.world_size
            if n == 0:
                raise ValueError(
                    f"labelled_data: {len(labelled_data)} rows cannot give each of "
                    f"{self.world_size} ranks a labelled row"
                )
            if labelled_batch_size is not None:
                labelled_batch_size = positive_int(labelled_batch_size, "labelled_batch_size")
            size = min(labelled_batch_size or batch_size, n)
            self._labelled_loader = TensorLoader(
                labelled_data,
                size,
                shuffle=True,
                drop_last=True,
                seed=self.seed + 1,
                device=self.device,
                num_replicas=self.world_size,
                rank=self.rank,
            )
        self._labelled_iter = None
        self._labelled_pass_state: dict[str, Any] | None = None
        self._labelled_drawn = 0
        self._stop_requested = False

    # -- public API ---------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        """``out_dir / "checkpoint.pt"``, or None without ``out_dir``."""
        return None if self.out_dir is None else self.out_dir / CHECKPOINT_NAME

    def fit(
        self,
        train_data: ArrayDataset | TensorLoader | torch.Tensor | Sequence[torch.Tensor],
        epochs: int | None = None,
        max_steps: int | None = None,
        val_data: ArrayDataset | torch.Tensor | Sequence[torch.Tensor] | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Train until ``epochs`` epochs or ``max_steps`` steps have been done in total (counted
        from the start of training, so a resumed run stops where the uninterrupted one would).

        Args:
            train_data: an :class:`~aae_fast.data.ArrayDataset` (batches of images and labels), a
                tensor of inputs, a tuple ``(x, y)``, or a ready
                :class:`~aae_fast.data.TensorLoader`.
                Copied to the device once; mini-batches are gathered by index.
            epochs: total epochs; ``max_steps``: total steps; at least one is needed (the first
                reached stops training).
            val_data: evaluated with ``model.validation_step`` at the end of each epoch (keys
                ``val_<name>`` in the history).
            on_start: called once every argument is checked, before the first step (e.g. to
                record a run's configuration only when it really starts).

        Returns:
            :attr:`history`: one dict per epoch with ``epoch`` (1-based), ``step`` (global step at
            its end), the mean of each loss over the epoch's steps (``reconstruction``,
            ``discriminator``, ``generator``, ...), ``time_s`` (training wall time),
            ``samples_per_s``, ``val_*`` entries, and ``complete`` (False for an epoch cut short by
            ``max_steps``; it is replaced when a later ``fit`` finishes that epoch).

        :attr:`log_history` gets the mean losses of every ``log_every`` steps; when ``fit``
        returns inside an interval, its steps so far are logged too, with ``complete`` False, and
        a later ``fit`` (or a run resumed from the checkpoint) replaces that entry when it ends the
        interval, as for ``history``'s epochs.

        On KeyboardInterrupt (Ctrl-C) the current step finishes, a checkpoint is written (with
        ``out_dir``), and the KeyboardInterrupt is re-raised; a second Ctrl-C interrupts at once
        and writes nothing (the step it cut short would make an inconsistent checkpoint), nor does
        any other exception: the latest checkpoint written is the one to resume from. In a
        distributed run (several ranks) Ctrl-C interrupts at once and writes nothing.
        """
        if epochs is None and max_steps is None:
            raise ValueError("fit needs epochs or max_steps (or both), got neither")
        for name, value in (("epochs", epochs), ("max_steps", max_steps)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise ValueError(f"{name} must be a non-negative int or None, got {value!r}")
        loader = self._make_loader(train_data)
        if val_data is not None:
            as_tensors(val_data, "val_data")  # now, not after the first epoch's training
        per_epoch = loader.batches_per_epoch
        if per_epoch == 0:
            raise ValueError(
                f"train_data: {loader.num_samples} rows make no batch of {loader.batch_size} with "
                "drop_last=True; use a smaller batch_size or drop_last=False"
            )
        if self._dist is not None:
            # Every rank must run the same number of steps (each step has collectives): a rank
            # given other data or other limits would hang the others until the timeout.
            _distributed.check_agreement(
                {
                    "rows": loader.num_samples,
                    "batch_size": loader.batch_size,
                    "batches_per_epoch": per_epoch,
                    "epochs": epochs,
                    "max_steps": max_steps,
                    "global_step": self.global_step,
                    "epoch": self.epoch,
                    "batch_in_epoch": self._batch_in_epoch,
                },
                "fit",
            )
        if self._batch_in_epoch and self._train_rows not in (None, loader.num_samples):
            raise ValueError(
                f"train_data: {loader.num_samples} rows, but this run is inside epoch "
                f"{self.epoch + 1} of {self._train_rows} rows (after its batch "
                f"{self._batch_in_epoch}): the rest of that epoch would be other rows. Resume it "
                "with the data it was trained on"
            )
        if self._batch_in_epoch > per_epoch:  # a checkpoint from before train_rows was saved
            raise ValueError(
                f"train_data: {loader.num_samples} rows make {per_epoch} batches of "
                f"{loader.batch_size} per epoch, but this run stopped after batch "
                f"{self._batch_in_epoch} of its epoch {self.epoch + 1}: resume it with the data it "
                "was trained on"
            )
        self._train_rows = loader.num_samples
        if self.history and self.history[-1].get("complete") is False:
            self.history.pop()  # that epoch is resumed now
        if self.log_history and self.log_history[-1].get("complete") is False:
            self.log_history.pop()  # and that logging interval
        stop_step = math.inf if max_steps is None else max_steps
        if epochs is not None:  # for the progress bar's total
            remaining = max(epochs - self.epoch, 0) * per_epoch - self._batch_in_epoch
            stop_step = min(stop_step, self.global_step + max(remaining, 0))

        def done() -> bool:
            return (max_steps is not None and self.global_step >= max_steps) or (
                epochs is not None and self.epoch >= epochs
            )

        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            total = None if math.isinf(stop_step) else int(stop_step)
            bar = tqdm(
                total=total, initial=self.global_step, desc="train", unit="step", dynamic_ncols=True
            )
        last_saved_step = -1
        at_step_end = False  # an interrupt deferred to the end of a step: the state is consistent
        if on_start is not None:
            on_start()
        try:
            with self._interrupt_guard():
                while not done():
                    batches = self._epoch_batches(loader)
                    tick = time.perf_counter()
                    for batch in batches:
                        losses = self._train_step(batch)
                        self._accumulate(losses, self._batch_rows(batch))
                        self.global_step += 1
                        self._batch_in_epoch += 1
                        if bar is not None:
                            bar.update(1)
                        if self.global_step % self.log_every == 0:
                            self._log(bar, epoch=self.epoch + 1)
                        epoch_over = self._batch_in_epoch == per_epoch
                        if epoch_over and self.device.type == "cuda":
                            torch.cuda.synchronize(
                                self.device
                            )  # the epoch's time includes its work
                        self._epoch_time += time.perf_counter() - tick
                        stop = self._stop_requested or done() or epoch_over
                        if epoch_over:
                            self._end_epoch(val_data, loader)
                        if self.checkpoint_every and self.global_step % self.checkpoint_every == 0:
                            self.save_checkpoint(self.checkpoint_path)
                            last_saved_step = self.global_step
                        if self._stop_requested:
                            at_step_end = True
                            raise KeyboardInterrupt
                        if stop:
                            break
                        tick = time.perf_counter()
                    else:
                        # No batch was left: this epoch's steps were all done before, but its end
                        # was not recorded (its validation raised). Record it now.
                        if self._batch_in_epoch != per_epoch:
                            raise RuntimeError(
                                f"train_data's loader gave {self._batch_in_epoch} of the "
                                f"{per_epoch} batches it promised for epoch {self.epoch + 1}"
                            )
                        self._end_epoch(val_data, loader)
        except KeyboardInterrupt:
            # Saving is collective in a distributed run, and the other ranks may be anywhere.
            if (
                at_step_end
                and self._dist is None
                and self.out_dir is not None
                and last_saved_step != self.global_step
            ):
                self.save_checkpoint(self.checkpoint_path)
            raise
        finally:
            self._stop_requested = False
            if bar is not None:
                bar.close()
        if self._batch_in_epoch:
            self.history.append(self._epoch_entry(val_data, complete=False))
        if self._interval_steps:  # the steps since the last log_every boundary
            # self.epoch counts the epochs completed: the last step ended one, or is in the next.
            self._log(None, epoch=self.epoch if self._batch_in_epoch == 0 else self.epoch + 1,
                      complete=False)
        if self.out_dir is not None and last_saved_step != self.global_step:
            self.save_checkpoint(self.checkpoint_path)
        return self.history

    def step(self, batch: Any) -> dict[str, float]:
        """One training step on ``batch`` (a dict with ``x``/``y``, a tensor, or ``(x, y)``; moved
        to the device), outside :meth:`fit`'s epoch bookkeeping. Returns the losses as floats (this
        reads them back: one device sync)."""
        losses = self._train_step(batch)
        self.global_step += 1
        return {k: float(v) for k, v in losses.items()}

    @torch.no_grad()
    def evaluate(
        self,
        data: ArrayDataset | torch.Tensor | Sequence[torch.Tensor],
        batch_size: int = 1000,
    ) -> dict[str, float]:
        """Means of ``model.validation_step`` over ``data`` (in order, unshuffled), each batch's
        value weighted by its rows, or, for a metric that is a ratio over some of the rows (the
        classification ``error`` over the labelled ones), by the count the step returns for it
        under ``"weights"`` (a dict); a metric no row counted for is left out.

        Training's random streams are left where they were (torch's global and CUDA generators,
        the model's own): a validation step that draws noise (a VAE's) must not change what the
        training draws next, or a run that validates more often (one stopped and resumed, which
        validates its partial epoch) would train on other numbers than an uninterrupted one."""
        if not callable(getattr(self.model, "validation_step", None)):
            raise TypeError(f"model: {type(self.model).__name__} has no validation_step()")
        loader = TensorLoader(  # a fixed seed: the loader must not draw from the global RNG
            as_tensors(data, "data"),
            batch_size,
            shuffle=False,
            seed=0,
            device=self.device,
        )
        was_training = self.model.training
        self.model.eval()
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, torch.Tensor | int] = {}
        model_rng = self._model_rng_state()
        cuda_devices = [self.device] if self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=cuda_devices):
                for batch in loader:
                    b = self._as_dict(batch)
                    n = b["x"].shape[0]
                    with self._amp.autocast():
                        out = self.model.validation_step(b)
                    weights = dict(out.pop("weights", None) or {})
                    for k, v in out.items():
                        w = weights.get(k, n)
                        v = v.detach().double() * w
                        sums[k] = sums[k] + v if k in sums else v
                        counts[k] = counts[k] + w if k in counts else w
        finally:
            self.model.train(was_training)
            if model_rng is not None:
                self._model_rng_methods()[1](model_rng)
        return {k: float(sums[k]) / float(counts[k]) for k in sums if float(counts[k]) > 0}

    # -- checkpoints --------------------------------------------------------------------------
    def _rank_state(self) -> dict[str, Any]:
        """What differs between the ranks of a distributed run: the random streams and the sums
        of the local losses over the epoch and over the logging interval."""
        cuda_states = None
        if self.device.type == "cuda":
            cuda_states = [s for s in torch.cuda.get_rng_state_all()]
        return {
            "torch": torch.get_rng_state(),
            "cuda": cuda_states,
            "model": self._model_rng_state(),
            "epoch_sums": {k: float(v) for k, v in self._epoch_sums.items()},
            "interval_sums": {k: float(v) for k, v in self._interval_sums.items()},
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs (see :mod:`aae_fast.training.checkpoint`).

        In a distributed run this is collective (every rank must call it): it gathers every rank's
        random states and loss sums under ``rng["ranks"]`` (rank order); the other entries are
        rank 0's (the same on every rank but the loss sums and random states)."""
        own = self._rank_state()
        ranks = _distributed.all_gather_objects(own) if self._dist is not None else None
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "model_class": _qualname(self.model),
            "model_family": _family(self.model),
            "model_config": getattr(self.model, "config", None),
            "model": self.model.state_dict(),
            "optimizers": {k: self._optimizer_state(k) for k in self.optimizers},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "scaler": None if self._amp.scaler is None else self._amp.scaler.state_dict(),
            "trainer": {
                "epoch": self.epoch,
                "global_step": self.global_step,
                "batch_in_epoch": self._batch_in_epoch,
                "train_rows": self._train_rows,
                "seed": self.seed,
                "precision": self.precision,
                "batch_size": self.batch_size,
                "drop_last": self.drop_last,
                "world_size": self.world_size,
                "history": [dict(h) for h in self.history],
                "log_history": [dict(h) for h in self.log_history],
                "epoch_sums": own["epoch_sums"],
                "interval_sums": own["interval_sums"],
                "interval_steps": self._interval_steps,
                "epoch_time": self._epoch_time,
                "epoch_samples": self._epoch_samples,
                "labelled_drawn": self._labelled_drawn,
                "labelled": self._labelled_loader is not None,
            },
            "rng": {
                "torch": own["torch"],
                "cuda": own["cuda"],
                "model": own["model"],
                "loader": self._epoch_loader_state,
                "labelled_loader": self._labelled_pass_state,
                "ranks": ranks,
            },
        }

    def _optimizer_state(self, name: str) -> dict[str, Any]:
        state = self.optimizers[name].state_dict()  # its param_groups are copies
        for group, flag in zip(state["param_groups"], self._configured_capturable[name]):
            if flag is not None:  # undo cuda_graph's capturable=True (see __init__)
                group["capturable"] = flag
        return state

    def _model_rng_methods(self):
        """The model's ``(rng_state, set_rng_state)``, or None unless it has both."""
        get = getattr(self.model, "rng_state", None)
        set_ = getattr(self.model, "set_rng_state", None)
        return (get, set_) if callable(get) and callable(set_) else None

    def _model_rng_state(self) -> torch.Tensor | None:
        methods = self._model_rng_methods()
        if methods is None:
            return None
        state = methods[0]()
        if not isinstance(state, torch.Tensor):
            raise TypeError(
                f"model: {type(self.model).__name__}.rng_state() must return a tensor, got "
                f"{type(state).__name__}"
            )
        # A copy: the model's ops may advance their state tensor in place.
        return state.detach().clone()

    def save_checkpoint(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write :meth:`state_dict` atomically to ``path`` (default ``out_dir/checkpoint.pt``).

        In a distributed run every rank must call it (the state is gathered from all ranks); rank
        0 writes its ``path`` and the others wait until the file is complete, so that any rank
        can read it when this returns."""
        path = path if path is not None else self.checkpoint_path
        if path is None:
            raise ValueError("save_checkpoint needs a path (this Trainer has no out_dir)")
        state = self.state_dict()
        if self.rank == 0:
            path = save_checkpoint(state, path)
        if self._dist is not None:
            _distributed.barrier()
        return Path(path)

    def load_checkpoint(self, path: str | os.PathLike[str]) -> Trainer:
        """Restore model, optimisers, schedulers, scaler, counters, history and random states from a
        checkpoint, so that the next :meth:`fit` continues the saved run exactly."""
        state = load_checkpoint(path, map_location=self.device)
        # Compared by family: a fused model's checkpoint resumes its eager twin and back.
        saved_family = state.get("model_family")  # absent from checkpoints before 2026-11-26
        if (saved_family != _family(self.model) if saved_family is not None
                else state["model_class"] != _qualname(self.model)):
            raise ValueError(
                f"checkpoint: {path} holds a {state['model_class']}, but the model is a "
                f"{_qualname(self.model)}"
            )
        t = state["trainer"]
        # "labelled" is absent before 2026-11-26: a labelled pass under way says it too.
        if self._labelled_loader is None and t.get(
            "labelled", state["rng"].get("labelled_loader") is not None
        ):
            raise ValueError(
                f"checkpoint: {path} comes from a run with labelled_data (the semi-supervised "
                "phase's labelled set), and this Trainer has none: pass labelled_data again "
                "(checkpoints hold no data). Without it the model would take its labels from "
                "train_data's, every one of them."
            )
        saved_world = int(t.get("world_size", 1))
        if saved_world != self.world_size:
            raise ValueError(
                f"checkpoint: {path} was written by a run of {saved_world} process(es), but this "
                f"run has {self.world_size}: resume with the same number of processes (the data "
                "shards and every rank's random streams depend on it). To start a new run from "
                "its weights, load them instead: "
                "model.load_state_dict(aae_fast.training.load_checkpoint(path)['model'])"
            )
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as exc:  # another variant's or width's checkpoint
            raise ValueError(
                f"checkpoint: {path} does not fit the model ({type(self.model).__name__}): {exc}"
            ) from None
        self._load_named(state["optimizers"], self.optimizers, "optimizers", path)
        self._load_named(state["schedulers"], self.schedulers, "schedulers", path)
        if self._amp.scaler is not None and state.get("scaler") is not None:
            self._amp.scaler.load_state_dict(state["scaler"])
        rng = state["rng"]
        own = rng if rng.get("ranks") is None else rng["ranks"][self.rank]
        self.epoch = int(t["epoch"])
        self.global_step = int(t["global_step"])
        self._batch_in_epoch = int(t["batch_in_epoch"])
        self._train_rows = t.get("train_rows")  # absent before 2026-11-26
        self.history = [dict(h) for h in t["history"]]
        self.log_history = [dict(h) for h in t.get("log_history", [])]
        self._epoch_sums = {
            k: torch.tensor(v, dtype=torch.float32, device=self.device)
            for k, v in own.get("epoch_sums", t["epoch_sums"]).items()
        }
        self._epoch_time = float(t["epoch_time"])
        self._epoch_samples = int(t["epoch_samples"])
        self._labelled_drawn = int(t.get("labelled_drawn", 0))
        # The logging interval in progress (absent before 2026-11-26: it then restarts).
        self._interval_sums = {
            k: torch.tensor(v, dtype=torch.float32, device=self.device)
            for k, v in own.get("interval_sums", t.get("interval_sums", {})).items()
        }
        self._interval_steps = int(t.get("interval_steps", 0))
        torch.set_rng_state(own["torch"].cpu())
        if own.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in own["cuda"]])
        methods = self._model_rng_methods()
        if methods is not None and own.get("model") is not None:
            methods[1](own["model"])
        # The optimisers' state tensors were replaced: a captured graph would update the old ones.
        self._graph, self._run_signature, self._run_length = None, None, 0
        self._epoch_loader_state = _cpu_state(rng.get("loader"))
        self._labelled_pass_state = _cpu_state(rng.get("labelled_loader"))
        self._labelled_iter = None  # rebuilt from the pass state on the next draw
        return self

    @classmethod
    def resume(cls, path: str | os.PathLike[str], model: nn.Module, **kwargs: Any) -> Trainer:
        """A Trainer for ``model`` restored from the checkpoint at ``path``.

        ``seed``, ``precision``, ``batch_size`` and ``drop_last`` default to the checkpoint's;
        other arguments (``device``, ``labelled_data``, ``out_dir``...) are passed as to
        :class:`Trainer` (data is not stored in checkpoints: pass ``labelled_data`` again). Then
        call :meth:`fit` with the same training data and the total ``epochs`` / ``max_steps``."""
        saved = load_checkpoint(path, map_location="cpu")["trainer"]
        for key in ("seed", "precision", "batch_size", "drop_last"):
            kwargs.setdefault(key, saved[key])
        return cls(model, **kwargs).load_checkpoint(path)

    # -- internals ----------------------------------------------------------------------------
    @staticmethod
    def _load_named(saved: Mapping[str, Any], targets: Mapping[str, Any], what: str, path) -> None:
        if set(saved) != set(targets):
            raise ValueError(
                f"checkpoint: {path} has {what} {sorted(saved)}, but the model configures "
                f"{sorted(targets)}"
            )
        for k, obj in targets.items():
            obj.load_state_dict(saved[k])

    def _make_loader(self, data) -> TensorLoader:
        if isinstance(data, TensorLoader):
            if data.num_replicas != self.world_size:
                raise ValueError(
                    f"train_data: the TensorLoader is sharded over {data.num_replicas} replica(s) "
                    f"but the run has {self.world_size} rank(s); build it with "
                    f"num_replicas={self.world_size}, rank={self.rank}, or pass the data itself"
                )
            return data
        return TensorLoader(
            as_tensors(data, "train_data"),
            self.batch_size,
            shuffle=True,
            drop_last=self.drop_last,
            seed=self.seed,
            device=self.device,
            num_replicas=self.world_size,
            rank=self.rank,
        )

    def _epoch_batches(self, loader: TensorLoader):
        """The current epoch's remaining batches. The loader's generator state at the start of each
        epoch is recorded (at the end of the previous one, or here for the first): a resumed run
        (or a later ``fit``) restores it and skips the batches already done, so it sees the same
        batches as an uninterrupted run."""
        if self._epoch_loader_state is None:
            if self._batch_in_epoch:
                raise RuntimeError("cannot resume inside an epoch without the loader state")
            self._epoch_loader_state = loader.state_dict()
        else:
            loader.load_state_dict(self._epoch_loader_state)
        it = iter(loader)
        for _ in range(self._batch_in_epoch):
            next(it)
        return it

    def _as_dict(self, batch: Any) -> dict[str, Any]:
        if isinstance(batch, Mapping):
            b = dict(batch)
        elif isinstance(batch, torch.Tensor):
            b = {"x": batch, "y": None}
        elif isinstance(batch, Sequence) and 1 <= len(batch) <= 2:
            b = {"x": batch[0], "y": batch[1] if len(batch) == 2 else None}
        else:
            raise TypeError(
                "batch must be a dict, a tensor or a tuple (x,) / (x, y), "
                f"got {type(batch).__name__}"
            )
        return {
            k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
            for k, v in b.items()
        }

    @staticmethod
    def _batch_rows(batch: Any) -> int:
        x = (
            batch["x"]
            if isinstance(batch, Mapping)
            else batch
            if isinstance(batch, torch.Tensor)
            else batch[0]
        )
        return int(x.shape[0])

    def _next_labelled(self) -> tuple[torch.Tensor, torch.Tensor]:
        loader = self._labelled_loader
        if self._labelled_iter is None:
            if self._labelled_drawn == 0 or self._labelled_pass_state is None:
                self._labelled_pass_state = loader.state_dict()
                self._labelled_drawn = 0
            else:  # resuming inside a pass
                loader.load_state_dict(self._labelled_pass_state)
            self._labelled_iter = iter(loader)
            for _ in range(self._labelled_drawn):
                next(self._labelled_iter)
        try:
            x, y = next(self._labelled_iter)
        except StopIteration:  # a new pass over the labelled set
            self._labelled_pass_state = loader.state_dict()
            self._labelled_drawn = 0
            self._labelled_iter = iter(loader)
            x, y = next(self._labelled_iter)
        self._labelled_drawn += 1
        return x, y

    def _train_step(self, batch: Any) -> dict[str, torch.Tensor]:
        b = self._as_dict(batch)
        if self._labelled_loader is not None:
            b["x_labelled"], b["y_labelled"] = self._next_labelled()
        self.model.train()
        if self.cuda_graph:
            with torch.cuda.device(self.device):
                return self._graphed_step(b)
        losses = self.model.training_step(b, self.optimizers, amp=self._amp)
        if self._amp.scaler is not None:
            self._amp.scaler.update()
        return losses

    def _graphed_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """One step with ``cuda_graph=True``: replay the captured graph when it fits ``batch``
        (capturing it first, or again, when due), else an eager step on the side stream."""
        signature = _signature(batch)
        warmed_up = signature == self._run_signature and self._run_length >= self.cuda_graph_warmup
        if signature == self._run_signature:
            self._run_length += 1
        else:
            self._run_signature, self._run_length = signature, 1

        graph, static = self._graph, None
        if graph is not None and graph.signature == signature:
            if graph.learning_rates != self._learning_rates():
                # A scheduler (or the user) changed a learning rate the graph holds as a constant.
                static = graph.inputs
        elif warmed_up:
            static = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        else:  # warm-up, or a batch of other shapes (a graph for the usual shapes is kept)
            return self._side_stream_step(batch)
        if static is not None:
            del graph  # so that _capture can free the old graph's memory before capturing
            graph = self._capture(static, signature)

        for k, v in graph.inputs.items():
            if isinstance(v, torch.Tensor):
                v.copy_(batch[k])  # device to device, stream-ordered: no host sync
        graph.graph.replay()
        # The graph overwrites its outputs on the next replay: copy them (a device op).
        return {k: v.clone() for k, v in graph.losses.items()}

    def _side_stream_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """An eager ``training_step`` on the side stream, as PyTorch's recipe warms up before a
        capture (the capture itself runs on a side stream; lazy initialisations must happen on
        one too). The streams wait for each other, so the step sees the batch made on the current
        stream, and later work on the current stream sees the step's results."""
        stream, current = self._graph_stream, torch.cuda.current_stream(self.device)
        stream.wait_stream(current)
        with torch.cuda.stream(stream):
            losses = self.model.training_step(batch, self.optimizers, amp=self._amp)
        current.wait_stream(stream)
        return losses

    def _capture(self, static: dict[str, Any], signature: tuple) -> _CapturedStep:
        """Capture one ``training_step`` on the static batch. Capture records kernels without
        running them: the caller replays the graph to do the step."""
        self._graph = None  # free the previous graph's memory pool before this capture
        _make_capturable(self.optimizers)
        for opt in self.optimizers.values():
            # As in PyTorch's recipe: the gradients are then allocated in the graph's pool.
            opt.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        # torch.cuda.graph synchronises the device, captures on the given side stream (the one the
        # warm-up ran on, on this Trainer's device; its default stream is made on whichever
        # device is current first) and gives the graph a private memory pool: the gradients and
        # activations allocated during capture keep their addresses for every replay.
        with torch.cuda.graph(graph, stream=self._graph_stream):
            losses = self.model.training_step(static, self.optimizers, amp=self._amp)
        self._graph = _CapturedStep(graph, signature, static, dict(losses), self._learning_rates())
        return self._graph

    def _learning_rates(self) -> tuple:
        # A tensor learning rate is read from device memory by a capturable optimiser, so only
        # its identity matters; a float is baked into the captured kernels.
        return tuple(
            id(g["lr"]) if isinstance(g["lr"], torch.Tensor) else g["lr"]
            for opt in self.optimizers.values()
            for g in opt.param_groups
        )

    def _accumulate(self, losses: Mapping[str, torch.Tensor], rows: int) -> None:
        for sums in (self._epoch_sums, self._interval_sums):
            for k, v in losses.items():
                v = v.detach().float()
                sums[k] = sums[k] + v if k in sums else v
        self._interval_steps += 1
        self._epoch_samples += rows

    def _across_ranks(self, sums: Mapping[str, torch.Tensor], *extra: float) -> tuple[dict, list]:
        """``sums`` (and the ``extra`` numbers) averaged over the ranks: one collective in a
        distributed run (every rank reaches it at the same step), the values themselves otherwise.
        Returns ``({key: float}, [extra floats])``."""
        keys = list(sums)  # insertion order: the model's, the same on every rank
        if self._dist is None:
            return {k: float(sums[k]) for k in keys}, [float(e) for e in extra]
        values = [sums[k] for k in keys]
        values += [torch.tensor(float(e), device=self.device) for e in extra]
        floats = [float(v) for v in _distributed.all_reduce_mean(values, self.world_size)]
        return dict(zip(keys, floats[: len(keys)])), floats[len(keys) :]

    def _log(self, bar, epoch: int, complete: bool = True) -> None:
        """Append the interval's mean losses to log_history; ``epoch``: the last step's (1-based).
        An incomplete interval (``fit`` returned inside it) is logged and kept going: the next
        ``fit`` replaces its entry and ends it where an uninterrupted run would."""
        steps = max(self._interval_steps, 1)
        totals, _ = self._across_ranks(self._interval_sums)
        means = {k: v / steps for k, v in totals.items()}
        self.log_history.append(
            {"step": self.global_step, "epoch": epoch, **means, "complete": complete}
        )
        diverged = [k for k, v in means.items() if not math.isfinite(v)]
        if diverged and not self._warned_non_finite:  # once: the losses are read here anyway
            self._warned_non_finite = True
            warnings.warn(
                f"non-finite loss by step {self.global_step}: {', '.join(diverged)}; the run has "
                "diverged (a lower learning rate, or precision='fp32', may help), and its "
                "checkpoints from now on hold what it diverged to",
                RuntimeWarning,
                stacklevel=3,
            )
        if complete:
            self._interval_sums, self._interval_steps = {}, 0
        if bar is not None:
            short = {k[:5]: f"{v:.3g}" for k, v in means.items() if "_" not in k}
            bar.set_postfix(short, refresh=False)

    def _epoch_entry(self, val_data, complete: bool) -> dict[str, Any]:
        steps = max(self._batch_in_epoch, 1)
        entry: dict[str, Any] = {"epoch": self.epoch + 1, "step": self.global_step}
        totals, (samples,) = self._across_ranks(self._epoch_sums, self._epoch_samples)
        entry.update({k: v / steps for k, v in totals.items()})
        samples *= self.world_size  # every rank's rows
        entry["time_s"] = self._epoch_time
        entry["samples_per_s"] = samples / self._epoch_time if self._epoch_time > 0 else 0.0
        if val_data is not None:
            entry.update({f"val_{k}": v for k, v in self.evaluate(val_data).items()})
        entry["complete"] = complete
        return entry

    def _end_epoch(self, val_data, loader: TensorLoader) -> None:
        # The entry first: its validation may raise, and must then leave the epoch as it was
        # (all its batches done, its end still to record), for a later fit to finish it.
        entry = self._epoch_entry(val_data, complete=True)
        self._epoch_loader_state = loader.state_dict()  # where the next epoch starts
        self.history.append(entry)
        for scheduler in self.schedulers.values():
            scheduler.step()
        self.epoch += 1
        self._batch_in_epoch = 0
        self._epoch_sums = {}
        self._epoch_time = 0.0
        self._epoch_samples = 0

    @contextlib.contextmanager
    def _interrupt_guard(self):
        """Defer Ctrl-C to the end of the current step (so the checkpoint is consistent); a second
        Ctrl-C raises at once. Only in the main thread, where signal handlers can be set, and not in
        a distributed run (the ranks would stop after different steps)."""
        if self._dist is not None or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGINT)

        def handler(signum, frame):
            if self._stop_requested:
                signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
                raise KeyboardInterrupt
            self._stop_requested = True

        signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def _cpu_state(state: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in state.items()}
