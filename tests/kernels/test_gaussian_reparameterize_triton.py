"""The Triton reparameterisation kernels (kernels/gaussian_reparameterize.py) against the float64
oracle of the Philox stream (aae_fast.ops._stream). Without CUDA they run under the Triton
interpreter (tests/conftest.py sets TRITON_INTERPRET=1 before triton is imported); shapes are small.
"""

import os
import sys

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip(
        "Triton needs a CUDA device, or TRITON_INTERPRET=1 set before triton is imported "
        "(tests/conftest.py does that when no CUDA device is present)",
        allow_module_level=True,
    )
pytest.importorskip("triton")

import aae_fast  # noqa: E402,F401

try:  # the source tree (rootdir on sys.path), else the installed package
    from kernels import gaussian_reparameterize as kr
except ImportError:  # pragma: no cover
    from aae_fast.kernels import gaussian_reparameterize as kr

rep = sys.modules["aae_fast.ops.gaussian_reparameterize"]
DEVICE = "cuda" if HAS_CUDA else "cpu"
DTYPES = [
    (torch.float64, 1e-12, 1e-12),
    (torch.float32, 1e-5, 1e-5),
    (torch.float16, 1e-4, 1e-3),
    (torch.bfloat16, 1e-3, 8e-3),
]


@pytest.mark.parametrize("dtype, atol, rtol", DTYPES)
@pytest.mark.parametrize("B, D", [(1, 1), (3, 7), (17, 8), (70, 33)])
def test_triton_forward_and_backward_match_float64_oracle(dtype, atol, rtol, B, D):
    g = torch.Generator().manual_seed(B * 100 + D)
    mu = (torch.randn(B, D, generator=g, dtype=torch.float64) * 2).to(dtype)
    logvar = torch.randn(B, D, generator=g, dtype=torch.float64).to(dtype)
    grad = torch.randn(B, D, generator=g, dtype=torch.float64).to(dtype)
    state = torch.tensor([987654321, 2**32 - 9], dtype=torch.int64)
    z, saved = kr.gaussian_reparameterize_fwd(state.to(DEVICE), mu.to(DEVICE), logvar.to(DEVICE))
    grad_logvar = kr.gaussian_reparameterize_bwd(grad.to(DEVICE), state.to(DEVICE), logvar.to(DEVICE))
    assert z.dtype == dtype and grad_logvar.dtype == dtype and saved.tolist() == state.tolist()
    eps = rep.stream_eps(state, B, D, torch.float64)
    scale = torch.exp(0.5 * logvar.double())
    torch.testing.assert_close(z.cpu().double(), mu.double() + scale * eps, atol=atol, rtol=rtol)
    torch.testing.assert_close(grad_logvar.cpu().double(), 0.5 * grad.double() * scale * eps, atol=atol, rtol=rtol)


def test_triton_bad_inputs():
    with pytest.raises(ValueError, match="logvar must have the shape and dtype of mu"):
        kr.gaussian_reparameterize_fwd(torch.zeros(2, dtype=torch.int64), torch.zeros(2, 3), torch.zeros(2, 2))
