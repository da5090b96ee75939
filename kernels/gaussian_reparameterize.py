"""The reparameterisation trick in Triton, forward and backward, noise from the Philox stream:

    z[i, j]           = mu[i, j] + exp(logvar[i, j] / 2) * eps[i, j]
    grad_logvar[i, j] = grad[i, j] * 0.5 * exp(logvar[i, j] / 2) * eps[i, j]

eps[i, :] are the Box-Muller normals of row counter offset + i of csrc/include/aae_fast/philox.h,
laid out as sample_gaussian_mixture draws them (words 2 + 2p, 3 + 2p give eps[2p], eps[2p + 1]), so
the tiles come from the same helpers as kernels/prior_sample.py: a tile of Philox blocks
[b0, b0 + BLOCK_B) yields the columns 4 b0 - 2 .. 4 (b0 + BLOCK_B) - 3 (the two left of column 0 are
masked off). The kernels read rng_state = int64 [seed, offset] on the device and never write it (the
backward regenerates eps from the same state; the Python entry point advances the generator).
Compute is float32 for float32 / float16 / bfloat16 inputs and float64 for float64.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from .prior_sample import _normal_tile, _row_counters

__all__ = ["gaussian_reparameterize_fwd", "gaussian_reparameterize_bwd"]

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
_INTERPRET_BLOCK_N = 64
_MAX_BLOCK_B = 8  # Philox blocks per column tile: up to 32 output columns


@triton.jit
def _gaussian_reparameterize_kernel(
    state_ptr,  # int64 [2]: seed, offset (read only)
    first_ptr,  # [B, D]: mu (forward) or grad (backward)
    logvar_ptr,  # [B, D]
    out_ptr,  # [B, D]: z (forward) or grad_logvar (backward)
    B,
    D,
    BACKWARD: tl.constexpr,
    COMPUTE_F64: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_B: tl.constexpr,
):
    dtype: tl.constexpr = tl.float64 if COMPUTE_F64 else tl.float32
    BLOCK_D: tl.constexpr = 4 * BLOCK_B
    rows, row_mask, seed, c0, c1 = _row_counters(state_ptr, tl.program_id(0), B, BLOCK_N)
    b0 = tl.program_id(1) * BLOCK_B
    cols = 4 * b0 - 2 + tl.arange(0, BLOCK_D)
    mask = row_mask[:, None] & ((cols >= 0) & (cols < D))[None, :]
    index = rows[:, None] * D + cols[None, :]
    eps = _normal_tile(seed, c0, c1, b0, BLOCK_N, BLOCK_B, dtype)
    first = tl.load(first_ptr + index, mask=mask, other=0.0).to(dtype)
    scale = tl.exp(0.5 * tl.load(logvar_ptr + index, mask=mask, other=0.0).to(dtype))
    if BACKWARD:
        out = 0.5 * first * scale * eps
    else:
        out = first + scale * eps
    tl.store(out_ptr + index, out.to(out_ptr.dtype.element_ty), mask=mask)


if _INTERPRET:
    _kernel = _gaussian_reparameterize_kernel
else:
    _kernel = triton.autotune(
        [triton.Config({"BLOCK_N": bn}, num_warps=w) for bn in (32, 64, 128) for w in (4, 8)],
        key=["D", "BACKWARD", "COMPUTE_F64"],
    )(_gaussian_reparameterize_kernel)


def _check(rng_state, first, first_name, logvar):
    if rng_state.dtype != torch.int64 or rng_state.shape != (2,) or not rng_state.is_contiguous():
        raise ValueError(
            "rng_state must be a contiguous int64 tensor [seed, offset] of shape [2], got "
            f"{rng_state.dtype} {tuple(rng_state.shape)}"
        )
    if first.dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        raise ValueError(f"{first_name} must be a float32, float64, float16 or bfloat16 tensor, got {first.dtype}")
    if first.dim() != 2:
        raise ValueError(f"{first_name} must have shape [B, D], got {tuple(first.shape)}")
    if logvar.shape != first.shape or logvar.dtype != first.dtype:
        raise ValueError(
            f"logvar must have the shape and dtype of {first_name} ({tuple(first.shape)}, {first.dtype}), "
            f"got {tuple(logvar.shape)}, {logvar.dtype}"
        )
    for name, t in ((first_name, first), ("logvar", logvar)):
        if t.device != rng_state.device:
            raise ValueError(f"{name} must be on {rng_state.device} (rng_state's), got {t.device}")


def _launch(rng_state, first, logvar, backward):
    first, logvar = first.contiguous(), logvar.contiguous()
    B, D = first.shape
    out = torch.empty((B, D), dtype=first.dtype, device=first.device)
    if B == 0 or D == 0:
        return out
    num_blocks = (2 + 2 * ((D + 1) // 2) + 3) // 4  # philox.h blocks_per_row(D)
    block_b = min(triton.next_power_of_2(num_blocks), _MAX_BLOCK_B)

    def grid(meta):
        return (triton.cdiv(B, meta["BLOCK_N"]), triton.cdiv(num_blocks, block_b))

    fixed = {"BLOCK_N": _INTERPRET_BLOCK_N} if _INTERPRET else {}
    device_guard = torch.cuda.device(first.device) if first.device.type == "cuda" else _null()
    with device_guard:
        _kernel[grid](
            rng_state, first, logvar, out, B, D,
            BACKWARD=backward, COMPUTE_F64=first.dtype == torch.float64, BLOCK_B=block_b, **fixed,
        )  # fmt: skip
    return out


def _null():
    import contextlib

    return contextlib.nullcontext()


def gaussian_reparameterize_fwd(rng_state, mu, logvar):
    """(z, state): z = mu + exp(logvar / 2) * eps [B, D] in mu's dtype; state = a copy of rng_state."""
    _check(rng_state, mu, "mu", logvar)
    return _launch(rng_state, mu, logvar, False), rng_state.clone()


def gaussian_reparameterize_bwd(grad, rng_state, logvar):
    """grad_logvar = grad * 0.5 * exp(logvar / 2) * eps [B, D] in logvar's dtype, eps regenerated."""
    _check(rng_state, grad, "grad", logvar)
    return _launch(rng_state, grad, logvar, True)
