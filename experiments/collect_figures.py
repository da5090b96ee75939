"""Copy the figures RESULTS.md shows from the `short` runs into docs/figures/results/, each under
MAX_BYTES (larger PNGs are re-encoded with a 256-colour palette, then scaled down).

    python experiments/collect_figures.py --runs /tmp/aae_exp --dest docs/figures/results

--runs is the directory holding the --out roots used in RESULTS.md (parzen-mnist, semi-mnist, ...).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

MAX_BYTES = 200_000
#: destination name -> path under --runs
FIGURES = {
    "parzen_mnist_samples.png": "parzen-mnist/mnist-seed0/samples.png",
    "parzen_mnist_latent.png": "parzen-mnist/mnist-seed0/latent.png",
    "parzen_fashion_samples.png": "parzen-fashion/fashion-seed0/samples.png",
    "parzen_fashion_reconstructions.png": "parzen-fashion/fashion-seed0/reconstructions.png",
    "clustering_mnist_16_samples.png": "clustering/mnist-16clusters-seed0/samples.png",
    "clustering_mnist_30_samples.png": "clustering/mnist-30clusters-seed0/samples.png",
    "dimred_semi_supervised.png": "dimred/mnist-semi-supervised-seed0/latent.png",
    "dimred_unsupervised.png": "dimred/mnist-unsupervised-seed0/latent.png",
    "latent_gaussian.png": "qualitative/mnist-gaussian/latent_vs_prior.png",
    "latent_mixture.png": "qualitative/mnist-mixture/latent_vs_prior.png",
    "latent_mixture_labels.png": "qualitative/mnist-mixture-labels/latent_vs_prior.png",
    "latent_swiss_roll.png": "qualitative/mnist-swiss-roll/latent_vs_prior.png",
    "latent_swiss_roll_labels.png": "qualitative/mnist-swiss-roll-labels/latent_vs_prior.png",
    "samples_mixture_labels.png": "qualitative/mnist-mixture-labels/samples.png",
    "style_grid.png": "qualitative/mnist-supervised-style/style_grid.png",
    "prior_gaussian.png": "qualitative/prior-gaussian/prior_samples.png",
    "prior_mixture.png": "qualitative/prior-mixture/prior_samples.png",
    "prior_swiss_roll.png": "qualitative/prior-swiss-roll/prior_samples.png",
    "figure2.png": "figure2/figure2.png",
    "parzen_mnist_vae_samples.png": "parzen-mnist/mnist-vae-seed0/samples.png",
    "parzen_mnist_gmmn_samples.png": "parzen-mnist/mnist-gmmn-ae-seed0/samples.png",
}


def shrink(path: Path) -> None:
    from PIL import Image

    image = Image.open(path).convert("RGB")
    scale = 1.0
    while path.stat().st_size > MAX_BYTES and scale > 0.3:
        size = (int(image.width * scale), int(image.height * scale))
        image.resize(size, Image.LANCZOS).quantize(256).save(path, optimize=True)
        scale *= 0.8


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, required=True)
    p.add_argument("--dest", type=Path, default=Path(__file__).resolve().parents[1] / "docs/figures/results")
    args = p.parse_args(argv)
    args.dest.mkdir(parents=True, exist_ok=True)
    for name, rel in FIGURES.items():
        src = args.runs / rel
        if not src.is_file():
            print(f"missing {src}")
            continue
        dst = args.dest / name
        shutil.copyfile(src, dst)
        if dst.stat().st_size > MAX_BYTES:
            shrink(dst)
        print(f"{dst} ({dst.stat().st_size // 1000} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
