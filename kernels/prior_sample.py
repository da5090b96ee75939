"""Prior sampling in Triton: Gaussian mixtures, the swiss roll and one-hot categorical draws.

Every kernel follows the stream layout of csrc/include/aae_fast/philox.h (version 1), so it draws
exactly the uniforms of the C++ and CUDA backends:

    key                 = (lo32(seed), hi32(seed)),  rng_state = int64 [seed, offset] on the device
    row counter r_i     = offset + i (uint64, wraps)
    block k of row i    = philox4x32_10(counter (lo32(r_i), hi32(r_i), k, 0), key) -> w[4k..4k+3]
    uniform01(w)        = (w >> 8) * 2^-24 in [0, 1)
    uniform01c(w)       = ((w >> 8) + 1) * 2^-24 in (0, 1]
    c_i                 = labels[i], or pick(uniform01(w[0])) = #{k < K - 1 : u >= cum_weights[k]}
    Box-Muller pair p   = words (2 + 2p, 3 + 2p): rad = sqrt(-2 log uniform01c(w[2 + 2p])),
                          a = 2 pi uniform01(w[3 + 2p]);
                          eps[2p] = rad cos a, eps[2p + 1] = rad sin a

Block k >= 1 holds pairs 2k - 1 (words 0, 1) and 2k (words 2, 3); block 0 holds w[0], w[1] and
pair 0. A tile of Philox blocks [b0, b0 + BLOCK_B) therefore yields the normals of the contiguous
columns 4 b0 - 2 .. 4 (b0 + BLOCK_B) - 3, each block computed once: the kernels tile the output
columns that way (the two columns left of column 0 in the first tile are masked off).

The seed and offset are read inside the kernels (no host sync); the launchers then advance
rng_state[1] by n on the device, in stream order, so CUDA-graph replays draw fresh numbers. The
kernels compute in the dtype of the parameters (float32, or float64 when they are float64) and cast
to the requested output dtype. Rows whose label is out of [0, K) are written as NaN (the Python
layer validates labels before they get here).
"""

from __future__ import annotations

import os
import struct

import torch
import triton
import triton.language as tl

__all__ = ["sample_gaussian_mixture_fwd", "sample_swiss_roll_fwd", "sample_categorical_fwd"]

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"

# Fixed block sizes under the interpreter (few programs = fast on CPU); autotuned on a GPU.
_INTERPRET_BLOCK_N = 64
_MAX_BLOCK_B_DIAG = 8  # Philox blocks per column tile: up to 32 output columns
_MAX_BLOCK_B_TRIL = 2  # tril keeps a [BLOCK_N, 4 BLOCK_B, 4 BLOCK_B] tile of factors in registers
_MAX_BLOCK_K = 128


# ------------------------------------------------------------------------------------------------
# Shared helpers


@triton.jit
def _uniform01(w, dtype: tl.constexpr):
    """(w >> 8) * 2^-24 in [0, 1): exact in float32."""
    return (w >> 8).to(dtype) * 5.9604644775390625e-08


@triton.jit
def _uniform01c(w, dtype: tl.constexpr):
    """((w >> 8) + 1) * 2^-24 in (0, 1]: exact in float32, safe for log."""
    return ((w >> 8) + 1).to(dtype) * 5.9604644775390625e-08


@triton.jit
def _sqrt(x, dtype: tl.constexpr):
    # tl.sqrt is the approximate instruction in float32 on NVIDIA; keep IEEE rounding like C++.
    if dtype == tl.float32:
        return tl.sqrt_rn(x)
    else:
        return tl.sqrt(x)


@triton.jit
def _box_muller(w_first, w_second, dtype: tl.constexpr):
    """(r cos a, r sin a), r = sqrt(-2 log uniform01c(w_first)), a = 2 pi uniform01(w_second)."""
    rad = _sqrt(-2.0 * tl.log(_uniform01c(w_first, dtype)), dtype)
    angle = 6.283185307179586 * _uniform01(w_second, dtype)
    return rad * tl.cos(angle), rad * tl.sin(angle)


@triton.jit
def _pick_category(u, cum_ptr, K):
    """#{k < K - 1 : u >= cum[k]}; the last bin is never compared."""
    index = tl.zeros(u.shape, dtype=tl.int64)
    for k in range(K - 1):
        index += (u >= tl.load(cum_ptr + k)).to(tl.int64)
    return index


@triton.jit
def _row_counters(state_ptr, pid, n, BLOCK_N: tl.constexpr):
    """64-bit rows of program `pid`, their mask, the seed, and (c0, c1) = halves of offset + row."""
    rows = pid.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64)
    row_mask = rows < n
    seed = tl.load(state_ptr).to(tl.uint64, bitcast=True)
    offset = tl.load(state_ptr + 1).to(tl.uint64, bitcast=True)
    counter = offset + rows.to(tl.uint64, bitcast=True)  # wraps like uint64
    c0 = (counter & 0xFFFFFFFF).to(tl.uint32)
    c1 = (counter >> 32).to(tl.uint32)
    return rows, row_mask, seed, c0, c1


@triton.jit
def _label_component(rows, row_mask, labels_ptr, K):
    """(component, valid) from labels; an out-of-range label gives component 0, valid False."""
    label = tl.load(labels_ptr + rows, mask=row_mask, other=0)
    valid = (label >= 0) & (label < K)
    return tl.where(valid, label, 0), valid


@triton.jit
def _component(rows, row_mask, seed, c0, c1, labels_ptr, cum_ptr, K, HAS_LABELS: tl.constexpr,
               dtype: tl.constexpr):
    """(component, valid) per row: labels[row] if given, else drawn from w[0] of block 0."""
    if HAS_LABELS:
        comp, valid = _label_component(rows, row_mask, labels_ptr, K)
    else:
        zero = tl.zeros(c0.shape, dtype=tl.uint32)
        w0, w1, w2, w3 = tl.philox(seed, c0, c1, zero, zero)
        comp = _pick_category(_uniform01(w0, dtype), cum_ptr, K)
        valid = comp >= 0
    return comp, valid


@triton.jit
def _normal_tile(seed, c0, c1, b0, BLOCK_N: tl.constexpr, BLOCK_B: tl.constexpr,
                 dtype: tl.constexpr):
    """eps [BLOCK_N, 4 BLOCK_B] of columns 4 b0 - 2 + q, from Philox blocks b0 + [0, BLOCK_B)."""
    zero = tl.zeros([BLOCK_N, BLOCK_B], dtype=tl.uint32)
    blocks = (b0 + tl.arange(0, BLOCK_B)).to(tl.uint32)
    w0, w1, w2, w3 = tl.philox(seed, c0[:, None] + zero, c1[:, None] + zero,
                               blocks[None, :] + zero, zero)
    cos_a, sin_a = _box_muller(w0, w1, dtype)  # pair 2b - 1: columns 4b - 2, 4b - 1
    cos_b, sin_b = _box_muller(w2, w3, dtype)  # pair 2b: columns 4b, 4b + 1
    # per block: (cos_a, sin_a, cos_b, sin_b)
    return tl.interleave(tl.interleave(cos_a, cos_b), tl.interleave(sin_a, sin_b))


@triton.jit
def _join3(hi, mid, lo, dtype: tl.constexpr):
    """A float64 host scalar passed as three float32 parts, rebuilt in `dtype`."""
    if dtype == tl.float32:
        return tl.cast(hi, dtype)
    else:
        return tl.cast(hi, dtype) + tl.cast(mid, dtype) + tl.cast(lo, dtype)


# ------------------------------------------------------------------------------------------------
# Kernels


@triton.jit
def _sample_gaussian_mixture_kernel(
    state_ptr,  # int64 [2]: seed, offset
    out_ptr,  # [n, D]
    loc_ptr,  # [K, D]
    scale_ptr,  # [K, D] (diagonal) or [K, D, D] (lower-triangular factor)
    cum_ptr,  # [K]
    labels_ptr,  # int64 [n], or any pointer when not HAS_LABELS
    n,
    D,
    K,
    HAS_LABELS: tl.constexpr,
    TRIL: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_B: tl.constexpr,
):
    dtype: tl.constexpr = cum_ptr.dtype.element_ty
    BLOCK_D: tl.constexpr = 4 * BLOCK_B
    rows, row_mask, seed, c0, c1 = _row_counters(state_ptr, tl.program_id(0), n, BLOCK_N)
    comp, valid = _component(rows, row_mask, seed, c0, c1, labels_ptr, cum_ptr, K, HAS_LABELS,
                             dtype)
    b0 = tl.program_id(1) * BLOCK_B
    cols = 4 * b0 - 2 + tl.arange(0, BLOCK_D)
    mask = row_mask[:, None] & ((cols >= 0) & (cols < D))[None, :]
    param = comp[:, None] * D + cols[None, :]  # int64 index of (c, j) in [K, D]
    if TRIL:
        # z_j = sum_{k <= j} L[c, j, k] eps_k over the column chunks up to the diagonal one.
        acc = tl.zeros([BLOCK_N, BLOCK_D], dtype=dtype)
        for kb in range(0, b0 + BLOCK_B, BLOCK_B):
            eps = _normal_tile(seed, c0, c1, kb, BLOCK_N, BLOCK_B, dtype)
            kcols = 4 * kb - 2 + tl.arange(0, BLOCK_D)
            fmask = (mask[:, :, None] & (kcols >= 0)[None, None, :]
                     & (kcols[None, None, :] <= cols[None, :, None]))
            factor = tl.load(scale_ptr + param[:, :, None] * D + kcols[None, None, :], mask=fmask,
                             other=0.0)
            acc += tl.sum(factor * eps[:, None, :], axis=2)
        z = acc
    else:
        eps = _normal_tile(seed, c0, c1, b0, BLOCK_N, BLOCK_B, dtype)
        z = tl.load(scale_ptr + param, mask=mask, other=0.0) * eps
    z = tl.load(loc_ptr + param, mask=mask, other=0.0) + z
    z = tl.where(valid[:, None], z, float("nan"))
    tl.store(out_ptr + rows[:, None] * D + cols[None, :], z.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _sample_swiss_roll_kernel(
    state_ptr,  # int64 [2]: seed, offset
    out_ptr,  # [n, 2]
    cum_ptr,  # [K]
    labels_ptr,  # int64 [n], or any pointer when not HAS_LABELS
    n,
    K,
    radius_hi,
    radius_mid,
    radius_lo,
    turns_hi,
    turns_mid,
    turns_lo,
    HAS_LABELS: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    dtype: tl.constexpr = cum_ptr.dtype.element_ty
    rows, row_mask, seed, c0, c1 = _row_counters(state_ptr, tl.program_id(0), n, BLOCK_N)
    zero = tl.zeros([BLOCK_N], dtype=tl.uint32)
    w0, w1, w2, w3 = tl.philox(seed, c0, c1, zero, zero)
    if HAS_LABELS:
        seg, valid = _label_component(rows, row_mask, labels_ptr, K)
    else:
        seg = _pick_category(_uniform01(w0, dtype), cum_ptr, K)
        valid = seg >= 0
    t = seg.to(dtype) + _uniform01(w1, dtype)
    if dtype == tl.float32:
        t = tl.div_rn(t, tl.cast(K, dtype))
    else:
        t = t / tl.cast(K, dtype)
    root = _sqrt(t, dtype)
    rho = _join3(radius_hi, radius_mid, radius_lo, dtype) * root
    angle = 6.283185307179586 * _join3(turns_hi, turns_mid, turns_lo, dtype) * root
    z = tl.join(rho * tl.cos(angle), rho * tl.sin(angle))  # [BLOCK_N, 2]
    z = tl.where(valid[:, None], z, float("nan"))
    cols = tl.arange(0, 2)
    tl.store(out_ptr + rows[:, None] * 2 + cols[None, :], z.to(out_ptr.dtype.element_ty),
             mask=row_mask[:, None] & (cols < 2)[None, :])


@triton.jit
def _sample_categorical_kernel(
    state_ptr,  # int64 [2]: seed, offset
    out_ptr,  # [n, K]
    cum_ptr,  # [K]
    labels_ptr,  # int64 [n], or any pointer when not HAS_LABELS
    n,
    K,
    HAS_LABELS: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    dtype: tl.constexpr = cum_ptr.dtype.element_ty
    rows, row_mask, seed, c0, c1 = _row_counters(state_ptr, tl.program_id(0), n, BLOCK_N)
    comp, valid = _component(rows, row_mask, seed, c0, c1, labels_ptr, cum_ptr, K, HAS_LABELS,
                             dtype)
    cols = tl.program_id(1).to(tl.int64) * BLOCK_K + tl.arange(0, BLOCK_K)
    z = tl.where(cols[None, :] == comp[:, None], 1.0, 0.0)
    z = tl.where(valid[:, None], z, float("nan"))
    tl.store(out_ptr + rows[:, None] * K + cols[None, :], z.to(out_ptr.dtype.element_ty),
             mask=row_mask[:, None] & (cols < K)[None, :])


# ------------------------------------------------------------------------------------------------
# Launch configuration

if _INTERPRET:
    _mixture_diag = _mixture_tril = _sample_gaussian_mixture_kernel
    _swiss_roll = _sample_swiss_roll_kernel
    _categorical = _sample_categorical_kernel
else:

    def _configs(block_ns, warps):
        return [triton.Config({"BLOCK_N": bn}, num_warps=w) for bn in block_ns for w in warps]

    _mixture_diag = triton.autotune(_configs((64, 128, 256), (4, 8)), key=["D", "HAS_LABELS"])(
        _sample_gaussian_mixture_kernel
    )
    _mixture_tril = triton.autotune(_configs((16, 32, 64), (4, 8)), key=["D", "HAS_LABELS"])(
        _sample_gaussian_mixture_kernel
    )
    _swiss_roll = triton.autotune(_configs((128, 256, 512), (4, 8)), key=["HAS_LABELS"])(
        _sample_swiss_roll_kernel
    )
    _categorical = triton.autotune(_configs((32, 64, 128), (4, 8)), key=["K", "HAS_LABELS"])(
        _sample_categorical_kernel
    )


def _block_n(meta: dict) -> int:
    return meta["BLOCK_N"]


def _fixed(**kwargs) -> dict:
    """Block sizes passed explicitly under the interpreter; chosen by autotune on a GPU."""
    return dict(kwargs) if _INTERPRET else {}


# ------------------------------------------------------------------------------------------------
# Launchers


def _split3(x: float) -> tuple[float, float, float]:
    """x as hi + mid + lo, each exact in float32, so a float32 kernel argument carries a float64."""

    def f32(v: float) -> float:
        return struct.unpack("f", struct.pack("f", v))[0]

    if not abs(x) < 3.0e38:  # inf, nan, or beyond float32: nothing to split
        return x, 0.0, 0.0
    hi = f32(x)
    mid = f32(x - hi)
    return hi, mid, f32(x - hi - mid)


def _check_common(rng_state: torch.Tensor, n: int, cum_weights: torch.Tensor, labels, dtype):
    if rng_state.dtype != torch.int64 or rng_state.shape != (2,) or not rng_state.is_contiguous():
        raise ValueError(
            "rng_state must be a contiguous int64 tensor [seed, offset] of shape [2], got "
            f"{rng_state.dtype} {tuple(rng_state.shape)}"
        )
    if n < 0:
        raise ValueError(f"n must be a non-negative number of samples, got {n}")
    if cum_weights.dim() != 1 or cum_weights.numel() < 1:
        raise ValueError(
            f"cum_weights must have shape [K] with K >= 1, got {tuple(cum_weights.shape)}"
        )
    if cum_weights.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"cum_weights must be float32 or float64, got {cum_weights.dtype}")
    if labels is not None and (labels.dtype != torch.int64 or labels.shape != (n,)):
        raise ValueError(
            f"labels must be an int64 tensor of shape [n] = [{n}], got {labels.dtype} "
            f"{tuple(labels.shape)}"
        )
    if dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be float32, float64, float16 or bfloat16, got {dtype}")
    for name, t in (("cum_weights", cum_weights), ("labels", labels)):
        if t is not None and t.device != rng_state.device:
            raise ValueError(f"{name} must be on {rng_state.device} (rng_state's), got {t.device}")


def _device_guard(device: torch.device):
    if device.type == "cuda":
        return torch.cuda.device(device)
    import contextlib

    return contextlib.nullcontext()


def _advance(rng_state: torch.Tensor, n: int) -> None:
    """offset += n on the device, after the sampling kernel in stream order."""
    rng_state[1:].add_(n)


def sample_gaussian_mixture_fwd(rng_state, n, loc, scale, cum_weights, labels, dtype):
    """Draw n rows z [n, D] from a Gaussian mixture and advance rng_state[1] by n.

    z_i = loc[c_i] + scale[c_i] * eps_i                    (diagonal scale [K, D])
    z_ij = loc[c_i, j] + sum_{k <= j} L[c_i, j, k] eps_ik  (lower-triangular scale L [K, D, D];
                                                           entries above the diagonal are ignored)
    with c_i = labels[i] or pick(uniform01(w[0]), cum_weights), and eps_i the Box-Muller normals of
    words 2, 3, ... of row i's stream (module docstring). Computed in loc's dtype (float32/float64),
    returned in `dtype`. Rows with labels outside [0, K) are NaN.
    """
    _check_common(rng_state, n, cum_weights, labels, dtype)
    K = cum_weights.shape[0]
    if loc.dim() != 2 or loc.shape[0] != K:
        raise ValueError(f"loc must have shape [K, D] with K = {K}, got {tuple(loc.shape)}")
    D = loc.shape[1]
    tril = scale.dim() == 3
    if tuple(scale.shape) not in ((K, D), (K, D, D)):
        raise ValueError(
            f"scale must have shape [{K}, {D}] or [{K}, {D}, {D}], got {tuple(scale.shape)}"
        )
    if loc.dtype != cum_weights.dtype or scale.dtype != cum_weights.dtype:
        raise ValueError(
            f"loc, scale and cum_weights must share one dtype, got {loc.dtype}, {scale.dtype}, "
            f"{cum_weights.dtype}"
        )
    out = torch.empty((n, D), dtype=dtype, device=rng_state.device)
    if n == 0 or D == 0:
        _advance(rng_state, n)
        return out
    num_blocks = (2 + 2 * ((D + 1) // 2) + 3) // 4  # philox.h blocks_per_row(D)
    max_block_b = _MAX_BLOCK_B_TRIL if tril else _MAX_BLOCK_B_DIAG
    block_b = min(triton.next_power_of_2(num_blocks), max_block_b)
    kernel = _mixture_tril if tril else _mixture_diag

    def grid(meta):
        return (triton.cdiv(n, _block_n(meta)), triton.cdiv(num_blocks, block_b))

    with _device_guard(rng_state.device):
        kernel[grid](
            rng_state, out, loc.contiguous(), scale.contiguous(), cum_weights.contiguous(),
            labels.contiguous() if labels is not None else cum_weights,
            n, D, K,
            HAS_LABELS=labels is not None, TRIL=tril, BLOCK_B=block_b,
            **_fixed(BLOCK_N=_INTERPRET_BLOCK_N),
        )  # fmt: skip
        _advance(rng_state, n)
    return out


def sample_swiss_roll_fwd(rng_state, n, cum_weights, labels, radius, turns, dtype):
    """Draw n points z [n, 2] on a swiss roll split into K segments; advance rng_state[1] by n.

    s_i = labels[i] or pick(uniform01(w[0]), cum_weights); t_i = (s_i + uniform01(w[1])) / K;
    z_i = radius sqrt(t_i) (cos a_i, sin a_i) with a_i = 2 pi turns sqrt(t_i). Computed in
    cum_weights' dtype, returned in `dtype`. Rows with labels outside [0, K) are NaN.
    """
    _check_common(rng_state, n, cum_weights, labels, dtype)
    K = cum_weights.shape[0]
    out = torch.empty((n, 2), dtype=dtype, device=rng_state.device)
    if n == 0:
        _advance(rng_state, n)
        return out

    def grid(meta):
        return (triton.cdiv(n, _block_n(meta)),)

    with _device_guard(rng_state.device):
        _swiss_roll[grid](
            rng_state, out, cum_weights.contiguous(),
            labels.contiguous() if labels is not None else cum_weights,
            n, K, *_split3(float(radius)), *_split3(float(turns)),
            HAS_LABELS=labels is not None,
            **_fixed(BLOCK_N=_INTERPRET_BLOCK_N),
        )  # fmt: skip
        _advance(rng_state, n)
    return out


def sample_categorical_fwd(rng_state, n, cum_weights, labels, dtype):
    """Draw n one-hot rows [n, K] and advance rng_state[1] by n.

    row i is 1 at c_i = labels[i] or pick(uniform01(w[0]), cum_weights) and 0 elsewhere; rows with
    labels outside [0, K) are NaN.
    """
    _check_common(rng_state, n, cum_weights, labels, dtype)
    K = cum_weights.shape[0]
    out = torch.empty((n, K), dtype=dtype, device=rng_state.device)
    if n == 0:
        _advance(rng_state, n)
        return out
    block_k = min(triton.next_power_of_2(K), _MAX_BLOCK_K)

    def grid(meta):
        return (triton.cdiv(n, _block_n(meta)), triton.cdiv(K, block_k))

    with _device_guard(rng_state.device):
        _categorical[grid](
            rng_state, out, cum_weights.contiguous(),
            labels.contiguous() if labels is not None else cum_weights,
            n, K,
            HAS_LABELS=labels is not None, BLOCK_K=block_k,
            **_fixed(BLOCK_N=_INTERPRET_BLOCK_N),
        )  # fmt: skip
        _advance(rng_state, n)
    return out
