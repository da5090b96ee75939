"""Training throughput (samples/s) of one adversarial-autoencoder step, every implementation side by
side: the paper's MNIST model (`AdversarialAutoencoder()`: encoder 784-1000-1000-8, mirrored
decoder, discriminator 8-1000-1000-1) and the semi-supervised model (`SemiSupervisedAAE()`, with a
labelled mini-batch as large as the main one).

Each case times one `training_step(batch, optimizers, amp)` (all phases, optimiser steps included)
with a device sync inside the timed call. Implementations (the first part of the case id, so that
`aae-fast bench` reports each one's speed-up over `eager` per group):

    eager          aae_fast.reference, as is: the best user's schedule (one encoder forward shared
                   by the D and G steps, D once over [prior; codes], D frozen in the G step)
    naive          training_schedules.naive_training_step: the straightforward schedule (three
                   encoder forwards, D applied twice in its phase, D's weight gradients computed in
                   the G step); the unsupervised AAE only
    compile        the reference with each network compiled in place (fullgraph; see
                   compile_in_place)
    compile_step   torch.compile(model.training_step) (graph breaks allowed). With torch 2.13 it
                   fails, and is skipped, for the reference's schedule: the codes z of one compiled
                   region feed two backward passes (the D step's through D alone, then the G step's
                   through the encoder), and AOTAutograd's single autograd node frees its saved
                   tensors after the first ("Trying to backward through the graph a second time")
    fused          aae_fast.models (skipped while it does not exist)
    fused_compile  the fused model with its networks compiled in place
    compile_ro     (GPU only) the reference's networks compiled with mode="reduce-overhead" (inductor
                   with CUDA graphs of each network's forward and backward)
    graph          (GPU only) the reference stepped by `Trainer(cuda_graph=True)`: the whole step,
                   optimiser updates included, captured in one CUDA graph and replayed
    fused_graph    (GPU only) the fused model, likewise

fp32 at batch 100 and 1000 (every implementation); bf16 autocast at 1000 and 4096 (eager, compile,
fused); on a GPU also batches 8192 and 32768 in both. extra_info: samples_per_s, flops_per_sample
(GEMM FLOPs of the schedule that ran, training_schedules.step_flops), gflops_per_s,
gemm_peak_gflops (torch.mm of large square matrices in the same precision on the same device,
measured once per session; also its own cases, gemm-peak-fp32 / gemm-peak-bf16) and
percent_of_gemm_peak.

    pytest benchmarks/bench_training.py --benchmark-only [-k "b100 and fp32"]
    pytest benchmarks/bench_training.py --benchmark-disable   # smoke: each case once, untimed;
                                                              # compile cases skipped

The plain tests at the end check step_flops against a hand count and that the naive schedule makes
the same update as the reference's training_step.
"""

from __future__ import annotations

import copy
import functools
import statistics
import time

import peer_pythae
import pytest
import torch
import torch.utils.flop_counter
from conftest import bench_device, record_throughput, run_timed, synchronize
from training_schedules import naive_training_step, phase_flops, step_flops

import aae_fast.reference as ref
from aae_fast.reference._common import Autocast
from aae_fast.training import Trainer

DEVICE = bench_device()
ON_GPU = DEVICE.type == "cuda"

MODELS = ("aae", "ssaae")
FP32_BATCHES = [100, 1000] + ([8192, 32768] if ON_GPU else [])
BF16_BATCHES = [1000, 4096] + ([8192, 32768] if ON_GPU else [])
GRAPHED = ("graph", "fused_graph")  # CUDA graphs: GPU only
GPU_ONLY = GRAPHED + ("compile_ro",)
FP32_IMPLS = ("eager", "naive", "compile", "compile_step", "fused", "fused_compile", "pythae") + (
    GPU_ONLY if ON_GPU else ()
)
BF16_IMPLS = ("eager", "compile", "fused") + (GPU_ONLY if ON_GPU else ())
COMPILED = ("compile", "compile_step", "fused_compile", "compile_ro")

#: Timed rounds per batch size: a step takes ~0.03 s at batch 100 and seconds at 4096 on the CPU.
ROUNDS = {100: 50, 1000: 30, 4096: 20, 8192: 20, 32768: 10} if ON_GPU else {100: 20, 1000: 8, 4096: 5}
GEMM_SIZE = 8192 if ON_GPU else 2048
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def _cases():
    for model in MODELS:
        for precision, batches, impls in (
            ("fp32", FP32_BATCHES, FP32_IMPLS),
            ("bf16", BF16_BATCHES, BF16_IMPLS),
        ):
            for batch in batches:
                for impl in impls:
                    if impl in ("naive", "pythae") and model != "aae":
                        continue
                    yield pytest.param(
                        impl, model, batch, precision, id=f"{impl}-{model}-b{batch}-{precision}"
                    )


@functools.cache
def gemm_peak_gflops(device: str, precision: str, n: int = GEMM_SIZE, runs: int = 7) -> float:
    """GFLOP/s of torch.mm on [n, n] x [n, n] in `precision` on `device`: median of `runs` after two
    warm-up calls. Measured once per session; the yardstick of percent_of_gemm_peak."""
    dev = torch.device(device)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(dev, DTYPES[precision])
    b = torch.randn(n, n, generator=g).to(dev, DTYPES[precision])
    times = []
    for i in range(2 + runs):
        synchronize(dev)
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(dev)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def make_batch(batch: int, device: torch.device, input_dim: int = 784, num_classes: int = 10):
    """Random inputs in [0, 1] and labels; a labelled mini-batch of the same size (the Trainer's
    default) for the semi-supervised model."""
    g = torch.Generator().manual_seed(batch)
    return {
        "x": torch.rand(batch, input_dim, generator=g).to(device),
        "y": torch.randint(0, num_classes, (batch,), generator=g).to(device),
        "x_labelled": torch.rand(batch, input_dim, generator=g).to(device),
        "y_labelled": torch.randint(0, num_classes, (batch,), generator=g).to(device),
    }


def make_model(model: str, impl: str, device: torch.device):
    if impl.startswith("fused"):
        try:
            import aae_fast.models as models

            cls = models.AdversarialAutoencoder if model == "aae" else models.SemiSupervisedAAE
        except (ImportError, AttributeError) as exc:
            pytest.skip(f"aae_fast.models not available: {exc}")
    else:
        cls = ref.AdversarialAutoencoder if model == "aae" else ref.SemiSupervisedAAE
    torch.manual_seed(0)
    return cls().to(device)


def networks(model) -> tuple:
    if hasattr(model, "discriminator_y"):
        return model.encoder, model.decoder, model.discriminator_y, model.discriminator_z
    return model.encoder, model.decoder, model.discriminator


def compile_in_place(net: torch.nn.Module, mode: str | None = None) -> None:
    """Compiles `net` in place (fullgraph), the module object and its parameters unchanged.

    Not `net.compile(fullgraph=True)`: that compiles `Module._call_impl`, and for a network whose
    frames all live in torch.nn (the reference's nn.Sequential of nn.Linear / nn.ReLU) Dynamo
    skips every frame, so torch 2.13 raises "torch.compile with fullgraph=True found no compiled
    frames" (pytorch/pytorch#150915; without fullgraph it silently runs eager). Compiling the bound
    `forward` traces the same code for every network, the fused ones included."""
    net.forward = torch.compile(net.forward, fullgraph=True, mode=mode)


def make_step(model, impl: str, batch: dict, optimizers: dict, amp, precision: str = "fp32"):
    """The timed call of `impl`; compiles where the implementation says so."""
    if impl in GRAPHED:
        # The Trainer's own capture (warm-up steps on a side stream, then one graph per batch
        # signature); `_train_step` is its step without the host read of `Trainer.step`.
        trainer = Trainer(model, device=batch["x"].device, precision=precision, progress=False,
                          cuda_graph=True, cuda_graph_warmup=2)
        return lambda: trainer._train_step(batch)
    if impl == "naive":
        return lambda: naive_training_step(model, batch, optimizers, amp)
    if impl in ("compile", "fused_compile", "compile_ro"):
        for net in networks(model):
            compile_in_place(net, "reduce-overhead" if impl == "compile_ro" else None)
    if impl == "compile_step":
        compiled = torch.compile(model.training_step)
        return lambda: compiled(batch, optimizers, amp)
    if impl == "compile_ro":
        # reduce-overhead replays inductor's CUDA graphs; a step calls each compiled network more
        # than once, so it must tell torch where an iteration starts (torch.compiler docs).
        def step():
            torch.compiler.cudagraph_mark_step_begin()
            return model.training_step(batch, optimizers, amp)

        return step
    return lambda: model.training_step(batch, optimizers, amp)


@pytest.mark.parametrize("impl, model_name, batch, precision", list(_cases()))
def test_training_step(benchmark, impl, model_name, batch, precision):
    device = DEVICE
    benchmark.group = f"training_step {model_name} B={batch} {precision}"
    if impl in COMPILED and benchmark.disabled:
        pytest.skip("compile cases are timed runs only (compiling takes tens of seconds a model)")
    if impl == "pythae":
        return _pythae_step(benchmark, batch, device)
    model = make_model(model_name, impl, device)
    optimizers = model.configure_optimizers()
    data = make_batch(batch, device, model.input_dim)
    amp = None if precision == "fp32" else Autocast(device.type, DTYPES[precision])
    if impl in COMPILED:
        torch._dynamo.reset()
        # D sees 2N rows (D phase) and N rows with frozen weights (G phase), and the networks share
        # one code object (nn.Sequential.forward): each is another cache entry of it, so lift the
        # per-code recompile limit (8) lest later ones fall back to eager.
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    try:
        step = make_step(model, impl, data, optimizers, amp, precision)
        if impl in COMPILED:
            try:
                step()  # compiles here: a failure on this machine skips the case
                synchronize(device)
            except Exception as exc:  # noqa: BLE001 (inductor raises many kinds)
                pytest.skip(f"{impl} failed on {device}: {type(exc).__name__}: {str(exc)[:300]}")
        # CPU, batch >= 1000: the first rounds are slow while the allocator settles (glibc's mmap
        # threshold adapts to the large activations: a fused b1000 step went 478 -> 279 ms over 8
        # rounds after 3 warm-up calls), so warm up longer there.
        if benchmark.disabled:
            warmup = 0
        elif ON_GPU:
            warmup = 2 if batch >= 4096 else 3
        else:
            warmup = 5 if batch >= 1000 else 3
        if impl in GRAPHED:  # two eager warm-up steps and the capture come first
            warmup = max(warmup, 3)
        run_timed(benchmark, step, device, rounds=ROUNDS[batch], warmup=warmup)
    finally:
        if impl in COMPILED:
            torch._dynamo.reset()

    schedule = "naive" if impl == "naive" else "best"
    flops = step_flops(model, schedule)
    benchmark.extra_info.update(
        impl=impl,
        model=model_name,
        batch=batch,
        precision=precision,
        schedule=schedule,
        flops_per_sample=flops,
    )
    if benchmark.disabled:
        return
    record_throughput(benchmark, batch, flops=flops * batch)
    peak = gemm_peak_gflops(str(device), precision)
    benchmark.extra_info["gemm_peak_gflops"] = peak
    benchmark.extra_info["percent_of_gemm_peak"] = 100 * benchmark.extra_info["gflops_per_s"] / peak


def _pythae_step(benchmark, batch: int, device: torch.device) -> None:
    """The peer (benchmarks/peer_pythae.py): pythae's Adversarial_AE stepped as its trainer does.
    Its FLOPs are counted by torch's FlopCounterMode over one step (its schedule is its own)."""
    if not peer_pythae.available():
        pytest.skip("pythae is not installed (pip install pythae): no peer case")
    _, step = peer_pythae.build(device)
    x = make_batch(batch, device)["x"]
    with torch.utils.flop_counter.FlopCounterMode(display=False) as counter:
        step(x)
    flops = counter.get_total_flops() / batch
    warmup = 0 if benchmark.disabled else 3
    run_timed(benchmark, lambda: step(x), device, rounds=ROUNDS[batch], warmup=warmup)
    benchmark.extra_info.update(
        impl="pythae", model="aae", batch=batch, precision="fp32", schedule="pythae",
        flops_per_sample=flops,
    )
    if benchmark.disabled:
        return
    record_throughput(benchmark, batch, flops=flops * batch)
    peak = gemm_peak_gflops(str(device), "fp32")
    benchmark.extra_info["gemm_peak_gflops"] = peak
    benchmark.extra_info["percent_of_gemm_peak"] = 100 * benchmark.extra_info["gflops_per_s"] / peak


#: Hidden widths of the scaling cases (every hidden layer of the encoder, decoder and
#: discriminator), at one batch size: 100 on a CPU (a 4000-wide step is ~0.3 s there), 1000 on a GPU.
WIDTHS = (1000, 2000, 4000)
WIDTH_BATCH = 1000 if ON_GPU else 100


@pytest.mark.parametrize("hidden", WIDTHS, ids=lambda h: f"h{h}")
@pytest.mark.parametrize("impl", ["eager", "fused"])
def test_width_scaling(benchmark, impl, hidden):
    """How a step's time grows with the hidden width: the paper's AAE (8-D code) with every hidden
    layer `hidden` wide, fp32, the reference against the fused model."""
    device, batch = DEVICE, WIDTH_BATCH
    benchmark.group = f"width_scaling aae B={batch} fp32 hidden={hidden}"
    if impl == "fused":
        import aae_fast.models as fused

        cls = fused.AdversarialAutoencoder
    else:
        cls = ref.AdversarialAutoencoder
    torch.manual_seed(0)
    model = cls(hidden=(hidden, hidden)).to(device)
    optimizers = model.configure_optimizers()
    data = make_batch(batch, device)
    warmup = 0 if benchmark.disabled else 2
    run_timed(benchmark, lambda: model.training_step(data, optimizers), device,
              rounds=10 if hidden >= 4000 else 15, warmup=warmup)
    flops = step_flops(model, "best")
    benchmark.extra_info.update(impl=impl, model="aae", batch=batch, precision="fp32", hidden=hidden,
                                flops_per_sample=flops)
    if benchmark.disabled:
        return
    record_throughput(benchmark, batch, flops=flops * batch)
    peak = gemm_peak_gflops(str(device), "fp32")
    benchmark.extra_info["gemm_peak_gflops"] = peak
    benchmark.extra_info["percent_of_gemm_peak"] = 100 * benchmark.extra_info["gflops_per_s"] / peak


@pytest.mark.parametrize("precision", ["fp32", "bf16"], ids=lambda p: f"gemm-peak-{p}")
def test_gemm_peak(benchmark, precision):
    """torch.mm of [n, n] x [n, n] (2048 on CPU, 8192 on GPU): the peak the training cases are
    measured against."""
    device, n = DEVICE, GEMM_SIZE
    benchmark.group = "gemm peak"
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device, DTYPES[precision])
    b = torch.randn(n, n, generator=g).to(device, DTYPES[precision])
    warmup = 0 if benchmark.disabled else 2
    rounds = 30 if ON_GPU else 7
    run_timed(benchmark, lambda: torch.mm(a, b), device, rounds=rounds, warmup=warmup)
    benchmark.extra_info.update(size=n, precision=precision)
    if benchmark.disabled:
        return
    record_throughput(benchmark, 1, flops=2 * n**3, unit="gemm")
    benchmark.extra_info["gemm_peak_gflops"] = gemm_peak_gflops(str(device), precision)


# ------------------------------------------------------------------------------------------------
# Tests of the helpers (plain tests: they run in the smoke run, not under --benchmark-only)


def test_step_flops_paper_model():
    """step_flops against a count by hand of the paper's model: multiply-accumulates (MACs) per row
    of each network's forward; FLOPs = 2 x MACs."""
    enc = 784 * 1000 + 1000 * 1000 + 1000 * 8  # forward = weight gradient
    dec = 8 * 1000 + 1000 * 1000 + 1000 * 784
    disc = 8 * 1000 + 1000 * 1000 + 1000 * 1
    enc_igrad = enc - 784 * 1000  # x needs no gradient
    disc_igrad_detached = disc - 8 * 1000  # D's inputs are detached in its own phase
    rec = enc + dec + (dec + dec) + (enc + enc_igrad)
    d_phase = enc + 2 * (disc + disc + disc_igrad_detached)  # 2N rows
    g_best = disc + disc + (enc + enc_igrad)  # D forward + input gradients; encoder backward
    g_naive = enc + disc + disc + disc + (enc + enc_igrad)  # + encoder forward, + D weight grads
    model = ref.AdversarialAutoencoder()
    assert step_flops(model, "best") == 2 * (rec + d_phase + g_best) == 45_232_000
    assert step_flops(model, "naive") == 2 * (rec + d_phase + g_naive) == 50_834_000
    extra = phase_flops(model, "naive")["generator"] - phase_flops(model, "best")["generator"]
    assert extra == 2 * (enc + disc)  # one encoder forward, D's weight gradients

    # Semi-supervised: heads 10 + 10, two discriminators on 10-D inputs, a classification phase.
    enc = 784 * 1000 + 1000 * 1000 + 1000 * 20
    dec = 20 * 1000 + 1000 * 1000 + 1000 * 784
    disc = 10 * 1000 + 1000 * 1000 + 1000 * 1
    enc_igrad, disc_igrad_detached = enc - 784 * 1000, disc - 10 * 1000
    rec = enc + dec + (dec + dec) + (enc + enc_igrad)
    d_phase = enc + 2 * 2 * (disc + disc + disc_igrad_detached)
    g_best = 2 * (disc + disc) + (enc + enc_igrad)
    cls = enc + enc + enc_igrad
    semi = ref.SemiSupervisedAAE()
    assert step_flops(semi, "best") == 2 * (rec + d_phase + g_best + cls) == 70_864_000
    naive = step_flops(semi, "best") + 2 * (enc + 2 * disc)
    assert step_flops(semi, "naive") == naive == 78_516_000
    with pytest.raises(ValueError, match="schedule"):
        step_flops(model, "fastest")


def test_naive_step_matches_reference():
    """From the same initial parameters and the same prior samples (torch seeded before each step:
    both schedules draw one prior sample per step, with the same call, and nothing else random),
    the naive schedule reaches the parameters of the reference's training_step: the same update,
    only more work."""
    torch.manual_seed(0)
    base = ref.AdversarialAutoencoder(
        input_dim=12,
        latent_dim=3,
        hidden=(16, 8),
        init_std=0.3,
        learning_rates={"autoencoder": 0.02, "discriminator": 0.05, "generator": 0.05},
    )
    init = copy.deepcopy(base.state_dict())
    models = {"reference": base, "naive": copy.deepcopy(base)}
    optimizers = {k: m.configure_optimizers() for k, m in models.items()}
    g = torch.Generator().manual_seed(1)
    batches = [{"x": torch.rand(10, 12, generator=g)} for _ in range(3)]
    for i, batch in enumerate(batches):
        torch.manual_seed(100 + i)
        losses_ref = base.training_step(batch, optimizers["reference"])
        torch.manual_seed(100 + i)
        losses_naive = naive_training_step(models["naive"], batch, optimizers["naive"])
        for name in ("reconstruction", "discriminator", "generator"):
            torch.testing.assert_close(
                losses_naive[name], losses_ref[name], msg=f"step {i}: {name}"
            )
    final_ref, final_naive = base.state_dict(), models["naive"].state_dict()
    for key in init:
        torch.testing.assert_close(final_naive[key], final_ref[key], msg=f"parameter {key}")
        # every parameter moved: all three phases updated something (D in the D phase, the
        # encoder in the reconstruction and generator phases, the decoder in the first)
        assert not torch.equal(final_ref[key], init[key]), key
