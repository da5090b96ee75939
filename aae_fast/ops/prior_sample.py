"""Prior sampling ops: one pass from Philox counters to samples (DESIGN §5).

Three custom ops, `torch.ops.aae_fast.sample_gaussian_mixture`, `sample_swiss_roll` and
`sample_categorical`; their schemas live in csrc/ops.cpp. The functions here are the documented
Python entry points: they turn a `generator` into the op's `rng_state` and call the op. The ops are
served by C++ on CPU, by CUDA C++ or Triton on CUDA (`aae_fast.backend_info()` says which), and by
the pure-PyTorch composite of `aae_fast.ops._stream` when the extension is not built.

Random state: an int64 tensor [seed, offset] on the sampling device. Each call reads it on the
device and advances offset by n, so the same state gives the same samples on the same backend and a
CUDA-graph replay draws fresh numbers. `generator` may be
  - an `aae_fast.random.PhiloxGenerator`: its state tensor is used (and advanced) in place;
  - a `torch.Generator`: a fresh seed is drawn from it (it advances), offset 0;
  - None: a fresh seed is drawn from torch's default generator of the device.
"""

from __future__ import annotations

import torch

from .. import _backend
from ..random import rng_state_for
from . import _stream

_OPS = torch.ops.aae_fast
_NAMES = ("sample_gaussian_mixture", "sample_swiss_roll", "sample_categorical")


def sample_gaussian_mixture(
    n: int,
    loc: torch.Tensor,
    scale: torch.Tensor,
    cum_weights: torch.Tensor,
    labels: torch.Tensor | None = None,
    generator=None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Samples [n, D] rows of a Gaussian mixture in one pass.

    z_i = loc[c_i] + scale[c_i] @ eps_i, eps_i ~ N(0, I_D), where c_i = labels[i] when labels are
    given and is otherwise drawn from the cumulative weights.

    Args:
        n: number of rows.
        loc: [K, D] component means (float32 or float64: the compute precision).
        scale: [K, D] per-component standard deviations (diagonal covariance) or [K, D, D]
            lower-triangular Cholesky factors of the covariances; same dtype as loc.
        cum_weights: [K] cumulative component probabilities (last entry 1); same dtype as loc.
        labels: optional int64 [n] component index per row, in [0, K).
        generator: PhiloxGenerator, torch.Generator or None (see the module docstring).
        dtype: output dtype (default: torch's default dtype).
    """
    rng_state = rng_state_for(generator, loc.device)
    out_dtype = dtype if dtype is not None else torch.get_default_dtype()
    return _OPS.sample_gaussian_mixture(rng_state, n, loc, scale, cum_weights, labels, out_dtype)


def sample_swiss_roll(
    n: int,
    cum_weights: torch.Tensor,
    labels: torch.Tensor | None = None,
    radius: float = 3.0,
    turns: float = 2.0,
    generator=None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Samples [n, 2] points of a swiss roll split into K = len(cum_weights) label segments.

    Segment s_i = labels[i] or drawn from cum_weights; t = (s_i + u_i) / K with u_i ~ U[0, 1);
    z_i = radius * sqrt(t) * (cos a, sin a), a = 2 pi * turns * sqrt(t).
    """
    rng_state = rng_state_for(generator, cum_weights.device)
    out_dtype = dtype if dtype is not None else torch.get_default_dtype()
    return _OPS.sample_swiss_roll(
        rng_state, n, cum_weights, labels, float(radius), float(turns), out_dtype
    )


def sample_categorical(
    n: int,
    cum_weights: torch.Tensor,
    labels: torch.Tensor | None = None,
    generator=None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Samples [n, K] one-hot rows: class c_i = labels[i] or drawn from cum_weights [K]."""
    rng_state = rng_state_for(generator, cum_weights.device)
    out_dtype = dtype if dtype is not None else torch.get_default_dtype()
    return _OPS.sample_categorical(rng_state, n, cum_weights, labels, out_dtype)


# ----------------------------------------------------------------------------------------------
# Fake (meta) impls: shapes only, for torch.compile and FakeTensor tracing.


@torch.library.register_fake("aae_fast::sample_gaussian_mixture")
def _(rng_state, n, loc, scale, cum_weights, labels, dtype):
    torch._check(n >= 0, lambda: f"n must be a non-negative number of samples, got {n}")
    torch._check(loc.dim() == 2, lambda: f"loc must have shape [K, D], got {tuple(loc.shape)}")
    return rng_state.new_empty((n, loc.shape[1]), dtype=dtype)


@torch.library.register_fake("aae_fast::sample_swiss_roll")
def _(rng_state, n, cum_weights, labels, radius, turns, dtype):
    torch._check(n >= 0, lambda: f"n must be a non-negative number of samples, got {n}")
    return rng_state.new_empty((n, 2), dtype=dtype)


@torch.library.register_fake("aae_fast::sample_categorical")
def _(rng_state, n, cum_weights, labels, dtype):
    torch._check(n >= 0, lambda: f"n must be a non-negative number of samples, got {n}")
    torch._check(
        cum_weights.dim() == 1,
        lambda: f"cum_weights must have shape [K], got {tuple(cum_weights.shape)}",
    )
    return rng_state.new_empty((n, cum_weights.shape[0]), dtype=dtype)


# ----------------------------------------------------------------------------------------------
# Implementations registered from Python: Triton on CUDA (when chosen), and the composite where the
# extension has no kernel.


def _triton_launchers() -> dict:
    import importlib.util

    if importlib.util.find_spec("triton") is None:
        return {}
    from aae_fast.kernels import prior_sample as kernels

    return {name: getattr(kernels, f"{name}_fwd") for name in _NAMES}


_backend.register_python_kernels(
    composites={
        "sample_gaussian_mixture": _stream.sample_gaussian_mixture,
        "sample_swiss_roll": _stream.sample_swiss_roll,
        "sample_categorical": _stream.sample_categorical,
    },
    triton=_triton_launchers() if torch.cuda.is_available() else None,
)
