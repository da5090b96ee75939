"""Batching of in-memory tensors without per-sample Python work.

:class:`TensorLoader` replaces ``torch.utils.data.DataLoader`` for data that
fits on the device: each epoch it draws one permutation of the row indices
*on the data's device* and yields each batch as an ``index_select`` of a slice
of that permutation. Batch sizes are known on the host from ``len(data)``, so
iterating never waits on the device (no host sync per batch on CUDA).

For data-parallel training it shards each epoch (``num_replicas``, ``rank``): every replica draws
the same seeded permutation, cuts it into *global* batches of ``batch_size * num_replicas`` rows,
and yields its own contiguous block of ``batch_size`` rows of each, so that the union of the
replicas' batches of step t is the global batch of step t of a one-replica loader with batch size
``batch_size * num_replicas`` and the same seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from .._checks import positive_int
from .array_dataset import ArrayDataset

__all__ = ["TensorLoader"]

Batch = tuple[torch.Tensor, ...]


class TensorLoader:
    """Yield shuffled mini-batches of tensors held in memory.

    Args:
        data: an :class:`ArrayDataset` (batches are ``(images, labels)``), a
            tensor (batches are 1-tuples) or a sequence of tensors sharing their
            first dimension (batches are tuples in the same order).
        batch_size: rows per batch.
        shuffle: draw a fresh random permutation every epoch; otherwise rows come
            in order.
        drop_last: in finite mode, drop the final batch when it is smaller than
            ``batch_size``.
        infinite: iterate forever: the stream is the concatenation of one fresh
            permutation per pass over the data, cut into full batches of
            ``batch_size`` (a batch may straddle two passes; every row appears
            exactly once per pass). ``drop_last`` has no effect. Meant for the
            small labelled set of the semi-supervised phase, drawn with
            ``next()`` alongside the unlabelled loader; it also works when the
            data has fewer rows than ``batch_size``.
        seed: seed of the loader's own generator. ``None`` draws the seed from
            torch's global RNG when ``shuffle`` (an ordered loader draws nothing), so
            ``torch.manual_seed`` still makes runs
            reproducible.
        generator: use this :class:`torch.Generator` (on the data's device type)
            instead of creating one; ``seed`` must then be ``None``.
        device: move the data there first (default: leave it where it is).
        num_replicas: data-parallel replicas (processes) sharing each epoch (default 1).
        rank: this replica, in ``[0, num_replicas)``. Every replica must use the same data and
            seed (a shuffling sharded loader needs ``seed`` or ``generator``: a seed drawn from a
            rank's own global generator would give the replicas different permutations).
            ``batch_size`` is per replica: each epoch's permutation is cut into global batches
            of ``batch_size * num_replicas`` rows and replica r yields rows
            ``[r * batch_size, (r + 1) * batch_size)`` of each. With ``drop_last=False`` the
            epoch's last, incomplete global batch of m rows gives every replica
            ``ceil(m / num_replicas)`` rows, completed by wrapping around to the start of the
            epoch's order (as ``DistributedSampler`` pads): every replica runs the same number of
            steps on equal batch sizes, which its collectives need.

    Permutations come from ``torch.randperm`` on the data's device, so a seed
    gives the same batches every run on one device type, but CPU and CUDA
    streams differ. :meth:`state_dict` / :meth:`load_state_dict` save and
    restore the generator for resuming.

    Example::

        loader = TensorLoader(train, batch_size=100, seed=0, device="cuda")
        for epoch in range(epochs):
            for images, labels in loader:
                ...
    """

    def __init__(
        self,
        data: ArrayDataset | torch.Tensor | Sequence[torch.Tensor],
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        infinite: bool = False,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        tensors = as_tensors(data, "data")
        if not tensors:
            raise ValueError("TensorLoader needs at least one tensor")
        if device is not None:
            tensors = tuple(t.to(device) for t in tensors)
        first = tensors[0]
        for t in tensors:
            if t.dim() == 0 or t.shape[0] != first.shape[0]:
                raise ValueError(
                    "all tensors must share their first dimension, got shapes "
                    + ", ".join(str(tuple(t.shape)) for t in tensors)
                )
            if t.device != first.device:
                raise ValueError(
                    "all tensors must be on one device, got "
                    + ", ".join(str(t.device) for t in tensors)
                )
        if first.shape[0] == 0:
            raise ValueError("TensorLoader needs at least one row of data")
        batch_size = positive_int(batch_size, "batch_size")
        for name, value in (("num_replicas", num_replicas), ("rank", rank)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {value!r}")
        if num_replicas < 1:
            raise ValueError(f"num_replicas must be positive, got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must lie in [0, {num_replicas}), got {rank}")
        if num_replicas > 1 and shuffle and generator is None and seed is None:
            raise ValueError(
                "a shuffling loader sharded over several replicas needs a seed (or a generator) "
                "shared by every replica, so that they all draw the same permutation"
            )

        if generator is not None:
            if seed is not None:
                raise ValueError("pass seed or generator, not both")
            if generator.device.type != first.device.type:
                raise ValueError(
                    f"generator is on {generator.device} but the data is on {first.device}"
                )
        else:
            generator = torch.Generator(device=first.device)
            if seed is None and shuffle:
                # Only a shuffling loader consumes the global RNG: an ordered one must not perturb
                # the random stream of the code around it.
                seed = int(torch.empty((), dtype=torch.int64).random_().item())
            generator.manual_seed(0 if seed is None else seed)

        self.tensors = tensors
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.infinite = infinite
        self.generator = generator
        self.num_replicas = num_replicas
        self.rank = rank

    @property
    def device(self) -> torch.device:
        return self.tensors[0].device

    @property
    def num_samples(self) -> int:
        """Rows of data (per pass)."""
        return self.tensors[0].shape[0]

    @property
    def global_batch_size(self) -> int:
        """Rows per step over all replicas: ``batch_size * num_replicas``."""
        return self.batch_size * self.num_replicas

    @property
    def batches_per_epoch(self) -> int:
        """Batches per epoch (of this replica; every replica has as many) in finite mode;
        ``ceil(num_samples / global_batch_size)`` in infinite mode."""
        if self.drop_last and not self.infinite:
            return self.num_samples // self.global_batch_size
        return math.ceil(self.num_samples / self.global_batch_size)

    def __len__(self) -> int:
        """Batches per epoch; an infinite loader has no length (``TypeError``)."""
        if self.infinite:
            raise TypeError(
                "an infinite TensorLoader has no length; use batches_per_epoch for batches per pass"
            )
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[Batch]:
        return self._iter_infinite() if self.infinite else self._iter_epoch()

    def __repr__(self) -> str:
        shard = (
            f", num_replicas={self.num_replicas}, rank={self.rank}" if self.num_replicas > 1 else ""
        )
        return (
            f"{type(self).__name__}(num_samples={self.num_samples}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last}, infinite={self.infinite}, "
            f"device={self.device}{shard})"
        )

    def state_dict(self) -> dict[str, Any]:
        """The generator state; restoring it replays the following epochs exactly."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])

    def _order(self) -> torch.Tensor:
        n = self.num_samples
        if self.shuffle:
            return torch.randperm(n, generator=self.generator, device=self.device)
        return torch.arange(n, device=self.device)

    def _gather(self, index: torch.Tensor) -> Batch:
        return tuple(t.index_select(0, index) for t in self.tensors)

    def _shard(self, index: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
        """This replica's rows of one global batch ``index`` (a slice of the epoch's ``order``)."""
        replicas, m = self.num_replicas, index.shape[0]
        per = math.ceil(m / replicas)
        missing = per * replicas - m
        if missing:  # the last, incomplete global batch: pad from the start of the epoch's order
            repeats = math.ceil(missing / order.shape[0])
            index = torch.cat((index, order.repeat(repeats)[:missing]))
        return index[self.rank * per : (self.rank + 1) * per]

    def _iter_epoch(self) -> Iterator[Batch]:
        n, size, replicas = self.num_samples, self.batch_size, self.num_replicas
        step = size * replicas
        stop = n - n % step if self.drop_last else n
        if not self.shuffle and (replicas == 1 or stop % step == 0):
            # contiguous views, no gather at all
            for start in range(0, stop, step):
                first = start + self.rank * size
                yield tuple(t[first : first + size] for t in self.tensors)
            return
        order = self._order()
        for start in range(0, stop, step):
            index = order[start : start + step]
            yield self._gather(index if replicas == 1 else self._shard(index, order))

    def _iter_infinite(self) -> Iterator[Batch]:
        size = self.batch_size
        step = size * self.num_replicas
        first = self.rank * size
        pending = self._order()
        while True:
            while pending.shape[0] < step:
                pending = torch.cat((pending, self._order()))
            yield self._gather(pending[first : first + size])
            pending = pending[step:]


def as_tensors(data: Any, name: str) -> tuple[torch.Tensor, ...]:
    """``data`` (an ArrayDataset, a tensor, or a tuple or list of tensors) as a tuple of tensors, or
    a TypeError naming ``name``, what it takes and what it got."""
    if isinstance(data, ArrayDataset):
        return data.tensors
    if isinstance(data, torch.Tensor):
        return (data,)
    if isinstance(data, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in data):
        return tuple(data)
    if isinstance(data, (tuple, list)):
        got = f"a {type(data).__name__} of {', '.join(sorted({type(t).__name__ for t in data}))}"
    else:
        got = f"a {type(data).__name__}"
    hint = ""
    if isinstance(data, torch.utils.data.DataLoader):
        hint = ("; a torch DataLoader is not taken: the data stays on the device as tensors and "
                "batches are gathered by index, so pass the tensors themselves (e.g. its "
                "TensorDataset's .tensors)")
    raise TypeError(
        f"{name} must be an ArrayDataset, a tensor or a tuple of tensors (sharing their first "
        f"dimension), got {got}{hint}"
    )
