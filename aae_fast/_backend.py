"""Loads the compiled extension `aae_fast._C` defensively and reports what each op runs on.

Loading never crashes `import aae_fast`: when `_C` is missing or fails to load, the library's
schemas are defined from Python (`aae_fast._schemas`) and each op registers its documented
pure-PyTorch composite instead; a single warning says so and `backend_info()` reports it. Likewise
for autograd: the differentiable ops' C++ Autograd kernels (csrc/autograd/) come with `_C`, and
their Python formulas (`register_autograd` below) are registered only where `_C` has none.

Environment:
  AAE_FAST_DISABLE_EXT=1   do not load `_C` even if it is built (forces the composite fallback)
  AAE_FAST_CUDA_BACKEND    "cuda" (default when the CUDA extension is built) or "triton": which
                           implementation serves CUDA tensors
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from dataclasses import dataclass, field

import torch

LIBRARY = "aae_fast"


@dataclass
class ExtensionStatus:
    cpu_ext: bool = False
    cuda_ext: bool = False
    error: str | None = None
    # Ops whose CPU / CUDA kernels come from _C, read at load time (before any Python registration).
    compiled_cpu: frozenset = frozenset()
    compiled_cuda: frozenset = frozenset()
    # Ops whose autograd formula is _C's C++ Autograd kernel (csrc/autograd/), read at load time;
    # and ops whose formula was registered from Python (torch.library.register_autograd) instead.
    compiled_autograd: frozenset = frozenset()
    python_autograd: set = field(default_factory=set)
    # Ops registered with a Triton launcher for CUDA tensors, and with a composite.
    triton_ops: set = field(default_factory=set)
    composite_cpu: set = field(default_factory=set)
    composite_cuda: set = field(default_factory=set)
    # Python-side registrations (composites, fallback schemas) must stay alive with the module.
    libraries: list = field(default_factory=list)


def _load_compiled() -> str | None:
    """Loads `_C` into the dispatcher; returns None on success, else why it did not load."""
    if os.environ.get("AAE_FAST_DISABLE_EXT", "0") == "1":
        return "disabled by AAE_FAST_DISABLE_EXT=1"
    spec = importlib.util.find_spec("aae_fast._C")
    if spec is None or spec.origin is None:
        return "aae_fast._C is not built (install with `pip install --no-build-isolation -e .`)"
    try:
        # _C registers operators only (TORCH_LIBRARY); it is a shared library, not a Python module.
        torch.ops.load_library(spec.origin)
    except OSError as exc:  # wrong torch ABI, missing symbol, ...
        return f"aae_fast._C failed to load from {spec.origin}: {exc}"
    return None


def _has_kernel(op: str, dispatch_key: str) -> bool:
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"{LIBRARY}::{op}", dispatch_key)


def _load() -> ExtensionStatus:
    from ._schemas import SCHEMAS

    status = ExtensionStatus()
    status.error = _load_compiled()
    if status.error is None:
        status.compiled_cpu = frozenset(op for op in SCHEMAS if _has_kernel(op, "CPU"))
        status.compiled_cuda = frozenset(op for op in SCHEMAS if _has_kernel(op, "CUDA"))
        status.compiled_autograd = frozenset(op for op in SCHEMAS if _has_kernel(op, "Autograd"))
        status.cpu_ext = bool(status.compiled_cpu)
        status.cuda_ext = bool(status.compiled_cuda)
        return status
    lib = torch.library.Library(LIBRARY, "DEF")
    for schema in SCHEMAS.values():
        lib.define(schema)
    status.libraries.append(lib)
    warnings.warn(
        f"aae_fast: C++ extension unavailable ({status.error}); ops run their pure-PyTorch "
        "composite on CPU. See aae_fast.backend_info().",
        RuntimeWarning,
        stacklevel=3,
    )
    return status


STATUS = _load()


def triton_available() -> bool:
    """Triton can run our kernels: a CUDA device, or the interpreter (TRITON_INTERPRET=1)."""
    if importlib.util.find_spec("triton") is None:
        return False
    return torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET", "0") == "1"


def _requested_cuda_backend() -> str:
    requested = os.environ.get("AAE_FAST_CUDA_BACKEND", "").strip().lower()
    if requested not in ("", "cuda", "triton"):
        raise ValueError(f"AAE_FAST_CUDA_BACKEND must be 'cuda' or 'triton', got {requested!r}")
    return requested


def cuda_backend(op: str) -> str:
    """Which implementation serves `op` on CUDA tensors: "cuda", "triton" or "composite"."""
    has_triton = op in STATUS.triton_ops and importlib.util.find_spec("triton") is not None
    if _requested_cuda_backend() == "triton" and has_triton:
        return "triton"
    if op in STATUS.compiled_cuda:
        return "cuda"
    return "triton" if has_triton else "composite"


def cpu_backend(op: str) -> str | None:
    """Which implementation serves `op` on CPU tensors: "cpp", "composite", or None (none yet)."""
    if op in STATUS.compiled_cpu:
        return "cpp"
    return "composite" if op in STATUS.composite_cpu else None


def autograd_backend(op: str) -> str | None:
    """Which autograd formula differentiates `op`: "cpp" (_C's C++ Autograd kernel), "python"
    (torch.library.register_autograd), or None (not differentiable)."""
    if op in STATUS.compiled_autograd:
        return "cpp"
    if op in STATUS.python_autograd or _has_kernel(op, "Autograd"):
        return "python"
    return None


def register_autograd(op: str, backward, setup_context) -> None:
    """Registers the Python autograd formula of `op` only where _C has no C++ Autograd kernel for it.

    _C's kernel (csrc/autograd/) implements the same formula without the Python layer: it saves what
    `setup_context` saves and calls the same `<op>_backward` op; it skips the autograd node
    altogether when no gradient can flow (no_grad, or no input requires grad), and it rejects
    forward-mode (dual) inputs, whose tangent the Python formula silently drops. Registering the
    Python formula over it would replace it, so it is registered only when the extension is not
    built, is disabled (AAE_FAST_DISABLE_EXT=1) or predates the C++ kernel.
    """
    if op in STATUS.compiled_autograd:
        return
    torch.library.register_autograd(f"{LIBRARY}::{op}", backward, setup_context=setup_context)
    STATUS.python_autograd.add(op)


def register_python_kernels(composites: dict, triton: dict | None = None) -> None:
    """Registers the Python-side implementations of some ops, each only where _C has none.

    `composites` maps op names to their pure-PyTorch composite (same signature as the op): it serves
    CPU tensors when _C has no CPU kernel for the op, and CUDA tensors when neither CUDA C++ nor
    Triton does. `triton` maps op names to Triton launchers: they serve CUDA tensors when _C has no
    CUDA kernel for the op, or when AAE_FAST_CUDA_BACKEND=triton.
    """
    triton = triton or {}
    STATUS.triton_ops.update(triton)
    for op, fn in composites.items():
        if op not in STATUS.compiled_cpu:
            torch.library.register_kernel(f"{LIBRARY}::{op}", "cpu", fn)
            STATUS.composite_cpu.add(op)
    if not torch.cuda.is_available():
        return
    for op in set(composites) | set(triton):
        choice = cuda_backend(op)
        if choice == "triton":
            torch.library.register_kernel(f"{LIBRARY}::{op}", "cuda", triton[op])
        elif choice == "composite":
            torch.library.register_kernel(f"{LIBRARY}::{op}", "cuda", composites[op])
            STATUS.composite_cuda.add(op)
