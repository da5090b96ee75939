// The stream of aae_fast/philox.h for kLanes consecutive rows at a time, in float32, written with
// 32-bit lane operations only (no 64-bit products, no branches, no libm calls) so that the compiler
// vectorises every loop; on x86-64 each function is also compiled for AVX2 and picked at load time.
// Agrees with the scalar definitions in philox.h bit for bit on the Philox words and to ~2e-7
// relative on the normals (polynomial log, sin and cos; see the tests against the float64 oracle).
#pragma once

#include <stdint.h>

#include "aae_fast/philox.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define AAE_MULTIVERSION __attribute__((target_clones("avx2", "default")))
#else
#define AAE_MULTIVERSION
#endif

namespace aae_fast {
namespace lanes {

constexpr int kLanes = 16;

// Words [4][kLanes] of Philox block `block` for rows first_row .. first_row + kLanes - 1.
struct BlockWords {
  uint32_t w[4][kLanes];
};

// High 32 bits of a * b from four 16 x 16-bit products, all < 2^32.
inline uint32_t mulhi32(uint32_t a, uint32_t b) {
  const uint32_t a_lo = a & 0xFFFFu, a_hi = a >> 16, b_lo = b & 0xFFFFu, b_hi = b >> 16;
  const uint32_t ll = a_lo * b_lo, hl = a_hi * b_lo, lh = a_lo * b_hi, hh = a_hi * b_hi;
  const uint32_t mid = (ll >> 16) + (hl & 0xFFFFu) + (lh & 0xFFFFu);
  return hh + (hl >> 16) + (lh >> 16) + (mid >> 16);
}

AAE_MULTIVERSION
inline void philox_block(uint64_t seed, uint64_t first_row, uint32_t block, BlockWords& out) {
  uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
  for (int l = 0; l < kLanes; ++l) {
    const uint64_t row = first_row + static_cast<uint64_t>(l);
    c0[l] = static_cast<uint32_t>(row);
    c1[l] = static_cast<uint32_t>(row >> 32);
    c2[l] = block;
    c3[l] = 0u;
  }
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < philox::kRounds; ++round) {
    for (int l = 0; l < kLanes; ++l) {
      const uint32_t hi_a = mulhi32(philox::kRoundA, c0[l]), lo_a = philox::kRoundA * c0[l];
      const uint32_t hi_b = mulhi32(philox::kRoundB, c2[l]), lo_b = philox::kRoundB * c2[l];
      const uint32_t n0 = hi_b ^ c1[l] ^ k0;
      const uint32_t n2 = hi_a ^ c3[l] ^ k1;
      c0[l] = n0;
      c1[l] = lo_b;
      c2[l] = n2;
      c3[l] = lo_a;
    }
    k0 += philox::kKeyA;
    k1 += philox::kKeyB;
  }
  for (int l = 0; l < kLanes; ++l) {
    out.w[0][l] = c0[l];
    out.w[1][l] = c1[l];
    out.w[2][l] = c2[l];
    out.w[3][l] = c3[l];
  }
}

// log(u) for normal positive floats: u = m 2^e with m in [sqrt(1/2), sqrt(2)), then
// log(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172, by its odd series to s^9.
inline float log_positive(float u) {
  union {
    float f;
    int32_t i;
  } bits{u};
  const int32_t exponent = (bits.i >> 23) - 127;
  union {
    int32_t i;
    float f;
  } mant{(bits.i & 0x007FFFFF) | 0x3F800000};  // m in [1, 2)
  // 1 when m > sqrt(2) (bit pattern 0x3FB504F3), else 0, computed without a comparison so that
  // gcc if-converts and vectorises the loop.
  const float big = static_cast<float>((mant.i - 0x3FB504F4) >> 31) + 1.0f;
  const float m = mant.f * (1.0f - 0.5f * big);
  const float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
  const float series =
      2.0f * s *
      (1.0f + s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9)))));
  return (static_cast<float>(exponent) + big) * 0.693147180559945f + series;
}

// Box-Muller over lanes: first/second are the pair's words; writes eps_cos and eps_sin.
// The angle 2 pi u2 is reduced exactly: u2 = m / 2^24, quadrant q = round(m / 2^22), and
// t = 2 pi (m - q 2^22) / 2^24 lies in [-pi/4, pi/4] where short Taylor series suffice.
AAE_MULTIVERSION
inline void box_muller(const uint32_t* __restrict first, const uint32_t* __restrict second,
                       float* __restrict eps_cos, float* __restrict eps_sin) {
  for (int l = 0; l < kLanes; ++l) {
    const float u1 = static_cast<float>(static_cast<int32_t>((first[l] >> 8) + 1u)) *
                     philox::kInv2Pow24;
    const float radius = __builtin_sqrtf(-2.0f * log_positive(u1));
    const int32_t m = static_cast<int32_t>(second[l] >> 8);
    const int32_t q = (m + (1 << 21)) >> 22;
    const float t = philox::kTwoPi * philox::kInv2Pow24 * static_cast<float>(m - (q << 22));
    const float t2 = t * t;
    const float s =
        t * (1.0f + t2 * (-1.0f / 6 + t2 * (1.0f / 120 + t2 * (-1.0f / 5040 + t2 * (1.0f / 362880)))));
    const float c =
        1.0f + t2 * (-0.5f + t2 * (1.0f / 24 + t2 * (-1.0f / 720 +
                                                     t2 * (1.0f / 40320 + t2 * (-1.0f / 3628800)))));
    // Rotate (c, s) by q quarter turns: odd q swaps with a sign, q & 2 negates both.
    const float odd = static_cast<float>(q & 1), sign = 1.0f - static_cast<float>(q & 2);
    eps_cos[l] = radius * sign * (c + odd * (-s - c));
    eps_sin[l] = radius * sign * (s + odd * (c - s));
  }
}

}  // namespace lanes
}  // namespace aae_fast
