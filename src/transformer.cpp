#include "transformer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels.h"
#include "linear.h"

namespace mha {

Status FeedForward::set_weights(const float* w1, const float* b1, const float* w2, const float* b2, bool bias) {
  if (!w1 || !w2 || (bias && (!b1 || !b2))) return Status::kInvalidArgument;
  const Status s = linear1_.set_weights(w1, bias ? b1 : nullptr);
  return s == Status::kOk ? linear2_.set_weights(w2, bias ? b2 : nullptr) : s;
}

void FeedForward::forward(ThreadPool& pool, int M, const float* x, float* y, float* h) const {
  const uint64_t n = static_cast<uint64_t>(M) * f_;
  linear1_.forward(pool, M, x, e_, h, f_);
  pool.parallel_for(M, [&](int i, int) {
    float* row = h + static_cast<size_t>(i) * f_;
    if (act_ == Activation::kRelu) kernels::relu_row(row, f_);
    else kernels::gelu_row(row, f_);
  }, n >= (1u << 16));
  linear2_.forward(pool, M, h, f_, y, e_);
}

bool TransformerEncoderLayer::valid(const EncoderConfig& c) {
  return c.d_model > 0 && c.nhead > 0 && c.d_model % c.nhead == 0 && c.dim_feedforward > 0 && c.layer_norm_eps > 0;
}

TransformerEncoderLayer::TransformerEncoderLayer(const EncoderConfig& cfg)
    : cfg_(cfg),
      attn_({cfg.d_model, cfg.nhead, cfg.d_model, cfg.d_model, cfg.bias}),
      ff_(cfg.d_model, cfg.dim_feedforward, cfg.activation),
      norm1_(cfg.d_model, cfg.layer_norm_eps),
      norm2_(cfg.d_model, cfg.layer_norm_eps) {}

size_t TransformerEncoderLayer::memory_bytes() const {
  return attn_.memory_bytes() + ff_.memory_bytes() + norm1_.memory_bytes() + norm2_.memory_bytes();
}

Status TransformerEncoderLayer::set_weights(const EncoderWeights& w) {
  has_weights_ = false;
  if (cfg_.bias && (!w.norm1_bias || !w.norm2_bias)) return Status::kInvalidArgument;
  if (!w.norm1_weight || !w.norm2_weight) return Status::kInvalidArgument;
  Status s = ff_.set_weights(w.linear1_weight, w.linear1_bias, w.linear2_weight, w.linear2_bias, cfg_.bias);
  if (s == Status::kOk) s = norm1_.set_weights(w.norm1_weight, cfg_.bias ? w.norm1_bias : nullptr);
  if (s == Status::kOk) s = norm2_.set_weights(w.norm2_weight, cfg_.bias ? w.norm2_bias : nullptr);
  if (s == Status::kOk) s = attn_.set_weights(w.self_attn);
  has_weights_ = s == Status::kOk;
  return s;
}

MhaForwardArgs TransformerEncoderLayer::self_args(const EncoderForwardArgs& a, const float* x, float* y) const {
  MhaForwardArgs f;
  f.B = a.B, f.Lq = f.Lk = a.L, f.query = f.key = f.value = x, f.output = y, f.mask = a.mask;
  f.weights = a.weights, f.average_weights = false;
  return f;
}

Status TransformerEncoderLayer::check(const EncoderForwardArgs& a) const {
  if (!has_weights_) return Status::kNoWeights;
  if (a.B <= 0 || a.L <= 0 || !a.src || !a.output || a.output == a.src) return Status::kInvalidArgument;
  const MhaForwardArgs f = self_args(a, a.src, a.output);
  return a.cache ? attn_.check_cached(f, *a.cache, CacheMode::kAppend) : attn_.check(f);
}

uint64_t TransformerEncoderLayer::workspace_bytes(const EncoderForwardArgs& a, int threads) const {
  const uint64_t M = static_cast<uint64_t>(a.B) * a.L;
  Arena count;
  count.floats(M * cfg_.d_model), count.floats(M * cfg_.d_model);  // h, t
  const MhaForwardArgs f = self_args(a, a.src, a.output);
  const uint64_t sa = a.cache ? attn_.workspace_bytes_cached(f, *a.cache, CacheMode::kAppend, threads)
                              : attn_.workspace_bytes(f, threads);
  Arena ff;
  ff.floats(ff_.workspace_floats(a.B * a.L));
  return count.bytes() + std::max(sa, ff.bytes());
}

Status TransformerEncoderLayer::forward(const EncoderForwardArgs& a, ThreadPool& pool, Workspace& ws) {
  if (const Status s = check(a); s != Status::kOk) return s;
  const uint64_t need = workspace_bytes(a, pool.size());
  last_request_bytes_ = need;
  if (ws.reserve(need) != Status::kOk) return Status::kOutOfMemory;
  last_request_bytes_ = 0;
  const int E = cfg_.d_model, M = a.B * a.L;  // fit: the workspace holds [M, E]
  const int n = M * E;
  Arena arena(ws.data(), need);
  float *h = arena.floats(static_cast<uint64_t>(n)), *t = arena.floats(static_cast<uint64_t>(n)), *out = a.output;
  const uint64_t mark = arena.mark();  // past h and t: the attention's scratch, then the feed-forward's
  auto self_attn = [&](const float* x, float* y) {
    arena.reset(mark);
    const MhaForwardArgs f = self_args(a, x, y);
    const Status s = a.cache ? attn_.forward_cached(f, *a.cache, CacheMode::kAppend, pool, arena) : attn_.forward(f, pool, arena);
    if (s == Status::kOutOfMemory) last_request_bytes_ = attn_.last_request_bytes();
    return s;
  };
  auto ff = [&](const float* x, float* y) {
    arena.reset(mark);
    ff_.forward(pool, M, x, y, arena.floats(ff_.workspace_floats(M)));
  };
  Status s = Status::kOk;
  if (!cfg_.norm_first) {
    if ((s = self_attn(a.src, t)) == Status::kOk) {                         // t = sa(x)
      kernels::add_row(t, a.src, n);
      norm1_.forward(pool, M, t, h);                                        // h = norm1(x + sa(x))
      ff(h, t);
      kernels::add_row(t, h, n);
      norm2_.forward(pool, M, t, out);                                      // out = norm2(h + ff(h))
    }
  } else {
    norm1_.forward(pool, M, a.src, t);                                      // t = norm1(x)
    if ((s = self_attn(t, h)) == Status::kOk) {
      kernels::add_row(h, a.src, n);                                        // h = x + sa(norm1(x))
      norm2_.forward(pool, M, h, t);                                        // t = norm2(h)
      ff(t, out);
      kernels::add_row(out, h, n);                                          // out = h + ff(norm2(h))
    }
  }
  ws.after_call(need);
  return s;
}

MaskArgs cross_mask(const MaskArgs& memory_mask, int first_position) {
  MaskArgs m = memory_mask;
  m.q_offset = first_position;  // target position t = first_position + i sees memory j <= t
  return m;
}

TransformerDecoderLayer::TransformerDecoderLayer(const DecoderConfig& cfg)
    : cfg_(cfg),
      self_attn_({cfg.d_model, cfg.nhead, cfg.d_model, cfg.d_model, cfg.bias}),
      cross_attn_({cfg.d_model, cfg.nhead, cfg.d_model, cfg.d_model, cfg.bias}),
      ff_(cfg.d_model, cfg.dim_feedforward, cfg.activation),
      norm1_(cfg.d_model, cfg.layer_norm_eps),
      norm2_(cfg.d_model, cfg.layer_norm_eps),
      norm3_(cfg.d_model, cfg.layer_norm_eps) {}

size_t TransformerDecoderLayer::memory_bytes() const {
  return self_attn_.memory_bytes() + cross_attn_.memory_bytes() + ff_.memory_bytes() + norm1_.memory_bytes() +
         norm2_.memory_bytes() + norm3_.memory_bytes();
}

Status TransformerDecoderLayer::set_weights(const DecoderWeights& w) {
  has_weights_ = false;
  if (cfg_.bias && (!w.norm_bias[0] || !w.norm_bias[1] || !w.norm_bias[2])) return Status::kInvalidArgument;
  if (!w.norm_weight[0] || !w.norm_weight[1] || !w.norm_weight[2]) return Status::kInvalidArgument;
  Status s = ff_.set_weights(w.linear1_weight, w.linear1_bias, w.linear2_weight, w.linear2_bias, cfg_.bias);
  LayerNorm* norms[] = {&norm1_, &norm2_, &norm3_};
  for (int i = 0; i < 3 && s == Status::kOk; ++i) s = norms[i]->set_weights(w.norm_weight[i], cfg_.bias ? w.norm_bias[i] : nullptr);
  if (s == Status::kOk) s = self_attn_.set_weights(w.self_attn);
  if (s == Status::kOk) s = cross_attn_.set_weights(w.cross_attn);
  has_weights_ = s == Status::kOk;
  return s;
}

MhaForwardArgs TransformerDecoderLayer::self_args(const DecoderForwardArgs& a, const float* x, float* y) const {
  MhaForwardArgs f;
  f.B = a.B, f.Lq = f.Lk = a.T, f.query = f.key = f.value = x, f.output = y, f.mask = a.tgt_mask;
  f.weights = a.self_weights, f.average_weights = false;
  return f;
}

MhaForwardArgs TransformerDecoderLayer::cross_args(const DecoderForwardArgs& a, const float* x, float* y) const {
  MhaForwardArgs f;
  f.B = a.B, f.Lq = a.T, f.Lk = a.S, f.query = x, f.key = f.value = a.memory, f.output = y;
  // The cross-attention's causal mask counts target positions from the start of the
  // sequence: the cached ones come first.
  f.mask = cross_mask(a.memory_mask, a.self_cache ? a.self_cache->length() : 0);
  f.weights = a.cross_weights, f.average_weights = false;
  return f;
}

Status TransformerDecoderLayer::check(const DecoderForwardArgs& a) const {
  if (!has_weights_) return Status::kNoWeights;
  if (a.B <= 0 || a.T <= 0 || a.S <= 0 || !a.tgt || !a.memory || !a.output || a.output == a.tgt || a.output == a.memory ||
      !a.self_cache != !a.cross_cache)
    return Status::kInvalidArgument;
  // The queries are the layer's own activations, never memory: a.output stands for them.
  const MhaForwardArgs sf = self_args(a, a.tgt, a.output), cf = cross_args(a, a.output, a.output);
  if (!a.self_cache) {
    const Status s = self_attn_.check(sf);
    return s != Status::kOk ? s : cross_attn_.check(cf);
  }
  const Status s = self_attn_.check_cached(sf, *a.self_cache, CacheMode::kAppend);
  return s != Status::kOk ? s : cross_attn_.check_cached(cf, *a.cross_cache, CacheMode::kFixed);
}

uint64_t TransformerDecoderLayer::workspace_bytes(const DecoderForwardArgs& a, int threads) const {
  const uint64_t M = static_cast<uint64_t>(a.B) * a.T;
  Arena count;
  count.floats(M * cfg_.d_model), count.floats(M * cfg_.d_model);  // h, t
  const MhaForwardArgs sf = self_args(a, a.tgt, a.output), cf = cross_args(a, a.output, a.output);
  const uint64_t sa = a.self_cache ? self_attn_.workspace_bytes_cached(sf, *a.self_cache, CacheMode::kAppend, threads)
                                   : self_attn_.workspace_bytes(sf, threads);
  const uint64_t ca = a.cross_cache ? cross_attn_.workspace_bytes_cached(cf, *a.cross_cache, CacheMode::kFixed, threads)
                                    : cross_attn_.workspace_bytes(cf, threads);
  Arena ff;
  ff.floats(ff_.workspace_floats(a.B * a.T));
  return count.bytes() + std::max({sa, ca, ff.bytes()});
}

Status TransformerDecoderLayer::forward(const DecoderForwardArgs& a, ThreadPool& pool, Workspace& ws) {
  if (const Status s = check(a); s != Status::kOk) return s;
  const uint64_t need = workspace_bytes(a, pool.size());
  last_request_bytes_ = need;
  if (ws.reserve(need) != Status::kOk) return Status::kOutOfMemory;
  last_request_bytes_ = 0;
  const int E = cfg_.d_model, M = a.B * a.T;  // fit: the workspace holds [M, E]
  const int n = M * E;
  Arena arena(ws.data(), need);
  float *h = arena.floats(static_cast<uint64_t>(n)), *t = arena.floats(static_cast<uint64_t>(n)), *out = a.output;
  const uint64_t mark = arena.mark();  // past h and t: each attention's scratch, then the feed-forward's
  // Both argument sets are made before the self-attention appends to its cache:
  // the cross-attention's causal alignment counts the positions cached before this call.
  const MhaForwardArgs self_base = self_args(a, nullptr, nullptr), cross_base = cross_args(a, nullptr, nullptr);
  auto attend = [&](bool self, const float* x, float* y) {
    arena.reset(mark);
    MultiHeadAttention& mha = self ? self_attn_ : cross_attn_;
    MhaForwardArgs f = self ? self_base : cross_base;
    f.query = x, f.output = y;
    if (self) f.key = f.value = x;
    KVCache* cache = self ? a.self_cache : a.cross_cache;
    const Status s = !cache ? mha.forward(f, pool, arena)
                            : mha.forward_cached(f, *cache, self ? CacheMode::kAppend : CacheMode::kFixed, pool, arena);
    if (s == Status::kOutOfMemory) last_request_bytes_ = mha.last_request_bytes();
    return s;
  };
  auto ff = [&](const float* x, float* y) {
    arena.reset(mark);
    ff_.forward(pool, M, x, y, arena.floats(ff_.workspace_floats(M)));
  };
  Status s = Status::kOk;
  if (!cfg_.norm_first) {
    if ((s = attend(true, a.tgt, t)) == Status::kOk) {
      kernels::add_row(t, a.tgt, n);
      norm1_.forward(pool, M, t, h);                                        // h = norm1(x + sa(x))
      if ((s = attend(false, h, t)) == Status::kOk) {
        kernels::add_row(t, h, n);
        norm2_.forward(pool, M, t, h);                                      // h = norm2(h + mha(h, mem))
        ff(h, t);
        kernels::add_row(t, h, n);
        norm3_.forward(pool, M, t, out);                                    // out = norm3(h + ff(h))
      }
    }
  } else {
    norm1_.forward(pool, M, a.tgt, t);
    if ((s = attend(true, t, h)) == Status::kOk) {
      kernels::add_row(h, a.tgt, n);                                        // h = x + sa(norm1(x))
      norm2_.forward(pool, M, h, t);
      if ((s = attend(false, t, out)) == Status::kOk) {
        kernels::add_row(h, out, n);                                        // h += mha(norm2(h), mem)
        norm3_.forward(pool, M, h, t);
        ff(t, out);
        kernels::add_row(out, h, n);                                        // out = h + ff(norm3(h))
      }
    }
  }
  ws.after_call(need);
  return s;
}

}  // namespace mha
