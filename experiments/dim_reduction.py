"""Experiment 4: dimensionality reduction to 2-D with cluster heads (paper, Section 7, Figure 9).

The DimReductionAAE: the 2-D representation is the cluster head's embedding plus a 2-D style code.
Semi-supervised (1000 labels, 10 heads; error = classification error of the head) and unsupervised
(20 heads; error = clustering error, each head labelled as the paper labels clusters: by the
validation image it is most confident of; the majority label of its test images beside it). The figure is the 2-D
representation of the test set, coloured by the true label (latent.png of each run).

    python experiments/dim_reduction.py --budget short --out runs/exp/dimred      # RESULTS.md
    python experiments/dim_reduction.py --budget paper --mnist mnist:FULL_MNIST_DIR --out runs/exp/dimred-paper
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SHORT_EPOCHS = {"mnist": 20, "fashion": 3}
SETTINGS = {"semi-supervised": ["--labels-per-class", "100"], "unsupervised": ["--clusters", "20"]}


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--modes", default="semi-supervised,unsupervised", help="comma-separated subset of "
                   + ", ".join(SETTINGS))
    args = p.parse_args(argv)
    runner = common.Runner("dim-reduction", args)
    table = []
    for name in common.datasets(args, ["mnist"]):
        for mode in args.modes.split(","):
            for seed in common.ints(args.seeds, [0]):
                flags = ["--model", "dim-reduction", "--latent-dim", "2", *SETTINGS[mode],
                         "--data", common.data_spec(args, name), "--seed", str(seed),
                         *common.budget_flags(args.budget, ["--epochs", str(SHORT_EPOCHS[name])])]
                row = runner.run(f"{name}-{mode}-seed{seed}", flags, data_set=name, mode=mode, seed=seed)
                if row:
                    majority = row.get("test_error_majority")  # unsupervised mode only
                    table.append([name, mode, seed, row["steps"], 100 * row["test_error"],
                                  "-" if majority is None else 100 * majority, row["wall_s"]])
    if table:
        common.write_table(args.out / "summary.md", ["data", "mode", "seed", "steps", "error %",
                                                     "error % (majority)", "wall s"], table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
