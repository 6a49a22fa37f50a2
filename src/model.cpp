#include "model.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "kernels.h"
#include "transformer.h"

namespace mha {

namespace {
MhaConfig attention_config(const ModelConfig& c, int block) {
  MhaConfig a = c.attention;
  a.embed_dim = a.kdim = a.vdim = c.hidden;
  if (block < c.window_from) a.window = 0;
  return a;
}
// Where the embedding lookup reads the token table (model.h): float32 as given; in
// float16 or int8, the rows of a tied head, or a packed copy of the table of its own.
enum class Table { kFloat, kHead, kPacked };
Table table_storage(const ModelConfig& c) {
  if (c.attention.weight_type == WeightType::kF32) return Table::kFloat;
  return c.head == ModelConfig::kTied ? Table::kHead : Table::kPacked;
}

FeedForwardConfig ffn_config(const ModelConfig& c) {
  FeedForwardConfig f = c.ffn;
  f.d_model = c.hidden;
  return f;
}
}  // namespace

bool Model::valid(const ModelConfig& c) {
  if (c.vocab <= 0 || c.hidden <= 0 || c.layers <= 0 || c.max_positions < 0 || c.type_vocab < 0 || !(c.norm_eps > 0))
    return false;
  if (c.head < ModelConfig::kNoHead || c.head > ModelConfig::kUntied || c.window_from < 0) return false;
  return MultiHeadAttention::valid(attention_config(c, c.layers)) && FeedForward::valid(ffn_config(c));
}

RowNorm Model::make_norm() const {
  if (cfg_.rms_norm) return RMSNorm(cfg_.hidden, cfg_.norm_eps);
  return LayerNorm(cfg_.hidden, cfg_.norm_eps);
}

MhaConfig Model::block_attention(int i) const { return attention_config(cfg_, i); }

Model::Model(const ModelConfig& cfg)
    : cfg_(cfg), embed_norm_(LayerNorm(cfg.hidden, cfg.norm_eps)), final_norm_(make_norm()),
      head_(cfg.hidden, cfg.vocab, cfg.attention.weight_type) {
  blocks_.reserve(cfg.layers);
  for (int i = 0; i < cfg.layers; ++i)
    blocks_.push_back(Block{make_norm(), make_norm(), MultiHeadAttention(block_attention(i)), FeedForward(ffn_config(cfg))});
}

uint64_t Model::weight_bytes(const ModelConfig& c) {
  const uint64_t H = c.hidden, V = c.vocab, p = kernels::kNR;
  const MhaConfig a = attention_config(c, c.layers);
  const uint64_t nq = static_cast<uint64_t>(a.H()) * a.D(), nk = static_cast<uint64_t>(a.Hkv()) * a.D();
  const uint64_t F = c.ffn.dim_feedforward, Fp = round_up(F, p);
  // The matrices as their weight types pack them (every size fits an int: the layers exist).
  const int h = c.hidden, ldf = static_cast<int>(round_up(nq, p) + 2 * round_up(nk, p)), f = c.ffn.dim_feedforward;
  const WeightType ta = a.weight_type, tf = c.ffn.weight_type;
  const uint64_t matrices = PackedMatrix::bytes(h, ldf, ta) + PackedMatrix::bytes(static_cast<int>(nq), h, ta) +
                            PackedMatrix::bytes(h, c.ffn.gated ? static_cast<int>(2 * Fp) : f, tf) + PackedMatrix::bytes(f, h, tf);
  // Float32: biases, norms, the attention's option arrays.
  const uint64_t floats = 2 * round_up(nq + 2 * nk, p) + H + 3 * Fp + H + 4 * H + 2 * a.H() + 2 * a.D() + a.rope_dim;
  const Table t = table_storage(c);
  const uint64_t table = t == Table::kHead ? 0 : t == Table::kPacked ? PackedMatrix::bytes(h, c.vocab, ta) : V * H * sizeof(float);
  const uint64_t emb = static_cast<uint64_t>(c.max_positions) * H + static_cast<uint64_t>(c.type_vocab) * H + 4 * H;
  // The head is stored as the blocks' attention matrices are (a tied head: a packed copy of the table).
  const uint64_t head = c.head == ModelConfig::kNoHead ? 0 : PackedMatrix::bytes(h, c.vocab, ta);
  return c.layers * (matrices + floats * sizeof(float)) + table + emb * sizeof(float) + head;
}

size_t Model::memory_bytes() const {
  size_t n = tokens_.bytes() + token_rows_storage_.memory_bytes() + positions_.bytes() + types_.bytes() + embed_norm_.memory_bytes() +
             final_norm_.memory_bytes() + head_.memory_bytes();
  for (const Block& b : blocks_) n += b.norm1.memory_bytes() + b.norm2.memory_bytes() + b.attn.memory_bytes() + b.ffn.memory_bytes();
  return n;
}

Status Model::set_embeddings(const EmbeddingWeights& w) {
  has_embeddings_ = false;
  const uint64_t H = cfg_.hidden;
  if ((cfg_.max_positions && !w.positions) || (cfg_.type_vocab && !w.types) || (cfg_.embed_norm && !w.norm_weight))
    return Status::kInvalidArgument;
  // The token table first: a table the weight type cannot store is refused before the other tables are reserved.
  if (w.tokens) {
    Status s = begin_token_rows();
    if (s == Status::kOk) s = set_token_rows(0, cfg_.vocab, w.tokens);
    if (s != Status::kOk) return s;
  }
  last_request_bytes_ = (static_cast<uint64_t>(cfg_.max_positions) + cfg_.type_vocab) * H * sizeof(float);
  if ((cfg_.max_positions && !positions_.reserve(cfg_.max_positions * H)) || (cfg_.type_vocab && !types_.reserve(cfg_.type_vocab * H)))
    return Status::kOutOfMemory;
  if (cfg_.max_positions) std::memcpy(positions_.data(), w.positions, sizeof(float) * cfg_.max_positions * H);
  if (cfg_.type_vocab) std::memcpy(types_.data(), w.types, sizeof(float) * cfg_.type_vocab * H);
  if (cfg_.embed_norm) {
    if (const Status s = embed_norm_.set_weights(w.norm_weight, w.norm_bias); s != Status::kOk) return s;
  }
  last_request_bytes_ = 0;
  has_embeddings_ = true;
  return Status::kOk;
}

Status Model::begin_head_rows() {
  if (cfg_.head != ModelConfig::kUntied) return Status::kInvalidArgument;
  return begin_table_rows(true);
}

Status Model::set_head_rows(int first, int count, const float* rows) {
  if (cfg_.head != ModelConfig::kUntied) return Status::kInvalidArgument;
  return set_table_rows(true, first, count, rows);
}

// The token table (head false), which a tied head shares, or an untied head:
// reserved as table_storage says (the head, tied or untied, as a Linear of the
// weight type), then filled by set_table_rows.
Status Model::begin_table_rows(bool head) {
  int& done = head ? head_rows_ : token_rows_;
  done = -1;
  const Table table = head ? Table::kHead : table_storage(cfg_);
  const bool to_head = head || cfg_.head == ModelConfig::kTied;  // the rows go to the (tied) head's matrix too
  const WeightType t = cfg_.attention.weight_type;
  const uint64_t V = cfg_.vocab, H = cfg_.hidden;
  last_request_bytes_ = (to_head ? PackedMatrix::bytes(cfg_.hidden, cfg_.vocab, t) : 0) +
                        (table == Table::kFloat    ? V * H * sizeof(float)
                         : table == Table::kPacked ? PackedMatrix::bytes(cfg_.hidden, cfg_.vocab, t)
                                                   : 0);
  if (table == Table::kPacked)
    if (const Status s = token_rows_storage_.reserve(cfg_.hidden, cfg_.vocab, t); s != Status::kOk) return s;
  if (table == Table::kFloat && !tokens_.reserve(V * H)) return Status::kOutOfMemory;
  if (to_head)
    if (const Status s = head_.reserve(); s != Status::kOk) return s;
  last_request_bytes_ = 0;
  done = 0;
  return Status::kOk;
}

Status Model::set_table_rows(bool head, int first, int count, const float* rows) {
  int& done = head ? head_rows_ : token_rows_;
  const int V = cfg_.vocab;
  const bool in_order = done >= 0 && first == done && count > 0 && count <= V - first;
  const int at = done;
  done = -1;
  if (!rows || !in_order || (first + count < V && count % kRowBlock != 0)) return Status::kInvalidArgument;
  const Table table = head ? Table::kHead : table_storage(cfg_);
  // Packed matrices check what they store (kInvalidArgument), so the head goes first.
  if (head || cfg_.head == ModelConfig::kTied)
    if (const Status s = head_.fill_rows(first, count, rows); s != Status::kOk) return s;
  if (table == Table::kPacked)
    if (const Status s = token_rows_storage_.fill(first, count, rows); s != Status::kOk) return s;
  if (table == Table::kFloat)
    std::memcpy(tokens_.data() + static_cast<size_t>(first) * cfg_.hidden, rows, sizeof(float) * count * cfg_.hidden);
  done = at + count;
  return Status::kOk;
}

Status Model::set_block(int i, const BlockWeights& w) {
  if (i < 0 || i >= cfg_.layers) return Status::kInvalidArgument;
  Block& b = blocks_[i];
  b.has_weights = false;
  const bool bias = !cfg_.rms_norm && cfg_.norm_bias;
  if (!w.norm1_weight || !w.norm2_weight || (bias && (!w.norm1_bias || !w.norm2_bias))) return Status::kInvalidArgument;
  Status s = b.norm1.set_weights(w.norm1_weight, bias ? w.norm1_bias : nullptr);
  if (s == Status::kOk) s = b.norm2.set_weights(w.norm2_weight, bias ? w.norm2_bias : nullptr);
  if (s == Status::kOk) {
    s = b.attn.set_weights(w.attention);
    if (s == Status::kOutOfMemory) last_request_bytes_ = b.attn.last_request_bytes();
  }
  if (s == Status::kOk) {
    s = b.ffn.set_weights(w.ffn);
    if (s == Status::kOutOfMemory) last_request_bytes_ = b.ffn.last_request_bytes();
  }
  b.has_weights = s == Status::kOk;
  return s;
}

Status Model::set_final_norm(const float* weight, const float* bias) {
  has_final_norm_ = false;
  const bool with_bias = !cfg_.rms_norm && cfg_.norm_bias;
  if (!cfg_.final_norm || !weight || (with_bias && !bias)) return Status::kInvalidArgument;
  const Status s = final_norm_.set_weights(weight, with_bias ? bias : nullptr);
  has_final_norm_ = s == Status::kOk;
  return s;
}

Status Model::set_head(const float* weight) {
  if (!weight) return Status::kInvalidArgument;
  const Status s = begin_head_rows();
  return s == Status::kOk ? set_head_rows(0, cfg_.vocab, weight) : s;
}

bool Model::ready() const {
  const bool head = cfg_.head == ModelConfig::kNoHead || (cfg_.head == ModelConfig::kTied ? token_rows_ : head_rows_) == cfg_.vocab;
  if (!has_embeddings_ || token_rows_ != cfg_.vocab || (cfg_.final_norm && !has_final_norm_) || !head)
    return false;
  for (const Block& b : blocks_)
    if (!b.has_weights) return false;
  return true;
}

MhaForwardArgs Model::attn_args(const ModelForwardArgs& a, const float* x, float* y, int block) const {
  MhaForwardArgs f;
  f.B = a.B, f.Lq = f.Lk = a.L, f.query = f.key = f.value = x, f.output = y;
  f.mask.key_padding = a.key_padding;
  f.mask.causal = cfg_.causal;
  f.position_ids = a.positions;
  f.average_weights = false;
  if (a.weights) {
    const int past = a.cache ? a.cache->length() : 0;
    const MhaConfig& c = cfg_.attention;
    f.weights = a.weights + static_cast<size_t>(block) * a.B * c.H() * a.L * (past + a.L);
  }
  return f;
}

Status Model::check(const ModelForwardArgs& a) const {
  if (!ready()) return Status::kNoWeights;
  if (a.B <= 0 || a.L <= 0 || !a.ids || !a.output) return Status::kInvalidArgument;
  const size_t M = static_cast<size_t>(a.B) * a.L;
  for (size_t m = 0; m < M; ++m)
    if (a.ids[m] < 0 || a.ids[m] >= cfg_.vocab) return Status::kInvalidArgument;
  if (a.token_types)
    for (size_t m = 0; m < M; ++m)
      if (a.token_types[m] < 0 || a.token_types[m] >= std::max(1, cfg_.type_vocab)) return Status::kInvalidArgument;
  const int past = a.cache ? a.cache->length() : 0;
  if (cfg_.max_positions) {
    for (size_t m = 0; m < M; ++m) {
      const int64_t p = a.positions ? a.positions[m] : past + static_cast<int64_t>(m % a.L);
      if (p < 0 || p >= cfg_.max_positions) return Status::kInvalidArgument;
    }
  }
  if (a.cache && a.cache->batch() != a.B) return Status::kInvalidArgument;
  return Status::kOk;
}

Status Model::forward(const ModelForwardArgs& a, ThreadPool& pool, Workspace& ws) {
  if (const Status s = check(a); s != Status::kOk) return s;
  if (a.cache) {
    if (const Status s = a.cache->ready(); s != Status::kOk) {
      last_request_bytes_ = ModelCache::bytes(cfg_, a.cache->batch(), a.cache->capacity());
      return s;
    }
    // Every block's cache must take the step (all or none of them grow).
    for (int i = 0; i < cfg_.layers; ++i) {
      const MhaForwardArgs f = attn_args(a, a.output, a.output, i);  // pointers only compared
      if (const Status s = blocks_[i].attn.check_cached(f, a.cache->block(i), CacheMode::kAppend); s != Status::kOk) return s;
    }
  }
  const int H = cfg_.hidden, M = a.B * a.L, rows = a.last_only ? a.B : M;
  const int past = a.cache ? a.cache->length() : 0;
  // The workspace: x, t, h [M, H], the rows the head reads [rows, H], then the
  // largest scratch of a block's attention or feed-forward.
  Arena count;
  for (int k = 0; k < 4; ++k) count.floats(static_cast<uint64_t>(k == 3 ? rows : M) * H);
  const uint64_t fixed = count.bytes();
  uint64_t scratch = 0;
  for (int i = 0; i < cfg_.layers; ++i) {
    const Block& b = blocks_[i];
    const MhaForwardArgs f = attn_args(a, a.output, a.output, i);  // sizes only
    const double w = b.attn.work(f, a.cache ? &a.cache->block(i) : nullptr, CacheMode::kAppend) + b.ffn.work(M);
    const int threads = pool.threads_for(w);
    const uint64_t sa = a.cache ? b.attn.workspace_bytes_cached(f, a.cache->block(i), CacheMode::kAppend, threads)
                                : b.attn.workspace_bytes(f, threads);
    Arena ff;
    ff.floats(b.ffn.workspace_floats(M));
    scratch = std::max({scratch, sa, ff.bytes()});
  }
  const uint64_t need = fixed + scratch;
  last_request_bytes_ = need;
  if (ws.reserve(need) != Status::kOk) return Status::kOutOfMemory;
  last_request_bytes_ = 0;
  Arena arena(ws.data(), need);
  float* x = arena.floats(static_cast<uint64_t>(M) * H);
  float* t = arena.floats(static_cast<uint64_t>(M) * H);
  float* h = arena.floats(static_cast<uint64_t>(M) * H);
  float* last = arena.floats(static_cast<uint64_t>(rows) * H);
  const uint64_t mark = arena.mark();

  // Embeddings: token + learned position + token type, then the embeddings' norm.
  const Table table = table_storage(cfg_);
  for (int m = 0; m < M; ++m) {
    float* row = x + static_cast<size_t>(m) * H;
    switch (table) {
      case Table::kFloat: std::memcpy(row, tokens_.data() + static_cast<size_t>(a.ids[m]) * H, sizeof(float) * H); break;
      case Table::kHead: head_.weight_rows(a.ids[m], 1, row); break;
      case Table::kPacked: token_rows_storage_.dequantize(a.ids[m], 1, row); break;
    }
    if (cfg_.max_positions) {
      const int p = a.positions ? a.positions[m] : past + m % a.L;
      kernels::add_row(row, positions_.data() + static_cast<size_t>(p) * H, H);
    }
    if (cfg_.type_vocab) kernels::add_row(row, types_.data() + static_cast<size_t>(a.token_types ? a.token_types[m] : 0) * H, H);
  }
  if (cfg_.embed_norm) embed_norm_.forward(pool, M, x, x);

  Status s = Status::kOk;
  for (int i = 0; i < cfg_.layers && s == Status::kOk; ++i) {
    Block& b = blocks_[i];
    arena.reset(mark);
    KVCache* cache = a.cache ? &a.cache->block(i) : nullptr;
    const MhaForwardArgs f0 = attn_args(a, x, t, i);
    const int threads = pool.threads_for(b.attn.work(f0, cache, CacheMode::kAppend) + b.ffn.work(M));
    MultiHeadAttention::Step sa;
    const bool pre = cfg_.pre_norm;
    // pre-norm: h = x + attn(norm1(x)), norm1(x) in t; post-norm: t = x + attn(x).
    s = b.attn.plan(attn_args(a, pre ? t : x, pre ? h : t, i), cache, CacheMode::kAppend, threads, arena, x, sa);
    if (s != Status::kOk) {
      if (s == Status::kOutOfMemory) last_request_bytes_ = b.attn.last_request_bytes();
      break;
    }
    arena.reset(mark);  // the feed-forward runs after the attention: its scratch may reuse the attention's
    float* hidden = arena.floats(b.ffn.workspace_floats(M));
    pool.job(threads, [&](ThreadPool::Team& team) {  // x = the block of x
      block_phases(team, pre, M, b.norm1, b.attn, sa, b.norm2, b.ffn, x, t, h, hidden, x);
    });
    MultiHeadAttention::finish(sa);
  }
  if (s == Status::kOk) {
    const float* src = x;
    if (a.last_only) {  // each sequence's last position
      for (int b = 0; b < a.B; ++b)
        std::memcpy(last + static_cast<size_t>(b) * H, x + (static_cast<size_t>(b) * a.L + a.L - 1) * H, sizeof(float) * H);
      src = last;
    }
    float* normed = a.last_only ? last : t;
    if (cfg_.final_norm) final_norm_.forward(pool, rows, src, normed), src = normed;
    if (cfg_.head != ModelConfig::kNoHead) {
      const Gemm g = head_.gemm(rows, src, H, a.output, cfg_.vocab);
      pool.job(pool.threads_for(g.work()), [&](ThreadPool::Team& team) { gemm_phase(team, g); });
    } else {
      std::memcpy(a.output, src, sizeof(float) * rows * H);
    }
  }
  ws.after_call(need);
  return s;
}

uint64_t ModelCache::bytes(const ModelConfig& cfg, int batch, int capacity) {
  uint64_t n = 0;
  for (int i = 0; i < cfg.layers; ++i) {
    const MhaConfig a = attention_config(cfg, i);
    n += 2ull * batch * KVCache::rows_for(capacity, a.window > 0) * a.Hkv() * a.D();
  }
  return n * sizeof(float);
}

Status ModelCache::ready() {
  if (allocated_) return Status::kOk;
  if (!caches_) {
    caches_.reset(new (std::nothrow) KVCache[cfg_.layers]);
    if (!caches_) return Status::kOutOfMemory;
  }
  for (int i = 0; i < cfg_.layers; ++i) {
    const MhaConfig a = attention_config(cfg_, i);
    const Status s = caches_[i].init(batch_, capacity_, a.Hkv() * a.D(), a.window > 0);
    if (s != Status::kOk) {
      caches_.reset();
      return s;
    }
  }
  allocated_ = true;
  return Status::kOk;
}

void ModelCache::reset() {
  if (allocated_)
    for (int i = 0; i < cfg_.layers; ++i) caches_[i].reset();
}

bool ModelCache::truncate(int n) {
  if (!allocated_) return n == 0;
  for (int i = 0; i < cfg_.layers; ++i)
    if (!caches_[i].can_truncate(n)) return false;
  for (int i = 0; i < cfg_.layers; ++i) caches_[i].truncate(n);
  return true;
}

size_t ModelCache::memory_bytes() const {
  size_t n = 0;
  if (allocated_)
    for (int i = 0; i < cfg_.layers; ++i) n += caches_[i].memory_bytes();
  return n;
}

}  // namespace mha
