"""Where a training step spends its device time: torch.profiler over a few steps of the paper's
MNIST AAE (or the semi-supervised AAE), fused or eager reference, fp32 or bf16, and a table of the
kernels by self device time (the CPU's operators by self CPU time where there is no GPU).

    python scripts/profile_step.py --impl fused --batch 8192 --precision bf16 --out /tmp/prof

Writes <out>/profile-<model>-<impl>-b<batch>-<precision>.txt (the table) and prints it. A
diagnostic for developers, not a benchmark: the profiler's own overhead inflates short kernels, so
read shares and orders of magnitude, and time with `aae-fast bench`.

``--gemms`` adds a table of the step's GEMMs by shape: time per step, GFLOP/s inside the step, and
GFLOP/s of the same GEMM (contiguous operands, the run's precision) repeated alone in a loop, where
its operands stay in cache. The ratio of the two says how much the step's memory traffic (cold
weights, fresh gradient buffers) costs the GEMMs: what bounds a GEMM-bound step.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

import aae_fast.models as fused
import aae_fast.reference as reference
from aae_fast.reference._common import Autocast


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["aae", "ssaae"], default="aae")
    parser.add_argument("--impl", choices=["fused", "eager"], default="fused")
    parser.add_argument("--batch", type=int, default=8192)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--steps", type=int, default=5, help="profiled steps (after 3 warm-up steps)")
    parser.add_argument("--rows", type=int, default=30, help="rows of the table")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("."))
    parser.add_argument("--gemms", action="store_true",
                        help="add the GEMMs by shape, in the step and alone in a loop")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.steps < 1:
        parser.error(f"--batch and --steps must be >= 1, got {args.batch} and {args.steps}")

    device = torch.device(args.device)
    lib = fused if args.impl == "fused" else reference
    cls = lib.AdversarialAutoencoder if args.model == "aae" else lib.SemiSupervisedAAE
    torch.manual_seed(0)
    model = cls().to(device)
    optimizers = model.configure_optimizers()
    g = torch.Generator().manual_seed(0)
    batch = {
        "x": torch.rand(args.batch, model.input_dim, generator=g).to(device),
        "y": torch.randint(0, 10, (args.batch,), generator=g).to(device),
        "x_labelled": torch.rand(args.batch, model.input_dim, generator=g).to(device),
        "y_labelled": torch.randint(0, 10, (args.batch,), generator=g).to(device),
    }
    amp = None if args.precision == "fp32" else Autocast(device.type, torch.bfloat16)
    sync = _sync(device)

    for _ in range(3):
        model.training_step(batch, optimizers, amp)
    sync()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=args.gemms) as prof:
        for _ in range(args.steps):
            model.training_step(batch, optimizers, amp)
        sync()
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    try:
        table = prof.key_averages().table(sort_by=key, row_limit=args.rows)
    except (AttributeError, KeyError, ValueError):  # older torch: cuda_time naming
        key = "self_cuda_time_total" if device.type == "cuda" else key
        table = prof.key_averages().table(sort_by=key, row_limit=args.rows)
    head = (f"{args.model} {args.impl} batch {args.batch} {args.precision} on "
            f"{torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, "
            f"torch {torch.__version__}, {args.steps} steps, sorted by {key}\n")
    if device.type == "cuda":
        head += kernel_summary(prof, args.steps) + "\n"
    if args.gemms:
        dtype = torch.float32 if args.precision == "fp32" else torch.bfloat16
        table += "\n\n" + gemm_table(prof, args.steps, device, dtype)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"profile-{args.model}-{args.impl}-b{args.batch}-{args.precision}.txt"
    path.write_text(head + table + "\n")
    print(head + table)
    return str(path)


#: ATen's GEMM entry points and the positions of their [M, K] and [K, N] operands (an out= call
#: records its output as a further input).
GEMM_OPS = {"aten::mm": 0, "aten::addmm": 1, "aten::_addmm_activation": 1}


def gemm_table(prof, steps: int, device: torch.device, dtype: torch.dtype) -> str:
    """The profiled GEMMs grouped by operator and shapes, against the same GEMM alone in a loop."""
    rows = []
    alone: dict[tuple[int, int, int], float] = {}  # mm and addmm of one shape: the same GEMM alone
    for event in prof.key_averages(group_by_input_shape=True):
        if event.key not in GEMM_OPS:
            continue
        first = GEMM_OPS[event.key]
        (m, k), (_, n) = event.input_shapes[first:first + 2]
        total_us = event.device_time_total if device.type == "cuda" else event.cpu_time_total
        per_call_s = total_us * 1e-6 / event.count
        flop = 2.0 * m * k * n
        if (m, k, n) not in alone:
            alone[m, k, n] = _time_alone(m, k, n, device, dtype)
        alone_s = alone[m, k, n]
        rows.append((total_us / steps / 1e3, event.key, f"[{m},{k}]x[{k},{n}]", event.count / steps,
                     flop / per_call_s / 1e9, flop / alone_s / 1e9))
    if not rows:
        return "no GEMM was profiled"
    rows.sort(reverse=True)
    lines = [f"GEMMs by shape ({dtype}; 'alone': contiguous operands, repeated in a loop)",
             f"{'ms/step':>8}  {'op':<24} {'shape':<24} {'calls/step':>10}  {'GF/s in step':>12}  "
             f"{'GF/s alone':>10}  {'step/alone':>10}"]
    for ms, op, shape, calls, in_step, alone_gflops in rows:
        lines.append(f"{ms:8.3f}  {op:<24} {shape:<24} {calls:10.1f}  {in_step:12.1f}  "
                     f"{alone_gflops:10.1f}  {in_step / alone_gflops:10.2f}")
    lines.append(f"GEMM time per step: {sum(r[0] for r in rows):.3f} ms")
    return "\n".join(lines)


def kernel_summary(prof, steps: int) -> str:
    """Device kernels launched per step and their summed time: at small batches a step whose
    kernels add up to much less than its wall time is bound by launches, and a CUDA graph of it by
    the kernels' count and their own durations."""
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    busy_us = sum(e.device_time_total if hasattr(e, "device_time_total") else e.cuda_time_total
                  for e in kernels)
    return (f"device kernels per step: {len(kernels) / steps:.1f}, summed device time per step: "
            f"{busy_us / steps / 1e3:.3f} ms")


def _sync(device: torch.device):
    """What waits for the device's queued work (nothing to wait for on the CPU)."""
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def _time_alone(m: int, k: int, n: int, device: torch.device, dtype: torch.dtype) -> float:
    """Median seconds of one [m, k] x [k, n] GEMM repeated with hot operands."""
    a = torch.randn(m, k, device=device, dtype=dtype)
    b = torch.randn(k, n, device=device, dtype=dtype)
    sync = _sync(device)
    reps = 5 if 2.0 * m * k * n > 1e8 else 50
    for _ in range(3):
        torch.mm(a, b)
    times = []
    for _ in range(5):
        sync()
        start = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b)
        sync()
        times.append((time.perf_counter() - start) / reps)
    return sorted(times)[len(times) // 2]


if __name__ == "__main__":
    main()
