"""The paper's variants on the fast path: each is its aae_fast.reference twin with the fused hot
paths of `FusedModel` (see aae_fast.models._fused). Constructor arguments, methods, state dict keys
and the training step are the reference's; ``backend="eager"`` returns the reference model."""

from __future__ import annotations

from .. import reference
from ._fused import FusedModel

__all__ = [
    "AdversarialAutoencoder",
    "SupervisedAAE",
    "SemiSupervisedAAE",
    "ClusteringAAE",
    "DimReductionAAE",
]


class AdversarialAutoencoder(FusedModel, reference.AdversarialAutoencoder):
    __doc__ = (reference.AdversarialAutoencoder.__doc__ or "") + (
        "\n    Fused backend (default): see aae_fast.models. ``backend=\"eager\"`` returns "
        "aae_fast.reference.AdversarialAutoencoder; ``seed`` seeds the model's Philox stream.\n"
    )
    reference_class = reference.AdversarialAutoencoder


class SupervisedAAE(FusedModel, reference.SupervisedAAE):
    __doc__ = reference.SupervisedAAE.__doc__
    reference_class = reference.SupervisedAAE


class SemiSupervisedAAE(FusedModel, reference.SemiSupervisedAAE):
    __doc__ = reference.SemiSupervisedAAE.__doc__
    reference_class = reference.SemiSupervisedAAE


class ClusteringAAE(FusedModel, reference.ClusteringAAE):
    __doc__ = reference.ClusteringAAE.__doc__
    reference_class = reference.ClusteringAAE


class DimReductionAAE(FusedModel, reference.DimReductionAAE):
    __doc__ = reference.DimReductionAAE.__doc__
    reference_class = reference.DimReductionAAE
