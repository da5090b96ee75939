"""Priors p(z) for the adversarial regularization. Only sampling is required of a prior: that is the
point of the AAE (Makhzani et al., 2015, §2: the adversarial network needs samples from p(z), never
its density).

Every prior has `.dim`, `.num_components` (the number of label-selectable components, or None) and

    prior.sample(n, labels=None, generator=None, device=None, dtype=None, backend="fused")

`labels` (int64, shape (n,)) picks the component / segment / class of each row, as the paper's
label-conditioned regularization needs (§2.3). `backend="fused"` calls aae_fast's one-pass sampling
ops (C++ on CPU, CUDA C++ or Triton on GPU); `backend="eager"` samples with plain torch ops
(`torch.multinomial`, `torch.randn`, indexing, affine) and is what `aae_fast.reference` uses, so the
oracle and the baseline share no fused code. Both draw from the same distribution, not the same
numbers.
"""

from __future__ import annotations

import math
import operator
from abc import ABC, abstractmethod
from typing import Any, Callable

import torch

from . import _backend
from ._checks import positive_int
from .ops import prior_sample as _ops
from .random import PhiloxGenerator

_BACKENDS = ("fused", "eager")


class Prior(ABC):
    """Base class: argument checking, parameter caching per (device, dtype), backend dispatch."""

    dim: int
    num_components: int | None = None

    def __init__(self) -> None:
        self._param_cache: dict[tuple[torch.device, torch.dtype], dict[str, torch.Tensor]] = {}

    # -- public API ---------------------------------------------------------------------------
    def sample(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | PhiloxGenerator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        backend: str = "fused",
    ) -> torch.Tensor:
        """Draws `n` samples, a tensor of shape (n, dim).

        Args:
            n: number of samples (a non-negative int).
            labels: optional int64 tensor of shape (n,) choosing each row's component, in
                [0, num_components). Only for priors with components.
            generator: a torch.Generator, an aae_fast.random.PhiloxGenerator (fused backend only)
                or None for torch's default generator.
            device: where to sample (default: the generator's device, else labels', else CPU).
            dtype: floating dtype of the result (default: torch.get_default_dtype()).
            backend: "fused" (aae_fast ops) or "eager" (plain torch ops).
        """
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
        n = _check_n(n)
        device = _resolve_device(device, generator, labels)
        dtype = _resolve_dtype(dtype)
        if labels is not None:
            self._check_labels(labels, n, device, read_values=not self._kernel_checks_labels(backend))
        if backend == "eager" and isinstance(generator, PhiloxGenerator):
            raise TypeError(
                "generator: backend='eager' samples with torch ops and needs a torch.Generator "
                "or None, got a PhiloxGenerator"
            )
        if backend == "fused":
            return self._sample_fused(n, labels, generator, device, dtype)
        return self._sample_eager(n, labels, generator, device, dtype)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) [N] of codes z [N, dim], differentiable in z, computed in z's dtype (float32
        or float64). Priors with a density have it (Gaussian, MixtureOfGaussians); the VAE baseline
        needs it where the KL term has no closed form. The others only sample, which is all an AAE
        needs (the point of §2)."""
        raise NotImplementedError(
            f"{type(self).__name__} has no density (log_prob): it can only be sampled"
        )

    def _check_codes(self, z: Any) -> torch.Tensor:
        if not isinstance(z, torch.Tensor):
            raise TypeError(f"z must be a torch.Tensor, got {type(z).__name__}")
        if z.dim() != 2 or z.shape[1] != self.dim:
            raise ValueError(f"z must have shape [N, {self.dim}], got {list(z.shape)}")
        if z.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"z must be float32 or float64, got {z.dtype}")
        return z

    # -- subclass hooks -----------------------------------------------------------------------
    @abstractmethod
    def _sample_fused(self, n, labels, generator, device, dtype) -> torch.Tensor: ...

    @abstractmethod
    def _sample_eager(self, n, labels, generator, device, dtype) -> torch.Tensor: ...

    @abstractmethod
    def _parameters(self) -> dict[str, torch.Tensor]:
        """The prior's parameters as float64 CPU tensors (cast and moved on demand)."""

    # -- helpers --------------------------------------------------------------------------------
    def params(self, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """Parameters on `device` in the compute precision for output `dtype` (cached)."""
        compute = torch.float64 if dtype == torch.float64 else torch.float32
        key = (torch.device(device), compute)
        if key not in self._param_cache:
            self._param_cache[key] = {
                name: t.to(device=device, dtype=compute) for name, t in self._parameters().items()
            }
        return self._param_cache[key]

    #: The custom op behind ``backend="fused"`` (None: the sampler is Python code).
    _fused_op: str | None = None

    def _kernel_checks_labels(self, backend: str) -> bool:
        """Whether the fused sampling op checks label values itself: its C++ CPU kernel does
        (reading them in C++, not through ``.item()``, which the no-host-sync tests look for)."""
        return (
            backend == "fused"
            and self._fused_op is not None
            and _backend.cpu_backend(self._fused_op) == "cpp"
        )

    def _check_labels(
        self, labels: torch.Tensor, n: int, device: torch.device, read_values: bool = True
    ) -> None:
        if self.num_components is None:
            raise ValueError(
                f"labels: {type(self).__name__} has no components to select, so labels must be "
                "None"
            )
        if not isinstance(labels, torch.Tensor):
            raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
        if labels.dtype != torch.int64:
            raise TypeError(f"labels must have dtype torch.int64, got {labels.dtype}")
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},) to match n, got {tuple(labels.shape)}")
        if labels.device != device:
            raise ValueError(f"labels must be on {device} (the sampling device), got {labels.device}")
        # Reading values needs a host sync: do it on CPU only (CUDA rows with bad labels are NaN).
        if read_values and labels.device.type == "cpu" and n > 0 and not torch.compiler.is_compiling():
            lo, hi = int(labels.min()), int(labels.max())
            if lo < 0 or hi >= self.num_components:
                raise ValueError(
                    f"labels must lie in [0, {self.num_components}), got values in [{lo}, {hi}]"
                )

    def _components(self, n, labels, generator, device, cum_weights) -> torch.Tensor:
        """Eager: the component of each row, the label or a multinomial draw."""
        if labels is not None:
            return labels
        if n == 0:  # torch.multinomial refuses to draw no sample
            return torch.empty(0, dtype=torch.int64, device=cum_weights.device)
        probs = torch.diff(cum_weights, prepend=cum_weights.new_zeros(1))
        return torch.multinomial(probs, n, replacement=True, generator=generator)


class Gaussian(Prior):
    """N(mean, diag(std^2)) in `dim` dimensions; mean and std are scalars or length-`dim` vectors.

    The paper's default prior (§2).
    """

    _fused_op = "sample_gaussian_mixture"

    def __init__(self, dim: int, mean=0.0, std=1.0) -> None:
        super().__init__()
        self.dim = positive_int(dim, "dim")
        self.mean = _as_vector(mean, self.dim, "mean")
        self.std = _as_vector(std, self.dim, "std")
        if not ((self.std > 0) & torch.isfinite(self.std)).all():
            raise ValueError(f"std must be positive and finite, got {self.std.tolist()}")
        if not torch.isfinite(self.mean).all():
            raise ValueError(f"mean must be finite, got {self.mean.tolist()}")

    def _parameters(self):
        return {
            "loc": self.mean[None, :],
            "scale": self.std[None, :],
            "cum_weights": torch.ones(1, dtype=torch.float64),
        }

    def _sample_fused(self, n, labels, generator, device, dtype):
        p = self.params(device, dtype)
        return _ops.sample_gaussian_mixture(
            n, p["loc"], p["scale"], p["cum_weights"], None, generator, dtype
        )

    def _sample_eager(self, n, labels, generator, device, dtype):
        p = self.params(device, dtype)
        eps = torch.randn(n, self.dim, generator=generator, device=device, dtype=p["loc"].dtype)
        return (p["loc"] + p["scale"] * eps).to(dtype)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        z = self._check_codes(z)
        mean, std = self.mean.to(z), self.std.to(z)
        u = (z - mean) / std
        return -0.5 * (u * u).sum(1) - std.log().sum() - 0.5 * self.dim * math.log(2 * math.pi)

    def __repr__(self) -> str:
        return f"Gaussian(dim={self.dim})"


class MixtureOfGaussians(Prior):
    """A mixture of K Gaussians; `labels` pick components.

    Default layout (the paper's Fig. 4/6 prior): K components on a circle of radius `radius` in the
    first two coordinates, each elongated along its radius (std `radial_std` along the radius,
    `tangential_std` across it; further coordinates, if dim > 2, have std `tangential_std`), with
    equal weights. The paper does not give these numbers; the defaults keep ten components well
    apart.

    General form: pass `means` [K, D] and either `covariances` [K, D, D] (symmetric positive
    definite) or `stds` (a scalar, [D] or [K, D] diagonal standard deviations); `weights` [K] are
    normalised.
    """

    _fused_op = "sample_gaussian_mixture"

    def __init__(
        self,
        num_components: int = 10,
        dim: int = 2,
        radius: float = 4.0,
        radial_std: float = 1.0,
        tangential_std: float = 0.25,
        means=None,
        covariances=None,
        stds=None,
        weights=None,
    ) -> None:
        super().__init__()
        if means is None:
            self.num_components = positive_int(num_components, "num_components")
            self.dim = positive_int(dim, "dim")
            if self.dim < 2:
                raise ValueError(f"dim must be >= 2 for the circle layout, got {dim}")
            if covariances is not None or stds is not None:
                raise ValueError("covariances/stds need explicit means; pass means=[K, D] too")
            for name, value in (("radial_std", radial_std), ("tangential_std", tangential_std)):
                if not 0 < value < math.inf:
                    raise ValueError(f"{name} must be positive and finite, got {value}")
            if not math.isfinite(radius):
                raise ValueError(f"radius must be finite, got {radius}")
            self.means, self.scale = _circle_layout(
                self.num_components, self.dim, float(radius), float(radial_std), float(tangential_std)
            )
        else:
            # A copy: the caller's tensor may change later, and sampling caches its values.
            self.means = torch.as_tensor(means, dtype=torch.float64).clone()
            if self.means.dim() != 2 or self.means.shape[0] < 1 or self.means.shape[1] < 1:
                raise ValueError(f"means must have shape [K, D], got {tuple(self.means.shape)}")
            if not torch.isfinite(self.means).all():
                raise ValueError("means must be finite")
            self.num_components, self.dim = self.means.shape
            self.scale = _scale_from(covariances, stds, self.num_components, self.dim)
        self.weights = _normalised_weights(weights, self.num_components)
        self._density_cache: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, ...]] = {}

    @property
    def covariances(self) -> torch.Tensor:
        """[K, D, D] component covariances (float64)."""
        if self.scale.dim() == 2:
            return torch.diag_embed(self.scale**2)
        return self.scale @ self.scale.transpose(1, 2)

    def _parameters(self):
        return {"loc": self.means, "scale": self.scale, "cum_weights": _cumulative(self.weights)}

    def _sample_fused(self, n, labels, generator, device, dtype):
        p = self.params(device, dtype)
        return _ops.sample_gaussian_mixture(
            n, p["loc"], p["scale"], p["cum_weights"], labels, generator, dtype
        )

    def _sample_eager(self, n, labels, generator, device, dtype):
        p = self.params(device, dtype)
        c = self._components(n, labels, generator, device, p["cum_weights"])
        eps = torch.randn(n, self.dim, generator=generator, device=device, dtype=p["loc"].dtype)
        if p["scale"].dim() == 2:
            z = p["loc"][c] + p["scale"][c] * eps
        else:
            z = p["loc"][c] + (p["scale"][c] @ eps.unsqueeze(-1)).squeeze(-1)
        return z.to(dtype)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log sum_k w_k N(z; mean_k, cov_k) [N], by a log-sum-exp over the components."""
        z = self._check_codes(z)
        key = (z.device, z.dtype)
        if key not in self._density_cache:
            # Inverse Cholesky factors once (float64), then one batched product per call instead
            # of N x K triangular solves.
            if self.scale.dim() == 2:
                inverse = torch.diag_embed(1.0 / self.scale)
                log_det = self.scale.log().sum(1)
            else:
                eye = torch.eye(self.dim, dtype=torch.float64).expand_as(self.scale)
                inverse = torch.linalg.solve_triangular(self.scale, eye, upper=False)
                log_det = torch.diagonal(self.scale, dim1=-2, dim2=-1).log().sum(-1)
            constant = self.weights.log() - log_det - 0.5 * self.dim * math.log(2 * math.pi)
            self._density_cache[key] = tuple(
                t.to(device=z.device, dtype=z.dtype) for t in (self.means, inverse, constant)
            )
        means, inverse, constant = self._density_cache[key]
        u = (inverse @ (z[:, None, :] - means[None]).unsqueeze(-1)).squeeze(-1)  # L_k^-1 (z - mean_k)
        return torch.logsumexp(constant - 0.5 * (u * u).sum(-1), dim=1)

    def __repr__(self) -> str:
        return f"MixtureOfGaussians(num_components={self.num_components}, dim={self.dim})"


class SwissRoll(Prior):
    """The paper's swiss-roll prior (Fig. 4c), 2-D, split into `num_components` label segments.

    A point at position t in [0, 1) along the roll is radius * sqrt(t) * (cos a, sin a) with
    a = 2 pi * turns * sqrt(t); segment s holds t in [s / K, (s + 1) / K). Unlabelled samples are
    uniform in t (or follow `weights` over segments).
    """

    _fused_op = "sample_swiss_roll"

    dim = 2

    def __init__(self, num_components: int = 10, radius: float = 3.0, turns: float = 2.0, weights=None):
        super().__init__()
        self.num_components = positive_int(num_components, "num_components")
        if not radius > 0:
            raise ValueError(f"radius must be positive, got {radius}")
        if not turns > 0:
            raise ValueError(f"turns must be positive, got {turns}")
        self.radius, self.turns = float(radius), float(turns)
        self.weights = _normalised_weights(weights, self.num_components)

    def _parameters(self):
        return {"cum_weights": _cumulative(self.weights)}

    def _sample_fused(self, n, labels, generator, device, dtype):
        p = self.params(device, dtype)
        return _ops.sample_swiss_roll(
            n, p["cum_weights"], labels, self.radius, self.turns, generator, dtype
        )

    def _sample_eager(self, n, labels, generator, device, dtype):
        p = self.params(device, dtype)
        c = self._components(n, labels, generator, device, p["cum_weights"])
        u = torch.rand(n, generator=generator, device=device, dtype=p["cum_weights"].dtype)
        root = torch.sqrt((c + u) / self.num_components)
        angle = 2 * math.pi * self.turns * root
        z = self.radius * root[:, None] * torch.stack((torch.cos(angle), torch.sin(angle)), dim=1)
        return z.to(dtype)

    def __repr__(self) -> str:
        return f"SwissRoll(num_components={self.num_components})"


class Categorical(Prior):
    """One-hot samples over `num_classes` classes (uniform, or `probs`): the semi-supervised and
    clustering AAE's prior on y (§5, §6). `labels` give the class directly."""

    _fused_op = "sample_categorical"

    def __init__(self, num_classes: int, probs=None):
        super().__init__()
        self.num_components = positive_int(num_classes, "num_classes")
        self.dim = self.num_components
        self.weights = _normalised_weights(probs, self.num_components, name="probs")

    @property
    def num_classes(self) -> int:
        return self.num_components

    def _parameters(self):
        return {"cum_weights": _cumulative(self.weights)}

    def _sample_fused(self, n, labels, generator, device, dtype):
        p = self.params(device, dtype)
        return _ops.sample_categorical(n, p["cum_weights"], labels, generator, dtype)

    def _sample_eager(self, n, labels, generator, device, dtype):
        p = self.params(device, dtype)
        c = self._components(n, labels, generator, device, p["cum_weights"])
        return torch.nn.functional.one_hot(c, self.num_components).to(dtype)

    def __repr__(self) -> str:
        return f"Categorical(num_classes={self.num_classes})"


class Custom(Prior):
    """Any prior that can be sampled: `sampler(n, labels, generator, device, dtype) -> (n, dim)`.

    `dim` is checked on every call when given; `num_components` enables `labels`. Both backends call
    the sampler (it is the user's code). It gets the ``generator`` that ``sample`` got when that is
    a ``torch.Generator`` or None; an :class:`~aae_fast.random.PhiloxGenerator` (the stream of a
    fused model) is not passed on, since torch's random functions cannot draw from it: the sampler
    then gets None and draws from torch's default generator (``torch.manual_seed`` seeds it, and a
    Trainer's checkpoint restores it).
    """

    def __init__(self, sampler: Callable, dim: int | None = None, num_components: int | None = None):
        super().__init__()
        if not callable(sampler):
            raise TypeError(f"sampler must be callable, got {type(sampler).__name__}")
        self.sampler = sampler
        self.dim = None if dim is None else positive_int(dim, "dim")
        self.num_components = (
            None if num_components is None else positive_int(num_components, "num_components")
        )

    def _parameters(self):
        return {}

    def _sample_fused(self, n, labels, generator, device, dtype):
        if isinstance(generator, PhiloxGenerator):
            generator = None  # see the class docstring
        z = self.sampler(n, labels, generator, device, dtype)
        if not isinstance(z, torch.Tensor):
            raise TypeError(f"sampler must return a torch.Tensor, got {type(z).__name__}")
        expected = (n, self.dim) if self.dim is not None else (n, z.shape[-1] if z.dim() else -1)
        if z.dim() != 2 or tuple(z.shape) != expected:
            raise ValueError(f"sampler must return shape {expected}, got {tuple(z.shape)}")
        return z.to(device=device, dtype=dtype)

    _sample_eager = _sample_fused

    def __repr__(self) -> str:
        return f"Custom({getattr(self.sampler, '__name__', self.sampler)!r}, dim={self.dim})"


# ------------------------------------------------------------------------------------------------


def _check_n(n) -> int:
    if isinstance(n, torch.SymInt):  # a traced batch size (torch.compile)
        return n
    if not isinstance(n, bool):
        try:
            n = operator.index(n)  # numpy integers, 0-dim integer tensors
        except TypeError:
            pass
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 0:
        raise ValueError(f"n must be a non-negative number of samples, got {n}")
    return n


def _resolve_device(device, generator, labels) -> torch.device:
    if device is not None:
        # With its index, as a tensor's device has it: "cuda" names cuda:<current>, and
        # torch.device("cuda") != torch.device("cuda:0") would refuse labels on that very device.
        return torch.empty(0, device=device).device
    if isinstance(generator, (torch.Generator, PhiloxGenerator)):
        return torch.device(generator.device)
    if labels is not None and isinstance(labels, torch.Tensor):
        return labels.device
    return torch.device("cpu")


def _resolve_dtype(dtype) -> torch.dtype:
    if dtype is None:
        return torch.get_default_dtype()
    if dtype not in _SAMPLE_DTYPES:
        raise TypeError(
            f"dtype must be one of {', '.join(map(str, _SAMPLE_DTYPES))}, got {dtype!r}"
        )
    return dtype


_SAMPLE_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _as_vector(value, dim: int, name: str) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float64)
    if t.dim() == 0:
        return t.expand(dim).clone()
    if t.shape != (dim,):
        raise ValueError(f"{name} must be a scalar or have shape ({dim},), got {tuple(t.shape)}")
    return t.clone()


def _normalised_weights(weights, k: int, name: str = "weights") -> torch.Tensor:
    if weights is None:
        return torch.full((k,), 1.0 / k, dtype=torch.float64)
    w = torch.as_tensor(weights, dtype=torch.float64)
    if w.shape != (k,):
        raise ValueError(f"{name} must have shape ({k},), got {tuple(w.shape)}")
    if (w < 0).any() or not w.sum() > 0 or not torch.isfinite(w.sum()):
        raise ValueError(
            f"{name} must be finite and non-negative with a positive, finite sum, got {w.tolist()}"
        )
    return w / w.sum()


def _cumulative(weights: torch.Tensor) -> torch.Tensor:
    cum = torch.cumsum(weights, 0)
    cum[-1] = 1.0  # the last bin is never compared by the ops; keep the eager path consistent
    return cum


def _circle_layout(k, dim, radius, radial_std, tangential_std):
    angles = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
    means = torch.zeros(k, dim, dtype=torch.float64)
    means[:, 0] = radius * torch.cos(angles)
    means[:, 1] = radius * torch.sin(angles)
    # Covariance R diag(radial^2, tangential^2) R^T in the plane; its Cholesky factor is the scale.
    stds = torch.full((dim,), tangential_std, dtype=torch.float64)
    stds[0] = radial_std
    cov = torch.diag(stds**2).expand(k, dim, dim).clone()
    rot = torch.eye(dim, dtype=torch.float64).expand(k, dim, dim).clone()
    rot[:, 0, 0], rot[:, 0, 1] = torch.cos(angles), -torch.sin(angles)
    rot[:, 1, 0], rot[:, 1, 1] = torch.sin(angles), torch.cos(angles)
    cov = rot @ cov @ rot.transpose(1, 2)
    return means, torch.linalg.cholesky(cov)


def _scale_from(covariances, stds, k, dim) -> torch.Tensor:
    if covariances is not None and stds is not None:
        raise ValueError("pass covariances or stds, not both")
    if covariances is not None:
        cov = torch.as_tensor(covariances, dtype=torch.float64)
        if cov.shape != (k, dim, dim):
            raise ValueError(f"covariances must have shape ({k}, {dim}, {dim}), got {tuple(cov.shape)}")
        if not torch.allclose(cov, cov.transpose(1, 2)):
            raise ValueError("covariances must be symmetric")
        factor, info = torch.linalg.cholesky_ex(cov)
        if (info != 0).any():
            bad = torch.nonzero(info).flatten().tolist()
            raise ValueError(f"covariances must be positive definite; components {bad} are not")
        return factor
    s = torch.as_tensor(1.0 if stds is None else stds, dtype=torch.float64)
    if s.dim() == 0:
        s = s.expand(k, dim)
    elif s.shape == (dim,):
        s = s.expand(k, dim)
    elif s.shape != (k, dim):
        raise ValueError(f"stds must be a scalar, ({dim},) or ({k}, {dim}), got {tuple(s.shape)}")
    if not ((s > 0) & torch.isfinite(s)).all():
        raise ValueError("stds must be positive and finite")
    return s.clone()


__all__ = ["Prior", "Gaussian", "MixtureOfGaussians", "SwissRoll", "Categorical", "Custom"]
