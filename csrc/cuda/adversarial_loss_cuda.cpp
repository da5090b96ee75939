// CUDA implementations of the adversarial losses and their backwards (schemas and semantics:
// csrc/ops.cpp): argument checks, device guard, current stream, dtype dispatch, the partials
// workspace, and the launchers of adversarial_loss.cu. Built only when torch has CUDA. Nothing is
// copied to the host (grad is read on the device), so the ops can be captured in CUDA graphs.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>  // at::cuda::getCurrentCUDAStream (no cuBLAS/cuSPARSE headers)
#include <torch/library.h>

#include "adversarial_loss.h"
#include "aae_fast/loss_checks.h"
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

at::Tensor adversarial_d_loss_cuda(const at::Tensor& real_logits, const at::Tensor& fake_logits) {
  check_loss_input_dtype(real_logits, "real_logits");
  check_on_cuda(real_logits, "real_logits");
  check_same_dtype_and_device(real_logits, "real_logits", fake_logits, "fake_logits");
  const c10::cuda::CUDAGuard guard(real_logits.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const at::Tensor real = real_logits.contiguous();
  const at::Tensor fake = fake_logits.contiguous();
  const auto acc_options = real.options().dtype(loss_dtype(real.scalar_type()));
  at::Tensor loss = at::empty({}, acc_options);
  at::Tensor partials = at::empty(
      {adversarial_loss_workspace(real.numel()) + adversarial_loss_workspace(fake.numel())},
      acc_options);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, real.scalar_type(),
                                  "adversarial_d_loss", [&] {
    using acc_t = acc_of<scalar_t>;
    C10_CUDA_CHECK((launch_adversarial_d_loss<typename CudaType<scalar_t>::type, acc_t>(
        cuda_ptr<scalar_t>(real), real.numel(), cuda_ptr<scalar_t>(fake), fake.numel(),
        partials.data_ptr<acc_t>(), loss.data_ptr<acc_t>(), stream)));
  });
  return loss;
}

at::Tensor adversarial_g_loss_cuda(const at::Tensor& fake_logits) {
  check_loss_input_dtype(fake_logits, "fake_logits");
  check_on_cuda(fake_logits, "fake_logits");
  const c10::cuda::CUDAGuard guard(fake_logits.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const at::Tensor fake = fake_logits.contiguous();
  const auto acc_options = fake.options().dtype(loss_dtype(fake.scalar_type()));
  at::Tensor loss = at::empty({}, acc_options);
  at::Tensor partials = at::empty({adversarial_loss_workspace(fake.numel())}, acc_options);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, fake.scalar_type(),
                                  "adversarial_g_loss", [&] {
    using acc_t = acc_of<scalar_t>;
    C10_CUDA_CHECK((launch_adversarial_g_loss<typename CudaType<scalar_t>::type, acc_t>(
        cuda_ptr<scalar_t>(fake), fake.numel(), partials.data_ptr<acc_t>(), loss.data_ptr<acc_t>(),
        stream)));
  });
  return loss;
}

// grad * sign * sigmoid(sign * x) / numel(x) in x's dtype and shape (contiguous).
at::Tensor scaled_sigmoid_cuda(const at::Tensor& grad, const at::Tensor& x_in, int sign,
                               cudaStream_t stream) {
  const at::Tensor x = x_in.contiguous();
  at::Tensor out = at::empty(x.sizes(), x.options());
  const at::Tensor g = grad.to(loss_dtype(x.scalar_type()));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(),
                                  "adversarial_loss_backward", [&] {
    using acc_t = acc_of<scalar_t>;
    C10_CUDA_CHECK((launch_adversarial_loss_backward<typename CudaType<scalar_t>::type, acc_t>(
        g.const_data_ptr<acc_t>(), cuda_ptr<scalar_t>(x), x.numel(), sign,
        cuda_mutable_ptr<scalar_t>(out), stream)));
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> adversarial_d_loss_backward_cuda(
    const at::Tensor& grad, const c10::optional<at::Tensor>& real_logits,
    const c10::optional<at::Tensor>& fake_logits) {
  check_on_cuda(grad, "grad");
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
  const c10::cuda::CUDAGuard guard(grad.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  at::Tensor grad_real = real_logits.has_value() ? scaled_sigmoid_cuda(grad, *real_logits, -1, stream)
                                                 : at::empty({0}, grad.options());
  at::Tensor grad_fake = fake_logits.has_value() ? scaled_sigmoid_cuda(grad, *fake_logits, 1, stream)
                                                 : at::empty({0}, grad.options());
  return {grad_real, grad_fake};
}

at::Tensor adversarial_g_loss_backward_cuda(const at::Tensor& grad, const at::Tensor& fake_logits) {
  check_loss_input_dtype(fake_logits, "fake_logits");
  check_on_cuda(fake_logits, "fake_logits");
  check_loss_grad(grad, fake_logits, "fake_logits");
  const c10::cuda::CUDAGuard guard(fake_logits.device());
  return scaled_sigmoid_cuda(grad, fake_logits, -1, at::cuda::getCurrentCUDAStream());
}

}  // namespace

TORCH_LIBRARY_IMPL(aae_fast, CUDA, m) {
  m.impl("adversarial_d_loss", &adversarial_d_loss_cuda);
  m.impl("adversarial_d_loss_backward", &adversarial_d_loss_backward_cuda);
  m.impl("adversarial_g_loss", &adversarial_g_loss_cuda);
  m.impl("adversarial_g_loss_backward", &adversarial_g_loss_backward_cuda);
}

}  // namespace aae_fast
