"""The peer: pythae's `Adversarial_AE` (Chadebec et al., PyPI `pythae`) at the paper's layer sizes,
stepped the way pythae's own `AdversarialTrainer` steps a batch, for bench_training.py.

pythae's schedule does less than the paper's: one encoder and one decoder forward, the discriminator
three times (codes, prior samples, detached codes), then one joint autoencoder update (reconstruction
+ adversarial term, through a discriminator whose weight gradients are computed and discarded) and
one discriminator update. Its trainer also reads three losses with `.item()` every batch. Networks:
784-1000-1000-8 encoder (deterministic posterior), 8-1000-1000-784 decoder with a sigmoid (pythae's
"bce" loss takes probabilities), 8-1000-1000-1 discriminator with a sigmoid; Adam, pythae's default.

pythae is optional (`pip install pythae`; it is not a dependency of aae_fast): `available()` says
whether it imports.
"""

from __future__ import annotations

import importlib.util

import torch
from torch import nn


def available() -> bool:
    return importlib.util.find_spec("pythae") is not None


def _mlp(widths, last=None):
    layers = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    if last is not None:
        layers.append(last)
    return nn.Sequential(*layers)


def build(device: torch.device, input_dim: int = 784, latent_dim: int = 8, hidden=(1000, 1000)):
    """(model, step): pythae's Adversarial_AE and a callable doing one trainer batch."""
    from pythae.models import Adversarial_AE, Adversarial_AE_Config
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseDiscriminator, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self):
            BaseEncoder.__init__(self)
            self.net = _mlp([input_dim, *hidden])
            self.net.append(nn.ReLU())
            self.embedding = nn.Linear(hidden[-1], latent_dim)
            self.log_var = nn.Linear(hidden[-1], latent_dim)

        def forward(self, x):
            h = self.net(x)
            return ModelOutput(embedding=self.embedding(h), log_covariance=self.log_var(h))

    class Decoder(BaseDecoder):
        def __init__(self):
            BaseDecoder.__init__(self)
            self.net = _mlp([latent_dim, *hidden[::-1], input_dim], nn.Sigmoid())

        def forward(self, z):
            return ModelOutput(reconstruction=self.net(z))

    class Discriminator(BaseDiscriminator):
        def __init__(self):
            BaseDiscriminator.__init__(self)
            self.net = _mlp([latent_dim, *hidden, 1], nn.Sigmoid())

        def forward(self, z):
            return ModelOutput(embedding=self.net(z))

    config = Adversarial_AE_Config(
        input_dim=(input_dim,),
        latent_dim=latent_dim,
        reconstruction_loss="bce",
        deterministic_posterior=True,
    )
    torch.manual_seed(0)
    model = Adversarial_AE(config, Encoder(), Decoder(), Discriminator()).to(device)
    model.train()
    ae_params = list(model.encoder.parameters()) + list(model.decoder.parameters())
    ae_opt = torch.optim.Adam(ae_params, lr=1e-4)
    d_opt = torch.optim.Adam(model.discriminator.parameters(), lr=1e-4)

    def step(x: torch.Tensor):
        # pythae.trainers.AdversarialTrainer.train_step, one batch (its _optimizers_step inlined)
        out = model({"data": x}, epoch=0, dataset_size=x.shape[0], uses_ddp=False)
        ae_opt.zero_grad()
        out.autoencoder_loss.backward(retain_graph=True)
        d_opt.zero_grad()
        out.discriminator_loss.backward()
        ae_opt.step()
        d_opt.step()
        return (
            out.autoencoder_loss.item(),
            out.discriminator_loss.item(),
            (out.autoencoder_loss + out.discriminator_loss).item(),
        )

    return model, step
