// CPU implementations of the prior-sampling ops (schemas and semantics: csrc/ops.cpp; random
// stream: csrc/include/aae_fast/philox.h). Rows are independent, so at::parallel_for splits them
// across threads. float32 compute goes kLanes rows at a time through the vectorised stream of
// stream_lanes.h; float64 compute (the precise path) evaluates philox.h row by row with libm.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "aae_fast/philox.h"
#include "aae_fast/prior_checks.h"
#include "stream_lanes.h"

namespace aae_fast {
namespace {

using lanes::kLanes;
using philox::Words;

// Rows per parallel task: enough work to amortise scheduling, small enough to balance the cores.
// A multiple of kLanes so that only the last task has a partial chunk.
constexpr int64_t kRowGrain = 2048;
static_assert(kRowGrain % kLanes == 0, "row grain must be whole lane chunks");

struct StreamState {
  uint64_t seed;
  uint64_t offset;
};

// Reads [seed, offset] and advances the offset by n (the op consumes n row counters).
StreamState take_rows(at::Tensor& rng_state, int64_t n) {
  int64_t* state = rng_state.data_ptr<int64_t>();
  StreamState out{static_cast<uint64_t>(state[0]), static_cast<uint64_t>(state[1])};
  state[1] = static_cast<int64_t>(out.offset + static_cast<uint64_t>(n));
  return out;
}

void check_label_values(const c10::optional<at::Tensor>& labels, int64_t num_categories) {
  if (!labels.has_value() || labels->numel() == 0) return;
  // A plain loop over the (CPU) labels, not at::aminmax + item(): item() goes through the
  // dispatcher as aten::_local_scalar_dense, which the no-host-sync tests flag.
  const at::Tensor contiguous = labels->contiguous();
  const int64_t* y = contiguous.const_data_ptr<int64_t>();
  const auto [lo, hi] = std::minmax_element(y, y + contiguous.numel());
  const int64_t min_label = *lo;
  const int64_t max_label = *hi;
  TORCH_CHECK_VALUE(min_label >= 0 && max_label < num_categories, "labels must lie in [0, ",
              num_categories, "), got values in [", min_label, ", ", max_label, "]");
}

const int64_t* labels_ptr(const c10::optional<at::Tensor>& contiguous_labels) {
  return contiguous_labels.has_value() ? contiguous_labels->data_ptr<int64_t>() : nullptr;
}

c10::optional<at::Tensor> contiguous(const c10::optional<at::Tensor>& t) {
  if (!t.has_value()) return t;
  return t->contiguous();
}

template <typename acc_t>
acc_t to_unit(float u) {
  return static_cast<acc_t>(u);
}

// Category of row `row` under the stream: the label if given, else the cum_weights draw.
template <typename acc_t>
int64_t row_category(const StreamState& s, int64_t i, const Words& block0, const int64_t* labels,
                     const acc_t* cum, int64_t K) {
  if (labels != nullptr) return labels[i];
  if (K == 1) return 0;
  return philox::pick_category(to_unit<acc_t>(philox::uniform01(block0.w[0])), cum, K);
}

// eps[0..D) of one row from the Box-Muller words 2.. of the row's blocks (block 0 already given).
template <typename acc_t>
void row_normals(const StreamState& s, uint64_t row, const Words& block0, int64_t D, acc_t* eps) {
  Words block = block0;
  int64_t loaded = 0;  // index of the block held in `block`
  for (int64_t p = 0; 2 * p < D; ++p) {
    const int64_t word = 2 + 2 * p;  // first word of pair p; pairs never straddle blocks
    const int64_t k = word / 4;
    if (k != loaded) {
      block = philox::row_block(s.seed, row, static_cast<uint32_t>(k));
      loaded = k;
    }
    const int64_t lane = word % 4;
    const acc_t u1 = to_unit<acc_t>(philox::uniform01c(block.w[lane]));
    const acc_t u2 = to_unit<acc_t>(philox::uniform01(block.w[lane + 1]));
    const acc_t radius = std::sqrt(acc_t(-2) * std::log(u1));
    const acc_t angle = static_cast<acc_t>(2 * M_PI) * u2;
    eps[2 * p] = radius * std::cos(angle);
    if (2 * p + 1 < D) eps[2 * p + 1] = radius * std::sin(angle);
  }
}

// z = loc[c] + scale[c] (*) eps for one row, eps given with stride `eps_stride`.
template <typename acc_t, typename out_t>
inline void affine_row(int64_t c, int64_t D, bool tril, const acc_t* loc, const acc_t* scale,
                       const acc_t* eps, int64_t eps_stride, out_t* z) {
  const acc_t* mu = loc + c * D;
  if (tril) {
    const acc_t* L = scale + c * D * D;
    for (int64_t j = 0; j < D; ++j) {
      acc_t acc = mu[j];
      for (int64_t k = 0; k <= j; ++k) acc += L[j * D + k] * eps[k * eps_stride];
      z[j] = static_cast<out_t>(acc);
    }
  } else {
    const acc_t* sd = scale + c * D;
    for (int64_t j = 0; j < D; ++j) z[j] = static_cast<out_t>(mu[j] + sd[j] * eps[j * eps_stride]);
  }
}

// float32: kLanes rows at a time; eps is held as [D (rounded up to even)][kLanes].
template <typename out_t>
void gaussian_mixture_rows_f32(const StreamState& s, int64_t begin, int64_t end, int64_t K,
                               int64_t D, bool tril, const float* loc, const float* scale,
                               const float* cum, const int64_t* labels, out_t* out) {
  const int64_t pairs = (D + 1) / 2;
  std::vector<float> eps(static_cast<size_t>(2 * pairs * kLanes));
  lanes::BlockWords block0, block;
  for (int64_t i0 = begin; i0 < end; i0 += kLanes) {
    const uint64_t row0 = s.offset + static_cast<uint64_t>(i0);
    const int64_t count = std::min<int64_t>(kLanes, end - i0);
    lanes::philox_block(s.seed, row0, 0, block0);
    int64_t loaded = 0;
    const lanes::BlockWords* current = &block0;
    for (int64_t p = 0; p < pairs; ++p) {
      const int64_t word = 2 + 2 * p;  // pairs never straddle blocks
      const int64_t k = word / 4;
      if (k != loaded) {
        lanes::philox_block(s.seed, row0, static_cast<uint32_t>(k), block);
        current = &block;
        loaded = k;
      }
      const int64_t lane_word = word % 4;
      lanes::box_muller(current->w[lane_word], current->w[lane_word + 1],
                        eps.data() + (2 * p) * kLanes, eps.data() + (2 * p + 1) * kLanes);
    }
    for (int64_t l = 0; l < count; ++l) {
      const int64_t i = i0 + l;
      int64_t c = 0;
      if (labels != nullptr) {
        c = labels[i];
      } else if (K > 1) {
        c = philox::pick_category(philox::uniform01(block0.w[0][l]), cum, K);
      }
      affine_row(c, D, tril, loc, scale, eps.data() + l, kLanes, out + i * D);
    }
  }
}

// float64: one row at a time with libm, the precise path.
template <typename out_t>
void gaussian_mixture_rows_f64(const StreamState& s, int64_t begin, int64_t end, int64_t K,
                               int64_t D, bool tril, const double* loc, const double* scale,
                               const double* cum, const int64_t* labels, out_t* out) {
  std::vector<double> eps(static_cast<size_t>(D));
  for (int64_t i = begin; i < end; ++i) {
    const uint64_t row = s.offset + static_cast<uint64_t>(i);
    const Words block0 = philox::row_block(s.seed, row, 0);
    const int64_t c = row_category(s, i, block0, labels, cum, K);
    row_normals(s, row, block0, D, eps.data());
    affine_row(c, D, tril, loc, scale, eps.data(), 1, out + i * D);
  }
}

template <typename acc_t, typename out_t>
void gaussian_mixture_kernel(const StreamState& s, int64_t n, int64_t K, int64_t D, bool tril,
                             const acc_t* loc, const acc_t* scale, const acc_t* cum,
                             const int64_t* labels, out_t* out) {
  at::parallel_for(0, n, kRowGrain, [&](int64_t begin, int64_t end) {
    if constexpr (std::is_same_v<acc_t, float>) {
      gaussian_mixture_rows_f32(s, begin, end, K, D, tril, loc, scale, cum, labels, out);
    } else {
      gaussian_mixture_rows_f64(s, begin, end, K, D, tril, loc, scale, cum, labels, out);
    }
  });
}

template <typename acc_t, typename out_t>
void swiss_roll_kernel(const StreamState& s, int64_t n, int64_t K, const acc_t* cum,
                       const int64_t* labels, acc_t radius, acc_t turns, out_t* out) {
  at::parallel_for(0, n, kRowGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const Words block0 = philox::row_block(s.seed, s.offset + static_cast<uint64_t>(i), 0);
      const int64_t c = row_category(s, i, block0, labels, cum, K);
      const acc_t t =
          (static_cast<acc_t>(c) + to_unit<acc_t>(philox::uniform01(block0.w[1]))) / K;
      const acc_t root = std::sqrt(t);
      const acc_t rho = radius * root;
      const acc_t angle = static_cast<acc_t>(2 * M_PI) * turns * root;
      out[2 * i] = static_cast<out_t>(rho * std::cos(angle));
      out[2 * i + 1] = static_cast<out_t>(rho * std::sin(angle));
    }
  });
}

template <typename acc_t, typename out_t>
void categorical_kernel(const StreamState& s, int64_t n, int64_t K, const acc_t* cum,
                        const int64_t* labels, out_t* out) {
  at::parallel_for(0, n, kRowGrain, [&](int64_t begin, int64_t end) {
    lanes::BlockWords block0;
    for (int64_t i0 = begin; i0 < end; i0 += kLanes) {
      const int64_t count = std::min<int64_t>(kLanes, end - i0);
      if (labels == nullptr && K > 1) {
        lanes::philox_block(s.seed, s.offset + static_cast<uint64_t>(i0), 0, block0);
      }
      for (int64_t l = 0; l < count; ++l) {
        const int64_t i = i0 + l;
        int64_t c = 0;
        if (labels != nullptr) {
          c = labels[i];
        } else if (K > 1) {
          c = philox::pick_category(static_cast<acc_t>(philox::uniform01(block0.w[0][l])), cum, K);
        }
        out_t* row = out + i * K;
        std::fill(row, row + K, static_cast<out_t>(0));
        row[c] = static_cast<out_t>(1);
      }
    }
  });
}

// Dispatches on the parameters' dtype (compute precision) and the output dtype.
#define AAE_DISPATCH_ACC_AND_OUT(ACC_TYPE, OUT_TYPE, NAME, ...)                            \
  AT_DISPATCH_FLOATING_TYPES(ACC_TYPE, NAME, [&] {                                         \
    using acc_t = scalar_t;                                                                \
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, OUT_TYPE, NAME, [&] {        \
      using out_t = scalar_t;                                                              \
      __VA_ARGS__();                                                                       \
    });                                                                                    \
  })

at::Tensor sample_gaussian_mixture_cpu(at::Tensor& rng_state, int64_t n, const at::Tensor& loc,
                                       const at::Tensor& scale, const at::Tensor& cum_weights,
                                       const c10::optional<at::Tensor>& labels,
                                       at::ScalarType dtype) {
  check_rng_state(rng_state);
  check_sample_count(n);
  check_output_dtype(dtype);
  const int64_t K = check_cum_weights(cum_weights, rng_state);
  const int64_t D = check_mixture_params(loc, scale, cum_weights, rng_state);
  check_labels_shape(labels, n, rng_state);
  check_label_values(labels, K);

  const at::Tensor loc_c = loc.contiguous();
  const at::Tensor scale_c = scale.contiguous();
  const at::Tensor cum_c = cum_weights.contiguous();
  const auto labels_c = contiguous(labels);
  const bool tril = scale.dim() == 3;
  at::Tensor out = at::empty({n, D}, rng_state.options().dtype(dtype));
  const StreamState s = take_rows(rng_state, n);
  AAE_DISPATCH_ACC_AND_OUT(cum_weights.scalar_type(), dtype, "sample_gaussian_mixture", [&] {
    gaussian_mixture_kernel<acc_t, out_t>(s, n, K, D, tril, loc_c.data_ptr<acc_t>(),
                                          scale_c.data_ptr<acc_t>(), cum_c.data_ptr<acc_t>(),
                                          labels_ptr(labels_c), out.data_ptr<out_t>());
  });
  return out;
}

at::Tensor sample_swiss_roll_cpu(at::Tensor& rng_state, int64_t n, const at::Tensor& cum_weights,
                                 const c10::optional<at::Tensor>& labels, double radius,
                                 double turns, at::ScalarType dtype) {
  check_rng_state(rng_state);
  check_sample_count(n);
  check_output_dtype(dtype);
  const int64_t K = check_cum_weights(cum_weights, rng_state);
  check_labels_shape(labels, n, rng_state);
  check_label_values(labels, K);

  const at::Tensor cum_c = cum_weights.contiguous();
  const auto labels_c = contiguous(labels);
  at::Tensor out = at::empty({n, 2}, rng_state.options().dtype(dtype));
  const StreamState s = take_rows(rng_state, n);
  AAE_DISPATCH_ACC_AND_OUT(cum_weights.scalar_type(), dtype, "sample_swiss_roll", [&] {
    swiss_roll_kernel<acc_t, out_t>(s, n, K, cum_c.data_ptr<acc_t>(), labels_ptr(labels_c),
                                    static_cast<acc_t>(radius), static_cast<acc_t>(turns),
                                    out.data_ptr<out_t>());
  });
  return out;
}

at::Tensor sample_categorical_cpu(at::Tensor& rng_state, int64_t n, const at::Tensor& cum_weights,
                                  const c10::optional<at::Tensor>& labels, at::ScalarType dtype) {
  check_rng_state(rng_state);
  check_sample_count(n);
  check_output_dtype(dtype);
  const int64_t K = check_cum_weights(cum_weights, rng_state);
  check_labels_shape(labels, n, rng_state);
  check_label_values(labels, K);

  const at::Tensor cum_c = cum_weights.contiguous();
  const auto labels_c = contiguous(labels);
  at::Tensor out = at::empty({n, K}, rng_state.options().dtype(dtype));
  const StreamState s = take_rows(rng_state, n);
  AAE_DISPATCH_ACC_AND_OUT(cum_weights.scalar_type(), dtype, "sample_categorical", [&] {
    categorical_kernel<acc_t, out_t>(s, n, K, cum_c.data_ptr<acc_t>(), labels_ptr(labels_c),
                                     out.data_ptr<out_t>());
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(aae_fast, CPU, m) {
  m.impl("sample_gaussian_mixture", &sample_gaussian_mixture_cpu);
  m.impl("sample_swiss_roll", &sample_swiss_roll_cpu);
  m.impl("sample_categorical", &sample_categorical_cpu);
}

}  // namespace aae_fast
