"""Adversarial (GAN) losses in Triton: forward sums and elementwise backwards.

    adversarial_d_loss = mean(softplus(-real)) + mean(softplus(fake))
                       = bce_with_logits(real, 1).mean() + bce_with_logits(fake, 0).mean()
    adversarial_g_loss = mean(softplus(-fake))      = bce_with_logits(fake, 1).mean()
    d/dx mean(softplus(s x)) = s sigmoid(s x) / numel(x)          (s = +1 or -1)

with softplus(x) = max(x, 0) + log1p(exp(-|x|)) and sigmoid(x) = 1 / (1 + e) (x >= 0) or e / (1 + e)
(x < 0), e = exp(-|x|), so logits of any magnitude give finite values. log1p(e) for e in [0, 1] is
log(u) * e / (u - 1) with u = 1 + e (exact for tiny e; Triton has no portable log1p).

Compute and accumulation are in float32 (float64 for float64 logits); the loss is float32 (float64
for float64 logits), gradients have the logits' dtype. The sums are deterministic: program p of
_softplus_partials_kernel sums the fixed tile [p TILE, (p + 1) TILE), TILE = BLOCK * ITEMS, into
partials[p], and _finish_kernel adds the partials in order; no atomics, so the result depends on the
sizes only. A mean over zero elements is NaN (0 / 0), like torch.mean. The incoming gradient is read
on the device (no host sync).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

__all__ = [
    "adversarial_d_loss_fwd",
    "adversarial_d_loss_bwd",
    "adversarial_g_loss_fwd",
    "adversarial_g_loss_bwd",
]

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"

# Integer arguments enter float math through tl.cast, which also accepts the constexpr Triton may
# specialise an argument equal to 1 into.
# The reduction tiling is fixed (it fixes the order of additions); elementwise blocks are autotuned
# on a GPU and fixed under the interpreter.
_SUM_BLOCK = 1024
_SUM_ITEMS = 4
_TILE = _SUM_BLOCK * _SUM_ITEMS
_FINISH_BLOCK = 1024
_INTERPRET_BLOCK = 1024


# ------------------------------------------------------------------------------------------------
# Element math


@triton.jit
def _log1p_unit(e):
    """log1p(e) for e in [0, 1]: log(u) * e / (u - 1), u = 1 + e; e itself when u rounds to 1."""
    u = 1.0 + e
    d = u - 1.0
    exact = d == 0.0
    return tl.where(exact, e, tl.log(u) * (e / tl.where(exact, 1.0, d)))


@triton.jit
def _softplus(x):
    return tl.maximum(x, 0.0) + _log1p_unit(tl.exp(-tl.abs(x)))


@triton.jit
def _sigmoid(x):
    e = tl.exp(-tl.abs(x))
    d = 1.0 / (1.0 + e)
    return tl.where(x >= 0.0, d, e * d)


# ------------------------------------------------------------------------------------------------
# Kernels


@triton.jit
def _softplus_partials_kernel(
    x_ptr,  # [n] logits
    partials_ptr,  # [cdiv(n, TILE)] float32 or float64: the compute dtype
    n,
    SIGN: tl.constexpr,
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
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(acc_dtype)
        acc += tl.where(mask, _softplus(SIGN * x), 0.0)
    tl.store(partials_ptr + pid, tl.sum(acc, axis=0))


@triton.jit
def _finish_kernel(
    partials_ptr,  # [tiles_a + tiles_b]
    loss_ptr,  # [] the loss, in the compute dtype
    tiles_a,
    div_a,
    tiles_b,
    div_b,
    HAS_B: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """loss = sum(partials[:tiles_a]) / div_a + sum(partials[tiles_a:]) / div_b, in float64."""
    acc = tl.zeros([BLOCK], dtype=tl.float64)
    for start in range(0, tiles_a, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        acc += tl.load(partials_ptr + offs, mask=offs < tiles_a, other=0.0).to(tl.float64)
    loss = tl.sum(acc, axis=0) / tl.cast(div_a, tl.float64)
    if HAS_B:
        acc_b = tl.zeros([BLOCK], dtype=tl.float64)
        for start in range(0, tiles_b, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            acc_b += tl.load(partials_ptr + tiles_a + offs, mask=offs < tiles_b, other=0.0).to(
                tl.float64
            )
        loss += tl.sum(acc_b, axis=0) / tl.cast(div_b, tl.float64)
    tl.store(loss_ptr, loss.to(loss_ptr.dtype.element_ty))


@triton.jit
def _scaled_sigmoid_kernel(
    grad_ptr,  # [] the loss gradient, in the compute dtype
    x_ptr,  # [n] logits
    out_ptr,  # [n] gradient, in the logits' dtype
    n,
    SIGN: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """out = grad * SIGN * sigmoid(SIGN * x) / n."""
    acc_dtype: tl.constexpr = grad_ptr.dtype.element_ty
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    coef = tl.load(grad_ptr).to(acc_dtype) * SIGN / tl.cast(n, acc_dtype)
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(acc_dtype)
    tl.store(out_ptr + offs, (coef * _sigmoid(SIGN * x)).to(out_ptr.dtype.element_ty), mask=mask)


if _INTERPRET:
    _scaled_sigmoid = _scaled_sigmoid_kernel
else:
    _scaled_sigmoid = triton.autotune(
        [triton.Config({"BLOCK": b}, num_warps=w) for b in (1024, 2048, 4096) for w in (4, 8)],
        key=["n"],
    )(_scaled_sigmoid_kernel)


# ------------------------------------------------------------------------------------------------
# Launchers


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check_logits(x: torch.Tensor, name: str) -> None:
    if x.dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        raise ValueError(f"{name} must be a float32, float64, float16 or bfloat16 tensor, got {x.dtype}")


def _device_guard(device: torch.device):
    if device.type == "cuda":
        return torch.cuda.device(device)
    import contextlib

    return contextlib.nullcontext()


def _softplus_partials(x: torch.Tensor, sign: int, partials: torch.Tensor) -> None:
    n = x.numel()
    if n:
        _softplus_partials_kernel[(triton.cdiv(n, _TILE),)](
            x, partials, n, SIGN=sign, BLOCK=_SUM_BLOCK, ITEMS=_SUM_ITEMS, num_warps=4
        )


def _finish(partials, loss, tiles_a, div_a, tiles_b=0, div_b=1, has_b=False) -> None:
    _finish_kernel[(1,)](
        partials, loss, tiles_a, div_a, tiles_b, div_b, HAS_B=has_b, BLOCK=_FINISH_BLOCK, num_warps=4
    )


def adversarial_d_loss_fwd(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """mean(softplus(-real_logits)) + mean(softplus(fake_logits)): a 0-dim tensor (compute dtype)."""
    _check_logits(real_logits, "real_logits")
    if fake_logits.dtype != real_logits.dtype or fake_logits.device != real_logits.device:
        raise ValueError(
            f"fake_logits must have the dtype and device of real_logits ({real_logits.dtype}, "
            f"{real_logits.device}), got {fake_logits.dtype}, {fake_logits.device}"
        )
    real, fake = real_logits.contiguous(), fake_logits.contiguous()
    acc = _acc_dtype(real.dtype)
    tiles_r, tiles_f = triton.cdiv(real.numel(), _TILE), triton.cdiv(fake.numel(), _TILE)
    partials = torch.empty(max(tiles_r + tiles_f, 1), dtype=acc, device=real.device)
    loss = torch.empty((), dtype=acc, device=real.device)
    with _device_guard(real.device):
        _softplus_partials(real, -1, partials)
        _softplus_partials(fake, 1, partials[tiles_r:])
        _finish(partials, loss, tiles_r, real.numel(), tiles_f, fake.numel(), has_b=True)
    return loss


def adversarial_g_loss_fwd(fake_logits: torch.Tensor) -> torch.Tensor:
    """mean(softplus(-fake_logits)): a 0-dim tensor (compute dtype)."""
    _check_logits(fake_logits, "fake_logits")
    fake = fake_logits.contiguous()
    acc = _acc_dtype(fake.dtype)
    tiles = triton.cdiv(fake.numel(), _TILE)
    partials = torch.empty(max(tiles, 1), dtype=acc, device=fake.device)
    loss = torch.empty((), dtype=acc, device=fake.device)
    with _device_guard(fake.device):
        _softplus_partials(fake, -1, partials)
        _finish(partials, loss, tiles, fake.numel())
    return loss


def _scaled_sigmoid_launch(grad: torch.Tensor, x: torch.Tensor, sign: int) -> torch.Tensor:
    """grad * sign * sigmoid(sign * x) / numel(x), in x's dtype and shape (contiguous)."""
    _check_logits(x, "logits")
    x = x.contiguous()
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    n = x.numel()
    if n == 0:
        return out
    g = grad.to(_acc_dtype(x.dtype))

    def grid(meta):
        return (triton.cdiv(n, meta["BLOCK"]),)

    with _device_guard(x.device):
        extra = {"BLOCK": _INTERPRET_BLOCK} if _INTERPRET else {}
        _scaled_sigmoid[grid](g, x, out, n, SIGN=sign, **extra)
    return out


def adversarial_d_loss_bwd(grad, real_logits, fake_logits):
    """(grad_real, grad_fake) = (-grad sigmoid(-real) / n_real, grad sigmoid(fake) / n_fake); an
    input given as None gets an empty [0] tensor in its place."""
    grad_real = (
        grad.new_empty((0,)) if real_logits is None else _scaled_sigmoid_launch(grad, real_logits, -1)
    )
    grad_fake = (
        grad.new_empty((0,)) if fake_logits is None else _scaled_sigmoid_launch(grad, fake_logits, 1)
    )
    return grad_real, grad_fake


def adversarial_g_loss_bwd(grad, fake_logits):
    """grad_fake = -grad sigmoid(-fake) / n_fake."""
    return _scaled_sigmoid_launch(grad, fake_logits, -1)
