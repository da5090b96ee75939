"""What every reference variant shares: argument checks, the reconstruction loss, the adversarial
losses, optimiser and schedule construction, one parameter update, and the batch format.

Training protocol (what :class:`aae_fast.training.Trainer` calls; any model implementing it can be
trained by the Trainer, the fused ones included):

``model.configure_optimizers() -> dict[str, torch.optim.Optimizer]``
    one optimiser per phase of the paper's schedule: ``"autoencoder"`` (reconstruction phase),
    ``"discriminator"`` (regularization phase, D step), ``"generator"`` (regularization phase, the
    encoder as G), and ``"classifier"`` for the semi-supervised classification phase.
``model.configure_schedulers(optimizers) -> dict[str, LRScheduler]``
    stepped once per epoch (``model.scheduler_interval == "epoch"``).
``model.training_step(batch, optimizers, amp=None) -> dict[str, Tensor]``
    one mini-batch through every phase, in the paper's order, each phase a forward pass, a backward
    pass and one optimiser step. Returns the phase losses as detached 0-dim device tensors (never
    ``.item()``: reading them would synchronise a GPU every step).
``model.validation_step(batch) -> dict[str, Tensor]``
    held-out losses (no parameter update). A metric that is a ratio over some of the rows (the
    classification ``error``, over the labelled ones) comes with its row count under
    ``"weights"`` (``{"error": count}``), so that the Trainer's mean over batches weighs it right.

``batch`` is a dict: ``x`` [N, input_dim] float, ``y`` [N] int64 or None (-1 marks an unlabelled
row), and for the semi-supervised variants optionally ``x_labelled`` / ``y_labelled``, a labelled
mini-batch. A tuple ``(x,)`` or ``(x, y)`` is accepted too.

``amp`` (duck-typed, see :class:`FP32`) lets the Trainer add autocast and gradient scaling without
the model knowing: ``amp.autocast()`` is a context manager around every forward pass,
``amp.backward(loss)`` and ``amp.step(optimizer)`` replace ``loss.backward()`` and
``optimizer.step()``.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..priors import Prior

__all__ = [
    "FP32",
    "Autocast",
    "ReferenceAAE",
    "as_batch",
    "PAPER_SGD_LEARNING_RATES",
    "ADAM_LEARNING_RATES",
]

#: Per-phase initial learning rates of SGD with momentum 0.9, the paper's optimiser (Appendix A),
#: decayed x0.1 after 50 and after 1000 epochs (``lr_milestones``, ``lr_gamma``; the paper's
#: schedule as we recall Appendix A). The values are ours: the stored copies of the paper available
#: while writing this show only its first page, so its per-phase values could not be checked. They
#: are tuned on MNIST for this package's losses (reconstruction summed over pixels, GAN losses
#: averaged over rows): 0.01 for the reconstruction and 0.1 for the adversarial phases diverged to
#: NaN within a few hundred steps (784-256-256-8 network, batch 100), and these trained stably
#: (MNIST 8,000 images, 1000-1000 network: reconstruction BCE 124, MMD to the prior 0.16 after
#: 1,600 steps).
PAPER_SGD_LEARNING_RATES: dict[str, float] = {
    "autoencoder": 0.003,
    "discriminator": 0.01,
    "generator": 0.01,
    "classifier": 0.01,
}

#: Per-phase learning rates of the ``optimizer="adam"`` alternative (our choice, not the paper's:
#: it converges in far fewer steps, which is what short runs and tests need). Adam's betas are
#: (0.5, 0.999), the usual choice for adversarial training since DCGAN.
ADAM_LEARNING_RATES: dict[str, float] = {
    "autoencoder": 1e-3,
    "discriminator": 2e-4,
    "generator": 2e-4,
    "classifier": 1e-3,
}

_OPTIMIZERS = ("sgd", "adam")
_RECONSTRUCTIONS = ("bce", "mse")


class FP32:
    """The default ``amp``: no autocast, plain backward and step."""

    def autocast(self):
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.step()


class Autocast:
    """An ``amp`` that runs the forwards under ``torch.autocast(device_type, dtype)``, with plain
    backward and step (bf16 needs no gradient scaling; the Trainer's own amp adds fp16 scaling)."""

    def __init__(self, device_type: str = "cpu", dtype: torch.dtype = torch.bfloat16) -> None:
        self.device_type, self.dtype = device_type, dtype

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.step()


_FP32 = FP32()


def as_batch(batch: Any) -> dict[str, Any]:
    """Normalise a batch to the dict form (see the module docstring)."""
    if isinstance(batch, Mapping):
        if "x" not in batch:
            raise KeyError(f"batch must have an 'x' entry, got keys {sorted(batch)}")
        return dict(batch)
    if isinstance(batch, torch.Tensor):
        return {"x": batch, "y": None}
    if isinstance(batch, Sequence) and 1 <= len(batch) <= 2:
        return {"x": batch[0], "y": batch[1] if len(batch) == 2 else None}
    raise TypeError(
        "batch must be a dict with 'x' (and 'y'), a tensor, or a tuple (x,) / (x, y); "
        f"got {type(batch).__name__}"
    )


def _shape(t: torch.Tensor) -> str:
    return "[" + ", ".join(str(s) for s in t.shape) + "]"


def at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """The dtype policy of the losses: 16-bit values widened to float32, float64 kept."""
    return t if t.dtype == torch.float64 else t.float()


def check_int(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``; numpy and 0-dim tensor integers count as ints."""
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}") from None
    if number < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return number


class DecodesPriorSamples:
    """``decode``, ``sample_prior`` and ``generate`` of a model whose ``decoder`` maps codes
    [N, latent_dim] to logits over the inputs and whose ``prior`` is a distribution of those codes:
    the unsupervised AAE and the VAE baseline share them (mixed into a ``ReferenceAAE``)."""

    def decode(self, z: torch.Tensor, *, logits: bool = False) -> torch.Tensor:
        """Reconstructions [N, input_dim] of codes z [N, latent_dim]: probabilities in [0, 1], or
        the decoder's logits with ``logits=True``."""
        out = self.decoder(self._check_code(z, self.latent_dim))
        return out if logits else torch.sigmoid(out)

    @torch.no_grad()
    def sample_prior(
        self, n: int, labels: torch.Tensor | None = None, generator=None
    ) -> torch.Tensor:
        """n samples [n, latent_dim] of the prior (labels pick components)."""
        return self._sample(self.prior, check_int(n, "n", 0), labels, generator)

    @torch.no_grad()
    def generate(self, n: int, labels: torch.Tensor | None = None, generator=None) -> torch.Tensor:
        """Images [n, input_dim] in [0, 1] decoded from n prior samples; ``labels`` (int64 [n]) pick
        the prior's components (a label-conditioned AAE generates those classes)."""
        return torch.sigmoid(self.decoder(self.sample_prior(n, labels, generator)))


class ReferenceAAE(nn.Module):
    """Base class of the eager reference variants (not used directly)."""

    #: The Trainer steps the schedulers once per epoch.
    scheduler_interval = "epoch"
    #: Optimiser names, in phase order; set by subclasses.
    phases: tuple[str, ...] = ("autoencoder", "discriminator", "generator")
    #: Phases some configurations of the model add (the semi-supervised classification phase).
    optional_phases: tuple[str, ...] = ()
    #: Whether ``training_step`` needs ``batch["y"]`` (or a labelled batch).
    requires_labels = False
    #: Which implementation this is ("eager": plain PyTorch, this package's oracle).
    backend = "eager"

    def __init__(
        self,
        *,
        input_dim: int,
        reconstruction: str,
        init_std: float | None,
        input_noise_std: float = 0.0,
        optimizer: str,
        learning_rates: Mapping[str, float] | None,
        momentum: float,
        lr_milestones: Sequence[int],
        lr_gamma: float,
    ) -> None:
        super().__init__()
        self.input_dim = check_int(input_dim, "input_dim")
        if reconstruction not in _RECONSTRUCTIONS:
            raise ValueError(
                f"reconstruction must be one of {_RECONSTRUCTIONS}, got {reconstruction!r}"
            )
        if optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {_OPTIMIZERS}, got {optimizer!r}")
        if init_std is not None and not init_std > 0:
            raise ValueError(f"init_std must be positive or None, got {init_std!r}")
        if not input_noise_std >= 0:
            raise ValueError(f"input_noise_std must be >= 0, got {input_noise_std!r}")
        self.reconstruction = reconstruction
        self.init_std = init_std
        self.input_noise_std = float(input_noise_std)
        self.optimizer_name = optimizer
        defaults = PAPER_SGD_LEARNING_RATES if optimizer == "sgd" else ADAM_LEARNING_RATES
        rates = dict(learning_rates or {})
        # Only the phases this model has (a VAE has no discriminator): a rate for another phase
        # would be dropped without a word.
        known = set(defaults) & (set(type(self).phases) | set(type(self).optional_phases))
        unknown = set(rates) - known
        if unknown:
            raise ValueError(
                f"learning_rates: unknown phase(s) {sorted(unknown)} for {type(self).__name__}; "
                f"expected keys among {sorted(known)}"
            )
        self.learning_rates = {**defaults, **rates}
        self.momentum = float(momentum)
        self.lr_milestones = tuple(int(m) for m in lr_milestones)
        self.lr_gamma = float(lr_gamma)

    # -- configuration ----------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """One optimiser per phase (see the module docstring), SGD with momentum (the paper's,
        Appendix A) or Adam, with ``self.learning_rates[phase]``."""
        optimizers = {}
        for phase, params in self._phase_parameters().items():
            lr = self.learning_rates[phase]
            options = self._optimizer_options()
            if self.optimizer_name == "sgd":
                optimizers[phase] = torch.optim.SGD(
                    params, lr=lr, momentum=self.momentum, **options
                )
            else:
                optimizers[phase] = torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999), **options)
        return optimizers

    def _optimizer_options(self) -> dict[str, Any]:
        """Extra keyword arguments of every optimiser (none here: torch's defaults)."""
        return {}

    def _phase_parameters(self) -> dict[str, list]:
        """Each phase's parameters (or parameter groups) for its optimiser; set by subclasses."""
        raise NotImplementedError

    def configure_schedulers(
        self, optimizers: Mapping[str, torch.optim.Optimizer]
    ) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        """Step decays by ``lr_gamma`` at the epochs in ``lr_milestones`` (paper: x0.1 after 50 and
        after 1000 epochs, Appendix A), stepped once per epoch. Empty milestones: no schedulers."""
        if not self.lr_milestones:
            return {}
        return {
            name: torch.optim.lr_scheduler.MultiStepLR(
                opt, milestones=list(self.lr_milestones), gamma=self.lr_gamma
            )
            for name, opt in optimizers.items()
        }

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config.items() if k != "variant")

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-friendly (priors by their repr); for metrics.json."""
        raise NotImplementedError

    # -- checks -------------------------------------------------------------------------------
    def _check_x(self, x: Any, name: str = "x", min_rows: int = 0) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 2 or x.shape[1] != self.input_dim:
            raise ValueError(
                f"{name} must have shape [N, {self.input_dim}] (flattened inputs), got {_shape(x)}"
            )
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating tensor, got {x.dtype}")
        if x.shape[0] < min_rows:
            raise ValueError(f"{name} must hold at least {min_rows} row(s) here, got {_shape(x)}")
        return x

    def _check_code(self, z: Any, dim: int, name: str = "z") -> torch.Tensor:
        if not isinstance(z, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(z).__name__}")
        if z.dim() != 2 or z.shape[1] != dim:
            raise ValueError(f"{name} must have shape [N, {dim}], got {_shape(z)}")
        return z

    def _check_labels(
        self,
        y: Any,
        n: int,
        num_classes: int,
        *,
        allow_unlabelled: bool,
        name: str = "y",
        what: str = "",
    ) -> torch.Tensor:
        """int64 [n] with values in [0, num_classes) (or -1 when ``allow_unlabelled``)."""
        if y is None:
            raise ValueError(
                f"{name}: {what or 'this model'} needs labels (int64 [N]"
                + (", -1 for unlabelled rows" if allow_unlabelled else "")
                + "), got None"
            )
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(y).__name__}")
        if y.dtype != torch.int64:
            raise TypeError(f"{name} must have dtype torch.int64, got {y.dtype}")
        if y.shape != (n,):
            raise ValueError(f"{name} must have shape [{n}] (one label per row), got {_shape(y)}")
        if n > 0:
            self._check_label_values(y, -1 if allow_unlabelled else 0, num_classes, name)
        return y

    def _check_label_values(self, y: torch.Tensor, low: int, num_classes: int, name: str) -> None:
        """Raise when a label lies outside [low, num_classes). Values are read only on CPU: on a
        GPU that would synchronise every step."""
        if y.device.type == "cpu" and not torch.compiler.is_compiling():
            lo, hi = int(y.min()), int(y.max())
            if lo < low or hi >= num_classes:
                raise ValueError(
                    f"{name} must lie in [{low}, {num_classes})"
                    + (" (-1 = unlabelled)" if low < 0 else "")
                    + f", got values in [{lo}, {hi}]"
                )

    @staticmethod
    def _check_prior(prior: Any, dim: int, name: str, dim_name: str) -> Prior:
        if not isinstance(prior, Prior):
            raise TypeError(
                f"{name} must be an aae_fast.priors.Prior (Gaussian, MixtureOfGaussians, "
                "SwissRoll, "
                f"Categorical, Custom), got {type(prior).__name__}"
            )
        if prior.dim is not None and prior.dim != dim:
            raise ValueError(
                f"{name}: {prior!r} samples {prior.dim}-dimensional codes but {dim_name} is {dim}; "
                "they must match"
            )
        return prior

    # -- losses and updates -------------------------------------------------------------------
    def reconstruction_loss(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-row sum over features, then mean over rows, in fp32.

        ``"bce"`` (default): binary cross-entropy on the decoder's logits (a Bernoulli decoder; the
        numerically stable form of a sigmoid output). ``"mse"``: squared error of the sigmoid
        output, the paper's "Euclidean cost" with a sigmoid last layer (Appendix A)."""
        logits, x = at_least_float32(logits), at_least_float32(x)
        n = x.shape[0]
        if self.reconstruction == "bce":
            return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / n
        return (torch.sigmoid(logits) - x).pow(2).sum() / n

    @staticmethod
    def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """Discriminator loss: prior samples are "real" (1), encoder codes "fake" (0) (§2)."""
        real_logits, fake_logits = at_least_float32(real_logits), at_least_float32(fake_logits)
        return F.binary_cross_entropy_with_logits(
            real_logits, torch.ones_like(real_logits)
        ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))

    @staticmethod
    def g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
        """Generator (encoder) loss, the non-saturating form -log D(q(z|x)) (Goodfellow et al.,
        2014, which the AAE's regularization phase uses, §2)."""
        fake_logits = at_least_float32(fake_logits)
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))

    @staticmethod
    def _update(loss: torch.Tensor, optimizer: torch.optim.Optimizer, amp) -> None:
        optimizer.zero_grad(set_to_none=True)
        amp.backward(loss)
        amp.step(optimizer)

    @staticmethod
    @contextlib.contextmanager
    def _frozen(*modules: nn.Module):
        """Turn off gradients of ``modules`` (the discriminators while the encoder plays G: their
        weight gradients would be computed and thrown away)."""
        saved = [[p.requires_grad for p in m.parameters()] for m in modules]
        for m in modules:
            m.requires_grad_(False)
        try:
            yield
        finally:
            for m, flags in zip(modules, saved, strict=True):
                for p, flag in zip(m.parameters(), flags, strict=True):
                    p.requires_grad_(flag)

    def _corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's training input: x + N(0, input_noise_std^2) noise (none by default)."""
        if self.input_noise_std == 0:
            return x
        return x + self.input_noise_std * self._randn(x.shape, x)

    # -- randomness ---------------------------------------------------------------------------
    # Every random draw of a training step goes through ``_randn`` and ``_sample``, so that a
    # test can hand two models the same numbers (the fused models draw theirs from a Philox
    # stream instead).
    def _randn(self, shape, like: torch.Tensor, generator=None) -> torch.Tensor:
        """Standard normal noise of ``shape`` on ``like``'s device, in its dtype."""
        return torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)

    def _reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor, generator=None):
        """z = mu + exp(logvar / 2) * eps, eps ~ N(0, I) (the Gaussian posterior's sample)."""
        return mu + torch.exp(0.5 * logvar) * self._randn(mu.shape, mu, generator)

    def _one_hot(self, y: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
        """One-hot [N, num_classes] of class ids y (int64 [N], already checked)."""
        return F.one_hot(y, num_classes).to(dtype)

    def _sample(self, prior: Prior, n: int, labels=None, generator=None) -> torch.Tensor:
        return prior.sample(
            n,
            labels=labels,
            generator=generator,
            device=self.device,
            dtype=self.dtype,
            backend="eager",
        )
