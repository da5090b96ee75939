"""The eager PyTorch reference of every adversarial-autoencoder variant of Makhzani et al. (2015),
written as a user would (``nn.Linear``, ``nn.ReLU``, ``torch.randn``,
``F.binary_cross_entropy_with_logits``, ``torch.optim``). It is the correctness oracle for the fused
models and the baseline of the benchmarks; it imports nothing from ``aae_fast.ops``, ``aae_fast.nn``
or the kernels, and samples priors with ``backend="eager"``.

- :class:`AdversarialAutoencoder` (§2; ``label_conditioned=True``: §2.3)
- :class:`SupervisedAAE` (§4)
- :class:`SemiSupervisedAAE` (§5)
- :class:`ClusteringAAE` (§6)
- :class:`DimReductionAAE` (§7)

Every model has ``encode``, ``decode``, ``generate``, ``training_step``, ``validation_step``,
``configure_optimizers`` and ``configure_schedulers`` (the protocol of
:class:`aae_fast.training.Trainer`, described in :mod:`aae_fast.reference._common`); the labelled
and clustering variants have ``predict``. Each module's docstring lists its state-dict keys and
shapes, which a fused twin must reproduce.

Defaults follow the paper: 1000-1000 ReLU networks with a linear code layer and a sigmoid output,
weights ~ N(0, 0.01^2), mini-batches of 100 (the Trainer's default), SGD with momentum 0.9 and a
x0.1 step decay after 50 and 1000 epochs (Appendix A); code sizes 8 (AAE, §3), 15 (supervised,
§4), 16 clusters (§6), 2-D representations (§7). The per-phase learning rates are ours (see
``PAPER_SGD_LEARNING_RATES``); ``optimizer="adam"`` converges in far fewer steps.
"""

from ._categorical import CategoricalCodes
from ._common import ADAM_LEARNING_RATES, PAPER_SGD_LEARNING_RATES
from .aae import AdversarialAutoencoder
from .clustering import ClusteringAAE
from .dim_reduction import DimReductionAAE, DimReductionCodes
from .semi_supervised import SemiSupervisedAAE
from .supervised import SupervisedAAE

__all__ = [
    "ADAM_LEARNING_RATES",
    "PAPER_SGD_LEARNING_RATES",
    "AdversarialAutoencoder",
    "CategoricalCodes",
    "ClusteringAAE",
    "DimReductionAAE",
    "DimReductionCodes",
    "SemiSupervisedAAE",
    "SupervisedAAE",
]
