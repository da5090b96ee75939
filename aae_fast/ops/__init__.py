"""aae_fast's custom operators (torch.library), one module per fused hot path.

Each op is a `torch.ops.aae_fast.<name>` operator with a fake impl (torch.compile), served by C++ on
CPU and by CUDA C++ or Triton on GPU; `aae_fast.backend_info()` says which implementation runs.
"""

from .. import _backend  # noqa: F401  (loads _C or defines the fallback schemas first)
from .prior_sample import sample_categorical, sample_gaussian_mixture, sample_swiss_roll
from .adversarial_loss import adversarial_d_loss, adversarial_g_loss
from .reconstruction_loss import reconstruction_loss
from .parzen_log_likelihood import parzen_log_likelihood
from .mmd import mmd
from .gaussian_reparameterize import gaussian_reparameterize
from .linear_act import linear_act

__all__ = [
    "sample_gaussian_mixture",
    "sample_swiss_roll",
    "sample_categorical",
    "adversarial_d_loss",
    "adversarial_g_loss",
    "reconstruction_loss",
    "parzen_log_likelihood",
    "mmd",
    "gaussian_reparameterize",
    "linear_act",
]
