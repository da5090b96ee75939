"""Helpers for comparing a fused model with its reference twin: the same variants at small sizes,
the same initial weights, and the same random numbers."""

from __future__ import annotations

import torch

import aae_fast.models as fused
import aae_fast.reference as ref
from aae_fast.priors import Gaussian, MixtureOfGaussians, SwissRoll
from aae_fast.random import PhiloxGenerator
from aae_fast.reference._common import Autocast

IN, HID = 13, (17, 11)

#: name -> (class name, constructor kwargs, needs labels, labelled batch)
VARIANTS = {
    "aae-deterministic": ("AdversarialAutoencoder", {"latent_dim": 3}, False),
    "aae-gaussian": ("AdversarialAutoencoder", {"latent_dim": 3, "encoder": "gaussian"}, False),
    "aae-universal": ("AdversarialAutoencoder", {"latent_dim": 3, "encoder": "universal"}, False),
    "aae-mse-input-noise": (
        "AdversarialAutoencoder",
        {"latent_dim": 3, "reconstruction": "mse", "input_noise_std": 0.3},
        False,
    ),
    "aae-label-conditioned": (
        "AdversarialAutoencoder",
        {"latent_dim": 2, "prior": MixtureOfGaussians(4), "label_conditioned": True},
        True,
    ),
    "aae-swiss-roll-conditioned": (
        "AdversarialAutoencoder",
        {"latent_dim": 2, "prior": SwissRoll(4), "label_conditioned": True},
        True,
    ),
    "supervised": ("SupervisedAAE", {"latent_dim": 3, "num_classes": 4}, True),
    "semi-supervised": ("SemiSupervisedAAE", {"latent_dim": 3, "num_classes": 4}, True),
    "clustering": ("ClusteringAAE", {"latent_dim": 3, "num_clusters": 5}, False),
    "dim-reduction": ("DimReductionAAE", {"num_clusters": 4}, False),
    "dim-reduction-semi": (
        "DimReductionAAE",
        {"num_clusters": 4, "semi_supervised": True},
        True,
    ),
}
NUM_CLASSES = 4


def make_twins(name: str, optimizer: str = "sgd", seed: int = 0, device="cpu", **overrides):
    """(reference model, fused model) with equal weights, on ``device``."""
    cls_name, kwargs, _ = VARIANTS[name]
    kwargs = {
        "input_dim": IN,
        "hidden": HID,
        "optimizer": optimizer,
        "init_std": None,
        **kwargs,
        **overrides,
    }
    torch.manual_seed(seed)
    reference = getattr(ref, cls_name)(**kwargs)
    model = getattr(fused, cls_name)(**kwargs, seed=1234)
    model.load_state_dict(reference.state_dict())
    return reference.to(device), model.to(device)


def share_noise(reference, model) -> None:
    """Make ``reference`` draw the numbers ``model`` draws: its prior samples and posterior / input
    noise come from a Philox stream with the fused model's seed, consumed in the same order (the
    fused Gaussian-noise layout equals the reparameterisation op's, csrc/include/aae_fast/philox.h).
    """
    gen = PhiloxGenerator.wrap(model.generator.state.clone())  # on the model's device
    normals: dict[int, Gaussian] = {}

    def sample(prior, n, labels=None, generator=None):
        return prior.sample(
            n, labels=labels, generator=gen, device=gen.device, dtype=torch.float32, backend="fused"
        )

    def randn(shape, like, generator=None):
        n, d = shape
        normal = normals.setdefault(d, Gaussian(d))
        return normal.sample(n, generator=gen, device=like.device, dtype=like.dtype)

    reference._sample = sample
    reference._randn = randn


def batches(name: str, steps: int, n: int = 9, seed: int = 7, device="cpu"):
    """``steps`` random batches for the variant (labels with -1 rows where the variant allows), on
    ``device``."""
    _, _, labelled = VARIANTS[name]
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        b = {"x": torch.rand(n, IN, generator=g), "y": None}
        if labelled:
            y = torch.randint(NUM_CLASSES, (n,), generator=g)
            if name.startswith("aae"):  # unlabelled rows use the "unknown" slot
                y[::3] = -1
            b["y"] = y
            if name in ("semi-supervised", "dim-reduction-semi"):
                b["x_labelled"] = torch.rand(5, IN, generator=g)
                b["y_labelled"] = torch.randint(NUM_CLASSES, (5,), generator=g)
        out.append({k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in b.items()})
    return out


def Bf16Autocast(device_type: str = "cpu") -> Autocast:
    """The ``amp`` of ``training_step`` for bf16 autocast on ``device_type``."""
    return Autocast(device_type, torch.bfloat16)
