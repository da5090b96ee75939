// Device helpers shared by the CUDA loss kernels (adversarial_loss.cu, reconstruction_loss.cu):
// stable element math, dtype conversion, and a deterministic two-pass sum.
//
// The sum of term(i) over i in [0, n) runs in two kernels:
//   1. partials_kernel: block b owns the contiguous tile [b kTile, (b + 1) kTile); each thread adds
//      its kItems elements (strided by kThreads, so loads coalesce) in acc_t, then the block adds
//      the thread sums with a fixed shared-memory tree and writes partials[b];
//   2. finish_kernel: one block adds the partials (thread t takes t, t + kThreads, ... in order, in
//      double), reduces with the same fixed tree and writes the scaled loss.
// No atomics: the order of every addition depends on n only, so results are bitwise reproducible
// run to run (and CUDA-graph safe: no host synchronisation, no memset).
//
// partials_kernel takes up to two segments (a, b), each a term functor and its element count, so
// that adversarial_d_loss sums real and fake logits in one launch; blocks [0, blocks(n_a)) take
// segment a, the rest segment b. finish_kernel writes loss = sum_a * scale_a + sum_b * scale_b.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

namespace aae_fast {
namespace loss_cuda {

constexpr int kThreads = 256;
constexpr int kItems = 16;
constexpr int64_t kTile = int64_t{kThreads} * kItems;  // elements per block of pass 1

__host__ __device__ inline int64_t num_tiles(int64_t n) { return (n + kTile - 1) / kTile; }

// ---- dtype conversion (16-bit values widen to float) --------------------------------------------

__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ double to_acc(double v) { return v; }
__device__ __forceinline__ float to_acc(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_acc(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_acc(float v);
template <>
__device__ __forceinline__ float from_acc<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half from_acc<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <typename T>
__device__ __forceinline__ T from_acc(double v) {
  return static_cast<T>(v);
}

// The compute type: double for double, float for float, __half and __nv_bfloat16.
template <typename T>
struct AccType {
  using type = float;
};
template <>
struct AccType<double> {
  using type = double;
};
template <typename T>
using acc_t_of = typename AccType<T>::type;

// ---- stable element math ---------------------------------------------------------------------------

// softplus(x) = max(x, 0) + log1p(exp(-|x|)): finite for every finite x.
__device__ __forceinline__ float softplus(float x) {
  return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
}
__device__ __forceinline__ double softplus(double x) { return fmax(x, 0.0) + log1p(exp(-fabs(x))); }

// sigmoid(x) = 1 / (1 + e) for x >= 0, e / (1 + e) for x < 0, e = exp(-|x|).
__device__ __forceinline__ float sigmoid(float x) {
  const float e = expf(-fabsf(x));
  const float d = 1.0f / (1.0f + e);
  return x >= 0.0f ? d : e * d;
}
__device__ __forceinline__ double sigmoid(double x) {
  const double e = exp(-fabs(x));
  const double d = 1.0 / (1.0 + e);
  return x >= 0.0 ? d : e * d;
}

// ---- the two-pass sum ------------------------------------------------------------------------------

// Sum of `value` over the block's threads with a fixed tree; the result is valid in thread 0.
template <typename acc_t>
__device__ __forceinline__ acc_t block_tree_sum(acc_t value, acc_t* shared) {
  shared[threadIdx.x] = value;
  __syncthreads();
#pragma unroll
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (static_cast<int>(threadIdx.x) < stride) shared[threadIdx.x] += shared[threadIdx.x + stride];
    __syncthreads();
  }
  return shared[0];
}

// Pass 1: one partial per tile of either segment.
template <typename acc_t, typename TermA, typename TermB>
__global__ void __launch_bounds__(kThreads)
    partials_kernel(TermA term_a, int64_t n_a, TermB term_b, int64_t n_b,
                    acc_t* __restrict__ partials) {
  __shared__ acc_t shared[kThreads];
  const int64_t tiles_a = num_tiles(n_a);
  const int64_t tile = blockIdx.x;
  acc_t sum = 0;
  if (tile < tiles_a) {
    const int64_t begin = tile * kTile;
#pragma unroll
    for (int k = 0; k < kItems; ++k) {
      const int64_t i = begin + int64_t{k} * kThreads + threadIdx.x;
      if (i < n_a) sum += term_a(i);
    }
  } else {
    const int64_t begin = (tile - tiles_a) * kTile;
#pragma unroll
    for (int k = 0; k < kItems; ++k) {
      const int64_t i = begin + int64_t{k} * kThreads + threadIdx.x;
      if (i < n_b) sum += term_b(i);
    }
  }
  const acc_t total = block_tree_sum(sum, shared);
  if (threadIdx.x == 0) partials[tile] = total;
}

// Pass 2: loss = sum(partials[0, tiles_a)) * scale_a + sum(partials[tiles_a, tiles_a + tiles_b))
// * scale_b, added in double. A segment with zero elements and scale 1/0 gives NaN (0 * inf), like
// torch.mean over nothing; an absent segment b has scale_b = 0.
template <typename acc_t>
__global__ void __launch_bounds__(kThreads)
    finish_kernel(const acc_t* __restrict__ partials, int64_t tiles_a, double scale_a,
                  int64_t tiles_b, double scale_b, acc_t* __restrict__ loss) {
  __shared__ double shared[kThreads];
  double sum_a = 0.0, sum_b = 0.0;
  for (int64_t p = threadIdx.x; p < tiles_a; p += kThreads) sum_a += static_cast<double>(partials[p]);
  for (int64_t p = threadIdx.x; p < tiles_b; p += kThreads) {
    sum_b += static_cast<double>(partials[tiles_a + p]);
  }
  const double total_a = block_tree_sum(sum_a, shared);
  __syncthreads();  // shared is reused
  const double total_b = block_tree_sum(sum_b, shared);
  if (threadIdx.x == 0) *loss = static_cast<acc_t>(total_a * scale_a + total_b * scale_b);
}

// A segment that contributes nothing (for the one-segment losses).
template <typename acc_t>
struct NoTerm {
  __device__ acc_t operator()(int64_t) const { return acc_t(0); }
};

// Enqueues both passes; partials must hold num_tiles(n_a) + num_tiles(n_b) values.
template <typename acc_t, typename TermA, typename TermB>
cudaError_t launch_sum(const TermA& term_a, int64_t n_a, double scale_a, const TermB& term_b,
                       int64_t n_b, double scale_b, acc_t* partials, acc_t* loss,
                       cudaStream_t stream) {
  const int64_t tiles_a = num_tiles(n_a), tiles_b = num_tiles(n_b);
  if (tiles_a + tiles_b > 0) {
    partials_kernel<acc_t><<<static_cast<unsigned>(tiles_a + tiles_b), kThreads, 0, stream>>>(
        term_a, n_a, term_b, n_b, partials);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  finish_kernel<acc_t><<<1, kThreads, 0, stream>>>(partials, tiles_a, scale_a, tiles_b, scale_b, loss);
  return cudaGetLastError();
}

// Grid for an elementwise kernel over n elements (grid-stride beyond it).
inline unsigned elementwise_grid(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  const int64_t capped = blocks < 65536 ? blocks : 65536;
  return static_cast<unsigned>(capped < 1 ? 1 : capped);
}

}  // namespace loss_cuda
}  // namespace aae_fast
