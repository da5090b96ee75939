"""One training run end to end, as `aae-fast train` and `aae-fast evaluate` perform it: data, model,
Trainer, evaluation (the paper's metrics) and figures, all recorded in an output directory.

    out/config.json      the RunConfig (what `evaluate` rebuilds the model from)
    out/metrics.json     {"config": {...}, "history": [...], "final": {...}}
    out/checkpoint.pt    the Trainer's checkpoint (model, optimisers, RNG states, position)
    out/*.png            latent codes, prior samples decoded, reconstructions, style grid

Kept apart from the CLI so that scripts and experiments drive the same code.

Under ``torchrun --nproc-per-node N`` (``WORLD_SIZE > 1``) `train` initialises the process group
itself (gloo on CPU, NCCL on CUDA with one GPU per process): every rank loads the data and trains
on its shard (``batch_size`` rows per rank, a global batch of ``batch_size * N``), and rank 0
alone writes out/ (config, checkpoints, metrics, figures) and evaluates, after training.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ._checks import positive_int

MODELS = ("aae", "supervised", "semi-supervised", "clustering", "dim-reduction", "vae", "gmmn-ae")
#: The models whose generated samples the Parzen estimate scores (the paper's Table 1).
GENERATIVE = ("aae", "vae", "gmmn-ae")
PRIORS = ("gaussian", "mixture", "swiss-roll")
ENCODERS = ("deterministic", "gaussian", "universal")
BACKENDS = ("fused", "eager")  # aae_fast.models (default) or aae_fast.reference
PRECISIONS = ("fp32", "bf16", "fp16")

#: Each variant's latent size when --latent-dim is not given (the paper's choices, see the models).
DEFAULT_LATENT = {"aae": 8, "supervised": 15, "semi-supervised": 10, "clustering": 10, "dim-reduction": 2,
                  "vae": 8, "gmmn-ae": 8}


@dataclass
class RunConfig:
    """Everything that defines a run; every field is a `aae-fast train` flag."""

    model: str = "aae"
    prior: str = "gaussian"
    encoder: str = "deterministic"
    label_conditioned: bool = False
    data: str = "fashion-mnist"
    labels_per_class: int | None = None
    clusters: int | None = None
    latent_dim: int | None = None
    hidden: list[int] = field(default_factory=lambda: [1000, 1000])
    batch_size: int = 100
    epochs: int | None = None
    max_steps: int | None = None
    optimizer: str = "adam"
    backend: str = "fused"
    device: str = "cpu"
    precision: str = "fp32"
    seed: int = 0
    validation_size: int = 1000
    parzen_samples: int = 10_000
    evaluate: bool = True
    #: gmmn-ae: steps of its first stage (the autoencoder) before the generator's; None: half the run.
    autoencoder_steps: int | None = None

    def __post_init__(self) -> None:
        checks = (
            ("model", self.model, MODELS),
            ("prior", self.prior, PRIORS),
            ("encoder", self.encoder, ENCODERS),
            ("backend", self.backend, BACKENDS),
            ("precision", self.precision, PRECISIONS),
            ("optimizer", self.optimizer, ("sgd", "adam")),
        )
        for name, value, allowed in checks:
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        for name in ("labels_per_class", "clusters", "latent_dim", "epochs", "max_steps", "autoencoder_steps",
                     "batch_size", "parzen_samples"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, positive_int(value, name))
        self.hidden = [positive_int(width, f"hidden[{i}]") for i, width in enumerate(self.hidden)]
        if self.epochs is None and self.max_steps is None:
            self.epochs = 1
        if self.label_conditioned and self.model != "aae":
            raise ValueError("label_conditioned applies to --model aae only")
        if self.autoencoder_steps is not None and self.model != "gmmn-ae":
            raise ValueError("autoencoder_steps applies to --model gmmn-ae only")
        if self.encoder != "deterministic" and self.model != "aae":
            raise ValueError(f"encoder applies to --model aae only, got --encoder {self.encoder} "
                             f"with --model {self.model}")
        if self.clusters is not None and self.model not in ("clustering", "dim-reduction"):
            raise ValueError(f"clusters applies to --model clustering and dim-reduction only, got "
                             f"--model {self.model}")
        if self.labels_per_class is not None and not (
            self.model in ("semi-supervised", "dim-reduction") or self.label_conditioned
        ):
            raise ValueError("labels_per_class applies to --model semi-supervised, dim-reduction and "
                             f"aae --label-conditioned only, got --model {self.model}")
        if self.model == "vae" and self.prior == "swiss-roll":
            raise ValueError("--model vae needs a prior with a density (gaussian or mixture): its KL "
                             "term cannot use the swiss roll, which can only be sampled")
        if self.model == "gmmn-ae" and self.prior != "gaussian":
            raise ValueError("--model gmmn-ae learns its own code distribution; --prior does not apply")
        if self.label_conditioned and self.prior == "gaussian":
            raise ValueError("label_conditioned needs a prior with components: --prior mixture or swiss-roll")
        if self.model == "semi-supervised" and self.labels_per_class is None:
            self.labels_per_class = 100  # the paper's 100-label setting (1000 labels on MNIST)
        if self.model == "clustering" and self.clusters is None:
            self.clusters = 16

    @property
    def latent(self) -> int:
        return self.latent_dim or DEFAULT_LATENT[self.model]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# ------------------------------------------------------------------------------------------------
# Data


@dataclass
class Splits:
    train: Any
    validation: Any
    test: Any
    labelled: Any | None
    name: str


def load_splits(config: RunConfig) -> Splits:
    """Train / validation / test (and the labelled subset) for the run's data set.

    A directory holding only the t10k files (as ../shared/data/mnist) is split 8,000 / 2,000 into
    train and test, seeded; that is not the paper's MNIST split, and metrics.json says so.
    """
    from . import data

    name, _ = data.resolve_data_dir(config.data)
    try:
        train = data.load_dataset(config.data, "train")
        test = data.load_dataset(config.data, "test")
    except FileNotFoundError:
        full = data.load_dataset(config.data, "test")
        train, test = data.train_test_split(full, test_size=2000, seed=config.seed)
        name = f"{name} (t10k split 8000/2000)"
    train, validation = data.validation_split(train, config.validation_size, seed=config.seed)
    labelled = None
    if config.labels_per_class is not None and config.model in ("semi-supervised", "dim-reduction"):
        labelled, _ = data.labelled_subset(train, config.labels_per_class, seed=config.seed)
    elif config.labels_per_class is not None and config.label_conditioned:
        # Label-conditioned regularization with partial labels (§2.3): unlabelled rows carry -1 and
        # use the discriminator's extra "unknown" class.
        _, keep = data.labelled_subset(train, config.labels_per_class, seed=config.seed)
        labels = torch.full_like(train.labels, -1)
        labels[keep] = train.labels[keep]
        train = data.ArrayDataset(train.images, labels, train.num_classes, name=train.name)
    return Splits(train, validation, test, labelled, name)


# ------------------------------------------------------------------------------------------------
# Model


def make_prior(config: RunConfig, dim: int):
    from . import priors

    if config.prior == "gaussian":
        return priors.Gaussian(dim)
    if config.prior == "mixture":
        return priors.MixtureOfGaussians(num_components=10, dim=dim)
    if dim != 2:
        raise ValueError(f"the swiss-roll prior is 2-D; pass --latent-dim 2 (got {dim})")
    return priors.SwissRoll(num_components=10)


def build_model(config: RunConfig, num_classes: int = 10, total_steps: int | None = None):
    """The run's variant on its backend (aae_fast.models: "fused", or the eager reference), or a
    baseline (aae_fast.baselines). ``total_steps``: the run's length, which sets gmmn-ae's first
    stage to half of it when ``config.autoencoder_steps`` is None."""
    from . import baselines, models

    if config.model == "vae":
        return baselines.VAE(latent_dim=config.latent, hidden=tuple(config.hidden),
                             prior=make_prior(config, config.latent), optimizer=config.optimizer)
    if config.model == "gmmn-ae":
        steps = config.autoencoder_steps or max(1, (total_steps or 2) // 2)
        if total_steps is not None and steps >= total_steps:
            # All autoencoder: the generator would never train, and its samples score nothing.
            raise ValueError(
                f"autoencoder_steps {steps} leaves no step for the generator in a run of "
                f"{total_steps} steps; lower --autoencoder-steps or lengthen the run"
            )
        return baselines.GMMNAutoencoder(latent_dim=config.latent, hidden=tuple(config.hidden),
                                         autoencoder_steps=steps, optimizer=config.optimizer)

    common = dict(hidden=tuple(config.hidden), optimizer=config.optimizer, backend=config.backend)
    latent = config.latent
    if config.model == "aae":
        return models.AdversarialAutoencoder(
            latent_dim=latent, prior=make_prior(config, latent), encoder=config.encoder,
            label_conditioned=config.label_conditioned, **common,
        )
    if config.model == "supervised":
        return models.SupervisedAAE(latent_dim=latent, num_classes=num_classes,
                                    prior=make_prior(config, latent), **common)
    if config.model == "semi-supervised":
        return models.SemiSupervisedAAE(num_classes=num_classes, latent_dim=latent, **common)
    if config.model == "clustering":
        return models.ClusteringAAE(num_clusters=config.clusters, latent_dim=latent, **common)
    if config.labels_per_class is not None and config.clusters not in (None, num_classes):
        # Semi-supervised, its cluster heads are the labelled classes (DimReductionAAE).
        raise ValueError(
            f"--model dim-reduction with --labels-per-class has one cluster per class of the data "
            f"({num_classes}), got --clusters {config.clusters}; leave --clusters out"
        )
    return models.DimReductionAAE(
        latent_dim=latent, num_clusters=config.clusters or num_classes,
        semi_supervised=config.labels_per_class is not None, **common,
    )


# ------------------------------------------------------------------------------------------------
# Evaluation and figures


@torch.no_grad()
def _batched(fn, x: torch.Tensor, batch: int = 1000):
    outs = [fn(x[i : i + batch]) for i in range(0, x.shape[0], batch)]
    if isinstance(outs[0], tuple):
        return type(outs[0])(*(torch.cat(parts) for parts in zip(*outs)))
    return torch.cat(outs)


@torch.no_grad()
def evaluate(model, config: RunConfig, splits: Splits, trainer, out_dir: Path, progress: bool = True) -> dict:
    """The paper's numbers for this variant, plus the figures; returns the `final` dict."""
    from . import evaluation

    device = trainer.device
    model.eval()
    test_x = splits.test.images.to(device)
    test_y = splits.test.labels.to(device)
    final: dict[str, Any] = {"data": splits.name}
    final.update({f"test_{k}": v for k, v in trainer.evaluate(splits.test).items()})
    final["reconstruction_loss"] = final.get("test_reconstruction")

    if config.model in ("semi-supervised", "supervised", "clustering", "dim-reduction") or (
        config.model == "aae" and config.label_conditioned
    ):
        if hasattr(model, "predict") and config.model != "supervised":
            predicted = _batched(model.predict, test_x)
            if config.model == "clustering" or (config.model == "dim-reduction" and config.labels_per_class is None):
                k = config.clusters or 10
                # The paper's protocol (Sec. 6): each cluster takes the label of the validation
                # example it is most confident of; the majority of its test members as a second
                # figure (the later literature's protocol, which reads the test labels).
                val_x = splits.validation.images.to(device)
                val_q = _batched(lambda x: model.encode(x).y, val_x).float().cpu()
                mapping = evaluation.paper_cluster_mapping(val_q, splits.validation.labels.cpu())
                final["test_error"] = evaluation.clustering_error(
                    predicted.cpu(), test_y.cpu(), k, mapping=mapping
                )
                final["test_error_majority"] = evaluation.clustering_error(predicted.cpu(), test_y.cpu(), k)
                final["clustering_protocol"] = (
                    "test_error: each cluster labelled by the validation example maximising q(y|x) "
                    "(paper, Sec. 6); test_error_majority: by the majority label of its test members"
                )
            else:
                final["test_error"] = evaluation.classification_error(predicted.cpu(), test_y.cpu())

    if config.model in GENERATIVE and config.evaluate:
        samples = model.generate(config.parzen_samples).reshape(config.parzen_samples, -1)
        val_x = splits.validation.images.to(device)
        result = evaluation.evaluate_parzen(test_x, samples, validation=val_x, progress=progress)
        final["parzen_log_likelihood"] = result.mean
        final["parzen_sem"] = result.sem
        final["parzen_sigma"] = result.sigma

    figures = _figures(model, config, test_x, test_y, out_dir)
    final["figures"] = [p.name for p in figures]
    model.train()
    return final


def _codes_for_plot(model, x):
    codes = _batched(model.encode, x)
    if hasattr(codes, "representation"):
        return codes.representation
    if hasattr(codes, "z"):
        return codes.z
    return codes


def _figures(model, config: RunConfig, x, y, out_dir: Path) -> list[Path]:
    from . import evaluation

    n = min(5000, x.shape[0])
    paths = []
    codes = _codes_for_plot(model, x[:n]).float().cpu()
    title = f"{config.model} codes of {n} test images ({config.prior} prior)"
    paths.append(evaluation.plot_latent(codes, y[:n].cpu(), out_dir / "latent.png", title=title))
    if codes.shape[1] == 2 and config.model in ("aae", "supervised", "vae"):
        prior_samples = model.prior.sample(n, backend="eager")
        paths.append(evaluation.plot_prior_and_codes(prior_samples.cpu(), codes, y[:n].cpu(),
                                                     out_dir / "latent_vs_prior.png"))
    generated = model.generate(100).reshape(100, -1).float().cpu()
    paths.append(evaluation.plot_image_grid(generated, out_dir / "samples.png", nrow=10,
                                            title="decoded prior samples"))
    if config.model == "supervised":
        recon = model.reconstruct(x[:20], y[:20])
        styles = model.prior.sample(10, backend="eager").to(x.device)
        grid = torch.stack([
            model.decode(styles, torch.full((10,), c, device=x.device, dtype=torch.long)) for c in range(10)
        ], dim=1)
        paths.append(evaluation.plot_style_grid(grid.float().cpu(), out_dir / "style_grid.png"))
    else:
        recon = model.reconstruct(x[:20])
    paths.append(evaluation.plot_reconstructions(x[:20].float().cpu(), recon.float().cpu(),
                                                 out_dir / "reconstructions.png", n=20))
    return paths


# ------------------------------------------------------------------------------------------------
# Runs


def write_json(path: Path, payload: dict) -> None:
    """Atomic JSON write: a crash never leaves a truncated metrics file. Non-finite numbers (a
    diverged loss) are written as null: JSON has no NaN or Infinity, and strict readers refuse
    Python's extension."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_finite_or_none(payload), indent=1, allow_nan=False))
    tmp.replace(path)


def _finite_or_none(value: Any) -> Any:
    """``value`` with every float that is NaN or infinite (Python, numpy or a 0-dim tensor)
    replaced by None, recursively through dicts, lists and tuples."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    number = float(value)  # numpy scalars, 0-dim tensors: what default=float used to accept
    return number if math.isfinite(number) else None


def train(config: RunConfig, out_dir: Path, resume: Path | None = None, progress: bool = True,
          dist_timeout: float | None = None, overwrite: bool = False) -> dict:
    """Trains as configured, evaluates, writes out_dir; returns the metrics dict.

    A directory that already holds a run (a ``checkpoint.pt``) is refused unless the run resumes
    (``resume``) or ``overwrite`` is set: nothing of an earlier run is replaced by mistake. A resumed
    run keeps its checkpoint's batch size, precision and seed; a config asking for others is
    refused (ValueError) before anything is written.

    Under torchrun (``WORLD_SIZE > 1``) every rank trains (see the module docstring); rank 0
    evaluates and writes, the other ranks return ``{"config", "history", "final": {}}`` as soon as
    training is done. ``dist_timeout``: seconds a rank waits in a collective for its peers before
    it raises (default :data:`aae_fast.training.distributed.DEFAULT_TIMEOUT`)."""
    from .training import distributed

    if resume is None and not overwrite and (out_dir / "checkpoint.pt").is_file():
        raise FileExistsError(
            f"{out_dir} already holds a run ({out_dir / 'checkpoint.pt'}): continue it with "
            f"--resume {out_dir / 'checkpoint.pt'}, replace it with --overwrite, or choose another --out"
        )
    context = distributed.init_distributed(config.device, timeout=dist_timeout)
    try:
        return _train(config, out_dir, resume, progress, context)
    finally:
        distributed.destroy_distributed(context)


def _total_steps(config: RunConfig, rows: int) -> int:
    """The run's optimiser steps (the Trainer drops the last partial batch of an epoch)."""
    per_epoch = max(1, rows // config.batch_size)
    if config.max_steps is not None:
        return config.max_steps if config.epochs is None else min(config.max_steps, config.epochs * per_epoch)
    return config.epochs * per_epoch


def _train(config: RunConfig, out_dir: Path, resume: Path | None, progress: bool, context) -> dict:
    from .training import Trainer

    main = context is None or context.is_main
    world = 1 if context is None else context.world_size
    torch.manual_seed(config.seed)
    splits = load_splits(config)
    model = build_model(config, splits.train.num_classes,
                        total_steps=_total_steps(config, len(splits.train) // world))
    device = config.device if context is None else context.device(config.device)
    kwargs = dict(device=device, labelled_data=splits.labelled, out_dir=out_dir,
                  progress=progress and main, checkpoint_every=1000)
    if resume is not None:
        trainer = Trainer.resume(resume, model, **kwargs)
        _check_resumed_settings(config, trainer, resume)
    else:
        trainer = Trainer(model, precision=config.precision, seed=config.seed,
                          batch_size=config.batch_size, **kwargs)
    if config.model == "gmmn-ae" and config.autoencoder_steps != model.autoencoder_steps:
        # Record the stage split in force: "half the run" resolved, or a checkpoint's on resume.
        config.autoencoder_steps = model.autoencoder_steps

    def start_run() -> None:
        """Called by fit once it has checked its data, before the first step: a run that fails to
        start (data, model, checkpoint, batch size) leaves out/ as it was."""
        if not main:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        if resume is None:  # a new run: what an overwritten one left would not match its config
            for name in ("checkpoint.pt", "metrics.json"):
                (out_dir / name).unlink(missing_ok=True)
        write_json(out_dir / "config.json", config.to_dict())

    start = time.perf_counter()
    history = trainer.fit(splits.train, epochs=config.epochs, max_steps=config.max_steps,
                          val_data=splits.validation, on_start=start_run)
    train_time = time.perf_counter() - start
    if not main:  # rank 0 evaluates and writes; the weights are the same on every rank
        return {"config": config.to_dict(), "history": history, "final": {}}
    final = evaluate(model, config, splits, trainer, out_dir, progress=progress) if config.evaluate else {}
    final["train_time_s"] = train_time
    final["steps"] = trainer.global_step
    if world > 1:
        final["world_size"] = world
        final["global_batch_size"] = trainer.batch_size * world
    metrics = {"config": config.to_dict(), "history": history, "final": final}
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def _check_resumed_settings(config: RunConfig, trainer, checkpoint: Path) -> None:
    """A resumed run trains on with its checkpoint's settings; refuse a config that says otherwise
    (it would be recorded in config.json as if it had been used)."""
    wanted = {"batch_size": (config.batch_size, trainer.batch_size),
              "precision": (config.precision, trainer.precision),
              "seed": (config.seed, trainer.seed)}
    clashes = [f"--{name.replace('_', '-')} {mine} (the checkpoint has {theirs})"
               for name, (mine, theirs) in wanted.items() if mine != theirs]
    if clashes:
        raise ValueError(
            f"--resume {checkpoint}: a resumed run keeps its checkpoint's settings, but this one asks "
            f"for {', '.join(clashes)}; repeat the run's own flags"
        )


def load_run(out_dir: Path, checkpoint: Path | None = None, device: str = "cpu"):
    """(config, model) of a finished run directory, the model loaded from its checkpoint."""
    from .training.checkpoint import load_checkpoint

    config_path = out_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: pass the --out directory of an `aae-fast train` run")
    config = RunConfig.from_dict(json.loads(config_path.read_text()))
    config.device = device
    checkpoint = checkpoint or out_dir / "checkpoint.pt"
    state = load_checkpoint(checkpoint, map_location=device)
    model = build_model(config)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:  # another variant's or width's checkpoint
        raise ValueError(f"{checkpoint} does not hold this run's model ({config_path}): {exc}") from None
    return config, model.to(device)
