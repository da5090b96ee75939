"""The variational autoencoder (Kingma & Welling, 2014), the AAE paper's main point of comparison
(§2.1, Fig. 2): the same networks as :class:`~aae_fast.reference.AdversarialAutoencoder`, but q(z|x)
is matched to the prior through a KL term in the loss, which needs the prior's density, where the
AAE's discriminator needs only its samples.

Loss per mini-batch (one optimiser, one update):

    reconstruction(x, decoder(z)) + KL(q(z|x) || p(z)),     z = mu + sigma * eps

both summed over features / latent dimensions and averaged over rows, like the AAE's
reconstruction. KL is in closed form for a :class:`~aae_fast.priors.Gaussian` prior and estimated
with the sample z the decoder sees (log q(z|x) - log p(z), the SGVB estimator of Kingma & Welling,
§2.3) for any prior with a ``log_prob`` (the paper's 10-component
:class:`~aae_fast.priors.MixtureOfGaussians`).

State-dict keys: ``encoder.*`` (heads mu and log sigma^2, like the AAE's Gaussian encoder) and
``decoder.*``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..priors import Gaussian, Prior
from ..reference._common import _FP32, DecodesPriorSamples, ReferenceAAE, as_batch, check_int
from ..reference.networks import check_hidden, init_normal_, mlp

__all__ = ["VAE"]

_LOG_2PI = math.log(2 * math.pi)


class VAE(DecodesPriorSamples, ReferenceAAE):
    """A variational autoencoder with the AAE's networks, trained by the same Trainer and CLI
    (``aae-fast train --model vae``); ``decode``, ``sample_prior`` and ``generate`` are the AAE's.

    Args:
        input_dim, latent_dim, hidden: as :class:`~aae_fast.reference.AdversarialAutoencoder`
            (784, 8, (1000, 1000): the paper's MNIST sizes).
        prior: :class:`~aae_fast.priors.Gaussian` (default, ``Gaussian(latent_dim)``: KL in closed
            form) or any prior with ``log_prob`` (Monte Carlo KL). Priors that can only be sampled
            (SwissRoll, Categorical, Custom) are refused: that limitation is the AAE's argument.
        reconstruction, init_std, optimizer, learning_rates, momentum, lr_milestones, lr_gamma:
            as the AAE; only the ``"autoencoder"`` learning rate is used.
    """

    phases = ("autoencoder",)

    def __init__(
        self,
        input_dim: int = 784,
        latent_dim: int = 8,
        hidden: Sequence[int] = (1000, 1000),
        prior: Prior | None = None,
        *,
        reconstruction: str = "bce",
        init_std: float | None = 0.01,
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
            optimizer=optimizer,
            learning_rates=learning_rates,
            momentum=momentum,
            lr_milestones=lr_milestones,
            lr_gamma=lr_gamma,
        )
        self.latent_dim = check_int(latent_dim, "latent_dim")
        self.hidden = check_hidden(hidden)
        self.prior = self._check_prior(
            Gaussian(self.latent_dim) if prior is None else prior, self.latent_dim, "prior",
            "latent_dim",
        )
        if not isinstance(self.prior, Gaussian) and type(self.prior).log_prob is Prior.log_prob:
            raise ValueError(
                f"prior: a VAE's KL term needs the prior's density, and {self.prior!r} can only "
                "be sampled; use Gaussian or MixtureOfGaussians (or an AdversarialAutoencoder, "
                "which needs samples only)"
            )
        self.encoder = mlp(self.input_dim, self.hidden, 2 * self.latent_dim)
        self.decoder = mlp(self.latent_dim, self.hidden[::-1], self.input_dim)
        init_normal_(self, init_std)

    @property
    def config(self) -> dict[str, Any]:
        return {
            "variant": "vae",
            "input_dim": self.input_dim,
            "latent_dim": self.latent_dim,
            "hidden": list(self.hidden),
            "prior": repr(self.prior),
            "reconstruction": self.reconstruction,
            "init_std": self.init_std,
            "optimizer": self.optimizer_name,
            "learning_rates": {"autoencoder": self.learning_rates["autoencoder"]},
            "momentum": self.momentum,
            "lr_milestones": list(self.lr_milestones),
            "lr_gamma": self.lr_gamma,
        }

    def _phase_parameters(self):
        return {"autoencoder": list(self.parameters())}

    # -- the networks -------------------------------------------------------------------------
    def posterior_parameters(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of q(z|x), each [N, latent_dim]."""
        mu, logvar = self.encoder(self._check_x(x)).chunk(2, dim=1)
        return mu, logvar

    def encode(self, x: torch.Tensor, *, sample: bool = True, generator=None) -> torch.Tensor:
        """Codes [N, latent_dim]: a sample of q(z|x) (``sample=True``) or its mean mu."""
        mu, logvar = self.posterior_parameters(x)
        return self._reparameterize(mu, logvar, generator) if sample else mu

    def reconstruct(self, x: torch.Tensor, *, sample: bool = False) -> torch.Tensor:
        """``decode(encode(x, sample=sample))``: probabilities [N, input_dim]."""
        return torch.sigmoid(self.decoder(self.encode(x, sample=sample)))

    # -- the loss -----------------------------------------------------------------------------
    def kl(self, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """KL(q(z|x) || p(z)) summed over latent dimensions, averaged over rows, in fp32 (fp64
        for fp64 inputs). Closed form for a Gaussian prior; otherwise the one-sample estimate
        log q(z|x) - log p(z) at ``z`` (required then: a sample of q(z|x))."""
        compute = torch.float64 if mu.dtype == torch.float64 else torch.float32
        mu, logvar = mu.to(compute), logvar.to(compute)
        if isinstance(self.prior, Gaussian):
            m = self.prior.mean.to(mu)
            log_s2 = 2 * self.prior.std.to(mu).log()
            per_dim = 0.5 * (log_s2 - logvar + (logvar.exp() + (mu - m) ** 2) / log_s2.exp() - 1)
            return per_dim.sum(1).mean()
        if z is None:
            raise ValueError(f"z: the KL to {self.prior!r} is estimated at a sample z of q(z|x)")
        z = z.to(compute)
        log_q = -0.5 * (((z - mu) ** 2) / logvar.exp() + logvar + _LOG_2PI).sum(1)
        return (log_q - self.prior.log_prob(z)).mean()

    def training_step(self, batch, optimizers, amp=None) -> dict[str, torch.Tensor]:
        """One update of the negative ELBO. Returns detached 0-dim tensors ``loss`` (the negative
        ELBO), ``reconstruction`` and ``kl``."""
        amp = amp or _FP32
        x = self._check_x(as_batch(batch)["x"], min_rows=1)
        with amp.autocast():
            mu, logvar = self.encoder(x).chunk(2, dim=1)
            z = self._reparameterize(mu, logvar)
            rec = self.reconstruction_loss(self.decoder(z), x)
            kl = self.kl(mu, logvar, z)
            loss = rec + kl
        self._update(loss, optimizers["autoencoder"], amp)
        return {"loss": loss.detach(), "reconstruction": rec.detach(), "kl": kl.detach()}

    @torch.no_grad()
    def validation_step(self, batch) -> dict[str, torch.Tensor]:
        """Held-out ``reconstruction`` from the posterior mean (comparable with the AAE's), ``kl``
        and ``loss`` (their sum; the KL is a one-sample estimate under a non-Gaussian prior)."""
        x = self._check_x(as_batch(batch)["x"])
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        rec = self.reconstruction_loss(self.decoder(mu), x)
        kl = self.kl(mu, logvar, self._reparameterize(mu, logvar))
        return {"loss": rec + kl, "reconstruction": rec, "kl": kl}
