// CUDA kernels for mmd and mmd_backward. Semantics: csrc/ops.cpp (and the CPU reference
// csrc/cpu/mmd.cpp); launchers: mmd.h. Only CUDA headers are included, so nvcc compile-checks this
// file on machines whose torch has no CUDA.
//
// Design (correctness over peak speed; the layout of parzen_log_likelihood.cu).
//   sq_norms_kernel: one warp per row of x or y; squares summed in double, stored as acc_t.
//   tile_dots: a CTA of 256 threads computes one 64 x 64 tile of dot products a_i . b_j, 4 x 4 per
//     thread (thread (ty, tx) holds rows ty + 16 r and columns tx + 16 c), from chunks of 16
//     features staged in shared memory (widened to acc_t on load).
//   rows_kernel (forward): a CTA owns 64 rows of a (grid-stride over row tiles) and walks b's
//     tiles; each pair's kernel value, weighted (within one set: 2 above the diagonal, 1 or 0 on
//     it, the tiles below skipped), is summed per row in double (16-lane shuffles) into row_sums.
//   combine_kernel: one CTA adds the three row_sums arrays in a fixed order (strided partial sums,
//     then a shared-memory tree) and writes the result: deterministic, no atomics.
//   grad_kernel (backward): a CTA owns 64 rows of a and kOut output features (grid-stride over
//     both); for every tile of a's own set and then of the other set it forms W' (4 x 4 per
//     thread), adds its row sums (double), stages W' and the tile's kOut features of z in shared
//     memory (the same buffer as the dot staging, after a barrier) and accumulates W' z. Every
//     output element is written by one thread: deterministic.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "mmd.h"

namespace aae_fast {
namespace {

constexpr int kThreads = 256;
constexpr int kTile = 64;                   // rows of a, and columns b, per tile
constexpr int kChunk = 16;                  // features per shared-memory chunk of the dot products
constexpr int kGroup = 16;                  // threads sharing a row (tx = 0 .. 15)
constexpr int kPerThread = kTile / kGroup;  // 4 rows x 4 columns per thread
constexpr int64_t kMaxBlocks = 65535;       // grid-stride beyond this
static_assert(kThreads == kGroup * kGroup, "thread (ty, tx) layout");

// Output features per backward CTA: 64 in float (shared: 33 KiB), 16 in double (42 KiB).
template <typename acc_t>
struct OutChunk {
  static constexpr int value = sizeof(acc_t) == 8 ? 16 : 64;
};

__device__ __forceinline__ float widen(float v) { return v; }
__device__ __forceinline__ double widen(double v) { return v; }
__device__ __forceinline__ float widen(__half v) { return __half2float(v); }
__device__ __forceinline__ float widen(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename out_t>
__device__ __forceinline__ out_t narrow_to(float v);
template <>
__device__ __forceinline__ float narrow_to<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half narrow_to<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 narrow_to<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <typename out_t>
__device__ __forceinline__ out_t narrow_to(double v) {
  return static_cast<out_t>(v);
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

// A double constant in acc_t, clamped to acc_t's range (so that 0 * h stays 0 in float).
template <typename acc_t>
__device__ __forceinline__ acc_t clamp_to(double v) {
  const double big = static_cast<double>(largest<acc_t>());
  return static_cast<acc_t>(v > big ? big : (v < -big ? -big : v));
}

// Sum over the 16 lanes of a row group (xor offsets < 16 stay inside the group).
__device__ __forceinline__ double group_sum(double v) {
#pragma unroll
  for (int off = kGroup / 2; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

unsigned grid_for(int64_t work_items) {
  const int64_t blocks = work_items < kMaxBlocks ? work_items : kMaxBlocks;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks);
}

// ---- squared row norms --------------------------------------------------------------------------

template <typename in_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    sq_norms_kernel(const in_t* __restrict__ x, int64_t x_stride0, int64_t x_stride1, int64_t n,
                    const in_t* __restrict__ y, int64_t y_stride0, int64_t y_stride1, int64_t m,
                    int64_t d, acc_t* __restrict__ norms) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = int64_t{gridDim.x} * (kThreads / 32);
  for (int64_t r = int64_t{blockIdx.x} * (kThreads / 32) + threadIdx.x / 32; r < n + m;
       r += warps) {
    const bool is_x = r < n;
    const in_t* row = is_x ? x + r * x_stride0 : y + (r - n) * y_stride0;
    const int64_t stride = is_x ? x_stride1 : y_stride1;
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

// ---- one 64 x 64 tile of dot products -----------------------------------------------------------

// dot[r][c] = a_{i0 + ty + 16 r} . b_{j0 + tx + 16 c} (0 outside the tensors). Every thread of the
// CTA must call it; it starts with a barrier, so the staging buffers may alias memory the caller
// used before the call.
template <typename in_t, typename acc_t>
__device__ __forceinline__ void tile_dots(const in_t* __restrict__ a, int64_t a_stride0,
                                          int64_t a_stride1, int64_t na, int64_t i0,
                                          const in_t* __restrict__ b, int64_t b_stride0,
                                          int64_t b_stride1, int64_t nb, int64_t j0, int64_t d,
                                          acc_t (*a_s)[kTile + 1], acc_t (*b_s)[kTile + 1],
                                          acc_t dot[kPerThread][kPerThread]) {
  const int tid = threadIdx.x;
  const int tx = tid % kGroup;
  const int ty = tid / kGroup;
#pragma unroll
  for (int r = 0; r < kPerThread; ++r) {
#pragma unroll
    for (int c = 0; c < kPerThread; ++c) dot[r][c] = acc_t(0);
  }
  __syncthreads();
  for (int64_t k0 = 0; k0 < d; k0 += kChunk) {
    for (int e = tid; e < kTile * kChunk; e += kThreads) {
      const int r = e / kChunk;
      const int k = e % kChunk;
      const int64_t f = k0 + k;
      const int64_t ai = i0 + r;
      const int64_t bj = j0 + r;
      a_s[k][r] = (ai < na && f < d) ? static_cast<acc_t>(widen(a[ai * a_stride0 + f * a_stride1]))
                                     : acc_t(0);
      b_s[k][r] = (bj < nb && f < d) ? static_cast<acc_t>(widen(b[bj * b_stride0 + f * b_stride1]))
                                     : acc_t(0);
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kChunk; ++k) {
      acc_t av[kPerThread];
      acc_t bv[kPerThread];
#pragma unroll
      for (int r = 0; r < kPerThread; ++r) av[r] = a_s[k][ty + kGroup * r];
#pragma unroll
      for (int c = 0; c < kPerThread; ++c) bv[c] = b_s[k][tx + kGroup * c];
#pragma unroll
      for (int r = 0; r < kPerThread; ++r) {
#pragma unroll
        for (int c = 0; c < kPerThread; ++c) dot[r][c] = fma(av[r], bv[c], dot[r][c]);
      }
    }
    __syncthreads();  // the chunk's readers are done before the next chunk is staged
  }
}

// ---- forward ------------------------------------------------------------------------------------

// out[i] = sum_j weight_ij k(a_i, b_j) (double), weight = 1, or, when symmetric (b is a), 2 above
// the diagonal, diag_weight on it, 0 below.
template <typename in_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    rows_kernel(const in_t* __restrict__ a, int64_t a_stride0, int64_t a_stride1, int64_t na,
                const in_t* __restrict__ b, int64_t b_stride0, int64_t b_stride1, int64_t nb,
                int64_t d, const acc_t* __restrict__ a_norms, const acc_t* __restrict__ b_norms,
                MmdBandwidths bw, bool symmetric, double diag_weight, double* __restrict__ out) {
  __shared__ acc_t a_s[kChunk][kTile + 1];  // [feature][row], padded against bank conflicts
  __shared__ acc_t b_s[kChunk][kTile + 1];
  const int tx = threadIdx.x % kGroup;
  const int ty = threadIdx.x / kGroup;
  const int64_t row_tiles = (na + kTile - 1) / kTile;

  for (int64_t rt = blockIdx.x; rt < row_tiles; rt += gridDim.x) {
    const int64_t i0 = rt * kTile;
    double row_acc[kPerThread];
    acc_t a_sq[kPerThread];
#pragma unroll
    for (int r = 0; r < kPerThread; ++r) {
      const int64_t row = i0 + ty + kGroup * r;
      row_acc[r] = 0.0;
      a_sq[r] = row < na ? a_norms[row] : acc_t(0);
    }
    for (int64_t j0 = symmetric ? i0 : 0; j0 < nb; j0 += kTile) {
      acc_t dot[kPerThread][kPerThread];
      tile_dots<in_t, acc_t>(a, a_stride0, a_stride1, na, i0, b, b_stride0, b_stride1, nb, j0, d,
                             a_s, b_s, dot);
#pragma unroll
      for (int r = 0; r < kPerThread; ++r) {
        const int64_t row = i0 + ty + kGroup * r;
        acc_t part = acc_t(0);
#pragma unroll
        for (int c = 0; c < kPerThread; ++c) {
          const int64_t col = j0 + tx + kGroup * c;
          if (row >= na || col >= nb || (symmetric && col < row)) continue;
          const bool self = symmetric && col == row;
          const acc_t weight = self ? static_cast<acc_t>(diag_weight) : acc_t(symmetric ? 2 : 1);
          acc_t v = (a_sq[r] + b_norms[col]) - acc_t(2) * dot[r][c];
          v = v < acc_t(0) ? acc_t(0) : v;  // cancellation; NaN stays NaN
          if (self) v = acc_t(0);
          acc_t k = acc_t(0);
          for (int s = 0; s < bw.count; ++s) k += dev_exp(-v * clamp_to<acc_t>(bw.h[s]));
          part += weight * k;
        }
        row_acc[r] += static_cast<double>(part);
      }
    }
#pragma unroll
    for (int r = 0; r < kPerThread; ++r) {
      const double total = group_sum(row_acc[r]);
      const int64_t row = i0 + ty + kGroup * r;
      if (tx == 0 && row < na) out[row] = total;
    }
  }
}

template <typename acc_t>
__global__ void __launch_bounds__(kThreads)
    combine_kernel(const double* __restrict__ rows_xx, int64_t n,
                   const double* __restrict__ rows_yy, int64_t m,
                   const double* __restrict__ rows_xy, double wxx, double wyy, double wxy,
                   acc_t* __restrict__ out) {
  __shared__ double red[3][kThreads];
  const int tid = threadIdx.x;
  double sxx = 0.0, syy = 0.0, sxy = 0.0;
  for (int64_t i = tid; i < n; i += kThreads) {
    sxx += rows_xx[i];
    sxy += rows_xy[i];
  }
  for (int64_t j = tid; j < m; j += kThreads) syy += rows_yy[j];
  red[0][tid] = sxx;
  red[1][tid] = syy;
  red[2][tid] = sxy;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half >>= 1) {
    if (tid < half) {
#pragma unroll
      for (int q = 0; q < 3; ++q) red[q][tid] += red[q][tid + half];
    }
    __syncthreads();
  }
  if (tid == 0) out[0] = static_cast<acc_t>(wxx * red[0][0] + wyy * red[1][0] - wxy * red[2][0]);
}

// ---- backward -----------------------------------------------------------------------------------

// Adds one tile of z (rows j0 ..) to the CTA's accumulators: W' (4 x 4 per thread), its row sums
// into rs, and W' z[:, f0 .. f0 + kOut) into acc (thread (ty, tx): rows ty + 16 r, features
// tx + 16 q).
template <typename in_t, typename acc_t, int kOut>
__device__ __forceinline__ void grad_tile(
    const in_t* __restrict__ a, int64_t a_stride0, int64_t a_stride1, int64_t na, int64_t i0,
    const in_t* __restrict__ z, int64_t z_stride0, int64_t z_stride1, int64_t nz, int64_t j0,
    int64_t d, int64_t f0, const acc_t* a_sq, const acc_t* __restrict__ z_norms,
    const MmdBandwidths& bw, double coef, bool same, acc_t* smem, double* rs,
    acc_t acc[kPerThread][kOut / kGroup]) {
  const int tid = threadIdx.x;
  const int tx = tid % kGroup;
  const int ty = tid / kGroup;
  auto a_s = reinterpret_cast<acc_t(*)[kTile + 1]>(smem);
  auto b_s = reinterpret_cast<acc_t(*)[kTile + 1]>(smem + kChunk * (kTile + 1));
  auto w_s = reinterpret_cast<acc_t(*)[kTile + 1]>(smem);
  auto z_s = reinterpret_cast<acc_t(*)[kOut + 1]>(smem + kTile * (kTile + 1));

  acc_t dot[kPerThread][kPerThread];
  tile_dots<in_t, acc_t>(a, a_stride0, a_stride1, na, i0, z, z_stride0, z_stride1, nz, j0, d, a_s,
                         b_s, dot);
  // tile_dots ends with a barrier: the staging buffers are free for W' and z.
#pragma unroll
  for (int r = 0; r < kPerThread; ++r) {
    const int64_t row = i0 + ty + kGroup * r;
    acc_t part = acc_t(0);
#pragma unroll
    for (int c = 0; c < kPerThread; ++c) {
      const int64_t col = j0 + tx + kGroup * c;
      acc_t w = acc_t(0);
      if (row < na && col < nz && !(same && col == row)) {
        acc_t v = (a_sq[r] + z_norms[col]) - acc_t(2) * dot[r][c];
        v = v < acc_t(0) ? acc_t(0) : v;
        for (int s = 0; s < bw.count; ++s) {
          w += clamp_to<acc_t>(2.0 * coef * bw.h[s]) * dev_exp(-v * clamp_to<acc_t>(bw.h[s]));
        }
      }
      w_s[ty + kGroup * r][tx + kGroup * c] = w;
      part += w;
    }
    rs[r] += static_cast<double>(part);
  }
  for (int e = tid; e < kTile * kOut; e += kThreads) {
    const int c = e / kOut;
    const int q = e % kOut;
    const int64_t zj = j0 + c;
    const int64_t f = f0 + q;
    z_s[c][q] = (zj < nz && f < d) ? static_cast<acc_t>(widen(z[zj * z_stride0 + f * z_stride1]))
                                   : acc_t(0);
  }
  __syncthreads();
  for (int c = 0; c < kTile; ++c) {
    acc_t zv[kOut / kGroup];
#pragma unroll
    for (int q = 0; q < kOut / kGroup; ++q) zv[q] = z_s[c][tx + kGroup * q];
#pragma unroll
    for (int r = 0; r < kPerThread; ++r) {
      const acc_t w = w_s[ty + kGroup * r][c];
#pragma unroll
      for (int q = 0; q < kOut / kGroup; ++q) acc[r][q] = fma(w, zv[q], acc[r][q]);
    }
  }
  // The next tile_dots starts with a barrier before it overwrites w_s / z_s.
}

template <typename in_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    grad_kernel(const acc_t* __restrict__ grad, const in_t* __restrict__ a, int64_t a_stride0,
                int64_t a_stride1, int64_t na, const in_t* __restrict__ z, int64_t z_stride0,
                int64_t z_stride1, int64_t nz, int64_t d, const acc_t* __restrict__ a_norms,
                const acc_t* __restrict__ z_norms, MmdBandwidths bw, double coef_own,
                double coef_other, in_t* __restrict__ out) {
  constexpr int kOut = OutChunk<acc_t>::value;
  constexpr int kStage = 2 * kChunk * (kTile + 1);
  constexpr int kEpilogue = kTile * (kTile + 1) + kTile * (kOut + 1);
  __shared__ acc_t smem[kStage > kEpilogue ? kStage : kEpilogue];
  const int tx = threadIdx.x % kGroup;
  const int ty = threadIdx.x / kGroup;
  const int64_t row_tiles = (na + kTile - 1) / kTile;
  const int64_t feat_chunks = (d + kOut - 1) / kOut;
  const acc_t g = grad[0];

  for (int64_t ft = blockIdx.y; ft < feat_chunks; ft += gridDim.y) {
    const int64_t f0 = ft * kOut;
    for (int64_t rt = blockIdx.x; rt < row_tiles; rt += gridDim.x) {
      const int64_t i0 = rt * kTile;
      acc_t a_sq[kPerThread];
      double rs[kPerThread];
      acc_t acc[kPerThread][kOut / kGroup];
#pragma unroll
      for (int r = 0; r < kPerThread; ++r) {
        const int64_t row = i0 + ty + kGroup * r;
        a_sq[r] = row < na ? a_norms[row] : acc_t(0);
        rs[r] = 0.0;
#pragma unroll
        for (int q = 0; q < kOut / kGroup; ++q) acc[r][q] = acc_t(0);
      }
      for (int64_t j0 = 0; j0 < na; j0 += kTile) {
        grad_tile<in_t, acc_t, kOut>(a, a_stride0, a_stride1, na, i0, a, a_stride0, a_stride1, na,
                                     j0, d, f0, a_sq, a_norms, bw, coef_own, true, smem, rs, acc);
      }
      for (int64_t j0 = 0; j0 < nz; j0 += kTile) {
        grad_tile<in_t, acc_t, kOut>(a, a_stride0, a_stride1, na, i0, z, z_stride0, z_stride1, nz,
                                     j0, d, f0, a_sq, z_norms, bw, coef_other, false, smem, rs,
                                     acc);
      }
#pragma unroll
      for (int r = 0; r < kPerThread; ++r) {
        const int64_t row = i0 + ty + kGroup * r;
        const acc_t row_sum = static_cast<acc_t>(group_sum(rs[r]));
        if (row >= na) continue;
#pragma unroll
        for (int q = 0; q < kOut / kGroup; ++q) {
          const int64_t f = f0 + tx + kGroup * q;
          if (f >= d) continue;
          const acc_t av = static_cast<acc_t>(widen(a[row * a_stride0 + f * a_stride1]));
          out[row * d + f] = narrow_to<in_t>(g * (acc[r][q] - av * row_sum));
        }
      }
      __syncthreads();  // the next row tile's first tile_dots reuses smem (it also syncs first)
    }
  }
}

}  // namespace

template <typename in_t, typename acc_t>
cudaError_t launch_mmd(const in_t* x, int64_t x_stride0, int64_t x_stride1, const in_t* y,
                       int64_t y_stride0, int64_t y_stride1, int64_t n, int64_t m, int64_t d,
                       MmdBandwidths bandwidths, bool unbiased, acc_t* norms, double* row_sums,
                       acc_t* out, cudaStream_t stream) {
  constexpr int64_t kWarpsPerBlock = kThreads / 32;
  sq_norms_kernel<in_t, acc_t>
      <<<grid_for((n + m + kWarpsPerBlock - 1) / kWarpsPerBlock), kThreads, 0, stream>>>(
          x, x_stride0, x_stride1, n, y, y_stride0, y_stride1, m, d, norms);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  const double diag_weight = unbiased ? 0.0 : 1.0;
  double* rows_xx = row_sums;
  double* rows_yy = row_sums + n;
  double* rows_xy = row_sums + n + m;
  rows_kernel<in_t, acc_t><<<grid_for((n + kTile - 1) / kTile), kThreads, 0, stream>>>(
      x, x_stride0, x_stride1, n, x, x_stride0, x_stride1, n, d, norms, norms, bandwidths, true,
      diag_weight, rows_xx);
  rows_kernel<in_t, acc_t><<<grid_for((m + kTile - 1) / kTile), kThreads, 0, stream>>>(
      y, y_stride0, y_stride1, m, y, y_stride0, y_stride1, m, d, norms + n, norms + n, bandwidths,
      true, diag_weight, rows_yy);
  rows_kernel<in_t, acc_t><<<grid_for((n + kTile - 1) / kTile), kThreads, 0, stream>>>(
      x, x_stride0, x_stride1, n, y, y_stride0, y_stride1, m, d, norms, norms + n, bandwidths,
      false, 1.0, rows_xy);
  err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  const double dn = static_cast<double>(n), dm = static_cast<double>(m);
  const double wxx = 1.0 / (dn * (unbiased ? dn - 1.0 : dn));
  const double wyy = 1.0 / (dm * (unbiased ? dm - 1.0 : dm));
  combine_kernel<acc_t><<<1, kThreads, 0, stream>>>(rows_xx, n, rows_yy, m, rows_xy, wxx, wyy,
                                                    2.0 / (dn * dm), out);
  return cudaGetLastError();
}

template <typename in_t, typename acc_t>
cudaError_t launch_mmd_backward(const acc_t* grad, const in_t* x, int64_t x_stride0,
                                int64_t x_stride1, const in_t* y, int64_t y_stride0,
                                int64_t y_stride1, int64_t n, int64_t m, int64_t d,
                                MmdBandwidths bandwidths, bool unbiased, acc_t* norms,
                                in_t* grad_x, in_t* grad_y, cudaStream_t stream) {
  if (d <= 0 || (grad_x == nullptr && grad_y == nullptr)) return cudaSuccess;
  constexpr int64_t kWarpsPerBlock = kThreads / 32;
  sq_norms_kernel<in_t, acc_t>
      <<<grid_for((n + m + kWarpsPerBlock - 1) / kWarpsPerBlock), kThreads, 0, stream>>>(
          x, x_stride0, x_stride1, n, y, y_stride0, y_stride1, m, d, norms);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  const double dn = static_cast<double>(n), dm = static_cast<double>(m);
  const double wxx = 1.0 / (dn * (unbiased ? dn - 1.0 : dn));
  const double wyy = 1.0 / (dm * (unbiased ? dm - 1.0 : dm));
  const double wxy = 2.0 / (dn * dm);
  constexpr int kOut = OutChunk<acc_t>::value;
  const unsigned feat_blocks = grid_for((d + kOut - 1) / kOut);
  if (grad_x != nullptr) {
    const dim3 grid(grid_for((n + kTile - 1) / kTile), feat_blocks);
    grad_kernel<in_t, acc_t><<<grid, kThreads, 0, stream>>>(
        grad, x, x_stride0, x_stride1, n, y, y_stride0, y_stride1, m, d, norms, norms + n,
        bandwidths, 2.0 * wxx, -wxy, grad_x);
  }
  if (grad_y != nullptr) {
    const dim3 grid(grid_for((m + kTile - 1) / kTile), feat_blocks);
    grad_kernel<in_t, acc_t><<<grid, kThreads, 0, stream>>>(
        grad, y, y_stride0, y_stride1, m, x, x_stride0, x_stride1, n, d, norms + n, norms,
        bandwidths, 2.0 * wyy, -wxy, grad_y);
  }
  return cudaGetLastError();
}

#define AAE_INSTANTIATE_MMD_LAUNCHERS(IN, ACC)                                                 \
  template cudaError_t launch_mmd<IN, ACC>(const IN*, int64_t, int64_t, const IN*, int64_t,    \
                                           int64_t, int64_t, int64_t, int64_t, MmdBandwidths,  \
                                           bool, ACC*, double*, ACC*, cudaStream_t);           \
  template cudaError_t launch_mmd_backward<IN, ACC>(                                           \
      const ACC*, const IN*, int64_t, int64_t, const IN*, int64_t, int64_t, int64_t, int64_t, \
      int64_t, MmdBandwidths, bool, ACC*, IN*, IN*, cudaStream_t);

AAE_INSTANTIATE_MMD_LAUNCHERS(float, float)
AAE_INSTANTIATE_MMD_LAUNCHERS(__half, float)
AAE_INSTANTIATE_MMD_LAUNCHERS(__nv_bfloat16, float)
AAE_INSTANTIATE_MMD_LAUNCHERS(double, double)

#undef AAE_INSTANTIATE_MMD_LAUNCHERS

}  // namespace aae_fast
