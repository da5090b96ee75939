"""Unsupervised clustering with an adversarial autoencoder (Makhzani et al., 2015, §6, Fig. 9).

The semi-supervised architecture (§5) without the classification phase: the categorical head's
dimension is the number of clusters, and the Cat(y) prior makes q(y|x) pick one cluster per input.
State-dict layout: see :mod:`aae_fast.reference._categorical`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..priors import Prior
from ._categorical import CategoricalAAE
from .networks import init_normal_

__all__ = ["ClusteringAAE"]


class ClusteringAAE(CategoricalAAE):
    """Unsupervised clustering (§6).

    Args:
        input_dim: features per input row.
        num_clusters: K; the paper reports MNIST with 16 and with 30 clusters (§6, Table 3);
            default 16.
        latent_dim: style size D; the paper does not give one in what we could read: 10 is our
            choice.
        hidden, prior, discriminator_hidden, reconstruction, init_std, input_noise_std, optimizer,
            learning_rates, momentum, lr_milestones, lr_gamma: as for
            :class:`~aae_fast.reference.SemiSupervisedAAE` (no ``"classifier"`` phase).

    ``predict(x)`` gives cluster ids (map them to classes by majority vote to score them, §6).
    """

    classification_phase = False

    def __init__(
        self,
        input_dim: int = 784,
        num_clusters: int = 16,
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
            num_categories=num_clusters,
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
            categories_name="num_clusters",
        )
        init_normal_(self, init_std)

    @property
    def num_clusters(self) -> int:
        return self.num_categories

    @property
    def config(self) -> dict[str, Any]:
        return {"variant": "clustering", "num_clusters": self.num_clusters, **self._common_config()}
