// CUDA launchers for mmd and mmd_backward (schemas and semantics: csrc/ops.cpp; CPU reference:
// csrc/cpu/mmd.cpp). Torch-free: raw device pointers, strides, sizes and a stream, so that mmd.cu
// compiles with nvcc alone; the torch glue is mmd_cuda.cpp.
//
//   k(a, b)  = sum_s exp(-d2(a, b) h_s),   h_s = 1 / (2 bandwidth_s^2)
//   d2(a, b) = max(||a||^2 + ||b||^2 - 2 a.b, 0)            (exactly 0 for a point with itself)
//   mmd = wxx sum_{i,i'} k(x_i, x_i') + wyy sum_{j,j'} k(y_j, y_j') - wxy sum_{i,j} k(x_i, y_j)
//   biased:   wxx = 1/N^2, wyy = 1/M^2 (every pair);  unbiased: wxx = 1/(N(N-1)), wyy = 1/(M(M-1))
//   (pairs i = i', j = j' left out);  wxy = 2/(N M).
//   Backward, with w(a, b) = sum_s 2 h_s exp(-d2 h_s) and W'_ij = coef w(a_i, z_j) (coef = 2 wxx
//   or 2 wyy within a set, 0 on the pairs i = i'; -wxy across):
//   grad_a_i = grad ((W' z)_i - a_i (W' 1)_i).
//
// Template arguments (explicitly instantiated in mmd.cu for exactly these pairs):
//   (in_t, acc_t) = (float, float), (__half, float), (__nv_bfloat16, float), (double, double).
// 16-bit inputs are widened to float before the products (exact in float).
//
// All pointers are device pointers; x and y may have any strides (in elements); 64-bit sizes and
// offsets throughout. The launchers enqueue on `stream` and return cudaGetLastError() after the
// launches. Nothing is read back to the host, so both can be captured in CUDA graphs.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

namespace aae_fast {

// The bandwidths, passed by value as a kernel argument (no host-to-device copy).
constexpr int kMmdMaxBandwidths = 32;
struct MmdBandwidths {
  int count;                        // 1 .. kMmdMaxBandwidths
  double h[kMmdMaxBandwidths];      // h_s = 1 / (2 bandwidth_s^2), finite, >= 0
};

// Workspaces the caller allocates for launch_mmd: norms [n + m] of acc_t and row_sums [2 n + m]
// of double.
//
// Enqueues: the squared row norms (summed in double); three tiled passes writing per-row kernel
// sums into row_sums (x with x over the upper triangle, y with y, x with y); and one block that
// adds them in a fixed order and writes out[0] = wxx Sxx + wyy Syy - wxy Sxy.
template <typename in_t, typename acc_t>
cudaError_t launch_mmd(
    const in_t* x,              // [n, d], element (i, k) at x[i * x_stride0 + k * x_stride1]
    int64_t x_stride0,
    int64_t x_stride1,
    const in_t* y,              // [m, d], element (j, k) at y[j * y_stride0 + k * y_stride1]
    int64_t y_stride0,
    int64_t y_stride1,
    int64_t n,                  // rows of x, >= 1 (>= 2 when unbiased)
    int64_t m,                  // rows of y, >= 1 (>= 2 when unbiased)
    int64_t d,                  // dimension, >= 0
    MmdBandwidths bandwidths,
    bool unbiased,
    acc_t* norms,               // [n + m] scratch
    double* row_sums,           // [2 n + m] scratch
    acc_t* out,                 // [] the result
    cudaStream_t stream);

// Enqueues the squared row norms and, for each wanted gradient, one tiled pass: a CTA owns a tile
// of rows and a chunk of output features, walks both sets in tiles (distances over all d), and
// accumulates W' z and W' 1. grad_x / grad_y are contiguous [n, d] / [m, d] outputs, or nullptr
// when not wanted. d == 0 enqueues nothing.
template <typename in_t, typename acc_t>
cudaError_t launch_mmd_backward(
    const acc_t* grad,          // [] the incoming gradient, on the device
    const in_t* x,
    int64_t x_stride0,
    int64_t x_stride1,
    const in_t* y,
    int64_t y_stride0,
    int64_t y_stride1,
    int64_t n,
    int64_t m,
    int64_t d,
    MmdBandwidths bandwidths,
    bool unbiased,
    acc_t* norms,               // [n + m] scratch
    in_t* grad_x,               // [n, d] contiguous, or nullptr
    in_t* grad_y,               // [m, d] contiguous, or nullptr
    cudaStream_t stream);

}  // namespace aae_fast
