"""The data layer shared by the reference and the fused models.

- :mod:`~aae_fast.data.idx`: IDX file reader/writer (raw and gzip).
- :mod:`~aae_fast.data.array_dataset`: :class:`ArrayDataset`, images and labels as tensors.
- :mod:`~aae_fast.data.datasets`: :func:`load_dataset` for Fashion-MNIST, MNIST and IDX directories.
- :mod:`~aae_fast.data.splits`: seeded train/test, validation and balanced labelled subsets.
- :mod:`~aae_fast.data.loader`: :class:`TensorLoader`, device-side shuffled batching.

Example::

    from aae_fast.data import load_dataset, train_test_split, labelled_subset, TensorLoader

    train = load_dataset("fashion-mnist", "train", device="cuda")
    labelled, _ = labelled_subset(train, labels_per_class=100, seed=0)
    unlabelled_batches = TensorLoader(train, batch_size=100, seed=0)
    labelled_batches = iter(TensorLoader(labelled, batch_size=100, seed=1, infinite=True))
"""

from .array_dataset import ArrayDataset
from .datasets import (
    FASHION_MNIST_DIR,
    KNOWN_DATASETS,
    find_idx_files,
    load_dataset,
    resolve_data_dir,
)
from .idx import IDX_DTYPES, IDXFormatError, parse_idx, read_idx, read_idx_tensor, write_idx
from .loader import TensorLoader
from .splits import labelled_subset, split_indices, train_test_split, validation_split

__all__ = [
    "FASHION_MNIST_DIR",
    "IDX_DTYPES",
    "KNOWN_DATASETS",
    "ArrayDataset",
    "IDXFormatError",
    "TensorLoader",
    "find_idx_files",
    "labelled_subset",
    "load_dataset",
    "parse_idx",
    "read_idx",
    "read_idx_tensor",
    "resolve_data_dir",
    "split_indices",
    "train_test_split",
    "validation_split",
    "write_idx",
]
