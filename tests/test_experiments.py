"""The experiment scripts of RESULTS.md (experiments/*.py) keep working: each one runs end to end on
its `tiny` budget (2 steps per configuration, 32-wide networks) on the MNIST split, writes a
summary.json whose every run has its metrics, and prints the same commands under --dry-run for the
`short` and `paper` budgets."""

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
MNIST = REPO.parent / "shared" / "data" / "mnist"

pytestmark = pytest.mark.slow

#: script -> (runs on the tiny budget, metrics every run must report, --out root that report.py reads)
SCRIPTS = {
    "parzen": (3, ("parzen_log_likelihood", "parzen_sigma", "reconstruction_loss"), "parzen-mnist"),
    "figure2": (4, ("parzen_log_likelihood", "reconstruction_loss"), "figure2"),
    "semi_supervised": (2, ("test_error", "reconstruction_loss"), "semi-mnist"),
    "clustering": (2, ("test_error", "test_error_majority"), "clustering"),
    "dim_reduction": (2, ("test_error",), "dimred"),
    "qualitative": (6, ("reconstruction_loss",), "qualitative"),
}


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"experiments_{name}", EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_tiny_budget_runs_end_to_end(name, tmp_path):
    assert MNIST.is_dir(), f"MNIST test set expected at {MNIST} (CI copies shared/ beside the clone)"
    runs, keys, root = SCRIPTS[name]
    out = tmp_path / root
    assert _load(name).main(["--budget", "tiny", "--data", "mnist", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["budget"] == "tiny" and len(summary["runs"]) == runs
    for row in summary["runs"]:
        assert row["steps"] == 2 and row["wall_s"] > 0
        assert row["command"].startswith("aae-fast train ") and "--max-steps 2" in row["command"]
        for key in keys:
            assert row[key] == pytest.approx(row[key]), (row["name"], key)  # present and finite
        for figure in row["figures"]:
            assert Path(figure).stat().st_size > 0
        metrics = json.loads((Path(row["figures"][0]).parent / "metrics.json").read_text())
        assert metrics["config"]["max_steps"] == 2
    assert (out / "summary.md").read_text().startswith("| data |")
    if "test_error" in keys:
        assert all(0.0 <= row["test_error"] <= 1.0 for row in summary["runs"])
    if name == "qualitative":
        for prior in ("gaussian", "mixture", "swiss-roll"):
            assert (out / f"prior-{prior}" / "prior_samples.png").stat().st_size > 0
        assert (out / "mnist-supervised-style" / "style_grid.png").stat().st_size > 0
    if name == "figure2":  # the four runs' codes in one PNG
        assert (out / "figure2.png").stat().st_size > 10_000
    if name == "parzen":  # the AAE and both baselines, under one protocol
        assert sorted(row["model"] for row in summary["runs"]) == ["aae", "gmmn-ae", "vae"]
    # RESULTS.md's tables are printed from these summaries: every run appears in the report.
    table = _load("report").report(tmp_path)
    assert table.count(f"| {summary['runs'][0]['steps']} |") >= runs


@pytest.mark.parametrize("name", sorted(SCRIPTS))
@pytest.mark.parametrize("budget", ["short", "paper"])
def test_dry_run_prints_the_budgets_commands(name, budget, tmp_path, capsys):
    assert _load(name).main(["--budget", budget, "--out", str(tmp_path), "--dry-run"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "aae-fast train" in line]
    assert lines
    for line in lines:
        if budget == "paper":
            assert "--optimizer sgd" in line and "--epochs 2000" in line
        else:
            assert "--epochs" in line and "--optimizer" not in line  # the CLI default, Adam
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["runs"]) == len(lines) and not list(tmp_path.glob("*/metrics.json"))


def test_semi_supervised_short_budget_has_two_seeds_for_100_mnist_labels(tmp_path):
    assert _load("semi_supervised").main(["--budget", "short", "--data", "mnist", "--out", str(tmp_path), "--dry-run"]) == 0
    runs = json.loads((tmp_path / "summary.json").read_text())["runs"]
    hundred = [r for r in runs if r["labels"] == "100"]
    assert sorted(r["seed"] for r in hundred) == [0, 1]
    assert all(r["labels_per_class"] == 10 for r in hundred)


def test_all_labels_is_the_largest_balanced_subset():
    module = _load("semi_supervised")
    per_class = module.all_labels_per_class(f"mnist:{MNIST}", seed=0)
    # 7,000 training images after the 2,000 test and 1,000 validation hold-outs, 10 classes.
    assert 500 < per_class < 700


def test_a_second_invocation_keeps_the_first_ones_runs(tmp_path):
    """Running a subset into the same --out adds to its summary (RESULTS.md's tables read it), and a
    re-run replaces its own row instead of duplicating it."""
    parzen = _load("parzen")
    args = ["--budget", "tiny", "--data", "mnist", "--out", str(tmp_path)]
    assert parzen.main([*args, "--models", "aae"]) == 0
    assert parzen.main([*args, "--models", "vae"]) == 0
    assert parzen.main([*args, "--models", "vae"]) == 0
    runs = json.loads((tmp_path / "summary.json").read_text())["runs"]
    assert sorted(r["model"] for r in runs) == ["aae", "vae"]
    with pytest.raises(SystemExit, match="unknown models"):
        parzen.main([*args, "--models", "gan"])


def test_overview_quotes_only_mnist_runs_against_the_paper(tmp_path):
    """The at-a-glance table compares with the paper's MNIST figures: Fashion-MNIST rows stay in
    their own sections."""
    runs = {
        "clustering": [{"data_set": d, "clusters": 16, "test_error": e, "steps": 10} for d, e in
                       (("mnist", 0.5), ("fashion", 0.75))],
        "dimred": [{"data_set": d, "mode": "unsupervised", "test_error": e, "steps": 10} for d, e in
                   (("mnist", 0.25), ("fashion", 0.625))],
        # A --data fashion run written into parzen-mnist / semi-mnist must not be quoted either,
        # nor averaged into the MNIST seeds.
        "parzen-mnist": [{"data_set": d, "model": "aae", "parzen_log_likelihood": ll, "parzen_sem": 1.0,
                          "steps": 10} for d, ll in (("mnist", 123.0), ("fashion", -419.0))],
        "semi-mnist": [{"data_set": d, "labels": "100", "test_error": e, "steps": 10} for d, e in
                       (("mnist", 0.125), ("fashion", 0.375))],
    }
    for name, rows in runs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps({"budget": "tiny", "runs": rows}))
    table = _load("report").overview(tmp_path)
    assert "| 50.00 |" in table and "| 25.00 |" in table
    assert "75.00" not in table and "62.50" not in table
    assert "123 ± 1" in table and "-419" not in table
    assert "| 12.50 (1 seed) |" in table
    assert "tiny budget" in table and "short" not in table


def test_metrics_json_writes_non_finite_numbers_as_null(tmp_path):
    """A diverged run's NaN losses: JSON has no NaN, and strict readers refuse Python's extension."""
    import numpy as np
    import torch

    from aae_fast.experiment import write_json

    path = tmp_path / "metrics.json"
    write_json(path, {"final": {"loss": float("nan"), "ok": 1.5, "n": 3, "flag": True, "name": "x"},
                      "history": [{"step": np.int64(2), "loss": float("inf"), "t": torch.tensor(0.25)}]})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"final": {"loss": None, "ok": 1.5, "n": 3, "flag": True, "name": "x"},
                                "history": [{"step": 2.0, "loss": None, "t": 0.25}]}
