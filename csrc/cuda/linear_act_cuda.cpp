// CUDA implementation of linear_act and linear_act_backward (schemas and semantics: csrc/ops.cpp):
// argument checks, device guard, current stream, dtype dispatch; the GEMMs are at::mm (cuBLAS, fp32
// accumulation for 16-bit inputs), the epilogues are the kernels of linear_act.cu, except the
// forward of identity and relu with a bias, which is at::addmm / at::_addmm_activation (cuBLASLt's
// bias and bias + relu epilogues where torch can use them, its own fallback otherwise). Built only
// when torch has CUDA. No host syncs, so the ops can be captured in CUDA graphs.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <array>
#include <cmath>
#include <string>

#include "linear_act.h"
#include "cuda_types.h"

namespace aae_fast {
namespace {

template <typename T>
typename CudaType<T>::type* cuda_ptr(const at::Tensor& t) {
  return t.defined() ? reinterpret_cast<typename CudaType<T>::type*>(t.data_ptr<T>()) : nullptr;
}

int parse_activation(const std::string& name, double negative_slope) {
  int act = -1;
  if (name == "identity") act = kLinearActIdentity;
  if (name == "relu") act = kLinearActRelu;
  if (name == "leaky_relu") act = kLinearActLeakyRelu;
  if (name == "sigmoid") act = kLinearActSigmoid;
  if (name == "tanh") act = kLinearActTanh;
  TORCH_CHECK(act >= 0,
              "activation must be one of 'identity', 'relu', 'leaky_relu', 'sigmoid', 'tanh', "
              "got '", name, "'");
  if (act == kLinearActLeakyRelu) {
    TORCH_CHECK(std::isfinite(negative_slope) && negative_slope >= 0.0,
                "negative_slope must be finite and >= 0, got ", negative_slope);
  }
  return act;
}

void check_like(const at::Tensor& t, const char* name, const at::Tensor& ref, const char* ref_name) {
  TORCH_CHECK(t.scalar_type() == ref.scalar_type(), name, " must have the dtype of ", ref_name, " (",
              ref.scalar_type(), "), got ", t.scalar_type());
  TORCH_CHECK(t.device() == ref.device(), name, " must be on the device of ", ref_name, " (",
              ref.device(), "), got ", t.device());
}

at::Tensor linear_act_cuda(const at::Tensor& x, const at::Tensor& weight,
                           const c10::optional<at::Tensor>& bias, c10::string_view activation,
                           double negative_slope) {
  const auto dtype = x.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf ||
                  dtype == at::kBFloat16,
              "x must be float32, float64, float16 or bfloat16, got ", dtype);
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
  const int act = parse_activation(std::string(activation), negative_slope);
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t B = x.size(0);
  const int64_t N = weight.size(0);
  if (B == 0 || N == 0) return at::empty({B, N}, x.options());
  const at::Tensor b = bias.has_value() ? bias->contiguous() : at::Tensor();
  // With a bias, identity and relu go to cuBLASLt's bias (+ relu) epilogue through addmm: the GEMM
  // writes the finished output, no second pass over it (the relu epilogue keeps NaN as NaN: tested
  // on CUDA in tests/ops/test_linear_act.py). K = 0 stays on the path below (Lt needs K > 0).
  if (b.defined() && x.size(1) > 0 && (act == kLinearActIdentity || act == kLinearActRelu)) {
    return act == kLinearActRelu ? at::_addmm_activation(b, x, weight.t(), 1, 1, false)
                                 : at::addmm(b, x, weight.t());
  }
  at::Tensor y = at::empty({B, N}, x.options());
  at::mm_out(y, x, weight.t());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "linear_act_cuda", [&] {
    C10_CUDA_CHECK(launch_linear_act_epilogue(cuda_ptr<scalar_t>(y), cuda_ptr<scalar_t>(b), B, N,
                                              act, negative_slope, stream));
  });
  return y;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> linear_act_backward_cuda(
    const at::Tensor& grad, const at::Tensor& y, const c10::optional<at::Tensor>& x,
    const c10::optional<at::Tensor>& weight, c10::string_view activation, double negative_slope,
    std::array<bool, 3> output_mask) {
  const int act = parse_activation(std::string(activation), negative_slope);
  TORCH_CHECK(y.dim() == 2, "y must have shape [B, N], got ", y.sizes());
  TORCH_CHECK(grad.sizes() == y.sizes(), "grad must have the shape of y (", y.sizes(), "), got ",
              grad.sizes());
  check_like(grad, "grad", y, "y");
  TORCH_CHECK(!output_mask[0] || weight.has_value(), "weight is required for the gradient of x");
  TORCH_CHECK(!output_mask[1] || x.has_value(), "x is required for the gradient of weight");
  const int64_t B = y.size(0);
  const int64_t N = y.size(1);
  if (weight.has_value()) {
    TORCH_CHECK(weight->dim() == 2 && weight->size(0) == N,
                "weight must have shape [N, K] with N = y.size(1) = ", N, ", got ", weight->sizes());
    check_like(*weight, "weight", y, "y");
  }
  if (x.has_value()) {
    TORCH_CHECK(x->dim() == 2 && x->size(0) == B,
                "x must have shape [B, K] with B = y.size(0) = ", B, ", got ", x->sizes());
    check_like(*x, "x", y, "y");
  }
  const c10::cuda::CUDAGuard guard(y.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const bool need_gz = output_mask[0] || output_mask[1];
  const bool store_gz = need_gz && act != kLinearActIdentity;
  const at::Tensor g = grad.contiguous();
  const at::Tensor yc = act == kLinearActIdentity ? g : y.contiguous();  // identity never reads y
  at::Tensor gz = store_gz ? at::empty({B, N}, y.options()) : (need_gz ? g : at::Tensor());
  at::Tensor grad_b = at::empty({output_mask[2] ? N : 0}, y.options());
  if (output_mask[2] && B == 0) grad_b.zero_();
  if ((store_gz || output_mask[2]) && B > 0) {
    at::Tensor gz_out = store_gz ? gz : at::Tensor();
    at::Tensor gb_out = output_mask[2] ? grad_b : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, y.scalar_type(),
                                    "linear_act_backward_cuda", [&] {
      using acc_t = acc_of<scalar_t>;
      const at::Tensor partials = at::empty(
          {output_mask[2] ? linear_act_backward_workspace(B, N) : 0},
          y.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
      C10_CUDA_CHECK((launch_linear_act_backward_epilogue<typename CudaType<scalar_t>::type, acc_t>(
          cuda_ptr<scalar_t>(g), cuda_ptr<scalar_t>(yc), cuda_ptr<scalar_t>(gz_out),
          cuda_ptr<scalar_t>(gb_out), partials.numel() ? partials.data_ptr<acc_t>() : nullptr, B,
          N, act, negative_slope, stream)));
    });
  }
  at::Tensor grad_x = output_mask[0] ? at::mm(gz, *weight) : at::empty({0}, y.options());
  at::Tensor grad_w = output_mask[1] ? at::mm(gz.t(), *x) : at::empty({0}, y.options());
  return {grad_x, grad_w, grad_b};
}

}  // namespace

TORCH_LIBRARY_IMPL(aae_fast, CUDA, m) {
  m.impl("linear_act", &linear_act_cuda);
  m.impl("linear_act_backward", &linear_act_backward_cuda);
}

}  // namespace aae_fast
