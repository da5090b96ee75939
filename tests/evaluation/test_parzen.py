"""Parzen-window log-likelihood against a brute-force float64 evaluation, analytic cases, tiling
invariance, sigma selection and bad inputs."""

import json
import math
import warnings

import pytest
import torch

from aae_fast.evaluation import (
    ParzenResult,
    evaluate_parzen,
    parzen_log_likelihood,
    select_sigma,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def brute_force(x, samples, sigma):
    """Explicit [N, M, D] differences, float64: the oracle (tiny sizes only)."""
    x = x.double().cpu()
    s = samples.double().cpu()
    d = x.shape[1]
    sq = (x[:, None, :] - s[None, :, :]).square().sum(-1)  # [N, M]
    log_k = -sq / (2 * sigma**2) - 0.5 * d * math.log(2 * math.pi * sigma**2)
    return torch.logsumexp(log_k, dim=1) - math.log(s.shape[0])


def data(n, m, d, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, d, generator=g) * scale, torch.rand(m, d, generator=g) * scale


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "n, m, d, sigma, batch, sample_batch",
    [
        (1, 1, 1, 0.3, 1024, 4096),
        (7, 13, 5, 0.2, 3, 4),
        (33, 17, 31, 0.5, 8, 5),
        (5, 129, 3, 0.05, 2, 64),
        (64, 1, 784, 0.2, 16, 1),
        (19, 23, 784, 1.7, 19, 23),
    ],
)
def test_matches_brute_force(device, n, m, d, sigma, batch, sample_batch):
    x, s = data(n, m, d, seed=n * m + d)
    got = parzen_log_likelihood(
        x.to(device), s.to(device), sigma, batch, sample_batch_size=sample_batch
    )
    assert got.shape == (n,) and got.dtype == torch.float64 and got.device.type == device
    torch.testing.assert_close(got.cpu(), brute_force(x, s, sigma), rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_input_dtypes_are_scored_in_float64(dtype):
    x, s = data(9, 11, 6, seed=3)
    x, s = x.to(dtype), s.to(dtype)
    got = parzen_log_likelihood(x, s, 0.3)
    torch.testing.assert_close(got, brute_force(x, s, 0.3), rtol=1e-12, atol=1e-10)


def test_underflow_case_is_finite_and_correct():
    # D = 500, sigma = 0.05: every kernel term is ~exp(-16000), zero in float64.
    x, s = data(6, 40, 500, seed=1)
    sigma = 0.05
    sq = (x.double()[:, None] - s.double()[None]).square().sum(-1)
    naive = torch.log(torch.exp(-sq / (2 * sigma**2)).mean(1)) - 250 * math.log(
        2 * math.pi * sigma**2
    )
    assert torch.isneginf(naive).all()  # the naive evaluation underflows...
    got = parzen_log_likelihood(x, s, sigma, 4, sample_batch_size=7)
    assert torch.isfinite(got).all()  # ...log-sum-exp does not
    torch.testing.assert_close(got, brute_force(x, s, sigma), rtol=1e-12, atol=1e-9)


def test_underflow_analytic_two_samples():
    # x = 0; samples at distance 1 and 2 along e_0: squared distances exactly 1 and 4.
    d, sigma = 300, 0.01
    x = torch.zeros(1, d, dtype=torch.float64)
    s = torch.zeros(2, d, dtype=torch.float64)
    s[0, 0], s[1, 0] = 1.0, 2.0
    a, b = 1.0 / (2 * sigma**2), 4.0 / (2 * sigma**2)  # 5,000 and 20,000
    expected = -a + math.log1p(math.exp(-(b - a))) - math.log(2) - 0.5 * d * math.log(
        2 * math.pi * sigma**2
    )
    got = parzen_log_likelihood(x, s, sigma, sample_batch_size=1)
    assert got.item() == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("d, sigma", [(1, 0.7), (10, 0.2), (784, 0.15)])
def test_single_sample_is_the_gaussian_log_density(d, sigma):
    x, s = data(12, 1, d, seed=d)
    expected = torch.distributions.Normal(s.double()[0], sigma).log_prob(x.double()).sum(-1)
    torch.testing.assert_close(parzen_log_likelihood(x, s, sigma), expected, rtol=1e-12, atol=1e-9)


def test_tiling_invariance():
    x, s = data(50, 70, 9, seed=5)
    ref = parzen_log_likelihood(x, s, 0.1, 1024, sample_batch_size=4096)
    for batch, sample_batch in [(1, 1), (3, 7), (50, 70), (17, 1), (1, 69), (49, 71)]:
        got = parzen_log_likelihood(x, s, 0.1, batch, sample_batch_size=sample_batch)
        torch.testing.assert_close(got, ref, rtol=0, atol=1e-10)


def test_sigma_as_tensor_and_empty_x():
    x, s = data(4, 5, 3)
    torch.testing.assert_close(
        parzen_log_likelihood(x, s, torch.tensor(0.4)), parzen_log_likelihood(x, s, 0.4)
    )
    assert parzen_log_likelihood(x[:0], s, 0.4).shape == (0,)


def test_select_sigma_table_is_the_brute_force_mean():
    val, s = data(21, 30, 7, seed=11)
    sigmas = [0.05, 0.1, 0.2, 0.4, 0.8]
    best, table = select_sigma(val, s, sigmas, 4, sample_batch_size=9)
    assert list(table) == sigmas
    for sigma, mean_ll in table.items():
        assert mean_ll == pytest.approx(brute_force(val, s, sigma).mean().item(), rel=1e-12)
    assert best == max(table, key=table.get)


def test_select_sigma_near_the_kde_bandwidth_on_gaussian_data():
    # Samples and validation from N(0, 2^2 I) in 2-D. A rule-of-thumb bandwidth (Scott) is
    # 2 * M^(-1/6) ~ 0.66 for M = 800; the likelihood optimum lies near it.
    g = torch.Generator().manual_seed(0)
    s = 2.0 * torch.randn(800, 2, generator=g, dtype=torch.float64)
    val = 2.0 * torch.randn(500, 2, generator=g, dtype=torch.float64)
    sigmas = torch.logspace(-1.5, 1, 16, dtype=torch.float64)
    best, table = select_sigma(val, s, sigmas)
    assert 0.3 < best < 1.5  # within ~2x of the rule of thumb, on a grid spanning 300x
    values = list(table.values())
    assert best == list(table)[values.index(max(values))]


def test_select_sigma_warns_at_the_edge_of_the_grid():
    val, s = data(10, 10, 50, seed=2)  # the best width is ~0.4
    with pytest.warns(UserWarning, match="smallest of the grid"):
        best, _ = select_sigma(val, s, [1.0, 5.0, 9.0])
    assert best == 1.0
    with pytest.warns(UserWarning, match="largest of the grid"):
        best, _ = select_sigma(val, s, [0.001, 0.01, 0.1])
    assert best == 0.1
    # The grid's range decides, not the order it is given in: the best width in the middle of the
    # list but the largest of the grid warns; the first entry of the list, inside the range, does not.
    with pytest.warns(UserWarning, match="largest of the grid"):
        best, _ = select_sigma(val, s, [0.001, 0.1, 0.01])
    assert best == 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        best, _ = select_sigma(val, s, [0.4, 0.01, 9.0])
    assert best == 0.4


def test_a_sigma_of_the_wrong_type_is_named():
    x, s = data(3, 4, 2, seed=1)
    with pytest.raises(TypeError, match="sigma must be a positive number, .* got str 'a'"):
        parzen_log_likelihood(x, s, "a")


def test_evaluate_parzen_result():
    test, s = data(40, 30, 5, seed=4)
    val, _ = data(25, 1, 5, seed=6)
    res = evaluate_parzen(test, s, validation=val, sigmas=[0.05, 0.1, 0.2, 0.4, 0.8, 1.6])
    assert isinstance(res, ParzenResult)
    best, table = select_sigma(val, s, [0.05, 0.1, 0.2, 0.4, 0.8, 1.6])
    ll = brute_force(test, s, best)
    assert res.sigma == best and res.sigma_table == table
    assert res.mean == pytest.approx(ll.mean().item(), rel=1e-12)
    assert res.sem == pytest.approx(ll.std().item() / math.sqrt(40), rel=1e-10)
    assert (res.num_points, res.num_samples) == (40, 30)
    json.dumps(res.as_dict())
    assert "±" in str(res)

    fixed = evaluate_parzen(test, s, sigma=0.3)
    assert fixed.sigma == 0.3 and fixed.sigma_table is None
    assert fixed.mean == pytest.approx(brute_force(test, s, 0.3).mean().item(), rel=1e-12)
    with pytest.raises(ValueError, match="sigma or a validation set"):
        evaluate_parzen(test, s)


def test_progress_bar_flag(capsys):
    x, s = data(5, 5, 3)
    parzen_log_likelihood(x, s, 0.3, progress=True)
    assert "Parzen" in capsys.readouterr().err
    parzen_log_likelihood(x, s, 0.3, progress=False)
    parzen_log_likelihood(x, s, 0.3)  # auto: small, no bar
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "x, samples, sigma, kwargs, err, match",
    [
        (torch.rand(5), torch.rand(3, 5), 0.1, {}, ValueError, r"x must have shape \[N, D\]"),
        (torch.rand(4, 5), torch.rand(3, 6), 0.1, {}, ValueError,
         r"same dimension D.*\(4, 5\).*\(3, 6\)"),
        (torch.rand(4, 5), torch.rand(0, 5), 0.1, {}, ValueError, "at least one sample"),
        (torch.rand(4, 5), torch.rand(3, 5, 1), 0.1, {}, ValueError, "samples must have shape"),
        (torch.ones(4, 5, dtype=torch.int64), torch.rand(3, 5), 0.1, {}, TypeError, "floating"),
        (torch.rand(4, 5), torch.rand(3, 5), 0.0, {}, ValueError, "sigma must be finite and > 0"),
        (torch.rand(4, 5), torch.rand(3, 5), -1.0, {}, ValueError, "sigma must be"),
        (torch.rand(4, 5), torch.rand(3, 5), float("nan"), {}, ValueError, "sigma must be"),
        (torch.rand(4, 5), torch.rand(3, 5), [0.1, 0.2], {}, ValueError, "single width"),
        (torch.rand(4, 5), torch.rand(3, 5), 0.1, {"batch_size": 0}, ValueError, "batch_size"),
        (torch.rand(4, 5), torch.rand(3, 5), 0.1, {"sample_batch_size": 1.5}, ValueError,
         "sample_batch_size"),
        ([[0.0]], torch.rand(3, 1), 0.1, {}, TypeError, "x must be a torch.Tensor"),
    ],
)
def test_bad_inputs(x, samples, sigma, kwargs, err, match):
    with pytest.raises(err, match=match):
        parzen_log_likelihood(x, samples, sigma, **kwargs)


def test_select_sigma_bad_inputs():
    with pytest.raises(ValueError, match="validation must hold at least one row"):
        select_sigma(torch.rand(0, 3), torch.rand(4, 3))
    with pytest.raises(ValueError, match="validation and samples must have the same dimension"):
        select_sigma(torch.rand(2, 3), torch.rand(4, 2))
    with pytest.raises(ValueError, match="at least one window width"):
        select_sigma(torch.rand(2, 3), torch.rand(4, 3), [])
