// Every aae_fast operator schema, defined once. Implementations register per device key:
// csrc/cpu/*.cpp (CPU), csrc/cuda/*_cuda.cpp (CUDA, built only with a CUDA torch), and, for CUDA
// without the CUDA extension, the Triton launchers in kernels/ (registered from Python).
// aae_fast/_schemas.py mirrors these strings for the pure-PyTorch fallback; a test keeps the two
// equal.
#include <torch/library.h>

TORCH_LIBRARY(aae_fast, m) {
  // Prior sampling (DESIGN §5). `rng_state` is an int64 tensor [seed, offset] on the output's
  // device; the op reads it on the device and advances offset by n, so CUDA-graph replays draw
  // fresh numbers. Parameters are float32 or float64 (the compute precision); `dtype` is the
  // output's. The stream layout is csrc/include/aae_fast/philox.h.
  //
  // z_i = loc[c_i] + scale[c_i] * eps_i with c_i = labels[i] or drawn from cum_weights [K];
  // scale is [K, D] (diagonal) or [K, D, D] (lower-triangular factor of the covariance; entries
  // above the diagonal are ignored).
  //
  // Labels outside [0, K): the CPU kernels raise; the CUDA and Triton kernels cannot check without
  // a host sync, so they write NaN rows instead (aae_fast.priors checks CPU labels up front).
  // Angles are computed as (2 pi turns) * sqrt(t) in the compute precision (2 pi as a double for
  // float64 compute).
  m.def(
      "sample_gaussian_mixture(Tensor(a!) rng_state, SymInt n, Tensor loc, Tensor scale, "
      "Tensor cum_weights, Tensor? labels, ScalarType dtype) -> Tensor");
  // Swiss roll in 2-D split into K label segments: segment s_i = labels[i] or drawn from
  // cum_weights; t = (s_i + u_i) / K; z_i = radius * sqrt(t) * (cos a, sin a), a = 2 pi turns sqrt(t).
  m.def(
      "sample_swiss_roll(Tensor(a!) rng_state, SymInt n, Tensor cum_weights, Tensor? labels, "
      "float radius, float turns, ScalarType dtype) -> Tensor");
  // One-hot rows [n, K]: class c_i = labels[i] or drawn from cum_weights.
  m.def(
      "sample_categorical(Tensor(a!) rng_state, SymInt n, Tensor cum_weights, Tensor? labels, "
      "ScalarType dtype) -> Tensor");

  // ---- Losses (numerically stable for logits of any magnitude: softplus(x) = max(x, 0) +
  // log1p(exp(-|x|)), no NaN or inf at |x| = 1e4). Inputs float32, float64, float16 or bfloat16;
  // reductions accumulate in float32 or wider whatever the input dtype. Each loss is a 0-dim tensor:
  // float32, or float64 for float64 inputs. Gradients have the inputs' dtype and shape
  // (contiguous). A mean over zero elements is NaN, like torch.mean. Every backend reduces in an
  // order fixed by the sizes alone (no float atomics; on CPU independent of the thread count), so
  // results are reproducible. The incoming grad is read on the device (no host sync on CUDA).
  //
  // Logits may have any shape; the mean runs over all elements. real and fake may differ in shape
  // but share dtype and device.
  //   adversarial_d_loss = mean(softplus(-real)) + mean(softplus(fake))
  //                      = bce_with_logits(real, 1).mean() + bce_with_logits(fake, 0).mean()
  m.def("adversarial_d_loss(Tensor real_logits, Tensor fake_logits) -> Tensor");
  // grad_real = -grad sigmoid(-real) / numel(real), grad_fake = grad sigmoid(fake) / numel(fake);
  // an input passed as None (its gradient not needed) gives an empty [0] tensor in its place.
  m.def(
      "adversarial_d_loss_backward(Tensor grad, Tensor? real_logits, Tensor? fake_logits) -> "
      "(Tensor, Tensor)");
  //   adversarial_g_loss = mean(softplus(-fake)) = bce_with_logits(fake, 1).mean()
  m.def("adversarial_g_loss(Tensor fake_logits) -> Tensor");
  // grad_fake = -grad sigmoid(-fake) / numel(fake)
  m.def("adversarial_g_loss_backward(Tensor grad, Tensor fake_logits) -> Tensor");
  // output, target: [B, F] (2-D only), one dtype; kind "bce" (output holds logits) or "mse":
  //   loss = (1 / B) sum_i sum_j l(o_ij, t_ij),  bce: l = softplus(o) - o t,  mse: l = (o - t)^2
  // B == 0 gives NaN (mean over zero rows), F == 0 gives 0. `kind` is a str (a graph constant for
  // torch.compile), checked by every backend.
  m.def("reconstruction_loss(Tensor output, Tensor target, str kind) -> Tensor");
  // (grad_output, grad_target) = grad / B * (dl/do, dl/dt); output_mask = (want grad_output,
  // want grad_target); an unwanted gradient is an empty [0] tensor.
  m.def(
      "reconstruction_loss_backward(Tensor grad, Tensor output, Tensor target, str kind, "
      "bool[2] output_mask) -> (Tensor, Tensor)");
  // Parzen-window log-likelihood (issue 5): out[i] = log((1/M) sum_j N(x_i; samples_j, sigma^2 I)),
  // normalising constant included. x [N, D], samples [M, D] (M >= 1) share one dtype (float32,
  // float64, float16, bfloat16) and device; out is [N], float64 for float64 inputs, else float32
  // (the compute precision). sigma: finite, > 0. Tiled (GEMM tiles of x . s and an online
  // log-sum-exp), never holding the N x M matrix. Not differentiable: no autograd kernel.
  m.def("parzen_log_likelihood(Tensor x, Tensor samples, float sigma) -> Tensor");
  // Private: the same result from ATen ops on any device, in row_tile x sample_tile GEMM tiles
  // (csrc/aten/parzen_gemm_tiles.cpp; what the CUDA kernel hands large D to). For tests and
  // benchmarks.
  m.def(
      "_parzen_log_likelihood_gemm_tiles(Tensor x, Tensor samples, float sigma, int row_tile=2048, "
      "int sample_tile=4096) -> Tensor");
  // Squared maximum mean discrepancy (issue 11) between x [N, D] and y [M, D] (one dtype: float32,
  // float64, float16, bfloat16; one device) under the kernel k(a, b) = sum_s exp(-||a - b||^2 h_s),
  // h_s = 1 / (2 bandwidths[s]^2) (at least one bandwidth, each finite and > 0):
  //   mmd = wxx sum_{i,i'} k(x_i, x_i') + wyy sum_{j,j'} k(y_j, y_j')
  //         - 2/(N M) sum_{i,j} k(x_i, y_j)
  // biased (V-statistic): wxx = 1/N^2, wyy = 1/M^2, all pairs (N, M >= 1); unbiased: wxx =
  // 1/(N(N-1)), wyy = 1/(M(M-1)), the diagonal pairs i = i' and j = j' left out (N, M >= 2). A
  // 0-dim tensor, float64 for float64 inputs, else float32 (the compute precision). Tiled (GEMM
  // tiles of the cross terms, squared distances max(|a|^2 + |b|^2 - 2 a.b, 0); the diagonal pairs
  // use d2 = 0 exactly), never holding an N x N or N x M matrix. Reduction order fixed by the sizes
  // (deterministic; on CPU independent of the thread count).
  m.def("mmd(Tensor x, Tensor y, float[] bandwidths, bool unbiased) -> Tensor");
  // output_mask = (want grad_x, want grad_y); an unwanted gradient is an empty [0] tensor; grad_x
  // [N, D] and grad_y [M, D] have the inputs' dtype (contiguous). With w(a, b) = sum_s 2 h_s
  // exp(-||a - b||^2 h_s):
  //   grad_x_i = grad (2 wxx sum_{i'} w(x_i, x_i') (x_i' - x_i)
  //                    - 2/(N M) sum_j w(x_i, y_j) (y_j - x_i)),  likewise grad_y_j,
  // computed as (W z)_i - x_i (W 1)_i with GEMM tiles of W z; grad is read on the device.
  m.def(
      "mmd_backward(Tensor grad, Tensor x, Tensor y, float[] bandwidths, bool unbiased, "
      "bool[2] output_mask) -> (Tensor, Tensor)");
  // Reparameterisation trick (VAE-style Gaussian encoder): mu, logvar [B, D] share one shape, dtype
  // (float32, float64, float16, bfloat16: float32 compute, float64 for float64) and device;
  //   z = mu + exp(logvar / 2) * eps,  eps[i, :] = the Box-Muller normals of row counter offset + i
  // of the stream in csrc/include/aae_fast/philox.h (the eps of sample_gaussian_mixture with the same
  // state). The op is a pure function of rng_state = [seed, offset] (it reads, never writes it), so
  // that it can carry an autograd formula (register_autograd accepts functional schemas only); it
  // also returns `state`, a copy of rng_state, which autograd saves so that the backward regenerates
  // eps (an op output, so torch.compile cannot swap it for the generator's tensor that the caller
  // then advances). aae_fast.ops.gaussian_reparameterize advances the offset by B on the device.
  m.def(
      "gaussian_reparameterize(Tensor rng_state, Tensor mu, Tensor logvar) -> (Tensor z, Tensor "
      "state)");
  // grad_logvar = grad * 0.5 * exp(logvar / 2) * eps, eps regenerated from rng_state (not stored);
  // grad has the shape and dtype of logvar. (grad_mu = grad needs no kernel.)
  m.def(
      "gaussian_reparameterize_backward(Tensor grad, Tensor rng_state, Tensor logvar) -> Tensor");

  // ---- Layers. linear_act (issue: fused linear + activation): x [B, K], weight [N, K], bias [N]
  // or None, one dtype (float32, float64, float16, bfloat16) and device:
  //   y = act(x @ weight^T + bias),  act in {"identity", "relu", "leaky_relu", "sigmoid", "tanh"}
  // y is [B, N] (contiguous) in the inputs' dtype; 16-bit inputs accumulate in float32.
  // leaky_relu(z) = z for z > 0, negative_slope * z otherwise; negative_slope must be >= 0 (the
  // backward reads act' from the sign of the saved output).
  m.def(
      "linear_act(Tensor x, Tensor weight, Tensor? bias, str activation, float negative_slope) -> "
      "Tensor");
  // gz = grad * act'(y) with act' written through the output y; output_mask = (want grad_x, want
  // grad_weight, want grad_bias): grad_x = gz @ weight [B, K] (needs weight), grad_weight =
  // gz^T @ x [N, K] (needs x), grad_bias = gz.sum(0) [N]. An unwanted gradient is an empty [0]
  // tensor. The bias-gradient sums run in an order fixed by the sizes (deterministic).
  m.def(
      "linear_act_backward(Tensor grad, Tensor y, Tensor? x, Tensor? weight, str activation, "
      "float negative_slope, bool[3] output_mask) -> (Tensor, Tensor, Tensor)");
}
