"""The Triton prior-sampling kernels (kernels/prior_sample.py) against a float64 NumPy model of the
stream in csrc/include/aae_fast/philox.h, written here independently of every backend.

Without CUDA the kernels run under the Triton interpreter (tests/conftest.py sets TRITON_INTERPRET=1
before triton is imported); the shapes are small so that the module stays fast there.
"""

import itertools
import os

import numpy as np
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
import triton.language as tl  # noqa: E402

try:  # the source tree (rootdir on sys.path), else the installed package
    from kernels import prior_sample as ps
except ImportError:  # pragma: no cover
    from aae_fast.kernels import prior_sample as ps

DEVICE = "cuda" if HAS_CUDA else "cpu"
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"

# ------------------------------------------------------------------------------------------------
# Float64 NumPy model of the stream

M32 = np.uint64(0xFFFFFFFF)
KEY_A, KEY_B = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
ROUND_A, ROUND_B = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)


def philox_np(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 on uint64 arrays holding uint32 values (a 32 x 32-bit product fits in 64)."""
    c0, c1, c2, c3, k0, k1 = np.broadcast_arrays(*(np.asarray(x, dtype=np.uint64) for x in
                                                   (c0, c1, c2, c3, k0, k1)))
    for _ in range(10):
        prod_a, prod_b = ROUND_A * c0, ROUND_B * c2
        c0, c2 = (prod_b >> 32) ^ c1 ^ k0, (prod_a >> 32) ^ c3 ^ k1
        c1, c3 = prod_b & M32, prod_a & M32
        k0, k1 = (k0 + KEY_A) & M32, (k1 + KEY_B) & M32
    return c0, c1, c2, c3


def blocks_per_row(dim):
    return (2 + 2 * ((dim + 1) // 2) + 3) // 4


def row_words(seed, offset, n, num_blocks):
    """Words [n, 4 num_blocks] (uint64 holding uint32) of rows 0..n-1 under state (seed, offset)."""
    seed = np.array(seed, dtype=np.int64).view(np.uint64)
    offset = np.array(offset, dtype=np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        rows = offset + np.arange(n, dtype=np.uint64)  # wraps like uint64
    blocks = [
        np.stack(philox_np(rows & M32, rows >> 32, b, 0, seed & M32, seed >> 32), axis=1)
        for b in range(num_blocks)
    ]
    return np.concatenate(blocks, axis=1)


def uniform01(w):
    return (w >> np.uint64(8)).astype(np.float64) * 2.0**-24


def uniform01c(w):
    return ((w >> np.uint64(8)) + np.uint64(1)).astype(np.float64) * 2.0**-24


def ref_components(words, cum, labels):
    if labels is not None:
        return labels.astype(np.int64)
    u = uniform01(words[:, 0])
    return (u[:, None] >= cum[None, :-1]).sum(axis=1).astype(np.int64)


def ref_normals(words, dim):
    pairs = (dim + 1) // 2
    rad = np.sqrt(-2.0 * np.log(uniform01c(words[:, 2 : 2 + 2 * pairs : 2])))
    angle = 2.0 * np.pi * uniform01(words[:, 3 : 3 + 2 * pairs : 2])
    eps = np.stack((rad * np.cos(angle), rad * np.sin(angle)), axis=2)
    return eps.reshape(words.shape[0], 2 * pairs)[:, :dim]


def np64(t):
    return None if t is None else t.detach().cpu().to(torch.float64 if t.is_floating_point() else
                                                       torch.int64).numpy()


def ref_mixture(state, n, loc, scale, cum, labels):
    loc, scale, cum, labels = np64(loc), np64(scale), np64(cum), np64(labels)
    dim = loc.shape[1]
    words = row_words(*state, n, blocks_per_row(dim))
    c = ref_components(words, cum, labels)
    eps = ref_normals(words, dim)
    if scale.ndim == 3:
        z = loc[c] + np.einsum("njk,nk->nj", np.tril(scale)[c], eps)
    else:
        z = loc[c] + scale[c] * eps
    return z, c


def ref_swiss_roll(state, n, cum, labels, radius, turns):
    cum, labels = np64(cum), np64(labels)
    words = row_words(*state, n, 1)
    c = ref_components(words, cum, labels)
    t = (c + uniform01(words[:, 1])) / cum.shape[0]
    root = np.sqrt(t)
    angle = 2.0 * np.pi * turns * root
    return np.stack((radius * root * np.cos(angle), radius * root * np.sin(angle)), axis=1), c


def ref_categorical(state, n, cum, labels):
    cum, labels = np64(cum), np64(labels)
    c = ref_components(row_words(*state, n, 1), cum, labels)
    return np.eye(cum.shape[0])[c], c


# ------------------------------------------------------------------------------------------------
# Inputs and tolerances

# (params dtype, output dtype): the kernels compute in the params' dtype.
DTYPE_PAIRS = [
    (torch.float32, torch.float32),
    (torch.float32, torch.float16),
    (torch.float64, torch.float64),
    (torch.float64, torch.float32),
]
if HAS_CUDA:  # the interpreter has no bfloat16
    DTYPE_PAIRS.append((torch.float32, torch.bfloat16))


def tolerance(compute, out):
    """(atol as a fraction of max |z|, rtol): the compute dtype's error, the output's rounding."""
    rel = 1e-12 if compute == torch.float64 else 1e-5
    if out in (torch.float16, torch.bfloat16):
        return rel, torch.finfo(out).eps
    return rel, (rel if out == torch.float64 else max(rel, 1e-6))


def assert_matches(out, ref, compute, out_dtype):
    assert out.dtype == out_dtype and tuple(out.shape) == ref.shape
    got = out.detach().cpu().to(torch.float64)
    ref = torch.from_numpy(ref)
    atol_frac, rtol = tolerance(compute, out_dtype)
    atol = atol_frac * max(1.0, ref.abs().max().item())
    if out_dtype == torch.float16:
        atol += 2.0**-24  # subnormal spacing
    torch.testing.assert_close(got, ref, atol=atol, rtol=rtol)


def make_state(seed=0x1234_5678_9ABC_DEF, offset=2**32 - 20):
    # An offset just below 2^32 makes the row counters carry into their high word mid-call.
    return torch.tensor([seed, offset], dtype=torch.int64, device=DEVICE)


def cum_weights(K, dtype, gen):
    w = torch.rand(K, generator=gen, dtype=torch.float64) + 0.05
    cum = torch.cumsum(w / w.sum(), 0)
    cum[-1] = 1.0
    return cum.to(device=DEVICE, dtype=dtype)


def mixture_params(K, D, tril, dtype, seed=0, separation=0.0):
    gen = torch.Generator().manual_seed(seed)
    loc = torch.randn(K, D, generator=gen, dtype=torch.float64) * 3
    loc += separation * torch.arange(K, dtype=torch.float64)[:, None]
    if tril:
        scale = torch.randn(K, D, D, generator=gen, dtype=torch.float64) * 0.5
        # entries above the diagonal are garbage the kernel must ignore
        scale = scale.tril() + torch.eye(D, dtype=torch.float64) + scale.triu(1) * 100
    else:
        scale = torch.rand(K, D, generator=gen, dtype=torch.float64) + 0.1
    loc, scale = (t.to(device=DEVICE, dtype=dtype) for t in (loc, scale))
    return loc, scale, cum_weights(K, dtype, gen)


def make_labels(n, K, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, K, (n,), generator=gen, dtype=torch.int64).to(DEVICE)


def state_tuple(state):
    return tuple(int(v) for v in state.cpu())


# ------------------------------------------------------------------------------------------------
# The raw stream: tl.philox == philox.h, exact uniforms


@triton.jit
def _probe_kernel(state_ptr, words_ptr, u_ptr, uc_ptr, n, NUM_BLOCKS: tl.constexpr,
                  BLOCK_N: tl.constexpr):
    """Raw words [n, 4 NUM_BLOCKS] of the kernels' row counters, and their float32 uniforms."""
    rows, row_mask, seed, c0, c1 = ps._row_counters(state_ptr, tl.program_id(0), n, BLOCK_N)
    zero = tl.zeros([BLOCK_N], dtype=tl.uint32)
    for b in tl.static_range(NUM_BLOCKS):
        w0, w1, w2, w3 = tl.philox(seed, c0, c1, zero + b, zero)
        words = tl.join(tl.join(w0, w2), tl.join(w1, w3)).reshape(BLOCK_N, 4)
        idx = rows[:, None] * (4 * NUM_BLOCKS) + 4 * b + tl.arange(0, 4)[None, :]
        tl.store(words_ptr + idx, words.to(tl.int64), mask=row_mask[:, None])
        tl.store(u_ptr + idx, ps._uniform01(words, tl.float32), mask=row_mask[:, None])
        tl.store(uc_ptr + idx, ps._uniform01c(words, tl.float32), mask=row_mask[:, None])


# Random123 known-answer vectors for philox4x32-10: (counter, key) -> output.
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter, key, expected", KAT)
def test_reference_philox_known_answers(counter, key, expected):
    assert tuple(int(w) for w in philox_np(*counter, *key)) == expected


def test_kernel_words_equal_philox_h():
    """tl.philox with uint32 counters and key (lo32(seed), hi32(seed)) is philox.h's Philox4x32-10;
    the row counters carry into the high word; the uniforms are exact."""
    n, num_blocks = 37, 2
    for seed, offset in [(0x1234_5678_9ABC_DEF, 2**32 - 20), (-5, -3), (0, 0)]:  # -3: wraps 2^64
        state = make_state(seed, offset)
        words = torch.empty((n, 4 * num_blocks), dtype=torch.int64, device=DEVICE)
        u = torch.empty(words.shape, dtype=torch.float32, device=DEVICE)
        uc = torch.empty_like(u)
        grid = (triton.cdiv(n, 16),)
        _probe_kernel[grid](state, words, u, uc, n, NUM_BLOCKS=num_blocks, BLOCK_N=16)
        ref = row_words(seed, offset, n, num_blocks)
        np.testing.assert_array_equal(words.cpu().numpy().astype(np.uint64), ref)
        np.testing.assert_array_equal(u.cpu().numpy().astype(np.float64), uniform01(ref))
        np.testing.assert_array_equal(uc.cpu().numpy().astype(np.float64), uniform01c(ref))
        assert u.max() < 1 and uc.min() > 0


# ------------------------------------------------------------------------------------------------
# Samples against the float64 model

MIXTURE_SHAPES = list(itertools.product((1, 37, 129), (1, 3, 5), (1, 4, 7)))
# wider D: several column tiles (diag) and several k chunks per column tile (tril)
MIXTURE_SHAPES += [(37, 13, 3), (37, 33, 2)]


@pytest.mark.parametrize("tril", [False, True], ids=["diag", "tril"])
@pytest.mark.parametrize("with_labels", [False, True], ids=["drawn", "labels"])
@pytest.mark.parametrize("n, D, K", MIXTURE_SHAPES)
def test_gaussian_mixture_fp32(n, D, K, with_labels, tril):
    loc, scale, cum = mixture_params(K, D, tril, torch.float32, seed=n * 100 + D * 10 + K)
    labels = make_labels(n, K) if with_labels else None
    state = make_state()
    ref, _ = ref_mixture(state_tuple(state), n, loc, scale, cum, labels)
    out = ps.sample_gaussian_mixture_fwd(state, n, loc, scale, cum, labels, torch.float32)
    assert_matches(out, ref, torch.float32, torch.float32)


@pytest.mark.parametrize("compute, out_dtype", DTYPE_PAIRS, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("tril", [False, True], ids=["diag", "tril"])
@pytest.mark.parametrize("with_labels", [False, True], ids=["drawn", "labels"])
@pytest.mark.parametrize("n, D, K", [(37, 5, 7), (129, 3, 4)])
def test_gaussian_mixture_dtypes(n, D, K, with_labels, tril, compute, out_dtype):
    loc, scale, cum = mixture_params(K, D, tril, compute, seed=7)
    labels = make_labels(n, K) if with_labels else None
    state = make_state(seed=-123456789, offset=5)
    ref, _ = ref_mixture(state_tuple(state), n, loc, scale, cum, labels)
    out = ps.sample_gaussian_mixture_fwd(state, n, loc, scale, cum, labels, out_dtype)
    assert_matches(out, ref, compute, out_dtype)


@pytest.mark.parametrize("tril", [False, True], ids=["diag", "tril"])
@pytest.mark.parametrize("compute", [torch.float32, torch.float64], ids=["fp32", "fp64"])
def test_gaussian_mixture_components_exact(compute, tril):
    """Components 1000 apart: the component each row was drawn from is read back exactly."""
    n, D, K = 129, 3, 7
    loc, scale, cum = mixture_params(K, D, tril, compute, seed=3, separation=1000.0)
    state = make_state()
    _, comp = ref_mixture(state_tuple(state), n, loc, scale, cum, None)
    out = ps.sample_gaussian_mixture_fwd(state, n, loc, scale, cum, None, torch.float32)
    got = torch.cdist(out.double().cpu(), loc.double().cpu()).argmin(dim=1).numpy()
    np.testing.assert_array_equal(got, comp)
    assert len(np.unique(comp)) == K  # every component exercised


@pytest.mark.parametrize("compute, out_dtype", DTYPE_PAIRS, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("with_labels", [False, True], ids=["drawn", "labels"])
@pytest.mark.parametrize("n, K", [(1, 1), (37, 4), (129, 7)])
def test_swiss_roll(n, K, with_labels, compute, out_dtype):
    cum = cum_weights(K, compute, torch.Generator().manual_seed(K))
    labels = make_labels(n, K) if with_labels else None
    radius, turns = 1.7, 2.3
    state = make_state()
    ref, _ = ref_swiss_roll(state_tuple(state), n, cum, labels, radius, turns)
    out = ps.sample_swiss_roll_fwd(state, n, cum, labels, radius, turns, out_dtype)
    assert_matches(out, ref, compute, out_dtype)


@pytest.mark.parametrize("compute, out_dtype", DTYPE_PAIRS, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("with_labels", [False, True], ids=["drawn", "labels"])
@pytest.mark.parametrize("n, K", [(1, 1), (37, 4), (129, 7), (37, 200)])
def test_categorical_exact(n, K, with_labels, compute, out_dtype):
    cum = cum_weights(K, compute, torch.Generator().manual_seed(K))
    labels = make_labels(n, K) if with_labels else None
    state = make_state()
    ref, _ = ref_categorical(state_tuple(state), n, cum, labels)
    out = ps.sample_categorical_fwd(state, n, cum, labels, out_dtype)
    assert out.dtype == out_dtype
    assert torch.equal(out.cpu(), torch.from_numpy(ref).to(out_dtype))


def test_categorical_boundaries_exact():
    """Cumulative weights placed exactly on drawn uniforms: u >= cum[k] must hold with equality."""
    n, K = 64, 5
    state = make_state()
    u = uniform01(row_words(*state_tuple(state), n, 1)[:, 0])
    cum = torch.tensor(sorted(u[:K - 1]) + [1.0], dtype=torch.float32, device=DEVICE)
    ref, _ = ref_categorical(state_tuple(state), n, cum, None)
    out = ps.sample_categorical_fwd(state, n, cum, None, torch.float32)
    assert torch.equal(out.cpu(), torch.from_numpy(ref).float())


# ------------------------------------------------------------------------------------------------
# State handling


def _launchers(K=4, D=3, compute=torch.float32):
    loc, scale, cum = mixture_params(K, D, True, compute)
    return {
        "mixture": lambda s, n, labels=None: ps.sample_gaussian_mixture_fwd(
            s, n, loc, scale, cum, labels, torch.float32),
        "swiss_roll": lambda s, n, labels=None: ps.sample_swiss_roll_fwd(
            s, n, cum, labels, 1.0, 1.5, torch.float32),
        "categorical": lambda s, n, labels=None: ps.sample_categorical_fwd(
            s, n, cum, labels, torch.float32),
    }


@pytest.mark.parametrize("kind", ["mixture", "swiss_roll", "categorical"])
def test_state_advance_determinism_and_prefix(kind):
    sample = _launchers()[kind]
    state = make_state(seed=42, offset=2**32 - 3)
    first = sample(state, 50)
    assert state.tolist() == [42, 2**32 - 3 + 50]  # offset advanced by n, seed untouched
    second = sample(state, 50)
    assert state.tolist() == [42, 2**32 - 3 + 100]
    assert not torch.equal(first, second)  # a fresh stretch of the stream
    again = sample(make_state(seed=42, offset=2**32 - 3), 50)
    assert torch.equal(first, again)  # same state, same samples
    prefix = sample(make_state(seed=42, offset=2**32 - 3), 10)
    assert torch.equal(first[:10], prefix)  # rows do not depend on n
    # consecutive calls continue the stream: rows 10.. of one call of 50 are a call at offset + 10
    tail = sample(make_state(seed=42, offset=2**32 - 3 + 10), 40)
    assert torch.equal(first[10:], tail)


@pytest.mark.parametrize("kind", ["mixture", "swiss_roll", "categorical"])
def test_zero_rows(kind):
    state = make_state(seed=1, offset=7)
    out = _launchers()[kind](state, 0)
    assert out.shape[0] == 0 and state.tolist() == [1, 7]


@pytest.mark.parametrize("kind", ["mixture", "swiss_roll", "categorical"])
def test_out_of_range_labels_give_nan_rows(kind):
    K = 4
    labels = torch.tensor([0, -1, 3, 4, 2, 1000], dtype=torch.int64, device=DEVICE)
    bad = torch.tensor([False, True, False, True, False, True])
    out = _launchers(K=K)[kind](make_state(), labels.numel(), labels).cpu()
    assert torch.isnan(out[bad]).all()
    assert torch.isfinite(out[~bad]).all()


def test_bad_arguments():
    loc, scale, cum = mixture_params(3, 2, False, torch.float32)
    with pytest.raises(ValueError, match="rng_state"):
        ps.sample_categorical_fwd(torch.zeros(2, dtype=torch.int32, device=DEVICE), 4, cum, None,
                                  torch.float32)
    with pytest.raises(ValueError, match="labels"):
        ps.sample_categorical_fwd(make_state(), 4, cum, torch.zeros(5, dtype=torch.int64,
                                                                      device=DEVICE), torch.float32)
    with pytest.raises(ValueError, match="scale"):
        ps.sample_gaussian_mixture_fwd(make_state(), 4, loc, scale[:, :1], cum, None, torch.float32)
    with pytest.raises(ValueError, match="dtype"):
        ps.sample_gaussian_mixture_fwd(make_state(), 4, loc.double(), scale, cum, None,
                                       torch.float32)


@pytest.mark.skipif(not HAS_CUDA, reason="CUDA graphs need a CUDA device")
def test_cuda_graph_replays_draw_fresh_samples():
    sample = _launchers()["mixture"]
    state = make_state(seed=3, offset=0)
    sample(state, 64)  # autotune and compile outside the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = sample(state, 64)
    start = state.clone()
    graph.replay()
    first = out.clone()
    graph.replay()
    assert state.tolist() == [3, start[1].item() + 128]
    assert not torch.equal(first, out)
    assert torch.equal(first, sample(start.clone(), 64))


# ------------------------------------------------------------------------------------------------
# Against the C++ CPU op (same rng_state)


def _cpu_ops():
    try:
        import aae_fast  # noqa: F401  (loads the extension and registers the ops)
    except Exception as e:  # pragma: no cover
        pytest.skip(f"aae_fast does not import: {e!r}")
    ops = getattr(torch.ops, "aae_fast", None)
    try:
        ops.sample_categorical.default
    except (AttributeError, RuntimeError):
        pytest.skip("torch.ops.aae_fast.sample_* is not registered (C++ extension not built)")
    info = aae_fast.backend_info() if hasattr(aae_fast, "backend_info") else {}
    if not info.get("cpu_ext", True):
        pytest.skip("the C++ CPU extension is not loaded (ops run their composite fallback)")
    return ops


@pytest.mark.parametrize("compute", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("with_labels", [False, True], ids=["drawn", "labels"])
def test_matches_cpp_cpu_op(compute, with_labels):
    ops = _cpu_ops()
    rtol = 1e-12 if compute == torch.float64 else 1e-5

    def close(a, b):
        b = b.to(torch.float64)
        atol = rtol * max(1.0, b.abs().max().item())
        torch.testing.assert_close(a.cpu().to(torch.float64), b, atol=atol, rtol=rtol)

    n = 129
    for D, K, tril in [(1, 1, False), (3, 4, True), (5, 7, False), (13, 3, True)]:
        loc, scale, cum = mixture_params(K, D, tril, compute, seed=D)
        labels = make_labels(n, K) if with_labels else None
        cpu = [None if t is None else t.cpu() for t in (loc, scale, cum, labels)]
        s_tr, s_cpp = make_state(), make_state().cpu()
        out = ps.sample_gaussian_mixture_fwd(s_tr, n, loc, scale, cum, labels, torch.float32)
        close(out, ops.sample_gaussian_mixture(s_cpp, n, *cpu, torch.float32))
        assert s_tr.tolist() == s_cpp.tolist()
    for K in (1, 4, 7):
        cum = cum_weights(K, compute, torch.Generator().manual_seed(K))
        labels = make_labels(n, K) if with_labels else None
        cpu_labels = None if labels is None else labels.cpu()
        s_tr, s_cpp = make_state(), make_state().cpu()
        out = ps.sample_swiss_roll_fwd(s_tr, n, cum, labels, 1.7, 2.3, torch.float32)
        close(out, ops.sample_swiss_roll(s_cpp, n, cum.cpu(), cpu_labels, 1.7, 2.3, torch.float32))
        s_tr, s_cpp = make_state(), make_state().cpu()
        out = ps.sample_categorical_fwd(s_tr, n, cum, labels, torch.float32)
        expected = ops.sample_categorical(s_cpp, n, cum.cpu(), cpu_labels, torch.float32)
        assert torch.equal(out.cpu(), expected)
        assert s_tr.tolist() == s_cpp.tolist()
