"""af.accelerate and torch.compile(backend="aae_fast") (issue 10, routes 1 and 2) on code users
already have: the plain user-written AAE of
benchmarks/user_aae.py at the paper's sizes (encoder 784-1000-1000-8, mirrored decoder,
discriminator 8-1000-1000-1), one training step of its three phases (reconstruction, discriminator,
generator: three optimiser steps) at batch 100 and 1000, fp32, with a device sync inside the timed
call. Implementations (the first part of the case id, so that `aae-fast bench` reports each one's
speed-up over `eager` per group):

    eager                the user's code as it is
    accelerated          the same code after `af.accelerate(model)`: each Linear + ReLU of the three
                         networks is one fused layer (the last Linear of each stays nn.Linear)
    compile              the user's networks compiled in place (each `forward`, fullgraph; inductor)
    accelerated_compile  accelerate, then compile the same way
    aae_fast_compile     the networks compiled in place with backend="aae_fast" (route 2: each
                         Linear + ReLU becomes aae_fast.ops.linear_act in the FX graph, then
                         inductor); the user's train_step unchanged, so its losses stay eager
    phase_compile        each phase's forward passes and loss (user_aae.PHASES, the functions
                         train_step calls) compiled as one graph each with inductor; the optimiser
                         steps and the prior's randn stay eager
    phase_aae_fast_compile  the same with backend="aae_fast": linear_act, and the reconstruction
                         and adversarial losses as aae_fast's fused loss ops

test_pythae_step times the same route on pythae's `Adversarial_AE` (benchmarks/peer_pythae.py, the
model of examples/pythae_accelerate.py): one batch of pythae's own trainer step, `eager` (pythae as
it is) against `accelerated` (after `af.accelerate(model)`); skipped where pythae is not installed.

The compile cases are timed runs only (compiling takes tens of seconds on a CPU); a compile failure
on the machine skips its case. extra_info: samples_per_s, swapped (fused layers of accelerate),
rewrites (aae_fast ops the compile backend put in the graphs).

    pytest benchmarks/bench_accelerate.py --benchmark-only [-k b100]
    pytest benchmarks/bench_accelerate.py --benchmark-disable   # smoke: each case once, untimed
"""

from __future__ import annotations

import pytest
import torch

import aae_fast as af
from aae_fast import compile_backend
import peer_pythae
from conftest import bench_device, record_throughput, run_timed, synchronize
from user_aae import PHASES, UserAAE, make_optimizers, train_step

DEVICE = bench_device()
ON_GPU = DEVICE.type == "cuda"
IMPLS = (
    "eager",
    "accelerated",
    "compile",
    "accelerated_compile",
    "aae_fast_compile",
    "phase_compile",
    "phase_aae_fast_compile",
)
# impl -> torch.compile backend. Every compiled impl's name holds "compile" (quick mode drops them).
NETWORK_COMPILE = {
    "compile": "inductor",
    "accelerated_compile": "inductor",
    "aae_fast_compile": "aae_fast",
}
PHASE_COMPILE = {"phase_compile": "inductor", "phase_aae_fast_compile": "aae_fast"}
COMPILED = {**NETWORK_COMPILE, **PHASE_COMPILE}
BATCHES = [100, 1000] + ([8192] if ON_GPU else [])
ROUNDS = {100: 50, 1000: 30, 8192: 20} if ON_GPU else {100: 20, 1000: 8}


def compile_in_place(net: torch.nn.Module, backend: str = "inductor") -> None:
    """Compile ``net``'s forward (fullgraph), the module and its parameters unchanged. Not
    ``net.compile()``: for an nn.Sequential of torch.nn modules Dynamo finds no frame of its own to
    compile (see bench_training.compile_in_place)."""
    net.forward = torch.compile(net.forward, backend=backend, fullgraph=True)


def make_case(impl: str, batch: int, device: torch.device):
    torch.manual_seed(0)
    model = UserAAE().to(device)
    opts = make_optimizers(model)  # built before accelerate, as a user's would be
    swapped = 0
    if impl.startswith("accelerated"):
        af.accelerate(model)
        swapped = len(model.aae_fast_report.swapped)
    if impl in COMPILED:
        torch._dynamo.reset()
        compile_backend.clear_reports()
    x = torch.rand(batch, 784, generator=torch.Generator().manual_seed(batch)).to(device)
    if impl in NETWORK_COMPILE:
        for net in (model.encoder, model.decoder, model.discriminator):
            compile_in_place(net, NETWORK_COMPILE[impl])
    if impl in PHASE_COMPILE:
        phases = {
            name: torch.compile(fn, backend=PHASE_COMPILE[impl], fullgraph=True)
            for name, fn in PHASES.items()
        }
        return (lambda: train_step(model, opts, x, phases)), swapped
    return (lambda: train_step(model, opts, x)), swapped


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("impl", IMPLS)
def test_user_aae_step(benchmark, impl, batch):
    benchmark.group = f"user AAE step B={batch} fp32"
    if impl in COMPILED and benchmark.disabled:
        pytest.skip("compile cases are timed runs only (torch.compile takes tens of seconds)")
    step, swapped = make_case(impl, batch, DEVICE)
    if impl in COMPILED:
        try:
            step()  # compiles here: a failure on this machine skips the case
            synchronize(DEVICE)
        except Exception as exc:  # noqa: BLE001 (inductor raises many kinds)
            pytest.skip(f"{impl} failed on {DEVICE}: {type(exc).__name__}: {str(exc)[:300]}")
    warmup = 0 if benchmark.disabled else 3
    losses = run_timed(benchmark, step, DEVICE, rounds=ROUNDS[batch], warmup=warmup)
    assert all(torch.isfinite(v).item() for v in losses.values())
    benchmark.extra_info["swapped"] = swapped
    if "aae_fast" in impl:
        rewrites = sum(r.count() for r in compile_backend.reports())
        assert rewrites > 0, "the aae_fast backend rewrote nothing"
        benchmark.extra_info["rewrites"] = rewrites
    record_throughput(benchmark, batch)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("impl", ["eager", "accelerated"])
def test_pythae_step(benchmark, impl, batch):
    benchmark.group = f"pythae Adversarial_AE step B={batch} fp32"
    if not peer_pythae.available():
        pytest.skip("pythae is not installed (pip install pythae, or the bench extra)")
    model, step = peer_pythae.build(DEVICE, accelerate=impl == "accelerated")
    x = torch.rand(batch, 784, generator=torch.Generator().manual_seed(batch)).to(DEVICE)
    warmup = 0 if benchmark.disabled else 3
    losses = run_timed(benchmark, lambda: step(x), DEVICE, rounds=ROUNDS[batch], warmup=warmup)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses)
    benchmark.extra_info["swapped"] = len(model.aae_fast_report.swapped) if impl == "accelerated" else 0
    record_throughput(benchmark, batch)
