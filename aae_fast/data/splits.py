"""Deterministic, seeded splits and subsets of an :class:`ArrayDataset`.

Every function draws its randomness from a CPU :class:`torch.Generator` seeded
with ``seed``, so the result depends only on the seed and the data set's size
(and labels), never on the device the data lives on or on the global RNG.
Selected indices are kept in ascending order, so a split preserves the
original order of the rows it keeps.
"""

from __future__ import annotations

import torch

from .array_dataset import ArrayDataset

__all__ = ["labelled_subset", "split_indices", "train_test_split", "validation_split"]


def _generator(seed: int) -> torch.Generator:
    generator = torch.Generator(device="cpu")
    generator.manual_seed(seed)
    return generator


def _count(size: int | float, n: int, what: str) -> int:
    if isinstance(size, float):
        if not 0.0 < size < 1.0:
            raise ValueError(f"{what} as a fraction must lie in (0, 1), got {size}")
        count = round(size * n)
    else:
        count = int(size)
    if not 0 < count < n:
        raise ValueError(f"{what} must leave both parts non-empty: got {size} of {n} examples")
    return count


def split_indices(n: int, size: int | float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``range(n)`` at random into ``(rest, held_out)``, each sorted ascending.

    Args:
        n: number of examples.
        size: the held-out part: a count, or a fraction of ``n`` in ``(0, 1)``.
        seed: seed of the permutation.

    Returns:
        Two int64 CPU tensors that partition ``range(n)``; ``held_out`` has
        ``size`` entries.
    """
    count = _count(size, n, "size")
    permutation = torch.randperm(n, generator=_generator(seed))
    held_out = permutation[:count].sort().values
    rest = permutation[count:].sort().values
    return rest, held_out


def train_test_split(
    dataset: ArrayDataset, test_size: int | float, seed: int = 0
) -> tuple[ArrayDataset, ArrayDataset]:
    """Split one set of arrays into a training and a test set, at random (seeded).

    ``train_test_split(load_dataset("mnist:DIR", "test"), test_size=2000, seed=0)``
    gives the project's 8,000/2,000 split of MNIST t10k.

    Args:
        dataset: the data to split.
        test_size: number of test examples, or a fraction in ``(0, 1)``.
        seed: seed of the split.

    Returns:
        ``(train, test)``, disjoint and together covering ``dataset``.
    """
    train, test = split_indices(len(dataset), test_size, seed)
    return dataset.subset(train), dataset.subset(test)


def validation_split(
    dataset: ArrayDataset, size: int | float, seed: int = 0
) -> tuple[ArrayDataset, ArrayDataset]:
    """Hold out a random validation set of ``size`` examples from ``dataset``.

    Returns:
        ``(train, validation)``, disjoint and together covering ``dataset``.
    """
    train, validation = split_indices(len(dataset), size, seed)
    return dataset.subset(train), dataset.subset(validation)


def labelled_subset(
    dataset: ArrayDataset, labels_per_class: int, seed: int = 0
) -> tuple[ArrayDataset, torch.Tensor]:
    """Pick exactly ``labels_per_class`` random examples of every class.

    This is the labelled set of the semi-supervised experiments (e.g. 100
    labels per class).

    Args:
        dataset: the data; classes are ``0 .. dataset.num_classes - 1``.
        labels_per_class: examples to keep per class (positive).
        seed: seed of the choice.

    Returns:
        ``(subset, indices)``: ``indices`` is an ascending int64 CPU tensor of
        ``labels_per_class * num_classes`` rows of ``dataset``, and ``subset``
        is ``dataset.subset(indices)``.

    Raises:
        ValueError: some class has fewer than ``labels_per_class`` examples
            (the message lists them), or a label is out of range.
    """
    if labels_per_class < 1:
        raise ValueError(f"labels_per_class must be positive, got {labels_per_class}")
    num_classes = dataset.num_classes
    labels = dataset.labels.cpu()
    n = labels.shape[0]
    if n and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        low, high = int(labels.min()), int(labels.max())
        raise ValueError(f"labels must lie in [0, {num_classes}), found [{low}, {high}]")
    counts = torch.bincount(labels, minlength=num_classes)
    short = (counts < labels_per_class).nonzero().flatten().tolist()
    if short:
        detail = ", ".join(f"class {c} has {int(counts[c])}" for c in short)
        raise ValueError(
            f"labelled_subset needs {labels_per_class} examples of each of {num_classes} "
            f"classes in {dataset.name!r}, but {detail}"
        )
    # One random permutation, then a stable sort by label: within each class the
    # examples appear in random order, and the first K of each class are taken.
    permutation = torch.randperm(n, generator=_generator(seed))
    by_class = permutation[torch.sort(labels[permutation], stable=True).indices]
    starts = torch.cumsum(counts, 0) - counts
    positions = (starts[:, None] + torch.arange(labels_per_class)).flatten()
    indices = by_class[positions].sort().values
    return dataset.subset(indices), indices
