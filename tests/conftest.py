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


@pytest.fixture
def repo_root() -> str:
    return REPO


def devices() -> list[str]:
    """Devices the parametrised tests run on: CPU always, CUDA when present."""
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
