// parzen_log_likelihood from ATen ops on any device: GEMM tiles of x . s from the vendor BLAS,
// then elementwise ATen ops for the tile's log-sum-exp, merged into each row's running (max, sum)
// in float64. The same tiling and arithmetic as the op's pure-PyTorch fallback
// (aae_fast/ops/parzen_log_likelihood.py, _composite), without Python between the kernels.
//
// Why it exists: on an H200 (benchmarks/results/nvidia-h200-2026-11-26-suite.md) the op's CUDA
// kernel, SIMT tiles, took 15.6 ms at N = M = 10^4, D = 784, and the Python fallback's cuBLAS
// tiles 10.5 ms (eager cdist + logsumexp: 5.0 ms, holding 1.1 GiB). At large
// D the distances are GEMM work, which cuBLAS does best; at small D the elementwise passes over
// each tile dominate and the fused CUDA kernel wins (mmd, the same structure, ran 4x faster than
// its ATen tiles at D = 8). The CUDA glue picks between them by D, and keeps the kernel where
// cuBLAS would round float32 to TF32.
//
// Registered as the private op aae_fast::_parzen_log_likelihood_gemm_tiles
// (CompositeExplicitAutograd: any device) so that tests and benchmarks can call it directly.
#include "aae_fast/parzen_gemm_tiles.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>

#include "aae_fast/parzen_checks.h"

namespace aae_fast {
namespace {

// Row-wise squared norms in float64 (exact enough for any input), returned in the compute dtype;
// in chunks of `chunk` rows so that a float64 copy of a large input never exists at once.
at::Tensor squared_norms(const at::Tensor& t, at::ScalarType compute, int64_t chunk) {
  const int64_t rows = t.size(0);
  at::Tensor out = at::empty({rows}, t.options().dtype(compute));
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t r1 = std::min(rows, r0 + chunk);
    out.slice(0, r0, r1).copy_(t.slice(0, r0, r1).to(at::kDouble).square().sum(1));
  }
  return out;
}

}  // namespace

at::Tensor parzen_log_likelihood_gemm_tiles(const at::Tensor& x, const at::Tensor& samples,
                                            double sigma, int64_t row_tile,
                                            int64_t sample_tile) {
  check_parzen_inputs(x, samples, sigma);
  TORCH_CHECK(row_tile >= 1 && sample_tile >= 1, "row_tile and sample_tile must be >= 1, got ",
              row_tile, " and ", sample_tile);
  const at::NoGradGuard no_grad;
  const at::ScalarType compute = parzen_output_dtype(x.scalar_type());
  const int64_t n = x.size(0), m = samples.size(0);
  at::Tensor out = at::empty({n}, x.options().dtype(compute));
  if (n == 0) return out;
  const double h64 = parzen_half_inv_var(sigma);
  // In float32 the scale is clamped to FLT_MAX so that 0 * h stays 0 (not inf * 0 = NaN).
  const double h = std::min(h64, compute == at::kDouble ? DBL_MAX : static_cast<double>(FLT_MAX));
  const double log_norm = parzen_log_normalizer(m, x.size(1), sigma);
  const double inf = std::numeric_limits<double>::infinity();

  const at::Tensor s_sq = squared_norms(samples, compute, sample_tile);
  for (int64_t i0 = 0; i0 < n; i0 += row_tile) {
    const int64_t i1 = std::min(n, i0 + row_tile);
    const at::Tensor xb = x.slice(0, i0, i1).to(compute);
    const at::Tensor xb_sq = squared_norms(xb, compute, row_tile).unsqueeze(1);
    at::Tensor run_max = at::full({i1 - i0}, -inf, x.options().dtype(at::kDouble));
    at::Tensor run_sum = at::zeros({i1 - i0}, x.options().dtype(at::kDouble));
    for (int64_t j0 = 0; j0 < m; j0 += sample_tile) {
      const int64_t j1 = std::min(m, j0 + sample_tile);
      const at::Tensor sb = samples.slice(0, j0, j1).to(compute);
      // ||s||^2 - 2 x.s + ||x||^2, clamped at 0 where cancellation makes it negative (NaN stays).
      at::Tensor d2 = at::addmm(s_sq.slice(0, j0, j1).unsqueeze(0), xb, sb.t(), 1.0, -2.0);
      d2.add_(xb_sq).clamp_min_(0.0);
      const at::Tensor d_min = at::amin(d2, 1, /*keepdim=*/true);
      // sum_j exp((min d2 - d2_j) h): every term in (0, 1], the largest 1. In place on d2, summed
      // in the compute dtype (a float64 sum would first copy the whole tile to float64).
      const at::Tensor block_sum = d2.sub_(d_min).mul_(-h).exp_().sum(1).to(at::kDouble);
      const at::Tensor block_max = d_min.squeeze(1).to(at::kDouble).mul(-h64);
      const at::Tensor new_max = at::maximum(run_max, block_max);
      run_sum = run_sum.mul_((run_max - new_max).exp_())
                    .add_(block_sum.mul((block_max - new_max).exp_()));
      run_max = new_max;
    }
    out.slice(0, i0, i1).copy_(run_max.add_(run_sum.log_()).add_(log_norm));
  }
  return out;
}

TORCH_LIBRARY_IMPL(aae_fast, CompositeExplicitAutograd, m) {
  m.impl("_parzen_log_likelihood_gemm_tiles", &parzen_log_likelihood_gemm_tiles);
}

}  // namespace aae_fast
