"""Experiment 3: unsupervised clustering error (paper, Table 3, MNIST: 16 clusters 9.55%, 30 clusters
4.10%).

The ClusteringAAE (categorical cluster head of K, 10-D Gaussian style, no labels). The error is the
paper's (Sec. 6): each cluster takes the label of the validation image it is most confident of
(largest q(y_i|x)). Beside it, the error when each cluster takes the majority label of the test
images it holds (later papers' protocol; it reads the test labels, and more clusters can only
lower it).

    python experiments/clustering.py --budget short --out runs/exp/clustering     # RESULTS.md
    python experiments/clustering.py --budget paper --mnist mnist:FULL_MNIST_DIR --out runs/exp/clustering-paper
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SHORT_EPOCHS = {"mnist": 20, "fashion": 3}


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--clusters", default="16,30", help="comma-separated cluster counts")
    args = p.parse_args(argv)
    runner = common.Runner("clustering", args)
    table = []
    for name in common.datasets(args, ["mnist"]):
        for k in common.ints(args.clusters, [16, 30]):
            for seed in common.ints(args.seeds, [0]):
                flags = ["--model", "clustering", "--clusters", str(k), "--data", common.data_spec(args, name),
                         "--seed", str(seed),
                         *common.budget_flags(args.budget, ["--epochs", str(SHORT_EPOCHS[name])])]
                row = runner.run(f"{name}-{k}clusters-seed{seed}", flags, data_set=name, clusters=k, seed=seed)
                if row:
                    table.append([name, k, seed, row["steps"], 100 * row["test_error"],
                                  100 * row["test_error_majority"], row["wall_s"]])
    if table:
        common.write_table(args.out / "summary.md", ["data", "clusters", "seed", "steps", "error % (paper)",
                                                     "error % (majority)", "wall s"], table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
