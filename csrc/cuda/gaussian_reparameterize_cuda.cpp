// CUDA implementation of the reparameterisation op and its backward (schemas and semantics:
// csrc/ops.cpp): argument checks, device guard, current stream, dtype dispatch, and the launcher of
// gaussian_reparameterize.cu. Built only when torch has CUDA. rng_state is read on the device (no
// host sync), so the op can be captured in a CUDA graph.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>  // at::cuda::getCurrentCUDAStream (no cuBLAS/cuSPARSE headers)
#include <torch/library.h>

#include <tuple>

#include "aae_fast/prior_checks.h"
#include "gaussian_reparameterize.h"
#include "cuda_types.h"

namespace aae_fast {
namespace {

void check_inputs(const at::Tensor& rng_state, const at::Tensor& first, const char* first_name,
                  const at::Tensor& logvar) {
  check_rng_state(rng_state);
  const auto dt = first.scalar_type();
  TORCH_CHECK(dt == at::kFloat || dt == at::kDouble || dt == at::kHalf || dt == at::kBFloat16,
              first_name, " must be a float32, float64, float16 or bfloat16 tensor, got ", dt);
  TORCH_CHECK(first.dim() == 2, first_name, " must have shape [B, D], got ", first.sizes());
  TORCH_CHECK(logvar.sizes() == first.sizes(), "logvar must have the shape of ", first_name, " ",
              first.sizes(), ", got ", logvar.sizes());
  TORCH_CHECK(logvar.scalar_type() == dt, "logvar must have the dtype of ", first_name, " (", dt,
              "), got ", logvar.scalar_type());
  TORCH_CHECK(logvar.device() == first.device(), "logvar must be on ", first.device(),
              " (the device of ", first_name, "), got ", logvar.device());
  check_same_device(first, first_name, rng_state);
  TORCH_CHECK(rng_state.is_cuda(), "rng_state must be a CUDA tensor here, got device ",
              rng_state.device());
}

at::Tensor run(const at::Tensor& rng_state, const at::Tensor& first, const at::Tensor& logvar,
               bool backward) {
  const c10::cuda::CUDAGuard guard(first.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const at::Tensor first_c = first.contiguous(), logvar_c = logvar.contiguous();
  at::Tensor out = at::empty(first.sizes(), first.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, first.scalar_type(),
                                  "gaussian_reparameterize", [&] {
    using cuda_t = typename CudaType<scalar_t>::type;
    C10_CUDA_CHECK(launch_gaussian_reparameterize<cuda_t>(
        rng_state.data_ptr<int64_t>(), first.size(0), first.size(1),
        reinterpret_cast<const cuda_t*>(first_c.data_ptr<scalar_t>()),
        reinterpret_cast<const cuda_t*>(logvar_c.data_ptr<scalar_t>()),
        reinterpret_cast<cuda_t*>(out.data_ptr<scalar_t>()), backward, stream));
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> gaussian_reparameterize_cuda(const at::Tensor& rng_state,
                                                                 const at::Tensor& mu,
                                                                 const at::Tensor& logvar) {
  check_inputs(rng_state, mu, "mu", logvar);
  at::Tensor z = run(rng_state, mu, logvar, false);
  return {z, rng_state.clone()};
}

at::Tensor gaussian_reparameterize_backward_cuda(const at::Tensor& grad,
                                                 const at::Tensor& rng_state,
                                                 const at::Tensor& logvar) {
  check_inputs(rng_state, grad, "grad", logvar);
  return run(rng_state, grad, logvar, true);
}

}  // namespace

TORCH_LIBRARY_IMPL(aae_fast, CUDA, m) {
  m.impl("gaussian_reparameterize", &gaussian_reparameterize_cuda);
  m.impl("gaussian_reparameterize_backward", &gaussian_reparameterize_backward_cuda);
}

}  // namespace aae_fast
