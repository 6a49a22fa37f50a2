// TransformerEncoderLayer against its float64 reference (encoder_reference:
// double LayerNorm, feed-forward and mha_reference, no blocking): post- and
// pre-norm, ReLU and GELU, with and without bias, causal and key padding masks,
// one and two threads.
#include <gtest/gtest.h>

#include <cstdint>

#include "reference.h"
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
      Workspace ws;
      ASSERT_EQ(layer.forward(a, pool, ws), Status::kOk);
      a.output = ref.data();
      encoder_reference(cfg, wv, a);
      EXPECT_TRUE(all_finite(out.data(), out.size()));
      EXPECT_LE(rel_err(out.data(), ref.data(), out.size()), 1e-4)
          << "E=" << c.E << " L=" << c.L << " norm_first=" << c.norm_first << " gelu=" << c.gelu << " threads=" << threads;
      // A second call reuses the workspace and gives the same result.
      std::vector<float> again(x.size());
      a.output = again.data();
      ASSERT_EQ(layer.forward(a, pool, ws), Status::kOk);
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
  Workspace ws;
  EncoderForwardArgs a;
  a.B = 1, a.L = 3, a.src = x.data(), a.output = y.data();
  EXPECT_EQ(layer.forward(a, pool, ws), Status::kNoWeights);
  EncoderWeights wv = w.view();
  wv.norm2_bias = nullptr;
  EXPECT_EQ(layer.set_weights(wv), Status::kInvalidArgument);
  wv = w.view();
  wv.linear1_weight = nullptr;
  EXPECT_EQ(layer.set_weights(wv), Status::kInvalidArgument);
  ASSERT_EQ(layer.set_weights(w.view()), Status::kOk);
  a.output = x.data();  // aliasing the input
  EXPECT_EQ(layer.forward(a, pool, ws), Status::kInvalidArgument);
  a.output = y.data();
  EXPECT_EQ(layer.forward(a, pool, ws), Status::kOk);
}

}  // namespace

namespace {

// Decoder weights from two encoder weight sets: self-attention, feed-forward and
// norms 1-2 from the first, cross-attention and norm3 from the second.
DecoderWeights decoder_weights(const Weights& sa, const Weights& ca) {
  DecoderWeights w;
  const EncoderWeights a0 = sa.view(), a1 = ca.view();
  w.self_attn = a0.self_attn, w.cross_attn = a1.self_attn;
  w.linear1_weight = a0.linear1_weight, w.linear1_bias = a0.linear1_bias;
  w.linear2_weight = a0.linear2_weight, w.linear2_bias = a0.linear2_bias;
  w.norm_weight[0] = a0.norm1_weight, w.norm_bias[0] = a0.norm1_bias;
  w.norm_weight[1] = a0.norm2_weight, w.norm_bias[1] = a0.norm2_bias;
  w.norm_weight[2] = a1.norm1_weight, w.norm_bias[2] = a1.norm1_bias;
  return w;
}

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
      const DecoderWeights w = decoder_weights(sa, ca);
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
      Workspace ws;
      ASSERT_EQ(layer.forward(a, pool, ws), Status::kOk);
      a.output = ref.data();
      decoder_reference(cfg, w, a);
      EXPECT_TRUE(all_finite(out.data(), out.size()));
      EXPECT_LE(rel_err(out.data(), ref.data(), out.size()), 1e-4)
          << "T=" << c.T << " S=" << c.S << " norm_first=" << c.norm_first << " threads=" << threads;
    }
}

}  // namespace

// Incremental decoding: feeding a sequence through a KV cache in chunks (one
// token at a time, or uneven chunks) gives the float64 reference of the full
// causal forward over the whole sequence, for every length 1..64.
namespace {

const std::vector<std::vector<int>> kChunkings = {
    std::vector<int>(64, 1), {1, 3, 4, 5, 17, 1, 33}, {64}, {7, 1, 1, 55}};

TEST(KVCache, EncoderStepsEqualFullCausalForward) {
  uint32_t seed = 900;
  for (bool norm_first : {false, true})
    for (int threads : {1, 2}) {
      const int B = 2, L = 64, E = 16, H = 4, F = 24;
      std::mt19937 rng(seed++);
      const EncoderConfig cfg = make_config(E, H, F, norm_first, !norm_first, true);
      const Weights w = make_weights(E, F, rng);
      TransformerEncoderLayer layer(cfg);
      ASSERT_EQ(layer.set_weights(w.view()), Status::kOk);
      const auto x = uniform(size_t(B) * L * E, -2, 2, rng);
      std::vector<float> ref(x.size());
      EncoderForwardArgs full;
      full.B = B, full.L = L, full.src = x.data(), full.output = ref.data(), full.mask.causal = true;
      encoder_reference(cfg, w.view(), full);
      ThreadPool pool(threads);
      Workspace ws;
      KVCache cache;
      ASSERT_EQ(cache.init(B, L, E), Status::kOk);
      for (const auto& chunks : kChunkings) {
        cache.reset();
        int pos = 0;
        for (int n : chunks) {
          std::vector<float> in(size_t(B) * n * E), out(in.size());
          for (int b = 0; b < B; ++b)
            std::copy_n(&x[(size_t(b) * L + pos) * E], size_t(n) * E, &in[size_t(b) * n * E]);
          EncoderForwardArgs a;
          a.B = B, a.L = n, a.src = in.data(), a.output = out.data(), a.mask.causal = true, a.cache = &cache;
          ASSERT_EQ(layer.forward(a, pool, ws), Status::kOk);
          ASSERT_EQ(cache.length(), pos + n);
          for (int b = 0; b < B; ++b)
            EXPECT_LE(rel_err(&out[size_t(b) * n * E], &ref[(size_t(b) * L + pos) * E], size_t(n) * E), 1e-4)
                << "chunk at " << pos << " of " << n << " threads=" << threads << " norm_first=" << norm_first;
          pos += n;
        }
      }
      // Full: one more position does not fit and leaves the cache as it was.
      std::vector<float> one(size_t(B) * E), out(one.size());
      EncoderForwardArgs a;
      a.B = B, a.L = 1, a.src = one.data(), a.output = out.data(), a.mask.causal = true, a.cache = &cache;
      EXPECT_EQ(layer.forward(a, pool, ws), Status::kInvalidArgument);
      EXPECT_EQ(cache.length(), L);
      a.B = 1;  // the cache was made for batch 2
      cache.reset();
      EXPECT_EQ(layer.forward(a, pool, ws), Status::kInvalidArgument);
      EXPECT_EQ(cache.length(), 0);
    }
}

TEST(KVCache, DecoderStepsEqualFullCausalForward) {
  uint32_t seed = 950;
  for (bool norm_first : {false, true})
    for (int threads : {1, 2}) {
      const int B = 2, T = 64, S = 11, E = 24, H = 3, F = 32;
      std::mt19937 rng(seed++);
      const DecoderConfig cfg = make_config(E, H, F, norm_first, norm_first, true);
      const Weights sa = make_weights(E, F, rng), ca = make_weights(E, F, rng);
      const DecoderWeights w = decoder_weights(sa, ca);
      TransformerDecoderLayer layer(cfg);
      ASSERT_EQ(layer.set_weights(w), Status::kOk);
      const auto tgt = uniform(size_t(B) * T * E, -2, 2, rng), mem = uniform(size_t(B) * S * E, -2, 2, rng);
      std::vector<uint8_t> mk(size_t(B) * S, 0);
      mk[size_t(S) + S - 1] = mk[size_t(S) + S - 2] = 1;  // the second memory is two shorter
      std::vector<float> ref(tgt.size());
      DecoderForwardArgs full;
      full.B = B, full.T = T, full.S = S, full.tgt = tgt.data(), full.memory = mem.data(), full.output = ref.data();
      full.tgt_mask.causal = true, full.memory_mask.key_padding = mk.data();
      decoder_reference(cfg, w, full);
      ThreadPool pool(threads);
      Workspace ws;
      KVCache self, cross;
      ASSERT_EQ(self.init(B, T, E), Status::kOk);
      for (const auto& chunks : kChunkings) {
        self.reset(), cross.reset();
        int pos = 0;
        for (int n : chunks) {
          std::vector<float> in(size_t(B) * n * E), out(in.size());
          for (int b = 0; b < B; ++b)
            std::copy_n(&tgt[(size_t(b) * T + pos) * E], size_t(n) * E, &in[size_t(b) * n * E]);
          DecoderForwardArgs a = full;
          a.T = n, a.tgt = in.data(), a.output = out.data(), a.self_cache = &self, a.cross_cache = &cross;
          ASSERT_EQ(layer.forward(a, pool, ws), Status::kOk);
          ASSERT_EQ(self.length(), pos + n);
          ASSERT_EQ(cross.length(), S);
          for (int b = 0; b < B; ++b)
            EXPECT_LE(rel_err(&out[size_t(b) * n * E], &ref[(size_t(b) * T + pos) * E], size_t(n) * E), 1e-4)
                << "chunk at " << pos << " of " << n << " threads=" << threads << " norm_first=" << norm_first;
          pos += n;
        }
      }
      DecoderForwardArgs a = full;
      a.self_cache = &self;  // a self cache without a cross cache
      EXPECT_EQ(layer.forward(a, pool, ws), Status::kInvalidArgument);
    }
}

// memory_mask.causal in the decoder lines the target up with the memory from the start:
// target position t (counting cached positions) sees memory positions j <= t, the bool
// mask j > t. That does not depend on how long the target grows, so cached steps give
// the full forward's rows whether T < S, T == S or T > S.
TEST(KVCache, DecoderMemoryIsCausalStepsEqualFullForward) {
  uint32_t seed = 970;
  const int B = 2, E = 24, H = 3, F = 32;
  for (auto [T, S] : {std::pair{64, 11}, std::pair{20, 33}, std::pair{24, 24}})
    for (bool norm_first : {false, true})
      for (int threads : {1, 2}) {
        std::mt19937 rng(seed++);
        const DecoderConfig cfg = make_config(E, H, F, norm_first, !norm_first, true);
        const Weights sa = make_weights(E, F, rng), ca = make_weights(E, F, rng);
        const DecoderWeights w = decoder_weights(sa, ca);
        TransformerDecoderLayer layer(cfg);
        ASSERT_EQ(layer.set_weights(w), Status::kOk);
        const auto tgt = uniform(size_t(B) * T * E, -2, 2, rng), mem = uniform(size_t(B) * S * E, -2, 2, rng);
        std::vector<float> ref(tgt.size()), full_out(tgt.size()), masked_out(tgt.size());
        DecoderForwardArgs full;
        full.B = B, full.T = T, full.S = S, full.tgt = tgt.data(), full.memory = mem.data(), full.output = ref.data();
        full.tgt_mask.causal = true, full.memory_mask.causal = true;
        decoder_reference(cfg, w, full);
        ThreadPool pool(threads);
        Workspace ws;
        full.output = full_out.data();
        ASSERT_EQ(layer.forward(full, pool, ws), Status::kOk);
        const std::string where = "T=" + std::to_string(T) + " S=" + std::to_string(S) + " norm_first=" +
                                  std::to_string(norm_first) + " threads=" + std::to_string(threads);
        EXPECT_LE(rel_err(full_out.data(), ref.data(), ref.size()), 1e-4) << where;
        // The same as the explicit mask, uncached.
        std::vector<uint8_t> m(size_t(T) * S);
        for (int t = 0; t < T; ++t)
          for (int j = 0; j < S; ++j) m[size_t(t) * S + j] = j > t;
        DecoderForwardArgs explicit_mask = full;
        explicit_mask.memory_mask.causal = false, explicit_mask.memory_mask.bool_mask = m.data(), explicit_mask.memory_mask.sl = S;
        explicit_mask.output = masked_out.data();
        ASSERT_EQ(layer.forward(explicit_mask, pool, ws), Status::kOk);
        EXPECT_LE(rel_err(masked_out.data(), full_out.data(), ref.size()), 1e-6) << where;
        KVCache self, cross;
        ASSERT_EQ(self.init(B, T, E), Status::kOk);
        for (const auto& all_chunks : kChunkings) {
          std::vector<int> chunks;  // the chunking cut to sum to T
          int left = T;
          for (int c : all_chunks)
            if (left > 0) chunks.push_back(std::min(c, left)), left -= chunks.back();
          if (left > 0) chunks.push_back(left);
          self.reset(), cross.reset();
          int pos = 0;
          for (int n : chunks) {
            std::vector<float> in(size_t(B) * n * E), out(in.size());
            for (int b = 0; b < B; ++b)
              std::copy_n(&tgt[(size_t(b) * T + pos) * E], size_t(n) * E, &in[size_t(b) * n * E]);
            DecoderForwardArgs a = full;
            a.T = n, a.tgt = in.data(), a.output = out.data(), a.self_cache = &self, a.cross_cache = &cross;
            ASSERT_EQ(layer.forward(a, pool, ws), Status::kOk);
            for (int b = 0; b < B; ++b)
              EXPECT_LE(rel_err(&out[size_t(b) * n * E], &ref[(size_t(b) * T + pos) * E], size_t(n) * E), 1e-4)
                  << where << " chunk at " << pos << " of " << n;
            pos += n;
          }
        }
      }
}

}  // namespace

// A step is one job: the encoder and decoder forwards (cached or not) wake the
// pool's workers once, with barriers between their phases, instead of once per
// GEMM, norm and attention pass; a single-token decoding step of a large enough
// layer runs on every thread.
namespace {

TEST(ThreadPool, AStepIsOneJob) {
  const int E = 256, H = 4, F = 1024, B = 1, L = 32, S = 40;  // a token of this layer: 1.6 MFLOP
  std::mt19937 rng(31);
  const Weights w = make_weights(E, F, rng), w2 = make_weights(E, F, rng);
  const EncoderConfig cfg = make_config(E, H, F, true, false, true);
  TransformerEncoderLayer enc(cfg);
  ASSERT_EQ(enc.set_weights(w.view()), Status::kOk);
  TransformerDecoderLayer dec(cfg);
  ASSERT_EQ(dec.set_weights(decoder_weights(w, w2)), Status::kOk);
  const auto x = uniform(size_t(B) * L * E, -1, 1, rng), mem = uniform(size_t(B) * S * E, -1, 1, rng);
  std::vector<float> y(x.size());
  ThreadPool pool(2);
  Workspace ws;
  KVCache cache, self, cross;
  ASSERT_EQ(cache.init(B, L + 1, E), Status::kOk);
  ASSERT_EQ(self.init(B, L + 1, E), Status::kOk);
  EncoderForwardArgs e;
  e.B = B, e.L = L, e.src = x.data(), e.output = y.data(), e.mask.causal = true;
  DecoderForwardArgs d;
  d.B = B, d.T = L, d.S = S, d.tgt = x.data(), d.memory = mem.data(), d.output = y.data(), d.tgt_mask.causal = true;
  auto one_job = [&](auto&& call, const char* what) {
    const unsigned long jobs = pool.jobs_run(), parallel = pool.jobs_parallel();
    ASSERT_EQ(call(), Status::kOk) << what;
    EXPECT_EQ(pool.jobs_run() - jobs, 1u) << what;
    EXPECT_EQ(pool.jobs_parallel() - parallel, 1u) << what;
  };
  one_job([&] { return enc.forward(e, pool, ws); }, "encoder");
  one_job([&] { return dec.forward(d, pool, ws); }, "decoder");
  e.cache = &cache;
  one_job([&] { return enc.forward(e, pool, ws); }, "encoder, the prefix into a cache");
  e.L = 1;
  one_job([&] { return enc.forward(e, pool, ws); }, "encoder, one cached token");
  EXPECT_GE(enc.work(e), ThreadPool::kMinParallelWork);
  d.self_cache = &self, d.cross_cache = &cross;
  one_job([&] { return dec.forward(d, pool, ws); }, "decoder, the prefix into caches");
  d.T = 1;
  one_job([&] { return dec.forward(d, pool, ws); }, "decoder, one cached token");
}

}  // namespace
