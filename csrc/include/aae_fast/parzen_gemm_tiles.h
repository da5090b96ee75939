// parzen_log_likelihood from ATen ops on any device (csrc/aten/parzen_gemm_tiles.cpp): the vendor
// GEMM (cuBLAS on CUDA) computes each tile's dot products, and a few elementwise ATen ops fold the
// tile into a running log-sum-exp. The CUDA glue serves large D with it (see there).
#pragma once
#include <ATen/ATen.h>

namespace aae_fast {

// out[i] = log((1/M) sum_j N(x_i; samples_j, sigma^2 I)), the semantics and checks of the op
// (csrc/ops.cpp), in tiles of row_tile rows of x by sample_tile samples: memory beyond the inputs
// is O(N + M) plus a few row_tile x sample_tile matrices, never N x M.
at::Tensor parzen_log_likelihood_gemm_tiles(const at::Tensor& x, const at::Tensor& samples,
                                            double sigma, int64_t row_tile = 2048,
                                            int64_t sample_tile = 4096);

}  // namespace aae_fast
