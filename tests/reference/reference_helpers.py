"""Helpers for the reference-model tests: data, a plain training loop (independent of the Trainer,
so a Trainer bug cannot hide a model bug), and the statistics the tests assert on."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import torch

from aae_fast.data import ArrayDataset, TensorLoader, load_dataset, train_test_split

MNIST_DIR = os.environ.get("AAE_FAST_MNIST_DIR", "/work/shared/data/mnist")
FASHION = "/usr/share/datasets/fashion-mnist"


def load_split() -> tuple[ArrayDataset, ArrayDataset]:
    """MNIST t10k split 8,000 / 2,000 (seed 0); Fashion-MNIST's test split if MNIST is absent."""
    if os.path.isdir(MNIST_DIR):
        data = load_dataset(f"mnist:{MNIST_DIR}", "test")
    elif os.path.isdir(FASHION):
        data = load_dataset("fashion-mnist", "test")
    else:
        pytest.skip(f"no MNIST at {MNIST_DIR} nor Fashion-MNIST at {FASHION}")
    return train_test_split(data, test_size=2000, seed=0)


def train(
    model,
    data: ArrayDataset,
    steps: int,
    *,
    batch_size: int = 100,
    labelled: ArrayDataset | None = None,
    seed: int = 0,
    on_step: Callable[[int, dict], None] | None = None,
) -> dict[str, float]:
    """``steps`` mini-batches of ``model.training_step``; returns the last step's losses."""
    torch.manual_seed(seed)
    optimizers = model.configure_optimizers()
    loader = TensorLoader(data, batch_size, seed=seed, drop_last=True)
    lab = None
    if labelled is not None:
        lab = iter(TensorLoader(labelled, batch_size, seed=seed + 1, infinite=True))
    step, out = 0, {}
    while step < steps:
        for x, y in loader:
            batch = {"x": x, "y": y}
            if lab is not None:
                batch["x_labelled"], batch["y_labelled"] = next(lab)
            out = model.training_step(batch, optimizers)
            step += 1
            if on_step is not None:
                on_step(step, out)
            if step >= steps:
                break
    return {k: float(v) for k, v in out.items()}


def mmd(a: torch.Tensor, b: torch.Tensor, scales=(0.5, 1.0, 2.0, 4.0)) -> float:
    """Squared maximum mean discrepancy (biased estimate) with a sum of Gaussian kernels: 0 for
    equal distributions, larger the further apart they are (a two-sample statistic)."""
    a, b = a.double(), b.double()

    def k(x, y):
        d = torch.cdist(x, y).pow(2)
        return sum(torch.exp(-d / (2 * s * s)) for s in scales)

    return float(k(a, a).mean() + k(b, b).mean() - 2 * k(a, b).mean())


def purity(pred: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose label is their cluster's majority label (the paper's clustering
    accuracy with the majority mapping, §6)."""
    total = 0
    for c in pred.unique():
        total += int(torch.bincount(labels[pred == c]).max())
    return total / labels.numel()


@torch.no_grad()
def validation_reconstruction(model, x: torch.Tensor, y: torch.Tensor | None = None) -> float:
    return float(model.validation_step({"x": x, "y": y})["reconstruction"])
