"""Tests of data set loading, splits and batching (aae_fast.data)."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

import aae_fast.data.datasets as datasets_module
from aae_fast.data import (
    FASHION_MNIST_DIR,
    ArrayDataset,
    IDXFormatError,
    TensorLoader,
    find_idx_files,
    labelled_subset,
    load_dataset,
    resolve_data_dir,
    split_indices,
    train_test_split,
    validation_split,
    write_idx,
)

MNIST_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mnist"
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


# --- fixtures ------------------------------------------------------------------------------------


def _require(directory: Path, files: list[str], fix: str) -> Path:
    """Real-data tests must not be skipped silently: fail, saying how to provide the data."""
    missing = [f for f in files if not (directory / f).is_file()]
    if missing:
        pytest.fail(
            f"real data missing from {directory}: {', '.join(missing)}. {fix}", pytrace=False
        )
    return directory


@pytest.fixture(scope="module")
def fashion_dir() -> Path:
    return _require(
        FASHION_MNIST_DIR,
        [
            f"{prefix}-{kind}.gz"
            for prefix in ("train", "t10k")
            for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")
        ],
        "Install it with `apt-get install dataset-fashion-mnist`.",
    )


@pytest.fixture(scope="module")
def mnist_test() -> ArrayDataset:
    _require(
        MNIST_DIR,
        ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"],
        "CI checks out shared/ beside the repository; it holds data/mnist/t10k-*.gz.",
    )
    return load_dataset(f"mnist:{MNIST_DIR}", "test")


def _synthetic(n: int, num_classes: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random 4x3 ubyte images (containing 0 and 255) with balanced shuffled labels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 4, 3), dtype=np.uint8)
    images[0, 0, 0], images[-1, -1, -1] = 0, 255
    labels = (np.arange(n) % num_classes).astype(np.uint8)
    rng.shuffle(labels)
    return images, labels


def _write_split(
    directory: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool
) -> None:
    suffix = ".gz" if gz else ""
    write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images)
    write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels)


def _dataset(n: int = 100, num_classes: int = 10, seed: int = 0) -> ArrayDataset:
    images, labels = _synthetic(n, num_classes, seed)
    return ArrayDataset(
        torch.from_numpy(images.reshape(n, -1)).float() / 255,
        torch.from_numpy(labels).long(),
        num_classes,
        "synthetic",
        (4, 3),
    )


# --- real data -----------------------------------------------------------------------------------


def test_fashion_mnist_test_split(fashion_dir: Path):
    data = load_dataset("fashion-mnist", split="test")
    assert data.name == "fashion-mnist" and data.num_classes == 10 and data.image_shape == (28, 28)
    assert data.images.shape == (10000, 784) and data.images.dtype == torch.float32
    assert data.labels.shape == (10000,) and data.labels.dtype == torch.int64
    assert data.images.min() == 0.0 and data.images.max() == 1.0
    assert torch.equal(torch.bincount(data.labels, minlength=10), torch.full((10,), 1000))
    # pixels / 255 exactly, against an independent decode of the gz file
    raw_file = gzip.decompress((fashion_dir / "t10k-images-idx3-ubyte.gz").read_bytes())
    raw = np.frombuffer(raw_file, np.uint8, offset=16)
    expected = torch.from_numpy(raw[: 784 * 50].reshape(50, 784).astype(np.float32)) / 255
    assert torch.equal(data.images[:50], expected)


def test_fashion_mnist_train_split(fashion_dir: Path):
    data = load_dataset(fashion_dir, split="train", num_classes=10)
    assert data.images.shape == (60000, 784)
    assert torch.equal(torch.bincount(data.labels, minlength=10), torch.full((10,), 6000))


def test_mnist_t10k(mnist_test: ArrayDataset):
    assert mnist_test.name == "mnist" and len(mnist_test) == 10000
    assert mnist_test.images.shape == (10000, 784)
    assert 0.0 <= mnist_test.images.min() and mnist_test.images.max() <= 1.0
    assert mnist_test.labels.min() == 0 and mnist_test.labels.max() == 9
    assert torch.bincount(mnist_test.labels).sum() == 10000


def test_mnist_has_no_train_split(mnist_test: ArrayDataset):
    with pytest.raises(FileNotFoundError, match=r"only the test split.*train_test_split"):
        load_dataset(f"mnist:{MNIST_DIR}", "train")


def test_mnist_8000_2000_split(mnist_test: ArrayDataset):
    train, test = train_test_split(mnist_test, test_size=2000, seed=0)
    assert (len(train), len(test)) == (8000, 2000)
    again, _ = train_test_split(mnist_test, test_size=2000, seed=0)
    assert torch.equal(train.images, again.images) and torch.equal(train.labels, again.labels)
    # disjoint and covering: the rows of both parts are the whole set
    rest, held = split_indices(10000, 2000, seed=0)
    assert torch.equal(torch.cat((rest, held)).sort().values, torch.arange(10000))
    assert torch.equal(test.labels, mnist_test.labels[held])
    assert set(torch.unique(test.labels).tolist()) == set(range(10))


# --- directories and names -----------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_load_idx_directory(tmp_path: Path, gz: bool):
    train_images, train_labels = _synthetic(50, seed=1)
    test_images, test_labels = _synthetic(20, seed=2)
    _write_split(tmp_path, "train", train_images, train_labels, gz)
    _write_split(tmp_path, "t10k", test_images, test_labels, gz)
    for spec in (tmp_path, str(tmp_path), f"mnist:{tmp_path}", f"fashion-mnist:{tmp_path}"):
        train = load_dataset(spec, "train")
        assert train.images.shape == (50, 12) and train.image_shape == (4, 3)
        expected = torch.from_numpy(train_images.reshape(50, 12)).float() / 255
        assert torch.equal(train.images, expected)
        assert torch.equal(train.labels, torch.from_numpy(train_labels).long())
    test = load_dataset(tmp_path, "test")
    assert test.name == tmp_path.name and test.num_classes == 10 and len(test) == 20


def test_mixed_raw_and_gz_and_dotted_names(tmp_path: Path):
    images, labels = _synthetic(30, num_classes=3)
    write_idx(tmp_path / "train-images.idx3-ubyte.gz", images)
    write_idx(tmp_path / "train-labels.idx1-ubyte", labels)
    data = load_dataset(tmp_path, "train")
    assert data.num_classes == 3  # inferred for a plain directory
    assert load_dataset(f"mnist:{tmp_path}", "train").num_classes == 10  # a named data set
    images_path, labels_path = find_idx_files(tmp_path, "train")
    assert images_path.name == "train-images.idx3-ubyte.gz"
    assert labels_path.name == "train-labels.idx1-ubyte"


def test_resolve_data_dir(tmp_path: Path):
    assert resolve_data_dir("fashion-mnist") == ("fashion-mnist", FASHION_MNIST_DIR)
    assert resolve_data_dir(f"mnist:{tmp_path}") == ("mnist", tmp_path)
    assert resolve_data_dir(str(tmp_path)) == (tmp_path.name, tmp_path)
    with pytest.raises(ValueError, match="mnist:DIR"):
        resolve_data_dir("mnist")
    with pytest.raises(ValueError, match="names no directory"):
        resolve_data_dir("mnist:")


def test_missing_directory(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"absent does not exist.*--data DIR"):
        load_dataset(f"mnist:{tmp_path / 'absent'}")


def test_missing_default_fashion_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(datasets_module, "FASHION_MNIST_DIR", tmp_path / "nowhere")
    pattern = r"nowhere does not exist.*apt-get install dataset-fashion-mnist"
    with pytest.raises(FileNotFoundError, match=pattern):
        load_dataset("fashion-mnist")


def test_missing_file_lists_candidates(tmp_path: Path):
    images, _ = _synthetic(10)
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    pattern = r"no train labels in .*train-labels-idx1-ubyte.gz.*--data"
    with pytest.raises(FileNotFoundError, match=pattern):
        load_dataset(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no test images"):
        load_dataset(tmp_path, "test")
    with pytest.raises(ValueError, match="split must be"):
        load_dataset(tmp_path, "valid")  # type: ignore[arg-type]


def test_inconsistent_files(tmp_path: Path):
    images, labels = _synthetic(10)
    _write_split(tmp_path, "train", images, labels[:9], gz=False)
    with pytest.raises(ValueError, match="holds 10 images but .* holds 9 labels"):
        load_dataset(tmp_path)
    _write_split(tmp_path, "train", images, labels + 20, gz=False)
    with pytest.raises(ValueError, match="out of range for 10 classes"):
        load_dataset(f"mnist:{tmp_path}")
    _write_split(tmp_path, "train", images.astype(np.float32), labels, gz=False)
    with pytest.raises(ValueError, match="expected ubyte images"):
        load_dataset(tmp_path)


def test_corrupt_file_propagates(tmp_path: Path):
    images, labels = _synthetic(10)
    _write_split(tmp_path, "train", images, labels, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-1]))
    with pytest.raises(IDXFormatError, match="train-images-idx3-ubyte.gz.*truncated payload"):
        load_dataset(tmp_path)


# --- ArrayDataset --------------------------------------------------------------------------------


def test_array_dataset_basics():
    data = _dataset(12)
    assert len(data) == 12 and data.num_features == 12 and data.device == torch.device("cpu")
    assert "n=12" in repr(data)
    assert data.to("cpu") is data
    half = data.to(dtype=torch.float64)
    assert half.images.dtype == torch.float64 and half.labels.dtype == torch.int64
    sub = data.subset(torch.tensor([3, 1]))
    assert torch.equal(sub.images, data.images[[3, 1]]) and sub.name == data.name


@pytest.mark.parametrize(
    "images, labels, match",
    [
        (torch.zeros(4, 12, 1), torch.zeros(4, dtype=torch.long), r"\[N, D\]"),
        (torch.zeros(4, 12, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), "floating"),
        (torch.zeros(4, 12), torch.zeros(5, dtype=torch.long), r"\[N\] = \[4\]"),
        (torch.zeros(4, 12), torch.zeros(4, dtype=torch.int32), "int64"),
        (torch.zeros(4, 10), torch.zeros(4, dtype=torch.long), "image_shape"),
    ],
)
def test_array_dataset_validation(images: torch.Tensor, labels: torch.Tensor, match: str):
    with pytest.raises(ValueError, match=match):
        ArrayDataset(images, labels, 10, image_shape=(4, 3))


# --- splits --------------------------------------------------------------------------------------


def test_split_sizes_and_fraction():
    data = _dataset(100)
    train, validation = validation_split(data, 0.25, seed=3)
    assert (len(train), len(validation)) == (75, 25)
    train2, test = train_test_split(data, 25, seed=3)
    assert torch.equal(validation.images, test.images)
    other, _ = train_test_split(data, 25, seed=4)
    assert not torch.equal(train2.images, other.images)
    for bad in (0, 100, 0.0, 1.0, -3):
        with pytest.raises(ValueError, match="size"):
            validation_split(data, bad)


def test_split_preserves_order():
    rest, held = split_indices(50, 10, seed=0)
    assert torch.all(rest[1:] > rest[:-1]) and torch.all(held[1:] > held[:-1])


@pytest.mark.parametrize("k", [1, 5, 10])
def test_labelled_subset_balanced_and_deterministic(k: int):
    data = _dataset(200, num_classes=10)
    subset, indices = labelled_subset(data, k, seed=0)
    assert len(subset) == 10 * k and indices.shape == (10 * k,) and indices.dtype == torch.int64
    assert torch.equal(torch.bincount(subset.labels, minlength=10), torch.full((10,), k))
    assert torch.equal(subset.labels, data.labels[indices])
    assert torch.equal(subset.images, data.images[indices])
    assert torch.unique(indices).numel() == indices.numel()
    assert torch.all(indices[1:] > indices[:-1])
    _, again = labelled_subset(data, k, seed=0)
    assert torch.equal(indices, again)
    _, other = labelled_subset(data, k, seed=1)
    assert not torch.equal(indices, other)


def test_labelled_subset_real_mnist(mnist_test: ArrayDataset):
    train, _ = train_test_split(mnist_test, 2000, seed=0)
    subset, indices = labelled_subset(train, 100, seed=0)
    assert torch.equal(torch.bincount(subset.labels, minlength=10), torch.full((10,), 100))
    assert torch.equal(labelled_subset(train, 100, seed=0)[1], indices)


def test_labelled_subset_too_few():
    data = _dataset(25, num_classes=10)  # classes 0-4 have 3 examples, 5-9 have 2
    with pytest.raises(ValueError, match=r"needs 3 examples .* class 5 has 2, class 6 has 2"):
        labelled_subset(data, 3)
    with pytest.raises(ValueError, match="positive"):
        labelled_subset(data, 0)


def test_labelled_subset_missing_class():
    data = _dataset(30, num_classes=3)
    data.num_classes = 4
    with pytest.raises(ValueError, match="class 3 has 0"):
        labelled_subset(data, 1)


# --- TensorLoader --------------------------------------------------------------------------------


def _epoch_rows(loader: TensorLoader) -> torch.Tensor:
    return torch.cat([rows for rows, in loader])


@pytest.mark.parametrize("n, batch_size", [(10, 3), (12, 4), (7, 10), (1, 1)])
def test_loader_covers_every_index_once(n: int, batch_size: int):
    loader = TensorLoader(torch.arange(n), batch_size, seed=0)
    assert len(loader) == -(-n // batch_size)
    for _ in range(3):
        batches = [b for b, in loader]
        assert len(batches) == len(loader)
        assert all(b.shape[0] == batch_size for b in batches[:-1])
        assert torch.equal(torch.cat(batches).sort().values, torch.arange(n))


def test_loader_reshuffles_and_is_deterministic():
    first = TensorLoader(torch.arange(100), 10, seed=7)
    second = TensorLoader(torch.arange(100), 10, seed=7)
    epochs = [_epoch_rows(first) for _ in range(2)]
    assert not torch.equal(epochs[0], epochs[1])  # a fresh permutation each epoch
    assert torch.equal(epochs[0], _epoch_rows(second))
    assert torch.equal(epochs[1], _epoch_rows(second))
    assert not torch.equal(epochs[0], _epoch_rows(TensorLoader(torch.arange(100), 10, seed=8)))


def test_loader_global_seed():
    torch.manual_seed(0)
    a = _epoch_rows(TensorLoader(torch.arange(50), 8))
    torch.manual_seed(0)
    assert torch.equal(a, _epoch_rows(TensorLoader(torch.arange(50), 8)))


def test_loader_state_dict_resumes():
    loader = TensorLoader(torch.arange(40), 8, seed=1)
    state = loader.state_dict()
    a = _epoch_rows(loader)
    loader.load_state_dict(state)
    assert torch.equal(a, _epoch_rows(loader))


def test_loader_dataset_batches_stay_aligned():
    data = _dataset(50)
    loader = TensorLoader(data, 16, seed=0)
    seen = 0
    for images, labels in loader:
        assert images.shape[1] == 12 and images.shape[0] == labels.shape[0]
        # each image row still carries its own label
        match = (data.images[:, None, :] == images[None]).all(-1).float().argmax(0)
        assert torch.equal(data.labels[match], labels)
        seen += labels.shape[0]
    assert seen == 50


def test_loader_drop_last():
    loader = TensorLoader(torch.arange(10), 3, drop_last=True, seed=0)
    assert len(loader) == 3
    batches = [b for b, in loader]
    assert len(batches) == 3 and all(b.shape[0] == 3 for b in batches)
    assert torch.unique(torch.cat(batches)).numel() == 9
    assert len(TensorLoader(torch.arange(2), 3, drop_last=True)) == 0


def test_loader_no_shuffle_yields_views_in_order():
    base = torch.arange(10)
    loader = TensorLoader((base, base * 2), 4, shuffle=False)
    batches = list(loader)
    assert torch.equal(batches[-1][0], torch.tensor([8, 9]))
    assert torch.equal(torch.cat([a for a, _ in batches]), base)
    assert batches[0][0].data_ptr() == base.data_ptr()  # a view, not a copy


@pytest.mark.parametrize("n, batch_size", [(10, 4), (10, 5), (3, 8)])
def test_loader_infinite_cycles(n: int, batch_size: int):
    loader = TensorLoader(torch.arange(n), batch_size, infinite=True, seed=0)
    with pytest.raises(TypeError, match="infinite"):
        len(loader)
    passes = 5
    stream = torch.cat([b for b, in itertools.islice(loader, passes * n // batch_size + 1)])
    assert all(b.shape[0] == batch_size for b, in itertools.islice(iter(loader), 7))
    for p in range(passes):  # each pass is a permutation of all rows
        assert torch.equal(stream[p * n : (p + 1) * n].sort().values, torch.arange(n))
    if n >= 3:
        assert not torch.equal(stream[:n], stream[n : 2 * n])  # a fresh permutation per pass


def test_loader_infinite_is_deterministic():
    def take(seed: int) -> torch.Tensor:
        loader = TensorLoader(torch.arange(30), 7, infinite=True, seed=seed)
        return torch.cat([b for b, in itertools.islice(loader, 20)])

    assert torch.equal(take(3), take(3)) and not torch.equal(take(3), take(4))


def test_loader_bad_arguments():
    with pytest.raises(ValueError, match="first dimension"):
        TensorLoader((torch.zeros(3), torch.zeros(4)), 2)
    with pytest.raises(ValueError, match="batch_size"):
        TensorLoader(torch.zeros(3), 0)
    with pytest.raises(ValueError, match="at least one row"):
        TensorLoader(torch.zeros(0), 2)
    with pytest.raises(ValueError, match="seed or generator"):
        TensorLoader(torch.zeros(3), 2, seed=1, generator=torch.Generator())


def test_loader_uses_given_generator():
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a = _epoch_rows(TensorLoader(torch.arange(20), 6, generator=g1))
    assert torch.equal(a, _epoch_rows(TensorLoader(torch.arange(20), 6, generator=g2)))


@CUDA
def test_loader_cuda():
    data = _dataset(100)
    loader = TensorLoader(data, 32, seed=0, device="cuda")
    assert loader.generator.device.type == "cuda"
    batches = list(loader)
    assert all(images.is_cuda and labels.is_cuda for images, labels in batches)
    assert sum(labels.shape[0] for _, labels in batches) == 100
    stream = TensorLoader(torch.arange(10, device="cuda"), 4, seed=0, infinite=True)
    rows = torch.cat([b for b, in itertools.islice(stream, 5)]).cpu()
    assert torch.equal(rows[:10].sort().values, torch.arange(10))


@CUDA
def test_load_dataset_to_cuda(mnist_test: ArrayDataset):
    data = load_dataset(f"mnist:{MNIST_DIR}", "test", device="cuda")
    assert data.images.is_cuda and data.labels.is_cuda
    assert torch.equal(data.images.cpu(), mnist_test.images)
    subset, indices = labelled_subset(data, 10, seed=0)
    assert torch.equal(indices, labelled_subset(mnist_test, 10, seed=0)[1])  # device-independent
    assert subset.images.is_cuda
