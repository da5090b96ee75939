"""`aae-fast` end to end: train writes config, metrics, checkpoint and figures; evaluate and sample
read them back; bad input gets a clear message and a non-zero exit."""

import json
import os
from pathlib import Path

import pytest

from aae_fast.cli import main

MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
TINY = ["--hidden", "64,64", "--max-steps", "30", "--batch-size", "50", "--parzen-samples", "300", "--quiet"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    assert MNIST.is_dir(), f"MNIST test set expected at {MNIST} (CI copies shared/ beside the clone)"
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--data", f"mnist:{MNIST}", "--out", str(out), *TINY]) == 0
    return out


def test_train_writes_metrics_checkpoint_and_figures(trained_run):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["config"]["model"] == "aae" and metrics["config"]["max_steps"] == 30
    assert metrics["history"] and metrics["history"][-1]["step"] == 30
    final = metrics["final"]
    assert final["steps"] == 30
    assert final["reconstruction_loss"] > 0
    assert final["parzen_log_likelihood"] == pytest.approx(final["parzen_log_likelihood"])  # finite
    assert "t10k split 8000/2000" in final["data"]
    for name in ("checkpoint.pt", "config.json", "latent.png", "samples.png", "reconstructions.png"):
        assert (trained_run / name).stat().st_size > 0, name
    assert set(final["figures"]) >= {"latent.png", "samples.png", "reconstructions.png"}


def test_evaluate_reloads_the_checkpoint(trained_run):
    before = json.loads((trained_run / "metrics.json").read_text())["final"]["reconstruction_loss"]
    assert main(["evaluate", str(trained_run), "--parzen-samples", "200", "--quiet"]) == 0
    after = json.loads((trained_run / "metrics.json").read_text())["final"]
    # The same model on the same test set: the reconstruction loss is reproduced exactly.
    assert after["reconstruction_loss"] == pytest.approx(before, rel=1e-6)


def test_resume_continues_to_more_steps(trained_run, tmp_path):
    out = tmp_path / "resumed"
    args = ["train", "--data", f"mnist:{MNIST}", "--out", str(out), "--no-eval", *TINY]
    args[args.index("--max-steps") + 1] = "40"
    assert main([*args, "--resume", str(trained_run / "checkpoint.pt")]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["final"]["steps"] == 40


def test_sample_writes_a_plot(tmp_path):
    assert main(["sample", "--prior", "swiss-roll", "--labelled", "-n", "500", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "prior_samples.png").stat().st_size > 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--model", "vae"], "invalid choice: 'vae'"),
        (["train", "--prior", "laplace"], "invalid choice: 'laplace'"),
        (["train", "--batch-size", "0"], "expected a positive integer, got 0"),
        (["train", "--hidden", "10,x"], "expected comma-separated widths"),
        (["train", "--label-conditioned"], "label_conditioned needs a prior with components"),
        (["train", "--data", "/nonexistent/dir", "--max-steps", "1"], "/nonexistent/dir"),
        (["evaluate", "/nonexistent/run"], "config.json not found"),
    ],
)
def test_bad_input_is_named(argv, message, capsys, tmp_path):
    if argv[0] == "train":
        argv = [*argv, "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err + str(exc.value.code)
    assert exc.value.code != 0
    assert message in err
