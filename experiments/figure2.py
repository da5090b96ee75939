"""The paper's Figure 2: AAE against VAE, codes of the MNIST test set in a 2-D latent space under a
spherical Gaussian prior and under the 10-component mixture, side by side in one PNG.

Four runs (aae and vae, each under both priors; 784-1000-1000-2 networks), then figure2.png: one
panel per run, coloured by digit. Each panel shows the codes the regularisation shapes: the AAE's
deterministic codes and samples of the VAE's posterior q(z|x) (its aggregated posterior). The paper's
reading: the AAE's codes fill the prior, mixture modes included, where the VAE's leave gaps and pull
towards the origin, because its KL term matches each q(z|x) to the prior, not their aggregate.

    python experiments/figure2.py --budget short --out runs/exp/figure2     # RESULTS.md
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SHORT_EPOCHS = {"mnist": 10, "fashion": 1}
#: (model, prior) per panel, in reading order: the Gaussian row, then the mixture row.
PANELS = [("aae", "gaussian"), ("vae", "gaussian"), ("aae", "mixture"), ("vae", "mixture")]
NAMES = {"aae": "AAE", "vae": "VAE", "gaussian": "2-D Gaussian prior", "mixture": "mixture of 10 Gaussians"}


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--points", type=int, default=5000, help="test codes drawn per panel")
    args = p.parse_args(argv)
    (name,) = common.datasets(args, ["mnist"])[:1]
    runner = common.Runner("figure2", args)
    runs, table = [], []
    for model, prior in PANELS:
        flags = ["--model", model, "--latent-dim", "2", "--prior", prior,
                 "--data", common.data_spec(args, name), "--seed", "0",
                 *common.budget_flags(args.budget, ["--epochs", str(SHORT_EPOCHS[name])])]
        row = runner.run(f"{name}-{model}-{prior}", flags, model=model, prior=prior)
        runs.append((model, prior, args.out / f"{name}-{model}-{prior}"))
        if row:
            table.append([name, model, prior, row["steps"], row["reconstruction_loss"],
                          row["parzen_log_likelihood"], row["wall_s"]])
    if args.dry_run:
        return 0
    common.write_table(args.out / "summary.md",
                       ["data", "model", "prior", "steps", "test BCE", "Parzen LL (2-D code)", "wall s"], table)
    path = draw(runs, args.out / "figure2.png", args.points)
    print(f"wrote {path}")
    return 0


def draw(runs: list[tuple[str, str, Path]], path: Path, points: int) -> Path:
    """One panel per finished run directory: its model's codes of the run's test split."""
    import torch

    from aae_fast import evaluation
    from aae_fast.experiment import load_run, load_splits

    panels = []
    for model, prior, out in runs:
        config, net = load_run(out)
        test = load_splits(config).test
        n = min(points, len(test))
        torch.manual_seed(0)  # the VAE's posterior samples
        with torch.no_grad():
            codes = net.encode(test.images[:n], sample=True)
        panels.append((f"{NAMES[model]}, {NAMES[prior]}", codes, test.labels[:n]))
    return evaluation.plot_latent_panels(
        panels, path, title=f"Test codes, AAE vs VAE (Makhzani et al. 2015, Fig. 2); {test.name}"
    )


if __name__ == "__main__":
    sys.exit(main())
