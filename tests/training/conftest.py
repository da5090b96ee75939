import os

import pytest
import torch

from aae_fast.data import ArrayDataset, load_dataset

@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: fast and deterministic on a loaded 2-core machine (restored after)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def small_data(mnist_dir) -> tuple[ArrayDataset, ArrayDataset]:
    """(train, val): 1,050 and 300 MNIST t10k images (random ones when MNIST is absent)."""
    if os.path.isdir(mnist_dir):
        data = load_dataset(f"mnist:{mnist_dir}", "test")
        return data.subset(torch.arange(1050)), data.subset(torch.arange(1050, 1350))
    g = torch.Generator().manual_seed(0)
    images, labels = torch.rand(1350, 784, generator=g), torch.randint(0, 10, (1350,), generator=g)
    data = ArrayDataset(images, labels, 10)
    return data.subset(torch.arange(1050)), data.subset(torch.arange(1050, 1350))
