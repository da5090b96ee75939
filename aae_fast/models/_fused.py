"""What makes a model of this package "fused": the reference variant's mathematics and training
schedule, run on aae_fast.nn modules and aae_fast.ops.

A fused variant subclasses its reference twin (aae_fast.reference) and swaps the hot paths, each
behind a hook the reference routes its work through:

==========================  ===============================  =====================================
hot path                    reference                        fused
==========================  ===============================  =====================================
networks                    nn.Sequential(Linear, ReLU, ..)  FusedMLP (activation in the GEMM),
                                                             the same Parameters, the same keys;
                                                             not indexable (``encoder[0]``)
reconstruction loss         F.binary_cross_entropy_with_..   ops.reconstruction_loss
D / G losses                F.binary_cross_entropy_with_..   ops.adversarial_d_loss / _g_loss
prior samples               prior.sample(backend="eager")    prior.sample(backend="fused"), Philox
posterior noise             torch.randn                      ops.gaussian_reparameterize, Philox
one-hot labels              F.one_hot (reads the labels)     a comparison (no host read)
label range check           reads min/max on CPU             torch._assert_async (no host sync)
optimisers                  torch.optim for-each/for-loop    torch.optim fused=True
==========================  ===============================  =====================================

The step itself is the reference's, which already does no wasted work: the encoder forward of the
discriminator phase is reused by the generator phase, the discriminator sees [prior; codes] as one
batch, its weight gradients are not computed in the generator phase, the first encoder layer
computes no input gradient, gradients are set to None rather than zeroed, one optimiser call per
phase.

Random numbers come from a Philox stream whose [seed, offset] lives in a non-persistent buffer
(`generator`), advanced on the device by the ops: no host round trip, fresh numbers on every CUDA
graph replay, and ``model.to(device)`` moves it. It is not in the state dict (so that the keys
equal the reference's); the Trainer checkpoints it through `rng_state` / `set_rng_state`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .. import ops
from ..nn import FusedMLP
from ..priors import Gaussian, Prior
from ..random import PhiloxGenerator
from ..reference._common import at_least_float32

__all__ = ["FusedModel", "BACKENDS"]

BACKENDS = ("fused", "eager")


class FusedModel:
    """Mixin placed before the reference class: ``class X(FusedModel, reference.X)``.

    ``X(..., backend="eager")`` returns the reference model itself (an instance of the reference
    class), so one constructor serves both backends. ``seed`` seeds the Philox stream (default:
    drawn from torch's global generator, so ``torch.manual_seed`` makes it reproducible).
    """

    backend = "fused"
    #: The reference class this variant is the twin of (set by each variant).
    reference_class: type

    def __new__(cls, *args: Any, backend: str = "fused", **kwargs: Any):
        if backend == "fused":
            return super().__new__(cls)
        if backend == "eager":
            kwargs.pop("seed", None)  # the reference draws from torch's global generator
            return cls.reference_class(*args, **kwargs)
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")

    def __init__(self, *args: Any, backend: str = "fused", seed: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        for name, child in list(self.named_children()):
            if FusedMLP.can_fuse(child):
                setattr(self, name, FusedMLP.from_sequential(child))
        self.register_buffer("_rng_state", PhiloxGenerator(seed).state, persistent=False)
        self._standard_normals: dict[int, Gaussian] = {}

    # -- the Philox stream ----------------------------------------------------------------------
    @property
    def generator(self) -> PhiloxGenerator:
        """The model's Philox stream (its state is the model's ``_rng_state`` buffer)."""
        return PhiloxGenerator.wrap(self._rng_state)

    def manual_seed(self, seed: int):
        """Restart the model's Philox stream at ``seed`` (in place; the Trainer calls this)."""
        self.generator.manual_seed(seed)
        return self

    def rng_state(self) -> torch.Tensor:
        """A CPU copy of the Philox stream's [seed, offset] (for checkpoints)."""
        return self.generator.get_state()

    def set_rng_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state.to(self._rng_state.device))

    # -- fused hot paths (hooks of the reference) ---------------------------------------------------
    def _optimizer_options(self) -> dict[str, Any]:
        # One multi-tensor kernel per optimiser step instead of a loop of small ones.
        return {"fused": True}

    def reconstruction_loss(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # The reference's dtype policy: 16-bit values widened to fp32, float64 kept.
        logits, x = at_least_float32(logits), at_least_float32(x)
        if self.reconstruction == "mse":  # the squared error of the sigmoid output (Appendix A)
            logits = torch.sigmoid(logits)
        return ops.reconstruction_loss(logits, x, self.reconstruction)

    @staticmethod
    def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return ops.adversarial_d_loss(real_logits, fake_logits)

    @staticmethod
    def g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
        return ops.adversarial_g_loss(fake_logits)

    def _sample(self, prior: Prior, n: int, labels=None, generator=None) -> torch.Tensor:
        return prior.sample(
            n,
            labels=labels,
            generator=self.generator if generator is None else generator,
            device=self._rng_state.device,
            dtype=self.dtype,
            backend="fused",
        )

    def _randn(self, shape, like: torch.Tensor, generator=None) -> torch.Tensor:
        n, d = shape
        normal = self._standard_normals.get(d)
        if normal is None:
            normal = self._standard_normals[d] = Gaussian(d)
        return normal.sample(
            n,
            generator=self.generator if generator is None else generator,
            device=like.device,
            dtype=like.dtype,
            backend="fused",
        )

    def _reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor, generator=None):
        return ops.gaussian_reparameterize(
            mu, logvar, self.generator if generator is None else generator
        )

    def _one_hot(self, y: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
        # F.one_hot reads the labels' range on the host; a comparison does not.
        classes = torch.arange(num_classes, device=y.device)
        return (y[:, None] == classes).to(dtype)

    def _check_label_values(self, y: torch.Tensor, low: int, num_classes: int, name: str) -> None:
        # Checked on the device: an error is raised at once on CPU, by a device-side assert on
        # CUDA, and no step waits for the labels to reach the host. (So the error is torch's
        # RuntimeError without the values, where the reference, which reads them, raises a
        # ValueError showing them; the step never reading a device value, on CPU too, is what
        # tests/models prove the no-sync promise with.)
        torch._assert_async(
            ((y >= low) & (y < num_classes)).all(),
            f"{name} must lie in [{low}, {num_classes})" + (" (-1 = unlabelled)" if low < 0 else ""),
        )

    @property
    def config(self) -> dict[str, Any]:
        return {**super().config, "backend": "fused"}  # type: ignore[misc]


def fused_children(model: nn.Module) -> list[str]:
    """Names of the model's networks that are FusedMLPs (for tests and reports)."""
    return [name for name, child in model.named_children() if isinstance(child, FusedMLP)]
