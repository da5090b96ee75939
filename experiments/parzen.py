"""Experiment 1: Parzen-window log-likelihood of the unsupervised AAE and of the paper's baselines
(paper, Table 1, MNIST: AAE 340 +- 2 nats, GMMN+AE 282 +- 2; 8-D codes, 784-1000-1000-8 networks).
The VAE is the paper's other comparison (§2.1); it is scored by the same protocol.

Protocol (as the paper): 10,000 samples decoded from the prior (from the GMMN's generator for
gmmn-ae), a Gaussian Parzen window whose sigma is chosen on a validation split (1,000 training
images held out), mean log-likelihood of the test set +- its standard error.

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


MODELS = ("aae", "vae", "gmmn-ae")


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS))
    args = p.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = set(models) - set(MODELS)
    if unknown:
        raise SystemExit(f"--models: unknown models {sorted(unknown)} ({', '.join(MODELS)})")
    runner = common.Runner("parzen", args)
    table = []
    for seed in common.ints(args.seeds, [0]):
        for name in common.datasets(args, ["mnist", "fashion"]):
            for model in models:
                flags = ["--model", model, "--latent-dim", "8",
                         "--data", common.data_spec(args, name), "--seed", str(seed),
                         *common.budget_flags(args.budget, ["--epochs", str(SHORT_EPOCHS[name])])]
                # The AAE's runs keep their earlier names (RESULTS.md links them).
                run = f"{name}-seed{seed}" if model == "aae" else f"{name}-{model}-seed{seed}"
                row = runner.run(run, flags, data_set=name, seed=seed, model=model)
                if row:
                    table.append([name, model, seed, row["steps"], row["parzen_log_likelihood"],
                                  row["parzen_sem"], row["parzen_sigma"], row["reconstruction_loss"],
                                  row["wall_s"]])
    if table:
        common.write_table(args.out / "summary.md",
                           ["data", "model", "seed", "steps", "Parzen LL (nats)", "s.e.", "sigma",
                            "test BCE", "wall s"],
                           table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
