// CUDA launchers for the adversarial losses and their backwards (schemas and semantics:
// csrc/ops.cpp). Torch-free: raw device pointers, sizes and a stream, so that adversarial_loss.cu
// compiles with nvcc alone; the torch glue is adversarial_loss_cuda.cpp.
//
//   adversarial_d_loss = mean(softplus(-real)) + mean(softplus(fake))
//   adversarial_g_loss = mean(softplus(-fake))
//   backward:  grad_x = grad * sign * sigmoid(sign * x) / n   (sign -1 for real / G, +1 for fake)
//
// Template argument scalar_t: the logits' dtype, float, double, __half or __nv_bfloat16 (explicitly
// instantiated in adversarial_loss.cu for exactly these). acc_t, the compute and loss type, is
// double for double and float otherwise; the loss and grad pointers are acc_t.
//
// The forward sums are deterministic two-pass reductions (loss_reduce.cuh) into a caller-provided
// workspace `partials` of adversarial_loss_workspace(n_real) + adversarial_loss_workspace(n_fake)
// acc_t values (adversarial_loss_workspace(n) for the G loss). Nothing is read back to the host:
// the backward reads grad on the device. A mean over zero elements is NaN. Every launcher returns
// cudaGetLastError() after its launches. All pointers are device pointers to contiguous memory;
// 64-bit sizes throughout.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

namespace aae_fast {

// Number of acc_t partials the forward needs for n logits.
int64_t adversarial_loss_workspace(int64_t n);

template <typename scalar_t, typename acc_t>
cudaError_t launch_adversarial_d_loss(
    const scalar_t* real_logits,  // [n_real]
    int64_t n_real,               // >= 0
    const scalar_t* fake_logits,  // [n_fake]
    int64_t n_fake,               // >= 0
    acc_t* partials,              // [workspace(n_real) + workspace(n_fake)], scratch
    acc_t* loss,                  // [] output
    cudaStream_t stream);

template <typename scalar_t, typename acc_t>
cudaError_t launch_adversarial_g_loss(
    const scalar_t* fake_logits,  // [n]
    int64_t n,                    // >= 0
    acc_t* partials,              // [workspace(n)], scratch
    acc_t* loss,                  // [] output
    cudaStream_t stream);

// out[i] = grad[0] * (sign / n) * sigmoid(sign * x[i]) for i < n; sign is +1 or -1.
template <typename scalar_t, typename acc_t>
cudaError_t launch_adversarial_loss_backward(
    const acc_t* grad,    // [] the gradient of the loss
    const scalar_t* x,    // [n] logits
    int64_t n,            // >= 0
    int sign,             // +1: d/dx mean(softplus(x)); -1: d/dx mean(softplus(-x))
    scalar_t* out,        // [n] gradient
    cudaStream_t stream);

}  // namespace aae_fast
