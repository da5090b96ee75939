// C++ tests of mmd and mmd_backward (csrc/ops.cpp) on CPU, called through the dispatcher. Values
// and gradients are checked against a float64 recomputation written here from exact differences
// (no GEMM, no cancellation), on shapes that straddle the kernel's tiles (64 rows, or 256 when
// N + M > 1024), for every dtype, biased and unbiased; the tolerance is the op's error model
// evaluated pair by pair (see `reference`). The tests also pin zero for identical sets,
// independence from the thread count (bitwise), strided inputs, D = 0, the gradient mask and the
// argument checks.
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
#include <tuple>
#include <utility>
#include <vector>

#include "expect.h"

namespace {

const std::vector<double> kBandwidths = {0.5, 1.0, 2.0, 4.0, 8.0};

at::Tensor mmd(const at::Tensor& x, const at::Tensor& y, const std::vector<double>& bw,
               bool unbiased) {
  static const auto op = c10::Dispatcher::singleton().findSchemaOrThrow("aae_fast::mmd", "");
  torch::jit::Stack stack{x, y, c10::IValue(bw), unbiased};
  op.callBoxed(&stack);
  TORCH_INTERNAL_ASSERT(stack.size() == 1 && stack[0].isTensor());
  return stack[0].toTensor();
}

std::pair<at::Tensor, at::Tensor> mmd_backward(const at::Tensor& grad, const at::Tensor& x,
                                               const at::Tensor& y, const std::vector<double>& bw,
                                               bool unbiased, bool want_x, bool want_y) {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("aae_fast::mmd_backward", "");
  torch::jit::Stack stack{grad, x, y, c10::IValue(bw), unbiased,
                          c10::IValue(std::vector<bool>{want_x, want_y})};
  op.callBoxed(&stack);
  TORCH_INTERNAL_ASSERT(stack.size() == 2 && stack[0].isTensor() && stack[1].isTensor());
  return {stack[0].toTensor(), stack[1].toTensor()};
}

// float64 value and gradients of the MMD from exact differences, plus the op's error model with
// the compute precision's eps: a squared distance has an absolute error of about
// sqrt(D + 1) eps (|a|^2 + |b|^2 + d2) (the GEMM's rounding of a.b grows like sqrt(D); 0 for a
// point with itself); a kernel term moves by h e^{-d2 h} times that; a gradient term w (z - a) by
// |dw| |z - a| + w eps (|z| + |a|). Safety factor 8.
struct Reference {
  double value = 0.0, value_tol = 0.0;
  std::vector<double> gx, gy, gx_tol, gy_tol;  // row-major [N, D], [M, D]; tolerances per row
};

Reference reference(const at::Tensor& x_in, const at::Tensor& y_in, const std::vector<double>& bw,
                    bool unbiased, double eps) {
  const at::Tensor x = x_in.to(at::kDouble).contiguous();
  const at::Tensor y = y_in.to(at::kDouble).contiguous();
  const int64_t N = x.size(0), M = y.size(0), D = x.size(1);
  const double* sets[2] = {x.data_ptr<double>(), y.data_ptr<double>()};
  const int64_t rows[2] = {N, M};
  const double wxx = 1.0 / (N * (unbiased ? N - 1.0 : double(N)));
  const double wyy = 1.0 / (M * (unbiased ? M - 1.0 : double(M)));
  const double wxy = 2.0 / (double(N) * M);
  std::vector<double> h;
  for (double s : bw) h.push_back(0.5 / s / s);
  const double dot_eps = eps * std::sqrt(static_cast<double>(D) + 1.0);  // GEMM rounding ~ sqrt(D)
  Reference ref;
  ref.gx.assign(N * D, 0.0);
  ref.gy.assign(M * D, 0.0);
  ref.gx_tol.assign(N, 0.0);
  ref.gy_tol.assign(M, 0.0);
  std::vector<double>* grads[2] = {&ref.gx, &ref.gy};
  std::vector<double>* tols[2] = {&ref.gx_tol, &ref.gy_tol};
  auto norm2 = [&](int set, int64_t i) {
    double s = 0.0;
    for (int64_t k = 0; k < D; ++k) s += sets[set][i * D + k] * sets[set][i * D + k];
    return s;
  };
  auto amax = [&](int set, int64_t i) {
    double s = 0.0;
    for (int64_t k = 0; k < D; ++k) s = std::max(s, std::abs(sets[set][i * D + k]));
    return s;
  };
  // (a, b, weight of the sum in the value, coefficient of the a-gradient, of the b-gradient)
  const std::tuple<int, int, double> blocks[3] = {{0, 0, wxx}, {1, 1, wyy}, {0, 1, -wxy}};
  for (const auto& [sa, sb, wt] : blocks) {
    for (int64_t i = 0; i < rows[sa]; ++i) {
      double row_value = 0.0;  // per-row sums keep the reference's own rounding small
      for (int64_t j = 0; j < rows[sb]; ++j) {
        const bool self = sa == sb && i == j;
        if (self && unbiased) continue;
        const double* a = sets[sa] + i * D;
        const double* b = sets[sb] + j * D;
        double d2 = 0.0, diff_max = 0.0;
        for (int64_t k = 0; k < D; ++k) {
          d2 += (a[k] - b[k]) * (a[k] - b[k]);
          diff_max = std::max(diff_max, std::abs(a[k] - b[k]));
        }
        const double err = self ? 0.0 : dot_eps * (norm2(sa, i) + norm2(sb, j) + d2);
        double k = 0.0, dk = 0.0, w = 0.0, dw = 0.0;
        for (double hs : h) {
          const double e = std::exp(-d2 * hs);
          k += e;
          dk += hs * e * err;
          w += 2 * hs * e;
          dw += 2 * hs * hs * e * err;
        }
        row_value += k;
        ref.value_tol += std::abs(wt) * (dk + eps * k);
        // d/da of wt k(a, b) = wt w (b - a); likewise for b. Within a set each ordered pair is
        // visited once with a as the row, which gives the factor 2 of the symmetric sum.
        const double g_tol = std::abs(wt) * (dw * diff_max + w * eps * (amax(sa, i) + amax(sb, j)));
        for (int64_t q = 0; q < D; ++q) {
          (*grads[sa])[i * D + q] += wt * w * (b[q] - a[q]) * (sa == sb ? 2.0 : 1.0);
          if (sa != sb) (*grads[sb])[j * D + q] += wt * w * (a[q] - b[q]);
        }
        (*tols[sa])[i] += g_tol * (sa == sb ? 2.0 : 1.0);
        if (sa != sb) (*tols[sb])[j] += g_tol;
      }
      ref.value += wt * row_value;
    }
  }
  ref.value_tol *= 8;
  for (auto* t : tols) {
    for (double& v : *t) v *= 8;
  }
  return ref;
}

double compute_eps(at::ScalarType t) { return t == at::kDouble ? 0x1p-52 : 0x1p-23; }
double output_eps(at::ScalarType t) {
  switch (t) {
    case at::kDouble:
      return 0x1p-52;
    case at::kHalf:
      return 0x1p-10;
    case at::kBFloat16:
      return 0x1p-7;
    default:
      return 0x1p-23;
  }
}
double output_tiny(at::ScalarType t) { return t == at::kHalf ? 0x1p-24 : 0.0; }

void expect_grad(const at::Tensor& got_in, const std::vector<double>& want,
                 const std::vector<double>& row_tol, at::ScalarType dtype,
                 const std::string& what) {
  const at::Tensor got = got_in.to(at::kDouble).contiguous();
  const int64_t R = got.size(0), D = got.size(1);
  const double* gp = got.data_ptr<double>();
  int64_t bad = 0;
  double worst = 0.0;
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t q = 0; q < D; ++q) {
      const double w = want[r * D + q];
      const double tol = row_tol[r] + 8 * (output_eps(dtype) * std::abs(w) + output_tiny(dtype));
      const double err = std::abs(gp[r * D + q] - w);
      if (!(err <= tol)) ++bad;
      worst = std::max(worst, err / std::max(tol, 1e-300));
    }
  }
  EXPECT(bad == 0, what, ": ", bad, " gradient elements outside the tolerance; worst error / tol ",
         worst);
}

at::Tensor normal(int64_t rows, int64_t cols, uint64_t seed, double shift = 0.0) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn({rows, cols}, gen, at::TensorOptions().dtype(at::kDouble)) + shift;
}

void check_case(const at::Tensor& x, const at::Tensor& y, const std::vector<double>& bw,
                bool unbiased, const std::string& what) {
  const at::ScalarType dtype = x.scalar_type();
  const bool fp64 = dtype == at::kDouble;
  const at::Tensor value = mmd(x, y, bw, unbiased);
  EXPECT(value.dim() == 0 && value.scalar_type() == (fp64 ? at::kDouble : at::kFloat), what,
         ": value shape ", value.sizes(), " dtype ", value.scalar_type());
  const Reference ref = reference(x, y, bw, unbiased, compute_eps(dtype));
  const double got = value.item<double>();
  EXPECT(std::abs(got - ref.value) <= ref.value_tol, what, ": value ", got, ", reference ",
         ref.value, ", error ", got - ref.value, ", tolerance ", ref.value_tol);
  const auto [gx, gy] =
      mmd_backward(at::ones({}, value.options()), x, y, bw, unbiased, true, true);
  EXPECT(gx.sizes() == x.sizes() && gx.scalar_type() == dtype && gx.is_contiguous(), what,
         ": grad_x ", gx.sizes(), " ", gx.scalar_type());
  EXPECT(gy.sizes() == y.sizes() && gy.scalar_type() == dtype && gy.is_contiguous(), what,
         ": grad_y ", gy.sizes(), " ", gy.scalar_type());
  expect_grad(gx, ref.gx, ref.gx_tol, dtype, what + " grad_x");
  expect_grad(gy, ref.gy, ref.gy_tol, dtype, what + " grad_y");
}

void test_matches_reference() {
  // (N, M, D): odd sizes, and sizes straddling the 64-row and 256-row tiles.
  const std::vector<std::vector<int64_t>> shapes = {
      {1, 1, 1}, {3, 17, 7}, {17, 3, 33}, {65, 130, 5}, {700, 400, 3}};
  for (const auto& shape : shapes) {
    const at::Tensor x64 = normal(shape[0], shape[2], 1 + shape[0]);
    const at::Tensor y64 = normal(shape[1], shape[2], 2 + shape[1], 0.5);
    for (const auto dtype : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
      for (const bool unbiased : {false, true}) {
        if (unbiased && std::min(shape[0], shape[1]) < 2) continue;
        const std::string what = c10::str("shape ", at::IntArrayRef(shape), " dtype ", dtype,
                                          unbiased ? " unbiased" : " biased");
        check_case(x64.to(dtype), y64.to(dtype), kBandwidths, unbiased, what);
      }
    }
  }
}

void test_identical_sets_and_bandwidths() {
  const at::Tensor x = normal(90, 8, 7).to(at::kFloat);
  const double same = mmd(x, x.flip(0), kBandwidths, false).item<double>();
  EXPECT(std::abs(same) < 1e-5, "identical sets must give 0 (biased), got ", same);
  const at::Tensor y = normal(80, 8, 8, 0.5).to(at::kFloat);
  const double differ = mmd(x, y, kBandwidths, false).item<double>();
  EXPECT(differ > 0.01, "different sets must give a positive value, got ", differ);
  check_case(x.to(at::kDouble), normal(40, 8, 9, 0.3), {0.3}, true, "one bandwidth");
  check_case(x.to(at::kDouble), normal(40, 8, 9, 0.3), {7.0, 0.2, 1.3}, false, "three bandwidths");
}

void test_thread_count_and_strides() {
  const at::Tensor x = normal(700, 2 * 6, 21).to(at::kFloat);
  const at::Tensor y = normal(500, 2 * 6, 22, 0.5).to(at::kFloat);
  const at::Tensor xs = x.slice(1, 0, 12, 2);                   // strided columns
  const at::Tensor ys = y.slice(1, 1, 12, 2).t().contiguous().t();  // column-major
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor one = mmd(xs, ys, kBandwidths, false);
  const auto one_grads = mmd_backward(at::ones({}), xs, ys, kBandwidths, false, true, true);
  at::set_num_threads(std::max(2, threads));
  const at::Tensor many = mmd(xs, ys, kBandwidths, false);
  const auto many_grads = mmd_backward(at::ones({}), xs, ys, kBandwidths, false, true, true);
  at::set_num_threads(threads);
  EXPECT(at::equal(one, many), "thread count changed the value: ", one, " vs ", many);
  EXPECT(at::equal(one_grads.first, many_grads.first) &&
             at::equal(one_grads.second, many_grads.second),
         "thread count changed the gradients");
  const at::Tensor dense = mmd(xs.contiguous(), ys.contiguous(), kBandwidths, false);
  EXPECT(at::allclose(many, dense, 1e-5, 1e-6), "strided inputs changed the result: ", many,
         " vs ", dense);
  check_case(xs, ys, kBandwidths, true, "strided");
}

void test_sizes_and_mask() {
  const at::Tensor x = normal(5, 3, 31).to(at::kFloat);
  const at::Tensor y = normal(6, 3, 32).to(at::kFloat);
  check_case(x.slice(0, 0, 1), y, kBandwidths, false, "N = 1");
  const at::Tensor flat = mmd(at::zeros({4, 0}), at::zeros({3, 0}), kBandwidths, true);
  EXPECT(flat.item<float>() == 0.0f, "D = 0 must give 0, got ", flat);
  const auto empty_grads =
      mmd_backward(at::ones({}), at::zeros({4, 0}), at::zeros({3, 0}), kBandwidths, false, true,
                   true);
  EXPECT(empty_grads.first.sizes() == at::IntArrayRef({4, 0}) &&
             empty_grads.second.sizes() == at::IntArrayRef({3, 0}),
         "D = 0 gradients must be [N, 0] and [M, 0], got ", empty_grads.first.sizes(), " and ",
         empty_grads.second.sizes());
  const auto only_x = mmd_backward(at::full({}, 2.0), x, y, kBandwidths, false, true, false);
  const auto both = mmd_backward(at::ones({}), x, y, kBandwidths, false, true, true);
  EXPECT(only_x.second.dim() == 1 && only_x.second.size(0) == 0,
         "an unwanted gradient must be an empty [0] tensor, got ", only_x.second.sizes());
  EXPECT(at::allclose(only_x.first, 2.0 * both.first), "grad must scale the gradient");
  const auto only_y = mmd_backward(at::ones({}), x, y, kBandwidths, false, false, true);
  EXPECT(only_y.first.size(0) == 0 && at::equal(only_y.second, both.second),
         "grad_y alone must equal grad_y of both");
}

void test_bad_inputs() {
  const at::Tensor x = normal(4, 3, 41).to(at::kFloat);
  const at::Tensor y = normal(6, 3, 42).to(at::kFloat);
  const auto& bw = kBandwidths;
  EXPECT_THROWS(mmd(x[0], y, bw, false), "x must have shape [N, D], got [3]", "1-D x");
  EXPECT_THROWS(mmd(x, y.unsqueeze(0), bw, false), "y must have shape [M, D], got [1, 6, 3]",
                "3-D y");
  EXPECT_THROWS(mmd(x, y.slice(1, 0, 2), bw, false),
                "y must have the dimension D of x: x has shape [4, 3], y has shape [6, 2]",
                "mismatched D");
  EXPECT_THROWS(mmd(x, y.to(at::kDouble), bw, false),
                "y must have the dtype of x (Float), got Double", "mismatched dtypes");
  EXPECT_THROWS(mmd(x.to(at::kInt), y.to(at::kInt), bw, false),
                "x must be float32, float64, float16 or bfloat16, got Int", "integer inputs");
  EXPECT_THROWS(mmd(x.slice(0, 0, 0), y, bw, false),
                "x must hold at least 1 sample (shape [N, D] with N >= 1), got [0, 3]", "N = 0");
  EXPECT_THROWS(mmd(x, y.slice(0, 0, 0), bw, false), "y must hold at least 1 sample", "M = 0");
  EXPECT_THROWS(mmd(x.slice(0, 0, 1), y, bw, true),
                "x must hold at least 2 samples for unbiased=True", "unbiased N = 1");
  EXPECT_THROWS(mmd(x, y, {}, false), "bandwidths must hold at least one bandwidth, got []",
                "no bandwidth");
  EXPECT_THROWS(mmd(x, y, {1.0, 0.0}, false),
                "bandwidths must be finite numbers > 0, got 0 at index 1", "bandwidth 0");
  EXPECT_THROWS(mmd(x, y, {-2.0}, false),
                "bandwidths must be finite numbers > 0, got -2 at index 0", "negative bandwidth");
  EXPECT_THROWS(mmd(x, y, {std::numeric_limits<double>::infinity()}, false),
                "bandwidths must be finite numbers > 0, got inf", "infinite bandwidth");
  EXPECT_THROWS(mmd_backward(at::ones({2}), x, y, bw, false, true, true),
                "grad must be a 0-dim tensor", "grad of shape [2]");
  EXPECT_THROWS(mmd_backward(at::ones({}, at::kInt), x, y, bw, false, true, true),
                "grad must be a floating-point tensor", "integer grad");
}

}  // namespace

int main() {
  const std::pair<const char*, void (*)()> tests[] = {
      {"matches_reference", test_matches_reference},
      {"identical_sets_and_bandwidths", test_identical_sets_and_bandwidths},
      {"thread_count_and_strides", test_thread_count_and_strides},
      {"sizes_and_mask", test_sizes_and_mask},
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
