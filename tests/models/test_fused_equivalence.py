"""A fused model and its reference twin, from the same weights and the same random numbers, take
the same training steps: every phase loss of 20 steps and every parameter afterwards agree to fp32
tolerance, for every variant (DESIGN §1: the reference is the oracle of the fast path)."""

from __future__ import annotations

import pytest
import torch
from twins import VARIANTS, batches, make_twins, share_noise

STEPS = 20


def assert_close(actual, expected, what, rtol=2e-4, atol=2e-5):
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_fused_steps_match_the_reference(name, optimizer):
    reference, model = make_twins(name, optimizer)
    share_noise(reference, model)
    ref_opt, fused_opt = reference.configure_optimizers(), model.configure_optimizers()
    assert all(o.defaults.get("fused") for o in fused_opt.values())
    assert not any(o.defaults.get("fused") for o in ref_opt.values())
    for step, batch in enumerate(batches(name, STEPS)):
        expected = reference.training_step(batch, ref_opt)
        actual = model.training_step(batch, fused_opt)
        assert actual.keys() == expected.keys()
        for key in expected:
            assert actual[key].dtype == torch.float32
            assert_close(actual[key], expected[key], f"step {step} loss {key!r}")
    ref_params = dict(reference.named_parameters())
    for key, p in model.named_parameters():
        assert_close(p, ref_params[key], f"parameter {key!r} after {STEPS} steps")


@pytest.mark.parametrize("name", ["aae-deterministic", "aae-gaussian", "semi-supervised"])
def test_fused_and_reference_evaluation_agree(name):
    reference, model = make_twins(name)
    share_noise(reference, model)
    batch = batches(name, 1, n=31)[0]
    for key, value in reference.validation_step(batch).items():
        assert_close(model.validation_step(batch)[key], value, f"validation {key!r}")
    if name.startswith("aae"):
        x = batch["x"]
        assert_close(model.encode(x, sample=False), reference.encode(x, sample=False), "encode")
        z = model.encode(x, sample=False)
        assert_close(model.decode(z), reference.decode(z), "decode")
