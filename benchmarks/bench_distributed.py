"""Data-parallel throughput of the paper's model (784-1000-1000-8 AAE, Gaussian prior), launched
with torchrun: gloo on CPU, NCCL on CUDA. A script, not a pytest-benchmark suite (it needs a
process group of several processes)::

    python benchmarks/bench_distributed.py                                # 1 process
    torchrun --nproc-per-node 2 benchmarks/bench_distributed.py           # 2 processes
    torchrun --nproc-per-node 8 benchmarks/bench_distributed.py --device cuda

Options: ``--backend fused|eager``, ``--batch-size`` (rows per process and step, default 100, the
paper's), ``--steps`` / ``--warmup``, ``--threads`` (intra-op threads per process), ``--json PATH``
(append the result as one JSON line).

Reports, from rank 0: global samples/s (all processes' rows per second of ``Trainer.fit``), the
step time, and the gradient all-reduce per step: elements, MB, and the time spent in it (which
includes waiting for the slowest rank).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=["fused", "eager"], default="fused")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--batch-size", type=int, default=100, help="rows per process and step")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per process")
    p.add_argument("--json", default=None, help="append the result to this file (JSON lines)")
    return p.parse_args()


def main() -> None:
    args = _parse()
    torch.set_num_threads(args.threads)
    from aae_fast import models
    from aae_fast.training import Trainer, destroy_distributed, init_distributed
    from aae_fast.training import distributed as dist_utils

    context = init_distributed(args.device, timeout=300)
    rank, world = (0, 1) if context is None else (context.rank, context.world_size)
    device = args.device if context is None else context.device(args.device)
    try:
        total_steps = args.warmup + args.steps
        rows = args.batch_size * world * total_steps  # one epoch: a fresh batch every step
        data = torch.rand(rows, 784, generator=torch.Generator().manual_seed(0))
        torch.manual_seed(0)
        model = models.AdversarialAutoencoder(backend=args.backend, optimizer="adam")
        trainer = Trainer(
            model, device=device, batch_size=args.batch_size, progress=False, log_every=10**9
        )
        sync = trainer._amp.grad_sync
        comm = {"s": 0.0, "calls": 0}
        if sync is not None:
            inner = sync.__call__

            def timed(optimizer):
                tick = time.perf_counter()
                inner(optimizer)
                if torch.device(device).type == "cuda":
                    torch.cuda.synchronize(device)
                comm["s"] += time.perf_counter() - tick
                comm["calls"] += 1

            trainer._amp.grad_sync = timed
        trainer.fit(data, max_steps=args.warmup)
        elements_before = 0 if sync is None else sync.elements
        comm["s"] = 0.0
        if context is not None:
            dist_utils.barrier()
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        trainer.fit(data, max_steps=total_steps)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)
        if context is not None:
            dist_utils.barrier()
        elapsed = time.perf_counter() - start
        elements = 0 if sync is None else (sync.elements - elements_before) / args.steps
        result = {
            "world_size": world,
            "device": str(torch.cuda.get_device_name(device)) if args.device == "cuda" else "cpu",
            "backend": args.backend,
            "threads_per_process": args.threads,
            "batch_per_process": args.batch_size,
            "global_batch": args.batch_size * world,
            "steps": args.steps,
            "samples_per_s": args.batch_size * world * args.steps / elapsed,
            "step_ms": 1e3 * elapsed / args.steps,
            "allreduce_elements_per_step": int(elements),
            "allreduce_MB_per_step": 4 * elements / 1e6,
            "allreduce_ms_per_step": 1e3 * comm["s"] / args.steps,
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
        }
        if rank == 0:
            print(json.dumps(result))
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(result) + "\n")
    finally:
        destroy_distributed(context)


if __name__ == "__main__":
    main()
