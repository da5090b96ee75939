"""Shared pieces of the loss ops (adversarial_loss.py, reconstruction_loss.py): argument checks with
the C++ kernels' messages (csrc/include/aae_fast/loss_checks.h), used by the fake impls and by the
pure-PyTorch composites, and the composites' stable element math.
"""

from __future__ import annotations

import torch

LOSS_INPUT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
RECON_KINDS = ("bce", "mse")


def loss_dtype(dtype: torch.dtype) -> torch.dtype:
    """The loss (and compute) dtype: float64 for float64 inputs, float32 otherwise."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_input_dtype(t: torch.Tensor, name: str) -> None:
    torch._check(
        t.dtype in LOSS_INPUT_DTYPES,
        lambda: f"{name} must be a float32, float64, float16 or bfloat16 tensor, got {t.dtype}",
    )


def check_same_dtype_and_device(a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    torch._check(
        b.device == a.device,
        lambda: f"{b_name} must be on {a.device} (the device of {a_name}), got {b.device}",
    )
    torch._check(
        b.dtype == a.dtype,
        lambda: f"{b_name} must have the dtype of {a_name} ({a.dtype}), got {b.dtype}",
    )


def check_loss_grad(grad: torch.Tensor, t: torch.Tensor, name: str) -> None:
    torch._check(
        grad.dim() == 0,
        lambda: "grad must be a 0-dim tensor (the gradient of the scalar loss), got shape "
        f"{tuple(grad.shape)}",
    )
    torch._check(
        grad.dtype.is_floating_point,
        lambda: f"grad must be a floating-point tensor, got {grad.dtype}",
    )
    torch._check(
        grad.device == t.device,
        lambda: f"grad must be on {t.device} (the device of {name}), got {grad.device}",
    )


def check_kind(kind: str) -> None:
    torch._check(kind in RECON_KINDS, lambda: f"kind must be 'bce' or 'mse', got {kind!r}")


def check_recon_inputs(output: torch.Tensor, target: torch.Tensor) -> None:
    check_input_dtype(output, "output")
    torch._check(
        output.dim() == 2,
        lambda: "output must have shape [B, F] (2-D; flatten other ranks with x.flatten(1)), got "
        f"{tuple(output.shape)}",
    )
    check_same_dtype_and_device(output, "output", target, "target")
    torch._check(
        target.shape == output.shape,
        lambda: f"target must have the shape of output {tuple(output.shape)}, got "
        f"{tuple(target.shape)}",
    )


def softplus(x: torch.Tensor) -> torch.Tensor:
    """max(x, 0) + log1p(exp(-|x|)): finite for any finite x."""
    return torch.clamp_min(x, 0) + torch.log1p(torch.exp(-x.abs()))
