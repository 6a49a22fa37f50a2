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

uint64_t MultiHeadAttention::workspace_bytes(const MhaForwardArgs& a, const ThreadPool& pool) const {
  return workspace_bytes(a, pool.threads_for(work(a, nullptr, CacheMode::kAppend)));
}

uint64_t MultiHeadAttention::workspace_bytes_cached(const MhaForwardArgs& a, const KVCache& c, CacheMode mode,
                                                    const ThreadPool& pool) const {
  return workspace_bytes_cached(a, c, mode, pool.threads_for(work(a, &c, mode)));
}

double MultiHeadAttention::work(const MhaForwardArgs& a, const KVCache* c, CacheMode mode) const {
  const double E = cfg_.embed_dim, Mq = static_cast<double>(a.B) * a.Lq;
  double proj = 2 * Mq * E * E;  // q
  int Lk = a.Lk;
  if (!c) {
    proj += 2.0 * a.B * a.Lk * E * (cfg_.kdim + cfg_.vdim);  // k and v
  } else if (mode == CacheMode::kAppend) {
    proj *= 3, Lk = c->length() + a.Lq;
  } else if (c->length() == 0) {
    proj += 2.0 * a.B * a.Lk * E * (cfg_.kdim + cfg_.vdim);
  } else {
    Lk = c->length();
  }
  AttentionArgs at;
  at.B = a.B, at.H = cfg_.num_heads, at.Lq = a.Lq, at.Lk = Lk, at.D = at.Dv = cfg_.embed_dim / cfg_.num_heads;
  at.weights = a.weights;
  return proj + Attention::work(at) + 2 * Mq * E * E;
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

Status MultiHeadAttention::forward(const MhaForwardArgs& a, ThreadPool& pool, Workspace& ws) {
  return forward_in(a, nullptr, CacheMode::kAppend, pool, ws);
}

Status MultiHeadAttention::forward_cached(const MhaForwardArgs& a, KVCache& c, CacheMode mode, ThreadPool& pool,
                                          Workspace& ws) {
  return forward_in(a, &c, mode, pool, ws);
}

// Checks, sizes the workspace for the threads the call gets, plans, runs one job.
Status MultiHeadAttention::forward_in(const MhaForwardArgs& a, KVCache* c, CacheMode mode, ThreadPool& pool,
                                      Workspace& ws) {
  if (const Status s = c ? check_cached(a, *c, mode) : check(a); s != Status::kOk) return s;
  const int threads = pool.threads_for(work(a, c, mode));
  const uint64_t need = c ? workspace_bytes_cached(a, *c, mode, threads) : workspace_bytes(a, threads);
  last_request_bytes_ = need;
  if (ws.reserve(need) != Status::kOk) return Status::kOutOfMemory;
  Arena arena(ws.data(), need);
  Step step;
  const Status s = plan(a, c, mode, threads, arena, nullptr, step);
  if (s == Status::kOk) {
    pool.job(threads, [&](ThreadPool::Team& team) { run(step, team); });
    finish(step);
    last_request_bytes_ = 0;
  }
  ws.after_call(need);
  return s;
}

Gemm MultiHeadAttention::qkv_gemm(int M, const float* x, float* y) const {
  const int E = cfg_.embed_dim;
  Gemm g;
  g.M = M, g.N = 3 * ep_, g.K = E, g.A = x, g.lda = E, g.Bp = w_in_.data(), g.panel_stride = static_cast<size_t>(E) * kernels::kNR;
  g.C = y, g.ldc = 3 * static_cast<size_t>(ep_), g.bias = cfg_.bias ? b_in_.data() : nullptr;
  return g;
}

Gemm MultiHeadAttention::q_gemm(int M, const float* x, float* y) const {
  Gemm g = qkv_gemm(M, x, y);
  g.N = cfg_.embed_dim, g.ldc = cfg_.embed_dim;
  return g;
}

Gemm MultiHeadAttention::k_gemm(int M, const float* x, float* y) const {
  const int E = cfg_.embed_dim, kd = cfg_.kdim;
  Gemm g;
  g.M = M, g.N = E, g.K = kd, g.A = x, g.lda = kd, g.Bp = w_in_.data() + kernels::packed_size(E, E);
  g.panel_stride = static_cast<size_t>(kd) * kernels::kNR, g.C = y, g.ldc = E;
  g.bias = cfg_.bias ? b_in_.data() + ep_ : nullptr;
  return g;
}

Gemm MultiHeadAttention::v_gemm(int M, const float* x, float* y) const {
  const int E = cfg_.embed_dim, kd = cfg_.kdim, vd = cfg_.vdim;
  Gemm g;
  g.M = M, g.N = E, g.K = vd, g.A = x, g.lda = vd, g.Bp = w_in_.data() + kernels::packed_size(E, E) + kernels::packed_size(kd, E);
  g.panel_stride = static_cast<size_t>(vd) * kernels::kNR, g.C = y, g.ldc = E;
  g.bias = cfg_.bias ? b_in_.data() + 2 * ep_ : nullptr;
  return g;
}

Status MultiHeadAttention::plan(const MhaForwardArgs& a, KVCache* c, CacheMode mode, int threads, Arena& arena,
                                const float* residual, Step& st) {
  const int E = cfg_.embed_dim, H = cfg_.num_heads, D = E / H;
  const int Mq = a.B * a.Lq;  // fits: the workspace holds [Mq, E]
  st.work = work(a, c, mode);
  AttentionArgs at;
  at.B = a.B, at.H = H, at.Lq = a.Lq, at.D = D, at.Dv = D;
  Scratch sc;
  if (!c) {
    const int Mk = a.B * a.Lk;
    at.Lk = a.Lk;
    if (fused(a)) {
      sc = carve(static_cast<uint64_t>(Mq) * 3 * ep_, Mq, arena);
      const size_t ld = 3 * static_cast<size_t>(ep_);
      st.proj[st.n_proj++] = qkv_gemm(Mq, a.query, sc.proj);
      at.q = {sc.proj, a.Lq * ld, static_cast<size_t>(D), ld};
      at.k = {sc.proj + ep_, a.Lk * ld, static_cast<size_t>(D), ld};
      at.v = {sc.proj + 2 * ep_, a.Lk * ld, static_cast<size_t>(D), ld};
    } else {
      sc = carve((static_cast<uint64_t>(Mq) + 2 * static_cast<uint64_t>(Mk)) * E, Mq, arena);
      float* q = sc.proj;
      float* k = q + static_cast<size_t>(Mq) * E;
      float* v = k + static_cast<size_t>(Mk) * E;
      st.proj[st.n_proj++] = q_gemm(Mq, a.query, q);
      st.proj[st.n_proj++] = k_gemm(Mk, a.key, k);
      st.proj[st.n_proj++] = v_gemm(Mk, a.value, v);
      at.q = {q, static_cast<size_t>(a.Lq) * E, static_cast<size_t>(D), static_cast<size_t>(E)};
      at.k = {k, static_cast<size_t>(a.Lk) * E, static_cast<size_t>(D), static_cast<size_t>(E)};
      at.v = {v, static_cast<size_t>(a.Lk) * E, static_cast<size_t>(D), static_cast<size_t>(E)};
    }
  } else {
    if (mode == CacheMode::kAppend) {
      sc = carve(static_cast<uint64_t>(Mq) * 3 * ep_, Mq, arena);
      st.proj[st.n_proj++] = qkv_gemm(Mq, a.query, sc.proj);
      st.qkv = sc.proj, st.ld = 3 * static_cast<size_t>(ep_), st.B = a.B, st.Lq = a.Lq;
      at.Lk = c->length_ + a.Lq;
      at.q = {sc.proj, a.Lq * st.ld, static_cast<size_t>(D), st.ld};
    } else {
      sc = carve(static_cast<uint64_t>(Mq) * E, Mq, arena);
      st.proj[st.n_proj++] = q_gemm(Mq, a.query, sc.proj);
      if (c->length_ == 0) {  // the memory's keys and values, projected into the cache once
        const Status s = c->init(a.B, a.Lk, E);
        if (s != Status::kOk) {
          last_request_bytes_ = 2 * static_cast<uint64_t>(a.B) * a.Lk * E * sizeof(float);
          return s;
        }
        st.proj[st.n_proj++] = k_gemm(a.B * a.Lk, a.key, c->k_.data());
        st.proj[st.n_proj++] = v_gemm(a.B * a.Lk, a.value, c->v_.data());
      }
      at.Lk = c->length_ == 0 ? a.Lk : c->length_;
      at.q = {sc.proj, static_cast<size_t>(a.Lq) * E, static_cast<size_t>(D), static_cast<size_t>(E)};
    }
    const size_t sb = static_cast<size_t>(c->capacity_) * E;
    at.k = {c->k_.data(), sb, static_cast<size_t>(D), static_cast<size_t>(E)};
    at.v = {c->v_.data(), sb, static_cast<size_t>(D), static_cast<size_t>(E)};
    st.cache = c;
    st.cache_length = at.Lk;
  }
  at.out = sc.attn;
  at.o_sb = static_cast<size_t>(a.Lq) * E, at.o_sh = D, at.o_sl = E;
  at.scale = 1.0f / std::sqrt(static_cast<float>(D));
  at.mask = a.mask;
  at.weights = a.weights;
  at.average_weights = a.average_weights;
  st.attention = Attention::plan(at, threads, arena);
  Gemm& o = st.out;
  o.M = Mq, o.N = E, o.K = E, o.A = sc.attn, o.lda = E, o.Bp = w_out_.data(), o.panel_stride = static_cast<size_t>(E) * kernels::kNR;
  o.C = a.output, o.ldc = E, o.bias = cfg_.bias ? b_out_.data() : nullptr;
  o.epilogue.residual = residual, o.epilogue.ldr = E;
  return Status::kOk;
}

void MultiHeadAttention::run(const Step& st, ThreadPool::Team& team) const {
  gemm_phase(team, st.proj, st.n_proj);
  if (st.qkv) {  // kAppend: the new positions' keys and values into the cache
    KVCache& c = *st.cache;
    const int E = cfg_.embed_dim, len = st.cache_length - st.Lq;
    team.for_each(st.B * st.Lq, [&](int r) {
      const int b = r / st.Lq, i = r % st.Lq;
      const float* row = st.qkv + static_cast<size_t>(r) * st.ld;
      const size_t at = (static_cast<size_t>(b) * c.capacity_ + len + i) * E;
      std::memcpy(c.k_.data() + at, row + ep_, sizeof(float) * E);
      std::memcpy(c.v_.data() + at, row + 2 * ep_, sizeof(float) * E);
    });
  }
  Attention::run(st.attention, team);
  gemm_phase(team, st.out);
}

void MultiHeadAttention::finish(const Step& st) {
  if (st.cache) st.cache->length_ = st.cache_length;
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

}  // namespace mha
