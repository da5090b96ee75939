"""The Trainer: exact resume, atomic checkpoints, interrupts, history, precision, schedules, errors.

Models are tiny (784-32-32 networks) and data small (1,050 MNIST images: 10 batches of 100 per
epoch), so every test takes seconds."""

from __future__ import annotations

import os
import signal

import pytest
import torch

import aae_fast as af
from aae_fast.data import TensorLoader, labelled_subset
from aae_fast.priors import MixtureOfGaussians
from aae_fast.training import CHECKPOINT_FORMAT, Trainer, load_checkpoint, save_checkpoint

H = (32, 32)


def make(kind: str = "aae", backend: str = "eager", **kw):
    """A small model of the variant ``kind``: the reference (``backend="eager"``) or its fused
    twin (aae_fast.models, ``backend="fused"``)."""
    torch.manual_seed(0)
    kw.setdefault("hidden", H)
    kw.setdefault("optimizer", "adam")
    kw["backend"] = backend
    if kind == "aae":
        return af.AdversarialAutoencoder(**kw)
    if kind == "gaussian":
        return af.AdversarialAutoencoder(encoder="gaussian", **kw)
    if kind == "label-conditioned":
        return af.AdversarialAutoencoder(
            latent_dim=2, prior=MixtureOfGaussians(10), label_conditioned=True, **kw
        )
    if kind == "semi":
        return af.SemiSupervisedAAE(**kw)
    if kind == "dim-reduction":
        return af.DimReductionAAE(**kw)
    if kind == "vae":  # a baseline: one network family, no backend choice
        kw.pop("backend")
        return af.baselines.VAE(**kw)
    raise AssertionError(kind)


def fresh(kind: str = "aae", backend: str = "eager", **kw):
    """A model of the same architecture with different initial weights (resume must overwrite)."""
    model = make(kind, backend, **kw)
    if backend == "fused":  # and a different random stream (the checkpoint must restore it)
        model.manual_seed(99)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    return model


def assert_same_state(a: Trainer, b: Trainer):
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    for name in a.optimizers:
        oa, ob = a.optimizers[name].state_dict()["state"], b.optimizers[name].state_dict()["state"]
        for i in oa:
            for key in oa[i]:
                assert torch.equal(torch.as_tensor(oa[i][key]), torch.as_tensor(ob[i][key])), (
                    name,
                    i,
                    key,
                )
    assert a.global_step == b.global_step and a.epoch == b.epoch
    drop = {"time_s", "samples_per_s"}
    strip = lambda h: [{k: v for k, v in e.items() if k not in drop} for e in h]  # noqa: E731
    assert strip(a.history) == strip(b.history)
    assert torch.equal(torch.get_rng_state(), torch.get_rng_state())


@pytest.mark.parametrize(
    "kind, k",
    [
        ("aae", 13),  # saved mid-epoch (10 batches per epoch)
        ("aae", 10),  # saved exactly at an epoch boundary
        ("gaussian", 7),  # posterior noise from the global RNG
        ("label-conditioned", 12),  # label-picked prior samples
        ("semi", 13),  # plus the labelled loader (5 labelled batches of 20 per pass)
        ("dim-reduction", 9),
    ],
)
@pytest.mark.parametrize("backend", ["eager", "fused"])
def test_resumed_run_continues_identically(tmp_path, small_data, kind, k, backend):
    """Train K + K steps in one go; or K, checkpoint, load into a fresh Trainer and model, K more:
    parameters, optimiser states and history are bitwise equal on CPU."""
    check_resume_equals_straight_run(tmp_path, small_data, kind, k, backend)


def test_resumed_vae_continues_identically(tmp_path, small_data):
    """The VAE baseline's validation step draws posterior noise from the global RNG: the stopped
    run's extra validation (of its partial epoch) must not move the training's stream."""
    check_resume_equals_straight_run(tmp_path, small_data, "vae", 13, "eager")


def check_resume_equals_straight_run(tmp_path, small_data, kind, k, backend):
    train, val = small_data
    extra = {}
    if kind == "semi":
        extra = {"labelled_data": labelled_subset(train, 10, seed=0)[0], "labelled_batch_size": 20}
    straight = Trainer(make(kind, backend), progress=False, **extra)
    straight.fit(train, max_steps=2 * k, val_data=val)

    first = Trainer(make(kind, backend), progress=False, out_dir=tmp_path, **extra)
    first.fit(train, max_steps=k, val_data=val)
    assert (tmp_path / "checkpoint.pt").is_file()
    # Something else uses the global RNG in between: the checkpoint must restore it.
    torch.randn(1000)

    resumed = Trainer.resume(
        tmp_path / "checkpoint.pt", fresh(kind, backend), progress=False, **extra
    )
    assert resumed.global_step == k
    resumed.fit(train, max_steps=2 * k, val_data=val)
    assert_same_state(straight, resumed)


def test_two_fit_calls_equal_one(small_data):
    train, _ = small_data
    one = Trainer(make(), progress=False)
    one.fit(train, max_steps=24)
    two = Trainer(make(), progress=False)
    two.fit(train, max_steps=7)
    two.fit(train, max_steps=24)
    assert_same_state(one, two)


def test_history_records_each_epoch(small_data):
    train, val = small_data
    trainer = Trainer(
        make("semi"),
        progress=False,
        log_every=4,
        labelled_data=labelled_subset(train, 10, seed=0)[0],
    )
    history = trainer.fit(train, epochs=2, val_data=val)
    assert [h["epoch"] for h in history] == [1, 2]
    assert [h["step"] for h in history] == [10, 20]
    for h in history:
        assert h["complete"] is True
        for key in (
            "reconstruction",
            "discriminator",
            "generator",
            "classification",
            "val_reconstruction",
            "val_error",
        ):
            assert isinstance(h[key], float) and h[key] == h[key], key
        assert h["time_s"] > 0 and h["samples_per_s"] > 0
    assert history[1]["reconstruction"] < history[0]["reconstruction"]
    assert [e["step"] for e in trainer.log_history] == [4, 8, 12, 16, 20]
    assert trainer.epoch == 2 and trainer.global_step == 20

    # A max_steps stop mid-epoch leaves an incomplete entry; finishing the epoch replaces it.
    trainer.fit(train, max_steps=25)
    assert [(h["epoch"], h["complete"]) for h in trainer.history] == [
        (1, True),
        (2, True),
        (3, False),
    ]
    trainer.fit(train, epochs=3)
    assert [(h["epoch"], h["step"], h["complete"]) for h in trainer.history][-1] == (3, 30, True)
    assert len(trainer.history) == 3
    # Done already: nothing happens.
    assert trainer.fit(train, epochs=3) == trainer.history and trainer.global_step == 30


def test_schedulers_step_once_per_epoch(small_data):
    train, _ = small_data
    trainer = Trainer(make(lr_milestones=(1, 3)), progress=False)
    lr0 = trainer.optimizers["autoencoder"].param_groups[0]["lr"]
    trainer.fit(train, epochs=1)
    assert trainer.optimizers["autoencoder"].param_groups[0]["lr"] == pytest.approx(lr0 * 0.1)
    trainer.fit(train, epochs=3)
    assert trainer.optimizers["generator"].param_groups[0]["lr"] == pytest.approx(2e-4 * 0.01)


def test_step_returns_float_losses_and_accepts_tuples(small_data):
    train, _ = small_data
    trainer = Trainer(make(), progress=False)
    out = trainer.step((train.images[:50], train.labels[:50]))
    assert set(out) == {"reconstruction", "discriminator", "generator"}
    assert all(isinstance(v, float) for v in out.values())
    assert trainer.global_step == 1
    out = trainer.step({"x": train.images[:50]})
    assert trainer.global_step == 2


def test_evaluate(small_data):
    train, val = small_data
    trainer = Trainer(make("semi"), progress=False, labelled_data=labelled_subset(train, 10)[0])
    metrics = trainer.evaluate(val, batch_size=128)
    assert set(metrics) == {"reconstruction", "error"}
    assert 0.0 <= metrics["error"] <= 1.0 and metrics["reconstruction"] > 0


def test_bf16_autocast_step_runs_on_cpu(small_data):
    train, _ = small_data
    model = make()
    seen = []
    model.encoder[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    trainer = Trainer(model, precision="bf16", progress=False)
    out = trainer.step((train.images[:100], train.labels[:100]))
    assert all(v == v and abs(v) < 1e6 for v in out.values())
    assert torch.bfloat16 in seen  # the linear layers ran under autocast
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32
    history = trainer.fit(train, max_steps=12)
    assert history[-1]["reconstruction"] == history[-1]["reconstruction"]
    # the training losses are reduced in fp32
    losses = model.training_step({"x": train.images[:10]}, trainer.optimizers, amp=trainer._amp)
    assert all(v.dtype == torch.float32 for v in losses.values())


def test_precision_and_argument_errors(small_data):
    train, _ = small_data
    with pytest.raises(
        ValueError,
        match="precision='fp16' needs a CUDA device .*got device 'cpu'; use precision='bf16'",
    ):
        Trainer(make(), precision="fp16")
    with pytest.raises(
        ValueError, match=r"precision must be one of \('fp32', 'bf16', 'fp16'\), got 'fp64'"
    ):
        Trainer(make(), precision="fp64")
    if not torch.cuda.is_available():
        with pytest.raises(
            ValueError, match="device: 'cuda' was requested but CUDA is not available"
        ):
            Trainer(make(), device="cuda")
    with pytest.raises(ValueError, match="device must name a torch device such as 'cpu' or 'cuda', got 'gpu'"):
        Trainer(make(), device="gpu")
    with pytest.raises(TypeError, match="seed must be an int, got str 'a'"):
        Trainer(make(), seed="a")
    with pytest.raises(ValueError, match="checkpoint_every needs out_dir"):
        Trainer(make(), checkpoint_every=10)
    with pytest.raises(TypeError, match="labelled_data must be an aae_fast.data.ArrayDataset"):
        Trainer(make("semi"), labelled_data=train.images)
    with pytest.raises(TypeError, match="model: Linear has no configure_optimizers"):
        Trainer(torch.nn.Linear(2, 2))
    trainer = Trainer(make(), progress=False)
    with pytest.raises(ValueError, match="fit needs epochs or max_steps"):
        trainer.fit(train)
    with pytest.raises(ValueError, match="max_steps must be a non-negative int"):
        trainer.fit(train, max_steps=-1)
    with pytest.raises(ValueError, match="make no batch of 100 with drop_last=True"):
        trainer.fit(train.subset(torch.arange(50)), epochs=1)
    with pytest.raises(ValueError, match="needs labels"):  # the model's own check surfaces
        Trainer(make("semi"), progress=False).fit(train.images, max_steps=1)


def test_a_ready_loader_and_raw_tensors_are_accepted(small_data):
    train, _ = small_data
    trainer = Trainer(make(), progress=False)
    trainer.fit(TensorLoader(train, 50, seed=3, drop_last=True), epochs=1)
    assert trainer.global_step == 21
    trainer = Trainer(make(), progress=False, batch_size=64, drop_last=False)
    trainer.fit(train.images, epochs=1)
    assert trainer.global_step == 17  # ceil(1050 / 64)


def test_progress_bar(small_data, capsys):
    train, _ = small_data
    Trainer(make(), progress=True, log_every=2).fit(train, max_steps=5)
    assert "train" in capsys.readouterr().err


# -- checkpoints ------------------------------------------------------------------------------


def test_checkpoint_contents(tmp_path, small_data):
    train, _ = small_data
    trainer = Trainer(
        make("semi"),
        progress=False,
        out_dir=tmp_path,
        checkpoint_every=4,
        labelled_data=labelled_subset(train, 10)[0],
    )
    trainer.fit(train, max_steps=6)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["format"] == CHECKPOINT_FORMAT and state["version"] == 1
    assert state["model_class"] == "aae_fast.reference.semi_supervised.SemiSupervisedAAE"
    assert state["model_config"]["variant"] == "semi-supervised"
    assert set(state["optimizers"]) == {"autoencoder", "discriminator", "generator", "classifier"}
    assert set(state["schedulers"]) == set(state["optimizers"])
    assert state["trainer"]["global_step"] == 6 and state["trainer"]["batch_in_epoch"] == 6
    assert state["rng"]["torch"].dtype == torch.uint8
    assert state["rng"]["loader"] is not None and state["rng"]["labelled_loader"] is not None
    # weights_only loading: plain data only
    torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.pt"]  # no temporary files left
    # The mode open() gives (mkstemp's 0600 would hide it from a group sharing the run).
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "checkpoint.pt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_checkpoint_every_writes_periodically(tmp_path, small_data):
    train, _ = small_data
    steps_saved = []
    trainer = Trainer(make(), progress=False, out_dir=tmp_path, checkpoint_every=3)
    original = trainer.save_checkpoint

    def spy(path=None):
        steps_saved.append(trainer.global_step)
        return original(path)

    trainer.save_checkpoint = spy
    trainer.fit(train, max_steps=10)
    assert steps_saved == [3, 6, 9, 10]  # every 3 steps, then the end of fit


def test_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, small_data, monkeypatch):
    train, _ = small_data
    trainer = Trainer(make(), progress=False, out_dir=tmp_path)
    trainer.fit(train, max_steps=3)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    trainer.fit(train, max_steps=5)

    def broken_save(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        trainer.save_checkpoint()
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.pt"]
    after_failure = load_checkpoint(tmp_path / "checkpoint.pt")
    assert after_failure["trainer"]["global_step"] == 5  # the last good save, readable
    assert before != (tmp_path / "checkpoint.pt").read_bytes()


def test_load_errors(tmp_path, small_data):
    train, _ = small_data
    with pytest.raises(FileNotFoundError, match="checkpoint: no file at"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"hello": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="is not an aae_fast checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="is not a readable aae_fast checkpoint"):
        load_checkpoint(tmp_path / "garbage.pt")
    state = Trainer(make(), progress=False).state_dict()
    state["version"] = 99
    save_checkpoint(state, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="has version 99"):
        load_checkpoint(tmp_path / "future.pt")
    trainer = Trainer(make(), progress=False, out_dir=tmp_path)
    trainer.fit(train, max_steps=2)
    with pytest.raises(
        ValueError,
        match="holds a aae_fast.reference.aae.AdversarialAutoencoder, but the model is a "
        "aae_fast.reference.semi_supervised.SemiSupervisedAAE",
    ):
        Trainer.resume(tmp_path / "checkpoint.pt", make("semi"), progress=False)
    with pytest.raises(ValueError, match=r"(?s)does not fit the model \(AdversarialAutoencoder\).*size mismatch"):
        Trainer.resume(tmp_path / "checkpoint.pt", make(hidden=(8, 8)), progress=False)


def test_resume_takes_settings_from_the_checkpoint(tmp_path, small_data):
    train, _ = small_data
    Trainer(make(), progress=False, out_dir=tmp_path, seed=7, batch_size=50).fit(train, max_steps=3)
    resumed = Trainer.resume(tmp_path / "checkpoint.pt", make(), progress=False)
    assert (resumed.seed, resumed.batch_size, resumed.precision) == (7, 50, "fp32")


# -- interrupts -------------------------------------------------------------------------------


def interrupting(model, at_step: int, how: str):
    """Make ``model.training_step`` deliver Ctrl-C during step ``at_step`` (1-based)."""
    original = model.training_step
    calls = {"n": 0}

    def step(*a, **k):
        calls["n"] += 1
        if calls["n"] == at_step:
            if how == "signal":
                os.kill(os.getpid(), signal.SIGINT)  # like Ctrl-C in a terminal
            else:
                raise KeyboardInterrupt
        return original(*a, **k)

    model.training_step = step
    return model


@pytest.fixture
def python_sigint_handler():
    """Python's own SIGINT handler during the test, whatever the process inherited (a run under
    nohup or in a background job starts with SIGINT ignored), restored afterwards."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_finishes_the_step_saves_and_reraises(tmp_path, small_data, python_sigint_handler):
    train, _ = small_data
    model = interrupting(make(), at_step=5, how="signal")
    trainer = Trainer(model, progress=False, out_dir=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(train, max_steps=20)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["trainer"]["global_step"] == 5  # the interrupted step completed

    straight = Trainer(make(), progress=False)
    straight.fit(train, max_steps=20)
    resumed = Trainer.resume(tmp_path / "checkpoint.pt", fresh(), progress=False)
    resumed.fit(train, max_steps=20)
    assert_same_state(straight, resumed)


def test_an_interrupt_inside_a_step_keeps_the_last_good_checkpoint(tmp_path, small_data):
    """A KeyboardInterrupt that did not wait for the step's end (a second Ctrl-C, or one raised by
    the model) may land after some of the step's phases have updated the weights: a checkpoint of
    that state would not continue the run. The last checkpoint written stays, and resumes exactly."""
    train, _ = small_data
    model = make()
    trainer = Trainer(model, progress=False, out_dir=tmp_path, checkpoint_every=5)
    # The discriminator's update of step 7 raises, after the reconstruction phase's update.
    step = trainer.optimizers["discriminator"].step
    calls = {"n": 0}

    def interrupted_step(*a, **k):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return step(*a, **k)

    trainer.optimizers["discriminator"].step = interrupted_step
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(train, max_steps=20)
    assert trainer.global_step == 6
    assert load_checkpoint(tmp_path / "checkpoint.pt")["trainer"]["global_step"] == 5
    straight = Trainer(make(), progress=False)
    straight.fit(train, max_steps=20)
    resumed = Trainer.resume(tmp_path / "checkpoint.pt", fresh(), progress=False)
    resumed.fit(train, max_steps=20)
    assert_same_state(straight, resumed)
    # With no checkpoint yet, none is written; without out_dir the interrupt still propagates.
    (tmp_path / "checkpoint.pt").unlink()
    trainer = Trainer(interrupting(make(), at_step=4, how="raise"), progress=False, out_dir=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(train, max_steps=20)
    assert not (tmp_path / "checkpoint.pt").exists()
    trainer = Trainer(interrupting(make(), at_step=2, how="signal"), progress=False)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(train, max_steps=20)
    assert trainer.global_step == 2


def test_an_epoch_whose_validation_raised_is_ended_by_the_next_fit(small_data):
    """Validation runs at the end of an epoch, after its last step: if it raises (bad val_data, a
    bug in validation_step), nothing of the epoch's end is recorded, and a later fit with good
    val_data records it and trains on, as an uninterrupted run does (it used to spin forever)."""
    train, val = small_data
    model = make()
    validation_step = model.validation_step

    def failing(batch):
        raise RuntimeError("bad validation data")

    model.validation_step = failing
    trainer = Trainer(model, progress=False)
    with pytest.raises(RuntimeError, match="bad validation data"):
        trainer.fit(train, epochs=2, val_data=val)
    assert (trainer.global_step, trainer.epoch, trainer.history) == (10, 0, [])
    model.validation_step = validation_step
    trainer.fit(train, epochs=2, val_data=val)
    straight = Trainer(make(), progress=False)
    straight.fit(train, epochs=2, val_data=val)
    assert_same_state(straight, trainer)


def test_resuming_inside_an_epoch_needs_the_same_data(tmp_path, small_data):
    train, _ = small_data
    Trainer(make(), progress=False, out_dir=tmp_path).fit(train, max_steps=7)
    fewer = (train.tensors[0][:700], train.tensors[1][:700])
    resumed = Trainer.resume(tmp_path / "checkpoint.pt", fresh(), progress=False)
    with pytest.raises(ValueError, match=r"train_data: 700 rows, but this run is inside epoch 1 "
                                         r"of 1050 rows \(after its batch 7\)"):
        resumed.fit(fewer, epochs=2)
    # Between epochs other data is the user's choice.
    Trainer(make(), progress=False, out_dir=tmp_path).fit(train, max_steps=10)
    resumed = Trainer.resume(tmp_path / "checkpoint.pt", fresh(), progress=False)
    resumed.fit(fewer, epochs=2)
    assert resumed.global_step == 17


def test_log_history_keeps_the_last_partial_interval_and_resumes_it(tmp_path, small_data):
    train, _ = small_data
    straight = Trainer(make(), progress=False, log_every=4)
    straight.fit(train, max_steps=14)
    # The steps after the last multiple of log_every are logged too, as an incomplete interval.
    assert [(e["step"], e["epoch"], e["complete"]) for e in straight.log_history] == [
        (4, 1, True), (8, 1, True), (12, 2, True), (14, 2, False)]
    # A checkpoint inside an interval resumes it: the entries equal an uninterrupted run's.
    first = Trainer(make(), progress=False, log_every=4, out_dir=tmp_path)
    first.fit(train, max_steps=6)
    assert first.log_history[-1]["step"] == 6 and first.log_history[-1]["complete"] is False
    resumed = Trainer.resume(tmp_path / "checkpoint.pt", fresh(), progress=False, log_every=4)
    resumed.fit(train, max_steps=14)
    assert resumed.log_history == straight.log_history
    # An epoch ending the fit: its last step belongs to that epoch.
    ends = Trainer(make(), progress=False, log_every=4)
    ends.fit(train, epochs=1)
    assert [(e["step"], e["epoch"]) for e in ends.log_history][-1] == (10, 1)


def test_a_diverged_loss_warns_once(small_data):
    train, _ = small_data
    model = make()
    step = model.training_step

    def nan_step(*a, **k):
        return {k: v * float("nan") for k, v in step(*a, **k).items()}

    model.training_step = nan_step
    trainer = Trainer(model, progress=False, log_every=2)
    with pytest.warns(RuntimeWarning, match="non-finite loss by step 2: reconstruction") as record:
        trainer.fit(train, max_steps=6)
    assert len([w for w in record if "non-finite" in str(w.message)]) == 1


def test_resuming_a_labelled_run_needs_its_labelled_data(tmp_path, small_data):
    train, _ = small_data
    labelled = labelled_subset(train, 10, seed=0)[0]
    Trainer(make("semi"), progress=False, out_dir=tmp_path, labelled_data=labelled,
            labelled_batch_size=20).fit(train, max_steps=3)
    with pytest.raises(ValueError, match="comes from a run with labelled_data .* pass labelled_data again"):
        Trainer.resume(tmp_path / "checkpoint.pt", fresh("semi"), progress=False)


def test_labelled_batch_size_is_checked_by_its_own_name(small_data):
    train, _ = small_data
    labelled = labelled_subset(train, 10, seed=0)[0]
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match=f"labelled_batch_size must be a positive int, got {bad}"):
            Trainer(make("semi"), labelled_data=labelled, labelled_batch_size=bad)


def test_evaluate_weighs_the_error_by_its_labelled_rows():
    """The classification error is a ratio over the labelled rows: its mean over batches must not
    depend on the batch size (it was weighted by all rows)."""
    model = af.SemiSupervisedAAE(input_dim=12, latent_dim=3, num_classes=4, hidden=(16, 16))
    x = torch.rand(8, 12, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([-1, -1, -1, -1, -1, -1, 0, 1])
    trainer = Trainer(model, progress=False)
    whole = trainer.evaluate((x, y))
    for batch_size in (1, 2, 3):
        parts = trainer.evaluate((x, y), batch_size=batch_size)
        assert parts["error"] == pytest.approx(whole["error"]), batch_size
        assert parts["reconstruction"] == pytest.approx(whole["reconstruction"], rel=1e-6)
    unlabelled = trainer.evaluate((x, torch.full((8,), -1)))
    assert "error" not in unlabelled  # no labelled row: no error, rather than a made-up 0


@pytest.mark.parametrize("saved, resumed", [("fused", "eager"), ("eager", "fused")])
def test_a_checkpoint_resumes_the_other_backend(tmp_path, saved, resumed):
    """A fused model and its eager twin share their state_dict keys: a Trainer checkpoint of one
    continues in the other."""
    x = torch.rand(64, 12, generator=torch.Generator().manual_seed(0))
    trainer = Trainer(af.AdversarialAutoencoder(12, 3, (16, 16), backend=saved), batch_size=8,
                      out_dir=tmp_path, progress=False)
    trainer.fit(x, max_steps=3)
    other = Trainer.resume(tmp_path / "checkpoint.pt",
                           af.AdversarialAutoencoder(12, 3, (16, 16), backend=resumed), progress=False)
    assert other.global_step == 3
    for a, b in zip(trainer.model.state_dict().values(), other.model.state_dict().values()):
        assert torch.equal(a, b)
    other.fit(x, max_steps=5)
    assert other.global_step == 5
    with pytest.raises(ValueError, match="holds a .*AdversarialAutoencoder, but the model is a "
                                         ".*SemiSupervisedAAE"):
        Trainer.resume(tmp_path / "checkpoint.pt", af.SemiSupervisedAAE(12, 3, hidden=(16, 16),
                       backend=resumed), progress=False)


def test_data_of_other_types_is_named_before_any_training(small_data):
    """A torch DataLoader (DESIGN's `fit(train_loader, ...)` invites one) or a nested list used to
    fail deep inside the loader with "'list' object has no attribute 'to'"."""
    from torch.utils.data import DataLoader, TensorDataset

    train, _ = small_data
    trainer = Trainer(make(), progress=False)
    loader = DataLoader(TensorDataset(train.tensors[0]), batch_size=100)
    with pytest.raises(TypeError, match=r"train_data must be an ArrayDataset, a tensor or a tuple "
                                        r"of tensors .* got a DataLoader; .*\.tensors"):
        trainer.fit(loader, epochs=1)
    with pytest.raises(TypeError, match="train_data .* got a list of list"):
        trainer.fit([[0.0] * 784] * 200, epochs=1)
    with pytest.raises(TypeError, match="val_data .* got a str"):
        trainer.fit(train, epochs=1, val_data="val.npz")
    assert trainer.global_step == 0
    with pytest.raises(TypeError, match="data .* got a DataLoader"):
        trainer.evaluate(loader)
