// Argument checks shared by the CPU and CUDA implementations of the loss ops (adversarial_d_loss,
// adversarial_g_loss, reconstruction_loss and their backwards; semantics in csrc/ops.cpp). Every
// message names the argument, what was expected and what was received.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Optional.h>
#include <c10/util/string_view.h>

namespace aae_fast {

// The loss (and the incoming gradient) is float64 for float64 inputs and float32 otherwise.
inline at::ScalarType loss_dtype(at::ScalarType input) {
  return input == at::kDouble ? at::kDouble : at::kFloat;
}

inline void check_loss_input_dtype(const at::Tensor& t, const char* name) {
  const at::ScalarType s = t.scalar_type();
  TORCH_CHECK(s == at::kFloat || s == at::kDouble || s == at::kHalf || s == at::kBFloat16, name,
              " must be a float32, float64, float16 or bfloat16 tensor, got ", s);
}

// b must share a's dtype and device (a is named first in the messages).
inline void check_same_dtype_and_device(const at::Tensor& a, const char* a_name, const at::Tensor& b,
                                        const char* b_name) {
  TORCH_CHECK(b.device() == a.device(), b_name, " must be on ", a.device(), " (the device of ",
              a_name, "), got ", b.device());
  TORCH_CHECK(b.scalar_type() == a.scalar_type(), b_name, " must have the dtype of ", a_name, " (",
              a.scalar_type(), "), got ", b.scalar_type());
}

// grad: the 0-dim gradient of the scalar loss, on the input's device.
inline void check_loss_grad(const at::Tensor& grad, const at::Tensor& input, const char* input_name) {
  TORCH_CHECK(grad.dim() == 0, "grad must be a 0-dim tensor (the gradient of the scalar loss), got shape ",
              grad.sizes());
  TORCH_CHECK(at::isFloatingType(grad.scalar_type()), "grad must be a floating-point tensor, got ",
              grad.scalar_type());
  TORCH_CHECK(grad.device() == input.device(), "grad must be on ", input.device(), " (the device of ",
              input_name, "), got ", grad.device());
}

// Reconstruction kinds, as in the schema's `str kind`.
enum class ReconKind { kBce = 0, kMse = 1 };

inline ReconKind parse_recon_kind(c10::string_view kind) {
  if (kind == "bce") return ReconKind::kBce;
  if (kind == "mse") return ReconKind::kMse;
  TORCH_CHECK(false, "kind must be 'bce' or 'mse', got '", std::string(kind.data(), kind.size()),
              "'");
  return ReconKind::kBce;  // unreachable
}

// output, target: [B, F] of one dtype and device.
inline void check_recon_inputs(const at::Tensor& output, const at::Tensor& target) {
  check_loss_input_dtype(output, "output");
  TORCH_CHECK(output.dim() == 2, "output must have shape [B, F] (2-D; flatten other ranks with ",
              "x.flatten(1)), got ", output.sizes());
  check_same_dtype_and_device(output, "output", target, "target");
  TORCH_CHECK(target.sizes() == output.sizes(), "target must have the shape of output ",
              output.sizes(), ", got ", target.sizes());
}

}  // namespace aae_fast
