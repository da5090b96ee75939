"""The prior-sampling random stream of csrc/include/aae_fast/philox.h, in plain torch ops.

This is the pure-PyTorch composite behind the sampling ops when the C++ extension is not built, and
the float64 oracle the tests hold the C++, CUDA and Triton kernels to: it draws exactly the same
uniforms (they are exact in float32) and computes the transforms in the precision it is given.

Unsigned 32-bit arithmetic is emulated in int64: a 32 x 32-bit product is split into two 16 x 32-bit
partial products (< 2^48 each) so that nothing overflows.
"""

from __future__ import annotations

import math

import torch

MASK32 = 0xFFFFFFFF
KEY_A, KEY_B = 0x9E3779B9, 0xBB67AE85
ROUND_A, ROUND_B = 0xD2511F53, 0xCD9E8D57
ROUNDS = 10
INV_2_POW_24 = 2.0**-24


def words_per_row(dim: int) -> int:
    return 2 + 2 * ((dim + 1) // 2)


def blocks_per_row(dim: int) -> int:
    return (words_per_row(dim) + 3) // 4


def _mulhilo(const: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(hi, lo) 32-bit halves of const * x for a 32-bit constant and int64 x in [0, 2^32)."""
    t_lo = x * (const & 0xFFFF)
    t_hi = x * (const >> 16)
    lo = (((t_hi & 0xFFFF) << 16) + t_lo) & MASK32
    hi = (t_hi + (t_lo >> 16)) >> 16
    return hi, lo


def philox4x32(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 on int64 tensors holding uint32 values; returns four such tensors."""
    for _ in range(ROUNDS):
        hi_a, lo_a = _mulhilo(ROUND_A, c0)
        hi_b, lo_b = _mulhilo(ROUND_B, c2)
        c0, c1, c2, c3 = hi_b ^ c1 ^ k0, lo_b, hi_a ^ c3 ^ k1, lo_a
        k0 = (k0 + KEY_A) & MASK32
        k1 = (k1 + KEY_B) & MASK32
    return c0, c1, c2, c3


def row_words(rng_state: torch.Tensor, n: int, num_blocks: int) -> torch.Tensor:
    """The first 4 * num_blocks words of rows 0..n-1 of a call with state [seed, offset]: [n, 4B]."""
    seed, offset = rng_state[0], rng_state[1]
    # uint64 row counters, split into 32-bit halves; int64 arithmetic wraps like uint64.
    rows = offset + torch.arange(n, device=rng_state.device, dtype=torch.int64)
    c0 = rows & MASK32
    c1 = (rows >> 32) & MASK32
    k0 = seed & MASK32
    k1 = (seed >> 32) & MASK32
    blocks = []
    for block in range(num_blocks):
        c2 = torch.full_like(c0, block)
        blocks.append(torch.stack(philox4x32(c0, c1, c2, torch.zeros_like(c0), k0, k1), dim=1))
    return torch.cat(blocks, dim=1)


def uniform01(words: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return (words >> 8).to(dtype) * INV_2_POW_24


def uniform01c(words: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return ((words >> 8) + 1).to(dtype) * INV_2_POW_24


def pick_category(u: torch.Tensor, cum_weights: torch.Tensor) -> torch.Tensor:
    """Count of k < K - 1 with u >= cum_weights[k] (the last bin is never compared)."""
    return (u[:, None] >= cum_weights[None, :-1]).sum(dim=1)


def categories(words: torch.Tensor, cum_weights: torch.Tensor, labels: torch.Tensor | None):
    if labels is not None:
        return labels
    return pick_category(uniform01(words[:, 0], cum_weights.dtype), cum_weights)


def normals(words: torch.Tensor, dim: int, dtype: torch.dtype) -> torch.Tensor:
    """eps [n, dim] from the Box-Muller pairs in words 2, 3, 4, 5, ..."""
    pairs = (dim + 1) // 2
    first = words[:, 2 : 2 + 2 * pairs : 2]
    second = words[:, 3 : 3 + 2 * pairs : 2]
    radius = torch.sqrt(-2.0 * torch.log(uniform01c(first, dtype)))
    angle = (2 * math.pi) * uniform01(second, dtype)
    eps = torch.stack((radius * torch.cos(angle), radius * torch.sin(angle)), dim=2)
    return eps.reshape(words.shape[0], 2 * pairs)[:, :dim]


def advance(rng_state: torch.Tensor, n: int) -> None:
    rng_state[1:].add_(n)


def sample_gaussian_mixture(rng_state, n, loc, scale, cum_weights, labels, dtype):
    dim = loc.shape[1]
    words = row_words(rng_state, n, blocks_per_row(dim))
    advance(rng_state, n)
    c = categories(words, cum_weights, labels)
    eps = normals(words, dim, loc.dtype)
    if scale.dim() == 3:
        z = loc[c] + torch.einsum("njk,nk->nj", scale.tril()[c], eps)
    else:
        z = loc[c] + scale[c] * eps
    return z.to(dtype)


def sample_swiss_roll(rng_state, n, cum_weights, labels, radius, turns, dtype):
    words = row_words(rng_state, n, 1)
    advance(rng_state, n)
    c = categories(words, cum_weights, labels)
    num_segments = cum_weights.shape[0]
    t = (c.to(cum_weights.dtype) + uniform01(words[:, 1], cum_weights.dtype)) / num_segments
    root = torch.sqrt(t)
    angle = (2 * math.pi * turns) * root
    z = torch.stack((radius * root * torch.cos(angle), radius * root * torch.sin(angle)), dim=1)
    return z.to(dtype)


def sample_categorical(rng_state, n, cum_weights, labels, dtype):
    words = row_words(rng_state, n, 1)
    advance(rng_state, n)
    c = categories(words, cum_weights, labels)
    return torch.nn.functional.one_hot(c, cum_weights.shape[0]).to(dtype)
