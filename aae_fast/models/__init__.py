"""The paper's AAE variants on the fast path (``backend="fused"``, the default).

Each class is the twin of the same-named class in :mod:`aae_fast.reference`: the same constructor,
methods, state dict keys and training schedule, with the networks built from :mod:`aae_fast.nn` and
the losses, sampling and noise from :mod:`aae_fast.ops` (table in ``aae_fast.models._fused``).
``backend="eager"`` returns the reference model instead, so ``af.AdversarialAutoencoder(...,
backend=...)`` picks the implementation, and checkpoints load into either.
"""

from ._fused import BACKENDS, FusedModel
from .variants import (
    AdversarialAutoencoder,
    ClusteringAAE,
    DimReductionAAE,
    SemiSupervisedAAE,
    SupervisedAAE,
)

__all__ = [
    "BACKENDS",
    "FusedModel",
    "AdversarialAutoencoder",
    "SupervisedAAE",
    "SemiSupervisedAAE",
    "ClusteringAAE",
    "DimReductionAAE",
]
