// Argument checks shared by the CPU and CUDA implementations of the prior-sampling ops. Every
// message names the argument, what was expected and what was received.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Optional.h>

namespace aae_fast {

inline void check_rng_state(const at::Tensor& rng_state) {
  TORCH_CHECK(rng_state.scalar_type() == at::kLong && rng_state.dim() == 1 &&
                  rng_state.numel() == 2 && rng_state.is_contiguous(),
              "rng_state must be a contiguous int64 tensor [seed, offset] of shape [2], got dtype ",
              rng_state.scalar_type(), " and shape ", rng_state.sizes());
}

inline void check_sample_count(int64_t n) {
  TORCH_CHECK(n >= 0, "n must be a non-negative number of samples, got ", n);
}

inline void check_output_dtype(at::ScalarType dtype) {
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf ||
                  dtype == at::kBFloat16,
              "dtype must be float32, float64, float16 or bfloat16, got ", dtype);
}

inline void check_same_device(const at::Tensor& t, const char* name, const at::Tensor& rng_state) {
  TORCH_CHECK(t.device() == rng_state.device(), name, " must be on ", rng_state.device(),
              " (the device of rng_state), got ", t.device());
}

// cum_weights: [K] float32/float64, K >= 1. Returns K.
inline int64_t check_cum_weights(const at::Tensor& cum_weights, const at::Tensor& rng_state) {
  check_same_device(cum_weights, "cum_weights", rng_state);
  TORCH_CHECK(cum_weights.dim() == 1 && cum_weights.size(0) >= 1,
              "cum_weights must have shape [K] with K >= 1, got ", cum_weights.sizes());
  TORCH_CHECK(cum_weights.scalar_type() == at::kFloat || cum_weights.scalar_type() == at::kDouble,
              "cum_weights must be float32 or float64, got ", cum_weights.scalar_type());
  return cum_weights.size(0);
}

// labels: int64 [n] on the same device. Values are checked by the device implementation: the CPU
// kernels raise, the CUDA and Triton kernels write NaN rows (a check would need a host sync).
inline void check_labels_shape(const c10::optional<at::Tensor>& labels, int64_t n,
                               const at::Tensor& rng_state) {
  if (!labels.has_value()) return;
  const at::Tensor& l = *labels;
  check_same_device(l, "labels", rng_state);
  TORCH_CHECK(l.scalar_type() == at::kLong, "labels must be an int64 tensor, got ",
              l.scalar_type());
  TORCH_CHECK(l.dim() == 1 && l.size(0) == n, "labels must have shape [n] = [", n, "], got ",
              l.sizes());
}

// loc: [K, D]; scale: [K, D] (diagonal) or [K, D, D] (lower-triangular); both of cum_weights'
// dtype. Returns D.
inline int64_t check_mixture_params(const at::Tensor& loc, const at::Tensor& scale,
                                    const at::Tensor& cum_weights, const at::Tensor& rng_state) {
  const int64_t K = cum_weights.size(0);
  check_same_device(loc, "loc", rng_state);
  check_same_device(scale, "scale", rng_state);
  TORCH_CHECK(loc.dim() == 2 && loc.size(0) == K && loc.size(1) >= 1,
              "loc must have shape [K, D] with K = ", K, " (from cum_weights) and D >= 1, got ",
              loc.sizes());
  const int64_t D = loc.size(1);
  TORCH_CHECK((scale.dim() == 2 && scale.size(0) == K && scale.size(1) == D) ||
                  (scale.dim() == 3 && scale.size(0) == K && scale.size(1) == D &&
                   scale.size(2) == D),
              "scale must have shape [K, D] = [", K, ", ", D, "] (diagonal) or [K, D, D] = [", K,
              ", ", D, ", ", D, "] (lower-triangular), got ", scale.sizes());
  TORCH_CHECK(loc.scalar_type() == cum_weights.scalar_type() &&
                  scale.scalar_type() == cum_weights.scalar_type(),
              "loc, scale and cum_weights must share one dtype (float32 or float64), got ",
              loc.scalar_type(), ", ", scale.scalar_type(), " and ", cum_weights.scalar_type());
  return D;
}

}  // namespace aae_fast
