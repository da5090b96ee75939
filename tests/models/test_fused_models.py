"""The fused models as users meet them: one constructor for both backends, checkpoints that move
between backends, a reproducible Philox stream, no host synchronisation in a step, autocast and
torch.compile."""

from __future__ import annotations

import copy

import pytest
import torch
from twins import VARIANTS, Bf16Autocast, batches, make_twins, share_noise

import aae_fast as af
import aae_fast.reference as ref
from aae_fast.nn import FusedMLP


@pytest.mark.parametrize("cls_name", ["AdversarialAutoencoder", "SupervisedAAE", "SemiSupervisedAAE",
                                      "ClusteringAAE", "DimReductionAAE"])
def test_one_constructor_serves_both_backends(cls_name):
    cls = getattr(af, cls_name)
    fused = cls(input_dim=10, hidden=(8,))
    eager = cls(input_dim=10, hidden=(8,), backend="eager")
    assert fused.backend == "fused" and isinstance(fused, getattr(ref, cls_name))
    assert type(eager) is getattr(ref, cls_name) and eager.backend == "eager"
    assert all(isinstance(m, FusedMLP) for name, m in fused.named_children() if name != "cluster_heads")
    assert list(fused.state_dict()) == list(eager.state_dict())
    fused.load_state_dict(eager.state_dict())  # checkpoints move both ways
    eager.load_state_dict(fused.state_dict())
    with pytest.raises(ValueError, match=r"backend must be one of \('fused', 'eager'\), got 'fast'"):
        cls(input_dim=10, backend="fast")


def test_the_philox_stream_is_seeded_reproducible_and_not_in_the_state_dict():
    def run(seed):
        model = af.AdversarialAutoencoder(input_dim=13, latent_dim=3, hidden=(8,), encoder="gaussian",
                                          seed=seed)
        torch.manual_seed(0)
        model.load_state_dict(ref.AdversarialAutoencoder(input_dim=13, latent_dim=3, hidden=(8,),
                                                         encoder="gaussian").state_dict())
        opt = model.configure_optimizers()
        return model, [model.training_step(b, opt) for b in batches("aae-gaussian", 3)]

    (m1, a), (_, b), (_, c) = run(5), run(5), run(6)
    for x, y in zip(a, b):
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert not torch.equal(a[-1]["reconstruction"], c[-1]["reconstruction"])
    assert "_rng_state" not in m1.state_dict()
    seed, offset = m1.rng_state().tolist()
    assert seed == 5 and offset > 0  # the ops advanced it
    clone = copy.deepcopy(m1)
    assert torch.equal(clone.rng_state(), m1.rng_state())
    m1.manual_seed(9)
    assert m1.rng_state().tolist() == [9, 0]
    m1.set_rng_state(torch.tensor([3, 4]))
    assert m1.generator.state is m1._rng_state and m1.rng_state().tolist() == [3, 4]


def _host_reads(fn) -> list[str]:
    """Names of the ops that read a device value back to the host during fn(), except the
    device-side asserts (torch._assert_async: on CUDA they do not synchronise)."""
    with torch.profiler.profile() as prof:
        fn()
    reads = []
    for event in prof.events():
        if event.name != "aten::_local_scalar_dense":
            continue
        chain, parent = [], event.cpu_parent
        while parent is not None:
            chain.append(parent.name)
            parent = parent.cpu_parent
        if "aten::_assert_async" not in chain:
            reads.append(" <- ".join([event.name, *chain]))
    return reads


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_a_fused_step_never_reads_device_values_on_the_host(name):
    reference, model = make_twins(name)
    batch = batches(name, 1)[0]
    optimizers = model.configure_optimizers()
    model.training_step(batch, optimizers)  # optimiser state is created on the first step
    assert _host_reads(lambda: model.training_step(batch, optimizers)) == []
    if VARIANTS[name][2]:  # the reference reads label ranges on CPU: the check can see host reads
        ref_opt = reference.configure_optimizers()
        assert _host_reads(lambda: reference.training_step(batch, ref_opt)) != []


def test_bad_labels_are_still_caught_without_a_host_read():
    _, model = make_twins("supervised")
    batch = batches("supervised", 1)[0]
    batch["y"][0] = 4  # num_classes = 4
    with pytest.raises(RuntimeError, match=r"batch\['y'\] must lie in \[0, 4\)"):
        model.training_step(batch, model.configure_optimizers())


@pytest.mark.parametrize("name", ["aae-gaussian", "semi-supervised"])
def test_bf16_autocast_steps_track_the_reference_under_autocast(name):
    reference, model = make_twins(name)
    share_noise(reference, model)
    amp = Bf16Autocast("cpu")
    ref_opt, opt = reference.configure_optimizers(), model.configure_optimizers()
    for batch in batches(name, 5):
        expected = reference.training_step(batch, ref_opt, amp=amp)
        actual = model.training_step(batch, opt, amp=amp)
        for key in expected:
            assert actual[key].dtype == torch.float32  # losses reduced in fp32
            torch.testing.assert_close(actual[key], expected[key], rtol=3e-2, atol=3e-2)
    for p in model.parameters():
        assert p.dtype == torch.float32  # fp32 master weights


def _compiled_twins(name, backend):
    from aae_fast.training.trainer import _compile_module  # what Trainer(compile=True) does

    reference, model = make_twins(name)
    share_noise(reference, model)
    keys = list(model.state_dict())
    for child in model.children():
        if next(child.parameters(), None) is not None:
            _compile_module(child, {"fullgraph": True, "backend": backend, "isolate_recompiles": True})
    assert list(model.state_dict()) == keys
    return reference, model


def _assert_same_steps(reference, model, name, steps):
    ref_opt, opt = reference.configure_optimizers(), model.configure_optimizers()
    for step, batch in enumerate(batches(name, steps)):
        expected = reference.training_step(batch, ref_opt)
        actual = model.training_step(batch, opt)
        for key in expected:
            torch.testing.assert_close(
                actual[key], expected[key], rtol=2e-4, atol=2e-5, msg=lambda m: f"step {step} {key}: {m}"
            )
    ref_params = dict(reference.named_parameters())
    for key, p in model.named_parameters():
        torch.testing.assert_close(p, ref_params[key], rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_compiled_fused_networks_take_the_reference_steps(name):
    """Every variant, its networks through torch.compile(fullgraph=True) (Dynamo + AOTAutograd
    around the custom ops, the aot_eager backend), 20 steps equal to the eager reference's."""
    torch._dynamo.reset()
    reference, model = _compiled_twins(name, "aot_eager")
    _assert_same_steps(reference, model, name, 20)


@pytest.mark.slow
def test_inductor_compiled_fused_networks_take_the_reference_steps():
    torch._dynamo.reset()
    reference, model = _compiled_twins("aae-gaussian", "inductor")
    _assert_same_steps(reference, model, "aae-gaussian", 5)


@pytest.mark.parametrize("cls_name, kwargs", [("SemiSupervisedAAE", {"num_classes": 4}),
                                              ("ClusteringAAE", {"num_clusters": 4}),
                                              ("DimReductionAAE", {"num_clusters": 4})])
def test_categorical_variants_train_in_float64_with_float64_losses(cls_name, kwargs):
    # The softmax codes fed to the category discriminator keep the model's dtype, and the losses
    # of a float64 model stay float64 on both backends (16-bit ones are widened to float32).
    g = torch.Generator().manual_seed(0)
    batch = {"x": torch.rand(8, 12, generator=g, dtype=torch.float64),
             "x_labelled": torch.rand(8, 12, generator=g, dtype=torch.float64),
             "y_labelled": torch.arange(8) % 4}
    dtypes = {}
    for backend in ("fused", "eager"):
        model = getattr(af, cls_name)(input_dim=12, latent_dim=3, hidden=(16, 16), backend=backend,
                                      **kwargs).double()
        out = model.training_step(batch, model.configure_optimizers())
        dtypes[backend] = {k: v.dtype for k, v in out.items()}
        assert set(dtypes[backend].values()) == {torch.float64}, (backend, dtypes[backend])
    assert dtypes["fused"] == dtypes["eager"]


@pytest.mark.parametrize("backend", ["fused", "eager"])
def test_an_empty_batch_is_named_and_generate_takes_numpy_ints(backend):
    model = af.AdversarialAutoencoder(input_dim=12, latent_dim=3, hidden=(8,), backend=backend)
    with pytest.raises(ValueError, match=r"x must hold at least 1 row\(s\) here, got \[0, 12\]"):
        model.training_step({"x": torch.rand(0, 12)}, model.configure_optimizers())
    import numpy as np
    assert model.generate(np.int64(3)).shape == (3, 12)
    assert model.generate(torch.tensor(2)).shape == (2, 12)
    with pytest.raises(ValueError, match="n must be an int >= 0, got 2.5"):
        model.generate(2.5)
