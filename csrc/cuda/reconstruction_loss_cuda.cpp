// CUDA implementation of the reconstruction loss and its backward (schemas and semantics:
// csrc/ops.cpp): argument checks, device guard, current stream, dtype dispatch, the partials
// workspace, and the launchers of reconstruction_loss.cu. Built only when torch has CUDA. Nothing
// is copied to the host (grad is read on the device), so the ops can be captured in CUDA graphs.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>  // at::cuda::getCurrentCUDAStream (no cuBLAS/cuSPARSE headers)
#include <torch/library.h>

#include <array>

#include "aae_fast/loss_checks.h"
#include "reconstruction_loss.h"
#include "cuda_types.h"

namespace aae_fast {
namespace {

template <typename T>
const typename CudaType<T>::type* cuda_ptr(const at::Tensor& t) {
  return reinterpret_cast<const typename CudaType<T>::type*>(t.const_data_ptr<T>());
}

template <typename T>
typename CudaType<T>::type* cuda_mutable_ptr(at::Tensor& t) {
  return reinterpret_cast<typename CudaType<T>::type*>(t.data_ptr<T>());
}

void check_on_cuda(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor here, got device ", t.device());
}

at::Tensor reconstruction_loss_cuda(const at::Tensor& output_in, const at::Tensor& target_in,
                                    c10::string_view kind) {
  const int kind_id = static_cast<int>(parse_recon_kind(kind));
  check_recon_inputs(output_in, target_in);
  check_on_cuda(output_in, "output");
  const c10::cuda::CUDAGuard guard(output_in.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const at::Tensor output = output_in.contiguous();
  const at::Tensor target = target_in.contiguous();
  const auto acc_options = output.options().dtype(loss_dtype(output.scalar_type()));
  at::Tensor loss = at::empty({}, acc_options);
  at::Tensor partials = at::empty({reconstruction_loss_workspace(output.numel())}, acc_options);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, output.scalar_type(),
                                  "reconstruction_loss", [&] {
    using acc_t = acc_of<scalar_t>;
    C10_CUDA_CHECK((launch_reconstruction_loss<typename CudaType<scalar_t>::type, acc_t>(
        cuda_ptr<scalar_t>(output), cuda_ptr<scalar_t>(target), output.size(0), output.size(1),
        kind_id, partials.data_ptr<acc_t>(), loss.data_ptr<acc_t>(), stream)));
  });
  return loss;
}

std::tuple<at::Tensor, at::Tensor> reconstruction_loss_backward_cuda(
    const at::Tensor& grad, const at::Tensor& output_in, const at::Tensor& target_in,
    c10::string_view kind, std::array<bool, 2> output_mask) {
  const int kind_id = static_cast<int>(parse_recon_kind(kind));
  check_recon_inputs(output_in, target_in);
  check_on_cuda(output_in, "output");
  check_loss_grad(grad, output_in, "output");
  const c10::cuda::CUDAGuard guard(output_in.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const at::Tensor output = output_in.contiguous();
  const at::Tensor target = target_in.contiguous();
  at::Tensor grad_output =
      output_mask[0] ? at::empty(output.sizes(), output.options()) : at::empty({0}, grad.options());
  at::Tensor grad_target =
      output_mask[1] ? at::empty(output.sizes(), output.options()) : at::empty({0}, grad.options());
  const at::Tensor g = grad.to(loss_dtype(output.scalar_type()));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, output.scalar_type(),
                                  "reconstruction_loss_backward", [&] {
    using acc_t = acc_of<scalar_t>;
    using cuda_t = typename CudaType<scalar_t>::type;
    C10_CUDA_CHECK((launch_reconstruction_loss_backward<cuda_t, acc_t>(
        g.const_data_ptr<acc_t>(), cuda_ptr<scalar_t>(output), cuda_ptr<scalar_t>(target),
        output.size(0), output.size(1), kind_id,
        output_mask[0] ? cuda_mutable_ptr<scalar_t>(grad_output) : nullptr,
        output_mask[1] ? cuda_mutable_ptr<scalar_t>(grad_target) : nullptr, stream)));
  });
  return {grad_output, grad_target};
}

}  // namespace

TORCH_LIBRARY_IMPL(aae_fast, CUDA, m) {
  m.impl("reconstruction_loss", &reconstruction_loss_cuda);
  m.impl("reconstruction_loss_backward", &reconstruction_loss_backward_cuda);
}

}  // namespace aae_fast
