"""Print the result tables of RESULTS.md from the experiments' summary.json files (every number in
the tables comes from a run's metrics.json, through its summary).

    python experiments/report.py --runs /tmp/aae_exp

--runs holds the --out roots of the `short` runs: parzen-mnist, parzen-fashion, semi-mnist,
semi-fashion, clustering, dimred, qualitative, figure2 (missing ones are skipped).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

PAPER_SEMI = {"100": "1.90 ± 0.10", "1000": "1.60 ± 0.08", "all": "0.85 ± 0.02"}
PAPER_CLUSTERS = {16: "9.55", 30: "4.10"}
#: Table 1 of the paper (MNIST, nats): the AAE and the baselines it reports.
PAPER_PARZEN = {"aae": "340 ± 2", "gmmn-ae": "282 ± 2", "vae": "— (not in Table 1)"}
MODEL_NAMES = {"aae": "AAE", "vae": "VAE", "gmmn-ae": "GMMN+AE"}


def _runs(root: Path, name: str) -> list[dict]:
    path = root / name / "summary.json"
    return json.loads(path.read_text())["runs"] if path.is_file() else []


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(common._fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _with_majority(row: dict) -> str:
    """A clustering error by the paper's protocol, with the majority-label one beside it."""
    majority = row.get("test_error_majority")
    text = f"{100 * row['test_error']:.2f}"
    return text if majority is None else f"{text} (majority label: {100 * majority:.2f})"


def _percent(fraction) -> str:
    """A fraction as a percentage, or a dash where the run has no such figure."""
    return "—" if fraction is None else f"{100 * fraction:.2f}"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def overview(root: Path) -> str:
    """One line per claim of the paper: its number, ours (MNIST split unless said), the steps."""
    # The paper's claims are MNIST's: runs on other data sets are in their sections only.
    def mnist(name: str) -> list[dict]:
        return [r for r in _runs(root, name) if r.get("data_set", "mnist") == "mnist"]

    rows = []
    for r in mnist("parzen-mnist"):
        model = r.get("model", "aae")
        rows.append([f"Parzen log-likelihood, 8-D code, {MODEL_NAMES[model]} (nats)", PAPER_PARZEN[model],
                     f"{r['parzen_log_likelihood']:.0f} ± {r['parzen_sem']:.0f}", r["steps"]])
    semi: dict[str, list[dict]] = {}
    for r in mnist("semi-mnist"):
        semi.setdefault(r["labels"], []).append(r)
    for labels, rs in semi.items():
        mean, std = common.mean_std([100 * r["test_error"] for r in rs])
        ours = f"{mean:.2f}" + (f" ± {std:.2f} ({len(rs)} seeds)" if len(rs) > 1 else " (1 seed)")
        rows.append([f"semi-supervised error, {labels} labels (%)", PAPER_SEMI[labels], ours, rs[0]["steps"]])
    for r in mnist("clustering"):
        rows.append([f"clustering error, {r['clusters']} clusters (%)", PAPER_CLUSTERS.get(r["clusters"], "—"),
                     _with_majority(r), r["steps"]])
    for r in mnist("dimred"):
        rows.append([f"2-D dimensionality reduction, {r['mode']} error (%)", "(Figure 9)",
                     _with_majority(r), r["steps"]])
    budgets = sorted({json.loads((root / n / "summary.json").read_text()).get("budget") or "?"
                      for n in ("parzen-mnist", "semi-mnist", "clustering", "dimred")
                      if (root / n / "summary.json").is_file()})
    budget = ", ".join(budgets) + (" budget" if len(budgets) == 1 else " budgets")
    return _table(["claim (MNIST)", "paper", f"ours (MNIST 8,000/2,000 split, {budget})", "steps"], rows)


def report(root: Path) -> str:
    out = ["### 0. At a glance\n\n" + overview(root)]
    rows = []
    for name in ("parzen-mnist", "parzen-fashion"):
        for r in _runs(root, name):
            model = r.get("model", "aae")
            if r["data_set"] != "mnist":
                paper = "— (not in the paper)"
            elif model == "vae":
                paper = PAPER_PARZEN[model]
            else:
                paper = f"{PAPER_PARZEN[model]} (full MNIST, 10,000 test images)"
            rows.append([r["data"], MODEL_NAMES[model], paper,
                         f"{r['parzen_log_likelihood']:.0f} ± {r['parzen_sem']:.0f}",
                         f"{r['parzen_sigma']:.3f}", f"{r['reconstruction_loss']:.1f}", r["steps"],
                         _minutes(r["train_time_s"]), _minutes(r["wall_s"])])
    out.append("### 1. Parzen log-likelihood\n\n" + _table(
        ["data", "model", "paper (nats)", "ours (nats, ± s.e.)", "sigma", "test BCE (nats)", "steps", "train",
         "wall"], rows))

    groups: dict[tuple, list[dict]] = {}
    for name in ("semi-mnist", "semi-fashion"):
        for r in _runs(root, name):
            groups.setdefault((r["data"], r["labels"]), []).append(r)
    rows = []
    for (data, labels), rs in groups.items():
        errors = [100 * r["test_error"] for r in rs]
        mean, std = common.mean_std(errors)
        paper = PAPER_SEMI[labels] if data.startswith("mnist") else "—"
        rows.append([data, labels, paper, f"{mean:.2f}" + ("" if len(rs) == 1 else f" ± {std:.2f}"),
                     ", ".join(f"{e:.2f}" for e in errors), rs[0]["steps"],
                     ", ".join(_minutes(r["wall_s"]) for r in rs)])
    out.append("### 2. Semi-supervised classification error (%)\n\n" + _table(
        ["data", "labels", "paper (MNIST)", "ours: mean ± std", "per seed", "steps per run", "wall per run"], rows))

    rows = [[r["data"], r["clusters"], PAPER_CLUSTERS.get(r["clusters"], "—") if r["data_set"] == "mnist" else "—",
             f"{100 * r['test_error']:.2f}", _percent(r.get("test_error_majority")), r["steps"],
             _minutes(r["wall_s"])] for r in _runs(root, "clustering")]
    out.append("### 3. Unsupervised clustering error (%)\n\n" + _table(
        ["data", "clusters", "paper (MNIST)", "ours (paper's protocol)", "ours (majority label)", "steps",
         "wall"], rows))

    rows = [[r["data"], r["mode"], f"{100 * r['test_error']:.2f}", _percent(r.get("test_error_majority")),
             f"{r['reconstruction_loss']:.1f}", r["steps"], _minutes(r["wall_s"])] for r in _runs(root, "dimred")]
    out.append("### 4. Dimensionality reduction to 2-D\n\n" + _table(
        ["data", "mode", "error % (ours)", "error % (majority label)", "test BCE", "steps", "wall"], rows))

    rows = [[r["run"], f"{r['reconstruction_loss']:.1f}",
             f"{100 * r['test_error']:.1f}" if "test_error" in r else "—", r["steps"], _minutes(r["wall_s"])]
            for r in _runs(root, "qualitative")]
    out.append("### 5. Qualitative runs\n\n" + _table(
        ["run", "test BCE", "nearest-component error % (label-conditioned)", "steps", "wall"], rows))

    rows = [[MODEL_NAMES[r["model"]], r["prior"], f"{r['reconstruction_loss']:.1f}",
             f"{r['parzen_log_likelihood']:.0f} ± {r['parzen_sem']:.0f}", r["steps"], _minutes(r["wall_s"])]
            for r in _runs(root, "figure2")]
    out.append("### 6. AAE against VAE, 2-D codes (Figure 2)\n\n" + _table(
        ["model", "prior", "test BCE", "Parzen LL (2-D code)", "steps", "wall"], rows))
    return "\n\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, required=True)
    args = p.parse_args(argv)
    print(report(args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
