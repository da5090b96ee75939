"""Where a training step spends its device time: torch.profiler over a few steps of the paper's
MNIST AAE (or the semi-supervised AAE), fused or eager reference, fp32 or bf16, and a table of the
kernels by self device time (the CPU's operators by self CPU time where there is no GPU).

    python scripts/profile_step.py --impl fused --batch 8192 --precision bf16 --out /tmp/prof

Writes <out>/profile-<model>-<impl>-b<batch>-<precision>.txt (the table) and prints it. A
diagnostic for developers, not a benchmark: the profiler's own overhead inflates short kernels, so
read shares and orders of magnitude, and time with `aae-fast bench`.
"""

from __future__ import annotations

import argparse
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
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    for _ in range(3):
        model.training_step(batch, optimizers, amp)
    sync()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
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
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"profile-{args.model}-{args.impl}-b{args.batch}-{args.precision}.txt"
    path.write_text(head + table + "\n")
    print(head + table)
    return str(path)


if __name__ == "__main__":
    main()
