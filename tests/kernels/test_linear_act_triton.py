"""The Triton linear_act kernels (kernels/linear_act.py) against a float64 reference written with
F.linear and the torch activations.

Without CUDA the kernels run under the Triton interpreter (tests/conftest.py sets TRITON_INTERPRET=1
before triton is imported), on CPU tensors, with small shapes; the interpreter has no bfloat16, so
bfloat16 runs on a GPU only.
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
    from kernels import linear_act as kl
except ImportError:  # pragma: no cover
    from aae_fast.kernels import linear_act as kl

DEVICE = "cuda" if HAS_CUDA else "cpu"
ACTIVATIONS = ["identity", "relu", "leaky_relu", "sigmoid", "tanh"]
DTYPES = {torch.float32: (2e-5, 2e-5), torch.float64: (1e-10, 1e-12)}
if HAS_CUDA:
    DTYPES[torch.bfloat16] = (2e-2, 2e-2)
    DTYPES[torch.float16] = (5e-3, 5e-3)


def act(z, name, slope=0.01):
    return {"identity": lambda: z, "relu": lambda: torch.relu(z), "leaky_relu": lambda: F.leaky_relu(z, slope),
            "sigmoid": lambda: torch.sigmoid(z), "tanh": lambda: torch.tanh(z)}[name]()


def inputs(B, K, N, dtype, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, K, generator=g, dtype=torch.float64)
    w = torch.randn(N, K, generator=g, dtype=torch.float64) / max(K, 1) ** 0.5
    b = torch.randn(N, generator=g, dtype=torch.float64) if bias else None
    return [None if t is None else t.to(DEVICE, dtype) for t in (x, w, b)]


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("B, K, N", [(1, 1, 1), (3, 7, 33), (17, 33, 7)])
def test_forward(dtype, activation, bias, B, K, N):
    x, w, b = inputs(B, K, N, dtype, bias)
    got = kl.linear_act_fwd(x, w, b, activation, 0.01)
    ref = act(F.linear(x.double(), w.double(), None if b is None else b.double()), activation)
    rtol, atol = DTYPES[dtype]
    assert got.dtype == dtype and got.shape == (B, N)
    torch.testing.assert_close(got.double().cpu(), ref.cpu(), rtol=rtol, atol=atol)


def test_forward_non_contiguous_and_empty():
    x, w, b = inputs(20, 18, 10, torch.float32)
    xs, ws = x[::2, ::2], w.t().contiguous().t()
    got = kl.linear_act_fwd(xs, ws[:, ::2], b, "tanh", 0.01)
    ref = torch.tanh(F.linear(xs.double(), ws[:, ::2].double(), b.double()))
    torch.testing.assert_close(got.double(), ref, rtol=2e-5, atol=2e-5)
    assert kl.linear_act_fwd(x[:0], w, b).shape == (0, 10)
    torch.testing.assert_close(kl.linear_act_fwd(x[:, :0], w[:, :0], b, "identity"), b.expand(20, 10))


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("mask", [(True, True, True), (False, True, True), (True, False, False), (False, False, True)])
def test_backward(dtype, activation, mask):
    B, K, N = 17, 9, 70  # N > one column block, B > one row block
    x, w, b = inputs(B, K, N, dtype)
    xd, wd, bd = (t.double().requires_grad_() for t in (x, w, b))
    yd = act(F.linear(xd, wd, bd), activation)
    g = torch.randn(B, N, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(DEVICE)
    refs = torch.autograd.grad(yd, (xd, wd, bd), g)
    y = yd.detach().to(dtype)
    got = kl.linear_act_bwd(g.to(DEVICE, dtype), y, x if mask[1] else None, w if mask[0] else None,
                            activation, 0.01, list(mask))
    rtol, atol = DTYPES[dtype]
    for gr, r, want in zip(got, refs, mask):
        if want:
            torch.testing.assert_close(gr.double().cpu(), r.cpu(), rtol=rtol * 10, atol=atol * 10)
        else:
            assert gr.numel() == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_relu_keeps_nan_and_tanh_is_accurate_near_zero(dtype):
    nan = kl.linear_act_fwd(torch.tensor([[float("nan"), 1.0]], dtype=dtype, device=DEVICE),
                            torch.eye(2, dtype=dtype, device=DEVICE), None, "relu")
    assert torch.isnan(nan).all(), nan  # as torch.relu: NaN in, NaN out
    z = torch.tensor([1e-30, 1e-8, 1e-6, 1e-4, 1e-3, 0.01, 0.0249, 0.0251, 0.2499, 0.2501, 1.0, 5.0],
                     dtype=torch.float64)
    z = torch.cat([z, -z])
    y = kl.linear_act_fwd(z[:, None].to(DEVICE, dtype), torch.ones(1, 1, dtype=dtype, device=DEVICE),
                          None, "tanh")
    rel = ((y[:, 0].cpu().double() - torch.tanh(z)).abs() / torch.tanh(z).abs()).max().item()
    assert rel < (1e-6 if dtype == torch.float32 else 1e-14), rel


def test_relu_backward_passes_the_gradient_of_a_nan_output():
    # As torch.relu's backward: blocked where y <= 0 only; NaN outputs keep their gradient.
    y = torch.tensor([[float("nan"), -float("nan"), 2.0, -0.0, 0.0]], device=DEVICE)
    g = torch.full_like(y, 3.0)
    _, _, grad_b = kl.linear_act_bwd(g, y, None, None, "relu", 0.01, [False, False, True])
    assert grad_b.cpu().tolist() == [3.0, 3.0, 3.0, 0.0, 0.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("B", [64, 65, 200])
def test_backward_row_chunks(dtype, B):
    """Batches of one, two and four row chunks (64 rows each under the interpreter, 256 on a GPU):
    grad_bias from the per-chunk partials added in order, against float64, and the same bits on
    every call."""
    N = 70
    g = torch.randn(B, N, generator=torch.Generator().manual_seed(B), dtype=torch.float64)
    y = torch.rand(B, N, generator=torch.Generator().manual_seed(B + 1), dtype=torch.float64)
    expected = (g * y * (1 - y)).sum(0)  # sigmoid': y (1 - y)
    got = kl.linear_act_bwd(g.to(DEVICE, dtype), y.to(DEVICE, dtype), None, None, "sigmoid", 0.01,
                            [False, False, True])[2]
    rtol, atol = DTYPES[dtype]
    torch.testing.assert_close(got.double().cpu(), expected, rtol=rtol * 10, atol=atol * 10 * B ** 0.5)
    again = kl.linear_act_bwd(g.to(DEVICE, dtype), y.to(DEVICE, dtype), None, None, "sigmoid", 0.01,
                              [False, False, True])[2]
    assert torch.equal(got, again)


def test_bad_inputs():
    x, w, b = inputs(4, 5, 3, torch.float32)
    with pytest.raises(RuntimeError, match="weight must have shape"):
        kl.linear_act_fwd(x, w[:, :2], b)
    with pytest.raises(RuntimeError, match="activation must be one of"):
        kl.linear_act_fwd(x, w, b, "gelu")
