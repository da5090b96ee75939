"""Parzen-window log-likelihood in Triton, tiled like flash attention.

    out[i] = log( (1/M) sum_j N(x_i; s_j, sigma^2 I) )
           = logsumexp_j( -d2_ij h ) - log M - D (log sigma + log(2 pi) / 2),   h = 1 / (2 sigma^2)
    d2_ij  = max(||x_i||^2 + ||s_j||^2 - 2 x_i . s_j, 0)

A program owns BLOCK_N rows of x and walks the samples in blocks of BLOCK_M. For each sample block
it accumulates the cross term x . s^T with tl.dot over chunks of BLOCK_D features (IEEE fp32, not
TF32; fp64 for fp64 inputs; fp16/bf16 products are exact in the fp32 accumulator), turns it into
squared distances with the row norms (the sample norms come from the same chunks), and folds the
block into an online log-sum-exp: the block's (min d2, sum exp((min d2 - d2) h)) is merged into a
running (max, sum) kept in float64, so nothing overflows or underflows however small sigma is. The
N x M matrix never exists; each program holds one BLOCK_N x BLOCK_M tile.

Inputs may be strided (64-bit offsets). The output is float64 for float64 inputs and float32
otherwise. The float64 scalars (1 / sigma, the log normaliser) are passed as three float32 parts
each, because Triton types Python floats as float32. Block sizes are fixed under the interpreter
(TRITON_INTERPRET=1) and autotuned on a GPU.
"""

from __future__ import annotations

import contextlib
import math
import os
import struct

import torch
import triton
import triton.language as tl

__all__ = ["parzen_log_likelihood_fwd"]

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"

# Fixed blocks under the interpreter: few programs, small tiles (numpy runs every op).
_INTERPRET_BLOCKS = {"BLOCK_N": 16, "BLOCK_M": 32, "BLOCK_D": 32}

_F32_MAX = 3.4028234663852886e38


@triton.jit
def _join3(hi, mid, lo):
    """A float64 host scalar passed as three float32 parts, rebuilt in float64."""
    return tl.cast(hi, tl.float64) + tl.cast(mid, tl.float64) + tl.cast(lo, tl.float64)


@triton.jit
def _parzen_log_likelihood_fwd_kernel(
    x_ptr,  # [N, D]
    s_ptr,  # [M, D]
    out_ptr,  # [N], float32 or float64
    N,
    M,
    D,
    stride_xn,
    stride_xd,
    stride_sm,
    stride_sd,
    inv_sigma_hi,
    inv_sigma_mid,
    inv_sigma_lo,
    log_norm_hi,
    log_norm_mid,
    log_norm_lo,
    BLOCK_N: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    ACC: tl.constexpr = out_ptr.dtype.element_ty  # float64 for float64 inputs, else float32
    inv_sigma = _join3(inv_sigma_hi, inv_sigma_mid, inv_sigma_lo)
    h64 = 0.5 * inv_sigma * inv_sigma  # 1 / (2 sigma^2), float64
    if ACC == tl.float32:
        h = tl.minimum(h64, 3.4028234663852886e38).to(tl.float32)  # 0 * h stays 0
    else:
        h = h64

    rows = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_mask = rows < N
    feats = tl.arange(0, BLOCK_D)
    x_rows = x_ptr + rows[:, None] * stride_xn

    # ||x_i||^2 for the program's rows.
    x_sq = tl.zeros([BLOCK_N], dtype=ACC)
    for d0 in range(0, D, BLOCK_D):
        f = d0 + feats
        xt = tl.load(x_rows + f[None, :].to(tl.int64) * stride_xd,
                     mask=row_mask[:, None] & (f < D)[None, :], other=0.0).to(ACC)
        x_sq += tl.sum(xt * xt, axis=1)

    run_max = tl.full([BLOCK_N], float("-inf"), dtype=tl.float64)
    run_sum = tl.zeros([BLOCK_N], dtype=tl.float64)
    for j0 in range(0, M, BLOCK_M):
        cols = j0 + tl.arange(0, BLOCK_M).to(tl.int64)
        col_mask = cols < M
        s_rows = s_ptr + cols[:, None] * stride_sm
        dot = tl.zeros([BLOCK_N, BLOCK_M], dtype=ACC)
        s_sq = tl.zeros([BLOCK_M], dtype=ACC)
        for d0 in range(0, D, BLOCK_D):
            f = d0 + feats
            f_mask = (f < D)[None, :]
            f_off = f[None, :].to(tl.int64)
            xt = tl.load(x_rows + f_off * stride_xd, mask=row_mask[:, None] & f_mask, other=0.0)
            st = tl.load(s_rows + f_off * stride_sd, mask=col_mask[:, None] & f_mask, other=0.0)
            if x_ptr.dtype.element_ty == tl.float32:  # IEEE fp32 products, not TF32
                dot = tl.dot(xt, tl.trans(st), acc=dot, input_precision="ieee", out_dtype=ACC)
            else:  # fp16 / bf16 (exact products, fp32 accumulator) and fp64
                dot = tl.dot(xt, tl.trans(st), acc=dot, out_dtype=ACC)
            st_acc = st.to(ACC)
            s_sq += tl.sum(st_acc * st_acc, axis=1)
        d2 = (x_sq[:, None] + s_sq[None, :]) - 2.0 * dot
        d2 = tl.where(d2 < 0.0, 0.0, d2)  # cancellation; NaN stays NaN
        # Masked columns (finite: their loads were 0) are excluded from the min and the sum.
        d_min = tl.min(tl.where(col_mask[None, :], d2, float("inf")), axis=1)
        d2 = tl.where(col_mask[None, :], d2, d_min[:, None])
        terms = tl.where(col_mask[None, :], tl.exp((d_min[:, None] - d2) * h), 0.0)
        block_sum = tl.sum(terms, axis=1).to(tl.float64)
        block_max = -d_min.to(tl.float64) * h64
        new_max = tl.maximum(run_max, block_max)
        run_sum = run_sum * tl.exp(run_max - new_max) + block_sum * tl.exp(block_max - new_max)
        run_max = new_max

    log_norm = _join3(log_norm_hi, log_norm_mid, log_norm_lo)
    out = run_max + tl.log(run_sum) + log_norm
    tl.store(out_ptr + rows, out.to(ACC), mask=row_mask)


if _INTERPRET:
    _kernel = _parzen_log_likelihood_fwd_kernel
else:
    # A small list: the tile shapes flash-attention style kernels favour, with 32- or 64-wide
    # feature chunks. Keyed on D (the dtype of the tensors is part of the key already).
    _kernel = triton.autotune(
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
        key=["D"],
    )(_parzen_log_likelihood_fwd_kernel)


def _f32(v: float) -> float:
    return struct.unpack("f", struct.pack("f", v))[0]


def _split3(v: float) -> tuple[float, float, float]:
    """v as hi + mid + lo, each exactly a float32, so three float32 arguments carry a float64."""
    if not abs(v) < _F32_MAX:  # beyond float32 (callers keep v in range)
        return v, 0.0, 0.0
    hi = _f32(v)
    mid = _f32(v - hi)
    return hi, mid, _f32(v - hi - mid)


def _check(x: torch.Tensor, samples: torch.Tensor, sigma: float) -> None:
    if x.dim() != 2:
        raise ValueError(f"x must have shape [N, D], got {tuple(x.shape)}")
    if samples.dim() != 2:
        raise ValueError(f"samples must have shape [M, D], got {tuple(samples.shape)}")
    if samples.shape[0] < 1:
        raise ValueError(
            f"samples must hold at least one sample (M >= 1), got {tuple(samples.shape)}"
        )
    if samples.shape[1] != x.shape[1]:
        raise ValueError(
            f"samples must have the dimension D of x: x has shape {tuple(x.shape)}, samples "
            f"has shape {tuple(samples.shape)}"
        )
    if x.dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        raise ValueError(f"x must be float32, float64, float16 or bfloat16, got {x.dtype}")
    if samples.dtype != x.dtype:
        raise ValueError(f"samples must have the dtype of x ({x.dtype}), got {samples.dtype}")
    if samples.device != x.device:
        raise ValueError(f"samples must be on the device of x ({x.device}), got {samples.device}")
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma}")


def parzen_log_likelihood_fwd(x: torch.Tensor, samples: torch.Tensor, sigma: float) -> torch.Tensor:
    """log((1/M) sum_j N(x_i; samples_j, sigma^2 I)) for every row of x: [N].

    x [N, D] and samples [M, D] (M >= 1) of one dtype (float32, float64, float16, bfloat16) on one
    device; sigma > 0. Returns float64 for float64 inputs, else float32. Formula and tiling: the
    module docstring.
    """
    sigma = float(sigma)
    _check(x, samples, sigma)
    n, d = x.shape
    m = samples.shape[0]
    out_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    out = torch.empty((n,), dtype=out_dtype, device=x.device)
    if n == 0:
        return out
    # 1 / sigma beyond float32 (sigma < 3e-39) is clamped: h is then already ~1e77.
    inv_sigma = min(1.0 / sigma, _F32_MAX)
    log_norm = -math.log(m) - d * (math.log(sigma) + 0.5 * math.log(2.0 * math.pi))

    def grid(meta):
        return (triton.cdiv(n, meta["BLOCK_N"]),)

    ctx = torch.cuda.device(x.device) if x.device.type == "cuda" else contextlib.nullcontext()
    with ctx:
        _kernel[grid](
            x, samples, out, n, m, d,
            x.stride(0), x.stride(1), samples.stride(0), samples.stride(1),
            *_split3(inv_sigma), *_split3(log_norm),
            **(_INTERPRET_BLOCKS if _INTERPRET else {}),
        )  # fmt: skip
    return out

