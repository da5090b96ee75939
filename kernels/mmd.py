"""Squared maximum mean discrepancy (multi-bandwidth Gaussian kernel) in Triton, tiled forward and
backward.

    k(a, b)  = sum_s exp(-d2(a, b) h_s),   h_s = 1 / (2 bandwidth_s^2)
    d2(a, b) = max(||a||^2 + ||b||^2 - 2 a.b, 0)            (exactly 0 for a point with itself)
    mmd      = wxx sum_{i,i'} k(x_i, x_i') + wyy sum_{j,j'} k(y_j, y_j') - wxy sum_{i,j} k(x_i, y_j)
    biased:   wxx = 1/N^2, wyy = 1/M^2, every pair;   unbiased: wxx = 1/(N(N-1)), wyy = 1/(M(M-1)),
              the pairs i = i' and j = j' left out;    wxy = 2/(N M) in both

Forward: `_mmd_rows_kernel` gives, for each row a_i of one set, sum_j weight_ij k(a_i, b_j) over
the other (float64, [rows]). A program owns BLOCK_N rows and walks b in blocks of BLOCK_M, with the
cross term a.b from tl.dot over BLOCK_D-feature chunks (IEEE fp32, not TF32; fp64 for fp64 inputs;
fp16 products are exact in the fp32 accumulator). Within one set the sum is symmetric: a program
starts at its own diagonal and weights each pair 2 above the diagonal, 1 (biased) or 0 (unbiased)
on it, and 0 below, so each pair is evaluated about once. The three launches (xx, yy, xy) are
combined with torch in float64.

Backward: with w(a, b) = sum_s 2 h_s exp(-d2 h_s) and W'_ij = coef w(a_i, z_j) (coef = 2 wxx or
2 wyy within a set, 0 for i = j; -wxy across),
    grad_a_i = grad ((W' z)_i - a_i (W' 1)_i)
A program owns BLOCK_N rows and BLOCK_DO output features; it walks both sets in blocks of BLOCK_M,
recomputes each block's squared distances over all D features, and accumulates W' z (tl.dot) and
the row sums W' 1 (float64). Nothing N x N or N x M is stored; feature blocks recompute distances
(a cost of ceil(D / BLOCK_DO) distance passes, 1 for D <= BLOCK_DO).

Inputs may be strided (64-bit offsets). Output dtype: float64 for float64 inputs, else float32; the
gradients come back in the inputs' dtype. The bandwidth constants (h_s, and the backward's
2 coef h_s) are small device tensors, cached per (bandwidths, dtype, device). Block sizes are fixed
under the interpreter (TRITON_INTERPRET=1) and autotuned on a GPU.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os

import torch
import triton
import triton.language as tl

__all__ = ["mmd_fwd", "mmd_bwd"]

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"

# Fixed blocks under the interpreter: small tiles, few programs (numpy runs every op).
_INTERPRET_FWD = {"BLOCK_N": 16, "BLOCK_M": 32, "BLOCK_D": 32}
_INTERPRET_BWD = {"BLOCK_N": 16, "BLOCK_M": 32, "BLOCK_D": 32, "BLOCK_DO": 32}


@triton.jit
def _tile_sq_dist(a_rows, row_mask, b_ptr, cols, col_mask, a_sq, D, stride_ad, stride_bn,
                  stride_bd, IEEE: tl.constexpr, ACC: tl.constexpr, BLOCK_N: tl.constexpr,
                  BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
    """max(||a||^2 + ||b||^2 - 2 a.b, 0) for a [BLOCK_N, BLOCK_M] tile (masked rows/cols load 0)."""
    feats = tl.arange(0, BLOCK_D)
    b_rows = b_ptr + cols[:, None] * stride_bn
    dot = tl.zeros([BLOCK_N, BLOCK_M], dtype=ACC)
    b_sq = tl.zeros([BLOCK_M], dtype=ACC)
    for d0 in range(0, D, BLOCK_D):
        f = d0 + feats
        f_mask = (f < D)[None, :]
        f_off = f[None, :].to(tl.int64)
        at = tl.load(a_rows + f_off * stride_ad, mask=row_mask[:, None] & f_mask, other=0.0)
        bt = tl.load(b_rows + f_off * stride_bd, mask=col_mask[:, None] & f_mask, other=0.0)
        if IEEE:  # float32: IEEE products, not TF32
            dot = tl.dot(at, tl.trans(bt), acc=dot, input_precision="ieee", out_dtype=ACC)
        else:  # fp16 (exact products, fp32 accumulator) and fp64
            dot = tl.dot(at, tl.trans(bt), acc=dot, out_dtype=ACC)
        bt_acc = bt.to(ACC)
        b_sq += tl.sum(bt_acc * bt_acc, axis=1)
    d2 = (a_sq[:, None] + b_sq[None, :]) - 2.0 * dot
    return tl.where(d2 < 0.0, 0.0, d2)  # cancellation; NaN stays NaN


@triton.jit
def _row_sq_norms(a_rows, row_mask, D, stride_ad, ACC: tl.constexpr, BLOCK_N: tl.constexpr,
                  BLOCK_D: tl.constexpr):
    feats = tl.arange(0, BLOCK_D)
    a_sq = tl.zeros([BLOCK_N], dtype=ACC)
    for d0 in range(0, D, BLOCK_D):
        f = d0 + feats
        at = tl.load(a_rows + f[None, :].to(tl.int64) * stride_ad,
                     mask=row_mask[:, None] & (f < D)[None, :], other=0.0).to(ACC)
        a_sq += tl.sum(at * at, axis=1)
    return a_sq


@triton.jit
def _mmd_rows_kernel(
    a_ptr,  # [NA, D]
    b_ptr,  # [NB, D] (the same tensor as a when SYMMETRIC)
    h_ptr,  # [S], float32 or float64 (the compute dtype)
    out_ptr,  # [NA], float64: sum_j weight_ij k(a_i, b_j)
    NA,
    NB,
    D,
    S,
    stride_an,
    stride_ad,
    stride_bn,
    stride_bd,
    SYMMETRIC: tl.constexpr,
    DIAG_WEIGHT: tl.constexpr,  # weight of the pairs i = j when SYMMETRIC: 1.0 biased, 0.0 unbiased
    BLOCK_N: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    ACC: tl.constexpr = h_ptr.dtype.element_ty
    IEEE: tl.constexpr = a_ptr.dtype.element_ty == tl.float32
    row0 = tl.program_id(0).to(tl.int64) * BLOCK_N
    rows = row0 + tl.arange(0, BLOCK_N)
    row_mask = rows < NA
    a_rows = a_ptr + rows[:, None] * stride_an
    a_sq = _row_sq_norms(a_rows, row_mask, D, stride_ad, ACC, BLOCK_N, BLOCK_D)

    total = tl.zeros([BLOCK_N], dtype=tl.float64)
    start = 0
    if SYMMETRIC:
        start = (row0 // BLOCK_M) * BLOCK_M  # the first column block reaching the diagonal
    for j0 in range(start, NB, BLOCK_M):
        cols = j0 + tl.arange(0, BLOCK_M).to(tl.int64)
        col_mask = cols < NB
        d2 = _tile_sq_dist(a_rows, row_mask, b_ptr, cols, col_mask, a_sq, D, stride_ad, stride_bn,
                           stride_bd, IEEE, ACC, BLOCK_N, BLOCK_M, BLOCK_D)
        valid = row_mask[:, None] & col_mask[None, :]
        if SYMMETRIC:
            on_diag = rows[:, None] == cols[None, :]
            d2 = tl.where(on_diag, 0.0, d2)  # exactly 0 for a point with itself
            weight = tl.where(cols[None, :] > rows[:, None], 2.0,
                              tl.where(on_diag, DIAG_WEIGHT, 0.0))
            weight = tl.where(valid, weight, 0.0)
        else:
            weight = tl.where(valid, 1.0, 0.0)
        k = tl.zeros([BLOCK_N, BLOCK_M], dtype=ACC)
        for s in range(S):
            hs = tl.load(h_ptr + s)
            k += tl.exp(-d2 * hs)
        total += tl.sum(k * weight.to(ACC), axis=1).to(tl.float64)
    tl.store(out_ptr + rows, total, mask=row_mask)


@triton.jit
def _accumulate_grad(acc, rowsum, a_rows, row_mask, rows, a_sq, z_ptr, NZ, D, stride_ad, stride_zn,
                     stride_zd, dout, dout_mask, h_ptr, c_ptr, S, SAME: tl.constexpr,
                     IEEE: tl.constexpr, ACC: tl.constexpr, BLOCK_N: tl.constexpr,
                     BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
    """acc += W' z[:, dout], rowsum += W' 1 over every block of z (W' in the module docstring)."""
    for j0 in range(0, NZ, BLOCK_M):
        cols = j0 + tl.arange(0, BLOCK_M).to(tl.int64)
        col_mask = cols < NZ
        d2 = _tile_sq_dist(a_rows, row_mask, z_ptr, cols, col_mask, a_sq, D, stride_ad, stride_zn,
                           stride_zd, IEEE, ACC, BLOCK_N, BLOCK_M, BLOCK_D)
        w = tl.zeros([BLOCK_N, BLOCK_M], dtype=ACC)
        for s in range(S):
            w += tl.load(c_ptr + s) * tl.exp(-d2 * tl.load(h_ptr + s))
        valid = row_mask[:, None] & col_mask[None, :]
        if SAME:
            valid = valid & (rows[:, None] != cols[None, :])  # the pair (i, i) has z - a = 0
        w = tl.where(valid, w, 0.0)
        rowsum += tl.sum(w, axis=1).to(tl.float64)
        zt = tl.load(z_ptr + cols[:, None] * stride_zn + dout[None, :] * stride_zd,
                     mask=col_mask[:, None] & dout_mask[None, :], other=0.0).to(ACC)
        if ACC == tl.float32:
            acc = tl.dot(w, zt, acc=acc, input_precision="ieee", out_dtype=ACC)
        else:
            acc = tl.dot(w, zt, acc=acc, out_dtype=ACC)  # float64: out_dtype must name it
    return acc, rowsum


@triton.jit
def _mmd_bwd_kernel(
    a_ptr,  # [NA, D]: the set whose gradient this launch computes
    z_ptr,  # [NZ, D]: the other set
    h_ptr,  # [S] compute dtype: h_s
    c_ptr,  # [2, S] compute dtype: 2 coef h_s, own set then other set
    g_ptr,  # [] compute dtype: the incoming gradient
    out_ptr,  # [NA, D] contiguous, the inputs' dtype
    NA,
    NZ,
    D,
    S,
    stride_an,
    stride_ad,
    stride_zn,
    stride_zd,
    BLOCK_N: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_DO: tl.constexpr,
):
    ACC: tl.constexpr = h_ptr.dtype.element_ty
    IEEE: tl.constexpr = a_ptr.dtype.element_ty == tl.float32
    rows = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_mask = rows < NA
    dout = tl.program_id(1).to(tl.int64) * BLOCK_DO + tl.arange(0, BLOCK_DO)
    dout_mask = dout < D
    a_rows = a_ptr + rows[:, None] * stride_an
    a_sq = _row_sq_norms(a_rows, row_mask, D, stride_ad, ACC, BLOCK_N, BLOCK_D)

    acc = tl.zeros([BLOCK_N, BLOCK_DO], dtype=ACC)
    rowsum = tl.zeros([BLOCK_N], dtype=tl.float64)
    acc, rowsum = _accumulate_grad(acc, rowsum, a_rows, row_mask, rows, a_sq, a_ptr, NA, D,
                                   stride_ad, stride_an, stride_ad, dout, dout_mask, h_ptr, c_ptr,
                                   S, True, IEEE, ACC, BLOCK_N, BLOCK_M, BLOCK_D)
    acc, rowsum = _accumulate_grad(acc, rowsum, a_rows, row_mask, rows, a_sq, z_ptr, NZ, D,
                                   stride_ad, stride_zn, stride_zd, dout, dout_mask, h_ptr,
                                   c_ptr + S, S, False, IEEE, ACC, BLOCK_N, BLOCK_M, BLOCK_D)
    mask = row_mask[:, None] & dout_mask[None, :]
    a_out = tl.load(a_rows + dout[None, :] * stride_ad, mask=mask, other=0.0).to(ACC)
    g = tl.load(g_ptr)
    grad = g * (acc - a_out * rowsum.to(ACC)[:, None])
    tl.store(out_ptr + rows[:, None] * D + dout[None, :],
             grad.to(out_ptr.dtype.element_ty), mask=mask)


if _INTERPRET:
    _rows_kernel = _mmd_rows_kernel
    _bwd_kernel = _mmd_bwd_kernel
else:
    # Small lists keyed on D (the tensors' dtypes are part of the key already).
    _rows_kernel = triton.autotune(
        [
            triton.Config({"BLOCK_N": bn, "BLOCK_M": bm, "BLOCK_D": bd}, num_warps=w, num_stages=s)
            for bn, bm, bd, w, s in [
                (64, 64, 32, 4, 3),
                (64, 128, 32, 4, 3),
                (128, 64, 32, 8, 3),
                (128, 128, 32, 8, 2),
                (32, 64, 64, 4, 2),
            ]
        ],
        key=["D", "SYMMETRIC"],
    )(_mmd_rows_kernel)
    _bwd_kernel = triton.autotune(
        [
            triton.Config(
                {"BLOCK_N": bn, "BLOCK_M": bm, "BLOCK_D": bd, "BLOCK_DO": do},
                num_warps=w,
                num_stages=s,
            )
            for bn, bm, bd, do, w, s in [
                (64, 64, 32, 64, 4, 2),
                (64, 64, 32, 128, 8, 2),
                (128, 64, 32, 64, 8, 2),
                (32, 64, 64, 128, 4, 2),
            ]
        ],
        key=["D"],
    )(_mmd_bwd_kernel)


def _half_inv_var(s: float) -> float:
    h = 0.5 / s / s
    return h if math.isfinite(h) else 1.7976931348623157e308


def _clamp(v: float, dtype: torch.dtype) -> float:
    big = torch.finfo(dtype).max
    return max(-big, min(big, v))


@functools.lru_cache(maxsize=64)
def _constants(bandwidths: tuple, coefs: tuple, dtype: torch.dtype, device: torch.device):
    """h [S] and, per coef, 2 coef h [len(coefs), S] as device tensors (cached: no copy per call,
    so that CUDA-graph capture after a warm-up call sees no host-to-device copy)."""
    hs = [_half_inv_var(s) for s in bandwidths]
    h = torch.tensor([_clamp(v, dtype) for v in hs], dtype=dtype).to(device)
    c = torch.tensor([[_clamp(2.0 * k * v, dtype) for v in hs] for k in coefs], dtype=dtype)
    return h, c.to(device)


def _weights(n: int, m: int, unbiased: bool) -> tuple[float, float, float]:
    return (
        1.0 / (n * (n - 1 if unbiased else n)),
        1.0 / (m * (m - 1 if unbiased else m)),
        2.0 / (n * m),
    )


def _check(x: torch.Tensor, y: torch.Tensor, bandwidths, unbiased: bool) -> None:
    if x.dim() != 2:
        raise ValueError(f"x must have shape [N, D], got {tuple(x.shape)}")
    if y.dim() != 2:
        raise ValueError(f"y must have shape [M, D], got {tuple(y.shape)}")
    if y.shape[1] != x.shape[1]:
        raise ValueError(
            f"y must have the dimension D of x: x has shape {tuple(x.shape)}, y has shape "
            f"{tuple(y.shape)}"
        )
    if x.dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        raise ValueError(f"x must be float32, float64, float16 or bfloat16, got {x.dtype}")
    if y.dtype != x.dtype:
        raise ValueError(f"y must have the dtype of x ({x.dtype}), got {y.dtype}")
    if y.device != x.device:
        raise ValueError(f"y must be on the device of x ({x.device}), got {y.device}")
    need = 2 if unbiased else 1
    for name, t in (("x", x), ("y", y)):
        if t.shape[0] < need:
            raise ValueError(
                f"{name} must hold at least {need} sample(s) (unbiased={unbiased}), got "
                f"{tuple(t.shape)}"
            )
    if len(bandwidths) < 1:
        raise ValueError("bandwidths must hold at least one bandwidth, got []")
    for i, s in enumerate(bandwidths):
        if not (math.isfinite(s) and s > 0):
            raise ValueError(f"bandwidths must be finite numbers > 0, got {s:g} at index {i}")


def _device_ctx(t: torch.Tensor):
    return torch.cuda.device(t.device) if t.device.type == "cuda" else contextlib.nullcontext()


def _rows(a: torch.Tensor, b: torch.Tensor, h: torch.Tensor, symmetric: bool,
          diag_weight: float) -> torch.Tensor:
    out = torch.empty((a.shape[0],), dtype=torch.float64, device=a.device)
    na, d = a.shape
    nb = b.shape[0]

    def grid(meta):
        return (triton.cdiv(na, meta["BLOCK_N"]),)

    _rows_kernel[grid](
        a, b, h, out, na, nb, d, h.numel(),
        a.stride(0), a.stride(1), b.stride(0), b.stride(1),
        SYMMETRIC=symmetric, DIAG_WEIGHT=diag_weight,
        **(_INTERPRET_FWD if _INTERPRET else {}),
    )  # fmt: skip
    return out


def mmd_fwd(x: torch.Tensor, y: torch.Tensor, bandwidths, unbiased: bool = False) -> torch.Tensor:
    """The squared MMD of x [N, D] and y [M, D] (module docstring): a 0-dim tensor, float64 for
    float64 inputs, else float32."""
    bandwidths = tuple(float(s) for s in bandwidths)
    unbiased = bool(unbiased)
    _check(x, y, bandwidths, unbiased)
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    if x.shape[1] == 0:  # every distance is 0: both estimates are exactly 0 (as the C++ kernels)
        return torch.zeros((), dtype=compute, device=x.device)
    h, _ = _constants(bandwidths, (), compute, x.device)
    diag_weight = 0.0 if unbiased else 1.0
    with _device_ctx(x):
        sxx = _rows(x, x, h, True, diag_weight).sum()
        syy = _rows(y, y, h, True, diag_weight).sum()
        sxy = _rows(x, y, h, False, 1.0).sum()
    wxx, wyy, wxy = _weights(x.shape[0], y.shape[0], unbiased)
    return (wxx * sxx + wyy * syy - wxy * sxy).to(compute)


def _grad(a: torch.Tensor, z: torch.Tensor, h: torch.Tensor, c: torch.Tensor,
          g: torch.Tensor) -> torch.Tensor:
    out = torch.empty(a.shape, dtype=a.dtype, device=a.device)
    na, d = a.shape
    if na == 0 or d == 0:
        return out

    def grid(meta):
        return (triton.cdiv(na, meta["BLOCK_N"]), triton.cdiv(d, meta["BLOCK_DO"]))

    _bwd_kernel[grid](
        a, z, h, c, g, out, na, z.shape[0], d, h.numel(),
        a.stride(0), a.stride(1), z.stride(0), z.stride(1),
        **(_INTERPRET_BWD if _INTERPRET else {}),
    )  # fmt: skip
    return out


def mmd_bwd(grad: torch.Tensor, x: torch.Tensor, y: torch.Tensor, bandwidths,
            unbiased: bool = False, output_mask=(True, True)):
    """(grad_x [N, D], grad_y [M, D]) in the inputs' dtype; an unwanted one is an empty [0]
    tensor of grad's dtype. grad is the 0-dim gradient of the MMD (read on the device)."""
    bandwidths = tuple(float(s) for s in bandwidths)
    unbiased = bool(unbiased)
    _check(x, y, bandwidths, unbiased)
    if grad.dim() != 0:
        raise ValueError(f"grad must be a 0-dim tensor, got shape {tuple(grad.shape)}")
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    wxx, wyy, wxy = _weights(x.shape[0], y.shape[0], unbiased)
    g = grad.to(compute)
    outs = []
    with _device_ctx(x):
        for own, other, w_own, wanted in ((x, y, wxx, output_mask[0]), (y, x, wyy, output_mask[1])):
            if not wanted:
                outs.append(grad.new_empty((0,)))
                continue
            h, c = _constants(bandwidths, (2.0 * w_own, -wxy), compute, x.device)
            outs.append(_grad(own, other, h, c, g))
    return outs[0], outs[1]
