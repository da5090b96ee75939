"""The `aae-fast` command line: train, evaluate, sample, bench (each with --help)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in the help, except for on/off flags (``--no-eval`` would read "default: True")
    and for defaults resolved later (None), whose help says what they become."""

    def _get_help_string(self, action):
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            return action.help
        if action.default is None:  # resolved later; the help says how ("default 100")
            return action.help
        return super()._get_help_string(action)


def _check_device(command: str, device: str) -> None:
    """A clear exit where the machine has no such device (instead of a traceback from torch)."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            f"aae-fast {command}: --device cuda, but no CUDA device is available (torch "
            f"{torch.__version__}{', built without CUDA' if torch.version.cuda is None else ''})"
        )


def _widths(text: str) -> list[int]:
    try:
        widths = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated widths like 1000,1000, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"expected positive widths like 1000,1000, got {text!r}")
    return widths


def _add_train(sub) -> argparse.ArgumentParser:
    from .experiment import BACKENDS, ENCODERS, MODELS, PRECISIONS, PRIORS

    p = sub.add_parser(
        "train",
        help="train an AAE variant and evaluate it (metrics.json, checkpoint, figures in --out)",
        description=(
            "Train any AAE variant of Makhzani et al. (2015) on Fashion-MNIST (default), MNIST or an "
            "IDX directory, then evaluate it with the paper's metrics and write figures. The "
            "defaults finish in a few minutes on a 2-core CPU; --epochs and the paper's SGD "
            "(--optimizer sgd) reach the full schedules."
        ),
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--model", choices=MODELS, default="aae",
                   help="paper variant, or a baseline of its comparison (vae, gmmn-ae)")
    p.add_argument("--prior", choices=PRIORS, default="gaussian", help="prior on the style code z")
    p.add_argument("--encoder", choices=ENCODERS, default="deterministic", help="q(z|x) of --model aae")
    p.add_argument("--label-conditioned", action="store_true",
                   help="--model aae: labels select mixture components in the regularization (§2.3)")
    p.add_argument("--data", default="fashion-mnist", help="fashion-mnist, mnist:DIR, or a DIR of IDX files")
    p.add_argument("--labels-per-class", type=_positive_int, default=None,
                   help="labelled examples per class (semi-supervised; default 100)")
    p.add_argument("--clusters", type=_positive_int, default=None, help="clusters (clustering; default 16)")
    p.add_argument("--latent-dim", type=_positive_int, default=None, help="style code size (variant's default)")
    p.add_argument("--hidden", type=_widths, default=[1000, 1000], help="hidden widths, e.g. 1000,1000")
    p.add_argument("--batch-size", type=_positive_int, default=100,
                   help="rows per step; under torchrun, per process (global batch = B x processes)")
    p.add_argument("--epochs", type=_positive_int, default=None, help="epochs (default 1 unless --max-steps)")
    p.add_argument("--max-steps", type=_positive_int, default=None, help="stop after this many steps")
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam",
                   help="adam (fast to converge) or sgd (the paper's SGD with momentum and schedule)")
    p.add_argument("--backend", choices=BACKENDS, default="fused",
                   help="fused: aae_fast.models on the fused ops (default); eager: the plain-PyTorch reference")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parzen-samples", type=_positive_int, default=10_000,
                   help="generated samples for the Parzen estimate (--model aae, vae, gmmn-ae)")
    p.add_argument("--autoencoder-steps", type=_positive_int, default=None,
                   help="--model gmmn-ae: steps of the autoencoder stage before the generator's "
                        "(default: half the run)")
    p.add_argument("--no-eval", dest="evaluate", action="store_false", help="skip the evaluation")
    p.add_argument("--eval", dest="evaluate", action="store_true", default=True,
                   help="evaluate after training (the default; undoes the --no-eval of a run "
                        "continued with --resume)")
    p.add_argument("--out", type=Path, default=Path("runs/default"), help="output directory")
    p.add_argument("--resume", type=Path, default=None,
                   help="checkpoint to continue from; flags not given come from the config.json "
                        "beside it, and --out defaults to its directory")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out (by default a directory holding a "
                        "checkpoint is refused unless --resume is given)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--dist-timeout", type=_positive_int, default=600, metavar="SECONDS",
                   help="under torchrun: seconds a process waits for the others in a collective "
                        "before it fails (a dead peer stops the job instead of hanging it)")
    p.set_defaults(func=_cmd_train)
    return p


#: The `train` flags that make up a RunConfig (the others say where and how to run).
_CONFIG_FIELDS = ("model", "prior", "encoder", "label_conditioned", "data", "labels_per_class", "clusters",
                  "latent_dim", "hidden", "batch_size", "epochs", "max_steps", "optimizer", "backend",
                  "device", "precision", "seed", "parzen_samples", "evaluate", "autoencoder_steps")


def _given_train_flags(argv: list[str]) -> set[str]:
    """The destinations of the `train` flags written on the command line (not defaulted)."""
    parser = argparse.ArgumentParser(add_help=False)
    train = _add_train(parser.add_subparsers(dest="command"))
    for action in train._actions:
        action.default = argparse.SUPPRESS
    given = vars(parser.parse_args(argv))
    return set(given) - {"command", "func"}


def _resume_defaults(args, argv: list[str]) -> None:
    """``--resume CKPT``: the flags not written on the command line come from the run's
    config.json beside the checkpoint (so ``aae-fast train --resume RUN/checkpoint.pt --epochs 10``
    continues RUN as it was configured), and --out defaults to the checkpoint's directory. The run's
    length is one choice: writing --epochs or --max-steps replaces both saved ones."""
    saved_path = args.resume.parent / "config.json"
    given = _given_train_flags(argv)
    if "out" not in given:
        args.out = args.resume.parent
    if not saved_path.is_file():
        return
    try:
        saved = json.loads(saved_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"aae-fast train: --resume: {saved_path} is not readable ({exc})") from None
    length_given = bool({"epochs", "max_steps"} & given)
    for name in _CONFIG_FIELDS:
        if name in ("epochs", "max_steps") and length_given:
            if name not in given:
                setattr(args, name, None)
        elif name not in given and name in saved:
            setattr(args, name, saved[name])


def _cmd_train(args) -> int:
    from .experiment import RunConfig, train

    if args.resume is not None:
        if not args.resume.is_file():
            raise SystemExit(f"aae-fast train: --resume {args.resume}: no such checkpoint file")
        _resume_defaults(args, args.argv)
    try:
        config = RunConfig(**{f: getattr(args, f) for f in _CONFIG_FIELDS})
    except ValueError as exc:
        raise SystemExit(f"aae-fast train: {exc}") from None
    _check_device("train", args.device)
    from .data import IDXFormatError
    from .training.distributed import env_world_size

    run = train
    if env_world_size() > 1:
        # Under torchrun: a failing process writes its traceback where the launcher reports it
        # as the job's root cause (instead of the other ranks' "peer closed" errors).
        from torch.distributed.elastic.multiprocessing.errors import record

        run = record(train)
    try:
        metrics = run(config, args.out, resume=args.resume, progress=not args.quiet,
                      dist_timeout=args.dist_timeout, overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError, IDXFormatError, ValueError) as exc:
        # Data, checkpoints and settings the user chose: say what and where, without a traceback.
        raise SystemExit(f"aae-fast train: {exc}") from None
    except KeyboardInterrupt:
        checkpoint = args.out / "checkpoint.pt"
        if checkpoint.is_file():
            # Its last step, after one Ctrl-C; an earlier one after a second Ctrl-C (Trainer.fit).
            print(f"\naae-fast train: interrupted; its latest checkpoint is {checkpoint}. Continue "
                  f"from it with: aae-fast train --resume {checkpoint}", file=sys.stderr)
        else:
            print("\naae-fast train: interrupted before the first checkpoint", file=sys.stderr)
        return 130
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 reports
        _print_final(metrics["final"], args.out, wrote=("metrics.json", "checkpoint.pt"))
    return 0


def _print_final(final: dict, out: Path, wrote: tuple[str, ...]) -> None:
    for key, value in final.items():
        if isinstance(value, float):
            print(f"  {key:28s} {value:.4f}")
        elif key != "figures":
            print(f"  {key:28s} {value}")
    files = ", ".join(str(out / name) for name in wrote)
    print(f"wrote {files} and {len(final.get('figures', []))} figures")


def _add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="evaluate a trained run again (metrics added to its metrics.json)",
        description="Load the checkpoint of an `aae-fast train` run and compute the paper's metrics.",
    )
    p.add_argument("run", type=Path, help="the --out directory of a train run")
    p.add_argument("--checkpoint", type=Path, default=None, help="default: RUN/checkpoint.pt")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--parzen-samples", type=_positive_int, default=None)
    p.add_argument("--data", default=None,
                   help="the run's data set where it is now (as train's --data); default: the one "
                        "in its config.json")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args) -> int:
    import json

    from . import experiment
    from .data import IDXFormatError
    from .training import Trainer

    _check_device("evaluate", args.device)
    try:
        config, model = experiment.load_run(args.run, args.checkpoint, args.device)
        if args.data is not None:
            config.data = args.data
        splits = experiment.load_splits(config)
    except (FileNotFoundError, IDXFormatError, ValueError) as exc:
        raise SystemExit(f"aae-fast evaluate: {exc}") from None
    if args.parzen_samples:
        config.parzen_samples = args.parzen_samples
    config.evaluate = True  # what this command is for, even for a run trained with --no-eval
    trainer = Trainer(model, device=args.device, progress=False, seed=config.seed)
    final = experiment.evaluate(model, config, splits, trainer, args.run, progress=not args.quiet)
    path = args.run / "metrics.json"
    metrics = json.loads(path.read_text()) if path.is_file() else {"config": config.to_dict(), "history": []}
    metrics.setdefault("final", {}).update(final)
    experiment.write_json(path, metrics)
    _print_final(final, args.run, wrote=("metrics.json",))
    return 0


def _add_sample(sub) -> None:
    p = sub.add_parser(
        "sample",
        help="draw samples from a prior and plot them",
        description="Draw samples from a prior with aae_fast's fused sampling ops and plot them.",
    )
    p.add_argument("--prior", choices=["gaussian", "mixture", "swiss-roll"], default="mixture")
    p.add_argument("--latent-dim", type=_positive_int, default=2, help="dimension of the Gaussian prior")
    p.add_argument("--components", type=_positive_int, default=10, help="mixture components / roll segments")
    p.add_argument("-n", "--num-samples", type=_positive_int, default=10_000)
    p.add_argument("--labelled", action="store_true", help="draw an equal share from each component")
    p.add_argument("--backend", choices=["fused", "eager"], default="fused")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/samples"), help="output directory")
    p.set_defaults(func=_cmd_sample)


def _make_prior(name: str, latent_dim: int, components: int):
    from . import priors

    if name == "gaussian":
        return priors.Gaussian(latent_dim)
    if name == "mixture":
        return priors.MixtureOfGaussians(num_components=components, dim=max(2, latent_dim))
    return priors.SwissRoll(num_components=components)


def _cmd_sample(args) -> int:
    import time

    import torch

    from .random import PhiloxGenerator

    _check_device("sample", args.device)
    prior = _make_prior(args.prior, args.latent_dim, args.components)
    device = torch.device(args.device)
    labels = None
    if args.labelled and prior.num_components:
        labels = torch.arange(args.num_samples, device=device) % prior.num_components
    if args.backend == "fused":
        generator = PhiloxGenerator(args.seed, device=device)
    else:
        generator = torch.Generator(device=device).manual_seed(args.seed)
    start = time.perf_counter()
    z = prior.sample(args.num_samples, labels=labels, generator=generator, device=device, backend=args.backend)
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save({"prior": repr(prior), "samples": z.cpu(), "labels": None if labels is None else labels.cpu()},
               args.out / "samples.pt")
    from .evaluation import plot_latent

    figure = plot_latent(z.float().cpu(), None if labels is None else labels.cpu(),
                         args.out / "prior_samples.png",
                         title=f"{prior!r}: {args.num_samples} samples ({args.backend})")
    print(f"{prior!r}: {args.num_samples} samples in {elapsed * 1e3:.1f} ms on {device} ({args.backend})")
    print(f"wrote {args.out / 'samples.pt'} and {figure}")
    return 0


def _add_bench(sub) -> None:
    from .benchreport import default_suite

    p = sub.add_parser(
        "bench",
        help="run the benchmark suite; write results JSON, a Markdown report and plots",
        description=(
            "Run the pytest-benchmark suite (aae_fast vs the eager reference and torch.compile) and "
            "write OUT/<device>-<date>.json (every figure and the machine), <device>-<date>.md (the "
            "report: training throughput, op tables, the fast-training targets judged from the "
            "data) and <device>-<date>-throughput.png / -peak.png (and -ops.png: the ops' "
            "speed-ups, where the run has op cases)."
        ),
    )
    p.add_argument("--suite", type=Path, default=default_suite(), help="benchmark directory")
    p.add_argument("--out", type=Path, default=None, help="results directory (default: SUITE/results)")
    p.add_argument("-k", dest="select", default=None, help="pytest -k expression to select benchmarks")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: small sizes, few rounds, no torch.compile case (about a minute "
                        "on 2 CPU cores); files get a -quick suffix")
    p.add_argument("--report-only", type=Path, default=None, metavar="PATH.json",
                   help="run nothing: rebuild the Markdown report and the plots beside PATH.json")
    p.add_argument("--merge", type=Path, nargs="+", default=None, metavar="PATH.json",
                   help="run nothing: merge results files of one machine (runs with different -k "
                        "selections) into OUT/<first file's name>, with its report and plots")
    p.add_argument("--quiet", action="store_true", help="no progress line per case")
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args) -> int:
    from .benchreport import build_report, merge_results, run_suite

    if args.report_only is not None:
        if not args.report_only.is_file():
            raise SystemExit(f"aae-fast bench: --report-only {args.report_only}: no such file")
        try:
            paths = build_report(args.report_only)
        except (ValueError, KeyError) as exc:
            raise SystemExit(f"aae-fast bench: --report-only {args.report_only}: {exc}") from None
        print("wrote " + ", ".join(str(p) for k, p in paths.items() if k != "json"))
        return 0
    if args.merge is not None:
        missing = [str(p) for p in args.merge if not p.is_file()]
        if missing:
            raise SystemExit(f"aae-fast bench: --merge: no such file: {', '.join(missing)}")
        if args.out is None:
            raise SystemExit("aae-fast bench: --merge needs --out DIR (the merged file's folder)")
        try:
            merged = merge_results(args.merge)
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            raise SystemExit(f"aae-fast bench: --merge: {exc}") from None
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / args.merge[0].name
        path.write_text(json.dumps(merged, indent=1))
        paths = build_report(path, merged)
        print("wrote " + ", ".join(str(p) for p in paths.values()))
        return 0
    try:
        run_suite(args.suite, args.out or args.suite / "results", select=args.select,
                  quick=args.quick, progress=not args.quiet)
    except (FileNotFoundError, RuntimeError) as exc:
        raise SystemExit(f"aae-fast bench: {exc}") from None
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aae-fast",
        description="Adversarial Autoencoders (Makhzani et al., 2015), fast: train, evaluate, sample, bench.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,evaluate,sample,bench}")
    _add_train(sub)
    _add_evaluate(sub)
    _add_sample(sub)
    _add_bench(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv  # which flags were written, not defaulted (train --resume needs to know)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
