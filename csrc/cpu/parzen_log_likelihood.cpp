// CPU implementation of parzen_log_likelihood (schema and semantics: csrc/ops.cpp).
//
//   out[i] = log( (1/M) sum_j N(x_i; s_j, sigma^2 I) )
//          = logsumexp_j( -d2_ij h ) - log M - D (log sigma + log(2 pi) / 2),   h = 1 / (2 sigma^2)
//   d2_ij  = max(||x_i||^2 + ||s_j||^2 - 2 x_i . s_j, 0)
//
// Tiled like flash attention: a task owns a tile of kRowTile rows of x and walks the samples in
// tiles of kSampleTile. Per (row tile, sample tile) the dot products come from the BLAS GEMM torch
// uses (at::mm_out into a per-thread buffer, single-threaded inside at::parallel_for), and a fused
// pass turns them into squared distances and the tile's per-row log-sum-exp, (min d2, sum of
// exp((min d2 - d2) h)), which is merged into the row's running (max, sum) in float64. Memory
// beyond the inputs: the squared norms [N + M], the running state [splits, N] in float64, and one
// kRowTile x kSampleTile buffer per thread (plus staging tiles for 16-bit inputs): never N x M.
//
// Precision: float64 inputs compute in float64 throughout. float32, float16 and bfloat16 inputs
// compute in float32 (16-bit tiles are converted to float32 before the GEMM, so the products are
// exact), with the squared norms accumulated in float64 and the running sums in float64. The
// absolute error of a squared distance is then about eps_fp32 (||x||^2 + ||s||^2), i.e. about
// eps_fp32 (||x||^2 + ||s||^2) h in the result.
//
// The fused pass is written as plain loops over kLanes independent lanes with a polynomial exp, so
// that the compiler vectorises it; with GCC >= 12 on x86-64 it is compiled for x86-64-v4 (AVX-512),
// x86-64-v3 (AVX2 + FMA) and baseline x86-64, and the best clone is picked at load time
// (target_clones); other compilers build the baseline only.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "aae_fast/parzen_checks.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define AAE_PARZEN_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define AAE_PARZEN_CLONES
#endif

namespace aae_fast {
namespace {

constexpr int64_t kRowTile = 256;     // rows of x per tile
constexpr int64_t kSampleTile = 512;  // samples per tile: a 256 x 512 fp32 buffer is 512 KiB
constexpr int kLanes = 16;  // independent accumulators in the fused pass (one AVX-512 register)
constexpr int64_t kNormGrain = 256;

// exp(x) for x <= 0 (or NaN), in float32, branch-free so that it vectorises: Cody-Waite reduction
// x = n ln2 + r, |r| <= ln2 / 2, a degree-7 Taylor polynomial for exp(r) (truncation < 1e-8
// relative), and 2^n from the exponent bits. Below -87 (where exp would be subnormal) it returns
// 0: every tile holds a term exp(0) = 1, so the dropped terms are below 1e-37 relative.
inline float exp_nonpositive(float x) {
  const float xc = x < -87.0f ? -87.0f : x;
  const float t = xc * 1.44269504088896341f;              // x / ln 2
  const float n = (t + 12582912.0f) - 12582912.0f;        // round to nearest (|t| < 2^22)
  float r = xc - n * 0.693359375f;                        // ln 2, high part (exact product)
  r = r + n * 2.12194440e-4f;                             // ln 2, low part
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

// The fused pass over one [rows, cols] tile of dot products (row stride ld), in place:
//   d2_rj     = max(xs[r] + ss[j] - 2 dot_rj, 0)      (NaN stays NaN)
//   tmin[r]   = min_j d2_rj
//   tsum[r]   = sum_j exp((tmin[r] - d2_rj) h)         (each term in [0, 1], one of them 1)
AAE_PARZEN_CLONES void fused_tile_f32(float* dot, int64_t rows, int64_t cols, int64_t ld,
                                      const float* xs, const float* ss, float h, float* tmin,
                                      float* tsum) {
  const int64_t body = cols - cols % kLanes;
  for (int64_t r = 0; r < rows; ++r) {
    float* d = dot + r * ld;
    const float xr = xs[r];
    float mins[kLanes];
    for (int l = 0; l < kLanes; ++l) mins[l] = std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < body; j += kLanes) {
      for (int l = 0; l < kLanes; ++l) {
        float v = (xr + ss[j + l]) - 2.0f * d[j + l];
        v = v < 0.0f ? 0.0f : v;
        d[j + l] = v;
        mins[l] = v < mins[l] ? v : mins[l];
      }
    }
    float m = std::numeric_limits<float>::infinity();
    for (int64_t j = body; j < cols; ++j) {
      float v = (xr + ss[j]) - 2.0f * d[j];
      v = v < 0.0f ? 0.0f : v;
      d[j] = v;
      m = v < m ? v : m;
    }
    for (int l = 0; l < kLanes; ++l) m = mins[l] < m ? mins[l] : m;
    float sums[kLanes];
    for (int l = 0; l < kLanes; ++l) sums[l] = 0.0f;
    for (int64_t j = 0; j < body; j += kLanes) {
      for (int l = 0; l < kLanes; ++l) sums[l] += exp_nonpositive((m - d[j + l]) * h);
    }
    float s = 0.0f;
    for (int64_t j = body; j < cols; ++j) s += exp_nonpositive((m - d[j]) * h);
    for (int l = 0; l < kLanes; ++l) s += sums[l];
    tmin[r] = m;
    tsum[r] = s;
  }
}

// The same pass in float64 (the precise path), with libm's exp.
void fused_tile_f64(double* dot, int64_t rows, int64_t cols, int64_t ld, const double* xs,
                    const double* ss, double h, double* tmin, double* tsum) {
  for (int64_t r = 0; r < rows; ++r) {
    double* d = dot + r * ld;
    const double xr = xs[r];
    double m = std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < cols; ++j) {
      double v = (xr + ss[j]) - 2.0 * d[j];
      v = v < 0.0 ? 0.0 : v;
      d[j] = v;
      m = v < m ? v : m;
    }
    double s = 0.0;
    for (int64_t j = 0; j < cols; ++j) s += std::exp((m - d[j]) * h);
    tmin[r] = m;
    tsum[r] = s;
  }
}

inline void fused_tile(float* dot, int64_t rows, int64_t cols, int64_t ld, const float* xs,
                       const float* ss, float h, float* tmin, float* tsum) {
  fused_tile_f32(dot, rows, cols, ld, xs, ss, h, tmin, tsum);
}
inline void fused_tile(double* dot, int64_t rows, int64_t cols, int64_t ld, const double* xs,
                       const double* ss, double h, double* tmin, double* tsum) {
  fused_tile_f64(dot, rows, cols, ld, xs, ss, h, tmin, tsum);
}

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

template <typename in_t, typename acc_t>
void parzen_kernel(const at::Tensor& x, const at::Tensor& samples, double sigma, at::Tensor& out) {
  constexpr bool kStaged = !std::is_same_v<in_t, acc_t>;  // 16-bit inputs: fp32 staging tiles
  const int64_t N = x.size(0);
  const int64_t M = samples.size(0);
  const int64_t D = x.size(1);
  const auto acc_opts = x.options().dtype(c10::CppTypeToScalarType<acc_t>::value);

  // Squared norms, once per row.
  at::Tensor xs = at::empty({N}, acc_opts);
  at::Tensor ss = at::empty({M}, acc_opts);
  {
    const in_t* xp = x.data_ptr<in_t>();
    const in_t* sp = samples.data_ptr<in_t>();
    acc_t* xs_p = xs.data_ptr<acc_t>();
    acc_t* ss_p = ss.data_ptr<acc_t>();
    at::parallel_for(0, N + M, kNormGrain, [&](int64_t begin, int64_t end) {
      const int64_t xb = std::min(begin, N), xe = std::min(end, N);
      if (xb < xe) row_sq_norms<in_t, acc_t>(xp, x.stride(0), x.stride(1), D, xb, xe, xs_p);
      const int64_t sb = std::max(begin, N) - N, se = std::max(end, N) - N;
      if (sb < se) {
        row_sq_norms<in_t, acc_t>(sp, samples.stride(0), samples.stride(1), D, sb, se, ss_p);
      }
    });
  }

  const double h64 = parzen_half_inv_var(sigma);
  const acc_t h = static_cast<acc_t>(std::min<double>(h64, std::numeric_limits<acc_t>::max()));
  const double log_norm = parzen_log_normalizer(M, D, sigma);

  // Tasks: (row tile, sample split). The samples are split only when there are fewer row tiles
  // than threads, so that a small N still uses every core.
  const int64_t row_tiles = (N + kRowTile - 1) / kRowTile;
  const int64_t sample_tiles = (M + kSampleTile - 1) / kSampleTile;
  const int64_t threads = at::get_num_threads();
  const int64_t splits =
      row_tiles >= threads ? 1
                           : std::min<int64_t>(sample_tiles, (threads + row_tiles - 1) / row_tiles);
  at::Tensor run_max = at::empty({splits, N}, x.options().dtype(at::kDouble));
  at::Tensor run_sum = at::empty({splits, N}, x.options().dtype(at::kDouble));
  double* run_max_p = run_max.data_ptr<double>();
  double* run_sum_p = run_sum.data_ptr<double>();
  const acc_t* xs_p = xs.data_ptr<acc_t>();
  const acc_t* ss_p = ss.data_ptr<acc_t>();

  at::parallel_for(0, row_tiles * splits, 1, [&](int64_t task_begin, int64_t task_end) {
    at::Tensor dot = at::empty({kRowTile * kSampleTile}, acc_opts);
    at::Tensor x_stage, s_stage;
    if constexpr (kStaged) {
      x_stage = at::empty({kRowTile, D}, acc_opts);
      s_stage = at::empty({kSampleTile, D}, acc_opts);
    }
    std::vector<acc_t> tmin(kRowTile), tsum(kRowTile);
    for (int64_t task = task_begin; task < task_end; ++task) {
      const int64_t rt = task / splits;
      const int64_t split = task % splits;
      const int64_t i0 = rt * kRowTile;
      const int64_t bn = std::min(kRowTile, N - i0);
      const int64_t t_begin = split * sample_tiles / splits;
      const int64_t t_end = (split + 1) * sample_tiles / splits;
      at::Tensor x_tile = x.narrow(0, i0, bn);
      if constexpr (kStaged) x_tile = x_stage.narrow(0, 0, bn).copy_(x_tile);
      double* m_row = run_max_p + split * N + i0;
      double* s_row = run_sum_p + split * N + i0;
      std::fill(m_row, m_row + bn, -std::numeric_limits<double>::infinity());
      std::fill(s_row, s_row + bn, 0.0);
      for (int64_t t = t_begin; t < t_end; ++t) {
        const int64_t j0 = t * kSampleTile;
        const int64_t bm = std::min(kSampleTile, M - j0);
        at::Tensor s_tile = samples.narrow(0, j0, bm);
        if constexpr (kStaged) s_tile = s_stage.narrow(0, 0, bm).copy_(s_tile);
        at::Tensor dot_tile = dot.narrow(0, 0, bn * bm).view({bn, bm});
        at::mm_out(dot_tile, x_tile, s_tile.t());
        TORCH_INTERNAL_ASSERT(dot_tile.data_ptr() == dot.data_ptr() && dot_tile.is_contiguous());
        fused_tile(dot_tile.data_ptr<acc_t>(), bn, bm, bm, xs_p + i0, ss_p + j0, h, tmin.data(),
                   tsum.data());
        for (int64_t r = 0; r < bn; ++r) {
          // The tile's log-sum-exp is tm + log(tsum); merge it into the running (max, sum).
          const double tm = -static_cast<double>(tmin[r]) * h64;
          const double ts = static_cast<double>(tsum[r]);
          if (tm > m_row[r]) {
            s_row[r] = s_row[r] * std::exp(m_row[r] - tm) + ts;
            m_row[r] = tm;
          } else {
            s_row[r] += ts * std::exp(tm - m_row[r]);
          }
        }
      }
    }
  });

  acc_t* out_p = out.data_ptr<acc_t>();
  at::parallel_for(0, N, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      double m = -std::numeric_limits<double>::infinity();
      for (int64_t k = 0; k < splits; ++k) m = std::max(m, run_max_p[k * N + i]);
      double s = 0.0;
      for (int64_t k = 0; k < splits; ++k) {
        s += run_sum_p[k * N + i] * std::exp(run_max_p[k * N + i] - m);
      }
      out_p[i] = static_cast<acc_t>(m + std::log(s) + log_norm);
    }
  });
}

at::Tensor parzen_log_likelihood_cpu(const at::Tensor& x, const at::Tensor& samples,
                                     double sigma) {
  check_parzen_inputs(x, samples, sigma);
  TORCH_CHECK(x.device().is_cpu(), "x must be a CPU tensor here, got device ", x.device());
  // The tile GEMMs re-enter the dispatcher: keep them below autograd (the op has no autograd
  // formula; inputs that require grad are only read).
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const at::ScalarType out_dtype = parzen_output_dtype(x.scalar_type());
  at::Tensor out = at::empty({x.size(0)}, x.options().dtype(out_dtype));
  if (x.size(0) == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(),
                                  "parzen_log_likelihood", [&] {
                                    using in_t = scalar_t;
                                    if constexpr (std::is_same_v<in_t, double>) {
                                      parzen_kernel<double, double>(x, samples, sigma, out);
                                    } else {
                                      parzen_kernel<in_t, float>(x, samples, sigma, out);
                                    }
                                  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(aae_fast, CPU, m) {
  m.impl("parzen_log_likelihood", &parzen_log_likelihood_cpu);
}

}  // namespace aae_fast
