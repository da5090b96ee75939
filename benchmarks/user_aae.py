"""A plain adversarial autoencoder as a user writes it, knowing nothing of aae_fast: the paper's
networks as ``nn.Sequential`` MLPs, ``torch.optim`` optimisers,
``F.binary_cross_entropy_with_logits`` losses and the three phases of Makhzani et al. (2015, §2),
each with its own forward passes.

It is the "code users already have" of issue 10: `aae_fast.accelerate` (route 1) and the
torch.compile route are checked on it (tests/test_accelerate.py) and timed on it
(benchmarks/bench_accelerate.py), so it lives beside the benchmarks and imports nothing from
aae_fast. The paper's sizes are the defaults: encoder 784-1000-1000-8, the mirrored decoder (logits
out), discriminator 8-1000-1000-1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def mlp(widths: Sequence[int]) -> nn.Sequential:
    """Linear -> ReLU -> ... -> Linear (no activation after the last layer)."""
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class UserAAE(nn.Module):
    def __init__(
        self,
        input_dim: int = 784,
        hidden: Sequence[int] = (1000, 1000),
        latent_dim: int = 8,
        disc_hidden: Sequence[int] = (1000, 1000),
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = mlp([input_dim, *hidden, latent_dim])
        self.decoder = mlp([latent_dim, *reversed(hidden), input_dim])
        self.discriminator = mlp([latent_dim, *disc_hidden, 1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(self.encoder(x)))


def make_optimizers(model: UserAAE, lr: float = 0.01, momentum: float = 0.9) -> dict:
    """One SGD-with-momentum optimiser per phase (the paper's, Appendix A)."""
    return {
        "ae": torch.optim.SGD(
            [*model.encoder.parameters(), *model.decoder.parameters()], lr=lr, momentum=momentum
        ),
        "disc": torch.optim.SGD(model.discriminator.parameters(), lr=lr / 10, momentum=momentum),
        "gen": torch.optim.SGD(model.encoder.parameters(), lr=lr / 10, momentum=momentum),
    }


def rec_phase(model: UserAAE, x: torch.Tensor) -> torch.Tensor:
    """Reconstruction loss: encoder + decoder on the per-image BCE."""
    logits = model.decoder(model.encoder(x))
    return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]


def disc_phase(model: UserAAE, z_real: torch.Tensor, z_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator loss: prior samples are real, codes are fake."""
    d_real, d_fake = model.discriminator(z_real), model.discriminator(z_fake)
    return F.binary_cross_entropy_with_logits(
        d_real, torch.ones_like(d_real)
    ) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))


def gen_phase(model: UserAAE, x: torch.Tensor) -> torch.Tensor:
    """Generator loss: the encoder tries to make its codes look like prior samples."""
    d_gen = model.discriminator(model.encoder(x))
    return F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))


#: The phases' forward passes and losses; a caller may pass compiled versions to train_step.
PHASES = {"rec": rec_phase, "disc": disc_phase, "gen": gen_phase}


def train_step(
    model: UserAAE, opts: dict, x: torch.Tensor, phases: dict = PHASES
) -> dict[str, torch.Tensor]:
    """Reconstruction, discriminator and generator phases; returns the detached losses. The prior
    sample (randn) is drawn here, outside the phase functions."""
    rec = phases["rec"](model, x)
    opts["ae"].zero_grad()
    rec.backward()
    opts["ae"].step()

    z_fake = model.encoder(x).detach()
    z_real = torch.randn_like(z_fake)
    d_loss = phases["disc"](model, z_real, z_fake)
    opts["disc"].zero_grad()
    d_loss.backward()
    opts["disc"].step()

    g_loss = phases["gen"](model, x)
    opts["gen"].zero_grad()
    g_loss.backward()
    opts["gen"].step()
    return {"rec": rec.detach(), "disc": d_loss.detach(), "gen": g_loss.detach()}
