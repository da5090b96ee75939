"""What the semi-supervised (§5), clustering (§6) and dimensionality-reduction (§7) AAEs share: an
encoder with a categorical head y (softmax) and a Gaussian style head z (linear), one discriminator
on each, and the paper's phases.

State-dict layout (hidden ``(h1, h2)``, discriminator hidden ``(d1, d2)``, K categories, D style
dimensions)::

    encoder.0.weight          [h1, input_dim]
    encoder.2.weight          [h2, h1]
    encoder.4.weight          [K + D, h2]    rows [:K]: logits of q(y|x); rows [K:]: z (linear)
    decoder.0.weight          [h2, K + D]    decoder input [y, z]   (DimReductionAAE: [h2, D],
                                             input W_c y + z)
    decoder.2.weight          [h1, h2]
    decoder.4.weight          [input_dim, h1]
    discriminator_y.0.weight  [d1, K]        on y: Categorical(K) one-hot samples vs q(y|x)
    discriminator_y.2.weight  [d2, d1]
    discriminator_y.4.weight  [1, d2]
    discriminator_z.0.weight  [d1, D]        on z: the style prior (Gaussian) vs q(z|x)
    discriminator_z.2.weight  [d2, d1]
    discriminator_z.4.weight  [1, d2]
    cluster_heads.weight      [D, K]         DimReductionAAE only (W_c, no bias)

with a ``.bias`` beside every ``.weight`` of the MLPs. The encoder's two heads are one linear layer
(its rows split as above) so that a fused twin computes them with one matrix product.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from ..priors import Categorical, Gaussian, Prior
from ._common import _FP32, ReferenceAAE, as_batch, at_least_float32, check_int
from .networks import check_hidden, mlp

__all__ = ["CategoricalCodes"]


class CategoricalCodes(NamedTuple):
    """What :meth:`encode` returns for the categorical variants.

    Attributes:
        y: [N, K] softmax probabilities q(y|x) (``y.argmax(1)`` is the class / cluster).
        z: [N, D] style codes.
    """

    y: torch.Tensor
    z: torch.Tensor


class CategoricalAAE(ReferenceAAE):
    """Base of the semi-supervised, clustering and dim-reduction variants (not used directly)."""

    #: Whether the semi-supervised classification phase runs (§5).
    classification_phase = False
    optional_phases = ("classifier",)

    def __init__(
        self,
        *,
        input_dim: int,
        num_categories: int,
        latent_dim: int,
        hidden: Sequence[int],
        prior: Prior | None,
        discriminator_hidden: Sequence[int] | None,
        reconstruction: str,
        init_std: float | None,
        input_noise_std: float,
        optimizer: str,
        learning_rates: Mapping[str, float] | None,
        momentum: float,
        lr_milestones: Sequence[int],
        lr_gamma: float,
        categories_name: str,
    ) -> None:
        super().__init__(
            input_dim=input_dim,
            reconstruction=reconstruction,
            init_std=init_std,
            input_noise_std=input_noise_std,
            optimizer=optimizer,
            learning_rates=learning_rates,
            momentum=momentum,
            lr_milestones=lr_milestones,
            lr_gamma=lr_gamma,
        )
        self.num_categories = check_int(num_categories, categories_name)
        self.latent_dim = check_int(latent_dim, "latent_dim")
        self.hidden = check_hidden(hidden)
        self.discriminator_hidden = check_hidden(
            self.hidden if discriminator_hidden is None else discriminator_hidden,
            "discriminator_hidden",
        )
        #: p(z), the style prior (§5: N(0, I)).
        self.prior = self._check_prior(
            Gaussian(self.latent_dim) if prior is None else prior,
            self.latent_dim,
            "prior",
            "latent_dim",
        )
        #: p(y) = Cat(y), one-hot samples (§5, §6).
        self.category_prior = Categorical(self.num_categories)
        k, d = self.num_categories, self.latent_dim
        self.encoder = mlp(self.input_dim, self.hidden, k + d)
        self.decoder = mlp(self._decoder_in_features(), self.hidden[::-1], self.input_dim)
        self.discriminator_y = mlp(k, self.discriminator_hidden, 1)
        self.discriminator_z = mlp(d, self.discriminator_hidden, 1)

    def _decoder_in_features(self) -> int:
        return self.num_categories + self.latent_dim

    def _common_config(self) -> dict[str, Any]:
        return {
            "input_dim": self.input_dim,
            "latent_dim": self.latent_dim,
            "hidden": list(self.hidden),
            "prior": repr(self.prior),
            "discriminator_hidden": list(self.discriminator_hidden),
            "reconstruction": self.reconstruction,
            "init_std": self.init_std,
            "input_noise_std": self.input_noise_std,
            "optimizer": self.optimizer_name,
            "learning_rates": dict(self.learning_rates),
            "momentum": self.momentum,
            "lr_milestones": list(self.lr_milestones),
            "lr_gamma": self.lr_gamma,
        }

    def _autoencoder_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.encoder.parameters()) + list(self.decoder.parameters())

    def _phase_parameters(self):
        phases = {
            "autoencoder": self._autoencoder_parameters(),
            "discriminator": list(self.discriminator_y.parameters())
            + list(self.discriminator_z.parameters()),
            "generator": list(self.encoder.parameters()),
        }
        if self.classification_phase:
            phases["classifier"] = list(self.encoder.parameters())
        return phases

    # -- the networks -------------------------------------------------------------------------
    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits of q(y|x) [N, K], style z [N, D]) of a checked x."""
        h = self.encoder(x)
        return h[:, : self.num_categories], h[:, self.num_categories :]

    def _decoder_input(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.cat((y.to(z.dtype), z), dim=1)

    def _as_probabilities(self, y: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
        """Class ids (int64 [N]) -> one-hot; probabilities / one-hot [N, K] pass through."""
        if isinstance(y, torch.Tensor) and y.dtype == torch.int64 and y.dim() == 1:
            y = self._check_labels(y, n, self.num_categories, allow_unlabelled=False)
            return self._one_hot(y, self.num_categories, dtype)
        return self._check_code(y, self.num_categories, "y").to(dtype)

    def encode(self, x: torch.Tensor) -> CategoricalCodes:
        """``CategoricalCodes(y, z)``: softmax probabilities q(y|x) [N, K] and style z [N, D]."""
        logits, z = self._heads(self._check_x(x))
        return CategoricalCodes(torch.softmax(at_least_float32(logits), dim=1).to(z.dtype), z)

    def decode(self, z: torch.Tensor, y: torch.Tensor, *, logits: bool = False) -> torch.Tensor:
        """Images [N, input_dim] from style z [N, D] and category y: int64 ids [N], or one-hot /
        probabilities [N, K]. Probabilities in [0, 1], or logits with ``logits=True``."""
        z = self._check_code(z, self.latent_dim)
        y = self._as_probabilities(y, z.shape[0], z.dtype)
        out = self.decoder(self._decoder_input(y, z))
        return out if logits else torch.sigmoid(out)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities [N, input_dim]: x through the encoder (soft y) and the decoder."""
        logits, z = self._heads(self._check_x(x))
        y = torch.softmax(at_least_float32(logits), dim=1)
        return torch.sigmoid(self.decoder(self._decoder_input(y, z)))

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Category ids [N] (int64): argmax of q(y|x)."""
        logits, _ = self._heads(self._check_x(x))
        return logits.argmax(dim=1)

    @torch.no_grad()
    def generate(self, n: int, labels: torch.Tensor | None = None, generator=None) -> torch.Tensor:
        """Images [n, input_dim] in [0, 1] from y ~ Cat (``labels``, int64 [n], fix the category)
        and z ~ the style prior."""
        n = check_int(n, "n", 0)
        if labels is not None:
            labels = self._check_labels(
                labels, n, self.num_categories, allow_unlabelled=False, name="labels"
            )
        y = self._sample(self.category_prior, n, labels, generator)
        z = self._sample(self.prior, n, None, generator)
        return torch.sigmoid(self.decoder(self._decoder_input(y, z)))

    # -- training -----------------------------------------------------------------------------
    def _extra_autoencoder_loss(self) -> dict[str, torch.Tensor]:
        """Further terms of the reconstruction phase (the dim-reduction head separation)."""
        return {}

    def _labelled_source(self, batch: dict, n: int):
        """(x, y, masked): the labelled batch, or the main batch with -1 for unlabelled rows."""
        xl = batch.get("x_labelled")
        if xl is not None:
            xl = self._check_x(xl, "batch['x_labelled']")
            yl = self._check_labels(
                batch.get("y_labelled"),
                xl.shape[0],
                self.num_categories,
                allow_unlabelled=False,
                name="batch['y_labelled']",
                what=type(self).__name__,
            )
            return xl, yl, False
        y = batch.get("y")
        if y is None:
            raise ValueError(
                f"batch: {type(self).__name__} (semi-supervised) needs labels: a labelled "
                "mini-batch in batch['x_labelled'] / batch['y_labelled'] "
                "(Trainer(labelled_data=...)) "
                "or batch['y'] with -1 for unlabelled rows; got neither"
            )
        y = self._check_labels(
            y,
            n,
            self.num_categories,
            allow_unlabelled=True,
            name="batch['y']",
            what=type(self).__name__,
        )
        return batch["x"], y, True

    def training_step(self, batch, optimizers, amp=None) -> dict[str, torch.Tensor]:
        """One mini-batch of the paper's phases (§5): (1) reconstruction: encoder and decoder;
        (2) regularization: both discriminators (Categorical prior on y, style prior on z), then the
        encoder as generator against both; (3) for the semi-supervised variants, classification:
        cross-entropy of q(y|x) on a labelled mini-batch.

        Returns detached 0-dim tensors: ``reconstruction``, ``discriminator`` (=
        ``discriminator_y`` +
        ``discriminator_z``), ``generator`` (= ``generator_y`` + ``generator_z``), and
        ``classification`` / ``cluster_separation`` where those phases / terms exist."""
        amp = amp or _FP32
        batch = as_batch(batch)
        x = self._check_x(batch["x"], min_rows=1)
        n = x.shape[0]
        if self.classification_phase:
            xl, yl, masked = self._labelled_source(batch, n)

        # 1. Reconstruction phase.
        with amp.autocast():
            logits, z = self._heads(self._corrupt(x))
            y = torch.softmax(at_least_float32(logits), dim=1)
            rec = self.reconstruction_loss(self.decoder(self._decoder_input(y, z)), x)
            extra = self._extra_autoencoder_loss()
            loss = rec + sum(extra.values()) if extra else rec
        self._update(loss, optimizers["autoencoder"], amp)

        # 2. Regularization phase: both discriminators, then the encoder as generator.
        with amp.autocast():
            logits, z = self._heads(self._corrupt(x))
            # In the codes' dtype: discriminator_y(y) below must match its weights (fp64 models).
            y = torch.softmax(at_least_float32(logits), dim=1).to(z.dtype)
            y_real = self._sample(self.category_prior, n)
            z_real = self._sample(self.prior, n)
            ry, fy = self.discriminator_y(torch.cat((y_real, y.detach().to(y_real.dtype)))).split(n)
            rz, fz = self.discriminator_z(torch.cat((z_real, z.detach().to(z_real.dtype)))).split(n)
            d_y, d_z = self.d_loss(ry, fy), self.d_loss(rz, fz)
            d = d_y + d_z
        self._update(d, optimizers["discriminator"], amp)

        with self._frozen(self.discriminator_y, self.discriminator_z), amp.autocast():
            g_y = self.g_loss(self.discriminator_y(y))
            g_z = self.g_loss(self.discriminator_z(z))
            g = g_y + g_z
        self._update(g, optimizers["generator"], amp)

        out = {
            "reconstruction": rec.detach(),
            "discriminator": d.detach(),
            "generator": g.detach(),
            "discriminator_y": d_y.detach(),
            "discriminator_z": d_z.detach(),
            "generator_y": g_y.detach(),
            "generator_z": g_z.detach(),
        }
        out.update({k: v.detach() for k, v in extra.items()})

        # 3. Semi-supervised classification phase.
        if self.classification_phase:
            with amp.autocast():
                logits_l, _ = self._heads(self._corrupt(xl))
                if masked:  # rows with y = -1 carry no label
                    ce = F.cross_entropy(at_least_float32(logits_l), yl, ignore_index=-1, reduction="sum")
                    ce = ce / (yl >= 0).sum().clamp(min=1)
                else:
                    ce = F.cross_entropy(at_least_float32(logits_l), yl)
            self._update(ce, optimizers["classifier"], amp)
            out["classification"] = ce.detach()
        return out

    @torch.no_grad()
    def validation_step(self, batch) -> dict[str, torch.Tensor]:
        """Held-out ``reconstruction`` loss and, for the semi-supervised variants given labels,
        ``error`` (fraction of labelled rows classified wrong)."""
        batch = as_batch(batch)
        x = self._check_x(batch["x"])
        logits, z = self._heads(x)
        y = torch.softmax(at_least_float32(logits), dim=1)
        out = {
            "reconstruction": self.reconstruction_loss(self.decoder(self._decoder_input(y, z)), x)
        }
        labels = batch.get("y")
        if self.classification_phase and labels is not None:
            labels = self._check_labels(
                labels, x.shape[0], self.num_categories, allow_unlabelled=True, name="batch['y']"
            )
            labelled = labels >= 0
            wrong = (logits.argmax(dim=1) != labels) & labelled
            out["error"] = wrong.sum() / labelled.sum().clamp(min=1)
            out["weights"] = {"error": labelled.sum()}  # a ratio over the labelled rows only
        return out
