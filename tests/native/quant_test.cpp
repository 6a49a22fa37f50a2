// float16 and int8 weights (quant.h, PackedMatrix in linear.h): the conversions
// against their scalar twins, every GEMM size class derived from the kernels'
// own constants (the depth of a pass, the panel width, the micro-tile and
// row-block heights) against the float64 product with the dequantized weights
// and bit for bit against the scalar twins, the int32 accumulator bound with
// adversarial data, the thread split, and the layers built on them
// (MultiHeadAttention, FeedForward plain and gated, the encoder and decoder
// blocks) against the float64 references with the dequantized weights.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "feed_forward.h"
#include "kernels_ref.h"
#include "linear.h"
#include "mha.h"
#include "quant.h"
#include "reference.h"
#include "test_util.h"
#include "transformer.h"

using namespace mha;
using kernels::kGemvPanels;
using kernels::kI8KC;
using kernels::kI8Rows;
using kernels::kKC;
using kernels::kMR;
using kernels::kNR;
using mha_test::rel_err;
using mha_test::uniform;

namespace {

const char* name(WeightType t) { return t == WeightType::kF16 ? "f16" : t == WeightType::kInt8 ? "int8" : "f32"; }

// W [N, K] as the twins store it: float16 halves, or int8 values with a scale per
// row; deq is what they stand for.
struct Quantized {
  std::vector<uint16_t> half;
  std::vector<int8_t> q;
  std::vector<float> scale, deq;
};

Quantized quantize(WeightType t, const std::vector<float>& w, int N, int K) {
  Quantized r;
  r.deq.resize(w.size());
  if (t == WeightType::kF16) {
    r.half.resize(w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      r.half[i] = kernels::half_from_float_ref(w[i]);
      r.deq[i] = static_cast<float>(kernels::half_to_double_ref(r.half[i]));
    }
  } else if (t == WeightType::kInt8) {
    r.q.resize(w.size()), r.scale.resize(N);
    for (int n = 0; n < N; ++n) {
      kernels::quantize_row_i8_ref(w.data() + size_t(n) * K, K, r.q.data() + size_t(n) * K, &r.scale[n]);
      for (int k = 0; k < K; ++k) r.deq[size_t(n) * K + k] = r.q[size_t(n) * K + k] * r.scale[n];
    }
  } else {
    r.deq = w;
  }
  return r;
}

// ---- conversions -------------------------------------------------------------

TEST(Float16, EveryHalfConvertsExactlyAndBack) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const double want = kernels::half_to_double_ref(uint16_t(h));
    const float got = kernels::float_from_half(uint16_t(h));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << h;
      continue;
    }
    ASSERT_EQ(double(got), want) << h;
    ASSERT_EQ(std::signbit(got), bool(h & 0x8000)) << h;
    ASSERT_EQ(kernels::half_from_float(got), h) << h;
  }
}

TEST(Float16, RoundsToNearestEvenAsTheTwin) {
  std::mt19937 rng(1);
  std::vector<float> xs = {0.0f, -0.0f, 65504.0f, 65519.996f, 65520.0f, -65520.0f, 1e9f, INFINITY, -INFINITY,
                           0x1p-14f, 0x1p-15f, 0x1p-24f, 0x1p-25f, 0x1.8p-25f, 0x1p-26f, 1e-30f, 0x1.002p0f,
                           0x1.006p0f, 0x1.001p0f, 0x1.003p0f, 0x1.ffep-15f, 0x1.fffp-15f, 2049.0f, 2051.0f};
  for (int i = 0; i < 200000; ++i) {
    const int e = int(rng() % 44) - 28;
    xs.push_back(std::ldexp(uniform(1, -1, 1, rng)[0], e));
  }
  // Every midpoint between neighbouring finite halves (ties go to the even one).
  for (uint32_t h = 0; h < 0x7BFF; ++h) {
    const double a = kernels::half_to_double_ref(uint16_t(h)), b = kernels::half_to_double_ref(uint16_t(h + 1));
    xs.push_back(float((a + b) / 2));
  }
  for (float x : xs) ASSERT_EQ(kernels::half_from_float(x), kernels::half_from_float_ref(x)) << x;
}

TEST(Int8, ActivationQuantizationMatchesTheTwin) {
  std::mt19937 rng(2);
  for (int n : {1, 2, 3, 7, 8, 9, 31, kI8KC - 1, kI8KC})
    for (float range : {1.0f, 1e-3f, 1e-33f, 1e-38f, 1e-42f, 1e38f}) {
      auto x = uniform(n, -range, range, rng);
      if (n > 4) x[n / 2] = range;  // at the row's maximum
      std::vector<int16_t> q(n + 1, 7), want(n + 1, 7);
      float s, t, ws, wt;
      kernels::quantize_row_i16(x.data(), n, q.data(), &s, &t);
      kernels::quantize_row_i16_ref(x.data(), n, want.data(), &ws, &wt);
      ASSERT_EQ(s, ws) << n << " " << range;
      ASSERT_EQ(t, wt) << n << " " << range;
      ASSERT_EQ(q, want) << n << " " << range;
      ASSERT_TRUE(std::isnormal(s)) << n << " " << range;
      // Each value within half a step (max|x| / kActQMax), plus the float rounding of x / step and of q * step.
      double err = 0, m = 0;
      for (int k = 0; k < n; ++k)
        err = std::max(err, std::fabs(double(q[k]) * s * t - x[k])), m = std::max(m, double(std::fabs(x[k])));
      EXPECT_LE(err, m / kernels::kActQMax * 0.51) << n << " " << range;
    }
  // Zeros: scale 0; a NaN or an infinity anywhere: NaN.
  std::vector<float> z(9, 0.0f);
  std::vector<int16_t> q(10);
  float s, t;
  kernels::quantize_row_i16(z.data(), 9, q.data(), &s, &t);
  EXPECT_EQ(s, 0.0f);
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    z[5] = bad;
    kernels::quantize_row_i16(z.data(), 9, q.data(), &s, &t);
    EXPECT_TRUE(std::isnan(s)) << bad;
  }
}

// The kI7 kernel's activations: the 14-bit q of the twin (qmax 8191), offset by 8192 and split
// into 7-bit halves, four hi then four lo per k-quad, quad_stride apart; zeros past n; a row of
// zeros, or one holding a NaN or an infinity, u = 8192.
TEST(Int8, SevenBitHalvesMatchTheTwin) {
  std::mt19937 rng(5);
  for (int n : {1, 2, 3, 4, 5, 7, 8, 9, 31, kI8KC - 1, kI8KC})
    for (float range : {1.0f, 1e-3f, 1e-38f, 1e-42f, 1e38f, 0.0f, NAN})
      for (size_t stride : {size_t(8), size_t(24)}) {
        auto x = uniform(n, -range, range, rng);
        if (n > 4 && range == range) x[n / 2] = range;  // at the row's maximum
        if (range != range) x[n - 1] = NAN;
        if (range == 0.0f) std::fill(x.begin(), x.end(), 0.0f);
        const int nq = (n + 3) / 4;
        std::vector<uint8_t> got(nq * stride, 0xAB), want(nq * stride, 0xAB);
        std::vector<int16_t> q(n + 1);
        float s, t, ws, wt;
        kernels::quantize_row_u14(x.data(), n, got.data(), stride, &s, &t);
        kernels::quantize_row_i16_ref(x.data(), n, q.data(), &ws, &wt, kernels::kAct7QMax);
        for (int k = 0; k < 4 * nq; ++k) {
          const int u = k < n ? q[k] + kernels::kAct7Offset : 0;
          ASSERT_TRUE(u >= 0 && u <= 16383);
          want[(k / 4) * stride + k % 4] = uint8_t(u >> 7), want[(k / 4) * stride + 4 + k % 4] = uint8_t(u & 127);
        }
        ASSERT_EQ(got, want) << n << " " << range << " " << stride;
        if (range == range) ASSERT_EQ(s, ws) << n << " " << range;
        else ASSERT_TRUE(std::isnan(s));
        ASSERT_EQ(t, wt) << n << " " << range;
      }
}

// What each build has: the kI7 kernel natively (emulated, for these tests) and chosen by
// set_i8_dot; new matrices take the choice, older ones keep their layout.
TEST(Int8, KernelChoiceIsPerMatrix) {
  const kernels::I8Dot before = kernels::i8_dot();
  EXPECT_TRUE(kernels::i8_dot_available(kernels::I8Dot::kI16));
  EXPECT_TRUE(kernels::i8_dot_available(kernels::I8Dot::kI7));
  EXPECT_FALSE(kernels::set_i8_dot(static_cast<kernels::I8Dot>(2)));
  EXPECT_EQ(kernels::i8_dot(), before);
  std::mt19937 rng(6);
  const int K = 37, N = 11;
  const auto w = uniform(size_t(N) * K, -1, 1, rng), a = uniform(K, -1, 1, rng);
  PackedMatrix p[2];
  std::vector<float> y[2];
  for (int d = 0; d < 2; ++d) {
    ASSERT_TRUE(kernels::set_i8_dot(static_cast<kernels::I8Dot>(d)));
    ASSERT_EQ(p[d].reserve(K, N, WeightType::kInt8), Status::kOk);
    ASSERT_EQ(p[d].fill(0, N, w.data()), Status::kOk);
  }
  ASSERT_TRUE(kernels::set_i8_dot(before));
  for (int d = 0; d < 2; ++d) {
    EXPECT_EQ(p[d].i8_dot(), static_cast<kernels::I8Dot>(d));
    y[d].assign(N, NAN);
    gemm_tile(p[d].gemm(1, a.data(), K, y[d].data(), N, 0, N, nullptr), split_gemm(1, N, 1), 0);
  }
  std::vector<float> deq(size_t(N) * K);
  p[0].dequantize(0, N, deq.data());
  for (int j = 0; j < N; ++j) {
    double ref = 0;
    for (int k = 0; k < K; ++k) ref += double(a[k]) * deq[size_t(j) * K + k];
    EXPECT_NEAR(y[0][j], ref, 1e-4) << j;
    EXPECT_NEAR(y[1][j], ref, 4e-4) << j;  // 14-bit activations
  }
}

// ---- PackedMatrix ------------------------------------------------------------

TEST(PackedMatrix, StoresWhatTheTwinsQuantizeAndChecksItsInput) {
  std::mt19937 rng(3);
  const int K = 37, N = 29;
  auto w = uniform(size_t(N) * K, -2, 2, rng);
  for (int k = 0; k < K; ++k) w[size_t(3) * K + k] = 0.0f;  // an all-zero row: scale 0
  for (WeightType t : {WeightType::kF32, WeightType::kF16, WeightType::kInt8}) {
    const Quantized qz = quantize(t, w, N, K);
    PackedMatrix p;
    ASSERT_EQ(p.reserve(K, N, t), Status::kOk);
    EXPECT_EQ(p.type(), t);
    std::vector<float> got(w.size(), NAN);
    p.dequantize(0, N, got.data());
    for (float x : got) ASSERT_EQ(x, 0.0f) << "reserve zeroes " << name(t);
    // Two fills: rows 0..15 as columns 0..15, the rest at 16.
    ASSERT_EQ(p.fill(0, 16, w.data()), Status::kOk);
    ASSERT_EQ(p.fill(16, N - 16, w.data() + size_t(16) * K), Status::kOk);
    p.dequantize(0, N, got.data());
    ASSERT_EQ(got, qz.deq) << name(t);
    EXPECT_EQ(p.memory_bytes() >= PackedMatrix::bytes(K, N, t), true);
    // Refused: columns not starting a panel, past N; nothing is written then.
    EXPECT_EQ(p.fill(4, 2, w.data()), Status::kInvalidArgument);
    EXPECT_EQ(p.fill(24, N - 23, w.data()), Status::kInvalidArgument);
    auto bad = w;
    for (float x : {NAN, INFINITY, 65520.0f, -1e6f}) {
      bad[size_t(5) * K + 7] = x;
      const bool refused = t == WeightType::kF16 || (t == WeightType::kInt8 && !std::isfinite(x));
      EXPECT_EQ(PackedMatrix::check(t, bad.data(), bad.size()), refused ? Status::kInvalidArgument : Status::kOk) << x;
      EXPECT_EQ(p.fill(0, N, bad.data()), refused ? Status::kInvalidArgument : Status::kOk) << name(t) << " " << x;
      if (refused) {
        p.dequantize(0, N, got.data());
        ASSERT_EQ(got, qz.deq) << "a refused fill writes nothing";
      }
    }
    bad[size_t(5) * K + 7] = 65504.0f;  // the largest half
    EXPECT_EQ(PackedMatrix::check(t, bad.data(), bad.size()), Status::kOk);
    // Pre-quantized values: int8 matrices only, finite scales.
    if (t == WeightType::kInt8) {
      PackedMatrix p2;
      ASSERT_EQ(p2.reserve(K, N, t), Status::kOk);
      ASSERT_EQ(p2.fill_int8(0, N, qz.q.data(), qz.scale.data()), Status::kOk);
      p2.dequantize(0, N, got.data());
      ASSERT_EQ(got, qz.deq);
      auto sc = qz.scale;
      sc[2] = NAN;
      EXPECT_EQ(p2.fill_int8(0, N, qz.q.data(), sc.data()), Status::kInvalidArgument);
    } else {
      EXPECT_EQ(p.fill_int8(0, N, qz.q.data(), w.data()), Status::kInvalidArgument);
    }
  }
  PackedMatrix p;
  EXPECT_EQ(p.reserve(0, 4, WeightType::kF16), Status::kInvalidArgument);
  EXPECT_EQ(p.reserve(4, 4, static_cast<WeightType>(3)), Status::kInvalidArgument);
  // A quarter and a half of float32's bytes (int8: plus the scales).
  EXPECT_EQ(PackedMatrix::bytes(1024, 4096, WeightType::kF32), 4u * 1024 * 4096);
  EXPECT_EQ(PackedMatrix::bytes(1024, 4096, WeightType::kF16), 2u * 1024 * 4096);
  // kI7 panels also hold a column sum per pass (kI8KC) of every column.
  const size_t sums = kernels::i8_dot() == kernels::I8Dot::kI7 ? 4u * 4096 * (1024 / kI8KC) : 0;
  EXPECT_EQ(PackedMatrix::bytes(1024, 4096, WeightType::kInt8), 1024u * 4096 + 4 * 4096 + sums);
}

// The int8 row packer (eight values per step, then one at a time) at every length around its
// step, with exact ties: a row whose largest |w| is 127/8 has scale 1/8 exactly, and w = (m +
// 1/2) / 8 is a tie, which goes to the even integer. A zero row refilled over a non-zero one
// holds zeros.
TEST(PackedMatrix, Int8RowsRoundTiesToEvenAtEveryLength) {
  for (int K : {1, 2, 7, 8, 9, 15, 16, 17, 37, 576}) {
    const int N = 9;
    std::vector<float> w(size_t(N) * K);
    std::vector<float> want(w.size());
    for (int r = 0; r < N; ++r)
      for (int k = 0; k < K; ++k) {
        const int m = (k * 37 + r * 11) % 254 - 127;  // -127 .. 126
        float& x = w[size_t(r) * K + k];
        x = k == 0 ? (r % 2 ? -127.0f : 127.0f) / 8 : (m + 0.5f) / 8;  // the largest first: scale 1/8
        const double t = k == 0 ? (r % 2 ? -127 : 127) : m + 0.5;
        double q = std::floor(t);
        if (t - q > 0.5 || (t - q == 0.5 && std::fmod(q, 2.0) != 0.0)) q += 1;  // ties to even
        want[size_t(r) * K + k] = static_cast<float>(q / 8);
      }
    PackedMatrix p;
    ASSERT_EQ(p.reserve(K, N, WeightType::kInt8), Status::kOk);
    ASSERT_EQ(p.fill(0, N, w.data()), Status::kOk);
    std::vector<float> got(w.size());
    p.dequantize(0, N, got.data());
    for (size_t i = 0; i < w.size(); ++i) ASSERT_EQ(got[i], want[i]) << "K=" << K << " at " << i << " w=" << w[i];
    std::vector<float> zero(size_t(8) * K, 0.0f);
    ASSERT_EQ(p.fill(0, 8, zero.data()), Status::kOk);
    p.dequantize(0, N, got.data());
    for (size_t i = 0; i < zero.size(); ++i) ASSERT_EQ(got[i], 0.0f) << "K=" << K;
    for (size_t i = zero.size(); i < w.size(); ++i) ASSERT_EQ(got[i], want[i]) << "K=" << K << " row 8";
  }
}

// The float16 row packer (eight values per step, then one at a time) against half_from_float,
// itself checked against every half above: normal and subnormal halves, the boundary between
// them, ties, signed zeros and the largest values that still round to 65504.
TEST(PackedMatrix, Float16RowsEqualTheScalarConversionAtEveryLength) {
  std::mt19937 rng(17);
  const float special[] = {0.0f, -0.0f, 65504.0f, -65519.99f, 65519.0f, 0x1p-14f, 0x1.ffcp-15f, -0x1p-24f, 0x1p-25f, 0x1.8p-24f,
                           1.0f + 0x1p-11f, 1.0f + 0x3p-11f, 2049.0f, -3.0e-5f, 6.1e-5f, 1e-8f};
  for (int K : {1, 7, 8, 9, 15, 16, 17, 37, 576}) {
    const int N = 9;
    auto w = uniform(size_t(N) * K, -70.0f, 70.0f, rng);
    for (size_t i = 0; i < w.size(); i += 3) w[i] = special[(i / 3) % (sizeof special / sizeof *special)];
    for (size_t i = 1; i < w.size(); i += 7) w[i] *= 1e-5f;  // subnormal halves
    PackedMatrix p;
    ASSERT_EQ(p.reserve(K, N, WeightType::kF16), Status::kOk);
    ASSERT_EQ(p.fill(0, N, w.data()), Status::kOk);
    std::vector<float> got(w.size());
    p.dequantize(0, N, got.data());
    for (size_t i = 0; i < w.size(); ++i) {
      const float want = kernels::float_from_half(kernels::half_from_float(w[i]));
      ASSERT_EQ(std::memcmp(&got[i], &want, 4), 0) << "K=" << K << " at " << i << " w=" << w[i] << " got " << got[i] << " want " << want;
    }
  }
}

// ---- GEMM size classes -------------------------------------------------------

struct SizeClass {
  std::string name;
  std::vector<int> sizes;
  std::function<bool(int)> holds;
};

std::vector<int> range(int lo, int hi) {
  std::vector<int> v;
  for (int i = lo; i <= hi; ++i) v.push_back(i);
  return v;
}

// Rows: micro-tiles as in gemm_test, and past one int8 row block (kI8Rows).
std::vector<SizeClass> m_classes() {
  return {{"m_eq_mr", {kMR}, [](int m) { return m == kMR; }},
          {"m_lt_mr", range(1, kMR - 1), [](int m) { return m > 0 && m < kMR; }},
          {"m_gt_mr", range(kMR + 1, 2 * kMR - 1), [](int m) { return m > kMR && m % kMR != 0; }},
          {"m_div_mr", {2 * kMR, 3 * kMR}, [](int m) { return m > kMR && m % kMR == 0; }},
          {"m_gt_rows", {kI8Rows + 1, 2 * kI8Rows + kMR + 1}, [](int m) { return m > kI8Rows && m % kI8Rows != 0; }}};
}

constexpr int kGroup = kGemvPanels * kNR;
static_assert(kernels::kF16Panels == kGemvPanels, "the n_*_group classes are float16's conversion blocks too");
std::vector<SizeClass> n_classes() {
  return {{"n_eq_nr", {kNR}, [](int n) { return n == kNR; }},
          {"n_lt_nr", range(1, kNR - 1), [](int n) { return n > 0 && n < kNR; }},
          {"n_gt_nr", range(kNR + 1, 2 * kNR - 1), [](int n) { return n > kNR && n % kNR != 0; }},
          {"n_div_nr", {2 * kNR, 3 * kNR}, [](int n) { return n > kNR && n % kNR == 0; }},
          // The one-row GEMV's groups of kGemvPanels panels (for_each_gemv_group): a
          // whole group, one whose last panel is partial, and more panels, whose
          // streams run through several panels each (groups of 4, 3 and 2 panels).
          {"n_eq_group", {kGroup}, [](int n) { return n == kGroup; }},
          {"n_lt_group", {kGroup - kNR + 1, kGroup - 1}, [](int n) { return n > kGroup - kNR && n < kGroup; }},
          {"n_gt_group", {kGroup + 1, 2 * kGroup + kNR + 3}, [](int n) { return n > kGroup && n % kGroup != 0; }}};
}

// Depth, around the type's pass (kKC for float16's converted slices, kI8KC for
// int8's exact int32 sums); odd sizes throughout (int8 works on k-pairs).
int depth_block(WeightType t) { return t == WeightType::kInt8 ? kI8KC : kKC; }
std::vector<SizeClass> k_classes(int kc) {
  return {{"k_eq_kc", {kc}, [kc](int k) { return k == kc; }},
          {"k_lt_kc", {1, 2, 3, kc / 2 + 1, kc - 1}, [kc](int k) { return k > 0 && k < kc; }},
          {"k_gt_kc", {kc + 1, 2 * kc - 1, 2 * kc + 3}, [kc](int k) { return k > kc && k % kc != 0; }},
          {"k_div_kc", {2 * kc}, [kc](int k) { return k > kc && k % kc == 0; }}};
}

TEST(QuantGemmSizeClasses, AreDerivedFromTheKernelConstants) {
  for (WeightType t : {WeightType::kF16, WeightType::kInt8}) {
    const std::pair<std::vector<SizeClass>, int> all[] = {
        {m_classes(), kMR}, {n_classes(), kNR}, {k_classes(depth_block(t)), depth_block(t)}};
    for (const auto& [classes, block] : all)
      for (const SizeClass& c : classes) {
        EXPECT_FALSE(c.sizes.empty()) << c.name;
        for (int s : c.sizes) EXPECT_TRUE(c.holds(s)) << c.name << " holds " << s;
      }
  }
  static_assert(kI8Rows % kMR == 0 && kI8KC % 2 == 0, "");
}

double worst_int8 = 0, worst_f16 = 0;  // the largest errors seen, printed at the end

// C = A W^T + bias (or no bias) through gemm_tile for every M and N class at the
// depths of kc: against the float64 product with the dequantized weights (int8:
// 2e-3 of max(1, max|ref|), float16: 1e-5), bit for bit against the scalar twin, and
// nothing written past column N.
void check_depth_class(WeightType t, const SizeClass& kc) {
  std::mt19937 rng(kc.sizes.front() * 3 + int(t));
  const double tol = t == WeightType::kInt8 ? 2e-3 : 1e-5;
  for (const SizeClass& mc : m_classes())
    for (const SizeClass& nc : n_classes())
      for (int M : mc.sizes)
        for (int N : nc.sizes)
          for (int K : kc.sizes) {
            const size_t lda = K + 3, ldc = N + 5;
            auto A = uniform(M * lda, -1, 1, rng), W = uniform(size_t(N) * K, -1, 1, rng), bias = uniform(N, -1, 1, rng);
            const Quantized qz = quantize(t, W, N, K);
            PackedMatrix p;
            ASSERT_EQ(p.reserve(K, N, t), Status::kOk);
            ASSERT_EQ(p.fill(0, N, W.data()), Status::kOk);
            for (int with_bias = 0; with_bias < 2; ++with_bias) {
              const float* b = with_bias ? bias.data() : nullptr;
              std::vector<float> C(M * ldc, 7.0f), twin(M * ldc, 7.0f);
              const Gemm g = p.gemm(M, A.data(), lda, C.data(), ldc, 0, N, b);
              gemm_tile(g, split_gemm(M, N, 1), 0);
              if (t == WeightType::kInt8)
                kernels::gemm_i8_ref(M, N, K, A.data(), lda, qz.q.data(), qz.scale.data(), twin.data(), ldc, b);
              else
                kernels::gemm_f16_ref(M, N, K, A.data(), lda, qz.half.data(), twin.data(), ldc, b);
              std::vector<double> ref(size_t(M) * N);
              double mx = 0;
              for (int i = 0; i < M; ++i)
                for (int j = 0; j < N; ++j) {
                  double s = b ? b[j] : 0.0;
                  for (int k = 0; k < K; ++k) s += double(A[i * lda + k]) * qz.deq[size_t(j) * K + k];
                  ref[size_t(i) * N + j] = s, mx = std::max(mx, std::fabs(s));
                }
              double err = 0;
              for (int i = 0; i < M; ++i) {
                for (int j = 0; j < N; ++j) {
                  ASSERT_EQ(C[i * ldc + j], twin[i * ldc + j])
                      << name(t) << " twin " << mc.name << " M=" << M << " " << nc.name << " N=" << N << " " << kc.name
                      << " K=" << K << " at " << i << "," << j;
                  err = std::max(err, std::fabs(C[i * ldc + j] - ref[size_t(i) * N + j]));
                }
                for (size_t j = N; j < ldc; ++j) ASSERT_EQ(C[i * ldc + j], 7.0f) << "written past column N";
              }
              // Relative to max(1, max|ref|), as mha_test::rel_err: a single short dot product of values
              // of +-1 may cancel to almost nothing, whereas the errors scale with its terms.
              const double denom = std::max(1.0, mx);
              ASSERT_LE(err, tol * denom) << name(t) << " " << mc.name << " M=" << M << " " << nc.name << " N=" << N << " "
                                       << kc.name << " K=" << K;
              double& worst = t == WeightType::kInt8 ? worst_int8 : worst_f16;
              if (denom > 0) worst = std::max(worst, err / denom);
            }
          }
}

TEST(Int8Gemm, KEqKC) { check_depth_class(WeightType::kInt8, k_classes(kI8KC)[0]); }
TEST(Int8Gemm, KLtKC) { check_depth_class(WeightType::kInt8, k_classes(kI8KC)[1]); }
TEST(Int8Gemm, KGtKC) { check_depth_class(WeightType::kInt8, k_classes(kI8KC)[2]); }
TEST(Int8Gemm, KDivKC) { check_depth_class(WeightType::kInt8, k_classes(kI8KC)[3]); }
// Up to kMR rows (a GEMV) quantize kI8Rows / M passes at once and read each panel
// through them: depths at, past and twice past one such chunk, for every M.
TEST(Int8Gemm, FewRowsPastAChunkOfPasses) {
  std::mt19937 rng(77);
  const int N = kNR + 3;
  for (int M = 1; M <= kMR; ++M) {
    const int chunk = kI8Rows / M * kI8KC;
    for (int K : {chunk, chunk + 3, 2 * chunk + 1}) {
      const size_t lda = K + 1, ldc = N + 2;
      auto A = uniform(M * lda, -1, 1, rng), W = uniform(size_t(N) * K, -1, 1, rng), bias = uniform(N, -1, 1, rng);
      const Quantized qz = quantize(WeightType::kInt8, W, N, K);
      PackedMatrix p;
      ASSERT_EQ(p.reserve(K, N, WeightType::kInt8), Status::kOk);
      ASSERT_EQ(p.fill(0, N, W.data()), Status::kOk);
      std::vector<float> C(M * ldc, 7.0f), twin(M * ldc, 7.0f);
      gemm_tile(p.gemm(M, A.data(), lda, C.data(), ldc, 0, N, bias.data()), split_gemm(M, N, 1), 0);
      kernels::gemm_i8_ref(M, N, K, A.data(), lda, qz.q.data(), qz.scale.data(), twin.data(), ldc, bias.data());
      for (int i = 0; i < M; ++i) {
        for (int j = 0; j < N; ++j) {
          double ref = bias[j];
          for (int k = 0; k < K; ++k) ref += double(A[i * lda + k]) * qz.deq[size_t(j) * K + k];
          ASSERT_EQ(C[i * ldc + j], twin[i * ldc + j]) << "M=" << M << " K=" << K << " at " << i << "," << j;
          ASSERT_NEAR(C[i * ldc + j], ref, 2e-3 * std::max(1.0, std::sqrt(double(K)))) << "M=" << M << " K=" << K;
        }
        for (size_t j = N; j < ldc; ++j) ASSERT_EQ(C[i * ldc + j], 7.0f) << "written past column N";
      }
    }
  }
}

TEST(F16Gemm, KEqKC) { check_depth_class(WeightType::kF16, k_classes(kKC)[0]); }
TEST(F16Gemm, KLtKC) { check_depth_class(WeightType::kF16, k_classes(kKC)[1]); }
TEST(F16Gemm, KGtKC) { check_depth_class(WeightType::kF16, k_classes(kKC)[2]); }
TEST(F16Gemm, KDivKC) {
  check_depth_class(WeightType::kF16, k_classes(kKC)[3]);
  std::printf("[ info ] largest error / max(1, max|ref|) seen: int8 %.2e, float16 %.2e\n", worst_int8, worst_f16);
}

// Every finite half through both float16 paths (converted in registers for up to
// kMR rows, through a float32 slice for more): A = I gives W^T back exactly.
TEST(F16Gemm, EveryFiniteHalfComesBackExactly) {
  const int K = 2 * kMR + 1;  // rows of A = I: more than kMR
  std::vector<float> w;
  for (uint32_t h = 0; h < 65536; ++h)
    if ((h & 0x7C00) != 0x7C00) w.push_back(float(kernels::half_to_double_ref(uint16_t(h))));
  while (w.size() % K) w.push_back(1.0f);
  const int N = int(w.size() / K);
  PackedMatrix p;
  ASSERT_EQ(p.reserve(K, N, WeightType::kF16), Status::kOk);
  ASSERT_EQ(p.fill(0, N, w.data()), Status::kOk);
  std::vector<float> A(size_t(K) * K, 0.0f), C(size_t(K) * N);
  for (int i = 0; i < K; ++i) A[size_t(i) * K + i] = 1.0f;
  for (int rows : {K, kMR, 1}) {
    std::fill(C.begin(), C.end(), NAN);
    for (int i0 = 0; i0 < K; i0 += rows) {
      const int m = std::min(rows, K - i0);
      gemm_tile(p.gemm(m, A.data() + size_t(i0) * K, K, C.data() + size_t(i0) * N, N, 0, N, nullptr), split_gemm(m, N, 1), 0);
    }
    for (int n = 0; n < N; ++n)
      for (int k = 0; k < K; ++k) ASSERT_EQ(C[size_t(k) * N + n], w[size_t(n) * K + k]) << "rows " << rows << " n " << n;
  }
}

// A one-row float16 GEMV multiplies a[k] * 2^112 by the halves' values * 2^-112
// when every |a[k]| < 2^15, and falls back to converting the halves fully when
// one is not (a[k] * 2^112 would overflow): both give the twin's floats, bit for
// bit, with activations just below, at and far above 2^15 (and a NaN), and
// subnormal, large and zero weights.
TEST(F16Gemm, OneRowScaledOrNotEqualsTheTwin) {
  std::mt19937 rng(12);
  const int N = 3 * kGemvPanels * kNR + 5, K = 37;
  auto W = uniform(size_t(N) * K, -1, 1, rng);
  W[0] = 3e-7f, W[1] = -6e-8f, W[2] = 60000.0f, W[3] = 0.0f;  // subnormal halves, a large one, zero
  const Quantized qz = quantize(WeightType::kF16, W, N, K);
  PackedMatrix p;
  ASSERT_EQ(p.reserve(K, N, WeightType::kF16), Status::kOk);
  ASSERT_EQ(p.fill(0, N, W.data()), Status::kOk);
  const float big[] = {0.0f, 32767.0f, 32768.0f, -1e6f, 3e38f, NAN};  // placed at a[5]; 0: none
  for (float b : big) {
    auto A = uniform(K, -1, 1, rng);
    A[7] = 1e-40f;  // a subnormal activation
    if (b != 0.0f) A[5] = b;
    std::vector<float> C(N, 7.0f), twin(N, 7.0f);
    gemm_tile(p.gemm(1, A.data(), K, C.data(), N, 0, N, nullptr), split_gemm(1, N, 1), 0);
    kernels::gemm_f16_ref(1, N, K, A.data(), K, qz.half.data(), twin.data(), N, nullptr);
    for (int j = 0; j < N; ++j) {
      if (std::isnan(twin[j])) {
        EXPECT_TRUE(std::isnan(C[j])) << "a[5] = " << b << ", column " << j;
        continue;
      }
      ASSERT_EQ(C[j], twin[j]) << "a[5] = " << b << ", column " << j;
      double want = 0;
      for (int k = 0; k < K; ++k) want += double(A[k]) * qz.deq[size_t(j) * K + k];
      if (std::isfinite(want)) {
        EXPECT_NEAR(C[j], want, 1e-5 * std::max(1.0, std::fabs(want))) << "a[5] = " << b << ", column " << j;
      }
    }
  }
}

// The int32 sums at their bound: every weight +-127 or -128 (pre-quantized) and
// every activation at its row's maximum (quantized to +-kActQMax), so that all the
// products of a column have one sign, over several passes of a long K.
TEST(Int8Gemm, AccumulatorsHoldTheLargestPassExactly) {
  const int M = kMR + 1, N = kNR + 1, K = 3 * kI8KC + 1;
  std::vector<float> A(size_t(M) * K);
  for (int i = 0; i < M; ++i)
    for (int k = 0; k < K; ++k) A[size_t(i) * K + k] = (i % 2 ? -1.0f : 1.0f) * float(1 << i);
  std::vector<int8_t> q(size_t(N) * K);
  std::vector<float> scale(N);
  for (int n = 0; n < N; ++n) {
    const int8_t v = n % 3 == 0 ? 127 : n % 3 == 1 ? -128 : -127;  // columns 0-3 and 4-7 differ
    for (int k = 0; k < K; ++k) q[size_t(n) * K + k] = v;
    scale[n] = (n % 2 ? -1.0f : 1.0f) / 128.0f;
  }
  PackedMatrix p;
  ASSERT_EQ(p.reserve(K, N, WeightType::kInt8), Status::kOk);
  ASSERT_EQ(p.fill_int8(0, N, q.data(), scale.data()), Status::kOk);
  for (int threads = 1; threads <= 2; ++threads) {
    ThreadPool pool(threads);
    std::vector<float> C(size_t(M) * N, NAN);
    const Gemm g = p.gemm(M, A.data(), K, C.data(), N, 0, N, nullptr);
    pool.job(threads, [&](ThreadPool::Team& team) { gemm_phase(team, g); });
    for (int i = 0; i < M; ++i)
      for (int n = 0; n < N; ++n) {
        const double want = double(A[size_t(i) * K]) * q[size_t(n) * K] * scale[n] * K;
        ASSERT_NEAR(C[size_t(i) * N + n], want, 1e-6 * std::fabs(want)) << i << "," << n;
      }
  }
}

// Tiles of one GEMM phase (row blocks, column blocks, GEMVs cut by columns) on 1
// to 3 threads give the single call's result bit for bit, over a column range
// that starts inside the matrix.
TEST(QuantGemm, AnySplitEqualsOneCall) {
  std::mt19937 rng(9);
  for (WeightType t : {WeightType::kF16, WeightType::kInt8}) {
    const int Ms[] = {1, kMR + 1, kI8Rows + 3, 70};
    const int Ns[] = {1, kNR + 1, 200, 515};
    const int Ks[] = {1, 700};
    for (int M : Ms)
      for (int N : Ns)
        for (int K : Ks) {
          const int n0 = 2 * kNR, total = n0 + N + 3;
          auto A = uniform(size_t(M) * K, -1, 1, rng), W = uniform(size_t(total) * K, -1, 1, rng), bias = uniform(N, -1, 1, rng);
          PackedMatrix p;
          ASSERT_EQ(p.reserve(K, total, t), Status::kOk);
          ASSERT_EQ(p.fill(0, total, W.data()), Status::kOk);
          std::vector<float> one(size_t(M) * N, NAN);
          gemm_tile(p.gemm(M, A.data(), K, one.data(), N, n0, N, bias.data()), split_gemm(M, N, 1), 0);
          // The range alone, as a matrix of its own.
          PackedMatrix alone;
          ASSERT_EQ(alone.reserve(K, N, t), Status::kOk);
          ASSERT_EQ(alone.fill(0, N, W.data() + size_t(n0) * K), Status::kOk);
          std::vector<float> want(size_t(M) * N, NAN);
          gemm_tile(alone.gemm(M, A.data(), K, want.data(), N, 0, N, bias.data()), split_gemm(M, N, 1), 0);
          ASSERT_EQ(one, want) << name(t) << " M=" << M << " N=" << N << " K=" << K;
          for (int threads = 1; threads <= 3; ++threads) {
            ThreadPool pool(threads);
            std::vector<float> got(size_t(M) * N, NAN);
            const Gemm g = p.gemm(M, A.data(), K, got.data(), N, n0, N, bias.data());
            pool.job(threads, [&](ThreadPool::Team& team) { gemm_phase(team, g); });
            ASSERT_EQ(got, one) << name(t) << " M=" << M << " N=" << N << " K=" << K << " threads=" << threads;
          }
        }
  }
}

// One-row int8 products in one phase, on 1 to 3 threads: each thread quantizes a
// row once for all the tasks that read it (gemv_tasks in linear.cpp). Two of them
// read one row, a third another row of the same length, a fourth a row longer
// than kI8GemvK (quantized task by task); each gives the twin's floats, bit for bit.
TEST(Int8Gemm, OneRowProductsOfAPhaseShareTheirRowsOnly) {
  std::mt19937 rng(13);
  const int K = 700, N[] = {200, 3 * kGemvPanels * kNR + 5, 77, 2 * kNR + 1};
  const int Ks[] = {K, K, K, kernels::kI8GemvK + 3};
  const auto a = uniform(K, -1, 1, rng), b = uniform(K, -4, 4, rng), c = uniform(Ks[3], -1, 1, rng);
  const float* rows[] = {a.data(), a.data(), b.data(), c.data()};
  PackedMatrix p[4];
  Quantized qz[4];
  std::vector<float> bias[4];
  for (int i = 0; i < 4; ++i) {
    const auto W = uniform(size_t(N[i]) * Ks[i], -1, 1, rng);
    qz[i] = quantize(WeightType::kInt8, W, N[i], Ks[i]);
    bias[i] = uniform(N[i], -1, 1, rng);
    ASSERT_EQ(p[i].reserve(Ks[i], N[i], WeightType::kInt8), Status::kOk);
    ASSERT_EQ(p[i].fill(0, N[i], W.data()), Status::kOk);
  }
  for (int threads = 1; threads <= 3; ++threads) {
    ThreadPool pool(threads);
    std::vector<float> C[4];
    Gemm g[4];
    for (int i = 0; i < 4; ++i) {
      C[i].assign(N[i], NAN);
      g[i] = p[i].gemm(1, rows[i], Ks[i], C[i].data(), N[i], 0, N[i], bias[i].data());
    }
    pool.job(threads, [&](ThreadPool::Team& team) { gemm_phase(team, g, 4); });
    for (int i = 0; i < 4; ++i) {
      std::vector<float> twin(N[i], NAN);
      kernels::gemm_i8_ref(1, N[i], Ks[i], rows[i], Ks[i], qz[i].q.data(), qz[i].scale.data(), twin.data(), N[i],
                           bias[i].data());
      ASSERT_EQ(C[i], twin) << "product " << i << ", threads " << threads;
    }
  }
}

// A NaN or an infinity in a row of A makes that row NaN (and only that row).
TEST(Int8Gemm, NonFiniteActivationsGiveNaNRows) {
  std::mt19937 rng(10);
  const int M = 6, N = 11, K = kI8KC + 5;
  auto A = uniform(size_t(M) * K, -1, 1, rng), W = uniform(size_t(N) * K, -1, 1, rng);
  A[size_t(1) * K + 3] = NAN, A[size_t(4) * K + kI8KC + 2] = INFINITY;
  PackedMatrix p;
  ASSERT_EQ(p.reserve(K, N, WeightType::kInt8), Status::kOk);
  ASSERT_EQ(p.fill(0, N, W.data()), Status::kOk);
  std::vector<float> C(size_t(M) * N);
  gemm_tile(p.gemm(M, A.data(), K, C.data(), N, 0, N, nullptr), split_gemm(M, N, 1), 0);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) EXPECT_EQ(std::isnan(C[size_t(i) * N + j]), i == 1 || i == 4) << i << "," << j;
}

// ---- layers ------------------------------------------------------------------

TEST(Linear, QuantizedAndPreQuantizedWeights) {
  std::mt19937 rng(11);
  const int in = 45, out = 21, M = 7;
  auto w = uniform(size_t(out) * in, -1, 1, rng), b = uniform(out, -1, 1, rng), x = uniform(size_t(M) * in, -1, 1, rng);
  const Quantized qz = quantize(WeightType::kInt8, w, out, in);
  Linear own(in, out, WeightType::kInt8), pre(in, out, WeightType::kInt8), f16(in, out, WeightType::kF16);
  ASSERT_EQ(own.set_weights(w.data(), b.data()), Status::kOk);
  ASSERT_EQ(pre.set_weights(reinterpret_cast<const float*>(qz.q.data()), b.data(), qz.scale.data()), Status::kOk);
  ASSERT_EQ(f16.set_weights(w.data(), b.data()), Status::kOk);
  std::vector<float> y1(size_t(M) * out), y2(y1.size());
  gemm_tile(own.gemm(M, x.data(), in, y1.data(), out), split_gemm(M, out, 1), 0);
  gemm_tile(pre.gemm(M, x.data(), in, y2.data(), out), split_gemm(M, out, 1), 0);
  EXPECT_EQ(y1, y2);
  // A scale needs an int8 layer; float16 and int8 layers need finite weights (and
  // float16 ones below 65520); a float32 layer takes anything.
  Linear f32(in, out);
  EXPECT_EQ(f16.set_weights(reinterpret_cast<const float*>(qz.q.data()), b.data(), qz.scale.data()), Status::kInvalidArgument);
  EXPECT_EQ(f32.set_weights(reinterpret_cast<const float*>(qz.q.data()), b.data(), qz.scale.data()), Status::kInvalidArgument);
  w[17] = NAN;
  EXPECT_EQ(own.set_weights(w.data(), b.data()), Status::kInvalidArgument);
  EXPECT_EQ(f16.set_weights(w.data(), b.data()), Status::kInvalidArgument);
  EXPECT_EQ(f32.set_weights(w.data(), b.data()), Status::kOk);
  w[17] = 7e4f;
  EXPECT_EQ(own.set_weights(w.data(), b.data()), Status::kOk);
  EXPECT_EQ(f16.set_weights(w.data(), b.data()), Status::kInvalidArgument);
  EXPECT_LT(f16.memory_bytes(), f32.memory_bytes());
  EXPECT_LT(own.memory_bytes(), f16.memory_bytes());
}

struct MhaCase {
  int E, H, Hkv, kdim, vdim, B, Lq, Lk;
  bool self, in_proj, causal, pre_quantized;
};

// MultiHeadAttention with float16 and int8 weights against the float64
// reference with the dequantized weights (1e-5 and 2e-3), fused and separate
// projections, kdim/vdim apart, grouped heads, uncached and through a KV cache,
// weights quantized by the layer or given pre-quantized (the same result).
TEST(MultiHeadAttention, Float16AndInt8WeightsMatchTheReferenceWithDequantizedWeights) {
  const MhaCase cases[] = {
      {16, 4, 4, 16, 16, 2, 9, 9, true, true, true, false},   {24, 4, 4, 24, 24, 1, 33, 33, true, false, false, true},
      {12, 3, 3, 7, 10, 2, 5, 13, false, false, false, false}, {64, 8, 8, 64, 64, 1, 70, 70, true, true, false, true},
      {32, 4, 4, 32, 32, 3, 1, 1, true, true, false, true},   {16, 4, 4, 16, 16, 2, 6, 11, false, true, false, true},
  };
  uint32_t seed = 200;
  for (WeightType t : {WeightType::kF32, WeightType::kF16, WeightType::kInt8})
    for (const MhaCase& c : cases)
      for (int threads : {1, 2}) {
        std::mt19937 rng(seed++);
        MhaConfig cfg{c.E, c.H, c.kdim, c.vdim, true};
        cfg.num_kv_heads = c.Hkv;
        cfg.weight_type = t;
        ASSERT_TRUE(MultiHeadAttention::valid(cfg));
        const int D = c.E / c.H, nq = c.H * D, nk = c.Hkv * D;
        const float s = 1.0f / std::sqrt(float(c.E));
        auto inw = uniform(size_t(nq + 2 * nk) * c.E, -s, s, rng), qw = uniform(size_t(nq) * c.E, -s, s, rng);
        auto kw = uniform(size_t(nk) * c.kdim, -s, s, rng), vw = uniform(size_t(nk) * c.vdim, -s, s, rng);
        auto inb = uniform(nq + 2 * nk, -s, s, rng), ow = uniform(size_t(c.E) * nq, -s, s, rng), ob = uniform(c.E, -s, s, rng);
        const Quantized qin = quantize(t, inw, nq + 2 * nk, c.E), qq = quantize(t, qw, nq, c.E);
        const Quantized qk = quantize(t, kw, nk, c.kdim), qv = quantize(t, vw, nk, c.vdim), qo = quantize(t, ow, c.E, nq);
        MhaWeights w, deq;
        auto set = [&](const float*& field, const float*& scale, const std::vector<float>& f, const Quantized& qz,
                       const float*& dfield) {
          dfield = qz.deq.data();
          if (c.pre_quantized && t == WeightType::kInt8)
            field = reinterpret_cast<const float*>(qz.q.data()), scale = qz.scale.data();
          else
            field = f.data();
        };
        if (c.in_proj) {
          set(w.in_proj_weight, w.in_proj_weight_scale, inw, qin, deq.in_proj_weight);
        } else {
          set(w.q_proj_weight, w.q_proj_weight_scale, qw, qq, deq.q_proj_weight);
          set(w.k_proj_weight, w.k_proj_weight_scale, kw, qk, deq.k_proj_weight);
          set(w.v_proj_weight, w.v_proj_weight_scale, vw, qv, deq.v_proj_weight);
        }
        set(w.out_proj_weight, w.out_proj_weight_scale, ow, qo, deq.out_proj_weight);
        w.in_proj_bias = deq.in_proj_bias = inb.data(), w.out_proj_bias = deq.out_proj_bias = ob.data();
        auto x = uniform(size_t(c.B) * c.Lq * c.E, -1, 1, rng);
        auto key = uniform(size_t(c.B) * c.Lk * c.kdim, -1, 1, rng), val = uniform(size_t(c.B) * c.Lk * c.vdim, -1, 1, rng);
        MhaForwardArgs a;
        a.B = c.B, a.Lq = c.Lq, a.Lk = c.self ? c.Lq : c.Lk;
        a.query = x.data(), a.key = c.self ? x.data() : key.data(), a.value = c.self ? x.data() : val.data();
        a.mask.causal = c.causal;
        const size_t on = size_t(c.B) * c.Lq * c.E;
        std::vector<float> out(on), ref(on);
        a.output = ref.data();
        MhaConfig rcfg = cfg;
        rcfg.weight_type = WeightType::kF32;
        mha_reference(rcfg, deq, a);
        MultiHeadAttention layer(cfg);
        ASSERT_EQ(layer.set_weights(w), Status::kOk) << name(t);
        ThreadPool pool(threads);
        Workspace work;
        a.output = out.data();
        ASSERT_EQ(layer.forward(a, pool, work), Status::kOk);
        const double tol = t == WeightType::kInt8 ? 2e-3 : 1e-5;
        EXPECT_LT(rel_err(out.data(), ref.data(), on), tol) << name(t) << " E" << c.E << " t" << threads;
        if (c.self && c.Lq > 1) {  // token by token through a cache: the same rows
          KVCache cache;
          ASSERT_EQ(cache.init(c.B, c.Lq, nk), Status::kOk);
          std::vector<float> xs(size_t(c.B) * c.E), ys(xs.size()), steps(on);
          for (int i = 0; i < c.Lq; ++i) {
            for (int b = 0; b < c.B; ++b)
              std::copy_n(x.data() + (size_t(b) * c.Lq + i) * c.E, c.E, xs.data() + size_t(b) * c.E);
            MhaForwardArgs s1;
            s1.B = c.B, s1.Lq = 1, s1.Lk = i + 1, s1.query = s1.key = s1.value = xs.data(), s1.output = ys.data();
            s1.mask.causal = c.causal;
            ASSERT_EQ(layer.forward_cached(s1, cache, CacheMode::kAppend, pool, work), Status::kOk);
            for (int b = 0; b < c.B; ++b)
              std::copy_n(ys.data() + size_t(b) * c.E, c.E, steps.data() + (size_t(b) * c.Lq + i) * c.E);
          }
          if (c.causal) {
            EXPECT_LT(rel_err(steps.data(), ref.data(), on), tol) << name(t) << " cached";
          }
        }
      }
}

TEST(MultiHeadAttention, QuantizedWeightsAreCheckedAndSmaller) {
  std::mt19937 rng(12);
  const int E = 64;  // kI7 panels hold 4 bytes more per column (its column sums): a third of float32 from K = 48
  auto inw = uniform(size_t(3) * E * E, -1, 1, rng), ow = uniform(size_t(E) * E, -1, 1, rng), b = uniform(3 * E, -1, 1, rng);
  std::vector<int8_t> q(inw.size(), 3);
  std::vector<float> sc(3 * E, 0.01f);
  size_t bytes[3];
  for (WeightType t : {WeightType::kF32, WeightType::kF16, WeightType::kInt8}) {
    MhaConfig cfg{E, 4, E, E, true};
    cfg.weight_type = t;
    MultiHeadAttention layer(cfg);
    MhaWeights w;
    w.in_proj_weight = inw.data(), w.in_proj_bias = b.data(), w.out_proj_weight = ow.data(), w.out_proj_bias = b.data();
    ASSERT_EQ(layer.set_weights(w), Status::kOk);
    bytes[int(t)] = layer.memory_bytes();
    MhaWeights pre = w;
    pre.in_proj_weight = reinterpret_cast<const float*>(q.data()), pre.in_proj_weight_scale = sc.data();
    EXPECT_EQ(layer.set_weights(pre), t == WeightType::kInt8 ? Status::kOk : Status::kInvalidArgument) << name(t);
    auto bad = ow;
    bad[5] = NAN;
    w.out_proj_weight = bad.data();
    EXPECT_EQ(layer.set_weights(w), t == WeightType::kF32 ? Status::kOk : Status::kInvalidArgument) << name(t);
    EXPECT_TRUE(layer.has_weights());  // a refused set leaves the weights it had
  }
  EXPECT_LT(bytes[2] * 3, bytes[0]);
  EXPECT_LT(bytes[1] * 3, bytes[0] * 2);
  MhaConfig bad{E, 4, E, E, true};
  bad.weight_type = static_cast<WeightType>(7);
  EXPECT_FALSE(MultiHeadAttention::valid(bad));
}

// The blocks with float16 and int8 weights (every matrix; int8 also
// pre-quantized) against their float64 references with the dequantized weights.
TEST(TransformerBlocks, Float16AndInt8WeightsMatchTheReferenceWithDequantizedWeights) {
  const int B = 2, L = 11, S = 7, E = 32, H = 4, F = 72;
  uint32_t seed = 300;
  for (WeightType t : {WeightType::kF32, WeightType::kF16, WeightType::kInt8})
    for (bool pre_quantized : {false, true})
      for (bool norm_first : {false, true}) {
        if (pre_quantized && t != WeightType::kInt8) continue;
        std::mt19937 rng(seed++);
        EncoderConfig cfg;
        cfg.d_model = E, cfg.nhead = H, cfg.dim_feedforward = F, cfg.norm_first = norm_first, cfg.weight_type = t;
        cfg.activation = Activation::kGelu;
        ASSERT_TRUE(TransformerEncoderLayer::valid(cfg));
        const float s = 1 / std::sqrt(float(E)), sf = 1 / std::sqrt(float(F));
        // Matrices: self in/out, cross in/out, linear1, linear2.
        std::vector<float> mats[6] = {uniform(size_t(3) * E * E, -s, s, rng), uniform(size_t(E) * E, -s, s, rng),
                                      uniform(size_t(3) * E * E, -s, s, rng), uniform(size_t(E) * E, -s, s, rng),
                                      uniform(size_t(F) * E, -s, s, rng),     uniform(size_t(E) * F, -sf, sf, rng)};
        const int rows[6] = {3 * E, E, 3 * E, E, F, E}, cols[6] = {E, E, E, E, E, F};
        std::vector<Quantized> qz;
        for (int i = 0; i < 6; ++i) qz.push_back(quantize(t, mats[i], rows[i], cols[i]));
        std::vector<float> bias[6], norm_w[3], norm_b[3];
        for (int i = 0; i < 6; ++i) bias[i] = uniform(rows[i], -s, s, rng);
        for (int i = 0; i < 3; ++i) norm_w[i] = uniform(E, 0.5f, 1.5f, rng), norm_b[i] = uniform(E, -0.5f, 0.5f, rng);
        const float* m[6];
        const float* sc[6];
        const float* dq[6];
        for (int i = 0; i < 6; ++i) {
          m[i] = pre_quantized ? reinterpret_cast<const float*>(qz[i].q.data()) : mats[i].data();
          sc[i] = pre_quantized ? qz[i].scale.data() : nullptr;
          dq[i] = qz[i].deq.data();
        }
        auto attn = [&](int i, const float* const* mm, const float* const* ss) {
          MhaWeights w;
          w.in_proj_weight = mm[i], w.in_proj_weight_scale = ss ? ss[i] : nullptr, w.in_proj_bias = bias[i].data();
          w.out_proj_weight = mm[i + 1], w.out_proj_weight_scale = ss ? ss[i + 1] : nullptr, w.out_proj_bias = bias[i + 1].data();
          return w;
        };
        auto x = uniform(size_t(B) * L * E, -2, 2, rng), mem = uniform(size_t(B) * S * E, -2, 2, rng);
        ThreadPool pool(2);
        Workspace ws;
        const double tol = t == WeightType::kInt8 ? 2e-3 : 1e-4;
        {  // encoder
          EncoderWeights w, d;
          w.self_attn = attn(0, m, sc), d.self_attn = attn(0, dq, nullptr);
          w.linear1_weight = m[4], w.linear1_weight_scale = sc[4], w.linear2_weight = m[5], w.linear2_weight_scale = sc[5];
          d.linear1_weight = dq[4], d.linear2_weight = dq[5];
          for (EncoderWeights* e : {&w, &d}) {
            e->linear1_bias = bias[4].data(), e->linear2_bias = bias[5].data();
            e->norm1_weight = norm_w[0].data(), e->norm1_bias = norm_b[0].data();
            e->norm2_weight = norm_w[1].data(), e->norm2_bias = norm_b[1].data();
          }
          TransformerEncoderLayer layer(cfg);
          ASSERT_EQ(layer.set_weights(w), Status::kOk);
          std::vector<float> out(x.size()), ref(x.size());
          EncoderForwardArgs a;
          a.B = B, a.L = L, a.src = x.data(), a.output = out.data(), a.mask.causal = true;
          ASSERT_EQ(layer.forward(a, pool, ws), Status::kOk);
          a.output = ref.data();
          EncoderConfig rcfg = cfg;
          rcfg.weight_type = WeightType::kF32;
          encoder_reference(rcfg, d, a);
          EXPECT_LT(rel_err(out.data(), ref.data(), out.size()), tol) << name(t) << " encoder pre=" << pre_quantized;
        }
        {  // decoder
          DecoderWeights w, d;
          w.self_attn = attn(0, m, sc), d.self_attn = attn(0, dq, nullptr);
          w.cross_attn = attn(2, m, sc), d.cross_attn = attn(2, dq, nullptr);
          w.linear1_weight = m[4], w.linear1_weight_scale = sc[4], w.linear2_weight = m[5], w.linear2_weight_scale = sc[5];
          d.linear1_weight = dq[4], d.linear2_weight = dq[5];
          for (DecoderWeights* e : {&w, &d}) {
            e->linear1_bias = bias[4].data(), e->linear2_bias = bias[5].data();
            for (int i = 0; i < 3; ++i) e->norm_weight[i] = norm_w[i].data(), e->norm_bias[i] = norm_b[i].data();
          }
          TransformerDecoderLayer layer(cfg);
          ASSERT_EQ(layer.set_weights(w), Status::kOk) << name(t) << " decoder pre=" << pre_quantized << " nf=" << norm_first;
          std::vector<float> out(x.size()), ref(x.size());
          DecoderForwardArgs a;
          a.B = B, a.T = L, a.S = S, a.tgt = x.data(), a.memory = mem.data(), a.output = out.data();
          a.tgt_mask.causal = true;
          ASSERT_EQ(layer.forward(a, pool, ws), Status::kOk);
          a.output = ref.data();
          DecoderConfig rcfg = cfg;
          rcfg.weight_type = WeightType::kF32;
          decoder_reference(rcfg, d, a);
          EXPECT_LT(rel_err(out.data(), ref.data(), out.size()), tol) << name(t) << " decoder pre=" << pre_quantized;
        }
      }
}

// FeedForward, plain and gated (gate and up packed side by side, panel by
// panel), with float16 and int8 weights (int8 also pre-quantized), against the
// float64 reference with the dequantized weights, on one and two threads.
TEST(FeedForward, Float16AndInt8WeightsMatchTheReferenceWithDequantizedWeights) {
  struct Shape { int M, E, F; };
  const Shape shapes[] = {{1, 8, 16}, {3, 13, 37}, {17, 37, 13}, {70, 64, 200}, {1, 1024 + 3, 9}};
  uint32_t seed = 400;
  for (WeightType t : {WeightType::kF16, WeightType::kInt8})
    for (const Shape& sh : shapes)
      for (bool gated : {false, true})
        for (bool pre_quantized : {false, true})
          for (int threads : {1, 2}) {
            if (pre_quantized && t != WeightType::kInt8) continue;
            std::mt19937 rng(seed++);
            FeedForwardConfig cfg;
            cfg.d_model = sh.E, cfg.dim_feedforward = sh.F, cfg.activation = Activation::kSilu, cfg.gated = gated;
            cfg.weight_type = t;
            ASSERT_TRUE(FeedForward::valid(cfg));
            const float s = 1 / std::sqrt(float(sh.E)), sf = 1 / std::sqrt(float(sh.F));
            const auto gate = uniform(size_t(sh.F) * sh.E, -2 * s, 2 * s, rng), up = uniform(size_t(sh.F) * sh.E, -2 * s, 2 * s, rng);
            const auto down = uniform(size_t(sh.E) * sh.F, -sf, sf, rng);
            const auto gb = uniform(sh.F, -s, s, rng), ub = uniform(sh.F, -s, s, rng), db = uniform(sh.E, -sf, sf, rng);
            const Quantized qg = quantize(t, gate, sh.F, sh.E), qu = quantize(t, up, sh.F, sh.E), qd = quantize(t, down, sh.E, sh.F);
            FeedForwardWeights w, deq;
            w.gate_bias = deq.gate_bias = gb.data(), w.up_bias = deq.up_bias = ub.data(), w.down_bias = deq.down_bias = db.data();
            if (pre_quantized) {
              w.gate_weight = reinterpret_cast<const float*>(qg.q.data()), w.gate_weight_scale = qg.scale.data();
              w.up_weight = reinterpret_cast<const float*>(qu.q.data()), w.up_weight_scale = qu.scale.data();
              w.down_weight = reinterpret_cast<const float*>(qd.q.data()), w.down_weight_scale = qd.scale.data();
            } else {
              w.gate_weight = gate.data(), w.up_weight = up.data(), w.down_weight = down.data();
            }
            deq.gate_weight = qg.deq.data(), deq.up_weight = qu.deq.data(), deq.down_weight = qd.deq.data();
            if (!gated) w.gate_weight = deq.gate_weight = nullptr;
            FeedForward ff(cfg);
            ASSERT_EQ(ff.set_weights(w), Status::kOk);
            EXPECT_LE(ff.memory_bytes(), ff.weight_bytes() + 64 * 6);
            const auto x = uniform(size_t(sh.M) * sh.E, -2, 2, rng);
            std::vector<float> y(x.size()), ref(x.size());
            ThreadPool pool(threads);
            Workspace ws;
            ASSERT_EQ(ff.forward(pool, ws, sh.M, x.data(), y.data()), Status::kOk);
            FeedForwardConfig rcfg = cfg;
            rcfg.weight_type = WeightType::kF32;
            feed_forward_reference(rcfg, deq, sh.M, x.data(), ref.data());
            EXPECT_LE(rel_err(y.data(), ref.data(), y.size()), t == WeightType::kInt8 ? 2e-3 : 1e-5)
                << name(t) << " M=" << sh.M << " E=" << sh.E << " F=" << sh.F << " gated=" << gated << " pre=" << pre_quantized
                << " threads=" << threads;
          }
  // A scale needs an int8 block; weights the type cannot hold are refused.
  FeedForwardConfig cfg;
  cfg.d_model = 8, cfg.dim_feedforward = 12, cfg.gated = true, cfg.bias = false, cfg.weight_type = WeightType::kF16;
  std::vector<float> m(96, 0.5f), sc(12, 0.01f);
  FeedForwardWeights w;
  w.gate_weight = w.up_weight = w.down_weight = m.data();
  FeedForward ff(cfg);
  EXPECT_EQ(ff.set_weights(w), Status::kOk);
  w.gate_weight_scale = sc.data();
  EXPECT_EQ(ff.set_weights(w), Status::kInvalidArgument);
  w.gate_weight_scale = nullptr;
  m[40] = 1e5f;
  EXPECT_EQ(ff.set_weights(w), Status::kInvalidArgument);
}

}  // namespace
