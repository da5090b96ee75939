// Argument checks and constants shared by the CPU and CUDA implementations of mmd and
// mmd_backward (schemas and semantics: csrc/ops.cpp). Every message names the argument, what was
// expected and what was received; aae_fast/ops/mmd.py raises the same messages from Python.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/ArrayRef.h>

#include <array>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <vector>

namespace aae_fast {

inline bool is_mmd_input_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16;
}

// x: [N, D], y: [M, D], one floating dtype (float32, float64, float16, bfloat16), one device;
// N, M >= 1 (>= 2 when unbiased); bandwidths: at least one, each finite and > 0.
inline void check_mmd_inputs(const at::Tensor& x, const at::Tensor& y,
                             c10::ArrayRef<double> bandwidths, bool unbiased) {
  TORCH_CHECK(x.dim() == 2, "x must have shape [N, D], got ", x.sizes());
  TORCH_CHECK(y.dim() == 2, "y must have shape [M, D], got ", y.sizes());
  TORCH_CHECK(y.size(1) == x.size(1), "y must have the dimension D of x: x has shape ", x.sizes(),
              ", y has shape ", y.sizes());
  TORCH_CHECK(is_mmd_input_dtype(x.scalar_type()),
              "x must be float32, float64, float16 or bfloat16, got ", x.scalar_type());
  TORCH_CHECK(y.scalar_type() == x.scalar_type(), "y must have the dtype of x (", x.scalar_type(),
              "), got ", y.scalar_type());
  TORCH_CHECK(y.device() == x.device(), "y must be on the device of x (", x.device(), "), got ",
              y.device());
  const int64_t min_rows = unbiased ? 2 : 1;
  TORCH_CHECK(x.size(0) >= min_rows, "x must hold at least ", min_rows,
              unbiased ? " samples for unbiased=True" : " sample", " (shape [N, D] with N >= ",
              min_rows, "), got ", x.sizes());
  TORCH_CHECK(y.size(0) >= min_rows, "y must hold at least ", min_rows,
              unbiased ? " samples for unbiased=True" : " sample", " (shape [M, D] with M >= ",
              min_rows, "), got ", y.sizes());
  TORCH_CHECK(!bandwidths.empty(), "bandwidths must hold at least one bandwidth, got []");
  for (size_t s = 0; s < bandwidths.size(); ++s) {
    TORCH_CHECK(std::isfinite(bandwidths[s]) && bandwidths[s] > 0.0,
                "bandwidths must be finite numbers > 0, got ", bandwidths[s], " at index ", s);
  }
}

// grad: the 0-dim gradient of the scalar MMD, floating point, on the device of x.
inline void check_mmd_grad(const at::Tensor& grad, const at::Tensor& x) {
  TORCH_CHECK(grad.dim() == 0,
              "grad must be a 0-dim tensor (the gradient of the scalar mmd), got shape ",
              grad.sizes());
  TORCH_CHECK(at::isFloatingType(grad.scalar_type()), "grad must be a floating-point tensor, got ",
              grad.scalar_type());
  TORCH_CHECK(grad.device() == x.device(), "grad must be on the device of x (", x.device(),
              "), got ", grad.device());
}

// The output (and compute) dtype: float64 for float64 inputs, else float32.
inline at::ScalarType mmd_output_dtype(at::ScalarType input) {
  return input == at::kDouble ? at::kDouble : at::kFloat;
}

// h_s = 1 / (2 s^2) for each bandwidth, without overflow in s^2: clamped to the largest finite
// double so that 0 * h stays 0 for absurdly small bandwidths (h may underflow to 0 for huge ones:
// that kernel is then the constant 1).
inline std::vector<double> mmd_half_inv_vars(c10::ArrayRef<double> bandwidths) {
  std::vector<double> h(bandwidths.size());
  for (size_t s = 0; s < bandwidths.size(); ++s) {
    const double v = (0.5 / bandwidths[s]) / bandwidths[s];
    h[s] = std::isfinite(v) ? v : DBL_MAX;
  }
  return h;
}

// The weights of the three kernel sums: mmd = wxx Sxx + wyy Syy - wxy Sxy with
//   Sxx = sum_{i != i'} k(x_i, x_i') (+ the diagonal, N * S, when biased), likewise Syy,
//   Sxy = sum_{i, j} k(x_i, y_j);
//   biased:   wxx = 1 / N^2,       wyy = 1 / M^2,       wxy = 2 / (N M)
//   unbiased: wxx = 1 / (N (N-1)), wyy = 1 / (M (M-1)), wxy = 2 / (N M)
struct MmdWeights {
  double xx, yy, xy;
};

inline MmdWeights mmd_weights(int64_t n, int64_t m, bool unbiased) {
  const double dn = static_cast<double>(n), dm = static_cast<double>(m);
  return {1.0 / (dn * (unbiased ? dn - 1.0 : dn)), 1.0 / (dm * (unbiased ? dm - 1.0 : dm)),
          2.0 / (dn * dm)};
}

}  // namespace aae_fast
