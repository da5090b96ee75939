"""The reconstruction loss in Triton: a forward sum and an elementwise backward.

    loss = (1 / B) sum_ij l(o_ij, t_ij)   over output, target [B, F]
    bce: l = softplus(o) - o t            dl/do = sigmoid(o) - t        dl/dt = -o
    mse: l = (o - t)^2                    dl/do = 2 (o - t)             dl/dt = -2 (o - t)

with softplus(x) = max(x, 0) + log1p(exp(-|x|)) (finite for any logit) and the stable sigmoid of
kernels/adversarial_loss.py. The per-row sums followed by the mean over rows equal the sum over the
B F contiguous elements divided by B, so the forward reduces flat fixed tiles (deterministic: tile
partials, then one program adds them in order, no atomics). Compute in float32 (float64 for float64
inputs); the loss is float32 (float64), gradients have the inputs' dtype. B == 0 gives NaN.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from .adversarial_loss import _finish, _log1p_unit, _sigmoid

__all__ = ["reconstruction_loss_fwd", "reconstruction_loss_bwd"]

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"

_SUM_BLOCK = 1024
_SUM_ITEMS = 4
_TILE = _SUM_BLOCK * _SUM_ITEMS
_INTERPRET_BLOCK = 1024
_KINDS = {"bce": 0, "mse": 1}


@triton.jit
def _recon_partials_kernel(
    output_ptr,  # [n] = [B * F] (logits for bce)
    target_ptr,  # [n]
    partials_ptr,  # [cdiv(n, TILE)] in the compute dtype
    n,
    KIND: tl.constexpr,  # 0: bce, 1: mse
    BLOCK: tl.constexpr,
    ITEMS: tl.constexpr,
):
    acc_dtype: tl.constexpr = partials_ptr.dtype.element_ty
    pid = tl.program_id(0)
    base = pid.to(tl.int64) * (BLOCK * ITEMS)
    acc = tl.zeros([BLOCK], dtype=acc_dtype)
    for k in tl.static_range(ITEMS):
        offs = base + k * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        o = tl.load(output_ptr + offs, mask=mask, other=0.0).to(acc_dtype)
        t = tl.load(target_ptr + offs, mask=mask, other=0.0).to(acc_dtype)
        if KIND == 0:
            term = tl.maximum(o, 0.0) + _log1p_unit(tl.exp(-tl.abs(o))) - o * t
        else:
            d = o - t
            term = d * d
        acc += tl.where(mask, term, 0.0)
    tl.store(partials_ptr + pid, tl.sum(acc, axis=0))


@triton.jit
def _recon_backward_kernel(
    grad_ptr,  # [] the loss gradient, in the compute dtype
    output_ptr,  # [n]
    target_ptr,  # [n]
    grad_output_ptr,  # [n] (unused unless WANT_OUTPUT)
    grad_target_ptr,  # [n] (unused unless WANT_TARGET)
    n,
    rows,
    KIND: tl.constexpr,
    WANT_OUTPUT: tl.constexpr,
    WANT_TARGET: tl.constexpr,
    BLOCK: tl.constexpr,
):
    acc_dtype: tl.constexpr = grad_ptr.dtype.element_ty
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    c = tl.load(grad_ptr).to(acc_dtype) / tl.cast(rows, acc_dtype)
    o = tl.load(output_ptr + offs, mask=mask, other=0.0).to(acc_dtype)
    t = tl.load(target_ptr + offs, mask=mask, other=0.0).to(acc_dtype)
    if KIND == 0:
        d_output = c * (_sigmoid(o) - t)
        d_target = -c * o
    else:
        d_output = 2.0 * c * (o - t)
        d_target = -d_output
    if WANT_OUTPUT:
        tl.store(grad_output_ptr + offs, d_output.to(grad_output_ptr.dtype.element_ty), mask=mask)
    if WANT_TARGET:
        tl.store(grad_target_ptr + offs, d_target.to(grad_target_ptr.dtype.element_ty), mask=mask)


if _INTERPRET:
    _recon_backward = _recon_backward_kernel
else:
    _recon_backward = triton.autotune(
        [triton.Config({"BLOCK": b}, num_warps=w) for b in (1024, 2048, 4096) for w in (4, 8)],
        key=["n", "KIND", "WANT_OUTPUT", "WANT_TARGET"],
    )(_recon_backward_kernel)


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check(output: torch.Tensor, target: torch.Tensor, kind: str) -> int:
    if kind not in _KINDS:
        raise ValueError(f"kind must be 'bce' or 'mse', got {kind!r}")
    if output.dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        raise ValueError(f"output must be a float32, float64, float16 or bfloat16 tensor, got {output.dtype}")
    if output.dim() != 2:
        raise ValueError(f"output must have shape [B, F], got {tuple(output.shape)}")
    if target.shape != output.shape or target.dtype != output.dtype or target.device != output.device:
        raise ValueError(
            f"target must match output's shape, dtype and device ({tuple(output.shape)}, "
            f"{output.dtype}, {output.device}), got {tuple(target.shape)}, {target.dtype}, "
            f"{target.device}"
        )
    return _KINDS[kind]


def _device_guard(device: torch.device):
    if device.type == "cuda":
        return torch.cuda.device(device)
    import contextlib

    return contextlib.nullcontext()


def reconstruction_loss_fwd(output: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """(1 / B) sum_ij l(output_ij, target_ij) as a 0-dim tensor in the compute dtype."""
    kind_id = _check(output, target, kind)
    output, target = output.contiguous(), target.contiguous()
    acc = _acc_dtype(output.dtype)
    n = output.numel()
    tiles = triton.cdiv(n, _TILE)
    partials = torch.empty(max(tiles, 1), dtype=acc, device=output.device)
    loss = torch.empty((), dtype=acc, device=output.device)
    with _device_guard(output.device):
        if n:
            _recon_partials_kernel[(tiles,)](
                output, target, partials, n, KIND=kind_id, BLOCK=_SUM_BLOCK, ITEMS=_SUM_ITEMS,
                num_warps=4,
            )  # fmt: skip
        _finish(partials, loss, tiles, output.shape[0])
    return loss


def reconstruction_loss_bwd(grad, output, target, kind, output_mask):
    """(grad_output, grad_target) = grad / B * (dl/do, dl/dt); an unwanted one (output_mask) is an
    empty [0] tensor."""
    kind_id = _check(output, target, kind)
    output, target = output.contiguous(), target.contiguous()
    want_output, want_target = bool(output_mask[0]), bool(output_mask[1])
    grad_output = torch.empty_like(output) if want_output else grad.new_empty((0,))
    grad_target = torch.empty_like(output) if want_target else grad.new_empty((0,))
    n = output.numel()
    if n == 0 or not (want_output or want_target):
        return grad_output, grad_target
    g = grad.to(_acc_dtype(output.dtype))

    def grid(meta):
        return (triton.cdiv(n, meta["BLOCK"]),)

    with _device_guard(output.device):
        extra = {"BLOCK": _INTERPRET_BLOCK} if _INTERPRET else {}
        _recon_backward[grid](
            g, output, target,
            grad_output if want_output else output, grad_target if want_target else output,
            n, output.shape[0],
            KIND=kind_id, WANT_OUTPUT=want_output, WANT_TARGET=want_target, **extra,
        )  # fmt: skip
    return grad_output, grad_target
