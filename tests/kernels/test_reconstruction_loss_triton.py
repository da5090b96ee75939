"""The Triton reconstruction-loss kernels (kernels/reconstruction_loss.py) against a float64
reference: per-row sum of F.binary_cross_entropy_with_logits or squared error, mean over rows.

Without CUDA the kernels run under the Triton interpreter (tests/conftest.py sets TRITON_INTERPRET=1
before triton is imported), on CPU tensors; bfloat16 runs on a GPU only.
"""

import os

import pytest
import torch
import torch.nn.functional as F

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip(
        "Triton needs a CUDA device, or TRITON_INTERPRET=1 set before triton is imported "
        "(tests/conftest.py does that when no CUDA device is present)",
        allow_module_level=True,
    )
pytest.importorskip("triton")

try:  # the source tree (rootdir on sys.path), else the installed package
    from kernels import reconstruction_loss as kr
except ImportError:  # pragma: no cover
    from aae_fast.kernels import reconstruction_loss as kr

DEVICE = "cuda" if HAS_CUDA else "cpu"
DTYPES = {
    torch.float32: (1e-5, 1e-7),
    torch.float64: (1e-12, 1e-15),
    torch.float16: (1e-5, 1e-7),
}
if HAS_CUDA:
    DTYPES[torch.bfloat16] = (1e-5, 1e-7)
GRAD_RTOL = {torch.float16: 1e-3, torch.bfloat16: 8e-3}
KINDS = ["bce", "mse"]


def inputs(shape, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    output = torch.randn(shape, generator=g, dtype=torch.float64) * 3
    target = torch.rand(shape, generator=g, dtype=torch.float64)
    return output.to(device=DEVICE, dtype=dtype), target.to(device=DEVICE, dtype=dtype)


def reference(output, target, kind):
    o = output.detach().double().cpu().requires_grad_()
    t = target.detach().double().cpu().requires_grad_()
    if kind == "bce":
        per_element = F.binary_cross_entropy_with_logits(o, t, reduction="none")
    else:
        per_element = (o - t) ** 2
    loss = per_element.sum(dim=1).mean()
    grad_o, grad_t = torch.autograd.grad(loss, [o, t])
    return loss.detach(), grad_o, grad_t


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (17, 784), (100, 1000)])
def test_forward_and_backward_match_float64_reference(dtype, kind, shape):
    rtol, atol = DTYPES[dtype]
    output, target = inputs(shape, dtype, seed=shape[0] + shape[1])
    loss = kr.reconstruction_loss_fwd(output, target, kind)
    assert loss.shape == () and loss.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    ref, ref_o, ref_t = reference(output, target, kind)
    torch.testing.assert_close(loss.double().cpu(), ref, rtol=rtol, atol=atol)

    grad = torch.tensor(0.5, device=DEVICE)
    grad_o, grad_t = kr.reconstruction_loss_bwd(grad, output, target, kind, [True, True])
    assert grad_o.dtype == dtype and grad_o.shape == shape
    grad_rtol = GRAD_RTOL.get(dtype, rtol)
    torch.testing.assert_close(grad_o.double().cpu(), 0.5 * ref_o, rtol=grad_rtol, atol=atol)
    torch.testing.assert_close(grad_t.double().cpu(), 0.5 * ref_t, rtol=grad_rtol, atol=atol)


def test_output_mask_and_non_contiguous_inputs():
    output, target = inputs((40, 30), torch.float32, seed=1)
    o, t = output.t(), target.t()
    grad_o, grad_t = kr.reconstruction_loss_bwd(torch.tensor(1.0, device=DEVICE), o, t, "bce", [True, False])
    assert grad_t.shape == (0,) and grad_o.shape == (30, 40)
    _, ref_o, _ = reference(o, t, "bce")
    torch.testing.assert_close(grad_o.double().cpu(), ref_o, rtol=1e-5, atol=1e-7)
    assert torch.equal(kr.reconstruction_loss_fwd(o, t, "mse"), kr.reconstruction_loss_fwd(o, t, "mse"))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # 0 / 0 in numpy
def test_zero_rows_nan_zero_features_zero_and_huge_logits():
    assert torch.isnan(kr.reconstruction_loss_fwd(torch.empty(0, 4, device=DEVICE), torch.empty(0, 4, device=DEVICE), "bce"))
    assert kr.reconstruction_loss_fwd(torch.empty(3, 0, device=DEVICE), torch.empty(3, 0, device=DEVICE), "mse").item() == 0.0
    output = torch.tensor([[1e4, -1e4], [-1e4, 1e4]], device=DEVICE)
    target = torch.tensor([[1.0, 0.0], [0.5, 0.25]], device=DEVICE)
    ref, ref_o, _ = reference(output, target, "bce")
    torch.testing.assert_close(kr.reconstruction_loss_fwd(output, target, "bce").double().cpu(), ref, rtol=1e-6, atol=0)
    grad_o, _ = kr.reconstruction_loss_bwd(torch.tensor(1.0, device=DEVICE), output, target, "bce", [True, False])
    torch.testing.assert_close(grad_o.double().cpu(), ref_o, rtol=1e-6, atol=0)


def test_bad_inputs():
    x = torch.zeros(2, 3, device=DEVICE)
    with pytest.raises(ValueError, match="kind must be 'bce' or 'mse'"):
        kr.reconstruction_loss_fwd(x, x, "l2")
    with pytest.raises(ValueError, match=r"output must have shape \[B, F\]"):
        kr.reconstruction_loss_fwd(x.flatten(), x.flatten(), "mse")
    with pytest.raises(ValueError, match="target must match output's shape"):
        kr.reconstruction_loss_fwd(x, x[:, :2], "mse")
