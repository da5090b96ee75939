"""Experiment 5: the figures of the paper's qualitative sections (Figures 2, 4 and 5, and the priors).

  * 2-D latent codes of the test set under the Gaussian, the 10-component mixture and the swiss-roll
    priors, with and without label conditioning (Figures 2 and 4): latent_vs_prior.png / latent.png;
  * the supervised AAE's style grid (Figure 5: one style per row, the 10 classes across):
    style_grid.png;
  * decoded samples from the prior (samples.png) and the priors themselves, sampled by the fused
    ops (aae-fast sample: prior_samples.png).

    python experiments/qualitative.py --budget short --out runs/exp/qualitative   # RESULTS.md
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SHORT_EPOCHS = {"mnist": 10, "fashion": 1}
#: name -> flags; every AAE here has a 2-D code so that it can be drawn directly.
RUNS = {
    "gaussian": ["--model", "aae", "--latent-dim", "2", "--prior", "gaussian"],
    "mixture": ["--model", "aae", "--latent-dim", "2", "--prior", "mixture"],
    "mixture-labels": ["--model", "aae", "--latent-dim", "2", "--prior", "mixture", "--label-conditioned"],
    "swiss-roll": ["--model", "aae", "--latent-dim", "2", "--prior", "swiss-roll"],
    "swiss-roll-labels": ["--model", "aae", "--latent-dim", "2", "--prior", "swiss-roll", "--label-conditioned"],
    "supervised-style": ["--model", "supervised", "--latent-dim", "15"],
}
PRIOR_SAMPLES = {"gaussian": ["--prior", "gaussian", "--latent-dim", "2"],
                 "mixture": ["--prior", "mixture", "--labelled"],
                 "swiss-roll": ["--prior", "swiss-roll", "--labelled"]}


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--runs", default=",".join(RUNS), help="comma-separated subset of " + ", ".join(RUNS))
    args = p.parse_args(argv)
    runner = common.Runner("qualitative", args)
    from aae_fast.cli import main as cli

    for prior, flags in PRIOR_SAMPLES.items():
        out = args.out / f"prior-{prior}"
        n = "500" if args.budget == "tiny" else "10000"
        print("[qualitative] " + shlex.join(["aae-fast", "sample", *flags, "-n", n, "--out", str(out)]), flush=True)
        if not args.dry_run:
            cli(["sample", *flags, "-n", n, "--out", str(out)])
    table = []
    for name in common.datasets(args, ["mnist"]):
        for run in args.runs.split(","):
            # The 2-D codes carry no Parzen claim: 1,000 samples keep the evaluation short.
            schedule = common.budget_flags(args.budget, ["--epochs", str(SHORT_EPOCHS[name]), "--parzen-samples", "1000"])
            flags = [*RUNS[run], "--data", common.data_spec(args, name), *schedule]
            row = runner.run(f"{name}-{run}", flags, data_set=name, run=run)
            if row:
                table.append([name, run, row["steps"], row["reconstruction_loss"],
                              ", ".join(Path(f).name for f in row["figures"]), row["wall_s"]])
    if table:
        common.write_table(args.out / "summary.md", ["data", "run", "steps", "test BCE", "figures", "wall s"], table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
