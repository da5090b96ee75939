#!/usr/bin/env bash
# Compile-check every csrc/cuda/*.cu with nvcc for sm_80 and sm_90, warnings as errors. The .cu
# files include only CUDA headers (no torch), so this runs on machines whose torch has no CUDA.
# Then, when python can import torch, syntax-check the torch glue csrc/cuda/*_cuda.cpp with the host
# compiler against torch's headers and the CUDA headers (a CPU torch wheel ships c10/cuda headers
# but not the generated c10/cuda/impl/cuda_cmake_macros.h, so a stand-in is supplied for it).
# Exits non-zero on any failure; prints a skip line and exits 0 when nvcc is absent.
#   NVCC=/path/to/nvcc scripts/check_cuda.sh    (default: nvcc on PATH, else $CUDA_HOME/bin/nvcc,
#                                                else /usr/local/cuda/bin/nvcc)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

NVCC="${NVCC:-}"
if [[ -z "$NVCC" ]]; then
  if command -v nvcc >/dev/null 2>&1; then
    NVCC="$(command -v nvcc)"
  elif [[ -n "${CUDA_HOME:-}" && -x "${CUDA_HOME}/bin/nvcc" ]]; then
    NVCC="${CUDA_HOME}/bin/nvcc"
  elif [[ -x /usr/local/cuda/bin/nvcc ]]; then
    NVCC=/usr/local/cuda/bin/nvcc
  fi
fi
if [[ -z "$NVCC" ]]; then
  echo "check_cuda: SKIP (nvcc not found; set NVCC or CUDA_HOME to check csrc/cuda/*.cu)"
  exit 0
fi

shopt -s nullglob
sources=(csrc/cuda/*.cu)
if (( ${#sources[@]} == 0 )); then
  echo "check_cuda: no csrc/cuda/*.cu files"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "check_cuda: $("$NVCC" --version | grep -m1 release)"
flags=(
  -std=c++17 -O2 -I csrc/include
  -gencode arch=compute_80,code=sm_80
  -gencode arch=compute_90,code=sm_90
  -Werror all-warnings
  -Xcompiler -Wall,-Wextra,-Werror,  # philox.h: #pragma unroll in __host__ __device__ code
)
failed=0
for src in "${sources[@]}"; do
  obj="$tmp/$(basename "$src" .cu).o"
  if "$NVCC" "${flags[@]}" -c "$src" -o "$obj"; then
    echo "check_cuda: OK   $src (sm_80, sm_90)"
  else
    echo "check_cuda: FAIL $src"
    failed=1
  fi
done

# Torch glue: syntax only (linking needs a CUDA torch).
glue=(csrc/cuda/*_cuda.cpp)
PYTHON="${PYTHON:-python}"
CXX="${CXX:-c++}"
if (( ${#glue[@]} > 0 )); then
  # nvcc may be a wrapper script: ask it where its toolkit is (TOP in its dry run).
  cuda_top="$("$NVCC" --dryrun -c -x cu /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -n 1 || true)"
  cuda_inc=""
  for dir in ${CUDA_HOME:+"$CUDA_HOME/include"} ${cuda_top:+"$cuda_top/include"} /usr/local/cuda/include; do
    if [[ -f "$dir/cuda_runtime.h" ]]; then cuda_inc="$dir"; break; fi
  done
  if ! torch_inc="$("$PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "include"))' 2>/dev/null)"; then
    echo "check_cuda: SKIP torch glue (python cannot import torch)"
  elif [[ -z "$cuda_inc" ]]; then
    echo "check_cuda: FAIL torch glue (cuda_runtime.h not found; set CUDA_HOME)"
    failed=1
  else
    mkdir -p "$tmp/stub/c10/cuda/impl"
    printf '#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n' > "$tmp/stub/c10/cuda/impl/cuda_cmake_macros.h"
    for src in "${glue[@]}"; do
      # The stub directory comes last, so a CUDA torch's own header wins.
      if "$CXX" -std=c++17 -fsyntax-only -Wall -Wextra -Werror -I csrc/include \
          -isystem "$torch_inc" -isystem "$torch_inc/torch/csrc/api/include" \
          -isystem "$cuda_inc" -isystem "$tmp/stub" "$src"; then
        echo "check_cuda: OK   $src (syntax: host compiler, torch and CUDA headers)"
      else
        echo "check_cuda: FAIL $src"
        failed=1
      fi
    done
  fi
fi
exit "$failed"
