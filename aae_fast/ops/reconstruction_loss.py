"""The AAE's reconstruction loss, fused forward and backward.

Two custom ops (schemas in csrc/ops.cpp): `reconstruction_loss(output, target, kind)` and its
backward `reconstruction_loss_backward(grad, output, target, kind, output_mask)`, an op of its own
so that torch.compile and CUDA graphs see it. Served by C++ on CPU
(csrc/cpu/reconstruction_loss.cpp), by CUDA C++ (csrc/cuda/reconstruction_loss.cu) or Triton
(kernels/reconstruction_loss.py) on CUDA, and by the pure-PyTorch composite below when the
extension is not built (`aae_fast.backend_info()`).

Semantics: output and target are [B, F] (2-D only; flatten images with `x.flatten(1)`), one dtype
(float32, float64, float16 or bfloat16) and device. The loss sums over the features of each row
and averages over the rows:
    "bce": loss = (1 / B) sum_ij bce_with_logits(o_ij, t_ij),  output holds logits
               = (1 / B) sum_ij softplus(o_ij) - o_ij t_ij    (finite for any logit magnitude)
    "mse": loss = (1 / B) sum_ij (o_ij - t_ij)^2
Accumulation is in float32 or wider; the loss is a 0-dim float32 tensor, float64 for float64
inputs. B == 0 gives NaN (a mean over zero rows, like `torch.mean`); F == 0 gives 0. Gradients
come back in the inputs' dtype; target may require grad too. The kernels are deterministic.
"""

from __future__ import annotations

import torch

from .. import _backend
from . import _loss_common as common

_RECON_LOSS = torch.ops.aae_fast.reconstruction_loss.default
_RECON_LOSS_BACKWARD = torch.ops.aae_fast.reconstruction_loss_backward.default


def reconstruction_loss(output: torch.Tensor, target: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """Per-row sum over features of the reconstruction error, averaged over rows.

    "bce": loss = mean_i sum_j bce_with_logits(output_ij, target_ij)   (output holds logits)
    "mse": loss = mean_i sum_j (output_ij - target_ij)^2

    Args:
        output: [B, F] decoder output (logits for "bce").
        target: [B, F] the inputs being reconstructed (in [0, 1] for "bce"); output's dtype and
            device.
        kind: "bce" or "mse".

    Returns:
        A 0-dim tensor: float32, or float64 for float64 inputs. Differentiable in output and
        target.

    Raises:
        ValueError: kind is neither "bce" nor "mse".
    """
    if kind not in common.RECON_KINDS:
        raise ValueError(f"kind must be 'bce' or 'mse', got {kind!r}")
    return _RECON_LOSS(output, target, kind)


# ----------------------------------------------------------------------------------------------
# Fake (meta) impls: shapes and dtypes only, for torch.compile and FakeTensor tracing.


@torch.library.register_fake("aae_fast::reconstruction_loss")
def _(output, target, kind):
    common.check_kind(kind)
    common.check_recon_inputs(output, target)
    return output.new_empty((), dtype=common.loss_dtype(output.dtype))


@torch.library.register_fake("aae_fast::reconstruction_loss_backward")
def _(grad, output, target, kind, output_mask):
    _check_backward(grad, output, target, kind)
    return tuple(
        output.new_empty(output.shape) if wanted else grad.new_empty((0,)) for wanted in output_mask
    )


def _check_backward(grad, output, target, kind):
    common.check_kind(kind)
    common.check_recon_inputs(output, target)
    common.check_loss_grad(grad, output, "output")


# ----------------------------------------------------------------------------------------------
# Autograd: the backward is its own op. Every gradient needs both inputs (bce's grad_target needs
# only output, a case not worth a special path), so both are saved when any gradient is needed.
# Mirrored by csrc/autograd/reconstruction_loss.cpp: keep the two in step.


def _setup_context(ctx, inputs, output):
    out, target, kind = inputs
    ctx.kind = kind
    if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
        ctx.save_for_backward(out, target)


def _backward(ctx, grad):
    out, target = ctx.saved_tensors
    mask = [bool(ctx.needs_input_grad[0]), bool(ctx.needs_input_grad[1])]
    # Under create_graph=True, the formula in differentiable torch ops (second-order gradients).
    backward = _loss_backward_composite if torch.is_grad_enabled() else _RECON_LOSS_BACKWARD
    grad_output, grad_target = backward(grad, out, target, ctx.kind, mask)
    return (grad_output if mask[0] else None, grad_target if mask[1] else None, None)


# The C++ Autograd kernel (csrc/autograd/reconstruction_loss.cpp) implements this formula when the
# extension is built; this one serves the pure-PyTorch fallback.
_backend.register_autograd("reconstruction_loss", _backward, _setup_context)


# ----------------------------------------------------------------------------------------------
# The pure-PyTorch composite: the documented fallback when the extension is not built.


def _loss_composite(output, target, kind):
    common.check_kind(kind)
    common.check_recon_inputs(output, target)
    acc = common.loss_dtype(output.dtype)
    o, t = output.to(acc), target.to(acc)
    if kind == "bce":
        per_element = common.softplus(o) - o * t
    else:
        per_element = (o - t).square()
    return per_element.sum(dim=1).mean()


def _loss_backward_composite(grad, output, target, kind, output_mask):
    _check_backward(grad, output, target, kind)
    acc = common.loss_dtype(output.dtype)
    o, t = output.to(acc), target.to(acc)
    c = grad.to(acc) / output.shape[0] if output.shape[0] else grad.to(acc)
    if kind == "bce":
        d_output, d_target = c * (torch.sigmoid(o) - t), -c * o
    else:
        d_output = 2 * c * (o - t)
        d_target = -d_output
    return tuple(
        d.to(output.dtype).contiguous() if wanted else grad.new_empty((0,))
        for d, wanted in zip((d_output, d_target), output_mask)
    )


_COMPOSITES = {
    "reconstruction_loss": _loss_composite,
    "reconstruction_loss_backward": _loss_backward_composite,
}


# ----------------------------------------------------------------------------------------------
# Implementations registered from Python: Triton on CUDA (when chosen), and the composite where the
# extension has no kernel (see aae_fast._backend.register_python_kernels).


def _triton_launchers() -> dict:
    if not torch.cuda.is_available():
        return {}
    from aae_fast.kernels import reconstruction_loss as triton_kernels

    return {
        "reconstruction_loss": triton_kernels.reconstruction_loss_fwd,
        "reconstruction_loss_backward": triton_kernels.reconstruction_loss_bwd,
    }


_backend.register_python_kernels(_COMPOSITES, _triton_launchers())
