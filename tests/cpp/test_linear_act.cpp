// C++ tests of linear_act and linear_act_backward (csrc/ops.cpp) on CPU, called through the
// dispatcher: values against float64 loops written here, every activation, the output masks, the
// bias gradient's independence from the thread count, and the argument checks.
//
// Self-contained (no gtest): the last line of output is "N passed, M failed"; the exit status is
// non-zero when anything failed.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <cstdint>
#include <iostream>
#include <string>
#include <tuple>
#include <vector>

#include "expect.h"

namespace {

torch::jit::Stack call(const char* name, torch::jit::Stack stack) {
  const auto op = c10::Dispatcher::singleton().findSchemaOrThrow(name, "");
  op.callBoxed(&stack);
  return stack;
}

at::Tensor linear_act(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
                      const std::string& act, double slope = 0.01) {
  c10::IValue bias = b.has_value() ? c10::IValue(*b) : c10::IValue();
  return call("aae_fast::linear_act", {x, w, bias, act, slope})[0].toTensor();
}

std::vector<at::Tensor> backward(const at::Tensor& grad, const at::Tensor& y, const at::Tensor& x,
                                 const at::Tensor& w, const std::string& act,
                                 std::vector<bool> mask) {
  auto out = call("aae_fast::linear_act_backward",
                  {grad, y, x, w, act, 0.01, c10::List<bool>({mask[0], mask[1], mask[2]})});
  return {out[0].toTensor(), out[1].toTensor(), out[2].toTensor()};
}

struct Lcg {
  uint64_t x;
  double next(double lo, double hi) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return lo + (hi - lo) * static_cast<double>(x >> 11) * 0x1.0p-53;
  }
};

at::Tensor filled(std::vector<int64_t> shape, Lcg& g, double lo, double hi) {
  at::Tensor t = at::empty(shape, at::kDouble);
  double* p = t.data_ptr<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = g.next(lo, hi);
  return t;
}

double act_ref(double z, const std::string& act) {
  if (act == "relu") return z > 0 ? z : 0;
  if (act == "leaky_relu") return z > 0 ? z : 0.01 * z;
  if (act == "sigmoid") return 1.0 / (1.0 + std::exp(-z));
  if (act == "tanh") return std::tanh(z);
  return z;
}

double dact_ref(double y, const std::string& act) {
  if (act == "relu") return y > 0 ? 1 : 0;
  if (act == "leaky_relu") return y > 0 ? 1 : 0.01;
  if (act == "sigmoid") return y * (1 - y);
  if (act == "tanh") return 1 - y * y;
  return 1;
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return a.numel() == 0 ? 0.0 : (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

const std::vector<std::string> kActs = {"identity", "relu", "leaky_relu", "sigmoid", "tanh"};

void test_values_and_gradients() {
  Lcg g{7};
  for (const auto& shape : std::vector<std::vector<int64_t>>{{1, 1, 1}, {3, 7, 33}, {17, 33, 7},
                                                             {100, 100, 100}}) {
    const int64_t B = shape[0], K = shape[1], N = shape[2];
    const at::Tensor x = filled({B, K}, g, -1, 1), w = filled({N, K}, g, -1, 1),
                     b = filled({N}, g, -1, 1), grad = filled({B, N}, g, -1, 1);
    for (const auto& act : kActs) {
      // float64 reference with loops.
      at::Tensor y_ref = at::empty({B, N}, at::kDouble), gz = at::empty({B, N}, at::kDouble);
      for (int64_t r = 0; r < B; ++r) {
        for (int64_t c = 0; c < N; ++c) {
          double z = b.data_ptr<double>()[c];
          for (int64_t k = 0; k < K; ++k) {
            z += x.data_ptr<double>()[r * K + k] * w.data_ptr<double>()[c * K + k];
          }
          const double y = act_ref(z, act);
          y_ref.data_ptr<double>()[r * N + c] = y;
          gz.data_ptr<double>()[r * N + c] = grad.data_ptr<double>()[r * N + c] * dact_ref(y, act);
        }
      }
      for (const auto dtype : {at::kDouble, at::kFloat}) {
        const double tol = dtype == at::kDouble ? 1e-12 : 2e-5;
        const at::Tensor y = linear_act(x.to(dtype), w.to(dtype), b.to(dtype), act);
        EXPECT(y.scalar_type() == dtype && y.sizes() == y_ref.sizes(), act, ": dtype/shape");
        EXPECT(max_abs_diff(y, y_ref) < tol, act, " forward ", dtype, " B=", B, ": ",
               max_abs_diff(y, y_ref));
        const auto grads = backward(grad.to(dtype), y, x.to(dtype), w.to(dtype), act,
                                    {true, true, true});
        const double gtol = tol * static_cast<double>(std::max<int64_t>(B, K)) * 4;
        EXPECT(max_abs_diff(grads[0], at::mm(gz, w)) < gtol, act, " grad_x ", dtype);
        EXPECT(max_abs_diff(grads[1], at::mm(gz.t(), x)) < gtol, act, " grad_w ", dtype);
        EXPECT(max_abs_diff(grads[2], gz.sum(0)) < gtol, act, " grad_b ", dtype);
      }
    }
  }
}

void test_masks() {
  Lcg g{3};
  const at::Tensor x = filled({5, 4}, g, -1, 1).to(at::kFloat), w = filled({3, 4}, g, -1, 1).to(at::kFloat);
  const at::Tensor y = linear_act(x, w, c10::nullopt, "tanh");
  const at::Tensor grad = at::ones_like(y);
  const auto only_w = backward(grad, y, x, w, "tanh", {false, true, false});
  EXPECT(only_w[0].numel() == 0 && only_w[1].sizes() == w.sizes() && only_w[2].numel() == 0,
         "mask (F, T, F)");
  const auto only_b = backward(grad, y, x, w, "tanh", {false, false, true});
  EXPECT(only_b[0].numel() == 0 && only_b[1].numel() == 0 && only_b[2].size(0) == 3, "mask (F, F, T)");
}

void test_thread_independence() {
  Lcg g{5};
  const at::Tensor y = filled({1000, 700}, g, -1, 1).to(at::kFloat);
  const at::Tensor grad = filled({1000, 700}, g, -1, 1).to(at::kFloat);
  const at::Tensor w = at::zeros({700, 700});  // [N, K]; unused by the mask
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor one = backward(grad, y, y, w, "relu", {false, false, true})[2];
  at::set_num_threads(std::max(2, threads));
  const at::Tensor many = backward(grad, y, y, w, "relu", {false, false, true})[2];
  at::set_num_threads(threads);
  EXPECT(at::equal(one, many), "bias gradient must not depend on the thread count");
}

void test_checks() {
  const at::Tensor x = at::ones({4, 5}), w = at::ones({3, 5}), b = at::ones({3});
  EXPECT_THROWS(linear_act(x, at::ones({3, 6}), b, "relu"), "weight must have shape [N, K]");
  EXPECT_THROWS(linear_act(x, w, at::ones({4}), "relu"), "bias must have shape [N]");
  EXPECT_THROWS(linear_act(x, w, b, "gelu"), "activation must be one of");
  EXPECT_THROWS(linear_act(x, w.to(at::kDouble), b, "relu"), "weight must have the dtype of x");
  EXPECT_THROWS(linear_act(x, w, b, "leaky_relu", -1.0), "negative_slope");
}

}  // namespace

int main() {
  test_values_and_gradients();
  test_masks();
  test_thread_independence();
  test_checks();
  return report();
}
