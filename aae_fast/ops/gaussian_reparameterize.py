"""The reparameterisation trick of a Gaussian encoder in one pass: z = mu + exp(logvar / 2) * eps.

Two custom ops (schemas in csrc/ops.cpp): `gaussian_reparameterize(rng_state, mu, logvar) -> (z,
state)` and its
backward `gaussian_reparameterize_backward(grad, rng_state, logvar)`, an op of its own so that
torch.compile and CUDA graphs see it. Served by C++ on CPU (csrc/cpu/gaussian_reparameterize.cpp), by
CUDA C++ (csrc/cuda/gaussian_reparameterize.cu) or Triton (kernels/gaussian_reparameterize.py) on
CUDA, and by the pure-PyTorch composite below (built on aae_fast.ops._stream, the float64 oracle of
the stream) when the extension is not built; `aae_fast.backend_info()` says which.

Noise: eps[i, :] is the Box-Muller normal vector of row counter offset + i of the Philox stream of
csrc/include/aae_fast/philox.h, laid out exactly as `sample_gaussian_mixture` draws it, so for the
same state eps equals the mixture sampler's eps (loc 0, scale 1).

Why the op reads rng_state without advancing it: `torch.library.register_autograd` accepts only
functional schemas ("Cannot register autograd formula for non-functional operator"), and the
backward must see the state as it was before the call to regenerate eps. So the op is a pure function
of (rng_state, mu, logvar), and `gaussian_reparameterize` below advances the generator's offset by B
on the device after it, like the sampling ops. The op's second output `state` is a copy of
[seed, offset] as the call saw it (16 bytes): autograd saves that copy, not the generator's tensor.
It has to be an output of the op: with a copy taken in Python (rng_state.clone()) before the
in-place advance, torch.compile's partitioner recomputes the clone in the backward from the graph
input, which the advance has by then mutated ("modified by an inplace operation"). Nothing of size
B x D beyond logvar (which the formula needs) is saved: eps is regenerated in the backward.
"""

from __future__ import annotations

import torch

from .. import _backend
from ..random import PhiloxGenerator, rng_state_for
from . import _stream

_OP = torch.ops.aae_fast.gaussian_reparameterize.default
_BACKWARD = torch.ops.aae_fast.gaussian_reparameterize_backward.default
INPUT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def gaussian_reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator=None) -> torch.Tensor:
    """z = mu + exp(logvar / 2) * eps with eps ~ N(0, I), differentiable in mu and logvar.

    Args:
        mu: [B, D] means (float32, float64, float16 or bfloat16; 16-bit inputs compute in float32).
        logvar: [B, D] log-variances, the same dtype and device as mu.
        generator: an `aae_fast.random.PhiloxGenerator` on mu's device (its offset advances by B),
            a `torch.Generator` (a fresh seed is drawn from it) or None (torch's default generator).

    Returns:
        z [B, D] in mu's dtype. Gradients: dz/dmu = 1, dz/dlogvar = 0.5 exp(logvar / 2) eps, with
        eps regenerated from the saved [seed, offset] instead of being stored.
    """
    rng_state = rng_state_for(generator, mu.device)
    z, _ = _OP(rng_state, mu, logvar)
    if isinstance(generator, PhiloxGenerator):
        rng_state[1:].add_(mu.shape[0])  # after the op: a rejected call leaves the stream alone
    return z


# ----------------------------------------------------------------------------------------------
# Checks (the C++ kernels' messages) and fake impls.


def _check(rng_state, first, first_name, logvar):
    torch._check(
        rng_state.dtype == torch.int64 and rng_state.dim() == 1 and rng_state.numel() == 2,
        lambda: "rng_state must be a contiguous int64 tensor [seed, offset] of shape [2], got dtype "
        f"{rng_state.dtype} and shape {tuple(rng_state.shape)}",
    )
    torch._check(
        first.dtype in INPUT_DTYPES,
        lambda: f"{first_name} must be a float32, float64, float16 or bfloat16 tensor, got {first.dtype}",
    )
    torch._check(
        first.dim() == 2, lambda: f"{first_name} must have shape [B, D], got {tuple(first.shape)}"
    )
    torch._check(
        logvar.shape == first.shape,
        lambda: f"logvar must have the shape of {first_name} {tuple(first.shape)}, got "
        f"{tuple(logvar.shape)}",
    )
    torch._check(
        logvar.dtype == first.dtype,
        lambda: f"logvar must have the dtype of {first_name} ({first.dtype}), got {logvar.dtype}",
    )
    torch._check(
        logvar.device == first.device,
        lambda: f"logvar must be on {first.device} (the device of {first_name}), got {logvar.device}",
    )
    torch._check(
        first.device == rng_state.device,
        lambda: f"{first_name} must be on {rng_state.device} (the device of rng_state), got "
        f"{first.device}",
    )


@torch.library.register_fake("aae_fast::gaussian_reparameterize")
def _(rng_state, mu, logvar):
    _check(rng_state, mu, "mu", logvar)
    return mu.new_empty(mu.shape), torch.empty_like(rng_state)


@torch.library.register_fake("aae_fast::gaussian_reparameterize_backward")
def _(grad, rng_state, logvar):
    _check(rng_state, grad, "grad", logvar)
    return logvar.new_empty(logvar.shape)


# ----------------------------------------------------------------------------------------------
# Autograd (mirrored by csrc/autograd/gaussian_reparameterize.cpp: keep the two in step): saves the
# 2-element state and logvar, and only when logvar's gradient is needed.


def _setup_context(ctx, inputs, output):
    _, _, logvar = inputs
    if ctx.needs_input_grad[2]:
        ctx.save_for_backward(output[1], logvar)


def _backward(ctx, grad, _grad_state):
    grad_mu = grad if ctx.needs_input_grad[1] else None
    grad_logvar = None
    if ctx.needs_input_grad[2]:
        rng_state, logvar = ctx.saved_tensors
        # Under create_graph=True, the formula in differentiable torch ops (second order).
        backward = _backward_composite if torch.is_grad_enabled() else _BACKWARD
        grad_logvar = backward(grad, rng_state, logvar)
    return None, grad_mu, grad_logvar


# The C++ Autograd kernel (csrc/autograd/gaussian_reparameterize.cpp) implements this formula when
# the extension is loaded; this one is registered only where it is absent.
_backend.register_autograd("gaussian_reparameterize", _backward, _setup_context)


# ----------------------------------------------------------------------------------------------
# The pure-PyTorch composite (the documented fallback without the extension) and the oracle.


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def stream_eps(rng_state: torch.Tensor, B: int, D: int, dtype: torch.dtype) -> torch.Tensor:
    """eps [B, D] of a call with state rng_state, computed in `dtype` (float64: the oracle)."""
    words = _stream.row_words(rng_state, B, _stream.blocks_per_row(D))
    return _stream.normals(words, D, dtype)


def _composite(rng_state, mu, logvar):
    _check(rng_state, mu, "mu", logvar)
    acc = compute_dtype(mu.dtype)
    eps = stream_eps(rng_state, mu.shape[0], mu.shape[1], acc)
    z = (mu.to(acc) + torch.exp(0.5 * logvar.to(acc)) * eps).to(mu.dtype).contiguous()
    return z, rng_state.clone()


def _backward_composite(grad, rng_state, logvar):
    _check(rng_state, grad, "grad", logvar)
    acc = compute_dtype(logvar.dtype)
    eps = stream_eps(rng_state, logvar.shape[0], logvar.shape[1], acc)
    out = 0.5 * grad.to(acc) * torch.exp(0.5 * logvar.to(acc)) * eps
    return out.to(logvar.dtype).contiguous()


_COMPOSITES = {
    "gaussian_reparameterize": _composite,
    "gaussian_reparameterize_backward": _backward_composite,
}


def _triton_launchers() -> dict:
    if not torch.cuda.is_available():
        return {}
    from aae_fast.kernels import gaussian_reparameterize as kernels

    return {
        "gaussian_reparameterize": kernels.gaussian_reparameterize_fwd,
        "gaussian_reparameterize_backward": kernels.gaussian_reparameterize_bwd,
    }


_backend.register_python_kernels(_COMPOSITES, _triton_launchers())
