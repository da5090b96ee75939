"""Runs the pytest-benchmark suite and writes a results file with the machine's description.

`aae-fast bench` calls `run_suite`; results land in benchmarks/results/<device>-<date>.json with
every figure pytest-benchmark measured plus device name, CPU model and core count, torch and triton
versions, and a summary of each group's ratios against its eager baseline.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch


def machine_info() -> dict:
    import aae_fast

    cpu_model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = aae_fast.backend_info()
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": info["device"],
        "cpu_model": cpu_model,
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": info["torch"],
        "triton": info["triton"],
        "aae_fast": info["version"],
        "backends": info["ops"],
        "cuda": torch.version.cuda,
    }


def default_suite() -> Path:
    """The repository's benchmarks/ beside the package (editable or source checkout)."""
    return Path(__file__).resolve().parents[1] / "benchmarks"


def summarise(report: dict, baseline: str = "eager") -> list[dict]:
    """Per benchmark group: each implementation's median and its speed-up over `baseline`.

    An implementation is the first parametrisation id in brackets (e.g. test_x[fused-1000000]).
    """
    groups: dict[str, dict[str, float]] = {}
    for bench in report.get("benchmarks", []):
        match = re.search(r"\[([^\]-]+(?:-eager)?)", bench["name"])
        impl = match.group(1) if match else bench["name"]
        groups.setdefault(bench.get("group") or bench["name"], {})[impl] = bench["stats"]["median"]
    rows = []
    for group, medians in sorted(groups.items()):
        base = medians.get(baseline)
        for impl, median in sorted(medians.items(), key=lambda kv: kv[1]):
            rows.append(
                {
                    "group": group,
                    "impl": impl,
                    "median_s": median,
                    f"speedup_vs_{baseline}": (base / median) if base else None,
                }
            )
    return rows


def format_summary(rows: list[dict], baseline: str = "eager") -> str:
    lines = [f"{'group':48s} {'impl':16s} {'median':>12s} {'vs ' + baseline:>10s}"]
    for r in rows:
        ratio = r[f"speedup_vs_{baseline}"]
        lines.append(
            f"{r['group'][:48]:48s} {r['impl'][:16]:16s} {r['median_s'] * 1e3:10.3f}ms "
            f"{(f'{ratio:.2f}x' if ratio else '-'):>10s}"
        )
    return "\n".join(lines)


def run_suite(suite: Path, out_dir: Path, select: str | None = None, extra_args=()) -> Path:
    """Runs pytest-benchmark on `suite`; writes and returns out_dir/<device>-<date>.json."""
    if not suite.is_dir():
        raise FileNotFoundError(
            f"benchmark suite not found at {suite}; pass --suite DIR (the repository's benchmarks/)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.json"
        cmd = [
            sys.executable, "-m", "pytest", str(suite), "--benchmark-only", "-p", "no:cacheprovider",
            f"--benchmark-json={raw}", "--benchmark-columns=median,iqr,rounds", "-q",
            "--rootdir", str(suite),
        ]
        if select:
            cmd += ["-k", select]
        cmd += list(extra_args)
        done = subprocess.run(cmd)
        if done.returncode != 0:
            raise RuntimeError(f"benchmark run failed (pytest exit code {done.returncode})")
        report = json.loads(raw.read_text())
    machine = machine_info()
    rows = summarise(report)
    device = re.sub(r"[^A-Za-z0-9]+", "-", machine["device"]).strip("-").lower()
    path = out_dir / f"{device}-{_dt.date.today().isoformat()}.json"
    path.write_text(json.dumps({"machine": machine, "summary": rows, "pytest_benchmark": report}, indent=1))
    print(format_summary(rows))
    print(f"\nwrote {path}")
    return path
