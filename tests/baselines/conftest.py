import os

import pytest
import torch

from aae_fast.data import load_dataset, train_test_split


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    """(train, test): MNIST t10k divided 8,000 / 2,000 with seed 0 (the loaders' split)."""
    if not os.path.isdir(mnist_dir):
        pytest.fail(f"the MNIST test set is missing at {mnist_dir} (set AAE_FAST_MNIST_DIR)")
    return train_test_split(load_dataset(f"mnist:{mnist_dir}", "test"), test_size=2000, seed=0)


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: steady timings and results on a loaded 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
