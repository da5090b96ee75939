// Argument checks and constants shared by the CPU and CUDA implementations of
// parzen_log_likelihood (schema and semantics: csrc/ops.cpp). Every message names the argument,
// what was expected and what was received.
#pragma once

#include <ATen/ATen.h>

#include <cfloat>
#include <cmath>

namespace aae_fast {

inline bool is_parzen_input_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

// x: [N, D], samples: [M, D] with M >= 1, one floating dtype (float32, float64, float16,
// bfloat16), one device; sigma finite and > 0.
inline void check_parzen_inputs(const at::Tensor& x, const at::Tensor& samples, double sigma) {
  TORCH_CHECK(x.dim() == 2, "x must have shape [N, D], got ", x.sizes());
  TORCH_CHECK(samples.dim() == 2, "samples must have shape [M, D], got ", samples.sizes());
  TORCH_CHECK(samples.size(0) >= 1,
              "samples must hold at least one sample (shape [M, D] with M >= 1), got ",
              samples.sizes());
  TORCH_CHECK(samples.size(1) == x.size(1),
              "samples must have the dimension D of x: x has shape ", x.sizes(),
              ", samples has shape ", samples.sizes());
  TORCH_CHECK(is_parzen_input_dtype(x.scalar_type()),
              "x must be float32, float64, float16 or bfloat16, got ", x.scalar_type());
  TORCH_CHECK(samples.scalar_type() == x.scalar_type(), "samples must have the dtype of x (",
              x.scalar_type(), "), got ", samples.scalar_type());
  TORCH_CHECK(samples.device() == x.device(), "samples must be on the device of x (", x.device(),
              "), got ", samples.device());
  TORCH_CHECK(std::isfinite(sigma) && sigma > 0.0, "sigma must be a finite number > 0, got ",
              sigma);
}

// The output (and compute) dtype: float64 for float64 inputs, else float32.
inline at::ScalarType parzen_output_dtype(at::ScalarType input) {
  return input == at::kDouble ? at::kDouble : at::kFloat;
}

// 1 / (2 sigma^2), computed without overflow in sigma^2; clamped to the largest finite double so
// that 0 * h stays 0 for absurdly small sigma.
inline double parzen_half_inv_var(double sigma) {
  const double h = (0.5 / sigma) / sigma;
  return std::isfinite(h) ? h : DBL_MAX;
}

// log of the normaliser (1/M) (2 pi sigma^2)^(-D/2), without forming sigma^2.
inline double parzen_log_normalizer(int64_t num_samples, int64_t dim, double sigma) {
  const double half_log_two_pi = 0.91893853320467274178;  // 0.5 log(2 pi)
  return -std::log(static_cast<double>(num_samples)) -
         static_cast<double>(dim) * (std::log(sigma) + half_log_two_pi);
}

}  // namespace aae_fast
