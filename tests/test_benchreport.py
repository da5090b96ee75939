"""The benchmark report builder (aae_fast.benchreport) on synthetic pytest-benchmark results: no
benchmark runs here. Case names, summary ratios, the targets of the fast-training issue (met,
missed, not measured), the Markdown tables, the plots, `aae-fast bench --report-only`, the progress
reader and benchmarks/conftest.py's quick selection."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from aae_fast import benchreport as br
from aae_fast.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MACHINE = {
    "date": "2026-11-25T21:05:13+00:00", "device": "cpu", "cpu_model": "Test CPU", "cpu_cores": 2,
    "torch_threads": 2, "python": "3.11.7", "torch": "2.13.0+cpu", "triton": "3.8.0",
    "aae_fast": "0.1.0", "cuda": None,
    "peers": {"pythae": {"installed": False, "version": None, "error": "ModuleNotFoundError: pythae"}},
}
PEAK = {"fp32": 50.0, "bf16": 100.0}  # GFLOP/s
FLOPS = {"aae": 45_232_000, "ssaae": 70_864_000}


def bench(name, median, group=None, params=None, extra=None, data=None, file="bench_x.py"):
    """One pytest-benchmark entry, as its JSON holds it."""
    entry = {"name": name, "fullname": f"{file}::{name}", "group": group, "extra_info": extra or {},
             "stats": {"median": median, "rounds": len(data or [1]), "data": data or []}}
    if params is not None:
        entry["params"] = params
    return entry


def train(impl, model, batch, precision, median, device="cpu", params=True, percent=None):
    """A test_training_step case with the extra_info bench_training records."""
    flops = FLOPS.get(model, 10_000_000)
    gflops = flops * batch / median / 1e9
    extra = {"device": device, "impl": impl, "model": model, "batch": batch, "precision": precision,
             "schedule": "naive" if impl == "naive" else "best", "flops_per_sample": flops,
             "samples_per_s": batch / median, "gflops_per_s": gflops,
             "gemm_peak_gflops": PEAK[precision],
             "percent_of_gemm_peak": percent if percent is not None else 100 * gflops / PEAK[precision]}
    return bench(
        f"test_training_step[{impl}-{model}-b{batch}-{precision}]", median,
        group=f"training_step {model} B={batch} {precision}",
        params={"impl": impl, "model_name": model, "batch": batch, "precision": precision} if params else None,
        extra=extra, file="bench_training.py",
    )


def op(impl, mode, batch, median, memory=None):
    extra = {"device": "cpu", "elements_per_s": 2 * batch / median, "bytes_per_s": 8 * batch / median}
    if memory is not None:
        extra["peak_rss_growth_bytes"] = memory
    return bench(f"test_adversarial_d_loss[{impl}-{mode}-{batch}]", median,
                 group=f"adversarial_d_loss {mode} B={batch}", params={"impl": impl, "mode": mode, "batch": batch},
                 extra=extra, data=[median * f for f in (0.9, 1.0, 1.0, 1.1, 1.3)], file="bench_losses.py")


def cpu_report():
    """A CPU run: aae complete enough to judge every CPU target, ssaae only at batch 100."""
    return {"benchmarks": [
        # aae fp32 B=100: fused 1.8x eager (met), ahead of compile (met)
        train("eager", "aae", 100, "fp32", 0.018), train("naive", "aae", 100, "fp32", 0.024),
        train("compile", "aae", 100, "fp32", 0.015), train("fused", "aae", 100, "fp32", 0.010),
        # aae fp32 B=1000: fused 1.04x eager (missed), compile did not run (not measured)
        train("eager", "aae", 1000, "fp32", 0.104), train("fused", "aae", 1000, "fp32", 0.100),
        # aae bf16 B=1000: 1.6x (met); B=4096: 45% of the bf16 peak (missed)
        train("eager", "aae", 1000, "bf16", 0.080), train("fused", "aae", 1000, "bf16", 0.050),
        train("eager", "aae", 4096, "bf16", 0.400), train("fused", "aae", 4096, "bf16", 0.300, percent=45.0),
        # ssaae fp32 B=100: fused_compile 1.6x (met) while fused alone is 1.2x; old-style names
        train("eager", "ssaae", 100, "fp32", 0.048, params=False),
        train("fused", "ssaae", 100, "fp32", 0.040, params=False),
        train("fused_compile", "ssaae", 100, "fp32", 0.030, params=False),
        train("compile", "ssaae", 100, "fp32", 0.025, params=False),  # compile ahead: missed
        bench("test_gemm_peak[gemm-peak-fp32]", 0.3, group="gemm peak", params={"precision": "fp32"},
              extra={"device": "cpu", "gflops_per_s": 50.0, "gemm_peak_gflops": 50.0}, file="bench_training.py"),
        op("fused", "fwd", 100, 2e-6, memory=0), op("eager", "fwd", 100, 6e-6, memory=4096),
        op("compiled-eager", "fwd", 100, 3e-6),
    ]}


def by_case(targets):
    return {(t["device"], t["target"].split(":")[0], t["case"]): t for t in targets}


def find(targets, device, prefix, case):
    hits = [t for t in targets if t["device"] == device and t["target"].startswith(prefix) and t["case"] == case]
    assert len(hits) == 1, (device, prefix, case, targets)
    return hits[0]


# ------------------------------------------------------------------------------------------------
# Case names and the summary


@pytest.mark.parametrize("name, params, impl", [
    ("test_linear_act[compiled-eager-fwd+bwd-100-1000-1000-relu]", None, "compiled-eager"),
    ("test_linear_act[fused-fwd-100-784-1000-relu]", None, "fused"),
    ("test_parzen_log_likelihood[eager]", None, "eager"),
    ("test_gaussian_sample[fused-2]", {"impl": "fused", "dim": 2}, "fused"),
    ("test_user_aae_step[accelerated_compile-100]", {"impl": "accelerated_compile", "batch": 100},
     "accelerated_compile"),
])
def test_case_info_ops(name, params, impl):
    info = br.case_info(bench(name, 1.0, group="g", params=params))
    assert info["kind"] == "op" and info["impl"] == impl


@pytest.mark.parametrize("with_params", [True, False])
def test_case_info_training(with_params):
    entry = train("fused_compile", "ssaae", 4096, "bf16", 1.0, params=with_params)
    if not with_params:
        entry["extra_info"] = {}  # only the id is left to read
    info = br.case_info(entry)
    assert (info["kind"], info["impl"], info["model"], info["batch"], info["precision"]) == (
        "training", "fused_compile", "ssaae", 4096, "bf16")
    assert info["group"] == "training_step ssaae B=4096 bf16"
    gemm = br.case_info(bench("test_gemm_peak[gemm-peak-bf16]", 1.0, group="gemm peak"))
    assert (gemm["kind"], gemm["precision"]) == ("gemm_peak", "bf16")


def test_summary_ratios():
    rows = br.summarise(cpu_report())
    get = {(r["group"], r["impl"]): r for r in rows}
    assert get[("training_step aae B=100 fp32", "fused")]["speedup_vs_eager"] == pytest.approx(1.8)
    assert get[("training_step aae B=100 fp32", "naive")]["speedup_vs_eager"] == pytest.approx(0.75)
    assert get[("training_step aae B=100 fp32", "eager")]["speedup_vs_eager"] == pytest.approx(1.0)
    assert get[("training_step ssaae B=100 fp32", "fused_compile")]["speedup_vs_eager"] == pytest.approx(1.6)
    assert get[("adversarial_d_loss fwd B=100", "fused")]["speedup_vs_eager"] == pytest.approx(3.0)
    assert get[("adversarial_d_loss fwd B=100", "compiled-eager")]["speedup_vs_eager"] == pytest.approx(2.0)
    assert get[("gemm peak", "torch.mm")]["speedup_vs_eager"] is None  # no eager in that group
    # p20/p80 from the recorded rounds; peak memory carried over
    row = get[("adversarial_d_loss fwd B=100", "eager")]
    assert row["p20_s"] < row["median_s"] < row["p80_s"]
    assert row["peak_memory_bytes"] == 4096
    # training first (aae before ssaae), then the GEMM peak, then ops; fastest first in a group
    kinds = [r["kind"] for r in rows]
    assert kinds == sorted(kinds, key=["training", "gemm_peak", "op"].index)
    aae100 = [r["impl"] for r in rows if r["group"] == "training_step aae B=100 fp32"]
    assert aae100 == ["fused", "compile", "eager", "naive"]
    assert br.summarise({}) == [] and "group" in br.format_summary(rows)


# ------------------------------------------------------------------------------------------------
# Targets


def test_targets_cpu_run():
    targets = br.judge_targets(br.summarise(cpu_report()), MACHINE)
    t = find(targets, "cpu", "fp32, batch 100", "aae B=100 fp32")
    assert t["status"] == "met" and t["measured"].startswith("1.80x (fused vs eager)")
    t = find(targets, "cpu", "fp32, batch 1000", "aae B=1000 fp32")
    assert t["status"] == "missed" and t["measured"].startswith("1.04x")
    t = find(targets, "cpu", "fp32: ahead of torch.compile", "aae B=100 fp32")
    assert t["status"] == "met" and "1.50x (fused vs compile)" in t["measured"]
    t = find(targets, "cpu", "fp32: ahead of torch.compile", "aae B=1000 fp32")
    assert t["status"] == "not measured" and "compile" in t["note"]
    t = find(targets, "cpu", "bf16 autocast, batch 1000", "aae B=1000 bf16")
    assert t["status"] == "met" and t["measured"].startswith("1.60x")
    t = find(targets, "cpu", "bf16, batch 4096", "aae B=4096 bf16")
    assert t["status"] == "missed" and t["measured"].startswith("45.0%")
    # ssaae: the fastest aae_fast implementation is judged, plain fused reported beside it
    t = find(targets, "cpu", "fp32, batch 100", "ssaae B=100 fp32")
    assert t["status"] == "met" and "1.60x (fused_compile vs eager)" in t["measured"]
    assert "fused alone 1.20x" in t["measured"]
    t = find(targets, "cpu", "fp32: ahead of torch.compile", "ssaae B=100 fp32")
    assert t["status"] == "missed" and t["measured"].startswith("0.83x")
    for prefix, case in (("fp32, batch 1000", "ssaae B=1000 fp32"), ("bf16, batch 4096", "ssaae B=4096 bf16")):
        t = find(targets, "cpu", prefix, case)
        assert t["status"] == "not measured" and t["note"]
    gpu = [t for t in targets if t["device"] == "gpu"]
    assert len(gpu) == 3 and all(
        t["status"] == "not measured" and t["note"] == "no GPU in this run" for t in gpu)
    (peer,) = [t for t in targets if "pythae" in t["target"]]
    assert peer["status"] == "not measured" and "not installed" in peer["note"]


def test_targets_gpu_run_and_peer():
    report = {"benchmarks": [
        train("eager", "aae", 100, "fp32", 0.010, device="cuda:0"),
        train("fused", "aae", 100, "fp32", 0.0008, device="cuda:0"),  # 12.5x: met
        train("compile", "aae", 100, "fp32", 0.002, device="cuda:0"),  # 2.5x: met
        train("compile_step", "aae", 100, "fp32", 0.0011, device="cuda:0"),  # best mode: 1.375x: missed
        train("fused", "aae", 8192, "bf16", 0.05, device="cuda:0", percent=72.0),  # met
        train("pythae", "aae", 100, "fp32", 0.004, device="cuda:0"),
    ]}
    targets = br.judge_targets(br.summarise(report), {"device": "NVIDIA H100"})
    assert all(t["status"] == "not measured" for t in targets if t["device"] == "cpu")
    assert find(targets, "gpu", "batch 100:", "aae B=100 fp32")["status"] == "met"
    t = find(targets, "gpu", "batch 100 to 8192", "aae B=100 fp32")
    assert t["status"] == "missed" and "compile_step" in t["measured"]
    assert find(targets, "gpu", "batch 100 to 8192", "aae B=8192 bf16")["status"] == "not measured"
    assert find(targets, "gpu", "bf16, batch 8192", "aae B=8192 bf16")["status"] == "met"
    peer = find(targets, "any", "faster than pythae", "aae B=100 fp32")
    assert peer["status"] == "met" and peer["measured"].startswith("5.00x")


def test_targets_without_training_cases():
    targets = br.judge_targets(br.summarise({"benchmarks": [op("fused", "fwd", 100, 1e-6)]}), MACHINE)
    assert targets and all(t["status"] == "not measured" for t in targets)


# ------------------------------------------------------------------------------------------------
# Report files


def _results(report, quick=False):
    return {"machine": MACHINE, "quick": quick, "skipped": [
        {"case": "bench_training.py::test_training_step[compile_step-aae-b100-fp32]",
         "reason": "compile_step failed on cpu: RuntimeError: backward twice"},
        {"case": "bench_training.py::test_step_flops_paper_model",
         "reason": "Skipping non-benchmark (--benchmark-only active)."}],
        "pytest_benchmark": report}


def _assert_png(path: Path):
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_build_report_writes_markdown_and_plots(tmp_path):
    path = tmp_path / "cpu-2026-11-25.json"
    path.write_text(json.dumps(_results(cpu_report())))
    paths = br.build_report(path)
    assert paths["markdown"] == tmp_path / "cpu-2026-11-25.md"
    _assert_png(tmp_path / "cpu-2026-11-25-throughput.png")
    _assert_png(tmp_path / "cpu-2026-11-25-peak.png")
    md = paths["markdown"].read_text()
    for text in ("# aae_fast benchmarks: cpu, 2026-11-25", "Test CPU, 2 cores", "torch 2.13.0+cpu",
                 "## Training throughput", "## Targets of the fast-training issue",
                 "## Peer: pythae's Adversarial_AE", "## Op benchmarks", "## Skipped cases",
                 "![Training throughput against batch size](cpu-2026-11-25-throughput.png)",
                 "GEMM peak measured in this run: fp32 50.0 GFLOP/s"):
        assert text in md, text
    assert "Skipping non-benchmark" not in md and "backward twice" in md
    # training row: aae fused at batch 100: 10 ms, 10000 samples/s, 1.80x, 45.232 MFLOP/sample
    line = next(ln for ln in md.splitlines() if ln.startswith("| aae | fp32 | 100 | `fused` |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[4:8] == ["10.000 ms", "10000", "1.80x", "452.3"]
    assert cells[9].startswith("45.232 (best)")
    # op row: the fused d-loss at 3.00x eager; eager's peak memory
    assert any(ln.startswith("| adversarial_d_loss fwd B=100 | `fused` | 2.0 µs") and "| 3.00x |" in ln
               for ln in md.splitlines())
    assert "| adversarial_d_loss fwd B=100 | `eager` | 6.0 µs" in md and "4.0 KiB" in md
    # targets: one of each status, the measured ratio printed
    assert "| CPU | fp32, batch 100: >= 1.5x the eager reference | aae B=100 fp32 | 1.80x (fused vs eager)" in md
    assert "**missed**" in md and "not measured (no GPU in this run)" in md
    assert "Not measured: pythae is not installed" in md


def test_ops_plot_shows_each_op_case_against_eager(tmp_path):
    path = tmp_path / "cpu-2026-11-25.json"
    path.write_text(json.dumps(_results(cpu_report())))
    paths = br.build_report(path)
    _assert_png(paths["ops"])
    assert paths["ops"] == tmp_path / "cpu-2026-11-25-ops.png"
    md = paths["markdown"].read_text()
    ops_section = md[md.index("## Op benchmarks"):]
    assert "(cpu-2026-11-25-ops.png)" in ops_section.split("###")[0]  # above the op tables
    # A run without op cases: no ops plot, and a rebuilt report drops a stale one.
    report = cpu_report()
    report["benchmarks"] = [b for b in report["benchmarks"] if "test_training_step" in b["name"]]
    path.write_text(json.dumps(_results(report)))
    paths = br.build_report(path)
    assert "ops" not in paths and not (tmp_path / "cpu-2026-11-25-ops.png").exists()
    assert "-ops.png" not in paths["markdown"].read_text()


@pytest.mark.parametrize("report", [
    {"benchmarks": []},
    {"benchmarks": [op("fused", "fwd", 100, 1e-6)]},  # ops only: no training group
    {"benchmarks": [train("fused", "aae", 100, "fp32", 0.01)]},  # no eager baseline
])
def test_build_report_robust_to_missing_groups(tmp_path, report):
    path = tmp_path / "cpu-2026-11-25-quick.json"
    path.write_text(json.dumps(_results(report, quick=True)))
    paths = br.build_report(path)
    _assert_png(paths["throughput"])
    _assert_png(paths["peak"])
    md = paths["markdown"].read_text()
    assert "Quick run" in md and "## Targets of the fast-training issue" in md


def test_cli_report_only(tmp_path, capsys):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(_results(cpu_report())))
    assert main(["bench", "--report-only", str(path)]) == 0
    assert (tmp_path / "run.md").is_file() and "wrote" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no such file"):
        main(["bench", "--report-only", str(tmp_path / "missing.json")])
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(SystemExit, match="not a results file"):
        main(["bench", "--report-only", str(tmp_path / "other.json")])


def width(impl, hidden, median, batch=100):
    """A test_width_scaling case as bench_training records it."""
    flops = 45_232_000 * (hidden / 1000) ** 2
    return bench(f"test_width_scaling[{impl}-h{hidden}]", median,
                 group=f"width_scaling aae B={batch} fp32 hidden={hidden}",
                 params={"impl": impl, "hidden": hidden},
                 extra={"device": "cpu", "impl": impl, "model": "aae", "batch": batch, "precision": "fp32",
                        "hidden": hidden, "flops_per_sample": flops, "samples_per_s": batch / median,
                        "gflops_per_s": flops * batch / median / 1e9, "gemm_peak_gflops": 50.0,
                        "percent_of_gemm_peak": 100 * flops * batch / median / 1e9 / 50.0},
                 file="bench_training.py")


def test_width_scaling_rows_table_and_panel(tmp_path):
    report = cpu_report()
    report["benchmarks"] += [width("eager", 1000, 0.02), width("fused", 1000, 0.018),
                             width("eager", 4000, 0.30), width("fused", 4000, 0.25)]
    rows = br.summarise(report)
    scaling = [r for r in rows if r["kind"] == "scaling"]
    assert [(r["hidden"], r["impl"]) for r in scaling] == [(1000, "fused"), (1000, "eager"),
                                                          (4000, "fused"), (4000, "eager")]
    assert scaling[2]["speedup_vs_eager"] == pytest.approx(1.2)
    # not a training case: the targets of the paper's model ignore it
    assert all("hidden" not in t["case"] for t in br.judge_targets(rows, MACHINE))
    path = tmp_path / "run.json"
    path.write_text(json.dumps(_results(report)))
    paths = br.build_report(path)
    text = paths["markdown"].read_text()
    assert "## Scaling with the hidden width" in text and "| 4000 | `fused` | 100 | fp32 |" in text
    _assert_png(paths["throughput"])


def test_the_printed_gemm_peak_is_the_one_the_percentages_use(tmp_path):
    """The training rows divide by their own GEMM-peak measurement; the header must print that
    one, not the separate GEMM-peak case's median."""
    report = cpu_report()
    for case in report["benchmarks"]:
        if case["name"] == "test_gemm_peak[gemm-peak-fp32]":
            case["extra_info"]["gflops_per_s"] = 40.0  # another measurement of the same peak
    path = tmp_path / "cpu-2026-11-25.json"
    path.write_text(json.dumps(_results(report)))
    md = br.build_report(path)["markdown"].read_text()
    assert f"GEMM peak measured in this run: fp32 {PEAK['fp32']:.1f} GFLOP/s" in md
    assert "40.0 GFLOP/s" not in md


def test_merge_runs_of_one_machine(tmp_path, capsys):
    """Two runs with different -k selections (the lent GPU's calls): one file, every case once
    (the later file's figure where both measured it), targets judged over both."""
    first = _results({"benchmarks": [train("eager", "aae", 100, "fp32", 0.018),
                                     train("fused", "aae", 100, "fp32", 0.020)]})
    first["select"], first["wall_s"] = "not compile", 10.0
    second = _results({"benchmarks": [train("fused", "aae", 100, "fp32", 0.010),
                                      train("compile", "aae", 100, "fp32", 0.015)]})
    second["select"], second["wall_s"] = "compile", 5.0
    a, b = tmp_path / "a" / "run.json", tmp_path / "b.json"
    a.parent.mkdir()
    a.write_text(json.dumps(first))
    b.write_text(json.dumps(second))

    merged = br.merge_results([a, b])
    names = sorted(c["name"] for c in merged["pytest_benchmark"]["benchmarks"])
    assert names == [f"test_training_step[{i}-aae-b100-fp32]" for i in ("compile", "eager", "fused")]
    fused = next(r for r in merged["summary"] if r["impl"] == "fused")
    assert fused["median_s"] == 0.010
    assert merged["select"] == ["not compile", "compile"] and merged["wall_s"] == 15.0
    assert merged["merged_from"] == ["run.json", "b.json"]
    # Both parts skipped the same cases: each is listed once.
    assert [x["case"] for x in merged["skipped"]] == [x["case"] for x in first["skipped"]]
    ahead = [t for t in merged["targets"] if t["case"] == "aae B=100 fp32" and "compile" in t["target"]]
    assert ahead and ahead[0]["status"] == "met"  # fused 10 ms against compile 15 ms

    out = tmp_path / "out"
    assert main(["bench", "--merge", str(a), str(b), "--out", str(out)]) == 0
    assert json.loads((out / "run.json").read_text())["merged_from"] == ["run.json", "b.json"]
    assert (out / "run.md").is_file() and "wrote" in capsys.readouterr().out

    with pytest.raises(SystemExit, match="--merge needs --out"):
        main(["bench", "--merge", str(a)])
    with pytest.raises(SystemExit, match="no such file"):
        main(["bench", "--merge", str(a), str(tmp_path / "missing.json"), "--out", str(out)])
    second["machine"] = {**second["machine"], "torch": "2.11.0"}
    b.write_text(json.dumps(second))
    with pytest.raises(SystemExit, match="torch '2.11.0' differs from .*'2.13.0\\+cpu'"):
        main(["bench", "--merge", str(a), str(b), "--out", str(out)])


# ------------------------------------------------------------------------------------------------
# The runner's helpers


def test_progress_reader_and_junit(tmp_path, capsys):
    script = ("print('collected 5 items / 3 deselected / 2 selected'); "
              "print('bench_a.py::test_a[fused-1] PASSED [ 50%]'); "
              "print('bench_a.py::test_a[eager-1] SKIPPED (why) [100%]')")
    log = tmp_path / "log.txt"
    assert br._run_with_progress([sys.executable, "-c", script], {}, log, progress=True) == 0
    err = capsys.readouterr().err
    assert "2 cases" in err and "[1/2]" in err and "[2/2]" in err and "SKIPPED" in err
    assert "collected" in log.read_text()
    junit = tmp_path / "junit.xml"
    junit.write_text('<testsuites><testsuite><testcase classname="benchmarks.bench_training" '
                     'name="test_training_step[compile_step-aae-b100-fp32]"><skipped message="no">'
                     '</skipped></testcase><testcase classname="x" name="ok"/></testsuite></testsuites>')
    assert br._skipped_from_junit(junit) == [
        {"case": "bench_training.py::test_training_step[compile_step-aae-b100-fp32]", "reason": "no"}]
    assert br._skipped_from_junit(tmp_path / "absent.xml") == []
    junit.write_text('<testsuite><testcase classname="benchmarks.bench_a" name="t"><failure message="boom"/>'
                     '</testcase></testsuite>')
    assert br._skipped_from_junit(junit) == []
    assert br._skipped_from_junit(junit, ("failure", "error")) == [{"case": "bench_a.py::t", "reason": "boom"}]


def _bench_conftest():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_aae_fast_bench_conftest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("params, kept", [
    ({"impl": "eager", "model_name": "aae", "batch": 100, "precision": "fp32"}, True),
    ({"impl": "fused", "model_name": "aae", "batch": 1000, "precision": "fp32"}, False),
    ({"impl": "fused", "model_name": "aae", "batch": 100, "precision": "bf16"}, False),
    ({"impl": "compile", "model_name": "aae", "batch": 100, "precision": "fp32"}, False),
    ({"impl": "compiled-eager", "mode": "fwd", "batch": 100}, False),
    ({"impl": "fused", "mode": "fwd", "batch": 100, "layer": (1000, 1000), "activation": "relu"}, True),
    ({"impl": "fused", "mode": "fwd", "batch": 100, "layer": (784, 1000), "activation": "relu"}, False),
    ({"impl": "fused", "mode": "fwd", "batch": 100, "layer": (1000, 1000), "activation": "tanh"}, False),
    ({"impl": "fused", "mode": "bwd", "shape": (100, 8)}, True),
    ({"impl": "fused", "mode": "bwd", "shape": (1000, 1000)}, False),
    ({"impl": "fused", "hidden": 2000}, True),
    ({"impl": "fused", "hidden": 4000}, False),
    ({"precision": "fp32"}, True),  # gemm peak
    ({}, True),
])
def test_quick_selection(params, kept):
    assert _bench_conftest().quick_keeps(params) is kept


def _tiny_suite(tmp_path: Path) -> Path:
    """A benchmark suite of two timed cases, a failing one and a skipped one."""
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "bench_tiny.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.parametrize('impl', ['fused', 'eager'])\n"
        "def test_tiny(benchmark, impl):\n"
        "    benchmark.group = 'tiny op'\n"
        "    n = 10 if impl == 'fused' else 10_000\n"
        "    benchmark.pedantic(lambda: sum(range(n)), rounds=3, iterations=1)\n\n"
        "def test_broken(benchmark):\n"
        "    raise ValueError('broken on purpose')\n\n"
        "def test_skipped(benchmark):\n"
        "    pytest.skip('not on this machine')\n"
    )
    return suite


def test_run_suite_end_to_end_with_a_failing_case(tmp_path, capsys):
    """run_suite on a tiny suite (pytest-benchmark in a child process, about a second): the figures
    of the cases that ran are written with the report and plots, then the failure is raised."""
    suite = _tiny_suite(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match=r"1 benchmark case\(s\) failed .*test_broken"):
        br.run_suite(suite, out, progress=True)
    assert "[4/4]" in capsys.readouterr().err
    (path,) = out.glob("*.json")
    results = json.loads(path.read_text())
    assert {r["impl"] for r in results["summary"]} == {"fused", "eager"}
    assert results["machine"]["cpu_cores"] and results["quick"] is False
    md = path.with_suffix(".md").read_text()
    assert "## Failed cases" in md and "broken on purpose" in md and "not on this machine" in md
    assert "| tiny op | `fused` |" in md
    _assert_png(Path(f"{path.with_suffix('')}-throughput.png"))
    _assert_png(Path(f"{path.with_suffix('')}-peak.png"))


def test_run_suite_says_why_when_no_case_was_timed(tmp_path):
    """Every selected case skipped (e.g. torch.compile failing on the machine): a RuntimeError that
    names the skipped cases and their reasons, no report written."""
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match=r"no benchmark case was timed \(1 skipped, 0 failed\).*not on this machine"):
        br.run_suite(_tiny_suite(tmp_path), out, select="test_skipped", progress=False)
    assert not out.exists() or not list(out.glob("*.json"))
