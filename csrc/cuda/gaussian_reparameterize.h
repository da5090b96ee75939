// CUDA launcher for the reparameterisation op and its backward (schemas and semantics:
// csrc/ops.cpp; random stream: csrc/include/aae_fast/philox.h, "gaussian_reparameterize").
// Torch-free: raw device pointers, sizes and a stream, so that gaussian_reparameterize.cu compiles
// with nvcc alone; the torch glue is gaussian_reparameterize_cuda.cpp.
//
//   forward  (backward = false): out = first + exp(logvar / 2) * eps          (first = mu)
//   backward (backward = true):  out = 0.5 * first * exp(logvar / 2) * eps    (first = grad)
// eps[i, :] = the Box-Muller normals of row counter offset + i, read from rng_state on the device;
// rng_state is never written. Compute in float for float / __half / __nv_bfloat16 and in double
// for double (explicit instantiations in the .cu). Contiguous row-major memory, 64-bit sizes.
// Returns cudaGetLastError() after the launch; nothing is enqueued when B * D == 0.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

namespace aae_fast {

template <typename scalar_t>
cudaError_t launch_gaussian_reparameterize(
    const int64_t* rng_state,  // [2] int64: seed, offset (read only)
    int64_t rows,              // B >= 0
    int64_t dim,               // D >= 0
    const scalar_t* first,     // [B, D]: mu (forward) or grad (backward)
    const scalar_t* logvar,    // [B, D]
    scalar_t* out,             // [B, D]: z (forward) or grad_logvar (backward)
    bool backward,
    cudaStream_t stream);

}  // namespace aae_fast
