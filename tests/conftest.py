"""Test configuration shared by the whole suite.

Without a CUDA device, Triton kernels run under the interpreter: TRITON_INTERPRET must be set before
`triton` is first imported, so it is set here, before any test module imports aae_fast.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The MNIST test set (IDX) that CI checks out beside the clone, as ../shared/data/mnist.
MNIST_DIR = os.environ.get("AAE_FAST_MNIST_DIR", os.path.join(REPO, "..", "shared", "data", "mnist"))


@pytest.fixture
def repo_root() -> str:
    return REPO


@pytest.fixture(scope="session")
def mnist_dir() -> str:
    """MNIST_DIR (AAE_FAST_MNIST_DIR overrides it); it may be missing: fixtures say what then."""
    return MNIST_DIR


def devices() -> list[str]:
    """Devices the parametrised tests run on: CPU always, CUDA when present."""
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
