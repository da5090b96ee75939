"""The prior-sampling ops against the float64 oracle of the stream (aae_fast.ops._stream), plus
opcheck, torch.compile and bad inputs. Kernel-level Triton tests: tests/kernels/."""

import pytest
import torch

import aae_fast  # noqa: F401  (loads the ops)
from aae_fast.ops import _stream

OPS = torch.ops.aae_fast
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# Output dtype -> (atol, rtol) against the float64 oracle; fp32 compute for all but float64.
DTYPES = [
    (torch.float64, 1e-12, 1e-12),
    (torch.float32, 1e-5, 1e-5),
    (torch.float16, 1e-2, 2e-3),
    (torch.bfloat16, 5e-2, 1.6e-2),
]


def mixture_params(K, D, tril, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    loc = torch.randn(K, D, generator=g, dtype=torch.float64) * 3
    if tril:
        scale = torch.randn(K, D, D, generator=g, dtype=torch.float64)
        # Garbage above the diagonal must be ignored by every implementation.
        scale = scale.tril() + torch.eye(D, dtype=torch.float64) * 2 + scale.triu(1) * 100
    else:
        scale = torch.rand(K, D, generator=g, dtype=torch.float64) + 0.1
    w = torch.rand(K, generator=g, dtype=torch.float64) + 0.05
    cum = torch.cumsum(w / w.sum(), 0)
    cum[-1] = 1.0
    return [t.to(device=device, dtype=dtype) for t in (loc, scale, cum)]


def state(device, seed=20251125, offset=2**32 - 17):
    # An offset just below 2^32 makes row counters carry into the high word mid-call.
    return torch.tensor([seed, offset], dtype=torch.int64, device=device)


def labels_for(n, K, device, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, K, (n,), generator=g).to(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype, atol, rtol", DTYPES)
@pytest.mark.parametrize("n, K, D", [(1, 1, 1), (37, 3, 3), (129, 7, 5), (1001, 10, 2)])
@pytest.mark.parametrize("tril", [False, True])
@pytest.mark.parametrize("with_labels", [False, True])
def test_gaussian_mixture_matches_float64_oracle(device, dtype, atol, rtol, n, K, D, tril, with_labels):
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    loc, scale, cum = mixture_params(K, D, tril, compute, device)
    labels = labels_for(n, K, device) if with_labels else None
    s = state(device)
    out = OPS.sample_gaussian_mixture(s, n, loc, scale, cum, labels, dtype)
    assert out.shape == (n, D) and out.dtype == dtype and out.device.type == device
    assert s[1].item() == 2**32 - 17 + n, "the op must advance the offset by n"

    loc64, scale64, cum64 = mixture_params(K, D, tril, torch.float64, "cpu")
    # The categories come from exact float32 uniforms compared against cum in compute precision.
    cum_ref = cum.double().cpu()
    expected = _stream.sample_gaussian_mixture(
        state("cpu"), n, loc64, scale64, cum_ref, None if labels is None else labels.cpu(), torch.float64
    )
    torch.testing.assert_close(out.cpu().double(), expected, atol=atol * 10, rtol=rtol)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype, atol, rtol", DTYPES)
@pytest.mark.parametrize("n, K", [(1, 1), (53, 4), (777, 10)])
@pytest.mark.parametrize("with_labels", [False, True])
def test_swiss_roll_matches_float64_oracle(device, dtype, atol, rtol, n, K, with_labels):
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    _, _, cum = mixture_params(K, 1, False, compute, device)
    labels = labels_for(n, K, device) if with_labels else None
    s = state(device)
    out = OPS.sample_swiss_roll(s, n, cum, labels, 2.5, 1.5, dtype)
    assert out.shape == (n, 2) and out.dtype == dtype
    assert s[1].item() == 2**32 - 17 + n
    expected = _stream.sample_swiss_roll(
        state("cpu"), n, cum.double().cpu(), None if labels is None else labels.cpu(), 2.5, 1.5, torch.float64
    )
    torch.testing.assert_close(out.cpu().double(), expected, atol=atol * 10, rtol=rtol)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("n, K", [(1, 1), (61, 3), (999, 10)])
@pytest.mark.parametrize("with_labels", [False, True])
def test_categorical_matches_oracle_exactly(device, dtype, n, K, with_labels):
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    _, _, cum = mixture_params(K, 1, False, compute, device)
    labels = labels_for(n, K, device) if with_labels else None
    out = OPS.sample_categorical(state(device), n, cum, labels, dtype)
    expected = _stream.sample_categorical(
        state("cpu"), n, cum.cpu(), None if labels is None else labels.cpu(), dtype
    )
    assert torch.equal(out.cpu(), expected)


@pytest.mark.parametrize("device", DEVICES)
def test_same_state_same_samples_and_rows_independent_of_n(device):
    loc, scale, cum = mixture_params(4, 3, True, torch.float32, device)
    a = OPS.sample_gaussian_mixture(state(device), 50, loc, scale, cum, None, torch.float32)
    b = OPS.sample_gaussian_mixture(state(device), 50, loc, scale, cum, None, torch.float32)
    prefix = OPS.sample_gaussian_mixture(state(device), 10, loc, scale, cum, None, torch.float32)
    assert torch.equal(a, b)
    assert torch.equal(a[:10], prefix)


@pytest.mark.parametrize("device", DEVICES)
def test_consecutive_calls_continue_the_stream(device):
    """Two calls of 20 and 30 rows on one state equal one call of 50 rows: no counter is reused."""
    loc, scale, cum = mixture_params(3, 2, False, torch.float32, device)
    s = state(device)
    first = OPS.sample_gaussian_mixture(s, 20, loc, scale, cum, None, torch.float32)
    second = OPS.sample_gaussian_mixture(s, 30, loc, scale, cum, None, torch.float32)
    whole = OPS.sample_gaussian_mixture(state(device), 50, loc, scale, cum, None, torch.float32)
    assert torch.equal(torch.cat([first, second]), whole)


def test_zero_rows():
    loc, scale, cum = mixture_params(2, 3, False, torch.float32, "cpu")
    s = state("cpu")
    out = OPS.sample_gaussian_mixture(s, 0, loc, scale, cum, None, torch.float32)
    assert out.shape == (0, 3)
    assert s[1].item() == 2**32 - 17


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    loc, scale, cum = mixture_params(5, 3, True, torch.float32, device)
    labels = labels_for(17, 5, device)
    diag = mixture_params(5, 3, False, torch.float32, device)[1]
    cases = [
        (OPS.sample_gaussian_mixture, (state(device), 17, loc, scale, cum, labels, torch.float32)),
        (OPS.sample_gaussian_mixture, (state(device), 17, loc, diag, cum, None, torch.float16)),
        (OPS.sample_swiss_roll, (state(device), 17, cum, labels, 3.0, 2.0, torch.float32)),
        (OPS.sample_categorical, (state(device), 17, cum, None, torch.float32)),
    ]
    for op, args in cases:
        torch.library.opcheck(op, args)


def test_compile_fullgraph_matches_eager():
    loc, scale, cum = mixture_params(10, 2, True, torch.float32, "cpu")
    labels = labels_for(64, 10, "cpu")

    def draw(s, labels):
        z = OPS.sample_gaussian_mixture(s, 64, loc, scale, cum, labels, torch.float32)
        y = OPS.sample_categorical(s, 64, cum, labels, torch.float32)
        r = OPS.sample_swiss_roll(s, 64, cum, None, 3.0, 2.0, torch.float32)
        return torch.cat([z, y, r], dim=1) * 2.0

    compiled = torch.compile(draw, fullgraph=True)
    s_eager, s_compiled = state("cpu"), state("cpu")
    expected = draw(s_eager, labels)
    got = compiled(s_compiled, labels)
    torch.testing.assert_close(got, expected)
    # The in-place state advance survives functionalisation, so a second call draws new numbers.
    assert torch.equal(s_compiled, s_eager)
    assert not torch.equal(compiled(s_compiled, labels), got)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda a: a.update(n=-1), "n must be a non-negative"),
        (lambda a: a.update(state=torch.zeros(3, dtype=torch.int64)), "rng_state must be"),
        (lambda a: a.update(state=torch.zeros(2, dtype=torch.int32)), "rng_state must be"),
        (lambda a: a.update(labels=torch.full((7,), 5)), r"labels must lie in \[0, 5\)"),
        (lambda a: a.update(labels=torch.full((7,), -1)), r"labels must lie in \[0, 5\)"),
        (lambda a: a.update(labels=torch.zeros(7, dtype=torch.int32)), "labels must be an int64"),
        (lambda a: a.update(labels=torch.zeros(6, dtype=torch.int64)), r"labels must have shape \[n\]"),
        (lambda a: a.update(scale=torch.ones(5, 4)), "scale must have shape"),
        (lambda a: a.update(loc=torch.ones(4, 3)), "loc must have shape"),
        (lambda a: a.update(loc=torch.ones(5, 3, dtype=torch.float64)), "share one dtype"),
        (lambda a: a.update(cum=torch.ones(5, 1)), "cum_weights must have shape"),
        (lambda a: a.update(cum=torch.ones(5, dtype=torch.float16)), "cum_weights must be float32"),
        (lambda a: a.update(dtype=torch.int32), "dtype must be float32, float64, float16 or bfloat16"),
        (lambda a: a.update(dtype=torch.float8_e4m3fn), "dtype must be float32, float64, float16 or bfloat16"),
    ],
)
def test_bad_inputs_name_argument_expected_and_received(mutate, message):
    loc, scale, cum = mixture_params(5, 3, False, torch.float32, "cpu")
    args = dict(state=state("cpu"), n=7, loc=loc, scale=scale, cum=cum, labels=None, dtype=torch.float32)
    mutate(args)
    # Label values out of range are a ValueError (TORCH_CHECK_VALUE), the rest RuntimeErrors.
    with pytest.raises((RuntimeError, ValueError), match=message):
        OPS.sample_gaussian_mixture(
            args["state"], args["n"], args["loc"], args["scale"], args["cum"], args["labels"], args["dtype"]
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device type (CUDA)")
def test_wrong_device_is_named():
    loc, scale, cum = mixture_params(5, 3, False, torch.float32, "cuda")
    with pytest.raises(RuntimeError, match="labels must be on cuda"):
        OPS.sample_gaussian_mixture(state("cuda"), 7, loc, scale, cum, torch.zeros(7, dtype=torch.int64), torch.float32)
