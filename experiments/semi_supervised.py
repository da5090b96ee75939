"""Experiment 2: semi-supervised classification error (paper, Table 2, MNIST: 1.90% +- 0.10 with 100
labels, 1.60% +- 0.08 with 1000, 0.85% +- 0.02 with all labels).

The SemiSupervisedAAE (style z of 10 dims under a Gaussian, label y under a categorical, two
discriminators, the paper's three phases). "100 labels" = 10 per class, "1000" = 100 per class,
"all" = the largest class-balanced labelled set of the training split (every image of the smallest
class; on the 8,000-image MNIST split that is nearly all of its labels).

    python experiments/semi_supervised.py --budget short --out runs/exp/semi   # RESULTS.md
    python experiments/semi_supervised.py --budget paper --mnist mnist:FULL_MNIST_DIR \\
        --seeds 0,1,2,3,4 --labels 100,1000,all --out runs/exp/semi-paper
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SHORT_EPOCHS = {"mnist": 20, "fashion": 2}
PER_CLASS = {"100": 10, "1000": 100}


def all_labels_per_class(spec: str, seed: int) -> int:
    """Examples of the smallest class in the run's training split (after the validation hold-out)."""
    import torch

    from aae_fast.experiment import RunConfig, load_splits

    splits = load_splits(RunConfig(model="aae", data=spec, seed=seed))
    return int(torch.bincount(splits.train.labels, minlength=splits.train.num_classes).min())


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--labels", default=None, help="comma-separated: 100, 1000, all (default: the budget's)")
    args = p.parse_args(argv)
    runner = common.Runner("semi-supervised", args)
    if args.labels is not None:
        settings = [(d, lab, s) for d in common.datasets(args, ["mnist"]) for lab in args.labels.split(",")
                    for s in common.ints(args.seeds, [0])]
    elif args.budget == "short":  # what fits: 2 seeds for 100 labels on MNIST, 1 otherwise
        settings = [(d, lab, s) for d in common.datasets(args, ["mnist", "fashion"]) for lab in ("100", "1000")
                    for s in common.ints(args.seeds, [0, 1] if (d, lab) == ("mnist", "100") else [0])]
    else:
        settings = [(d, lab, s) for d in common.datasets(args, ["mnist"]) for lab in ("100", "1000")
                    for s in common.ints(args.seeds, [0] if args.budget == "tiny" else [0, 1, 2, 3, 4])]
    by_setting: dict[tuple[str, str], list[dict]] = {}
    for name, labels, seed in settings:
        spec = common.data_spec(args, name)
        per_class = PER_CLASS[labels] if labels in PER_CLASS else all_labels_per_class(spec, seed)
        flags = ["--model", "semi-supervised", "--labels-per-class", str(per_class), "--data", spec,
                 "--seed", str(seed), *common.budget_flags(args.budget, ["--epochs", str(SHORT_EPOCHS[name])])]
        row = runner.run(f"{name}-{labels}labels-seed{seed}", flags, data_set=name, labels=labels,
                         labels_per_class=per_class, seed=seed)
        if row:
            by_setting.setdefault((name, labels), []).append(row)
    table = []
    for (name, labels), rows in by_setting.items():
        mean, std = common.mean_std([100 * r["test_error"] for r in rows])
        table.append([name, labels, len(rows), mean, std, ", ".join(f"{100 * r['test_error']:.2f}" for r in rows),
                      rows[0]["steps"], ", ".join(f"{r['wall_s']:.0f}" for r in rows)])
    if table:
        common.write_table(args.out / "summary.md",
                           ["data", "labels", "seeds", "error % mean", "std", "per seed %", "steps", "wall s"], table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
