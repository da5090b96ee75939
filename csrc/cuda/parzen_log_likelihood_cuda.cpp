// CUDA implementation of parzen_log_likelihood (schema and semantics: csrc/ops.cpp): argument
// checks, device guard, current stream, dtype dispatch, and the launcher of
// parzen_log_likelihood.cu. Built only when torch has CUDA.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>  // at::cuda::getCurrentCUDAStream (no cuBLAS/cuSPARSE headers)
#include <torch/library.h>

#include "aae_fast/parzen_checks.h"
#include "aae_fast/parzen_gemm_tiles.h"
#include "parzen_log_likelihood.h"

namespace aae_fast {
namespace {

// From this D on, cuBLAS GEMM tiles (csrc/aten/parzen_gemm_tiles.cpp) serve the op: the distances
// are D multiply-adds a pair, which the kernel below does on SIMT lanes and cuBLAS as GEMM tiles.
// Measured on an H200 at N = M = 10^4, D = 784 (2026-11-26, nvidia-h200-2026-11-26-suite.md): the
// kernel 15.6 ms, the same tiles driven from Python 10.5 ms (9.3 ms in an earlier call of the same
// lease). Not measured between D = 8 and 784: 256 is an estimate (the kernel's time grows with D,
// the tiles' elementwise passes do not), to be checked with benchmarks/bench_parzen.py on a GPU.
constexpr int64_t kGemmTilesMinDim = 256;

// Whether cuBLAS keeps float32 GEMMs in full float32. With TF32 allowed (allow_tf32, or
// set_float32_matmul_precision("high" / "medium")) it rounds the inputs to 10-bit mantissas, and
// the expansion ||x||^2 - 2 x.s + ||s||^2 cancels: emulated at D = 784, the error grew about 100x
// past the documented bound. The SIMT kernel serves float32 and 16-bit inputs then.
bool cublas_float32_is_exact() {
  const at::Context& context = at::globalContext();
  return !context.allowTF32CuBLAS() &&
         context.float32MatmulPrecision() == at::Float32MatmulPrecision::HIGHEST;
}

template <typename in_t, typename acc_t>
void launch(const at::Tensor& x, const at::Tensor& samples, double sigma, at::Tensor& workspace,
            at::Tensor& out, cudaStream_t stream) {
  C10_CUDA_CHECK((launch_parzen_log_likelihood<in_t, acc_t>(
      reinterpret_cast<const in_t*>(x.const_data_ptr()), x.stride(0), x.stride(1),
      reinterpret_cast<const in_t*>(samples.const_data_ptr()), samples.stride(0),
      samples.stride(1), x.size(0), samples.size(0), x.size(1), parzen_half_inv_var(sigma),
      parzen_log_normalizer(samples.size(0), x.size(1), sigma), workspace.data_ptr<acc_t>(),
      out.data_ptr<acc_t>(), stream)));
}

at::Tensor parzen_log_likelihood_cuda(const at::Tensor& x, const at::Tensor& samples,
                                      double sigma) {
  check_parzen_inputs(x, samples, sigma);
  TORCH_CHECK(x.is_cuda(), "x must be a CUDA tensor here, got device ", x.device());
  const c10::cuda::CUDAGuard guard(x.device());
  if (x.size(1) >= kGemmTilesMinDim &&
      (x.scalar_type() == at::kDouble || cublas_float32_is_exact())) {
    return parzen_log_likelihood_gemm_tiles(x, samples, sigma);
  }
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const at::ScalarType acc_dtype = parzen_output_dtype(x.scalar_type());
  at::Tensor out = at::empty({x.size(0)}, x.options().dtype(acc_dtype));
  if (x.size(0) == 0) return out;
  at::Tensor workspace = at::empty({x.size(0) + samples.size(0)}, out.options());
  switch (x.scalar_type()) {
    case at::kFloat:
      launch<float, float>(x, samples, sigma, workspace, out, stream);
      break;
    case at::kHalf:
      launch<__half, float>(x, samples, sigma, workspace, out, stream);
      break;
    case at::kBFloat16:
      launch<__nv_bfloat16, float>(x, samples, sigma, workspace, out, stream);
      break;
    case at::kDouble:
      launch<double, double>(x, samples, sigma, workspace, out, stream);
      break;
    default:
      TORCH_INTERNAL_ASSERT(false, "unreachable: dtype checked by check_parzen_inputs");
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(aae_fast, CUDA, m) {
  m.impl("parzen_log_likelihood", &parzen_log_likelihood_cuda);
}

}  // namespace aae_fast
