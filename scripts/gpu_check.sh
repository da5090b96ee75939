#!/usr/bin/env bash
# One call on a lent GPU machine (CUDA torch already installed there, nothing downloadable):
#   0. beside the build (which takes minutes of the lease), the tests that need no extension: the
#      Triton kernels compiled, and the fused models and CUDA-graph Trainer with Triton serving
#      CUDA (AAE_FAST_DISABLE_EXT=1, from a symlinked view of the source tree);
#   1. build the extension with CUDA for the card at hand (pip install -e, MAX_JOBS = cores), then
#      scripts/probe_ext_errors.sh (on the 2026-11-26 image an error raised in _C was a SIGSEGV);
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
#   (also TRITON_TESTS / TRITON_K and GPU_TESTS / TEST_K: the test paths and -k of stages 0 and 2)
# $OUT gets run logs (pytest.log, triton.log, bench.log; build.log on failure) and bench/, bench2/.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
STAGES=${STAGES:-"triton build probe tests bench"}
PYTHON=${PYTHON:-python3}
BENCH_K=${BENCH_K:-"not compile and not compiled"}
TEST_WORKERS=${TEST_WORKERS:-8}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
stage() { printf '\n== %s (t=%ss)\n' "$*" "$SECONDS"; }
has() { [[ " $STAGES " == *" $1 "* ]]; }

stage "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
"$PYTHON" -c 'import sys, torch, triton; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "triton", triton.__version__, torch.cuda.get_device_name())'

PYTEST_HELP=$("$PYTHON" -m pytest --help 2>/dev/null)
pytest_opts() {  # workers ($1), limits (session: $2 s; per test: $3 s, default 60) from the plugins
  opts=()
  [[ "$PYTEST_HELP" == *--numprocesses* ]] && opts+=(-n "$1")
  [[ "$PYTEST_HELP" == *--timeout=* || "$PYTEST_HELP" == *"--timeout "* ]] && opts+=(--timeout "${3:-60}")
  [[ "$PYTEST_HELP" == *--session-timeout* ]] && opts+=(--session-timeout "$2")
  return 0
}

if has triton; then
  stage "Triton tests without the extension, beside the build (log: triton.log)"
  # aae_fast importable from the source tree as installed: kernels/ is aae_fast.kernels (setup.py).
  # python -P: the working directory's own aae_fast (no kernels/ inside) must not shadow the view.
  view=$(mktemp -d)
  mkdir "$view/aae_fast"
  for f in aae_fast/*; do ln -s "$PWD/$f" "$view/aae_fast/"; done
  ln -s "$PWD/kernels" "$view/aae_fast/kernels"
  triton_timeout=${TRITON_TIMEOUT:-180}
  # 180 s a test: Triton autotunes its first kernels while the build holds every core (one 60 s
  # limit was hit that way on 2026-11-26).
  pytest_opts "${TRITON_WORKERS:-4}" "$triton_timeout" 180
  (AAE_FAST_DISABLE_EXT=1 PYTHONPATH="$view" timeout $((triton_timeout + 60)) \
     "$PYTHON" -P -m pytest -p no:cacheprovider -v "${opts[@]}" -rfE --tb=short \
     ${TRITON_TESTS:-tests/models/test_fused_cuda.py tests/training/test_trainer_fast_path.py tests/kernels} \
     -k "${TRITON_K:-cuda or triton}" >"$OUT/triton.log" 2>&1
   echo "triton tests exit $?" >>"$OUT/triton.log") &
  triton_pid=$!
fi

if has build; then
  stage "build (log: build.log)"
  cap=$("$PYTHON" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')
  if ! MAX_JOBS=$(nproc) TORCH_CUDA_ARCH_LIST="$cap" timeout "${BUILD_TIMEOUT:-300}" \
      "$PYTHON" -m pip install --no-build-isolation --no-deps --no-index -e . >"$OUT/build.log" 2>&1; then
    tail -40 "$OUT/build.log"
    echo "BUILD FAILED"
    exit 1
  fi
  grep -E "warning|error" "$OUT/build.log" | head -20
  rm -f "$OUT/build.log"  # kept only on failure: $OUT returns at most 8 files
fi
if has triton; then
  wait "$triton_pid"
  stage "Triton tests without the extension: done"
  grep -E "FAILED|ERROR|passed|failed|exit" "$OUT/triton.log" | grep -v PASSED | tail -40
fi
"$PYTHON" -c 'import aae_fast, json; i = aae_fast.backend_info(); print(json.dumps({k: v for k, v in i.items() if k != "ops"})); print({op: (d.get("cuda"), d.get("autograd")) for op, d in i["ops"].items()})'

if has probe; then
  stage "do errors raised in _C reach Python? (scripts/probe_ext_errors.sh)"
  PYTHON="$PYTHON" timeout 200 bash scripts/probe_ext_errors.sh 2>&1 | tail -40
fi

if has tests; then
  stage "GPU tests (log: pytest.log)"
  test_timeout=${TEST_TIMEOUT:-240}
  pytest_opts "$TEST_WORKERS" "$test_timeout"
  timeout $((test_timeout + 60)) "$PYTHON" -m pytest -p no:cacheprovider -v "${opts[@]}" \
    -rfE --tb=short \
    ${GPU_TESTS:-tests/models/test_fused_cuda.py tests/training/test_trainer_fast_path.py tests/kernels \
      tests/test_backend.py tests/test_priors.py tests/evaluation tests/nn tests/ops} \
    -k "${TEST_K:-cuda or triton or test_backend}" >"$OUT/pytest.log" 2>&1
  echo "pytest exit $?"
  grep -E "FAILED|ERROR|passed|failed" "$OUT/pytest.log" | grep -v PASSED | tail -60
fi

if has bench; then
  stage "benchmarks -k '$BENCH_K' (log: bench.log)"
  timeout "${BENCH_TIMEOUT:-240}" "$PYTHON" -m aae_fast.cli bench -k "$BENCH_K" --out "$OUT/bench" \
    >"$OUT/bench.log" 2>&1
  echo "bench exit $?"
  tail -60 "$OUT/bench.log"
fi

if has bench && [[ -n "${BENCH2_K:-}" ]]; then
  stage "benchmarks -k '$BENCH2_K'"
  timeout "${BENCH2_TIMEOUT:-120}" "$PYTHON" -m aae_fast.cli bench -k "$BENCH2_K" --out "$OUT/bench2" \
    >/tmp/bench2.log 2>&1
  echo "bench2 exit $?"
  tail -25 /tmp/bench2.log
  find "$OUT/bench2" -type f ! -name "*.json" -delete 2>/dev/null
fi
stage "done"
