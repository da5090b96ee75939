"""Experiment 1: Parzen-window log-likelihood of the unsupervised AAE (paper, Table 1: MNIST 340 +- 2
nats, 8-D Gaussian code, 784-1000-1000-8 networks).

Protocol (as the paper): 10,000 samples decoded from the prior, a Gaussian Parzen window whose sigma
is chosen on a validation split (1,000 training images held out), mean log-likelihood of the test
set +- its standard error.

    python experiments/parzen.py --budget short --out runs/exp/parzen     # what RESULTS.md reports
    python experiments/parzen.py --budget paper --mnist mnist:FULL_MNIST_DIR --out runs/exp/parzen-paper
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

#: short budget: epochs per data set (the MNIST split has 70 steps an epoch, Fashion-MNIST 590).
SHORT_EPOCHS = {"mnist": 40, "fashion": 3}


def main(argv: list[str] | None = None) -> int:
    args = common.parser(__doc__).parse_args(argv)
    runner = common.Runner("parzen", args)
    table = []
    for seed in common.ints(args.seeds, [0]):
        for name in common.datasets(args, ["mnist", "fashion"]):
            flags = ["--model", "aae", "--latent-dim", "8", "--prior", "gaussian",
                     "--data", common.data_spec(args, name), "--seed", str(seed),
                     *common.budget_flags(args.budget, ["--epochs", str(SHORT_EPOCHS[name])])]
            row = runner.run(f"{name}-seed{seed}", flags, data_set=name, seed=seed)
            if row:
                table.append([name, seed, row["steps"], row["parzen_log_likelihood"], row["parzen_sem"],
                              row["parzen_sigma"], row["reconstruction_loss"], row["wall_s"]])
    if table:
        common.write_table(args.out / "summary.md",
                           ["data", "seed", "steps", "Parzen LL (nats)", "s.e.", "sigma", "test BCE", "wall s"],
                           table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
