"""The loss ops: aae_fast's fused forward / backward against the eager composite a user would write
and against torch.compile of that composite.

    adversarial_d_loss   F.binary_cross_entropy_with_logits(real, ones) + (fake, zeros)
    adversarial_g_loss   F.binary_cross_entropy_with_logits(fake, ones)
    reconstruction_loss  F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(1).mean()
                         ((out - x) ** 2).sum(1).mean()

Logits are [B, 1] with B = 100, 1000, 10^5 (real and fake alike); reconstructions are [B, 784] with
B = 100, 1000. Modes: "fwd" (the training forward: inputs require grad, so autograd records),
"bwd" (torch.autograd.grad through a retained graph: the backward alone) and "fwd+bwd". extra_info
carries elements/s and bytes/s (bytes read plus written by the mode).
"""

import pytest
import torch
import torch.nn.functional as F

import aae_fast as af
from conftest import record_throughput, run_timed

LOGIT_BATCHES = [100, 1000, 100_000]
RECON_BATCHES = [100, 1000]
IMPLS = ["fused", "eager", "compiled-eager"]
MODES = ["fwd", "bwd", "fwd+bwd"]


# ------------------------------------------------------------------------------------------------
# What a user writes


def eager_d_loss(real, fake):
    return F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + F.binary_cross_entropy_with_logits(
        fake, torch.zeros_like(fake)
    )


def eager_g_loss(fake):
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def eager_reconstruction_loss(output, target, kind):
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(output, target, reduction="none").sum(1).mean()
    return ((output - target) ** 2).sum(1).mean()


_compiled_d = torch.compile(eager_d_loss, dynamic=False)
_compiled_g = torch.compile(eager_g_loss, dynamic=False)
_compiled_recon = torch.compile(eager_reconstruction_loss, dynamic=False)


# ------------------------------------------------------------------------------------------------
# Timing


def rounds_for(elements: int) -> int:
    """Many rounds where a call takes microseconds (the median then settles), fewer for big inputs."""
    return 200 if elements <= 10_000 else 40


def time_mode(benchmark, device, mode, loss_fn, inputs, elements):
    """Times loss_fn(*inputs) in `mode`; inputs are leaves; the returned loss is 0-dim."""
    leaves = [x for x in inputs if isinstance(x, torch.Tensor) and x.requires_grad]
    if mode == "fwd":
        fn = lambda: loss_fn(*inputs)  # noqa: E731
    elif mode == "bwd":
        loss = loss_fn(*inputs)
        fn = lambda: torch.autograd.grad(loss, leaves, retain_graph=True)  # noqa: E731
    else:
        fn = lambda: torch.autograd.grad(loss_fn(*inputs), leaves)  # noqa: E731
    return run_timed(benchmark, fn, device, rounds=rounds_for(elements), warmup=5)


def logits(batch, device, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 1, generator=g) * 3).to(device).requires_grad_()


def bytes_moved(mode, read_elems, grad_elems, itemsize=4):
    """Bytes read and written: the forward reads the inputs; the backward reads them and writes
    the gradients."""
    fwd = read_elems * itemsize
    bwd = (read_elems + grad_elems) * itemsize
    return {"fwd": fwd, "bwd": bwd, "fwd+bwd": fwd + bwd}[mode]


# ------------------------------------------------------------------------------------------------
# Benchmarks


@pytest.mark.parametrize("batch", LOGIT_BATCHES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("impl", IMPLS)
def test_adversarial_d_loss(benchmark, device, impl, mode, batch):
    benchmark.group = f"adversarial_d_loss {mode} B={batch}"
    real, fake = logits(batch, device, 0), logits(batch, device, 1)
    fn = {"fused": af.ops.adversarial_d_loss, "eager": eager_d_loss, "compiled-eager": _compiled_d}[impl]
    time_mode(benchmark, device, mode, fn, (real, fake), 2 * batch)
    benchmark.extra_info.update(batch=batch, impl=impl, mode=mode)
    record_throughput(benchmark, 2 * batch, nbytes=bytes_moved(mode, 2 * batch, 2 * batch), unit="elements")


@pytest.mark.parametrize("batch", LOGIT_BATCHES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("impl", IMPLS)
def test_adversarial_g_loss(benchmark, device, impl, mode, batch):
    benchmark.group = f"adversarial_g_loss {mode} B={batch}"
    fake = logits(batch, device, 2)
    fn = {"fused": af.ops.adversarial_g_loss, "eager": eager_g_loss, "compiled-eager": _compiled_g}[impl]
    time_mode(benchmark, device, mode, fn, (fake,), batch)
    benchmark.extra_info.update(batch=batch, impl=impl, mode=mode)
    record_throughput(benchmark, batch, nbytes=bytes_moved(mode, batch, batch), unit="elements")


@pytest.mark.parametrize("batch", RECON_BATCHES)
@pytest.mark.parametrize("kind", ["bce", "mse"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("impl", IMPLS)
def test_reconstruction_loss(benchmark, device, impl, mode, kind, batch):
    benchmark.group = f"reconstruction_loss[{kind}] {mode} [{batch}, 784]"
    g = torch.Generator().manual_seed(3)
    output = (torch.randn(batch, 784, generator=g) * 3).to(device).requires_grad_()
    target = torch.rand(batch, 784, generator=g).to(device)  # data: no gradient
    fn = {
        "fused": af.ops.reconstruction_loss,
        "eager": eager_reconstruction_loss,
        "compiled-eager": _compiled_recon,
    }[impl]
    elements = batch * 784
    time_mode(benchmark, device, mode, fn, (output, target, kind), elements)
    benchmark.extra_info.update(batch=batch, features=784, kind=kind, impl=impl, mode=mode)
    record_throughput(benchmark, elements, nbytes=bytes_moved(mode, 2 * elements, elements), unit="elements")
