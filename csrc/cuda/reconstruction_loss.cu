// CUDA kernels for the reconstruction loss (semantics: csrc/ops.cpp; launchers:
// reconstruction_loss.h; the deterministic two-pass sum and the stable element math:
// loss_reduce.cuh). Only CUDA headers are included, so nvcc compile-checks this file on machines
// whose torch has no CUDA.
//
// The per-row sums and the mean over rows equal the sum over all rows * features elements divided
// by rows, so the forward reduces the flat, contiguous elements (tiles of loss_cuda::kTile, whatever
// the row width) and scales by 1 / rows. The backward is one elementwise, grid-stride kernel that
// writes either or both gradients, reading grad on the device.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "loss_reduce.cuh"
#include "reconstruction_loss.h"

namespace aae_fast {
namespace {

using loss_cuda::kThreads;

template <typename scalar_t, typename acc_t, bool kBce>
struct ReconTerm {
  const scalar_t* output;
  const scalar_t* target;
  __device__ __forceinline__ acc_t operator()(int64_t i) const {
    const acc_t o = loss_cuda::to_acc(output[i]);
    const acc_t t = loss_cuda::to_acc(target[i]);
    if (kBce) return loss_cuda::softplus(o) - o * t;
    const acc_t d = o - t;
    return d * d;
  }
};

template <typename scalar_t, typename acc_t, bool kBce>
__global__ void __launch_bounds__(kThreads)
    recon_backward_kernel(const acc_t* __restrict__ grad, const scalar_t* __restrict__ output,
                          const scalar_t* __restrict__ target, int64_t n, double inv_rows,
                          scalar_t* __restrict__ grad_output, scalar_t* __restrict__ grad_target) {
  const acc_t c = grad[0] * static_cast<acc_t>(inv_rows);
  const int64_t stride = int64_t{blockDim.x} * gridDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += stride) {
    const acc_t o = loss_cuda::to_acc(output[i]);
    const acc_t t = loss_cuda::to_acc(target[i]);
    acc_t d_output, d_target;
    if (kBce) {
      d_output = c * (loss_cuda::sigmoid(o) - t);
      d_target = -c * o;
    } else {
      d_output = 2 * c * (o - t);
      d_target = -d_output;
    }
    if (grad_output != nullptr) grad_output[i] = loss_cuda::from_acc<scalar_t>(d_output);
    if (grad_target != nullptr) grad_target[i] = loss_cuda::from_acc<scalar_t>(d_target);
  }
}

}  // namespace

int64_t reconstruction_loss_workspace(int64_t numel) { return loss_cuda::num_tiles(numel); }

template <typename scalar_t, typename acc_t>
cudaError_t launch_reconstruction_loss(const scalar_t* output, const scalar_t* target, int64_t rows,
                                       int64_t features, int kind, acc_t* partials, acc_t* loss,
                                       cudaStream_t stream) {
  const int64_t n = rows * features;
  const double inv_rows = 1.0 / static_cast<double>(rows);  // rows == 0: inf, and 0 * inf = NaN
  if (kind == 0) {
    return loss_cuda::launch_sum<acc_t>(ReconTerm<scalar_t, acc_t, true>{output, target}, n,
                                        inv_rows, loss_cuda::NoTerm<acc_t>{}, 0, 0.0, partials,
                                        loss, stream);
  }
  return loss_cuda::launch_sum<acc_t>(ReconTerm<scalar_t, acc_t, false>{output, target}, n, inv_rows,
                                      loss_cuda::NoTerm<acc_t>{}, 0, 0.0, partials, loss, stream);
}

template <typename scalar_t, typename acc_t>
cudaError_t launch_reconstruction_loss_backward(const acc_t* grad, const scalar_t* output,
                                                const scalar_t* target, int64_t rows,
                                                int64_t features, int kind, scalar_t* grad_output,
                                                scalar_t* grad_target, cudaStream_t stream) {
  const int64_t n = rows * features;
  if (n <= 0 || (grad_output == nullptr && grad_target == nullptr)) return cudaSuccess;
  const unsigned grid = loss_cuda::elementwise_grid(n);
  const double inv_rows = 1.0 / static_cast<double>(rows);
  if (kind == 0) {
    recon_backward_kernel<scalar_t, acc_t, true><<<grid, kThreads, 0, stream>>>(
        grad, output, target, n, inv_rows, grad_output, grad_target);
  } else {
    recon_backward_kernel<scalar_t, acc_t, false><<<grid, kThreads, 0, stream>>>(
        grad, output, target, n, inv_rows, grad_output, grad_target);
  }
  return cudaGetLastError();
}

#define AAE_INSTANTIATE_RECONSTRUCTION(T, A)                                                    \
  template cudaError_t launch_reconstruction_loss<T, A>(const T*, const T*, int64_t, int64_t,  \
                                                        int, A*, A*, cudaStream_t);            \
  template cudaError_t launch_reconstruction_loss_backward<T, A>(                              \
      const A*, const T*, const T*, int64_t, int64_t, int, T*, T*, cudaStream_t);

AAE_INSTANTIATE_RECONSTRUCTION(float, float)
AAE_INSTANTIATE_RECONSTRUCTION(double, double)
AAE_INSTANTIATE_RECONSTRUCTION(__half, float)
AAE_INSTANTIATE_RECONSTRUCTION(__nv_bfloat16, float)

#undef AAE_INSTANTIATE_RECONSTRUCTION

}  // namespace aae_fast
