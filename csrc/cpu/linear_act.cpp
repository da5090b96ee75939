// CPU implementation of linear_act and linear_act_backward (schemas and semantics: csrc/ops.cpp).
//
//   forward:  y = act(x @ weight^T + bias)
//             the GEMM is ATen's (at::addmm_out / at::mm_out into y: the vendor BLAS, with the bias
//             as the beta = 1 term; fp32 accumulation for 16-bit inputs), then one vectorised
//             in-place pass over y applies act (none for identity).
//   backward: gz = grad * act'(y)   (act' from the saved output y: relu 1[not y <= 0], leaky_relu
//             1 or slope, sigmoid y (1 - y), tanh 1 - y^2, identity 1)
//             grad_bias = sum_rows(gz)  (in the same pass: parallel over column blocks, each column
//             summed over rows in row order, so the result does not depend on the thread count)
//             grad_x = gz @ weight, grad_weight = gz^T @ x   (at::mm), each only when asked for.
//
// float32, float16 and bfloat16 compute the epilogues in float32 (16-bit values widened as loaded,
// bias-gradient sums in float32 per column, rounded once); float64 computes in float64 (libm).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "loss_lanes.h"

namespace aae_fast {
namespace {

using loss_lanes::bits_float;
using loss_lanes::exp_neg;
using loss_lanes::float_bits;
using loss_lanes::kAbsMask;
using loss_lanes::nan_mask;

enum class Act : int { kIdentity = 0, kRelu = 1, kLeakyRelu = 2, kSigmoid = 3, kTanh = 4 };

Act parse_activation(const std::string& name, double negative_slope) {
  Act act;
  if (name == "identity") {
    act = Act::kIdentity;
  } else if (name == "relu") {
    act = Act::kRelu;
  } else if (name == "leaky_relu") {
    act = Act::kLeakyRelu;
  } else if (name == "sigmoid") {
    act = Act::kSigmoid;
  } else if (name == "tanh") {
    act = Act::kTanh;
  } else {
    TORCH_CHECK(false,
                "activation must be one of 'identity', 'relu', 'leaky_relu', 'sigmoid', 'tanh', "
                "got '", name, "'");
  }
  if (act == Act::kLeakyRelu) {
    // act' is read from the output's sign, which identifies the pre-activation's only for slope >= 0.
    TORCH_CHECK(std::isfinite(negative_slope) && negative_slope >= 0.0,
                "negative_slope must be finite and >= 0, got ", negative_slope);
  }
  return act;
}

// ---- float32 element math (branch-free, vectorisable; see loss_lanes.h) -----------------------

#define AAE_LA_INLINE AAE_LOSS_INLINE

AAE_LA_INLINE float relu_f(float z) {
  const int32_t zi = float_bits(z);
  return bits_float((zi & ~(zi >> 31)) | nan_mask(zi & kAbsMask));
}

AAE_LA_INLINE float leaky_f(float z, float slope) {
  const int32_t zi = float_bits(z);
  const int32_t neg = zi >> 31;
  return bits_float((float_bits(z * slope) & neg) | (zi & ~neg));
}

// tanh(z) = sign(z) (1 - e) / (1 + e), e = exp(-2|z|), for |z| >= 1/4; below, where 1 - e cancels
// (tanh(1e-6) would lose 1 % and tanh(1e-8) come out 0), the odd Taylor series to z^9, whose
// truncation is under 1e-8 relative at |z| = 1/4 (the quotient's error there is about 2e-7).
AAE_LA_INLINE float tanh_f(float z) {
  const int32_t zi = float_bits(z);
  const float a = bits_float(zi & kAbsMask) * 2.0f;
  const int32_t ai = float_bits(a);
  const float e = exp_neg(ai);
  const float t = (1.0f - e) / (1.0f + e);
  const float quotient =
      bits_float((float_bits(t) | (zi & static_cast<int32_t>(0x80000000u))) | nan_mask(ai));
  const float z2 = z * z;
  float q = 62.0f / 2835.0f;
  q = q * z2 - 17.0f / 315.0f;
  q = q * z2 + 2.0f / 15.0f;
  q = q * z2 - 1.0f / 3.0f;
  const float series = z * (1.0f + z2 * q);  // keeps the sign of -0
  const int32_t small = ai < float_bits(0.5f) ? -1 : 0;  // 2|z| < 1/2 (NaN is not small)
  return bits_float((float_bits(series) & small) | (float_bits(quotient) & ~small));
}

template <Act A>
AAE_LA_INLINE float act_f(float z, float slope) {
  if constexpr (A == Act::kIdentity) return z;
  if constexpr (A == Act::kRelu) return relu_f(z);
  if constexpr (A == Act::kLeakyRelu) return leaky_f(z, slope);
  if constexpr (A == Act::kSigmoid) return loss_lanes::sigmoid(z);
  if constexpr (A == Act::kTanh) return tanh_f(z);
  return z;
}

// d act / dz expressed through y = act(z), times g.
template <Act A>
AAE_LA_INLINE float dact_f(float g, float y, float slope) {
  if constexpr (A == Act::kIdentity) return g;
  if constexpr (A == Act::kRelu) {  // blocked where y <= 0: a NaN y passes g, as torch.relu's
    return bits_float(float_bits(g) & (y <= 0.0f ? 0 : -1));
  }
  if constexpr (A == Act::kLeakyRelu) {
    const int32_t pos = y > 0.0f ? -1 : 0;  // a NaN y is not positive (g * slope, as torch's)
    return bits_float((float_bits(g) & pos) | (float_bits(g * slope) & ~pos));
  }
  if constexpr (A == Act::kSigmoid) return g * (y * (1.0f - y));
  if constexpr (A == Act::kTanh) return g * (1.0f - y * y);
  return g;
}

// ---- float64 element math (libm) ---------------------------------------------------------------

template <Act A>
inline double act_d(double z, double slope) {
  if constexpr (A == Act::kIdentity) return z;
  if constexpr (A == Act::kRelu) return std::isnan(z) ? z : (z > 0.0 ? z : 0.0);
  if constexpr (A == Act::kLeakyRelu) return z > 0.0 ? z : z * slope;
  if constexpr (A == Act::kSigmoid) return loss_lanes::sigmoid(z);
  if constexpr (A == Act::kTanh) return std::tanh(z);
  return z;
}

template <Act A>
inline double dact_d(double g, double y, double slope) {
  if constexpr (A == Act::kIdentity) return g;
  if constexpr (A == Act::kRelu) return y <= 0.0 ? 0.0 : g;
  if constexpr (A == Act::kLeakyRelu) return y > 0.0 ? g : g * slope;
  if constexpr (A == Act::kSigmoid) return g * (y * (1.0 - y));
  if constexpr (A == Act::kTanh) return g * (1.0 - y * y);
  return g;
}

// ---- row kernels -------------------------------------------------------------------------------
//
// Forward: y[0, n) = act(y + bias) in place (bias may be null). Backward, over one row segment of
// columns: gz = grad * act'(y) written to gz (unless gz is null: identity without a stored gz), and
// acc[j] += gz[j] (unless acc is null).

constexpr int64_t kTile = 256;  // float32 staging buffer for 16-bit rows

template <Act A>
AAE_LA_INLINE void fwd_row_f32(float* __restrict y, const float* __restrict bias, int64_t n,
                               float slope) {
  if (bias != nullptr) {
    for (int64_t j = 0; j < n; ++j) y[j] = act_f<A>(y[j] + bias[j], slope);
  } else {
    for (int64_t j = 0; j < n; ++j) y[j] = act_f<A>(y[j], slope);
  }
}

template <Act A, typename T>
AAE_LA_INLINE void fwd_row_16(T* __restrict y, const T* __restrict bias, int64_t n, float slope) {
  float buf[kTile];
  for (int64_t b = 0; b < n; b += kTile) {
    const int64_t len = std::min(kTile, n - b);
    if (bias != nullptr) {
      for (int64_t j = 0; j < len; ++j) {
        buf[j] = static_cast<float>(y[b + j]) + static_cast<float>(bias[b + j]);
      }
    } else {
      for (int64_t j = 0; j < len; ++j) buf[j] = static_cast<float>(y[b + j]);
    }
    for (int64_t j = 0; j < len; ++j) buf[j] = act_f<A>(buf[j], slope);
    for (int64_t j = 0; j < len; ++j) y[b + j] = static_cast<T>(buf[j]);
  }
}

template <Act A, typename T>
AAE_LA_INLINE void bwd_row(const T* __restrict g, const T* __restrict y, T* __restrict gz,
                           float* __restrict acc, int64_t n, float slope) {
  float buf[kTile];
  for (int64_t b = 0; b < n; b += kTile) {
    const int64_t len = std::min(kTile, n - b);
    for (int64_t j = 0; j < len; ++j) {
      buf[j] = dact_f<A>(static_cast<float>(g[b + j]), static_cast<float>(y[b + j]), slope);
    }
    if (gz != nullptr) {
      for (int64_t j = 0; j < len; ++j) gz[b + j] = static_cast<T>(buf[j]);
    }
    if (acc != nullptr) {
      // 16-bit gz: the bias gradient sums the rounded values, so it equals gz.sum(0).
      if constexpr (std::is_same_v<T, float>) {
        for (int64_t j = 0; j < len; ++j) acc[b + j] += buf[j];
      } else {
        for (int64_t j = 0; j < len; ++j) acc[b + j] += static_cast<float>(static_cast<T>(buf[j]));
      }
    }
  }
}

// One multiversioned entry per (activation, type): the switch on the activation happens once per
// row, the loops inside are specialised.
#define AAE_LA_FWD_ROW(T, BODY)                                                                   \
  AAE_LOSS_MULTIVERSION void fwd_row_t(Act act, T* y, const T* bias, int64_t n, float slope) {    \
    switch (act) {                                                                                \
      case Act::kIdentity: BODY(Act::kIdentity); break;                                           \
      case Act::kRelu: BODY(Act::kRelu); break;                                                   \
      case Act::kLeakyRelu: BODY(Act::kLeakyRelu); break;                                         \
      case Act::kSigmoid: BODY(Act::kSigmoid); break;                                             \
      case Act::kTanh: BODY(Act::kTanh); break;                                                   \
    }                                                                                             \
  }
#define AAE_LA_F32_BODY(A) fwd_row_f32<A>(y, bias, n, slope)
#define AAE_LA_16_BODY(A) fwd_row_16<A>(y, bias, n, slope)
AAE_LA_FWD_ROW(float, AAE_LA_F32_BODY)
AAE_LA_FWD_ROW(c10::BFloat16, AAE_LA_16_BODY)
AAE_LA_FWD_ROW(c10::Half, AAE_LA_16_BODY)
#undef AAE_LA_F32_BODY
#undef AAE_LA_16_BODY
#undef AAE_LA_FWD_ROW

#define AAE_LA_BWD_ROW(T)                                                                         \
  AAE_LOSS_MULTIVERSION void bwd_row_t(Act act, const T* g, const T* y, T* gz, float* acc,       \
                                       int64_t n, float slope) {                                 \
    switch (act) {                                                                                \
      case Act::kIdentity: bwd_row<Act::kIdentity>(g, y, gz, acc, n, slope); break;               \
      case Act::kRelu: bwd_row<Act::kRelu>(g, y, gz, acc, n, slope); break;                       \
      case Act::kLeakyRelu: bwd_row<Act::kLeakyRelu>(g, y, gz, acc, n, slope); break;             \
      case Act::kSigmoid: bwd_row<Act::kSigmoid>(g, y, gz, acc, n, slope); break;                 \
      case Act::kTanh: bwd_row<Act::kTanh>(g, y, gz, acc, n, slope); break;                       \
    }                                                                                             \
  }
AAE_LA_BWD_ROW(float)
AAE_LA_BWD_ROW(c10::BFloat16)
AAE_LA_BWD_ROW(c10::Half)
#undef AAE_LA_BWD_ROW

template <Act A>
void fwd_row_f64(double* y, const double* bias, int64_t n, double slope) {
  for (int64_t j = 0; j < n; ++j) y[j] = act_d<A>(bias != nullptr ? y[j] + bias[j] : y[j], slope);
}
void fwd_row_t(Act act, double* y, const double* bias, int64_t n, double slope) {
  switch (act) {
    case Act::kIdentity: fwd_row_f64<Act::kIdentity>(y, bias, n, slope); break;
    case Act::kRelu: fwd_row_f64<Act::kRelu>(y, bias, n, slope); break;
    case Act::kLeakyRelu: fwd_row_f64<Act::kLeakyRelu>(y, bias, n, slope); break;
    case Act::kSigmoid: fwd_row_f64<Act::kSigmoid>(y, bias, n, slope); break;
    case Act::kTanh: fwd_row_f64<Act::kTanh>(y, bias, n, slope); break;
  }
}

template <Act A>
void bwd_row_f64(const double* g, const double* y, double* gz, double* acc, int64_t n,
                 double slope) {
  for (int64_t j = 0; j < n; ++j) {
    const double v = dact_d<A>(g[j], y[j], slope);
    if (gz != nullptr) gz[j] = v;
    if (acc != nullptr) acc[j] += v;
  }
}
void bwd_row_t(Act act, const double* g, const double* y, double* gz, double* acc, int64_t n,
               double slope) {
  switch (act) {
    case Act::kIdentity: bwd_row_f64<Act::kIdentity>(g, y, gz, acc, n, slope); break;
    case Act::kRelu: bwd_row_f64<Act::kRelu>(g, y, gz, acc, n, slope); break;
    case Act::kLeakyRelu: bwd_row_f64<Act::kLeakyRelu>(g, y, gz, acc, n, slope); break;
    case Act::kSigmoid: bwd_row_f64<Act::kSigmoid>(g, y, gz, acc, n, slope); break;
    case Act::kTanh: bwd_row_f64<Act::kTanh>(g, y, gz, acc, n, slope); break;
  }
}

// ---- checks ------------------------------------------------------------------------------------

void check_float(const at::Tensor& t, const char* name) {
  TORCH_CHECK(at::isFloatingType(t.scalar_type()) && t.scalar_type() != at::kFloat8_e4m3fn &&
                  t.scalar_type() != at::kFloat8_e5m2,
              name, " must be float32, float64, float16 or bfloat16, got ", t.scalar_type());
}

void check_like(const at::Tensor& t, const char* name, const at::Tensor& ref, const char* ref_name) {
  TORCH_CHECK(t.scalar_type() == ref.scalar_type(), name, " must have the dtype of ", ref_name, " (",
              ref.scalar_type(), "), got ", t.scalar_type());
  TORCH_CHECK(t.device() == ref.device(), name, " must be on the device of ", ref_name, " (",
              ref.device(), "), got ", t.device());
}

void check_forward_args(const at::Tensor& x, const at::Tensor& weight,
                        const c10::optional<at::Tensor>& bias) {
  check_float(x, "x");
  TORCH_CHECK(x.dim() == 2, "x must have shape [B, K], got ", x.sizes());
  TORCH_CHECK(weight.dim() == 2 && weight.size(1) == x.size(1),
              "weight must have shape [N, K] with K = x.size(1) = ", x.size(1), ", got ",
              weight.sizes());
  check_like(weight, "weight", x, "x");
  if (bias.has_value()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == weight.size(0),
                "bias must have shape [N] with N = weight.size(0) = ", weight.size(0), ", got ",
                bias->sizes());
    check_like(*bias, "bias", x, "x");
  }
}

// ---- ops ---------------------------------------------------------------------------------------

at::Tensor linear_act_cpu(const at::Tensor& x, const at::Tensor& weight,
                          const c10::optional<at::Tensor>& bias, c10::string_view activation,
                          double negative_slope) {
  check_forward_args(x, weight, bias);
  const Act act = parse_activation(std::string(activation), negative_slope);
  const int64_t B = x.size(0);
  const int64_t N = weight.size(0);
  at::Tensor y = at::empty({B, N}, x.options());
  if (y.numel() == 0) return y;
  // The bias goes into the GEMM (addmm: beta = 1 over the broadcast bias), like F.linear; measured
  // no slower than mm plus a bias-adding epilogue, and it leaves identity with no epilogue at all.
  if (bias.has_value()) {
    at::addmm_out(y, *bias, x, weight.t());
  } else {
    at::mm_out(y, x, weight.t());
  }
  if (act == Act::kIdentity) return y;
  const at::Tensor b;  // the epilogue applies the activation only
  // Rows per task: at least ~16K elements, enough to amortise waking a thread.
  const int64_t grain = std::max<int64_t>(1, 16384 / N);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, y.scalar_type(), "linear_act", [&] {
    using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    scalar_t* yp = y.data_ptr<scalar_t>();
    const scalar_t* bp = b.defined() ? b.const_data_ptr<scalar_t>() : nullptr;
    at::parallel_for(0, B, grain, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        fwd_row_t(act, yp + r * N, bp, N, static_cast<acc_t>(negative_slope));
      }
    });
  });
  return y;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> linear_act_backward_cpu(
    const at::Tensor& grad, const at::Tensor& y, const c10::optional<at::Tensor>& x,
    const c10::optional<at::Tensor>& weight, c10::string_view activation, double negative_slope,
    std::array<bool, 3> output_mask) {
  const Act act = parse_activation(std::string(activation), negative_slope);
  check_float(y, "y");
  TORCH_CHECK(y.dim() == 2, "y must have shape [B, N], got ", y.sizes());
  TORCH_CHECK(grad.sizes() == y.sizes(), "grad must have the shape of y (", y.sizes(), "), got ",
              grad.sizes());
  check_like(grad, "grad", y, "y");
  const int64_t B = y.size(0);
  const int64_t N = y.size(1);
  if (output_mask[0]) {
    TORCH_CHECK(weight.has_value(), "weight is required for the gradient of x");
  }
  if (output_mask[1]) {
    TORCH_CHECK(x.has_value(), "x is required for the gradient of weight");
  }
  if (weight.has_value()) {
    TORCH_CHECK(weight->dim() == 2 && weight->size(0) == N,
                "weight must have shape [N, K] with N = y.size(1) = ", N, ", got ", weight->sizes());
    check_like(*weight, "weight", y, "y");
  }
  if (x.has_value()) {
    TORCH_CHECK(x->dim() == 2 && x->size(0) == B,
                "x must have shape [B, K] with B = y.size(0) = ", B, ", got ", x->sizes());
    if (weight.has_value()) {
      TORCH_CHECK(x->size(1) == weight->size(1), "x must have shape [B, K] with K = weight.size(1) = ",
                  weight->size(1), ", got ", x->sizes());
    }
    check_like(*x, "x", y, "y");
  }
  const bool need_gz = output_mask[0] || output_mask[1];
  const bool need_gb = output_mask[2];
  const at::Tensor g = grad.contiguous();
  const at::Tensor yc = act == Act::kIdentity ? g : y.contiguous();  // identity never reads y

  at::Tensor gz;  // grad * act'(y), [B, N]
  at::Tensor grad_bias = need_gb ? at::empty({N}, y.options()) : at::empty({0}, y.options());
  const bool store_gz = need_gz && act != Act::kIdentity;
  if (store_gz) gz = at::empty({B, N}, y.options());
  if (act == Act::kIdentity && need_gz) gz = g;

  if ((store_gz || need_gb) && N > 0) {
    // Column blocks: each task owns whole columns and walks the rows in order, so the bias
    // gradient's summation order does not depend on the thread count.
    constexpr int64_t kCols = 256;
    const int64_t nblocks = (N + kCols - 1) / kCols;
    const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, B * kCols));
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, y.scalar_type(),
                                    "linear_act_backward", [&] {
      using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
      const scalar_t* gp = g.const_data_ptr<scalar_t>();
      const scalar_t* yp = yc.const_data_ptr<scalar_t>();
      scalar_t* zp = store_gz ? gz.data_ptr<scalar_t>() : nullptr;
      scalar_t* bp = need_gb ? grad_bias.data_ptr<scalar_t>() : nullptr;
      at::parallel_for(0, nblocks, grain, [&](int64_t b0, int64_t b1) {
        acc_t acc[kCols];
        for (int64_t blk = b0; blk < b1; ++blk) {
          const int64_t c0 = blk * kCols;
          const int64_t len = std::min(kCols, N - c0);
          std::fill(acc, acc + len, acc_t(0));
          for (int64_t r = 0; r < B; ++r) {
            const int64_t off = r * N + c0;
            bwd_row_t(act, gp + off, yp + off, zp != nullptr ? zp + off : nullptr,
                      need_gb ? acc : nullptr, len, static_cast<acc_t>(negative_slope));
          }
          if (bp != nullptr) {
            for (int64_t j = 0; j < len; ++j) bp[c0 + j] = static_cast<scalar_t>(acc[j]);
          }
        }
      });
    });
  } else if (need_gb) {
    grad_bias.zero_();
  }

  at::Tensor grad_x = at::empty({0}, y.options());
  at::Tensor grad_w = at::empty({0}, y.options());
  if (output_mask[0]) {
    grad_x = at::empty({B, weight->size(1)}, y.options());
    if (N == 0) {
      grad_x.zero_();
    } else if (grad_x.numel() > 0) {
      at::mm_out(grad_x, gz, *weight);
    }
  }
  if (output_mask[1]) {
    grad_w = at::empty({N, x->size(1)}, y.options());
    if (B == 0) {
      grad_w.zero_();
    } else if (grad_w.numel() > 0) {
      at::mm_out(grad_w, gz.t(), *x);
    }
  }
  return {grad_x, grad_w, grad_bias};
}

}  // namespace

TORCH_LIBRARY_IMPL(aae_fast, CPU, m) {
  m.impl("linear_act", &linear_act_cpu);
  m.impl("linear_act_backward", &linear_act_backward_cpu);
}

}  // namespace aae_fast
