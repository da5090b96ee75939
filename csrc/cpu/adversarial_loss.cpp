// CPU implementations of the adversarial losses and their backwards (schemas and semantics:
// csrc/ops.cpp; element math and the deterministic chunked reduction: loss_lanes.h).
//
//   adversarial_d_loss = mean(softplus(-real)) + mean(softplus(fake))
//   adversarial_g_loss = mean(softplus(-fake))
//   d/dx mean(softplus(s x)) = s sigmoid(s x) / numel(x)
//
// float32, float16 and bfloat16 inputs compute in float32 (16-bit values are widened as they are
// loaded) and sum into double lane accumulators; float64 computes in float64. The loss is written
// in the loss dtype (csrc/include/aae_fast/loss_checks.h), the gradients in the logits' dtype.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "aae_fast/loss_checks.h"
#include "loss_lanes.h"

namespace aae_fast {
namespace {

using namespace loss_lanes;

// ---- hot loops ---------------------------------------------------------------------------------

// Sum of softplus(sign * x[i]) over one chunk, n <= kChunk.
template <typename scalar_t, typename acc_t = acc_type<scalar_t>>
AAE_LOSS_INLINE double chunk_softplus_sum(const scalar_t* __restrict x, int64_t n, acc_t sign) {
  double acc[kLanes] = {};
  acc_t v[kBlock];
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t len = std::min(kBlock, n - b);
    for (int64_t j = 0; j < len; ++j) v[j] = softplus(sign * static_cast<acc_t>(x[b + j]));
    for (int64_t j = len; j < kBlock; ++j) v[j] = 0;
    add_block(v, acc);
  }
  return sum_lanes(acc);
}

// out[i] = coef * sigmoid(sign * x[i]).
template <typename scalar_t, typename acc_t = acc_type<scalar_t>>
AAE_LOSS_INLINE void scaled_sigmoid(const scalar_t* __restrict x, int64_t n, acc_t sign, acc_t coef,
                                    scalar_t* __restrict out) {
  for (int64_t i = 0; i < n; ++i) {
    out[i] = static_cast<scalar_t>(coef * sigmoid(sign * static_cast<acc_t>(x[i])));
  }
}

// One multiversioned copy per float32-compute input type; float64 takes the libm path.
#define AAE_ADVERSARIAL_KERNELS(T)                                                             \
  AAE_LOSS_MULTIVERSION double chunk_softplus_sum_t(const T* x, int64_t n, float sign) {       \
    return chunk_softplus_sum<T>(x, n, sign);                                                  \
  }                                                                                            \
  AAE_LOSS_MULTIVERSION void scaled_sigmoid_t(const T* x, int64_t n, float sign, float coef,   \
                                              T* out) {                                        \
    scaled_sigmoid<T>(x, n, sign, coef, out);                                                  \
  }
AAE_ADVERSARIAL_KERNELS(float)
AAE_ADVERSARIAL_KERNELS(c10::Half)
AAE_ADVERSARIAL_KERNELS(c10::BFloat16)
#undef AAE_ADVERSARIAL_KERNELS

double chunk_softplus_sum_t(const double* x, int64_t n, double sign) {
  return chunk_softplus_sum<double>(x, n, sign);
}
void scaled_sigmoid_t(const double* x, int64_t n, double sign, double coef, double* out) {
  scaled_sigmoid<double>(x, n, sign, coef, out);
}

// ---- drivers -----------------------------------------------------------------------------------

// Sum of softplus(sign * x) over a contiguous tensor: chunk partials added in chunk order.
double softplus_sum(const at::Tensor& x, double sign) {
  const int64_t n = x.numel();
  double total = 0.0;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "softplus_sum", [&] {
    using acc_t = acc_type<scalar_t>;
    const scalar_t* data = x.const_data_ptr<scalar_t>();
    total = sum_chunks(num_chunks(n), [&](int64_t c) {
      const int64_t begin = c * kChunk;
      return chunk_softplus_sum_t(data + begin, std::min(kChunk, n - begin),
                                  static_cast<acc_t>(sign));
    });
  });
  return total;
}

// coef * sigmoid(sign * x) in x's dtype and shape (contiguous).
at::Tensor scaled_sigmoid_tensor(const at::Tensor& x_in, double sign, double coef) {
  const at::Tensor x = x_in.contiguous();
  at::Tensor out = at::empty(x.sizes(), x.options());
  const int64_t n = x.numel();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "scaled_sigmoid", [&] {
    using acc_t = acc_type<scalar_t>;
    const scalar_t* src = x.const_data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    for_each_chunk(n, [&](int64_t begin, int64_t end) {
      scaled_sigmoid_t(src + begin, end - begin, static_cast<acc_t>(sign), static_cast<acc_t>(coef),
                       dst + begin);
    });
  });
  return out;
}

// A 0-dim loss tensor holding value, in the loss dtype of `like`'s dtype.
at::Tensor scalar_loss(double value, const at::Tensor& like) {
  at::Tensor loss = at::empty({}, like.options().dtype(loss_dtype(like.scalar_type())));
  if (loss.scalar_type() == at::kDouble) {
    *loss.data_ptr<double>() = value;
  } else {
    *loss.data_ptr<float>() = static_cast<float>(value);
  }
  return loss;
}

// ---- ops ---------------------------------------------------------------------------------------

at::Tensor adversarial_d_loss_cpu(const at::Tensor& real_logits, const at::Tensor& fake_logits) {
  check_loss_input_dtype(real_logits, "real_logits");
  check_same_dtype_and_device(real_logits, "real_logits", fake_logits, "fake_logits");
  // numel 0 gives 0 / 0 = NaN, like torch.mean of an empty tensor.
  const double real_term = softplus_sum(real_logits.contiguous(), -1.0) /
                           static_cast<double>(real_logits.numel());
  const double fake_term = softplus_sum(fake_logits.contiguous(), 1.0) /
                           static_cast<double>(fake_logits.numel());
  return scalar_loss(real_term + fake_term, real_logits);
}

at::Tensor adversarial_g_loss_cpu(const at::Tensor& fake_logits) {
  check_loss_input_dtype(fake_logits, "fake_logits");
  const double term = softplus_sum(fake_logits.contiguous(), -1.0) /
                      static_cast<double>(fake_logits.numel());
  return scalar_loss(term, fake_logits);
}

std::tuple<at::Tensor, at::Tensor> adversarial_d_loss_backward_cpu(
    const at::Tensor& grad, const c10::optional<at::Tensor>& real_logits,
    const c10::optional<at::Tensor>& fake_logits) {
  if (real_logits.has_value()) {
    check_loss_input_dtype(*real_logits, "real_logits");
    check_loss_grad(grad, *real_logits, "real_logits");
  }
  if (fake_logits.has_value()) {
    check_loss_input_dtype(*fake_logits, "fake_logits");
    check_loss_grad(grad, *fake_logits, "fake_logits");
  }
  if (real_logits.has_value() && fake_logits.has_value()) {
    check_same_dtype_and_device(*real_logits, "real_logits", *fake_logits, "fake_logits");
  }
  const double g = aae_fast::cpu::scalar_value(grad);
  at::Tensor grad_real, grad_fake;
  if (real_logits.has_value()) {
    const double n = static_cast<double>(real_logits->numel());
    grad_real = scaled_sigmoid_tensor(*real_logits, -1.0, -g / n);
  } else {
    grad_real = at::empty({0}, grad.options());
  }
  if (fake_logits.has_value()) {
    const double n = static_cast<double>(fake_logits->numel());
    grad_fake = scaled_sigmoid_tensor(*fake_logits, 1.0, g / n);
  } else {
    grad_fake = at::empty({0}, grad.options());
  }
  return {grad_real, grad_fake};
}

at::Tensor adversarial_g_loss_backward_cpu(const at::Tensor& grad, const at::Tensor& fake_logits) {
  check_loss_input_dtype(fake_logits, "fake_logits");
  check_loss_grad(grad, fake_logits, "fake_logits");
  const double n = static_cast<double>(fake_logits.numel());
  return scaled_sigmoid_tensor(fake_logits, -1.0, -aae_fast::cpu::scalar_value(grad) / n);
}

}  // namespace

TORCH_LIBRARY_IMPL(aae_fast, CPU, m) {
  m.impl("adversarial_d_loss", &adversarial_d_loss_cpu);
  m.impl("adversarial_d_loss_backward", &adversarial_d_loss_backward_cpu);
  m.impl("adversarial_g_loss", &adversarial_g_loss_cpu);
  m.impl("adversarial_g_loss_backward", &adversarial_g_loss_backward_cpu);
}

}  // namespace aae_fast
