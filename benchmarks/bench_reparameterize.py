"""gaussian_reparameterize: aae_fast's one-pass op (Philox noise generated in the kernel, regenerated
in the backward) against the eager composite a user writes, against torch.compile of it
("compiled-eager", inductor) and against torch.compile(backend="aae_fast") of it
("aae_fast_compile", CPU only: the graph rewrite puts the fused op in the composite's place, then
inductor):

    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

Shapes [B, D] = [100, 8], [1000, 8], [10^5, 8], [1000, 1000]. Modes: "fwd" (mu and logvar require
grad, so autograd records), "bwd" (torch.autograd.grad of z with a fixed upstream gradient through
a retained graph: the backward alone) and "fwd+bwd". The fused op draws its noise from a
PhiloxGenerator; the composites from torch's default generator. extra_info carries elements/s and
bytes/s (fwd reads mu, logvar and writes z; bwd reads grad, logvar and writes two gradients).
"""

import pytest
import torch

import aae_fast as af
from aae_fast import compile_backend
from aae_fast.random import PhiloxGenerator
from conftest import bench_device, record_throughput, run_timed

SHAPES = [(100, 8), (1000, 8), (100_000, 8), (1000, 1000)]
IMPLS = ["fused", "eager", "compiled-eager"]
if bench_device().type == "cpu":
    # The backend rewrites sampling on the CPU only (on an H200 the rewritten graph ran at
    # 0.73-0.76x plain inductor, nvidia-h200-2026-11-26-suite.md): on CUDA it would time inductor.
    IMPLS.append("aae_fast_compile")
MODES = ["fwd", "bwd", "fwd+bwd"]


def eager_reparameterize(mu, logvar):
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


_COMPILED = {
    "compiled-eager": torch.compile(eager_reparameterize, dynamic=False),
    "aae_fast_compile": torch.compile(eager_reparameterize, dynamic=False, backend="aae_fast"),
}


def rounds_for(elements: int) -> int:
    return 200 if elements <= 10_000 else 40


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("impl", IMPLS)
def test_gaussian_reparameterize(benchmark, device, impl, mode, shape):
    B, D = shape
    benchmark.group = f"gaussian_reparameterize {mode} [{B}, {D}]"
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(B, D, generator=g).to(device).requires_grad_()
    logvar = torch.randn(B, D, generator=g).to(device).requires_grad_()
    grad = torch.randn(B, D, generator=g).to(device)
    if impl == "fused":
        gen = PhiloxGenerator(seed=0, device=device)
        fn = lambda: af.ops.gaussian_reparameterize(mu, logvar, generator=gen)  # noqa: E731
    else:
        impl_fn = eager_reparameterize if impl == "eager" else _COMPILED[impl]
        fn = lambda: impl_fn(mu, logvar)  # noqa: E731
    if mode == "fwd":
        timed = fn
    elif mode == "bwd":
        z = fn()
        timed = lambda: torch.autograd.grad(z, (mu, logvar), grad, retain_graph=True)  # noqa: E731
    else:
        timed = lambda: torch.autograd.grad(fn(), (mu, logvar), grad)  # noqa: E731
    elements = B * D
    run_timed(benchmark, timed, device, rounds=rounds_for(elements), warmup=5)
    benchmark.extra_info.update(batch=B, dim=D, impl=impl, mode=mode)
    if impl == "aae_fast_compile":  # the composite's graph holds the fused op, not randn_like
        benchmark.extra_info["rewrites"] = compile_backend.last_report().count("reparameterize")
        assert benchmark.extra_info["rewrites"] == 1
    nbytes = {"fwd": 3, "bwd": 4, "fwd+bwd": 7}[mode] * elements * 4
    record_throughput(benchmark, elements, nbytes=nbytes, unit="elements")
