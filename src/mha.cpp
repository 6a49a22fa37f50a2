#include "mha.h"

#include <cmath>
#include <cstring>

#include "kernels.h"
#include "linear.h"

namespace mha {

bool MultiHeadAttention::valid(const MhaConfig& c) {
  return c.embed_dim > 0 && c.num_heads > 0 && c.kdim > 0 && c.vdim > 0 && c.embed_dim % c.num_heads == 0;
}

MultiHeadAttention::MultiHeadAttention(const MhaConfig& cfg)
    : cfg_(cfg), ep_(static_cast<int>(round_up(cfg.embed_dim, kernels::kNR))) {}

size_t MultiHeadAttention::memory_bytes() const {
  return w_in_.bytes() + b_in_.bytes() + w_out_.bytes() + b_out_.bytes();
}

Status MultiHeadAttention::set_weights(const MhaWeights& w) {
  const int E = cfg_.embed_dim, kd = cfg_.kdim, vd = cfg_.vdim;
  const bool packed_in = w.in_proj_weight != nullptr;
  if (packed_in && (kd != E || vd != E)) return Status::kInvalidArgument;
  if (!packed_in && (!w.q_proj_weight || !w.k_proj_weight || !w.v_proj_weight)) return Status::kInvalidArgument;
  if (!w.out_proj_weight || (cfg_.bias && (!w.in_proj_bias || !w.out_proj_bias))) return Status::kInvalidArgument;

  const size_t sq = kernels::packed_size(E, E), sk = kernels::packed_size(kd, E), sv = kernels::packed_size(vd, E);
  last_request_bytes_ = (static_cast<uint64_t>(sq) + sk + sv + 3 * ep_ + sq + ep_) * sizeof(float);
  if (!w_in_.reserve(sq + sk + sv) || !b_in_.reserve(3 * ep_) || !w_out_.reserve(sq) || !b_out_.reserve(ep_)) {
    has_weights_ = false;
    return Status::kOutOfMemory;
  }
  last_request_bytes_ = 0;
  const size_t E2 = static_cast<size_t>(E) * E;
  const float* wq = packed_in ? w.in_proj_weight : w.q_proj_weight;
  const float* wk = packed_in ? w.in_proj_weight + E2 : w.k_proj_weight;
  const float* wv = packed_in ? w.in_proj_weight + 2 * E2 : w.v_proj_weight;
  pack_weight_transposed(E, E, wq, w_in_.data());
  pack_weight_transposed(E, kd, wk, w_in_.data() + sq);
  pack_weight_transposed(E, vd, wv, w_in_.data() + sq + sk);
  pack_weight_transposed(E, E, w.out_proj_weight, w_out_.data());
  std::fill(b_in_.data(), b_in_.data() + 3 * ep_, 0.0f);
  std::fill(b_out_.data(), b_out_.data() + ep_, 0.0f);
  if (cfg_.bias) {
    for (int p = 0; p < 3; ++p) std::memcpy(b_in_.data() + p * ep_, w.in_proj_bias + p * E, sizeof(float) * E);
    std::memcpy(b_out_.data(), w.out_proj_bias, sizeof(float) * E);
  }
  has_weights_ = true;
  return Status::kOk;
}

bool MultiHeadAttention::fused(const MhaForwardArgs& a) const {
  return a.query == a.key && a.key == a.value && cfg_.kdim == cfg_.embed_dim && cfg_.vdim == cfg_.embed_dim &&
         a.Lq == a.Lk;
}

MultiHeadAttention::Scratch MultiHeadAttention::carve(uint64_t proj_floats, uint64_t Mq, Arena& arena) const {
  Scratch s;
  s.proj = arena.floats(proj_floats);
  s.attn = arena.floats(Mq * cfg_.embed_dim);
  return s;
}

uint64_t MultiHeadAttention::bytes(uint64_t proj_floats, int B, int Lq, int Lk, int threads) const {
  Arena count;
  carve(proj_floats, static_cast<uint64_t>(B) * Lq, count);
  AttentionArgs at;
  at.B = B, at.H = cfg_.num_heads, at.Lq = Lq, at.Lk = Lk, at.D = at.Dv = cfg_.embed_dim / cfg_.num_heads;
  return count.bytes() + Attention::workspace_bytes(at, threads);
}

uint64_t MultiHeadAttention::workspace_bytes(const MhaForwardArgs& a, int threads) const {
  const uint64_t Mq = static_cast<uint64_t>(a.B) * a.Lq, Mk = static_cast<uint64_t>(a.B) * a.Lk;
  const uint64_t proj = fused(a) ? Mq * 3 * ep_ : (Mq + 2 * Mk) * cfg_.embed_dim;
  return bytes(proj, a.B, a.Lq, a.Lk, threads);
}

uint64_t MultiHeadAttention::workspace_bytes_cached(const MhaForwardArgs& a, const KVCache& c, CacheMode mode,
                                                    int threads) const {
  const uint64_t Mq = static_cast<uint64_t>(a.B) * a.Lq;
  if (mode == CacheMode::kAppend) return bytes(Mq * 3 * ep_, a.B, a.Lq, c.length() + a.Lq, threads);
  return bytes(Mq * cfg_.embed_dim, a.B, a.Lq, c.length() == 0 ? a.Lk : c.length(), threads);
}

Status MultiHeadAttention::check(const MhaForwardArgs& a) const {
  if (!has_weights_) return Status::kNoWeights;
  if (a.B <= 0 || a.Lq <= 0 || a.Lk <= 0 || !a.query || !a.key || !a.value || !a.output)
    return Status::kInvalidArgument;
  return Status::kOk;
}

Status MultiHeadAttention::check_cached(const MhaForwardArgs& a, const KVCache& c, CacheMode mode) const {
  if (!has_weights_) return Status::kNoWeights;
  const int E = cfg_.embed_dim;
  if (a.B <= 0 || a.Lq <= 0 || !a.query || !a.output) return Status::kInvalidArgument;
  if (mode == CacheMode::kAppend) {
    if (cfg_.kdim != E || cfg_.vdim != E || a.key != a.query || a.value != a.query || c.batch_ != a.B ||
        c.width_ != E || a.Lq > c.capacity_ - c.length_)
      return Status::kInvalidArgument;
  } else if (c.length_ == 0) {
    if (a.Lk <= 0 || !a.key || !a.value) return Status::kInvalidArgument;
  } else if (a.Lk != c.length_ || a.B != c.batch_ || c.width_ != E) {
    return Status::kInvalidArgument;
  }
  return Status::kOk;
}

// The Workspace versions reserve what the call needs, run the Arena version in
// it, and apply the workspace's release policy.
Status MultiHeadAttention::forward(const MhaForwardArgs& a, ThreadPool& pool, Workspace& ws) {
  if (const Status s = check(a); s != Status::kOk) return s;
  const uint64_t need = workspace_bytes(a, pool.size());
  last_request_bytes_ = need;
  if (ws.reserve(need) != Status::kOk) return Status::kOutOfMemory;
  Arena arena(ws.data(), need);
  const Status s = forward(a, pool, arena);
  ws.after_call(need);
  return s;
}

Status MultiHeadAttention::forward_cached(const MhaForwardArgs& a, KVCache& c, CacheMode mode, ThreadPool& pool,
                                          Workspace& ws) {
  if (const Status s = check_cached(a, c, mode); s != Status::kOk) return s;
  const uint64_t need = workspace_bytes_cached(a, c, mode, pool.size());
  last_request_bytes_ = need;
  if (ws.reserve(need) != Status::kOk) return Status::kOutOfMemory;
  Arena arena(ws.data(), need);
  const Status s = forward_cached(a, c, mode, pool, arena);
  ws.after_call(need);
  return s;
}

Status MultiHeadAttention::forward(const MhaForwardArgs& a, ThreadPool& pool, Arena& arena) {
  if (const Status s = check(a); s != Status::kOk) return s;
  const int E = cfg_.embed_dim, H = cfg_.num_heads, D = E / H;
  const size_t Mq = static_cast<size_t>(a.B) * a.Lq, Mk = static_cast<size_t>(a.B) * a.Lk;  // they fit: the workspace holds them
  const bool fuse = fused(a);
  const Scratch sc = carve(fuse ? Mq * 3 * ep_ : (Mq + 2 * Mk) * E, Mq, arena);

  AttentionArgs at;
  at.B = a.B, at.H = H, at.Lq = a.Lq, at.Lk = a.Lk, at.D = D, at.Dv = D;
  if (fuse) {
    const size_t ld = project_qkv(a, sc.proj, pool);
    at.q = {sc.proj, a.Lq * ld, static_cast<size_t>(D), ld};
    at.k = {sc.proj + ep_, a.Lk * ld, static_cast<size_t>(D), ld};
    at.v = {sc.proj + 2 * ep_, a.Lk * ld, static_cast<size_t>(D), ld};
  } else {
    float* q = sc.proj;
    float* k = q + Mq * E;
    float* v = k + Mk * E;
    project_query(a, q, pool);
    project_kv(a, k, v, pool);
    at.q = {q, static_cast<size_t>(a.Lq) * E, static_cast<size_t>(D), static_cast<size_t>(E)};
    at.k = {k, static_cast<size_t>(a.Lk) * E, static_cast<size_t>(D), static_cast<size_t>(E)};
    at.v = {v, static_cast<size_t>(a.Lk) * E, static_cast<size_t>(D), static_cast<size_t>(E)};
  }
  attend(a, at, sc.attn, pool, arena);
  last_request_bytes_ = 0;
  return Status::kOk;
}

void MultiHeadAttention::attend(const MhaForwardArgs& a, AttentionArgs& at, float* attn, ThreadPool& pool,
                                Arena& arena) {
  const int E = cfg_.embed_dim, D = E / cfg_.num_heads;
  at.out = attn;
  at.o_sb = static_cast<size_t>(a.Lq) * E, at.o_sh = D, at.o_sl = E;
  at.scale = 1.0f / std::sqrt(static_cast<float>(D));
  at.mask = a.mask;
  at.weights = a.weights;
  at.average_weights = a.average_weights;
  Attention::run(at, pool, arena);
  parallel_gemm(pool, a.B * a.Lq, E, E, attn, E, w_out_.data(), static_cast<size_t>(E) * kernels::kNR, a.output, E,
                cfg_.bias ? b_out_.data() : nullptr);
}

void MultiHeadAttention::project_query(const MhaForwardArgs& a, float* q, ThreadPool& pool) {
  const int E = cfg_.embed_dim;
  parallel_gemm(pool, a.B * a.Lq, E, E, a.query, E, w_in_.data(), static_cast<size_t>(E) * kernels::kNR, q, E,
                cfg_.bias ? b_in_.data() : nullptr);
}

size_t MultiHeadAttention::project_qkv(const MhaForwardArgs& a, float* proj, ThreadPool& pool) {
  const int E = cfg_.embed_dim;
  const size_t ld = 3 * static_cast<size_t>(ep_);
  parallel_gemm(pool, a.B * a.Lq, 3 * ep_, E, a.query, E, w_in_.data(), static_cast<size_t>(E) * kernels::kNR, proj, ld,
                cfg_.bias ? b_in_.data() : nullptr);
  return ld;
}

void MultiHeadAttention::project_kv(const MhaForwardArgs& a, float* k, float* v, ThreadPool& pool) {
  const int E = cfg_.embed_dim, kd = cfg_.kdim, vd = cfg_.vdim, Mk = a.B * a.Lk;
  const size_t sq = kernels::packed_size(E, E), sk = kernels::packed_size(kd, E);
  const float* bias = cfg_.bias ? b_in_.data() : nullptr;
  parallel_gemm(pool, Mk, E, kd, a.key, kd, w_in_.data() + sq, static_cast<size_t>(kd) * kernels::kNR, k, E,
                bias ? bias + ep_ : nullptr);
  parallel_gemm(pool, Mk, E, vd, a.value, vd, w_in_.data() + sq + sk, static_cast<size_t>(vd) * kernels::kNR, v, E,
                bias ? bias + 2 * ep_ : nullptr);
}

Status KVCache::init(int batch, int capacity, int width) {
  length_ = 0;
  if (batch <= 0 || capacity <= 0 || width <= 0) return Status::kInvalidArgument;
  const uint64_t n = static_cast<uint64_t>(batch) * capacity * width;
  if (!k_.reserve(n) || !v_.reserve(n)) {
    batch_ = capacity_ = width_ = 0;
    return Status::kOutOfMemory;
  }
  batch_ = batch, capacity_ = capacity, width_ = width;
  return Status::kOk;
}

Status MultiHeadAttention::forward_cached(const MhaForwardArgs& a, KVCache& c, CacheMode mode, ThreadPool& pool,
                                          Arena& arena) {
  if (const Status s = check_cached(a, c, mode); s != Status::kOk) return s;
  const int E = cfg_.embed_dim, H = cfg_.num_heads, D = E / H;
  const size_t Mq = static_cast<size_t>(a.B) * a.Lq;  // fits: the workspace holds the projections
  AttentionArgs at;
  at.B = a.B, at.H = H, at.Lq = a.Lq, at.D = D, at.Dv = D;
  Scratch sc;
  if (mode == CacheMode::kAppend) {
    sc = carve(Mq * 3 * ep_, Mq, arena);
    const size_t ld = project_qkv(a, sc.proj, pool);
    for (int b = 0; b < a.B; ++b)
      for (int i = 0; i < a.Lq; ++i) {
        const float* row = sc.proj + (static_cast<size_t>(b) * a.Lq + i) * ld;
        const size_t at_row = (static_cast<size_t>(b) * c.capacity_ + c.length_ + i) * E;
        std::memcpy(c.k_.data() + at_row, row + ep_, sizeof(float) * E);
        std::memcpy(c.v_.data() + at_row, row + 2 * ep_, sizeof(float) * E);
      }
    at.Lk = c.length_ + a.Lq;
    at.q = {sc.proj, a.Lq * ld, static_cast<size_t>(D), ld};
  } else {
    if (c.length_ == 0) {
      const Status s = c.init(a.B, a.Lk, E);
      if (s != Status::kOk) {
        last_request_bytes_ = 2 * static_cast<uint64_t>(a.B) * a.Lk * E * sizeof(float);
        return s;
      }
      project_kv(a, c.k_.data(), c.v_.data(), pool);
      c.length_ = a.Lk;
    }
    sc = carve(Mq * E, Mq, arena);
    project_query(a, sc.proj, pool);
    at.Lk = c.length_;
    at.q = {sc.proj, static_cast<size_t>(a.Lq) * E, static_cast<size_t>(D), static_cast<size_t>(E)};
  }
  const size_t sb = static_cast<size_t>(c.capacity_) * E;
  at.k = {c.k_.data(), sb, static_cast<size_t>(D), static_cast<size_t>(E)};
  at.v = {c.v_.data(), sb, static_cast<size_t>(D), static_cast<size_t>(E)};
  attend(a, at, sc.attn, pool, arena);
  if (mode == CacheMode::kAppend) c.length_ += a.Lq;
  last_request_bytes_ = 0;
  return Status::kOk;
}

}  // namespace mha
