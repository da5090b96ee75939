"""Prior sampling: aae_fast's one-pass op against the eager composite a user would write
(torch.randint + torch.randn + index + affine) and against torch.compile of that composite.

The paper's 10-component 2-D mixture (rotated, so full covariance factors) and a 2-D and 8-D
Gaussian, at n = 10^6 (and 10^7 on GPU). extra_info carries samples/s and bytes written per second (bytes_per_s).
"""

import pytest
import torch

import aae_fast as af
from conftest import record_throughput, run_timed

SIZES = [10**6] + ([10**7] if torch.cuda.is_available() else [])
IMPLS = ["fused", "eager", "compiled-eager"]


def eager_mixture(n, loc, scale_tril, generator=None):
    """What a user writes: pick components, draw normals, gather and transform."""
    k, d = loc.shape
    c = torch.randint(0, k, (n,), device=loc.device, generator=generator)
    eps = torch.randn(n, d, device=loc.device, generator=generator)
    return loc[c] + (scale_tril[c] @ eps.unsqueeze(-1)).squeeze(-1)


def eager_gaussian(n, mean, std, generator=None):
    return mean + std * torch.randn(n, mean.shape[-1], device=mean.device, generator=generator)


_compiled_mixture = torch.compile(eager_mixture, dynamic=False)
_compiled_gaussian = torch.compile(eager_gaussian, dynamic=False)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("impl", IMPLS)
def test_mixture_of_gaussians_sample(benchmark, device, impl, n):
    benchmark.group = f"MixtureOfGaussians.sample n={n:.0e}"
    prior = af.priors.MixtureOfGaussians()
    p = prior.params(device, torch.float32)
    if impl == "fused":
        g = af.PhiloxGenerator(seed=0, device=device)
        fn = lambda: prior.sample(n, generator=g, device=device)  # noqa: E731
    elif impl == "eager":
        fn = lambda: eager_mixture(n, p["loc"], p["scale"])  # noqa: E731
    else:
        fn = lambda: _compiled_mixture(n, p["loc"], p["scale"])  # noqa: E731
    out = run_timed(benchmark, fn, device)
    assert out.shape == (n, 2)
    benchmark.extra_info["n"] = n
    record_throughput(benchmark, n, nbytes=n * 2 * 4)


@pytest.mark.parametrize("dim", [2, 8])
@pytest.mark.parametrize("impl", IMPLS)
def test_gaussian_sample(benchmark, device, impl, dim):
    n = SIZES[0]
    benchmark.group = f"Gaussian({dim}).sample n={n:.0e}"
    prior = af.priors.Gaussian(dim)
    p = prior.params(device, torch.float32)
    if impl == "fused":
        g = af.PhiloxGenerator(seed=0, device=device)
        fn = lambda: prior.sample(n, generator=g, device=device)  # noqa: E731
    elif impl == "eager":
        fn = lambda: eager_gaussian(n, p["loc"], p["scale"])  # noqa: E731
    else:
        fn = lambda: _compiled_gaussian(n, p["loc"], p["scale"])  # noqa: E731
    out = run_timed(benchmark, fn, device)
    assert out.shape == (n, dim)
    benchmark.extra_info["n"] = n
    record_throughput(benchmark, n, nbytes=n * dim * 4)
