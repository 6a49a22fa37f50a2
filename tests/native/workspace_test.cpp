// One workspace per runtime: the release policy, operators that say what they
// need before they run, layers that hold only their weights, and several layers
// sharing one workspace sized for the largest step.
#include <gtest/gtest.h>

#include <cstdint>

#include "attention.h"
#include "mha.h"
#include "test_util.h"
#include "transformer.h"
#include "workspace.h"

using namespace mha;
using mha_test::uniform;

namespace {

constexpr uint64_t kMiB = 1u << 20;

TEST(Workspace, GrowsToTheLargestCallAndIsReleasedAfterAMuchSmallerOne) {
  Workspace ws;
  EXPECT_EQ(ws.capacity_bytes(), 0u);
  ASSERT_EQ(ws.reserve(10 * kMiB), Status::kOk);
  EXPECT_EQ(ws.capacity_bytes(), 10 * kMiB);
  ASSERT_NE(ws.data(), nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(ws.data()) % Workspace::kAlign, 0u);
  // A call that needs a little more grows it by a quarter: calls that grow a bit at
  // a time (cached decoding) do not reallocate every time.
  ASSERT_EQ(ws.reserve(10 * kMiB + 1), Status::kOk);
  EXPECT_EQ(ws.capacity_bytes(), 12 * kMiB + 512 * 1024);
  // A smaller call fits and keeps it; so does one that needs a quarter of it but is
  // within kKeepSlackBytes of it.
  ASSERT_EQ(ws.reserve(kMiB), Status::kOk);
  ws.after_call(kMiB);
  EXPECT_EQ(ws.capacity_bytes(), 12 * kMiB + 512 * 1024);
  // A one-off huge call: kept while calls use a fair part of it ...
  ASSERT_EQ(ws.reserve(100 * kMiB), Status::kOk);
  ws.after_call(100 * kMiB);
  ws.after_call(30 * kMiB);
  EXPECT_EQ(ws.capacity_bytes(), 100 * kMiB);
  // ... and freed after a call that needed less than a quarter of it.
  ws.after_call(20 * kMiB);
  EXPECT_EQ(ws.capacity_bytes(), 0u);
  EXPECT_EQ(ws.data(), nullptr);
}

TEST(Workspace, AFailedReserveSaysWhatItAskedForAndLeavesItEmpty) {
  Workspace ws;
  ASSERT_EQ(ws.reserve(kMiB), Status::kOk);
  const uint64_t huge = uint64_t(1) << 62;
  EXPECT_EQ(ws.reserve(huge), Status::kOutOfMemory);
  EXPECT_EQ(ws.last_request_bytes(), huge);
  EXPECT_EQ(ws.capacity_bytes(), 0u);
  ASSERT_EQ(ws.reserve(kMiB), Status::kOk);
  EXPECT_EQ(ws.last_request_bytes(), 0u);
}

TEST(Arena, CountsWhatItCarvesAndRefusesPastItsCapacity) {
  Arena count;
  EXPECT_EQ(count.floats(1), nullptr);
  count.floats(17);
  EXPECT_EQ(count.bytes(), 2 * Workspace::kAlign + 64);  // 4, 68 bytes: each rounded up to 64
  alignas(64) static float buf[64];
  Arena a(buf, sizeof(buf));
  EXPECT_EQ(a.floats(16), buf);
  EXPECT_EQ(a.floats(16), buf + 16);
  const uint64_t mark = a.mark();
  EXPECT_EQ(a.floats(32), buf + 32);
  EXPECT_EQ(a.floats(1), nullptr);  // past the capacity
  a.reset(mark);
  EXPECT_EQ(a.floats(32), buf + 32);
}

// A small value width costs what it is: V is packed a key block at a time, so Dv = 1
// needs about as much as Dv = 8 (K packed once, plus tiles), not 8x its size.
TEST(Attention, WorkspaceForASmallValueWidth) {
  AttentionArgs a;
  a.B = 1, a.H = 1, a.Lq = Attention::kDirectRows + 1, a.Lk = 200000000, a.D = 1, a.Dv = 1;
  const uint64_t need = Attention::workspace_bytes(a, 2);
  const uint64_t k_bytes = uint64_t(a.Lk) * sizeof(float);  // K packed: D * Lk floats
  EXPECT_GE(need, k_bytes);
  EXPECT_LT(need, k_bytes + kMiB);  // no per-key V copy
  a.Dv = 8;
  EXPECT_EQ(Attention::workspace_bytes(a, 2) - need, 0u);  // Dv 1..8 round to the same tiles
}

// A decoding step (up to kDirectRows queries) reads K and V in place: its
// workspace holds the tiles only, however many keys there are.
TEST(Attention, WorkspaceOfADecodingStepDoesNotGrowWithTheKeys) {
  AttentionArgs a;
  a.B = 2, a.H = 4, a.Lq = Attention::kDirectRows, a.Lk = 200000000, a.D = 64, a.Dv = 64;
  const uint64_t need = Attention::workspace_bytes(a, 2);
  EXPECT_LT(need, kMiB);
  a.Lk = 16;
  EXPECT_EQ(Attention::workspace_bytes(a, 2), need);
}

// Encoder-layer weights in PyTorch layout.
struct Weights {
  std::vector<float> in_w, in_b, out_w, out_b, l1_w, l1_b, l2_w, l2_b, n_w, n_b;
  Weights(int E, int F, std::mt19937& rng) {
    const float s = 1 / std::sqrt(float(E));
    in_w = uniform(size_t(3) * E * E, -s, s, rng), in_b = uniform(3 * E, -s, s, rng);
    out_w = uniform(size_t(E) * E, -s, s, rng), out_b = uniform(E, -s, s, rng);
    l1_w = uniform(size_t(F) * E, -s, s, rng), l1_b = uniform(F, -s, s, rng);
    l2_w = uniform(size_t(E) * F, -s, s, rng), l2_b = uniform(E, -s, s, rng);
    n_w = uniform(E, 0.5f, 1.5f, rng), n_b = uniform(E, -0.5f, 0.5f, rng);
  }
  EncoderWeights view() const {
    EncoderWeights w;
    w.self_attn.in_proj_weight = in_w.data(), w.self_attn.in_proj_bias = in_b.data();
    w.self_attn.out_proj_weight = out_w.data(), w.self_attn.out_proj_bias = out_b.data();
    w.linear1_weight = l1_w.data(), w.linear1_bias = l1_b.data(), w.linear2_weight = l2_w.data(), w.linear2_bias = l2_b.data();
    w.norm1_weight = w.norm2_weight = n_w.data(), w.norm1_bias = w.norm2_bias = n_b.data();
    return w;
  }
};

// Eight encoder layers run one after the other share one workspace: it ends as
// large as one layer's step needs, and the layers keep nothing but their weights.
TEST(Workspace, EightLayersShareOneSizedForTheLargestStep) {
  const int E = 64, H = 4, F = 256, L = 300;
  std::mt19937 rng(3);
  EncoderConfig cfg;
  cfg.d_model = E, cfg.nhead = H, cfg.dim_feedforward = F;
  std::vector<std::unique_ptr<TransformerEncoderLayer>> layers;
  std::vector<Weights> weights;
  for (int i = 0; i < 8; ++i) {
    weights.emplace_back(E, F, rng);
    layers.push_back(std::make_unique<TransformerEncoderLayer>(cfg));
    ASSERT_EQ(layers.back()->set_weights(weights.back().view()), Status::kOk);
  }
  const size_t weight_bytes = layers[0]->memory_bytes();
  std::vector<float> x = uniform(size_t(L) * E, -1, 1, rng), y(x.size());
  ThreadPool pool(2);
  Workspace ws;
  EncoderForwardArgs a;
  a.B = 1, a.L = L, a.src = x.data(), a.output = y.data();
  const uint64_t need = layers[0]->workspace_bytes(a, pool);
  for (auto& layer : layers) {
    a.src = x.data(), a.output = y.data();
    EXPECT_EQ(layer->workspace_bytes(a, pool), need);
    ASSERT_EQ(layer->forward(a, pool, ws), Status::kOk);
    EXPECT_EQ(ws.capacity_bytes(), need);
    EXPECT_EQ(layer->memory_bytes(), weight_bytes);
    std::swap(x, y);
  }
  EXPECT_TRUE(mha_test::all_finite(x.data(), x.size()));
}

// What each operator says it needs is what the call reserves, cached or not.
TEST(Workspace, OperatorsReserveWhatTheySayTheyNeed) {
  const int E = 32, H = 4, F = 48, B = 2, T = 40, S = 70;
  std::mt19937 rng(4);
  EncoderConfig cfg;
  cfg.d_model = E, cfg.nhead = H, cfg.dim_feedforward = F;
  const Weights w(E, F, rng), w2(E, F, rng);
  TransformerDecoderLayer dec(cfg);
  DecoderWeights dw;
  const EncoderWeights e = w.view(), e2 = w2.view();
  dw.self_attn = e.self_attn, dw.cross_attn = e2.self_attn;
  dw.linear1_weight = e.linear1_weight, dw.linear1_bias = e.linear1_bias;
  dw.linear2_weight = e.linear2_weight, dw.linear2_bias = e.linear2_bias;
  for (int i = 0; i < 3; ++i) dw.norm_weight[i] = e.norm1_weight, dw.norm_bias[i] = e.norm1_bias;
  ASSERT_EQ(dec.set_weights(dw), Status::kOk);
  const auto tgt = uniform(size_t(B) * T * E, -1, 1, rng), mem = uniform(size_t(B) * S * E, -1, 1, rng);
  std::vector<float> out(tgt.size());
  for (int threads : {1, 3}) {
    ThreadPool pool(threads);
    for (bool cached : {false, true}) {
      Workspace ws;
      KVCache self, cross;
      ASSERT_EQ(self.init(B, T, E), Status::kOk);
      DecoderForwardArgs a;
      a.B = B, a.T = cached ? 1 : T, a.S = S, a.tgt = tgt.data(), a.memory = mem.data(), a.output = out.data();
      a.tgt_mask.causal = true;
      if (cached) a.self_cache = &self, a.cross_cache = &cross;
      for (int step = 0; step < (cached ? 5 : 1); ++step) {
        const uint64_t need = dec.workspace_bytes(a, pool);
        ASSERT_EQ(dec.forward(a, pool, ws), Status::kOk);
        EXPECT_GE(ws.capacity_bytes(), need) << "threads " << threads << " cached " << cached << " step " << step;
        if (step == 0) {
          EXPECT_EQ(ws.capacity_bytes(), need);
        }
      }
    }
  }
}

}  // namespace
