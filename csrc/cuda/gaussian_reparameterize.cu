// CUDA kernel of the reparameterisation op (semantics: gaussian_reparameterize.h, csrc/ops.cpp; the
// CPU reference is csrc/cpu/gaussian_reparameterize.cpp). Only CUDA headers and philox.h are
// included, so nvcc compile-checks this file on machines whose torch has no CUDA.
//
// One thread per (row i, Philox block b) work item: block b of row i holds words 4b .. 4b + 3, i.e.
// eps[4b - 2 .. 4b + 1] (block 0: the unused w0, w1, then eps[0], eps[1]), so each block is
// computed exactly once and every thread finishes up to four output elements. Grid-stride loop over
// the B * blocks_per_row(D) items with 64-bit indices.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "aae_fast/philox.h"
#include "gaussian_reparameterize.h"

namespace aae_fast {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;
constexpr double kTwoPi = 6.283185307179586476925286766559;

template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};

__device__ __forceinline__ float to_acc(float x) { return x; }
__device__ __forceinline__ double to_acc(double x) { return x; }
__device__ __forceinline__ float to_acc(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_acc(__nv_bfloat16 x) { return __bfloat162float(x); }

__device__ __forceinline__ void from_acc(float* p, float v) { *p = v; }
__device__ __forceinline__ void from_acc(double* p, double v) { *p = v; }
__device__ __forceinline__ void from_acc(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void from_acc(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

__device__ __forceinline__ float dev_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double dev_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float dev_log(float x) { return logf(x); }
__device__ __forceinline__ double dev_log(double x) { return log(x); }
__device__ __forceinline__ float dev_exp(float x) { return expf(x); }
__device__ __forceinline__ double dev_exp(double x) { return exp(x); }
__device__ __forceinline__ void dev_sincos(float x, float* s, float* c) { sincosf(x, s, c); }
__device__ __forceinline__ void dev_sincos(double x, double* s, double* c) { sincos(x, s, c); }

template <typename scalar_t, bool kBackward>
__global__ void __launch_bounds__(kThreads)
    reparameterize_kernel(const int64_t* __restrict__ rng_state, int64_t B, int64_t D,
                          int64_t blocks_per_row, const scalar_t* __restrict__ first,
                          const scalar_t* __restrict__ logvar, scalar_t* __restrict__ out) {
  using acc_t = typename Acc<scalar_t>::type;
  const uint64_t seed = static_cast<uint64_t>(rng_state[0]);
  const uint64_t offset = static_cast<uint64_t>(rng_state[1]);
  const int64_t items = B * blocks_per_row;
  const int64_t stride = int64_t{blockDim.x} * gridDim.x;
  for (int64_t item = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; item < items;
       item += stride) {
    const int64_t i = item / blocks_per_row;
    const int64_t b = item - i * blocks_per_row;
    const philox::Words w =
        philox::row_block(seed, offset + static_cast<uint64_t>(i), static_cast<uint32_t>(b));
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t j0 = 4 * b + 2 * h - 2;  // column of this pair's cosine
      if (j0 < 0 || j0 >= D) continue;
      const acc_t u1 = static_cast<acc_t>(philox::uniform01c(w.w[2 * h]));
      const acc_t u2 = static_cast<acc_t>(philox::uniform01(w.w[2 * h + 1]));
      const acc_t radius = dev_sqrt(acc_t(-2) * dev_log(u1));
      acc_t s, c;
      dev_sincos(static_cast<acc_t>(kTwoPi) * u2, &s, &c);
      const acc_t eps[2] = {radius * c, radius * s};
#pragma unroll
      for (int q = 0; q < 2; ++q) {
        if (j0 + q >= D) break;
        const int64_t idx = i * D + j0 + q;
        const acc_t scale = dev_exp(acc_t(0.5) * to_acc(logvar[idx]));
        const acc_t a = to_acc(first[idx]);
        from_acc(out + idx, kBackward ? acc_t(0.5) * a * scale * eps[q] : a + scale * eps[q]);
      }
    }
  }
}

}  // namespace

template <typename scalar_t>
cudaError_t launch_gaussian_reparameterize(const int64_t* rng_state, int64_t rows, int64_t dim,
                                           const scalar_t* first, const scalar_t* logvar,
                                           scalar_t* out, bool backward, cudaStream_t stream) {
  if (rows <= 0 || dim <= 0) return cudaSuccess;
  const int64_t per_row = philox::blocks_per_row(dim);
  const int64_t items = rows * per_row;
  int64_t blocks = (items + kThreads - 1) / kThreads;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  const unsigned grid = static_cast<unsigned>(blocks);
  if (backward) {
    reparameterize_kernel<scalar_t, true>
        <<<grid, kThreads, 0, stream>>>(rng_state, rows, dim, per_row, first, logvar, out);
  } else {
    reparameterize_kernel<scalar_t, false>
        <<<grid, kThreads, 0, stream>>>(rng_state, rows, dim, per_row, first, logvar, out);
  }
  return cudaGetLastError();
}

#define AAE_INSTANTIATE_REPARAMETERIZE(T)                                                       \
  template cudaError_t launch_gaussian_reparameterize<T>(const int64_t*, int64_t, int64_t,    \
                                                         const T*, const T*, T*, bool,        \
                                                         cudaStream_t);

AAE_INSTANTIATE_REPARAMETERIZE(float)
AAE_INSTANTIATE_REPARAMETERIZE(double)
AAE_INSTANTIATE_REPARAMETERIZE(__half)
AAE_INSTANTIATE_REPARAMETERIZE(__nv_bfloat16)

#undef AAE_INSTANTIATE_REPARAMETERIZE

}  // namespace aae_fast
