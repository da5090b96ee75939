"""aae_fast: fast Adversarial Autoencoders (Makhzani et al., 2015) for PyTorch.

The paper's variants (`AdversarialAutoencoder`, `SupervisedAAE`, `SemiSupervisedAAE`,
`ClusteringAAE`, `DimReductionAAE`) run on fused hot paths by default (`backend="fused"`:
aae_fast.models, built from aae_fast.nn over aae_fast.ops, custom ops served by C++ on CPU and by
CUDA C++ or Triton on GPU) or as the eager reference (`backend="eager"`: aae_fast.reference);
`backend_info()` reports what is available and what each op runs on.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _dist_version

from . import _backend, baselines, data, evaluation, models, nn, ops, priors, random, reference
from .models import (
    AdversarialAutoencoder,
    ClusteringAAE,
    DimReductionAAE,
    SemiSupervisedAAE,
    SupervisedAAE,
)
from .accelerate import accelerate
from . import compile_backend  # noqa: E402,F401  (registers torch.compile(backend="aae_fast"))
from .random import PhiloxGenerator
from .training import Trainer

try:
    __version__ = _dist_version("aae_fast")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"


def backend_info() -> dict:
    """What this installation can run, and which implementation serves each op.

    Returns a dict with: `version`, `torch`, `triton` (None if not installed), `cpu_ext` and
    `cuda_ext` (the compiled extension is loaded with CPU / CUDA kernels), `triton_enabled` (Triton
    kernels can run here: a CUDA device, or TRITON_INTERPRET=1), `device` (the CUDA device name, or
    "cpu"), `extension_error` (why the extension did not load, or None) and `ops`: for each op, the
    implementation used on "cpu" ("cpp" or "composite") and on "cuda" ("cuda", "triton" or
    "composite"; None without CUDA), and its autograd formula, "autograd": "cpp" (the extension's
    C++ Autograd kernel), "python" (torch.library.register_autograd) or None (not differentiable).
    """
    import importlib.util

    import torch

    triton_version = None
    if importlib.util.find_spec("triton") is not None:
        import triton

        triton_version = triton.__version__
    has_cuda = torch.cuda.is_available()
    from ._schemas import SCHEMAS

    return {
        "version": __version__,
        "torch": torch.__version__,
        "triton": triton_version,
        "cpu_ext": _backend.STATUS.cpu_ext,
        "cuda_ext": _backend.STATUS.cuda_ext,
        "triton_enabled": _backend.triton_available(),
        "device": torch.cuda.get_device_name() if has_cuda else "cpu",
        "extension_error": _backend.STATUS.error,
        "ops": {
            name: {
                "cpu": _backend.cpu_backend(name),
                "cuda": _backend.cuda_backend(name) if has_cuda else None,
                "autograd": _backend.autograd_backend(name),
            }
            for name in SCHEMAS
        },
    }


__all__ = [
    "AdversarialAutoencoder",
    "ClusteringAAE",
    "DimReductionAAE",
    "SemiSupervisedAAE",
    "SupervisedAAE",
    "accelerate",
    "backend_info",
    "baselines",
    "models",
    "nn",
    "data",
    "evaluation",
    "ops",
    "priors",
    "random",
    "reference",
    "PhiloxGenerator",
    "Trainer",
    "__version__",
]
