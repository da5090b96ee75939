"""linear_act: aae_fast's fused linear + activation (forward, backward, forward+backward) against the
eager composite a user writes, F.<act>(F.linear(x, w, b)), and against torch.compile of it.

Shapes are the AAE's MLP layers: 784->1000 (first encoder layer: x is data, no gradient),
1000->1000, 1000->8 (to the latent code) and 8->1000 (from it), at batch 100 and 1000. Modes:
"fwd" (the training forward: parameters require grad, so autograd records), "bwd"
(torch.autograd.grad through a retained graph: the backward alone) and "fwd+bwd". extra_info
carries GFLOP/s (2 B K N per GEMM: one forward, up to two backward).

    pytest benchmarks/bench_linear_act.py --benchmark-only [-k "1000-1000 and relu"]
"""

import pytest
import torch
import torch.nn.functional as F

import aae_fast as af
from conftest import record_throughput, run_timed

BATCHES = [100, 1000]
LAYERS = [(784, 1000), (1000, 1000), (1000, 8), (8, 1000)]
ACTIVATIONS = ["relu", "leaky_relu", "sigmoid", "tanh", "identity"]
IMPLS = ["fused", "eager", "compiled-eager"]
MODES = ["fwd", "bwd", "fwd+bwd"]

_EAGER_ACT = {
    "relu": F.relu,
    "leaky_relu": lambda z: F.leaky_relu(z, 0.01),
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "identity": lambda z: z,
}


def eager_linear_act(x, w, b, activation):
    """What a user writes."""
    return _EAGER_ACT[activation](F.linear(x, w, b))


def fused_linear_act(x, w, b, activation):
    return af.ops.linear_act(x, w, b, activation)


_compiled = torch.compile(eager_linear_act, dynamic=False)


def layer_inputs(batch, k, n, device):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, k, generator=g).to(device)
    if k != 784:  # the first encoder layer reads data: no gradient for x
        x.requires_grad_()
    w = (torch.randn(n, k, generator=g) / k**0.5).to(device).requires_grad_()
    b = torch.randn(n, generator=g).to(device).requires_grad_()
    return x, w, b


def time_mode(benchmark, device, mode, fn, x, w, b, activation, rounds):
    leaves = [t for t in (x, w, b) if t.requires_grad]
    grad = torch.randn(x.shape[0], w.shape[0], generator=torch.Generator().manual_seed(1)).to(device)
    if mode == "fwd":
        call = lambda: fn(x, w, b, activation)  # noqa: E731
    elif mode == "bwd":
        out = fn(x, w, b, activation)
        call = lambda: torch.autograd.grad(out, leaves, grad, retain_graph=True)  # noqa: E731
    else:
        call = lambda: torch.autograd.grad(fn(x, w, b, activation), leaves, grad)  # noqa: E731
    return run_timed(benchmark, call, device, rounds=rounds, warmup=5)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("layer", LAYERS, ids=lambda kn: f"{kn[0]}-{kn[1]}")
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("impl", IMPLS)
def test_linear_act(benchmark, device, impl, mode, batch, layer, activation):
    k, n = layer
    benchmark.group = f"linear_act[{activation}] {mode} B={batch} {k}->{n}"
    x, w, b = layer_inputs(batch, k, n, device)
    fn = {"fused": fused_linear_act, "eager": eager_linear_act, "compiled-eager": _compiled}[impl]
    flops_per_gemm = 2 * batch * k * n
    rounds = 100 if flops_per_gemm < 2e7 else 20
    time_mode(benchmark, device, mode, fn, x, w, b, activation, rounds)
    gemms = {"fwd": 1, "bwd": 1 + int(x.requires_grad), "fwd+bwd": 2 + int(x.requires_grad)}[mode]
    benchmark.extra_info.update(batch=batch, in_features=k, out_features=n, activation=activation, impl=impl, mode=mode)
    record_throughput(benchmark, batch, flops=gemms * flops_per_gemm)
