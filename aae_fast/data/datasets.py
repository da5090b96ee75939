"""Locating and loading MNIST-style IDX data sets into memory.

Nothing is ever downloaded. A data set is named by one of:

``"fashion-mnist"``
    the Debian package ``dataset-fashion-mnist``, installed at
    :data:`FASHION_MNIST_DIR` (``/usr/share/datasets/fashion-mnist``).
``"fashion-mnist:DIR"`` or ``"mnist:DIR"``
    a directory holding that data set's IDX files.
``DIR`` (a string or a path)
    any directory holding IDX files named like MNIST's.

A directory holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each raw or with a
``.gz`` suffix (the dotted spelling ``train-images.idx3-ubyte`` is accepted
too). A directory may hold only one split: loading the other one fails with a
:class:`FileNotFoundError` that says so. A directory holding only the test
split (like ``shared/data/mnist``) can be divided with
:func:`aae_fast.data.train_test_split`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from .array_dataset import ArrayDataset
from .idx import read_idx

__all__ = [
    "FASHION_MNIST_DIR",
    "KNOWN_DATASETS",
    "find_idx_files",
    "load_dataset",
    "resolve_data_dir",
]

#: Where the Debian package ``dataset-fashion-mnist`` installs Fashion-MNIST.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

#: Data set name -> number of classes, for the names understood before a ``:``.
KNOWN_DATASETS: dict[str, int] = {"fashion-mnist": 10, "mnist": 10}

Split = Literal["train", "test"]
_SPLIT_PREFIX: dict[str, str] = {"train": "train", "test": "t10k"}
_KINDS = (("images", 3), ("labels", 1))

_FASHION_HINT = (
    "Fashion-MNIST is read from {dir} (Debian package dataset-fashion-mnist); install it with "
    "`apt-get install dataset-fashion-mnist`, or pass a directory holding the IDX files with "
    "--data fashion-mnist:DIR (in Python: load_dataset('fashion-mnist:DIR')). "
    "Nothing is downloaded."
)
_DIR_HINT = (
    "Pass --data DIR or --data mnist:DIR (in Python: load_dataset('mnist:DIR')) naming a "
    "directory that holds train-/t10k- images and labels IDX files, raw or .gz. "
    "Nothing is downloaded."
)


def resolve_data_dir(name_or_dir: str | os.PathLike[str]) -> tuple[str, Path]:
    """Turn a data set name into ``(name, directory)``; the directory is not checked.

    ``"fashion-mnist"`` -> :data:`FASHION_MNIST_DIR`; ``"mnist:DIR"`` and
    ``"fashion-mnist:DIR"`` -> ``DIR``; any other string or path is itself the
    directory, and its final component becomes the name.
    """
    if isinstance(name_or_dir, str):
        prefix, sep, rest = name_or_dir.partition(":")
        if sep and prefix in KNOWN_DATASETS:
            if not rest:
                raise ValueError(f"{name_or_dir!r} names no directory; expected '{prefix}:DIR'")
            return prefix, Path(rest).expanduser()
        if name_or_dir == "fashion-mnist":
            return "fashion-mnist", FASHION_MNIST_DIR
        if name_or_dir == "mnist":
            raise ValueError(
                "MNIST has no default location; name its directory with 'mnist:DIR'. " + _DIR_HINT
            )
    path = Path(name_or_dir).expanduser()
    return path.name or str(path), path


def _hint(name: str, directory: Path) -> str:
    if name == "fashion-mnist":
        return _FASHION_HINT.format(dir=directory)
    return _DIR_HINT


def _candidates(split: str, kind: str, rank: int) -> list[str]:
    prefix = _SPLIT_PREFIX[split]
    stems = (f"{prefix}-{kind}-idx{rank}-ubyte", f"{prefix}-{kind}.idx{rank}-ubyte")
    return [stem + suffix for stem in stems for suffix in ("", ".gz")]


def _find(directory: Path, split: str, kind: str, rank: int) -> Path | None:
    for candidate in _candidates(split, kind, rank):
        path = directory / candidate
        if path.is_file():
            return path
    return None


def find_idx_files(
    directory: str | os.PathLike[str], split: Split = "train", *, name: str | None = None
) -> tuple[Path, Path]:
    """Find the ``(images, labels)`` IDX files of ``split`` in ``directory``.

    A raw file is preferred to a ``.gz`` one of the same name.

    Raises:
        ValueError: ``split`` is neither ``"train"`` nor ``"test"``.
        FileNotFoundError: the directory or a file is missing; the message lists
            the names looked for and how to provide them.
    """
    if split not in _SPLIT_PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    directory = Path(directory)
    name = name or directory.name
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise FileNotFoundError(
            f"{name}: data directory {directory} {what}. {_hint(name, directory)}"
        )
    found: list[Path] = []
    for kind, rank in _KINDS:
        path = _find(directory, split, kind, rank)
        if path is None:
            message = (
                f"{name}: no {split} {kind} in {directory}; looked for "
                + ", ".join(_candidates(split, kind, rank))
                + "."
            )
            other = "test" if split == "train" else "train"
            if all(_find(directory, other, k, r) is not None for k, r in _KINDS):
                message += (
                    f" The directory holds only the {other} split ({_SPLIT_PREFIX[other]}-*)."
                )
                if split == "train":
                    message += (
                        " Load split='test' and divide it with "
                        "aae_fast.data.train_test_split(dataset, test_size=2000, seed=0)."
                    )
            else:
                message += " " + _hint(name, directory)
            raise FileNotFoundError(message)
        found.append(path)
    return found[0], found[1]


def load_dataset(
    name_or_dir: str | os.PathLike[str] = "fashion-mnist",
    split: Split = "train",
    *,
    device: torch.device | str | None = None,
    num_classes: int | None = None,
) -> ArrayDataset:
    """Load one split of an MNIST-style data set into memory.

    Args:
        name_or_dir: ``"fashion-mnist"``, ``"fashion-mnist:DIR"``,
            ``"mnist:DIR"`` or a directory (see the module docstring). A name
            wins over a same-named relative directory; write ``./fashion-mnist``
            for the latter.
        split: ``"train"`` (``train-*`` files) or ``"test"`` (``t10k-*`` files).
        device: where to put the tensors (default CPU). Pixels are moved as
            bytes and converted on the device.
        num_classes: number of classes; default 10 for the named data sets and
            ``max(label) + 1`` for a plain directory.

    Returns:
        An :class:`ArrayDataset` with ``images`` ``[N, H*W]`` float32 equal to
        ``pixels / 255`` (so in ``[0, 1]``) and ``labels`` ``[N]`` int64.

    Raises:
        FileNotFoundError: the directory or a file is missing (the message says
            what was looked for and how to provide it).
        IDXFormatError: a file is corrupt or truncated.
        ValueError: the files disagree (counts, dtypes, label range).
    """
    name, directory = resolve_data_dir(name_or_dir)
    images_path, labels_path = find_idx_files(directory, split, name=name)
    images = read_idx(images_path)
    labels = read_idx(labels_path)

    if images.dtype != np.uint8 or images.ndim < 2:
        raise ValueError(
            f"{images_path}: expected ubyte images of shape [N, H, W], got {images.dtype} "
            f"of shape {images.shape}"
        )
    if labels.dtype.kind not in "iu" or labels.ndim != 1:
        raise ValueError(
            f"{labels_path}: expected integer labels of shape [N], got {labels.dtype} "
            f"of shape {labels.shape}"
        )
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
            f"{labels.shape[0]} labels"
        )
    if labels.size and int(labels.min()) < 0:
        raise ValueError(f"{labels_path}: labels must be non-negative, found {int(labels.min())}")
    top = int(labels.max()) + 1 if labels.size else 0
    if num_classes is None:
        num_classes = KNOWN_DATASETS.get(name, max(top, 1))
    if top > num_classes:
        raise ValueError(
            f"{labels_path}: label {top - 1} is out of range for {num_classes} classes"
        )

    n = images.shape[0]
    pixels = torch.from_numpy(images.reshape(n, -1)).to(device)
    return ArrayDataset(
        images=pixels.to(torch.float32).div_(255.0),
        labels=torch.from_numpy(labels).to(device=device, dtype=torch.int64),
        num_classes=num_classes,
        name=name,
        image_shape=tuple(images.shape[1:]),
    )
