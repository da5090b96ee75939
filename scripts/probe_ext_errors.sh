#!/usr/bin/env bash
# Do errors raised inside aae_fast._C reach Python as RuntimeError? Each probe runs in its own
# process (a crash ends only that probe) and prints what it raised or how it died (rc 139 =
# SIGSEGV); the two controls tell whether loading _C breaks libtorch's own errors too. On the
# 2026-11-26 H200 image every aae_fast probe crashed (benchmarks/results/
# nvidia-h200-2026-11-26-notes.md); on CI's CPU build they raise. It first lists the runtime
# libraries _C links; with gdb or cuda-gdb on the machine, the last step prints the native
# backtrace of the first probe. Before that, a minimal extension built here (load_inline) with and
# without this package's flags tells the image's toolchain from aae_fast's own code.
#   PYTHON=python3 bash scripts/probe_ext_errors.sh
P=${PYTHON:-python3}
set -u
echo "--- the libraries _C links (a second libstdc++ or OpenMP runtime would be a suspect)"
so=$("$P" -c 'import glob, importlib.util, os; print(glob.glob(os.path.join(os.path.dirname(importlib.util.find_spec("aae_fast").origin), "_C*.so"))[0])' 2>/dev/null)
[[ -n "$so" ]] && ldd "$so" | grep -E "stdc\+\+|gomp|iomp|libgcc|torch" | sed 's/ (0x.*//'
probe() { echo "--- $1"; timeout 60 "$P" -X faulthandler -c "import torch, aae_fast as af; OPS = torch.ops.aae_fast
$2" 2>&1 | grep -v "^  File\|^Thread\|^$" | tail -4; echo "rc ${PIPESTATUS[0]}"; }
echo "--- control: a libtorch error without aae_fast loaded"
timeout 60 "$P" -X faulthandler -c 'import torch
try: torch.zeros(2) + torch.zeros(3)
except RuntimeError as e: print("raised", str(e)[:80])' 2>&1 | tail -2; echo "rc ${PIPESTATUS[0]}"
probe "control: the same libtorch error with aae_fast loaded" 'try: torch.zeros(2) + torch.zeros(3)
except RuntimeError as e: print("raised", str(e)[:80])'
echo "--- _C alone (torch.ops.load_library, no aae_fast package, no Triton): mmd N=0 cpu"
timeout 60 "$P" -X faulthandler -c 'import glob, importlib.util, os, torch
pkg = os.path.dirname(importlib.util.find_spec("aae_fast").origin)
torch.ops.load_library(glob.glob(os.path.join(pkg, "_C*.so"))[0])
try: torch.ops.aae_fast.mmd(torch.randn(0, 3), torch.randn(5, 3), [1.0], False)
except RuntimeError as e: print("raised", str(e)[:80])' 2>&1 | tail -2; echo "rc ${PIPESTATUS[0]}"
probe "mmd N=0 cpu" 'x = torch.randn(0, 3); y = torch.randn(5, 3)
try: OPS.mmd(x, y, [1.0], False)
except RuntimeError as e: print("raised", str(e)[:80])'
probe "linear_act bad shape cuda (C++ CUDA TORCH_CHECK)" 'x = torch.randn(4, 3, device="cuda"); w = torch.randn(5, 2, device="cuda")
try: OPS.linear_act(x, w, None, "relu", 0.01)
except RuntimeError as e: print("raised", str(e)[:80])'
probe "reconstruction_loss bad shape cuda" 'a = torch.randn(4, 3, device="cuda"); b = torch.randn(4, 2, device="cuda")
try: af.ops.reconstruction_loss(a, b)
except (RuntimeError, ValueError) as e: print("raised", str(e)[:80])'
probe "mmd N=0 cuda, no grad" 'x = torch.randn(0, 3, device="cuda"); y = torch.randn(5, 3, device="cuda")
try: OPS.mmd(x, y, [1.0], False)
except RuntimeError as e: print("raised", str(e)[:80])'
probe "mmd N=0 cuda via redispatch below autograd" 'x = torch.randn(0, 3, device="cuda"); y = torch.randn(5, 3, device="cuda")
try:
    with torch._C._AutoDispatchBelowAutograd(): OPS.mmd(x, y, [1.0], False)
except RuntimeError as e: print("raised", str(e)[:80])'
probe "mmd bad bandwidth cuda" 'x = torch.randn(4, 3, device="cuda"); y = torch.randn(5, 3, device="cuda")
try: OPS.mmd(x, y, [-1.0], False)
except RuntimeError as e: print("raised", str(e)[:80])'
probe "mmd D=0 cuda" 'x = torch.zeros(4, 0, device="cuda", requires_grad=True); y = torch.zeros(3, 0, device="cuda", requires_grad=True)
o = af.ops.mmd(x, y); print(o.item()); o.backward(); print(x.grad.shape)'
# Is it this extension or the image's toolchain? A minimal extension (one op whose only work is a
# TORCH_CHECK), built here with load_inline twice: the compiler's defaults, and this package's
# flags (-O3 -fopenmp). If the minimal one crashes too, the fault is the compiler against this
# torch build, not aae_fast's code; if only the -fopenmp one crashes, it is the OpenMP runtime.
echo "--- toolchain: the compiler here, and the one torch was built with"
c++ --version 2>&1 | head -1
"$P" -c 'import torch; print("torch built with:", torch.__config__.show().splitlines()[1].strip(), "cxx11 abi", torch._C._GLIBCXX_USE_CXX11_ABI)' 2>&1 | tail -1
minimal() {  # name ($1), extra flags ($2)
  timeout 150 "$P" -X faulthandler -c "
import sys, tempfile, torch
from torch.utils.cpp_extension import load_inline
src = '''
#include <ATen/core/Tensor.h>
#include <torch/library.h>
at::Tensor check(const at::Tensor& x) { TORCH_CHECK(x.dim() == 99, \"minimal: expected dim 99, got \", x.dim()); return x; }
TORCH_LIBRARY($1, m) { m.def(\"check(Tensor x) -> Tensor\", &check); }
'''
flags = '$2'.split()
load_inline('$1', cpp_sources=src, extra_cflags=flags, extra_ldflags=[f for f in flags if f == '-fopenmp'],
            is_python_module=False, build_directory=tempfile.mkdtemp())
try: torch.ops.$1.check(torch.zeros(2))
except RuntimeError as e: print('raised', str(e).splitlines()[0][:80])
" 2>&1 | grep -v "^  File\|^Thread\|^$" | tail -3
  echo "rc ${PIPESTATUS[0]}"
}
echo "--- minimal extension, compiler defaults / -O3 -fopenmp (built in parallel)"
minimal aae_probe_plain "" >/tmp/aae_probe_plain.log 2>&1 &
minimal aae_probe_omp "-O3 -fopenmp" >/tmp/aae_probe_omp.log 2>&1
wait
echo "[defaults]"; cat /tmp/aae_probe_plain.log; echo "[-O3 -fopenmp]"; cat /tmp/aae_probe_omp.log
# gdb, or CUDA's cuda-gdb (the 2026-11-26 image had no gdb): the native backtrace of a crash.
GDB=$(command -v gdb || command -v cuda-gdb || ls /usr/local/cuda/bin/cuda-gdb 2>/dev/null)
if [[ -n "$GDB" ]]; then
  echo "--- $GDB backtrace of mmd N=0 cpu"
  timeout 90 "$GDB" -q -batch -ex run -ex bt --args "$P" -c 'import torch, aae_fast; torch.ops.aae_fast.mmd(torch.randn(0, 3), torch.randn(5, 3), [1.0], False)' 2>&1 | grep -E "^#" | head -25
else
  echo "--- no gdb or cuda-gdb on this machine: no native backtrace"
fi
