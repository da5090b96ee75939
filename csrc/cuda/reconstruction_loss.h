// CUDA launchers for the reconstruction loss and its backward (schemas and semantics:
// csrc/ops.cpp). Torch-free: raw device pointers, sizes and a stream, so that
// reconstruction_loss.cu compiles with nvcc alone; the torch glue is reconstruction_loss_cuda.cpp.
//
//   loss = (1 / rows) sum_ij l(o_ij, t_ij) over output, target [rows, features] (contiguous)
//   bce (kind 0): l = softplus(o) - o t;  dl/do = sigmoid(o) - t;  dl/dt = -o
//   mse (kind 1): l = (o - t)^2;          dl/do = 2 (o - t);       dl/dt = -2 (o - t)
//
// Template argument scalar_t: float, double, __half or __nv_bfloat16 (explicitly instantiated in
// reconstruction_loss.cu); acc_t is double for double and float otherwise; loss and grad are
// acc_t. The forward is the deterministic two-pass reduction of loss_reduce.cuh over the rows *
// features elements, with a caller-provided workspace of reconstruction_loss_workspace(numel)
// acc_t values. rows == 0 gives NaN. Every launcher returns cudaGetLastError() after its launches.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

namespace aae_fast {

// Number of acc_t partials the forward needs for numel = rows * features elements.
int64_t reconstruction_loss_workspace(int64_t numel);

template <typename scalar_t, typename acc_t>
cudaError_t launch_reconstruction_loss(
    const scalar_t* output,  // [rows, features] (logits for bce)
    const scalar_t* target,  // [rows, features]
    int64_t rows,            // B >= 0
    int64_t features,        // F >= 0
    int kind,                // 0: bce, 1: mse
    acc_t* partials,         // [workspace(rows * features)], scratch
    acc_t* loss,             // [] output
    cudaStream_t stream);

// grad_output = grad[0] / rows * dl/do and grad_target = grad[0] / rows * dl/dt; a null output
// pointer skips that gradient.
template <typename scalar_t, typename acc_t>
cudaError_t launch_reconstruction_loss_backward(
    const acc_t* grad,         // [] the gradient of the loss
    const scalar_t* output,    // [rows, features]
    const scalar_t* target,    // [rows, features]
    int64_t rows,              // B >= 0
    int64_t features,          // F >= 0
    int kind,                  // 0: bce, 1: mse
    scalar_t* grad_output,     // [rows, features] or nullptr
    scalar_t* grad_target,     // [rows, features] or nullptr
    cudaStream_t stream);

}  // namespace aae_fast
