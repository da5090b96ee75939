"""`aae-fast` end to end: train writes config, metrics, checkpoint and figures; evaluate and sample
read them back; bad input gets a clear message and a non-zero exit."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from aae_fast import experiment
from aae_fast.cli import main
from aae_fast.training import Trainer

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


@pytest.mark.parametrize("model, extra", [("vae", ["--prior", "mixture", "--latent-dim", "2"]),
                                          ("gmmn-ae", [])])
def test_baselines_train_and_get_the_aae_evaluation(model, extra, tmp_path):
    """--model vae / gmmn-ae: the same Trainer, Parzen estimate and figures as the AAE; gmmn-ae
    records its stage split (half the run by default) and both resume."""
    out = tmp_path / model
    args = ["train", "--model", model, "--data", f"mnist:{MNIST}", "--out", str(out), *extra, *TINY]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    final = metrics["final"]
    assert final["steps"] == 30 and final["parzen_log_likelihood"] == pytest.approx(final["parzen_log_likelihood"])
    losses = {"vae": {"loss", "reconstruction", "kl"}, "gmmn-ae": {"reconstruction", "mmd"}}[model]
    assert losses <= set(metrics["history"][-1])
    assert {"latent.png", "samples.png", "reconstructions.png"} <= set(final["figures"])
    if model == "vae":  # 2-D codes under the mixture: the paper's Fig. 2 panel
        assert "latent_vs_prior.png" in final["figures"]
    else:
        assert json.loads((out / "config.json").read_text())["autoencoder_steps"] == 15
    resumed = tmp_path / f"{model}-resumed"
    args[args.index("--max-steps") + 1] = "40"
    args[args.index("--out") + 1] = str(resumed)
    assert main([*args, "--no-eval", "--resume", str(out / "checkpoint.pt")]) == 0
    assert json.loads((resumed / "metrics.json").read_text())["final"]["steps"] == 40
    if model == "gmmn-ae":  # the checkpoint's split, not half of the longer run
        assert json.loads((resumed / "config.json").read_text())["autoencoder_steps"] == 15


def test_sample_writes_a_plot(tmp_path):
    assert main(["sample", "--prior", "swiss-roll", "--labelled", "-n", "500", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "prior_samples.png").stat().st_size > 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--model", "gan"], "invalid choice: 'gan'"),
        (["train", "--model", "vae", "--prior", "swiss-roll", "--latent-dim", "2"],
         "--model vae needs a prior with a density"),
        (["train", "--model", "gmmn-ae", "--prior", "mixture"], "--prior does not apply"),
        (["train", "--autoencoder-steps", "5"], "autoencoder_steps applies to --model gmmn-ae only"),
        (["train", "--prior", "laplace"], "invalid choice: 'laplace'"),
        (["train", "--batch-size", "0"], "expected a positive integer, got 0"),
        (["train", "--hidden", "10,x"], "expected comma-separated widths"),
        (["train", "--label-conditioned"], "label_conditioned needs a prior with components"),
        (["train", "--data", "/nonexistent/dir", "--max-steps", "1"], "/nonexistent/dir"),
        (["evaluate", "/nonexistent/run"], "config.json not found"),
        # Flags of other variants are refused, not silently ignored.
        (["train", "--model", "clustering", "--encoder", "gaussian"], "encoder applies to --model aae only"),
        (["train", "--clusters", "5"], "clusters applies to --model clustering and dim-reduction only"),
        (["train", "--labels-per-class", "5"], "labels_per_class applies to --model semi-supervised"),
        (["sample", "--latent-dim", "0"], "expected a positive integer, got 0"),
        (["train", "--model", "gmmn-ae", "--data", f"mnist:{MNIST}", "--autoencoder-steps", "20",
          "--max-steps", "20"], "autoencoder_steps 20 leaves no step for the generator in a run of 20"),
        (["sample", "--device", "gpu"], "invalid choice: 'gpu'"),
    ],
)
def test_bad_input_is_named(argv, message, capsys, tmp_path):
    if argv[0] in ("train", "sample"):
        argv = [*argv, "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err + str(exc.value.code)
    assert exc.value.code != 0
    assert message in err


def test_a_run_is_not_overwritten_by_mistake(trained_run, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(trained_run, out)
    before = (out / "checkpoint.pt").read_bytes(), (out / "config.json").read_text()
    args = ["train", "--data", f"mnist:{MNIST}", "--out", str(out), "--no-eval", *TINY]
    args[args.index("--max-steps") + 1] = "3"
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert "already holds a run" in str(exc.value.code) and "--overwrite" in str(exc.value.code)
    assert ((out / "checkpoint.pt").read_bytes(), (out / "config.json").read_text()) == before
    assert main([*args, "--overwrite"]) == 0  # asked for: replaced
    assert json.loads((out / "metrics.json").read_text())["final"]["steps"] == 3


def test_a_failed_resume_leaves_the_run_as_it_was(trained_run, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(trained_run, out)
    config_before = (out / "config.json").read_text()
    checkpoint = str(out / "checkpoint.pt")
    base = ["train", "--data", f"mnist:{MNIST}", "--out", str(out), "--no-eval", *TINY]
    # Another variant's or another width's checkpoint: a clean message, config.json untouched.
    with pytest.raises(SystemExit) as exc:
        main([*base, "--model", "clustering", "--resume", checkpoint])
    assert "but the model is a aae_fast.models.variants.ClusteringAAE" in str(exc.value.code)
    narrower = list(base)
    narrower[narrower.index("--hidden") + 1] = "32,32"
    with pytest.raises(SystemExit) as exc:
        main([*narrower, "--resume", checkpoint])
    assert "does not fit the model (AdversarialAutoencoder)" in str(exc.value.code)
    # Other settings than the checkpoint's: refused, not recorded as if used.
    bigger = list(base)
    bigger[bigger.index("--batch-size") + 1] = "20"
    with pytest.raises(SystemExit) as exc:
        main([*bigger, "--seed", "7", "--resume", checkpoint])
    message = str(exc.value.code)
    assert "--batch-size 20 (the checkpoint has 50)" in message and "--seed 7 (the checkpoint has 0)" in message
    assert (out / "config.json").read_text() == config_before


def test_evaluate_computes_every_metric_of_a_run_trained_without_them(tmp_path, capsys):
    out = tmp_path / "no-eval"
    assert main(["train", "--data", f"mnist:{MNIST}", "--out", str(out), "--no-eval", *TINY]) == 0
    assert "parzen_log_likelihood" not in json.loads((out / "metrics.json").read_text())["final"]
    capsys.readouterr()
    assert main(["evaluate", str(out), "--parzen-samples", "100", "--quiet"]) == 0
    final = json.loads((out / "metrics.json").read_text())["final"]
    assert final["parzen_log_likelihood"] == pytest.approx(final["parzen_log_likelihood"])
    printed = capsys.readouterr().out
    assert "metrics.json" in printed and "checkpoint.pt" not in printed  # evaluate writes no checkpoint


@pytest.mark.parametrize("command", ["train", "evaluate", "sample"])
def test_cuda_without_a_device_is_named(command, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = {"train": ["train", "--out", str(tmp_path / "t")], "evaluate": ["evaluate", str(tmp_path)],
            "sample": ["sample", "--out", str(tmp_path / "s")]}[command]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--device", "cuda"])
    assert f"aae-fast {command}: --device cuda, but no CUDA device is available" in str(exc.value.code)


def test_ctrl_c_says_where_the_run_is_and_how_to_continue(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"

    def interrupted(config, out_dir, **kwargs):
        (out_dir / "checkpoint.pt").parent.mkdir(parents=True)
        (out_dir / "checkpoint.pt").write_bytes(b"saved by the Trainer on Ctrl-C")
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment, "train", interrupted)
    assert main(["train", "--out", str(out), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert f"interrupted; its latest checkpoint is {out / 'checkpoint.pt'}" in err
    assert f"aae-fast train --resume {out / 'checkpoint.pt'}" in err


def test_resume_takes_the_runs_own_flags(trained_run, tmp_path):
    """Only --resume and the new length: the model, data, widths and batch come from the run's
    config.json, and the run continues in the checkpoint's directory."""
    out = tmp_path / "copy"
    shutil.copytree(trained_run, out)
    assert main(["train", "--resume", str(out / "checkpoint.pt"), "--max-steps", "35", "--no-eval",
                 "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["final"]["steps"] == 35
    config = metrics["config"]
    assert config["hidden"] == [64, 64] and config["batch_size"] == 50 and config["data"] == f"mnist:{MNIST}"
    assert config["max_steps"] == 35 and config["epochs"] is None  # the length given replaces both
    # A flag that is written wins over the saved one (and is checked against the checkpoint).
    with pytest.raises(SystemExit, match=r"--batch-size 25 \(the checkpoint has 50\)"):
        main(["train", "--resume", str(out / "checkpoint.pt"), "--batch-size", "25", "--quiet"])
    # The run was continued with --no-eval, saved in its config; --eval undoes it.
    assert json.loads((out / "config.json").read_text())["evaluate"] is False
    assert main(["train", "--resume", str(out / "checkpoint.pt"), "--max-steps", "36", "--eval",
                 "--parzen-samples", "100", "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["evaluate"] is True and "reconstruction_loss" in metrics["final"]


def test_a_failed_start_leaves_an_overwritten_run_as_it_was(trained_run, tmp_path, monkeypatch):
    """--overwrite replaces a run only once the new one starts: settings that fail in the Trainer
    (a batch larger than the data) leave config, checkpoint and metrics of the old run together."""
    out = tmp_path / "copy"
    shutil.copytree(trained_run, out)
    before = {name: (out / name).read_bytes() for name in ("config.json", "checkpoint.pt", "metrics.json")}
    args = ["train", "--data", f"mnist:{MNIST}", "--out", str(out), "--no-eval", "--overwrite", *TINY]
    args[args.index("--batch-size") + 1] = "9000"
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert "make no batch of 9000" in str(exc.value.code)
    assert {name: (out / name).read_bytes() for name in before} == before
    assert main(["evaluate", str(out), "--parzen-samples", "100", "--quiet"]) == 0
    # A run that starts replaces all of them: if it then fails, no checkpoint or metrics of the
    # old run stay behind beside its config.
    args[args.index("--batch-size") + 1] = "50"

    def crash(self, batch):
        raise RuntimeError("crashed in the first step")

    monkeypatch.setattr(Trainer, "_train_step", crash)
    with pytest.raises(RuntimeError, match="crashed in the first step"):
        main(args)
    assert not (out / "checkpoint.pt").exists() and not (out / "metrics.json").exists()
    assert (out / "config.json").read_bytes() != before["config.json"]


def test_semi_supervised_dim_reduction_refuses_other_cluster_counts(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--model", "dim-reduction", "--labels-per-class", "2", "--clusters", "3",
              "--data", f"mnist:{MNIST}", "--out", str(tmp_path / "r"), *TINY])
    assert "one cluster per class of the data (10), got --clusters 3" in str(exc.value.code)
    assert not (tmp_path / "r").exists()


def test_evaluate_names_missing_data_and_takes_its_new_place(trained_run, tmp_path):
    out = tmp_path / "moved"
    shutil.copytree(trained_run, out)
    config = json.loads((out / "config.json").read_text())
    config["data"] = f"mnist:{tmp_path / 'gone'}"
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", str(out), "--quiet"])
    assert str(exc.value.code).startswith("aae-fast evaluate: ") and "gone" in str(exc.value.code)
    assert main(["evaluate", str(out), "--data", f"mnist:{MNIST}", "--parzen-samples", "100", "--quiet"]) == 0
