"""linear_act (and linear_act_backward) against a float64 reference written with F.linear and the
torch activations: odd shapes, every activation, bias on/off, every dtype, gradients for every
needs_input_grad combination, gradcheck, opcheck, torch.compile, odd layouts, zero sizes, bad
inputs, determinism and the pure-PyTorch fallback. The Triton kernels: tests/kernels/.
"""

import importlib
import itertools
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import aae_fast as af
la = importlib.import_module("aae_fast.ops.linear_act")  # the module (the package attribute is the function)

OPS = torch.ops.aae_fast
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
ACTIVATIONS = ["identity", "relu", "leaky_relu", "sigmoid", "tanh"]
SHAPES = [(1, 1, 1), (3, 7, 33), (17, 33, 7), (100, 100, 100), (17, 1, 100), (3, 100, 1)]  # (B, K, N)
# (rtol, atol) against float64 for the precise dtypes; 16-bit dtypes are held to the error of the
# naive same-dtype composite (see assert_close_to_reference).
PRECISE_TOL = {torch.float32: (2e-5, 2e-5), torch.float64: (1e-10, 1e-12)}
DTYPES = [torch.float32, torch.float64, torch.bfloat16]


def make_inputs(B, K, N, dtype, device="cpu", bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, K, generator=g, dtype=torch.float64)
    w = torch.randn(N, K, generator=g, dtype=torch.float64) / max(K, 1) ** 0.5
    b = torch.randn(N, generator=g, dtype=torch.float64) if bias else None
    cast = lambda t: None if t is None else t.to(device=device, dtype=dtype)  # noqa: E731
    return cast(x), cast(w), cast(b)


def reference(x, w, b, activation, slope=0.01):
    """What a user writes: F.linear then the activation."""
    return la.apply_activation(F.linear(x, w, b), activation, slope)


def grads_of(fn, inputs, wanted, grad_out_seed=1):
    leaves = [None if t is None else t.detach().clone().requires_grad_(bool(r)) for t, r in zip(inputs, wanted)]
    out = fn(*leaves)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(grad_out_seed), dtype=torch.float64)
    g = g.to(device=out.device, dtype=out.dtype)
    targets = [t for t, r in zip(leaves, wanted) if t is not None and r]
    grads = torch.autograd.grad(out, targets, g) if targets else []
    return out.detach(), [gr.detach() for gr in grads]


def max_err(a, b):
    return (a.double().cpu() - b.double().cpu()).abs().max().item() if a.numel() else 0.0


def assert_close_to_reference(got, ref, naive, dtype, what):
    """fp32/fp64: fixed tolerances. bf16/fp16: at most twice the error of the naive same-dtype
    composite against float64, plus a floor of 1e-2 of the reference's magnitude."""
    assert got.shape == ref.shape, f"{what}: shape {tuple(got.shape)} != {tuple(ref.shape)}"
    assert got.dtype == dtype, f"{what}: dtype {got.dtype} != {dtype}"
    if dtype in PRECISE_TOL:
        rtol, atol = PRECISE_TOL[dtype]
        torch.testing.assert_close(got.double().cpu(), ref.double().cpu(), rtol=rtol, atol=atol, msg=what)
        return
    floor = 1e-2 * (1.0 + (ref.double().abs().max().item() if ref.numel() else 0.0))
    err, budget = max_err(got, ref), 2 * max_err(naive, ref) + floor
    assert err <= budget, f"{what}: max error {err:.3g} exceeds 2 x naive {dtype} error + floor = {budget:.3g}"


# ------------------------------------------------------------------------------------------------
# Forward values


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("B", [1, 3, 17, 100])
@pytest.mark.parametrize("K, N", [(1, 7), (7, 33), (33, 1), (100, 100)])
def test_forward_matches_reference(device, dtype, activation, bias, B, K, N):
    x, w, b = make_inputs(B, K, N, dtype, device, bias)
    got = af.ops.linear_act(x, w, b, activation)
    ref = reference(x.double(), w.double(), None if b is None else b.double(), activation)
    naive = reference(x, w, b, activation)
    assert got.is_contiguous()
    assert_close_to_reference(got, ref, naive, dtype, f"linear_act {activation}")


@pytest.mark.parametrize("slope", [0.0, 0.2, 1.5])
def test_leaky_slope(slope):
    x, w, b = make_inputs(17, 33, 7, torch.float64)
    got = af.ops.linear_act(x, w, b, "leaky_relu", slope)
    torch.testing.assert_close(got, reference(x, w, b, "leaky_relu", slope))


def test_float16_forward():
    x, w, b = make_inputs(17, 33, 7, torch.float16)
    try:
        got = af.ops.linear_act(x, w, b, "tanh")
    except RuntimeError as exc:  # pragma: no cover - a CPU build without half GEMM
        pytest.skip(f"float16 GEMM unavailable on this CPU: {exc}")
    ref = reference(x.double(), w.double(), b.double(), "tanh")
    assert_close_to_reference(got, ref, reference(x.float(), w.float(), b.float(), "tanh").half(), torch.float16, "fp16")


@pytest.mark.parametrize("device", DEVICES)
def test_tanh_is_accurate_near_zero(device):
    # Where 1 - exp(-2|z|) cancels, a quotient formula loses every digit (tanh(1e-8) -> 0); the
    # fp32 kernels switch to the odd series there. Relative error against float64 torch.tanh.
    z = torch.tensor([1e-30, 1e-8, 1e-6, 1e-4, 1e-3, 0.01, 0.1, 0.2499, 0.2501, 0.4, 1.0, 5.0])
    z = torch.cat([z, -z])
    y = af.ops.linear_act(z[:, None].to(device), torch.ones(1, 1, device=device), None, "tanh")
    ref = torch.tanh(z.double())
    rel = ((y[:, 0].cpu().double() - ref).abs() / ref.abs()).max().item()
    assert rel < 1e-6, rel


def test_extreme_preactivations_stay_finite():
    x = torch.tensor([[1e4], [-1e4], [0.0]])
    w = torch.ones(1, 1)
    for act in ACTIVATIONS:
        y = af.ops.linear_act(x, w, None, act)
        torch.testing.assert_close(y.double(), reference(x.double(), w.double(), None, act))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("activation", ["relu", "identity"])
def test_nan_propagates(device, activation):
    # [3, 2] @ [2, 3]: shapes where CUDA takes cuBLASLt's bias (+ relu) epilogue (every size > 1).
    x = torch.tensor([[float("nan"), 1.0], [float("-inf"), 1.0], [1.0, 1.0]], device=device)
    w = torch.ones(3, 2, device=device)
    b = torch.tensor([float("inf"), 0.0, 0.0], device=device)
    y = af.ops.linear_act(x, w, b, activation).cpu()
    assert torch.isnan(y[0]).all() and torch.isnan(y[1, 0]), y  # nan; -inf + inf
    torch.testing.assert_close(y, reference(x.cpu(), w.cpu(), b.cpu(), activation), equal_nan=True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_relu_passes_the_gradient_of_a_nan_output(device, dtype):
    # torch.relu's backward blocks the gradient where y <= 0 only, so a NaN output (of either
    # sign bit) keeps its gradient; a mask "y > 0" would hide the NaN in the backward.
    nan = torch.tensor(float("nan"), dtype=dtype)
    x = torch.stack([nan, -nan, torch.tensor(2.0, dtype=dtype), torch.tensor(-2.0, dtype=dtype)])
    x = x.reshape(4, 1).repeat(1, 33).to(device).requires_grad_()  # 33: the vector and tail paths
    w = torch.eye(33, dtype=dtype, device=device)
    af.ops.linear_act(x, w, None, "relu").sum().backward()
    xr = x.detach().clone().requires_grad_()
    torch.relu(xr @ w.t()).sum().backward()
    torch.testing.assert_close(x.grad.cpu(), xr.grad.cpu(), equal_nan=True)
    assert (x.grad[:2] == 1).all() and (x.grad[3] == 0).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_leaky_relu_gradient_at_a_nan_output_is_the_slope_whatever_its_sign_bit(device, dtype):
    # y > 0 is false for NaN of either sign: the gradient is g * slope (what torch gives), not a
    # choice by the NaN's sign bit.
    nan = torch.tensor(float("nan"))
    y = torch.stack([nan, -nan, torch.tensor(2.0), torch.tensor(-2.0)]).reshape(4, 1).repeat(1, 33)
    y = y.to(device, dtype)
    g = torch.ones_like(y)
    _, _, grad_b = torch.ops.aae_fast.linear_act_backward(g, y, None, None, "leaky_relu", 0.25,
                                                           [False, False, True])
    assert grad_b.float().cpu().tolist() == [0.25 + 0.25 + 1.0 + 0.25] * 33


# ------------------------------------------------------------------------------------------------
# Gradients


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("wanted", list(itertools.product([True, False], repeat=3)))
def test_gradients_every_needs_input_grad(device, dtype, activation, wanted):
    B, K, N = 17, 33, 7
    inputs = make_inputs(B, K, N, dtype, device, bias=True, seed=3)
    if not any(wanted):
        y = af.ops.linear_act(*inputs, activation)
        assert not y.requires_grad
        return
    fn = lambda x, w, b: af.ops.linear_act(x, w, b, activation)  # noqa: E731
    _, got = grads_of(fn, inputs, wanted)
    ref_fn = lambda x, w, b: reference(x, w, b, activation)  # noqa: E731
    _, ref = grads_of(ref_fn, [t.double() for t in inputs], wanted)
    _, naive = grads_of(ref_fn, inputs, wanted)
    for name, g, r, n in zip([n for n, k in zip("xwb", wanted) if k], got, ref, naive):
        assert_close_to_reference(g, r, n, dtype, f"grad {name} ({activation}, wanted={wanted})")


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("B, K, N", SHAPES)
def test_gradients_odd_shapes_no_bias(activation, B, K, N):
    inputs = make_inputs(B, K, N, torch.float32, bias=False, seed=5)[:2]
    fn = lambda x, w: af.ops.linear_act(x, w, None, activation)  # noqa: E731
    _, got = grads_of(fn, inputs, [True, True])
    _, ref = grads_of(lambda x, w: reference(x, w, None, activation), [t.double() for t in inputs], [True, True])
    for g, r in zip(got, ref):
        torch.testing.assert_close(g.double(), r, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck(activation, bias):
    x, w, b = make_inputs(3, 5, 4, torch.float64, bias=bias, seed=7)
    args = [x.requires_grad_(), w.requires_grad_()] + ([b.requires_grad_()] if bias else [])
    fn = (lambda x, w, b: af.ops.linear_act(x, w, b, activation, 0.1)) if bias else (
        lambda x, w: af.ops.linear_act(x, w, None, activation, 0.1)
    )
    assert torch.autograd.gradcheck(fn, args)


@pytest.mark.parametrize("wanted", [(True, True, True), (False, True, True), (True, False, False), (False, True, False)])
def test_backward_op_masks_and_empty_outputs(wanted):
    x, w, b = make_inputs(17, 33, 7, torch.float32)
    y = af.ops.linear_act(x, w, b, "tanh")
    grad = torch.randn_like(y)
    gx, gw, gb = OPS.linear_act_backward(grad, y, x if wanted[1] else None, w if wanted[0] else None, "tanh", 0.01, list(wanted))
    for got, want, shape in zip((gx, gw, gb), wanted, ((17, 33), (7, 33), (7,))):
        assert tuple(got.shape) == (shape if want else (0,))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["relu", "identity", "tanh"])
@pytest.mark.parametrize("B", [127, 128, 129, 1000, 4100])
def test_large_batches_forward_and_gradients(device, dtype, activation, B):
    """Batches around and above the row chunk of the CUDA backward epilogue (128 rows: the bias
    gradient is summed per chunk, then over the chunks), for every backend; the forward of relu and
    identity with a bias is cuBLASLt's epilogue on CUDA."""
    inputs = make_inputs(B, 19, 37, dtype, device, bias=True, seed=B)
    fn = lambda x, w, b: af.ops.linear_act(x, w, b, activation)  # noqa: E731
    ref_fn = lambda x, w, b: reference(x, w, b, activation)  # noqa: E731
    wanted = [True, True, True]
    out, got = grads_of(fn, inputs, wanted)
    ref_out, ref = grads_of(ref_fn, [t.double() for t in inputs], wanted)
    naive_out, naive = grads_of(ref_fn, inputs, wanted)
    assert_close_to_reference(out, ref_out, naive_out, dtype, f"forward ({activation}, B={B})")
    for name, g, r, n in zip("xwb", got, ref, naive):
        if dtype in PRECISE_TOL:  # sums over up to 4100 rows: an error relative to the largest
            err, bound = max_err(g, r), {torch.float32: 1e-5, torch.float64: 1e-12}[dtype] * (1 + r.abs().max().item())
            assert err <= bound, f"grad {name} ({activation}, B={B}): max error {err:.3g} > {bound:.3g}"
        else:
            assert_close_to_reference(g, r, n, dtype, f"grad {name} ({activation}, B={B})")
    _, again = grads_of(fn, inputs, wanted)
    assert torch.equal(got[2], again[2]), "the bias gradient must not depend on the run"


def test_bias_gradient_deterministic_across_threads():
    x, w, b = make_inputs(1000, 100, 1000, torch.float32)
    y = af.ops.linear_act(x, w, b, "relu")
    grad = torch.randn_like(y)
    n = torch.get_num_threads()
    try:
        outs = []
        for threads in (1, max(2, n)):
            torch.set_num_threads(threads)
            outs.append(OPS.linear_act_backward(grad, y, None, None, "relu", 0.01, [False, False, True])[2])
    finally:
        torch.set_num_threads(n)
    assert torch.equal(outs[0], outs[1])


# ------------------------------------------------------------------------------------------------
# opcheck and torch.compile


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "sigmoid", "tanh", "identity"])
@pytest.mark.parametrize("bias", [True, False])
def test_opcheck_forward(activation, bias):
    x, w, b = make_inputs(5, 7, 3, torch.float32, bias=bias)
    torch.library.opcheck(OPS.linear_act.default, (x.requires_grad_(), w.requires_grad_(), b, activation, 0.01))


@pytest.mark.parametrize("mask", [[True, True, True], [False, True, False], [True, False, True]])
def test_opcheck_backward(mask):
    x, w, b = make_inputs(5, 7, 3, torch.float32)
    y = af.ops.linear_act(x, w, b, "sigmoid")
    grad = torch.randn_like(y)
    args = (grad, y, x if mask[1] else None, w if mask[0] else None, "sigmoid", 0.01, mask)
    torch.library.opcheck(OPS.linear_act_backward.default, args)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_torch_compile_fullgraph(activation):
    torch._dynamo.reset()

    def step(x, w1, b1, w2):
        h = af.ops.linear_act(x, w1, b1, activation)
        return af.ops.linear_act(h, w2, None, "sigmoid").sum()

    compiled = torch.compile(step, fullgraph=True)
    x, w1, b1 = make_inputs(17, 33, 7, torch.float32)
    w2 = torch.randn(3, 7)
    params = [w1.requires_grad_(), b1.requires_grad_(), w2.requires_grad_()]
    out = compiled(x, *params)
    got = torch.autograd.grad(out, params)
    ref_out = step(x, *params)
    ref = torch.autograd.grad(ref_out, params)
    torch.testing.assert_close(out, ref_out)
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r)


# ------------------------------------------------------------------------------------------------
# Layouts and sizes


def test_non_contiguous_inputs():
    x, w, b = make_inputs(40, 34, 18, torch.float32)
    xs, ws, bs = x[::2, ::2], w[::2, ::2].t().contiguous().t(), b[::2]
    assert not xs.is_contiguous() and not ws.is_contiguous() and not bs.is_contiguous()
    for act in ACTIVATIONS:
        got, gg = grads_of(lambda x, w, b: af.ops.linear_act(x, w, b, act), [xs, ws, bs], [True, True, True])
        ref, rg = grads_of(lambda x, w, b: reference(x, w, b, act), [xs.double(), ws.double(), bs.double()], [True] * 3)
        torch.testing.assert_close(got.double(), ref, rtol=2e-5, atol=2e-5)
        for g, r in zip(gg, rg):
            torch.testing.assert_close(g.double(), r, rtol=2e-5, atol=2e-5)
    # a non-contiguous incoming gradient
    y = af.ops.linear_act(xs, ws, bs, "tanh")
    grad = torch.randn(9, 20).t()
    gx, gw, gb = OPS.linear_act_backward(grad, y, xs, ws, "tanh", 0.01, [True, True, True])
    torch.testing.assert_close(gb, (grad * (1 - y * y)).sum(0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("B, K, N", [(0, 5, 3), (4, 0, 3), (4, 5, 0), (0, 0, 0)])
def test_zero_size(B, K, N):
    x, w, b = make_inputs(B, K, N, torch.float32)
    x.requires_grad_(), w.requires_grad_(), b.requires_grad_()
    y = af.ops.linear_act(x, w, b, "sigmoid")
    ref = reference(x.detach(), w.detach(), b.detach(), "sigmoid")
    assert y.shape == (B, N)
    torch.testing.assert_close(y.detach(), ref)
    grads = torch.autograd.grad(y.sum(), [x, w, b])
    ref_grads = torch.autograd.grad(reference(x, w, b, "sigmoid").sum(), [x, w, b])
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r)


# ------------------------------------------------------------------------------------------------
# Bad inputs


def test_bad_inputs():
    x, w, b = make_inputs(4, 5, 3, torch.float32)
    with pytest.raises(RuntimeError, match="weight must have shape"):
        af.ops.linear_act(x, torch.randn(3, 6), b)
    with pytest.raises(RuntimeError, match="bias must have shape"):
        af.ops.linear_act(x, w, torch.randn(4))
    with pytest.raises(RuntimeError, match=r"x must have shape \[B, K\]"):
        af.ops.linear_act(x[0], w, b)
    with pytest.raises(RuntimeError, match="activation must be one of"):
        af.ops.linear_act(x, w, b, "gelu")
    with pytest.raises(RuntimeError, match="negative_slope"):
        af.ops.linear_act(x, w, b, "leaky_relu", -0.1)
    with pytest.raises(RuntimeError, match="weight must have the dtype of x"):
        af.ops.linear_act(x, w.double(), b)
    with pytest.raises(RuntimeError, match="bias must have the dtype of x"):
        af.ops.linear_act(x, w, b.double())
    with pytest.raises(RuntimeError, match="x must be float32"):
        af.ops.linear_act(x.long(), w.long(), None)
    if torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="device"):
            af.ops.linear_act(x, w.cuda(), b)
    y = af.ops.linear_act(x, w, b)
    with pytest.raises(RuntimeError, match="grad must have the shape of y"):
        OPS.linear_act_backward(y[:2], y, x, w, "relu", 0.01, [True, True, True])
    with pytest.raises(RuntimeError, match="weight is required"):
        OPS.linear_act_backward(y, y, x, None, "relu", 0.01, [True, False, False])
    with pytest.raises(RuntimeError, match="x is required"):
        OPS.linear_act_backward(y, y, None, w, "relu", 0.01, [False, True, False])


def test_device_mismatch_meta():
    x, w, b = make_inputs(4, 5, 3, torch.float32)
    with pytest.raises(RuntimeError, match="device"):
        la._check_forward(x, w.to("meta"), b, "relu", 0.01)


# ------------------------------------------------------------------------------------------------
# The fallback


def test_pure_pytorch_fallback_matches():
    code = r"""
import json, torch, warnings
warnings.simplefilter("ignore")
import aae_fast as af
from aae_fast import _backend
g = torch.Generator().manual_seed(0)
x = torch.randn(17, 33, generator=g, dtype=torch.float64, requires_grad=True)
w = torch.randn(7, 33, generator=g, dtype=torch.float64, requires_grad=True)
b = torch.randn(7, generator=g, dtype=torch.float64, requires_grad=True)
out = {}
for act in ["identity", "relu", "leaky_relu", "sigmoid", "tanh"]:
    y = af.ops.linear_act(x, w, b, act)
    grads = torch.autograd.grad(y.sum(), [x, w, b])
    out[act] = [y.sum().item()] + [gr.sum().item() for gr in grads]
out["backend"] = _backend.cpu_backend("linear_act")
print(json.dumps(out))
"""
    env = dict(os.environ, AAE_FAST_DISABLE_EXT="1")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    fallback = json.loads(res.stdout.strip().splitlines()[-1])
    assert fallback.pop("backend") == "composite"
    x, w, b = make_inputs(17, 33, 7, torch.float64)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(17, 33, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(7, 33, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(7, generator=g, dtype=torch.float64, requires_grad=True)
    for act, vals in fallback.items():
        y = af.ops.linear_act(x, w, b, act)
        grads = torch.autograd.grad(y.sum(), [x, w, b])
        mine = [y.sum().item()] + [gr.sum().item() for gr in grads]
        assert mine == pytest.approx(vals, rel=1e-10, abs=1e-10), act
