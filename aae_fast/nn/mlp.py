"""`FusedMLP`: the reference's ``Linear -> ReLU -> ... -> Linear`` network as fused layers.

Each hidden layer is one `FusedLinear` with its activation in the GEMM's epilogue. The layers sit at
the indices ``0, 2, ..., 2L`` that ``nn.Sequential`` gives the reference's ``nn.Linear`` modules
(aae_fast.reference.networks), so the state dict keys (``0.weight``, ``2.bias``, ...) and shapes are
the same and checkpoints move between the backends.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .._checks import positive_int
from .linear import FusedLinear, _check_activation
from ..ops.linear_act import ACTIVATIONS

__all__ = ["FusedMLP"]

#: nn activation modules a fused layer can absorb, and the name linear_act knows each by (also
#: what aae_fast.accelerate looks for).
ACTIVATION_MODULES: dict[type, str] = {
    nn.ReLU: "relu",
    nn.LeakyReLU: "leaky_relu",
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
}


def can_absorb(act: nn.Module) -> bool:
    """Whether ``act`` is an activation module (`ACTIVATION_MODULES`) whose parameters the fused
    op takes (leaky_relu: a finite slope >= 0)."""
    if type(act) not in ACTIVATION_MODULES:
        return False
    slope = getattr(act, "negative_slope", 0.0)
    try:
        _check_activation(ACTIVATION_MODULES[type(act)], slope)
    except (TypeError, ValueError):
        return False
    return True


class FusedMLP(nn.Module):
    """``len(hidden)`` fused Linear+activation layers and a last Linear layer.

    Args:
        in_features: input width.
        hidden: hidden widths (may be empty: one linear layer).
        out_features: output width.
        activation: of the hidden layers ("relu", as the paper's networks, Appendix A).
        out_activation: of the last layer ("identity": logits).
        negative_slope: for "leaky_relu".

    Shape: x [N, in_features] -> [N, out_features].

    Not an ``nn.Sequential``: ``len`` counts the fused layers and the modules are not indexable
    (iterate over ``layers``). Its state dict keys are the reference Sequential's, so checkpoints
    move between the two, but code that indexes a network (``model.encoder[0]``) works on the
    eager backend only.
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        activation: str = "relu",
        out_activation: str = "identity",
        negative_slope: float = 0.01,
    ) -> None:
        super().__init__()
        in_features = positive_int(in_features, "in_features")
        out_features = positive_int(out_features, "out_features")
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
            raise TypeError(f"hidden must be a sequence of positive ints, got {hidden!r}")
        hidden = [positive_int(width, f"hidden[{i}]") for i, width in enumerate(hidden)]
        for name, value in (("activation", activation), ("out_activation", out_activation)):
            if value not in ACTIVATIONS:
                raise ValueError(f"{name} must be one of {ACTIVATIONS}, got {value!r}")
        _check_activation(activation, negative_slope)
        widths = [in_features, *hidden, out_features]
        layers = [
            FusedLinear(
                widths[i],
                widths[i + 1],
                activation=activation if i < len(widths) - 2 else out_activation,
                negative_slope=negative_slope,
            )
            for i in range(len(widths) - 1)
        ]
        self._set_layers(layers)

    def _set_layers(self, layers: Sequence[FusedLinear]) -> None:
        for i, layer in enumerate(layers):
            self.add_module(str(2 * i), layer)  # the nn.Sequential index of the i-th nn.Linear

    @classmethod
    def from_sequential(cls, seq: nn.Sequential) -> FusedMLP:
        """The fused twin of ``nn.Sequential(Linear, act, ..., Linear[, act])``, sharing its
        parameters (the same Parameter objects). Raises ValueError for any other structure."""
        modules = list(seq)
        layers: list[FusedLinear] = []
        i = 0
        while i < len(modules):
            linear = modules[i]
            if not isinstance(linear, nn.Linear) or str(i) not in seq._modules:
                raise ValueError(
                    f"seq: expected nn.Linear at index {i}, got {type(linear).__name__}"
                )
            activation, slope = "identity", 0.01
            if i + 1 < len(modules):
                act = modules[i + 1]
                if type(act) not in ACTIVATION_MODULES:
                    raise ValueError(
                        f"seq: expected an activation ({', '.join(t.__name__ for t in ACTIVATION_MODULES)})"
                        f" at index {i + 1}, got {type(act).__name__}"
                    )
                activation = ACTIVATION_MODULES[type(act)]
                slope = getattr(act, "negative_slope", slope)
                if not can_absorb(act):
                    raise ValueError(
                        f"seq: the LeakyReLU at index {i + 1} has negative_slope {slope!r}; the "
                        "fused layers take a finite slope >= 0"
                    )
            layers.append(FusedLinear.from_linear(linear, activation, slope))
            i += 2
        fused = cls.__new__(cls)
        nn.Module.__init__(fused)
        fused._set_layers(layers)
        return fused

    @staticmethod
    def can_fuse(module: nn.Module) -> bool:
        """Whether ``module`` is an ``nn.Sequential`` that :meth:`from_sequential` accepts."""
        if type(module) is not nn.Sequential or len(module) == 0:
            return False
        mods = list(module)
        return all(
            isinstance(m, nn.Linear) if i % 2 == 0 else can_absorb(m)
            for i, m in enumerate(mods)
        )

    @property
    def layers(self) -> list[FusedLinear]:
        return list(self.children())  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self._modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self._modules.values():
            x = layer(x)
        return x
