"""The shared "positive int" check: every public count argument accepts what torch accepts (Python
ints, numpy integers, 0-dim integer tensors) and refuses the rest with one message."""

import numpy as np
import pytest
import torch

import aae_fast as af
from aae_fast._checks import positive_int
from aae_fast.data import TensorLoader
from aae_fast.evaluation import plots
from aae_fast.experiment import RunConfig
from aae_fast.nn import FusedMLP


@pytest.mark.parametrize("value", [1, 7, np.int64(7), np.int32(7), torch.tensor(7)])
def test_accepts_integers_and_returns_a_python_int(value):
    out = positive_int(value, "width")
    assert out == int(value) and type(out) is int


@pytest.mark.parametrize("value", [0, -3, True, False, 7.0, np.float64(7.0), "7", None, torch.tensor(7.0)])
def test_refuses_the_rest_naming_the_argument_and_the_value(value):
    with pytest.raises(ValueError, match=r"^width must be a positive int, got ") as info:
        positive_int(value, "width")
    assert repr(value) in str(info.value)


def test_public_counts_take_numpy_integers(tmp_path):
    # Each of these refused numpy integers before (isinstance(value, int)), unlike nn.Linear.
    n = np.int64(3)
    prior = af.priors.Gaussian(n)
    assert prior.dim == 3 and type(prior.dim) is int
    assert af.priors.MixtureOfGaussians(num_components=n, dim=np.int64(2)).num_components == 3
    assert af.priors.Categorical(n).sample(5).shape[1] == 3
    assert af.priors.Gaussian(2).sample(np.int64(5)).shape == (5, 2)
    assert FusedMLP(np.int64(4), (n,), np.int64(2))(torch.randn(2, 4)).shape == (2, 2)
    loader = TensorLoader(torch.arange(10.0), batch_size=n)
    assert [len(b[0]) for b in loader] == [3, 3, 3, 1]
    assert plots.plot_image_grid(torch.rand(4, 5, 5), tmp_path / "grid.png", nrow=np.int64(2)).exists()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: af.priors.Gaussian(True), "dim must be a positive int, got True"),
        (lambda: af.priors.SwissRoll(2.5), "num_components must be a positive int, got 2.5"),
        (lambda: TensorLoader(torch.arange(10.0), batch_size=2.5), "batch_size must be a positive int, got 2.5"),
        (lambda: TensorLoader(torch.arange(10.0), batch_size=0), "batch_size must be a positive int, got 0"),
        (lambda: RunConfig(epochs=True), "epochs must be a positive int, got True"),
        (lambda: RunConfig(max_steps=0), "max_steps must be a positive int, got 0"),
    ],
)
def test_refusals_reach_the_public_api(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_experiment_config_stores_python_ints():
    config = RunConfig(epochs=np.int64(2), latent_dim=np.int64(4))
    assert config.epochs == 2 and type(config.epochs) is int and type(config.latent_dim) is int


def test_run_config_checks_every_count():
    for kwargs, message in [({"batch_size": 0}, "batch_size must be a positive int, got 0"),
                            ({"parzen_samples": -1}, "parzen_samples must be a positive int, got -1"),
                            ({"hidden": [1000, 0]}, r"hidden\[1\] must be a positive int, got 0")]:
        with pytest.raises(ValueError, match=message):
            RunConfig(**kwargs)
