"""scripts/profile_step.py (the developers' profiler table of one training step) on a tiny batch,
so that it keeps working between GPU sessions."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "profile_step.py"


def _load():
    spec = importlib.util.spec_from_file_location("profile_step", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("model, impl, precision", [("aae", "fused", "fp32"), ("ssaae", "eager", "bf16")])
def test_writes_a_table_of_operators(tmp_path, capsys, model, impl, precision):
    path = _load().main(["--model", model, "--impl", impl, "--precision", precision, "--batch", "8",
                         "--steps", "1", "--rows", "5", "--device", "cpu", "--out", str(tmp_path)])
    text = Path(path).read_text()
    assert Path(path).name == f"profile-{model}-{impl}-b8-{precision}.txt"
    assert text.startswith(f"{model} {impl} batch 8 {precision} on cpu")
    assert "aten::" in text and "Self CPU" in text
    assert text.splitlines()[0] in capsys.readouterr().out


def test_rejects_a_batch_below_one(tmp_path):
    with pytest.raises(SystemExit):
        _load().main(["--batch", "0", "--device", "cpu", "--out", str(tmp_path)])


def test_gemm_table_names_the_encoders_first_layer(tmp_path):
    path = _load().main(["--impl", "fused", "--batch", "8", "--steps", "1", "--rows", "3",
                         "--device", "cpu", "--gemms", "--out", str(tmp_path)])
    text = Path(path).read_text()
    assert "GEMMs by shape (torch.float32" in text
    # The first encoder layer's forward, 784 -> 1000 with its bias, as [B, K] x [K, N]: twice a
    # step (the reconstruction phase, and the regularisation phase's shared encoder forward).
    first_layer = [line for line in text.splitlines() if "aten::addmm" in line
                   and "[8,784]x[784,1000]" in line]
    assert len(first_layer) == 1, text
    ms, _op, _shape, calls, in_step, alone, ratio = first_layer[0].split()
    assert float(ms) > 0 and float(calls) == 2.0 and float(in_step) > 0 and float(alone) > 0
    # The ratio column is in-step over alone (both printed to 0.1 GF/s, the ratio to 0.01).
    in_step, alone = float(in_step), float(alone)
    assert (in_step - 0.05) / (alone + 0.05) - 0.005 <= float(ratio)
    assert float(ratio) <= (in_step + 0.05) / max(alone - 0.05, 1e-9) + 0.005
    assert "GEMM time per step:" in text


def test_kernel_summary_counts_device_events_per_step():
    """The CUDA-only header line, from stand-in events: host events are left out, device events
    counted and their durations summed, both per step."""
    import torch

    class Event:
        def __init__(self, device_type, us):
            self.device_type, self.device_time_total = device_type, us

    class Prof:
        def events(self):
            cuda, cpu = torch.autograd.DeviceType.CUDA, torch.autograd.DeviceType.CPU
            return [Event(cuda, 10.0), Event(cuda, 30.0), Event(cpu, 1e6), Event(cuda, 20.0)]

    line = _load().kernel_summary(Prof(), steps=2)
    assert line == "device kernels per step: 1.5, summed device time per step: 0.030 ms"
