"""The GMMN+AE baseline: its two stages (each trains only its own networks), the MMD it minimises
(af.ops.mmd), a resumable stage, and training on MNIST: the generator's codes approach the
autoencoder's."""

from __future__ import annotations

import pytest
import torch

import aae_fast as af
from aae_fast.baselines import GMMNAutoencoder


def small_gmmn(**kw) -> GMMNAutoencoder:
    torch.manual_seed(0)
    kw = {"input_dim": 784, "latent_dim": 4, "hidden": (64,), "optimizer": "adam", "init_std": None,
          "autoencoder_steps": 200, **kw}
    return GMMNAutoencoder(**kw)


def snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def unchanged(module, before):
    return all(torch.equal(p, q) for p, q in zip(module.parameters(), before, strict=True))


def test_each_stage_trains_only_its_networks(mnist):
    train, _ = mnist
    model = small_gmmn(autoencoder_steps=3)
    opt = model.configure_optimizers()
    assert list(opt) == ["autoencoder", "generator"]
    batch = {"x": train.images[:50]}
    generator_before = snapshot(model.generator)
    for _ in range(3):
        assert model.stage == "autoencoder"
        losses = model.training_step(batch, opt)
    assert set(losses) == {"reconstruction", "mmd"}
    assert unchanged(model.generator, generator_before)
    assert model.stage == "generator" and model.steps_taken == 3
    autoencoder_before = snapshot(model.encoder) + snapshot(model.decoder)
    generator_before = snapshot(model.generator)
    model.training_step(batch, opt)
    assert all(torch.equal(p, q) for p, q in zip(
        list(model.encoder.parameters()) + list(model.decoder.parameters()), autoencoder_before, strict=True))
    assert not unchanged(model.generator, generator_before)


def test_mmd_is_the_fused_op():
    model = GMMNAutoencoder(input_dim=6, latent_dim=3, hidden=(5,), bandwidths=(0.7, 3.0))
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(9, 3, generator=g), torch.randn(11, 3, generator=g) + 1
    torch.testing.assert_close(model.mmd(a, b), af.ops.mmd(a, b, (0.7, 3.0)))
    assert model.mmd(a, a) < 1e-6 < model.mmd(a, b)


def test_stage_survives_a_checkpoint():
    model = small_gmmn(autoencoder_steps=2)
    opt = model.configure_optimizers()
    for _ in range(3):
        model.training_step({"x": torch.rand(8, 784)}, opt)
    state = model.state_dict()
    assert state["_extra_state"] == {"steps_taken": 3, "autoencoder_steps": 2}
    fresh = small_gmmn(autoencoder_steps=10)
    assert fresh.stage == "autoencoder"
    fresh.load_state_dict(state)
    assert fresh.steps_taken == 3 and fresh.autoencoder_steps == 2 and fresh.stage == "generator"


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"bandwidths must be positive numbers, got \(1.0, -2.0\)"):
        GMMNAutoencoder(bandwidths=(1, -2))
    with pytest.raises(ValueError, match="autoencoder_steps must be an int >= 0, got -1"):
        GMMNAutoencoder(autoencoder_steps=-1)
    with pytest.raises(ValueError, match="generates unconditionally"):
        GMMNAutoencoder(input_dim=6, latent_dim=2, hidden=(4,)).generate(3, labels=torch.zeros(3, dtype=torch.long))


def test_training_matches_the_codes(mnist):
    """200 autoencoder steps, then 300 generator steps: the held-out MMD between generated and
    real codes falls well below where the generator started, and so does the reconstruction."""
    train, test = mnist
    model = small_gmmn()
    opt = model.configure_optimizers()
    held_out = {"x": test.images[:500]}
    g = torch.Generator().manual_seed(0)
    history = []
    for _ in range(500):
        idx = torch.randint(len(train), (100,), generator=g)
        history.append(model.training_step({"x": train.images[idx]}, opt))
        if model.steps_taken == model.autoencoder_steps:
            torch.manual_seed(3)
            start = model.validation_step(held_out)
    torch.manual_seed(3)
    end = model.validation_step(held_out)
    assert history[199]["reconstruction"] < 0.6 * history[0]["reconstruction"]
    assert end["mmd"] < 0.3 * start["mmd"], (start, end)
    torch.testing.assert_close(end["reconstruction"], start["reconstruction"])  # AE frozen
    assert model.generate(4).shape == (4, 784)
    assert model.sample_codes(6).shape == (6, 4)
