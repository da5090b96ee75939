#!/usr/bin/env bash
# Do errors raised inside aae_fast._C reach Python as RuntimeError? Each probe runs in its own
# process (a crash ends only that probe) and prints what it raised or how it died (rc 139 =
# SIGSEGV); the two controls tell whether loading _C breaks libtorch's own errors too. On the
# 2026-11-26 H200 image every aae_fast probe crashed (benchmarks/results/
# nvidia-h200-2026-11-26-notes.md); on CI's CPU build they raise. It first lists the runtime
# libraries _C links; with gdb or cuda-gdb on the machine, the last step prints the native
# backtrace of the first probe.
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
# gdb, or CUDA's cuda-gdb (the 2026-11-26 image had no gdb): the native backtrace of a crash.
GDB=$(command -v gdb || command -v cuda-gdb || ls /usr/local/cuda/bin/cuda-gdb 2>/dev/null)
if [[ -n "$GDB" ]]; then
  echo "--- $GDB backtrace of mmd N=0 cpu"
  timeout 90 "$GDB" -q -batch -ex run -ex bt --args "$P" -c 'import torch, aae_fast; torch.ops.aae_fast.mmd(torch.randn(0, 3), torch.randn(5, 3), [1.0], False)' 2>&1 | grep -E "^#" | head -25
else
  echo "--- no gdb or cuda-gdb on this machine: no native backtrace"
fi
