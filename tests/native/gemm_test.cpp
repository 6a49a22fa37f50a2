// kernels::gemm and parallel_gemm at sizes named after what they exercise, the
// way XNNPACK tests its micro-kernels (k_eq_kc, k_lt_kc, ..., m_gt_mr). Every
// size is computed from the kernel's own block constants (kernels::kMR rows
// per micro-tile, kernels::kNR columns per panel, kernels::kKC depth per pass, kernels::kNB panels per column block),
// so changing a constant moves the cases with it instead of silently leaving a
// boundary untested.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "kernels.h"
#include "kernels_ref.h"
#include "linear.h"
#include "test_util.h"

using namespace mha;
using kernels::kKC;
using kernels::kGemvPanels;
using kernels::kNB;
using kernels::kMR;
using kernels::kNR;
using mha_test::uniform;

namespace {

struct SizeClass {
  std::string name;
  std::vector<int> sizes;
  std::function<bool(int)> holds;  // what every size of the class must satisfy
};

std::vector<int> range(int lo, int hi) {  // [lo, hi]
  std::vector<int> v;
  for (int i = lo; i <= hi; ++i) v.push_back(i);
  return v;
}

// Rows: a whole micro-tile, the remainder tiles (M % MR = 1 .. MR-1) alone and
// after whole tiles, and several whole tiles.
std::vector<SizeClass> m_classes() {
  return {{"m_eq_mr", {kMR}, [](int m) { return m == kMR; }},
          {"m_lt_mr", range(1, kMR - 1), [](int m) { return m > 0 && m < kMR; }},
          {"m_gt_mr", range(kMR + 1, 2 * kMR - 1), [](int m) { return m > kMR && m % kMR != 0; }},
          {"m_div_mr", {2 * kMR, 3 * kMR}, [](int m) { return m > kMR && m % kMR == 0; }}};
}

// Columns: one full panel, a partial panel alone (the edge tile) and after full
// panels, and several full panels; for one row (a GEMV), groups of kGemvPanels
// panels (for_each_gemv_group): a whole group, one whose last panel is partial, and
// more panels, whose streams run through several panels each (10 panels: streams
// of 3, 3, 3 and 1, the partial panel last), so groups of 4, 3 and 2 panels; and
// column blocks of kNB panels.
constexpr int kGroup = kGemvPanels * kNR;
std::vector<SizeClass> n_classes() {
  return {{"n_eq_nr", {kNR}, [](int n) { return n == kNR; }},
          {"n_lt_nr", range(1, kNR - 1), [](int n) { return n > 0 && n < kNR; }},
          {"n_gt_nr", range(kNR + 1, 2 * kNR - 1), [](int n) { return n > kNR && n % kNR != 0; }},
          {"n_div_nr", {2 * kNR, 3 * kNR}, [](int n) { return n > kNR && n % kNR == 0; }},
          {"n_eq_group", {kGroup}, [](int n) { return n == kGroup; }},
          {"n_lt_group", {kGroup - kNR + 1, kGroup - 1}, [](int n) { return n > kGroup - kNR && n < kGroup; }},
          {"n_gt_group", {kGroup + 1, 2 * kGroup + kNR + 3}, [](int n) { return n > kGroup && n % kGroup != 0; }},
          // Column blocks of kNB panels: one whole block, a block and a remainder (with a partial panel).
          {"n_eq_nb", {kNB * kNR}, [](int n) { return n == kNB * kNR; }},
          {"n_gt_nb", {kNB * kNR + kNR + 1, 2 * kNB * kNR + 3}, [](int n) { return n > kNB * kNR && n % (kNB * kNR) != 0; }}};
}

// Depth: one pass exactly, a short pass, a full pass plus a tail, whole passes.
std::vector<SizeClass> k_classes() {
  return {{"k_eq_kc", {kKC}, [](int k) { return k == kKC; }},
          {"k_lt_kc", {1, 2, kKC / 2 + 1, kKC - 1}, [](int k) { return k > 0 && k < kKC; }},
          {"k_gt_kc", {kKC + 1, 2 * kKC - 1, 2 * kKC + 3}, [](int k) { return k > kKC && k % kKC != 0; }},
          {"k_div_kc", {2 * kKC, 3 * kKC}, [](int k) { return k > kKC && k % kKC == 0; }}};
}

// The classes are what their names say, and none is empty unless the constant
// makes it impossible (nothing is below a block of 1).
TEST(GemmSizeClasses, AreDerivedFromTheKernelConstants) {
  const std::pair<std::vector<SizeClass>, int> all[] = {{m_classes(), kMR}, {n_classes(), kNR}, {k_classes(), kKC}};
  for (const auto& [classes, block] : all)
    for (const SizeClass& c : classes) {
      const bool impossible = c.name.find("_lt_") != std::string::npos && block == 1;
      EXPECT_EQ(c.sizes.empty(), impossible) << c.name;
      for (int s : c.sizes) EXPECT_TRUE(c.holds(s)) << c.name << " holds " << s;
    }
}

// C = (mode 2: C0 | mode 0: bias | mode 1: 0) + A B for every M and N class at
// the given depth K, strided A and C, against float64; kernels::gemm_ref too.
// Nothing past column N of C may be written.
void check_depth_class(const SizeClass& kc) {
  std::mt19937 rng(kc.sizes.front());
  for (const SizeClass& mc : m_classes())
    for (const SizeClass& nc : n_classes())
      for (int M : mc.sizes)
        for (int N : nc.sizes)
          for (int K : kc.sizes)
            for (int mode = 0; mode < 3; ++mode) {
              const size_t lda = K + 3, ldc = N + 5;
              auto A = uniform(M * lda, -1, 1, rng), B = uniform(size_t(K) * N, -1, 1, rng), bias = uniform(N, -1, 1, rng);
              auto C0 = uniform(M * ldc, -1, 1, rng);
              std::vector<float> Bp(kernels::packed_size(K, N), NAN);
              kernels::pack_panels(K, N, B.data(), N, 1, Bp.data());
              for (int simd = 0; simd < 2; ++simd) {
                auto C = C0;
                (simd ? kernels::gemm : kernels::gemm_ref)(M, N, K, A.data(), lda, Bp.data(), size_t(K) * kNR, C.data(),
                                                           ldc, mode == 2, mode == 0 ? bias.data() : nullptr);
                for (int i = 0; i < M; ++i) {
                  for (int j = 0; j < N; ++j) {
                    double want = mode == 2 ? C0[i * ldc + j] : mode == 0 ? bias[j] : 0.0;
                    for (int k = 0; k < K; ++k) want += double(A[i * lda + k]) * B[size_t(k) * N + j];
                    ASSERT_NEAR(C[i * ldc + j], want, 1e-5 * std::sqrt(K) + 1e-6)
                        << mc.name << " M=" << M << " " << nc.name << " N=" << N << " " << kc.name << " K=" << K
                        << " mode=" << mode << " simd=" << simd << " at " << i << "," << j;
                  }
                  for (size_t j = N; j < ldc; ++j)
                    ASSERT_EQ(C[i * ldc + j], C0[i * ldc + j]) << "written past column N: " << mc.name << " M=" << M << " "
                                                               << nc.name << " N=" << N << " K=" << K << " simd=" << simd;
                }
              }
            }
}

TEST(Gemm, KEqKC) { check_depth_class(k_classes()[0]); }
TEST(Gemm, KLtKC) { check_depth_class(k_classes()[1]); }
TEST(Gemm, KGtKC) { check_depth_class(k_classes()[2]); }
TEST(Gemm, KDivKC) { check_depth_class(k_classes()[3]); }

// parallel_gemm splits C into row blocks (whole micro-tiles) and column blocks
// (whole panels): sizes around those, on 1 to 3 threads, equal the single call;
// so does a GEMM phase run by a team of each size whatever its work.
TEST(ParallelGemm, EqualsOneGemmAtBlockBoundaries) {
  std::mt19937 rng(5);
  const int Ms[] = {1, kMR - 1, kMR + 1, 16 * kMR, 16 * kMR + 1, 33 * kMR + 3};
  const int Ns[] = {1, kNR + 1, 8 * kNR, 24 * kNR + 5, 64 * kNR + 3};
  const int Ks[] = {1, kKC + 1};
  for (int threads = 1; threads <= 3; ++threads) {
    ThreadPool pool(threads);
    for (int M : Ms)
      for (int N : Ns)
        for (int K : Ks) {
          const size_t lda = K + 1, ldc = N + 2;
          auto A = uniform(M * lda, -1, 1, rng), B = uniform(size_t(K) * N, -1, 1, rng), bias = uniform(N, -1, 1, rng);
          std::vector<float> Bp(kernels::packed_size(K, N));
          kernels::pack_panels(K, N, B.data(), N, 1, Bp.data());
          std::vector<float> want(M * ldc, 7.0f), got(M * ldc, 7.0f);
          kernels::gemm(M, N, K, A.data(), lda, Bp.data(), size_t(K) * kNR, want.data(), ldc, false, bias.data());
          parallel_gemm(pool, M, N, K, A.data(), lda, Bp.data(), size_t(K) * kNR, got.data(), ldc, bias.data());
          ASSERT_EQ(got, want) << "M=" << M << " N=" << N << " K=" << K << " threads=" << threads;
          Gemm g;
          g.M = M, g.N = N, g.K = K, g.A = A.data(), g.lda = lda, g.Bp = Bp.data(), g.panel_stride = size_t(K) * kNR;
          g.C = got.data(), g.ldc = ldc, g.bias = bias.data();
          std::fill(got.begin(), got.end(), 7.0f);
          pool.job(threads, [&](ThreadPool::Team& team) { gemm_phase(team, g); });
          ASSERT_EQ(got, want) << "team: M=" << M << " N=" << N << " K=" << K << " threads=" << threads;
        }
  }
}

// A one-row GEMV on several threads is cut into guided blocks: consecutive, whole
// units (kGemvPanels panels, or the gated pairs' width) but the end, covering the
// columns once, never growing, the first a 1 / (2 threads) share and the last
// ones a single unit, so that long blocks stream first and the threads end close together.
TEST(ParallelGemm, OneRowGuidedBlocks) {
  const int unit = kernels::kGemvPanels * kNR;
  for (int threads = 2; threads <= 4; ++threads)
    for (int N : {1, unit - 1, unit, unit + 1, 7 * unit + 3, 96 * unit, 1536 * unit + 5}) {
      const GemmSplit s = split_gemm(1, N, threads);
      ASSERT_EQ(s.unit, unit);
      const int units = (N + unit - 1) / unit;
      int next = 0, last = N;
      for (int t = 0; t < s.tasks; ++t) {
        int first = -1, count = -1;
        guided_columns(s, N, t, first, count);
        ASSERT_EQ(first, next) << "N=" << N << " task " << t;
        ASSERT_GT(count, 0);
        ASSERT_LE(count, last) << "N=" << N << " task " << t;
        if (first + count < N) {
          ASSERT_EQ(count % unit, 0) << "N=" << N << " task " << t;
        }
        if (t == 0) {
          ASSERT_EQ((count + unit - 1) / unit, (units + 2 * threads - 1) / (2 * threads)) << "N=" << N;
        }
        next = first + count, last = count;
      }
      ASSERT_EQ(next, N) << "N=" << N << " threads " << threads;
      if (units > 1) {
        ASSERT_LE(last, unit);
      }
      ASSERT_LE(s.tasks, units);
    }
  EXPECT_EQ(split_gemm(1, 96 * unit, 1).unit, 0) << "one thread: one block";
}

// A GEMM phase's epilogue (residual, ReLU, GELU) gives what the separate passes
// give, bit for bit, and GEMMs sharing a phase each get their own tiles.
TEST(ParallelGemm, EpiloguesAndSeveralGemmsInOnePhase) {
  std::mt19937 rng(6);
  const int M = 37, N = 3 * kNR + 5, K = 19;
  auto A = uniform(size_t(M) * K, -1, 1, rng), B = uniform(size_t(K) * N, -1, 1, rng), bias = uniform(N, -1, 1, rng);
  auto R = uniform(size_t(M) * N, -1, 1, rng);
  std::vector<float> Bp(kernels::packed_size(K, N));
  kernels::pack_panels(K, N, B.data(), N, 1, Bp.data());
  std::vector<float> plain(size_t(M) * N);
  kernels::gemm(M, N, K, A.data(), K, Bp.data(), size_t(K) * kNR, plain.data(), N, false, bias.data());
  for (int threads = 1; threads <= 3; ++threads) {
    ThreadPool pool(threads);
    Gemm g[3];
    std::vector<float> out[3];
    for (int e = 0; e < 3; ++e) {
      out[e].assign(size_t(M) * N, NAN);
      g[e].M = M, g[e].N = N, g[e].K = K, g[e].A = A.data(), g[e].lda = K, g[e].Bp = Bp.data();
      g[e].panel_stride = size_t(K) * kNR, g[e].C = out[e].data(), g[e].ldc = N, g[e].bias = bias.data();
    }
    g[0].epilogue.residual = R.data(), g[0].epilogue.ldr = N;
    g[1].epilogue.act = Epilogue::Act::kRelu;
    g[2].epilogue.act = Epilogue::Act::kGelu;
    pool.job(threads, [&](ThreadPool::Team& team) { gemm_phase(team, g, 3); });
    for (int i = 0; i < M; ++i) {
      std::vector<float> add(plain.begin() + size_t(i) * N, plain.begin() + size_t(i + 1) * N), relu = add, gelu = add;
      kernels::add_row(add.data(), R.data() + size_t(i) * N, N);
      kernels::relu_row(relu.data(), N);
      kernels::gelu_row(gelu.data(), N);
      for (int j = 0; j < N; ++j) {
        ASSERT_EQ(out[0][size_t(i) * N + j], add[j]) << i << "," << j << " threads " << threads;
        ASSERT_EQ(out[1][size_t(i) * N + j], relu[j]) << i << "," << j << " threads " << threads;
        ASSERT_EQ(out[2][size_t(i) * N + j], gelu[j]) << i << "," << j << " threads " << threads;
      }
    }
  }
}

}  // namespace
