// CUDA epilogue kernels of linear_act (semantics: csrc/ops.cpp; launchers: linear_act.h). Only CUDA
// headers are included, so nvcc compile-checks this file on machines whose torch has no CUDA.
//
// Forward: one grid-stride elementwise pass over the GEMM output (bias + activation in place).
// Backward: blocks of kCols columns x kRowGroups row lanes; each thread walks its column's rows
// r = lane, lane + kRowGroups, ... (writing gz and summing it), then the kRowGroups partial sums of a
// column are added in lane order in shared memory, so grad_bias depends on the sizes only.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "linear_act.h"
#include "loss_reduce.cuh"

namespace aae_fast {
namespace {

constexpr int kThreads = 256;
constexpr int kCols = 32;
constexpr int kRowGroups = kThreads / kCols;

template <typename acc_t>
__device__ __forceinline__ acc_t activate(acc_t z, int act, acc_t slope) {
  switch (act) {
    case kLinearActRelu:
      return z > acc_t(0) ? z : (z != z ? z : acc_t(0));
    case kLinearActLeakyRelu:
      return z > acc_t(0) ? z : z * slope;
    case kLinearActSigmoid:
      return loss_cuda::sigmoid(z);
    case kLinearActTanh:
      return tanh(z);
    default:
      return z;
  }
}

template <typename acc_t>
__device__ __forceinline__ acc_t activation_grad(acc_t g, acc_t y, int act, acc_t slope) {
  switch (act) {
    case kLinearActRelu:
      return y > acc_t(0) ? g : acc_t(0);
    case kLinearActLeakyRelu:
      return y > acc_t(0) ? g : g * slope;
    case kLinearActSigmoid:
      return g * (y * (acc_t(1) - y));
    case kLinearActTanh:
      return g * (acc_t(1) - y * y);
    default:
      return g;
  }
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    epilogue_kernel(scalar_t* __restrict__ y, const scalar_t* __restrict__ bias, int64_t B,
                    int64_t N, int act, double negative_slope) {
  using acc_t = loss_cuda::acc_t_of<scalar_t>;
  const acc_t slope = static_cast<acc_t>(negative_slope);
  const int64_t n = B * N;
  const int64_t stride = int64_t{blockDim.x} * gridDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += stride) {
    acc_t z = loss_cuda::to_acc(y[i]);
    if (bias != nullptr) z += loss_cuda::to_acc(bias[i % N]);
    y[i] = loss_cuda::from_acc<scalar_t>(activate(z, act, slope));
  }
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    backward_epilogue_kernel(const scalar_t* __restrict__ grad, const scalar_t* __restrict__ y,
                             scalar_t* __restrict__ gz, scalar_t* __restrict__ grad_bias,
                             int64_t B, int64_t N, int act, double negative_slope) {
  using acc_t = loss_cuda::acc_t_of<scalar_t>;
  __shared__ acc_t partial[kRowGroups][kCols];
  const acc_t slope = static_cast<acc_t>(negative_slope);
  const int lane = threadIdx.x % kCols;
  const int group = threadIdx.x / kCols;
  const int64_t col = int64_t{blockIdx.x} * kCols + lane;
  acc_t sum = 0;
  if (col < N) {
    for (int64_t r = group; r < B; r += kRowGroups) {
      const int64_t i = r * N + col;
      const scalar_t v = loss_cuda::from_acc<scalar_t>(
          activation_grad(loss_cuda::to_acc(grad[i]), loss_cuda::to_acc(y[i]), act, slope));
      if (gz != nullptr) gz[i] = v;
      sum += loss_cuda::to_acc(v);
    }
  }
  if (grad_bias == nullptr) return;
  partial[group][lane] = sum;
  __syncthreads();
  if (group == 0 && col < N) {
    acc_t total = 0;
    for (int k = 0; k < kRowGroups; ++k) total += partial[k][lane];
    grad_bias[col] = loss_cuda::from_acc<scalar_t>(total);
  }
}

unsigned grid_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65535 * 8 ? (blocks > 0 ? blocks : 1) : 65535 * 8);
}

}  // namespace

template <typename scalar_t>
cudaError_t launch_linear_act_epilogue(scalar_t* y, const scalar_t* bias, int64_t B, int64_t N,
                                       int act, double negative_slope, cudaStream_t stream) {
  if (B <= 0 || N <= 0) return cudaSuccess;
  epilogue_kernel<scalar_t><<<grid_for(B * N), kThreads, 0, stream>>>(y, bias, B, N, act,
                                                                       negative_slope);
  return cudaGetLastError();
}

template <typename scalar_t>
cudaError_t launch_linear_act_backward_epilogue(const scalar_t* grad, const scalar_t* y,
                                                scalar_t* gz, scalar_t* grad_bias, int64_t B,
                                                int64_t N, int act, double negative_slope,
                                                cudaStream_t stream) {
  if (N <= 0 || (gz == nullptr && grad_bias == nullptr)) return cudaSuccess;
  const unsigned blocks = static_cast<unsigned>((N + kCols - 1) / kCols);
  backward_epilogue_kernel<scalar_t><<<blocks, kThreads, 0, stream>>>(grad, y, gz, grad_bias, B, N,
                                                                      act, negative_slope);
  return cudaGetLastError();
}

#define AAE_INSTANTIATE_LINEAR_ACT(T)                                                             \
  template cudaError_t launch_linear_act_epilogue<T>(T*, const T*, int64_t, int64_t, int, double, \
                                                     cudaStream_t);                               \
  template cudaError_t launch_linear_act_backward_epilogue<T>(                                    \
      const T*, const T*, T*, T*, int64_t, int64_t, int, double, cudaStream_t);

AAE_INSTANTIATE_LINEAR_ACT(float)
AAE_INSTANTIATE_LINEAR_ACT(double)
AAE_INSTANTIATE_LINEAR_ACT(__half)
AAE_INSTANTIATE_LINEAR_ACT(__nv_bfloat16)

#undef AAE_INSTANTIATE_LINEAR_ACT

}  // namespace aae_fast
