"""`FusedLinear`: an `nn.Linear` whose activation is fused into the GEMM (`aae_fast.ops.linear_act`).

It holds exactly the parameters of `nn.Linear` (``weight`` [out, in], ``bias`` [out]) with the same
default initialisation, so a state dict moves between the two.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from .._checks import positive_int
from ..ops import linear_act
from ..ops.linear_act import ACTIVATIONS

__all__ = ["FusedLinear"]


class FusedLinear(nn.Module):
    """y = act(x @ weight.T + bias), one fused op forward and one backward.

    Args:
        in_features, out_features: as `nn.Linear`.
        bias: learn an additive bias (default True).
        activation: "identity", "relu", "leaky_relu", "sigmoid" or "tanh".
        negative_slope: leaky_relu's slope (>= 0).

    Shape: x [*, in_features] -> y [*, out_features]. Under ``torch.autocast`` the GEMM runs in the
    autocast dtype with fp32 accumulation, like `nn.Linear`'s.

    Autograd: the backward of relu, leaky_relu, sigmoid and tanh reads the layer's output, so
    modifying the output in place before the backward raises autograd's "modified by an inplace
    operation" error (as it does after torch's relu, sigmoid and tanh; ``nn.LeakyReLU`` reads its
    input instead, so there the in-place change is allowed). The identity layer saves no output.
    The fused ops' autograd is a C++ ``torch::autograd::Function``: ``torch.func`` transforms of
    gradients (``grad``, ``vjp``, ``jvp``, ``vmap`` over a backward) are not supported; use
    ``nn.Linear`` there. Second-order gradients (``create_graph=True``) are.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "identity",
        negative_slope: float = 0.01,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        in_features = positive_int(in_features, "in_features")
        out_features = positive_int(out_features, "out_features")
        _check_activation(activation, negative_slope)
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"dtype must be a floating-point torch.dtype or None, got {dtype!r}")
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.negative_slope = float(negative_slope)
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(out_features, in_features, **factory))
        self.bias = nn.Parameter(torch.empty(out_features, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Linear's initialisation (Kaiming-uniform weights, uniform bias)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    @classmethod
    def from_linear(
        cls, linear: nn.Linear, activation: str = "identity", negative_slope: float = 0.01
    ) -> FusedLinear:
        """A FusedLinear that shares ``linear``'s parameters (the same Parameter objects: an
        optimiser built over either updates both)."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be an nn.Linear, got {type(linear).__name__}")
        _check_activation(activation, negative_slope)
        fused = cls.__new__(cls)
        nn.Module.__init__(fused)
        fused.in_features, fused.out_features = linear.in_features, linear.out_features
        fused.activation = activation
        fused.negative_slope = float(negative_slope)
        fused.weight = linear.weight
        fused.bias = linear.bias
        return fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.weight, self.bias
        # Custom ops are not on autocast's op lists, so apply its policy for a linear layer here:
        # floating-point inputs and weights in the autocast dtype, except float64 ones, which
        # autocast leaves alone (as for nn.Linear); fp32 accumulation inside the op, gradients
        # back to the fp32 master weights through the casts.
        if _autocast_on(x.device.type):
            dtype = torch.get_autocast_dtype(x.device.type)
            x, weight = _autocast(x, dtype), _autocast(weight, dtype)
            bias = None if bias is None else _autocast(bias, dtype)
        elif x.dtype != weight.dtype:
            raise TypeError(
                f"x must have the weight's dtype {weight.dtype} (or run under torch.autocast), "
                f"got {x.dtype}"
            )
        if x.dim() == 2 and x.shape[1] == self.in_features:  # the hot path: no reshapes
            return linear_act(x, weight, bias, self.activation, self.negative_slope)
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"x must have shape [*, {self.in_features}] (in_features), got {list(x.shape)}"
            )
        lead = x.shape[:-1]
        y = linear_act(
            x.reshape(-1, self.in_features), weight, bias, self.activation, self.negative_slope
        )
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        act = self.activation
        if act == "leaky_relu":
            act += f"({self.negative_slope})"
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, activation={act}"
        )


def _check_activation(activation, negative_slope) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if isinstance(negative_slope, bool) or not isinstance(negative_slope, numbers.Real):
        raise TypeError(f"negative_slope must be a real number, got {negative_slope!r}")
    if not (0.0 <= negative_slope < math.inf):
        raise ValueError(f"negative_slope must be finite and >= 0, got {negative_slope!r}")


#: Whether autocast knows a device type (it does not know meta, where is_autocast_enabled raises),
#: asked once per type outside any trace: Dynamo folds torch.is_autocast_enabled to a constant but
#: not torch.amp.is_autocast_available, which it refused to trace in torch 2.11 (fused_compile
#: failed on the H200 with "Dynamo does not know how to trace ... _is_autocast_available").
_AUTOCAST_KNOWS = {device_type: torch.amp.is_autocast_available(device_type)
                   for device_type in ("cpu", "cuda", "xpu", "mps", "hpu", "mtia", "meta")}


def _autocast_on(device_type: str) -> bool:
    """Whether autocast is on for the device type (never for one autocast does not know: meta)."""
    knows = _AUTOCAST_KNOWS.get(device_type)
    if knows is None:  # another device type: asked (eagerly) the first time it is seen
        knows = torch.amp.is_autocast_available(device_type)
        _AUTOCAST_KNOWS[device_type] = knows
    return knows and torch.is_autocast_enabled(device_type)


def _autocast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` in autocast's ``dtype`` where autocast would cast it (floating point, not float64)."""
    if t.is_floating_point() and t.dtype != torch.float64:
        return t.to(dtype)
    return t
