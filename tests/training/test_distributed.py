"""Data-parallel training on torch.distributed: 2 gloo processes on CPU, spawned by the tests.

Two jobs of two processes each (spawned, 1 thread per process, every wait bounded):

- job "crash": the eager model trains 3 steps and checkpoints; the fused model trains with a
  checkpoint every 3 steps and rank 1 raises at step 5: the job must stop, with that error, well
  within the timeout (rank 0 is then blocked in the gradient all-reduce of step 5).
- job "train", for both backends: an uninterrupted 6-step run (parameters identical on both ranks;
  the ranks' prior samples differ); a run resumed from the crashed job's step-3 checkpoint in fresh
  processes (bit-identical to the uninterrupted one: parameters, per-step losses, random states);
  a run with a prior injected from a step-seeded generator, each rank taking its rows of the global
  draw, compared in this process with a one-process run on the global batch (fp32 tolerance: the
  rank streams are rank-offset Philox / torch streams, so without the injection the two runs'
  prior samples differ); a semi-supervised model (four phases, labelled mini-batches) stays
  identical on both ranks.

Plus a ``torchrun`` run of ``aae-fast train`` and in-process checks (loader sharding, rank seeds,
a one-process group, argument errors).
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from aae_fast import models
from aae_fast import reference as ref
from aae_fast.data import ArrayDataset, TensorLoader
from aae_fast.training import Trainer, load_checkpoint, rank_seed

WORLD = 2
B = 8  # rows per rank and step
STEPS = 6
ROWS = 64  # 4 global batches of 16 per epoch: the runs cross an epoch boundary
JOB_TIMEOUT = 120.0  # seconds; a job normally takes 5-20 s on a loaded 2-core machine

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="needs torch.distributed with gloo",
)


# -- shared by the workers and this process ---------------------------------------------------
def _data() -> torch.Tensor:
    return torch.rand(ROWS, 12, generator=torch.Generator().manual_seed(5))


def _model(backend: str, init_seed: int = 0, optimizer: str = "adam"):
    torch.manual_seed(init_seed)
    return models.AdversarialAutoencoder(
        input_dim=12, latent_dim=2, hidden=(16,), optimizer=optimizer, backend=backend
    )


def _trainer(model, **kwargs) -> Trainer:
    kwargs.setdefault("batch_size", B)
    return Trainer(model, seed=3, log_every=1, progress=False, **kwargs)


def _inject_prior(model, rank: int, world: int) -> None:
    """Replace the model's prior draws by rows of a global draw seeded by the call count: rank r
    gets rows [r n, (r + 1) n) of ``n * world`` rows, as its data rows are of the global batch."""
    calls = [0]

    def sample(prior, n, labels=None, generator=None):
        g = torch.Generator().manual_seed(1000 + calls[0])
        calls[0] += 1
        z = prior.sample(n * world, generator=g, backend="eager", dtype=torch.float32)
        return z[rank * n : (rank + 1) * n].to(model.device)

    model._sample = sample


def _params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _losses(trainer) -> list[dict]:
    return [dict(h) for h in trainer.log_history]


# -- the workers --------------------------------------------------------------------------------
def _worker(rank: int, job: str, port: int, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group(
        "gloo", rank=rank, world_size=WORLD, timeout=datetime.timedelta(seconds=60)
    )
    try:
        {"crash": _crash_job, "train": _train_job}[job](rank, Path(out))
    finally:
        dist.destroy_process_group()


def _crash_job(rank: int, out: Path) -> None:
    x = _data()
    trainer = _trainer(_model("eager"), out_dir=out / "eager")
    trainer.fit(x, max_steps=3)  # checkpoints at its end

    model = _model("fused")
    step = model.training_step
    calls = [0]

    def failing_step(batch, optimizers, amp=None):
        calls[0] += 1
        if rank == 1 and calls[0] == 5:
            raise RuntimeError("injected failure on rank 1 at step 5")
        return step(batch, optimizers, amp=amp)

    model.training_step = failing_step
    trainer = _trainer(model, out_dir=out / "fused", checkpoint_every=3)
    trainer.fit(x, max_steps=STEPS)
    raise AssertionError("unreachable: rank 1 fails at step 5")


def _train_job(rank: int, out: Path) -> None:
    x = _data()
    result = {}
    for backend in ("eager", "fused"):
        # Uninterrupted, recording the first prior draw of each rank.
        model = _model(backend)
        draws = []
        sample = model._sample

        def recording(*args, _sample=sample, _draws=draws, **kwargs):
            z = _sample(*args, **kwargs)
            _draws.append(z.detach().clone())
            return z

        model._sample = recording
        trainer = _trainer(model, out_dir=out / f"straight-{backend}", checkpoint_every=3)
        trainer.fit(x, max_steps=STEPS)
        straight = {
            "params": _params(model),
            "losses": _losses(trainer),
            "first_prior_draw": draws[0],
            "rng": trainer._rank_state(),
        }

        # Resumed in this fresh process from the crashed job's checkpoint (step 3), into a model
        # initialised differently.
        fresh = _model(backend, init_seed=99)
        torch.manual_seed(12345)  # the checkpoint must restore every random state
        resumed = Trainer.resume(
            out / "crash" / backend / "checkpoint.pt", fresh, log_every=1, progress=False
        )
        start = resumed.global_step
        resumed.fit(x, max_steps=STEPS)
        resumed_result = {
            "start": start,
            "params": _params(fresh),
            "losses": _losses(resumed),
            "rng": resumed._rank_state(),
        }

        # A prior drawn from a step-seeded global draw, for the comparison with one process.
        result[backend] = {"straight": straight, "resumed": resumed_result}
        for optimizer in ("sgd", "adam"):
            model = _model(backend, optimizer=optimizer)
            _inject_prior(model, rank, WORLD)
            trainer = _trainer(model)
            trainer.fit(x, max_steps=4)
            result[backend][optimizer] = {"params": _params(model), "losses": _losses(trainer)}

    # The semi-supervised model: four phases, the classifier's on labelled mini-batches.
    torch.manual_seed(0)
    model = ref.SemiSupervisedAAE(
        input_dim=12, num_classes=3, latent_dim=2, hidden=(16,), optimizer="adam"
    )
    labels = torch.arange(ROWS) % 3
    labelled = ArrayDataset(x[:24], labels[:24], 3, image_shape=(3, 4))
    trainer = _trainer(model, labelled_data=labelled, labelled_batch_size=4)
    trainer.fit((x, labels), max_steps=3)
    result["semi"] = {"params": _params(model), "losses": _losses(trainer)}
    torch.save(result, out / f"rank{rank}.pt")


# -- running a job ------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(job: str, out: Path) -> float:
    """Run ``job`` on WORLD spawned processes; returns its wall time. Raises the first failing
    process's error (mp.ProcessRaisedException), after the others were stopped."""
    start = time.monotonic()
    context = mp.start_processes(
        _worker,
        args=(job, _free_port(), str(out)),
        nprocs=WORLD,
        join=False,
        start_method="spawn",
    )
    try:
        while not context.join(timeout=1.0, grace_period=2.0):
            if time.monotonic() - start > JOB_TIMEOUT:
                pytest.fail(f"job {job!r} did not finish within {JOB_TIMEOUT} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
                process.join()
    return time.monotonic() - start


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    """Runs the crash job, then the train job (which resumes the crash job's checkpoints)."""
    out = tmp_path_factory.mktemp("ddp")
    crash_dir = out / "crash"
    crash_dir.mkdir()
    error = None
    try:
        crash_time = _run("crash", crash_dir)
    except Exception as exc:  # expected: the job fails
        crash_time, error = None, exc
    _run("train", out)
    results = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    return {"out": out, "crash_error": error, "crash_time": crash_time, "results": results}


# -- the tests on the jobs --------------------------------------------------------------------
def _assert_equal_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("backend", ["eager", "fused"])
def test_ranks_have_identical_parameters(jobs, backend):
    r0, r1 = (r[backend]["straight"] for r in jobs["results"])
    _assert_equal_state(r0["params"], r1["params"])
    # The logged losses are means over the ranks: the same on both.
    assert r0["losses"] == r1["losses"] and len(r0["losses"]) == STEPS
    # ... while each rank drew its own prior samples from its own stream.
    assert not torch.equal(r0["first_prior_draw"], r1["first_prior_draw"])
    if backend == "fused":
        assert not torch.equal(r0["rng"]["model"], r1["rng"]["model"])
    assert not torch.equal(r0["rng"]["torch"], r1["rng"]["torch"])


def test_semi_supervised_ranks_stay_identical(jobs):
    r0, r1 = (r["semi"] for r in jobs["results"])
    _assert_equal_state(r0["params"], r1["params"])
    assert "classification" in r0["losses"][-1]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("backend", ["eager", "fused"])
def test_equals_one_process_on_the_global_batch(jobs, backend, optimizer):
    model = _model(backend, optimizer=optimizer)
    _inject_prior(model, rank=0, world=1)
    trainer = _trainer(model, batch_size=B * WORLD, distributed=False)
    trainer.fit(_data(), max_steps=4)
    single = _params(model)
    for result in jobs["results"]:
        ddp = result[backend][optimizer]
        for k, v in single.items():
            torch.testing.assert_close(ddp["params"][k], v, rtol=1e-5, atol=1e-6, msg=k)
        for mine, theirs in zip(ddp["losses"], _losses(trainer), strict=True):
            for k in ("reconstruction", "discriminator", "generator"):
                assert mine[k] == pytest.approx(theirs[k], rel=1e-5), k


def test_a_failing_rank_stops_the_job_with_its_error(jobs):
    error = jobs["crash_error"]
    assert error is not None, "the job with a failing rank finished"
    message = str(error)
    # The first process to exit is reported: rank 1 with its error, or rank 0, whose all-reduce
    # failed when rank 1 died, naming the likely cause.
    assert (
        "injected failure on rank 1 at step 5" in message
        or "Another rank has most likely failed" in message
    ), message
    # The step-3 checkpoint of the failed run is complete.
    state = load_checkpoint(jobs["out"] / "crash" / "fused" / "checkpoint.pt")
    assert state["trainer"]["global_step"] == 3 and state["trainer"]["world_size"] == WORLD
    assert len(state["rng"]["ranks"]) == WORLD


@pytest.mark.parametrize("backend", ["eager", "fused"])
def test_resume_after_a_crash_equals_no_interruption(jobs, backend):
    for result in jobs["results"]:
        straight, resumed = result[backend]["straight"], result[backend]["resumed"]
        assert resumed["start"] == 3
        _assert_equal_state(straight["params"], resumed["params"])
        assert resumed["losses"] == straight["losses"]
        assert torch.equal(resumed["rng"]["torch"], straight["rng"]["torch"])
        if backend == "fused":
            assert torch.equal(resumed["rng"]["model"], straight["rng"]["model"])


def test_a_checkpoint_resumes_only_with_its_world_size(jobs):
    path = jobs["out"] / "straight-fused" / "checkpoint.pt"
    with pytest.raises(ValueError, match="run of 2 process"):
        Trainer.resume(path, _model("fused"), progress=False)
    # ... but its weights load anywhere.
    _model("fused").load_state_dict(load_checkpoint(path)["model"])


# -- torchrun -----------------------------------------------------------------------------------
MNIST = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"


@pytest.mark.skipif(not MNIST.is_dir(), reason=f"needs the MNIST test set at {MNIST}")
def test_aae_fast_train_under_torchrun(tmp_path):
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "aae_fast.cli", "train", "--data", f"mnist:{MNIST}", "--hidden", "32",
        "--max-steps", "4", "--batch-size", "25", "--no-eval", "--quiet", "--out", str(out),
        "--dist-timeout", "30",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=150, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("wrote ") == 1  # rank 0 reports
    final = json.loads((out / "metrics.json").read_text())["final"]
    assert (final["steps"], final["world_size"], final["global_batch_size"]) == (4, 2, 50)
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["trainer"]["world_size"] == 2 and len(state["rng"]["ranks"]) == 2


@pytest.mark.skipif(not MNIST.is_dir(), reason=f"needs the MNIST test set at {MNIST}")
def test_a_loss_that_is_not_a_row_mean_is_refused_under_torchrun(tmp_path):
    """GMMN+AE's generator minimises MMD over pairs of rows: averaging the ranks' gradients would
    train another objective than one process on the global batch, so the run is refused."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "aae_fast.cli", "train", "--model", "gmmn-ae", "--data", f"mnist:{MNIST}",
        "--hidden", "16", "--max-steps", "2", "--batch-size", "10", "--no-eval", "--quiet",
        "--out", str(tmp_path / "run"), "--dist-timeout", "30",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=150, env=env)
    assert proc.returncode != 0
    assert "GMMNAutoencoder cannot train data-parallel" in proc.stdout + proc.stderr


# -- in-process checks --------------------------------------------------------------------------
@pytest.mark.parametrize("drop_last", [True, False])
def test_sharded_loader_unions_to_the_global_batches(drop_last):
    x = torch.arange(23)
    single = TensorLoader(x, 6, seed=4, drop_last=drop_last)
    shards = [
        TensorLoader(x, 3, seed=4, drop_last=drop_last, num_replicas=2, rank=r) for r in range(2)
    ]
    assert len(shards[0]) == len(shards[1]) == len(single)
    for (whole,), (a,), (b,) in zip(single, *shards, strict=True):
        assert a.shape == b.shape
        if whole.shape[0] == 6:
            assert torch.equal(torch.cat((a, b)), whole)
        else:  # the last 5 rows: 3 each, padded from the epoch's start
            assert a.shape[0] == 3 and set(whole.tolist()) <= set(torch.cat((a, b)).tolist())


def test_sharded_infinite_and_ordered_loaders():
    x = torch.arange(10)
    single = iter(TensorLoader(x, 8, seed=1, infinite=True))
    shards = [
        iter(TensorLoader(x, 4, seed=1, infinite=True, num_replicas=2, rank=r)) for r in (0, 1)
    ]
    for _ in range(5):
        assert torch.equal(torch.cat([next(s)[0] for s in shards]), next(single)[0])
    ordered = [
        list(TensorLoader(torch.arange(11), 2, shuffle=False, num_replicas=2, rank=r))
        for r in (0, 1)
    ]
    assert [b[0].tolist() for b in ordered[0]] == [[0, 1], [4, 5], [8, 9]]
    assert [b[0].tolist() for b in ordered[1]] == [[2, 3], [6, 7], [10, 0]]  # padded from the start
    with pytest.raises(ValueError, match="needs a seed"):
        TensorLoader(x, 2, num_replicas=2, rank=0)
    with pytest.raises(ValueError, match="rank must lie"):
        TensorLoader(x, 2, seed=0, num_replicas=2, rank=2)


def test_rank_seeds():
    assert rank_seed(7, 0) == 7
    seeds = {rank_seed(s, r) for s in range(4) for r in range(8)}
    assert len(seeds) == 32 and all(0 <= s < 2**62 for s in seeds)
    assert rank_seed(0, 1) != rank_seed(1, 0)


def test_a_one_process_group_is_the_plain_run():
    import torch.distributed as dist

    def run(distributed):
        model = _model("fused")
        trainer = _trainer(model, distributed=distributed)
        trainer.fit(_data(), max_steps=3)
        return trainer, _params(model)

    plain_trainer, plain = run(False)
    with pytest.raises(ValueError, match="initialised torch.distributed process group"):
        _trainer(_model("fused"), distributed=True)
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        trainer, params = run(None)
        assert (trainer.rank, trainer.world_size) == (0, 1)
        _assert_equal_state(plain, params)
        with pytest.raises(ValueError, match="sharded over 2 replica"):
            trainer.fit(TensorLoader(_data(), B, seed=0, num_replicas=2, rank=0), max_steps=4)
    finally:
        dist.destroy_process_group()
