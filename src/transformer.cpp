#include "transformer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels.h"
#include "linear.h"

namespace mha {

Status Linear::set_weights(const float* w, const float* b) {
  if (!w) return Status::kInvalidArgument;
  if (!w_.reserve(kernels::packed_size(in_, out_)) || (b && !b_.reserve(out_))) return Status::kOutOfMemory;
  pack_weight_transposed(out_, in_, w, w_.data());
  has_bias_ = b != nullptr;
  if (b) std::memcpy(b_.data(), b, sizeof(float) * out_);
  return Status::kOk;
}

void Linear::forward(ThreadPool& pool, int M, const float* x, size_t ldx, float* y, size_t ldy) const {
  parallel_gemm(pool, M, out_, in_, x, ldx, w_.data(), static_cast<size_t>(in_) * kernels::kNR, y, ldy,
                has_bias_ ? b_.data() : nullptr);
}

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

Status Norms::set(const float* const* gammas, const float* const* betas) {
  for (int i = 0; i < n_; ++i)
    if (!gammas[i]) return Status::kInvalidArgument;
  if (!buf_.reserve(2 * static_cast<size_t>(n_) * e_)) return Status::kOutOfMemory;
  for (int i = 0; i < n_; ++i) {
    float* g = buf_.data() + 2 * static_cast<size_t>(i) * e_;
    std::memcpy(g, gammas[i], sizeof(float) * e_);
    if (betas[i]) std::memcpy(g + e_, betas[i], sizeof(float) * e_);
    else std::fill(g + e_, g + 2 * e_, 0.0f);
  }
  return Status::kOk;
}

void Norms::apply(ThreadPool& pool, int i, int M, const float* x, float eps, float* y) const {
  const float* g = buf_.data() + 2 * static_cast<size_t>(i) * e_;
  pool.parallel_for(M, [&](int r, int) {
    kernels::layer_norm_row(x + static_cast<size_t>(r) * e_, e_, g, g + e_, eps, y + static_cast<size_t>(r) * e_);
  }, static_cast<uint64_t>(M) * e_ >= (1u << 16));
}

bool TransformerEncoderLayer::valid(const EncoderConfig& c) {
  return c.d_model > 0 && c.nhead > 0 && c.d_model % c.nhead == 0 && c.dim_feedforward > 0 && c.layer_norm_eps > 0;
}

TransformerEncoderLayer::TransformerEncoderLayer(const EncoderConfig& cfg)
    : cfg_(cfg),
      attn_({cfg.d_model, cfg.nhead, cfg.d_model, cfg.d_model, cfg.bias}),
      ff_(cfg.d_model, cfg.dim_feedforward, cfg.activation),
      norms_(2, cfg.d_model) {}

size_t TransformerEncoderLayer::memory_bytes() const {
  return attn_.memory_bytes() + ff_.memory_bytes() + norms_.memory_bytes() + h_.bytes() + t_.bytes();
}

Status TransformerEncoderLayer::set_weights(const EncoderWeights& w) {
  has_weights_ = false;
  if (cfg_.bias && (!w.norm1_bias || !w.norm2_bias)) return Status::kInvalidArgument;
  const float* gammas[] = {w.norm1_weight, w.norm2_weight};
  const float* betas[] = {cfg_.bias ? w.norm1_bias : nullptr, cfg_.bias ? w.norm2_bias : nullptr};
  Status s = ff_.set_weights(w.linear1_weight, w.linear1_bias, w.linear2_weight, w.linear2_bias, cfg_.bias);
  if (s == Status::kOk) s = norms_.set(gammas, betas);
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
  const float eps = cfg_.layer_norm_eps;
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
    if ((s = self_attn(a.src, t)) != Status::kOk) return s;               // t = sa(x)
    kernels::add_row(t, a.src, n);
    norms_.apply(pool, 0, M, t, eps, h);                                  // h = norm1(x + sa(x))
    if ((s = ff_.forward(pool, M, h, t, &last_request_bytes_)) != Status::kOk) return s;
    kernels::add_row(t, h, n);
    norms_.apply(pool, 1, M, t, eps, out);                                // out = norm2(h + ff(h))
  } else {
    norms_.apply(pool, 0, M, a.src, eps, t);                              // t = norm1(x)
    if ((s = self_attn(t, h)) != Status::kOk) return s;
    kernels::add_row(h, a.src, n);                                        // h = x + sa(norm1(x))
    norms_.apply(pool, 1, M, h, eps, t);                                  // t = norm2(h)
    if ((s = ff_.forward(pool, M, t, out, &last_request_bytes_)) != Status::kOk) return s;
    kernels::add_row(out, h, n);                                          // out = h + ff(norm2(h))
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
      norms_(3, cfg.d_model) {}

size_t TransformerDecoderLayer::memory_bytes() const {
  return self_attn_.memory_bytes() + cross_attn_.memory_bytes() + ff_.memory_bytes() + norms_.memory_bytes() +
         h_.bytes() + t_.bytes();
}

Status TransformerDecoderLayer::set_weights(const DecoderWeights& w) {
  has_weights_ = false;
  if (cfg_.bias && (!w.norm_bias[0] || !w.norm_bias[1] || !w.norm_bias[2])) return Status::kInvalidArgument;
  const float* betas[3];
  for (int i = 0; i < 3; ++i) betas[i] = cfg_.bias ? w.norm_bias[i] : nullptr;
  Status s = ff_.set_weights(w.linear1_weight, w.linear1_bias, w.linear2_weight, w.linear2_bias, cfg_.bias);
  if (s == Status::kOk) s = norms_.set(w.norm_weight, betas);
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
  const float eps = cfg_.layer_norm_eps;
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
    norms_.apply(pool, 0, M, t, eps, h);                                  // h = norm1(x + sa(x))
    if ((s = attend(cross_attn_, h, a.memory, a.S, memory_mask, t)) != Status::kOk) return s;
    kernels::add_row(t, h, n);
    norms_.apply(pool, 1, M, t, eps, h);                                  // h = norm2(h + mha(h, mem))
    if ((s = ff_.forward(pool, M, h, t, &last_request_bytes_)) != Status::kOk) return s;
    kernels::add_row(t, h, n);
    norms_.apply(pool, 2, M, t, eps, out);                                // out = norm3(h + ff(h))
  } else {
    norms_.apply(pool, 0, M, a.tgt, eps, t);
    if ((s = attend(self_attn_, t, t, a.T, a.tgt_mask, h)) != Status::kOk) return s;
    kernels::add_row(h, a.tgt, n);                                        // h = x + sa(norm1(x))
    norms_.apply(pool, 1, M, h, eps, t);
    if ((s = attend(cross_attn_, t, a.memory, a.S, memory_mask, out)) != Status::kOk) return s;
    kernels::add_row(h, out, n);                                          // h += mha(norm2(h), mem)
    norms_.apply(pool, 2, M, h, eps, t);
    if ((s = ff_.forward(pool, M, t, out, &last_request_bytes_)) != Status::kOk) return s;
    kernels::add_row(out, h, n);                                          // out = h + ff(norm3(h))
  }
  return Status::kOk;
}

namespace {
// Float64 building blocks of the references.
struct Ref {
  int E, F;
  size_t M;
  const EncoderConfig& c;
  std::vector<double> norm(const std::vector<double>& x, const float* g, const float* b) const {
    std::vector<double> y(x.size());
    for (size_t i = 0; i < M; ++i) {
      double mean = 0, var = 0;
      for (int k = 0; k < E; ++k) mean += x[i * E + k];
      mean /= E;
      for (int k = 0; k < E; ++k) var += (x[i * E + k] - mean) * (x[i * E + k] - mean);
      const double inv = 1 / std::sqrt(var / E + c.layer_norm_eps);
      for (int k = 0; k < E; ++k) y[i * E + k] = (x[i * E + k] - mean) * inv * g[k] + (c.bias ? b[k] : 0.0);
    }
    return y;
  }
  // Attention of x ([B, Lq, E]) over kv ([B, Lk, E]) through mha_reference (float64 inside).
  std::vector<double> attend(const MhaWeights& w, int B, int Lq, int Lk, const std::vector<double>& x,
                             const std::vector<double>* kv, const MaskArgs& m) const {
    std::vector<float> xf(x.begin(), x.end()), kvf, y(static_cast<size_t>(B) * Lq * E);
    if (kv) kvf.assign(kv->begin(), kv->end());
    MhaForwardArgs f;
    f.B = B, f.Lq = Lq, f.Lk = Lk, f.query = xf.data(), f.key = f.value = kv ? kvf.data() : xf.data();
    f.output = y.data(), f.mask = m;
    mha_reference({E, c.nhead, E, E, c.bias}, w, f);
    return std::vector<double>(y.begin(), y.end());
  }
  std::vector<double> ffn(const std::vector<double>& x, const float* w1, const float* b1, const float* w2, const float* b2) const {
    std::vector<double> hid(M * F), y(M * E);
    for (size_t i = 0; i < M; ++i) {
      for (int n = 0; n < F; ++n) {
        double s = c.bias ? b1[n] : 0.0;
        for (int k = 0; k < E; ++k) s += x[i * E + k] * w1[static_cast<size_t>(n) * E + k];
        hid[i * F + n] = c.activation == Activation::kRelu ? std::max(s, 0.0) : 0.5 * s * (1 + std::erf(s / std::sqrt(2.0)));
      }
      for (int n = 0; n < E; ++n) {
        double s = c.bias ? b2[n] : 0.0;
        for (int k = 0; k < F; ++k) s += hid[i * F + k] * w2[static_cast<size_t>(n) * F + k];
        y[i * E + n] = s;
      }
    }
    return y;
  }
  static std::vector<double> add(std::vector<double> x, const std::vector<double>& y) {
    for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];
    return x;
  }
};
}  // namespace

void encoder_reference(const EncoderConfig& c, const EncoderWeights& w, const EncoderForwardArgs& a) {
  const Ref r{c.d_model, c.dim_feedforward, static_cast<size_t>(a.B) * a.L, c};
  std::vector<double> x(a.src, a.src + r.M * r.E), y;
  auto sa = [&](const std::vector<double>& v) { return r.attend(w.self_attn, a.B, a.L, a.L, v, nullptr, a.mask); };
  auto ff = [&](const std::vector<double>& v) { return r.ffn(v, w.linear1_weight, w.linear1_bias, w.linear2_weight, w.linear2_bias); };
  if (!c.norm_first) {
    const auto h = r.norm(Ref::add(x, sa(x)), w.norm1_weight, w.norm1_bias);
    y = r.norm(Ref::add(h, ff(h)), w.norm2_weight, w.norm2_bias);
  } else {
    const auto h = Ref::add(x, sa(r.norm(x, w.norm1_weight, w.norm1_bias)));
    y = Ref::add(h, ff(r.norm(h, w.norm2_weight, w.norm2_bias)));
  }
  std::copy(y.begin(), y.end(), a.output);
}

void decoder_reference(const DecoderConfig& c, const DecoderWeights& w, const DecoderForwardArgs& a) {
  const Ref r{c.d_model, c.dim_feedforward, static_cast<size_t>(a.B) * a.T, c};
  std::vector<double> x(a.tgt, a.tgt + r.M * r.E), mem(a.memory, a.memory + static_cast<size_t>(a.B) * a.S * r.E), y;
  auto sa = [&](const std::vector<double>& v) { return r.attend(w.self_attn, a.B, a.T, a.T, v, nullptr, a.tgt_mask); };
  const MaskArgs memory_mask = cross_mask(a.memory_mask, 0);
  auto ca = [&](const std::vector<double>& v) { return r.attend(w.cross_attn, a.B, a.T, a.S, v, &mem, memory_mask); };
  auto ff = [&](const std::vector<double>& v) { return r.ffn(v, w.linear1_weight, w.linear1_bias, w.linear2_weight, w.linear2_bias); };
  auto norm = [&](const std::vector<double>& v, int i) { return r.norm(v, w.norm_weight[i], w.norm_bias[i]); };
  if (!c.norm_first) {
    auto h = norm(Ref::add(x, sa(x)), 0);
    h = norm(Ref::add(h, ca(h)), 1);
    y = norm(Ref::add(h, ff(h)), 2);
  } else {
    auto h = Ref::add(x, sa(norm(x, 0)));
    h = Ref::add(h, ca(norm(h, 1)));
    y = Ref::add(h, ff(norm(h, 2)));
  }
  std::copy(y.begin(), y.end(), a.output);
}

}  // namespace mha
