"""Fused linear + activation in Triton: a tiled GEMM with the bias and activation in its epilogue,
and the backward epilogue (activation derivative + bias-gradient column sums) as one kernel.

    forward:  y = act(x @ w^T + b)              x [B, K], w [N, K], b [N] or None, y [B, N]
    backward: gz = grad * act'(y)               act' through the output y:
                  relu 1[not y <= 0] (NaN passes), leaky_relu 1 or slope (y <= 0), sigmoid
                  y (1 - y), tanh 1 - y^2
              grad_b = sum_rows(gz), grad_x = gz @ w, grad_w = gz^T @ x

The forward accumulates in float32 (float64 for float64 inputs) with tl.dot; float32 inputs use
input_precision "ieee" (no TF32) so that results match the float32 reference. The backward's
GEMMs are torch.mm (cuBLAS); its epilogue kernel gives each program a block of columns and a chunk
of rows, writes one partial column sum per chunk, and a second kernel adds the chunks in order, so
the bias gradient depends on the sizes only (no atomics) and large batches fill the GPU. Block sizes
are autotuned on a GPU and fixed under the interpreter (TRITON_INTERPRET=1).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

__all__ = ["linear_act_fwd", "linear_act_bwd", "linear_act", "linear_act_backward"]

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
_INTERPRET_BLOCKS = {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16}
_ACT_CODES = {"identity": 0, "relu": 1, "leaky_relu": 2, "sigmoid": 3, "tanh": 4}
_BWD_BLOCK_N = 64
_BWD_BLOCK_M = 32
# Rows per program of the backward epilogue (a multiple of _BWD_BLOCK_M): B = 8192 gives 32 row
# chunks x ceil(N / 64) column blocks. Small under the interpreter, so that tests see several.
_BWD_ROWS_PER_CHUNK = 64 if _INTERPRET else 256


@triton.jit
def _times_slope(v, slope_hi, slope_lo):
    """v * leaky_relu's slope. Triton passes float arguments as float32, so the slope comes as its
    float32 head and tail (_split_slope): float64 v keeps ~48 bits of it, float32 v loses nothing."""
    return v * slope_hi + v * slope_lo


@triton.jit
def _activation(z, slope_hi, slope_lo, ACT: tl.constexpr):
    if ACT == 1:  # not "z > 0": a NaN passes, as in torch.relu
        z = tl.where(z <= 0, 0.0, z)
    elif ACT == 2:
        z = tl.where(z > 0, z, _times_slope(z, slope_hi, slope_lo))
    elif ACT == 3:
        e = tl.exp(-tl.abs(z))
        d = 1.0 / (1.0 + e)
        z = tl.where(z >= 0, d, e * d)
    elif ACT == 4:
        e = tl.exp(-2.0 * tl.abs(z))
        t = (1.0 - e) / (1.0 + e)
        # Near 0, where 1 - e cancels, the odd Taylor series to z^9 (as the C++ kernel): below
        # |z| = 1/4 in float32 (truncation < 1e-8 relative), 1/40 in float64 (< 1e-16).
        z2 = z * z
        series = z * (1.0 + z2 * (((62.0 / 2835.0 * z2 - 17.0 / 315.0) * z2 + 2.0 / 15.0) * z2 - 1.0 / 3.0))
        small = 0.025 if z.dtype == tl.float64 else 0.25
        z = tl.where(tl.abs(z) < small, series, tl.where(z >= 0, t, -t))
    return z


@triton.jit
def _activation_grad(g, y, slope_hi, slope_lo, ACT: tl.constexpr):
    if ACT == 1:  # blocked where y <= 0: a NaN y passes g, as torch.relu's backward
        g = tl.where(y <= 0, 0.0, g)
    elif ACT == 2:
        g = tl.where(y > 0, g, _times_slope(g, slope_hi, slope_lo))
    elif ACT == 3:
        g = g * (y * (1.0 - y))
    elif ACT == 4:
        g = g * (1.0 - y * y)
    return g


@triton.jit
def _linear_act_fwd_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr,
    B, N, K,
    stride_xb, stride_xk, stride_wn, stride_wk,
    slope_hi, slope_lo,
    HAS_BIAS: tl.constexpr, ACT: tl.constexpr, IEEE: tl.constexpr, ACC: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rows = pid_m.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_n.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    ks = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC)
    for k0 in range(0, K, BLOCK_K):
        kk = (k0 + ks).to(tl.int64)  # kk * stride in 64 bits: a transposed view's stride is large
        a = tl.load(x_ptr + rows[:, None] * stride_xb + kk[None, :] * stride_xk,
                    mask=(rows[:, None] < B) & (kk[None, :] < K), other=0.0)
        bt = tl.load(w_ptr + cols[None, :] * stride_wn + kk[:, None] * stride_wk,
                     mask=(cols[None, :] < N) & (kk[:, None] < K), other=0.0)
        if IEEE:
            acc += tl.dot(a, bt, input_precision="ieee", out_dtype=ACC)
        else:
            acc += tl.dot(a, bt, out_dtype=ACC)
    if HAS_BIAS:
        bias = tl.load(b_ptr + cols, mask=cols < N, other=0.0).to(ACC)
        acc += bias[None, :]
    acc = _activation(acc, slope_hi, slope_lo, ACT)
    tl.store(y_ptr + rows[:, None] * N + cols[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=(rows[:, None] < B) & (cols[None, :] < N))


@triton.jit
def _linear_act_bwd_epilogue_kernel(
    g_ptr, y_ptr, gz_ptr, gb_ptr, part_ptr,
    B, N, rows_per_chunk,
    slope_hi, slope_lo,
    STORE_GZ: tl.constexpr, NEED_GB: tl.constexpr, ONE_CHUNK: tl.constexpr, ACT: tl.constexpr,
    ACC: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Program (column block, row chunk): gz over the chunk's rows, and the chunk's column sums
    (into grad_bias itself when there is one chunk, else into row `chunk` of the partials)."""
    cols = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    col_mask = cols < N
    chunk = tl.program_id(1).to(tl.int64)
    row_begin = chunk * rows_per_chunk
    acc = tl.zeros((BLOCK_N,), dtype=ACC)
    for r0 in range(0, rows_per_chunk, BLOCK_M):  # rows_per_chunk is a multiple of BLOCK_M
        rows = row_begin + r0 + tl.arange(0, BLOCK_M).to(tl.int64)
        mask = (rows[:, None] < B) & col_mask[None, :]
        offs = rows[:, None] * N + cols[None, :]
        g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(ACC)
        y = tl.load(y_ptr + offs, mask=mask, other=0.0).to(ACC)
        gz = _activation_grad(g, y, slope_hi, slope_lo, ACT).to(gz_ptr.dtype.element_ty)
        if STORE_GZ:
            tl.store(gz_ptr + offs, gz, mask=mask)
        if NEED_GB:
            acc += tl.sum(gz.to(ACC), axis=0)
    if NEED_GB:
        if ONE_CHUNK:
            tl.store(gb_ptr + cols, acc.to(gb_ptr.dtype.element_ty), mask=col_mask)
        else:
            tl.store(part_ptr + chunk * N + cols, acc, mask=col_mask)


@triton.jit
def _sum_chunks_kernel(part_ptr, gb_ptr, chunks, N, BLOCK_N: tl.constexpr):
    """grad_bias[c] = sum over k = 0, 1, ... of partials[k, c], in that order."""
    cols = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    col_mask = cols < N
    acc = tl.zeros((BLOCK_N,), dtype=part_ptr.dtype.element_ty)
    for k in range(0, chunks):
        acc += tl.load(part_ptr + k * N + cols, mask=col_mask, other=0.0)
    tl.store(gb_ptr + cols, acc.to(gb_ptr.dtype.element_ty), mask=col_mask)


def _rows_per_chunk(B: int) -> int:
    """Rows per program of the backward epilogue: _BWD_ROWS_PER_CHUNK, more when B would need over
    65,535 chunks (the grid's second dimension). A function of B alone: so is the summation order."""
    chunks = triton.cdiv(B, _BWD_ROWS_PER_CHUNK)
    return _BWD_ROWS_PER_CHUNK * max(1, triton.cdiv(chunks, 65535))


if _INTERPRET:
    _fwd_kernel = _linear_act_fwd_kernel
else:
    _fwd_kernel = triton.autotune(
        [
            triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=s)
            for bm, bn, bk, w, s in [
                (64, 64, 32, 4, 3),
                (128, 64, 32, 4, 3),
                (64, 128, 32, 4, 3),
                (128, 128, 32, 8, 3),
                (32, 64, 64, 4, 2),
                (16, 64, 64, 4, 2),
            ]
        ],
        key=["B", "N", "K"],
    )(_linear_act_fwd_kernel)


def _split_slope(slope) -> tuple[float, float]:
    """(head, tail): float32 numbers whose sum is `slope` to ~48 bits (see _times_slope)."""
    head = float(torch.tensor(float(slope), dtype=torch.float32))
    return head, float(slope) - head


def _acc_dtype(dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def _check(x, weight, bias, activation, negative_slope):
    if activation not in _ACT_CODES:
        raise RuntimeError(f"activation must be one of {', '.join(map(repr, _ACT_CODES))}, got {activation!r}")
    if activation == "leaky_relu" and not (0.0 <= negative_slope < float("inf")):
        raise RuntimeError(f"negative_slope must be finite and >= 0, got {negative_slope}")
    if x.dim() != 2:
        raise RuntimeError(f"x must have shape [B, K], got {list(x.shape)}")
    if weight.dim() != 2 or weight.shape[1] != x.shape[1]:
        raise RuntimeError(f"weight must have shape [N, K] with K = x.size(1) = {x.shape[1]}, got {list(weight.shape)}")
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != weight.shape[0]):
        raise RuntimeError(f"bias must have shape [N] with N = weight.size(0) = {weight.shape[0]}, got {list(bias.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and (t.dtype != x.dtype or t.device != x.device):
            raise RuntimeError(f"{name} must have the dtype and device of x ({x.dtype}, {x.device}), got {t.dtype}, {t.device}")


def linear_act_fwd(x, weight, bias=None, activation="relu", negative_slope=0.01):
    """y = act(x @ weight^T + bias): [B, N] in x's dtype, one tiled GEMM with the epilogue fused."""
    _check(x, weight, bias, activation, negative_slope)
    B, K = x.shape
    N = weight.shape[0]
    y = torch.empty((B, N), dtype=x.dtype, device=x.device)
    if y.numel() == 0:
        return y
    bias_arg = bias.contiguous() if bias is not None else y

    def grid(meta):
        return (triton.cdiv(B, meta["BLOCK_M"]), triton.cdiv(N, meta["BLOCK_N"]))

    _fwd_kernel[grid](
        x, weight, bias_arg, y,
        B, N, K,
        x.stride(0), x.stride(1), weight.stride(0), weight.stride(1),
        *_split_slope(negative_slope),
        HAS_BIAS=bias is not None, ACT=_ACT_CODES[activation],
        IEEE=x.dtype in (torch.float32, torch.float64), ACC=_acc_dtype(x.dtype),
        **(_INTERPRET_BLOCKS if _INTERPRET else {}),
    )
    return y


def linear_act_bwd(grad, y, x, weight, activation, negative_slope, output_mask):
    """(grad_x [B, K], grad_weight [N, K], grad_bias [N]); an unwanted one is an empty [0] tensor."""
    if activation not in _ACT_CODES:
        raise RuntimeError(f"activation must be one of {', '.join(map(repr, _ACT_CODES))}, got {activation!r}")
    if grad.shape != y.shape:
        raise RuntimeError(f"grad must have the shape of y ({list(y.shape)}), got {list(grad.shape)}")
    if output_mask[0] and weight is None:
        raise RuntimeError("weight is required for the gradient of x")
    if output_mask[1] and x is None:
        raise RuntimeError("x is required for the gradient of weight")
    B, N = y.shape
    need_gz = bool(output_mask[0] or output_mask[1])
    need_gb = bool(output_mask[2])
    g = grad.contiguous()
    yc = g if activation == "identity" else y.contiguous()  # identity never reads y
    store_gz = need_gz and activation != "identity"
    gz = torch.empty_like(yc) if store_gz else g
    grad_b = torch.empty((N,) if need_gb else (0,), dtype=y.dtype, device=y.device)
    if (store_gz or need_gb) and N > 0:
        if B == 0:
            grad_b.zero_()
        else:
            rows_per_chunk = _rows_per_chunk(B)
            chunks = triton.cdiv(B, rows_per_chunk)
            one_chunk = chunks == 1
            acc_dtype = torch.float64 if y.dtype == torch.float64 else torch.float32
            partials = torch.empty((0 if one_chunk or not need_gb else chunks, N), dtype=acc_dtype,
                                   device=y.device)
            columns = triton.cdiv(N, _BWD_BLOCK_N)
            _linear_act_bwd_epilogue_kernel[(columns, chunks)](
                g, yc, gz, grad_b if need_gb else yc, partials if partials.numel() else yc,
                B, N, rows_per_chunk, *_split_slope(negative_slope),
                STORE_GZ=store_gz, NEED_GB=need_gb, ONE_CHUNK=one_chunk, ACT=_ACT_CODES[activation],
                ACC=_acc_dtype(y.dtype), BLOCK_M=_BWD_BLOCK_M, BLOCK_N=_BWD_BLOCK_N,
            )
            if need_gb and not one_chunk:
                _sum_chunks_kernel[(columns,)](partials, grad_b, chunks, N, BLOCK_N=_BWD_BLOCK_N)
    empty = y.new_empty((0,))
    grad_x = torch.mm(gz, weight) if output_mask[0] else empty
    grad_w = torch.mm(gz.t(), x) if output_mask[1] else empty.clone()
    return grad_x, grad_w, grad_b


# The op-shaped launchers registered for CUDA tensors (aae_fast.ops.linear_act).
def linear_act(x, weight, bias, activation, negative_slope):
    return linear_act_fwd(x, weight, bias, activation, negative_slope)


def linear_act_backward(grad, y, x, weight, activation, negative_slope, output_mask):
    return linear_act_bwd(grad, y, x, weight, activation, negative_slope, output_mask)
