// CUDA kernels for parzen_log_likelihood. Semantics: csrc/ops.cpp (and the CPU reference
// csrc/cpu/parzen_log_likelihood.cpp); launcher: parzen_log_likelihood.h. Only CUDA headers are
// included, so nvcc compile-checks this file on machines whose torch has no CUDA.
//
// Design (correctness over peak speed).
//   sq_norms_kernel: one warp per row of x or samples; squares summed in double, stored as acc_t.
//   parzen_kernel: a CTA of 256 threads owns kTile = 64 rows of x (grid-stride over row tiles) and
//     walks the samples in tiles of 64. Each sample tile's 64 x 64 dot products are accumulated in
//     registers, 4 x 4 per thread (thread (ty, tx) holds rows ty + 16a and columns tx + 16b), from
//     chunks of kChunk = 16 features staged in shared memory (widened to acc_t on load). The fused
//     epilogue turns them into squared distances d2 = max(|x|^2 + |s|^2 - 2 x.s, 0) and, per row,
//     reduces across the 16 threads holding that row (warp shuffles within 16-lane groups) to the
//     tile's min d2 and sum of exp((min d2 - d2) h); every thread of the group then folds that into
//     the row's running (max, sum) in double, so that nothing overflows or underflows whatever
//     sigma is. Rows and samples outside the tensors are masked; NaN inputs give NaN rows.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "parzen_log_likelihood.h"

namespace aae_fast {
namespace {

constexpr int kThreads = 256;
constexpr int kTile = 64;                   // rows of x, and samples, per tile
constexpr int kChunk = 16;                  // features per shared-memory chunk
constexpr int kGroup = 16;                  // threads sharing a row (tx = 0 .. 15)
constexpr int kPerThread = kTile / kGroup;  // 4 rows x 4 columns per thread
constexpr int64_t kMaxBlocks = 65535;       // grid-stride beyond this
static_assert(kThreads == kGroup * kGroup, "thread (ty, tx) layout");

__device__ __forceinline__ float widen(float v) { return v; }
__device__ __forceinline__ double widen(double v) { return v; }
__device__ __forceinline__ float widen(__half v) { return __half2float(v); }
__device__ __forceinline__ float widen(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename A>
__device__ __forceinline__ A pos_inf();
template <>
__device__ __forceinline__ float pos_inf<float>() {
  return __int_as_float(0x7f800000);
}
template <>
__device__ __forceinline__ double pos_inf<double>() {
  return __longlong_as_double(0x7ff0000000000000LL);
}

template <typename A>
__device__ __forceinline__ A largest();
template <>
__device__ __forceinline__ float largest<float>() {
  return 3.402823466e38f;
}
template <>
__device__ __forceinline__ double largest<double>() {
  return 1.7976931348623157e308;
}

__device__ __forceinline__ float dev_exp(float v) { return expf(v); }
__device__ __forceinline__ double dev_exp(double v) { return exp(v); }

// ---- squared row norms -----------------------------------------------------------------------

template <typename in_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    sq_norms_kernel(const in_t* __restrict__ x, int64_t x_stride0, int64_t x_stride1, int64_t n,
                    const in_t* __restrict__ samples, int64_t s_stride0, int64_t s_stride1,
                    int64_t m, int64_t d, acc_t* __restrict__ norms) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = int64_t{gridDim.x} * (kThreads / 32);
  for (int64_t r = int64_t{blockIdx.x} * (kThreads / 32) + threadIdx.x / 32; r < n + m;
       r += warps) {
    const bool is_x = r < n;
    const in_t* row = is_x ? x + r * x_stride0 : samples + (r - n) * s_stride0;
    const int64_t stride = is_x ? x_stride1 : s_stride1;
    double acc = 0.0;
    for (int64_t k = lane; k < d; k += 32) {
      const double v = static_cast<double>(static_cast<acc_t>(widen(row[k * stride])));
      acc += v * v;
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) norms[r] = static_cast<acc_t>(acc);
  }
}

// ---- the tiled log-likelihood --------------------------------------------------------------------

// Reduction over the 16 lanes of a row group (xor offsets < 16 stay inside the group).
template <typename A>
__device__ __forceinline__ A group_min(A v) {
#pragma unroll
  for (int off = kGroup / 2; off > 0; off >>= 1) {
    const A o = __shfl_xor_sync(0xffffffffu, v, off);
    v = o < v ? o : v;
  }
  return v;
}

template <typename A>
__device__ __forceinline__ A group_sum(A v) {
#pragma unroll
  for (int off = kGroup / 2; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

template <typename in_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    parzen_kernel(const in_t* __restrict__ x, int64_t x_stride0, int64_t x_stride1,
                  const in_t* __restrict__ samples, int64_t s_stride0, int64_t s_stride1,
                  int64_t n, int64_t m, int64_t d, double h64, double log_normalizer,
                  const acc_t* __restrict__ norms, acc_t* __restrict__ out) {
  __shared__ acc_t x_s[kChunk][kTile + 1];  // [feature][row], padded against bank conflicts
  __shared__ acc_t s_s[kChunk][kTile + 1];  // [feature][sample]

  const int tid = threadIdx.x;
  const int tx = tid % kGroup;
  const int ty = tid / kGroup;
  const acc_t h = static_cast<acc_t>(h64 < static_cast<double>(largest<acc_t>())
                                         ? h64
                                         : static_cast<double>(largest<acc_t>()));
  const acc_t* x_norms = norms;
  const acc_t* s_norms = norms + n;
  const int64_t row_tiles = (n + kTile - 1) / kTile;

  for (int64_t rt = blockIdx.x; rt < row_tiles; rt += gridDim.x) {
    const int64_t i0 = rt * kTile;
    double run_max[kPerThread];
    double run_sum[kPerThread];
    acc_t x_sq[kPerThread];
#pragma unroll
    for (int a = 0; a < kPerThread; ++a) {
      const int64_t row = i0 + ty + kGroup * a;
      run_max[a] = -pos_inf<double>();
      run_sum[a] = 0.0;
      x_sq[a] = row < n ? x_norms[row] : acc_t(0);
    }

    for (int64_t j0 = 0; j0 < m; j0 += kTile) {
      acc_t dot[kPerThread][kPerThread];
#pragma unroll
      for (int a = 0; a < kPerThread; ++a) {
#pragma unroll
        for (int b = 0; b < kPerThread; ++b) dot[a][b] = acc_t(0);
      }
      for (int64_t k0 = 0; k0 < d; k0 += kChunk) {
        __syncthreads();  // the previous chunk's readers are done
        for (int e = tid; e < kTile * kChunk; e += kThreads) {
          const int r = e / kChunk;
          const int k = e % kChunk;
          const int64_t f = k0 + k;
          const int64_t xi = i0 + r;
          const int64_t sj = j0 + r;
          x_s[k][r] = (xi < n && f < d)
                          ? static_cast<acc_t>(widen(x[xi * x_stride0 + f * x_stride1]))
                          : acc_t(0);
          s_s[k][r] = (sj < m && f < d)
                          ? static_cast<acc_t>(widen(samples[sj * s_stride0 + f * s_stride1]))
                          : acc_t(0);
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < kChunk; ++k) {
          acc_t xa[kPerThread];
          acc_t sb[kPerThread];
#pragma unroll
          for (int a = 0; a < kPerThread; ++a) xa[a] = x_s[k][ty + kGroup * a];
#pragma unroll
          for (int b = 0; b < kPerThread; ++b) sb[b] = s_s[k][tx + kGroup * b];
#pragma unroll
          for (int a = 0; a < kPerThread; ++a) {
#pragma unroll
            for (int b = 0; b < kPerThread; ++b) dot[a][b] = fma(xa[a], sb[b], dot[a][b]);
          }
        }
      }

      // Fused epilogue: the tile's (min d2, sum exp((min d2 - d2) h)) per row, then the merge.
#pragma unroll
      for (int a = 0; a < kPerThread; ++a) {
        acc_t d2[kPerThread];
        acc_t d_min = pos_inf<acc_t>();
#pragma unroll
        for (int b = 0; b < kPerThread; ++b) {
          const int64_t col = j0 + tx + kGroup * b;
          acc_t v = pos_inf<acc_t>();
          if (col < m) {
            v = (x_sq[a] + s_norms[col]) - acc_t(2) * dot[a][b];
            v = v < acc_t(0) ? acc_t(0) : v;  // cancellation; NaN stays NaN
          }
          d2[b] = v;
          d_min = v < d_min ? v : d_min;
        }
        d_min = group_min(d_min);
        acc_t t_sum = acc_t(0);
#pragma unroll
        for (int b = 0; b < kPerThread; ++b) {
          if (j0 + tx + kGroup * b < m) t_sum += dev_exp((d_min - d2[b]) * h);
        }
        t_sum = group_sum(t_sum);
        const double t_max = -static_cast<double>(d_min) * h64;
        const double ts = static_cast<double>(t_sum);
        if (t_max > run_max[a]) {
          run_sum[a] = run_sum[a] * exp(run_max[a] - t_max) + ts;
          run_max[a] = t_max;
        } else {
          run_sum[a] += ts * exp(t_max - run_max[a]);
        }
      }
    }

    if (tx == 0) {
#pragma unroll
      for (int a = 0; a < kPerThread; ++a) {
        const int64_t row = i0 + ty + kGroup * a;
        if (row < n) out[row] = static_cast<acc_t>(run_max[a] + log(run_sum[a]) + log_normalizer);
      }
    }
  }
}

unsigned grid_for(int64_t work_items) {
  const int64_t blocks = work_items < kMaxBlocks ? work_items : kMaxBlocks;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks);
}

}  // namespace

template <typename in_t, typename acc_t>
cudaError_t launch_parzen_log_likelihood(const in_t* x, int64_t x_stride0, int64_t x_stride1,
                                         const in_t* samples, int64_t s_stride0,
                                         int64_t s_stride1, int64_t n, int64_t m, int64_t d,
                                         double half_inv_var, double log_normalizer,
                                         acc_t* workspace, acc_t* out, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  constexpr int64_t kWarpsPerBlock = kThreads / 32;
  sq_norms_kernel<in_t, acc_t>
      <<<grid_for((n + m + kWarpsPerBlock - 1) / kWarpsPerBlock), kThreads, 0, stream>>>(
          x, x_stride0, x_stride1, n, samples, s_stride0, s_stride1, m, d, workspace);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  parzen_kernel<in_t, acc_t><<<grid_for((n + kTile - 1) / kTile), kThreads, 0, stream>>>(
      x, x_stride0, x_stride1, samples, s_stride0, s_stride1, n, m, d, half_inv_var,
      log_normalizer, workspace, out);
  return cudaGetLastError();
}

#define AAE_INSTANTIATE_PARZEN_LAUNCHER(IN, ACC)                                              \
  template cudaError_t launch_parzen_log_likelihood<IN, ACC>(                                 \
      const IN*, int64_t, int64_t, const IN*, int64_t, int64_t, int64_t, int64_t, int64_t,   \
      double, double, ACC*, ACC*, cudaStream_t);

AAE_INSTANTIATE_PARZEN_LAUNCHER(float, float)
AAE_INSTANTIATE_PARZEN_LAUNCHER(__half, float)
AAE_INSTANTIATE_PARZEN_LAUNCHER(__nv_bfloat16, float)
AAE_INSTANTIATE_PARZEN_LAUNCHER(double, double)

#undef AAE_INSTANTIATE_PARZEN_LAUNCHER

}  // namespace aae_fast
