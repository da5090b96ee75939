"""Shared helpers for the pytest-benchmark suites: device selection, synchronised timing, memory.

Every timed call synchronises the device inside the timed function, so GPU times are real. Results
carry throughput and peak memory in `extra_info`; `aae-fast bench` writes them to
benchmarks/results/.
"""

import os
import resource

import pytest
import torch

if not torch.cuda.is_available():
    # Triton kernels can only run under the interpreter here; benchmarks never time them on CPU.
    os.environ.setdefault("TRITON_INTERPRET", "1")


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
    """Times fn() with a device sync inside the timed call; records peak memory in extra_info."""

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


@pytest.fixture
def device() -> torch.device:
    return bench_device()
