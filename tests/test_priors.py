"""Statistics of every prior against its definition, on both backends, with tolerances derived from
the sample size: each estimate must lie within Z standard errors of its true value. With Z = 5 a
correct sampler fails one such check with probability below 1e-6."""

import math

import pytest
import torch

import aae_fast as af
from aae_fast.priors import Categorical, Custom, Gaussian, MixtureOfGaussians, SwissRoll

Z = 5.0
N = 200_000
BACKENDS = ["fused", "eager"]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def gen(seed=0, device="cpu"):
    return torch.Generator(device=device).manual_seed(seed)


def assert_mean_cov(z, mean, cov, what=""):
    """Sample mean within Z standard errors (sqrt(var / n)) and sample covariance within Z standard
    errors (sqrt((s_ii s_jj + s_ij^2) / n), the Gaussian case) of their true values."""
    n = z.shape[0]
    z = z.double().cpu()
    mean, cov = mean.double(), cov.double()
    se_mean = torch.sqrt(torch.diagonal(cov) / n)
    assert (z.mean(0) - mean).abs().le(Z * se_mean).all(), f"{what} mean {z.mean(0)} vs {mean}"
    var = torch.diagonal(cov)
    se_cov = torch.sqrt((var[:, None] * var[None, :] + cov**2) / n)
    sample_cov = torch.cov(z.T).reshape(cov.shape)
    assert (sample_cov - cov).abs().le(Z * se_cov).all(), f"{what} cov {sample_cov} vs {cov}"


def assert_frequencies(counts, probs, what=""):
    n = counts.sum()
    freq = counts.double() / n
    se = torch.sqrt(probs * (1 - probs) / n)
    assert (freq - probs).abs().le(Z * se + 1e-12).all(), f"{what} frequencies {freq} vs {probs}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("device", DEVICES)
def test_gaussian_moments(backend, device):
    mean = torch.tensor([0.5, -2.0, 0.0])
    std = torch.tensor([1.0, 0.3, 2.5])
    z = Gaussian(3, mean=mean, std=std).sample(N, generator=gen(1, device), backend=backend)
    assert z.shape == (N, 3) and z.dtype == torch.float32 and z.device.type == device
    assert_mean_cov(z, mean, torch.diag(std**2), "gaussian")


@pytest.mark.parametrize("backend", BACKENDS)
def test_mixture_per_component_moments_follow_labels(backend):
    prior = MixtureOfGaussians()  # the paper's 10 components on a circle
    k = prior.num_components
    labels = torch.arange(k).repeat_interleave(20_000)
    z = prior.sample(labels.numel(), labels=labels, generator=gen(2), backend=backend)
    for c in range(k):
        assert_mean_cov(z[labels == c], prior.means[c], prior.covariances[c], f"component {c}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_mixture_unlabelled_matches_weights_and_total_moments(backend):
    weights = torch.tensor([0.5, 0.2, 0.3], dtype=torch.float64)
    means = torch.tensor([[-20.0, 0.0], [20.0, 1.0], [0.0, 25.0]])  # far apart: nearest mean = component
    covs = torch.tensor([[[1.0, 0.3], [0.3, 0.5]], [[0.2, 0.0], [0.0, 0.2]], [[2.0, -0.5], [-0.5, 1.0]]])
    prior = MixtureOfGaussians(means=means, covariances=covs, weights=weights)
    z = prior.sample(N, generator=gen(3), backend=backend).double()
    # Assign each sample to its component by the (well separated) nearest mean and check weights.
    nearest = torch.cdist(z, means.double()).argmin(1)
    assert_frequencies(torch.bincount(nearest, minlength=3), weights, "mixture weights")
    # Law of total covariance.
    mu = (weights[:, None] * means.double()).sum(0)
    centred = means.double() - mu
    total = (weights[:, None, None] * (covs.double() + centred[:, :, None] * centred[:, None, :])).sum(0)
    n = z.shape[0]
    assert ((z.mean(0) - mu).abs() <= Z * torch.sqrt(torch.diagonal(total) / n)).all()
    # The mixture is not Gaussian, so use a loose but sample-size-derived bound on the covariance.
    fourth = ((z - mu) ** 2).T @ ((z - mu) ** 2) / n
    se_cov = torch.sqrt(fourth / n)
    assert ((torch.cov(z.T) - total).abs() <= Z * se_cov).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_mixture_diagonal_stds(backend):
    means = torch.tensor([[0.0, 0.0, 0.0], [10.0, 10.0, 10.0]])
    stds = torch.tensor([[1.0, 2.0, 0.5], [0.1, 0.2, 0.3]])
    prior = MixtureOfGaussians(means=means, stds=stds)
    labels = torch.tensor([0, 1]).repeat(50_000)
    z = prior.sample(labels.numel(), labels=labels, generator=gen(4), backend=backend)
    for c in range(2):
        assert_mean_cov(z[labels == c], means[c], torch.diag(stds[c] ** 2), f"component {c}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_swiss_roll_geometry_and_label_segments(backend):
    prior = SwissRoll(num_components=10, radius=3.0, turns=2.0)
    labels = torch.arange(10).repeat(10_000)
    z = prior.sample(labels.numel(), labels=labels, generator=gen(5), backend=backend).double()
    r = z.norm(dim=1)
    t = (r / 3.0) ** 2
    # Every point lies on the curve: its polar angle equals 2 pi turns sqrt(t) modulo 2 pi.
    angle = torch.atan2(z[:, 1], z[:, 0])
    expected = 2 * math.pi * 2.0 * torch.sqrt(t)
    wrapped = torch.remainder(angle - expected + math.pi, 2 * math.pi) - math.pi
    assert wrapped.abs().max() < 1e-3
    # Each label's points fill its segment t in [s/K, (s+1)/K) uniformly.
    for s in range(10):
        ts = t[labels == s]
        assert ts.min() >= s / 10 - 1e-5 and ts.max() < (s + 1) / 10 + 1e-5
        se = (0.1 / math.sqrt(12)) / math.sqrt(ts.numel())
        assert abs(ts.mean().item() - (s + 0.5) / 10) < Z * se


@pytest.mark.parametrize("backend", BACKENDS)
def test_swiss_roll_unlabelled_is_uniform_along_the_roll(backend):
    z = SwissRoll(num_components=4).sample(N, generator=gen(6), backend=backend).double()
    t = (z.norm(dim=1) / 3.0) ** 2
    counts = torch.histc(t, bins=4, min=0.0, max=1.0).long()
    assert_frequencies(counts, torch.full((4,), 0.25, dtype=torch.float64), "swiss roll segments")


@pytest.mark.parametrize("backend", BACKENDS)
def test_categorical_is_one_hot_with_given_probabilities(backend):
    probs = torch.tensor([0.1, 0.6, 0.3], dtype=torch.float64)
    y = Categorical(3, probs=probs).sample(N, generator=gen(7), backend=backend)
    assert y.shape == (N, 3)
    assert torch.equal(y.sum(1), torch.ones(N)) and ((y == 0) | (y == 1)).all()
    assert_frequencies(y.sum(0).long(), probs, "categorical")


@pytest.mark.parametrize("backend", BACKENDS)
def test_categorical_labels_route(backend):
    labels = torch.tensor([2, 0, 1, 2, 2])
    y = Categorical(3).sample(5, labels=labels, backend=backend)
    assert torch.equal(y.argmax(1), labels)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "prior", [Gaussian(4), MixtureOfGaussians(), SwissRoll(), Categorical(5)], ids=repr
)
def test_same_seed_same_samples(backend, prior):
    a = prior.sample(100, generator=gen(11), backend=backend)
    b = prior.sample(100, generator=gen(11), backend=backend)
    c = prior.sample(100, generator=gen(12), backend=backend)
    assert torch.equal(a, b)
    if not isinstance(prior, Categorical):
        assert not torch.equal(a, c)


def test_philox_generator_reproducible_and_advancing():
    prior = MixtureOfGaussians()
    g = af.PhiloxGenerator(seed=5)
    a = prior.sample(10, generator=g)
    b = prior.sample(10, generator=g)
    assert g.get_state().tolist() == [5, 20]
    g.manual_seed(5)
    assert torch.equal(prior.sample(10, generator=g), a)
    assert not torch.equal(a, b)


def test_torch_manual_seed_controls_default_generator():
    torch.manual_seed(3)
    a = SwissRoll().sample(10)
    torch.manual_seed(3)
    assert torch.equal(SwissRoll().sample(10), a)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_output_dtype(dtype):
    assert MixtureOfGaussians().sample(8, dtype=dtype).dtype == dtype
    assert Gaussian(3).sample(8, dtype=dtype, backend="eager").dtype == dtype


def test_compiled_sampling_fullgraph():
    prior = MixtureOfGaussians()
    g_eager, g_compiled = af.PhiloxGenerator(seed=9), af.PhiloxGenerator(seed=9)

    def step(labels, g):
        return prior.sample(labels.numel(), labels=labels, generator=g) ** 2

    labels = torch.arange(10).repeat(3)
    compiled = torch.compile(step, fullgraph=True)
    torch.testing.assert_close(compiled(labels, g_compiled), step(labels, g_eager))
    torch.testing.assert_close(compiled(labels, g_compiled), step(labels, g_eager))


def test_custom_prior():
    def ring(n, labels, generator, device, dtype):
        a = torch.rand(n, generator=generator, device=device) * 2 * math.pi
        return torch.stack((a.cos(), a.sin()), 1).to(dtype)

    z = Custom(ring, dim=2).sample(1000, generator=gen(0))
    torch.testing.assert_close(z.norm(dim=1), torch.ones(1000))
    with pytest.raises(ValueError, match=r"sampler must return shape \(5, 3\), got \(5, 2\)"):
        Custom(ring, dim=3).sample(5)
    with pytest.raises(TypeError, match="sampler must be callable"):
        Custom(42)


@pytest.mark.parametrize("backend", ["fused", "eager"])
def test_a_custom_prior_written_for_torch_generators_trains_in_every_model(backend):
    """A fused model draws from its PhiloxGenerator, which torch.rand cannot take: the sampler gets
    None there and draws from torch's default generator, seeded by torch.manual_seed."""
    seen = []

    def ring(n, labels, generator, device, dtype):
        seen.append(generator)
        a = torch.rand(n, generator=generator, device=device, dtype=dtype) * 2 * math.pi
        return torch.stack((a.cos(), a.sin()), 1)

    model = af.AdversarialAutoencoder(input_dim=12, latent_dim=2, hidden=(8,), prior=Custom(ring),
                                      backend=backend)
    torch.manual_seed(3)
    first = model.generate(4)
    torch.manual_seed(3)
    torch.testing.assert_close(model.generate(4), first)
    assert all(g is None or isinstance(g, torch.Generator) for g in seen)
    trainer = af.Trainer(model, batch_size=8, progress=False)
    losses = trainer.step(torch.rand(8, 12))
    assert all(math.isfinite(v) for v in losses.values())
    # A torch.Generator given to sample() still reaches the sampler.
    g = torch.Generator().manual_seed(0)
    Custom(ring, dim=2).sample(3, generator=g, backend="fused")
    assert seen[-1] is g


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: Gaussian(2).sample(-1), ValueError, "n must be a non-negative number of samples, got -1"),
        (lambda: Gaussian(2).sample(2.5), TypeError, "n must be an int, got float"),
        (lambda: Gaussian(2).sample(3, labels=torch.zeros(3, dtype=torch.int64)), ValueError, "Gaussian has no components"),
        (lambda: SwissRoll(4).sample(3, labels=torch.tensor([0, 4, 1])), ValueError, r"labels must lie in \[0, 4\), got values in \[0, 4\]"),
        (lambda: SwissRoll(4).sample(3, labels=torch.tensor([0, -1, 1])), ValueError, r"labels must lie in \[0, 4\)"),
        (lambda: MixtureOfGaussians().sample(3, labels=torch.tensor([0, 1, 2], dtype=torch.int32)), TypeError, "labels must have dtype torch.int64, got torch.int32"),
        (lambda: MixtureOfGaussians().sample(3, labels=torch.zeros(4, dtype=torch.int64)), ValueError, r"labels must have shape \(3,\) to match n, got \(4,\)"),
        (lambda: MixtureOfGaussians().sample(3, labels=[0, 1, 2]), TypeError, "labels must be a torch.Tensor, got list"),
        (lambda: Categorical(3).sample(3, labels=torch.zeros(3, dtype=torch.int64, device="meta"), device="cpu"), ValueError, "labels must be on cpu"),
        (lambda: Gaussian(2).sample(3, backend="triton"), ValueError, "backend must be one of"),
        (lambda: Gaussian(2).sample(3, dtype=torch.int64), TypeError,
         "dtype must be one of torch.float32, torch.float64, torch.float16, torch.bfloat16"),
        (lambda: Gaussian(2).sample(3, dtype=torch.float8_e4m3fn), TypeError, "got torch.float8_e4m3fn"),
        (lambda: Categorical(2, probs=[float("inf"), 1.0]), ValueError, "probs must be finite"),
        (lambda: Categorical(3, probs=[1e308] * 3), ValueError, "positive, finite sum"),
        (lambda: Gaussian(2, std=float("nan")), ValueError, "std must be positive and finite"),
        (lambda: MixtureOfGaussians(radial_std=float("inf")), ValueError, "radial_std must be positive and finite"),
        (lambda: MixtureOfGaussians(means=[[0.0, float("nan")]], stds=1.0), ValueError, "means must be finite"),
        (lambda: MixtureOfGaussians(means=[[0.0, 0.0]], stds=float("inf")), ValueError, "stds must be positive and finite"),
        (lambda: Gaussian(2).sample(3, generator=af.PhiloxGenerator(0), backend="eager"), TypeError, "generator: backend='eager'"),
        (lambda: Gaussian(2).sample(3, generator="seed"), TypeError, "generator must be"),
        (lambda: Gaussian(0), ValueError, "dim must be a positive int, got 0"),
        (lambda: Gaussian(2, std=[1.0, -1.0]), ValueError, "std must be positive"),
        (lambda: Gaussian(2, mean=[1.0, 2.0, 3.0]), ValueError, r"mean must be a scalar or have shape \(2,\), got \(3,\)"),
        (lambda: MixtureOfGaussians(means=torch.zeros(2, 2), covariances=-torch.eye(2).expand(2, 2, 2)), ValueError, "positive definite"),
        (lambda: MixtureOfGaussians(means=torch.zeros(2, 2), stds=torch.ones(3, 2)), ValueError, "stds must be"),
        (lambda: MixtureOfGaussians(weights=[1.0, 2.0]), ValueError, r"weights must have shape \(10,\)"),
        (lambda: Categorical(3, probs=[0.5, -0.1, 0.6]), ValueError, "probs must be finite and non-negative"),
        (lambda: SwissRoll(0), ValueError, "num_components must be a positive int"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ------------------------------------------------------------------------------------------------
# Densities (log_prob): what the VAE baseline's KL term needs


def _reference_log_prob(prior, z):
    from torch.distributions import Independent, MixtureSameFamily, MultivariateNormal, Normal
    from torch.distributions import Categorical as Cat

    if isinstance(prior, Gaussian):
        return Independent(Normal(prior.mean, prior.std), 1).log_prob(z)
    scale = prior.scale if prior.scale.dim() == 3 else torch.diag_embed(prior.scale)
    return MixtureSameFamily(Cat(prior.weights), MultivariateNormal(prior.means, scale_tril=scale)).log_prob(z)


DENSITIES = {
    "gaussian": lambda: Gaussian(3, mean=[1.0, -2.0, 0.5], std=[0.5, 1.0, 2.0]),
    "mixture-circle": lambda: MixtureOfGaussians(),
    "mixture-circle-5d": lambda: MixtureOfGaussians(num_components=7, dim=5),
    "mixture-diagonal": lambda: MixtureOfGaussians(
        means=[[0.0, 1.0, 2.0], [3.0, -1.0, 0.0]], stds=[[0.5, 1.0, 2.0], [1.0, 0.3, 0.7]], weights=[1, 3]
    ),
    "mixture-full": lambda: MixtureOfGaussians(
        means=[[0.0, 0.0], [2.0, 1.0]], covariances=[[[2.0, 0.5], [0.5, 1.0]], [[0.3, -0.1], [-0.1, 0.4]]]
    ),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", sorted(DENSITIES))
def test_log_prob_matches_torch_distributions(name, dtype):
    prior = DENSITIES[name]()
    z = 3 * torch.randn(37, prior.dim, generator=gen(1), dtype=torch.float64)
    want = _reference_log_prob(prior, z)
    got = prior.log_prob(z.to(dtype))
    assert got.dtype == dtype and got.shape == (37,)
    tol = 1e-12 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", ["gaussian", "mixture-full"])
def test_log_prob_gradient(name):
    prior = DENSITIES[name]()
    z = torch.randn(5, prior.dim, generator=gen(2), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(prior.log_prob, (z,))


def test_log_prob_bad_input_and_sample_only_priors():
    with pytest.raises(ValueError, match=r"z must have shape \[N, 2\], got \[4, 3\]"):
        MixtureOfGaussians().log_prob(torch.zeros(4, 3))
    with pytest.raises(TypeError, match="z must be float32 or float64, got torch.int64"):
        Gaussian(2).log_prob(torch.zeros(4, 2, dtype=torch.long))
    with pytest.raises(NotImplementedError, match="SwissRoll has no density"):
        SwissRoll().log_prob(torch.zeros(4, 2))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("prior", [Gaussian(3), MixtureOfGaussians(), SwissRoll(), Categorical(4)],
                         ids=["gaussian", "mixture", "swiss-roll", "categorical"])
def test_zero_samples_is_an_empty_batch(backend, prior):
    # n is a non-negative int: no samples is an empty [0, D] batch on either backend.
    z = prior.sample(0, generator=gen(), backend=backend)
    assert z.shape == (0, prior.dim) and z.dtype == torch.float32



@pytest.mark.parametrize("backend", BACKENDS)
def test_a_device_named_without_its_index_accepts_labels_on_it(backend):
    # "cpu:0" (or "cuda") names the device a tensor reports as "cpu" ("cuda:0"): labels there are
    # on the sampling device.
    labels = torch.arange(6) % 10
    z = MixtureOfGaussians().sample(6, labels=labels, device="cpu:0", backend=backend)
    assert z.shape == (6, 2) and z.device == labels.device


def test_mixture_means_are_copied():
    means = torch.zeros(2, 2, dtype=torch.float64)
    prior = MixtureOfGaussians(means=means, stds=1.0)
    means += 10  # the caller's tensor changes afterwards: the prior does not
    assert prior.means.abs().max() == 0
    assert prior.sample(20000, generator=gen()).mean(0).abs().max() < 0.05
