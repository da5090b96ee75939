// CUDA epilogue kernels of linear_act (semantics: csrc/ops.cpp; launchers: linear_act.h). Only CUDA
// headers are included, so nvcc compile-checks this file on machines whose torch has no CUDA.
//
// Forward: one grid-stride elementwise pass over the GEMM output (bias + activation in place).
// Backward: a grid of (column blocks of kCols) x (row chunks of kRowsPerChunk). A CTA's kCols x
// kRowGroups threads each walk one column of the chunk, rows r = begin + group, + kRowGroups, ...
// (writing gz and summing it); the kRowGroups sums of a column are added in group order in shared
// memory, giving one partial per (chunk, column) in a float workspace; a second kernel adds the
// chunks of each column in chunk order. Every order depends on B alone: grad_bias is
// deterministic. (One chunk: the first kernel writes grad_bias itself.) The chunks put enough CTAs
// on the card at large B; the first version used one CTA per column block and walked all B rows,
// 32 CTAs on 132 SMs for N = 1000.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include <type_traits>

#include "linear_act.h"
#include "loss_reduce.cuh"

namespace aae_fast {
namespace {

constexpr int kThreads = 256;
constexpr int kCols = 32;
constexpr int kRowGroups = kThreads / kCols;
// Backward: rows per CTA (a chunk); B = 8192 gives 64 chunks x ceil(N / 32) column blocks.
constexpr int64_t kRowsPerChunk = 128;
constexpr int64_t kMaxChunks = 65535;

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
      return y <= acc_t(0) ? acc_t(0) : g;  // a NaN y passes g, as torch.relu's backward
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
                             loss_cuda::acc_t_of<scalar_t>* __restrict__ partials, int64_t B,
                             int64_t N, int64_t rows_per_chunk, int act, double negative_slope) {
  using acc_t = loss_cuda::acc_t_of<scalar_t>;
  __shared__ acc_t partial[kRowGroups][kCols];
  const acc_t slope = static_cast<acc_t>(negative_slope);
  const int lane = threadIdx.x % kCols;
  const int group = threadIdx.x / kCols;
  const int64_t col = int64_t{blockIdx.x} * kCols + lane;
  const int64_t row_begin = int64_t{blockIdx.y} * rows_per_chunk;
  const int64_t row_end = row_begin + rows_per_chunk < B ? row_begin + rows_per_chunk : B;
  acc_t sum = 0;
  if (col < N) {
    for (int64_t r = row_begin + group; r < row_end; r += kRowGroups) {
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
    if (gridDim.y == 1) {
      grad_bias[col] = loss_cuda::from_acc<scalar_t>(total);
    } else {
      partials[int64_t{blockIdx.y} * N + col] = total;
    }
  }
}

// grad_bias[c] = sum over row chunks k = 0, 1, ... of partials[k, c], in that order.
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    bias_grad_reduce_kernel(const loss_cuda::acc_t_of<scalar_t>* __restrict__ partials,
                            scalar_t* __restrict__ grad_bias, int64_t chunks, int64_t N) {
  using acc_t = loss_cuda::acc_t_of<scalar_t>;
  const int64_t col = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (col >= N) return;
  acc_t total = 0;
  for (int64_t k = 0; k < chunks; ++k) total += partials[k * N + col];
  grad_bias[col] = loss_cuda::from_acc<scalar_t>(total);
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

namespace {

int64_t linear_act_backward_rows_per_chunk(int64_t B) {
  // kRowsPerChunk rows per CTA row, more when B would need over 65535 of them (the grid's y limit).
  const int64_t chunks = (B + kRowsPerChunk - 1) / kRowsPerChunk;
  const int64_t scale = (chunks + kMaxChunks - 1) / kMaxChunks;
  return kRowsPerChunk * (scale > 1 ? scale : 1);
}

int64_t linear_act_backward_chunks(int64_t B) {
  if (B <= 0) return 0;
  const int64_t rows = linear_act_backward_rows_per_chunk(B);
  return (B + rows - 1) / rows;
}

}  // namespace

int64_t linear_act_backward_workspace(int64_t B, int64_t N) {
  const int64_t chunks = linear_act_backward_chunks(B);
  return chunks > 1 && N > 0 ? chunks * N : 0;
}

template <typename scalar_t, typename acc_t>
cudaError_t launch_linear_act_backward_epilogue(const scalar_t* grad, const scalar_t* y,
                                                scalar_t* gz, scalar_t* grad_bias,
                                                acc_t* partials, int64_t B,
                                                int64_t N, int act, double negative_slope,
                                                cudaStream_t stream) {
  if (B <= 0 || N <= 0 || (gz == nullptr && grad_bias == nullptr)) return cudaSuccess;
  const int64_t rows_per_chunk = linear_act_backward_rows_per_chunk(B);
  const int64_t chunks = linear_act_backward_chunks(B);
  if (grad_bias != nullptr && chunks > 1 && partials == nullptr) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>((N + kCols - 1) / kCols), static_cast<unsigned>(chunks));
  static_assert(std::is_same<acc_t, loss_cuda::acc_t_of<scalar_t>>::value,
                "partials must be the compute type: double for double, float otherwise");
  backward_epilogue_kernel<scalar_t><<<grid, kThreads, 0, stream>>>(
      grad, y, gz, grad_bias, partials, B, N, rows_per_chunk, act, negative_slope);
  if (grad_bias != nullptr && chunks > 1) {
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    bias_grad_reduce_kernel<scalar_t>
        <<<static_cast<unsigned>((N + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
            partials, grad_bias, chunks, N);
  }
  return cudaGetLastError();
}

#define AAE_INSTANTIATE_LINEAR_ACT(T)                                                             \
  template cudaError_t launch_linear_act_epilogue<T>(T*, const T*, int64_t, int64_t, int, double, \
                                                     cudaStream_t);                               \
  template cudaError_t launch_linear_act_backward_epilogue<T, loss_cuda::acc_t_of<T>>(            \
      const T*, const T*, T*, T*, loss_cuda::acc_t_of<T>*, int64_t, int64_t, int, double,          \
      cudaStream_t);

AAE_INSTANTIATE_LINEAR_ACT(float)
AAE_INSTANTIATE_LINEAR_ACT(double)
AAE_INSTANTIATE_LINEAR_ACT(__half)
AAE_INSTANTIATE_LINEAR_ACT(__nv_bfloat16)

#undef AAE_INSTANTIATE_LINEAR_ACT

}  // namespace aae_fast
