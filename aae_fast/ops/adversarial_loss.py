"""Adversarial (GAN) losses of the AAE's regularisation phase, fused forward and backward.

Four custom ops (schemas in csrc/ops.cpp): `adversarial_d_loss`, `adversarial_g_loss` and their
backwards `adversarial_d_loss_backward`, `adversarial_g_loss_backward`, which are ops of their own
so that torch.compile and CUDA graphs see them. Served by C++ on CPU (csrc/cpu/adversarial_loss.cpp),
by CUDA C++ (csrc/cuda/adversarial_loss.cu) or Triton (kernels/adversarial_loss.py) on CUDA, and by
the pure-PyTorch composite below when the extension is not built (`aae_fast.backend_info()`).

Numerics: bce_with_logits(x, 1) = softplus(-x) and bce_with_logits(x, 0) = softplus(x), evaluated
as max(x, 0) + log1p(exp(-|x|)), so logits of any magnitude (|x| = 1e4 included) give finite losses
and gradients. Inputs may be float32, float64, float16 or bfloat16; the reduction accumulates in
float32 or wider; the loss is a 0-dim float32 tensor, float64 for float64 inputs (so gradcheck can
run in float64). Gradients come back in the logits' dtype. Logits may have any shape ([B] and
[B, 1] are the usual ones): the mean runs over all elements, and a mean over zero elements is NaN,
like `torch.mean`. The kernels are deterministic: the reduction order depends on the sizes only.
"""

from __future__ import annotations

import torch

from .. import _backend
from . import _loss_common as common

_D_LOSS = torch.ops.aae_fast.adversarial_d_loss.default
_D_LOSS_BACKWARD = torch.ops.aae_fast.adversarial_d_loss_backward.default
_G_LOSS = torch.ops.aae_fast.adversarial_g_loss.default
_G_LOSS_BACKWARD = torch.ops.aae_fast.adversarial_g_loss_backward.default


def adversarial_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss: real samples labelled 1, fake samples labelled 0.

    loss = mean(bce_with_logits(real, 1)) + mean(bce_with_logits(fake, 0))
         = mean(softplus(-real_logits)) + mean(softplus(fake_logits))

    Args:
        real_logits: discriminator logits of prior samples, any shape (e.g. [B] or [B, 1]).
        fake_logits: discriminator logits of encoded samples, any shape (e.g. [B'] or [B', 1]);
            the same dtype and device as real_logits, any number of elements.

    Returns:
        A 0-dim tensor: float32, or float64 for float64 logits. Differentiable in both inputs.
    """
    return _D_LOSS(real_logits, fake_logits)


def adversarial_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator's (encoder's) loss: fake samples labelled 1.

    loss = mean(bce_with_logits(fake, 1)) = mean(softplus(-fake_logits))

    Args:
        fake_logits: discriminator logits of encoded samples, any shape (e.g. [B] or [B, 1]).

    Returns:
        A 0-dim tensor: float32, or float64 for float64 logits. Differentiable in fake_logits.
    """
    return _G_LOSS(fake_logits)


# ----------------------------------------------------------------------------------------------
# Fake (meta) impls: shapes and dtypes only, for torch.compile and FakeTensor tracing.


@torch.library.register_fake("aae_fast::adversarial_d_loss")
def _(real_logits, fake_logits):
    common.check_input_dtype(real_logits, "real_logits")
    common.check_same_dtype_and_device(real_logits, "real_logits", fake_logits, "fake_logits")
    return real_logits.new_empty((), dtype=common.loss_dtype(real_logits.dtype))


@torch.library.register_fake("aae_fast::adversarial_d_loss_backward")
def _(grad, real_logits, fake_logits):
    _check_d_backward(grad, real_logits, fake_logits)
    return _grad_like(grad, real_logits), _grad_like(grad, fake_logits)


@torch.library.register_fake("aae_fast::adversarial_g_loss")
def _(fake_logits):
    common.check_input_dtype(fake_logits, "fake_logits")
    return fake_logits.new_empty((), dtype=common.loss_dtype(fake_logits.dtype))


@torch.library.register_fake("aae_fast::adversarial_g_loss_backward")
def _(grad, fake_logits):
    common.check_input_dtype(fake_logits, "fake_logits")
    common.check_loss_grad(grad, fake_logits, "fake_logits")
    return fake_logits.new_empty(fake_logits.shape)


def _check_d_backward(grad, real_logits, fake_logits):
    for name, t in (("real_logits", real_logits), ("fake_logits", fake_logits)):
        if t is not None:
            common.check_input_dtype(t, name)
            common.check_loss_grad(grad, t, name)
    if real_logits is not None and fake_logits is not None:
        common.check_same_dtype_and_device(real_logits, "real_logits", fake_logits, "fake_logits")


def _grad_like(grad, t):
    """A contiguous tensor shaped like t, or an empty [0] tensor (grad's dtype) when t is None."""
    return grad.new_empty((0,)) if t is None else t.new_empty(t.shape)


# ----------------------------------------------------------------------------------------------
# Autograd: the backward is its own op; only the logits whose gradient is needed are saved. Under
# create_graph=True (grad mode on in the backward) the same formula runs as differentiable torch
# ops, so that second-order gradients (a gradient penalty) flow through it.
# Mirrored by csrc/autograd/adversarial_loss.cpp: keep the two in step.


def _d_setup_context(ctx, inputs, output):
    real_logits, fake_logits = inputs
    ctx.save_for_backward(
        real_logits if ctx.needs_input_grad[0] else None,
        fake_logits if ctx.needs_input_grad[1] else None,
    )


def _d_backward(ctx, grad):
    real_logits, fake_logits = ctx.saved_tensors
    if torch.is_grad_enabled():  # create_graph=True: the formula in differentiable torch ops
        return (
            None if real_logits is None else _scaled_sigmoid(grad, real_logits, -1.0),
            None if fake_logits is None else _scaled_sigmoid(grad, fake_logits, 1.0),
        )
    grad_real, grad_fake = _D_LOSS_BACKWARD(grad, real_logits, fake_logits)
    return (
        grad_real if real_logits is not None else None,
        grad_fake if fake_logits is not None else None,
    )


def _g_setup_context(ctx, inputs, output):
    (fake_logits,) = inputs
    if ctx.needs_input_grad[0]:
        ctx.save_for_backward(fake_logits)


def _g_backward(ctx, grad):
    (fake_logits,) = ctx.saved_tensors
    if torch.is_grad_enabled():  # create_graph=True: the formula in differentiable torch ops
        return _scaled_sigmoid(grad, fake_logits, -1.0)
    return _G_LOSS_BACKWARD(grad, fake_logits)


# The C++ Autograd kernels (csrc/autograd/adversarial_loss.cpp) implement these formulas when the
# extension is built; these serve the pure-PyTorch fallback.
_backend.register_autograd("adversarial_d_loss", _d_backward, _d_setup_context)
_backend.register_autograd("adversarial_g_loss", _g_backward, _g_setup_context)


# ----------------------------------------------------------------------------------------------
# The pure-PyTorch composite: the documented fallback when the extension is not built.


def _mean_softplus(x: torch.Tensor, sign: float) -> torch.Tensor:
    return common.softplus(x.to(common.loss_dtype(x.dtype)) * sign).mean()


def _d_loss_composite(real_logits, fake_logits):
    common.check_input_dtype(real_logits, "real_logits")
    common.check_same_dtype_and_device(real_logits, "real_logits", fake_logits, "fake_logits")
    return _mean_softplus(real_logits, -1.0) + _mean_softplus(fake_logits, 1.0)


def _scaled_sigmoid(grad, x, sign):
    """grad * sign * sigmoid(sign * x) / numel(x), computed in the loss dtype, in x's dtype."""
    acc = common.loss_dtype(x.dtype)
    coef = grad.to(acc) * (sign / x.numel()) if x.numel() else grad.to(acc)
    return (coef * torch.sigmoid(x.to(acc) * sign)).to(x.dtype).contiguous()


def _d_loss_backward_composite(grad, real_logits, fake_logits):
    _check_d_backward(grad, real_logits, fake_logits)
    grad_real = grad.new_empty((0,)) if real_logits is None else _scaled_sigmoid(grad, real_logits, -1.0)
    grad_fake = grad.new_empty((0,)) if fake_logits is None else _scaled_sigmoid(grad, fake_logits, 1.0)
    return grad_real, grad_fake


def _g_loss_composite(fake_logits):
    common.check_input_dtype(fake_logits, "fake_logits")
    return _mean_softplus(fake_logits, -1.0)


def _g_loss_backward_composite(grad, fake_logits):
    common.check_input_dtype(fake_logits, "fake_logits")
    common.check_loss_grad(grad, fake_logits, "fake_logits")
    return _scaled_sigmoid(grad, fake_logits, -1.0)


_COMPOSITES = {
    "adversarial_d_loss": _d_loss_composite,
    "adversarial_d_loss_backward": _d_loss_backward_composite,
    "adversarial_g_loss": _g_loss_composite,
    "adversarial_g_loss_backward": _g_loss_backward_composite,
}


# ----------------------------------------------------------------------------------------------
# Implementations registered from Python: Triton on CUDA (when chosen), and the composite where the
# extension has no kernel (see aae_fast._backend.register_python_kernels).


def _triton_launchers() -> dict:
    if not torch.cuda.is_available():
        return {}
    from aae_fast.kernels import adversarial_loss as triton_kernels

    return {
        "adversarial_d_loss": triton_kernels.adversarial_d_loss_fwd,
        "adversarial_d_loss_backward": triton_kernels.adversarial_d_loss_bwd,
        "adversarial_g_loss": triton_kernels.adversarial_g_loss_fwd,
        "adversarial_g_loss_backward": triton_kernels.adversarial_g_loss_bwd,
    }


_backend.register_python_kernels(_COMPOSITES, _triton_launchers())
