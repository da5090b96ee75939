// CUDA implementation of mmd and mmd_backward (schemas and semantics: csrc/ops.cpp): argument
// checks, device guard, current stream, dtype dispatch, workspaces, and the launchers of mmd.cu.
// Built only when torch has CUDA. Nothing is copied to the host (the bandwidths travel as a kernel
// argument, grad is read on the device), so the ops can be captured in CUDA graphs.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>  // at::cuda::getCurrentCUDAStream (no cuBLAS/cuSPARSE headers)
#include <torch/library.h>

#include <array>
#include <vector>

#include "aae_fast/mmd_checks.h"
#include "cuda_types.h"
#include "mmd.h"

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

MmdBandwidths pack_bandwidths(c10::ArrayRef<double> bandwidths) {
  TORCH_CHECK(bandwidths.size() <= static_cast<size_t>(kMmdMaxBandwidths),
              "bandwidths: the CUDA kernel takes at most ", kMmdMaxBandwidths,
              " bandwidths, got ", bandwidths.size());
  MmdBandwidths packed{};
  const std::vector<double> h = mmd_half_inv_vars(bandwidths);
  packed.count = static_cast<int>(h.size());
  for (size_t s = 0; s < h.size(); ++s) packed.h[s] = h[s];
  return packed;
}

at::Tensor mmd_cuda(const at::Tensor& x, const at::Tensor& y, c10::ArrayRef<double> bandwidths,
                    bool unbiased) {
  check_mmd_inputs(x, y, bandwidths, unbiased);
  TORCH_CHECK(x.is_cuda(), "x must be a CUDA tensor here, got device ", x.device());
  const MmdBandwidths bw = pack_bandwidths(bandwidths);
  const c10::cuda::CUDAGuard guard(x.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const int64_t n = x.size(0), m = y.size(0);
  const auto acc_options = x.options().dtype(mmd_output_dtype(x.scalar_type()));
  at::Tensor out = at::empty({}, acc_options);
  // D = 0: every distance is 0 and every kernel value S, so both estimates are exactly 0 (as on
  // CPU and in Triton); the weighted sums below would only reach it up to rounding.
  if (x.size(1) == 0) return out.zero_();
  at::Tensor norms = at::empty({n + m}, acc_options);
  at::Tensor row_sums = at::empty({2 * n + m}, x.options().dtype(at::kDouble));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "mmd", [&] {
    using acc_t = acc_of<scalar_t>;
    C10_CUDA_CHECK((launch_mmd<typename CudaType<scalar_t>::type, acc_t>(
        cuda_ptr<scalar_t>(x), x.stride(0), x.stride(1), cuda_ptr<scalar_t>(y), y.stride(0),
        y.stride(1), n, m, x.size(1), bw, unbiased, norms.data_ptr<acc_t>(),
        row_sums.data_ptr<double>(), out.data_ptr<acc_t>(), stream)));
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> mmd_backward_cuda(const at::Tensor& grad, const at::Tensor& x,
                                                     const at::Tensor& y,
                                                     c10::ArrayRef<double> bandwidths,
                                                     bool unbiased,
                                                     std::array<bool, 2> output_mask) {
  check_mmd_inputs(x, y, bandwidths, unbiased);
  check_mmd_grad(grad, x);
  TORCH_CHECK(x.is_cuda(), "x must be a CUDA tensor here, got device ", x.device());
  const MmdBandwidths bw = pack_bandwidths(bandwidths);
  const c10::cuda::CUDAGuard guard(x.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const int64_t n = x.size(0), m = y.size(0);
  at::Tensor grad_x = output_mask[0] ? at::empty(x.sizes(), x.options().memory_format(
                                                                at::MemoryFormat::Contiguous))
                                     : at::empty({0}, grad.options());
  at::Tensor grad_y = output_mask[1] ? at::empty(y.sizes(), y.options().memory_format(
                                                                at::MemoryFormat::Contiguous))
                                     : at::empty({0}, grad.options());
  if (x.size(1) == 0 || (!output_mask[0] && !output_mask[1])) return {grad_x, grad_y};
  const auto acc_options = x.options().dtype(mmd_output_dtype(x.scalar_type()));
  const at::Tensor g = grad.to(acc_options.dtype());  // on the device: no host sync
  at::Tensor norms = at::empty({n + m}, acc_options);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "mmd_backward", [&] {
    using acc_t = acc_of<scalar_t>;
    using cuda_t = typename CudaType<scalar_t>::type;
    C10_CUDA_CHECK((launch_mmd_backward<cuda_t, acc_t>(
        g.const_data_ptr<acc_t>(), cuda_ptr<scalar_t>(x), x.stride(0), x.stride(1),
        cuda_ptr<scalar_t>(y), y.stride(0), y.stride(1), n, m, x.size(1), bw, unbiased,
        norms.data_ptr<acc_t>(), output_mask[0] ? cuda_mutable_ptr<scalar_t>(grad_x) : nullptr,
        output_mask[1] ? cuda_mutable_ptr<scalar_t>(grad_y) : nullptr, stream)));
  });
  return {grad_x, grad_y};
}

}  // namespace

TORCH_LIBRARY_IMPL(aae_fast, CUDA, m) {
  m.impl("mmd", &mmd_cuda);
  m.impl("mmd_backward", &mmd_backward_cuda);
}

}  // namespace aae_fast
