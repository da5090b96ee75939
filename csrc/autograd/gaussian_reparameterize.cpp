// Autograd kernel (C++) of gaussian_reparameterize: the formula of
// aae_fast/ops/gaussian_reparameterize.py without the Python autograd layer
// (csrc/include/aae_fast/autograd.h says how these kernels work).
//
// z = mu + exp(logvar / 2) * eps: grad_mu = grad (no kernel, nothing saved), grad_logvar from
// aae_fast::gaussian_reparameterize_backward, which regenerates eps from the [seed, offset] copy
// that the op returns as its second output. Saved: that copy and logvar, and only when logvar's
// gradient is wanted. The state output is not differentiable. Under create_graph=True, grad_logvar
// is 0.5 * grad * exp(logvar / 2) * eps with differentiable ATen ops (double backward), eps drawn
// again by the forward op at mu = 0, logvar = 0 from the saved state.
#include <ATen/ATen.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <tuple>

#include "aae_fast/autograd.h"

namespace aae_fast {
namespace autograd {
namespace {

using ReparamSig = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                      const at::Tensor&);
using ReparamBackwardSig = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&);

std::tuple<at::Tensor, at::Tensor> reparameterize_below_autograd(const at::Tensor& rng_state,
                                                                 const at::Tensor& mu,
                                                                 const at::Tensor& logvar) {
  static const auto op = op_handle<ReparamSig>("aae_fast::gaussian_reparameterize");
  at::AutoDispatchBelowADInplaceOrView guard;
  return op.call(rng_state, mu, logvar);
}

// 0.5 * grad * exp(logvar / 2) * eps in the compute dtype (float64 for float64, else float32),
// returned in logvar's dtype: the backward op's formula with differentiable ATen ops. eps is the
// forward op's output at mu = 0, logvar = 0 (exp(0) * eps + 0 == eps exactly) from the state the
// forward drew with, computed in the compute dtype so that it is the same eps, unrounded.
at::Tensor differentiable_grad_logvar(const at::Tensor& grad, const at::Tensor& state,
                                      const at::Tensor& logvar) {
  const at::ScalarType acc = logvar.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor zeros = at::zeros(logvar.sizes(), logvar.options().dtype(acc));
  at::Tensor eps;
  {
    at::AutoGradMode no_grad(false);  // eps is a constant of the formula
    eps = std::get<0>(reparameterize_below_autograd(state, zeros, zeros));
  }
  return (0.5 * grad.to(acc) * at::exp(0.5 * logvar.to(acc)) * eps).to(logvar.scalar_type());
}

}  // namespace

struct GaussianReparameterizeFunction
    : public torch::autograd::Function<GaussianReparameterizeFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                const at::Tensor& rng_state, const at::Tensor& mu,
                                                const at::Tensor& logvar) {
    const bool need_mu = requires_grad(mu);
    const bool need_logvar = requires_grad(logvar);
    auto [z, state] = reparameterize_below_autograd(rng_state, mu, logvar);
    ctx->mark_non_differentiable({state});
    ctx->saved_data["output_mask"] =
        static_cast<int64_t>(need_mu) | (static_cast<int64_t>(need_logvar) << 1);
    if (need_logvar) ctx->save_for_backward({state, logvar});
    return {z, state};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    static const auto op =
        op_handle<ReparamBackwardSig>("aae_fast::gaussian_reparameterize_backward");
    const int64_t bits = ctx->saved_data["output_mask"].toInt();
    at::Tensor grad_logvar;
    if ((bits & 2) != 0) {
      const torch::autograd::variable_list saved = ctx->get_saved_variables();
      if (at::GradMode::is_enabled()) {  // create_graph=True: a differentiable backward
        grad_logvar = differentiable_grad_logvar(grads[0], saved[0], saved[1]);
      } else {
        grad_logvar = op.call(grads[0], saved[0], saved[1]);
      }
    }
    // One entry per forward argument: rng_state, mu, logvar.
    return {at::Tensor(), (bits & 1) != 0 ? grads[0] : at::Tensor(), grad_logvar};
  }
};

namespace {

std::tuple<at::Tensor, at::Tensor> reparameterize_autograd(const at::Tensor& rng_state,
                                                           const at::Tensor& mu,
                                                           const at::Tensor& logvar) {
  if (!needs_function(mu, logvar)) return reparameterize_below_autograd(rng_state, mu, logvar);
  const torch::autograd::variable_list out =
      GaussianReparameterizeFunction::apply(rng_state, mu, logvar);
  return {out[0], out[1]};
}

}  // namespace

TORCH_LIBRARY_IMPL(aae_fast, Autograd, m) {
  m.impl("gaussian_reparameterize", &reparameterize_autograd);
}

}  // namespace autograd
}  // namespace aae_fast
