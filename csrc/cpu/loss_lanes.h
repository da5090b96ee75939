// Element math and the chunked, deterministic reductions shared by the CPU loss kernels
// (adversarial_loss.cpp, reconstruction_loss.cpp).
//
// Numerics. Every loss term is written through
//   softplus(x) = max(x, 0) + log1p(exp(-|x|))          (never overflows; exact 0 tail at -1e4)
//   sigmoid(x)  = 1 / (1 + e) for x >= 0, e / (1 + e) for x < 0, e = exp(-|x|)
// so logits of any magnitude give finite values. In float32 exp and log1p are short polynomials
// written with plain float operations and selects only (no libm calls, no branches), so gcc
// vectorises the loops that call them; on x86-64 the hot loops are also compiled for x86-64-v3 (AVX2
// + FMA) and x86-64-v4 (AVX-512) and the best clone is picked at load time. Relative error of the
// float32 exp and log1p: ~2 ulp. float64 uses libm (the precise path).
//
// Reductions. A reduction over N elements is split into fixed chunks of kChunk elements; each chunk
// is summed into kLanes double accumulators (lane l takes elements l, l + kLanes, ...), the lanes are
// added in a fixed order, and the chunk partials are added in chunk order. Neither the chunking nor
// the order depends on the number of threads, so results are bitwise reproducible for any
// at::get_num_threads().
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <stdint.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define AAE_LOSS_MULTIVERSION \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define AAE_LOSS_MULTIVERSION
#endif

// The element math and the per-chunk loops are inlined into each clone (a call would run the
// default-target code).
#if defined(__GNUC__)
#define AAE_LOSS_INLINE __attribute__((always_inline)) inline
#else
#define AAE_LOSS_INLINE inline
#endif

namespace aae_fast {
namespace loss_lanes {

constexpr int kLanes = 16;
// Elements per reduction chunk (one partial each) and per backward work item.
constexpr int64_t kChunk = 4096;
static_assert(kChunk % kLanes == 0, "chunks hold whole lane groups");
// Chunks per parallel task: at least 32K elements, enough to amortise waking a thread.
constexpr int64_t kChunksPerTask = 8;

// ---- float32 element math (vectorisable) -------------------------------------------------------
//
// Selects are written on the integer bit patterns (masks, integer min): gcc if-converts and
// vectorises those under the default -ftrapping-math, which it does not do for float comparisons.

AAE_LOSS_INLINE int32_t float_bits(float f) {
  int32_t i;
  std::memcpy(&i, &f, sizeof(i));
  return i;
}

AAE_LOSS_INLINE float bits_float(int32_t i) {
  float f;
  std::memcpy(&f, &i, sizeof(f));
  return f;
}

constexpr int32_t kAbsMask = 0x7FFFFFFF;
constexpr int32_t kInfBits = 0x7F800000;  // bit patterns above this (sign cleared) are NaN
constexpr int32_t kBits87 = 0x42AE0000;   // 87.0f: exp(-87) is the last normal float power of e

// All ones when |x| (as bits, sign cleared) is a NaN, else 0: OR-ed into a result, it turns the
// result into a NaN, so NaN inputs give NaN outputs.
AAE_LOSS_INLINE int32_t nan_mask(int32_t abs_bits) { return abs_bits > kInfBits ? -1 : 0; }

// exp(-a) for a >= 0 given as its bit pattern; 0 for a > 87 (and a = inf). Cody-Waite reduction
// -a = n ln2 + r, |r| <= ln2 / 2, then the degree-7 Taylor polynomial of exp(r) (truncation
// < 6e-9 relative) and the exponent 2^n, n in [-126, 0], built in the bits.
AAE_LOSS_INLINE float exp_neg(int32_t a_bits) {
  const float c = -bits_float(a_bits < kBits87 ? a_bits : kBits87);
  // round(c / ln2) by the 1.5 * 2^23 trick (rint needs SSE4.1 to vectorise).
  const float shifter = 12582912.0f;
  const float n = (c * 1.44269504088896341f + shifter) - shifter;
  const float r = (c - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const float e = p * bits_float((static_cast<int32_t>(n) + 127) << 23);
  const int32_t keep = a_bits <= kBits87 ? -1 : 0;
  return bits_float(float_bits(e) & keep);
}

// log1p(e) for e in [0, 1]: 2 atanh(s) with s = e / (2 + e) in [0, 1/3], odd series to s^15
// (truncation < 2e-9 relative).
AAE_LOSS_INLINE float log1p_unit(float e) {
  const float s = e / (2.0f + e);
  const float s2 = s * s;
  float p = 1.0f / 15;
  p = p * s2 + 1.0f / 13;
  p = p * s2 + 1.0f / 11;
  p = p * s2 + 1.0f / 9;
  p = p * s2 + 1.0f / 7;
  p = p * s2 + 1.0f / 5;
  p = p * s2 + 1.0f / 3;
  p = p * s2 + 1.0f;
  return 2.0f * s * p;
}

// softplus(x) = max(x, 0) + log1p(exp(-|x|)); softplus(inf) = inf, softplus(-inf) = 0.
AAE_LOSS_INLINE float softplus(float x) {
  const int32_t xi = float_bits(x);
  const int32_t ai = xi & kAbsMask;
  const float pos = bits_float(xi & ~(xi >> 31));  // max(x, 0); -0 -> +0
  const float value = pos + log1p_unit(exp_neg(ai));
  return bits_float(float_bits(value) | nan_mask(ai));
}

// sigmoid(x) = 1 / (1 + e) for x >= 0, e / (1 + e) for x < 0, e = exp(-|x|).
AAE_LOSS_INLINE float sigmoid(float x) {
  const int32_t xi = float_bits(x);
  const int32_t ai = xi & kAbsMask;
  const float e = exp_neg(ai);
  const float d = 1.0f / (1.0f + e);
  const int32_t negative = xi >> 31;  // all ones when the sign bit is set
  const float numerator = bits_float((float_bits(e) & negative) | (float_bits(1.0f) & ~negative));
  return bits_float(float_bits(numerator * d) | nan_mask(ai));
}

// ---- float64 element math (libm) ---------------------------------------------------------------

inline double softplus(double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x))); }

inline double sigmoid(double x) {
  const double e = std::exp(-std::fabs(x));
  const double d = 1.0 / (1.0 + e);
  return x >= 0.0 ? d : e * d;
}

// ---- lanes -------------------------------------------------------------------------------------

// Elements per block: values are computed kBlock at a time into a buffer (a plain loop that gcc
// vectorises), then added lane-wise into kLanes double accumulators.
constexpr int64_t kBlock = 256;
static_assert(kBlock % kLanes == 0 && kChunk % kBlock == 0, "blocks hold whole lane groups");

// acc[l] += v[j + l] over the block v[0, kBlock).
template <typename acc_t>
AAE_LOSS_INLINE void add_block(const acc_t* v, double* acc) {
  for (int64_t j = 0; j < kBlock; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] += static_cast<double>(v[j + l]);
  }
}

// Sum of kLanes double accumulators in a fixed pairwise order.
AAE_LOSS_INLINE double sum_lanes(const double* acc) {
  double half[kLanes / 2];
  for (int l = 0; l < kLanes / 2; ++l) half[l] = acc[l] + acc[l + kLanes / 2];
  double quarter[kLanes / 4];
  for (int l = 0; l < kLanes / 4; ++l) quarter[l] = half[l] + half[l + kLanes / 4];
  return (quarter[0] + quarter[2]) + (quarter[1] + quarter[3]);
}

// ---- dtypes ------------------------------------------------------------------------------------

// The compute type: double for double inputs, float otherwise (float, c10::Half, c10::BFloat16).
template <typename scalar_t>
using acc_type = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;

// ---- chunked drivers ---------------------------------------------------------------------------

inline int64_t num_chunks(int64_t n) { return (n + kChunk - 1) / kChunk; }

// partials[c] = chunk_sum(c) for every chunk c of [0, chunks), in parallel; returns
// the partials added in chunk order. chunk_sum must depend only on its chunk.
template <typename ChunkSum>
double sum_chunks(int64_t chunks, const ChunkSum& chunk_sum) {
  if (chunks == 0) return 0.0;
  if (chunks == 1) return chunk_sum(int64_t{0});
  std::vector<double> partials(static_cast<size_t>(chunks));
  at::parallel_for(0, chunks, kChunksPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) partials[static_cast<size_t>(c)] = chunk_sum(c);
  });
  double total = 0.0;
  for (const double p : partials) total += p;
  return total;
}

// body(begin, end) for element ranges [begin, end) of at most kChunk elements, in parallel.
template <typename Body>
void for_each_chunk(int64_t n, const Body& body) {
  at::parallel_for(0, num_chunks(n), kChunksPerTask, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) body(c * kChunk, std::min(n, (c + 1) * kChunk));
  });
}

}  // namespace loss_lanes
}  // namespace aae_fast

namespace aae_fast {
namespace cpu {

// The value of a 0-dim CPU gradient (the scalar loss's upstream gradient), read through its data
// pointer. `grad.item()` would do the same on CPU, but through the dispatcher as
// aten::_local_scalar_dense, the op the no-host-sync tests look for (on CUDA it is a device sync,
// and these kernels' CUDA twins read the gradient on the device instead).
inline double scalar_value(const at::Tensor& grad) {
  double value = 0.0;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "scalar_value", [&] {
    value = static_cast<double>(*grad.const_data_ptr<scalar_t>());
  });
  return value;
}

}  // namespace cpu
}  // namespace aae_fast
