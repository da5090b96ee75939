"""The Triton adversarial-loss kernels (kernels/adversarial_loss.py) against a float64 reference
written with F.binary_cross_entropy_with_logits.

Without CUDA the kernels run under the Triton interpreter (tests/conftest.py sets TRITON_INTERPRET=1
before triton is imported), on CPU tensors; the interpreter has no bfloat16, so bfloat16 runs on a
GPU only.
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
    from kernels import adversarial_loss as kl
except ImportError:  # pragma: no cover
    from aae_fast.kernels import adversarial_loss as kl

DEVICE = "cuda" if HAS_CUDA else "cpu"
# dtype -> (rtol, atol) against float64; 16-bit inputs are rounded first, so only the float32
# compute and the rounding of 16-bit gradients remain.
DTYPES = {
    torch.float32: (1e-5, 1e-7),
    torch.float64: (1e-12, 1e-15),
    torch.float16: (1e-5, 1e-7),
}
if HAS_CUDA:
    DTYPES[torch.bfloat16] = (1e-5, 1e-7)
GRAD_RTOL = {torch.float16: 1e-3, torch.bfloat16: 8e-3}


def logits(n, dtype, seed, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, generator=g, dtype=torch.float64) * scale).to(device=DEVICE, dtype=dtype)


def reference_terms(x, target):
    x = x.detach().double().cpu().requires_grad_()
    loss = F.binary_cross_entropy_with_logits(x, torch.full_like(x, target))
    (grad,) = torch.autograd.grad(loss, [x])
    return loss.detach(), grad


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("n_real, n_fake", [(1, 3), (17, 100), (1000, 999), (10_000, 4097)])
def test_d_loss_forward_and_backward(dtype, n_real, n_fake):
    rtol, atol = DTYPES[dtype]
    real, fake = logits(n_real, dtype, seed=n_real), logits(n_fake, dtype, seed=n_fake + 1)
    loss = kl.adversarial_d_loss_fwd(real, fake)
    assert loss.shape == () and loss.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    ref_r, grad_ref_r = reference_terms(real, 1.0)
    ref_f, grad_ref_f = reference_terms(fake, 0.0)
    torch.testing.assert_close(loss.double().cpu(), ref_r + ref_f, rtol=rtol, atol=atol)

    grad = torch.tensor(1.5, device=DEVICE)
    grad_r, grad_f = kl.adversarial_d_loss_bwd(grad, real, fake)
    assert grad_r.dtype == dtype and grad_r.shape == real.shape
    grad_rtol = GRAD_RTOL.get(dtype, rtol)
    torch.testing.assert_close(grad_r.double().cpu(), 1.5 * grad_ref_r, rtol=grad_rtol, atol=atol)
    torch.testing.assert_close(grad_f.double().cpu(), 1.5 * grad_ref_f, rtol=grad_rtol, atol=atol)


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_g_loss_forward_and_backward(dtype):
    rtol, atol = DTYPES[dtype]
    fake = logits(777, dtype, seed=5).reshape(777, 1)
    loss = kl.adversarial_g_loss_fwd(fake)
    ref, grad_ref = reference_terms(fake, 1.0)
    torch.testing.assert_close(loss.double().cpu(), ref, rtol=rtol, atol=atol)
    grad = kl.adversarial_g_loss_bwd(torch.tensor(2.0, device=DEVICE), fake)
    assert grad.shape == (777, 1)
    torch.testing.assert_close(grad.double().cpu(), 2.0 * grad_ref, rtol=GRAD_RTOL.get(dtype, rtol), atol=atol)


def test_huge_logits_are_finite_and_exact():
    x = torch.tensor([1e4, -1e4, 90.0, -90.0, 0.0, 1e-9], device=DEVICE)
    loss = kl.adversarial_d_loss_fwd(x, x)
    ref_r, grad_ref_r = reference_terms(x, 1.0)
    ref_f, _ = reference_terms(x, 0.0)
    torch.testing.assert_close(loss.double().cpu(), ref_r + ref_f, rtol=1e-6, atol=0)
    grad_r, grad_f = kl.adversarial_d_loss_bwd(torch.tensor(1.0, device=DEVICE), x, None)
    assert torch.isfinite(grad_r).all() and grad_f.shape == (0,)
    torch.testing.assert_close(grad_r.double().cpu(), grad_ref_r, rtol=1e-6, atol=1e-30)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # 0 / 0 in numpy
def test_empty_logits_give_nan_and_empty_gradients():
    empty, fake = torch.empty(0, device=DEVICE), logits(5, torch.float32, seed=6)
    assert torch.isnan(kl.adversarial_d_loss_fwd(empty, fake))
    assert torch.isnan(kl.adversarial_g_loss_fwd(empty))
    assert kl.adversarial_g_loss_bwd(torch.tensor(1.0, device=DEVICE), empty).shape == (0,)


def test_deterministic_and_non_contiguous():
    base = logits(2 * 9001, torch.float32, seed=7).reshape(9001, 2)
    real, fake = base[:, 0], base[:, 1]
    first = kl.adversarial_d_loss_fwd(real, fake)
    assert torch.equal(first, kl.adversarial_d_loss_fwd(real, fake))
    torch.testing.assert_close(first, kl.adversarial_d_loss_fwd(real.contiguous(), fake.contiguous()))


def test_bad_inputs():
    with pytest.raises(ValueError, match="fake_logits must have the dtype and device of real_logits"):
        kl.adversarial_d_loss_fwd(torch.zeros(3, device=DEVICE), torch.zeros(3, device=DEVICE, dtype=torch.float64))
    with pytest.raises(ValueError, match="fake_logits must be a float32"):
        kl.adversarial_g_loss_fwd(torch.zeros(3, device=DEVICE, dtype=torch.int32))
