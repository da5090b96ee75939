"""Evaluation shared by the eager reference and the fast path: the paper's metrics and figures.

- :mod:`.parzen`: Parzen-window log-likelihood (float64, tiled log-sum-exp), the window width chosen
  on a validation set, and the full protocol in :func:`evaluate_parzen`.
- :mod:`.metrics`: classification and clustering error rates, as fractions in [0, 1].
- :mod:`.plots`: latent-code scatter plots, image grids, reconstructions, the style-by-class grid.

Depends on torch, numpy, tqdm and matplotlib only (never on aae_fast.ops, aae_fast.nn or kernels):
it is the reference the fused Parzen op is checked against.
"""

from .metrics import (
    classification_error,
    cluster_to_label_mapping,
    clustering_error,
    paper_cluster_mapping,
)
from .parzen import (
    DEFAULT_SIGMAS,
    ParzenResult,
    evaluate_parzen,
    parzen_log_likelihood,
    select_sigma,
)
from .plots import (
    pca_2d,
    plot_image_grid,
    plot_latent,
    plot_latent_panels,
    plot_prior_and_codes,
    plot_reconstructions,
    plot_style_grid,
)

__all__ = [
    "DEFAULT_SIGMAS",
    "ParzenResult",
    "classification_error",
    "cluster_to_label_mapping",
    "clustering_error",
    "evaluate_parzen",
    "paper_cluster_mapping",
    "parzen_log_likelihood",
    "pca_2d",
    "plot_image_grid",
    "plot_latent",
    "plot_latent_panels",
    "plot_prior_and_codes",
    "plot_reconstructions",
    "plot_style_grid",
    "select_sigma",
]
