// Maps at:: scalar types to the CUDA types the torch-free .cu files are instantiated for (same
// memory layouts). Included only by the torch glue (*_cuda.cpp), never by a .cu file.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

namespace aae_fast {

template <typename T>
struct CudaType {
  using type = T;
};
template <>
struct CudaType<at::Half> {
  using type = __half;
};
template <>
struct CudaType<at::BFloat16> {
  using type = __nv_bfloat16;
};

// The compute (accumulation) type of the kernels, for the workspaces and outputs the glue
// allocates: double for double, float for float, at::Half and at::BFloat16 (loss_reduce.cuh's
// acc_t_of on the .cu side).
template <typename T>
using acc_of = std::conditional_t<std::is_same_v<T, double>, double, float>;

}  // namespace aae_fast
