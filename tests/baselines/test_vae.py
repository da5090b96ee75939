"""The VAE baseline: its KL term against closed forms and torch.distributions, its training on MNIST
(a few hundred steps improve the negative ELBO), the Trainer and the CLI."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Normal, kl_divergence

import aae_fast as af
from aae_fast.baselines import VAE
from aae_fast.priors import Gaussian, MixtureOfGaussians, SwissRoll
from aae_fast.training import Trainer


def small_vae(**kw) -> VAE:
    torch.manual_seed(0)
    kw = {"input_dim": 784, "latent_dim": 4, "hidden": (64,), "optimizer": "adam", "init_std": None, **kw}
    return VAE(**kw)


def test_kl_closed_form_against_torch_distributions():
    prior = Gaussian(3, mean=[0.5, -1.0, 2.0], std=[0.7, 1.5, 1.0])
    vae = VAE(input_dim=5, latent_dim=3, hidden=(4,), prior=prior).double()
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(11, 3, generator=g, dtype=torch.float64)
    logvar = torch.randn(11, 3, generator=g, dtype=torch.float64)
    want = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(prior.mean, prior.std)).sum(1).mean()
    torch.testing.assert_close(vae.kl(mu, logvar), want, rtol=1e-12, atol=1e-12)


def test_monte_carlo_kl_is_unbiased():
    """Under a one-component 'mixture' equal to a Gaussian, the one-sample estimate averages to
    the closed form (within 5 standard errors over 40,000 samples)."""
    mean, std = torch.tensor([0.5, -1.0]), torch.tensor([0.7, 1.5])
    mixture = MixtureOfGaussians(means=mean[None], stds=std[None])
    vae = VAE(input_dim=5, latent_dim=2, hidden=(4,), prior=mixture).double()
    closed = VAE(input_dim=5, latent_dim=2, hidden=(4,), prior=Gaussian(2, mean=mean, std=std)).double()
    mu = torch.tensor([[0.3, 0.2]], dtype=torch.float64)
    logvar = torch.tensor([[-0.5, 0.4]], dtype=torch.float64)
    n = 40_000
    g = torch.Generator().manual_seed(1)
    z = mu + (0.5 * logvar).exp() * torch.randn(n, 2, generator=g, dtype=torch.float64)
    per_sample = torch.stack([vae.kl(mu, logvar, zi[None]) for zi in z[:2000]])
    estimates = vae.kl(mu.expand(n, 2), logvar.expand(n, 2), z)  # the mean of n one-sample estimates
    se = per_sample.std() / n**0.5
    assert abs(estimates - closed.kl(mu, logvar)) < 5 * se
    with pytest.raises(ValueError, match="estimated at a sample z"):
        vae.kl(mu, logvar)


def test_sample_only_priors_are_refused():
    with pytest.raises(ValueError, match="needs the prior's density.*SwissRoll"):
        VAE(latent_dim=2, prior=SwissRoll())


@pytest.mark.parametrize("prior", ["gaussian", "mixture"])
def test_training_improves_the_elbo(mnist, prior):
    train, test = mnist
    latent = 2 if prior == "mixture" else 4
    vae = small_vae(latent_dim=latent, prior=MixtureOfGaussians() if prior == "mixture" else None)
    opt = vae.configure_optimizers()
    assert list(opt) == ["autoencoder"]
    held_out = {"x": test.images[:500]}
    before = vae.validation_step(held_out)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        idx = torch.randint(len(train), (100,), generator=g)
        losses = vae.training_step({"x": train.images[idx]}, opt)
    after = vae.validation_step(held_out)
    assert set(losses) == {"loss", "reconstruction", "kl"}
    assert after["loss"] < 0.6 * before["loss"], (before, after)
    assert after["kl"] > 0.5  # the posterior carries information about x
    torch.testing.assert_close(losses["loss"], losses["reconstruction"] + losses["kl"])


def test_state_dict_layout_api_and_trainer(mnist):
    train, _ = mnist
    vae = small_vae(latent_dim=3)
    assert list(vae.state_dict()) == [
        "encoder.0.weight", "encoder.0.bias", "encoder.2.weight", "encoder.2.bias",
        "decoder.0.weight", "decoder.0.bias", "decoder.2.weight", "decoder.2.bias",
    ]
    assert vae.encoder[2].out_features == 6  # mu and log sigma^2
    x = train.images[:7]
    mu, _ = vae.posterior_parameters(x)
    torch.testing.assert_close(vae.encode(x, sample=False), mu)
    assert vae.generate(5).shape == (5, 784) and vae.reconstruct(x).shape == (7, 784)
    trainer = Trainer(vae, batch_size=100, progress=False, log_every=10)
    history = trainer.fit(train, max_steps=20)
    assert trainer.global_step == 20 and {"loss", "reconstruction", "kl"} <= set(history[-1])
    assert vae.config["variant"] == "vae" and af.baselines.VAE is VAE
