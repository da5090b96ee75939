"""Parzen-window log-likelihood as one tiled op (issue 5).

`torch.ops.aae_fast.parzen_log_likelihood(x, samples, sigma)`; schema in csrc/ops.cpp. Served by
C++ on CPU (csrc/cpu/parzen_log_likelihood.cpp: BLAS GEMM tiles plus a fused, vectorised online
log-sum-exp), by CUDA C++ or Triton on CUDA (csrc/cuda/parzen_log_likelihood.cu,
kernels/parzen_log_likelihood.py; the CUDA C++ op hands D >= 256 to cuBLAS GEMM tiles driven by
ATen ops, csrc/aten/parzen_gemm_tiles.cpp, which beat its SIMT kernel at D = 784 on an H200, unless
TF32 is allowed for float32 matmuls, whose rounding the distance expansion cannot afford), and by
the tiled pure-PyTorch composite below when the extension is not built. `aae_fast.evaluation.parzen`
is the float64 oracle the tests hold it to.
"""

from __future__ import annotations

import math
import numbers

import torch

from .. import _backend

_OPS = torch.ops.aae_fast
_NAME = "parzen_log_likelihood"
_INPUT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def parzen_log_likelihood(x: torch.Tensor, samples: torch.Tensor, sigma: float) -> torch.Tensor:
    """Log-likelihood of each row of ``x`` under an isotropic Gaussian Parzen window on ``samples``.

    ``out[i] = log( (1/M) sum_j N(x_i; samples_j, sigma^2 I) )``
    ``       = logsumexp_j( -||x_i - samples_j||^2 / (2 sigma^2) ) - log M - (D/2) log(2 pi sigma^2)``

    Computed in tiles, like flash attention: squared distances come from GEMM tiles
    (``||x||^2 - 2 x.s + ||s||^2``, clamped at 0 where rounding makes them negative) and are folded
    into a running log-sum-exp per row, so the ``N x M`` distance matrix never exists: memory beyond
    the inputs is O(N + M) plus one tile per thread (CPU) or per program / GEMM tile (GPU).
    Everything stays in the log domain, so the result is finite wherever ``log p`` is (at
    ``sigma = 0.01`` and ``D = 784`` every ``exp`` of a naive evaluation underflows); only where
    ``min d2 / (2 sigma^2)`` itself overflows float64 (``sigma`` near 1e-160 at unit distances) is
    every term ``-inf``, and the result NaN.

    Reproducible run to run; on CPU not bit for bit across thread counts: with fewer row tiles
    than threads the sample tiles are split among the threads and their log-sum-exps merged, so
    the last bits (about 1e-15 relative in float64; none seen in float32) depend on the count.

    Args:
        x: ``[N, D]`` points to score; ``N = 0`` gives an empty result.
        samples: ``[M, D]`` window centres (the model's samples), ``M >= 1``; same dtype and
            device as ``x``. Any strides.
        sigma: the window width, a Python number, finite and ``> 0`` (a one-element tensor is
            accepted in eager mode and read with ``.item()``; under ``torch.compile`` pass a float).

    Returns:
        ``[N]`` tensor on ``x``'s device: float64 for float64 inputs, float32 for float32, float16
        and bfloat16 inputs. float64 inputs are computed in float64 throughout; the others in
        float32 (16-bit inputs are widened before the products, so those are exact) with float64
        row norms and running sums. The absolute error of the float32 path is about
        ``1e-7 (||x||^2 + ||s||^2) / (2 sigma^2)``: use float64 inputs for near-duplicate points at
        very small ``sigma``. Inputs must be finite: the expansion ``||x||^2 - 2 x.s + ||s||^2`` is
        ``inf - inf`` at an infinite coordinate, so a row of ``x`` holding ``inf`` gives NaN (not
        the ``-inf`` of the exact formula), and a sample holding ``+inf`` makes NaN every row whose
        coordinate there is ``>= 0`` (the other rows only lose that sample); NaN propagates the
        same way. (Checking would cost a host synchronisation per call.)

    Not differentiable: this is an evaluation op and has no autograd formula. The inputs are
    detached, so the result never requires grad. (Calling ``torch.ops.aae_fast.parzen_log_likelihood``
    directly with inputs that require grad gives a result whose backward warns, through PyTorch's
    autograd fallback, and contributes no gradient.)
    """
    return _OPS.parzen_log_likelihood(x.detach(), samples.detach(), _as_sigma(sigma))


@torch.library.register_fake("aae_fast::parzen_log_likelihood")
def _(x, samples, sigma):
    _check_args(x, samples, sigma)
    return x.new_empty((x.shape[0],), dtype=_output_dtype(x.dtype))


def _as_sigma(sigma) -> float:
    if isinstance(sigma, torch.Tensor):
        if sigma.numel() != 1:
            raise TypeError(f"sigma must be a number, got a tensor of shape {tuple(sigma.shape)}")
        return float(sigma.item())
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
        raise TypeError(f"sigma must be a number, got {type(sigma).__name__}")
    return float(sigma)


def _output_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check_args(x: torch.Tensor, samples: torch.Tensor, sigma: float) -> None:
    """The checks of csrc/include/aae_fast/parzen_checks.h, same messages (RuntimeError)."""
    torch._check(x.dim() == 2, lambda: f"x must have shape [N, D], got {list(x.shape)}")
    torch._check(
        samples.dim() == 2, lambda: f"samples must have shape [M, D], got {list(samples.shape)}"
    )
    torch._check(
        samples.shape[0] >= 1,
        lambda: "samples must hold at least one sample (shape [M, D] with M >= 1), got "
        f"{list(samples.shape)}",
    )
    torch._check(
        samples.shape[1] == x.shape[1],
        lambda: f"samples must have the dimension D of x: x has shape {list(x.shape)}, samples "
        f"has shape {list(samples.shape)}",
    )
    torch._check(
        x.dtype in _INPUT_DTYPES,
        lambda: f"x must be float32, float64, float16 or bfloat16, got {x.dtype}",
    )
    torch._check(
        samples.dtype == x.dtype,
        lambda: f"samples must have the dtype of x ({x.dtype}), got {samples.dtype}",
    )
    torch._check(
        samples.device == x.device,
        lambda: f"samples must be on the device of x ({x.device}), got {samples.device}",
    )
    torch._check(
        math.isfinite(sigma) and sigma > 0,
        lambda: f"sigma must be a finite number > 0, got {sigma}",
    )


# ----------------------------------------------------------------------------------------------
# The pure-PyTorch composite: the same tiling and log-domain merge with torch ops.

_COMPOSITE_ROWS = 1024
_COMPOSITE_SAMPLES = 2048


def _composite(x: torch.Tensor, samples: torch.Tensor, sigma: float) -> torch.Tensor:
    """Tiled fallback: per tile addmm distances, (min d2, sum exp((min - d2) h)), float64 merge."""
    _check_args(x, samples, sigma)
    compute = _output_dtype(x.dtype)
    n, d = x.shape
    m = samples.shape[0]
    out = torch.empty((n,), dtype=compute, device=x.device)
    if n == 0:
        return out
    h64 = 0.5 / sigma / sigma
    h64 = h64 if math.isfinite(h64) else torch.finfo(torch.float64).max
    h = min(h64, torch.finfo(compute).max)  # keeps 0 * h = 0 in float32
    log_norm = -math.log(m) - d * (math.log(sigma) + 0.5 * math.log(2.0 * math.pi))

    def sq_norms(t: torch.Tensor) -> torch.Tensor:
        return t.double().square().sum(dim=1).to(compute)

    s_sq = torch.cat(
        [sq_norms(samples[j0 : j0 + _COMPOSITE_SAMPLES]) for j0 in range(0, m, _COMPOSITE_SAMPLES)]
    )
    with torch.no_grad():
        for i0 in range(0, n, _COMPOSITE_ROWS):
            xb = x[i0 : i0 + _COMPOSITE_ROWS].to(compute)
            xb_sq = sq_norms(xb)
            run_max = torch.full((xb.shape[0],), -math.inf, dtype=torch.float64, device=x.device)
            run_sum = torch.zeros((xb.shape[0],), dtype=torch.float64, device=x.device)
            for j0 in range(0, m, _COMPOSITE_SAMPLES):
                sb = samples[j0 : j0 + _COMPOSITE_SAMPLES].to(compute)
                d2 = torch.addmm(s_sq[None, j0 : j0 + sb.shape[0]], xb, sb.T, alpha=-2.0)
                d2.add_(xb_sq[:, None]).clamp_min_(0.0)  # cancellation; NaN stays NaN
                d_min = d2.amin(dim=1)
                block_sum = torch.exp((d_min[:, None] - d2) * h).sum(dim=1).double()
                block_max = d_min.double() * -h64
                new_max = torch.maximum(run_max, block_max)
                run_sum = run_sum * torch.exp(run_max - new_max) + block_sum * torch.exp(
                    block_max - new_max
                )
                run_max = new_max
            out[i0 : i0 + xb.shape[0]] = (run_max + run_sum.log() + log_norm).to(compute)
    return out


# ----------------------------------------------------------------------------------------------
# Implementations registered from Python: Triton on CUDA (when chosen), and the composite where the
# extension has no kernel (see aae_fast._backend.register_python_kernels).


def _triton_cuda(x: torch.Tensor, samples: torch.Tensor, sigma: float) -> torch.Tensor:
    from aae_fast.kernels import parzen_log_likelihood as kernels

    _check_args(x, samples, sigma)  # the op's messages, as RuntimeError
    return kernels.parzen_log_likelihood_fwd(x, samples, sigma)


def _triton_launchers() -> dict:
    import importlib.util

    if not torch.cuda.is_available() or importlib.util.find_spec("triton") is None:
        return {}
    return {_NAME: _triton_cuda}


_backend.register_python_kernels({_NAME: _composite}, _triton_launchers())
