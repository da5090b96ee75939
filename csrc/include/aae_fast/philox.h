// Philox4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as easy as 1, 2, 3", SC'11)
// and the prior-sampling stream layout that every backend of aae_fast follows.
//
// This header is the contract between the three implementations of prior sampling: the C++ CPU
// kernels (csrc/cpu), the CUDA kernels (csrc/cuda) and the Triton kernels (kernels/). It is
// torch-free and host/device portable so that nvcc compiles it without torch headers.
//
// Stream layout (version 1). A call draws `n` rows from a state (seed, offset):
//   key                 = (lo32(seed), hi32(seed))
//   row counter r_i     = offset + i                                   (uint64, wraps)
//   Philox block k of i = philox(counter = (lo32(r_i), hi32(r_i), k, 0), key) -> words w[4k .. 4k+3]
//   w[0]                : the component / segment / class uniform     u = uniform01(w[0])
//   w[1]                : the within-segment uniform (swiss roll)      t = uniform01(w[1])
//   w[2 + 2p], w[3 + 2p]: Box-Muller pair p, giving eps[2p] (cos) and eps[2p + 1] (sin)
// so a row needs words_per_row(D) = 2 + 2 * ceil(D / 2) words, i.e. blocks_per_row(D) Philox
// blocks, and the call advances the state's offset by n. Rows never share counters, inside a call
// or across calls, so any backend may compute any row in any order and get the same numbers.
//
// Additional consumer: gaussian_reparameterize (z = mu + exp(logvar / 2) * eps, mu [B, D]). Element
// (i, j) of a call with state (seed, offset) uses row counter offset + i and eps[j] of the
// Box-Muller pairs above (words 2 + 2p, 3 + 2p; w[0], w[1] are left unused), so its eps equals the
// eps of sample_gaussian_mixture for the same state (loc 0, scale 1). The op reads the state without
// advancing it (its backward regenerates eps from the same state); the Python entry point advances
// the offset by B.
//
// Conversions keep 24 bits so that every uniform is exact in float32 and equal on every backend:
//   uniform01(w)  = (w >> 8) * 2^-24          in [0, 1)
//   uniform01c(w) = ((w >> 8) + 1) * 2^-24    in (0, 1], safe for log()
// The normals then differ between backends only by the rounding of log, sqrt, sin and cos.
// kTwoPi below is for float32 compute; float64 compute uses 2 pi as a double.
#pragma once

#include <stdint.h>

#if defined(__CUDACC__)
#define AAE_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define AAE_HOST_DEVICE inline
#endif

namespace aae_fast {
namespace philox {

constexpr uint32_t kKeyA = 0x9E3779B9u;    // golden ratio
constexpr uint32_t kKeyB = 0xBB67AE85u;    // sqrt(3) - 1
constexpr uint32_t kRoundA = 0xD2511F53u;
constexpr uint32_t kRoundB = 0xCD9E8D57u;
constexpr int kRounds = 10;
constexpr float kTwoPi = 6.283185307179586f;
constexpr float kInv2Pow24 = 5.9604644775390625e-08f;  // 2^-24

struct Words {
  uint32_t w[4];
};

AAE_HOST_DEVICE void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t product = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  hi = static_cast<uint32_t>(product >> 32);
  lo = static_cast<uint32_t>(product);
}

// One Philox4x32-10 block for counter (c0, c1, c2, c3) and key (k0, k1).
AAE_HOST_DEVICE Words philox4x32(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                                 uint32_t k1) {
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int round = 0; round < kRounds; ++round) {
    uint32_t hi_a, lo_a, hi_b, lo_b;
    mulhilo(kRoundA, c0, hi_a, lo_a);
    mulhilo(kRoundB, c2, hi_b, lo_b);
    const uint32_t n0 = hi_b ^ c1 ^ k0;
    const uint32_t n2 = hi_a ^ c3 ^ k1;
    c0 = n0;
    c1 = lo_b;
    c2 = n2;
    c3 = lo_a;
    k0 += kKeyA;
    k1 += kKeyB;
  }
  Words out;
  out.w[0] = c0;
  out.w[1] = c1;
  out.w[2] = c2;
  out.w[3] = c3;
  return out;
}

// Block `block` of row counter `row` (= offset + row index) under `seed`.
AAE_HOST_DEVICE Words row_block(uint64_t seed, uint64_t row, uint32_t block) {
  return philox4x32(static_cast<uint32_t>(row), static_cast<uint32_t>(row >> 32), block, 0u,
                    static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

AAE_HOST_DEVICE int64_t words_per_row(int64_t dim) { return 2 + 2 * ((dim + 1) / 2); }

AAE_HOST_DEVICE int64_t blocks_per_row(int64_t dim) { return (words_per_row(dim) + 3) / 4; }

// Uniform in [0, 1), exact in float32.
AAE_HOST_DEVICE float uniform01(uint32_t w) { return static_cast<float>(w >> 8) * kInv2Pow24; }

// Uniform in (0, 1], exact in float32; the Box-Muller radius takes its log.
AAE_HOST_DEVICE float uniform01c(uint32_t w) {
  return static_cast<float>((w >> 8) + 1u) * kInv2Pow24;
}

// Index of the category that uniform `u` falls in under cumulative weights cum[0..K-1] (cum[K-1]
// is 1): the count of k < K - 1 with u >= cum[k]. The last bin is never compared, so rounding in
// cum[K-1] cannot push a draw out of range.
template <typename T>
AAE_HOST_DEVICE int64_t pick_category(T u, const T* cum, int64_t num_categories) {
  int64_t index = 0;
  for (int64_t k = 0; k + 1 < num_categories; ++k) index += (u >= cum[k]) ? 1 : 0;
  return index;
}

}  // namespace philox
}  // namespace aae_fast
