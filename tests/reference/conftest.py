import pytest
from reference_helpers import load_split


@pytest.fixture(scope="session")
def mnist():
    """(train, test): MNIST t10k divided 8,000 / 2,000 with seed 0."""
    return load_split()


@pytest.fixture(autouse=True)
def one_thread():
    """Run these tests on one intra-op thread: on a loaded 2-core machine two OpenMP threads
    contend with other processes and a training step gets ~40x slower; one thread keeps the slow
    tests within their budget and the results deterministic. Restored afterwards."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
