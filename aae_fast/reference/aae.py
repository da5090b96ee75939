"""The adversarial autoencoder (Makhzani et al., 2015, §2) and its label-conditioned form (§2.3), in
plain eager PyTorch.

State-dict layout (hidden ``(h1, h2)``, discriminator hidden ``(d1, d2)``; see
:mod:`~aae_fast.reference.networks` for the Sequential indices)::

    encoder.0.weight        [h1, input_dim (+ noise_dim for encoder="universal")]
    encoder.2.weight        [h2, h1]
    encoder.4.weight        [latent_dim, h2]          deterministic / universal
                            [2 * latent_dim, h2]      gaussian: rows [:latent_dim] give mu,
                                                      rows [latent_dim:] give log sigma^2
    decoder.0.weight        [h2, latent_dim]
    decoder.2.weight        [h1, h2]
    decoder.4.weight        [input_dim, h1]           (logits; sigmoid gives the image)
    discriminator.0.weight  [d1, latent_dim (+ K + 1 when label_conditioned)]
    discriminator.2.weight  [d2, d1]
    discriminator.4.weight  [1, d2]                   (logit of "sample from the prior")

with a ``.bias`` beside every ``.weight``. The decoder mirrors the encoder's widths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..priors import Gaussian, Prior
from ._common import _FP32, DecodesPriorSamples, ReferenceAAE, as_batch, check_int
from .networks import check_hidden, init_normal_, mlp

__all__ = ["AdversarialAutoencoder"]

ENCODERS = ("deterministic", "gaussian", "universal")


class AdversarialAutoencoder(DecodesPriorSamples, ReferenceAAE):
    """An autoencoder whose aggregated posterior q(z) is matched to a prior p(z) by a GAN on the
    code (§2, Fig. 1).

    Args:
        input_dim: features per input row (784 for 28x28 images, pixels in [0, 1]).
        latent_dim: code size; 8 is the paper's for the MNIST likelihood experiment (§3,
            Appendix A). Use 2 to plot codes (§2, Fig. 2 and 4).
        hidden: encoder widths; the decoder mirrors them. Paper: (1000, 1000), ReLU (Appendix A).
        prior: any :mod:`aae_fast.priors` prior of dimension ``latent_dim``; None gives
            ``Gaussian(latent_dim)`` (§2). It is sampled with ``backend="eager"``.
        encoder: the posterior q(z|x) (§2): ``"deterministic"`` (the paper's choice for all its
            experiments), ``"gaussian"`` (heads mu and log sigma^2, z = mu + sigma * eps by
            reparameterisation) or ``"universal"`` (noise eta ~ N(0, I) appended to the input,
            z = f(x, eta)).
        label_conditioned: §2.3 (Fig. 5, 6): the discriminator also sees a one-hot label with
            ``K + 1`` slots (K = ``prior.num_components``). A labelled row's code is matched to
            its label's component of the prior; an unlabelled row (label -1) gets the extra slot
            K, and on the prior side that slot goes with samples of the whole mixture. Needs a
            prior with components (``MixtureOfGaussians``, ``SwissRoll``) and labels in every
            training batch.
        discriminator_hidden: discriminator widths; None: same as ``hidden`` (Appendix A).
        noise_dim: size of eta for ``encoder="universal"``; the paper does not give one. Default
            ``latent_dim`` (our choice: enough for a continuous map from eta to cover the code
            space for every x).
        reconstruction: ``"bce"`` (default; our choice, a Bernoulli decoder, BCE on logits) or
            ``"mse"`` (the paper's Euclidean cost on a sigmoid output, Appendix A). Both sum over
            features and average over rows.
        init_std: weights ~ N(0, init_std^2), biases 0 (Appendix A: 0.01); None keeps PyTorch's
            default initialisation.
        input_noise_std: std of Gaussian noise added to the encoder's input in every training phase
            (the reconstruction target stays clean). 0 (default) adds none; the paper's use of input
            noise could not be checked here (see ``PAPER_SGD_LEARNING_RATES``), so it is off.
        optimizer: ``"sgd"`` (paper: SGD with momentum 0.9, Appendix A) or ``"adam"``.
        learning_rates: per-phase overrides of the defaults
            (:data:`~aae_fast.reference._common.PAPER_SGD_LEARNING_RATES` or
            ``ADAM_LEARNING_RATES``): keys ``"autoencoder"``, ``"discriminator"``,
            ``"generator"``.
        momentum: SGD momentum (paper: 0.9).
        lr_milestones, lr_gamma: learning rates are multiplied by ``lr_gamma`` at these epochs
            (paper: x0.1 after 50 and after 1000 epochs, Appendix A).

    ``decode`` and ``generate`` return probabilities in [0, 1] (sigmoid of the decoder's logits);
    ``decode(z, logits=True)`` gives the logits.
    """

    def __init__(
        self,
        input_dim: int = 784,
        latent_dim: int = 8,
        hidden: Sequence[int] = (1000, 1000),
        prior: Prior | None = None,
        encoder: str = "deterministic",
        label_conditioned: bool = False,
        *,
        discriminator_hidden: Sequence[int] | None = None,
        noise_dim: int | None = None,
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
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        self.encoder_kind = encoder
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
        self.label_conditioned = bool(label_conditioned)
        self.requires_labels = self.label_conditioned
        if self.label_conditioned and not self.prior.num_components:
            raise ValueError(
                f"prior: label_conditioned=True needs a prior whose components labels can pick "
                "(MixtureOfGaussians, SwissRoll, or Custom with num_components), "
                f"got {self.prior!r}"
            )
        #: K, the number of labelled classes (the prior's components) when label-conditioned.
        self.num_classes = self.prior.num_components if self.label_conditioned else None
        if encoder == "universal":
            self.noise_dim = check_int(
                self.latent_dim if noise_dim is None else noise_dim, "noise_dim"
            )
        else:
            if noise_dim is not None:
                raise ValueError(
                    f"noise_dim is only for encoder='universal', got encoder={encoder!r}"
                )
            self.noise_dim = 0

        out = 2 * self.latent_dim if encoder == "gaussian" else self.latent_dim
        self.encoder = mlp(self.input_dim + self.noise_dim, self.hidden, out)
        self.decoder = mlp(self.latent_dim, self.hidden[::-1], self.input_dim)
        label_slots = self.num_classes + 1 if self.label_conditioned else 0
        self.discriminator = mlp(self.latent_dim + label_slots, self.discriminator_hidden, 1)
        init_normal_(self, init_std)
        self._reference_codes: dict[Any, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def config(self) -> dict[str, Any]:
        return {
            "variant": "aae",
            "input_dim": self.input_dim,
            "latent_dim": self.latent_dim,
            "hidden": list(self.hidden),
            "prior": repr(self.prior),
            "encoder": self.encoder_kind,
            "label_conditioned": self.label_conditioned,
            "discriminator_hidden": list(self.discriminator_hidden),
            "noise_dim": self.noise_dim or None,
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

    # -- the networks -------------------------------------------------------------------------
    def _posterior(self, x: torch.Tensor, sample: bool = True, generator=None) -> torch.Tensor:
        """z for a checked x: a sample of q(z|x) (``sample=True``) or its mean / noise-free map."""
        if self.encoder_kind == "universal":
            shape = (x.shape[0], self.noise_dim)
            if sample:
                eta = self._randn(shape, x, generator)
            else:
                eta = x.new_zeros(shape)
            x = torch.cat((x, eta), dim=1)
        h = self.encoder(x)
        if self.encoder_kind != "gaussian":
            return h
        mu, logvar = h.chunk(2, dim=1)
        if not sample:
            return mu
        return self._reparameterize(mu, logvar, generator)

    def posterior_parameters(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of q(z|x) for ``encoder="gaussian"``, each [N, latent_dim]."""
        if self.encoder_kind != "gaussian":
            raise ValueError(
                f"posterior_parameters needs encoder='gaussian', this model has "
                f"encoder={self.encoder_kind!r}"
            )
        mu, logvar = self.encoder(self._check_x(x)).chunk(2, dim=1)
        return mu, logvar

    def encode(self, x: torch.Tensor, *, sample: bool = True, generator=None) -> torch.Tensor:
        """Codes z [N, latent_dim] of inputs x [N, input_dim].

        ``sample=True`` draws z ~ q(z|x) (the Gaussian posterior's reparameterised sample, or the
        universal encoder's f(x, eta) with fresh eta): these are the codes whose aggregate is
        matched to the prior. ``sample=False`` gives mu (Gaussian) or f(x, 0) (universal). The
        deterministic encoder ignores both arguments."""
        return self._posterior(self._check_x(x), sample, generator)

    def reconstruct(self, x: torch.Tensor, *, sample: bool = False) -> torch.Tensor:
        """``decode(encode(x, sample=sample))``: probabilities [N, input_dim]."""
        return torch.sigmoid(self.decoder(self._posterior(self._check_x(x), sample)))

    def discriminate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Discriminator logits [N] (high: "looks like a prior sample"). A label-conditioned model
        needs ``y`` (int64 [N], -1 = unlabelled)."""
        z = self._check_code(z, self.latent_dim)
        if self.label_conditioned:
            y = self._check_labels(
                y,
                z.shape[0],
                self.num_classes,
                allow_unlabelled=True,
                what="a label-conditioned AdversarialAutoencoder",
            )
            z = torch.cat((z, self._label_slots(y, z.dtype)), dim=1)
        elif y is not None:
            raise ValueError("y: only a label_conditioned model's discriminator takes labels")
        return self.discriminator(z).squeeze(1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, reference_per_class: int = 200) -> torch.Tensor:
        """Class ids [N] for a label-conditioned model: the prior component whose samples lie
        nearest to each code (nearest neighbour among ``reference_per_class`` fixed-seed samples of
        every component; for a mixture of Gaussians this is close to the nearest mean)."""
        if not self.label_conditioned:
            raise ValueError(
                "predict needs a label_conditioned model (its codes are tied to prior components)"
            )
        z = self.encode(x, sample=False)
        key = (z.device, z.dtype, reference_per_class)
        if key not in self._reference_codes:
            g = torch.Generator(device=z.device).manual_seed(0)
            labels = torch.arange(self.num_classes, device=z.device).repeat_interleave(
                reference_per_class
            )
            ref = self.prior.sample(
                labels.numel(),
                labels=labels,
                generator=g,
                device=z.device,
                dtype=z.dtype,
                backend="eager",
            )
            self._reference_codes[key] = (ref, labels)
        ref, labels = self._reference_codes[key]
        return labels[torch.cdist(z, ref).argmin(dim=1)]

    # -- training -----------------------------------------------------------------------------
    def _label_slots(self, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """One-hot [N, K + 1]: slot y for labelled rows, slot K ("unknown") for y = -1 (§2.3)."""
        k = self.num_classes
        return self._one_hot(torch.where(y < 0, k, y), k + 1, dtype)

    def _conditioned_prior(self, y: torch.Tensor) -> torch.Tensor:
        """Prior samples for a batch's labels: component y for labelled rows, the whole mixture for
        unlabelled ones (§2.3)."""
        n = y.shape[0]
        labelled = y >= 0
        z_labelled = self._sample(self.prior, n, labels=y.clamp(min=0))
        z_any = self._sample(self.prior, n)
        return torch.where(labelled[:, None], z_labelled, z_any)

    def training_step(self, batch, optimizers, amp=None) -> dict[str, torch.Tensor]:
        """One mini-batch of the paper's two phases (§2): reconstruction (encoder + decoder), then
        regularization: the discriminator step on prior samples vs codes, then the generator step
        (the encoder fooling the updated discriminator).

        Returns detached 0-dim tensors ``reconstruction``, ``discriminator``, ``generator``."""
        amp = amp or _FP32
        batch = as_batch(batch)
        x = self._check_x(batch["x"], min_rows=1)
        n = x.shape[0]
        y = batch.get("y")
        if self.label_conditioned:
            y = self._check_labels(
                y,
                n,
                self.num_classes,
                allow_unlabelled=True,
                name="batch['y']",
                what="a label-conditioned AdversarialAutoencoder",
            )
            slots = self._label_slots(y, x.dtype)

        # 1. Reconstruction phase: update encoder and decoder on the reconstruction error.
        with amp.autocast():
            rec = self.reconstruction_loss(self.decoder(self._posterior(self._corrupt(x))), x)
        self._update(rec, optimizers["autoencoder"], amp)

        # 2. Regularization phase. The codes of the updated encoder serve both the D and the G step
        # (the encoder does not change between them).
        with amp.autocast():
            z_fake = self._posterior(self._corrupt(x))
            z_real = (
                self._conditioned_prior(y)
                if self.label_conditioned
                else self._sample(self.prior, n)
            )
            real_in, fake_in = z_real, z_fake.detach()
            if self.label_conditioned:
                real_in = torch.cat((real_in, slots), dim=1)
                fake_in = torch.cat((fake_in, slots), dim=1)
            # One discriminator pass over [prior samples; codes].
            real_logits, fake_logits = self.discriminator(torch.cat((real_in, fake_in))).split(n)
            d = self.d_loss(real_logits, fake_logits)
        self._update(d, optimizers["discriminator"], amp)

        with self._frozen(self.discriminator), amp.autocast():
            fake_in = torch.cat((z_fake, slots), dim=1) if self.label_conditioned else z_fake
            g = self.g_loss(self.discriminator(fake_in))
        self._update(g, optimizers["generator"], amp)

        return {
            "reconstruction": rec.detach(),
            "discriminator": d.detach(),
            "generator": g.detach(),
        }

    @torch.no_grad()
    def validation_step(self, batch) -> dict[str, torch.Tensor]:
        """Held-out ``reconstruction`` loss (codes without posterior noise) and, for a
        label-conditioned model given labels, ``error`` (the fraction of labelled rows predicted
        wrong)."""
        batch = as_batch(batch)
        x = self._check_x(batch["x"])
        out = {
            "reconstruction": self.reconstruction_loss(self.decoder(self._posterior(x, False)), x)
        }
        y = batch.get("y")
        if self.label_conditioned and y is not None:
            y = self._check_labels(y, x.shape[0], self.num_classes, allow_unlabelled=True)
            labelled = y >= 0
            wrong = (self.predict(x) != y) & labelled
            out["error"] = wrong.sum() / labelled.sum().clamp(min=1)
            out["weights"] = {"error": labelled.sum()}  # a ratio over the labelled rows only
        return out
