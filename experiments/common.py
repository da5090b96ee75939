"""Shared driver of the experiment scripts: budgets, the `aae-fast train` command of every run, and
the summary (summary.json + summary.md) that RESULTS.md quotes.

Every run is one `aae-fast train` invocation. The scripts execute it in-process (`aae_fast.cli.main`,
the same code path as the console script, without paying the interpreter start-up per run) and
print the equivalent shell command, which is what RESULTS.md lists.

Budgets:
  tiny   a smoke run per configuration (2 steps, 32-wide networks): what tests/test_experiments.py runs
  short  what fits a shared 2-core CPU in minutes per run (Adam, tens of MNIST-split epochs): RESULTS.md
  paper  the paper's schedule: SGD with momentum (Appendix A: x0.1 after 50 and 1000 epochs),
         PAPER_EPOCHS epochs, 1000-1000 networks; documented, and far beyond a CPU (see RESULTS.md)
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: The MNIST test set shipped beside the clone (split 8,000 / 2,000 by the loaders: not the paper's split).
MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"
BUDGETS = ("tiny", "short", "paper")
#: "Thousands of epochs" (the paper gives no total): the last decay is at epoch 1000, we stop at 2000.
PAPER_EPOCHS = 2000
TINY_FLAGS = ["--hidden", "32,32", "--max-steps", "2", "--batch-size", "50", "--parzen-samples", "100"]
PAPER_FLAGS = ["--optimizer", "sgd", "--epochs", str(PAPER_EPOCHS)]


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", choices=BUDGETS, default="short",
                   help="tiny: smoke test; short (default): the runs of RESULTS.md, minutes to hours; "
                        "paper: the paper's schedule")
    p.add_argument("--out", type=Path, required=True, help="root directory of the runs (one sub-directory each)")
    p.add_argument("--mnist", default=f"mnist:{MNIST_DIR}",
                   help="MNIST data spec: mnist:DIR (only t10k files: split 8000/2000; full files: the paper's split)")
    p.add_argument("--fashion", default="fashion-mnist", help="Fashion-MNIST data spec")
    p.add_argument("--data", default=None,
                   help="comma-separated subset of the data sets this experiment covers (mnist, fashion)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default: the budget's)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    return p


def ints(text: str | None, default: list[int]) -> list[int]:
    return default if text is None else [int(t) for t in text.split(",") if t.strip()]


def datasets(args, default: list[str]) -> list[str]:
    names = default if args.data is None else [d.strip() for d in args.data.split(",") if d.strip()]
    unknown = set(names) - {"mnist", "fashion"}
    if unknown:
        raise SystemExit(f"--data: unknown data sets {sorted(unknown)} (mnist, fashion)")
    return names


def data_spec(args, name: str) -> str:
    return args.mnist if name == "mnist" else args.fashion


def budget_flags(budget: str, short: list[str]) -> list[str]:
    """The schedule flags of a run: `short` is the experiment's own CPU schedule."""
    if budget == "tiny":
        return list(TINY_FLAGS)
    if budget == "paper":
        return list(PAPER_FLAGS)
    return list(short)


def command(flags: list[str], out: Path) -> str:
    return shlex.join(["aae-fast", "train", *flags, "--out", str(out)])


class Runner:
    """Runs each configuration once and gathers its `final` metrics and wall time."""

    def __init__(self, experiment: str, args):
        self.experiment = experiment
        self.args = args
        self.rows: list[dict] = []
        args.out.mkdir(parents=True, exist_ok=True)
        # Runs of an earlier invocation into the same --out (same experiment and budget) stay in
        # the summary: a subset can be run, or re-run, on its own (a re-run replaces its row).
        previous = args.out / "summary.json"
        if previous.is_file() and not args.dry_run:
            old = json.loads(previous.read_text())
            if old.get("experiment") == experiment and old.get("budget") == args.budget:
                self.rows = [r for r in old.get("runs", []) if "steps" in r]

    def run(self, name: str, flags: list[str], **tags) -> dict | None:
        out = self.args.out / name
        cmd = command(flags, out)
        print(f"[{self.experiment}] {cmd}", flush=True)
        if self.args.dry_run:
            self.rows.append({"name": name, "command": cmd, **tags})
            self.write()
            return None
        from aae_fast.cli import main

        start = time.perf_counter()
        rc = main(["train", *flags, "--out", str(out), "--quiet", "--overwrite"])
        wall = time.perf_counter() - start
        if rc != 0:
            raise SystemExit(f"{cmd}: exit status {rc}")
        final = json.loads((out / "metrics.json").read_text())["final"]
        row = {"name": name, "command": cmd, "wall_s": round(wall, 1), **tags,
               **{k: v for k, v in final.items() if k != "figures"},
               "figures": [str(out / f) for f in final.get("figures", [])]}
        self.rows = [r for r in self.rows if r["name"] != name] + [row]
        self.write()
        return row

    def write(self) -> Path:
        path = self.args.out / "summary.json"
        payload = {"experiment": self.experiment, "budget": self.args.budget, "argv": sys.argv, "runs": self.rows}
        path.write_text(json.dumps(payload, indent=1, default=float))
        return path


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (nan for a single value)."""
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else math.nan)


def write_table(path: Path, header: list[str], rows: list[list]) -> None:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(v) for v in row) + " |")
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v)
