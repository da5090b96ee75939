"""GMMN+AE (Li, Swersky & Zemel, 2015), the AAE paper's other neighbour (§3, Table 1: 282 +- 2
nats on MNIST against the AAE's 340 +- 2): an autoencoder, then a generative moment-matching network
that maps noise to codes, trained to minimise the maximum mean discrepancy (MMD) between its output
and the autoencoder's codes. An AAE matches the code distribution adversarially; a GMMN matches
its moments under a kernel.

Two stages, in one Trainer run:

1. steps ``0 .. autoencoder_steps - 1``: the autoencoder alone, on the reconstruction loss;
2. the following steps: the generator alone, on ``af.ops.mmd(generator(noise), encoder(x))`` (a
   multi-bandwidth Gaussian kernel; the fused, tiled op), the autoencoder frozen.

Both stages report both losses (the one not trained is computed without gradients), so that the
logs have the same columns throughout. The stage is chosen on the host from a step counter that is
checkpointed in the state dict (``_extra_state``, with ``autoencoder_steps``), so a resumed run
continues in the right stage, with the split it started with.
Generation decodes generator samples: ``decoder(generator(noise))``.

State-dict keys: ``encoder.*``, ``decoder.*`` (the AAE's layout, deterministic encoder) and
``generator.*`` (noise_dim -> generator_hidden -> latent_dim, ReLU).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .. import ops
from ..ops.mmd import DEFAULT_BANDWIDTHS
from ..priors import Gaussian
from ..reference._common import _FP32, ReferenceAAE, as_batch, check_int
from ..reference.networks import check_hidden, init_normal_, mlp

__all__ = ["GMMNAutoencoder"]

#: The generator's learning rates (Adam, SGD): ours; the MMD gradients are small next to the summed
#: reconstruction loss's, so the generator gets the autoencoder's rate rather than the AAE's
#: adversarial one.
_GENERATOR_LEARNING_RATES = {"adam": 1e-3, "sgd": 0.01}


class GMMNAutoencoder(ReferenceAAE):
    """An autoencoder with a moment-matching generator of codes (``aae-fast train --model
    gmmn-ae``).

    Args:
        input_dim, latent_dim, hidden: the autoencoder, as
            :class:`~aae_fast.reference.AdversarialAutoencoder` (deterministic encoder).
        autoencoder_steps: training steps of stage 1 (the autoencoder) before the generator's
            (stage 2). The Trainer's step budget should exceed it.
        generator_hidden: the generator's widths; None: ``hidden`` (our choice: the GMMN paper's
            code-space generator is smaller, but equal sizes keep the comparison about the loss).
        noise_dim: size of the generator's N(0, I) input; None: ``latent_dim``.
        bandwidths: the Gaussian kernel's bandwidths, summed (``af.ops.mmd``); default
            ``aae_fast.ops.mmd.DEFAULT_BANDWIDTHS``, octaves around 1 for unit-scale codes.
        unbiased: the MMD estimate (``af.ops.mmd``); default the biased V-statistic, >= 0.
        reconstruction, init_std, optimizer, learning_rates, momentum, lr_milestones, lr_gamma:
            as the AAE; the phases are ``"autoencoder"`` and ``"generator"``.
    """

    phases = ("autoencoder", "generator")
    #: Why averaging the ranks' gradients (aae_fast.training.distributed) would not give the
    #: one-process gradient of the global batch; the Trainer refuses a distributed run.
    data_parallel_inexact = (
        "its generator stage minimises MMD, a sum over pairs of rows rather than a mean over rows, "
        "so the ranks' pairs across each other would never be counted"
    )

    def __init__(
        self,
        input_dim: int = 784,
        latent_dim: int = 8,
        hidden: Sequence[int] = (1000, 1000),
        *,
        autoencoder_steps: int = 1000,
        generator_hidden: Sequence[int] | None = None,
        noise_dim: int | None = None,
        bandwidths: Sequence[float] | None = None,
        unbiased: bool = False,
        reconstruction: str = "bce",
        init_std: float | None = 0.01,
        optimizer: str = "sgd",
        learning_rates: Mapping[str, float] | None = None,
        momentum: float = 0.9,
        lr_milestones: Sequence[int] = (50, 1000),
        lr_gamma: float = 0.1,
    ) -> None:
        rates = dict(learning_rates or {})
        if optimizer in _GENERATOR_LEARNING_RATES:
            rates.setdefault("generator", _GENERATOR_LEARNING_RATES[optimizer])
        super().__init__(
            input_dim=input_dim,
            reconstruction=reconstruction,
            init_std=init_std,
            optimizer=optimizer,
            learning_rates=rates,
            momentum=momentum,
            lr_milestones=lr_milestones,
            lr_gamma=lr_gamma,
        )
        self.latent_dim = check_int(latent_dim, "latent_dim")
        self.hidden = check_hidden(hidden)
        self.generator_hidden = check_hidden(
            self.hidden if generator_hidden is None else generator_hidden, "generator_hidden"
        )
        self.noise_dim = check_int(self.latent_dim if noise_dim is None else noise_dim, "noise_dim")
        self.autoencoder_steps = check_int(autoencoder_steps, "autoencoder_steps", 0)
        self.bandwidths = tuple(
            float(s) for s in (DEFAULT_BANDWIDTHS if bandwidths is None else bandwidths)
        )
        if not self.bandwidths or not all(s > 0 for s in self.bandwidths):
            raise ValueError(f"bandwidths must be positive numbers, got {self.bandwidths}")
        self.unbiased = bool(unbiased)
        #: The generator's input distribution.
        self.noise = Gaussian(self.noise_dim)
        self.encoder = mlp(self.input_dim, self.hidden, self.latent_dim)
        self.decoder = mlp(self.latent_dim, self.hidden[::-1], self.input_dim)
        self.generator = mlp(self.noise_dim, self.generator_hidden, self.latent_dim)
        init_normal_(self, init_std)
        #: Training steps taken (stage 1 while < autoencoder_steps); in the state dict.
        self.steps_taken = 0

    @property
    def config(self) -> dict[str, Any]:
        return {
            "variant": "gmmn-ae",
            "input_dim": self.input_dim,
            "latent_dim": self.latent_dim,
            "hidden": list(self.hidden),
            "autoencoder_steps": self.autoencoder_steps,
            "generator_hidden": list(self.generator_hidden),
            "noise_dim": self.noise_dim,
            "bandwidths": list(self.bandwidths),
            "unbiased": self.unbiased,
            "reconstruction": self.reconstruction,
            "init_std": self.init_std,
            "optimizer": self.optimizer_name,
            "learning_rates": {k: self.learning_rates[k] for k in self.phases},
            "momentum": self.momentum,
            "lr_milestones": list(self.lr_milestones),
            "lr_gamma": self.lr_gamma,
        }

    def _phase_parameters(self):
        return {
            "autoencoder": list(self.encoder.parameters()) + list(self.decoder.parameters()),
            "generator": list(self.generator.parameters()),
        }

    def get_extra_state(self) -> dict[str, int]:
        return {"steps_taken": self.steps_taken, "autoencoder_steps": self.autoencoder_steps}

    def set_extra_state(self, state: dict[str, int]) -> None:
        # The stage split travels with the weights: a resumed run keeps the split it started with.
        self.steps_taken = int(state["steps_taken"])
        self.autoencoder_steps = int(state["autoencoder_steps"])

    @property
    def stage(self) -> str:
        """``"autoencoder"`` (stage 1) or ``"generator"`` (stage 2): what the next step trains."""
        return "autoencoder" if self.steps_taken < self.autoencoder_steps else "generator"

    # -- the networks -------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, **_: Any) -> torch.Tensor:
        """Codes [N, latent_dim] (deterministic; keyword arguments of the AAE's ``encode`` are
        accepted and ignored)."""
        return self.encoder(self._check_x(x))

    def decode(self, z: torch.Tensor, *, logits: bool = False) -> torch.Tensor:
        """Reconstructions [N, input_dim]: probabilities in [0, 1], or logits."""
        out = self.decoder(self._check_code(z, self.latent_dim))
        return out if logits else torch.sigmoid(out)

    def reconstruct(self, x: torch.Tensor, **_: Any) -> torch.Tensor:
        return torch.sigmoid(self.decoder(self.encode(x)))

    def _generated_codes(self, n: int, generator=None) -> torch.Tensor:
        return self.generator(self._sample(self.noise, n, generator=generator))

    @torch.no_grad()
    def sample_codes(self, n: int, generator=None) -> torch.Tensor:
        """n codes [n, latent_dim] from the generator (its model of the code distribution)."""
        return self._generated_codes(check_int(n, "n", 0), generator)

    @torch.no_grad()
    def generate(self, n: int, labels: torch.Tensor | None = None, generator=None) -> torch.Tensor:
        """Images [n, input_dim] in [0, 1]: decoded generator samples."""
        if labels is not None:
            raise ValueError("labels: a GMMNAutoencoder generates unconditionally")
        return torch.sigmoid(self.decoder(self.sample_codes(n, generator)))

    # -- training -----------------------------------------------------------------------------
    def mmd(self, generated: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """The squared MMD between generated codes and the autoencoder's (fp32 at least)."""
        compute = torch.float64 if codes.dtype == torch.float64 else torch.float32
        return ops.mmd(generated.to(compute), codes.to(compute), self.bandwidths, self.unbiased)

    def training_step(self, batch, optimizers, amp=None) -> dict[str, torch.Tensor]:
        """One step of the current stage (module docstring). Returns detached 0-dim tensors
        ``reconstruction`` and ``mmd``."""
        if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
            raise RuntimeError(
                "GMMNAutoencoder chooses its stage on the host, which a captured CUDA graph would "
                "freeze: train it without cuda_graph=True"
            )
        amp = amp or _FP32
        x = self._check_x(as_batch(batch)["x"], min_rows=1)
        n = x.shape[0]
        if self.stage == "autoencoder":
            with amp.autocast():
                codes = self.encoder(x)
                rec = self.reconstruction_loss(self.decoder(codes), x)
            self._update(rec, optimizers["autoencoder"], amp)
            with torch.no_grad(), amp.autocast():
                mmd = self.mmd(self._generated_codes(n), codes.detach())
        else:
            with torch.no_grad(), amp.autocast():
                codes = self.encoder(x)
                rec = self.reconstruction_loss(self.decoder(codes), x)
            with amp.autocast():
                mmd = self.mmd(self._generated_codes(n), codes)
            self._update(mmd, optimizers["generator"], amp)
        self.steps_taken += 1
        return {"reconstruction": rec.detach(), "mmd": mmd.detach()}

    @torch.no_grad()
    def validation_step(self, batch) -> dict[str, torch.Tensor]:
        """Held-out ``reconstruction`` and ``mmd`` between as many generated codes and the
        batch's codes."""
        x = self._check_x(as_batch(batch)["x"])
        codes = self.encoder(x)
        return {
            "reconstruction": self.reconstruction_loss(self.decoder(codes), x),
            "mmd": self.mmd(self._generated_codes(x.shape[0]), codes),
        }
