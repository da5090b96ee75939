// Shared pieces of the C++ autograd kernels in csrc/autograd/*.cpp.
//
// Each differentiable op registers a kernel at the Autograd alias key (TORCH_LIBRARY_IMPL(aae_fast,
// Autograd, m)) that
//   * when no gradient can flow (grad mode off, or no input requires grad; and no forward-mode
//     gradient either) calls the op below autograd and returns: no graph node, nothing saved;
//   * otherwise runs a torch::autograd::Function whose forward calls the op below autograd and
//     saves only what the backward needs, and whose backward calls the op's `<op>_backward` op
//     through the dispatcher (so that torch.compile / AOTAutograd trace it as an op of its own).
// The Python formulas (torch.library.register_autograd in aae_fast/ops/<op>.py) are registered only
// when these kernels are absent (extension not built or disabled); the two must stay in step.
// The Function structs live in aae_fast::autograd (not an anonymous namespace) so that grad_fn names
// and profiles read torch::autograd::CppNode<aae_fast::autograd::<Op>Function>.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Optional.h>

#include <optional>
#include <string_view>

namespace aae_fast {
namespace autograd {

// The typed dispatcher handle of aae_fast::<name> (default overload), looked up once per call site.
template <typename Signature>
c10::TypedOperatorHandle<Signature> op_handle(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

inline bool requires_grad(const at::Tensor& t) { return t.defined() && t.requires_grad(); }

inline bool requires_grad(const std::optional<at::Tensor>& t) {
  return t.has_value() && requires_grad(*t);
}

inline bool has_forward_grad(const at::Tensor& t) {
  return t.defined() && t._fw_grad(/*level=*/0).defined();
}

inline bool has_forward_grad(const std::optional<at::Tensor>& t) {
  return t.has_value() && has_forward_grad(*t);
}

// Whether the call must go through its torch::autograd::Function: grad mode is on and some input
// requires grad (what Function::apply calls is_executable), or some input carries a forward-mode
// (dual) gradient, which Function::apply rejects ("jvp is not implemented"): these ops have no
// forward-mode formula, and the shortcut below autograd would silently drop the tangent.
template <typename... Ts>
bool needs_function(const Ts&... tensors) {
  return (at::GradMode::is_enabled() && (requires_grad(tensors) || ...)) ||
         (has_forward_grad(tensors) || ...);
}

// A saved tensor that may be undefined (not saved) as the optional argument of a backward op.
inline std::optional<at::Tensor> optional_tensor(const at::Tensor& t) {
  return t.defined() ? std::optional<at::Tensor>(t) : std::nullopt;
}

}  // namespace autograd
}  // namespace aae_fast
