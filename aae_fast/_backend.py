"""Loads the compiled extension `aae_fast._C` defensively and reports what each op runs on.

Loading never crashes `import aae_fast`: when `_C` is missing or fails to load, the library's
schemas are defined from Python (`aae_fast._schemas`) and each op registers its documented
pure-PyTorch composite instead; a single warning says so and `backend_info()` reports it.

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
        status.cpu_ext = all(_has_kernel(op, "CPU") for op in SCHEMAS)
        status.cuda_ext = all(_has_kernel(op, "CUDA") for op in SCHEMAS)
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


def cuda_backend() -> str:
    """Which implementation serves CUDA tensors: "cuda", "triton" or "composite"."""
    requested = os.environ.get("AAE_FAST_CUDA_BACKEND", "").strip().lower()
    if requested not in ("", "cuda", "triton"):
        raise ValueError(
            f"AAE_FAST_CUDA_BACKEND must be 'cuda' or 'triton', got {requested!r}"
        )
    has_triton = importlib.util.find_spec("triton") is not None
    if requested == "triton" and has_triton:
        return "triton"
    if STATUS.cuda_ext:
        return "cuda"
    return "triton" if has_triton else "composite"


def cpu_backend() -> str:
    return "cpp" if STATUS.cpu_ext else "composite"
