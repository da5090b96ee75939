"""Runs the pytest-benchmark suite and writes the results, a Markdown report and plots.

`aae-fast bench` calls `run_suite`: pytest-benchmark runs the repository's benchmarks/ in a child
process (a progress line per case), and out_dir receives

    <device>-<date>.json             every figure pytest-benchmark measured ("pytest_benchmark"),
                                     the machine ("machine": device, CPU model, core count, versions,
                                     date), a summary per case ("summary"), the targets of the
                                     fast-training issue as judged from the data ("targets"), the
                                     skipped cases with their reasons ("skipped")
    <device>-<date>.md               the report (`render_markdown`)
    <device>-<date>-throughput.png   training samples/s against batch size, one line per
                                     implementation, one panel per model and precision
    <device>-<date>-peak.png         % of the GEMM peak (measured in the same run) per training case
    <device>-<date>-ops.png          (runs with op cases) each op benchmark's speed-ups over eager:
                                     one dot per group and implementation, one column per benchmark

`--quick` (a smoke run of the same suite, `AAE_FAST_BENCH_QUICK=1`: see benchmarks/conftest.py)
writes the same files with a "-quick" suffix, so that it never overwrites a full run of the day.
`build_report(json_path)` (`aae-fast bench --report-only PATH.json`) rebuilds the Markdown and the
plots from a results file; the summary and the targets are recomputed from its raw figures.

Case names. Op benchmarks are parametrised impl first (test_linear_act[fused-fwd-100-784-1000-relu];
the implementations are fused, eager and compiled-eager) and grouped by pytest-benchmark's `group`.
Training cases are test_training_step[<impl>-<model>-b<batch>-<precision>] (impl: eager, naive,
compile, compile_step, fused, fused_compile, ...), grouped by model, batch and precision. The
implementation is read from the case's parameters (`params["impl"]`) where pytest-benchmark recorded
them, else from `extra_info["impl"]`, else from the id.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import importlib.metadata
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import torch

__all__ = [
    "machine_info",
    "default_suite",
    "case_info",
    "summarise",
    "format_summary",
    "judge_targets",
    "render_markdown",
    "plot_throughput",
    "plot_peak",
    "plot_ops",
    "build_report",
    "merge_results",
    "run_suite",
    "QUICK_ENV",
]

QUICK_ENV = "AAE_FAST_BENCH_QUICK"
BASELINE = "eager"
#: Quick mode's Parzen problem size (the full run scores 10^4 points against 10^4 samples).
QUICK_PARZEN_N = 1000
#: Implementation names of op benchmarks that hold a "-" (an id is otherwise cut at its first "-").
MULTIPART_IMPLS = ("compiled-eager",)
#: The training benchmark's models, in report order, with what they are.
MODELS = {
    "aae": "AdversarialAutoencoder(): the paper's MNIST model, encoder 784-1000-1000-8, mirrored "
    "decoder, discriminator 8-1000-1000-1",
    "ssaae": "SemiSupervisedAAE(): encoder 784-1000-1000-(10+10), two discriminators "
    "10-1000-1000-1, a labelled batch as large as the main one",
}
PEER = "pythae"
_TRAIN_ID = re.compile(
    r"^(?P<impl>[A-Za-z0-9_.]+)-(?P<model>[A-Za-z0-9_.]+)-b(?P<batch>\d+)-(?P<precision>fp32|bf16|fp16)$"
)
_SKIP_NOISE = "Skipping non-benchmark (--benchmark-only active)."


# ------------------------------------------------------------------------------------------------
# Machine


def _peer_status() -> dict:
    """Whether the peer library can be imported here, and its version or the import error."""
    try:
        module = importlib.import_module(PEER)
    except Exception as exc:  # noqa: BLE001 (any import failure is a reason to report)
        return {"installed": False, "version": None, "error": f"{type(exc).__name__}: {exc}"}
    try:
        version = importlib.metadata.version(PEER)
    except importlib.metadata.PackageNotFoundError:
        version = getattr(module, "__version__", "unknown")
    return {"installed": True, "version": version, "error": None}


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
        "cpu_capability": getattr(torch.backends.cpu, "get_cpu_capability", lambda: None)(),
        "python": platform.python_version(),
        "torch": info["torch"],
        "triton": info["triton"],
        "aae_fast": info["version"],
        "backends": info["ops"],
        "cuda": torch.version.cuda,
        "peers": {PEER: _peer_status()},
    }


def default_suite() -> Path:
    """The repository's benchmarks/ beside the package (editable or source checkout)."""
    return Path(__file__).resolve().parents[1] / "benchmarks"


# ------------------------------------------------------------------------------------------------
# Summary


def _case_id(name: str) -> str:
    match = re.search(r"\[(.*)\]$", name)
    return match.group(1) if match else ""


def _impl_from_id(case_id: str) -> str | None:
    for impl in MULTIPART_IMPLS:
        if case_id == impl or case_id.startswith(impl + "-"):
            return impl
    return case_id.split("-", 1)[0] or None


def case_info(bench: dict) -> dict:
    """What one pytest-benchmark entry measured: kind ("training", "scaling", "gemm_peak" or
    "op"), test, group, impl, and for training and scaling cases model, batch and precision (and
    the hidden width of a scaling case: test_width_scaling)."""
    name = bench.get("name", "?")
    params = bench.get("params") or {}
    extra = bench.get("extra_info") or {}
    case_id = _case_id(name)
    test = name.split("[", 1)[0]
    fullname = bench.get("fullname") or ""
    info = {
        "test": test,
        "file": fullname.split("::", 1)[0].rsplit("/", 1)[-1] if "::" in fullname else "",
        "group": bench.get("group") or name,
        "device": extra.get("device"),
    }
    if test == "test_gemm_peak" or bench.get("group") == "gemm peak":
        precision = params.get("precision") or extra.get("precision") or case_id.rsplit("-", 1)[-1]
        info.update(kind="gemm_peak", impl="torch.mm", precision=precision)
        return info
    if test == "test_width_scaling":
        info.update(kind="scaling", impl=params.get("impl") or extra.get("impl") or "?",
                    model=str(extra.get("model", "aae")), batch=int(extra.get("batch", 0)),
                    precision=str(extra.get("precision", "fp32")),
                    hidden=int(params.get("hidden") or extra.get("hidden") or 0))
        return info
    match = _TRAIN_ID.match(case_id)
    training = test == "test_training_step" or match is not None or all(
        k in extra for k in ("model", "batch", "precision", "flops_per_sample")
    )
    impl = params.get("impl") or extra.get("impl")
    if training:
        fields = match.groupdict() if match else {}
        model = params.get("model_name") or extra.get("model") or fields.get("model") or "?"
        batch = params.get("batch") or extra.get("batch") or fields.get("batch") or 0
        precision = params.get("precision") or extra.get("precision") or fields.get("precision") or "?"
        info.update(
            kind="training",
            impl=impl or fields.get("impl") or _impl_from_id(case_id) or name,
            model=str(model),
            batch=int(batch),
            precision=str(precision),
        )
        if not bench.get("group"):
            info["group"] = f"training_step {model} B={int(batch)} {precision}"
        return info
    info.update(kind="op", impl=impl or _impl_from_id(case_id) or name)
    return info


def _quantile(values: list[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default)."""
    values = sorted(values)
    pos = q * (len(values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def summarise(report: dict, baseline: str = BASELINE) -> list[dict]:
    """One row per case: its group, kind and implementation, median (and p20/p80 where the
    rounds were recorded), speed-up over `baseline` in the same group (None where the group has no
    baseline), and, where the case recorded them, throughput, FLOPs, % of GEMM peak and memory.

    Rows are sorted by kind (training, gemm_peak, op), then group, then fastest first."""
    rows = []
    for bench in report.get("benchmarks", []):
        stats = bench.get("stats") or {}
        if stats.get("median") is None:
            continue
        info = case_info(bench)
        extra = bench.get("extra_info") or {}
        data = stats.get("data") or []
        row = {
            **info,
            "name": bench.get("name"),
            "median_s": stats["median"],
            "p20_s": _quantile(data, 0.2) if data else None,
            "p80_s": _quantile(data, 0.8) if data else None,
            "rounds": stats.get("rounds"),
        }
        memory = extra.get("peak_memory_bytes", extra.get("peak_rss_growth_bytes"))
        row["peak_memory_bytes"] = memory
        if "peak_memory_bytes" in extra:
            row["memory_measure"] = "per-call peak"
        else:
            row["memory_measure"] = "RSS high-water growth" if memory is not None else None
        for key in ("samples_per_s", "elements_per_s", "pairs_per_s", "bytes_per_s", "gflops_per_s",
                    "flops_per_sample", "gemm_peak_gflops", "percent_of_gemm_peak", "schedule"):
            if key in extra:
                row[key] = extra[key]
        if info["kind"] in ("training", "scaling") and "samples_per_s" not in row and info["batch"]:
            row["samples_per_s"] = info["batch"] / stats["median"]
        rows.append(row)
    by_group: dict[str, dict[str, float]] = {}
    for row in rows:
        by_group.setdefault(row["group"], {})[row["impl"]] = row["median_s"]
    key = f"speedup_vs_{baseline}"
    for row in rows:
        base = by_group[row["group"]].get(baseline)
        row[key] = base / row["median_s"] if base and row["median_s"] > 0 else None
    order = {"training": 0, "scaling": 1, "gemm_peak": 2, "op": 3}

    def sort_key(r):
        if r["kind"] == "training":
            return (0, list(MODELS).index(r["model"]) if r["model"] in MODELS else 99, r["model"],
                    _precision_key(r["precision"]), r["batch"], r["median_s"])
        return (order.get(r["kind"], 3), r.get("file", ""), r["test"], r["group"], 0, r["median_s"])

    return sorted(rows, key=sort_key)


def _precision_key(precision: str) -> tuple:
    order = ("fp32", "bf16", "fp16")
    return (order.index(precision) if precision in order else len(order), precision)


def format_summary(rows: list[dict], baseline: str = BASELINE) -> str:
    lines = [f"{'group':48s} {'impl':16s} {'median':>12s} {'vs ' + baseline:>10s}"]
    for r in rows:
        ratio = r.get(f"speedup_vs_{baseline}")
        lines.append(
            f"{r['group'][:48]:48s} {r['impl'][:16]:16s} {r['median_s'] * 1e3:10.3f}ms "
            f"{(f'{ratio:.2f}x' if ratio else '-'):>10s}"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Targets of the fast-training issue (issue 6), judged from the data


def _is_fused(impl: str) -> bool:
    return impl.startswith("fused")


def _is_ref_compile(impl: str) -> bool:
    return impl.startswith("compile")


def _training_groups(rows: list[dict]) -> dict[tuple, dict[str, dict]]:
    groups: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        if r["kind"] == "training":
            groups.setdefault((r["model"], r["precision"], r["batch"]), {})[r["impl"]] = r
    return groups


def _best(impls: dict[str, dict], pick) -> dict | None:
    chosen = [r for impl, r in impls.items() if pick(impl)]
    return min(chosen, key=lambda r: r["median_s"]) if chosen else None


def _ours(impls: dict[str, dict]) -> tuple[dict | None, str]:
    """aae_fast's fastest implementation in a group (fused, fused_compile, ...) and its name."""
    best = _best(impls, _is_fused)
    return (best, best["impl"]) if best is not None else (None, "")


def run_device(rows: list[dict], machine: dict) -> str:
    """Where the cases ran: "cuda" when any ran on a GPU, else "cpu" (the machine's device where
    no case recorded one)."""
    devices = {str(r.get("device") or "") for r in rows if r.get("device")}
    if devices:
        return "cuda" if any(d.startswith("cuda") for d in devices) else "cpu"
    return "cpu" if str(machine.get("device", "cpu")) == "cpu" else "cuda"


def judge_targets(rows: list[dict], machine: dict | None = None) -> list[dict]:
    """Each target of the fast-training issue, per model and case, as
    {"device", "target", "case", "measured", "required", "status", "note"} where status is "met",
    "missed" or "not measured". The figure for aae_fast is its fastest implementation in the group
    (fused, fused_compile, ...: named in "measured"); the reference's torch.compile figure is the
    fastest of its compile modes that ran."""
    machine = machine or {}
    groups = _training_groups(rows)
    device = run_device(rows, machine)
    models = list(MODELS) + sorted({m for m, _, _ in groups} - set(MODELS))
    out: list[dict] = []

    def add(dev, target, case, status, measured="", required="", note=""):
        out.append({"device": dev, "target": target, "case": case, "measured": measured,
                    "required": required, "status": status, "note": note})

    def ratio_target(dev, target, model, precision, batch, threshold, versus):
        """aae_fast's samples/s over `versus`'s (eager or the best compile mode) >= threshold."""
        case = f"{model} B={batch} {precision}"
        required = f">= {threshold:g}x" if threshold > 1 else "> 1x"
        impls = groups.get((model, precision, batch))
        if not impls:
            return add(dev, target, case, "not measured", required=required,
                       note="no training case of this group in the run")
        ours, name = _ours(impls)
        if versus == "eager":
            other = impls.get(BASELINE)
            other_name = "eager"
        else:
            other = _best(impls, _is_ref_compile)
            other_name = other["impl"] if other else "torch.compile"
        if ours is None or other is None:
            missing = "aae_fast (fused)" if ours is None else f"the reference's {other_name}"
            return add(dev, target, case, "not measured", required=required,
                       note=f"{missing} did not run: skipped or deselected")
        ratio = other["median_s"] / ours["median_s"]
        measured = f"{ratio:.2f}x ({name} vs {other_name})"
        plain = impls.get("fused")
        if plain is not None and plain is not ours:
            measured += f"; fused alone {other['median_s'] / plain['median_s']:.2f}x"
        ok = ratio >= threshold if threshold > 1 else ratio > threshold
        add(dev, target, case, "met" if ok else "missed", measured=measured, required=required)

    def peak_target(dev, target, model, precision, batch, percent):
        case = f"{model} B={batch} {precision}"
        impls = groups.get((model, precision, batch))
        ours, name = _ours(impls or {})
        if ours is None:
            return add(dev, target, case, "not measured", required=f">= {percent}% of peak",
                       note="no aae_fast case of this group in the run")
        share = ours.get("percent_of_gemm_peak")
        if share is None:
            return add(dev, target, case, "not measured", required=f">= {percent}% of peak",
                       note="the case recorded no % of GEMM peak")
        measured = f"{share:.1f}% ({name}: {ours.get('gflops_per_s', float('nan')):.0f} of " \
                   f"{ours.get('gemm_peak_gflops', float('nan')):.0f} GFLOP/s)"
        add(dev, target, case, "met" if share >= percent else "missed", measured=measured,
            required=f">= {percent}% of peak",
            note="above 100%: the peak measurement was disturbed (shared machine?)" if share > 100 else "")

    cpu_targets = [
        ("fp32, batch 100: >= 1.5x the eager reference", "fp32", [100], 1.5, "eager"),
        ("fp32, batch 1000: >= 1.15x the eager reference", "fp32", [1000], 1.15, "eager"),
        ("fp32: ahead of torch.compile of the reference (every mode that works)", "fp32",
         [100, 1000], 1.0, "compile"),
        ("bf16 autocast, batch 1000: >= 1.3x the eager reference under autocast", "bf16", [1000],
         1.3, "eager"),
    ]
    gpu_targets = [
        ("batch 100: >= 10x the eager reference", "fp32", [100], 10.0, "eager"),
        ("batch 100 to 8192: >= 1.5x the best torch.compile mode of the reference", "fp32",
         [100, 1000, 8192], 1.5, "compile"),
    ]
    for dev, ratio_list, peak in (
        ("cpu", cpu_targets, ("bf16, batch 4096: >= 60% of the bf16 GEMM peak", "bf16", 4096, 60)),
        ("gpu", gpu_targets, ("bf16, batch 8192: >= 60% of the bf16 GEMM peak", "bf16", 8192, 60)),
    ):
        measured_here = (dev == "gpu") == (device == "cuda")
        targets = [t[0] for t in ratio_list] + [peak[0]]
        if not measured_here:
            why = "no GPU in this run" if dev == "gpu" else "this run is on a GPU; see a CPU run"
            for target in targets:
                add(dev, target, "all", "not measured", note=why)
            continue
        for target, precision, batches, threshold, versus in ratio_list:
            for model in models:
                for batch in batches:
                    ratio_target(dev, target, model, precision, batch, threshold, versus)
            if dev == "gpu" and versus == "compile":  # every batch the run has in 100..8192
                for model, prec, batch in sorted(groups):
                    if 100 <= batch <= 8192 and (prec != precision or batch not in batches):
                        ratio_target(dev, target, model, prec, batch, threshold, versus)
        for model in models:
            peak_target(dev, peak[0], model, peak[1], peak[2], peak[3])

    # The peer: aae_fast faster than pythae's Adversarial_AE at the same sizes and batch.
    peer_target = f"faster than {PEER}'s Adversarial_AE at the same layer sizes and batch"
    peer_groups = [(k, v) for k, v in sorted(groups.items()) if any(i.startswith(PEER) for i in v)]
    for (model, precision, batch), impls in peer_groups:
        ours, name = _ours(impls)
        peer = _best(impls, lambda i: i.startswith(PEER))
        case = f"{model} B={batch} {precision}"
        if ours is None:
            add("any", peer_target, case, "not measured", required="> 1x",
                note="aae_fast did not run in this group")
            continue
        ratio = peer["median_s"] / ours["median_s"]
        add("any", peer_target, case, "met" if ratio > 1 else "missed", required="> 1x",
            measured=f"{ratio:.2f}x ({name} vs {peer['impl']})")
    if not peer_groups:
        add("any", peer_target, "all", "not measured", note=peer_note(machine))
    return out


def peer_note(machine: dict) -> str:
    status = (machine.get("peers") or {}).get(PEER)
    if status is None:
        return f"no {PEER} case in this run; the results file does not say whether {PEER} was installed"
    if not status.get("installed"):
        return (f"{PEER} is not installed in the environment of this run ({status.get('error')}) "
                f"and the suite has no {PEER} case, so there is no peer figure")
    return f"{PEER} {status.get('version')} is installed, but the suite ran no {PEER} case"


# ------------------------------------------------------------------------------------------------
# Plots (standalone Figures on an Agg canvas: no pyplot, no global backend switched)


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _impl_styles(impls: list[str]) -> dict[str, dict]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    preferred = ["eager", "naive", "compile", "compile_step", "fused", "fused_compile"]
    ordered = [i for i in preferred if i in impls] + sorted(i for i in impls if i not in preferred)
    return {
        impl: {"color": cmap(k % 10), "marker": "os^vDP*Xhp"[k % 10],
               "linestyle": "-" if _is_fused(impl) else "--"}
        for k, impl in enumerate(ordered)
    }


def _no_data(fig, text: str) -> None:
    ax = fig.add_subplot(1, 1, 1)
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, wrap=True)
    ax.set_axis_off()


def _save(fig, path: Path, title: str) -> Path:
    """Title, lay out and write a figure (creating its folder), then free it."""
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    fig.clear()
    return path


def plot_throughput(rows: list[dict], path: Path, title: str = "") -> Path:
    """Training samples/s against batch size (log scale), one line per implementation, one panel
    per model and precision."""
    groups = _training_groups(rows)
    panels = sorted({(m, p) for m, p, _ in groups},
                    key=lambda mp: (list(MODELS).index(mp[0]) if mp[0] in MODELS else 99, mp[0],
                                    _precision_key(mp[1])))
    scaling = [r for r in rows if r["kind"] == "scaling" and r.get("samples_per_s")]
    total = len(panels) + (1 if scaling else 0)
    ncols = min(2, max(1, total))
    nrows = max(1, math.ceil(total / ncols))
    fig = _figure(6.0 * ncols, 4.2 * nrows + 0.6)
    if scaling:
        _width_panel(fig.add_subplot(nrows, ncols, total), scaling)
    if not panels:
        if not scaling:
            _no_data(fig, "no training case in this run")
    else:
        styles = _impl_styles(sorted({i for v in groups.values() for i in v}))
        for k, (model, precision) in enumerate(panels):
            batches = sorted(b for m, p, b in groups if (m, p) == (model, precision))
            series = {
                impl: [(b, groups[(model, precision, b)][impl]["samples_per_s"]) for b in batches
                       if impl in groups[(model, precision, b)]
                       and groups[(model, precision, b)][impl].get("samples_per_s")]
                for impl in styles
            }
            ax = fig.add_subplot(nrows, ncols, k + 1)
            _samples_panel(ax, series, styles, batches, "batch size", f"{model}, {precision}")
            ax.set_xlim(batches[0] / 1.6, batches[-1] * 1.6)
    return _save(fig, path, title)


def _samples_panel(ax, series: dict[str, list], styles: dict[str, dict], ticks: list, xlabel: str,
                   title: str) -> None:
    """Samples/s lines, one per implementation (``series[impl]``: (x, samples/s) points), on a log
    x axis ticked at ``ticks``."""
    for impl, pts in series.items():
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, label=impl, **styles[impl])
    ax.set_xscale("log")
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_ylim(bottom=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("samples / s")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)


def _width_panel(ax, scaling: list[dict]) -> None:
    """Samples/s against the hidden width (test_width_scaling), one line per implementation."""
    styles = _impl_styles(sorted({r["impl"] for r in scaling}))
    series = {impl: sorted((r["hidden"], r["samples_per_s"]) for r in scaling if r["impl"] == impl)
              for impl in styles}
    first = scaling[0]
    _samples_panel(ax, series, styles, sorted({r["hidden"] for r in scaling}),
                   "hidden width (every layer)",
                   f"{first['model']}, {first['precision']}, batch {first['batch']}: width scaling")


def plot_peak(rows: list[dict], path: Path, title: str = "") -> Path:
    """% of the GEMM peak (same precision, same run) per training case, one bar each, with the
    60% line of the targets."""
    cases = [r for r in rows if r["kind"] == "training" and r.get("percent_of_gemm_peak") is not None]
    fig = _figure(8.0, 1.2 + 0.28 * max(len(cases), 4))
    if not cases:
        _no_data(fig, "no training case recorded a % of GEMM peak in this run")
    else:
        styles = _impl_styles(sorted({r["impl"] for r in rows if r["kind"] == "training"}))
        ax = fig.add_subplot(1, 1, 1)
        labels = [f"{r['model']} B={r['batch']} {r['precision']}  {r['impl']}" for r in cases]
        values = [r["percent_of_gemm_peak"] for r in cases]
        ys = list(range(len(cases)))[::-1]
        ax.barh(ys, values, color=[styles[r["impl"]]["color"] for r in cases])
        ax.set_yticks(ys, labels, fontsize=7)
        ax.axvline(60, color="k", linestyle=":", linewidth=1, label="60% (bf16 targets)")
        for y, v in zip(ys, values):
            ax.text(v, y, f" {v:.0f}%", va="center", fontsize=7)
        ax.set_xlabel("% of the GEMM peak measured in this run (same precision)")
        ax.set_xlim(0, max(100.0, max(values) * 1.15))
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(True, axis="x", alpha=0.3)
    return _save(fig, path, title)


def plot_ops(rows: list[dict], path: Path, title: str = "") -> Path | None:
    """Where the ops win and lose: one column per op benchmark (test), one dot per group and
    implementation at its speed-up over the group's eager median (log scale), a line at 1x. None
    (nothing written) when the run has no op case with a speed-up."""
    ops = [r for r in rows if r["kind"] == "op" and r.get("speedup_vs_eager")
           and r["impl"] != BASELINE]
    if not ops:
        return None
    tests = list(dict.fromkeys(r["test"] for r in ops))  # the report's order
    impls = sorted({r["impl"] for r in ops})
    styles = _impl_styles(impls)
    fig = _figure(max(6.0, 0.9 * len(tests) + 2.5), 4.8)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.6
    for k, impl in enumerate(impls):
        offset = (k - (len(impls) - 1) / 2) * width / max(len(impls), 1)
        pts = [(tests.index(r["test"]) + offset, r["speedup_vs_eager"]) for r in ops
               if r["impl"] == impl]
        xs, ys = zip(*pts)
        ax.scatter(xs, ys, s=14, label=impl, color=styles[impl]["color"],
                   marker=styles[impl]["marker"], alpha=0.8)
    ax.axhline(1.0, color="k", linewidth=1, linestyle=":")
    ax.set_yscale("log")
    lo, hi = min(r["speedup_vs_eager"] for r in ops), max(r["speedup_vs_eager"] for r in ops)
    ticks = [t * 10.0**e for e in range(-3, 4) for t in (1, 2, 5)]
    ticks = [t for t in ticks if lo / 2.5 <= t <= hi * 2.5] or [1.0]
    ax.set_yticks(ticks, [f"{t:g}x" for t in ticks])
    ax.minorticks_off()
    ax.set_xticks(range(len(tests)), [t.removeprefix("test_") for t in tests], rotation=35,
                  ha="right", fontsize=8)
    ax.set_ylabel("speed-up over eager (median / median)")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path, title)


# ------------------------------------------------------------------------------------------------
# Markdown


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e6:.1f} µs"


def _ratio(value: float | None) -> str:
    return f"{value:.2f}x" if value else "-"


def _bytes(value) -> str:
    if value is None:
        return "-"
    if value < 0:
        return "n/a"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{int(value)} B"


def _rate(row: dict) -> str:
    for key, unit in (("samples_per_s", "samples/s"), ("elements_per_s", "elem/s"),
                      ("pairs_per_s", "pairs/s")):
        if row.get(key):
            parts = [f"{row[key]:.3g} {unit}"]
            break
    else:
        parts = []
    if row.get("gflops_per_s"):
        parts.append(f"{row['gflops_per_s']:.1f} GFLOP/s")
    elif row.get("bytes_per_s"):
        parts.append(f"{row['bytes_per_s'] / 1e9:.2f} GB/s")
    return ", ".join(parts) or "-"


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
    return lines


def render_markdown(results: dict, plots: dict[str, str] | None = None, source: str = "") -> str:
    """The report of one results file (see the module docstring); `plots` maps "throughput",
    "peak" and (optionally) "ops" to file names relative to the report."""
    machine = results.get("machine") or {}
    rows = results.get("summary") or []
    targets = results.get("targets") or []
    plots = plots or {}
    quick = bool(results.get("quick"))
    device = machine.get("device", "?")
    date = machine.get("date", "?")
    lines = [f"# aae_fast benchmarks: {device}, {str(date)[:10]}", ""]
    if quick:
        lines += ["> **Quick run** (`aae-fast bench --quick`): a smoke test of the suite at small sizes "
                  "with few rounds and no torch.compile case. Its figures are not results.", ""]
    threads = machine.get("torch_threads")
    cpu = f"{machine.get('cpu_model') or '?'}, {machine.get('cpu_cores', '?')} cores"
    if threads:
        cpu += f" ({threads} torch threads)"
    if machine.get("cpu_capability"):
        cpu += f", ATen CPU capability {machine['cpu_capability']}"
    versions = ", ".join(f"{k} {machine[k]}" for k in ("aae_fast", "torch", "triton", "python")
                         if machine.get(k))
    if machine.get("cuda"):
        versions += f", CUDA {machine['cuda']}"
    lines += _table(["", ""], [
        ["Device", str(device)],
        ["CPU", cpu],
        ["Versions", versions or "?"],
        ["Date", str(date)],
        ["Results", f"`{source}`" if source else "-"],
    ])
    lines += [
        "",
        "Every figure is the median of pytest-benchmark's timed rounds (a device synchronisation "
        "inside each timed call); p20-p80 where the rounds were recorded. \"vs eager\" is the eager "
        "median over the implementation's median in the same group: above 1x is faster than eager.",
        "",
    ]

    # Training
    training = [r for r in rows if r["kind"] == "training"]
    peaks = {r["precision"]: r for r in rows if r["kind"] == "gemm_peak"}
    lines += ["## Training throughput", ""]
    if training:
        lines += [
            "One `training_step` (every phase, optimiser steps included) per call. Models: "
            + "; ".join(f"`{m}` = {d}" for m, d in MODELS.items()) + ". Implementations: `eager` the "
            "reference (the best user's schedule), `naive` the straightforward schedule, `compile` "
            "/ `compile_step` torch.compile of the reference, `fused` aae_fast, `fused_compile` "
            "aae_fast with its networks compiled, `graph` / `fused_graph` (GPU) the reference / "
            "aae_fast stepped by `Trainer(cuda_graph=True)`, the whole step replayed as one CUDA "
            "graph (its memory pool is allocated at capture, before the timed calls, so their peak "
            "memory reads near zero). FLOPs are the GEMM FLOPs of the schedule that ran "
            "(benchmarks/training_schedules.py); % of peak is against torch.mm in the same precision "
            "measured in the same run.",
            "",
        ]
        peak_text = []
        precisions = {r["precision"] for r in training} | set(peaks)
        for precision in sorted(precisions, key=_precision_key):
            # The yardstick the rows' "% of GEMM peak" divide by (measured by the training
            # cases themselves), else the GEMM-peak case's own median.
            used = sorted({r["gemm_peak_gflops"] for r in training
                           if r["precision"] == precision and r.get("gemm_peak_gflops")})
            if len(used) == 1:
                peak_text.append(f"{precision} {used[0]:.1f} GFLOP/s")
            elif used:  # parts of a merged run, each against its own measurement
                peak_text.append(f"{precision} {used[0]:.1f} to {used[-1]:.1f} GFLOP/s (the parts "
                                 "of a merged run, each row against its own)")
            elif precision in peaks and peaks[precision].get("gflops_per_s"):
                peak_text.append(f"{precision} {peaks[precision]['gflops_per_s']:.1f} GFLOP/s")
        if peak_text:
            lines += ["GEMM peak measured in this run: " + ", ".join(peak_text) + ".", ""]
        body = []
        for r in training:
            share = r.get("percent_of_gemm_peak")
            body.append([
                r["model"], r["precision"], str(r["batch"]), f"`{r['impl']}`", _ms(r["median_s"]),
                f"{r['samples_per_s']:.0f}" if r.get("samples_per_s") else "-",
                _ratio(r.get("speedup_vs_eager")),
                f"{r['gflops_per_s']:.1f}" if r.get("gflops_per_s") else "-",
                f"{share:.1f}%" if share is not None else "-",
                (f"{r['flops_per_sample'] / 1e6:.3f} ({r.get('schedule', '?')})"
                 if r.get("flops_per_sample") else "-"),
                _bytes(r.get("peak_memory_bytes")),
            ])
        lines += _table(["Model", "Precision", "Batch", "Implementation", "Step time", "Samples/s",
                         "vs eager", "GFLOP/s", "% of GEMM peak", "MFLOP/sample (schedule)",
                         "Peak memory"], body)
        if any(r.get("memory_measure") == "RSS high-water growth" for r in training):
            lines += ["", "Peak memory on CPU is the growth of the process's RSS high-water mark "
                      "during the case: 0 where an earlier case had already set a higher mark."]
        if any((r.get("percent_of_gemm_peak") or 0) > 100 for r in training):
            lines += ["", "A share of the peak above 100% means the GEMM peak measurement itself was "
                      "slowed (a shared machine); read those rows with care."]
    else:
        lines += ["No training case in this run."]
    lines += [""]
    for key, caption in (("throughput", "Training throughput against batch size"),
                         ("peak", "Share of the GEMM peak per training case")):
        if plots.get(key):
            lines += [f"![{caption}]({plots[key]})", ""]

    # Targets
    lines += ["## Targets of the fast-training issue", "",
              "Judged from this run's figures. aae_fast's figure is its fastest implementation in "
              "the group (named); the reference's torch.compile figure is its fastest compile mode "
              "that ran.", ""]
    if targets:
        body = []
        for t in targets:
            status = {"met": "met", "missed": "**missed**"}.get(t["status"], t["status"])
            if t["status"] == "not measured" and t.get("note"):
                status = f"not measured ({t['note']})"
            elif t.get("note"):
                status += f" ({t['note']})"
            body.append([t["device"].upper() if t["device"] != "any" else "any", t["target"],
                         t["case"], t.get("measured") or "-", t.get("required") or "-", status])
        lines += _table(["Device", "Target", "Case", "Measured", "Required", "Status"], body)
        counts = {s: sum(t["status"] == s for t in targets) for s in ("met", "missed", "not measured")}
        lines += ["", f"{counts['met']} met, {counts['missed']} missed, "
                  f"{counts['not measured']} not measured."]
    else:
        lines += ["No target judged (no training case)."]
    lines += [""]

    # Scaling with the hidden width
    scaling = [r for r in rows if r["kind"] == "scaling"]
    if scaling:
        lines += ["## Scaling with the hidden width", "",
                  "The paper's AAE with every hidden layer (encoder, decoder, discriminator) widened, "
                  "one training step per call (test_width_scaling); plotted beside the batch-size "
                  "panels of the throughput figure.", ""]
        body = [[str(r["hidden"]), f"`{r['impl']}`", f"{r['batch']}", r["precision"], _ms(r["median_s"]),
                 f"{r['samples_per_s']:.0f}" if r.get("samples_per_s") else "-",
                 _ratio(r.get("speedup_vs_eager")),
                 f"{r['gflops_per_s']:.1f}" if r.get("gflops_per_s") else "-",
                 f"{r['percent_of_gemm_peak']:.1f}%" if r.get("percent_of_gemm_peak") is not None else "-"]
                for r in sorted(scaling, key=lambda r: (r["hidden"], r["median_s"]))]
        lines += _table(["Hidden width", "Implementation", "Batch", "Precision", "Step time",
                         "Samples/s", "vs eager", "GFLOP/s", "% of GEMM peak"], body)
        lines += [""]

    # Peer
    lines += [f"## Peer: {PEER}'s Adversarial_AE", ""]
    peer_rows = [r for r in training if r["impl"].startswith(PEER)]
    if peer_rows:
        lines += [f"{PEER} cases are in the training table above (implementation `{PEER}`)."]
    else:
        lines += [f"Not measured: {peer_note(machine)}. The issue asks for {PEER}'s "
                  "`Adversarial_AE` (PyPI `pythae`, extra `bench`) trained at the same layer sizes and "
                  "batch as aae_fast."]
    lines += [""]

    # Ops
    ops = [r for r in rows if r["kind"] == "op"]
    lines += ["## Op benchmarks", ""]
    if ops:
        lines += ["Each op against the eager composite a user writes (`eager`) and torch.compile of "
                  "it (`compiled-eager`), one table per benchmark (other suites' cases, such as "
                  "bench_accelerate.py's, too). Peak memory: per-call peak where the case measured "
                  "it (Parzen), else the RSS high-water growth (CPU) or CUDA max allocated.", ""]
        if plots.get("ops"):
            lines += [f"![Speed-up over eager of every op case, per benchmark]({plots['ops']})",
                      ""]
        by_test: dict[tuple, list[dict]] = {}
        for r in ops:
            by_test.setdefault((r.get("file", ""), r["test"]), []).append(r)
        for (file, test), test_rows in by_test.items():
            where = f" ({file})" if file else ""
            lines += [f"### {test.removeprefix('test_')}{where}", ""]
            body = [[r["group"], f"`{r['impl']}`", _ms(r["median_s"]),
                     (f"{_ms(r['p20_s'])} - {_ms(r['p80_s'])}" if r.get("p20_s") is not None else "-"),
                     _ratio(r.get("speedup_vs_eager")), _rate(r), _bytes(r.get("peak_memory_bytes"))]
                    for r in test_rows]
            lines += _table(["Group", "Implementation", "Median", "p20 - p80", "vs eager",
                             "Throughput", "Peak memory"], body)
            lines += [""]
    else:
        lines += ["No op case in this run.", ""]

    failed = results.get("failed") or []
    if failed:
        lines += ["## Failed cases", "", "These cases raised; they have no figure in this report.", ""]
        lines += _table(["Case", "Error"], [[f["case"], f["reason"][:300]] for f in failed])
        lines += [""]
    skipped = [s for s in results.get("skipped") or [] if s.get("reason") != _SKIP_NOISE]
    if skipped:
        lines += ["## Skipped cases", ""]
        lines += _table(["Case", "Reason"], [[s["case"], s["reason"]] for s in skipped])
        lines += [""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Files


def _outputs(json_path: Path) -> dict[str, Path]:
    stem = json_path.with_suffix("")
    return {
        "json": json_path,
        "markdown": json_path.with_suffix(".md"),
        "throughput": stem.parent / f"{stem.name}-throughput.png",
        "peak": stem.parent / f"{stem.name}-peak.png",
        "ops": stem.parent / f"{stem.name}-ops.png",
    }


def analyse(results: dict) -> dict:
    """Recomputes the summary and the targets from the raw pytest-benchmark figures."""
    results = dict(results)
    results["summary"] = summarise(results.get("pytest_benchmark") or {})
    results["targets"] = judge_targets(results["summary"], results.get("machine") or {})
    return results


def merge_results(paths: list[Path | str]) -> dict:
    """One results dict from several `aae-fast bench` files of the same machine and day, e.g. runs
    with different `-k` selections that had to fit separate time limits (the lent GPU's calls). The
    machine is the first file's; every case is kept once (a case measured twice: the later file
    wins); "select" lists each part's selection; summary and targets are recomputed."""
    if not paths:
        raise ValueError("merge_results: no results file given")
    parts = []
    for path in map(Path, paths):
        results = json.loads(path.read_text())
        if "pytest_benchmark" not in results:
            raise ValueError(f"{path}: not a results file of `aae-fast bench` (no pytest_benchmark)")
        parts.append((path, results))
    first_path, first = parts[0]
    machine = first.get("machine") or {}
    for path, results in parts[1:]:
        other = results.get("machine") or {}
        for key in ("device", "torch", "triton", "aae_fast"):
            if other.get(key) != machine.get(key):
                raise ValueError(
                    f"{path}: {key} {other.get(key)!r} differs from {first_path}'s "
                    f"{machine.get(key)!r}; only runs of one machine and software can be merged"
                )
    cases: dict[str, dict] = {}
    for _, results in parts:
        for case in results["pytest_benchmark"].get("benchmarks", []):
            cases[case.get("fullname") or case["name"]] = case
    names = {n for _, r in parts for n in ("skipped", "failed")}

    def entries(name: str) -> list:
        """A part's skipped / failed cases, once each, leaving out those another part measured."""
        seen, out = set(), []
        for _, r in parts:
            for item in r.get(name) or []:
                key = json.dumps(item, sort_keys=True, default=str)
                case = item.get("case") or item.get("name") if isinstance(item, dict) else item
                if key in seen or (name == "skipped" and case in cases):
                    continue
                seen.add(key)
                out.append(item)
        return out

    merged = {
        "machine": machine,
        "quick": any(r.get("quick") for _, r in parts),
        "select": [r.get("select") for _, r in parts],
        "wall_s": round(sum(r.get("wall_s") or 0.0 for _, r in parts), 1),
        **{n: entries(n) for n in sorted(names)},
        "pytest_benchmark": {**first["pytest_benchmark"], "benchmarks": list(cases.values())},
        "merged_from": [p.name for p, _ in parts],
    }
    return analyse(merged)


def build_report(json_path: Path | str, results: dict | None = None) -> dict[str, Path]:
    """Writes the Markdown report and the plots beside `json_path` (from `results`, or read
    from the file) and returns every output path by kind (json, markdown, throughput, peak, and ops
    where the run has op cases)."""
    json_path = Path(json_path)
    if results is None:
        results = json.loads(json_path.read_text())
    if "pytest_benchmark" not in results:
        raise ValueError(f"{json_path}: not a results file of `aae-fast bench` (no pytest_benchmark)")
    results = analyse(results)
    paths = _outputs(json_path)
    machine = results.get("machine") or {}
    title = (f"{machine.get('device', '?')} ({machine.get('cpu_model', '?')}), "
             f"{str(machine.get('date', '?'))[:10]}")
    if results.get("quick"):
        title += " (quick run)"
    rows = results.get("summary") or []
    plot_throughput(rows, paths["throughput"], title)
    plot_peak(rows, paths["peak"], title)
    plots = {"throughput": paths["throughput"].name, "peak": paths["peak"].name}
    if plot_ops(rows, paths["ops"], title) is None:
        paths.pop("ops").unlink(missing_ok=True)  # no op case: no plot (and no stale one)
    else:
        plots["ops"] = paths["ops"].name
    text = render_markdown(results, plots, source=json_path.name)
    paths["markdown"].write_text(text + "\n")
    return paths


def _skipped_from_junit(path: Path, kinds: tuple[str, ...] = ("skipped",)) -> list[dict]:
    """The cases of a JUnit XML file with a <skipped> (or another of `kinds`: failure, error)
    element, as {"case": "<file>.py::<name>", "reason": its message}."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return []
    out = []
    for case in root.iter("testcase"):
        for kind in kinds:
            element = case.find(kind)
            if element is not None:
                module = (case.get("classname") or "").rsplit(".", 1)[-1]
                out.append({"case": f"{module}.py::{case.get('name')}",
                            "reason": element.get("message") or ""})
                break
    return out


_RESULT = re.compile(r"^(\S+::\S+)\s+(PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)\b")
_COLLECTED = re.compile(r"collected (\d+) items?(?: / (\d+) deselected)?(?: / (\d+) selected)?")


def _run_with_progress(cmd: list[str], env: dict, log_path: Path, progress: bool) -> int:
    """Runs pytest -v, writing its output to log_path, and prints one progress line per case."""
    start = time.perf_counter()
    total = done = 0
    with open(log_path, "w") as log, subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1
    ) as proc:
        for line in proc.stdout:
            log.write(line)
            if not progress:
                continue
            if not total and (m := _COLLECTED.search(line)):
                total = int(m.group(3) or (int(m.group(1)) - int(m.group(2) or 0)))
                print(f"aae-fast bench: {total} cases", file=sys.stderr, flush=True)
            elif m := _RESULT.match(line):
                done += 1
                width = len(str(total or done))
                print(f"[{done:>{width}}/{total or '?'}] {time.perf_counter() - start:6.1f}s "
                      f"{m.group(2):7s} {m.group(1).split('/')[-1]}", file=sys.stderr, flush=True)
        return proc.wait()


def run_suite(
    suite: Path,
    out_dir: Path,
    select: str | None = None,
    extra_args=(),
    quick: bool = False,
    progress: bool = True,
) -> Path:
    """Runs pytest-benchmark on `suite` (quick: the smoke-sized selection) and writes
    out_dir/<device>-<date>[-quick].json with the Markdown report and the plots beside it;
    returns the JSON's path."""
    suite = Path(suite)
    out_dir = Path(out_dir)
    if not suite.is_dir():
        raise FileNotFoundError(
            f"benchmark suite not found at {suite}; pass --suite DIR (the repository's benchmarks/)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if quick:
        env[QUICK_ENV] = "1"
        env.setdefault("AAE_FAST_BENCH_PARZEN_N", str(QUICK_PARZEN_N))
    else:
        env.pop(QUICK_ENV, None)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        raw, junit, log = Path(tmp) / "raw.json", Path(tmp) / "junit.xml", Path(tmp) / "pytest.log"
        cmd = [
            sys.executable, "-m", "pytest", str(suite), "--benchmark-only", "-p", "no:cacheprovider",
            f"--benchmark-json={raw}", f"--junitxml={junit}", "-v", "--rootdir", str(suite),
            # pytest-benchmark's own storage (.benchmarks/ in the working directory) is not ours.
            f"--benchmark-storage=file://{Path(tmp) / 'storage'}",
            "-o", "python_files=bench_*.py test_*.py",  # also where no pytest config lies above SUITE
        ]
        if select:
            cmd += ["-k", select]
        cmd += list(extra_args)
        code = _run_with_progress(cmd, env, log, progress)
        if code != 0:
            print("".join(log.read_text().splitlines(keepends=True)[-40:]), file=sys.stderr)
        # Exit code 1 (some cases failed): the others' figures are still written, then it raises.
        skipped = _skipped_from_junit(junit)
        failed = _skipped_from_junit(junit, ("failure", "error"))
        if code in (0, 1) and (not raw.exists() or not raw.read_text().strip()):
            # pytest-benchmark leaves no JSON when no case was timed: say why instead of a
            # JSONDecodeError.
            reasons = "; ".join(f"{c['case']}: {c['reason'][:200]}" for c in (failed + skipped)[:5])
            raise RuntimeError(
                f"no benchmark case was timed ({len(skipped)} skipped, {len(failed)} failed)"
                + (f": {reasons}" if reasons else "")
            )
        if code not in (0, 1) or not raw.exists():
            raise RuntimeError(f"benchmark run failed (pytest exit code {code})")
        report = json.loads(raw.read_text())
    machine = machine_info()
    results = analyse({
        "machine": machine,
        "quick": quick,
        "select": select,
        "wall_s": round(time.perf_counter() - started, 1),
        "skipped": skipped,
        "failed": failed,
        "pytest_benchmark": report,
    })
    device = re.sub(r"[^A-Za-z0-9]+", "-", machine["device"]).strip("-").lower()
    path = out_dir / f"{device}-{machine['date'][:10]}{'-quick' if quick else ''}.json"
    ordered = {k: results[k] for k in ("machine", "quick", "select", "wall_s", "summary", "targets",
                                        "skipped", "failed", "pytest_benchmark")}
    path.write_text(json.dumps(ordered, indent=1))
    paths = build_report(path, results)
    print(format_summary(results["summary"]))
    print("\nwrote " + ", ".join(str(p) for p in paths.values()))
    if failed or code != 0:
        names = ", ".join(f["case"] for f in failed) or f"pytest exit code {code}"
        raise RuntimeError(f"{len(failed)} benchmark case(s) failed ({names}); the others' figures "
                           f"are in {path}")
    return path
