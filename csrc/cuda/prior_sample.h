// CUDA launchers for the prior-sampling ops (schemas and semantics: csrc/ops.cpp; random stream:
// csrc/include/aae_fast/philox.h). Torch-free: raw device pointers, sizes and a stream, so that
// prior_sample.cu compiles with nvcc alone; the torch glue is prior_sample_cuda.cpp.
//
// Every launcher, for n > 0, enqueues on `stream`
//   1. the sampling kernel, which reads rng_state = [seed, offset] on the device, and
//   2. a one-thread kernel that advances rng_state[1] by n (mod 2^64),
// so the state never visits the host and CUDA-graph replays draw fresh numbers. For n == 0 nothing
// is enqueued. The return value is cudaGetLastError() after the launches.
//
// Template arguments (explicitly instantiated in prior_sample.cu for exactly these types):
//   param_t: the parameters' dtype and compute precision: float or double
//   out_t:   the output dtype: float, double, __half or __nv_bfloat16 (converted from param_t as
//            c10 does: via float for the 16-bit types)
//
// Labels are not range-checked on the host (that would need a device-to-host sync): a row whose
// label is outside [0, K) is written as NaN in every column.
//
// All pointers are device pointers to contiguous row-major memory; 64-bit sizes throughout.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

namespace aae_fast {

// z_i = loc[c_i] + scale[c_i] * eps_i (diagonal) or loc[c_i] + tril(scale[c_i]) @ eps_i.
template <typename param_t, typename out_t>
cudaError_t launch_sample_gaussian_mixture(
    int64_t* rng_state,          // [2] int64: seed, offset (offset += n)
    int64_t n,                   // rows, >= 0
    int64_t num_components,      // K >= 1
    int64_t dim,                 // D >= 1
    const param_t* loc,          // [K, D]
    const param_t* scale,        // [K, D] (diagonal) or [K, D, D] (lower-triangular factor)
    bool scale_is_tril,          // false: scale is [K, D]; true: [K, D, D], only k <= j read
    const param_t* cum_weights,  // [K], cumulative weights (cum[K-1] is never read)
    const int64_t* labels,       // [n] or nullptr (then c_i is drawn from cum_weights)
    out_t* out,                  // [n, D]
    cudaStream_t stream);

// t_i = (s_i + u_i) / K; z_i = radius sqrt(t_i) (cos a_i, sin a_i), a_i = 2 pi turns sqrt(t_i).
template <typename param_t, typename out_t>
cudaError_t launch_sample_swiss_roll(
    int64_t* rng_state,          // [2] int64: seed, offset (offset += n)
    int64_t n,                   // rows, >= 0
    int64_t num_components,      // K >= 1 label segments
    const param_t* cum_weights,  // [K]
    const int64_t* labels,       // [n] or nullptr
    double radius,               // converted to param_t on the device
    double turns,                // converted to param_t on the device
    out_t* out,                  // [n, 2]
    cudaStream_t stream);

// One-hot rows: out[i, k] = (k == c_i).
template <typename param_t, typename out_t>
cudaError_t launch_sample_categorical(
    int64_t* rng_state,          // [2] int64: seed, offset (offset += n)
    int64_t n,                   // rows, >= 0
    int64_t num_classes,         // K >= 1
    const param_t* cum_weights,  // [K]
    const int64_t* labels,       // [n] or nullptr
    out_t* out,                  // [n, K]
    cudaStream_t stream);

}  // namespace aae_fast
