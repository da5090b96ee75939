// C++ tests of the prior-sampling ops (csrc/ops.cpp) on CPU, called through the dispatcher. Every
// output element is checked against a float64 recomputation of the random stream straight from
// philox.h, so the test pins the stream layout (version 1) that all backends share.
//
// Self-contained (no gtest): EXPECT counts passes and failures; the last line of output is
// "N passed, M failed"; the exit status is non-zero when anything failed.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "aae_fast/philox.h"

#include "expect.h"

namespace {

using aae_fast::philox::Words;
using OptTensor = std::optional<at::Tensor>;

// ---- calling the ops ---------------------------------------------------------------------------

at::Tensor call_boxed(const char* name, torch::jit::Stack stack) {
  const auto op = c10::Dispatcher::singleton().findSchemaOrThrow(name, "");
  op.callBoxed(&stack);
  TORCH_INTERNAL_ASSERT(stack.size() == 1 && stack[0].isTensor());
  return stack[0].toTensor();
}

c10::IValue opt(const OptTensor& t) { return t.has_value() ? c10::IValue(*t) : c10::IValue(); }

at::Tensor gaussian_mixture(at::Tensor& state, int64_t n, const at::Tensor& loc,
                            const at::Tensor& scale, const at::Tensor& cum, const OptTensor& labels,
                            at::ScalarType dtype) {
  return call_boxed("aae_fast::sample_gaussian_mixture",
                    {state, n, loc, scale, cum, opt(labels), dtype});
}

at::Tensor swiss_roll(at::Tensor& state, int64_t n, const at::Tensor& cum, const OptTensor& labels,
                      double radius, double turns, at::ScalarType dtype) {
  return call_boxed("aae_fast::sample_swiss_roll",
                    {state, n, cum, opt(labels), radius, turns, dtype});
}

at::Tensor categorical(at::Tensor& state, int64_t n, const at::Tensor& cum, const OptTensor& labels,
                       at::ScalarType dtype) {
  return call_boxed("aae_fast::sample_categorical", {state, n, cum, opt(labels), dtype});
}

// ---- inputs ------------------------------------------------------------------------------------

at::Tensor make_state(uint64_t seed, uint64_t offset) {
  at::Tensor s = at::empty({2}, at::kLong);
  s.data_ptr<int64_t>()[0] = static_cast<int64_t>(seed);
  s.data_ptr<int64_t>()[1] = static_cast<int64_t>(offset);
  return s;
}

uint64_t state_offset(const at::Tensor& s) { return static_cast<uint64_t>(s[1].item<int64_t>()); }

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

// Cumulative weights of uneven positive weights; cum[K-1] == 1.
at::Tensor make_cum(int64_t K, Lcg& g) {
  at::Tensor w = filled({K}, g, 0.2, 1.0);
  return at::cumsum(w / w.sum(), 0);
}

// Lower-triangular factors with the upper triangle NaN: reading it would poison the output.
at::Tensor make_tril(int64_t K, int64_t D, Lcg& g) {
  at::Tensor L = filled({K, D, D}, g, -1.0, 1.0);
  double* p = L.data_ptr<double>();
  for (int64_t c = 0; c < K; ++c)
    for (int64_t j = 0; j < D; ++j)
      for (int64_t k = 0; k < D; ++k) {
        double& v = p[(c * D + j) * D + k];
        if (k > j) v = std::nan("");
        if (k == j) v = 0.5 + std::fabs(v);
      }
  return L;
}

at::Tensor make_labels(int64_t n, int64_t K, Lcg& g) {
  at::Tensor l = at::empty({n}, at::kLong);
  for (int64_t i = 0; i < n; ++i) l.data_ptr<int64_t>()[i] = static_cast<int64_t>(g.next(0, K));
  return l;
}

// ---- the float64 reference of the stream -------------------------------------------------------

constexpr double kTwoPi = 6.283185307179586476925286766559;

struct RefRow {
  uint64_t seed;
  uint64_t row;  // offset + i (wraps)
  Words block(uint32_t k) const { return aae_fast::philox::row_block(seed, row, k); }
};

// The category of a row: labels[i] if given, else the draw from cum (compared in cum's dtype; the
// uniform is exact in float32, so the comparison is the same in float64).
int64_t ref_category(const RefRow& r, int64_t i, const OptTensor& labels,
                     const std::vector<double>& cum) {
  if (labels.has_value()) return labels->data_ptr<int64_t>()[i];
  const double u = aae_fast::philox::uniform01(r.block(0).w[0]);
  return aae_fast::philox::pick_category(u, cum.data(), static_cast<int64_t>(cum.size()));
}

std::vector<double> ref_normals(const RefRow& r, int64_t D) {
  std::vector<double> eps(static_cast<size_t>(D));
  for (int64_t p = 0; 2 * p < D; ++p) {
    const int64_t word = 2 + 2 * p;
    const Words w = r.block(static_cast<uint32_t>(word / 4));
    const double u1 = aae_fast::philox::uniform01c(w.w[word % 4]);
    const double u2 = aae_fast::philox::uniform01(w.w[word % 4 + 1]);
    const double rad = std::sqrt(-2.0 * std::log(u1));
    eps[2 * p] = rad * std::cos(kTwoPi * u2);
    if (2 * p + 1 < D) eps[2 * p + 1] = rad * std::sin(kTwoPi * u2);
  }
  return eps;
}

std::vector<double> to_vector(const at::Tensor& t) {
  const at::Tensor d = t.to(at::kDouble).contiguous();
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

// Tolerances per compute dtype (params) and output dtype.
double tolerance(at::ScalarType param, at::ScalarType out) {
  double tol = param == at::kDouble ? 1e-12 : 5e-5;
  if (out == at::kFloat) tol = std::max(tol, 5e-6);
  if (out == at::kHalf) tol = 2e-3;
  if (out == at::kBFloat16) tol = 1.6e-2;
  return tol;
}

std::string full(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

// First index where |got - want| > tol * (1 + |want|), or -1.
int64_t first_mismatch(const std::vector<double>& got, const std::vector<double>& want,
                       double tol) {
  if (got.size() != want.size()) return 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!(std::fabs(got[i] - want[i]) <= tol * (1.0 + std::fabs(want[i])))) {
      return static_cast<int64_t>(i);
    }
  }
  return -1;
}

#define EXPECT_CLOSE(got_tensor, want_vec, tol, what)                                          \
  do {                                                                                        \
    const std::vector<double> got_ = to_vector(got_tensor);                                   \
    const std::vector<double>& want_ = (want_vec);                                            \
    const int64_t bad_ = first_mismatch(got_, want_, tol);                                    \
    EXPECT(bad_ < 0, what, ": first mismatch at flat index ", bad_, " (sizes ", got_.size(),   \
          " vs ", want_.size(), "): got ",                                                    \
          full(bad_ >= 0 && static_cast<size_t>(bad_) < got_.size() ? got_[bad_] : NAN),      \
          ", want ",                                                                          \
          full(bad_ >= 0 && static_cast<size_t>(bad_) < want_.size() ? want_[bad_] : NAN),    \
          ", tol ", tol);                                                                     \
  } while (0)

std::vector<double> ref_mixture(uint64_t seed, uint64_t offset, int64_t n, const at::Tensor& loc,
                                const at::Tensor& scale, const at::Tensor& cum,
                                const OptTensor& labels) {
  const int64_t D = loc.size(1);
  const bool tril = scale.dim() == 3;
  const std::vector<double> cum_v = to_vector(cum), loc_v = to_vector(loc),
                            scale_v = to_vector(scale);
  std::vector<double> out;
  for (int64_t i = 0; i < n; ++i) {
    const RefRow r{seed, offset + static_cast<uint64_t>(i)};
    const int64_t c = ref_category(r, i, labels, cum_v);
    const std::vector<double> eps = ref_normals(r, D);
    for (int64_t j = 0; j < D; ++j) {
      double z = loc_v[c * D + j];
      if (tril) {
        for (int64_t k = 0; k <= j; ++k) z += scale_v[(c * D + j) * D + k] * eps[k];
      } else {
        z += scale_v[c * D + j] * eps[j];
      }
      out.push_back(z);
    }
  }
  return out;
}

std::vector<double> ref_swiss_roll(uint64_t seed, uint64_t offset, int64_t n,
                                   const at::Tensor& cum, const OptTensor& labels, double radius,
                                   double turns) {
  const std::vector<double> cum_v = to_vector(cum);
  const double K = static_cast<double>(cum_v.size());
  std::vector<double> out;
  for (int64_t i = 0; i < n; ++i) {
    const RefRow r{seed, offset + static_cast<uint64_t>(i)};
    const int64_t c = ref_category(r, i, labels, cum_v);
    const double t = (static_cast<double>(c) + aae_fast::philox::uniform01(r.block(0).w[1])) / K;
    const double rho = radius * std::sqrt(t);
    const double a = kTwoPi * turns * std::sqrt(t);
    out.push_back(rho * std::cos(a));
    out.push_back(rho * std::sin(a));
  }
  return out;
}

std::vector<double> ref_categorical(uint64_t seed, uint64_t offset, int64_t n,
                                    const at::Tensor& cum, const OptTensor& labels) {
  const std::vector<double> cum_v = to_vector(cum);
  const int64_t K = static_cast<int64_t>(cum_v.size());
  std::vector<double> out;
  for (int64_t i = 0; i < n; ++i) {
    const RefRow r{seed, offset + static_cast<uint64_t>(i)};
    const int64_t c = ref_category(r, i, labels, cum_v);
    for (int64_t k = 0; k < K; ++k) out.push_back(k == c ? 1.0 : 0.0);
  }
  return out;
}

// ---- tests -------------------------------------------------------------------------------------

// Seeds and offsets that exercise both key words and the carry into the counter's high word
// (offset + i crosses 2^32, and in the last case wraps past 2^64).
struct StreamCase {
  uint64_t seed;
  uint64_t offset;
};
const StreamCase kStreams[] = {
    {0x0123456789ABCDEFULL, 0},
    {42, (uint64_t{1} << 32) - 11},
    {0xFFFFFFFF00000001ULL, ~uint64_t{0} - 5},
};

const at::ScalarType kParamTypes[] = {at::kDouble, at::kFloat};
const at::ScalarType kOutTypes[] = {at::kDouble, at::kFloat, at::kHalf, at::kBFloat16};

void test_gaussian_mixture_matches_reference() {
  const int64_t n = 37, K = 5;
  for (int64_t D : {1, 3, 6}) {
    for (bool tril : {false, true}) {
      for (bool with_labels : {false, true}) {
        Lcg g{static_cast<uint64_t>(1000 + 10 * D + (tril ? 1 : 0))};
        const at::Tensor loc = filled({K, D}, g, -3.0, 3.0);
        const at::Tensor scale = tril ? make_tril(K, D, g) : filled({K, D}, g, 0.5, 2.0);
        const at::Tensor cum = make_cum(K, g);
        const OptTensor labels = with_labels ? OptTensor(make_labels(n, K, g)) : std::nullopt;
        for (const StreamCase& sc : kStreams) {
          for (at::ScalarType pt : kParamTypes) {
            // float params: the reference uses the same (rounded) parameter values.
            const at::Tensor loc_p = loc.to(pt), scale_p = scale.to(pt), cum_p = cum.to(pt);
            const std::vector<double> want =
                ref_mixture(sc.seed, sc.offset, n, loc_p, scale_p, cum_p, labels);
            for (at::ScalarType ot : kOutTypes) {
              at::Tensor state = make_state(sc.seed, sc.offset);
              const at::Tensor z = gaussian_mixture(state, n, loc_p, scale_p, cum_p, labels, ot);
              const std::string what = c10::str("gaussian_mixture D=", D, tril ? " tril" : " diag",
                                                with_labels ? " labels" : "", " seed=", sc.seed,
                                                " offset=", sc.offset, " params=", pt, " out=", ot);
              EXPECT(z.scalar_type() == ot && z.dim() == 2 && z.size(0) == n && z.size(1) == D,
                    what, ": got dtype ", z.scalar_type(), " shape ", z.sizes());
              EXPECT_CLOSE(z, want, tolerance(pt, ot), what);
              EXPECT(state_offset(state) == sc.offset + n, what, ": offset ", state_offset(state),
                    ", want ", sc.offset + n);
              EXPECT(state[0].item<int64_t>() == static_cast<int64_t>(sc.seed), what,
                    ": seed changed");
            }
          }
        }
      }
    }
  }
}

void test_gaussian_mixture_stream_properties() {
  const int64_t K = 5, D = 3;
  Lcg g{7};
  const at::Tensor loc = filled({K, D}, g, -3.0, 3.0);
  const at::Tensor scale = make_tril(K, D, g);
  const at::Tensor cum = make_cum(K, g);

  // Same state twice: identical output.
  at::Tensor s1 = make_state(99, 12345), s2 = make_state(99, 12345);
  const at::Tensor a = gaussian_mixture(s1, 37, loc, scale, cum, std::nullopt, at::kDouble);
  const at::Tensor b = gaussian_mixture(s2, 37, loc, scale, cum, std::nullopt, at::kDouble);
  EXPECT(at::equal(a, b), "same state twice must give identical samples");

  // The advanced state continues the stream: rows 37.. of one call of 57 rows.
  const at::Tensor c = gaussian_mixture(s1, 20, loc, scale, cum, std::nullopt, at::kDouble);
  at::Tensor s3 = make_state(99, 12345);
  const at::Tensor whole = gaussian_mixture(s3, 57, loc, scale, cum, std::nullopt, at::kDouble);
  EXPECT(at::equal(at::cat({a, c}), whole), "two calls must equal one call of the summed size");
  EXPECT(state_offset(s1) == 12345 + 57 && state_offset(s3) == 12345 + 57,
        "offset after 37 + 20 rows: ", state_offset(s1), " and ", state_offset(s3));

  // Another seed: different samples.
  at::Tensor s4 = make_state(100, 12345);
  const at::Tensor d = gaussian_mixture(s4, 37, loc, scale, cum, std::nullopt, at::kDouble);
  EXPECT(!at::allclose(a, d), "another seed must give other samples");

  // n = 0: empty [0, D], state unchanged.
  at::Tensor s5 = make_state(1, 77);
  const at::Tensor e = gaussian_mixture(s5, 0, loc, scale, cum, std::nullopt, at::kFloat);
  EXPECT(e.dim() == 2 && e.size(0) == 0 && e.size(1) == D, "n = 0 shape ", e.sizes());
  EXPECT(state_offset(s5) == 77, "n = 0 must leave the offset, got ", state_offset(s5));

  // Non-contiguous parameters give the same result as contiguous ones.
  at::Tensor s6 = make_state(99, 12345);
  const at::Tensor loc_t = loc.t().contiguous().t();
  EXPECT(!loc_t.is_contiguous(), "setup: loc_t must be non-contiguous");
  const at::Tensor f = gaussian_mixture(s6, 37, loc_t, scale, cum, std::nullopt, at::kDouble);
  EXPECT(at::equal(a, f), "non-contiguous loc must give the same samples");
}

void test_typed_call() {
  // The unboxed path, with the C++ signature the schema implies.
  using Sig = at::Tensor(at::Tensor&, c10::SymInt, const at::Tensor&, const at::Tensor&,
                         const at::Tensor&, const std::optional<at::Tensor>&, at::ScalarType);
  const int64_t K = 5, D = 3, n = 37;
  Lcg g{11};
  const at::Tensor loc = filled({K, D}, g, -3.0, 3.0);
  const at::Tensor scale = filled({K, D}, g, 0.5, 2.0);
  const at::Tensor cum = make_cum(K, g);
  try {
    const auto op = c10::Dispatcher::singleton()
                        .findSchemaOrThrow("aae_fast::sample_gaussian_mixture", "")
                        .typed<Sig>();
    at::Tensor state = make_state(5, 6);
    const at::Tensor z = op.call(state, c10::SymInt(n), loc, scale, cum, std::nullopt, at::kDouble);
    EXPECT_CLOSE(z, ref_mixture(5, 6, n, loc, scale, cum, std::nullopt), 1e-12, "typed call");
    EXPECT(state_offset(state) == 6 + n, "typed call offset ", state_offset(state));
  } catch (const c10::Error& e) {
    EXPECT(false, "typed call threw: ", e.what_without_backtrace());
  }
}

void test_gaussian_mixture_bad_inputs() {
  const int64_t K = 5, D = 3, n = 37;
  Lcg g{3};
  const at::Tensor loc = filled({K, D}, g, -3.0, 3.0);
  const at::Tensor scale = filled({K, D}, g, 0.5, 2.0);
  const at::Tensor cum = make_cum(K, g);
  const at::Tensor labels = make_labels(n, K, g);
  at::Tensor state = make_state(1, 1000);
  const auto call = [&](int64_t rows, const at::Tensor& l, const at::Tensor& s,
                        const at::Tensor& cw, const OptTensor& lab, at::ScalarType dt) {
    return gaussian_mixture(state, rows, l, s, cw, lab, dt);
  };
  const at::ScalarType f64 = at::kDouble;

  EXPECT_THROWS(call(-1, loc, scale, cum, std::nullopt, f64), "n must", "negative n");
  EXPECT_THROWS(call(n, loc, scale, cum, labels.clone().fill_(K), f64), "labels", "label == K");
  at::Tensor neg = labels.clone();
  neg[4] = -1;
  EXPECT_THROWS(call(n, loc, scale, cum, neg, f64), "labels", "label -1");
  EXPECT_THROWS(call(n, loc, scale, cum, labels.to(at::kInt), f64), "int64", "int32 labels");
  EXPECT_THROWS(call(n, loc, scale, cum, labels.to(at::kDouble), f64), "int64", "float labels");
  EXPECT_THROWS(call(n + 1, loc, scale, cum, labels, f64), "labels must have shape",
               "labels of n - 1 rows");
  EXPECT_THROWS(call(n, loc, scale, cum, labels.unsqueeze(1), f64), "labels must have shape",
               "labels [n, 1]");
  EXPECT_THROWS(call(n, loc, filled({K, D + 1}, g, 1, 2), cum, std::nullopt, f64), "scale",
               "scale [K, D + 1]");
  EXPECT_THROWS(call(n, loc, filled({K + 1, D}, g, 1, 2), cum, std::nullopt, f64), "scale",
               "scale [K + 1, D]");
  EXPECT_THROWS(call(n, loc, filled({K, D, D + 1}, g, 1, 2), cum, std::nullopt, f64), "scale",
               "scale [K, D, D + 1]");
  EXPECT_THROWS(call(n, loc, filled({D}, g, 1, 2), cum, std::nullopt, f64), "scale", "scale [D]");
  EXPECT_THROWS(call(n, filled({K - 1, D}, g, 1, 2), scale, cum, std::nullopt, f64), "loc",
               "loc [K - 1, D]");
  EXPECT_THROWS(call(n, loc.to(at::kFloat), scale, cum, std::nullopt, f64), "dtype",
               "float loc with double scale");
  EXPECT_THROWS(call(n, loc, scale, cum.to(at::kInt), std::nullopt, f64), "cum_weights",
               "int cum_weights");
  EXPECT_THROWS(call(n, loc, scale, cum, std::nullopt, at::kLong), "dtype", "int64 output");
  EXPECT(state_offset(state) == 1000, "failed calls must leave the offset, got ",
        state_offset(state));

  at::Tensor bad_state = at::zeros({3}, at::kLong);
  EXPECT_THROWS(gaussian_mixture(bad_state, n, loc, scale, cum, std::nullopt, f64), "rng_state",
               "rng_state of 3 elements");
  at::Tensor int_state = at::zeros({2}, at::kInt);
  EXPECT_THROWS(gaussian_mixture(int_state, n, loc, scale, cum, std::nullopt, f64), "rng_state",
               "int32 rng_state");
}

void test_swiss_roll() {
  const int64_t n = 37, K = 5;
  const double radius = 2.5, turns = 1.75;
  for (bool with_labels : {false, true}) {
    Lcg g{21};
    const at::Tensor cum = make_cum(K, g);
    const OptTensor labels = with_labels ? OptTensor(make_labels(n, K, g)) : std::nullopt;
    for (const StreamCase& sc : kStreams) {
      for (at::ScalarType pt : kParamTypes) {
        const at::Tensor cum_p = cum.to(pt);
        const std::vector<double> want =
            ref_swiss_roll(sc.seed, sc.offset, n, cum_p, labels, radius, turns);
        for (at::ScalarType ot : kOutTypes) {
          at::Tensor state = make_state(sc.seed, sc.offset);
          const at::Tensor z = swiss_roll(state, n, cum_p, labels, radius, turns, ot);
          const std::string what = c10::str("swiss_roll", with_labels ? " labels" : "", " seed=",
                                            sc.seed, " offset=", sc.offset, " params=", pt,
                                            " out=", ot);
          EXPECT(z.scalar_type() == ot && z.dim() == 2 && z.size(0) == n && z.size(1) == 2, what,
                ": got dtype ", z.scalar_type(), " shape ", z.sizes());
          // The angle reaches 2 pi turns: float32 rounding of it is ~4e-7 * turns absolute.
          EXPECT_CLOSE(z, want, std::max(tolerance(pt, ot), pt == at::kFloat ? 1e-5 : 0.0), what);
          EXPECT(state_offset(state) == sc.offset + n, what, ": offset ", state_offset(state));
        }
      }
    }
  }

  Lcg g{22};
  const at::Tensor cum = make_cum(K, g);
  const at::Tensor labels = make_labels(n, K, g);
  at::Tensor s1 = make_state(8, 9), s2 = make_state(8, 9);
  EXPECT(at::equal(swiss_roll(s1, n, cum, std::nullopt, 1.0, 2.0, at::kDouble),
                  swiss_roll(s2, n, cum, std::nullopt, 1.0, 2.0, at::kDouble)),
        "swiss_roll: same state twice must give identical samples");

  at::Tensor state = make_state(8, 9);
  EXPECT_THROWS(swiss_roll(state, -3, cum, std::nullopt, 1.0, 2.0, at::kDouble), "n must",
               "swiss_roll negative n");
  EXPECT_THROWS(swiss_roll(state, n, cum, labels.clone().fill_(K), 1.0, 2.0, at::kDouble),
               "labels", "swiss_roll label == K");
  EXPECT_THROWS(swiss_roll(state, n, cum, labels.to(at::kInt), 1.0, 2.0, at::kDouble), "int64",
               "swiss_roll int32 labels");
  EXPECT_THROWS(swiss_roll(state, n, cum, labels.narrow(0, 0, n - 1), 1.0, 2.0, at::kDouble),
               "labels must have shape", "swiss_roll labels of n - 1 rows");
  EXPECT_THROWS(swiss_roll(state, n, cum.view({1, K}), std::nullopt, 1.0, 2.0, at::kDouble),
               "cum_weights", "swiss_roll cum_weights [1, K]");
  EXPECT(state_offset(state) == 9, "swiss_roll: failed calls must leave the offset, got ",
        state_offset(state));
}

void test_categorical() {
  const int64_t n = 37, K = 5;
  for (bool with_labels : {false, true}) {
    Lcg g{31};
    const at::Tensor cum = make_cum(K, g);
    const OptTensor labels = with_labels ? OptTensor(make_labels(n, K, g)) : std::nullopt;
    for (const StreamCase& sc : kStreams) {
      for (at::ScalarType pt : kParamTypes) {
        const at::Tensor cum_p = cum.to(pt);
        const std::vector<double> want = ref_categorical(sc.seed, sc.offset, n, cum_p, labels);
        for (at::ScalarType ot : kOutTypes) {
          at::Tensor state = make_state(sc.seed, sc.offset);
          const at::Tensor z = categorical(state, n, cum_p, labels, ot);
          const std::string what = c10::str("categorical", with_labels ? " labels" : "", " seed=",
                                            sc.seed, " offset=", sc.offset, " params=", pt,
                                            " out=", ot);
          EXPECT(z.scalar_type() == ot && z.dim() == 2 && z.size(0) == n && z.size(1) == K, what,
                ": got dtype ", z.scalar_type(), " shape ", z.sizes());
          EXPECT_CLOSE(z, want, 0.0, what);
          EXPECT(state_offset(state) == sc.offset + n, what, ": offset ", state_offset(state));
        }
      }
    }
  }

  // Draws follow the weights: a weight-0 class never appears, K = 1 is always class 0.
  at::Tensor cum0 = at::tensor({0.5, 0.5, 1.0}, at::kDouble);  // class 1 has weight 0
  at::Tensor state = make_state(3, 0);
  const at::Tensor z = categorical(state, 1000, cum0, std::nullopt, at::kFloat);
  EXPECT(z.select(1, 1).sum().item<double>() == 0.0, "a class of weight 0 was drawn");
  EXPECT(z.sum(1).eq(1).all().item<bool>(), "categorical rows must be one-hot");
  at::Tensor one = at::ones({1}, at::kDouble);
  const at::Tensor z1 = categorical(state, 11, one, std::nullopt, at::kDouble);
  EXPECT(z1.size(1) == 1 && z1.eq(1).all().item<bool>(), "K = 1 must give all ones");

  Lcg g{32};
  const at::Tensor cum = make_cum(K, g);
  const at::Tensor labels = make_labels(n, K, g);
  at::Tensor s = make_state(4, 5);
  EXPECT_THROWS(categorical(s, -1, cum, std::nullopt, at::kFloat), "n must",
               "categorical negative n");
  EXPECT_THROWS(categorical(s, n, cum, labels.clone().fill_(-2), at::kFloat), "labels",
               "categorical label -2");
  EXPECT_THROWS(categorical(s, n, cum, labels.to(at::kInt), at::kFloat), "int64",
               "categorical int32 labels");
  EXPECT_THROWS(categorical(s, n, cum, labels.view({1, n}), at::kFloat), "labels must have shape",
               "categorical labels [1, n]");
  EXPECT_THROWS(categorical(s, n, at::empty({0}, at::kDouble), std::nullopt, at::kFloat),
               "cum_weights", "categorical K = 0");
  EXPECT(state_offset(s) == 5, "categorical: failed calls must leave the offset, got ",
        state_offset(s));
}

}  // namespace

int main() {
  const std::pair<const char*, void (*)()> tests[] = {
      {"gaussian_mixture_matches_reference", test_gaussian_mixture_matches_reference},
      {"gaussian_mixture_stream_properties", test_gaussian_mixture_stream_properties},
      {"typed_call", test_typed_call},
      {"gaussian_mixture_bad_inputs", test_gaussian_mixture_bad_inputs},
      {"swiss_roll", test_swiss_roll},
      {"categorical", test_categorical},
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
