"""Build aae_fast._C: the C++ (CPU) extension, plus CUDA when the installed torch has CUDA and nvcc
is found. `AAE_FAST_NO_EXT=1` skips the extension entirely (the ops then run their documented
pure-PyTorch fallback; `aae_fast.backend_info()` says so). The top-level `kernels/` directory (Triton)
is installed as the package `aae_fast.kernels`.

Install with `pip install --no-build-isolation -e .` so that the build uses the torch already
installed (an isolated build would fetch another torch).
"""

import glob
import os
import sys

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _extension_modules():
    if os.environ.get("AAE_FAST_NO_EXT", "0") == "1":
        return [], {}
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

    def rel(pattern):
        return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))

    # csrc/autograd: the C++ Autograd kernels (any device), built with the CPU kernels; csrc/aten:
    # implementations from ATen ops (any device).
    sources = (rel("csrc/ops.cpp") + rel("csrc/cpu/*.cpp") + rel("csrc/autograd/*.cpp")
               + rel("csrc/aten/*.cpp"))
    debug = os.environ.get("AAE_FAST_DEBUG", "0") == "1"
    # -g0 after the interpreter's own CFLAGS (often "-g"): debug info made the release .so 38 MB
    # instead of 1.7 MB. AAE_FAST_DEBUG=1 builds keep it.
    cxx_flags = ["-O0", "-g"] if debug else ["-O3", "-g0"]
    # at::parallel_for inlines its OpenMP region into our code: without -fopenmp it runs serially.
    cxx_flags += ["-fopenmp", "-fno-math-errno", "-Wall", "-Wno-unknown-pragmas"]
    extra = {"cxx": cxx_flags}
    # libtorch's own libstdc++, shared: a compiler that links libstdc++ statically (the H200
    # image's CXX=/opt/gcc/bin/g++) gives the extension a second copy, and every TORCH_CHECK whose
    # message formats a number crashed inside it (SIGSEGV in ostream::_M_insert<long>).
    link_args = ["-fopenmp"] + (["-l:libstdc++.so.6"] if sys.platform.startswith("linux") else [])
    include_dirs = [os.path.join(ROOT, "csrc", "include")]

    with_cuda = torch.version.cuda is not None and CUDA_HOME is not None
    if os.environ.get("AAE_FAST_NO_CUDA", "0") == "1":
        with_cuda = False
    if with_cuda:
        sources += rel("csrc/cuda/*.cu") + rel("csrc/cuda/*_cuda.cpp")
        # No --use_fast_math: approximate log/sincos would break the cross-backend agreement promised by
        # philox.h (the Box-Muller radius near u1 = 1 would be off by ~1e-3).
        extra["nvcc"] = ["-O3", "-lineinfo"]
        ext = CUDAExtension(
            "aae_fast._C",
            sources,
            include_dirs=include_dirs,
            extra_compile_args=extra,
            extra_link_args=link_args,
            define_macros=[("AAE_FAST_WITH_CUDA", "1")],
        )
    else:
        ext = CppExtension(
            "aae_fast._C",
            sources,
            include_dirs=include_dirs,
            extra_compile_args=extra,
            extra_link_args=link_args,
        )
    return [ext], {"build_ext": BuildExtension.with_options(use_ninja=True)}


ext_modules, cmdclass = _extension_modules()

setup(
    packages=find_packages(include=["aae_fast", "aae_fast.*"]) + ["aae_fast.kernels"],
    package_dir={"aae_fast.kernels": "kernels"},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)
