// CUDA kernels for the adversarial losses (semantics: csrc/ops.cpp; launchers: adversarial_loss.h;
// the deterministic two-pass sum and the stable element math: loss_reduce.cuh). Only CUDA headers
// are included, so nvcc compile-checks this file on machines whose torch has no CUDA.
//
// Forward: one partials_kernel launch covers the real and the fake logits (two segments), then
// finish_kernel writes mean(softplus(-real)) + mean(softplus(fake)). Backward: one elementwise,
// grid-stride kernel per input, reading grad on the device.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "adversarial_loss.h"
#include "loss_reduce.cuh"

namespace aae_fast {
namespace {

using loss_cuda::kThreads;

// softplus(sign * x[i]) in acc_t.
template <typename scalar_t, typename acc_t>
struct SoftplusTerm {
  const scalar_t* x;
  acc_t sign;
  __device__ __forceinline__ acc_t operator()(int64_t i) const {
    return loss_cuda::softplus(sign * loss_cuda::to_acc(x[i]));
  }
};

template <typename scalar_t, typename acc_t>
__global__ void __launch_bounds__(kThreads)
    scaled_sigmoid_kernel(const acc_t* __restrict__ grad, const scalar_t* __restrict__ x, int64_t n,
                          acc_t sign, double inv_n, scalar_t* __restrict__ out) {
  const acc_t coef = grad[0] * static_cast<acc_t>(static_cast<double>(sign) * inv_n);
  const int64_t stride = int64_t{blockDim.x} * gridDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += stride) {
    out[i] = loss_cuda::from_acc<scalar_t>(coef * loss_cuda::sigmoid(sign * loss_cuda::to_acc(x[i])));
  }
}

}  // namespace

int64_t adversarial_loss_workspace(int64_t n) { return loss_cuda::num_tiles(n); }

template <typename scalar_t, typename acc_t>
cudaError_t launch_adversarial_d_loss(const scalar_t* real_logits, int64_t n_real,
                                      const scalar_t* fake_logits, int64_t n_fake, acc_t* partials,
                                      acc_t* loss, cudaStream_t stream) {
  return loss_cuda::launch_sum<acc_t>(SoftplusTerm<scalar_t, acc_t>{real_logits, acc_t(-1)}, n_real,
                                      1.0 / static_cast<double>(n_real),
                                      SoftplusTerm<scalar_t, acc_t>{fake_logits, acc_t(1)}, n_fake,
                                      1.0 / static_cast<double>(n_fake), partials, loss, stream);
}

template <typename scalar_t, typename acc_t>
cudaError_t launch_adversarial_g_loss(const scalar_t* fake_logits, int64_t n, acc_t* partials,
                                      acc_t* loss, cudaStream_t stream) {
  return loss_cuda::launch_sum<acc_t>(SoftplusTerm<scalar_t, acc_t>{fake_logits, acc_t(-1)}, n,
                                      1.0 / static_cast<double>(n), loss_cuda::NoTerm<acc_t>{}, 0,
                                      0.0, partials, loss, stream);
}

template <typename scalar_t, typename acc_t>
cudaError_t launch_adversarial_loss_backward(const acc_t* grad, const scalar_t* x, int64_t n,
                                             int sign, scalar_t* out, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  scaled_sigmoid_kernel<scalar_t, acc_t><<<loss_cuda::elementwise_grid(n), kThreads, 0, stream>>>(
      grad, x, n, static_cast<acc_t>(sign), 1.0 / static_cast<double>(n), out);
  return cudaGetLastError();
}

#define AAE_INSTANTIATE_ADVERSARIAL(T, A)                                                        \
  template cudaError_t launch_adversarial_d_loss<T, A>(const T*, int64_t, const T*, int64_t, A*, \
                                                       A*, cudaStream_t);                        \
  template cudaError_t launch_adversarial_g_loss<T, A>(const T*, int64_t, A*, A*, cudaStream_t); \
  template cudaError_t launch_adversarial_loss_backward<T, A>(const A*, const T*, int64_t, int,  \
                                                              T*, cudaStream_t);

AAE_INSTANTIATE_ADVERSARIAL(float, float)
AAE_INSTANTIATE_ADVERSARIAL(double, double)
AAE_INSTANTIATE_ADVERSARIAL(__half, float)
AAE_INSTANTIATE_ADVERSARIAL(__nv_bfloat16, float)

#undef AAE_INSTANTIATE_ADVERSARIAL

}  // namespace aae_fast
