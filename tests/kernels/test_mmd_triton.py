"""The Triton MMD kernels (kernels/mmd.py) against a float64 reference from explicit differences,
and against the C++ CPU op.

Without CUDA the kernels run under the Triton interpreter (tests/conftest.py sets TRITON_INTERPRET=1
before triton is imported), with fixed blocks BLOCK_N = 16, BLOCK_M = 32, BLOCK_D = 32 and
BLOCK_DO = 32; the shapes are small and chosen to straddle those blocks (the symmetric forward
starts each row block at the column block holding its diagonal, so row blocks that do not start a
column block are the interesting case). The interpreter has no bfloat16.
"""

import math
import os

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip(
        "Triton needs a CUDA device, or TRITON_INTERPRET=1 set before triton is imported "
        "(tests/conftest.py does that when no CUDA device is present)",
        allow_module_level=True,
    )
triton = pytest.importorskip("triton")

try:  # the source tree (rootdir on sys.path), else the installed package
    from kernels import mmd as km
except ImportError:  # pragma: no cover
    from aae_fast.kernels import mmd as km

DEVICE = "cuda" if HAS_CUDA else "cpu"
BW = (0.5, 1.0, 2.0, 4.0, 8.0)

# Input dtype -> (output dtype, eps of the compute precision, eps and smallest subnormal of the
# gradient's dtype).
DTYPES = {
    torch.float32: (torch.float32, 2.0**-23, 2.0**-23, 2.0**-149),
    torch.float64: (torch.float64, 2.0**-52, 2.0**-52, 2.0**-1074),
    torch.float16: (torch.float32, 2.0**-23, 2.0**-10, 2.0**-24),
}
if HAS_CUDA:
    DTYPES[torch.bfloat16] = (torch.float32, 2.0**-23, 2.0**-7, 2.0**-133)


def make_inputs(n, m, d, dtype, seed=0, shift=0.5):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(m, d, generator=g, dtype=torch.float64) + shift
    return x.to(dtype).to(DEVICE), y.to(dtype).to(DEVICE)


def reference(x, y, bandwidths, unbiased):
    """float64 value and gradients from exact differences (autograd)."""
    x = x.detach().cpu().double().requires_grad_()
    y = y.detach().cpu().double().requires_grad_()
    n, m = x.shape[0], y.shape[0]

    def ksum(a, b, same):
        d2 = (a[:, None, :] - b[None, :, :]).square().sum(-1)
        k = sum(torch.exp(-d2 / (2 * s * s)) for s in bandwidths)
        if same and unbiased:
            k = k * (1 - torch.eye(len(a), dtype=k.dtype))
        return k.sum()

    wxx = 1 / (n * (n - 1 if unbiased else n))
    wyy = 1 / (m * (m - 1 if unbiased else m))
    value = wxx * ksum(x, x, True) + wyy * ksum(y, y, True) - 2 / (n * m) * ksum(x, y, False)
    gx, gy = torch.autograd.grad(value, (x, y))
    return value.detach(), gx, gy


def error_bounds(x, y, bandwidths, unbiased, eps, safety=8.0):
    """(value atol, grad_x atol [N, 1], grad_y atol [M, 1]): the op's error model, pair by pair in
    float64 (the same as tests/ops/test_mmd.py): a squared distance ||a||^2 + ||b||^2 - 2 a.b has an
    absolute error of about sqrt(D + 1) eps (||a||^2 + ||b||^2) (0 for a point with itself), which a kernel
    term exp(-d2 h) turns into h exp(-d2 h) times that; the sums add eps relative."""
    x, y = x.detach().cpu().double(), y.detach().cpu().double()
    n, m = x.shape[0], y.shape[0]
    wxx = 1 / (n * (n - 1 if unbiased else n))
    wyy = 1 / (m * (m - 1 if unbiased else m))
    wxy = 2 / (n * m)
    hs = [0.5 / s / s for s in bandwidths]

    def terms(a, b, same):
        d2 = (a[:, None, :] - b[None, :, :]).square().sum(-1)
        err = eps * math.sqrt(a.shape[1] + 1) * (a.square().sum(1)[:, None] + b.square().sum(1)[None, :] + d2)
        if same:
            err.fill_diagonal_(0.0)
        e = [torch.exp(-d2 * h) for h in hs]
        dk = sum(h * ei for h, ei in zip(hs, e)) * err
        diff = (a[:, None, :] - b[None, :, :]).abs().amax(-1)
        big = a.abs().amax(1)[:, None] + b.abs().amax(1)[None, :]
        dg = sum(2 * h * h * ei for h, ei in zip(hs, e)) * err * diff + sum(2 * h * ei for h, ei in zip(hs, e)) * eps * big
        return dk + eps * sum(e), dg

    vxx, gxx = terms(x, x, True)
    vyy, gyy = terms(y, y, True)
    vxy, gxy = terms(x, y, False)
    value = wxx * vxx.sum() + wyy * vyy.sum() + wxy * vxy.sum()
    gx = 2 * wxx * gxx.sum(1, keepdim=True) + wxy * gxy.sum(1, keepdim=True)
    gy = 2 * wyy * gyy.sum(1, keepdim=True) + wxy * gxy.sum(0)[:, None]
    return safety * value.item(), safety * gx, safety * gy


def assert_matches(value, grads, x, y, bandwidths, unbiased, dtype):
    out_dtype, eps, eps_out, tiny_out = DTYPES[dtype]
    ref, gx, gy = reference(x, y, bandwidths, unbiased)
    assert value.dtype == out_dtype and value.dim() == 0 and value.device.type == DEVICE
    atol, bx, by = error_bounds(x, y, bandwidths, unbiased, eps)
    assert abs(value.item() - ref.item()) <= atol, (value.item(), ref.item(), atol)
    for got, want, t, bound in zip(grads, (gx, gy), (x, y), (bx, by)):
        assert got.dtype == t.dtype and got.shape == t.shape and got.is_contiguous()
        tol = bound + 8 * (eps_out * want.abs() + tiny_out)
        err = (got.cpu().double() - want).abs()
        assert (err <= tol).all(), f"worst error {err.max().item():.3g}, tolerance there {tol.flatten()[err.argmax()].item():.3g}"


# Shapes around the interpreter's blocks (16 rows, 32 columns, 32 features, 32 output features).
SHAPES = [(1, 1, 1), (3, 17, 7), (17, 3, 33), (33, 20, 40), (48, 5, 3)]


# The unbiased estimate needs N, M >= 2.
CASES = [(n, m, d, u) for n, m, d in SHAPES for u in (False, True) if not (u and min(n, m) < 2)]


@pytest.mark.parametrize("dtype", list(DTYPES), ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("n, m, d, unbiased", CASES)
def test_matches_float64_reference(n, m, d, unbiased, dtype):
    x, y = make_inputs(n, m, d, dtype, seed=n + 3 * m + 7 * d)
    value = km.mmd_fwd(x, y, BW, unbiased)
    grads = km.mmd_bwd(torch.tensor(1.0, device=DEVICE), x, y, BW, unbiased, (True, True))
    assert_matches(value, grads, x, y, BW, unbiased, dtype)


def test_zero_for_identical_sets_and_grad_scaling():
    x, _ = make_inputs(40, 1, 6, torch.float32, seed=1)
    assert abs(km.mmd_fwd(x, x.flip(0), BW).item()) < 1e-5
    _, y = make_inputs(1, 30, 6, torch.float32, seed=2)
    gx, gy = km.mmd_bwd(torch.tensor(1.0, device=DEVICE), x, y, BW)
    gx2, gy2 = km.mmd_bwd(torch.tensor(-3.0, device=DEVICE), x, y, BW)
    torch.testing.assert_close(gx2, -3 * gx)
    torch.testing.assert_close(gy2, -3 * gy)
    only_y = km.mmd_bwd(torch.tensor(1.0, device=DEVICE), x, y, BW, False, (False, True))
    assert only_y[0].shape == (0,)
    torch.testing.assert_close(only_y[1], gy)


def test_strided_inputs_and_zero_dimension():
    base_x, base_y = make_inputs(20, 40, 2 * 19, torch.float32, seed=3)
    x = base_x[:, ::2]
    y = base_y[:, 1::2].t().contiguous().t()  # column-major
    value = km.mmd_fwd(x, y, (0.7, 3.0), True)
    grads = km.mmd_bwd(torch.tensor(1.0, device=DEVICE), x, y, (0.7, 3.0), True)
    assert_matches(value, grads, x, y, (0.7, 3.0), True, torch.float32)
    z = torch.zeros(3, 0, device=DEVICE)
    assert km.mmd_fwd(z, torch.zeros(4, 0, device=DEVICE), BW).item() == 0.0
    gz = km.mmd_bwd(torch.tensor(1.0, device=DEVICE), z, torch.zeros(4, 0, device=DEVICE), BW)
    assert gz[0].shape == (3, 0) and gz[1].shape == (4, 0)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda x, y: (x[0], y, BW), "x must have shape"),
        (lambda x, y: (x, y[:, :2], BW), "y must have the dimension D"),
        (lambda x, y: (x, y.double(), BW), "y must have the dtype of x"),
        (lambda x, y: (x[:0], y, BW), "x must hold at least 1"),
        (lambda x, y: (x.int(), y.int(), BW), "x must be float32"),
        (lambda x, y: (x, y, ()), "bandwidths must hold at least one"),
        (lambda x, y: (x, y, (1.0, 0.0)), "bandwidths must be finite numbers > 0, got 0 at index 1"),
    ],
)
def test_bad_arguments(mutate, message):
    x, y = make_inputs(4, 6, 3, torch.float32)
    with pytest.raises(ValueError, match=message):
        km.mmd_fwd(*mutate(x, y))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
def test_matches_cpp_cpu_op(dtype):
    try:
        import aae_fast
    except Exception as e:  # pragma: no cover
        pytest.skip(f"aae_fast does not import: {e!r}")
    if aae_fast.backend_info()["ops"]["mmd"]["cpu"] != "cpp":
        pytest.skip("the C++ CPU kernel is not loaded (the op runs its composite fallback)")
    x, y = make_inputs(37, 41, 9, dtype, seed=5)
    g = torch.tensor(0.5, device=DEVICE, dtype=dtype)
    value = km.mmd_fwd(x, y, BW, True)
    grads = km.mmd_bwd(g, x, y, BW, True)
    want = torch.ops.aae_fast.mmd(x.cpu(), y.cpu(), list(BW), True)
    want_grads = torch.ops.aae_fast.mmd_backward(g.cpu(), x.cpu(), y.cpu(), list(BW), True, [True, True])
    eps = DTYPES[dtype][1]
    torch.testing.assert_close(value.cpu(), want, rtol=0, atol=1e3 * eps)
    for got, w in zip(grads, want_grads):
        torch.testing.assert_close(got.cpu(), w, rtol=1e3 * eps, atol=1e3 * eps * w.abs().max().item())
