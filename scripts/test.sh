#!/usr/bin/env bash
# The whole test suite, as CI runs it (`make test` calls this after setup):
#   1. the C++ library and test binary against libtorch (CMake), run by ctest;
#   2. nvcc compile checks of every CUDA kernel for sm_80 and sm_90 (skipped without nvcc);
#   3. pytest over tests/ (Triton kernels under TRITON_INTERPRET=1 when there is no GPU);
#   4. every benchmark run once as a smoke test (--benchmark-disable), so the suite cannot rot;
#   5. `aae-fast bench --quick` end to end (timed smoke run, about a minute on 2 CPU cores): it must
#      write a valid results JSON, the Markdown report and both plots (numbers are not checked).
# Any failure fails the run; pytest fails when it collects no test.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
JOBS=${JOBS:-$(nproc)}
step() { printf '\n== %s\n' "$*"; }

step "C++ tests (CMake + ctest)"
TORCH_PREFIX=$("$PYTHON" -c 'import torch; print(torch.utils.cmake_prefix_path)')
cmake -S . -B build/cmake -G Ninja -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" -DPython3_EXECUTABLE="$(command -v "$PYTHON")" >/dev/null
cmake --build build/cmake -j "$JOBS"
ctest --test-dir build/cmake --output-on-failure

step "CUDA compile checks (nvcc, sm_80 and sm_90)"
bash scripts/check_cuda.sh

step "pytest"
if ! "$PYTHON" -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  export TRITON_INTERPRET=1
fi
"$PYTHON" -m pytest tests -q -p no:cacheprovider

step "benchmarks (smoke: each case once, untimed)"
"$PYTHON" -m pytest benchmarks -q -p no:cacheprovider --benchmark-disable

step "aae-fast bench --quick (smoke: the command writes a valid JSON, the report and the plots)"
BENCH_OUT=$(mktemp -d)
trap 'rm -rf "$BENCH_OUT"' EXIT
# The console script beside $PYTHON (what users run); `python -m aae_fast.cli` where there is none.
AAE_FAST="$(dirname "$(command -v "$PYTHON")")/aae-fast"
if [[ -x "$AAE_FAST" ]]; then BENCH=("$AAE_FAST"); else BENCH=("$PYTHON" -m aae_fast.cli); fi
"${BENCH[@]}" bench --quick --out "$BENCH_OUT"
"$PYTHON" - "$BENCH_OUT" <<'PY'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
(path,) = out.glob("*-quick.json")
results = json.loads(path.read_text())
assert results["pytest_benchmark"]["benchmarks"], "no benchmark was timed"
assert results["machine"]["device"] and results["targets"], "machine or targets missing"
stem = path.with_suffix("")
for extra in (path.with_suffix(".md"), Path(f"{stem}-throughput.png"), Path(f"{stem}-peak.png")):
    assert extra.is_file() and extra.stat().st_size > 0, f"{extra} missing"
print(f"{path.name}: {len(results['pytest_benchmark']['benchmarks'])} cases, valid JSON, report and plots written")
PY
