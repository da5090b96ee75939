// CUDA launchers for the epilogues of linear_act and linear_act_backward (schemas and semantics:
// csrc/ops.cpp). Torch-free: raw device pointers, sizes and a stream, so that linear_act.cu compiles
// with nvcc alone; the glue (linear_act_cuda.cpp) runs the GEMMs with at::mm (cuBLAS) around them.
//
//   forward epilogue:  y = act(y + bias) in place on the GEMM output y = x @ w^T
//   backward epilogue: gz = grad * act'(y) (act' through the output y), grad_bias = sum_rows(gz)
//   act: 0 identity, 1 relu, 2 leaky_relu (slope), 3 sigmoid, 4 tanh (LinearActKind).
//
// Template argument scalar_t: float, double, __half or __nv_bfloat16 (explicitly instantiated in
// linear_act.cu for exactly these); the math runs in float (double for double). The bias-gradient
// sum of each column is reduced in an order fixed by B alone (no atomics): deterministic, in two
// steps (row chunks, then the chunks) so that large batches fill the card. All pointers are device
// pointers to contiguous row-major memory; 64-bit sizes throughout. Every launcher returns
// cudaGetLastError() after its launches.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

namespace aae_fast {

enum LinearActKind : int {
  kLinearActIdentity = 0,
  kLinearActRelu = 1,
  kLinearActLeakyRelu = 2,
  kLinearActSigmoid = 3,
  kLinearActTanh = 4,
};

// y[r, c] = act(y[r, c] + bias[c]) (bias may be null).
template <typename scalar_t>
cudaError_t launch_linear_act_epilogue(
    scalar_t* y,              // [B, N] in/out
    const scalar_t* bias,     // [N] or nullptr
    int64_t B, int64_t N,     // >= 0
    int act, double negative_slope,
    cudaStream_t stream);

// Number of acc_t values of the scratch `partials` the backward epilogue needs for grad_bias of a
// [B, N] gradient (0 when B fits one row chunk; then partials may be null).
int64_t linear_act_backward_workspace(int64_t B, int64_t N);

// gz[r, c] = grad[r, c] * act'(y[r, c]) (skipped when gz is null) and grad_bias[c] = sum_r of it
// (skipped when grad_bias is null), summed per row chunk into partials, then over the chunks.
// acc_t: double for double, float otherwise.
template <typename scalar_t, typename acc_t>
cudaError_t launch_linear_act_backward_epilogue(
    const scalar_t* grad,     // [B, N]
    const scalar_t* y,        // [B, N] the forward's output
    scalar_t* gz,             // [B, N] or nullptr
    scalar_t* grad_bias,      // [N] or nullptr
    acc_t* partials,          // [linear_act_backward_workspace(B, N)] scratch, used with grad_bias
    int64_t B, int64_t N,     // >= 0
    int act, double negative_slope,
    cudaStream_t stream);

}  // namespace aae_fast
