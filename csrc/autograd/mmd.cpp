// Autograd kernel (C++) of mmd: the formula of aae_fast/ops/mmd.py without the Python autograd
// layer (csrc/include/aae_fast/autograd.h says how these kernels work).
//
// Saved: x and y when either gradient is wanted (each gradient needs both sets: the cross term),
// with the bandwidths and `unbiased`; output_mask = (x, y requires grad). The backward calls
// aae_fast::mmd_backward, which computes only the masked gradients.
#include <ATen/core/LegacyTypeDispatch.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <array>
#include <tuple>
#include <vector>

#include "aae_fast/autograd.h"

namespace aae_fast {
namespace autograd {
namespace {

using MmdSig = at::Tensor(const at::Tensor&, const at::Tensor&, c10::ArrayRef<double>, bool);
using MmdBackwardSig = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                          const at::Tensor&, c10::ArrayRef<double>,
                                                          bool, std::array<bool, 2>);

at::Tensor mmd_below_autograd(const at::Tensor& x, const at::Tensor& y,
                              c10::ArrayRef<double> bandwidths, bool unbiased) {
  static const auto op = op_handle<MmdSig>("aae_fast::mmd");
  at::AutoDispatchBelowADInplaceOrView guard;
  return op.call(x, y, bandwidths, unbiased);
}

}  // namespace

struct MmdFunction : public torch::autograd::Function<MmdFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& y, c10::ArrayRef<double> bandwidths, bool unbiased) {
    const bool need_x = requires_grad(x);
    const bool need_y = requires_grad(y);
    at::Tensor out = mmd_below_autograd(x, y, bandwidths, unbiased);
    ctx->saved_data["bandwidths"] = std::vector<double>(bandwidths.begin(), bandwidths.end());
    ctx->saved_data["unbiased"] = unbiased;
    ctx->saved_data["output_mask"] =
        static_cast<int64_t>(need_x) | (static_cast<int64_t>(need_y) << 1);
    if (need_x || need_y) ctx->save_for_backward({x, y});
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    static const auto op = op_handle<MmdBackwardSig>("aae_fast::mmd_backward");
    // Its backward op has no derivative: under create_graph=True its gradients would silently not
    // be differentiable (a second-order term through mmd would come out as zero).
    TORCH_CHECK(!at::GradMode::is_enabled(),
                "aae_fast.ops.mmd supports first-order gradients only, and this backward runs "
                "with create_graph=True; take mmd's gradient in a backward of its own without "
                "create_graph");
    const int64_t bits = ctx->saved_data["output_mask"].toInt();
    const std::array<bool, 2> mask = {(bits & 1) != 0, (bits & 2) != 0};
    const torch::autograd::variable_list saved = ctx->get_saved_variables();
    const std::vector<double> bandwidths = ctx->saved_data["bandwidths"].toDoubleVector();
    auto [grad_x, grad_y] = op.call(grads[0], saved[0], saved[1], bandwidths,
                                    ctx->saved_data["unbiased"].toBool(), mask);
    // One entry per forward argument: x, y, bandwidths, unbiased.
    return {mask[0] ? grad_x : at::Tensor(), mask[1] ? grad_y : at::Tensor(), at::Tensor(),
            at::Tensor()};
  }
};

namespace {

at::Tensor mmd_autograd(const at::Tensor& x, const at::Tensor& y,
                        c10::ArrayRef<double> bandwidths, bool unbiased) {
  if (!needs_function(x, y)) return mmd_below_autograd(x, y, bandwidths, unbiased);
  return MmdFunction::apply(x, y, bandwidths, unbiased);
}

}  // namespace

TORCH_LIBRARY_IMPL(aae_fast, Autograd, m) {
  m.impl("mmd", &mmd_autograd);
}

}  // namespace autograd
}  // namespace aae_fast
