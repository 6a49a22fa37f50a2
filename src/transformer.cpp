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

Status FeedForward::forward(ThreadPool& pool, int M, const float* x, float* y, uint64_t* request_bytes) {
  const uint64_t n = static_cast<uint64_t>(M) * f_;
  if (!hidden_.reserve(n)) {
    *request_bytes += n * sizeof(float);
    return Status::kOutOfMemory;
  }
  float* h = hidden_.data();
  linear1_.forward(pool, M, x, e_, h, f_);
  pool.parallel_for(M, [&](int i, int) {
    float* row = h + static_cast<size_t>(i) * f_;
    if (act_ == Activation::kRelu) kernels::relu_row(row, f_);
    else kernels::gelu_row(row, f_);
  }, n >= (1u << 16));
  linear2_.forward(pool, M, h, f_, y, e_);
  return Status::kOk;
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
  return attn_.memory_bytes() + ff_.memory_bytes() + norm1_.memory_bytes() + norm2_.memory_bytes() + h_.bytes() +
         t_.bytes();
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

Status TransformerEncoderLayer::forward(const EncoderForwardArgs& a, ThreadPool& pool) {
  if (!has_weights_) return Status::kNoWeights;
  if (a.B <= 0 || a.L <= 0 || !a.src || !a.output || a.output == a.src) return Status::kInvalidArgument;
  const int E = cfg_.d_model;
  const uint64_t M64 = static_cast<uint64_t>(a.B) * a.L;
  last_request_bytes_ = 2 * M64 * E * sizeof(float);
  if (!h_.reserve(M64 * E) || !t_.reserve(M64 * E)) return Status::kOutOfMemory;
  last_request_bytes_ = 0;
  const int M = static_cast<int>(M64);
  float *h = h_.data(), *t = t_.data(), *out = a.output;
  auto self_attn = [&](const float* x, float* y) {
    MhaForwardArgs f;
    f.B = a.B, f.Lq = f.Lk = a.L, f.query = f.key = f.value = x, f.output = y, f.mask = a.mask;
    f.weights = a.weights, f.average_weights = false;
    const Status s = a.cache ? attn_.forward_cached(f, *a.cache, CacheMode::kAppend, pool) : attn_.forward(f, pool);
    if (s == Status::kOutOfMemory) last_request_bytes_ += attn_.last_request_bytes();
    return s;
  };
  const int n = static_cast<int>(M64 * E);  // fits: the buffers above hold it
  Status s;
  if (!cfg_.norm_first) {
    if ((s = self_attn(a.src, t)) != Status::kOk) return s;                 // t = sa(x)
    kernels::add_row(t, a.src, n);
    norm1_.forward(pool, M, t, h);                                          // h = norm1(x + sa(x))
    if ((s = ff_.forward(pool, M, h, t, &last_request_bytes_)) != Status::kOk) return s;
    kernels::add_row(t, h, n);
    norm2_.forward(pool, M, t, out);                                        // out = norm2(h + ff(h))
  } else {
    norm1_.forward(pool, M, a.src, t);                                      // t = norm1(x)
    if ((s = self_attn(t, h)) != Status::kOk) return s;
    kernels::add_row(h, a.src, n);                                          // h = x + sa(norm1(x))
    norm2_.forward(pool, M, h, t);                                          // t = norm2(h)
    if ((s = ff_.forward(pool, M, t, out, &last_request_bytes_)) != Status::kOk) return s;
    kernels::add_row(out, h, n);                                            // out = h + ff(norm2(h))
  }
  return Status::kOk;
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
         norm2_.memory_bytes() + norm3_.memory_bytes() + h_.bytes() + t_.bytes();
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

Status TransformerDecoderLayer::forward(const DecoderForwardArgs& a, ThreadPool& pool) {
  if (!has_weights_) return Status::kNoWeights;
  if (a.B <= 0 || a.T <= 0 || a.S <= 0 || !a.tgt || !a.memory || !a.output || a.output == a.tgt || a.output == a.memory ||
      !a.self_cache != !a.cross_cache)
    return Status::kInvalidArgument;
  const int E = cfg_.d_model;
  const uint64_t M64 = static_cast<uint64_t>(a.B) * a.T;
  last_request_bytes_ = 2 * M64 * E * sizeof(float);
  if (!h_.reserve(M64 * E) || !t_.reserve(M64 * E)) return Status::kOutOfMemory;
  last_request_bytes_ = 0;
  const int M = static_cast<int>(M64), n = static_cast<int>(M64 * E);
  float *h = h_.data(), *t = t_.data(), *out = a.output;
  const bool cached = a.self_cache != nullptr;
  // The cross-attention's causal mask counts target positions from the start of the
  // sequence: the cached ones come first.
  const MaskArgs memory_mask = cross_mask(a.memory_mask, cached ? a.self_cache->length() : 0);
  auto attend = [&](MultiHeadAttention& mha, const float* x, const float* kv, int Lk, const MaskArgs& m, float* y) {
    const bool self = &mha == &self_attn_;
    MhaForwardArgs f;
    f.B = a.B, f.Lq = a.T, f.Lk = Lk, f.query = x, f.key = f.value = kv, f.output = y, f.mask = m;
    f.weights = self ? a.self_weights : a.cross_weights, f.average_weights = false;
    const Status s = !cached ? mha.forward(f, pool)
                   : self   ? mha.forward_cached(f, *a.self_cache, CacheMode::kAppend, pool)
                            : mha.forward_cached(f, *a.cross_cache, CacheMode::kFixed, pool);
    if (s == Status::kOutOfMemory) last_request_bytes_ += mha.last_request_bytes();
    return s;
  };
  Status s;
  if (!cfg_.norm_first) {
    if ((s = attend(self_attn_, a.tgt, a.tgt, a.T, a.tgt_mask, t)) != Status::kOk) return s;
    kernels::add_row(t, a.tgt, n);
    norm1_.forward(pool, M, t, h);                                          // h = norm1(x + sa(x))
    if ((s = attend(cross_attn_, h, a.memory, a.S, memory_mask, t)) != Status::kOk) return s;
    kernels::add_row(t, h, n);
    norm2_.forward(pool, M, t, h);                                          // h = norm2(h + mha(h, mem))
    if ((s = ff_.forward(pool, M, h, t, &last_request_bytes_)) != Status::kOk) return s;
    kernels::add_row(t, h, n);
    norm3_.forward(pool, M, t, out);                                        // out = norm3(h + ff(h))
  } else {
    norm1_.forward(pool, M, a.tgt, t);
    if ((s = attend(self_attn_, t, t, a.T, a.tgt_mask, h)) != Status::kOk) return s;
    kernels::add_row(h, a.tgt, n);                                          // h = x + sa(norm1(x))
    norm2_.forward(pool, M, h, t);
    if ((s = attend(cross_attn_, t, a.memory, a.S, memory_mask, out)) != Status::kOk) return s;
    kernels::add_row(h, out, n);                                            // h += mha(norm2(h), mem)
    norm3_.forward(pool, M, h, t);
    if ((s = ff_.forward(pool, M, t, out, &last_request_bytes_)) != Status::kOk) return s;
    kernels::add_row(out, h, n);                                            // out = h + ff(norm3(h))
  }
  return Status::kOk;
}

}  // namespace mha
