// Each SIMD kernel against a float64 reference written here, at sizes around
// the vector width (1, 3, 4, 5, 17, 129), and against its scalar twin.
#include <gtest/gtest.h>
#include <cmath>
#include <limits>

#include "kernels.h"
#include "kernels_ref.h"
#include "test_util.h"

using namespace mha;
using mha_test::uniform;

namespace {
const int kSizes[] = {1, 3, 4, 5, 17, 129};

TEST(Gemm, MatchesFloat64AtOddSizes) {
  std::mt19937 rng(1);
  for (int M : kSizes)
    for (int N : kSizes)
      for (int K : {1, 3, 5, 17, 129, 300}) {  // 300 > kKC: two depth passes
        for (int mode = 0; mode < 3; ++mode) {  // 0: bias, 1: no bias, 2: accumulate
          const size_t lda = K + 3, ldc = N + 2;
          auto A = uniform(M * lda, -1, 1, rng), B = uniform(K * N, -1, 1, rng), bias = uniform(N, -1, 1, rng);
          auto C0 = uniform(M * ldc, -1, 1, rng);
          std::vector<float> Bp(kernels::packed_size(K, N), -7.0f);
          kernels::pack_panels(K, N, B.data(), N, 1, Bp.data());
          std::vector<double> want(M * ldc);
          for (int i = 0; i < M; ++i)
            for (int j = 0; j < N; ++j) {
              double s = mode == 2 ? C0[i * ldc + j] : mode == 0 ? bias[j] : 0.0;
              for (int k = 0; k < K; ++k) s += static_cast<double>(A[i * lda + k]) * B[k * N + j];
              want[i * ldc + j] = s;
            }
          for (int simd = 0; simd < 2; ++simd) {
            auto C = C0;
            (simd ? kernels::gemm : kernels::gemm_ref)(M, N, K, A.data(), lda, Bp.data(), static_cast<size_t>(K) * 8,
                                                       C.data(), ldc, mode == 2, mode == 0 ? bias.data() : nullptr);
            for (int i = 0; i < M; ++i) {
              for (int j = 0; j < N; ++j)
                ASSERT_NEAR(C[i * ldc + j], want[i * ldc + j], 1e-5 * std::sqrt(K) + 1e-6)
                    << "M=" << M << " N=" << N << " K=" << K << " mode=" << mode << " simd=" << simd;
              for (size_t j = N; j < ldc; ++j)  // nothing written past column N
                ASSERT_EQ(C[i * ldc + j], C0[i * ldc + j]);
            }
          }
        }
      }
}

TEST(Pack, StridedSourceAndZeroPadding) {
  // Packing a transposed view: element (k, n) = src[n * 11 + k].
  const int K = 5, N = 13;
  std::vector<float> src(N * 11);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<float>(i);
  std::vector<float> out(kernels::packed_size(K, N), -1.0f);
  kernels::pack_panels(K, N, src.data(), 1, 11, out.data());
  for (int n = 0; n < 16; ++n)
    for (int k = 0; k < K; ++k) {
      const float got = out[(n / 8) * K * 8 + k * 8 + n % 8];
      EXPECT_EQ(got, n < N ? src[n * 11 + k] : 0.0f);
    }
}

TEST(RowOps, MaxMatchesReference) {
  std::mt19937 rng(2);
  for (int n : kSizes) {
    auto x = uniform(n, -1000, 1000, rng);
    x[n / 2] = -INFINITY;
    double want = -INFINITY;
    for (float v : x) want = std::max<double>(want, v);
    EXPECT_EQ(kernels::max_row(x.data(), n), want) << n;
    EXPECT_EQ(kernels::max_row_ref(x.data(), n), want) << n;
  }
  EXPECT_EQ(kernels::max_row(nullptr, 0), -INFINITY);
}

TEST(RowOps, ExpShiftSumAgainstFloat64WithOverflowingInputs) {
  // Inputs up to 1000: exp(x) overflows float without the max subtraction.
  std::mt19937 rng(3);
  for (int n : {1, 3, 4, 5, 17, 129, 1000}) {
    auto x = uniform(n, -1000, 1000, rng);
    if (n > 2) x[1] = -INFINITY;  // a masked entry must give exactly 0
    const float m = kernels::max_row_ref(x.data(), n);
    std::vector<double> want(n);
    double want_sum = 0;
    for (int i = 0; i < n; ++i) want_sum += want[i] = std::exp(static_cast<double>(x[i]) - m);
    for (int simd = 0; simd < 2; ++simd) {
      auto y = x;
      const float sum = (simd ? kernels::exp_shift_sum : kernels::exp_shift_sum_ref)(y.data(), n, m);
      EXPECT_NEAR(sum, want_sum, 1e-6 * want_sum) << n;
      for (int i = 0; i < n; ++i) EXPECT_NEAR(y[i], want[i], 2e-7 * want[i] + 1e-30) << "n=" << n << " i=" << i;
      if (n > 2) {
        EXPECT_EQ(y[1], 0.0f);
      }
    }
  }
}

TEST(RowOps, ExpShiftSumCarriesNaN) {
  // A NaN entry (or a +inf entry minus a +inf shift) gives NaN there and a NaN sum,
  // at every position of the vector body and of the scalar tail; -inf still gives 0.
  for (int n : {1, 3, 4, 8, 9, 17, 130})
    for (int at = 0; at < n; ++at)
      for (int simd = 0; simd < 2; ++simd) {
        std::vector<float> x(n, -1.0f);
        x[at] = NAN;
        if (n > 1) x[(at + 1) % n] = -INFINITY;
        const float sum = (simd ? kernels::exp_shift_sum : kernels::exp_shift_sum_ref)(x.data(), n, 0.0f);
        EXPECT_TRUE(std::isnan(sum)) << "n=" << n << " at=" << at << " simd=" << simd;
        EXPECT_TRUE(std::isnan(x[at])) << "n=" << n << " at=" << at << " simd=" << simd;
        if (n > 1) {
          EXPECT_EQ(x[(at + 1) % n], 0.0f);
        }
        std::vector<float> y(n, 1.0f);
        y[at] = INFINITY;
        EXPECT_TRUE(std::isnan((simd ? kernels::exp_shift_sum : kernels::exp_shift_sum_ref)(y.data(), n, INFINITY)));
        EXPECT_TRUE(std::isnan(y[at]));
      }
}

TEST(RowOps, AllFiniteAndHasNaN) {
  for (int n : {1, 3, 4, 7, 8, 15, 16, 17, 33, 100}) {
    std::vector<float> x(n);
    for (int i = 0; i < n; ++i) x[i] = (i % 3 - 1) * 1e30f;
    EXPECT_TRUE(kernels::all_finite(x.data(), n)) << n;
    EXPECT_FALSE(kernels::has_nan(x.data(), n)) << n;
    for (int at = 0; at < n; ++at)
      for (float bad : {NAN, INFINITY, -INFINITY}) {
        auto y = x;
        y[at] = bad;
        EXPECT_FALSE(kernels::all_finite(y.data(), n)) << n << " " << at << " " << bad;
        EXPECT_EQ(kernels::has_nan(y.data(), n), std::isnan(bad)) << n << " " << at;
      }
  }
  EXPECT_TRUE(kernels::all_finite(nullptr, 0));
}

TEST(RowOps, ExpAccuracyOverTheWholeRange) {
  // Every x in [-100, 0] at a fine step: relative error vs float64 exp.
  std::vector<float> x;
  for (double v = -100; v <= 0; v += 0.001) x.push_back(static_cast<float>(v));
  auto y = x;
  kernels::exp_shift_sum(y.data(), static_cast<int>(y.size()), 0.0f);
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = std::exp(static_cast<double>(x[i]));
    if (want < 1.2e-38) {  // below FLT_MIN: flushed to 0 (or a denormal-sized value)
      EXPECT_LE(y[i], 1.2e-38f);
      continue;
    }
    worst = std::max(worst, std::abs(y[i] - want) / want);
  }
  EXPECT_LT(worst, 3e-7);
}

TEST(RowOps, ScaleAddAxpby) {
  std::mt19937 rng(4);
  for (int n : kSizes) {
    auto x = uniform(n, -5, 5, rng), y = uniform(n, -5, 5, rng);
    auto a = x, b = x, c = x, d = x, e = x, f = x;
    kernels::scale_row(a.data(), n, 0.37f);
    kernels::scale_row_ref(b.data(), n, 0.37f);
    kernels::add_row(c.data(), y.data(), n);
    kernels::add_row_ref(d.data(), y.data(), n);
    kernels::axpby_row(e.data(), 0.5f, y.data(), -2.0f, n);
    kernels::axpby_row_ref(f.data(), 0.5f, y.data(), -2.0f, n);
    for (int i = 0; i < n; ++i) {
      const double xi = x[i], yi = y[i];
      EXPECT_NEAR(a[i], xi * 0.37, 1e-6);
      EXPECT_NEAR(b[i], xi * 0.37, 1e-6);
      EXPECT_NEAR(c[i], xi + yi, 1e-6);
      EXPECT_NEAR(d[i], xi + yi, 1e-6);
      EXPECT_NEAR(e[i], xi * 0.5 - 2 * yi, 1e-5);
      EXPECT_NEAR(f[i], xi * 0.5 - 2 * yi, 1e-5);
    }
  }
}

// The in-place attention kernels (a decoding step's scores and P V) against
// float64, for 1 to kMR query rows, key counts and depths around the vector
// width and the 4-vector chunk, with padded row strides (nothing past a row is
// read or written), and the literal 0 * NaN of PyTorch's math path.
TEST(AttentionRows, DotRowsAndAccumulateRowsAgainstFloat64) {
  std::mt19937 rng(11);
  const int widths[] = {1, 3, 4, 5, 15, 16, 17, 31, 32, 33, 48, 64, 129};
  for (int rows = 1; rows <= kernels::kMR; ++rows)
    for (int n : kSizes)
      for (int D : widths) {
        const size_t ldq = D + 3, ldk = D + 5, lds = n + 2, ldo = D + 7;
        auto q = uniform(rows * ldq, -2, 2, rng), k = uniform(n * ldk, -2, 2, rng), p = uniform(rows * lds, 0, 1, rng);
        std::vector<float> S(rows * lds, 7.0f), O = uniform(rows * ldo, -1, 1, rng), O0 = O;
        kernels::dot_rows(rows, n, D, q.data(), ldq, k.data(), ldk, S.data(), lds);
        kernels::accumulate_rows(rows, n, D, p.data(), lds, k.data(), ldk, O.data(), ldo);
        for (int r = 0; r < rows; ++r) {
          for (int j = 0; j < n; ++j) {
            double want = 0, mag = 0;
            for (int c = 0; c < D; ++c) want += double(q[r * ldq + c]) * k[j * ldk + c], mag += std::fabs(double(q[r * ldq + c]) * k[j * ldk + c]);
            EXPECT_NEAR(S[r * lds + j], want, 1e-6 * mag + 1e-7) << "rows " << rows << " n " << n << " D " << D;
          }
          for (size_t j = n; j < lds; ++j) EXPECT_EQ(S[r * lds + j], 7.0f) << "wrote past the row";
          for (int c = 0; c < D; ++c) {
            double want = O0[r * ldo + c], mag = std::fabs(want);
            for (int j = 0; j < n; ++j) want += double(p[r * lds + j]) * k[j * ldk + c], mag += std::fabs(double(p[r * lds + j]) * k[j * ldk + c]);
            EXPECT_NEAR(O[r * ldo + c], want, 1e-6 * mag + 1e-7) << "rows " << rows << " n " << n << " Dv " << D;
          }
          for (size_t c = D; c < ldo; ++c) EXPECT_EQ(O[r * ldo + c], O0[r * ldo + c]) << "wrote past the row";
        }
      }
  // A zero weight times a NaN value is NaN, in that value's column only.
  std::vector<float> v = {1, 2, 3, 4, 5, NAN, 7, 8, 9}, P = {0.5f, 0.0f, 0.5f}, out(3, 0.0f);
  kernels::accumulate_rows(1, 3, 3, P.data(), 3, v.data(), 3, out.data(), 3);
  EXPECT_FLOAT_EQ(out[0], 4.0f);
  EXPECT_TRUE(std::isnan(out[2]));
  EXPECT_FLOAT_EQ(out[1], 5.0f);
}
}  // namespace

// LayerNorm of one row against float64, at sizes around the vector width, with a
// large common offset (a one-pass sum of squares would cancel), with and
// without the affine parameters, and in place.
TEST(RowOps, LayerNormAgainstFloat64) {
  std::mt19937 rng(11);
  for (int n : {1, 3, 4, 5, 8, 17, 129, 768}) {
    for (float offset : {0.0f, 1000.0f}) {
      auto x = uniform(n, -1, 1, rng);
      for (auto& v : x) v += offset;
      auto g = uniform(n, 0.5f, 1.5f, rng), b = uniform(n, -1, 1, rng);
      for (bool affine : {false, true}) {
        double mean = 0, var = 0;
        for (float v : x) mean += v;
        mean /= n;
        for (float v : x) var += (v - mean) * (v - mean);
        var /= n;
        std::vector<double> ref(n);
        for (int i = 0; i < n; ++i)
          ref[i] = (x[i] - mean) / std::sqrt(var + 1e-5) * (affine ? g[i] : 1.0) + (affine ? b[i] : 0.0);
        std::vector<float> out(n), out_ref(n), inplace = x;
        const float* gp = affine ? g.data() : nullptr;
        const float* bp = affine ? b.data() : nullptr;
        kernels::layer_norm_row(x.data(), n, gp, bp, 1e-5f, out.data());
        kernels::layer_norm_row_ref(x.data(), n, gp, bp, 1e-5f, out_ref.data());
        kernels::layer_norm_row(inplace.data(), n, gp, bp, 1e-5f, inplace.data());
        std::vector<float> reff(ref.begin(), ref.end());
        // Offset 1000: float sums of ~1000s round the mean by ~1e-4; the second pass
        // corrects it (without that 5e-4 here, without two passes ~1).
        const double tol = offset == 0 ? 1e-5 : 3e-5;
        EXPECT_LE(mha_test::rel_err(out.data(), reff.data(), n), tol) << "n=" << n << " offset=" << offset;
        EXPECT_LE(mha_test::rel_err(out_ref.data(), reff.data(), n), tol) << "n=" << n;
        EXPECT_EQ(out, inplace) << "n=" << n;
      }
    }
  }
}

TEST(RowOps, ReluAndGelu) {
  std::mt19937 rng(12);
  for (int n : {1, 3, 4, 5, 17, 129}) {
    auto x = uniform(n, -6, 6, rng);
    auto a = x, r = x, g = x;
    kernels::relu_row(a.data(), n);
    kernels::relu_row_ref(r.data(), n);
    kernels::gelu_row(g.data(), n);
    for (int i = 0; i < n; ++i) {
      EXPECT_EQ(a[i], x[i] > 0 ? x[i] : 0.0f);
      EXPECT_EQ(r[i], a[i]);
      const double want = 0.5 * x[i] * (1 + std::erf(x[i] / std::sqrt(2.0)));
      EXPECT_NEAR(g[i], want, 1e-6 * std::max(1.0, std::abs(want))) << x[i];
    }
    // NaN stays NaN in every lane and in the scalar tail, as torch.relu keeps it.
    for (int j = 0; j < n; ++j) {
      auto y = x;
      y[j] = std::numeric_limits<float>::quiet_NaN();
      kernels::relu_row(y.data(), n);
      EXPECT_TRUE(std::isnan(y[j])) << "n=" << n << " at " << j;
    }
  }
}
