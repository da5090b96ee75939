"""The semi-supervised adversarial autoencoder (Makhzani et al., 2015, §5, Fig. 8).

The encoder predicts a categorical y (softmax head) and a style z (linear head); the decoder sees
both. Two adversarial networks impose Cat(y) on y and N(0, I) on z, and a third phase trains q(y|x)
with cross-entropy on labelled mini-batches. State-dict layout: see
:mod:`aae_fast.reference._categorical`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..priors import Prior
from ._categorical import CategoricalAAE
from .networks import init_normal_

__all__ = ["SemiSupervisedAAE"]


class SemiSupervisedAAE(CategoricalAAE):
    """Semi-supervised classification with an AAE (§5).

    Args:
        input_dim: features per input row.
        num_classes: K (10 for MNIST).
        latent_dim: style size D. The paper does not state one for its MNIST runs in what we could
            read; 10 is our choice.
        hidden: encoder widths, mirrored by the decoder; paper (1000, 1000), ReLU (Appendix A).
        prior: the style prior; None gives ``Gaussian(latent_dim)`` (§5: p(z) = N(z | 0, I)).
        discriminator_hidden: both discriminators' widths; None: ``hidden`` (Appendix A).
        reconstruction, init_std, input_noise_std, optimizer, momentum, lr_milestones, lr_gamma:
            as for :class:`~aae_fast.reference.AdversarialAutoencoder`.
        learning_rates: per-phase overrides; phases ``"autoencoder"``, ``"discriminator"``,
            ``"generator"``, ``"classifier"``.

    Labels come as a labelled mini-batch (``batch["x_labelled"]``, ``batch["y_labelled"]``; the
    Trainer draws them from ``Trainer(labelled_data=...)``), or, without one, from ``batch["y"]``
    whose unlabelled rows hold -1. ``encode`` returns
    :class:`~aae_fast.reference.CategoricalCodes` ``(y, z)``; ``predict(x)`` the class ids.
    """

    requires_labels = True
    classification_phase = True

    def __init__(
        self,
        input_dim: int = 784,
        num_classes: int = 10,
        latent_dim: int = 10,
        hidden: Sequence[int] = (1000, 1000),
        prior: Prior | None = None,
        *,
        discriminator_hidden: Sequence[int] | None = None,
        reconstruction: str = "bce",
        init_std: float | None = 0.01,
        input_noise_std: float = 0.0,
        optimizer: str = "sgd",
        learning_rates: Mapping[str, float] | None = None,
        momentum: float = 0.9,
        lr_milestones: Sequence[int] = (50, 1000),
        lr_gamma: float = 0.1,
    ) -> None:
        super().__init__(
            input_dim=input_dim,
            num_categories=num_classes,
            latent_dim=latent_dim,
            hidden=hidden,
            prior=prior,
            discriminator_hidden=discriminator_hidden,
            reconstruction=reconstruction,
            init_std=init_std,
            input_noise_std=input_noise_std,
            optimizer=optimizer,
            learning_rates=learning_rates,
            momentum=momentum,
            lr_milestones=lr_milestones,
            lr_gamma=lr_gamma,
            categories_name="num_classes",
        )
        init_normal_(self, init_std)

    @property
    def num_classes(self) -> int:
        return self.num_categories

    @property
    def config(self) -> dict[str, Any]:
        return {
            "variant": "semi-supervised",
            "num_classes": self.num_classes,
            **self._common_config(),
        }
