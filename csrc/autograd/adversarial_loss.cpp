// Autograd kernels (C++) of adversarial_d_loss and adversarial_g_loss: the formulas of
// aae_fast/ops/adversarial_loss.py without the Python autograd layer (csrc/include/aae_fast/
// autograd.h says how these kernels work).
//
// Saved: only the logits whose gradient is wanted. The backwards call
// aae_fast::adversarial_d_loss_backward (an input not saved is passed as None; its empty
// placeholder gradient is dropped here) and aae_fast::adversarial_g_loss_backward; under
// create_graph=True they compute the same formula with differentiable ATen ops instead (double
// backward, e.g. a gradient penalty).
#include <ATen/ATen.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <tuple>

#include "aae_fast/autograd.h"
#include "aae_fast/loss_checks.h"

namespace aae_fast {
namespace autograd {
namespace {

using DLossSig = at::Tensor(const at::Tensor&, const at::Tensor&);
using DLossBackwardSig = std::tuple<at::Tensor, at::Tensor>(
    const at::Tensor&, const std::optional<at::Tensor>&, const std::optional<at::Tensor>&);
using GLossSig = at::Tensor(const at::Tensor&);
using GLossBackwardSig = at::Tensor(const at::Tensor&, const at::Tensor&);

at::Tensor d_loss_below_autograd(const at::Tensor& real_logits, const at::Tensor& fake_logits) {
  static const auto op = op_handle<DLossSig>("aae_fast::adversarial_d_loss");
  at::AutoDispatchBelowADInplaceOrView guard;
  return op.call(real_logits, fake_logits);
}

at::Tensor g_loss_below_autograd(const at::Tensor& fake_logits) {
  static const auto op = op_handle<GLossSig>("aae_fast::adversarial_g_loss");
  at::AutoDispatchBelowADInplaceOrView guard;
  return op.call(fake_logits);
}

// grad times the gradient of mean(softplus(sign * x)): grad * sign * sigmoid(sign * x) / numel(x),
// in the loss dtype, returned in x's dtype; differentiable (ATen ops), for create_graph=True.
// aae_fast/ops/adversarial_loss.py's _scaled_sigmoid is the same formula.
at::Tensor scaled_sigmoid(const at::Tensor& grad, const at::Tensor& x, double sign) {
  const at::ScalarType acc = loss_dtype(x.scalar_type());
  at::Tensor coef = grad.to(acc);
  if (x.numel() > 0) coef = coef * (sign / static_cast<double>(x.numel()));
  return (coef * at::sigmoid(x.to(acc) * sign)).to(x.scalar_type());
}

}  // namespace

struct AdversarialDLossFunction : public torch::autograd::Function<AdversarialDLossFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& real_logits,
                            const at::Tensor& fake_logits) {
    const bool need_real = requires_grad(real_logits);
    const bool need_fake = requires_grad(fake_logits);
    at::Tensor loss = d_loss_below_autograd(real_logits, fake_logits);
    ctx->save_for_backward(
        {need_real ? real_logits : at::Tensor(), need_fake ? fake_logits : at::Tensor()});
    return loss;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    static const auto op =
        op_handle<DLossBackwardSig>("aae_fast::adversarial_d_loss_backward");
    const torch::autograd::variable_list saved = ctx->get_saved_variables();
    if (at::GradMode::is_enabled()) {  // create_graph=True: a differentiable backward
      return {saved[0].defined() ? scaled_sigmoid(grads[0], saved[0], -1.0) : at::Tensor(),
              saved[1].defined() ? scaled_sigmoid(grads[0], saved[1], 1.0) : at::Tensor()};
    }
    auto [grad_real, grad_fake] =
        op.call(grads[0], optional_tensor(saved[0]), optional_tensor(saved[1]));
    return {saved[0].defined() ? grad_real : at::Tensor(),
            saved[1].defined() ? grad_fake : at::Tensor()};
  }
};

struct AdversarialGLossFunction : public torch::autograd::Function<AdversarialGLossFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& fake_logits) {
    // Reached when fake_logits requires grad (or carries a forward-mode gradient, which
    // Function::apply then rejects): see adversarial_g_loss_autograd.
    at::Tensor loss = g_loss_below_autograd(fake_logits);
    ctx->save_for_backward({fake_logits});
    return loss;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    static const auto op =
        op_handle<GLossBackwardSig>("aae_fast::adversarial_g_loss_backward");
    const torch::autograd::variable_list saved = ctx->get_saved_variables();
    if (at::GradMode::is_enabled()) {  // create_graph=True: a differentiable backward
      return {scaled_sigmoid(grads[0], saved[0], -1.0)};
    }
    return {op.call(grads[0], saved[0])};
  }
};

namespace {

at::Tensor adversarial_d_loss_autograd(const at::Tensor& real_logits,
                                       const at::Tensor& fake_logits) {
  if (!needs_function(real_logits, fake_logits)) {
    return d_loss_below_autograd(real_logits, fake_logits);
  }
  return AdversarialDLossFunction::apply(real_logits, fake_logits);
}

at::Tensor adversarial_g_loss_autograd(const at::Tensor& fake_logits) {
  if (!needs_function(fake_logits)) {
    return g_loss_below_autograd(fake_logits);
  }
  return AdversarialGLossFunction::apply(fake_logits);
}

}  // namespace

TORCH_LIBRARY_IMPL(aae_fast, Autograd, m) {
  m.impl("adversarial_d_loss", &adversarial_d_loss_autograd);
  m.impl("adversarial_g_loss", &adversarial_g_loss_autograd);
}

}  // namespace autograd
}  // namespace aae_fast
