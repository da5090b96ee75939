// CPU implementation of mmd and mmd_backward (schemas and semantics: csrc/ops.cpp).
//
//   mmd = wxx Sxx + wyy Syy - wxy Sxy,   S.. = sums of k(a, b) = sum_s exp(-d2(a, b) h_s)
//   d2(a, b) = max(||a||^2 + ||b||^2 - 2 a.b, 0),   h_s = 1 / (2 bandwidths[s]^2)
// (weights: csrc/include/aae_fast/mmd_checks.h). Both sets are cut into tiles of T rows (T = 64,
// or 256 when N + M > 1024: a function of the sizes only). The forward's tasks are tile pairs:
// (x tile a, x tile b) for a <= b (an off-diagonal pair counts twice: k is symmetric), the same for
// y, and every (x tile, y tile). A task takes its T x T dot products from the BLAS GEMM torch uses
// (at::mm_out into a per-thread buffer, single-threaded inside at::parallel_for) and a fused pass
// turns them into squared distances and the tile's kernel sum: per row, kLanes float32 lanes
// (vectorised, polynomial exp) summed into a float64 row total. On a diagonal tile the diagonal
// dot product is replaced by ||a||^2, so that d2 = 0 exactly there (biased), or by -inf, so that
// its terms are exactly 0 (unbiased). Each task stores its float64 partial; the partials are added
// in task order, so the result does not depend on the thread count.
//
// The backward visits each unordered tile pair once (x and y tiles alike). Per pair (a, b) it
// forms W'_rc = sum_s c_s exp(-d2_rc h_s) in place of the dot products (c_s = 2 h_s coef, coef =
// 2 wxx within x, 2 wyy within y, -wxy across: symmetric, so W' serves both sides; W' = 0 on the
// diagonal pairs, whose difference vector is 0), adds its row sums to a's and its column sums to
// b's float64 W' 1, and the GEMMs W' z_b and W'^T z_a to a's and b's [rows, D] accumulators;
// finally grad_r = grad ((W' z)_r - a_r (W' 1)_r). The pairs run in rounds in which no two pairs
// share a tile (a round-robin schedule), so each row receives its contributions in an order fixed
// by the sizes: deterministic, and about half the distance GEMMs and exps of computing each side
// separately. Pairs between tiles whose gradients are not wanted are skipped.
//
// Precision: float64 inputs compute in float64 throughout; float32, float16 and bfloat16 in
// float32 (16-bit tiles are widened to float32 before the GEMMs, so the products are exact), with
// float64 norms, row totals and partials. A squared distance then has an absolute error of about
// eps_fp32 (||a||^2 + ||b||^2), a kernel value about that times h_s.
//
// Memory beyond the inputs and the gradients: the squared norms [N + M], the partials (one double
// per task), the backward's row sums [N + M] (its W' z accumulates in the gradient tensors; 16-bit
// inputs need a float32 [N + M, D] accumulator), and per thread one T x T buffer (plus staging
// tiles for 16-bit inputs): never N x N or N x M.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "aae_fast/mmd_checks.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define AAE_MMD_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define AAE_MMD_CLONES
#endif

namespace aae_fast {
namespace {

// Independent accumulators in the fused passes: two AVX-512 registers (with one, the loop is bound
// by the latency of the accumulating adds: 32 lanes run the exp-bound pass about 1.8x faster).
constexpr int kLanes = 32;
constexpr int64_t kNormGrain = 256;

// Rows per tile: small problems get small tiles (more tasks for the threads); a function of the
// sizes only, so that the reduction order never depends on the thread count.
int64_t tile_rows(int64_t n, int64_t m) { return n + m > 1024 ? 256 : 64; }

// exp(x) for x <= 0 (or NaN), in float32, branch-free so that it vectorises (the same scheme as
// csrc/cpu/parzen_log_likelihood.cpp): Cody-Waite reduction x = n ln2 + r, |r| <= ln2 / 2, a
// degree-7 Taylor polynomial for exp(r) (truncation < 1e-8 relative), 2^n from the exponent bits.
// Below -87 it returns 0 (exp would be subnormal: < 1.7e-38 absolute, far below a kernel sum's
// rounding). exp(-0) is exactly 1.
inline float exp_nonpositive(float x) {
  const float xc = x < -87.0f ? -87.0f : x;
  const float t = xc * 1.44269504088896341f;        // x / ln 2
  const float n = (t + 12582912.0f) - 12582912.0f;  // round to nearest (|t| < 2^22)
  float r = xc - n * 0.693359375f;                  // ln 2, high part (exact product)
  r = r + n * 2.12194440e-4f;                       // ln 2, low part
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // n in [-126, 0]: a normal 2^n
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return x < -87.0f ? 0.0f : p * scale;
}

// ---- fused passes over one [rows, cols] tile of dot products (row stride cols) ------------------
//
// an[r], bn[c]: squared norms of the tile's rows and columns; h[s]: 1 / (2 bandwidth_s^2) (> 0:
// clamped to the smallest normal number), S of them. `diag`: the tile pairs a tile with itself
// (rows == cols, an == bn): the diagonal dot is set to an[r] first, which makes d2 exactly 0 there
// (each bandwidth's term is exactly 1), or, with `skip_diag`, to -inf, which makes d2 = +inf and
// each term exactly 0 (the pair is left out without a subtraction that would cost precision).

// sum_{r, c} sum_s exp(-d2_rc h_s), float32 lanes per row, rows added in float64.
AAE_MMD_CLONES double kernel_sum_f32(float* dot, int64_t rows, int64_t cols, const float* an,
                                     const float* bn, const float* h, int64_t S, bool diag,
                                     bool skip_diag) {
  const int64_t body = cols - cols % kLanes;
  double total = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    float* d = dot + r * cols;
    if (diag) d[r] = skip_diag ? -std::numeric_limits<float>::infinity() : an[r];
    const float ar = an[r];
    float sums[kLanes];
    for (int l = 0; l < kLanes; ++l) sums[l] = 0.0f;
    for (int64_t j = 0; j < body; j += kLanes) {
      float v[kLanes];
      for (int l = 0; l < kLanes; ++l) {
        const float t = (ar + bn[j + l]) - 2.0f * d[j + l];
        v[l] = t < 0.0f ? 0.0f : t;  // cancellation; NaN stays NaN
      }
      for (int64_t s = 0; s < S; ++s) {
        const float hs = h[s];
        for (int l = 0; l < kLanes; ++l) sums[l] += exp_nonpositive(-v[l] * hs);
      }
    }
    float tail = 0.0f;
    for (int64_t j = body; j < cols; ++j) {
      float v = (ar + bn[j]) - 2.0f * d[j];
      v = v < 0.0f ? 0.0f : v;
      for (int64_t s = 0; s < S; ++s) tail += exp_nonpositive(-v * h[s]);
    }
    double row = static_cast<double>(tail);
    for (int l = 0; l < kLanes; ++l) row += static_cast<double>(sums[l]);
    total += row;
  }
  return total;
}

double kernel_sum_f64(double* dot, int64_t rows, int64_t cols, const double* an, const double* bn,
                      const double* h, int64_t S, bool diag, bool skip_diag) {
  double total = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    double* d = dot + r * cols;
    if (diag) d[r] = skip_diag ? -std::numeric_limits<double>::infinity() : an[r];
    const double ar = an[r];
    double row = 0.0;
    for (int64_t j = 0; j < cols; ++j) {
      double v = (ar + bn[j]) - 2.0 * d[j];
      v = v < 0.0 ? 0.0 : v;
      for (int64_t s = 0; s < S; ++s) row += std::exp(-v * h[s]);
    }
    total += row;
  }
  return total;
}

inline double kernel_sum(float* dot, int64_t rows, int64_t cols, const float* an, const float* bn,
                         const float* h, int64_t S, bool diag, bool skip_diag) {
  return kernel_sum_f32(dot, rows, cols, an, bn, h, S, diag, skip_diag);
}
inline double kernel_sum(double* dot, int64_t rows, int64_t cols, const double* an,
                         const double* bn, const double* h, int64_t S, bool diag, bool skip_diag) {
  return kernel_sum_f64(dot, rows, cols, an, bn, h, S, diag, skip_diag);
}

// In place: dot_rc -> W'_rc = sum_s c[s] exp(-d2_rc h_s) (0 on the diagonal when `diag`), and
// rowsum[r] += sum_c W'_rc (float32 lanes per row, added in float64).
AAE_MMD_CLONES void weight_tile_f32(float* dot, int64_t rows, int64_t cols, const float* an,
                                    const float* bn, const float* h, const float* c, int64_t S,
                                    bool diag, double* rowsum) {
  const int64_t body = cols - cols % kLanes;
  for (int64_t r = 0; r < rows; ++r) {
    float* d = dot + r * cols;
    const float ar = an[r];
    for (int64_t j = 0; j < body; j += kLanes) {
      float v[kLanes], w[kLanes];
      for (int l = 0; l < kLanes; ++l) {
        const float t = (ar + bn[j + l]) - 2.0f * d[j + l];
        v[l] = t < 0.0f ? 0.0f : t;
        w[l] = 0.0f;
      }
      for (int64_t s = 0; s < S; ++s) {
        const float hs = h[s], cs = c[s];
        for (int l = 0; l < kLanes; ++l) w[l] += cs * exp_nonpositive(-v[l] * hs);
      }
      for (int l = 0; l < kLanes; ++l) d[j + l] = w[l];
    }
    for (int64_t j = body; j < cols; ++j) {
      float v = (ar + bn[j]) - 2.0f * d[j];
      v = v < 0.0f ? 0.0f : v;
      float w = 0.0f;
      for (int64_t s = 0; s < S; ++s) w += c[s] * exp_nonpositive(-v * h[s]);
      d[j] = w;
    }
    if (diag) d[r] = 0.0f;
    float sums[kLanes];
    for (int l = 0; l < kLanes; ++l) sums[l] = 0.0f;
    for (int64_t j = 0; j < body; j += kLanes) {
      for (int l = 0; l < kLanes; ++l) sums[l] += d[j + l];
    }
    double row = 0.0;
    for (int64_t j = body; j < cols; ++j) row += static_cast<double>(d[j]);
    for (int l = 0; l < kLanes; ++l) row += static_cast<double>(sums[l]);
    rowsum[r] += row;
  }
}

void weight_tile_f64(double* dot, int64_t rows, int64_t cols, const double* an, const double* bn,
                     const double* h, const double* c, int64_t S, bool diag, double* rowsum) {
  for (int64_t r = 0; r < rows; ++r) {
    double* d = dot + r * cols;
    const double ar = an[r];
    double row = 0.0;
    for (int64_t j = 0; j < cols; ++j) {
      double v = (ar + bn[j]) - 2.0 * d[j];
      v = v < 0.0 ? 0.0 : v;
      double w = 0.0;
      for (int64_t s = 0; s < S; ++s) w += c[s] * std::exp(-v * h[s]);
      if (diag && j == r) w = 0.0;
      d[j] = w;
      row += w;
    }
    rowsum[r] += row;
  }
}

inline void weight_tile(float* dot, int64_t rows, int64_t cols, const float* an, const float* bn,
                        const float* h, const float* c, int64_t S, bool diag, double* rowsum) {
  weight_tile_f32(dot, rows, cols, an, bn, h, c, S, diag, rowsum);
}
inline void weight_tile(double* dot, int64_t rows, int64_t cols, const double* an,
                        const double* bn, const double* h, const double* c, int64_t S, bool diag,
                        double* rowsum) {
  weight_tile_f64(dot, rows, cols, an, bn, h, c, S, diag, rowsum);
}

// ---- shared pieces ------------------------------------------------------------------------------

// out[r] = sum_k t[r, k]^2 for rows [begin, end) of a strided [R, D] matrix, summed in float64.
template <typename in_t, typename acc_t>
void row_sq_norms(const in_t* t, int64_t stride0, int64_t stride1, int64_t D, int64_t begin,
                  int64_t end, acc_t* out) {
  for (int64_t r = begin; r < end; ++r) {
    const in_t* row = t + r * stride0;
    double acc = 0.0;
    for (int64_t k = 0; k < D; ++k) {
      const double v = static_cast<double>(static_cast<acc_t>(row[k * stride1]));
      acc += v * v;
    }
    out[r] = static_cast<acc_t>(acc);
  }
}

// The two sets (0: x, 1: y), their squared norms and the bandwidth constants in acc_t.
template <typename in_t, typename acc_t>
struct Problem {
  static constexpr bool kStaged = !std::is_same_v<in_t, acc_t>;  // 16-bit: float32 staging tiles
  std::array<at::Tensor, 2> set;
  std::array<int64_t, 2> rows;
  int64_t D = 0;
  int64_t T = 0;
  at::Tensor norms;  // [N + M]: x's then y's
  std::array<const acc_t*, 2> norm;
  std::vector<acc_t> h;
  at::TensorOptions acc_opts;

  Problem(const at::Tensor& x, const at::Tensor& y, const std::vector<double>& h64) {
    set = {x, y};
    rows = {x.size(0), y.size(0)};
    D = x.size(1);
    T = tile_rows(rows[0], rows[1]);
    acc_opts = x.options().dtype(c10::CppTypeToScalarType<acc_t>::value);
    norms = at::empty({rows[0] + rows[1]}, acc_opts);
    acc_t* np = norms.data_ptr<acc_t>();
    const in_t* xp = x.data_ptr<in_t>();
    const in_t* yp = y.data_ptr<in_t>();
    const int64_t N = rows[0], M = rows[1];
    at::parallel_for(0, N + M, kNormGrain, [&](int64_t begin, int64_t end) {
      const int64_t xb = std::min(begin, N), xe = std::min(end, N);
      if (xb < xe) row_sq_norms<in_t, acc_t>(xp, x.stride(0), x.stride(1), D, xb, xe, np);
      const int64_t yb = std::max(begin, N) - N, ye = std::max(end, N) - N;
      if (yb < ye) row_sq_norms<in_t, acc_t>(yp, y.stride(0), y.stride(1), D, yb, ye, np + N);
    });
    norm = {np, np + N};
    // h in (0, max]: a huge bandwidth's h may underflow to 0; the smallest normal number instead
    // changes no kernel value (exp(-d2 h) rounds to 1 either way) and keeps -inf * h = -inf.
    h.resize(h64.size());
    for (size_t s = 0; s < h64.size(); ++s) {
      h[s] = std::max(clamp_acc(h64[s]), std::numeric_limits<acc_t>::min());
    }
  }

  static acc_t clamp_acc(double v) {
    const double big = static_cast<double>(std::numeric_limits<acc_t>::max());
    return static_cast<acc_t>(std::max(-big, std::min(big, v)));
  }

  int64_t tiles(int which) const { return (rows[which] + T - 1) / T; }

  // Rows [t T, t T + len) of set `which` in acc_t (a view for float32 / float64, else widened
  // into `stage`).
  at::Tensor tile(int which, int64_t t, at::Tensor& stage) const {
    const int64_t start = t * T;
    const int64_t len = std::min(T, rows[which] - start);
    at::Tensor view = set[which].narrow(0, start, len);
    if constexpr (kStaged) return stage.narrow(0, 0, len).copy_(view);
    return view;
  }
};

// ---- forward ------------------------------------------------------------------------------------

template <typename in_t, typename acc_t>
void mmd_forward_kernel(const at::Tensor& x, const at::Tensor& y, const std::vector<double>& h64,
                        bool unbiased, at::Tensor& out) {
  const Problem<in_t, acc_t> p(x, y, h64);
  const int64_t S = static_cast<int64_t>(h64.size());
  const int64_t T = p.T;

  struct Task {
    int a, b;        // sets: (0, 0) xx, (1, 1) yy, (0, 1) xy
    int64_t ta, tb;  // tiles
    double weight;   // 2 for an off-diagonal tile of a symmetric sum, else 1
  };
  std::vector<Task> tasks;
  for (int which = 0; which < 2; ++which) {
    for (int64_t a = 0; a < p.tiles(which); ++a) {
      for (int64_t b = a; b < p.tiles(which); ++b) {
        tasks.push_back({which, which, a, b, a == b ? 1.0 : 2.0});
      }
    }
  }
  for (int64_t a = 0; a < p.tiles(0); ++a) {
    for (int64_t b = 0; b < p.tiles(1); ++b) tasks.push_back({0, 1, a, b, 1.0});
  }
  std::vector<double> partial(tasks.size(), 0.0);

  at::parallel_for(0, static_cast<int64_t>(tasks.size()), 1, [&](int64_t begin, int64_t end) {
    // Worker threads do not inherit the caller's dispatch guard: the GEMMs stay below autograd.
    const at::AutoDispatchBelowADInplaceOrView below_autograd;
    at::Tensor dot = at::empty({T * T}, p.acc_opts);
    at::Tensor a_stage, b_stage;
    if constexpr (Problem<in_t, acc_t>::kStaged) {
      a_stage = at::empty({T, p.D}, p.acc_opts);
      b_stage = at::empty({T, p.D}, p.acc_opts);
    }
    for (int64_t k = begin; k < end; ++k) {
      const Task& task = tasks[k];
      const bool diag = task.a == task.b && task.ta == task.tb;
      const at::Tensor a_tile = p.tile(task.a, task.ta, a_stage);
      const at::Tensor b_tile = diag ? a_tile : p.tile(task.b, task.tb, b_stage);
      const int64_t bn = a_tile.size(0), bm = b_tile.size(0);
      at::Tensor dot_tile = dot.narrow(0, 0, bn * bm).view({bn, bm});
      at::mm_out(dot_tile, a_tile, b_tile.t());
      TORCH_INTERNAL_ASSERT(dot_tile.data_ptr() == dot.data_ptr() && dot_tile.is_contiguous());
      const double sum = kernel_sum(dot_tile.data_ptr<acc_t>(), bn, bm,
                                    p.norm[task.a] + task.ta * T, p.norm[task.b] + task.tb * T,
                                    p.h.data(), S, diag, unbiased);
      partial[k] = task.weight * sum;
    }
  });

  std::array<double, 3> sums = {0.0, 0.0, 0.0};  // xx, yy, xy, each added in task order
  for (size_t k = 0; k < tasks.size(); ++k) {
    sums[tasks[k].a != tasks[k].b ? 2 : tasks[k].a] += partial[k];
  }
  const MmdWeights w = mmd_weights(p.rows[0], p.rows[1], unbiased);
  out.fill_(w.xx * sums[0] + w.yy * sums[1] - w.xy * sums[2]);
}

// ---- backward -----------------------------------------------------------------------------------

// colsum[c] += sum_r w[r, c] (float64), for the transposed side of a tile pair.
template <typename acc_t>
void add_column_sums(const acc_t* w, int64_t rows, int64_t cols, double* colsum) {
  for (int64_t r = 0; r < rows; ++r) {
    const acc_t* row = w + r * cols;
    for (int64_t c = 0; c < cols; ++c) colsum[c] += static_cast<double>(row[c]);
  }
}

// The tile pairs of the backward in rounds: first every tile with itself, then the round-robin
// ("circle method") schedule of all pairs of distinct tiles, so that the pairs of one round share
// no tile and can run in parallel while each tile receives its contributions in a fixed order.
// Tiles are numbered x's first, then y's; pairs between tiles whose gradients are both unwanted
// are dropped.
std::vector<std::vector<std::pair<int64_t, int64_t>>> backward_rounds(
    int64_t num_tiles, const std::vector<bool>& wanted) {
  std::vector<std::vector<std::pair<int64_t, int64_t>>> rounds;
  rounds.emplace_back();
  for (int64_t g = 0; g < num_tiles; ++g) {
    if (wanted[g]) rounds.back().emplace_back(g, g);
  }
  const int64_t n = num_tiles + num_tiles % 2;  // an odd count gets a dummy tile (a bye)
  for (int64_t r = 0; r + 1 < n; ++r) {
    std::vector<std::pair<int64_t, int64_t>> round;
    for (int64_t k = 0; k < n / 2; ++k) {
      const int64_t a = (r + k) % (n - 1);
      const int64_t b = k == 0 ? n - 1 : (r - k + n - 1) % (n - 1);
      if (a >= num_tiles || b >= num_tiles || (!wanted[a] && !wanted[b])) continue;
      round.emplace_back(a, b);
    }
    if (!round.empty()) rounds.push_back(std::move(round));
  }
  return rounds;
}

template <typename in_t, typename acc_t>
void mmd_backward_kernel(double grad, const at::Tensor& x, const at::Tensor& y,
                         const std::vector<double>& h64, bool unbiased,
                         std::array<bool, 2> output_mask, std::array<at::Tensor*, 2> outs) {
  using P = Problem<in_t, acc_t>;
  const P p(x, y, h64);
  const int64_t S = static_cast<int64_t>(h64.size());
  const int64_t T = p.T;
  const int64_t D = p.D;
  const MmdWeights wts = mmd_weights(p.rows[0], p.rows[1], unbiased);
  // c[a][b][s] = 2 h_s coef: coef = 2 wxx (x with x), 2 wyy (y with y), -wxy (across); symmetric
  // in (a, b), so one W' tile serves both of its sides.
  std::array<std::array<std::vector<acc_t>, 2>, 2> c;
  const double own_coef[2] = {2.0 * wts.xx, 2.0 * wts.yy};
  for (int a = 0; a < 2; ++a) {
    for (int b = 0; b < 2; ++b) {
      const double coef = a == b ? own_coef[a] : -wts.xy;
      c[a][b].resize(S);
      for (int64_t s = 0; s < S; ++s) c[a][b][s] = P::clamp_acc(2.0 * h64[s] * coef);
    }
  }

  // Accumulators of the wanted sets: W' z [rows, D] (the gradient tensor itself for float32 and
  // float64 inputs, a float32 buffer for 16-bit ones) and W' 1 [rows] in float64.
  std::array<at::Tensor, 2> acc;
  std::array<std::vector<double>, 2> rowsum;
  for (int set = 0; set < 2; ++set) {
    if (!output_mask[set]) continue;
    acc[set] = P::kStaged ? at::zeros({p.rows[set], D}, p.acc_opts) : outs[set]->zero_();
    rowsum[set].assign(p.rows[set], 0.0);
  }
  const int64_t tiles_x = p.tiles(0);
  const int64_t num_tiles = tiles_x + p.tiles(1);
  std::vector<bool> wanted(num_tiles);
  for (int64_t g = 0; g < num_tiles; ++g) wanted[g] = output_mask[g < tiles_x ? 0 : 1];

  for (const auto& round : backward_rounds(num_tiles, wanted)) {
    at::parallel_for(0, static_cast<int64_t>(round.size()), 1, [&](int64_t begin, int64_t end) {
      const at::AutoDispatchBelowADInplaceOrView below_autograd;  // as in the forward
      at::Tensor wbuf = at::empty({T * T}, p.acc_opts);
      at::Tensor a_stage, b_stage;
      if constexpr (P::kStaged) {
        a_stage = at::empty({T, D}, p.acc_opts);
        b_stage = at::empty({T, D}, p.acc_opts);
      }
      std::vector<double> unused_rowsum(T);
      for (int64_t k = begin; k < end; ++k) {
        const auto [ga, gb] = round[k];
        const int sa = ga < tiles_x ? 0 : 1, sb = gb < tiles_x ? 0 : 1;
        const int64_t ta = sa == 0 ? ga : ga - tiles_x, tb = sb == 0 ? gb : gb - tiles_x;
        const bool diag = ga == gb;
        const bool want_a = output_mask[sa], want_b = !diag && output_mask[sb];
        const at::Tensor a_tile = p.tile(sa, ta, a_stage);
        const at::Tensor b_tile = diag ? a_tile : p.tile(sb, tb, b_stage);
        const int64_t bn = a_tile.size(0), bm = b_tile.size(0);
        at::Tensor w_tile = wbuf.narrow(0, 0, bn * bm).view({bn, bm});
        at::mm_out(w_tile, a_tile, b_tile.t());
        TORCH_INTERNAL_ASSERT(w_tile.data_ptr() == wbuf.data_ptr() && w_tile.is_contiguous());
        std::fill(unused_rowsum.begin(), unused_rowsum.end(), 0.0);
        double* rs_a = want_a ? rowsum[sa].data() + ta * T : unused_rowsum.data();
        weight_tile(w_tile.data_ptr<acc_t>(), bn, bm, p.norm[sa] + ta * T, p.norm[sb] + tb * T,
                    p.h.data(), c[sa][sb].data(), S, diag, rs_a);
        if (want_b) add_column_sums(w_tile.data_ptr<acc_t>(), bn, bm, rowsum[sb].data() + tb * T);
        if (want_a) acc[sa].narrow(0, ta * T, bn).addmm_(w_tile, b_tile);
        if (want_b) acc[sb].narrow(0, tb * T, bm).addmm_(w_tile.t(), a_tile);
      }
    });
  }

  // grad_r = grad ((W' z)_r - a_r (W' 1)_r), written in the inputs' dtype (in place for float32
  // and float64, where the accumulator is the gradient).
  const acc_t g = static_cast<acc_t>(grad);
  for (int set = 0; set < 2; ++set) {
    if (!output_mask[set]) continue;
    const in_t* ap = p.set[set].template data_ptr<in_t>();
    const int64_t as0 = p.set[set].stride(0), as1 = p.set[set].stride(1);
    const acc_t* accp = acc[set].template data_ptr<acc_t>();
    in_t* gp = outs[set]->template data_ptr<in_t>();
    const double* rs = rowsum[set].data();
    at::parallel_for(0, p.rows[set], 64, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const acc_t rsum = static_cast<acc_t>(rs[r]);
        for (int64_t q = 0; q < D; ++q) {
          const acc_t a = static_cast<acc_t>(ap[r * as0 + q * as1]);
          gp[r * D + q] = static_cast<in_t>(g * (accp[r * D + q] - a * rsum));
        }
      }
    });
  }
}

// ---- the ops ------------------------------------------------------------------------------------

at::Tensor mmd_cpu(const at::Tensor& x, const at::Tensor& y, c10::ArrayRef<double> bandwidths,
                   bool unbiased) {
  check_mmd_inputs(x, y, bandwidths, unbiased);
  TORCH_CHECK(x.device().is_cpu(), "x must be a CPU tensor here, got device ", x.device());
  // The tile GEMMs re-enter the dispatcher: keep them below autograd (the op's autograd formula
  // is registered from Python; here the inputs are only read).
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  at::Tensor out = at::empty({}, x.options().dtype(mmd_output_dtype(x.scalar_type())));
  // D = 0: every distance is 0, so both estimates are exactly 0 (as on CUDA and in Triton); the
  // weighted sums would only reach it up to rounding.
  if (x.size(1) == 0) return out.zero_();
  const std::vector<double> h = mmd_half_inv_vars(bandwidths);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "mmd", [&] {
    if constexpr (std::is_same_v<scalar_t, double>) {
      mmd_forward_kernel<double, double>(x, y, h, unbiased, out);
    } else {
      mmd_forward_kernel<scalar_t, float>(x, y, h, unbiased, out);
    }
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> mmd_backward_cpu(const at::Tensor& grad, const at::Tensor& x,
                                                    const at::Tensor& y,
                                                    c10::ArrayRef<double> bandwidths,
                                                    bool unbiased,
                                                    std::array<bool, 2> output_mask) {
  check_mmd_inputs(x, y, bandwidths, unbiased);
  check_mmd_grad(grad, x);
  TORCH_CHECK(x.device().is_cpu(), "x must be a CPU tensor here, got device ", x.device());
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  at::Tensor grad_x = output_mask[0] ? at::empty(x.sizes(), x.options().memory_format(
                                                                at::MemoryFormat::Contiguous))
                                     : at::empty({0}, grad.options());
  at::Tensor grad_y = output_mask[1] ? at::empty(y.sizes(), y.options().memory_format(
                                                                at::MemoryFormat::Contiguous))
                                     : at::empty({0}, grad.options());
  if (x.size(1) == 0 || (!output_mask[0] && !output_mask[1])) return {grad_x, grad_y};
  const double g = grad.item<double>();
  const std::vector<double> h = mmd_half_inv_vars(bandwidths);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "mmd_backward", [&] {
    if constexpr (std::is_same_v<scalar_t, double>) {
      mmd_backward_kernel<double, double>(g, x, y, h, unbiased, output_mask, {&grad_x, &grad_y});
    } else {
      mmd_backward_kernel<scalar_t, float>(g, x, y, h, unbiased, output_mask, {&grad_x, &grad_y});
    }
  });
  return {grad_x, grad_y};
}

}  // namespace

TORCH_LIBRARY_IMPL(aae_fast, CPU, m) {
  m.impl("mmd", &mmd_cpu);
  m.impl("mmd_backward", &mmd_backward_cpu);
}

}  // namespace aae_fast
