"""reconstruction_loss (and its backward op) against a float64 reference written as a user would
(F.binary_cross_entropy_with_logits / squared error, per-row sum, mean over rows), plus gradcheck,
opcheck, torch.compile, odd layouts, huge logits, bad inputs, determinism and the pure-PyTorch
fallback. Triton kernels: tests/kernels/.
"""

import importlib
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import aae_fast as af
# The module (aae_fast.ops.reconstruction_loss is the function of the same name).
recon = importlib.import_module("aae_fast.ops.reconstruction_loss")

OPS = torch.ops.aae_fast
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
KINDS = ["bce", "mse"]
SHAPES = [(r, f) for r in (1, 3, 17, 100, 1000) for f in (1, 7, 784, 1000)]
# (rtol, atol) against the float64 reference for the precise dtypes; fp16/bf16 are held to the error
# of a naive same-dtype implementation (assert_close_to_reference).
PRECISE_TOL = {torch.float32: (1e-5, 1e-7), torch.float64: (1e-12, 1e-15)}


def inputs(shape, dtype, device, seed, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    output = torch.randn(shape, generator=g, dtype=torch.float64) * 3  # logits / predictions
    target = torch.rand(shape, generator=g, dtype=torch.float64)  # in [0, 1], as for images
    return [t.to(device=device, dtype=dtype).requires_grad_(requires_grad) for t in (output, target)]


def composite(output, target, kind):
    """The loss a user writes; in float64 it is the reference, in the inputs' dtype the naive one."""
    if kind == "bce":
        per_element = F.binary_cross_entropy_with_logits(output, target, reduction="none")
    else:
        per_element = (output - target) ** 2
    return per_element.sum(dim=1).mean()


def value_and_grads(fn, output, target, *args):
    leaves = [x.detach().clone().requires_grad_(True) for x in (output, target)]
    out = fn(*leaves, *args)
    grads = torch.autograd.grad(out, leaves)
    return out.detach(), [g.detach() for g in grads]


def max_err(a, b):
    return (a.double().cpu() - b.double().cpu()).abs().max().item() if a.numel() else 0.0


def assert_close_to_reference(got, ref, naive, dtype, what):
    """fp32/fp64: relative tolerance. fp16/bf16 (flash-attention style): at most twice the error of
    the naive same-dtype composite, plus a float32-rounding floor."""
    assert got.shape == ref.shape, f"{what}: shape {tuple(got.shape)} != {tuple(ref.shape)}"
    if dtype in PRECISE_TOL:
        rtol, atol = PRECISE_TOL[dtype]
        torch.testing.assert_close(got.double().cpu(), ref.double().cpu(), rtol=rtol, atol=atol, msg=what)
        return
    floor = 1e-5 * (1.0 + ref.double().abs().max().item() if ref.numel() else 1.0)
    err, budget = max_err(got, ref), 2 * max_err(naive, ref) + floor
    assert err <= budget, f"{what}: max error {err:.3g} exceeds 2 x naive {dtype} error + floor = {budget:.3g}"


# ------------------------------------------------------------------------------------------------
# Values and gradients


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{r}x{f}" for r, f in SHAPES])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_loss_and_grads_match_float64_reference(device, kind, shape, dtype):
    output, target = inputs(shape, dtype, device, seed=shape[0] * 1009 + shape[1])
    loss, (grad_o, grad_t) = value_and_grads(af.ops.reconstruction_loss, output, target, kind)
    assert loss.shape == () and loss.dtype == dtype and loss.device.type == device
    assert grad_o.dtype == dtype and grad_o.shape == shape
    ref, (ref_o, ref_t) = value_and_grads(composite, output.double(), target.double(), kind)
    assert_close_to_reference(loss, ref, None, dtype, "loss")
    assert_close_to_reference(grad_o, ref_o, None, dtype, "grad output")
    assert_close_to_reference(grad_t, ref_t, None, dtype, "grad target")


LOW_SHAPES = [(1, 7), (17, 784), (100, 1000)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", LOW_SHAPES, ids=[f"{r}x{f}" for r, f in LOW_SHAPES])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_within_naive_error(device, kind, shape, dtype):
    output, target = inputs(shape, dtype, device, seed=shape[0] + shape[1])
    loss, (grad_o, grad_t) = value_and_grads(af.ops.reconstruction_loss, output, target, kind)
    assert loss.dtype == torch.float32 and grad_o.dtype == dtype and grad_t.dtype == dtype
    ref, (ref_o, ref_t) = value_and_grads(composite, output.double(), target.double(), kind)
    naive, (naive_o, naive_t) = value_and_grads(composite, output, target, kind)
    assert_close_to_reference(loss, ref, naive, dtype, "loss")
    assert_close_to_reference(grad_o, ref_o, naive_o, dtype, "grad output")
    assert_close_to_reference(grad_t, ref_t, naive_t, dtype, "grad target")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck_float64(device, kind):
    output, target = inputs((3, 5), torch.float64, device, seed=1, requires_grad=True)
    assert torch.autograd.gradcheck(lambda o, t: af.ops.reconstruction_loss(o, t, kind), (output, target))


@pytest.mark.parametrize("kind", KINDS)
def test_output_only_gradient(kind):
    output, target = inputs((9, 13), torch.float32, "cpu", seed=2)
    output.requires_grad_()
    loss = af.ops.reconstruction_loss(output, target, kind)
    (grad_o,) = torch.autograd.grad(loss, [output])
    _, (ref_o, _) = value_and_grads(composite, output.double(), target.double(), kind)
    torch.testing.assert_close(grad_o.double(), ref_o, rtol=1e-5, atol=1e-7)
    # The backward op computes only the gradients asked for.
    grad_o2, grad_t2 = OPS.reconstruction_loss_backward(torch.tensor(1.0), output.detach(), target, kind, [True, False])
    assert torch.equal(grad_o2, grad_o) and grad_t2.shape == (0,)


# ------------------------------------------------------------------------------------------------
# Layouts, sizes and magnitudes


def test_non_contiguous_inputs():
    output, target = inputs((30, 20), torch.float32, "cpu", seed=3)
    o, t = output.t(), target[:, ::2].repeat(1, 2).t()  # transposed views
    assert not o.is_contiguous() and not t.is_contiguous()
    for kind in KINDS:
        loss, (grad_o, grad_t) = value_and_grads(af.ops.reconstruction_loss, o, t, kind)
        expected, (exp_o, exp_t) = value_and_grads(af.ops.reconstruction_loss, o.contiguous(), t.contiguous(), kind)
        assert torch.equal(loss, expected) and torch.equal(grad_o, exp_o) and torch.equal(grad_t, exp_t)


@pytest.mark.parametrize("kind", KINDS)
def test_zero_rows_give_nan_and_zero_features_give_zero(kind):
    # Zero rows: a mean over nothing is NaN, as in the composite a user writes.
    o, t = torch.empty(0, 5, requires_grad=True), torch.empty(0, 5)
    assert torch.isnan(composite(o, t, kind))
    loss = af.ops.reconstruction_loss(o, t, kind)
    assert torch.isnan(loss)
    (grad,) = torch.autograd.grad(loss, [o])
    assert grad.shape == (0, 5)
    # Zero features: every row sums to 0, so the mean is 0.
    o, t = torch.empty(4, 0, requires_grad=True), torch.empty(4, 0)
    assert composite(o, t, kind).item() == 0.0 == af.ops.reconstruction_loss(o, t, kind).item()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_huge_logits_are_stable(device, dtype):
    output = torch.tensor([[1e4, -1e4, 1e4], [-1e4, 50.0, -50.0]], dtype=dtype, device=device)
    target = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.5, 0.25]], dtype=dtype, device=device)
    loss, (grad_o, grad_t) = value_and_grads(af.ops.reconstruction_loss, output, target, "bce")
    for t in (loss, grad_o, grad_t):
        assert torch.isfinite(t).all(), t
    ref, (ref_o, _) = value_and_grads(composite, output.double(), target.double(), "bce")
    torch.testing.assert_close(loss.double().cpu(), ref.cpu(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad_o.double().cpu(), ref_o.cpu(), rtol=1e-2, atol=1e-6)


def test_result_does_not_depend_on_thread_count():
    output, target = inputs((1000, 784), torch.float32, "cpu", seed=4)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = [af.ops.reconstruction_loss(output, target, k) for k in KINDS]
        torch.set_num_threads(max(2, threads))
        many = [af.ops.reconstruction_loss(output, target, k) for k in KINDS]
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(one, many))


# ------------------------------------------------------------------------------------------------
# torch.library and torch.compile


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", KINDS)
def test_opcheck(device, kind):
    output, target = inputs((17, 7), torch.float32, device, seed=5, requires_grad=True)
    grad = torch.tensor(0.5, device=device)
    torch.library.opcheck(OPS.reconstruction_loss, (output, target, kind))
    torch.library.opcheck(OPS.reconstruction_loss, (output.detach().half(), target.detach().half(), kind))
    for mask in ([True, True], [True, False], [False, True]):
        torch.library.opcheck(OPS.reconstruction_loss_backward, (grad, output.detach(), target.detach(), kind, mask))


def test_compile_fullgraph_forward_and_backward():
    def losses(output, target):
        return af.ops.reconstruction_loss(output, target, "bce") + af.ops.reconstruction_loss(output, target, "mse")

    compiled = torch.compile(losses, fullgraph=True)
    output, target = inputs((19, 23), torch.float32, "cpu", seed=6)
    expected, expected_grads = value_and_grads(losses, output, target)
    got, got_grads = value_and_grads(compiled, output, target)
    torch.testing.assert_close(got, expected)
    for g, e in zip(got_grads, expected_grads):
        torch.testing.assert_close(g, e)


# ------------------------------------------------------------------------------------------------
# Bad inputs


@pytest.mark.parametrize(
    "args, message",
    [
        ((torch.zeros(2, 3), torch.zeros(2, 4), "bce"), r"target must have the shape of output \[2, 3\], got \[2, 4\]"),
        ((torch.zeros(2, 3), torch.zeros(2, 3).double(), "mse"), r"target must have the dtype of output \(Float\), got Double"),
        ((torch.zeros(6), torch.zeros(6), "bce"), r"output must have shape \[B, F\] .* got \[6\]"),
        ((torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), "mse"), r"output must have shape \[B, F\] .* got \[2, 3, 4\]"),
        ((torch.zeros(2, 3, dtype=torch.int64), torch.zeros(2, 3, dtype=torch.int64), "mse"),
         "output must be a float32, float64, float16 or bfloat16 tensor, got Long"),
        ((torch.zeros(2, 3), torch.zeros(2, 3), "l1"), "kind must be 'bce' or 'mse', got 'l1'"),
    ],
)
def test_bad_inputs_name_argument_expected_and_received(args, message):
    with pytest.raises(RuntimeError, match=message):
        OPS.reconstruction_loss(*args)


def test_public_function_validates_kind_early():
    with pytest.raises(ValueError, match="kind must be 'bce' or 'mse', got 'BCE'"):
        af.ops.reconstruction_loss(torch.zeros(2, 3), torch.zeros(2, 3), kind="BCE")


def test_backward_op_checks_grad():
    with pytest.raises(RuntimeError, match=r"grad must be a 0-dim tensor .* got shape \[1\]"):
        OPS.reconstruction_loss_backward(torch.ones(1), torch.zeros(2, 3), torch.zeros(2, 3), "bce", [True, True])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device type (CUDA)")
def test_mismatched_devices_are_named():
    with pytest.raises(RuntimeError, match="target must be on cuda"):
        af.ops.reconstruction_loss(torch.zeros(2, 3, device="cuda"), torch.zeros(2, 3))


# ------------------------------------------------------------------------------------------------
# The pure-PyTorch fallback


@pytest.mark.parametrize("kind", KINDS)
def test_composites_match_cpp_kernels(kind):
    output, target = inputs((37, 11), torch.float32, "cpu", seed=7)
    grad = torch.tensor(1.25)
    torch.testing.assert_close(recon._loss_composite(output, target, kind), OPS.reconstruction_loss(output, target, kind))
    for mask in ([True, True], [False, True]):
        for got, expected in zip(
            recon._loss_backward_composite(grad, output, target, kind, mask),
            OPS.reconstruction_loss_backward(grad, output, target, kind, mask),
        ):
            torch.testing.assert_close(got, expected)


FALLBACK_SCRIPT = r"""
import json, warnings, torch
warnings.simplefilter("ignore")
import aae_fast as af
out = {"cpu": af.backend_info()["ops"]["reconstruction_loss"]["cpu"]}
for kind in ("bce", "mse"):
    o = (torch.arange(24.0).reshape(4, 6) - 12).requires_grad_()
    t = torch.linspace(0, 1, 24).reshape(4, 6)
    loss = af.ops.reconstruction_loss(o, t, kind)
    (grad,) = torch.autograd.grad(loss, [o])
    out[kind] = {"loss": loss.item(), "grad": grad.tolist()}
print(json.dumps(out))
"""


def test_pure_pytorch_fallback_matches_extension():
    env = dict(os.environ, AAE_FAST_DISABLE_EXT="1")
    done = subprocess.run([sys.executable, "-c", FALLBACK_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["cpu"] == "composite"
    for kind in KINDS:
        o = (torch.arange(24.0).reshape(4, 6) - 12).requires_grad_()
        t = torch.linspace(0, 1, 24).reshape(4, 6)
        loss = af.ops.reconstruction_loss(o, t, kind)
        (grad,) = torch.autograd.grad(loss, [o])
        assert out[kind]["loss"] == pytest.approx(loss.item(), rel=1e-6)
        torch.testing.assert_close(torch.tensor(out[kind]["grad"]), grad)
