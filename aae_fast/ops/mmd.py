"""Squared maximum mean discrepancy with a sum of Gaussian kernels, tiled forward and backward
(issue 11: the GMMN+AE baseline's loss).

Two custom ops (schemas in csrc/ops.cpp): `mmd(x, y, bandwidths, unbiased)` and its backward
`mmd_backward(grad, x, y, bandwidths, unbiased, output_mask)`, an op of its own so that
torch.compile and CUDA graphs see it. Served by C++ on CPU (csrc/cpu/mmd.cpp: BLAS GEMM tiles plus
fused, vectorised kernel sums), by CUDA C++ (csrc/cuda/mmd.cu) or Triton (kernels/mmd.py) on CUDA,
and by the pure-PyTorch composite below (torch.cdist on row blocks) when the extension is not built
(`aae_fast.backend_info()`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

from .. import _backend

_MMD = torch.ops.aae_fast.mmd.default
_MMD_BACKWARD = torch.ops.aae_fast.mmd_backward.default
_NAME = "mmd"
_INPUT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)

#: The default bandwidths: octaves around 1, for unit-scale data such as AAE codes under a
#: N(0, I) prior (the squared distance between two codes is about 2 D). Rescale them with the data
#: (e.g. pass `(2, 5, 10, 20, 40, 80)`, the GMMN paper's choice for raw MNIST pixels in [0, 1]).
DEFAULT_BANDWIDTHS = (0.5, 1.0, 2.0, 4.0, 8.0)


def mmd(
    x: torch.Tensor,
    y: torch.Tensor,
    bandwidths: float | Sequence[float] = DEFAULT_BANDWIDTHS,
    unbiased: bool = False,
) -> torch.Tensor:
    """Squared maximum mean discrepancy between the samples ``x`` and ``y``.

    With the multi-bandwidth Gaussian kernel ``k(a, b) = sum_s exp(-||a - b||^2 / (2 s^2))``
    (``s`` over ``bandwidths``):

    ``mmd = mean_{i,i'} k(x_i, x_i') + mean_{j,j'} k(y_j, y_j') - 2 mean_{i,j} k(x_i, y_j)``

    ``unbiased=False`` (default) is the V-statistic above: every pair, diagonal included; it is
    >= 0 up to rounding and exactly 0 in exact arithmetic when ``x`` and ``y`` hold the same points.
    ``unbiased=True`` is the U-statistic: the within-set means leave out the pairs ``i = i'`` and
    ``j = j'`` (``1 / (N (N - 1))`` and ``1 / (M (M - 1))``); it can be negative.

    Computed in tiles: squared distances come from GEMM tiles (``||a||^2 + ||b||^2 - 2 a.b``,
    clamped at 0; exactly 0 for a point with itself) and are reduced on the fly, so no N x N or
    N x M matrix exists, forward or backward: memory beyond the inputs (and the gradients) is
    O(N + M) plus one tile per thread (CPU) or per program (GPU). The reduction order depends on the
    sizes only (deterministic; on CPU also independent of the thread count).

    Args:
        x: ``[N, D]`` samples (e.g. a generator's codes); ``N >= 1`` (``N >= 2`` when unbiased).
            ``N = 0`` raises: a mean over no samples is undefined. ``D = 0`` gives 0.
        y: ``[M, D]`` samples (e.g. the autoencoder's codes); the dtype and device of ``x``, same
            conditions on ``M``. Any strides for both.
        bandwidths: one positive number or a non-empty sequence of them (finite, > 0); default
            ``DEFAULT_BANDWIDTHS = (0.5, 1, 2, 4, 8)``, suited to unit-scale data. A 1-D tensor is
            accepted in eager mode (read with ``.tolist()``); under torch.compile pass numbers
            (graph constants). The CUDA C++ kernel takes at most 32 bandwidths.
        unbiased: the U-statistic (see above) instead of the V-statistic.

    Returns:
        A 0-dim tensor: float64 for float64 inputs, else float32 (float16 and bfloat16 inputs are
        widened to float32 before the products, so those are exact). Differentiable in ``x`` and
        ``y`` (first order). The float32 error of a squared distance is about
        ``eps_fp32 (||a||^2 + ||b||^2)``; for data far from the origin, centre it first (MMD is
        translation invariant).
    """
    return _MMD(x, y, _as_bandwidths(bandwidths), bool(unbiased))


# ----------------------------------------------------------------------------------------------
# Fake (meta) impls: shapes and dtypes only, for torch.compile and FakeTensor tracing.


@torch.library.register_fake("aae_fast::mmd")
def _(x, y, bandwidths, unbiased):
    _check_args(x, y, bandwidths, unbiased)
    return x.new_empty((), dtype=_output_dtype(x.dtype))


@torch.library.register_fake("aae_fast::mmd_backward")
def _(grad, x, y, bandwidths, unbiased, output_mask):
    _check_args(x, y, bandwidths, unbiased)
    _check_grad(grad, x)
    return _grad_like(grad, x, output_mask[0]), _grad_like(grad, y, output_mask[1])


def _grad_like(grad, t, wanted):
    """A contiguous tensor shaped like t (t's dtype), or an empty [0] tensor of grad's dtype."""
    return t.new_empty(t.shape) if wanted else grad.new_empty((0,))


def _as_bandwidths(bandwidths) -> list[float]:
    if isinstance(bandwidths, torch.Tensor):
        if bandwidths.dim() > 1:
            raise TypeError(
                "bandwidths must be a number or a sequence of numbers, got a tensor of shape "
                f"{tuple(bandwidths.shape)}"
            )
        return [float(v) for v in bandwidths.reshape(-1).tolist()]
    if isinstance(bandwidths, numbers.Real) and not isinstance(bandwidths, bool):
        return [float(bandwidths)]
    if isinstance(bandwidths, (str, bytes)) or not isinstance(bandwidths, Sequence):
        raise TypeError(
            "bandwidths must be a number or a sequence of numbers, got "
            f"{type(bandwidths).__name__}"
        )
    out = []
    for i, v in enumerate(bandwidths):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"bandwidths must hold numbers, got {type(v).__name__} at index {i}")
        out.append(float(v))
    return out


def _output_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check_args(x, y, bandwidths, unbiased) -> None:
    """The checks of csrc/include/aae_fast/mmd_checks.h, same messages (RuntimeError)."""
    torch._check(x.dim() == 2, lambda: f"x must have shape [N, D], got {list(x.shape)}")
    torch._check(y.dim() == 2, lambda: f"y must have shape [M, D], got {list(y.shape)}")
    torch._check(
        y.shape[1] == x.shape[1],
        lambda: f"y must have the dimension D of x: x has shape {list(x.shape)}, y has shape "
        f"{list(y.shape)}",
    )
    torch._check(
        x.dtype in _INPUT_DTYPES,
        lambda: f"x must be float32, float64, float16 or bfloat16, got {x.dtype}",
    )
    torch._check(
        y.dtype == x.dtype, lambda: f"y must have the dtype of x ({x.dtype}), got {y.dtype}"
    )
    torch._check(
        y.device == x.device,
        lambda: f"y must be on the device of x ({x.device}), got {y.device}",
    )
    need = 2 if unbiased else 1
    what = " samples for unbiased=True" if unbiased else " sample"
    for name, t, rows in (("x", x, "N"), ("y", y, "M")):
        torch._check(
            t.shape[0] >= need,
            lambda: f"{name} must hold at least {need}{what} (shape [{rows}, D] with {rows} >= "
            f"{need}), got {list(t.shape)}",
        )
    torch._check(
        len(bandwidths) >= 1, lambda: "bandwidths must hold at least one bandwidth, got []"
    )
    for i, s in enumerate(bandwidths):
        torch._check(
            math.isfinite(s) and s > 0,
            lambda: f"bandwidths must be finite numbers > 0, got {s:g} at index {i}",
        )


def _check_grad(grad, x) -> None:
    torch._check(
        grad.dim() == 0,
        lambda: "grad must be a 0-dim tensor (the gradient of the scalar mmd), got shape "
        f"{list(grad.shape)}",
    )
    torch._check(
        grad.dtype.is_floating_point,
        lambda: f"grad must be a floating-point tensor, got {grad.dtype}",
    )
    torch._check(
        grad.device == x.device,
        lambda: f"grad must be on the device of x ({x.device}), got {grad.device}",
    )


# ----------------------------------------------------------------------------------------------
# Autograd (mirrored by csrc/autograd/mmd.cpp: keep the two in step): the backward is its own op.
# Each gradient needs both sets (the cross term), so both are saved when any gradient is needed,
# and nothing when none is.


def _setup_context(ctx, inputs, output):
    x, y, bandwidths, unbiased = inputs
    ctx.bandwidths = bandwidths
    ctx.unbiased = unbiased
    if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
        ctx.save_for_backward(x, y)


def _backward(ctx, grad):
    if torch.is_grad_enabled():
        # The backward op has no derivative of its own: a second-order term through mmd would
        # silently come out as zero.
        raise RuntimeError(
            "aae_fast.ops.mmd supports first-order gradients only, and this backward runs with "
            "create_graph=True; take mmd's gradient in a backward of its own without create_graph"
        )
    x, y = ctx.saved_tensors
    mask = [bool(ctx.needs_input_grad[0]), bool(ctx.needs_input_grad[1])]
    grad_x, grad_y = _MMD_BACKWARD(grad, x, y, ctx.bandwidths, ctx.unbiased, mask)
    return (grad_x if mask[0] else None, grad_y if mask[1] else None, None, None)


# The C++ Autograd kernel (csrc/autograd/mmd.cpp) implements this formula when the extension is
# loaded; this one is registered only where it is absent.
_backend.register_autograd("mmd", _backward, _setup_context)


# ----------------------------------------------------------------------------------------------
# The pure-PyTorch composite: the documented fallback when the extension is not built. Row blocks
# of torch.cdist (memory: one block of _COMPOSITE_ROWS rows against a whole set).

_COMPOSITE_ROWS = 1024


def _half_inv_vars(bandwidths) -> list[float]:
    out = []
    for s in bandwidths:
        h = 0.5 / s / s
        out.append(h if math.isfinite(h) else torch.finfo(torch.float64).max)
    return out


def _weights(n: int, m: int, unbiased: bool) -> tuple[float, float, float]:
    """(wxx, wyy, wxy): mmd = wxx Sxx + wyy Syy - wxy Sxy (csrc/include/aae_fast/mmd_checks.h)."""
    return (
        1.0 / (n * (n - 1 if unbiased else n)),
        1.0 / (m * (m - 1 if unbiased else m)),
        2.0 / (n * m),
    )


def _sq_dist(a: torch.Tensor, b: torch.Tensor, diag_offset: int | None) -> torch.Tensor:
    """Squared distances [len(a), len(b)]; with diag_offset, a is b[diag_offset:...] and the pairs
    of a point with itself are set to exactly 0."""
    d2 = torch.cdist(a, b).square()
    if diag_offset is not None:
        d2.diagonal(offset=diag_offset).zero_()
    return d2


def _kernel_sum(a, b, hs, same: bool, unbiased: bool) -> torch.Tensor:
    """sum_{i,j} k(a_i, b_j) in float64 (without the i = j terms when same and unbiased)."""
    total = torch.zeros((), dtype=torch.float64, device=a.device)
    for i0 in range(0, a.shape[0], _COMPOSITE_ROWS):
        d2 = _sq_dist(a[i0 : i0 + _COMPOSITE_ROWS], b, i0 if same else None)
        k = torch.zeros_like(d2)
        for h in hs:
            k += torch.exp(d2 * -min(h, torch.finfo(d2.dtype).max))
        if same and unbiased:
            k.diagonal(offset=i0).zero_()
        total = total + k.sum(dtype=torch.float64)
    return total


def _mmd_composite(x, y, bandwidths, unbiased):
    _check_args(x, y, bandwidths, unbiased)
    compute = _output_dtype(x.dtype)
    hs = _half_inv_vars(bandwidths)
    with torch.no_grad():
        xc, yc = x.detach().to(compute), y.detach().to(compute)
        wxx, wyy, wxy = _weights(x.shape[0], y.shape[0], unbiased)
        value = (
            wxx * _kernel_sum(xc, xc, hs, True, unbiased)
            + wyy * _kernel_sum(yc, yc, hs, True, unbiased)
            - wxy * _kernel_sum(xc, yc, hs, False, unbiased)
        )
    return value.to(compute)


def _grad_rows(own, other, hs, coef_own, coef_other, g):
    """g ((W' z)_i - own_i (W' 1)_i) with W' = coef sum_s 2 h_s exp(-d2 h_s) over [own; other]."""
    out = torch.empty_like(own)
    big = torch.finfo(own.dtype).max
    for i0 in range(0, own.shape[0], _COMPOSITE_ROWS):
        a = own[i0 : i0 + _COMPOSITE_ROWS]
        acc = torch.zeros_like(a)
        rowsum = torch.zeros(a.shape[0], dtype=torch.float64, device=a.device)
        for z, coef, same in ((own, coef_own, True), (other, coef_other, False)):
            d2 = _sq_dist(a, z, i0 if same else None)
            w = torch.zeros_like(d2)
            for h in hs:
                c = max(-big, min(big, 2.0 * h * coef))
                w += c * torch.exp(d2 * -min(h, big))
            if same:
                w.diagonal(offset=i0).zero_()
            rowsum += w.sum(dim=1, dtype=torch.float64)
            acc += w @ z
        out[i0 : i0 + a.shape[0]] = g * (acc - a * rowsum.to(a.dtype)[:, None])
    return out


def _mmd_backward_composite(grad, x, y, bandwidths, unbiased, output_mask):
    _check_args(x, y, bandwidths, unbiased)
    _check_grad(grad, x)
    compute = _output_dtype(x.dtype)
    hs = _half_inv_vars(bandwidths)
    wxx, wyy, wxy = _weights(x.shape[0], y.shape[0], unbiased)
    with torch.no_grad():
        xc, yc = x.detach().to(compute), y.detach().to(compute)
        g = grad.detach().to(compute)
        grad_x = grad_y = None
        if output_mask[0]:
            grad_x = _grad_rows(xc, yc, hs, 2.0 * wxx, -wxy, g).to(x.dtype).contiguous()
        if output_mask[1]:
            grad_y = _grad_rows(yc, xc, hs, 2.0 * wyy, -wxy, g).to(y.dtype).contiguous()
    return (
        grad_x if grad_x is not None else grad.new_empty((0,)),
        grad_y if grad_y is not None else grad.new_empty((0,)),
    )


_COMPOSITES = {"mmd": _mmd_composite, "mmd_backward": _mmd_backward_composite}


# ----------------------------------------------------------------------------------------------
# Implementations registered from Python: Triton on CUDA (when chosen), and the composite where the
# extension has no kernel (see aae_fast._backend.register_python_kernels).


def _triton_mmd(x, y, bandwidths, unbiased):
    from aae_fast.kernels import mmd as kernels

    _check_args(x, y, bandwidths, unbiased)  # the op's messages, as RuntimeError
    return kernels.mmd_fwd(x, y, bandwidths, unbiased)


def _triton_mmd_backward(grad, x, y, bandwidths, unbiased, output_mask):
    from aae_fast.kernels import mmd as kernels

    _check_args(x, y, bandwidths, unbiased)
    _check_grad(grad, x)
    return kernels.mmd_bwd(grad, x, y, bandwidths, unbiased, output_mask)


def _triton_launchers() -> dict:
    import importlib.util

    if not torch.cuda.is_available() or importlib.util.find_spec("triton") is None:
        return {}
    return {"mmd": _triton_mmd, "mmd_backward": _triton_mmd_backward}


_backend.register_python_kernels(_COMPOSITES, _triton_launchers())
