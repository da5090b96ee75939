// CUDA launcher for parzen_log_likelihood (schema and semantics: csrc/ops.cpp; CPU reference:
// csrc/cpu/parzen_log_likelihood.cpp). Torch-free: raw device pointers, strides, sizes and a
// stream, so that parzen_log_likelihood.cu compiles with nvcc alone; the torch glue is
// parzen_log_likelihood_cuda.cpp.
//
//   out[i] = log( (1/M) sum_j N(x_i; s_j, sigma^2 I) )
//          = logsumexp_j( -d2_ij h ) + log_normalizer,   h = 1 / (2 sigma^2)
//   d2_ij  = max(||x_i||^2 + ||s_j||^2 - 2 x_i . s_j, 0)
//   log_normalizer = -log M - D (log sigma + log(2 pi) / 2)
//
// For n > 0 the launcher enqueues on `stream`
//   1. a kernel writing the squared row norms of x and samples into `workspace` [n + m] (summed in
//      double, stored as acc_t), and
//   2. the tiled kernel: a CTA owns a tile of rows of x, walks the samples in tiles, computes each
//      tile of dot products from shared-memory chunks with acc_t accumulation, and folds it into a
//      per-row online log-sum-exp whose running (max, sum) is kept in double.
// For n == 0 nothing is enqueued. Returns cudaGetLastError() after the launches.
//
// Template arguments (explicitly instantiated in parzen_log_likelihood.cu for exactly these pairs):
//   (in_t, acc_t) = (float, float), (__half, float), (__nv_bfloat16, float), (double, double).
// 16-bit inputs are widened to float before the products (exact in float).
//
// All pointers are device pointers; x and samples may have any strides (in elements); 64-bit sizes
// and offsets throughout.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

namespace aae_fast {

template <typename in_t, typename acc_t>
cudaError_t launch_parzen_log_likelihood(
    const in_t* x,              // [n, d], element (i, k) at x[i * x_stride0 + k * x_stride1]
    int64_t x_stride0,
    int64_t x_stride1,
    const in_t* samples,        // [m, d], element (j, k) at samples[j * s_stride0 + k * s_stride1]
    int64_t s_stride0,
    int64_t s_stride1,
    int64_t n,                  // rows of x, >= 0
    int64_t m,                  // samples, >= 1
    int64_t d,                  // dimension, >= 0
    double half_inv_var,        // h = 1 / (2 sigma^2), finite and > 0
    double log_normalizer,      // -log M - D (log sigma + log(2 pi) / 2)
    acc_t* workspace,           // [n + m] scratch: the squared row norms
    acc_t* out,                 // [n]
    cudaStream_t stream);

}  // namespace aae_fast
