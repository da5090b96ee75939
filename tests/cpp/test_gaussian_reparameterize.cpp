// C++ tests of gaussian_reparameterize and its backward (csrc/ops.cpp) on CPU, called through the
// dispatcher: z - mu equals exp(logvar / 2) times the noise that sample_gaussian_mixture draws from
// the same [seed, offset] with loc 0 and scale I (the stream contract of
// csrc/include/aae_fast/philox.h), the backward regenerates that noise, the state is read and not
// advanced, results do not depend on the thread count, and the argument checks.
//
// Self-contained (no gtest): the last line of output is "N passed, M failed"; the exit status is
// non-zero when anything failed.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>

#include <cstdint>
#include <vector>

#include "expect.h"

namespace {

torch::jit::Stack call(const char* name, torch::jit::Stack stack) {
  const auto op = c10::Dispatcher::singleton().findSchemaOrThrow(name, "");
  op.callBoxed(&stack);
  return stack;
}

at::Tensor state_of(int64_t seed, int64_t offset) {
  at::Tensor s = at::empty({2}, at::kLong);
  s[0] = seed;
  s[1] = offset;
  return s;
}

std::vector<at::Tensor> reparameterize(const at::Tensor& state, const at::Tensor& mu,
                                       const at::Tensor& logvar) {
  auto out = call("aae_fast::gaussian_reparameterize", {state, mu, logvar});
  return {out[0].toTensor(), out[1].toTensor()};
}

at::Tensor backward(const at::Tensor& grad, const at::Tensor& state, const at::Tensor& logvar) {
  return call("aae_fast::gaussian_reparameterize_backward", {grad, state, logvar})[0].toTensor();
}

// eps [B, D] of the stream at `state`: one standard normal component.
at::Tensor noise(const at::Tensor& state, int64_t B, int64_t D, at::ScalarType dtype) {
  at::Tensor copy = state.clone();
  const at::Tensor loc = at::zeros({1, D}, at::kDouble);
  const at::Tensor scale = at::eye(D, at::kDouble).unsqueeze(0);
  const at::Tensor cum = at::ones({1}, at::kDouble);
  return call("aae_fast::sample_gaussian_mixture",
              {copy, B, loc, scale, cum, c10::IValue(), dtype})[0]
      .toTensor();
}

// max |a - b| / (1 + |b|): relative for large values, absolute near 0 (where mu + std * eps
// cancels, and the float32 kernel's noise differs from the float64 reference's by a few ulp of eps).
double max_rel_error(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor a64 = a.to(at::kDouble), b64 = b.to(at::kDouble);
  return ((a64 - b64).abs() / (b64.abs() + 1.0)).max().item<double>();
}

void test_values_and_gradient(int64_t B, int64_t D, at::ScalarType dtype, double tol) {
  at::manual_seed(B * 1000 + D);
  const at::Tensor mu = at::randn({B, D}, at::kDouble).to(dtype);
  const at::Tensor logvar = (at::rand({B, D}, at::kDouble) * 4 - 2).to(dtype);
  const at::Tensor state = state_of(1234567, 4294967290LL);  // the counter crosses 2^32
  const at::Tensor before = state.clone();
  auto out = reparameterize(state, mu, logvar);
  EXPECT(at::equal(state, before), "the op reads the state, it does not advance it");
  EXPECT(at::equal(out[1], before), "the second output is the state the call saw");
  EXPECT(out[0].scalar_type() == dtype && out[0].sizes() == mu.sizes(), "z keeps mu's dtype/shape");
  const at::Tensor eps = noise(state, B, D, at::kDouble);
  const at::Tensor std = (logvar.to(at::kDouble) * 0.5).exp();
  const at::Tensor expected = mu.to(at::kDouble) + std * eps;
  const double err = max_rel_error(out[0], expected);
  EXPECT(err < tol, "z vs float64 mu + exp(logvar/2) * eps at [", B, ", ", D, "] ", dtype,
         ": relative error ", err);

  const at::Tensor grad = at::randn({B, D}, at::kDouble).to(dtype);
  const at::Tensor g = backward(grad, out[1], logvar);
  const at::Tensor g_expected = grad.to(at::kDouble) * 0.5 * std * eps;
  const double gerr = max_rel_error(g, g_expected);
  EXPECT(gerr < tol, "d logvar vs float64 at [", B, ", ", D, "] ", dtype, ": ", gerr);
}

void test_threads_do_not_change_results() {
  const at::Tensor mu = at::randn({1000, 37});
  const at::Tensor logvar = at::randn({1000, 37});
  const at::Tensor state = state_of(7, 0);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor one = reparameterize(state, mu, logvar)[0];
  at::set_num_threads(std::max(threads, 2));
  const at::Tensor many = reparameterize(state, mu, logvar)[0];
  at::set_num_threads(threads);
  EXPECT(at::equal(one, many), "z must not depend on the number of threads");
}

void test_checks() {
  const at::Tensor mu = at::zeros({4, 3});
  const at::Tensor state = state_of(0, 0);
  EXPECT_THROWS(reparameterize(state, mu, at::zeros({4, 2})), "logvar must have the shape of mu",
                "shape mismatch");
  EXPECT_THROWS(reparameterize(state, mu, at::zeros({4, 3}, at::kDouble)),
                "logvar must have the dtype of mu", "dtype mismatch");
  EXPECT_THROWS(reparameterize(state, at::zeros({4}), at::zeros({4})), "mu must have shape [B, D]",
                "1-D mu");
  EXPECT_THROWS(reparameterize(state, at::zeros({4, 3}, at::kInt), at::zeros({4, 3}, at::kInt)),
                "mu must be a float32", "int mu");
  EXPECT_THROWS(reparameterize(at::zeros({2}, at::kInt), mu, at::zeros({4, 3})), "rng_state",
                "int32 state");
  EXPECT_THROWS(backward(at::zeros({4, 2}), state, at::zeros({4, 3})),
                "logvar must have the shape of grad", "backward shape mismatch");
}

}  // namespace

int main() {
  for (int64_t B : {1, 3, 17, 1000}) {
    for (int64_t D : {1, 7, 100}) {
      test_values_and_gradient(B, D, at::kFloat, 1e-4);
      test_values_and_gradient(B, D, at::kDouble, 1e-9);
    }
  }
  test_values_and_gradient(17, 7, at::kHalf, 2e-2);
  test_values_and_gradient(17, 7, at::kBFloat16, 2e-2);
  {
    auto out = reparameterize(state_of(1, 2), at::zeros({0, 5}), at::zeros({0, 5}));
    EXPECT(out[0].numel() == 0 && out[0].size(1) == 5, "zero rows give an empty z");
  }
  test_threads_do_not_change_results();
  test_checks();
  return report();
}
