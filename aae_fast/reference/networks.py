"""The building blocks of every reference variant: plain multilayer perceptrons.

Every network of the paper is a fully connected ReLU network (Makhzani et al., 2015, Appendix A:
two hidden layers of 1000 ReLU units for the encoder, the decoder and the discriminator; the last
layer of q(z|x) is linear). It is built here as an ``nn.Sequential`` of ``nn.Linear`` and
``nn.ReLU`` modules, with no activation after the last ``nn.Linear``: the decoder's sigmoid is
applied by the loss (``F.binary_cross_entropy_with_logits``) or by ``decode``, and the
discriminator outputs logits. So an MLP with hidden widths ``(h1, ..., hL)`` has its parameters at
the Sequential indices ``0, 2, ..., 2L``::

    <name>.0.weight [h1, in]     <name>.0.bias [h1]
    <name>.2.weight [h2, h1]     <name>.2.bias [h2]
    ...
    <name>.{2L}.weight [out, hL] <name>.{2L}.bias [out]

The fused twins (``aae_fast.nn``) must keep exactly these keys and shapes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["mlp", "init_normal_", "check_hidden"]


def check_hidden(hidden: Sequence[int], name: str = "hidden") -> tuple[int, ...]:
    """Validate a tuple of hidden widths (may be empty: a single linear layer)."""
    try:
        widths = tuple(int(h) for h in hidden)
    except TypeError:
        raise TypeError(
            f"{name} must be a sequence of positive ints, got {type(hidden).__name__}"
        ) from None
    if any(h < 1 for h in widths) or any(int(h) != h for h in hidden):
        raise ValueError(f"{name} must hold positive ints, got {tuple(hidden)}")
    return widths


def mlp(in_features: int, hidden: Sequence[int], out_features: int) -> nn.Sequential:
    """``Linear -> ReLU -> ... -> Linear``: ``len(hidden)`` ReLU layers, a linear output layer."""
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


@torch.no_grad()
def init_normal_(module: nn.Module, std: float | None = 0.01) -> nn.Module:
    """Weights ~ N(0, std^2), biases 0 for every ``nn.Linear`` in ``module`` (Appendix A: Gaussian
    weights with standard deviation 0.01; zero biases are our choice). ``std=None`` keeps PyTorch's
    default initialisation."""
    if std is None:
        return module
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module
