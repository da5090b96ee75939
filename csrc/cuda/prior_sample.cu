// CUDA kernels for the prior-sampling ops. Semantics: csrc/ops.cpp (and the CPU reference
// csrc/cpu/prior_sample.cpp); random stream: csrc/include/aae_fast/philox.h; launchers:
// prior_sample.h. Only CUDA headers and philox.h are included, so nvcc compile-checks this file on
// machines whose torch has no CUDA.
//
// Design.
//   gaussian mixture: a CTA of kThreads threads owns a group of R rows at a time (grid-stride over
//     groups) and a tile of W columns, R * W <= kTileElems = kThreads * kElemsPerThread:
//       D <= kTileElems: W = D, R = kTileElems / D rows (small D: many rows per CTA);
//       D >  kTileElems: W = kTileElems, R = 1, and the row is walked in column tiles.
//     Phase 1 ("fill") spreads the Philox blocks of the tile over the threads; each block yields up
//     to four normals (two Box-Muller pairs) into shared memory, and block 0 also yields the row's
//     component. Phase 2 has every thread finish up to kElemsPerThread consecutive-in-memory output
//     elements, so the stores are coalesced. A lower-triangular scale walks the column tiles
//     k <= j (regenerating the eps tile per output tile: O(D) Philox work against O(D^2) FMAs), so
//     any D works with 16 KiB of shared memory at most.
//   swiss roll: one thread per row (one Philox block, two outputs).
//   categorical: R = kTileElems / K rows per CTA; the classes go to shared memory, then the CTA
//     writes the R * K one-hot elements coalesced.
//   Each launcher then enqueues a one-thread kernel that advances rng_state[1] by n on the device.
//
// Compute is in param_t (float or double), as on the CPU: same expressions, same order; results
// differ from the CPU only by the rounding of log/sqrt/sin/cos and FMA contraction.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "aae_fast/philox.h"
#include "prior_sample.h"

namespace aae_fast {
namespace {

using philox::Words;

constexpr int kThreads = 256;
constexpr int kElemsPerThread = 4;
constexpr int64_t kTileElems = int64_t{kThreads} * kElemsPerThread;  // even (column tiles hold
                                                                      // whole Box-Muller pairs)
constexpr int64_t kMaxBlocks = 8192;  // grid-stride beyond this
constexpr double kTwoPi = 6.283185307179586476925286766559;

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// ---- math in the compute precision -------------------------------------------------------------

__device__ __forceinline__ float dev_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double dev_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float dev_log(float x) { return logf(x); }
__device__ __forceinline__ double dev_log(double x) { return log(x); }
__device__ __forceinline__ void dev_sincos(float x, float* s, float* c) { sincosf(x, s, c); }
__device__ __forceinline__ void dev_sincos(double x, double* s, double* c) { sincos(x, s, c); }

template <typename P>
__device__ __forceinline__ P quiet_nan();
template <>
__device__ __forceinline__ float quiet_nan<float>() {
  return __int_as_float(0x7fc00000);
}
template <>
__device__ __forceinline__ double quiet_nan<double>() {
  return __longlong_as_double(0x7ff8000000000000LL);
}

// Output conversion as c10 does it: the 16-bit types go through float.
template <typename P>
__device__ __forceinline__ void store(float* p, P v) {
  *p = static_cast<float>(v);
}
template <typename P>
__device__ __forceinline__ void store(double* p, P v) {
  *p = static_cast<double>(v);
}
template <typename P>
__device__ __forceinline__ void store(__half* p, P v) {
  *p = __float2half_rn(static_cast<float>(v));
}
template <typename P>
__device__ __forceinline__ void store(__nv_bfloat16* p, P v) {
  *p = __float2bfloat16_rn(static_cast<float>(v));
}

// ---- the stream ----------------------------------------------------------------------------------

struct StreamState {
  uint64_t seed;
  uint64_t offset;
};

__device__ __forceinline__ StreamState load_state(const int64_t* __restrict__ rng_state) {
  return StreamState{static_cast<uint64_t>(rng_state[0]), static_cast<uint64_t>(rng_state[1])};
}

// Component / segment / class of row i: labels[i] if given, else drawn with word w0 of block 0.
// -1 marks a label outside [0, K) (the row is then written as NaN).
template <typename P>
__device__ __forceinline__ int64_t row_category(uint32_t w0, int64_t i,
                                                const int64_t* __restrict__ labels,
                                                const P* __restrict__ cum, int64_t K) {
  if (labels != nullptr) {
    const int64_t c = labels[i];
    return (c >= 0 && c < K) ? c : -1;
  }
  return philox::pick_category(static_cast<P>(philox::uniform01(w0)), cum, K);
}

// Box-Muller on words (a, b): u1 = uniform01c(a) in (0, 1], u2 = uniform01(b).
template <typename P>
__device__ __forceinline__ void box_muller(uint32_t a, uint32_t b, P& z_cos, P& z_sin) {
  const P u1 = static_cast<P>(philox::uniform01c(a));
  const P u2 = static_cast<P>(philox::uniform01(b));
  const P radius = dev_sqrt(P(-2) * dev_log(u1));
  const P angle = static_cast<P>(kTwoPi) * u2;
  P s, c;
  dev_sincos(angle, &s, &c);
  z_cos = radius * c;
  z_sin = radius * s;
}

// ---- gaussian mixture ----------------------------------------------------------------------------

// Phase 1: eps[kt0, kt1) of rows row0 .. row0 + rows - 1 into eps_s[r * W + (e - kt0)]; when the
// tile starts at column 0 (so it contains Philox block 0) also the rows' components into comp_s.
// Block b holds words 4b .. 4b+3, i.e. eps[4b - 2 .. 4b + 1] (block 0: w0, w1, eps[0], eps[1]).
template <typename P>
__device__ __forceinline__ void fill_normals(const StreamState& st, int64_t row0, int64_t rows,
                                             int64_t kt0, int64_t kt1, int64_t W, int64_t K,
                                             const P* __restrict__ cum,
                                             const int64_t* __restrict__ labels,
                                             P* __restrict__ eps_s, int64_t* __restrict__ comp_s) {
  const int64_t b_lo = (kt0 + 2) / 4;
  const int64_t b_hi = (kt1 - 1 + 2) / 4;
  const int64_t nb = b_hi - b_lo + 1;
  for (int64_t item = threadIdx.x; item < rows * nb; item += kThreads) {
    const int64_t r = item / nb;
    const int64_t b = b_lo + (item - r * nb);
    const int64_t i = row0 + r;
    const Words w = philox::row_block(st.seed, st.offset + static_cast<uint64_t>(i),
                                      static_cast<uint32_t>(b));
    if (b == 0) comp_s[r] = row_category(w.w[0], i, labels, cum, K);
    P* eps_row = eps_s + r * W;  // column e of the tile at eps_row[e - kt0]
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t e0 = 4 * b + 2 * h - 2;  // eps index of this pair's cosine
      if (e0 < 0 || e0 >= kt1 || e0 + 1 < kt0) continue;
      P z_cos, z_sin;
      box_muller<P>(w.w[2 * h], w.w[2 * h + 1], z_cos, z_sin);
      if (e0 >= kt0) eps_row[e0 - kt0] = z_cos;
      if (e0 + 1 < kt1) eps_row[e0 + 1 - kt0] = z_sin;
    }
  }
}

template <typename P, typename O, bool kTril>
__global__ void __launch_bounds__(kThreads)
    gaussian_mixture_kernel(const int64_t* __restrict__ rng_state, int64_t n, int64_t K, int64_t D,
                            int64_t R, int64_t W, const P* __restrict__ loc,
                            const P* __restrict__ scale, const P* __restrict__ cum,
                            const int64_t* __restrict__ labels, O* __restrict__ out) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  int64_t* comp_s = reinterpret_cast<int64_t*>(smem_raw);  // [R]
  P* eps_s = reinterpret_cast<P*>(comp_s + R);             // [R, W]

  const StreamState st = load_state(rng_state);
  const int64_t num_groups = (n + R - 1) / R;
  for (int64_t g = blockIdx.x; g < num_groups; g += gridDim.x) {
    const int64_t row0 = g * R;
    const int64_t rows = min64(R, n - row0);
    for (int64_t jt0 = 0; jt0 < D; jt0 += W) {
      const int64_t jt1 = min64(jt0 + W, D);
      P acc[kElemsPerThread];
#pragma unroll
      for (int q = 0; q < kElemsPerThread; ++q) acc[q] = P(0);

      // Diagonal: only the output's own tile. Lower-triangular: every tile k <= jt0.
      for (int64_t kt0 = kTril ? 0 : jt0; kt0 <= jt0; kt0 += W) {
        const int64_t kt1 = min64(kt0 + W, D);
        __syncthreads();  // the previous tile's (and group's) readers of eps_s / comp_s are done
        fill_normals<P>(st, row0, rows, kt0, kt1, W, K, cum, labels, eps_s, comp_s);
        __syncthreads();
#pragma unroll
        for (int q = 0; q < kElemsPerThread; ++q) {
          const int64_t e = threadIdx.x + int64_t{q} * kThreads;
          const int64_t r = e / W;
          const int64_t j = jt0 + (e - r * W);
          if (r >= rows || j >= jt1) continue;
          const int64_t c = comp_s[r];
          if (c < 0) continue;
          const P* eps_row = eps_s + r * W;  // column k at eps_row[k - kt0]
          if (kTril) {
            // z_j = loc_j + sum_{k <= j} L_jk eps_k, summed in k order from loc_j (as on the CPU).
            if (kt0 == 0) acc[q] = loc[c * D + j];
            const P* L = scale + (c * D + j) * D;
            const int64_t k_end = min64(kt1, j + 1);
            for (int64_t k = kt0; k < k_end; ++k) acc[q] += L[k] * eps_row[k - kt0];
          } else {
            acc[q] = loc[c * D + j] + scale[c * D + j] * eps_row[j - kt0];
          }
        }
      }

#pragma unroll
      for (int q = 0; q < kElemsPerThread; ++q) {
        const int64_t e = threadIdx.x + int64_t{q} * kThreads;
        const int64_t r = e / W;
        const int64_t j = jt0 + (e - r * W);
        if (r >= rows || j >= jt1) continue;
        const P value = comp_s[r] < 0 ? quiet_nan<P>() : acc[q];
        store<P>(out + (row0 + r) * D + j, value);
      }
    }
  }
}

// ---- swiss roll ----------------------------------------------------------------------------------

template <typename P, typename O>
__global__ void __launch_bounds__(kThreads)
    swiss_roll_kernel(const int64_t* __restrict__ rng_state, int64_t n, int64_t K,
                      const P* __restrict__ cum, const int64_t* __restrict__ labels, double radius,
                      double turns, O* __restrict__ out) {
  const StreamState st = load_state(rng_state);
  const P radius_p = static_cast<P>(radius);
  const P turns_p = static_cast<P>(turns);
  const int64_t stride = int64_t{blockDim.x} * gridDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += stride) {
    const Words w = philox::row_block(st.seed, st.offset + static_cast<uint64_t>(i), 0u);
    const int64_t c = row_category(w.w[0], i, labels, cum, K);
    P x, y;
    if (c < 0) {
      x = y = quiet_nan<P>();
    } else {
      const P t = (static_cast<P>(c) + static_cast<P>(philox::uniform01(w.w[1]))) / static_cast<P>(K);
      const P root = dev_sqrt(t);
      const P rho = radius_p * root;
      const P angle = static_cast<P>(kTwoPi) * turns_p * root;
      P s, co;
      dev_sincos(angle, &s, &co);
      x = rho * co;
      y = rho * s;
    }
    store<P>(out + 2 * i, x);
    store<P>(out + 2 * i + 1, y);
  }
}

// ---- categorical ---------------------------------------------------------------------------------

template <typename P, typename O>
__global__ void __launch_bounds__(kThreads)
    categorical_kernel(const int64_t* __restrict__ rng_state, int64_t n, int64_t K, int64_t R,
                       const P* __restrict__ cum, const int64_t* __restrict__ labels,
                       O* __restrict__ out) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  int64_t* class_s = reinterpret_cast<int64_t*>(smem_raw);  // [R]

  const StreamState st = load_state(rng_state);
  const int64_t num_groups = (n + R - 1) / R;
  for (int64_t g = blockIdx.x; g < num_groups; g += gridDim.x) {
    const int64_t row0 = g * R;
    const int64_t rows = min64(R, n - row0);
    __syncthreads();  // the previous group's readers of class_s are done
    for (int64_t r = threadIdx.x; r < rows; r += kThreads) {
      const int64_t i = row0 + r;
      uint32_t w0 = 0;
      if (labels == nullptr) {
        w0 = philox::row_block(st.seed, st.offset + static_cast<uint64_t>(i), 0u).w[0];
      }
      class_s[r] = row_category(w0, i, labels, cum, K);
    }
    __syncthreads();
    O* out_group = out + row0 * K;
    for (int64_t e = threadIdx.x; e < rows * K; e += kThreads) {
      const int64_t r = e / K;
      const int64_t c = class_s[r];
      const P value = c < 0 ? quiet_nan<P>() : (e - r * K == c ? P(1) : P(0));
      store<P>(out_group + e, value);
    }
  }
}

// ---- state advance -------------------------------------------------------------------------------

// rng_state[1] += n (mod 2^64), after the sampling kernel in stream order.
__global__ void advance_offset_kernel(int64_t* rng_state, int64_t n) {
  rng_state[1] =
      static_cast<int64_t>(static_cast<uint64_t>(rng_state[1]) + static_cast<uint64_t>(n));
}

unsigned grid_for(int64_t work_items) {
  const int64_t blocks = work_items < kMaxBlocks ? work_items : kMaxBlocks;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks);
}

cudaError_t finish(int64_t* rng_state, int64_t n, cudaStream_t stream) {
  cudaError_t err = cudaGetLastError();  // the sampling kernel's launch
  if (err != cudaSuccess) return err;
  advance_offset_kernel<<<1, 1, 0, stream>>>(rng_state, n);
  return cudaGetLastError();
}

}  // namespace

// ---- launchers -----------------------------------------------------------------------------------

template <typename param_t, typename out_t>
cudaError_t launch_sample_gaussian_mixture(int64_t* rng_state, int64_t n, int64_t num_components,
                                           int64_t dim, const param_t* loc, const param_t* scale,
                                           bool scale_is_tril, const param_t* cum_weights,
                                           const int64_t* labels, out_t* out,
                                           cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  int64_t W, R;
  if (dim <= kTileElems) {
    W = dim;
    R = kTileElems / dim;
    if (R > n) R = n;
  } else {
    W = kTileElems;
    R = 1;
  }
  const size_t smem = static_cast<size_t>(R) * sizeof(int64_t) +
                      static_cast<size_t>(R * W) * sizeof(param_t);  // <= 16 KiB
  const unsigned grid = grid_for((n + R - 1) / R);
  if (scale_is_tril) {
    gaussian_mixture_kernel<param_t, out_t, true><<<grid, kThreads, smem, stream>>>(
        rng_state, n, num_components, dim, R, W, loc, scale, cum_weights, labels, out);
  } else {
    gaussian_mixture_kernel<param_t, out_t, false><<<grid, kThreads, smem, stream>>>(
        rng_state, n, num_components, dim, R, W, loc, scale, cum_weights, labels, out);
  }
  return finish(rng_state, n, stream);
}

template <typename param_t, typename out_t>
cudaError_t launch_sample_swiss_roll(int64_t* rng_state, int64_t n, int64_t num_components,
                                     const param_t* cum_weights, const int64_t* labels,
                                     double radius, double turns, out_t* out,
                                     cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  const unsigned grid = grid_for((n + kThreads - 1) / kThreads);
  swiss_roll_kernel<param_t, out_t><<<grid, kThreads, 0, stream>>>(
      rng_state, n, num_components, cum_weights, labels, radius, turns, out);
  return finish(rng_state, n, stream);
}

template <typename param_t, typename out_t>
cudaError_t launch_sample_categorical(int64_t* rng_state, int64_t n, int64_t num_classes,
                                      const param_t* cum_weights, const int64_t* labels,
                                      out_t* out, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  int64_t R = num_classes >= kTileElems ? 1 : kTileElems / num_classes;
  if (R > n) R = n;
  const size_t smem = static_cast<size_t>(R) * sizeof(int64_t);  // <= 8 KiB
  const unsigned grid = grid_for((n + R - 1) / R);
  categorical_kernel<param_t, out_t><<<grid, kThreads, smem, stream>>>(
      rng_state, n, num_classes, R, cum_weights, labels, out);
  return finish(rng_state, n, stream);
}

#define AAE_INSTANTIATE_PRIOR_LAUNCHERS(P, O)                                                    \
  template cudaError_t launch_sample_gaussian_mixture<P, O>(                                    \
      int64_t*, int64_t, int64_t, int64_t, const P*, const P*, bool, const P*, const int64_t*, \
      O*, cudaStream_t);                                                                        \
  template cudaError_t launch_sample_swiss_roll<P, O>(int64_t*, int64_t, int64_t, const P*,     \
                                                      const int64_t*, double, double, O*,      \
                                                      cudaStream_t);                           \
  template cudaError_t launch_sample_categorical<P, O>(int64_t*, int64_t, int64_t, const P*,    \
                                                       const int64_t*, O*, cudaStream_t);

AAE_INSTANTIATE_PRIOR_LAUNCHERS(float, float)
AAE_INSTANTIATE_PRIOR_LAUNCHERS(float, double)
AAE_INSTANTIATE_PRIOR_LAUNCHERS(float, __half)
AAE_INSTANTIATE_PRIOR_LAUNCHERS(float, __nv_bfloat16)
AAE_INSTANTIATE_PRIOR_LAUNCHERS(double, float)
AAE_INSTANTIATE_PRIOR_LAUNCHERS(double, double)
AAE_INSTANTIATE_PRIOR_LAUNCHERS(double, __half)
AAE_INSTANTIATE_PRIOR_LAUNCHERS(double, __nv_bfloat16)

#undef AAE_INSTANTIATE_PRIOR_LAUNCHERS

}  // namespace aae_fast
