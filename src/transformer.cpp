#include "transformer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels.h"
#include "linear.h"

namespace mha {

namespace {
// The blocks' feed-forward: plain (linear1, linear2), with the block's activation, bias and weight type.
FeedForwardConfig ff_config(const EncoderConfig& c) {
  FeedForwardConfig f;
  f.d_model = c.d_model, f.dim_feedforward = c.dim_feedforward, f.activation = c.activation, f.bias = c.bias;
  f.weight_type = c.weight_type;
  return f;
}
// s1, s2: the scales of pre-quantized int8 w1, w2, or null.
FeedForwardWeights ff_weights(const float* w1, const float* b1, const float* w2, const float* b2, const float* s1,
                              const float* s2) {
  FeedForwardWeights w;
  w.up_weight = w1, w.up_bias = b1, w.down_weight = w2, w.down_bias = b2;
  w.up_weight_scale = s1, w.down_weight_scale = s2;
  return w;
}

// The blocks' attentions: nn.MultiheadAttention(d_model, nhead, bias=bias), weights stored as the block's.
MhaConfig attention_config(const EncoderConfig& c) {
  MhaConfig m{c.d_model, c.nhead, c.d_model, c.d_model, c.bias};
  m.weight_type = c.weight_type;
  return m;
}
}  // namespace

bool TransformerEncoderLayer::valid(const EncoderConfig& c) {
  return c.d_model > 0 && c.nhead > 0 && c.d_model % c.nhead == 0 && c.dim_feedforward > 0 && c.layer_norm_eps > 0 &&
         valid_weight_type(c.weight_type);
}

TransformerEncoderLayer::TransformerEncoderLayer(const EncoderConfig& cfg)
    : cfg_(cfg),
      attn_(attention_config(cfg)),
      ff_(ff_config(cfg)),
      norm1_(cfg.d_model, cfg.layer_norm_eps),
      norm2_(cfg.d_model, cfg.layer_norm_eps) {}

size_t TransformerEncoderLayer::memory_bytes() const {
  return attn_.memory_bytes() + ff_.memory_bytes() + norm1_.memory_bytes() + norm2_.memory_bytes();
}

Status TransformerEncoderLayer::set_weights(const EncoderWeights& w) {
  has_weights_ = false;
  if (cfg_.bias && (!w.norm1_bias || !w.norm2_bias)) return Status::kInvalidArgument;
  if (!w.norm1_weight || !w.norm2_weight) return Status::kInvalidArgument;
  Status s = ff_.set_weights(ff_weights(w.linear1_weight, w.linear1_bias, w.linear2_weight, w.linear2_bias,
                                        w.linear1_weight_scale, w.linear2_weight_scale));
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

uint64_t TransformerEncoderLayer::workspace_bytes(const EncoderForwardArgs& a, const ThreadPool& pool) const {
  return workspace_bytes(a, pool.threads_for(work(a)));
}

double TransformerEncoderLayer::work(const EncoderForwardArgs& a) const {
  const int M = a.B * a.L;
  return attn_.work(self_args(a, a.src, a.output), a.cache, CacheMode::kAppend) + norm1_.work(M) + norm2_.work(M) +
         ff_.work(M);
}

Status TransformerEncoderLayer::forward(const EncoderForwardArgs& a, ThreadPool& pool, Workspace& ws) {
  if (const Status s = check(a); s != Status::kOk) return s;
  const int threads = pool.threads_for(work(a));
  const uint64_t need = workspace_bytes(a, threads);
  last_request_bytes_ = need;
  if (ws.reserve(need) != Status::kOk) return Status::kOutOfMemory;
  last_request_bytes_ = 0;
  const int E = cfg_.d_model, M = a.B * a.L;  // fit: the workspace holds [M, E]
  Arena arena(ws.data(), need);
  float *h = arena.floats(static_cast<uint64_t>(M) * E), *t = arena.floats(static_cast<uint64_t>(M) * E);
  const float* x = a.src;
  float* out = a.output;
  // Past h and t: the attention's scratch, then (once it is done) the hidden layer.
  const uint64_t mark = arena.mark();
  MultiHeadAttention::Step sa;
  const bool post = !cfg_.norm_first;
  // post-norm: t = sa(x) + x; pre-norm: h = sa(norm1(x)) + x, norm1(x) in t.
  Status s = attn_.plan(self_args(a, post ? x : t, post ? t : h), a.cache, CacheMode::kAppend, threads, arena, x, sa);
  if (s == Status::kOk) {
    arena.reset(mark);
    float* hidden = arena.floats(ff_.workspace_floats(M));
    pool.job(threads, [&](ThreadPool::Team& team) {
      block_phases(team, !post, M, norm1_, attn_, sa, norm2_, ff_, x, t, h, hidden, out);
    });
    MultiHeadAttention::finish(sa);
  } else if (s == Status::kOutOfMemory) {
    last_request_bytes_ = attn_.last_request_bytes();
  }
  ws.after_call(need);
  return s;
}

void block_phases(ThreadPool::Team& team, bool pre_norm, int M, const RowNorm& norm1, const MultiHeadAttention& attn,
                  const MultiHeadAttention::Step& sa, const RowNorm& norm2, const FeedForward& ff, const float* x, float* t,
                  float* h, float* hidden, float* out) {
  if (pre_norm) {
    norm1.phase(team, M, x, t);             // t = norm1(x)
    attn.run(sa, team);                     // h = x + attn(t)
    norm2.phase(team, M, h, t);             // t = norm2(h)
    ff.phases(team, M, t, out, hidden, h);  // out = h + ff(t)
  } else {
    attn.run(sa, team);                     // t = x + attn(x)
    norm1.phase(team, M, t, h);             // h = norm1(t)
    ff.phases(team, M, h, t, hidden, h);    // t = h + ff(h)
    norm2.phase(team, M, t, out);           // out = norm2(t)
  }
}

MaskArgs cross_mask(const MaskArgs& memory_mask, int first_position) {
  MaskArgs m = memory_mask;
  m.q_offset = first_position;  // target position t = first_position + i sees memory j <= t
  return m;
}

TransformerDecoderLayer::TransformerDecoderLayer(const DecoderConfig& cfg)
    : cfg_(cfg),
      self_attn_(attention_config(cfg)),
      cross_attn_(attention_config(cfg)),
      ff_(ff_config(cfg)),
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
  Status s = ff_.set_weights(ff_weights(w.linear1_weight, w.linear1_bias, w.linear2_weight, w.linear2_bias,
                                        w.linear1_weight_scale, w.linear2_weight_scale));
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

uint64_t TransformerDecoderLayer::workspace_bytes(const DecoderForwardArgs& a, const ThreadPool& pool) const {
  return workspace_bytes(a, pool.threads_for(work(a)));
}

double TransformerDecoderLayer::work(const DecoderForwardArgs& a) const {
  const int M = a.B * a.T;
  return self_attn_.work(self_args(a, a.tgt, a.output), a.self_cache, CacheMode::kAppend) +
         cross_attn_.work(cross_args(a, a.output, a.output), a.cross_cache, CacheMode::kFixed) + norm1_.work(M) +
         norm2_.work(M) + norm3_.work(M) + ff_.work(M);
}

Status TransformerDecoderLayer::forward(const DecoderForwardArgs& a, ThreadPool& pool, Workspace& ws) {
  if (const Status s = check(a); s != Status::kOk) return s;
  const int threads = pool.threads_for(work(a));
  const uint64_t need = workspace_bytes(a, threads);
  last_request_bytes_ = need;
  if (ws.reserve(need) != Status::kOk) return Status::kOutOfMemory;
  last_request_bytes_ = 0;
  const int E = cfg_.d_model, M = a.B * a.T;  // fit: the workspace holds [M, E]
  Arena arena(ws.data(), need);
  float *h = arena.floats(static_cast<uint64_t>(M) * E), *t = arena.floats(static_cast<uint64_t>(M) * E);
  const float* x = a.tgt;
  float* out = a.output;
  // Past h and t: each attention's scratch, then the hidden layer, one after the
  // other in the job, so they share the space. Both attentions are planned before
  // the self-attention appends to its cache: the cross-attention's causal alignment
  // counts the positions cached before this call.
  const uint64_t mark = arena.mark();
  const bool post = !cfg_.norm_first;
  MultiHeadAttention::Step sa, ca;
  // post-norm: t = sa(x) + x, then t = ca(h) + h with h = norm1(t);
  // pre-norm: h = sa(t) + x with t = norm1(x), then out = ca(t) with t = norm2(h).
  Status s = self_attn_.plan(self_args(a, post ? x : t, post ? t : h), a.self_cache, CacheMode::kAppend, threads,
                             arena, x, sa);
  MultiHeadAttention* failed = &self_attn_;
  if (s == Status::kOk) {
    arena.reset(mark);
    s = cross_attn_.plan(cross_args(a, post ? h : t, post ? t : out), a.cross_cache, CacheMode::kFixed, threads, arena,
                         post ? h : nullptr, ca);
    failed = &cross_attn_;
  }
  if (s == Status::kOk) {
    arena.reset(mark);
    float* hidden = arena.floats(ff_.workspace_floats(M));
    pool.job(threads, [&](ThreadPool::Team& team) {
      if (post) {
        self_attn_.run(sa, team);                // t = x + sa(x)
        norm1_.phase(team, M, t, h);             // h = norm1(x + sa(x))
        cross_attn_.run(ca, team);               // t = h + mha(h, mem)
        norm2_.phase(team, M, t, h);             // h = norm2(h + mha(h, mem))
        ff_.phases(team, M, h, t, hidden, h);    // t = h + ff(h)
        norm3_.phase(team, M, t, out);           // out = norm3(h + ff(h))
      } else {
        norm1_.phase(team, M, x, t);             // t = norm1(x)
        self_attn_.run(sa, team);                // h = x + sa(norm1(x))
        norm2_.phase(team, M, h, t);             // t = norm2(h)
        cross_attn_.run(ca, team);               // out = mha(norm2(h), mem)
        norm3_.add_phase(team, M, h, out, t);    // h += out; t = norm3(h)
        ff_.phases(team, M, t, out, hidden, h);  // out = h + ff(norm3(h))
      }
    });
    MultiHeadAttention::finish(sa);
    MultiHeadAttention::finish(ca);
  } else if (s == Status::kOutOfMemory) {
    last_request_bytes_ = failed->last_request_bytes();
  }
  ws.after_call(need);
  return s;
}

}  // namespace mha
