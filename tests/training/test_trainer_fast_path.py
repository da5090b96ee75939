"""The Trainer's fast paths: compiled networks (``compile=True``), CUDA-graph capture of whole
training steps (``cuda_graph=True``, tests skipped without CUDA), no host sync between logging
intervals, and models that carry their own counter-based random state.

Models are tiny (12-16-2 networks): on a 2-core CPU, compiling them is what takes time."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import aae_fast.reference as ref
from aae_fast.training import Trainer, load_checkpoint

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

TOL = {"rtol": 1e-4, "atol": 1e-5}  # fp32
LOSSES = ("reconstruction", "discriminator", "generator")


def tiny_aae(**kw) -> ref.AdversarialAutoencoder:
    torch.manual_seed(0)
    kw.setdefault("optimizer", "adam")
    # PyTorch's default initialisation (not the paper's N(0, 0.01^2)): losses then move visibly in
    # a few steps, so a wrong update cannot hide below the tolerance.
    kw.setdefault("init_std", None)
    return ref.AdversarialAutoencoder(input_dim=12, latent_dim=2, hidden=(16,), **kw)


def data(rows: int = 40) -> torch.Tensor:
    return torch.rand(rows, 12, generator=torch.Generator().manual_seed(1))


def losses_per_step(trainer: Trainer) -> list[list[float]]:
    return [[e[k] for k in LOSSES] for e in trainer.log_history]


def assert_same_parameters(a: nn.Module, b: nn.Module, **tol):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], msg=k, **tol)


class StubModel(nn.Module):
    """The training protocol around one network, ``net``, fitted to noise from a counter-based
    generator of the model's own: ``(seed, offset)`` in an int64 tensor (not a buffer, so the
    model's state_dict does not carry it); noise i is a hash of ``(seed, offset + i)`` computed with
    tensor ops, and the offset advances in place, as a device-side Philox state would."""

    def __init__(self, net: nn.Module | None = None) -> None:
        super().__init__()
        self.net = nn.Linear(4, 4) if net is None else net
        self.act = nn.ReLU()  # a child without parameters
        self._rng = torch.zeros(2, dtype=torch.int64)
        self.seed_calls: list[tuple[int, int]] = []

    def manual_seed(self, seed: int) -> None:
        # torch.initial_seed() tells whether torch.manual_seed(seed) came first
        self.seed_calls.append((seed, torch.initial_seed()))
        self._rng.copy_(torch.tensor([seed, 0]))

    def rng_state(self) -> torch.Tensor:
        return self._rng

    def set_rng_state(self, state: torch.Tensor) -> None:
        self._rng.copy_(state)

    def _noise(self, n: int) -> torch.Tensor:
        seed, offset = self._rng[0], self._rng[1]
        u = torch.sin((offset + torch.arange(n)).double() * 12.9898 + seed.double() * 78.233)
        u = u * 43758.5453
        self._rng[1] += n
        return (u - u.floor()).float()

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"net": torch.optim.SGD(self.parameters(), lr=0.1)}

    def training_step(self, batch, optimizers, amp=None) -> dict[str, torch.Tensor]:
        x = batch["x"]
        loss = (self.act(self.net(x)) - self._noise(x.numel()).view_as(x)).pow(2).mean()
        optimizers["net"].zero_grad(set_to_none=True)
        loss.backward()
        optimizers["net"].step()
        return {"loss": loss.detach()}


# -- compile ----------------------------------------------------------------------------------


@pytest.mark.slow  # ~22 s on a 2-core CPU with a cold inductor cache (~5 s warm)
def test_compiled_training_matches_eager_and_keeps_state_dict_keys():
    """From the same initial weights and seed, 5 steps of the compiled networks (inductor) give
    the eager run's losses and parameters within fp32 tolerance. The Gaussian encoder draws
    posterior noise, and the prior its samples, from the global generator the Trainer seeds, so both
    runs draw the same numbers."""
    model = tiny_aae(encoder="gaussian")
    keys = list(model.state_dict())
    eager_model = copy.deepcopy(model)

    eager = Trainer(eager_model, batch_size=8, seed=3, log_every=1, progress=False)
    eager.fit(data(), max_steps=5)

    compiled = Trainer(model, batch_size=8, seed=3, log_every=1, progress=False, compile=True)
    assert list(model.state_dict()) == keys  # compiled in place: no "_orig_mod." prefixes
    compiled.fit(data(), max_steps=5)
    # The networks did run compiled (AOTAutograd's backward node).
    out = model.encoder(data(8))  # the training shapes: no recompilation
    assert type(out.grad_fn).__name__ == "CompiledFunctionBackward"

    assert list(model.state_dict()) == keys
    assert len(compiled.log_history) == 5
    torch.testing.assert_close(losses_per_step(compiled), losses_per_step(eager), **TOL)
    assert losses_per_step(eager)[0] != losses_per_step(eager)[-1]  # the runs did train
    assert_same_parameters(model, eager_model, **TOL)
    # A compiled run's checkpoint loads into an eager model.
    fresh = tiny_aae(encoder="gaussian")
    fresh.load_state_dict(compiled.state_dict()["model"])
    assert_same_parameters(fresh, model, rtol=0, atol=0)


def test_compile_covers_every_network_and_passes_compile_options():
    """compile_options reach torch.compile: a recording backend sees graphs holding each
    network's parameters (encoder, decoder, discriminator) after one step."""
    inputs: list[set[int]] = []

    def backend(gm, example_inputs):
        inputs.append({t.data_ptr() for t in example_inputs if isinstance(t, torch.Tensor)})
        return gm.forward

    model = tiny_aae()
    Trainer(model, progress=False, compile=True, compile_options={"backend": backend}).step(
        data(8)
    )
    seen = set().union(*inputs)
    for name, child in model.named_children():
        assert all(p.data_ptr() in seen for p in child.parameters()), name


def test_compile_is_fullgraph_unless_overridden():
    class GraphBreak(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            torch._dynamo.graph_break()
            return self.lin(x)

    x = torch.rand(8, 4)
    trainer = Trainer(
        StubModel(GraphBreak()), progress=False, compile=True, compile_options={"backend": "eager"}
    )
    with pytest.raises(torch._dynamo.exc.Unsupported, match="graph_break"):
        trainer.step(x)
    trainer = Trainer(
        StubModel(GraphBreak()),
        progress=False,
        compile=True,
        compile_options={"backend": "eager", "fullgraph": False},
    )
    assert set(trainer.step(x)) == {"loss"}


def test_compile_argument_errors():
    with pytest.raises(TypeError, match="compile must be a bool, got 'yes'"):
        Trainer(tiny_aae(), compile="yes")
    with pytest.raises(
        ValueError, match=r"compile_options=\{'mode': 'default'\} needs compile=True"
    ):
        Trainer(tiny_aae(), compile_options={"mode": "default"})
    with pytest.raises(TypeError, match="compile_options must be a dict .* got list"):
        Trainer(tiny_aae(), compile=True, compile_options=["mode"])


# -- no host sync between logging intervals ---------------------------------------------------


def _host_reads(steps: int) -> int:
    model = tiny_aae(optimizer="sgd")
    trainer = Trainer(model, batch_size=8, log_every=1000, progress=False)
    x = data(200)  # 25 batches: no epoch ends within the steps run here
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        trainer.fit(x, max_steps=steps)
    names = [e.name for e in prof.events()]
    return names.count("aten::_local_scalar_dense") + names.count("aten::item")


def test_fit_reads_no_device_value_between_logs():
    """The loop reads losses only when it logs (and once at the end of fit, for the history):
    the number of scalar reads (what a GPU would sync on) does not grow with the steps.

    SGD, the paper's optimiser: non-capturable Adam reads its step counters with .item() every
    step, but those live in host memory by design (no device sync), and a profiler cannot tell
    the two apart."""
    few, more = _host_reads(3), _host_reads(9)
    assert few == more
    assert few > 0  # the end-of-fit history entry reads the loss sums: the count does see reads


# -- a model's own random state ---------------------------------------------------------------


def test_model_rng_is_seeded_and_checkpointed(tmp_path):
    """manual_seed(seed) follows torch.manual_seed(seed); rng_state() is saved beside torch's and
    restored by load_checkpoint, so a resumed run draws the noise the straight run draws."""
    x = torch.rand(32, 4, generator=torch.Generator().manual_seed(0))

    def model():
        torch.manual_seed(0)
        return StubModel()

    straight = Trainer(model(), seed=5, batch_size=8, progress=False)
    assert straight.model.seed_calls == [(5, 5)]
    straight.fit(x, max_steps=6)
    assert straight.model.rng_state().tolist() == [5, 6 * 8 * 4]

    first = Trainer(model(), seed=5, batch_size=8, progress=False, out_dir=tmp_path)
    first.fit(x, max_steps=3)
    saved = load_checkpoint(tmp_path / "checkpoint.pt")["rng"]["model"]
    assert saved.tolist() == [5, 3 * 8 * 4]
    # state_dict() holds a copy, not the tensor the model advances in place.
    state = first.state_dict()
    first.step(x[:8])
    assert state["rng"]["model"].tolist() == [5, 3 * 8 * 4]

    resumed = Trainer.resume(tmp_path / "checkpoint.pt", StubModel(), progress=False)
    assert resumed.model.seed_calls == [(5, 5)]  # seeded at construction, then restored
    assert resumed.model.rng_state().tolist() == [5, 3 * 8 * 4]
    resumed.fit(x, max_steps=6)
    assert resumed.model.rng_state().tolist() == straight.model.rng_state().tolist()
    assert_same_parameters(resumed.model, straight.model, rtol=0, atol=0)


def test_model_rng_state_must_be_a_tensor():
    class Bad(StubModel):
        def rng_state(self):
            return 7

    with pytest.raises(TypeError, match=r"model: Bad.rng_state\(\) must return a tensor, got int"):
        Trainer(Bad(), progress=False).state_dict()


def test_models_without_rng_methods_store_none():
    assert Trainer(tiny_aae(), progress=False).state_dict()["rng"]["model"] is None


# -- CUDA graphs ------------------------------------------------------------------------------


def test_cuda_graph_argument_errors():
    if not torch.cuda.is_available():
        with pytest.raises(
            ValueError, match="cuda_graph=True needs a CUDA device .*got device 'cpu'"
        ):
            Trainer(tiny_aae(), cuda_graph=True)
    with pytest.raises(TypeError, match="cuda_graph must be a bool, got 1"):
        Trainer(tiny_aae(), cuda_graph=1)
    with pytest.raises(ValueError, match="cuda_graph_warmup must be an int >= 1, got 0"):
        Trainer(tiny_aae(), cuda_graph_warmup=0)


@needs_cuda
def test_cuda_graph_refuses_fp16_and_self_graphing_compile_modes():
    with pytest.raises(ValueError, match="cuda_graph=True does not support precision='fp16'"):
        Trainer(tiny_aae(), device="cuda", precision="fp16", cuda_graph=True)
    with pytest.raises(ValueError, match="compile_options: mode='reduce-overhead'"):
        Trainer(
            tiny_aae(),
            device="cuda",
            cuda_graph=True,
            compile=True,
            compile_options={"mode": "reduce-overhead"},
        )


@needs_cuda
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_cuda_graph_training_matches_eager(optimizer):
    """3 epochs of 5 full batches and a last one of 4 rows (drop_last=False): 3 warm-up steps,
    a capture, replays; the short batches run eagerly; the learning rates drop after epoch 1, so
    the graph is captured again. Losses and parameters match an eager run from the same start
    (same seed: graph replays draw the same Philox offsets as eager steps)."""
    model = tiny_aae(optimizer=optimizer, lr_milestones=(1,))
    eager_model = copy.deepcopy(model)
    kw = {"device": "cuda", "batch_size": 8, "drop_last": False, "log_every": 1, "seed": 3}
    x = data(44)

    eager = Trainer(eager_model, progress=False, **kw)
    eager.fit(x, epochs=3)
    graphed = Trainer(model, progress=False, cuda_graph=True, **kw)
    graphed.fit(x, epochs=3)

    assert graphed.global_step == eager.global_step == 18
    torch.testing.assert_close(losses_per_step(graphed), losses_per_step(eager), **TOL)
    assert_same_parameters(model, eager_model, **TOL)
    # A graph for the full batches, captured after the learning-rate drop.
    captured = graphed._graph
    assert captured is not None and captured.inputs["x"].shape == (8, 12)
    lr = graphed.optimizers["autoencoder"].param_groups[0]["lr"]
    assert lr == pytest.approx(model.learning_rates["autoencoder"] * 0.1)
    assert captured.learning_rates == graphed._learning_rates()
    if optimizer == "adam":
        live = graphed.optimizers["autoencoder"].param_groups[0]["capturable"]
        saved = graphed.state_dict()["optimizers"]["autoencoder"]["param_groups"][0]
        assert live is True and saved["capturable"] is False  # checkpoints resume anywhere


@needs_cuda
def test_cuda_graph_replays_draw_fresh_prior_samples():
    """With every learning rate 0 the parameters never change: replays on one batch give the same
    reconstruction and generator losses, and a new discriminator loss each time, because each
    replay draws new prior samples (the discriminator sees them; the generator step does not)."""
    zero = {"autoencoder": 0.0, "discriminator": 0.0, "generator": 0.0}
    trainer = Trainer(
        tiny_aae(optimizer="sgd", learning_rates=zero),
        device="cuda",
        progress=False,
        cuda_graph=True,
        cuda_graph_warmup=2,
    )
    x = data(8).cuda()
    steps = [trainer.step(x) for _ in range(8)]
    assert trainer._graph is not None  # steps 3 to 8 were replays
    replays = steps[2:]
    for key in ("reconstruction", "generator"):
        assert [s[key] for s in replays] == pytest.approx([steps[0][key]] * 6, rel=1e-6)
    d = [s["discriminator"] for s in replays]
    assert len(set(d)) == len(d), d
