// CPU implementation of the reconstruction loss and its backward (schemas and semantics:
// csrc/ops.cpp; element math and the deterministic chunked reduction: loss_lanes.h).
//
//   loss = (1 / B) sum_i sum_j l(o_ij, t_ij)    over output, target [B, F]
//   bce:  l = softplus(o) - o t           dl/do = sigmoid(o) - t     dl/dt = -o
//   mse:  l = (o - t)^2                   dl/do = 2 (o - t)          dl/dt = -2 (o - t)
//
// The per-row sums followed by the mean over rows equal the sum over all B F elements divided by B,
// so the reduction runs over the flattened (contiguous) B F elements in fixed chunks of whole
// lanes: the rows are split across threads with no dependence on the thread count, and rows of any
// width F keep the vector lanes full. float32, float16 and bfloat16 compute in float32 (16-bit
// values widened as they are loaded) with double lane accumulators, float64 in float64; the loss is
// float32 (float64 for float64 inputs) and the gradients have the inputs' dtype.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <array>

#include "aae_fast/loss_checks.h"
#include "loss_lanes.h"

namespace aae_fast {
namespace {

using namespace loss_lanes;

// ---- hot loops ---------------------------------------------------------------------------------

template <typename acc_t>
AAE_LOSS_INLINE acc_t bce_term(acc_t o, acc_t t) {
  return softplus(o) - o * t;
}

template <typename acc_t>
AAE_LOSS_INLINE acc_t mse_term(acc_t o, acc_t t) {
  const acc_t d = o - t;
  return d * d;
}

// Sum of l(o[i], t[i]) over one chunk, n <= kChunk.
template <bool kBce, typename scalar_t, typename acc_t = acc_type<scalar_t>>
AAE_LOSS_INLINE double chunk_sum(const scalar_t* __restrict o, const scalar_t* __restrict t,
                                 int64_t n) {
  double acc[kLanes] = {};
  acc_t v[kBlock];
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t len = std::min(kBlock, n - b);
    for (int64_t j = 0; j < len; ++j) {
      const acc_t oj = static_cast<acc_t>(o[b + j]);
      const acc_t tj = static_cast<acc_t>(t[b + j]);
      v[j] = kBce ? bce_term(oj, tj) : mse_term(oj, tj);
    }
    for (int64_t j = len; j < kBlock; ++j) v[j] = 0;
    add_block(v, acc);
  }
  return sum_lanes(acc);
}

// grad_o[i] = c dl/do, grad_t[i] = c dl/dt; either output pointer may be null (not wanted).
template <typename scalar_t, typename acc_t = acc_type<scalar_t>>
AAE_LOSS_INLINE void grads(const scalar_t* __restrict o, const scalar_t* __restrict t, int64_t n,
                           bool bce, acc_t c, scalar_t* __restrict grad_o,
                           scalar_t* __restrict grad_t) {
  if (bce) {
    if (grad_o != nullptr) {
      for (int64_t i = 0; i < n; ++i) {
        grad_o[i] = static_cast<scalar_t>(
            c * (sigmoid(static_cast<acc_t>(o[i])) - static_cast<acc_t>(t[i])));
      }
    }
    if (grad_t != nullptr) {
      for (int64_t i = 0; i < n; ++i) grad_t[i] = static_cast<scalar_t>(-c * static_cast<acc_t>(o[i]));
    }
  } else {
    const acc_t c2 = 2 * c;
    if (grad_o != nullptr) {
      for (int64_t i = 0; i < n; ++i) {
        grad_o[i] = static_cast<scalar_t>(c2 * (static_cast<acc_t>(o[i]) - static_cast<acc_t>(t[i])));
      }
    }
    if (grad_t != nullptr) {
      for (int64_t i = 0; i < n; ++i) {
        grad_t[i] = static_cast<scalar_t>(c2 * (static_cast<acc_t>(t[i]) - static_cast<acc_t>(o[i])));
      }
    }
  }
}

// One multiversioned copy per float32-compute input type; float64 takes the libm path.
#define AAE_RECONSTRUCTION_KERNELS(T)                                                         \
  AAE_LOSS_MULTIVERSION double chunk_sum_t(const T* o, const T* t, int64_t n, bool bce) {     \
    return bce ? chunk_sum<true>(o, t, n) : chunk_sum<false>(o, t, n);                        \
  }                                                                                           \
  AAE_LOSS_MULTIVERSION void grads_t(const T* o, const T* t, int64_t n, bool bce, float c,    \
                                     T* grad_o, T* grad_t) {                                  \
    grads<T>(o, t, n, bce, c, grad_o, grad_t);                                                \
  }
AAE_RECONSTRUCTION_KERNELS(float)
AAE_RECONSTRUCTION_KERNELS(c10::Half)
AAE_RECONSTRUCTION_KERNELS(c10::BFloat16)
#undef AAE_RECONSTRUCTION_KERNELS

double chunk_sum_t(const double* o, const double* t, int64_t n, bool bce) {
  return bce ? chunk_sum<true>(o, t, n) : chunk_sum<false>(o, t, n);
}
void grads_t(const double* o, const double* t, int64_t n, bool bce, double c, double* grad_o,
             double* grad_t) {
  grads<double>(o, t, n, bce, c, grad_o, grad_t);
}

// ---- ops ---------------------------------------------------------------------------------------

at::Tensor reconstruction_loss_cpu(const at::Tensor& output_in, const at::Tensor& target_in,
                                   c10::string_view kind) {
  const bool bce = parse_recon_kind(kind) == ReconKind::kBce;
  check_recon_inputs(output_in, target_in);
  const at::Tensor output = output_in.contiguous();
  const at::Tensor target = target_in.contiguous();
  const int64_t n = output.numel();
  double total = 0.0;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, output.scalar_type(),
                                  "reconstruction_loss", [&] {
    const scalar_t* o = output.const_data_ptr<scalar_t>();
    const scalar_t* t = target.const_data_ptr<scalar_t>();
    total = sum_chunks(num_chunks(n), [&](int64_t c) {
      const int64_t begin = c * kChunk;
      return chunk_sum_t(o + begin, t + begin, std::min(kChunk, n - begin), bce);
    });
  });
  // B == 0 gives 0 / 0 = NaN, like torch.mean over zero rows; F == 0 (B > 0) gives 0.
  const double value = total / static_cast<double>(output.size(0));
  at::Tensor loss = at::empty({}, output.options().dtype(loss_dtype(output.scalar_type())));
  if (loss.scalar_type() == at::kDouble) {
    *loss.data_ptr<double>() = value;
  } else {
    *loss.data_ptr<float>() = static_cast<float>(value);
  }
  return loss;
}

std::tuple<at::Tensor, at::Tensor> reconstruction_loss_backward_cpu(
    const at::Tensor& grad, const at::Tensor& output_in, const at::Tensor& target_in,
    c10::string_view kind, std::array<bool, 2> output_mask) {
  const bool bce = parse_recon_kind(kind) == ReconKind::kBce;
  check_recon_inputs(output_in, target_in);
  check_loss_grad(grad, output_in, "output");
  const at::Tensor output = output_in.contiguous();
  const at::Tensor target = target_in.contiguous();
  const int64_t n = output.numel();
  const double c = aae_fast::cpu::scalar_value(grad) / static_cast<double>(output.size(0));
  at::Tensor grad_output =
      output_mask[0] ? at::empty(output.sizes(), output.options()) : at::empty({0}, grad.options());
  at::Tensor grad_target =
      output_mask[1] ? at::empty(output.sizes(), output.options()) : at::empty({0}, grad.options());
  if (n == 0 || (!output_mask[0] && !output_mask[1])) return {grad_output, grad_target};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, output.scalar_type(),
                                  "reconstruction_loss_backward", [&] {
    using acc_t = acc_type<scalar_t>;
    const scalar_t* o = output.const_data_ptr<scalar_t>();
    const scalar_t* t = target.const_data_ptr<scalar_t>();
    scalar_t* go = output_mask[0] ? grad_output.data_ptr<scalar_t>() : nullptr;
    scalar_t* gt = output_mask[1] ? grad_target.data_ptr<scalar_t>() : nullptr;
    for_each_chunk(n, [&](int64_t begin, int64_t end) {
      grads_t(o + begin, t + begin, end - begin, bce, static_cast<acc_t>(c),
              go == nullptr ? nullptr : go + begin, gt == nullptr ? nullptr : gt + begin);
    });
  });
  return {grad_output, grad_target};
}

}  // namespace

TORCH_LIBRARY_IMPL(aae_fast, CPU, m) {
  m.impl("reconstruction_loss", &reconstruction_loss_cpu);
  m.impl("reconstruction_loss_backward", &reconstruction_loss_backward_cpu);
}

}  // namespace aae_fast
