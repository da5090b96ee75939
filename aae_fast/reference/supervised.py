"""The supervised adversarial autoencoder (Makhzani et al., 2015, §4, Fig. 7-8): the label goes to
the decoder as a one-hot vector, so the code z is free to hold only the style.

State-dict layout (hidden ``(h1, h2)``, discriminator hidden ``(d1, d2)``, K = num_classes)::

    encoder.0.weight        [h1, input_dim]
    encoder.2.weight        [h2, h1]
    encoder.4.weight        [latent_dim, h2]
    decoder.0.weight        [h2, latent_dim + K]      decoder input [z, onehot(y)]
    decoder.2.weight        [h1, h2]
    decoder.4.weight        [input_dim, h1]
    discriminator.0.weight  [d1, latent_dim]
    discriminator.2.weight  [d2, d1]
    discriminator.4.weight  [1, d2]

with a ``.bias`` beside every ``.weight``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..priors import Gaussian, Prior
from ._common import _FP32, ReferenceAAE, as_batch, check_int
from .networks import check_hidden, init_normal_, mlp

__all__ = ["SupervisedAAE"]


class SupervisedAAE(ReferenceAAE):
    """Disentangles content (the label, given to the decoder) from style (the code z, matched to the
    prior) (§4).

    Args:
        input_dim: features per input row.
        latent_dim: style size; 15 is the paper's for MNIST (§4, Fig. 7: a 15-D Gaussian code).
        num_classes: K, the number of labels (10 for MNIST).
        hidden: encoder widths, mirrored by the decoder; paper (1000, 1000), ReLU (Appendix A).
        prior: a prior on the style; None gives ``Gaussian(latent_dim)`` (§4).
        discriminator_hidden, reconstruction, init_std, input_noise_std, optimizer, learning_rates,
            momentum, lr_milestones, lr_gamma: as for
            :class:`~aae_fast.reference.AdversarialAutoencoder`.

    Every training row must be labelled (``batch["y"]`` in [0, K)).
    """

    requires_labels = True

    def __init__(
        self,
        input_dim: int = 784,
        latent_dim: int = 15,
        num_classes: int = 10,
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
            reconstruction=reconstruction,
            init_std=init_std,
            input_noise_std=input_noise_std,
            optimizer=optimizer,
            learning_rates=learning_rates,
            momentum=momentum,
            lr_milestones=lr_milestones,
            lr_gamma=lr_gamma,
        )
        self.latent_dim = check_int(latent_dim, "latent_dim")
        self.num_classes = check_int(num_classes, "num_classes")
        self.hidden = check_hidden(hidden)
        self.discriminator_hidden = check_hidden(
            self.hidden if discriminator_hidden is None else discriminator_hidden,
            "discriminator_hidden",
        )
        self.prior = self._check_prior(
            Gaussian(self.latent_dim) if prior is None else prior,
            self.latent_dim,
            "prior",
            "latent_dim",
        )
        self.encoder = mlp(self.input_dim, self.hidden, self.latent_dim)
        self.decoder = mlp(self.latent_dim + self.num_classes, self.hidden[::-1], self.input_dim)
        self.discriminator = mlp(self.latent_dim, self.discriminator_hidden, 1)
        init_normal_(self, init_std)

    @property
    def config(self) -> dict[str, Any]:
        return {
            "variant": "supervised",
            "input_dim": self.input_dim,
            "latent_dim": self.latent_dim,
            "num_classes": self.num_classes,
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

    def _phase_parameters(self):
        return {
            "autoencoder": list(self.encoder.parameters()) + list(self.decoder.parameters()),
            "discriminator": list(self.discriminator.parameters()),
            "generator": list(self.encoder.parameters()),
        }

    def _decoder_logits(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        onehot = self._one_hot(y, self.num_classes, z.dtype)
        return self.decoder(torch.cat((z, onehot), dim=1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Style codes z [N, latent_dim] of inputs x [N, input_dim]."""
        return self.encoder(self._check_x(x))

    def decode(self, z: torch.Tensor, y: torch.Tensor, *, logits: bool = False) -> torch.Tensor:
        """Images [N, input_dim] of style z [N, latent_dim] and labels y (int64 [N]): probabilities
        in [0, 1], or logits with ``logits=True``."""
        z = self._check_code(z, self.latent_dim)
        y = self._check_labels(
            y, z.shape[0], self.num_classes, allow_unlabelled=False, what="SupervisedAAE.decode"
        )
        out = self._decoder_logits(z, y)
        return out if logits else torch.sigmoid(out)

    def reconstruct(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``decode(encode(x), y)``."""
        return self.decode(self.encode(x), y)

    @torch.no_grad()
    def sample_prior(self, n: int, generator=None) -> torch.Tensor:
        return self._sample(self.prior, check_int(n, "n", 0), None, generator)

    @torch.no_grad()
    def generate(self, n: int, labels: torch.Tensor | None = None, generator=None) -> torch.Tensor:
        """Images [n, input_dim] in [0, 1] of class ``labels`` (int64 [n]; None: uniformly random
        classes) with styles drawn from the prior (§4, Fig. 7)."""
        n = check_int(n, "n", 0)
        if labels is None:
            labels = torch.randint(self.num_classes, (n,), generator=generator, device=self.device)
        labels = self._check_labels(
            labels, n, self.num_classes, allow_unlabelled=False, name="labels"
        )
        return torch.sigmoid(self._decoder_logits(self.sample_prior(n, generator), labels))

    def training_step(self, batch, optimizers, amp=None) -> dict[str, torch.Tensor]:
        """Reconstruction phase with the label fed to the decoder, then the regularization phase
        (discriminator step, then generator step) on the style code (§4, §2)."""
        amp = amp or _FP32
        batch = as_batch(batch)
        x = self._check_x(batch["x"], min_rows=1)
        n = x.shape[0]
        y = self._check_labels(
            batch.get("y"),
            n,
            self.num_classes,
            allow_unlabelled=False,
            name="batch['y']",
            what="SupervisedAAE",
        )

        with amp.autocast():
            rec = self.reconstruction_loss(
                self._decoder_logits(self.encoder(self._corrupt(x)), y), x
            )
        self._update(rec, optimizers["autoencoder"], amp)

        with amp.autocast():
            z_fake = self.encoder(self._corrupt(x))
            z_real = self._sample(self.prior, n)
            real_logits, fake_logits = self.discriminator(
                torch.cat((z_real, z_fake.detach()))
            ).split(n)
            d = self.d_loss(real_logits, fake_logits)
        self._update(d, optimizers["discriminator"], amp)

        with self._frozen(self.discriminator), amp.autocast():
            g = self.g_loss(self.discriminator(z_fake))
        self._update(g, optimizers["generator"], amp)

        return {
            "reconstruction": rec.detach(),
            "discriminator": d.detach(),
            "generator": g.detach(),
        }

    @torch.no_grad()
    def validation_step(self, batch) -> dict[str, torch.Tensor]:
        """Held-out ``reconstruction`` loss (needs labels: they go to the decoder)."""
        batch = as_batch(batch)
        x = self._check_x(batch["x"])
        y = self._check_labels(
            batch.get("y"),
            x.shape[0],
            self.num_classes,
            allow_unlabelled=False,
            name="batch['y']",
            what="SupervisedAAE",
        )
        return {
            "reconstruction": self.reconstruction_loss(self._decoder_logits(self.encoder(x), y), x)
        }
