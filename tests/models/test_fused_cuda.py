"""The fused models on a GPU (skipped without CUDA): the CUDA and Triton kernels under the fused
networks, losses and samplers take the same 20 training steps as the reference twin (which runs
torch's own CUDA kernels) for every variant, and a fused step never synchronises with the host.
The same checks on CPU are test_fused_equivalence.py and test_fused_models.py."""

from __future__ import annotations

import pytest
import torch
from twins import VARIANTS, Bf16Autocast, batches, make_twins, share_noise

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

STEPS = 20


@pytest.fixture(autouse=True)
def no_tf32():
    """The reference's GEMMs in true fp32 (cuBLAS may otherwise use TF32), as the fused kernels."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def assert_close(actual, expected, what, rtol=1e-3, atol=1e-4):
    # Looser than on CPU: cuBLAS and the fused kernels sum the GEMMs in different orders, and 20
    # optimiser steps compound the rounding.
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_fused_steps_match_the_reference_on_cuda(name, optimizer):
    reference, model = make_twins(name, optimizer, device="cuda")
    share_noise(reference, model)
    ref_opt, fused_opt = reference.configure_optimizers(), model.configure_optimizers()
    for step, batch in enumerate(batches(name, STEPS, device="cuda")):
        expected = reference.training_step(batch, ref_opt)
        actual = model.training_step(batch, fused_opt)
        assert actual.keys() == expected.keys()
        for key in expected:
            assert actual[key].device.type == "cuda"
            assert_close(actual[key], expected[key], f"step {step} loss {key!r}")
    ref_params = dict(reference.named_parameters())
    for key, p in model.named_parameters():
        assert_close(p, ref_params[key], f"parameter {key!r} after {STEPS} steps")


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_fused_step_never_synchronises(name):
    """torch.cuda.set_sync_debug_mode("error") raises on any host synchronisation (item(), a
    device-to-host copy, nonzero...): none happens in a fused training step, label checks included
    (device-side asserts)."""
    _, model = make_twins(name, "adam", device="cuda")
    opt = model.configure_optimizers()
    data = batches(name, 3, device="cuda")
    model.training_step(data[0], opt)  # first call: lazy initialisations may synchronise
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for batch in data[1:]:
            model.training_step(batch, opt)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()


def test_fused_bf16_step_on_cuda_tracks_fp32():
    """Under bf16 autocast the fused AAE's losses stay within bf16 rounding of its fp32 losses
    over a few steps from the same start."""
    _, fp32 = make_twins("aae-deterministic", "adam", device="cuda")
    _, bf16 = make_twins("aae-deterministic", "adam", device="cuda")
    opt32, opt16 = fp32.configure_optimizers(), bf16.configure_optimizers()
    for batch in batches("aae-deterministic", 5, device="cuda"):
        expected = fp32.training_step(batch, opt32)
        actual = bf16.training_step(batch, opt16, amp=Bf16Autocast("cuda"))
        for key in expected:
            assert actual[key].dtype == torch.float32
            torch.testing.assert_close(actual[key], expected[key], rtol=5e-2, atol=5e-2)
