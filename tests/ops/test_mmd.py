"""af.ops.mmd (and its backward op) against a float64 reference from explicit differences, on odd
shapes and every dtype; zero for identical sets, positive otherwise; gradients (the reference's
autograd, torch.autograd.gradcheck); opcheck; torch.compile forward and backward; strides, zero
sizes, bad inputs, thread-count determinism and the pure-PyTorch fallback. The Triton kernel:
tests/kernels/test_mmd_triton.py; the C++ kernel alone: tests/cpp/test_mmd.cpp.

Tolerances follow the op's error model rather than a guessed constant. The kernels compute a
squared distance as ||a||^2 + ||b||^2 - 2 a.b, with an absolute error of about
sqrt(D + 1) eps (||a||^2 + ||b||^2) in the compute precision (the GEMM's rounding of a.b grows like
sqrt(D); float32 for float32/float16/bfloat16 inputs, which the reference sees already rounded;
float64 for float64; exactly 0 for a point with itself), so a kernel term exp(-d2 h) moves by about
h exp(-d2 h) times that; the sums add eps relative. `error_bounds` evaluates that model pair by pair
in float64, with a safety factor of 8; a gradient term w (z - a) gets |dw| |z - a| plus the
rounding of the (W' z)_i - a_i (W' 1)_i products, w eps (|z| + |a|); 16-bit gradients add their own
rounding (and float16's subnormal spacing).
"""

import importlib
import json
import math
import os
import subprocess
import sys

import pytest
import torch

import aae_fast as af

OPS = torch.ops.aae_fast
MODULE = importlib.import_module("aae_fast.ops.mmd")
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
BW = (0.5, 1.0, 2.0, 4.0, 8.0)

# Input dtype -> (output dtype, eps of the compute precision, eps of the gradient's dtype, the
# gradient dtype's smallest subnormal: gradients of 1e-5 are subnormal in float16).
DTYPES = {
    torch.float32: (torch.float32, 2.0**-23, 2.0**-23, 2.0**-149),
    torch.float64: (torch.float64, 2.0**-52, 2.0**-52, 2.0**-1074),
    torch.float16: (torch.float32, 2.0**-23, 2.0**-10, 2.0**-24),
    torch.bfloat16: (torch.float32, 2.0**-23, 2.0**-7, 2.0**-133),
}
SAFETY = 8.0


def make_inputs(n, m, d, dtype, device="cpu", seed=0, shift=0.5):
    """x ~ N(0, I), y ~ N(shift, I), rounded to dtype (the reference sees the rounded values)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(m, d, generator=g, dtype=torch.float64) + shift
    return x.to(dtype).to(device), y.to(dtype).to(device)


def weights(n, m, unbiased):
    return (1 / (n * (n - 1 if unbiased else n)), 1 / (m * (m - 1 if unbiased else m)), 2 / (n * m))


def sq_dist64(a, b):
    return (a[:, None, :] - b[None, :, :]).square().sum(-1)


def reference(x, y, bandwidths=BW, unbiased=False):
    """float64 MMD^2 from exact differences; differentiable (for the reference gradients)."""
    x, y = x.double(), y.double()
    n, m = x.shape[0], y.shape[0]

    def ksum(a, b, same):
        d2 = sq_dist64(a, b)
        k = sum(torch.exp(-d2 / (2 * s * s)) for s in bandwidths)
        if same and unbiased:
            k = k * (1 - torch.eye(len(a), dtype=k.dtype, device=k.device))
        return k.sum()

    wxx, wyy, wxy = weights(n, m, unbiased)
    return wxx * ksum(x, x, True) + wyy * ksum(y, y, True) - wxy * ksum(x, y, False)


def reference_with_grads(x, y, bandwidths=BW, unbiased=False):
    xr = x.detach().cpu().double().requires_grad_()
    yr = y.detach().cpu().double().requires_grad_()
    value = reference(xr, yr, bandwidths, unbiased)
    gx, gy = torch.autograd.grad(value, (xr, yr))
    return value.detach(), gx, gy


def error_bounds(x, y, bandwidths, unbiased, eps):
    """(value atol, grad_x atol [N, 1], grad_y atol [M, 1]) of the error model (module docstring)."""
    x, y = x.detach().cpu().double(), y.detach().cpu().double()
    n, m = x.shape[0], y.shape[0]
    wxx, wyy, wxy = weights(n, m, unbiased)
    hs = [0.5 / s / s for s in bandwidths]
    nx, ny = x.square().sum(1), y.square().sum(1)

    def pair_terms(a, na, b, nb, same):
        delta = a[:, None, :] - b[None, :, :]
        d2 = delta.square().sum(-1)
        err_d2 = eps * math.sqrt(a.shape[1] + 1) * (na[:, None] + nb[None, :] + d2)
        if same:  # a point with itself: d2 = 0 exactly
            err_d2.fill_diagonal_(0.0)
        e = [torch.exp(-d2 * h) for h in hs]
        k = sum(e)
        dk = sum(h * ei for h, ei in zip(hs, e)) * err_d2  # |d k| from the d2 error
        # gradient terms: |d w| |z - a| + w (|z| + |a|) eps, w = sum 2 h exp(-d2 h)
        dw = sum(2 * h * h * ei for h, ei in zip(hs, e)) * err_d2
        w = sum(2 * h * ei for h, ei in zip(hs, e))
        diff = delta.abs().amax(-1)
        return dk, k, dw * diff + w * eps * (a.abs().amax(1)[:, None] + b.abs().amax(1)[None, :])

    dk_xx, k_xx, dg_xx = pair_terms(x, nx, x, nx, True)
    dk_yy, k_yy, dg_yy = pair_terms(y, ny, y, ny, True)
    dk_xy, k_xy, dg_xy = pair_terms(x, nx, y, ny, False)
    # the d2 errors, plus the rounding of the three sums (a few eps of each weighted sum)
    value = (wxx * dk_xx.sum() + wyy * dk_yy.sum() + wxy * dk_xy.sum()
             + eps * (wxx * k_xx.sum() + wyy * k_yy.sum() + wxy * k_xy.sum()))
    # grad_i = sum_j W'_ij (z_j - a_i), evaluated as (W' z)_i - a_i (W' 1)_i: the w terms cover
    # the rounding of both products (the safety factor covers the accumulation length)
    gx = 2 * wxx * dg_xx.sum(1, keepdim=True) + wxy * dg_xy.sum(1, keepdim=True)
    gy = 2 * wyy * dg_yy.sum(1, keepdim=True) + wxy * dg_xy.sum(0)[:, None]
    return SAFETY * value.item(), SAFETY * gx, SAFETY * gy


def assert_value_close(got, x, y, bandwidths, unbiased, dtype, ref=None, bounds=None):
    out_dtype, eps, _, _ = DTYPES[dtype]
    assert got.dtype == out_dtype and got.dim() == 0
    if ref is None:
        ref = reference(x.cpu(), y.cpu(), bandwidths, unbiased)
    atol, _, _ = bounds or error_bounds(x, y, bandwidths, unbiased, eps)
    err = abs(got.item() - ref.item())
    assert err <= atol, f"|{got.item()} - {ref.item()}| = {err:.3g} > {atol:.3g}"


def assert_grads_close(gx, gy, x, y, bandwidths, unbiased, dtype, ref_gx, ref_gy, bounds=None):
    _, eps, eps_out, tiny_out = DTYPES[dtype]
    _, bx, by = bounds or error_bounds(x, y, bandwidths, unbiased, eps)
    for got, ref, bound, t, name in ((gx, ref_gx, bx, x, "x"), (gy, ref_gy, by, y, "y")):
        assert got.dtype == t.dtype and got.shape == t.shape, name
        tol = bound + SAFETY * (eps_out * ref.abs() + tiny_out)
        err = (got.cpu().double() - ref).abs()
        bad = err > tol
        assert not bad.any(), (
            f"grad_{name}: {int(bad.sum())} elements outside the bound; first at "
            f"{tuple(bad.nonzero()[0].tolist())}: got {got.cpu().double()[bad][0].item()}, "
            f"want {ref[bad][0].item()} (tolerance {tol[bad][0].item():.3g})"
        )


# ------------------------------------------------------------------------------------------------
# Correctness: values and gradients


SHAPES = [
    (1, 1, 1), (1, 3, 7), (3, 17, 33), (17, 3, 1), (17, 100, 7), (100, 17, 33), (100, 100, 1),
    (3, 100, 33), (100, 1, 7),
]  # fmt: skip


# The unbiased estimate needs N, M >= 2 (N = 1 raises: test_zero_sizes).
CASES = [(n, m, d, u) for n, m, d in SHAPES for u in (False, True) if not (u and min(n, m) < 2)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", list(DTYPES), ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("n, m, d, unbiased", CASES)
def test_value_and_gradients_match_float64_reference(device, dtype, n, m, d, unbiased):
    x, y = make_inputs(n, m, d, dtype, device, seed=n + 7 * m + 13 * d)
    xg, yg = x.clone().requires_grad_(), y.clone().requires_grad_()
    got = af.ops.mmd(xg, yg, BW, unbiased=unbiased)
    assert got.device.type == device
    ref, ref_gx, ref_gy = reference_with_grads(x, y, BW, unbiased)
    bounds = error_bounds(x, y, BW, unbiased, DTYPES[dtype][1])
    assert_value_close(got, x, y, BW, unbiased, dtype, ref, bounds)
    got.backward()
    assert_grads_close(xg.grad, yg.grad, x, y, BW, unbiased, dtype, ref_gx, ref_gy, bounds)


def test_several_tiles_match_reference():
    """N + M > 1024 (256-row tiles, several per set: diagonal and off-diagonal tile pairs in the
    forward, every round of the backward's schedule)."""
    x, y = make_inputs(560, 470, 3, torch.float64, seed=3)
    bw = (0.3, 1.0, 2.5)
    xg, yg = x.clone().requires_grad_(), y.clone().requires_grad_()
    got = af.ops.mmd(xg, yg, bw, unbiased=True)
    got.backward()
    ref, gx, gy = reference_with_grads(x, y, bw, True)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(xg.grad, gx, rtol=1e-9, atol=1e-15)
    torch.testing.assert_close(yg.grad, gy, rtol=1e-9, atol=1e-15)
    with torch.no_grad():
        biased = reference(x, y, bw, False)
    torch.testing.assert_close(af.ops.mmd(x, y, bw), biased, rtol=1e-12, atol=1e-14)
    # float32 on the same points
    x32, y32 = x.float(), y.float()
    assert_value_close(af.ops.mmd(x32, y32, bw), x32, y32, bw, False, torch.float32, biased)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", list(DTYPES), ids=lambda d: str(d)[6:])
def test_zero_for_identical_sets_positive_otherwise(device, dtype):
    x, y = make_inputs(60, 45, 8, dtype, device, seed=5)
    _, eps, eps_out, tiny_out = DTYPES[dtype]
    atol, _, _ = error_bounds(x, x, BW, False, eps)
    for same in (x, x.clone(), x.flip(0)):  # the same points, in any order
        assert abs(af.ops.mmd(x, same).item()) <= atol
    # x == y gives zero gradients too (the biased estimate is at its minimum)
    xg = x.clone().requires_grad_()
    af.ops.mmd(xg, x.clone()).backward()
    _, bx, _ = error_bounds(x, x, BW, False, eps)
    assert (xg.grad.cpu().double().abs() <= bx + SAFETY * tiny_out).all()
    # different sets: clearly positive, biased and unbiased
    for unbiased in (False, True):
        value = af.ops.mmd(x, y, unbiased=unbiased).item()
        assert value > 100 * atol and value > 0.01, (unbiased, value)


def test_identical_distributions_unbiased_is_near_zero_and_can_be_negative():
    """The U-statistic is unbiased: for two samples of one distribution it scatters around 0."""
    values = []
    for seed in range(12):
        x, y = make_inputs(40, 40, 3, torch.float64, seed=seed, shift=0.0)
        values.append(af.ops.mmd(x, y, unbiased=True).item())
        assert af.ops.mmd(x, y).item() > 0  # the V-statistic stays positive
    assert min(values) < 0 < max(values)
    assert abs(sum(values) / len(values)) < 0.05


@pytest.mark.parametrize("unbiased", [False, True], ids=["biased", "unbiased"])
def test_gradcheck_float64(unbiased):
    x, y = make_inputs(5, 4, 3, torch.float64, seed=11)
    x.requires_grad_()
    y.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: af.ops.mmd(a, b, (0.7, 1.5), unbiased), (x, y))
    # one input only: the other's gradient is not computed
    assert torch.autograd.gradcheck(lambda a: af.ops.mmd(a, y.detach(), 1.2, unbiased), (x,))


def test_backward_computes_only_the_wanted_gradients():
    x, y = make_inputs(7, 9, 4, torch.float32)
    g = torch.tensor(1.0)
    gx, gy = OPS.mmd_backward(g, x, y, list(BW), False, [True, False])
    assert gx.shape == x.shape and gx.is_contiguous() and gy.shape == (0,)
    gx2, gy2 = OPS.mmd_backward(g, x, y, list(BW), False, [False, True])
    assert gx2.shape == (0,) and gy2.shape == y.shape
    assert torch.equal(gx, OPS.mmd_backward(g, x, y, list(BW), False, [True, True])[0])
    # grad scales the gradients linearly
    torch.testing.assert_close(OPS.mmd_backward(torch.tensor(-2.5), x, y, list(BW), False, [True, True])[0], -2.5 * gx)
    xg = x.clone().requires_grad_()
    af.ops.mmd(xg, y).backward()
    torch.testing.assert_close(xg.grad, gx)


@pytest.mark.parametrize("bw", [1e-30, 1e-200, 1e30, 1e200])
def test_extreme_bandwidths_give_no_nan(bw):
    """h = 1 / (2 s^2) is formed without overflow: tiny s leaves only the diagonal (k(a, a) = 1),
    huge s makes every kernel value 1 (mmd = 0)."""
    x, y = make_inputs(6, 5, 3, torch.float64, seed=2)
    for dt in (torch.float32, torch.float64):
        for unbiased in (False, True):
            got = af.ops.mmd(x.to(dt), y.to(dt), bw, unbiased).item()
            if bw > 1:
                want = 0.0
            else:
                want = 0.0 if unbiased else 1 / 6 + 1 / 5
            assert math.isclose(got, want, abs_tol=1e-6), (dt, unbiased, got)
            xg = x.to(dt).requires_grad_()
            af.ops.mmd(xg, y.to(dt), bw, unbiased).backward()
            assert torch.isfinite(xg.grad).all()


def test_nan_propagates():
    x, y = make_inputs(6, 300, 5, torch.float32, seed=12)
    x[2, 3] = float("nan")
    assert math.isnan(af.ops.mmd(x, y).item())


# ------------------------------------------------------------------------------------------------
# Bandwidths


def test_bandwidths_forms_and_default():
    x, y = make_inputs(20, 30, 4, torch.float64, seed=4)
    default = af.ops.mmd(x, y)
    torch.testing.assert_close(default, reference(x, y, MODULE.DEFAULT_BANDWIDTHS), rtol=1e-12, atol=0)
    assert MODULE.DEFAULT_BANDWIDTHS == (0.5, 1.0, 2.0, 4.0, 8.0)
    for form in (list(BW), BW[::-1], torch.tensor(BW)):
        torch.testing.assert_close(af.ops.mmd(x, y, form), default, rtol=1e-14, atol=0)
    # a single number, and the kernel sum is additive over bandwidths
    parts = sum(af.ops.mmd(x, y, s) for s in BW)
    torch.testing.assert_close(parts, default, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(af.ops.mmd(x, y, 2), af.ops.mmd(x, y, [2.0]))


# ------------------------------------------------------------------------------------------------
# Layouts, sizes, determinism


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=["fp32", "fp64", "bf16"])
def test_non_contiguous_inputs(device, dtype):
    base_x, base_y = make_inputs(60, 90, 2 * 21, dtype, device, seed=10)
    x = base_x[:, ::2]  # strided columns
    y = base_y[:, 1::2].t().contiguous().t()  # column-major
    grads = OPS.mmd_backward(torch.tensor(1.0, device=device), x, y, list(BW), False, [True, True])
    assert all(g.is_contiguous() for g in grads)
    assert not x.is_contiguous() and not y.is_contiguous()
    xg, yg = x.clone().requires_grad_(), y.t().contiguous().t().requires_grad_()
    got = af.ops.mmd(xg, yg)
    got.backward()
    ref, gx, gy = reference_with_grads(x, y)
    assert_value_close(got, x, y, BW, False, dtype, ref)
    assert_grads_close(xg.grad, yg.grad, x, y, BW, False, dtype, gx, gy)
    expanded = base_x[:1, ::2].expand(7, -1)  # zero row stride: seven copies of one point
    got = af.ops.mmd(expanded, y)
    assert_value_close(got, expanded, y, BW, False, dtype)


@pytest.mark.parametrize("device", DEVICES)
def test_zero_sizes(device):
    x, y = make_inputs(4, 5, 3, torch.float32, device)
    with pytest.raises(RuntimeError, match=r"x must hold at least 1 sample \(shape \[N, D\] with N >= 1\), got \[0, 3\]"):
        af.ops.mmd(x[:0], y)
    with pytest.raises(RuntimeError, match=r"y must hold at least 1 sample"):
        af.ops.mmd(x, y[:0])
    with pytest.raises(RuntimeError, match=r"x must hold at least 2 samples for unbiased=True"):
        af.ops.mmd(x[:1], y, unbiased=True)
    with pytest.raises(RuntimeError, match=r"y must hold at least 2 samples for unbiased=True"):
        af.ops.mmd(x, y[:1], unbiased=True)
    # N = 1 is fine for the biased estimate: k(x, x) = S
    torch.testing.assert_close(af.ops.mmd(x[:1], y).cpu().double(), reference(x[:1].cpu(), y.cpu()), rtol=1e-6, atol=1e-6)
    # D = 0: every distance is 0, so mmd = 0, and the gradients are [N, 0]
    for unbiased in (False, True):
        xg = torch.zeros(4, 0, device=device, requires_grad=True)
        yg = torch.zeros(3, 0, device=device, requires_grad=True)
        out = af.ops.mmd(xg, yg, unbiased=unbiased)
        assert out.item() == 0.0
        out.backward()
        assert xg.grad.shape == (4, 0) and yg.grad.shape == (3, 0)


def test_thread_count_does_not_change_the_result():
    """Bitwise: the reduction order is fixed by the sizes (several 256-row tiles here)."""
    x, y = make_inputs(700, 600, 5, torch.float32, seed=8)
    threads = torch.get_num_threads()
    results = []
    try:
        for t in (1, max(2, threads), 3):
            torch.set_num_threads(t)
            xg, yg = x.clone().requires_grad_(), y.clone().requires_grad_()
            value = af.ops.mmd(xg, yg)
            value.backward()
            results.append((value, xg.grad, yg.grad))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)


# ------------------------------------------------------------------------------------------------
# torch.library / torch.compile


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    x, y = make_inputs(9, 12, 5, torch.float32, device)
    cases = [
        (x.double().requires_grad_(), y.double().requires_grad_(), [0.7, 2.0], True),
        (x.half(), y.half().requires_grad_(), [1.0], False),
        (x[:, ::2].requires_grad_(), y[:, ::2], list(BW), True),
        (x[:, :0], y[:, :0], [1.0], False),
    ]
    for args in cases:
        torch.library.opcheck(OPS.mmd.default, args)
    g = torch.tensor(0.75, device=device)
    for mask in ([True, True], [True, False], [False, True]):
        torch.library.opcheck(OPS.mmd_backward.default, (g, x, y, list(BW), False, mask))


def test_compile_fullgraph_forward_and_backward():
    x, y = make_inputs(50, 40, 8, torch.float32, seed=13)

    def loss(x, y):
        return af.ops.mmd(x, y, (1.0, 2.0)) + 0.5 * af.ops.mmd(x, y, 4.0, unbiased=True)

    compiled = torch.compile(loss, fullgraph=True)
    xe, ye = x.clone().requires_grad_(), y.clone().requires_grad_()
    xc, yc = x.clone().requires_grad_(), y.clone().requires_grad_()
    want = loss(xe, ye)
    want.backward()
    got = compiled(xc, yc)
    got.backward()
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(xc.grad, xe.grad)
    torch.testing.assert_close(yc.grad, ye.grad)
    assert compiled(x.double(), y.double()).dtype == torch.float64  # the fake impl's dtype


# ------------------------------------------------------------------------------------------------
# Bad inputs


def _x_y():
    return make_inputs(4, 6, 3, torch.float32)


@pytest.mark.parametrize(
    "args, error, message",
    [
        (lambda x, y: (x[0], y, BW), RuntimeError, r"x must have shape \[N, D\], got \[3\]"),
        (lambda x, y: (x, y[None], BW), RuntimeError, r"y must have shape \[M, D\], got \[1, 6, 3\]"),
        (lambda x, y: (x, y[:, :2], BW), RuntimeError, r"y must have the dimension D of x: x has shape \[4, 3\], y has shape \[6, 2\]"),
        (lambda x, y: (x, y.double(), BW), RuntimeError, r"y must have the dtype of x \((Float|torch.float32)\), got (Double|torch.float64)"),
        (lambda x, y: (x.int(), y.int(), BW), RuntimeError, r"x must be float32, float64, float16 or bfloat16, got (Int|torch.int32)"),
        (lambda x, y: (x, y, ()), RuntimeError, r"bandwidths must hold at least one bandwidth, got \[\]"),
        (lambda x, y: (x, y, (1.0, 0.0)), RuntimeError, r"bandwidths must be finite numbers > 0, got 0 at index 1"),
        (lambda x, y: (x, y, -0.5), RuntimeError, r"bandwidths must be finite numbers > 0, got -0.5 at index 0"),
        (lambda x, y: (x, y, float("nan")), RuntimeError, r"bandwidths must be finite numbers > 0, got nan"),
        (lambda x, y: (x, y, (2.0, float("inf"))), RuntimeError, r"bandwidths must be finite numbers > 0, got inf at index 1"),
        (lambda x, y: (x, y, "1.0"), TypeError, r"bandwidths must be a number or a sequence of numbers, got str"),
        (lambda x, y: (x, y, (1.0, "2")), TypeError, r"bandwidths must hold numbers, got str at index 1"),
        (lambda x, y: (x, y, True), TypeError, r"bandwidths must be a number or a sequence of numbers, got bool"),
        (lambda x, y: (x, y, torch.ones(2, 2)), TypeError, r"got a tensor of shape \(2, 2\)"),
    ],
)
def test_bad_inputs_name_the_argument(args, error, message):
    x, y = _x_y()
    a = args(x, y)
    with pytest.raises(error, match=message):
        af.ops.mmd(*a)
    if error is RuntimeError:  # the same messages from the composite fallback and the fake impl
        call = (a[0], a[1], MODULE._as_bandwidths(a[2]), False)
        with pytest.raises(RuntimeError, match=message):
            MODULE._mmd_composite(*call)
        with torch._subclasses.fake_tensor.FakeTensorMode() as mode:
            fake = (mode.from_tensor(call[0]), mode.from_tensor(call[1]), call[2], False)
            with pytest.raises(RuntimeError, match=message):
                OPS.mmd(*fake)


def test_bad_backward_grad():
    x, y = _x_y()
    with pytest.raises(RuntimeError, match=r"grad must be a 0-dim tensor"):
        OPS.mmd_backward(torch.ones(2), x, y, [1.0], False, [True, True])
    with pytest.raises(RuntimeError, match=r"grad must be a floating-point tensor"):
        OPS.mmd_backward(torch.tensor(1), x, y, [1.0], False, [True, True])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device type (CUDA)")
def test_mismatched_devices_are_named():
    x, y = _x_y()
    with pytest.raises(RuntimeError, match=r"y must be on the device of x"):
        af.ops.mmd(x.cuda(), y)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_cuda_backends_match_cpu(backend):
    """The CUDA C++ kernel and the Triton launcher against the CPU op (float32 and float64)."""
    from aae_fast.kernels import mmd as triton_mmd

    for dtype in (torch.float32, torch.float64):
        x, y = make_inputs(300, 170, 33, dtype, seed=21)
        ref, gx, gy = reference_with_grads(x, y, BW, True)
        if backend == "triton":
            value = triton_mmd.mmd_fwd(x.cuda(), y.cuda(), BW, True)
            grads = triton_mmd.mmd_bwd(torch.tensor(1.0, device="cuda"), x.cuda(), y.cuda(), BW, True)
        else:
            value = OPS.mmd(x.cuda(), y.cuda(), list(BW), True)
            grads = OPS.mmd_backward(torch.tensor(1.0, device="cuda"), x.cuda(), y.cuda(), list(BW), True, [True, True])
        assert_value_close(value.cpu(), x, y, BW, True, dtype, ref)
        assert_grads_close(grads[0], grads[1], x, y, BW, True, dtype, gx, gy)


# ------------------------------------------------------------------------------------------------
# The pure-PyTorch composite (the fallback without the extension)


@pytest.mark.parametrize("dtype", list(DTYPES), ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("n, m, d", [(3, 17, 7), (45, 20, 3)])
@pytest.mark.parametrize("unbiased", [False, True], ids=["biased", "unbiased"])
def test_composite_matches_reference(dtype, n, m, d, unbiased, monkeypatch):
    # blocks of 16 rows instead of 1024: several blocks, so the diagonal's offset in a block matters
    monkeypatch.setattr(MODULE, "_COMPOSITE_ROWS", 16)
    x, y = make_inputs(n, m, d, dtype, seed=n)
    ref, gx, gy = reference_with_grads(x, y, BW, unbiased)
    assert_value_close(MODULE._mmd_composite(x, y, list(BW), unbiased), x, y, BW, unbiased, dtype, ref)
    g = torch.tensor(1.0)
    grad_x, grad_y = MODULE._mmd_backward_composite(g, x, y, list(BW), unbiased, [True, True])
    assert_grads_close(grad_x, grad_y, x, y, BW, unbiased, dtype, gx, gy)


FALLBACK_SCRIPT = r"""
import json, torch, aae_fast as af
g = torch.Generator().manual_seed(0)
x, y = torch.randn(9, 5, generator=g), torch.randn(11, 5, generator=g) + 0.5
x.requires_grad_()
out = af.ops.mmd(x, y, (0.5, 2.0), unbiased=True)
out.backward()
info = af.backend_info()["ops"]
print(json.dumps({"cpu": [info["mmd"]["cpu"], info["mmd_backward"]["cpu"]], "out": out.item(),
                  "grad": x.grad.tolist(), "dtype": str(out.dtype)}))
"""


def test_fallback_without_extension_serves_the_composite():
    env = dict(os.environ, AAE_FAST_DISABLE_EXT="1")
    done = subprocess.run([sys.executable, "-c", FALLBACK_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["cpu"] == ["composite", "composite"] and result["dtype"] == "torch.float32"
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(9, 5, generator=g), torch.randn(11, 5, generator=g) + 0.5
    x.requires_grad_()
    out = af.ops.mmd(x, y, (0.5, 2.0), unbiased=True)
    out.backward()
    torch.testing.assert_close(torch.tensor(result["out"]), out.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.tensor(result["grad"]), x.grad, rtol=1e-4, atol=1e-6)
