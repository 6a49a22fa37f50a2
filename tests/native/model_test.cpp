// mha::Model: a pre-norm model (RMSNorm, grouped rotary attention, gated SiLU
// feed-forward, tied head) whose cached step-by-step decoding must equal its full
// forward, and a post-norm one (LayerNorm, learned positions and token types, an
// embedding norm, no head) whose padded batch row must equal the row alone. One
// and two threads, a fresh workspace; the sizes make every scratch buffer matter
// (a carving past the workspace would crash here). The pre-norm model with
// float16 and int8 block matrices against the float32 model holding the
// dequantized matrices.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels_ref.h"
#include "model.h"
#include "test_util.h"

using namespace mha;
using mha_test::rel_err;
using mha_test::uniform;

namespace {

struct BlockData {
  std::vector<float> n1, n1b, q, k, v, o, n2, n2b, gate, up, down;
};

struct Built {
  ModelConfig cfg;
  std::vector<float> tokens, positions, types, en, enb, fn;
  std::vector<float> head;  // an untied head's weights [vocab, hidden]
  std::vector<BlockData> blocks;
  std::vector<double> inv_freq;
};

Built build(bool modern, std::mt19937& rng) {
  Built m;
  ModelConfig& c = m.cfg;
  c.vocab = 37, c.hidden = 24, c.layers = 2;
  c.attention.num_heads = 4;
  c.attention.bias = !modern;
  c.ffn.dim_feedforward = 40;
  if (modern) {
    c.rms_norm = true, c.norm_eps = 1e-6f, c.head = ModelConfig::kTied;
    c.attention.num_kv_heads = 2, c.attention.head_dim = 8, c.attention.rope_dim = 8;
    c.ffn.gated = true, c.ffn.activation = Activation::kSilu, c.ffn.bias = false;
    for (int i = 0; i < 4; ++i) m.inv_freq.push_back(std::pow(10000.0, -2.0 * i / 8));
  } else {
    c.pre_norm = false, c.final_norm = false, c.causal = false, c.max_positions = 16, c.type_vocab = 2, c.embed_norm = true;
    c.ffn.activation = Activation::kGelu;
  }
  const int H = c.hidden, D = modern ? 8 : 6, nq = 4 * D, nk = (modern ? 2 : 4) * D, F = c.ffn.dim_feedforward;
  m.tokens = uniform(size_t(c.vocab) * H, -1, 1, rng);
  m.positions = uniform(size_t(16) * H, -0.3f, 0.3f, rng), m.types = uniform(size_t(2) * H, -0.3f, 0.3f, rng);
  m.en = uniform(H, 0.5f, 1.5f, rng), m.enb = uniform(H, -0.2f, 0.2f, rng), m.fn = uniform(H, 0.5f, 1.5f, rng);
  for (int i = 0; i < c.layers; ++i) {
    BlockData b;
    b.n1 = uniform(H, 0.5f, 1.5f, rng), b.n1b = uniform(H, -0.2f, 0.2f, rng);
    b.n2 = uniform(H, 0.5f, 1.5f, rng), b.n2b = uniform(H, -0.2f, 0.2f, rng);
    b.q = uniform(size_t(nq) * H, -0.3f, 0.3f, rng), b.k = uniform(size_t(nk) * H, -0.3f, 0.3f, rng);
    b.v = uniform(size_t(nk) * H, -0.3f, 0.3f, rng), b.o = uniform(size_t(H) * nq, -0.3f, 0.3f, rng);
    b.gate = uniform(size_t(F) * H, -0.3f, 0.3f, rng), b.up = uniform(size_t(F) * H, -0.3f, 0.3f, rng);
    b.down = uniform(size_t(H) * F, -0.3f, 0.3f, rng);
    m.blocks.push_back(std::move(b));
  }
  return m;
}

void set_weights(Model& model, Built& m, std::vector<float>& zeros) {
  const ModelConfig& c = m.cfg;
  EmbeddingWeights e;
  e.tokens = m.tokens.data();
  if (c.max_positions) e.positions = m.positions.data();
  if (c.type_vocab) e.types = m.types.data();
  if (c.embed_norm) e.norm_weight = m.en.data(), e.norm_bias = m.enb.data();
  ASSERT_EQ(model.set_embeddings(e), Status::kOk);
  for (int i = 0; i < c.layers; ++i) {
    BlockData& b = m.blocks[i];
    BlockWeights w;
    w.norm1_weight = b.n1.data(), w.norm1_bias = b.n1b.data(), w.norm2_weight = b.n2.data(), w.norm2_bias = b.n2b.data();
    w.attention.q_proj_weight = b.q.data(), w.attention.k_proj_weight = b.k.data(), w.attention.v_proj_weight = b.v.data();
    w.attention.out_proj_weight = b.o.data();
    w.attention.q_proj_bias = w.attention.k_proj_bias = w.attention.v_proj_bias = w.attention.out_proj_bias = zeros.data();
    w.attention.rope_inv_freq = m.inv_freq.empty() ? nullptr : m.inv_freq.data();
    if (c.ffn.gated) w.ffn.gate_weight = b.gate.data();
    w.ffn.up_weight = b.up.data(), w.ffn.down_weight = b.down.data();
    w.ffn.up_bias = w.ffn.down_bias = zeros.data();
    ASSERT_EQ(model.set_block(i, w), Status::kOk);
  }
  if (c.final_norm) {
    ASSERT_EQ(model.set_final_norm(m.fn.data(), nullptr), Status::kOk);
  }
  if (c.head == ModelConfig::kUntied) {
    ASSERT_EQ(model.set_head(m.head.data()), Status::kOk);
  }
  ASSERT_TRUE(model.ready());
}

// The logits [B, L, vocab] of two models on the same ids, (i * mul + add) % vocab.
void logits_of_both(Model& first, Model& second, int B, int L, int mul, int add, ThreadPool& pool, Workspace& ws,
                    std::vector<int32_t>& ids, std::vector<float>& of_first, std::vector<float>& of_second) {
  const int V = first.config().vocab;
  ids.resize(size_t(B) * L);
  for (int i = 0; i < B * L; ++i) ids[i] = (i * mul + add) % V;
  of_first.assign(size_t(B) * L * V, 0.0f);
  of_second.assign(of_first.size(), 0.0f);
  ModelForwardArgs a;
  a.B = B, a.L = L, a.ids = ids.data(), a.output = of_first.data();
  ASSERT_EQ(first.forward(a, pool, ws), Status::kOk);
  a.output = of_second.data();
  ASSERT_EQ(second.forward(a, pool, ws), Status::kOk);
}

}  // namespace

class ModelTest : public ::testing::TestWithParam<int> {};

TEST_P(ModelTest, CachedDecodingEqualsTheFullForward) {
  std::mt19937 rng(7);
  Built m = build(true, rng);
  std::vector<float> zeros(256, 0.0f);
  Model model(m.cfg);
  ASSERT_TRUE(Model::valid(m.cfg));
  set_weights(model, m, zeros);
  ThreadPool pool(GetParam());
  Workspace ws;
  const int B = 2, L = 9, V = m.cfg.vocab;
  std::vector<int32_t> ids(B * L);
  for (int i = 0; i < B * L; ++i) ids[i] = (i * 7 + 3) % V;
  std::vector<float> full(size_t(B) * L * V);
  ModelForwardArgs a;
  a.B = B, a.L = L, a.ids = ids.data(), a.output = full.data();
  ASSERT_EQ(model.forward(a, pool, ws), Status::kOk);
  // Prefill 5, then one token at a time.
  ModelCache cache(m.cfg, B, 12);
  const int pre = 5;
  std::vector<int32_t> step_ids(B * pre);
  std::vector<float> out(size_t(B) * pre * V);
  for (int b = 0; b < B; ++b)
    for (int i = 0; i < pre; ++i) step_ids[b * pre + i] = ids[b * L + i];
  a.L = pre, a.ids = step_ids.data(), a.output = out.data(), a.cache = &cache;
  ASSERT_EQ(model.forward(a, pool, ws), Status::kOk);
  for (int b = 0; b < B; ++b)
    EXPECT_LT(rel_err(out.data() + size_t(b) * pre * V, full.data() + size_t(b) * L * V, size_t(pre) * V), 1e-5);
  for (int t = pre; t < L; ++t) {
    int32_t one[B];
    for (int b = 0; b < B; ++b) one[b] = ids[b * L + t];
    std::vector<float> step(size_t(B) * V);
    a.L = 1, a.ids = one, a.output = step.data(), a.last_only = true;
    ASSERT_EQ(model.forward(a, pool, ws), Status::kOk);
    for (int b = 0; b < B; ++b)
      EXPECT_LT(rel_err(step.data() + size_t(b) * V, full.data() + (size_t(b) * L + t) * V, V), 1e-5) << "step " << t;
  }
  EXPECT_EQ(cache.length(), L);
  // A step that does not fit is refused and leaves the cache as it was.
  int32_t many[B * 4] = {};
  std::vector<float> sink(size_t(B) * 4 * V);
  a.L = 4, a.ids = many, a.output = sink.data(), a.last_only = false;
  EXPECT_EQ(model.forward(a, pool, ws), Status::kInvalidArgument);
  EXPECT_EQ(cache.length(), L);
  // An id out of range is refused.
  int32_t bad[B] = {0, V};
  a.L = 1, a.ids = bad, a.cache = nullptr;
  EXPECT_EQ(model.forward(a, pool, ws), Status::kInvalidArgument);
}

TEST_P(ModelTest, PostNormEncoderIgnoresPadding) {
  std::mt19937 rng(11);
  Built m = build(false, rng);
  std::vector<float> zeros(256, 0.0f);
  Model model(m.cfg);
  ASSERT_TRUE(Model::valid(m.cfg));
  set_weights(model, m, zeros);
  ThreadPool pool(GetParam());
  Workspace ws;
  const int H = m.cfg.hidden, L = 7, real = 4;
  // Row 0: 4 tokens then 3 of padding; row 1 the same 4 tokens alone.
  std::vector<int32_t> ids = {5, 9, 2, 30, 0, 0, 0};
  std::vector<int32_t> types = {0, 0, 1, 1, 0, 0, 0};
  std::vector<uint8_t> pad = {0, 0, 0, 0, 1, 1, 1};
  std::vector<float> padded(size_t(L) * H), alone(size_t(real) * H);
  ModelForwardArgs a;
  a.B = 1, a.L = L, a.ids = ids.data(), a.token_types = types.data(), a.key_padding = pad.data(), a.output = padded.data();
  ASSERT_EQ(model.forward(a, pool, ws), Status::kOk);
  a.L = real, a.key_padding = nullptr, a.output = alone.data();
  ASSERT_EQ(model.forward(a, pool, ws), Status::kOk);
  EXPECT_LT(rel_err(padded.data(), alone.data(), size_t(real) * H), 1e-5);
  for (float x : padded) EXPECT_TRUE(std::isfinite(x));
  // Positions past the learned table are refused.
  std::vector<int32_t> far = {20, 1, 2, 3};
  a.positions = far.data();
  EXPECT_EQ(model.forward(a, pool, ws), Status::kInvalidArgument);
}

// Every matrix stored as t, the head and the token table included: the model
// equals (2e-3 for int8, 1e-4 for float16) the float32 model whose matrices and
// token table are the dequantized ones (the scalar twins quantize them), full
// forward and cached steps alike; the matrices take a half or a quarter of the
// bytes. A tied head is the only copy of the table (the lookup reads its rows);
// an untied one leaves the table a packed copy of its own.
TEST_P(ModelTest, QuantizedBlocksMatchTheFloatModelWithDequantizedMatrices) {
  for (WeightType t : {WeightType::kF16, WeightType::kInt8})
  for (bool tied : {true, false}) {
    std::mt19937 rng(13);
    Built m = build(true, rng);
    if (!tied) {
      m.cfg.head = ModelConfig::kUntied;
      m.head = uniform(m.tokens.size(), -1, 1, rng);
    }
    Built deq = m;
    m.cfg.attention.weight_type = m.cfg.ffn.weight_type = t;
    ASSERT_TRUE(Model::valid(m.cfg));
    const int H = m.cfg.hidden;
    deq.cfg.head = ModelConfig::kUntied;
    // Each matrix [rows, cols] as its stored type gives it back.
    auto dequantize = [&](std::vector<float>& w, int cols) {
      for (size_t r = 0; r < w.size() / cols; ++r) {
        float* row = w.data() + r * cols;
        if (t == WeightType::kF16) {
          for (int k = 0; k < cols; ++k) row[k] = float(kernels::half_to_double_ref(kernels::half_from_float_ref(row[k])));
        } else {
          std::vector<int8_t> q(cols);
          float scale;
          kernels::quantize_row_i8_ref(row, cols, q.data(), &scale);
          for (int k = 0; k < cols; ++k) row[k] = q[k] * scale;
        }
      }
    };
    dequantize(deq.tokens, H);
    if (tied)
      deq.head = deq.tokens;
    else
      dequantize(deq.head, H);
    for (BlockData& b : deq.blocks) {
      for (std::vector<float>* w : {&b.q, &b.k, &b.v, &b.gate, &b.up}) dequantize(*w, H);
      dequantize(b.o, int(b.o.size() / H));
      dequantize(b.down, m.cfg.ffn.dim_feedforward);
    }
    std::vector<float> zeros(256, 0.0f);
    Model model(m.cfg), ref(deq.cfg);
    set_weights(model, m, zeros);
    set_weights(ref, deq, zeros);
    EXPECT_LT(Model::weight_bytes(m.cfg), Model::weight_bytes(deq.cfg));
    EXPECT_LT(model.memory_bytes(), ref.memory_bytes());
    // weight_bytes counts the packed matrices as the model holds them: it differs from
    // memory_bytes by what it does for float32 (up to 64-byte rounding, per buffer).
    const double over = double(Model::weight_bytes(m.cfg)) - double(model.memory_bytes());
    const double over_f32 = double(Model::weight_bytes(deq.cfg)) - double(ref.memory_bytes());
    EXPECT_NEAR(over, over_f32, 64.0 * 6 * m.cfg.layers) << int(t);
    ModelConfig other = m.cfg;  // the same matrices with the head tied (no table of its own) or untied
    other.head = tied ? ModelConfig::kUntied : ModelConfig::kTied;
    const int64_t table = int64_t(PackedMatrix::bytes(H, m.cfg.vocab, t));  // the untied model's packed table
    EXPECT_EQ(int64_t(Model::weight_bytes(other)) - int64_t(Model::weight_bytes(m.cfg)), tied ? table : -table) << int(t);
    ThreadPool pool(GetParam());
    Workspace ws;
    const int B = 2, L = 9, V = m.cfg.vocab;
    const double tol = t == WeightType::kInt8 ? 2e-3 : 1e-4;
    std::vector<int32_t> ids;
    std::vector<float> got, want;
    logits_of_both(model, ref, B, L, 5, 1, pool, ws, ids, got, want);
    EXPECT_LT(rel_err(got.data(), want.data(), got.size()), tol) << int(t) << " tied " << tied;
    // One token at a time through a cache: the same logits.
    ModelCache cache(m.cfg, B, L);
    for (int i = 0; i < L; ++i) {
      int32_t one[B];
      for (int b = 0; b < B; ++b) one[b] = ids[b * L + i];
      std::vector<float> step(size_t(B) * V);
      ModelForwardArgs s;
      s.B = B, s.L = 1, s.ids = one, s.output = step.data(), s.cache = &cache;
      ASSERT_EQ(model.forward(s, pool, ws), Status::kOk);
      for (int b = 0; b < B; ++b)
        EXPECT_LT(rel_err(step.data() + size_t(b) * V, want.data() + (size_t(b) * L + i) * V, V), tol) << int(t) << " tied " << tied << " step " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Threads, ModelTest, ::testing::Values(1, 2));

// The token table and an untied head given in blocks of rows (begin_*_rows, then
// set_*_rows; what a caller staging little memory at a time does) make the same
// model as the whole tables: the same logits, bit for bit, in every weight type,
// tied and untied. Blocks out of order, of a size off kRowBlock, or with a value
// the type cannot store are refused and leave the table unset until it is begun
// and given again.
TEST_P(ModelTest, TablesInBlocksOfRowsMakeTheSameModel) {
  for (WeightType t : {WeightType::kF32, WeightType::kF16, WeightType::kInt8})
  for (bool tied : {true, false}) {
    std::mt19937 rng(17);
    Built m = build(true, rng);
    m.cfg.attention.weight_type = m.cfg.ffn.weight_type = t;
    if (!tied) {
      m.cfg.head = ModelConfig::kUntied;
      m.head = uniform(m.tokens.size(), -1, 1, rng);
    }
    const int H = m.cfg.hidden, V = m.cfg.vocab, R = Model::kRowBlock;
    std::vector<float> zeros(256, 0.0f);
    Model whole(m.cfg), blocks(m.cfg);
    set_weights(whole, m, zeros);
    set_weights(blocks, m, zeros);  // then the tables again, in blocks
    EmbeddingWeights e;  // the other embeddings alone: the table stays as it is
    ASSERT_EQ(blocks.set_embeddings(e), Status::kOk);
    ASSERT_TRUE(blocks.ready());
    // Rows before the table is begun, out of order, or not a multiple of R before the last: refused, and the table is unset.
    EXPECT_EQ(blocks.set_token_rows(0, R, m.tokens.data()), Status::kInvalidArgument);
    EXPECT_FALSE(blocks.ready());
    const float* tok = m.tokens.data();
    for (int bad : {0, 1, 2, 3}) {
      ASSERT_EQ(blocks.begin_token_rows(), Status::kOk);
      ASSERT_EQ(blocks.set_token_rows(0, R, tok), Status::kOk);
      const Status s = bad == 0 ? blocks.set_token_rows(2 * R, R, tok + 2 * R * H)   // skips rows R..2R
                     : bad == 1 ? blocks.set_token_rows(R, R + 1, tok + R * H)      // not a whole block, not the last
                     : bad == 2 ? blocks.set_token_rows(R, V, tok + R * H)          // past the table
                                : blocks.set_token_rows(R, 0, tok + R * H);
      EXPECT_EQ(s, Status::kInvalidArgument) << bad;
      EXPECT_EQ(blocks.set_token_rows(R, R, tok + R * H), Status::kInvalidArgument) << "after a refusal, " << bad;
    }
    if (t != WeightType::kF32) {  // a value the type cannot store, in a later block
      std::vector<float> nan(m.tokens.begin() + R * H, m.tokens.begin() + 2 * R * H);
      nan[3] = NAN;
      ASSERT_EQ(blocks.begin_token_rows(), Status::kOk);
      ASSERT_EQ(blocks.set_token_rows(0, R, tok), Status::kOk);
      EXPECT_EQ(blocks.set_token_rows(R, R, nan.data()), Status::kInvalidArgument);
      EXPECT_EQ(blocks.set_token_rows(2 * R, R, tok + 2 * R * H), Status::kInvalidArgument);  // must begin again
    }
    const int sizes[] = {R, R, 2 * R, V - 4 * R};
    ASSERT_EQ(V - 4 * R, 5);
    for (bool head : {false, true}) {
      if (head && tied) {
        EXPECT_EQ(blocks.begin_head_rows(), Status::kInvalidArgument);  // a tied head is the table
        continue;
      }
      const std::vector<float>& w = head ? m.head : m.tokens;
      ASSERT_EQ(head ? blocks.begin_head_rows() : blocks.begin_token_rows(), Status::kOk);
      for (int first = 0, i = 0; i < 4; first += sizes[i++]) {
        EXPECT_FALSE(blocks.ready());
        const Status s = head ? blocks.set_head_rows(first, sizes[i], w.data() + size_t(first) * H)
                              : blocks.set_token_rows(first, sizes[i], w.data() + size_t(first) * H);
        ASSERT_EQ(s, Status::kOk) << "rows from " << first;
      }
      if (!head && !tied) {
        EXPECT_TRUE(blocks.ready());  // the head was set whole by set_weights; now again in blocks
      }
    }
    ASSERT_TRUE(blocks.ready());
    EXPECT_EQ(blocks.memory_bytes(), whole.memory_bytes());
    ThreadPool pool(GetParam());
    Workspace ws;
    std::vector<int32_t> ids;
    std::vector<float> got, want;
    logits_of_both(blocks, whole, 2, 6, 11, 2, pool, ws, ids, got, want);  // ids in every block of rows
    for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << int(t) << " tied " << tied << " at " << i;
  }
}
