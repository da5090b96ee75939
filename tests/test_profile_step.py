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
