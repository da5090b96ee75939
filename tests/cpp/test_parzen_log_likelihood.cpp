// C++ tests of parzen_log_likelihood (csrc/ops.cpp) on CPU, called through the dispatcher. Values
// are checked against a float64 recomputation written here from exact differences (no GEMM, no
// cancellation), on shapes that straddle the kernel's 256-row and 512-sample tiles; the tests also
// pin the log-domain stability at sigma = 0.01, D = 784, independence from the thread count,
// strided and 16-bit inputs, NaN propagation, zero sizes and the argument checks.
//
// Self-contained (no gtest): EXPECT counts passes and failures; the last line of output is
// "N passed, M failed"; the exit status is non-zero when anything failed.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "expect.h"

namespace {

at::Tensor parzen(const at::Tensor& x, const at::Tensor& samples, double sigma) {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("aae_fast::parzen_log_likelihood", "");
  torch::jit::Stack stack{x, samples, sigma};
  op.callBoxed(&stack);
  TORCH_INTERNAL_ASSERT(stack.size() == 1 && stack[0].isTensor());
  return stack[0].toTensor();
}

// float64 log((1/M) sum_j N(x_i; s_j, sigma^2 I)) from exact differences, with a max shift.
std::vector<double> reference(const at::Tensor& x_in, const at::Tensor& s_in, double sigma) {
  const at::Tensor x = x_in.to(at::kDouble).contiguous();
  const at::Tensor s = s_in.to(at::kDouble).contiguous();
  const int64_t N = x.size(0), M = s.size(0), D = x.size(1);
  const double* xp = x.data_ptr<double>();
  const double* sp = s.data_ptr<double>();
  const double h = 0.5 / sigma / sigma;
  const double log_norm =
      -std::log(static_cast<double>(M)) - D * (std::log(sigma) + 0.5 * std::log(2 * M_PI));
  std::vector<double> out(N), e(M);
  for (int64_t i = 0; i < N; ++i) {
    double best = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < M; ++j) {
      double d2 = 0.0;
      for (int64_t k = 0; k < D; ++k) {
        const double diff = xp[i * D + k] - sp[j * D + k];
        d2 += diff * diff;
      }
      e[j] = -d2 * h;
      best = std::max(best, e[j]);
    }
    double sum = 0.0;
    for (int64_t j = 0; j < M; ++j) sum += std::exp(e[j] - best);
    out[i] = best + std::log(sum) + log_norm;
  }
  return out;
}

// |got - ref| <= 32 eps (max ||x||^2 + max ||s||^2) h + 64 eps |ref|: the op's error model.
void expect_matches(const at::Tensor& got, const at::Tensor& x, const at::Tensor& s, double sigma,
                    const std::string& what) {
  const bool fp64 = x.scalar_type() == at::kDouble;
  const double eps = fp64 ? 0x1p-52 : 0x1p-23;
  EXPECT(got.scalar_type() == (fp64 ? at::kDouble : at::kFloat), what, ": dtype ",
         got.scalar_type());
  EXPECT(got.dim() == 1 && got.size(0) == x.size(0), what, ": shape ", got.sizes());
  const std::vector<double> ref = reference(x, s, sigma);
  const double norms = x.to(at::kDouble).square().sum(1).max().item<double>() +
                       s.to(at::kDouble).square().sum(1).max().item<double>();
  const double atol = 32 * eps * norms * 0.5 / sigma / sigma;
  const at::Tensor g = got.to(at::kDouble).contiguous();
  const double* gp = g.data_ptr<double>();
  int64_t bad = 0;
  double worst = 0.0;
  for (int64_t i = 0; i < g.size(0); ++i) {
    const double err = std::abs(gp[i] - ref[i]);
    if (!(err <= atol + 64 * eps * std::abs(ref[i]))) ++bad;
    worst = std::max(worst, err / std::max(std::abs(ref[i]), 1e-300));
  }
  EXPECT(bad == 0, what, ": ", bad, " rows outside the tolerance; worst relative error ", worst);
}

at::Tensor uniform(int64_t rows, int64_t cols, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::rand({rows, cols}, gen, at::TensorOptions().dtype(at::kDouble));
}

void test_matches_reference() {
  // (N, M, D): odd sizes, and sizes straddling the 256-row and 512-sample tiles.
  const std::vector<std::vector<int64_t>> shapes = {
      {1, 1, 1}, {3, 17, 7}, {17, 3, 784}, {257, 513, 5}, {40, 1100, 30}, {600, 90, 3}};
  for (const auto& shape : shapes) {
    const at::Tensor x64 = uniform(shape[0], shape[2], 1 + shape[0]);
    const at::Tensor s64 = uniform(shape[1], shape[2], 2 + shape[1]);
    for (const double sigma : {0.01, 0.3, 10.0}) {
      for (const auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
        const at::Tensor x = x64.to(dtype), s = s64.to(dtype);
        const std::string what = c10::str("shape ", at::IntArrayRef(shape), " sigma ", sigma,
                                          " dtype ", dtype);
        const at::Tensor got = parzen(x, s, sigma);
        EXPECT(at::isfinite(got).all().item<bool>(), what, ": non-finite values");
        expect_matches(got, x, s, sigma, what);
      }
    }
  }
}

void test_small_sigma_in_high_dimension() {
  // exp(-d2 / (2 sigma^2)) underflows for every pair here; the log domain keeps the answer.
  const at::Tensor x = uniform(30, 784, 11).to(at::kFloat);
  const at::Tensor s = uniform(700, 784, 12).to(at::kFloat);
  const at::Tensor got = parzen(x, s, 0.01);
  EXPECT(at::isfinite(got).all().item<bool>(), "sigma 0.01: non-finite values");
  expect_matches(got, x, s, 0.01, "sigma 0.01, D 784");
}

void test_thread_count_and_strides() {
  const at::Tensor x = uniform(70, 2 * 25, 21).to(at::kFloat);
  const at::Tensor s = uniform(1500, 2 * 25, 22).to(at::kFloat);
  const at::Tensor xs = x.slice(1, 0, 50, 2);        // strided columns
  const at::Tensor ss = s.slice(1, 1, 50, 2).t().contiguous().t();  // column-major
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor one = parzen(xs, ss, 0.5);
  at::set_num_threads(std::max(2, threads));
  const at::Tensor many = parzen(xs, ss, 0.5);  // one row tile: the samples are split
  at::set_num_threads(threads);
  EXPECT(at::allclose(one, many, 1e-6, 0.0), "thread count changed the result");
  const at::Tensor dense = parzen(xs.contiguous(), ss.contiguous(), 0.5);
  EXPECT(at::allclose(many, dense, 1e-6, 1e-5), "strided inputs changed the result");
  expect_matches(many, xs, ss, 0.5, "strided");
}

void test_special_values_and_sizes() {
  at::Tensor x = uniform(6, 5, 31).to(at::kFloat);
  const at::Tensor s = uniform(700, 5, 32).to(at::kFloat);
  x.index_put_({2, 3}, std::numeric_limits<float>::quiet_NaN());
  const at::Tensor got = parzen(x, s, 0.3);
  EXPECT(std::isnan(got[2].item<float>()), "a NaN in row 2 must give NaN, got ", got[2]);
  EXPECT(at::isfinite(got.index_select(0, at::tensor({0, 1, 3, 4, 5}))).all().item<bool>(),
         "a NaN in row 2 must not touch the other rows: ", got);

  const at::Tensor empty = parzen(s.slice(0, 0, 0), s, 1.0);
  EXPECT(empty.dim() == 1 && empty.size(0) == 0 && empty.scalar_type() == at::kFloat,
         "N = 0 must give an empty float32 [0], got ", empty.sizes(), " ", empty.scalar_type());
  const at::Tensor flat = parzen(at::zeros({3, 0}), at::zeros({4, 0}), 0.7);
  EXPECT(at::allclose(flat, at::zeros({3})), "D = 0 must give log p = 0, got ", flat);
  const at::Tensor huge = parzen(s.slice(0, 0, 4).to(at::kDouble), s.to(at::kDouble), 1e200);
  EXPECT(at::isfinite(huge).all().item<bool>(), "sigma 1e200: non-finite values ", huge);
  const at::Tensor tiny = parzen(s.slice(0, 0, 4), s, 1e-30);
  EXPECT(!at::isnan(tiny).any().item<bool>(), "sigma 1e-30: NaN values ", tiny);
}

void test_bad_inputs() {
  const at::Tensor x = uniform(4, 3, 41).to(at::kFloat);
  const at::Tensor s = uniform(6, 3, 42).to(at::kFloat);
  EXPECT_THROWS(parzen(x[0], s, 1.0), "x must have shape [N, D]", "1-D x");
  EXPECT_THROWS(parzen(x, s.unsqueeze(0), 1.0), "samples must have shape [M, D]", "3-D samples");
  EXPECT_THROWS(parzen(x, s.slice(0, 0, 0), 1.0), "samples must hold at least one sample",
                "M = 0");
  EXPECT_THROWS(parzen(x, s.slice(1, 0, 2), 1.0), "samples must have the dimension D of x",
                "mismatched D");
  EXPECT_THROWS(parzen(x, s.to(at::kDouble), 1.0), "samples must have the dtype of x",
                "mismatched dtypes");
  EXPECT_THROWS(parzen(x.to(at::kInt), s.to(at::kInt), 1.0), "x must be float32, float64",
                "integer inputs");
  EXPECT_THROWS(parzen(x, s, 0.0), "sigma must be a finite number > 0", "sigma 0");
  EXPECT_THROWS(parzen(x, s, -1.0), "sigma must be a finite number > 0", "sigma < 0");
  EXPECT_THROWS(parzen(x, s, std::numeric_limits<double>::infinity()),
                "sigma must be a finite number > 0", "sigma inf");
}

}  // namespace

int main() {
  const std::pair<const char*, void (*)()> tests[] = {
      {"matches_reference", test_matches_reference},
      {"small_sigma_in_high_dimension", test_small_sigma_in_high_dimension},
      {"thread_count_and_strides", test_thread_count_and_strides},
      {"special_values_and_sizes", test_special_values_and_sizes},
      {"bad_inputs", test_bad_inputs},
  };
  for (const auto& [name, fn] : tests) {
    const int failed_before = g_failed;
    try {
      fn();
    } catch (const std::exception& e) {
      ++g_failed;
      std::cerr << "FAIL " << name << ": unexpected exception: " << e.what() << std::endl;
    }
    std::cout << (g_failed == failed_before ? "ok   " : "FAIL ") << name << std::endl;
  }
  return report();
}
