// CUDA implementations of the prior-sampling ops (schemas and semantics: csrc/ops.cpp): argument
// checks, device guard, current stream, dtype dispatch, and the launchers of prior_sample.cu. Built
// only when torch has CUDA.
//
// Unlike the CPU kernels, these never read labels on the host (that would need a device-to-host
// sync and break CUDA-graph capture): a label outside [0, K) gives a row of NaN. The RNG state is
// read and advanced on the device, in stream order.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>  // at::cuda::getCurrentCUDAStream (no cuBLAS/cuSPARSE headers)
#include <torch/library.h>

#include "aae_fast/prior_checks.h"
#include "prior_sample.h"
#include "cuda_types.h"

namespace aae_fast {
namespace {

template <typename T>
typename CudaType<T>::type* cuda_ptr(const at::Tensor& t) {
  return reinterpret_cast<typename CudaType<T>::type*>(t.data_ptr<T>());
}

// The output dtypes prior_sample.cu supports (check_output_dtype also admits e.g. float8 types).
void check_cuda_output_dtype(at::ScalarType dtype) {
  check_output_dtype(dtype);
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf ||
                  dtype == at::kBFloat16,
              "dtype must be float32, float64, float16 or bfloat16 on CUDA, got ", dtype);
}

void check_on_cuda(const at::Tensor& rng_state) {
  TORCH_CHECK(rng_state.is_cuda(), "rng_state must be a CUDA tensor here, got device ",
              rng_state.device());
}

const int64_t* labels_ptr(const c10::optional<at::Tensor>& contiguous_labels) {
  return contiguous_labels.has_value() ? contiguous_labels->data_ptr<int64_t>() : nullptr;
}

c10::optional<at::Tensor> contiguous(const c10::optional<at::Tensor>& t) {
  if (!t.has_value()) return t;
  return t->contiguous();
}

// Dispatches on the parameters' dtype (compute precision, param_t) and the output dtype (out_t).
#define AAE_DISPATCH_PARAM_AND_OUT(PARAM_TYPE, OUT_TYPE, NAME, ...)                   \
  AT_DISPATCH_FLOATING_TYPES(PARAM_TYPE, NAME, [&] {                                  \
    using param_t = scalar_t;                                                         \
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, OUT_TYPE, NAME, [&] {   \
      using out_t = scalar_t;                                                         \
      __VA_ARGS__();                                                                  \
    });                                                                               \
  })

at::Tensor sample_gaussian_mixture_cuda(at::Tensor& rng_state, int64_t n, const at::Tensor& loc,
                                        const at::Tensor& scale, const at::Tensor& cum_weights,
                                        const c10::optional<at::Tensor>& labels,
                                        at::ScalarType dtype) {
  check_rng_state(rng_state);
  check_on_cuda(rng_state);
  check_sample_count(n);
  check_cuda_output_dtype(dtype);
  const int64_t K = check_cum_weights(cum_weights, rng_state);
  const int64_t D = check_mixture_params(loc, scale, cum_weights, rng_state);
  check_labels_shape(labels, n, rng_state);

  const c10::cuda::CUDAGuard guard(rng_state.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const at::Tensor loc_c = loc.contiguous();
  const at::Tensor scale_c = scale.contiguous();
  const at::Tensor cum_c = cum_weights.contiguous();
  const auto labels_c = contiguous(labels);
  const bool tril = scale.dim() == 3;
  at::Tensor out = at::empty({n, D}, rng_state.options().dtype(dtype));
  if (n == 0) return out;
  AAE_DISPATCH_PARAM_AND_OUT(cum_weights.scalar_type(), dtype, "sample_gaussian_mixture", [&] {
    C10_CUDA_CHECK((launch_sample_gaussian_mixture<param_t, typename CudaType<out_t>::type>(
        rng_state.data_ptr<int64_t>(), n, K, D, loc_c.data_ptr<param_t>(),
        scale_c.data_ptr<param_t>(), tril, cum_c.data_ptr<param_t>(), labels_ptr(labels_c),
        cuda_ptr<out_t>(out), stream)));
  });
  return out;
}

at::Tensor sample_swiss_roll_cuda(at::Tensor& rng_state, int64_t n, const at::Tensor& cum_weights,
                                  const c10::optional<at::Tensor>& labels, double radius,
                                  double turns, at::ScalarType dtype) {
  check_rng_state(rng_state);
  check_on_cuda(rng_state);
  check_sample_count(n);
  check_cuda_output_dtype(dtype);
  const int64_t K = check_cum_weights(cum_weights, rng_state);
  check_labels_shape(labels, n, rng_state);

  const c10::cuda::CUDAGuard guard(rng_state.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const at::Tensor cum_c = cum_weights.contiguous();
  const auto labels_c = contiguous(labels);
  at::Tensor out = at::empty({n, 2}, rng_state.options().dtype(dtype));
  if (n == 0) return out;
  AAE_DISPATCH_PARAM_AND_OUT(cum_weights.scalar_type(), dtype, "sample_swiss_roll", [&] {
    C10_CUDA_CHECK((launch_sample_swiss_roll<param_t, typename CudaType<out_t>::type>(
        rng_state.data_ptr<int64_t>(), n, K, cum_c.data_ptr<param_t>(), labels_ptr(labels_c),
        radius, turns, cuda_ptr<out_t>(out), stream)));
  });
  return out;
}

at::Tensor sample_categorical_cuda(at::Tensor& rng_state, int64_t n,
                                   const at::Tensor& cum_weights,
                                   const c10::optional<at::Tensor>& labels, at::ScalarType dtype) {
  check_rng_state(rng_state);
  check_on_cuda(rng_state);
  check_sample_count(n);
  check_cuda_output_dtype(dtype);
  const int64_t K = check_cum_weights(cum_weights, rng_state);
  check_labels_shape(labels, n, rng_state);

  const c10::cuda::CUDAGuard guard(rng_state.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const at::Tensor cum_c = cum_weights.contiguous();
  const auto labels_c = contiguous(labels);
  at::Tensor out = at::empty({n, K}, rng_state.options().dtype(dtype));
  if (n == 0) return out;
  AAE_DISPATCH_PARAM_AND_OUT(cum_weights.scalar_type(), dtype, "sample_categorical", [&] {
    C10_CUDA_CHECK((launch_sample_categorical<param_t, typename CudaType<out_t>::type>(
        rng_state.data_ptr<int64_t>(), n, K, cum_c.data_ptr<param_t>(), labels_ptr(labels_c),
        cuda_ptr<out_t>(out), stream)));
  });
  return out;
}

#undef AAE_DISPATCH_PARAM_AND_OUT

}  // namespace

TORCH_LIBRARY_IMPL(aae_fast, CUDA, m) {
  m.impl("sample_gaussian_mixture", &sample_gaussian_mixture_cuda);
  m.impl("sample_swiss_roll", &sample_swiss_roll_cuda);
  m.impl("sample_categorical", &sample_categorical_cuda);
}

}  // namespace aae_fast
