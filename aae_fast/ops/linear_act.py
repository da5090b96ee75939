"""Fused linear layer + activation, the AAE's MLP building block: one GEMM whose epilogue adds the
bias and applies the activation, and a backward whose epilogue applies the activation's derivative
and reduces the bias gradient in the same pass.

Two custom ops (schemas in csrc/ops.cpp): `linear_act` and its backward `linear_act_backward`, an op
of its own so that torch.compile and CUDA graphs see it. Served by C++ on CPU (csrc/cpu/linear_act.cpp:
the vendor GEMM via at::mm, then a vectorised epilogue), by CUDA C++ (csrc/cuda/linear_act.cu +
cuBLAS) or Triton (kernels/linear_act.py) on CUDA, and by the pure-PyTorch composite below when the
extension is not built (`aae_fast.backend_info()`).

The backward needs only the OUTPUT y (act' is written through it: relu 1[not y <= 0], leaky_relu 1 or
negative_slope, sigmoid y (1 - y), tanh 1 - y^2), x when the weight's gradient is wanted and weight
when x's gradient is wanted; nothing else is saved. Gradients that are not wanted are not computed
(x's for a first layer fed by data, weight's and bias's for a frozen discriminator).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import _backend

_LINEAR_ACT = torch.ops.aae_fast.linear_act.default
_LINEAR_ACT_BACKWARD = torch.ops.aae_fast.linear_act_backward.default

ACTIVATIONS = ("identity", "relu", "leaky_relu", "sigmoid", "tanh")
_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def linear_act(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str = "relu",
    negative_slope: float = 0.01,
) -> torch.Tensor:
    """y = act(x @ weight.T + bias).

    Args:
        x: [B, K] input.
        weight: [N, K], like nn.Linear.weight; the dtype and device of x.
        bias: [N] or None; the dtype and device of x.
        activation: "identity", "relu", "leaky_relu", "sigmoid" or "tanh".
        negative_slope: leaky_relu's slope for negative inputs (>= 0); ignored otherwise.

    Returns:
        y: [B, N] (contiguous) in x's dtype; float16/bfloat16 accumulate in float32. Differentiable
        in x, weight and bias.
    """
    return _LINEAR_ACT(x, weight, bias, activation, float(negative_slope))


# ----------------------------------------------------------------------------------------------
# Checks shared by the fake impls and the composite (the C++ kernels make the same ones).


def _check_activation(activation, negative_slope):
    torch._check(
        activation in ACTIVATIONS,
        lambda: f"activation must be one of {', '.join(repr(a) for a in ACTIVATIONS)}, got {activation!r}",
    )
    if activation == "leaky_relu":
        torch._check(
            negative_slope >= 0.0 and negative_slope != float("inf"),
            lambda: f"negative_slope must be finite and >= 0, got {negative_slope}",
        )


def _check_like(t, name, ref, ref_name):
    torch._check(
        t.dtype == ref.dtype, lambda: f"{name} must have the dtype of {ref_name} ({ref.dtype}), got {t.dtype}"
    )
    torch._check(
        t.device == ref.device, lambda: f"{name} must be on the device of {ref_name} ({ref.device}), got {t.device}"
    )


def _check_forward(x, weight, bias, activation, negative_slope):
    torch._check(
        x.dtype in _DTYPES, lambda: f"x must be float32, float64, float16 or bfloat16, got {x.dtype}"
    )
    torch._check(x.dim() == 2, lambda: f"x must have shape [B, K], got {list(x.shape)}")
    torch._check(
        weight.dim() == 2 and weight.shape[1] == x.shape[1],
        lambda: f"weight must have shape [N, K] with K = x.size(1) = {x.shape[1]}, got {list(weight.shape)}",
    )
    _check_like(weight, "weight", x, "x")
    if bias is not None:
        torch._check(
            bias.dim() == 1 and bias.shape[0] == weight.shape[0],
            lambda: f"bias must have shape [N] with N = weight.size(0) = {weight.shape[0]}, got {list(bias.shape)}",
        )
        _check_like(bias, "bias", x, "x")
    _check_activation(activation, negative_slope)


def _check_backward(grad, y, x, weight, activation, negative_slope, output_mask):
    _check_activation(activation, negative_slope)
    torch._check(y.dim() == 2, lambda: f"y must have shape [B, N], got {list(y.shape)}")
    torch._check(
        grad.shape == y.shape, lambda: f"grad must have the shape of y ({list(y.shape)}), got {list(grad.shape)}"
    )
    _check_like(grad, "grad", y, "y")
    torch._check(not output_mask[0] or weight is not None, lambda: "weight is required for the gradient of x")
    torch._check(not output_mask[1] or x is not None, lambda: "x is required for the gradient of weight")
    if weight is not None:
        torch._check(
            weight.dim() == 2 and weight.shape[0] == y.shape[1],
            lambda: f"weight must have shape [N, K] with N = y.size(1) = {y.shape[1]}, got {list(weight.shape)}",
        )
        _check_like(weight, "weight", y, "y")
    if x is not None:
        torch._check(
            x.dim() == 2 and x.shape[0] == y.shape[0],
            lambda: f"x must have shape [B, K] with B = y.size(0) = {y.shape[0]}, got {list(x.shape)}",
        )
        _check_like(x, "x", y, "y")


# ----------------------------------------------------------------------------------------------
# Fake (meta) impls: shapes and dtypes only, for torch.compile and FakeTensor tracing.


@torch.library.register_fake("aae_fast::linear_act")
def _(x, weight, bias, activation, negative_slope):
    _check_forward(x, weight, bias, activation, negative_slope)
    return x.new_empty((x.shape[0], weight.shape[0]))


@torch.library.register_fake("aae_fast::linear_act_backward")
def _(grad, y, x, weight, activation, negative_slope, output_mask):
    _check_backward(grad, y, x, weight, activation, negative_slope, output_mask)
    return _grad_shapes(y, x, weight, output_mask, lambda shape: y.new_empty(shape))


def _grad_shapes(y, x, weight, output_mask, make):
    B, N = y.shape
    grad_x = make((B, weight.shape[1])) if output_mask[0] else make((0,))
    grad_w = make((N, x.shape[1])) if output_mask[1] else make((0,))
    grad_b = make((N,)) if output_mask[2] else make((0,))
    return grad_x, grad_w, grad_b


# ----------------------------------------------------------------------------------------------
# Autograd: the backward is its own op; x is saved only for weight's gradient, weight only for x's.
# Mirrored by csrc/autograd/linear_act.cpp: keep the two in step.


def _setup_context(ctx, inputs, output):
    x, weight, bias, activation, negative_slope = inputs
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    ctx.activation = activation
    ctx.negative_slope = negative_slope
    ctx.output_mask = [bool(need_x), bool(need_w), bool(need_b and bias is not None)]
    # identity's derivative needs no output (mirrors csrc/autograd/linear_act.cpp).
    y = output if activation != "identity" else None
    ctx.save_for_backward(y, x if need_w else None, weight if need_x else None)


def _backward(ctx, grad):
    y, x, weight = ctx.saved_tensors
    if y is None:  # identity: the backward reads y for its shape only
        y = grad
    mask = ctx.output_mask
    # Under create_graph=True, the formula in differentiable torch ops (second order).
    backward = _linear_act_backward_composite if torch.is_grad_enabled() else _LINEAR_ACT_BACKWARD
    grad_x, grad_w, grad_b = backward(
        grad, y, x, weight, ctx.activation, ctx.negative_slope, mask
    )
    return (
        grad_x if mask[0] else None,
        grad_w if mask[1] else None,
        grad_b if mask[2] else None,
        None,
        None,
    )


# The C++ Autograd kernel (csrc/autograd/linear_act.cpp) implements this formula when the extension
# is built; this one serves the pure-PyTorch fallback.
_backend.register_autograd("linear_act", _backward, _setup_context)


# ----------------------------------------------------------------------------------------------
# The pure-PyTorch composite: the documented fallback when the extension is not built.


def apply_activation(z, activation, negative_slope=0.01):
    """act(z) with torch ops (used by the composite and by the tests' references)."""
    if activation == "relu":
        return torch.relu(z)
    if activation == "leaky_relu":
        return F.leaky_relu(z, negative_slope)
    if activation == "sigmoid":
        return torch.sigmoid(z)
    if activation == "tanh":
        return torch.tanh(z)
    return z


def _activation_grad(grad, y, activation, negative_slope):
    if activation == "relu":  # not "y > 0": a NaN output passes its gradient, as torch.relu's
        return grad.masked_fill(y <= 0, 0)
    if activation == "leaky_relu":
        return torch.where(y > 0, grad, grad * negative_slope)
    if activation == "sigmoid":
        return grad * (y * (1 - y))
    if activation == "tanh":
        return grad * (1 - y * y)
    return grad


def _linear_act_composite(x, weight, bias, activation, negative_slope):
    _check_forward(x, weight, bias, activation, negative_slope)
    return apply_activation(F.linear(x, weight, bias), activation, negative_slope).contiguous()


def _linear_act_backward_composite(grad, y, x, weight, activation, negative_slope, output_mask):
    _check_backward(grad, y, x, weight, activation, negative_slope, output_mask)
    gz = _activation_grad(grad, y, activation, negative_slope)
    empty = y.new_empty((0,))
    grad_x = (gz @ weight).contiguous() if output_mask[0] else empty
    grad_w = (gz.t() @ x).contiguous() if output_mask[1] else empty.clone()
    grad_b = gz.sum(0) if output_mask[2] else empty.clone()
    return grad_x, grad_w, grad_b


_COMPOSITES = {
    "linear_act": _linear_act_composite,
    "linear_act_backward": _linear_act_backward_composite,
}


def _triton_launchers() -> dict:
    if not torch.cuda.is_available():
        return {}
    from aae_fast.kernels import linear_act as triton_kernels

    return {name: getattr(triton_kernels, name) for name in _COMPOSITES}


_backend.register_python_kernels(_COMPOSITES, _triton_launchers())
