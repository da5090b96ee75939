"""The Triton Parzen kernel (kernels/parzen_log_likelihood.py) against an explicit float64
reference, and against the C++ CPU op.

Without CUDA the kernel runs under the Triton interpreter (tests/conftest.py sets TRITON_INTERPRET=1
before triton is imported), with fixed blocks BLOCK_N = 16, BLOCK_M = 32, BLOCK_D = 32; the shapes
are small and chosen to straddle those blocks.
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
    from kernels import parzen_log_likelihood as pk
except ImportError:  # pragma: no cover
    from aae_fast.kernels import parzen_log_likelihood as pk

DEVICE = "cuda" if HAS_CUDA else "cpu"

# Input dtype -> (output dtype, eps of the compute precision). The interpreter has no bfloat16.
DTYPES = {
    torch.float32: (torch.float32, 2.0**-23),
    torch.float64: (torch.float64, 2.0**-52),
    torch.float16: (torch.float32, 2.0**-23),
}
if HAS_CUDA:
    DTYPES[torch.bfloat16] = (torch.float32, 2.0**-23)


def reference(x, samples, sigma):
    """float64, from exact differences, in the log domain."""
    x, samples = x.double().cpu(), samples.double().cpu()
    d2 = (x[:, None, :] - samples[None, :, :]).square().sum(-1)
    m, d = samples.shape
    h = 0.5 / sigma / sigma
    return torch.logsumexp(-d2 * h, dim=1) - math.log(m) - d * (math.log(sigma) + 0.5 * math.log(2 * math.pi))


def assert_matches(got, x, samples, sigma, dtype):
    """|err| <= 32 eps (||x||^2 + ||s||^2)_max h + 64 eps |ref| (the op's error model)."""
    out_dtype, eps = DTYPES[dtype]
    assert got.dtype == out_dtype and got.device.type == DEVICE
    ref = reference(x, samples, sigma)
    norms = x.double().square().sum(1).max().item() + samples.double().square().sum(1).max().item()
    atol = 32 * eps * norms * 0.5 / sigma**2 + 1e-30
    torch.testing.assert_close(got.cpu().double(), ref, atol=atol, rtol=64 * eps)


def make_inputs(n, m, d, dtype, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, d, generator=g, dtype=torch.float64) * scale).to(dtype).to(DEVICE)
    s = (torch.rand(m, d, generator=g, dtype=torch.float64) * scale).to(dtype).to(DEVICE)
    return x, s


# Shapes around the interpreter's blocks (16 rows, 32 samples, 32 features).
SHAPES = [(1, 1, 1), (3, 17, 7), (17, 3, 33), (16, 32, 32), (33, 65, 20), (5, 100, 70)]


@pytest.mark.parametrize("dtype", list(DTYPES), ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("n, m, d", SHAPES)
@pytest.mark.parametrize("sigma", [0.01, 0.3, 10.0])
def test_matches_float64_reference(n, m, d, sigma, dtype):
    x, s = make_inputs(n, m, d, dtype, seed=n + 3 * m + 7 * d)
    got = pk.parzen_log_likelihood_fwd(x, s, sigma)
    assert torch.isfinite(got).all()
    assert_matches(got, x, s, sigma, dtype)


def test_small_sigma_large_d_stays_finite():
    """At sigma = 0.01 every exp of a naive evaluation underflows; the log domain does not."""
    x, s = make_inputs(20, 40, 784, torch.float32, seed=1)
    got = pk.parzen_log_likelihood_fwd(x, s, 0.01)
    assert torch.isfinite(got).all()
    assert_matches(got, x, s, 0.01, torch.float32)


@pytest.mark.parametrize("sigma", [1e-30, 1e30])
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # numpy, interpreter
def test_extreme_sigma_gives_no_nan(sigma):
    x, s = make_inputs(5, 9, 3, torch.float32, seed=2)
    got = pk.parzen_log_likelihood_fwd(x, s, sigma)
    assert not torch.isnan(got).any()
    if sigma > 1:
        flat = -3 * (math.log(sigma) + 0.5 * math.log(2 * math.pi))
        torch.testing.assert_close(got.cpu().double(), torch.full((5,), flat, dtype=torch.float64), rtol=1e-6, atol=0)


def test_strided_inputs():
    base_x, base_s = make_inputs(20, 40, 2 * 19, torch.float32, seed=3)
    x = base_x[:, ::2]
    s = base_s[:, 1::2].t().contiguous().t()  # column-major
    got = pk.parzen_log_likelihood_fwd(x, s, 0.4)
    assert_matches(got, x, s, 0.4, torch.float32)
    expanded = base_x[:1].expand(18, -1)  # zero row stride, across two row blocks
    rows = pk.parzen_log_likelihood_fwd(expanded, base_s, 0.4)
    torch.testing.assert_close(rows, rows[:1].expand(18), rtol=1e-6, atol=0)


def test_zero_sizes_and_zero_dimension():
    _, s = make_inputs(1, 5, 3, torch.float32)
    assert pk.parzen_log_likelihood_fwd(s[:0], s, 1.0).shape == (0,)
    got = pk.parzen_log_likelihood_fwd(torch.zeros(3, 0, device=DEVICE), torch.zeros(4, 0, device=DEVICE), 0.5)
    torch.testing.assert_close(got.cpu(), torch.zeros(3))  # D = 0: each kernel is the density 1


def test_rows_do_not_depend_on_the_block():
    x, s = make_inputs(40, 50, 9, torch.float64, seed=4)
    full = pk.parzen_log_likelihood_fwd(x, s, 0.2)
    for lo, hi in [(0, 1), (15, 17), (30, 40)]:
        torch.testing.assert_close(pk.parzen_log_likelihood_fwd(x[lo:hi], s, 0.2), full[lo:hi], rtol=1e-13, atol=0)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda x, s: (x[0], s, 1.0), "x must have shape"),
        (lambda x, s: (x, s[:, :2], 1.0), "samples must have the dimension D"),
        (lambda x, s: (x, s.double(), 1.0), "samples must have the dtype of x"),
        (lambda x, s: (x, s[:0], 1.0), "samples must hold at least one sample"),
        (lambda x, s: (x.int(), s.int(), 1.0), "x must be float32"),
        (lambda x, s: (x, s, 0.0), "sigma must be a finite number > 0"),
        (lambda x, s: (x, s, float("nan")), "sigma must be a finite number > 0"),
    ],
)
def test_bad_arguments(mutate, message):
    x, s = make_inputs(4, 6, 3, torch.float32)
    with pytest.raises(ValueError, match=message):
        pk.parzen_log_likelihood_fwd(*mutate(x, s))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
def test_matches_cpp_cpu_op(dtype):
    try:
        import aae_fast
    except Exception as e:  # pragma: no cover
        pytest.skip(f"aae_fast does not import: {e!r}")
    if aae_fast.backend_info()["ops"]["parzen_log_likelihood"]["cpu"] != "cpp":
        pytest.skip("the C++ CPU kernel is not loaded (the op runs its composite fallback)")
    x, s = make_inputs(37, 70, 45, dtype, seed=5)
    got = pk.parzen_log_likelihood_fwd(x, s, 0.25)
    want = torch.ops.aae_fast.parzen_log_likelihood(x.cpu(), s.cpu(), 0.25)
    eps = DTYPES[dtype][1]
    torch.testing.assert_close(got.cpu(), want, rtol=64 * eps, atol=64 * eps * 50 * 8)
