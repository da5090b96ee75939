"""Parzen-window (Gaussian kernel density) log-likelihood, the paper's likelihood protocol.

Makhzani et al. (2015, Sec. 2.1), following Goodfellow et al. (2014): draw 10,000 samples from the
generative model, fit an isotropic Gaussian Parzen window to them, choose its width ``sigma`` by
cross-validation (a grid search) on a validation set, and report the mean log-likelihood of the test
set with its standard error.

The density of the window at ``x`` is

    p(x) = (1/M) sum_j N(x; s_j, sigma^2 I)

so, with ``D`` the dimension,

    log p(x) = logsumexp_j( -||x - s_j||^2 / (2 sigma^2) ) - log M - (D/2) log(2 pi sigma^2).

Everything is computed in float64. Squared distances come from
``||x||^2 - 2 x.s + ||s||^2`` (one matrix product per tile, clamped at 0), never from an
``[N, M, D]`` difference tensor, and the log-sum-exp runs over tiles of both the points and the
samples, so memory is bounded by the tile sizes: two tiles of ``batch_size x sample_batch_size``
float64 values (64 MiB with the defaults) plus a float64 copy of ``samples``. It runs on whatever
device the inputs are on (CPU or CUDA).

This module is the reference for the fused ``aae_fast.ops.parzen_log_likelihood``; it depends on
torch (and tqdm) only.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import torch

from .._checks import positive_int

__all__ = [
    "DEFAULT_SIGMAS",
    "ParzenResult",
    "evaluate_parzen",
    "parzen_log_likelihood",
    "select_sigma",
]

#: The default grid of window widths searched by :func:`select_sigma`: 0.05 to 1, log-spaced
#: (20 values). Suited to data scaled to [0, 1] such as MNIST pixels, where the best width of a
#: good generator is typically 0.1 to 0.3.
DEFAULT_SIGMAS: torch.Tensor = torch.logspace(math.log10(0.05), 0.0, 20, dtype=torch.float64)

# Show a progress bar (progress=None) when an evaluation needs at least this many point-sample
# pairs: 10,000 x 10,000 does; small test-size problems do not.
_PROGRESS_THRESHOLD = 10_000_000


def _check_matrix(t: object, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 2:
        raise ValueError(f"{name} must have shape [N, D], got shape {tuple(t.shape)}")
    if not (t.is_floating_point()):
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    return t


def _check_inputs(x: object, samples: object, x_name: str = "x") -> None:
    _check_matrix(x, x_name)
    _check_matrix(samples, "samples")
    if samples.shape[0] == 0:
        raise ValueError("samples must hold at least one sample (shape [M, D] with M >= 1), got 0")
    if x.shape[1] != samples.shape[1]:
        raise ValueError(
            f"{x_name} and samples must have the same dimension D: "
            f"{x_name} has shape {tuple(x.shape)}, samples has shape {tuple(samples.shape)}"
        )
    if x.device != samples.device:
        raise ValueError(
            f"{x_name} and samples must be on the same device, got {x.device} and {samples.device}"
        )


def _as_sigmas(sigmas: object, device: torch.device) -> torch.Tensor:
    try:
        s = torch.as_tensor(sigmas, dtype=torch.float64).detach().reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(
            f"sigma must be a positive number, a sequence of them or a tensor, got "
            f"{type(sigmas).__name__} {sigmas!r}"
        ) from None
    if s.numel() == 0:
        raise ValueError("sigma: at least one window width is needed, got none")
    if not bool(torch.isfinite(s).all()) or not bool((s > 0).all()):
        raise ValueError(f"sigma must be finite and > 0, got {s.tolist()}")
    return s.to(device)


def _parzen_multi(
    x: torch.Tensor,
    samples: torch.Tensor,
    sigmas: torch.Tensor,
    batch_size: int,
    sample_batch_size: int,
    progress: bool | None,
    desc: str,
) -> torch.Tensor:
    """Log-likelihood of every row of ``x`` under the window for every width: ``[S, N]`` float64.

    The squared distances of a tile are computed once and shared by all widths, which is what
    makes a grid search cost about as much as one evaluation.
    """
    from tqdm.auto import tqdm

    n, d = x.shape
    m = samples.shape[0]
    device = x.device
    num_sigmas = sigmas.numel()
    out = torch.empty(num_sigmas, n, dtype=torch.float64, device=device)
    if n == 0:
        return out
    # -1 / (2 sigma^2) per width, as Python floats for the per-width loop below.
    scales = [-0.5 / s * (1.0 / s) for s in sigmas.cpu().tolist()]
    scales_t = torch.tensor(scales, dtype=torch.float64, device=device)  # [S]
    # log of (1/M) (2 pi sigma^2)^(-D/2): the normalising constant, per width: [S, 1].
    consts = (-math.log(m) - 0.5 * d * torch.log(2.0 * math.pi * sigmas.square())).unsqueeze(1)

    s64 = samples.detach().to(torch.float64)
    s_sq = s64.square().sum(dim=1)  # [M]
    if progress is None:
        progress = n * m >= _PROGRESS_THRESHOLD
    with torch.no_grad(), tqdm(
        total=n, desc=desc, unit="pt", disable=not progress, leave=False
    ) as bar:
        buf = None
        for i0 in range(0, n, batch_size):
            xb = x[i0 : i0 + batch_size].detach().to(torch.float64)  # [bn, D]
            xb_sq = xb.square().sum(dim=1, keepdim=True)  # [bn, 1]
            acc = None  # running log-sum-exp over the sample tiles: [S, bn]
            for j0 in range(0, m, sample_batch_size):
                sb = s64[j0 : j0 + sample_batch_size]
                # ||x||^2 + ||s||^2 - 2 x.s, clamped: rounding can make it slightly negative.
                dist = torch.addmm(s_sq[j0 : j0 + sample_batch_size], xb, sb.T, alpha=-2.0)
                dist.add_(xb_sq).clamp_(min=0.0)
                # Log-sum-exp with the row's nearest sample as the shift, shared by every width:
                # lse_k = c_k * dmin + log sum_j exp(c_k * (d_j - dmin)), each term in (0, 1].
                dmin = dist.amin(dim=1)  # [bn]
                dist.sub_(dmin.unsqueeze(1))
                if buf is None or buf.shape != dist.shape:
                    buf = torch.empty_like(dist)
                lse = torch.empty(len(scales), dist.shape[0], dtype=torch.float64, device=device)
                for k, c in enumerate(scales):
                    torch.mul(dist, c, out=buf).exp_()
                    torch.sum(buf, dim=1, out=lse[k])
                lse.log_().add_(torch.outer(scales_t, dmin))
                acc = lse if acc is None else torch.logaddexp(acc, lse)
            out[:, i0 : i0 + batch_size] = acc + consts
            bar.update(xb.shape[0])
    return out


def parzen_log_likelihood(
    x: torch.Tensor,
    samples: torch.Tensor,
    sigma: float | torch.Tensor,
    batch_size: int = 1024,
    *,
    sample_batch_size: int = 4096,
    progress: bool | None = None,
) -> torch.Tensor:
    """Log-likelihood of each row of ``x`` under a Gaussian Parzen window on ``samples``.

    ``out[i] = log( (1/M) sum_j N(x_i; samples_j, sigma^2 I) )``, normalising constant included.

    Args:
        x: ``[N, D]`` points to score (any floating dtype; converted to float64 tile by tile).
        samples: ``[M, D]`` samples from the model, ``M >= 1``, on the same device as ``x``.
        sigma: the window width (standard deviation of each kernel), a positive number or a
            one-element tensor.
        batch_size: rows of ``x`` per tile.
        sample_batch_size: rows of ``samples`` per tile. Peak extra memory is about
            ``2 * batch_size * sample_batch_size`` float64 values plus a float64 copy of
            ``samples``.
        progress: show a tqdm progress bar; ``None`` shows it only for large evaluations
            (``N * M >= 1e7``), ``False`` never.

    Returns:
        ``[N]`` float64 tensor on the device of ``x``. Finite whenever the inputs are, even where
        every kernel term underflows in a naive evaluation.
    """
    _check_inputs(x, samples)
    batch_size = positive_int(batch_size, "batch_size")
    sample_batch_size = positive_int(sample_batch_size, "sample_batch_size")
    sigmas = _as_sigmas(sigma, x.device)
    if sigmas.numel() != 1:
        raise ValueError(
            f"sigma must be a single width, got {sigmas.numel()} values; "
            "use select_sigma for a grid"
        )
    return _parzen_multi(x, samples, sigmas, batch_size, sample_batch_size, progress, "Parzen")[0]


def select_sigma(
    validation: torch.Tensor,
    samples: torch.Tensor,
    sigmas: Sequence[float] | torch.Tensor | None = None,
    batch_size: int = 1024,
    *,
    sample_batch_size: int = 4096,
    progress: bool | None = None,
) -> tuple[float, dict[float, float]]:
    """Choose the Parzen window width by grid search on a validation set (the paper's protocol).

    Args:
        validation: ``[N, D]`` held-out data (not the test set).
        samples: ``[M, D]`` samples from the model.
        sigmas: the candidate widths; default :data:`DEFAULT_SIGMAS` (20 values, 0.05 to 1,
            log-spaced). The distance tiles are shared by all widths, so a grid costs little more
            than one evaluation.
        batch_size, sample_batch_size, progress: as in :func:`parzen_log_likelihood`.

    Returns:
        ``(best_sigma, table)``: the width with the highest mean validation log-likelihood (the
        first of equal ones), and a dict ``{sigma: mean log-likelihood}`` over the grid in the
        order given. Warns when the best width is at an end of the grid (widen the grid).
    """
    _check_inputs(validation, samples, "validation")
    if validation.shape[0] == 0:
        raise ValueError("validation must hold at least one row, got shape "
                         f"{tuple(validation.shape)}")
    batch_size = positive_int(batch_size, "batch_size")
    sample_batch_size = positive_int(sample_batch_size, "sample_batch_size")
    grid = _as_sigmas(DEFAULT_SIGMAS if sigmas is None else sigmas, validation.device)
    ll = _parzen_multi(
        validation, samples, grid, batch_size, sample_batch_size, progress, "Parzen sigma search"
    )
    means = ll.mean(dim=1).cpu()
    grid_cpu = grid.cpu()
    best = int(torch.argmax(means))
    # At an end of the grid's range (whatever order the grid was given in), not of the list.
    at_min, at_max = bool(grid_cpu[best] == grid_cpu.min()), bool(grid_cpu[best] == grid_cpu.max())
    if grid_cpu.unique().numel() > 2 and (at_min or at_max):
        side = "smallest" if at_min else "largest"
        warnings.warn(
            f"select_sigma: the best width {float(grid_cpu[best]):.4g} is the {side} of the grid; "
            "the optimum may lie outside it",
            stacklevel=2,
        )
    table = {float(s): float(v) for s, v in zip(grid_cpu, means)}
    return float(grid_cpu[best]), table


@dataclass
class ParzenResult:
    """A Parzen-window evaluation: mean log-likelihood of a test set and its standard error.

    Attributes:
        mean: mean log-likelihood over the test rows (nats).
        sem: standard error of the mean, ``std / sqrt(N)`` (unbiased std; 0 when N == 1).
        sigma: the window width used.
        num_points: N, the number of test rows.
        num_samples: M, the number of model samples.
        sigma_table: ``{sigma: mean validation log-likelihood}`` when the width was selected by
            :func:`select_sigma`, else None.
        log_likelihoods: the ``[N]`` float64 per-row values (CPU); excluded from :meth:`as_dict`.
    """

    mean: float
    sem: float
    sigma: float
    num_points: int
    num_samples: int
    sigma_table: dict[float, float] | None = None
    log_likelihoods: torch.Tensor | None = field(default=None, repr=False)

    def as_dict(self) -> dict:
        """JSON-friendly dict (no tensors): mean, sem, sigma, num_points, num_samples and, when
        present, sigma_table with string keys."""
        d = {
            "mean": self.mean,
            "sem": self.sem,
            "sigma": self.sigma,
            "num_points": self.num_points,
            "num_samples": self.num_samples,
        }
        if self.sigma_table is not None:
            d["sigma_table"] = {repr(k): v for k, v in self.sigma_table.items()}
        return d

    def __str__(self) -> str:
        return f"{self.mean:.2f} ± {self.sem:.2f} (sigma={self.sigma:.4g}, N={self.num_points}, " \
               f"M={self.num_samples})"


def evaluate_parzen(
    test: torch.Tensor,
    samples: torch.Tensor,
    *,
    sigma: float | None = None,
    validation: torch.Tensor | None = None,
    sigmas: Sequence[float] | torch.Tensor | None = None,
    batch_size: int = 1024,
    sample_batch_size: int = 4096,
    progress: bool | None = None,
) -> ParzenResult:
    """The full protocol: pick ``sigma`` on ``validation`` (unless given), then score ``test``.

    Args:
        test: ``[N, D]`` test data.
        samples: ``[M, D]`` model samples (the paper uses M = 10,000).
        sigma: a fixed width; if None, ``validation`` is required and the width is chosen by
            :func:`select_sigma` over ``sigmas``.
        validation, sigmas: see :func:`select_sigma`.
        batch_size, sample_batch_size, progress: see :func:`parzen_log_likelihood`.

    Returns:
        A :class:`ParzenResult`.
    """
    _check_inputs(test, samples, "test")
    if test.shape[0] == 0:
        raise ValueError(f"test must hold at least one row, got shape {tuple(test.shape)}")
    table = None
    if sigma is None:
        if validation is None:
            raise ValueError("evaluate_parzen needs either sigma or a validation set to select it")
        sigma, table = select_sigma(
            validation, samples, sigmas, batch_size,
            sample_batch_size=sample_batch_size, progress=progress,
        )
    ll = parzen_log_likelihood(
        test, samples, sigma, batch_size, sample_batch_size=sample_batch_size, progress=progress
    ).cpu()
    n = ll.numel()
    sem = float(ll.std(correction=1) / math.sqrt(n)) if n > 1 else 0.0
    return ParzenResult(
        mean=float(ll.mean()),
        sem=sem,
        sigma=float(sigma),
        num_points=n,
        num_samples=samples.shape[0],
        sigma_table=table,
        log_likelihoods=ll,
    )
