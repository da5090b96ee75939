// C++ tests of the C++ Autograd kernels (csrc/autograd/) of linear_act, adversarial_d_loss,
// adversarial_g_loss and reconstruction_loss, without Python: the ops called through the
// dispatcher on tensors that require grad record a torch::autograd::Function node whose gradients
// (torch::autograd::grad) match those of the same formula written with differentiable ATen ops;
// only the inputs that require grad get one; under NoGradGuard nothing is recorded.
//
// Self-contained (no gtest): the last line of output is "N passed, M failed"; the exit status is
// non-zero when anything failed.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>
#include <ATen/core/grad_mode.h>

#include <array>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "expect.h"

namespace {

template <typename Sig>
c10::TypedOperatorHandle<Sig> handle(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Sig>();
}

at::Tensor linear_act(const at::Tensor& x, const at::Tensor& w, const std::optional<at::Tensor>& b,
                      const std::string& act, double slope) {
  static const auto op =
      handle<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                        c10::string_view, double)>("aae_fast::linear_act");
  return op.call(x, w, b, act, slope);
}

at::Tensor d_loss(const at::Tensor& real, const at::Tensor& fake) {
  static const auto op =
      handle<at::Tensor(const at::Tensor&, const at::Tensor&)>("aae_fast::adversarial_d_loss");
  return op.call(real, fake);
}

at::Tensor g_loss(const at::Tensor& fake) {
  static const auto op = handle<at::Tensor(const at::Tensor&)>("aae_fast::adversarial_g_loss");
  return op.call(fake);
}

at::Tensor recon_loss(const at::Tensor& output, const at::Tensor& target, const std::string& kind) {
  static const auto op =
      handle<at::Tensor(const at::Tensor&, const at::Tensor&, c10::string_view)>(
          "aae_fast::reconstruction_loss");
  return op.call(output, target, kind);
}

at::Tensor leaf(at::Tensor t, bool requires_grad) {
  return t.detach().clone().set_requires_grad(requires_grad);
}

bool close(const at::Tensor& a, const at::Tensor& b) {
  return a.sizes() == b.sizes() && at::allclose(a, b, 1e-10, 1e-12);
}

// Gradients of `out` (a scalar, or summed against `g`) with respect to `inputs`.
std::vector<at::Tensor> grads(const at::Tensor& out, const std::vector<at::Tensor>& inputs,
                              const at::Tensor& g) {
  return torch::autograd::grad({out}, inputs, {g});
}

std::string node_name(const at::Tensor& t) {
  return t.grad_fn() ? t.grad_fn()->name() : std::string("<none>");
}

void test_linear_act() {
  at::manual_seed(0);
  const at::Tensor x0 = at::randn({7, 5}, at::kDouble), w0 = at::randn({3, 5}, at::kDouble);
  const at::Tensor b0 = at::randn({3}, at::kDouble), g = at::randn({7, 3}, at::kDouble);
  for (const std::string act : {"identity", "relu", "leaky_relu", "sigmoid", "tanh"}) {
    for (int bits = 1; bits < 8; ++bits) {
      for (bool with_bias : {true, false}) {
        const bool rx = bits & 1, rw = bits & 2, rb = with_bias && (bits & 4);
        if (!rx && !rw && !rb) continue;
        at::Tensor x = leaf(x0, rx), w = leaf(w0, rw), b = leaf(b0, rb);
        std::optional<at::Tensor> bias = with_bias ? std::optional<at::Tensor>(b) : std::nullopt;
        at::Tensor y = linear_act(x, w, bias, act, 0.1);
        EXPECT(y.requires_grad(), act, " bits ", bits);
        EXPECT(node_name(y).find("LinearActFunction") != std::string::npos, node_name(y));
        at::Tensor z = at::linear(x, w, bias);
        at::Tensor ref = act == "relu"         ? at::relu(z)
                         : act == "leaky_relu" ? at::leaky_relu(z, 0.1)
                         : act == "sigmoid"    ? at::sigmoid(z)
                         : act == "tanh"       ? at::tanh(z)
                                               : z;
        EXPECT(close(y.detach(), ref.detach()), act);
        std::vector<at::Tensor> wanted;
        if (rx) wanted.push_back(x);
        if (rw) wanted.push_back(w);
        if (rb) wanted.push_back(b);
        auto got = grads(y, wanted, g), exp = grads(ref, wanted, g);
        for (size_t i = 0; i < got.size(); ++i) {
          EXPECT(close(got[i], exp[i]), act, " bits ", bits, " bias ", with_bias, " grad ", i);
        }
      }
    }
  }
  // No input requires grad, or grad mode off: no node.
  at::Tensor y = linear_act(x0, w0, b0, "tanh", 0.01);
  EXPECT(!y.requires_grad() && !y.grad_fn(), "inputs without grad");
  {
    at::NoGradGuard no_grad;
    at::Tensor x = leaf(x0, true), w = leaf(w0, true);
    at::Tensor y2 = linear_act(x, w, b0, "tanh", 0.01);
    EXPECT(!y2.requires_grad() && !y2.grad_fn(), "NoGradGuard");
    EXPECT(close(y2, y), "NoGradGuard value");
  }
}

void test_losses() {
  at::manual_seed(1);
  const at::Tensor real0 = at::randn({6, 1}, at::kDouble) * 3, fake0 = at::randn({9}, at::kDouble) * 3;
  const at::Tensor one = at::ones({}, at::kDouble);
  for (int bits = 1; bits < 4; ++bits) {
    at::Tensor real = leaf(real0, bits & 1), fake = leaf(fake0, bits & 2);
    at::Tensor loss = d_loss(real, fake);
    EXPECT(node_name(loss).find("AdversarialDLossFunction") != std::string::npos, node_name(loss));
    at::Tensor ref = at::softplus(-real).mean() + at::softplus(fake).mean();
    EXPECT(close(loss.detach(), ref.detach()), "d_loss value");
    std::vector<at::Tensor> wanted;
    if (bits & 1) wanted.push_back(real);
    if (bits & 2) wanted.push_back(fake);
    auto got = grads(loss, wanted, one), exp = grads(ref, wanted, one);
    for (size_t i = 0; i < got.size(); ++i) EXPECT(close(got[i], exp[i]), "d_loss bits ", bits, " grad ", i);
  }
  {
    at::Tensor fake = leaf(fake0, true);
    at::Tensor loss = g_loss(fake);
    EXPECT(node_name(loss).find("AdversarialGLossFunction") != std::string::npos, node_name(loss));
    at::Tensor ref = at::softplus(-fake).mean();
    EXPECT(close(grads(loss, {fake}, one)[0], grads(ref, {fake}, one)[0]), "g_loss grad");
  }
  const at::Tensor out0 = at::randn({5, 4}, at::kDouble), tgt0 = at::rand({5, 4}, at::kDouble);
  for (const std::string kind : {"bce", "mse"}) {
    for (int bits = 1; bits < 4; ++bits) {
      at::Tensor out = leaf(out0, bits & 1), tgt = leaf(tgt0, bits & 2);
      at::Tensor loss = recon_loss(out, tgt, kind);
      EXPECT(node_name(loss).find("ReconstructionLossFunction") != std::string::npos, node_name(loss));
      at::Tensor per = kind == "bce" ? at::softplus(out) - out * tgt : (out - tgt).square();
      at::Tensor ref = per.sum(1).mean();
      EXPECT(close(loss.detach(), ref.detach()), kind, " value");
      std::vector<at::Tensor> wanted;
      if (bits & 1) wanted.push_back(out);
      if (bits & 2) wanted.push_back(tgt);
      auto got = grads(loss, wanted, one), exp = grads(ref, wanted, one);
      for (size_t i = 0; i < got.size(); ++i) EXPECT(close(got[i], exp[i]), kind, " bits ", bits, " grad ", i);
    }
  }
  at::NoGradGuard no_grad;
  at::Tensor real = leaf(real0, true), fake = leaf(fake0, true), out = leaf(out0, true);
  EXPECT(!d_loss(real, fake).requires_grad() && !g_loss(fake).requires_grad() &&
             !recon_loss(out, tgt0, "bce").requires_grad(),
         "NoGradGuard");
}

}  // namespace

int main() {
  test_linear_act();
  test_losses();
  return report();
}
