#!/usr/bin/env bash
# One call on a lent GPU machine (CUDA torch already installed there, nothing downloadable):
#   0. beside the build (which takes minutes of the lease), the tests that need no extension: the
#      Triton kernels compiled, and the fused models and CUDA-graph Trainer with Triton serving
#      CUDA (AAE_FAST_DISABLE_EXT=1, from a symlinked view of the source tree);
#   1. build the extension with CUDA for the card at hand (pip install -e, MAX_JOBS = cores), then
#      scripts/probe_ext_errors.sh beside stage 2 (on the 2026-11-26 image an error raised in _C was a SIGSEGV);
#   2. the GPU tests, most valuable first (the fused models on CUDA, the CUDA-graph Trainer, the
#      Triton kernels compiled, then every op test whose id holds "cuda"); pytest-timeout's
#      --session-timeout ends the session in time to print the failures (an outer `timeout` kill
#      would lose them: the 2026-11-26 run lost its report that way);
#   3. `aae-fast bench -k "$BENCH_K"` (default: every case but the torch.compile ones, which
#      cost tens of seconds each), results under $OUT/bench;
#   4. where BENCH2_K is set, a second `aae-fast bench -k "$BENCH2_K"` (the torch.compile cases
#      that fit), its JSON alone under $OUT/bench2 (merge them here with
#      `aae-fast bench --merge bench/X.json bench2/X.json --out benchmarks/results`).
# Each stage has its own time limit, so a hang in one still leaves the others' logs in $OUT.
#   OUT=/tmp/gpu bash scripts/gpu_check.sh            STAGES="tests bench" BENCH_K="..." to choose
#   (STAGES may add "profile": scripts/profile_step.py of the fused and eager step at PROFILE_BATCH,
#   default 100, after the tests: kernels per step and their summed device time)
#   (also TRITON_TESTS / TRITON_K and GPU_TESTS / TEST_K: the test paths and -k of stages 0 and 2;
#   TRITON_TIMEOUT / TEST_TIMEOUT / BENCH_TIMEOUT / BENCH2_TIMEOUT: each stage's session limit in s;
#   TRITON_TEST_LIMIT / TEST_LIMIT: the per-test limits)
# $OUT gets run logs (pytest.log, triton.log, probe.log, bench.log, bench2.log, profile-*.txt;
# build.log on failure; packed into logs.tar.gz when more than 7 files: the tool returns 8) and the
# results JSON alone in bench/ and bench2/ (rebuild their reports here with `aae-fast bench
# --report-only`: $OUT returns a limited number of files). Each pytest stage's own
# --session-timeout ends it before the outer `timeout`, so its report (and the bench JSON) is
# written even when the stage runs out of time. Pipe the whole run through `tee $OUT/run.log`:
# the tool's output tail is 12,000 characters.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
STAGES=${STAGES:-"triton build probe tests bench"}
PYTHON=${PYTHON:-python3}
BENCH_K=${BENCH_K:-"not compile and not compiled"}
TEST_WORKERS=${TEST_WORKERS:-8}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
stage() { printf '\n== %s (t=%ss)\n' "$*" "$SECONDS"; }
run_bench() {  # -k ($1), limit in s ($2), name of the results folder and log ($3)
  # pytest's own --session-timeout (in the benchmark child) stops 60 s before the outer limit, so
  # the JSON of the cases that ran is still written; the report and plots are left out of $OUT.
  local addopts=${PYTEST_ADDOPTS:-}
  [[ "$PYTEST_HELP" == *--session-timeout* ]] && addopts+=" --session-timeout $(($2 > 90 ? $2 - 60 : $2 * 2 / 3))"
  PYTEST_ADDOPTS="$addopts" timeout "$2" "$PYTHON" -m aae_fast.cli bench -k "$1" --out "$OUT/$3" \
    >"$OUT/$3.log" 2>&1
  echo "$3 exit $?"
  find "$OUT/$3" -type f ! -name "*.json" -delete 2>/dev/null
}
has() { [[ " $STAGES " == *" $1 "* ]]; }
pack_logs() {
  # The device tool returns at most 8 files from $OUT (the third 2026-11-26 lease lost its first
  # benchmark JSON that way): past 7, every file but the JSON results and run.log (still
  # open: `tee`) goes into one logs.tar.gz (tar -xzf it here).
  if (( $(find "$OUT" -type f | wc -l) > 7 )); then
    (cd "$OUT" && find . -type f ! -name "*.json" ! -name run.log ! -name logs.tar.gz -print0 |
       tar --null -czf logs.tar.gz -T - --remove-files)
    echo "logs packed into $OUT/logs.tar.gz"
  fi
}

stage "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
"$PYTHON" -c 'import sys, torch, triton, setuptools; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "triton", triton.__version__, "setuptools", setuptools.__version__)'
if ! "$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "torch sees no CUDA device: nothing here needs this machine; stopping"
  exit 1
fi
"$PYTHON" -c 'import torch; print(torch.cuda.get_device_name())'

PYTEST_HELP=$("$PYTHON" -m pytest --help 2>/dev/null)
pytest_opts() {  # workers ($1), limits (session: $2 s; per test: $3 s, default 60) from the plugins
  opts=()
  [[ "$PYTEST_HELP" == *--numprocesses* ]] && opts+=(-n "$1")
  [[ "$PYTEST_HELP" == *--timeout=* || "$PYTEST_HELP" == *"--timeout "* ]] && opts+=(--timeout "${3:-60}")
  [[ "$PYTEST_HELP" == *--session-timeout* ]] && opts+=(--session-timeout "$2")
  return 0
}

# aae_fast importable from the source tree as installed (kernels/ is aae_fast.kernels: setup.py),
# for the stages that run without the extension: PYTHONPATH=$view with PYTHONSAFEPATH=1 (python
# -P, inherited by child processes), so that the working directory's own aae_fast (no kernels/
# inside) does not shadow the view.
view=$(mktemp -d)
mkdir "$view/aae_fast"
for f in aae_fast/*; do ln -s "$PWD/$f" "$view/aae_fast/"; done
ln -s "$PWD/kernels" "$view/aae_fast/kernels"

if has triton; then
  stage "Triton tests without the extension, beside the build (log: triton.log)"
  triton_timeout=${TRITON_TIMEOUT:-180}
  # 90 s a test: Triton autotunes its first kernels while the build holds every core (one 60 s
  # limit was hit that way on 2026-11-26). The outer limit leaves a test that started just before
  # the session limit its whole per-test limit, so pytest itself always reports.
  triton_test_limit=${TRITON_TEST_LIMIT:-90}
  pytest_opts "${TRITON_WORKERS:-4}" "$triton_timeout" "$triton_test_limit"
  (AAE_FAST_DISABLE_EXT=1 PYTHONPATH="$view" PYTHONSAFEPATH=1 \
     timeout $((triton_timeout + triton_test_limit + 30)) "$PYTHON" -m pytest -p no:cacheprovider -v "${opts[@]}" -rfE --tb=short \
     ${TRITON_TESTS:-tests/models/test_fused_cuda.py tests/training/test_trainer_fast_path.py tests/kernels} \
     -k "${TRITON_K:-cuda or triton}" >"$OUT/triton.log" 2>&1
   echo "triton tests exit $?" >>"$OUT/triton.log") &
  triton_pid=$!
fi

built=1
if has build; then
  stage "build (log: build.log)"
  cap=$("$PYTHON" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')
  if ! MAX_JOBS=$(nproc) TORCH_CUDA_ARCH_LIST="$cap" timeout "${BUILD_TIMEOUT:-300}" \
      "$PYTHON" -m pip install --no-build-isolation --no-deps --no-index -e . >"$OUT/build.log" 2>&1; then
    tail -40 "$OUT/build.log"
    # Go on without the extension (Triton serves CUDA, the composites the CPU), from the view of
    # the source tree: the other stages still measure something.
    echo "BUILD FAILED: the remaining stages run with AAE_FAST_DISABLE_EXT=1 and without the probe"
    built=0
    export AAE_FAST_DISABLE_EXT=1 PYTHONPATH="$view" PYTHONSAFEPATH=1
  else
    grep -E "warning|error" "$OUT/build.log" | head -20
    rm -f "$OUT/build.log"  # kept only on failure: $OUT returns a limited number of files
  fi
fi
if has triton; then
  wait "$triton_pid"
  stage "Triton tests without the extension: done"
  grep -E "FAILED|ERROR|passed|failed|exit" "$OUT/triton.log" | grep -v PASSED | tail -40
fi
"$PYTHON" -c 'import aae_fast, json; i = aae_fast.backend_info(); print(json.dumps({k: v for k, v in i.items() if k != "ops"})); print({op: (d.get("cuda"), d.get("autograd")) for op, d in i["ops"].items()})'

probe_pid=
if has probe && [[ $built == 1 ]]; then
  # Beside the GPU tests (it is light: one process at a time, and two small compiles); its log is
  # printed after them.
  stage "do errors raised in _C reach Python? (scripts/probe_ext_errors.sh, beside the tests; log: probe.log)"
  PYTHON="$PYTHON" timeout "${PROBE_TIMEOUT:-200}" bash scripts/probe_ext_errors.sh >"$OUT/probe.log" 2>&1 &
  probe_pid=$!
fi

if has tests; then
  stage "GPU tests (log: pytest.log)"
  test_timeout=${TEST_TIMEOUT:-240}
  test_limit=${TEST_LIMIT:-60}
  pytest_opts "$TEST_WORKERS" "$test_timeout" "$test_limit"
  timeout $((test_timeout + test_limit + 30)) "$PYTHON" -m pytest -p no:cacheprovider -v "${opts[@]}" \
    -rfE --tb=short \
    ${GPU_TESTS:-tests/models/test_fused_cuda.py tests/training/test_trainer_fast_path.py tests/kernels \
      tests/test_backend.py tests/test_priors.py tests/evaluation tests/nn tests/ops} \
    -k "${TEST_K:-cuda or triton or test_backend}" >"$OUT/pytest.log" 2>&1
  echo "pytest exit $?"
  grep -E "FAILED|ERROR|passed|failed" "$OUT/pytest.log" | grep -v PASSED | tail -60
fi

if [[ -n "$probe_pid" ]]; then
  wait "$probe_pid"
  stage "probe done"
  tail -60 "$OUT/probe.log"
fi

if has profile; then
  # How many kernels a small-batch step launches and how long they take on the device: what bounds
  # the replayed CUDA graph once the host's launch overhead is gone.
  stage "profile (profile-*.txt)"
  for impl in fused eager; do
    timeout 90 "$PYTHON" scripts/profile_step.py --impl "$impl" --batch "${PROFILE_BATCH:-100}" \
      --steps 5 --rows 25 --out "$OUT" 2>&1 | head -4
  done
fi

if has bench; then
  stage "benchmarks -k '$BENCH_K' (log: bench.log)"
  run_bench "$BENCH_K" "${BENCH_TIMEOUT:-240}" bench
  tail -60 "$OUT/bench.log"
fi

if has bench && [[ -n "${BENCH2_K:-}" ]]; then
  stage "benchmarks -k '$BENCH2_K' (log: bench2.log)"
  run_bench "$BENCH2_K" "${BENCH2_TIMEOUT:-120}" bench2
  tail -25 "$OUT/bench2.log"
fi
pack_logs
stage "done"
