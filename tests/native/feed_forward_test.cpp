// FeedForward (plain and gated, every activation, with and without bias) and
// RMSNorm against their float64 references in tests/support, and the new row
// kernels (silu, gelu_tanh, rms_norm) against float64 and their scalar twins, at
// sizes that are not multiples of the vector or panel width, on one and two threads.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "feed_forward.h"
#include "kernels.h"
#include "kernels_ref.h"
#include "layer_norm.h"
#include "reference.h"
#include "test_util.h"

using namespace mha;
using mha_test::rel_err;
using mha_test::uniform;

namespace {

const Activation kActivations[] = {Activation::kRelu, Activation::kGelu, Activation::kGeluTanh, Activation::kSilu};

struct FfWeights {
  std::vector<float> gate_w, gate_b, up_w, up_b, down_w, down_b;
  FeedForwardWeights view(bool gated) const {
    FeedForwardWeights w;
    if (gated) w.gate_weight = gate_w.data(), w.gate_bias = gate_b.data();
    w.up_weight = up_w.data(), w.up_bias = up_b.data(), w.down_weight = down_w.data(), w.down_bias = down_b.data();
    return w;
  }
};

FfWeights make_ff_weights(int E, int F, std::mt19937& rng) {
  const float s = 1 / std::sqrt(float(E)), sf = 1 / std::sqrt(float(F));
  FfWeights w;
  w.gate_w = uniform(size_t(F) * E, -2 * s, 2 * s, rng), w.gate_b = uniform(F, -s, s, rng);
  w.up_w = uniform(size_t(F) * E, -2 * s, 2 * s, rng), w.up_b = uniform(F, -s, s, rng);
  w.down_w = uniform(size_t(E) * F, -sf, sf, rng), w.down_b = uniform(E, -sf, sf, rng);
  return w;
}

TEST(FeedForward, MatchesFloat64Reference) {
  struct Shape { int M, E, F; };
  const Shape shapes[] = {{1, 8, 16}, {3, 13, 37}, {17, 37, 13}, {70, 64, 200}, {5, 1, 1}};
  uint32_t seed = 300;
  for (const Shape& sh : shapes)
    for (Activation act : kActivations)
      for (bool gated : {false, true})
        for (bool bias : {true, false})
          for (int threads : {1, 2}) {
            std::mt19937 rng(seed++);
            FeedForwardConfig cfg;
            cfg.d_model = sh.E, cfg.dim_feedforward = sh.F, cfg.activation = act, cfg.gated = gated, cfg.bias = bias;
            ASSERT_TRUE(FeedForward::valid(cfg));
            const FfWeights w = make_ff_weights(sh.E, sh.F, rng);
            FeedForward ff(cfg);
            ASSERT_EQ(ff.set_weights(w.view(gated)), Status::kOk);
            const auto x = uniform(size_t(sh.M) * sh.E, -2, 2, rng);
            std::vector<float> y(x.size()), ref(x.size());
            ThreadPool pool(threads);
            Workspace ws;
            ASSERT_EQ(ff.forward(pool, ws, sh.M, x.data(), y.data()), Status::kOk);
            EXPECT_GE(ws.capacity_bytes(), ff.workspace_bytes(sh.M));
            feed_forward_reference(cfg, w.view(gated), sh.M, x.data(), ref.data());
            EXPECT_LE(rel_err(y.data(), ref.data(), y.size()), 1e-5)
                << "M=" << sh.M << " E=" << sh.E << " F=" << sh.F << " act=" << int(act) << " gated=" << gated
                << " bias=" << bias << " threads=" << threads;
            // In place (y aliasing x) gives the same result.
            auto inplace = x;
            ASSERT_EQ(ff.forward(pool, ws, sh.M, inplace.data(), inplace.data()), Status::kOk);
            EXPECT_EQ(inplace, y);
          }
}

// The parallel split keeps the gate and up groups of the fused GEMM together on
// any team size (column blocks of 16): results equal one thread's exactly.
TEST(FeedForward, GatedSplitIsExactOnAnyTeam) {
  std::mt19937 rng(7);
  FeedForwardConfig cfg;
  cfg.d_model = 40, cfg.dim_feedforward = 333, cfg.activation = Activation::kSilu, cfg.gated = true;
  const FfWeights w = make_ff_weights(cfg.d_model, cfg.dim_feedforward, rng);
  FeedForward ff(cfg);
  ASSERT_EQ(ff.set_weights(w.view(true)), Status::kOk);
  const int M = 45;
  const auto x = uniform(size_t(M) * cfg.d_model, -1, 1, rng);
  std::vector<float> one(x.size());
  ThreadPool p1(1);
  Workspace ws;
  ASSERT_EQ(ff.forward(p1, ws, M, x.data(), one.data()), Status::kOk);
  for (int threads : {2, 3, 5}) {
    ThreadPool pool(threads);
    std::vector<float> y(x.size());
    ASSERT_EQ(ff.forward(pool, ws, M, x.data(), y.data()), Status::kOk);
    EXPECT_EQ(y, one) << threads;
  }
}

TEST(FeedForward, RejectsMissingWeightsAndBadArguments) {
  FeedForwardConfig cfg;
  cfg.d_model = 8, cfg.dim_feedforward = 12, cfg.gated = true;
  FeedForwardConfig bad = cfg;
  bad.dim_feedforward = 0;
  EXPECT_FALSE(FeedForward::valid(bad));
  bad = cfg;
  bad.activation = static_cast<Activation>(4);
  EXPECT_FALSE(FeedForward::valid(bad));
  std::mt19937 rng(1);
  const FfWeights w = make_ff_weights(8, 12, rng);
  FeedForward ff(cfg);
  std::vector<float> x(8 * 3), y(8 * 3);
  ThreadPool pool(1);
  Workspace ws;
  EXPECT_EQ(ff.forward(pool, ws, 3, x.data(), y.data()), Status::kNoWeights);
  FeedForwardWeights v = w.view(true);
  v.gate_weight = nullptr;
  EXPECT_EQ(ff.set_weights(v), Status::kInvalidArgument);
  v = w.view(true);
  v.gate_bias = nullptr;
  EXPECT_EQ(ff.set_weights(v), Status::kInvalidArgument);
  v = w.view(true);
  v.down_weight = nullptr;
  EXPECT_EQ(ff.set_weights(v), Status::kInvalidArgument);
  EXPECT_EQ(ff.forward(pool, ws, 3, x.data(), y.data()), Status::kNoWeights);
  ASSERT_EQ(ff.set_weights(w.view(true)), Status::kOk);
  EXPECT_EQ(ff.forward(pool, ws, 0, x.data(), y.data()), Status::kInvalidArgument);
  EXPECT_EQ(ff.forward(pool, ws, 3, x.data(), y.data()), Status::kOk);
  // Without bias, biases are not needed (and those given are ignored).
  cfg.bias = false;
  FeedForward nb(cfg);
  v = w.view(true);
  v.gate_bias = v.up_bias = v.down_bias = nullptr;
  EXPECT_EQ(nb.set_weights(v), Status::kOk);
}

// ---- row kernels ---------------------------------------------------------------

TEST(RowOps, SiluAndGeluAgainstFloat64) {
  std::mt19937 rng(21);
  for (int n : {1, 3, 4, 5, 8, 13, 37, 129}) {
    for (float range : {1.0f, 3.0f, 12.0f, 100.0f}) {
      const auto x = uniform(n, -range, range, rng);
      auto s = x, sr = x, g = x, gr = x, e = x, er = x;
      kernels::silu_row(s.data(), n);
      kernels::silu_row_ref(sr.data(), n);
      kernels::gelu_tanh_row(g.data(), n);
      kernels::gelu_tanh_row_ref(gr.data(), n);
      kernels::gelu_row(e.data(), n);
      kernels::gelu_row_ref(er.data(), n);
      for (int i = 0; i < n; ++i) {
        const double ws = activation_reference(Activation::kSilu, x[i]);
        const double wg = activation_reference(Activation::kGeluTanh, x[i]);
        const double we = activation_reference(Activation::kGelu, x[i]);
        const double tol = 1e-6;  // absolute near 0, relative beyond 1
        EXPECT_NEAR(s[i], ws, tol * std::max(1.0, std::abs(ws))) << x[i];
        EXPECT_NEAR(sr[i], ws, tol * std::max(1.0, std::abs(ws))) << x[i];
        EXPECT_NEAR(g[i], wg, tol * std::max(1.0, std::abs(wg))) << x[i];
        EXPECT_NEAR(gr[i], wg, tol * std::max(1.0, std::abs(wg))) << x[i];
        EXPECT_NEAR(e[i], we, tol * std::max(1.0, std::abs(we))) << x[i];
        EXPECT_NEAR(er[i], we, tol * std::max(1.0, std::abs(we))) << x[i];
      }
    }
  }
  // The exact GELU, densely over [-10, 10]: x/2 times erfc's absolute error (below 1.5e-7), and
  // float32's rounding: 1e-7 (1 + |x|) + 2e-7 |GELU(x)| (std::erf in the scalar twin: 1e-7 |x|).
  double worst = 0;
  for (int k = -40000; k <= 40000; k += 7) {
    const float x = k * 2.5e-4f;
    float v = x;
    const double want = activation_reference(Activation::kGelu, x);
    kernels::gelu_row(&v, 1);
    EXPECT_NEAR(v, want, 1e-7 * (1 + std::abs(x)) + 2e-7 * std::abs(want)) << x;
    worst = std::max(worst, std::abs(v - want) / (1 + std::abs(x)));
  }
  EXPECT_GT(worst, 0.0);  // the approximation, not std::erf
  // Non-finite inputs as PyTorch's: +inf -> +inf, -inf -> NaN (-inf * 0), NaN -> NaN.
  const float inf = std::numeric_limits<float>::infinity();
  for (auto fn : {&kernels::silu_row, &kernels::gelu_tanh_row, &kernels::gelu_row}) {
    float v[5] = {inf, -inf, NAN, -1e30f, 1e30f};
    fn(v, 5);
    EXPECT_EQ(v[0], inf);
    EXPECT_TRUE(std::isnan(v[1]));
    EXPECT_TRUE(std::isnan(v[2]));
    EXPECT_EQ(v[3], -0.0f);
    EXPECT_EQ(v[4], 1e30f);
  }
}

TEST(RowOps, RmsNormAgainstFloat64) {
  std::mt19937 rng(22);
  for (int n : {1, 3, 4, 5, 8, 13, 37, 129, 768}) {
    for (float scale : {1e-3f, 1.0f, 1000.0f}) {
      const auto x = uniform(n, -scale, scale, rng);
      const auto g = uniform(n, 0.5f, 1.5f, rng);
      for (bool affine : {false, true}) {
        const float* gp = affine ? g.data() : nullptr;
        std::vector<float> out(n), twin(n), ref(n), inplace = x;
        kernels::rms_norm_row(x.data(), n, gp, 1e-6f, out.data());
        kernels::rms_norm_row_ref(x.data(), n, gp, 1e-6f, twin.data());
        kernels::rms_norm_row(inplace.data(), n, gp, 1e-6f, inplace.data());
        rms_norm_reference(x.data(), 1, n, gp, 1e-6, 0.0, ref.data());
        EXPECT_LE(rel_err(out.data(), ref.data(), n), 1e-6) << "n=" << n << " scale=" << scale;
        EXPECT_LE(rel_err(twin.data(), ref.data(), n), 1e-5) << "n=" << n;
        EXPECT_EQ(out, inplace) << "n=" << n;
      }
    }
  }
}

// RMSNorm, the layer: rows on one and two threads, with Gemma's weight offset, and
// ones until set_weights.
TEST(RMSNorm, MatchesFloat64Reference) {
  std::mt19937 rng(23);
  for (int width : {1, 5, 13, 64, 300})
    for (float offset : {0.0f, 1.0f})
      for (int threads : {1, 2}) {
        const int M = 4000 / width + 3;
        const auto x = uniform(size_t(M) * width, -3, 3, rng);
        const auto g = uniform(width, -0.5f, 0.5f, rng);
        RMSNorm norm(width, 1e-5f, offset);
        EXPECT_EQ(norm.weight_floats(), size_t(width));
        ThreadPool pool(threads);
        std::vector<float> y(x.size()), ref(x.size());
        ASSERT_EQ(norm.set_weights(nullptr, nullptr), Status::kOk);
        norm.forward(pool, M, x.data(), y.data());
        rms_norm_reference(x.data(), M, width, nullptr, 1e-5, 0.0, ref.data());
        EXPECT_LE(rel_err(y.data(), ref.data(), y.size()), 1e-5) << width;
        ASSERT_EQ(norm.set_weights(g.data(), nullptr), Status::kOk);
        norm.forward(pool, M, x.data(), y.data());
        rms_norm_reference(x.data(), M, width, g.data(), 1e-5, offset, ref.data());
        EXPECT_LE(rel_err(y.data(), ref.data(), y.size()), 1e-5) << "width=" << width << " offset=" << offset;
      }
}

}  // namespace
