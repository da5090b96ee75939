// Every aae_fast operator schema, defined once. Implementations register per device key:
// csrc/cpu/*.cpp (CPU), csrc/cuda/*_cuda.cpp (CUDA, built only with a CUDA torch), and, for CUDA
// without the CUDA extension, the Triton launchers in kernels/ (registered from Python).
// aae_fast/_schemas.py mirrors these strings for the pure-PyTorch fallback; a test keeps the two
// equal.
#include <torch/library.h>

TORCH_LIBRARY(aae_fast, m) {
  // Prior sampling (DESIGN §5). `rng_state` is an int64 tensor [seed, offset] on the output's
  // device; the op reads it on the device and advances offset by n, so CUDA-graph replays draw
  // fresh numbers. Parameters are float32 or float64 (the compute precision); `dtype` is the
  // output's. The stream layout is csrc/include/aae_fast/philox.h.
  //
  // z_i = loc[c_i] + scale[c_i] * eps_i with c_i = labels[i] or drawn from cum_weights [K];
  // scale is [K, D] (diagonal) or [K, D, D] (lower-triangular factor of the covariance; entries
  // above the diagonal are ignored).
  //
  // Labels outside [0, K): the CPU kernels raise; the CUDA and Triton kernels cannot check without
  // a host sync, so they write NaN rows instead (aae_fast.priors checks CPU labels up front).
  // Angles are computed as (2 pi turns) * sqrt(t) in the compute precision (2 pi as a double for
  // float64 compute).
  m.def(
      "sample_gaussian_mixture(Tensor(a!) rng_state, SymInt n, Tensor loc, Tensor scale, "
      "Tensor cum_weights, Tensor? labels, ScalarType dtype) -> Tensor");
  // Swiss roll in 2-D split into K label segments: segment s_i = labels[i] or drawn from
  // cum_weights; t = (s_i + u_i) / K; z_i = radius * sqrt(t) * (cos a, sin a), a = 2 pi turns sqrt(t).
  m.def(
      "sample_swiss_roll(Tensor(a!) rng_state, SymInt n, Tensor cum_weights, Tensor? labels, "
      "float radius, float turns, ScalarType dtype) -> Tensor");
  // One-hot rows [n, K]: class c_i = labels[i] or drawn from cum_weights.
  m.def(
      "sample_categorical(Tensor(a!) rng_state, SymInt n, Tensor cum_weights, Tensor? labels, "
      "ScalarType dtype) -> Tensor");
}
