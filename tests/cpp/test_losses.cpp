// C++ tests of the loss ops (adversarial_d_loss, adversarial_g_loss, reconstruction_loss and their
// backwards; csrc/ops.cpp) on CPU, called through the dispatcher. Values are checked against
// float64 recomputations written here with libm; the tests also pin the NaN of empty means, the
// stability at |logit| = 1e4, independence from the thread count and the argument checks.
//
// Self-contained (no gtest): EXPECT counts passes and failures; the last line of output is
// "N passed, M failed"; the exit status is non-zero when anything failed.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <cstdint>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "expect.h"

namespace {

// ---- calling the ops ---------------------------------------------------------------------------

torch::jit::Stack call(const char* name, torch::jit::Stack stack) {
  const auto op = c10::Dispatcher::singleton().findSchemaOrThrow(name, "");
  op.callBoxed(&stack);
  return stack;
}

at::Tensor d_loss(const at::Tensor& real, const at::Tensor& fake) {
  return call("aae_fast::adversarial_d_loss", {real, fake})[0].toTensor();
}

at::Tensor g_loss(const at::Tensor& fake) {
  return call("aae_fast::adversarial_g_loss", {fake})[0].toTensor();
}

std::pair<at::Tensor, at::Tensor> d_loss_backward(const at::Tensor& grad, const at::Tensor& real,
                                                  const at::Tensor& fake) {
  auto out = call("aae_fast::adversarial_d_loss_backward", {grad, real, fake});
  return {out[0].toTensor(), out[1].toTensor()};
}

at::Tensor recon_loss(const at::Tensor& output, const at::Tensor& target, const std::string& kind) {
  return call("aae_fast::reconstruction_loss", {output, target, kind})[0].toTensor();
}

std::pair<at::Tensor, at::Tensor> recon_backward(const at::Tensor& grad, const at::Tensor& output,
                                                 const at::Tensor& target, const std::string& kind,
                                                 bool want_output, bool want_target) {
  auto out = call("aae_fast::reconstruction_loss_backward",
                  {grad, output, target, kind, c10::List<bool>({want_output, want_target})});
  return {out[0].toTensor(), out[1].toTensor()};
}

// ---- float64 references ------------------------------------------------------------------------

double softplus(double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x))); }

// Deterministic values in [lo, hi), independent of torch's generator.
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

double mean_softplus(const at::Tensor& x, double sign) {
  const at::Tensor c = x.to(at::kDouble).contiguous();
  double sum = 0.0;
  for (int64_t i = 0; i < c.numel(); ++i) sum += softplus(sign * c.data_ptr<double>()[i]);
  return sum / static_cast<double>(c.numel());
}

double rel_err(double got, double want) { return std::fabs(got - want) / std::max(std::fabs(want), 1e-300); }

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// ---- tests -------------------------------------------------------------------------------------

void test_adversarial_values() {
  Lcg g{11};
  for (const int64_t n : {1, 3, 17, 100, 1000, 100003}) {
    const at::Tensor real = filled({n, 1}, g, -8, 8), fake = filled({2 * n + 1}, g, -8, 8);
    const double want = mean_softplus(real, -1) + mean_softplus(fake, 1);
    const at::Tensor loss32 = d_loss(real.to(at::kFloat), fake.to(at::kFloat));
    EXPECT(loss32.dim() == 0 && loss32.scalar_type() == at::kFloat, "d loss must be 0-dim float32");
    EXPECT(rel_err(loss32.item<double>(), want) < 1e-6, "d loss float32, n = ", n, ": ",
           loss32.item<double>(), " vs ", want);
    const at::Tensor loss64 = d_loss(real, fake);
    EXPECT(loss64.scalar_type() == at::kDouble && rel_err(loss64.item<double>(), want) < 1e-13,
           "d loss float64, n = ", n);
    const at::Tensor loss16 = d_loss(real.to(at::kHalf), fake.to(at::kHalf));
    const double want16 = mean_softplus(real.to(at::kHalf), -1) + mean_softplus(fake.to(at::kHalf), 1);
    EXPECT(loss16.scalar_type() == at::kFloat && rel_err(loss16.item<double>(), want16) < 1e-6,
           "d loss float16 inputs, n = ", n);
    const at::Tensor gl = g_loss(fake.to(at::kBFloat16));
    EXPECT(rel_err(gl.item<double>(), mean_softplus(fake.to(at::kBFloat16), -1)) < 1e-6,
           "g loss bfloat16 inputs, n = ", n);

    const at::Tensor grad = at::full({}, 0.5, at::kFloat);
    const auto [grad_r, grad_f] = d_loss_backward(grad, real.to(at::kFloat), fake.to(at::kFloat));
    const at::Tensor want_r = -0.5 * at::sigmoid(-real) / n;
    const at::Tensor want_f = 0.5 * at::sigmoid(fake) / (2 * n + 1);
    EXPECT(grad_r.sizes() == real.sizes() && grad_r.scalar_type() == at::kFloat, "grad_real shape");
    EXPECT(max_abs_diff(grad_r, want_r) <= 1e-6 * want_r.abs().max().item<double>(), "grad_real n = ", n);
    EXPECT(max_abs_diff(grad_f, want_f) <= 1e-6 * want_f.abs().max().item<double>(), "grad_fake n = ", n);
  }
}

void test_adversarial_edges() {
  const at::Tensor huge = at::tensor({1e4, -1e4, 1e4, -88.0, 88.0}, at::kFloat);
  const at::Tensor loss = d_loss(huge, huge);
  EXPECT(std::isfinite(loss.item<double>()), "d loss at |x| = 1e4 must be finite");
  EXPECT(rel_err(loss.item<double>(), mean_softplus(huge, -1) + mean_softplus(huge, 1)) < 1e-6,
         "d loss at |x| = 1e4");
  const auto [gr, gf] = d_loss_backward(at::full({}, 1.0, at::kFloat), huge, huge);
  EXPECT(at::isfinite(gr).all().item<bool>() && at::isfinite(gf).all().item<bool>(),
         "gradients at |x| = 1e4 must be finite");
  EXPECT(std::isnan(g_loss(at::empty({0}, at::kFloat)).item<double>()), "mean over 0 logits is NaN");

  EXPECT_THROWS(d_loss(at::zeros({3}, at::kFloat), at::zeros({3}, at::kDouble)),
                "fake_logits must have the dtype of real_logits", "d loss dtype mismatch");
  EXPECT_THROWS(g_loss(at::zeros({3}, at::kInt)), "fake_logits must be a float32", "g loss int");
  EXPECT_THROWS(d_loss_backward(at::ones({2}, at::kFloat), at::zeros({2}), at::zeros({2})),
                "grad must be a 0-dim tensor", "backward grad shape");
}

void test_reconstruction() {
  Lcg g{23};
  for (const auto& [rows, features] : std::vector<std::pair<int64_t, int64_t>>{
           {1, 1}, {3, 7}, {17, 784}, {100, 1000}}) {
    const at::Tensor output = filled({rows, features}, g, -6, 6);
    const at::Tensor target = filled({rows, features}, g, 0, 1);
    const double* o = output.data_ptr<double>();
    const double* t = target.data_ptr<double>();
    double bce = 0.0, mse = 0.0;
    for (int64_t i = 0; i < output.numel(); ++i) {
      bce += softplus(o[i]) - o[i] * t[i];
      mse += (o[i] - t[i]) * (o[i] - t[i]);
    }
    bce /= static_cast<double>(rows);
    mse /= static_cast<double>(rows);
    const at::Tensor o32 = output.to(at::kFloat), t32 = target.to(at::kFloat);
    EXPECT(rel_err(recon_loss(o32, t32, "bce").item<double>(), bce) < 1e-5, "bce ", rows, "x", features);
    EXPECT(rel_err(recon_loss(o32, t32, "mse").item<double>(), mse) < 1e-5, "mse ", rows, "x", features);
    EXPECT(rel_err(recon_loss(output, target, "bce").item<double>(), bce) < 1e-12, "bce float64");

    const at::Tensor grad = at::full({}, 2.0, at::kFloat);
    const auto [go, gt] = recon_backward(grad, o32, t32, "bce", true, true);
    const at::Tensor want_o = 2.0 * (at::sigmoid(output) - target) / rows;
    const at::Tensor want_t = -2.0 * output / rows;
    EXPECT(max_abs_diff(go, want_o) <= 1e-6 * want_o.abs().max().item<double>(), "bce grad_output");
    EXPECT(max_abs_diff(gt, want_t) <= 1e-6 * want_t.abs().max().item<double>(), "bce grad_target");
    const auto [go_mse, gt_none] = recon_backward(grad, o32, t32, "mse", true, false);
    const at::Tensor want_mse = 4.0 * (output - target) / rows;
    EXPECT(max_abs_diff(go_mse, want_mse) <= 1e-6 * want_mse.abs().max().item<double>(), "mse grad_output");
    EXPECT(gt_none.numel() == 0, "an unwanted gradient is empty");
  }
  EXPECT(std::isnan(recon_loss(at::empty({0, 4}), at::empty({0, 4}), "bce").item<double>()),
         "zero rows give NaN");
  EXPECT(recon_loss(at::empty({3, 0}), at::empty({3, 0}), "mse").item<double>() == 0.0,
         "zero features give 0");
  EXPECT_THROWS(recon_loss(at::zeros({2, 3}), at::zeros({2, 3}), "l1"), "kind must be 'bce' or 'mse'",
                "unknown kind");
  EXPECT_THROWS(recon_loss(at::zeros({2, 3}), at::zeros({3, 2}), "bce"), "target must have the shape",
                "shape mismatch");
  EXPECT_THROWS(recon_loss(at::zeros({6}), at::zeros({6}), "bce"), "output must have shape [B, F]",
                "1-D output");
}

void test_thread_count_independence() {
  Lcg g{37};
  const at::Tensor real = filled({250001}, g, -5, 5).to(at::kFloat);
  const at::Tensor fake = filled({99999}, g, -5, 5).to(at::kFloat);
  const at::Tensor output = filled({300, 784}, g, -5, 5).to(at::kFloat);
  const at::Tensor target = filled({300, 784}, g, 0, 1).to(at::kFloat);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor d1 = d_loss(real, fake), r1 = recon_loss(output, target, "bce");
  at::set_num_threads(std::max(2, threads));
  const at::Tensor d2 = d_loss(real, fake), r2 = recon_loss(output, target, "bce");
  at::set_num_threads(threads);
  EXPECT(at::equal(d1, d2), "d loss must not depend on the thread count");
  EXPECT(at::equal(r1, r2), "reconstruction loss must not depend on the thread count");
}

}  // namespace

int main() {
  const std::pair<const char*, void (*)()> tests[] = {
      {"adversarial_values", test_adversarial_values},
      {"adversarial_edges", test_adversarial_edges},
      {"reconstruction", test_reconstruction},
      {"thread_count_independence", test_thread_count_independence},
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
