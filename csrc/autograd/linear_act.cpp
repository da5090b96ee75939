// Autograd kernel (C++) of linear_act: the formula of aae_fast/ops/linear_act.py without the Python
// autograd layer (csrc/include/aae_fast/autograd.h says how these kernels work).
//
// Saved: the output y always (act' is read through it), x only when weight's gradient is wanted,
// weight only when x's is; output_mask = (x, weight, bias requires grad), bias's only when a bias
// is given. The backward calls aae_fast::linear_act_backward, which computes only the masked
// gradients; the others come back undefined. Under create_graph=True it computes the same formula
// with differentiable ATen ops instead (double backward; act' is read through the saved output,
// as torch's own activations do).
#include <ATen/ATen.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <array>
#include <string>
#include <tuple>

#include "aae_fast/autograd.h"

namespace aae_fast {
namespace autograd {
namespace {

using LinearActSig = at::Tensor(const at::Tensor&, const at::Tensor&,
                                const std::optional<at::Tensor>&, c10::string_view, double);
using LinearActBackwardSig = std::tuple<at::Tensor, at::Tensor, at::Tensor>(
    const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
    const std::optional<at::Tensor>&, c10::string_view, double, std::array<bool, 3>);

at::Tensor linear_act_below_autograd(const at::Tensor& x, const at::Tensor& weight,
                                     const std::optional<at::Tensor>& bias,
                                     c10::string_view activation, double negative_slope) {
  static const auto op = op_handle<LinearActSig>("aae_fast::linear_act");
  at::AutoDispatchBelowADInplaceOrView guard;
  return op.call(x, weight, bias, activation, negative_slope);
}

// grad * act'(y), act' read through the output y; aae_fast/ops/linear_act.py's _activation_grad.
// relu passes the gradient where y is not <= 0 (so a NaN output keeps it, as torch.relu does).
at::Tensor activation_grad(const at::Tensor& grad, const at::Tensor& y, c10::string_view act,
                           double negative_slope) {
  if (act == "relu") return grad.masked_fill(y <= 0, 0);
  if (act == "leaky_relu") return at::where(y > 0, grad, grad * negative_slope);
  if (act == "sigmoid") return grad * (y * (1 - y));
  if (act == "tanh") return grad * (1 - y * y);
  return grad;
}

// The backward op's three gradients with differentiable ATen ops, for create_graph=True.
std::tuple<at::Tensor, at::Tensor, at::Tensor> linear_act_backward_differentiable(
    const at::Tensor& grad, const at::Tensor& y, const at::Tensor& x, const at::Tensor& weight,
    c10::string_view activation, double negative_slope, const std::array<bool, 3>& mask) {
  const at::Tensor gz = activation_grad(grad, y, activation, negative_slope);
  return {mask[0] ? gz.mm(weight) : at::Tensor(), mask[1] ? gz.t().mm(x) : at::Tensor(),
          mask[2] ? gz.sum(0) : at::Tensor()};
}

}  // namespace

struct LinearActFunction : public torch::autograd::Function<LinearActFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                            c10::string_view activation, double negative_slope) {
    // Python's ctx.needs_input_grad: which tensor inputs require grad.
    const bool need_x = requires_grad(x);
    const bool need_w = requires_grad(weight);
    const bool need_b = requires_grad(bias);
    at::Tensor y = linear_act_below_autograd(x, weight, bias, activation, negative_slope);
    ctx->saved_data["activation"] = std::string(activation);
    ctx->saved_data["negative_slope"] = negative_slope;
    ctx->saved_data["output_mask"] = static_cast<int64_t>(need_x) |
                                     (static_cast<int64_t>(need_w) << 1) |
                                     (static_cast<int64_t>(need_b) << 2);
    // identity's derivative needs no output: saving none keeps B x N alive for nothing and lets
    // the caller modify y in place (a residual add, an in-place dropout) as after nn.Linear.
    const bool need_y = activation != "identity";
    ctx->save_for_backward({need_y ? y : at::Tensor(), need_w ? x : at::Tensor(),
                            need_x ? weight : at::Tensor()});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    static const auto op = op_handle<LinearActBackwardSig>("aae_fast::linear_act_backward");
    const torch::autograd::variable_list saved = ctx->get_saved_variables();
    const int64_t bits = ctx->saved_data["output_mask"].toInt();
    const std::array<bool, 3> mask = {(bits & 1) != 0, (bits & 2) != 0, (bits & 4) != 0};
    const c10::string_view activation = ctx->saved_data["activation"].toStringView();
    const double negative_slope = ctx->saved_data["negative_slope"].toDouble();
    // identity: no saved output; the backward reads y only for its shape then, which grad has.
    const at::Tensor& y = saved[0].defined() ? saved[0] : grads[0];
    auto [grad_x, grad_w, grad_b] =
        at::GradMode::is_enabled()  // create_graph=True: a differentiable backward
            ? linear_act_backward_differentiable(grads[0], y, saved[1], saved[2], activation,
                                                 negative_slope, mask)
            : op.call(grads[0], y, optional_tensor(saved[1]), optional_tensor(saved[2]),
                      activation, negative_slope, mask);
    // One entry per forward argument: x, weight, bias, activation, negative_slope.
    return {mask[0] ? grad_x : at::Tensor(), mask[1] ? grad_w : at::Tensor(),
            mask[2] ? grad_b : at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

namespace {

at::Tensor linear_act_autograd(const at::Tensor& x, const at::Tensor& weight,
                               const std::optional<at::Tensor>& bias, c10::string_view activation,
                               double negative_slope) {
  if (!needs_function(x, weight, bias)) {
    return linear_act_below_autograd(x, weight, bias, activation, negative_slope);
  }
  return LinearActFunction::apply(x, weight, bias, activation, negative_slope);
}

}  // namespace

TORCH_LIBRARY_IMPL(aae_fast, Autograd, m) {
  m.impl("linear_act", &linear_act_autograd);
}

}  // namespace autograd
}  // namespace aae_fast
