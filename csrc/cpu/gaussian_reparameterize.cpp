// CPU implementation of the reparameterisation op and its backward (schemas and semantics:
// csrc/ops.cpp; random stream: csrc/include/aae_fast/philox.h, "gaussian_reparameterize").
//
//   forward:  z[i, j]           = mu[i, j] + exp(logvar[i, j] / 2) * eps[i, j]
//   backward: grad_logvar[i, j] = grad[i, j] * 0.5 * exp(logvar[i, j] / 2) * eps[i, j]
// eps[i, :] is the Box-Muller normal vector of row counter offset + i, exactly as
// sample_gaussian_mixture draws it, so the backward regenerates eps instead of storing it.
//
// Rows are independent: at::parallel_for splits them. float32 compute (float32, float16 and
// bfloat16 inputs) goes kLanes rows at a time through the vectorised stream of stream_lanes.h and a
// polynomial exp; float64 compute (the precise path) evaluates philox.h row by row with libm.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <tuple>
#include <type_traits>
#include <vector>

#include "aae_fast/philox.h"
#include "aae_fast/prior_checks.h"
#include "stream_lanes.h"

namespace aae_fast {
namespace {

using lanes::kLanes;

// Target elements per parallel task, turned into a row grain that is a whole number of lane chunks.
constexpr int64_t kElemGrain = 32768;

int64_t row_grain(int64_t D) {
  const int64_t rows = std::max<int64_t>(1, kElemGrain / std::max<int64_t>(D, 1));
  return (rows + kLanes - 1) / kLanes * kLanes;
}

struct StreamState {
  uint64_t seed;
  uint64_t offset;
};

StreamState read_state(const at::Tensor& rng_state) {
  const int64_t* s = rng_state.data_ptr<int64_t>();
  return StreamState{static_cast<uint64_t>(s[0]), static_cast<uint64_t>(s[1])};
}

// exp(x) in float32 for lane loops: n = round(x / ln 2), r = x - n ln 2 (Cody-Waite split), a
// degree-6 polynomial for exp(r), times 2^n built from bits. ~1 ulp on [-87, 88.7]; outside that
// range: inf above, 0 below (subnormal results are flushed), NaN stays NaN. No branches, no libm.
#if defined(__GNUC__) && !defined(__clang__)
#define AAE_NO_TRAPPING_MATH __attribute__((optimize("no-trapping-math")))
#else
#define AAE_NO_TRAPPING_MATH
#endif

AAE_NO_TRAPPING_MATH inline float exp_lane(float x) {
  float xc = x < -87.0f ? -87.0f : x;
  xc = xc > 88.72283905f ? 88.72283905f : xc;  // ln(FLT_MAX): above it the result is inf (below)
  const float shifted = xc * 1.44269504088896341f + 12582912.0f;  // round to nearest via 1.5 2^23
  const float n = shifted - 12582912.0f;
  const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  // n reaches 128 for x in [88.38, 88.72], where 2^n itself is not a float but exp(x) still is:
  // scale by 2^127 and then by 2, which overflows only where exp(x) does.
  const float n_hi = n > 127.0f ? 127.0f : n;
  const float extra = n > 127.0f ? 2.0f : 1.0f;
  const int32_t bits = (static_cast<int32_t>(n_hi) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  float out = (y * scale) * extra;
  out = x > 88.72283905206835f ? std::numeric_limits<float>::infinity() : out;
  out = x < -87.0f ? 0.0f : out;
  return x != x ? x : out;
}

// values[0 .. n) <- exp(0.5 * values[...]), a lane loop the compiler vectorises. The comparisons
// above are if-converted (vector blends) only without -ftrapping-math (gcc's default, which this
// code does not rely on: no floating-point exception flags are read), hence the attribute, which
// exp_lane carries too so that gcc inlines it.
AAE_NO_TRAPPING_MATH AAE_MULTIVERSION void half_exp_inplace(float* __restrict values, int64_t n) {
  for (int64_t k = 0; k < n; ++k) values[k] = exp_lane(0.5f * values[k]);
}

// One float32 row: out = first + scale * eps (forward) or 0.5 * first * scale * eps (backward),
// eps read with stride kLanes (the lane-major chunk of lane_normals).
AAE_MULTIVERSION void combine_row_f32(const float* __restrict first, const float* __restrict scale,
                                      const float* __restrict eps, int64_t D, bool backward,
                                      float* __restrict out) {
  if (backward) {
    for (int64_t j = 0; j < D; ++j) out[j] = 0.5f * first[j] * scale[j] * eps[j * kLanes];
  } else {
    for (int64_t j = 0; j < D; ++j) out[j] = first[j] + scale[j] * eps[j * kLanes];
  }
}

// The eps of kLanes consecutive rows starting at i0 into eps[(2 * pairs) * kLanes], column-major
// ([j][lane]): the Box-Muller pairs of words 2, 3, 4, 5, ... of each row, like the mixture sampler.
void lane_normals(const StreamState& s, int64_t i0, int64_t pairs, float* eps) {
  const uint64_t row0 = s.offset + static_cast<uint64_t>(i0);
  lanes::BlockWords block;
  int64_t loaded = -1;
  for (int64_t p = 0; p < pairs; ++p) {
    const int64_t word = 2 + 2 * p;  // pairs never straddle blocks
    const int64_t k = word / 4;
    if (k != loaded) {
      lanes::philox_block(s.seed, row0, static_cast<uint32_t>(k), block);
      loaded = k;
    }
    const int64_t w = word % 4;
    lanes::box_muller(block.w[w], block.w[w + 1], eps + (2 * p) * kLanes,
                      eps + (2 * p + 1) * kLanes);
  }
}

// float32 compute. For every row, scale[j] = exp(logvar / 2); then
//   forward:  out = mu + scale * eps          (first = mu)
//   backward: out = 0.5 * grad * scale * eps  (first = grad)
template <typename scalar_t, bool kBackward>
void rows_f32(const StreamState& s, int64_t begin, int64_t end, int64_t D, const scalar_t* first,
              const scalar_t* logvar, scalar_t* out) {
  const int64_t pairs = (D + 1) / 2;
  std::vector<float> eps(static_cast<size_t>(2 * pairs * kLanes));
  std::vector<float> scale(static_cast<size_t>(D));
  for (int64_t i0 = begin; i0 < end; i0 += kLanes) {
    const int64_t count = std::min<int64_t>(kLanes, end - i0);
    lane_normals(s, i0, pairs, eps.data());
    for (int64_t l = 0; l < count; ++l) {
      const int64_t base = (i0 + l) * D;
      for (int64_t j = 0; j < D; ++j) scale[j] = static_cast<float>(logvar[base + j]);
      half_exp_inplace(scale.data(), D);
      const float* e = eps.data() + l;
      if constexpr (std::is_same_v<scalar_t, float>) {
        combine_row_f32(first + base, scale.data(), e, D, kBackward, out + base);
        continue;
      }
      for (int64_t j = 0; j < D; ++j) {
        const float a = static_cast<float>(first[base + j]);
        const float v = kBackward ? 0.5f * a * scale[j] * e[j * kLanes] : a + scale[j] * e[j * kLanes];
        out[base + j] = static_cast<scalar_t>(v);
      }
    }
  }
}

// float64 compute, row by row with libm: the precise path.
template <bool kBackward>
void rows_f64(const StreamState& s, int64_t begin, int64_t end, int64_t D, const double* first,
              const double* logvar, double* out) {
  for (int64_t i = begin; i < end; ++i) {
    const uint64_t row = s.offset + static_cast<uint64_t>(i);
    philox::Words block{};
    int64_t loaded = -1;
    for (int64_t p = 0; 2 * p < D; ++p) {
      const int64_t word = 2 + 2 * p;
      const int64_t k = word / 4;
      if (k != loaded) {
        block = philox::row_block(s.seed, row, static_cast<uint32_t>(k));
        loaded = k;
      }
      const int64_t w = word % 4;
      const double u1 = static_cast<double>(philox::uniform01c(block.w[w]));
      const double u2 = static_cast<double>(philox::uniform01(block.w[w + 1]));
      const double radius = std::sqrt(-2.0 * std::log(u1));
      const double angle = (2 * M_PI) * u2;
      const double pair[2] = {radius * std::cos(angle), radius * std::sin(angle)};
      for (int64_t q = 0; q < 2 && 2 * p + q < D; ++q) {
        const int64_t idx = i * D + 2 * p + q;
        const double scale = std::exp(0.5 * logvar[idx]);
        out[idx] = kBackward ? 0.5 * first[idx] * scale * pair[q] : first[idx] + scale * pair[q];
      }
    }
  }
}

template <bool kBackward>
void run(const StreamState& s, const at::Tensor& first, const at::Tensor& logvar, at::Tensor& out) {
  const int64_t B = first.size(0), D = first.size(1);
  if (B == 0 || D == 0) return;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, first.scalar_type(),
                                  "gaussian_reparameterize", [&] {
    const scalar_t* a = first.data_ptr<scalar_t>();
    const scalar_t* lv = logvar.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, B, row_grain(D), [&](int64_t begin, int64_t end) {
      if constexpr (std::is_same_v<scalar_t, double>) {
        rows_f64<kBackward>(s, begin, end, D, a, lv, o);
      } else {
        rows_f32<scalar_t, kBackward>(s, begin, end, D, a, lv, o);
      }
    });
  });
}

void check_float_input(const at::Tensor& t, const char* name) {
  const auto dt = t.scalar_type();
  TORCH_CHECK(dt == at::kFloat || dt == at::kDouble || dt == at::kHalf || dt == at::kBFloat16, name,
              " must be a float32, float64, float16 or bfloat16 tensor, got ", dt);
}

// mu / grad: [B, D]; logvar: the same shape, dtype and device; rng_state on that device.
void check_inputs(const at::Tensor& rng_state, const at::Tensor& first, const char* first_name,
                  const at::Tensor& logvar) {
  check_rng_state(rng_state);
  check_float_input(first, first_name);
  TORCH_CHECK(first.dim() == 2, first_name, " must have shape [B, D], got ", first.sizes());
  TORCH_CHECK(logvar.sizes() == first.sizes(), "logvar must have the shape of ", first_name, " ",
              first.sizes(), ", got ", logvar.sizes());
  TORCH_CHECK(logvar.scalar_type() == first.scalar_type(), "logvar must have the dtype of ",
              first_name, " (", first.scalar_type(), "), got ", logvar.scalar_type());
  TORCH_CHECK(logvar.device() == first.device(), "logvar must be on ", first.device(),
              " (the device of ", first_name, "), got ", logvar.device());
  check_same_device(first, first_name, rng_state);
}

std::tuple<at::Tensor, at::Tensor> gaussian_reparameterize_cpu(const at::Tensor& rng_state,
                                                                const at::Tensor& mu,
                                                                const at::Tensor& logvar) {
  check_inputs(rng_state, mu, "mu", logvar);
  const at::Tensor mu_c = mu.contiguous(), logvar_c = logvar.contiguous();
  at::Tensor z = at::empty(mu.sizes(), mu.options().memory_format(at::MemoryFormat::Contiguous));
  run<false>(read_state(rng_state), mu_c, logvar_c, z);
  return {z, rng_state.clone()};
}

at::Tensor gaussian_reparameterize_backward_cpu(const at::Tensor& grad, const at::Tensor& rng_state,
                                                const at::Tensor& logvar) {
  check_inputs(rng_state, grad, "grad", logvar);
  const at::Tensor grad_c = grad.contiguous(), logvar_c = logvar.contiguous();
  at::Tensor out =
      at::empty(logvar.sizes(), logvar.options().memory_format(at::MemoryFormat::Contiguous));
  run<true>(read_state(rng_state), grad_c, logvar_c, out);
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(aae_fast, CPU, m) {
  m.impl("gaussian_reparameterize", &gaussian_reparameterize_cpu);
  m.impl("gaussian_reparameterize_backward", &gaussian_reparameterize_backward_cpu);
}

}  // namespace aae_fast
