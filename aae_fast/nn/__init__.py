"""Fused building blocks of the fast models (DESIGN §1: built on aae_fast.ops, used by
aae_fast.models). Each keeps the parameter names and shapes of its plain-PyTorch twin."""

from .linear import FusedLinear
from .mlp import FusedMLP

__all__ = ["FusedLinear", "FusedMLP"]
