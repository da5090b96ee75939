"""examples/pythae_accelerate.py, the worked example of accelerating code users already have: pythae's
Adversarial_AE trained by pythae's own AdversarialTrainer as is and after af.accelerate, from the
same seed, takes the same 20 steps (losses and parameters to fp32 tolerance). pythae comes with the
`bench` extra, which `make test` installs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("pythae", reason="pythae is the bench extra's peer: pip install -e '.[bench]'")

from aae_fast.nn import FusedLinear  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pythae_accelerate.py"


def load_example():
    spec = importlib.util.spec_from_file_location("pythae_accelerate_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    # Registered, as an import would: pythae's trainer pickles the model's classes with their
    # module (cloudpickle by value), which it looks up there.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_pythae_trainer_takes_the_same_steps_before_and_after_accelerate(tmp_path):
    example = load_example()
    data = torch.rand(64, 784, generator=torch.Generator().manual_seed(3))
    initial = example.make_pythae_aae(hidden=(48, 40), seed=5).state_dict()
    plain_losses, fast_losses, _, _, plain, fast = example.compare(
        steps=20, hidden=(48, 40), batch_size=64, seed=5, data=data
    )
    assert len(plain_losses) == len(fast_losses) == 20
    for step, (a, b) in enumerate(zip(plain_losses, fast_losses)):
        assert a.keys() == b.keys() and "train_epoch_loss" in a
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), (step, key)
    # It trained: the first and last losses differ, and so do the weights from their start.
    assert plain_losses[-1]["train_epoch_loss"] != plain_losses[0]["train_epoch_loss"]
    fast_state = fast.state_dict()
    assert fast_state.keys() == plain.state_dict().keys() == initial.keys()
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(fast_state[key], value, rtol=1e-4, atol=1e-5, msg=key)
    assert not torch.equal(plain.state_dict()["encoder.net.0.weight"], initial["encoder.net.0.weight"])
    # What accelerate did: every Linear + activation of the three networks is one fused layer.
    swapped = fast.aae_fast_report.swapped
    assert len(swapped) == 8
    assert sum(isinstance(m, FusedLinear) for m in fast.modules()) == 8


def test_the_script_prints_the_comparison(capsys):
    assert load_example().main(["--steps", "3", "--hidden", "16", "--batch-size", "32"]) == 0
    out = capsys.readouterr().out
    assert "largest relative loss difference" in out and "accelerated" in out
