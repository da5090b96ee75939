"""Dimensionality reduction with an adversarial autoencoder (Makhzani et al., 2015, §7, Fig. 10-11).

The encoder predicts a one-hot cluster y (softmax head, Cat prior) and an n-dimensional style z
(Gaussian prior); the representation is ``W_c y + z``, where the columns of the learned matrix W_c
are the clusters' "cluster heads". An extra cost penalises every pair of cluster heads closer than
``eta`` (Euclidean distance), so that clusters stay apart in the n-dimensional representation. The
decoder reconstructs from the representation. With ``semi_supervised=True`` the classification
phase of §5 trains q(y|x) on labelled mini-batches.

State-dict layout: see :mod:`aae_fast.reference._categorical` (``decoder.0.weight`` is
``[h2, latent_dim]`` here, and ``cluster_heads.weight`` ``[latent_dim, num_clusters]`` holds W_c).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from ..priors import Prior
from ._categorical import CategoricalAAE
from ._common import at_least_float32
from .networks import init_normal_

__all__ = ["DimReductionAAE", "DimReductionCodes"]


class DimReductionCodes(NamedTuple):
    """What :meth:`DimReductionAAE.encode` returns.

    Attributes:
        y: [N, K] softmax probabilities q(y|x).
        z: [N, n] style codes.
        representation: [N, n], ``W_c y + z``: the low-dimensional embedding to plot (Fig. 11).
    """

    y: torch.Tensor
    z: torch.Tensor
    representation: torch.Tensor


class DimReductionAAE(CategoricalAAE):
    """Unsupervised or semi-supervised dimensionality reduction (§7).

    Args:
        input_dim: features per input row.
        latent_dim: n, the representation's dimension (2 for the paper's plots, §7).
        num_clusters: K, the number of cluster heads. None: 10 with ``semi_supervised=True`` (one
            per class, as in the paper's semi-supervised MNIST runs), else 20 (our choice of "a few
            more clusters than classes" for the unsupervised mode).
        semi_supervised: add the classification phase (§5); ``num_clusters`` is then the number of
            classes and labels are needed as for :class:`~aae_fast.reference.SemiSupervisedAAE`.
        eta: minimum distance between cluster heads; pairs closer than eta are penalised linearly
            (§7). The paper does not give a value in what we could read: 6.0 is our choice, about
            six standard deviations of the N(0, I) style prior, so clusters barely overlap.
        separation_weight: weight of that cost in the reconstruction phase (our choice: 1).
        heads_learning_rate: learning rate of W_c (a parameter group of the ``"autoencoder"``
            optimiser). None: the autoencoder's rate with SGD, 0.1 with Adam (our choice: heads
            start within 0.01 of each other and must travel about ``eta``, while Adam moves a
            parameter about one learning rate per step).
        hidden, prior, discriminator_hidden, reconstruction, init_std, input_noise_std, optimizer,
            learning_rates, momentum, lr_milestones, lr_gamma: as for
            :class:`~aae_fast.reference.SemiSupervisedAAE`.

    The separation cost is added to the reconstruction phase's loss (W_c is an autoencoder
    parameter, trained by the ``"autoencoder"`` optimiser).
    """

    def __init__(
        self,
        input_dim: int = 784,
        latent_dim: int = 2,
        num_clusters: int | None = None,
        hidden: Sequence[int] = (1000, 1000),
        prior: Prior | None = None,
        *,
        semi_supervised: bool = False,
        eta: float = 6.0,
        separation_weight: float = 1.0,
        heads_learning_rate: float | None = None,
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
        if num_clusters is None:
            num_clusters = 10 if semi_supervised else 20
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
        self.semi_supervised = bool(semi_supervised)
        if not eta > 0:
            raise ValueError(f"eta must be positive, got {eta!r}")
        if not separation_weight >= 0:
            raise ValueError(f"separation_weight must be >= 0, got {separation_weight!r}")
        self.eta = float(eta)
        self.separation_weight = float(separation_weight)
        if heads_learning_rate is None:
            heads_learning_rate = (
                self.learning_rates["autoencoder"] if self.optimizer_name == "sgd" else 0.1
            )
        if not heads_learning_rate > 0:
            raise ValueError(f"heads_learning_rate must be positive, got {heads_learning_rate!r}")
        self.heads_learning_rate = float(heads_learning_rate)
        #: W_c: column k is cluster k's head in the n-dimensional representation.
        self.cluster_heads = nn.Linear(self.num_categories, self.latent_dim, bias=False)
        init_normal_(self, init_std)

    @property
    def classification_phase(self) -> bool:  # type: ignore[override]
        return self.semi_supervised

    @property
    def requires_labels(self) -> bool:  # type: ignore[override]
        return self.semi_supervised

    @property
    def num_clusters(self) -> int:
        return self.num_categories

    @property
    def config(self) -> dict[str, Any]:
        return {
            "variant": "dim-reduction",
            "num_clusters": self.num_clusters,
            "semi_supervised": self.semi_supervised,
            "eta": self.eta,
            "separation_weight": self.separation_weight,
            "heads_learning_rate": self.heads_learning_rate,
            **self._common_config(),
        }

    def _decoder_in_features(self) -> int:
        return self.latent_dim

    def _decoder_input(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.cluster_heads(y.to(z.dtype)) + z

    def _autoencoder_parameters(self):
        return [
            {"params": super()._autoencoder_parameters()},
            {"params": list(self.cluster_heads.parameters()), "lr": self.heads_learning_rate},
        ]

    def heads(self) -> torch.Tensor:
        """The cluster heads, [K, n] (row k is W_c's column k)."""
        return self.cluster_heads.weight.t()

    def head_distances(self) -> torch.Tensor:
        """Euclidean distances between the K cluster heads, [K, K]."""
        w = at_least_float32(self.heads())
        return (w[:, None, :] - w[None, :, :]).pow(2).sum(-1).clamp(min=1e-12).sqrt()

    def separation_cost(self) -> torch.Tensor:
        """sum over pairs i < j of max(0, eta - ||W_c[:, i] - W_c[:, j]||) (§7)."""
        k = self.num_categories
        i, j = torch.triu_indices(k, k, offset=1, device=self.cluster_heads.weight.device)
        return torch.relu(self.eta - self.head_distances()[i, j]).sum()

    def _extra_autoencoder_loss(self):
        return {"cluster_separation": self.separation_weight * self.separation_cost()}

    def encode(self, x: torch.Tensor) -> DimReductionCodes:
        """``DimReductionCodes(y, z, representation)``; ``representation = W_c y + z`` [N, n]."""
        logits, z = self._heads(self._check_x(x))
        y = torch.softmax(at_least_float32(logits), dim=1).to(z.dtype)
        return DimReductionCodes(y, z, self._decoder_input(y, z))
