"""The `aae-fast` command line: train, evaluate, sample, bench (each with --help)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _add_sample(sub) -> None:
    p = sub.add_parser(
        "sample",
        help="draw samples from a prior (and, with --checkpoint, decode them)",
        description="Draw samples from a prior with aae_fast's fused sampling ops and plot them.",
    )
    p.add_argument("--prior", choices=["gaussian", "mixture", "swiss-roll"], default="mixture")
    p.add_argument("--latent-dim", type=int, default=2, help="dimension of the Gaussian prior")
    p.add_argument("--components", type=int, default=10, help="mixture components / roll segments")
    p.add_argument("-n", "--num-samples", type=int, default=10_000)
    p.add_argument("--labelled", action="store_true", help="draw an equal share from each component")
    p.add_argument("--backend", choices=["fused", "eager"], default="fused")
    p.add_argument("--device", default="cpu")
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

    if args.num_samples < 1:
        raise SystemExit(f"aae-fast sample: --num-samples must be positive, got {args.num_samples}")
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
    figure = _scatter(z.cpu(), None if labels is None else labels.cpu(), args.out / "prior_samples.png",
                      f"{prior!r}: {args.num_samples} samples ({args.backend})")
    print(f"{prior!r}: {args.num_samples} samples in {elapsed * 1e3:.1f} ms on {device} ({args.backend})")
    print(f"wrote {args.out / 'samples.pt'} and {figure}")
    return 0


def _scatter(z, labels, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z = z[:, :2].float().numpy()
    fig, ax = plt.subplots(figsize=(6, 6), dpi=120)
    if labels is None:
        ax.scatter(z[:, 0], z[:, 1], s=1, alpha=0.4)
    else:
        points = ax.scatter(z[:, 0], z[:, 1], c=labels.numpy(), cmap="tab10", s=1, alpha=0.5)
        fig.colorbar(points, ax=ax, label="component")
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _add_bench(sub) -> None:
    from .benchreport import default_suite

    p = sub.add_parser(
        "bench",
        help="run the benchmark suite and write benchmarks/results/<device>-<date>.json",
        description="Run the pytest-benchmark suite (aae_fast vs the eager reference and torch.compile).",
    )
    p.add_argument("--suite", type=Path, default=default_suite(), help="benchmark directory")
    p.add_argument("--out", type=Path, default=None, help="results directory (default: SUITE/results)")
    p.add_argument("-k", dest="select", default=None, help="pytest -k expression to select benchmarks")
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args) -> int:
    from .benchreport import run_suite

    run_suite(args.suite, args.out or args.suite / "results", select=args.select)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aae-fast",
        description="Adversarial Autoencoders (Makhzani et al., 2015), fast: train, evaluate, sample, bench.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,evaluate,sample,bench}")
    _add_sample(sub)
    _add_bench(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
