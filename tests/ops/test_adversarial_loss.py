"""adversarial_d_loss / adversarial_g_loss (and their backward ops) against a float64 reference
written with F.binary_cross_entropy_with_logits, plus gradcheck, opcheck, torch.compile, odd layouts,
huge logits, bad inputs, determinism and the pure-PyTorch fallback. Triton kernels: tests/kernels/.
"""

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import aae_fast as af
from aae_fast.ops import adversarial_loss as adv

OPS = torch.ops.aae_fast
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
ROWS = [1, 3, 17, 100, 1000]
LOW_PRECISION = (torch.float16, torch.bfloat16)
# (rtol, atol) against the float64 reference for the precise dtypes; the 16-bit ones are held to the
# error of a naive same-dtype implementation (see assert_close_to_reference).
PRECISE_TOL = {torch.float32: (1e-5, 1e-7), torch.float64: (1e-12, 1e-15)}


def logits(shape, dtype, device, seed, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(device=device, dtype=dtype)


def reference_d(real, fake):
    """The float64 loss a user would write: BCE with ones for real and zeros for fake."""
    r, f = real.double(), fake.double()
    return F.binary_cross_entropy_with_logits(r, torch.ones_like(r)) + F.binary_cross_entropy_with_logits(
        f, torch.zeros_like(f)
    )


def reference_g(fake):
    f = fake.double()
    return F.binary_cross_entropy_with_logits(f, torch.ones_like(f))


def naive_d(real, fake):
    """The same composite evaluated in the inputs' own dtype: the error budget for 16-bit inputs."""
    return F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + F.binary_cross_entropy_with_logits(
        fake, torch.zeros_like(fake)
    )


def naive_g(fake):
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def value_and_grads(fn, *inputs):
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    out = fn(*leaves)
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
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("column", [False, True], ids=["B", "Bx1"])
def test_d_loss_and_grads_match_float64_reference(device, dtype, rows, column):
    fake_rows = rows * 2 + 1  # real and fake batches may differ in size
    shape_r, shape_f = ((rows, 1), (fake_rows, 1)) if column else ((rows,), (fake_rows,))
    real, fake = logits(shape_r, dtype, device, seed=rows), logits(shape_f, dtype, device, seed=rows + 1)

    loss, (grad_r, grad_f) = value_and_grads(af.ops.adversarial_d_loss, real, fake)
    assert loss.shape == () and loss.device.type == device
    assert loss.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert grad_r.dtype == dtype and grad_f.dtype == dtype
    ref, (ref_r, ref_f) = value_and_grads(reference_d, real.double(), fake.double())
    naive, (naive_r, naive_f) = value_and_grads(naive_d, real, fake)
    assert_close_to_reference(loss, ref, naive, dtype, "loss")
    assert_close_to_reference(grad_r, ref_r, naive_r, dtype, "grad real_logits")
    assert_close_to_reference(grad_f, ref_f, naive_f, dtype, "grad fake_logits")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("rows", ROWS)
def test_g_loss_and_grad_match_float64_reference(device, dtype, rows):
    fake = logits((rows, 1), dtype, device, seed=7 * rows)
    loss, (grad,) = value_and_grads(af.ops.adversarial_g_loss, fake)
    assert loss.shape == () and grad.dtype == dtype
    ref, (ref_grad,) = value_and_grads(reference_g, fake.double())
    naive, (naive_grad,) = value_and_grads(naive_g, fake)
    assert_close_to_reference(loss, ref, naive, dtype, "loss")
    assert_close_to_reference(grad, ref_grad, naive_grad, dtype, "grad fake_logits")


def test_large_batch_and_any_shape():
    """10^5 logits (several reduction chunks, threads) and a 3-D shape: the mean is over all elements."""
    real = logits((100_000,), torch.float32, "cpu", seed=1)
    fake = logits((50, 7, 3), torch.float32, "cpu", seed=2)
    loss, (grad_r, grad_f) = value_and_grads(af.ops.adversarial_d_loss, real, fake)
    ref, (ref_r, ref_f) = value_and_grads(reference_d, real.double(), fake.double())
    torch.testing.assert_close(loss.double(), ref, rtol=1e-6, atol=0)
    torch.testing.assert_close(grad_r.double(), ref_r, rtol=1e-5, atol=1e-12)
    torch.testing.assert_close(grad_f.double(), ref_f, rtol=1e-5, atol=1e-12)
    assert grad_f.shape == (50, 7, 3)


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_float64(device):
    real = logits((5, 1), torch.float64, device, seed=3).requires_grad_()
    fake = logits((4,), torch.float64, device, seed=4).requires_grad_()
    assert torch.autograd.gradcheck(af.ops.adversarial_d_loss, (real, fake))
    assert torch.autograd.gradcheck(af.ops.adversarial_g_loss, (fake,))


def test_only_needed_inputs_are_saved_and_differentiated():
    real = logits((6,), torch.float32, "cpu", seed=5).requires_grad_()
    fake = logits((9,), torch.float32, "cpu", seed=6)  # no grad wanted
    saved = []

    def pack(t):
        saved.append(t)
        return t

    # The hooks see every saved tensor, whichever autograd (C++ or Python) serves the op.
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = af.ops.adversarial_d_loss(real, fake)
    assert len(saved) == 1 and saved[0].data_ptr() == real.data_ptr()
    (grad_r,) = torch.autograd.grad(loss, [real])
    _, (ref_r, _) = value_and_grads(reference_d, real.double(), fake.double())
    torch.testing.assert_close(grad_r.double(), ref_r, rtol=1e-5, atol=1e-12)


def test_backward_op_with_absent_inputs_returns_empty_placeholders():
    grad = torch.tensor(2.0)
    real = logits((4,), torch.float32, "cpu", seed=8)
    grad_r, grad_f = OPS.adversarial_d_loss_backward(grad, real, None)
    torch.testing.assert_close(grad_r, -2.0 * torch.sigmoid(-real) / 4)
    assert grad_f.shape == (0,)


# ------------------------------------------------------------------------------------------------
# Layouts, sizes and magnitudes


def test_non_contiguous_inputs():
    base_r = logits((40, 3), torch.float32, "cpu", seed=9)
    base_f = logits((5, 8), torch.float32, "cpu", seed=10)
    real, fake = base_r[:, 1], base_f.t()  # strided column, transposed matrix
    assert not real.is_contiguous() and not fake.is_contiguous()
    loss, (grad_r, grad_f) = value_and_grads(af.ops.adversarial_d_loss, real, fake)
    expected, (exp_r, exp_f) = value_and_grads(af.ops.adversarial_d_loss, real.contiguous(), fake.contiguous())
    assert torch.equal(loss, expected)
    assert grad_r.shape == real.shape and grad_f.shape == fake.shape
    assert torch.equal(grad_r, exp_r) and torch.equal(grad_f, exp_f)


def test_zero_elements_give_nan_like_torch_mean():
    empty, fake = torch.empty(0, 1, requires_grad=True), logits((3,), torch.float32, "cpu", seed=11)
    assert torch.isnan(naive_d(empty, fake))  # the composite a user writes gives NaN too
    loss = af.ops.adversarial_d_loss(empty, fake.requires_grad_())
    assert torch.isnan(loss) and torch.isnan(af.ops.adversarial_g_loss(empty))
    grad_e, grad_f = torch.autograd.grad(loss, [empty, fake])
    assert grad_e.shape == (0, 1) and grad_f.shape == (3,)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_huge_logits_are_stable(device, dtype):
    values = torch.tensor([1e4, -1e4, 1e4, -1e4, 80.0, -80.0, 0.0], dtype=dtype, device=device)
    loss, (grad_r, grad_f) = value_and_grads(af.ops.adversarial_d_loss, values, values.flip(0))
    g_loss, (g_grad,) = value_and_grads(af.ops.adversarial_g_loss, values)
    for t in (loss, grad_r, grad_f, g_loss, g_grad):
        assert torch.isfinite(t).all(), t
    ref, (ref_r, _) = value_and_grads(reference_d, values.double(), values.flip(0).double())
    torch.testing.assert_close(loss.double().cpu(), ref.cpu(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad_r.double().cpu(), ref_r.cpu(), rtol=1e-2, atol=1e-6)
    torch.testing.assert_close(g_loss.double().cpu(), reference_g(values).cpu(), rtol=1e-6, atol=1e-6)


def test_result_does_not_depend_on_thread_count():
    real = logits((300_001,), torch.float32, "cpu", seed=12)
    fake = logits((123_457,), torch.float32, "cpu", seed=13)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = af.ops.adversarial_d_loss(real, fake)
        torch.set_num_threads(max(2, threads))
        many = af.ops.adversarial_d_loss(real, fake)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, many)


# ------------------------------------------------------------------------------------------------
# torch.library and torch.compile


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_opcheck(device, dtype):
    real = logits((17, 1), dtype, device, seed=14).requires_grad_()
    fake = logits((9, 1), dtype, device, seed=15).requires_grad_()
    grad = torch.tensor(1.5, device=device)
    cases = [
        (OPS.adversarial_d_loss, (real, fake)),
        (OPS.adversarial_g_loss, (fake,)),
        (OPS.adversarial_d_loss_backward, (grad, real.detach(), fake.detach())),
        (OPS.adversarial_d_loss_backward, (grad, None, fake.detach())),
        (OPS.adversarial_g_loss_backward, (grad, fake.detach())),
    ]
    for op, args in cases:
        torch.library.opcheck(op, args)


def test_compile_fullgraph_forward_and_backward():
    def losses(real, fake):
        return af.ops.adversarial_d_loss(real, fake) + 0.5 * af.ops.adversarial_g_loss(fake)

    compiled = torch.compile(losses, fullgraph=True)
    real, fake = logits((33, 1), torch.float32, "cpu", seed=16), logits((21, 1), torch.float32, "cpu", seed=17)
    expected, expected_grads = value_and_grads(losses, real, fake)
    got, got_grads = value_and_grads(compiled, real, fake)
    torch.testing.assert_close(got, expected)
    for g, e in zip(got_grads, expected_grads):
        torch.testing.assert_close(g, e)


# ------------------------------------------------------------------------------------------------
# Bad inputs


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: af.ops.adversarial_d_loss(torch.zeros(3), torch.zeros(3, dtype=torch.float64)),
         r"fake_logits must have the dtype of real_logits \(Float\), got Double"),
        (lambda: af.ops.adversarial_d_loss(torch.zeros(3, dtype=torch.int64), torch.zeros(3, dtype=torch.int64)),
         "real_logits must be a float32, float64, float16 or bfloat16 tensor, got Long"),
        (lambda: af.ops.adversarial_g_loss(torch.zeros(3, dtype=torch.int32)),
         "fake_logits must be a float32, float64, float16 or bfloat16 tensor, got Int"),
        (lambda: OPS.adversarial_g_loss_backward(torch.ones(2), torch.zeros(2)),
         r"grad must be a 0-dim tensor .* got shape \[2\]"),
        (lambda: OPS.adversarial_d_loss_backward(torch.tensor(1.0), torch.zeros(2), torch.zeros(2).half()),
         "fake_logits must have the dtype of real_logits"),
    ],
)
def test_bad_inputs_name_argument_expected_and_received(call, message):
    with pytest.raises(RuntimeError, match=message):
        call()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device type (CUDA)")
def test_mismatched_devices_are_named():
    with pytest.raises(RuntimeError, match="fake_logits must be on cuda"):
        af.ops.adversarial_d_loss(torch.zeros(3, device="cuda"), torch.zeros(3))


# ------------------------------------------------------------------------------------------------
# The pure-PyTorch fallback


def test_composites_match_cpp_kernels():
    real, fake = logits((37, 1), torch.float32, "cpu", seed=18), logits((45,), torch.float32, "cpu", seed=19)
    grad = torch.tensor(0.75)
    torch.testing.assert_close(adv._d_loss_composite(real, fake), OPS.adversarial_d_loss(real, fake))
    torch.testing.assert_close(adv._g_loss_composite(fake), OPS.adversarial_g_loss(fake))
    for got, expected in zip(
        adv._d_loss_backward_composite(grad, real, fake), OPS.adversarial_d_loss_backward(grad, real, fake)
    ):
        torch.testing.assert_close(got, expected)
    torch.testing.assert_close(
        adv._g_loss_backward_composite(grad, fake), OPS.adversarial_g_loss_backward(grad, fake)
    )


FALLBACK_SCRIPT = r"""
import json, warnings, torch
warnings.simplefilter("ignore")
import aae_fast as af
real = (torch.arange(12.0) - 6).reshape(12, 1).requires_grad_()
fake = (torch.arange(7.0) * 1e3 - 3e3).requires_grad_()
d = af.ops.adversarial_d_loss(real, fake)
g = af.ops.adversarial_g_loss(fake)
grad_r, grad_f = torch.autograd.grad(d + g, [real, fake])
print(json.dumps({"cpu": {k: v["cpu"] for k, v in af.backend_info()["ops"].items()},
                  "d": d.item(), "g": g.item(), "grad_r": grad_r.tolist(), "grad_f": grad_f.tolist()}))
"""


def test_pure_pytorch_fallback_matches_extension():
    env = dict(os.environ, AAE_FAST_DISABLE_EXT="1")
    done = subprocess.run([sys.executable, "-c", FALLBACK_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["cpu"]["adversarial_d_loss"] == "composite"
    real = (torch.arange(12.0) - 6).reshape(12, 1).requires_grad_()
    fake = (torch.arange(7.0) * 1e3 - 3e3).requires_grad_()
    d, g = af.ops.adversarial_d_loss(real, fake), af.ops.adversarial_g_loss(fake)
    grad_r, grad_f = torch.autograd.grad(d + g, [real, fake])
    assert out["d"] == pytest.approx(d.item(), rel=1e-6) and out["g"] == pytest.approx(g.item(), rel=1e-6)
    torch.testing.assert_close(torch.tensor(out["grad_r"]), grad_r)
    torch.testing.assert_close(torch.tensor(out["grad_f"]), grad_f)
