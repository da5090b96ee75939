"""Shared helpers for the pytest-benchmark suites: device selection, synchronised timing, memory.

Every timed call synchronises the device inside the timed function, so GPU times are real. Results
carry throughput and peak memory in `extra_info`; `aae-fast bench` writes them to
benchmarks/results/.

Quick mode (`AAE_FAST_BENCH_QUICK=1`, set by `aae-fast bench --quick`): a smoke-sized run of the
same suite. Collection keeps only the cheap cases (`quick_keeps`: no torch.compile implementation,
batch 100 and fp32 at most, one layer and one activation of linear_act, the smallest
reparameterisation shape, hidden widths up to 2000) and `run_timed` caps the rounds and warm-up
calls (QUICK_ROUNDS, QUICK_WARMUP). Its numbers are a smoke test, not results.
"""

import os
import resource

import pytest
import torch

#: Quick mode (module docstring): set by `aae-fast bench --quick`.
QUICK = os.environ.get("AAE_FAST_BENCH_QUICK", "").strip() not in ("", "0")
QUICK_ROUNDS = 3
QUICK_WARMUP = 1

if not torch.cuda.is_available():
    # Triton kernels can only run under the interpreter here; benchmarks never time them on CPU.
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Each op benchmark compiles one composite (dynamic=False) for all its shapes and modes: every
# case is another specialisation of the same code object, and past torch's per-code recompile
# limit (8) the later compiled-eager cases would fall back to eager and time it under their label.
torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 256)


def bench_device() -> torch.device:
    requested = os.environ.get("AAE_FAST_BENCH_DEVICE")
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_timed(benchmark, fn, device: torch.device, rounds: int = 15, warmup: int = 3):
    """Times fn() with a device sync inside the timed call; records peak memory in extra_info.
    Quick mode caps `rounds` and `warmup` (QUICK_ROUNDS, QUICK_WARMUP)."""
    if QUICK:
        rounds, warmup = min(rounds, QUICK_ROUNDS), min(warmup, QUICK_WARMUP)

    def call():
        out = fn()
        synchronize(device)
        return out

    for _ in range(warmup):
        call()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = peak_rss_bytes()
    result = benchmark.pedantic(call, rounds=rounds, iterations=1)
    if device.type == "cuda":
        benchmark.extra_info["peak_memory_bytes"] = torch.cuda.max_memory_allocated(device) - base
    else:
        benchmark.extra_info["peak_rss_growth_bytes"] = max(0, peak_rss_bytes() - base)
    benchmark.extra_info["device"] = str(device)
    return result


def record_throughput(benchmark, items: int, nbytes: int = 0, flops: int = 0, unit: str = "samples") -> None:
    """Adds per-second rates from the median time to extra_info (no-op under --benchmark-disable)."""
    if benchmark.stats is None:  # --benchmark-disable: the call ran once, untimed
        return
    median = benchmark.stats.stats.median
    benchmark.extra_info[f"{unit}_per_s"] = items / median
    if nbytes:
        benchmark.extra_info["bytes_per_s"] = nbytes / median
    if flops:
        benchmark.extra_info["gflops_per_s"] = flops / median / 1e9


def quick_keeps(params: dict) -> bool:
    """Whether quick mode keeps a case, from its parameters (pytest's callspec.params): no
    torch.compile implementation (compiling costs seconds to tens of seconds a case), batch 100 at
    most, fp32 only, linear_act at 1000->1000 with relu only, reparameterisation at [100, 8] only,
    width scaling at hidden 1000 and 2000."""
    impl = params.get("impl")
    if isinstance(impl, str) and "compile" in impl:
        return False
    batch = params.get("batch")
    if isinstance(batch, int) and batch > 100:
        return False
    precision = params.get("precision")
    if precision is not None and precision != "fp32":
        return False
    if params.get("layer", (1000, 1000)) != (1000, 1000):
        return False
    if params.get("activation", "relu") != "relu":
        return False
    if params.get("shape", (100, 8)) != (100, 8):
        return False
    if params.get("hidden", 1000) > 2000:  # the width-scaling cases: 1000 and 2000 only
        return False
    return True


def pytest_collection_modifyitems(config, items):
    """Quick mode: deselect every case `quick_keeps` rejects."""
    if not QUICK:
        return
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        (kept if quick_keeps(callspec.params if callspec else {}) else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture
def device() -> torch.device:
    return bench_device()
