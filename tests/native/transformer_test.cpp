// TransformerEncoderLayer against its float64 reference (encoder_reference:
// double LayerNorm, feed-forward and mha_reference, no blocking): post- and
// pre-norm, ReLU and GELU, with and without bias, causal and key padding masks,
// one and two threads.
#include <gtest/gtest.h>

#include <cstdint>

#include "test_util.h"
#include "transformer.h"

using namespace mha;
using mha_test::all_finite;
using mha_test::rel_err;
using mha_test::uniform;

namespace {

struct Weights {
  std::vector<float> in_w, in_b, out_w, out_b, l1_w, l1_b, l2_w, l2_b, n1_w, n1_b, n2_w, n2_b;
  EncoderWeights view() const {
    EncoderWeights w;
    w.self_attn.in_proj_weight = in_w.data(), w.self_attn.in_proj_bias = in_b.data();
    w.self_attn.out_proj_weight = out_w.data(), w.self_attn.out_proj_bias = out_b.data();
    w.linear1_weight = l1_w.data(), w.linear1_bias = l1_b.data(), w.linear2_weight = l2_w.data(), w.linear2_bias = l2_b.data();
    w.norm1_weight = n1_w.data(), w.norm1_bias = n1_b.data(), w.norm2_weight = n2_w.data(), w.norm2_bias = n2_b.data();
    return w;
  }
};

Weights make_weights(int E, int F, std::mt19937& rng) {
  const float s = 1 / std::sqrt(float(E)), sf = 1 / std::sqrt(float(F));
  Weights w;
  w.in_w = uniform(size_t(3) * E * E, -s, s, rng), w.in_b = uniform(3 * E, -s, s, rng);
  w.out_w = uniform(size_t(E) * E, -s, s, rng), w.out_b = uniform(E, -s, s, rng);
  w.l1_w = uniform(size_t(F) * E, -s, s, rng), w.l1_b = uniform(F, -s, s, rng);
  w.l2_w = uniform(size_t(E) * F, -sf, sf, rng), w.l2_b = uniform(E, -sf, sf, rng);
  w.n1_w = uniform(E, 0.5f, 1.5f, rng), w.n1_b = uniform(E, -0.5f, 0.5f, rng);
  w.n2_w = uniform(E, 0.5f, 1.5f, rng), w.n2_b = uniform(E, -0.5f, 0.5f, rng);
  return w;
}

EncoderConfig make_config(int E, int H, int F, bool norm_first, bool gelu, bool bias) {
  EncoderConfig cfg;
  cfg.d_model = E, cfg.nhead = H, cfg.dim_feedforward = F, cfg.norm_first = norm_first, cfg.bias = bias;
  cfg.activation = gelu ? Activation::kGelu : Activation::kRelu;
  return cfg;
}

struct Case {
  int B, L, E, H, F;
  bool norm_first, gelu, bias, causal, padding;
};

TEST(Encoder, MatchesFloat64Reference) {
  const Case cases[] = {
      {1, 5, 8, 2, 16, false, false, true, false, false},  {2, 17, 16, 4, 40, true, false, true, true, false},
      {3, 9, 12, 3, 7, false, true, true, false, true},    {2, 33, 32, 4, 64, true, true, false, true, true},
      {1, 70, 24, 6, 48, false, true, true, true, false},  {2, 129, 64, 8, 128, true, false, true, false, true},
  };
  uint32_t seed = 100;
  for (const Case& c : cases)
    for (int threads : {1, 2}) {
      std::mt19937 rng(seed++);
      const EncoderConfig cfg = make_config(c.E, c.H, c.F, c.norm_first, c.gelu, c.bias);
      ASSERT_TRUE(TransformerEncoderLayer::valid(cfg));
      const Weights w = make_weights(c.E, c.F, rng);
      const EncoderWeights wv = w.view();
      TransformerEncoderLayer layer(cfg);
      ASSERT_EQ(layer.set_weights(wv), Status::kOk);
      auto x = uniform(size_t(c.B) * c.L * c.E, -2, 2, rng);
      std::vector<uint8_t> kpm(size_t(c.B) * c.L);
      for (int b = 0; b < c.B; ++b)
        for (int j = 0; j < c.L; ++j) kpm[size_t(b) * c.L + j] = c.padding && j >= c.L - 1 - b;
      std::vector<float> out(x.size()), ref(x.size());
      EncoderForwardArgs a;
      a.B = c.B, a.L = c.L, a.src = x.data(), a.output = out.data();
      a.mask.causal = c.causal;
      if (c.padding) a.mask.key_padding = kpm.data();
      ThreadPool pool(threads);
      ASSERT_EQ(layer.forward(a, pool), Status::kOk);
      a.output = ref.data();
      encoder_reference(cfg, wv, a);
      EXPECT_TRUE(all_finite(out.data(), out.size()));
      EXPECT_LE(rel_err(out.data(), ref.data(), out.size()), 1e-4)
          << "E=" << c.E << " L=" << c.L << " norm_first=" << c.norm_first << " gelu=" << c.gelu << " threads=" << threads;
      // A second call reuses the workspace and gives the same result.
      std::vector<float> again(x.size());
      a.output = again.data();
      ASSERT_EQ(layer.forward(a, pool), Status::kOk);
      EXPECT_EQ(again, out);
    }
}

TEST(Encoder, RejectsMissingWeightsAndBadArguments) {
  EncoderConfig cfg;
  cfg.d_model = 8, cfg.nhead = 2, cfg.dim_feedforward = 16;
  EXPECT_FALSE(TransformerEncoderLayer::valid({8, 3, 16}));
  EXPECT_FALSE(TransformerEncoderLayer::valid({8, 2, 0}));
  std::mt19937 rng(1);
  const Weights w = make_weights(8, 16, rng);
  TransformerEncoderLayer layer(cfg);
  std::vector<float> x(8 * 3), y(8 * 3);
  ThreadPool pool(1);
  EncoderForwardArgs a;
  a.B = 1, a.L = 3, a.src = x.data(), a.output = y.data();
  EXPECT_EQ(layer.forward(a, pool), Status::kNoWeights);
  EncoderWeights wv = w.view();
  wv.norm2_bias = nullptr;
  EXPECT_EQ(layer.set_weights(wv), Status::kInvalidArgument);
  wv = w.view();
  wv.linear1_weight = nullptr;
  EXPECT_EQ(layer.set_weights(wv), Status::kInvalidArgument);
  ASSERT_EQ(layer.set_weights(w.view()), Status::kOk);
  a.output = x.data();  // aliasing the input
  EXPECT_EQ(layer.forward(a, pool), Status::kInvalidArgument);
  a.output = y.data();
  EXPECT_EQ(layer.forward(a, pool), Status::kOk);
}

}  // namespace

namespace {

struct DecCase {
  int B, T, S, E, H, F;
  bool norm_first, gelu, bias, causal, tgt_padding, mem_padding;
};

TEST(Decoder, MatchesFloat64Reference) {
  const DecCase cases[] = {
      {1, 4, 6, 8, 2, 16, false, false, true, true, false, false},
      {2, 17, 9, 16, 4, 24, true, true, true, true, true, false},
      {3, 5, 33, 12, 3, 20, false, true, false, false, false, true},
      {2, 40, 70, 32, 8, 64, true, false, true, true, true, true},
  };
  uint32_t seed = 500;
  for (const DecCase& c : cases)
    for (int threads : {1, 2}) {
      std::mt19937 rng(seed++);
      const DecoderConfig cfg = make_config(c.E, c.H, c.F, c.norm_first, c.gelu, c.bias);
      const Weights sa = make_weights(c.E, c.F, rng), ca = make_weights(c.E, c.F, rng);
      DecoderWeights w;
      const EncoderWeights a0 = sa.view(), a1 = ca.view();
      w.self_attn = a0.self_attn, w.cross_attn = a1.self_attn;
      w.linear1_weight = a0.linear1_weight, w.linear1_bias = a0.linear1_bias;
      w.linear2_weight = a0.linear2_weight, w.linear2_bias = a0.linear2_bias;
      w.norm_weight[0] = a0.norm1_weight, w.norm_bias[0] = a0.norm1_bias;
      w.norm_weight[1] = a0.norm2_weight, w.norm_bias[1] = a0.norm2_bias;
      w.norm_weight[2] = a1.norm1_weight, w.norm_bias[2] = a1.norm1_bias;
      TransformerDecoderLayer layer(cfg);
      ASSERT_EQ(layer.set_weights(w), Status::kOk);
      auto tgt = uniform(size_t(c.B) * c.T * c.E, -2, 2, rng), mem = uniform(size_t(c.B) * c.S * c.E, -2, 2, rng);
      std::vector<uint8_t> tk(size_t(c.B) * c.T), mk(size_t(c.B) * c.S);
      for (int b = 0; b < c.B; ++b) {
        for (int j = 0; j < c.T; ++j) tk[size_t(b) * c.T + j] = j >= c.T - b;
        for (int j = 0; j < c.S; ++j) mk[size_t(b) * c.S + j] = j >= c.S - 1 - 2 * b;
      }
      std::vector<float> out(tgt.size()), ref(tgt.size());
      DecoderForwardArgs a;
      a.B = c.B, a.T = c.T, a.S = c.S, a.tgt = tgt.data(), a.memory = mem.data(), a.output = out.data();
      a.tgt_mask.causal = c.causal;
      if (c.tgt_padding) a.tgt_mask.key_padding = tk.data();
      if (c.mem_padding) a.memory_mask.key_padding = mk.data();
      ThreadPool pool(threads);
      ASSERT_EQ(layer.forward(a, pool), Status::kOk);
      a.output = ref.data();
      decoder_reference(cfg, w, a);
      EXPECT_TRUE(all_finite(out.data(), out.size()));
      EXPECT_LE(rel_err(out.data(), ref.data(), out.size()), 1e-4)
          << "T=" << c.T << " S=" << c.S << " norm_first=" << c.norm_first << " threads=" << threads;
    }
}

}  // namespace
