"""The peer: pythae's `Adversarial_AE` (Chadebec et al., PyPI `pythae`) at the paper's layer sizes,
stepped the way pythae's own `AdversarialTrainer` steps a batch, for bench_training.py.

pythae's schedule does less than the paper's: one encoder and one decoder forward, the discriminator
three times (codes, prior samples, detached codes), then one joint autoencoder update (reconstruction
+ adversarial term, through a discriminator whose weight gradients are computed and discarded) and
one discriminator update. Its trainer also reads three losses with `.item()` every batch. Networks:
784-1000-1000-8 encoder (deterministic posterior), 8-1000-1000-784 decoder with a sigmoid (pythae's
"bce" loss takes probabilities), 8-1000-1000-1 discriminator with a sigmoid; Adam, pythae's default.

pythae is optional (`pip install pythae`, or the `bench` extra; not a dependency of aae_fast):
`available()` says whether it imports. The model is examples/pythae_accelerate.py's.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path

import torch


def available() -> bool:
    return importlib.util.find_spec("pythae") is not None


@functools.cache
def _example():
    """examples/pythae_accelerate.py, which builds the model (one definition of it)."""
    path = Path(__file__).resolve().parents[1] / "examples" / "pythae_accelerate.py"
    spec = importlib.util.spec_from_file_location("pythae_accelerate_example", path)
    module = importlib.util.module_from_spec(spec)
    # Registered, as an import would: pythae's trainer pickles the model's classes with their
    # module (cloudpickle by value), which it looks up there.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def build(device: torch.device, input_dim: int = 784, latent_dim: int = 8, hidden=(1000, 1000),
          accelerate: bool = False):
    """(model, step): pythae's Adversarial_AE and a callable doing one trainer batch; with
    ``accelerate``, the model after ``af.accelerate`` (the optimisers built after it, over the same
    Parameter objects)."""
    model = _example().make_pythae_aae(input_dim, latent_dim, hidden).to(device)
    if accelerate:
        import aae_fast as af

        af.accelerate(model)
    model.train()
    ae_params = list(model.encoder.parameters()) + list(model.decoder.parameters())
    ae_opt = torch.optim.Adam(ae_params, lr=1e-4)
    d_opt = torch.optim.Adam(model.discriminator.parameters(), lr=1e-4)

    def step(x: torch.Tensor):
        # pythae.trainers.AdversarialTrainer.train_step, one batch (its _optimizers_step inlined)
        out = model({"data": x}, epoch=0, dataset_size=x.shape[0], uses_ddp=False)
        ae_opt.zero_grad()
        out.autoencoder_loss.backward(retain_graph=True)
        d_opt.zero_grad()
        out.discriminator_loss.backward()
        ae_opt.step()
        d_opt.step()
        return (
            out.autoencoder_loss.item(),
            out.discriminator_loss.item(),
            (out.autoencoder_loss + out.discriminator_loss).item(),
        )

    return model, step
