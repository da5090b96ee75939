"""Worked example: an AAE you already train with pythae, made faster by one call, nothing else
changed.

pythae's `Adversarial_AE` (Chadebec et al., PyPI `pythae`, in aae_fast's `bench` extra) at the
paper's MNIST sizes, trained by pythae's own `AdversarialTrainer` twice from the same seed: as is,
and after `af.accelerate(model)`, which swaps its Linear + activation chains for aae_fast's fused
layers sharing the same Parameter objects (same state_dict, same optimisers, same trainer). The
per-step losses agree to fp32 rounding; the script prints them and the wall time of each run.

    pip install pythae          # or: pip install -e ".[bench]"
    python examples/pythae_accelerate.py --steps 20 --hidden 1000

tests/test_pythae_example.py runs `train` at small sizes; benchmarks/bench_accelerate.py times the
same step (pythae_step) for the benchmark report.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time

import torch
from torch import nn


def make_pythae_aae(input_dim: int = 784, latent_dim: int = 8, hidden=(1000, 1000), seed: int = 0):
    """pythae's Adversarial_AE with the paper's networks: a deterministic 784-1000-1000-8 encoder, a
    mirrored decoder ending in a sigmoid (pythae's "bce" loss takes probabilities) and an
    8-1000-1000-1 discriminator ending in a sigmoid."""
    from pythae.models import Adversarial_AE, Adversarial_AE_Config
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseDiscriminator, BaseEncoder

    def mlp(widths, last=None):
        layers: list[nn.Module] = []
        for i in range(len(widths) - 1):
            layers.append(nn.Linear(widths[i], widths[i + 1]))
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers, *([last] if last is not None else []))

    class Encoder(BaseEncoder):
        def __init__(self):
            BaseEncoder.__init__(self)
            self.net = nn.Sequential(*mlp([input_dim, *hidden]), nn.ReLU())
            self.embedding = nn.Linear(hidden[-1], latent_dim)
            self.log_var = nn.Linear(hidden[-1], latent_dim)  # unused: deterministic posterior

        def forward(self, x):
            h = self.net(x.reshape(x.shape[0], -1))
            return ModelOutput(embedding=self.embedding(h), log_covariance=self.log_var(h))

    class Decoder(BaseDecoder):
        def __init__(self):
            BaseDecoder.__init__(self)
            self.net = mlp([latent_dim, *hidden[::-1], input_dim], nn.Sigmoid())

        def forward(self, z):
            return ModelOutput(reconstruction=self.net(z))

    class Discriminator(BaseDiscriminator):
        def __init__(self):
            BaseDiscriminator.__init__(self)
            self.net = mlp([latent_dim, *hidden, 1], nn.Sigmoid())

        def forward(self, z):
            return ModelOutput(embedding=self.net(z))

    config = Adversarial_AE_Config(input_dim=(input_dim,), latent_dim=latent_dim,
                                   reconstruction_loss="bce", deterministic_posterior=True)
    torch.manual_seed(seed)
    return Adversarial_AE(config, Encoder(), Decoder(), Discriminator())


class _StepLosses:
    """A pythae TrainingCallback recording each epoch's losses (one batch per epoch here, so
    these are the per-step losses)."""

    def __init__(self):
        from pythae.trainers.training_callbacks import TrainingCallback

        class Callback(TrainingCallback):
            def __init__(cb):
                cb.losses: list[dict[str, float]] = []

            def on_log(cb, training_config, logs, **kwargs):
                cb.losses.append({k: float(v) for k, v in logs.items() if k.startswith("train_")})

        self.callback = Callback()


def train(model, data: torch.Tensor, steps: int, batch_size: int, seed: int = 0):
    """Trains `model` with pythae's AdversarialTrainer for `steps` steps of `batch_size` rows (one
    batch per epoch, so every step's losses are logged). Returns (losses per step, seconds)."""
    from pythae.data.datasets import BaseDataset
    from pythae.trainers import AdversarialTrainer, AdversarialTrainerConfig

    rows = data[:batch_size]
    dataset = BaseDataset(rows, labels=torch.zeros(rows.shape[0]))
    recorder = _StepLosses()
    with tempfile.TemporaryDirectory() as out:
        config = AdversarialTrainerConfig(
            output_dir=out, per_device_train_batch_size=batch_size, num_epochs=steps,
            no_cuda=not torch.cuda.is_available(), seed=seed,
        )
        trainer = AdversarialTrainer(model=model, train_dataset=dataset,
                                     training_config=config, callbacks=[recorder.callback])
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    return recorder.callback.losses, seconds


def compare(steps: int = 20, hidden=(1000, 1000), batch_size: int = 100, seed: int = 0, data=None):
    """The same model trained as is and accelerated: (losses as is, losses accelerated, seconds as
    is, seconds accelerated, the two trained models)."""
    import aae_fast as af

    if data is None:
        data = torch.rand(batch_size, 784, generator=torch.Generator().manual_seed(seed))
    plain = make_pythae_aae(hidden=hidden, seed=seed)
    fast = af.accelerate(copy.deepcopy(plain))
    # A warm-up run of each first, on copies: the first training in a process pays one-off costs
    # (imports, allocator, thread pools) that would otherwise be charged to whichever runs first.
    train(copy.deepcopy(plain), data, 1, batch_size, seed)
    train(copy.deepcopy(fast), data, 1, batch_size, seed)
    losses_plain, t_plain = train(plain, data, steps, batch_size, seed)
    losses_fast, t_fast = train(fast, data, steps, batch_size, seed)
    return losses_plain, losses_fast, t_plain, t_fast, plain, fast


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--hidden", type=int, default=1000, help="width of every hidden layer")
    p.add_argument("--batch-size", type=int, default=100)
    args = p.parse_args(argv)
    import aae_fast as af

    losses_plain, losses_fast, t_plain, t_fast, _, fast = compare(
        args.steps, (args.hidden, args.hidden), args.batch_size
    )
    print(fast.aae_fast_report)
    print(f"{'step':>4} {'loss (pythae)':>16} {'loss (accelerated)':>20}")
    for i, (a, b) in enumerate(zip(losses_plain, losses_fast)):
        print(f"{i + 1:4d} {a['train_epoch_loss']:16.6f} {b['train_epoch_loss']:20.6f}")
    worst = max(abs(a[k] - b[k]) / max(abs(a[k]), 1e-12)
                for a, b in zip(losses_plain, losses_fast) for k in a)
    print(f"largest relative loss difference: {worst:.2e}")
    print(f"pythae's trainer, {args.steps} steps: {t_plain:.2f} s as is, {t_fast:.2f} s accelerated "
          f"({t_plain / t_fast:.2f}x; the trainer's own overhead included) on {af.backend_info()['device']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
