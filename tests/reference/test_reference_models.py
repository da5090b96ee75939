"""Fast checks of the eager reference models: shapes of every method for every variant and encoder,
the state-dict layout a fused twin must reproduce, which parameters each phase updates, that the
reference never touches the fused ops, and clear errors for bad inputs."""

from __future__ import annotations

import ast
import pathlib

import pytest
import torch

import aae_fast.reference as ref
from aae_fast.priors import Categorical, Custom, Gaussian, MixtureOfGaussians, SwissRoll

H = (16, 12)  # small encoder widths: decoder mirrors them
DH = (9,)  # discriminator widths
N = 7
D_IN = 20


def make(variant: str, **kw):
    """Every variant, tiny."""
    kw.setdefault("hidden", H)
    kw.setdefault("discriminator_hidden", DH)
    if variant in ("deterministic", "gaussian", "universal"):
        return ref.AdversarialAutoencoder(input_dim=D_IN, latent_dim=3, encoder=variant, **kw)
    if variant == "label-conditioned":
        return ref.AdversarialAutoencoder(
            input_dim=D_IN, latent_dim=2, prior=MixtureOfGaussians(4), label_conditioned=True, **kw
        )
    if variant == "swiss-roll":
        return ref.AdversarialAutoencoder(
            input_dim=D_IN, latent_dim=2, prior=SwissRoll(4), label_conditioned=True, **kw
        )
    if variant == "supervised":
        return ref.SupervisedAAE(input_dim=D_IN, latent_dim=3, num_classes=4, **kw)
    if variant == "semi-supervised":
        return ref.SemiSupervisedAAE(input_dim=D_IN, num_classes=4, latent_dim=3, **kw)
    if variant == "clustering":
        return ref.ClusteringAAE(input_dim=D_IN, num_clusters=5, latent_dim=3, **kw)
    if variant == "dim-reduction":
        return ref.DimReductionAAE(input_dim=D_IN, latent_dim=2, num_clusters=5, **kw)
    if variant == "dim-reduction-semi":
        return ref.DimReductionAAE(
            input_dim=D_IN, latent_dim=2, num_clusters=4, semi_supervised=True, **kw
        )
    raise AssertionError(variant)


VARIANTS = [
    "deterministic",
    "gaussian",
    "universal",
    "label-conditioned",
    "swiss-roll",
    "supervised",
    "semi-supervised",
    "clustering",
    "dim-reduction",
    "dim-reduction-semi",
]


def batch_for(model, n=N, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, D_IN, generator=g)
    k = getattr(model, "num_classes", None) or getattr(model, "num_categories", None) or 4
    y = torch.randint(0, k, (n,), generator=g)
    if getattr(model, "label_conditioned", False):
        y[::3] = -1  # some unlabelled rows (the "unknown" slot)
    return {"x": x, "y": y}


def mlp_keys(name, widths_in, hidden, out):
    """Expected {key: shape} of an MLP built by aae_fast.reference.networks.mlp."""
    keys, width = {}, widths_in
    for i, h in enumerate(list(hidden) + [out]):
        keys[f"{name}.{2 * i}.weight"] = (h, width)
        keys[f"{name}.{2 * i}.bias"] = (h,)
        width = h
    return keys


def expected_layout(variant):
    rev = H[::-1]
    if variant in ("deterministic", "gaussian", "universal"):
        d = 3
        enc_in = D_IN + (d if variant == "universal" else 0)
        enc_out = 2 * d if variant == "gaussian" else d
        return {
            **mlp_keys("encoder", enc_in, H, enc_out),
            **mlp_keys("decoder", d, rev, D_IN),
            **mlp_keys("discriminator", d, DH, 1),
        }
    if variant in ("label-conditioned", "swiss-roll"):
        return {
            **mlp_keys("encoder", D_IN, H, 2),
            **mlp_keys("decoder", 2, rev, D_IN),
            **mlp_keys("discriminator", 2 + 4 + 1, DH, 1),
        }
    if variant == "supervised":
        return {
            **mlp_keys("encoder", D_IN, H, 3),
            **mlp_keys("decoder", 3 + 4, rev, D_IN),
            **mlp_keys("discriminator", 3, DH, 1),
        }
    k, d = {
        "semi-supervised": (4, 3),
        "clustering": (5, 3),
        "dim-reduction": (5, 2),
        "dim-reduction-semi": (4, 2),
    }[variant]
    dec_in = d if variant.startswith("dim") else k + d
    keys = {
        **mlp_keys("encoder", D_IN, H, k + d),
        **mlp_keys("decoder", dec_in, rev, D_IN),
        **mlp_keys("discriminator_y", k, DH, 1),
        **mlp_keys("discriminator_z", d, DH, 1),
    }
    if variant.startswith("dim"):
        keys["cluster_heads.weight"] = (d, k)
    return keys


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_dict_layout_is_stable(variant):
    model = make(variant)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == expected_layout(variant)
    # Keys come in module order (a fused twin loads them with strict=True).
    assert list(got) == list(expected_layout(variant))


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_dict_round_trips_between_instances(variant):
    torch.manual_seed(0)
    a = make(variant)
    torch.manual_seed(1)
    b = make(variant)
    b.load_state_dict(a.state_dict(), strict=True)
    x = batch_for(a)["x"]
    codes_a, codes_b = a.encode(x), b.encode(x)
    if isinstance(codes_a, torch.Tensor):
        if variant in ("gaussian", "universal"):
            codes_a, codes_b = a.encode(x, sample=False), b.encode(x, sample=False)
        torch.testing.assert_close(codes_a, codes_b, rtol=0, atol=0)
    else:
        for u, v in zip(codes_a, codes_b, strict=True):
            torch.testing.assert_close(u, v, rtol=0, atol=0)


def test_weights_initialised_as_in_the_paper():
    """Appendix A: weights ~ N(0, 0.01^2); biases zero (our choice)."""
    torch.manual_seed(0)
    model = ref.AdversarialAutoencoder(hidden=(300, 300))
    w = model.encoder[0].weight.detach()
    assert abs(float(w.std()) - 0.01) < 5e-4 and abs(float(w.mean())) < 5e-4
    assert all(
        float(m.bias.detach().abs().max()) == 0
        for m in model.modules()
        if isinstance(m, torch.nn.Linear)
    )
    default = ref.AdversarialAutoencoder(hidden=(300, 300), init_std=None)
    assert (
        float(default.encoder[0].weight.detach().std()) > 0.015
    )  # PyTorch's default, not N(0, 0.01^2)


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_shapes(variant):
    torch.manual_seed(0)
    model = make(variant)
    b = batch_for(model)
    x, y = b["x"], b["y"]
    codes = model.encode(x)
    gen = torch.Generator().manual_seed(3)
    if variant in ("semi-supervised", "clustering", "dim-reduction", "dim-reduction-semi"):
        k = model.num_categories
        d = model.latent_dim
        assert codes.y.shape == (N, k) and codes.z.shape == (N, d)
        torch.testing.assert_close(codes.y.sum(1), torch.ones(N))
        if variant.startswith("dim"):
            assert isinstance(codes, ref.DimReductionCodes)
            assert codes.representation.shape == (N, d)
            torch.testing.assert_close(
                codes.representation, codes.y @ model.cluster_heads.weight.t() + codes.z
            )
        else:
            assert isinstance(codes, ref.CategoricalCodes)
        out = model.decode(codes.z, codes.y)
        assert out.shape == (N, D_IN)
        # Class ids work as y too, and give the one-hot decoding.
        ids = torch.arange(N) % k
        torch.testing.assert_close(
            model.decode(codes.z, ids), model.decode(codes.z, torch.eye(k)[ids])
        )
        pred = model.predict(x)
        assert pred.shape == (N,) and pred.dtype == torch.int64
        assert int(pred.min()) >= 0 and int(pred.max()) < k
        labels = torch.arange(5) % k
        assert model.generate(5, labels=labels, generator=gen).shape == (5, D_IN)
    elif variant == "supervised":
        assert codes.shape == (N, 3)
        out = model.decode(codes, y)
        assert out.shape == (N, D_IN)
        assert model.generate(5, generator=gen).shape == (5, D_IN)
        assert model.generate(5, labels=torch.arange(5) % 4).shape == (5, D_IN)
        assert model.reconstruct(x, y).shape == (N, D_IN)
    else:
        d = model.latent_dim
        assert codes.shape == (N, d)
        out = model.decode(codes)
        assert out.shape == (N, D_IN)
        logits = model.decode(codes, logits=True)
        torch.testing.assert_close(torch.sigmoid(logits), out)
        assert model.reconstruct(x).shape == (N, D_IN)
        assert model.generate(5, generator=gen).shape == (5, D_IN)
        assert model.sample_prior(5).shape == (5, d)
        if model.label_conditioned:
            assert model.generate(4, labels=torch.arange(4)).shape == (4, D_IN)
            assert model.discriminate(codes, y).shape == (N,)
            pred = model.predict(x)
            assert pred.shape == (N,) and int(pred.max()) < 4
        else:
            assert model.discriminate(codes).shape == (N,)
    assert float(out.detach().min()) >= 0 and float(out.detach().max()) <= 1  # probabilities


@pytest.mark.parametrize("variant", VARIANTS)
def test_training_step_returns_detached_scalars_and_updates(variant):
    torch.manual_seed(0)
    model = make(variant, optimizer="adam")
    optimizers = model.configure_optimizers()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = model.training_step(batch_for(model), optimizers)
    expected = {"reconstruction", "discriminator", "generator"}
    if variant in ("semi-supervised", "clustering", "dim-reduction", "dim-reduction-semi"):
        expected |= {"discriminator_y", "discriminator_z", "generator_y", "generator_z"}
    if variant in ("semi-supervised", "dim-reduction-semi"):
        expected.add("classification")
    if variant.startswith("dim"):
        expected.add("cluster_separation")
    assert set(out) == expected
    for k, v in out.items():
        assert isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad, k
        assert torch.isfinite(v), k
    after = model.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before), "every parameter must train"
    val = model.validation_step(batch_for(model, seed=1))
    assert "reconstruction" in val and torch.isfinite(val["reconstruction"])


def test_tuple_batches_are_accepted():
    model = make("supervised", optimizer="adam")
    b = batch_for(model)
    out = model.training_step((b["x"], b["y"]), model.configure_optimizers())
    assert torch.isfinite(out["reconstruction"])


@pytest.mark.parametrize(
    "variant, phases",
    [
        (
            "deterministic",
            {
                "autoencoder": ["encoder", "decoder"],
                "discriminator": ["discriminator"],
                "generator": ["encoder"],
            },
        ),
        (
            "supervised",
            {
                "autoencoder": ["encoder", "decoder"],
                "discriminator": ["discriminator"],
                "generator": ["encoder"],
            },
        ),
        (
            "semi-supervised",
            {
                "autoencoder": ["encoder", "decoder"],
                "discriminator": ["discriminator_y", "discriminator_z"],
                "generator": ["encoder"],
                "classifier": ["encoder"],
            },
        ),
        (
            "clustering",
            {
                "autoencoder": ["encoder", "decoder"],
                "discriminator": ["discriminator_y", "discriminator_z"],
                "generator": ["encoder"],
            },
        ),
        (
            "dim-reduction",
            {
                "autoencoder": ["encoder", "decoder", "cluster_heads"],
                "discriminator": ["discriminator_y", "discriminator_z"],
                "generator": ["encoder"],
            },
        ),
    ],
)
def test_each_phase_optimises_the_paper_networks(variant, phases):
    """§2, §5: reconstruction updates encoder + decoder, the D step only the discriminator(s), the G
    step and the classification step only the encoder."""
    model = make(variant)
    optimizers = model.configure_optimizers()
    assert set(optimizers) == set(phases)
    for phase, modules in phases.items():
        got = {id(p) for g in optimizers[phase].param_groups for p in g["params"]}
        want = {id(p) for m in modules for p in getattr(model, m).parameters()}
        assert got == want, phase
        assert isinstance(optimizers[phase], torch.optim.SGD)  # the paper's optimiser
        assert optimizers[phase].param_groups[0]["momentum"] == 0.9


def test_paper_schedule_decays_after_50_and_1000_epochs():
    model = make("deterministic")
    optimizers = model.configure_optimizers()
    schedulers = model.configure_schedulers(optimizers)
    opt, sched = optimizers["autoencoder"], schedulers["autoencoder"]
    lr0 = opt.param_groups[0]["lr"]
    for epoch in range(1, 1001):
        opt.step()  # no gradients: a no-op that keeps the scheduler's order check quiet
        sched.step()
        if epoch == 49:
            assert opt.param_groups[0]["lr"] == pytest.approx(lr0)
        if epoch == 50:
            assert opt.param_groups[0]["lr"] == pytest.approx(lr0 * 0.1)
    assert opt.param_groups[0]["lr"] == pytest.approx(lr0 * 0.01)
    assert make("deterministic", lr_milestones=()).configure_schedulers(optimizers) == {}


def test_discriminators_are_not_left_frozen():
    model = make("semi-supervised")
    model.training_step(batch_for(model), model.configure_optimizers())
    assert all(p.requires_grad for p in model.parameters())


def test_generator_step_does_not_touch_discriminator_weights():
    """The encoder's G step must leave the discriminator unchanged (only its optimiser moves it)."""
    model = make("deterministic", optimizer="adam")
    optimizers = model.configure_optimizers()
    snapshots = {}
    original_step = optimizers["discriminator"].step

    def step_and_snapshot(*a, **k):
        result = original_step(*a, **k)
        snapshots["d"] = [p.detach().clone() for p in model.discriminator.parameters()]
        return result

    optimizers["discriminator"].step = step_and_snapshot
    model.training_step(batch_for(model), optimizers)
    for p, q in zip(model.discriminator.parameters(), snapshots["d"], strict=True):
        assert torch.equal(p, q)


def test_label_conditioned_prior_side_follows_labels():
    """§2.3: labelled rows draw from their label's component; unlabelled rows (-1) from the whole
    mixture."""
    prior = MixtureOfGaussians(4, radius=10.0, radial_std=0.1, tangential_std=0.1)
    model = ref.AdversarialAutoencoder(
        input_dim=D_IN, latent_dim=2, hidden=H, prior=prior, label_conditioned=True
    )
    y = torch.tensor([0, 1, 2, 3] * 50 + [-1] * 400)
    torch.manual_seed(0)
    z = model._conditioned_prior(y)
    near = torch.cdist(z.double(), prior.means).argmin(1)
    assert torch.equal(near[:200], y[:200])
    counts = torch.bincount(near[200:], minlength=4)
    assert int(counts.min()) > 60  # all components among the unlabelled rows
    slots = model._label_slots(y, torch.float32)
    assert slots.shape == (600, 5)
    assert torch.equal(slots.argmax(1)[:200], y[:200])
    assert bool((slots.argmax(1)[200:] == 4).all())


def test_gaussian_posterior_reparameterisation():
    torch.manual_seed(0)
    model = make("gaussian")
    x = torch.rand(4, D_IN)
    mu, logvar = model.posterior_parameters(x)
    torch.testing.assert_close(model.encode(x, sample=False), mu)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    z = model.encode(x, generator=g1)
    eps = torch.randn(mu.shape, generator=g2)
    torch.testing.assert_close(z, mu + torch.exp(0.5 * logvar) * eps)


def test_universal_encoder_is_stochastic():
    torch.manual_seed(0)
    model = make("universal", init_std=None)
    x = torch.rand(4, D_IN)
    assert model.noise_dim == 3
    a, b = model.encode(x), model.encode(x)
    assert not torch.allclose(a, b)
    torch.testing.assert_close(model.encode(x, sample=False), model.encode(x, sample=False))
    assert make("universal", noise_dim=11).encoder[0].weight.shape == (H[0], D_IN + 11)


@pytest.mark.parametrize("variant", ["deterministic", "supervised", "semi-supervised"])
def test_input_noise_reaches_the_encoder_only_in_training(variant):
    """input_noise_std corrupts the encoder's training input; target and evaluation stay clean."""
    model = make(variant, input_noise_std=0.3, optimizer="adam")
    assert model.config["input_noise_std"] == 0.3
    seen = []
    model.encoder.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    b = batch_for(model)
    model.training_step(b, model.configure_optimizers())
    assert seen and all(not torch.equal(s[:N], b["x"]) for s in seen)
    seen.clear()
    model.validation_step(b)
    assert all(torch.equal(s, b["x"]) for s in seen)
    with pytest.raises(ValueError, match="input_noise_std must be >= 0"):
        make(variant, input_noise_std=-1.0)


def test_separation_cost_is_the_hinge_on_pairwise_distances():
    """§7: pairs of cluster heads closer than eta cost eta - distance; farther ones cost nothing."""
    model = ref.DimReductionAAE(input_dim=D_IN, latent_dim=2, num_clusters=3, hidden=H, eta=5.0)
    with torch.no_grad():
        model.cluster_heads.weight.copy_(torch.tensor([[0.0, 3.0, 0.0], [0.0, 0.0, 10.0]]))
    # distances: 3 (pays 2), 10 (free), sqrt(109) (free)
    assert float(model.separation_cost().detach()) == pytest.approx(2.0)
    assert model.heads().shape == (3, 2)


def test_reference_does_not_use_the_fused_ops(monkeypatch):
    """The oracle shares no code with the fast path: no imports of ops / nn / kernels, and every
    prior sample drawn with backend='eager'."""
    root = pathlib.Path(ref.__file__).parent
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = ("." * node.level) + (node.module or "")
                assert not any(part in module for part in ("ops", "kernels", ".nn", "_C")), (
                    f"{path.name} imports {module}"
                )
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith(("aae_fast.ops", "aae_fast.nn", "kernels"))

    from aae_fast.priors import Prior

    def no_fused(self, *a, **k):
        raise AssertionError("the reference sampled a prior with backend='fused'")

    monkeypatch.setattr(Prior, "_sample_fused", no_fused)
    for variant in VARIANTS:
        model = make(variant, optimizer="adam")
        model.training_step(batch_for(model), model.configure_optimizers())
        model.generate(3)


# -- bad inputs -------------------------------------------------------------------------------


def test_wrong_input_shape_names_argument_expected_and_received():
    model = make("deterministic")
    opts = model.configure_optimizers()
    with pytest.raises(ValueError, match=r"x must have shape \[N, 20\].*got \[7, 21\]"):
        model.training_step({"x": torch.rand(N, 21)}, opts)
    with pytest.raises(ValueError, match=r"x must have shape \[N, 20\].*got \[7, 4, 5\]"):
        model.encode(torch.rand(N, 4, 5))
    with pytest.raises(TypeError, match="x must be a floating tensor"):
        model.encode(torch.zeros(N, D_IN, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"z must have shape \[N, 3\], got \[7, 4\]"):
        model.decode(torch.rand(N, 4))


def test_labels_out_of_range():
    model = make("supervised")
    opts = model.configure_optimizers()
    b = batch_for(model)
    with pytest.raises(
        ValueError, match=r"batch\['y'\] must lie in \[0, 4\), got values in \[0, 4\]"
    ):
        model.training_step({"x": b["x"], "y": torch.tensor([0, 1, 2, 3, 4, 0, 1])}, opts)
    with pytest.raises(ValueError, match=r"must lie in \[0, 4\)"):
        model.training_step({"x": b["x"], "y": torch.full((N,), -1)}, opts)
    lc = make("label-conditioned")
    with pytest.raises(
        ValueError, match=r"must lie in \[-1, 4\) \(-1 = unlabelled\), got values in \[-2, 0\]"
    ):
        lc.training_step(
            {"x": b["x"], "y": torch.tensor([-2, 0, 0, 0, 0, 0, 0])}, lc.configure_optimizers()
        )
    with pytest.raises(TypeError, match="must have dtype torch.int64, got torch.float32"):
        model.training_step({"x": b["x"], "y": torch.zeros(N)}, opts)
    with pytest.raises(ValueError, match=r"must have shape \[7\] \(one label per row\), got \[6\]"):
        model.training_step({"x": b["x"], "y": torch.zeros(6, dtype=torch.int64)}, opts)
    semi = make("semi-supervised")
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        semi.generate(2, labels=torch.tensor([0, 9]))


def test_unknown_encoder_kind_and_options():
    with pytest.raises(ValueError, match=r"encoder must be one of .*deterministic.*got 'vae'"):
        ref.AdversarialAutoencoder(encoder="vae")
    with pytest.raises(ValueError, match="reconstruction must be one of"):
        ref.AdversarialAutoencoder(reconstruction="l1")
    with pytest.raises(ValueError, match="optimizer must be one of"):
        ref.SemiSupervisedAAE(optimizer="rmsprop")
    with pytest.raises(ValueError, match=r"learning_rates: unknown phase\(s\) \['encoder'\]"):
        ref.AdversarialAutoencoder(learning_rates={"encoder": 0.1})
    # A phase the model does not have is refused, not silently dropped.
    with pytest.raises(ValueError, match=r"unknown phase\(s\) \['classifier'\] for AdversarialAutoencoder"):
        ref.AdversarialAutoencoder(learning_rates={"classifier": 0.1})
    from aae_fast.baselines import VAE, GMMNAutoencoder
    with pytest.raises(ValueError, match=r"\['discriminator', 'generator'\] for VAE; expected keys among \['autoencoder'\]"):
        VAE(learning_rates={"generator": 5.0, "discriminator": 1.0})
    with pytest.raises(ValueError, match=r"\['discriminator'\] for GMMNAutoencoder"):
        GMMNAutoencoder(learning_rates={"discriminator": 1.0})
    assert ref.DimReductionAAE(learning_rates={"classifier": 0.5}).learning_rates["classifier"] == 0.5
    with pytest.raises(ValueError, match="noise_dim is only for encoder='universal'"):
        ref.AdversarialAutoencoder(noise_dim=4)
    with pytest.raises(ValueError, match="latent_dim must be an int >= 1, got 0"):
        ref.AdversarialAutoencoder(latent_dim=0)
    with pytest.raises(ValueError, match="hidden must hold positive ints"):
        ref.AdversarialAutoencoder(hidden=(10, 0))
    with pytest.raises(ValueError, match="num_clusters must be an int >= 1"):
        ref.ClusteringAAE(num_clusters=0)
    with pytest.raises(ValueError, match="eta must be positive"):
        ref.DimReductionAAE(eta=0)


def test_prior_dimension_must_match_latent_dim():
    with pytest.raises(
        ValueError,
        match=r"prior: Gaussian\(dim=3\) samples 3-dimensional codes but latent_dim is 8",
    ):
        ref.AdversarialAutoencoder(latent_dim=8, prior=Gaussian(3))
    with pytest.raises(ValueError, match="latent_dim is 5"):
        ref.AdversarialAutoencoder(latent_dim=5, prior=MixtureOfGaussians())
    with pytest.raises(ValueError, match="latent_dim is 4"):
        ref.SemiSupervisedAAE(latent_dim=4, prior=Gaussian(2))
    with pytest.raises(TypeError, match="prior must be an aae_fast.priors.Prior"):
        ref.AdversarialAutoencoder(prior="gaussian")
    # A Custom prior of unknown dim is accepted (only sampling is required of a prior).
    custom = Custom(
        lambda n, labels, generator, device, dtype: torch.randn(n, 3, device=device, dtype=dtype)
    )
    model = ref.AdversarialAutoencoder(input_dim=D_IN, latent_dim=3, hidden=H, prior=custom)
    model.training_step(batch_for(model), model.configure_optimizers())


def test_labelled_models_need_labels():
    x = torch.rand(N, D_IN)
    lc = make("label-conditioned")
    with pytest.raises(
        ValueError,
        match=r"batch\['y'\]: a label-conditioned AdversarialAutoencoder needs labels .*got None",
    ):
        lc.training_step({"x": x}, lc.configure_optimizers())
    sup = make("supervised")
    with pytest.raises(ValueError, match=r"batch\['y'\]: SupervisedAAE needs labels"):
        sup.training_step({"x": x, "y": None}, sup.configure_optimizers())
    semi = make("semi-supervised")
    with pytest.raises(ValueError, match="SemiSupervisedAAE \\(semi-supervised\\) needs labels"):
        semi.training_step({"x": x}, semi.configure_optimizers())
    with pytest.raises(ValueError, match="label_conditioned=True needs a prior whose components"):
        ref.AdversarialAutoencoder(latent_dim=8, label_conditioned=True)
    with pytest.raises(ValueError, match="predict needs a label_conditioned model"):
        make("deterministic").predict(x)
    # The clustering and unsupervised dim-reduction models need none.
    for variant in ("clustering", "dim-reduction"):
        m = make(variant)
        m.training_step({"x": x}, m.configure_optimizers())


def test_semi_supervised_falls_back_to_batch_labels_with_unlabelled_rows():
    torch.manual_seed(0)
    model = make("semi-supervised", optimizer="adam")
    x = torch.rand(N, D_IN)
    y = torch.full((N,), -1)
    out = model.training_step({"x": x, "y": y}, model.configure_optimizers())
    assert float(out["classification"]) == 0.0  # no labelled row: no classification signal
    y[:3] = torch.tensor([0, 1, 2])
    out = model.training_step({"x": x, "y": y}, model.configure_optimizers())
    assert float(out["classification"]) > 0


def test_config_describes_the_model():
    cfg = ref.DimReductionAAE(semi_supervised=True).config
    assert cfg["variant"] == "dim-reduction" and cfg["num_clusters"] == 10
    assert cfg["hidden"] == [1000, 1000] and cfg["latent_dim"] == 2
    assert ref.DimReductionAAE().num_clusters == 20
    aae = ref.AdversarialAutoencoder()
    assert aae.config["latent_dim"] == 8 and aae.config["prior"] == "Gaussian(dim=8)"
    assert ref.SupervisedAAE().latent_dim == 15
    assert ref.ClusteringAAE().num_clusters == 16
    assert isinstance(ref.SemiSupervisedAAE().category_prior, Categorical)
