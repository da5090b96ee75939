// Autograd kernel (C++) of reconstruction_loss: the formula of aae_fast/ops/reconstruction_loss.py
// without the Python autograd layer (csrc/include/aae_fast/autograd.h says how these kernels work).
//
// Every gradient needs both inputs, so both are saved whenever a gradient is wanted;
// output_mask = (output, target requires grad). The backward calls
// aae_fast::reconstruction_loss_backward, which computes only the masked gradients; under
// create_graph=True it computes the same formula with differentiable ATen ops (double backward).
#include <ATen/ATen.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <array>
#include <string>
#include <tuple>

#include "aae_fast/autograd.h"
#include "aae_fast/loss_checks.h"

namespace aae_fast {
namespace autograd {
namespace {

using ReconLossSig = at::Tensor(const at::Tensor&, const at::Tensor&, c10::string_view);
using ReconLossBackwardSig = std::tuple<at::Tensor, at::Tensor>(
    const at::Tensor&, const at::Tensor&, const at::Tensor&, c10::string_view, std::array<bool, 2>);

at::Tensor reconstruction_loss_below_autograd(const at::Tensor& output, const at::Tensor& target,
                                              c10::string_view kind) {
  static const auto op = op_handle<ReconLossSig>("aae_fast::reconstruction_loss");
  at::AutoDispatchBelowADInplaceOrView guard;
  return op.call(output, target, kind);
}

// The gradients (d output, d target) of per-row sums averaged over rows, with differentiable ATen
// ops, for create_graph=True; aae_fast/ops/reconstruction_loss.py's _loss_backward_composite is the
// same formula. bce (on logits): c * (sigmoid(o) - t) and -c * o; mse: 2c(o - t) and its negative;
// c = grad / rows, in the loss dtype, returned in output's dtype.
std::tuple<at::Tensor, at::Tensor> loss_backward_differentiable(const at::Tensor& grad,
                                                                const at::Tensor& output,
                                                                const at::Tensor& target,
                                                                c10::string_view kind) {
  const at::ScalarType acc = loss_dtype(output.scalar_type());
  const at::Tensor o = output.to(acc);
  const at::Tensor t = target.to(acc);
  at::Tensor c = grad.to(acc);
  if (output.size(0) > 0) c = c / static_cast<double>(output.size(0));
  at::Tensor d_output, d_target;
  if (kind == "bce") {
    d_output = c * (at::sigmoid(o) - t);
    d_target = -c * o;
  } else {
    d_output = 2 * c * (o - t);
    d_target = -d_output;
  }
  return {d_output.to(output.scalar_type()), d_target.to(output.scalar_type())};
}

}  // namespace

struct ReconstructionLossFunction : public torch::autograd::Function<ReconstructionLossFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& output,
                            const at::Tensor& target, c10::string_view kind) {
    const bool need_output = requires_grad(output);
    const bool need_target = requires_grad(target);
    at::Tensor loss = reconstruction_loss_below_autograd(output, target, kind);
    ctx->saved_data["kind"] = std::string(kind);
    ctx->saved_data["output_mask"] =
        static_cast<int64_t>(need_output) | (static_cast<int64_t>(need_target) << 1);
    ctx->save_for_backward({output, target});
    return loss;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    static const auto op =
        op_handle<ReconLossBackwardSig>("aae_fast::reconstruction_loss_backward");
    const torch::autograd::variable_list saved = ctx->get_saved_variables();
    const int64_t bits = ctx->saved_data["output_mask"].toInt();
    const std::array<bool, 2> mask = {(bits & 1) != 0, (bits & 2) != 0};
    auto [grad_output, grad_target] =
        at::GradMode::is_enabled()  // create_graph=True: a differentiable backward
            ? loss_backward_differentiable(grads[0], saved[0], saved[1],
                                           ctx->saved_data["kind"].toStringView())
            : op.call(grads[0], saved[0], saved[1], ctx->saved_data["kind"].toStringView(), mask);
    // One entry per forward argument: output, target, kind.
    return {mask[0] ? grad_output : at::Tensor(), mask[1] ? grad_target : at::Tensor(),
            at::Tensor()};
  }
};

namespace {

at::Tensor reconstruction_loss_autograd(const at::Tensor& output, const at::Tensor& target,
                                        c10::string_view kind) {
  if (!needs_function(output, target)) {
    return reconstruction_loss_below_autograd(output, target, kind);
  }
  return ReconstructionLossFunction::apply(output, target, kind);
}

}  // namespace

TORCH_LIBRARY_IMPL(aae_fast, Autograd, m) {
  m.impl("reconstruction_loss", &reconstruction_loss_autograd);
}

}  // namespace autograd
}  // namespace aae_fast
