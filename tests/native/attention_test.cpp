// Attention and the full layer against float64 references (attention_reference
// and mha_reference compute in double, with no blocking and no online softmax).
#include <gtest/gtest.h>

#include <cstdint>

#include "attention.h"
#include "mha.h"
#include "test_util.h"

using namespace mha;
using mha_test::all_finite;
using mha_test::rel_err;
using mha_test::uniform;

namespace {

struct Case {
  int B, H, Lq, Lk, D, Dv;
  int mask;  // 0 none, 1 bool [Lq,Lk], 2 float [B,H,Lq,Lk], 3 bool [B,H,Lq,Lk]
  bool padding, causal;
  int weights;  // 0 none, 1 per head, 2 averaged
};

void run_case(const Case& c, int threads, uint32_t seed) {
  std::mt19937 rng(seed);
  auto q = uniform(size_t(c.B) * c.H * c.Lq * c.D, -3, 3, rng);
  auto k = uniform(size_t(c.B) * c.H * c.Lk * c.D, -3, 3, rng);
  auto v = uniform(size_t(c.B) * c.H * c.Lk * c.Dv, -1, 1, rng);
  const bool bcast = c.mask == 1;
  const size_t mask_n = bcast ? size_t(c.Lq) * c.Lk : size_t(c.B) * c.H * c.Lq * c.Lk;
  std::vector<uint8_t> bm(mask_n), kp(size_t(c.B) * c.Lk);
  std::vector<float> fm(mask_n);
  std::bernoulli_distribution coin(0.3);
  for (auto& x : bm) x = coin(rng);
  for (auto& x : fm) x = coin(rng) ? -INFINITY : std::uniform_real_distribution<float>(-2, 2)(rng);
  for (auto& x : kp) x = coin(rng);
  if (c.padding) std::fill(kp.begin(), kp.begin() + c.Lk, 1);  // batch 0: every key padded

  AttentionArgs a;
  a.B = c.B, a.H = c.H, a.Lq = c.Lq, a.Lk = c.Lk, a.D = c.D, a.Dv = c.Dv;
  a.q = {q.data(), size_t(c.H) * c.Lq * c.D, size_t(c.Lq) * c.D, size_t(c.D)};
  a.k = {k.data(), size_t(c.H) * c.Lk * c.D, size_t(c.Lk) * c.D, size_t(c.D)};
  a.v = {v.data(), size_t(c.H) * c.Lk * c.Dv, size_t(c.Lk) * c.Dv, size_t(c.Dv)};
  a.o_sb = size_t(c.H) * c.Lq * c.Dv, a.o_sh = size_t(c.Lq) * c.Dv, a.o_sl = c.Dv;
  a.scale = 1.0f / std::sqrt(float(c.D));
  if (c.mask == 1 || c.mask == 3) a.mask.bool_mask = bm.data();
  if (c.mask == 2) a.mask.float_mask = fm.data();
  a.mask.sl = c.Lk, a.mask.sh = bcast ? 0 : size_t(c.Lq) * c.Lk, a.mask.sb = bcast ? 0 : size_t(c.H) * c.Lq * c.Lk;
  if (c.padding) a.mask.key_padding = kp.data();
  a.mask.causal = c.causal;
  a.average_weights = c.weights == 2;
  const size_t out_n = size_t(c.B) * c.H * c.Lq * c.Dv;
  const size_t w_n = size_t(c.B) * (c.weights == 2 ? 1 : c.H) * c.Lq * c.Lk;
  std::vector<float> out(out_n, NAN), ref(out_n), w(w_n, NAN), wref(w_n);

  a.out = ref.data();
  a.weights = c.weights ? wref.data() : nullptr;
  attention_reference(a);
  a.out = out.data();
  a.weights = c.weights ? w.data() : nullptr;
  ThreadPool pool(threads);
  Attention attn;
  ASSERT_EQ(attn.run(a, pool), Status::kOk);
  const std::string where = "B" + std::to_string(c.B) + " H" + std::to_string(c.H) + " Lq" + std::to_string(c.Lq) +
                            " Lk" + std::to_string(c.Lk) + " D" + std::to_string(c.D) + " Dv" + std::to_string(c.Dv) +
                            " mask" + std::to_string(c.mask) + " pad" + std::to_string(c.padding) + " causal" +
                            std::to_string(c.causal) + " w" + std::to_string(c.weights) + " t" + std::to_string(threads);
  ASSERT_TRUE(all_finite(out.data(), out_n)) << where;
  EXPECT_LT(rel_err(out.data(), ref.data(), out_n), 1e-5) << where;
  if (c.weights) {
    ASSERT_TRUE(all_finite(w.data(), w_n)) << where;
    EXPECT_LT(rel_err(w.data(), wref.data(), w_n), 1e-5) << where;
  }
}

TEST(Attention, MatchesFloat64Reference) {
  const Case cases[] = {
      {1, 1, 1, 1, 1, 1, 0, false, false, 1},     {1, 2, 3, 5, 4, 3, 0, false, false, 0},
      {2, 3, 17, 17, 5, 7, 1, false, true, 1},    {2, 2, 130, 300, 16, 8, 2, true, false, 2},
      {3, 2, 65, 129, 8, 16, 3, true, true, 1},   {1, 4, 200, 150, 32, 32, 0, false, true, 2},
      {2, 1, 150, 40, 3, 5, 0, true, true, 0},    {1, 12, 128, 128, 64, 64, 0, false, false, 0},
      {2, 2, 5, 300, 17, 9, 2, false, true, 1},   {1, 3, 129, 129, 64, 64, 1, true, true, 2},
  };
  uint32_t seed = 10;
  for (const Case& c : cases)
    for (int threads : {1, 3}) run_case(c, threads, seed++);
}

TEST(Attention, AllKeysMaskedGivesZerosNotNaN) {
  // Lq > Lk with a causal mask: the first Lq - Lk query rows see no key.
  std::vector<float> q(6 * 4, 1.0f), k(2 * 4, 1.0f), v(2 * 4, 1.0f), out(6 * 4, NAN), w(6 * 2, NAN);
  AttentionArgs a;
  a.B = 1, a.H = 1, a.Lq = 6, a.Lk = 2, a.D = 4, a.Dv = 4;
  a.q = {q.data(), 24, 24, 4}, a.k = {k.data(), 8, 8, 4}, a.v = {v.data(), 8, 8, 4};
  a.out = out.data(), a.o_sb = 24, a.o_sh = 24, a.o_sl = 4;
  a.mask.causal = true;
  a.weights = w.data();
  ThreadPool pool(1);
  Attention attn;
  ASSERT_EQ(attn.run(a, pool), Status::kOk);
  for (int i = 0; i < 6; ++i) {
    const bool sees = i >= 4;  // j <= i + (Lk - Lq) = i - 4
    for (int c = 0; c < 4; ++c) EXPECT_EQ(out[i * 4 + c], sees ? 1.0f : 0.0f) << i;
    EXPECT_EQ(w[i * 2] + w[i * 2 + 1], sees ? 1.0f : 0.0f) << i;
  }
}

TEST(Attention, RejectsBadSizes) {
  AttentionArgs a;
  ThreadPool pool(1);
  Attention attn;
  EXPECT_EQ(attn.run(a, pool), Status::kInvalidArgument);
}

struct LayerCase {
  int E, H, kdim, vdim, B, Lq, Lk;
  bool self, bias, in_proj, causal;
  int weights;
};

TEST(MultiHeadAttention, MatchesFloat64Reference) {
  const LayerCase cases[] = {
      {8, 2, 8, 8, 1, 5, 5, true, true, true, false, 2},     {12, 3, 12, 12, 2, 17, 17, true, true, false, true, 1},
      {6, 2, 5, 3, 3, 4, 9, false, true, false, false, 2},   {16, 4, 16, 16, 2, 33, 21, false, false, true, true, 0},
      {64, 8, 64, 64, 2, 70, 70, true, true, true, true, 2}, {20, 5, 7, 11, 1, 129, 64, false, true, false, false, 1},
  };
  uint32_t seed = 100;
  for (const LayerCase& c : cases)
    for (int threads : {1, 2}) {
      std::mt19937 rng(seed++);
      MhaConfig cfg{c.E, c.H, c.kdim, c.vdim, c.bias};
      const float ws = 1.0f / std::sqrt(float(c.E));
      auto inw = uniform(3 * c.E * c.E, -ws, ws, rng), qw = uniform(c.E * c.E, -ws, ws, rng);
      auto kw = uniform(c.E * c.kdim, -ws, ws, rng), vw = uniform(c.E * c.vdim, -ws, ws, rng);
      auto inb = uniform(3 * c.E, -ws, ws, rng), ow = uniform(c.E * c.E, -ws, ws, rng), ob = uniform(c.E, -ws, ws, rng);
      MhaWeights w;
      if (c.in_proj) {
        w.in_proj_weight = inw.data();
      } else {
        w.q_proj_weight = qw.data(), w.k_proj_weight = kw.data(), w.v_proj_weight = vw.data();
      }
      w.in_proj_bias = inb.data(), w.out_proj_weight = ow.data(), w.out_proj_bias = ob.data();
      auto x = uniform(size_t(c.B) * c.Lq * c.E, -1, 1, rng);
      auto key = uniform(size_t(c.B) * c.Lk * c.kdim, -1, 1, rng), val = uniform(size_t(c.B) * c.Lk * c.vdim, -1, 1, rng);
      MhaForwardArgs a;
      a.B = c.B, a.Lq = c.Lq, a.Lk = c.self ? c.Lq : c.Lk;
      a.query = x.data(), a.key = c.self ? x.data() : key.data(), a.value = c.self ? x.data() : val.data();
      a.mask.causal = c.causal;
      a.average_weights = c.weights == 2;
      const size_t on = size_t(c.B) * c.Lq * c.E, wn = size_t(c.B) * (c.weights == 2 ? 1 : c.H) * c.Lq * a.Lk;
      std::vector<float> out(on), ref(on), wt(wn), wref(wn);
      a.output = ref.data(), a.weights = c.weights ? wref.data() : nullptr;
      mha_reference(cfg, w, a);
      MultiHeadAttention layer(cfg);
      ThreadPool pool(threads);
      a.output = out.data(), a.weights = c.weights ? wt.data() : nullptr;
      EXPECT_EQ(layer.forward(a, pool), Status::kNoWeights);
      ASSERT_EQ(layer.set_weights(w), Status::kOk);
      for (int rep = 0; rep < 2; ++rep) {  // the second call reuses the workspace
        std::fill(out.begin(), out.end(), NAN);
        ASSERT_EQ(layer.forward(a, pool), Status::kOk);
        EXPECT_LT(rel_err(out.data(), ref.data(), on), 1e-5) << "E" << c.E << " t" << threads;
        if (c.weights) {
          EXPECT_LT(rel_err(wt.data(), wref.data(), wn), 1e-5);
        }
      }
    }
}

TEST(MultiHeadAttention, SetWeightsRejectsMissingOrMismatched) {
  MultiHeadAttention layer(MhaConfig{8, 2, 4, 8, true});
  std::vector<float> big(3 * 64, 0.1f);
  MhaWeights w;
  w.in_proj_weight = big.data();  // kdim != E: in_proj_weight is not allowed
  w.in_proj_bias = big.data(), w.out_proj_weight = big.data(), w.out_proj_bias = big.data();
  EXPECT_EQ(layer.set_weights(w), Status::kInvalidArgument);
  w.in_proj_weight = nullptr;
  w.q_proj_weight = big.data(), w.k_proj_weight = big.data();  // v missing
  EXPECT_EQ(layer.set_weights(w), Status::kInvalidArgument);
  w.v_proj_weight = big.data();
  EXPECT_EQ(layer.set_weights(w), Status::kOk);
  EXPECT_FALSE(MultiHeadAttention::valid(MhaConfig{10, 3, 10, 10, true}));
}

}  // namespace
