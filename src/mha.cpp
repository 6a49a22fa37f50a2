#include "mha.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels.h"
#include "linear.h"

namespace mha {

bool MultiHeadAttention::valid(const MhaConfig& c) {
  if (c.embed_dim <= 0 || c.num_heads <= 0 || c.kdim <= 0 || c.vdim <= 0 || c.head_dim < 0 || c.num_kv_heads < 0)
    return false;
  if (c.head_dim == 0 && c.embed_dim % c.num_heads != 0) return false;
  if (c.Hkv() > c.H() || c.H() % c.Hkv() != 0) return false;
  // Projection widths must fit an int.
  if ((static_cast<int64_t>(c.H()) + 2 * c.Hkv()) * c.D() > INT32_MAX - 64) return false;
  if (c.window < 0 || !(c.softcap >= 0.0f) || !std::isfinite(c.softcap) || !(c.scale >= 0.0f) || !std::isfinite(c.scale))
    return false;
  if (!(c.qk_norm_eps >= 0.0f) || !std::isfinite(c.qk_norm_eps) || !std::isfinite(c.rope_attention_factor)) return false;
  return c.rope_dim >= 0 && c.rope_dim % 2 == 0 && c.rope_dim <= c.D() && valid_weight_type(c.weight_type);
}

MultiHeadAttention::MultiHeadAttention(const MhaConfig& cfg)
    : cfg_(cfg), H_(cfg.H()), Hkv_(cfg.Hkv()), D_(cfg.D()), nq_(H_ * D_), nk_(Hkv_ * D_),
      nqp_(static_cast<int>(round_up(nq_, kernels::kNR))), nkp_(static_cast<int>(round_up(nk_, kernels::kNR))),
      ldf_(static_cast<size_t>(nqp_) + 2 * static_cast<size_t>(nkp_)) {}

size_t MultiHeadAttention::memory_bytes() const {
  return w_in_.memory_bytes() + w_k_.memory_bytes() + w_v_.memory_bytes() + b_in_.bytes() + w_out_.memory_bytes() +
         b_out_.bytes() + extras_.bytes();
}

Status MultiHeadAttention::set_weights(const MhaWeights& w) {
  const int E = cfg_.embed_dim, kd = cfg_.kdim, vd = cfg_.vdim;
  const WeightType t = cfg_.weight_type;
  const bool packed_in = w.in_proj_weight != nullptr, apart = kv_apart();
  if (packed_in && apart) return Status::kInvalidArgument;
  if (!packed_in && (!w.q_proj_weight || !w.k_proj_weight || !w.v_proj_weight)) return Status::kInvalidArgument;
  const bool split_bias = w.q_proj_bias && w.k_proj_bias && w.v_proj_bias;
  if (!w.out_proj_weight || (cfg_.has_qkv_bias() && !w.in_proj_bias && !split_bias) ||
      (cfg_.has_out_bias() && !w.out_proj_bias))
    return Status::kInvalidArgument;
  if ((cfg_.sinks && !w.sinks) || (cfg_.alibi && !w.alibi_slopes) || (cfg_.rope_dim && !w.rope_inv_freq) ||
      (cfg_.qk_norm && (!w.q_norm_weight || !w.k_norm_weight)))
    return Status::kInvalidArgument;
  // The matrices as given: rows x cols floats, or int8 values with a scale per row.
  struct Matrix {
    const float* w;
    const float* scale;
    int rows, cols;
  };
  const Matrix in{w.in_proj_weight, w.in_proj_weight_scale, nq_ + 2 * nk_, E};
  const Matrix q{w.q_proj_weight, w.q_proj_weight_scale, nq_, E}, k{w.k_proj_weight, w.k_proj_weight_scale, nk_, kd};
  const Matrix v{w.v_proj_weight, w.v_proj_weight_scale, nk_, vd}, out{w.out_proj_weight, w.out_proj_weight_scale, E, nq_};
  const Matrix* given[4] = {&out, &in, nullptr, nullptr};
  if (!packed_in) given[1] = &q, given[2] = &k, given[3] = &v;
  for (const Matrix* m : given) {
    if (!m) continue;
    const Status ok = m->scale ? (t == WeightType::kInt8 ? PackedMatrix::check(t, m->scale, m->rows) : Status::kInvalidArgument)
                               : PackedMatrix::check(t, m->w, static_cast<size_t>(m->rows) * m->cols);
    if (ok != Status::kOk) return ok;
  }

  const size_t ep = round_up(E, kernels::kNR);
  const size_t half = cfg_.rope_dim / 2;
  const size_t n_extra = round_up(2 * half, 16) + (cfg_.sinks ? H_ : 0) + (cfg_.alibi ? H_ : 0) + (cfg_.qk_norm ? 2 * D_ : 0);
  const int in_cols = apart ? nq_ : static_cast<int>(ldf_);
  last_request_bytes_ = PackedMatrix::bytes(E, in_cols, t) + (apart ? PackedMatrix::bytes(kd, nk_, t) + PackedMatrix::bytes(vd, nk_, t) : 0) +
                        PackedMatrix::bytes(nq_, E, t) + (static_cast<uint64_t>(ldf_) + ep + n_extra) * sizeof(float);
  if (w_in_.reserve(E, in_cols, t) != Status::kOk ||
      (apart && (w_k_.reserve(kd, nk_, t) != Status::kOk || w_v_.reserve(vd, nk_, t) != Status::kOk)) ||
      w_out_.reserve(nq_, E, t) != Status::kOk || !b_in_.reserve(ldf_) || !b_out_.reserve(ep) ||
      !extras_.reserve(std::max<size_t>(n_extra, 1))) {
    has_weights_ = false;
    return Status::kOutOfMemory;
  }
  last_request_bytes_ = 0;
  // Rows [r0, r0 + n) of m into columns n0.. of p (checked above: cannot fail).
  auto put = [](PackedMatrix& p, int n0, const Matrix& m, int r0, int n) {
    const size_t at = static_cast<size_t>(r0) * m.cols;
    if (m.scale) return p.fill_int8(n0, n, reinterpret_cast<const int8_t*>(m.w) + at, m.scale + r0);
    return p.fill(n0, n, m.w + at);
  };
  put(w_in_, 0, packed_in ? in : q, 0, nq_);
  put(apart ? w_k_ : w_in_, apart ? 0 : nqp_, packed_in ? in : k, packed_in ? nq_ : 0, nk_);
  put(apart ? w_v_ : w_in_, apart ? 0 : nqp_ + nkp_, packed_in ? in : v, packed_in ? nq_ + nk_ : 0, nk_);
  put(w_out_, 0, out, 0, E);
  std::fill(b_in_.data(), b_in_.data() + ldf_, 0.0f);
  std::fill(b_out_.data(), b_out_.data() + ep, 0.0f);
  if (cfg_.has_qkv_bias()) {
    const float* bq = w.in_proj_bias ? w.in_proj_bias : w.q_proj_bias;
    const float* bk = w.in_proj_bias ? w.in_proj_bias + nq_ : w.k_proj_bias;
    const float* bv = w.in_proj_bias ? w.in_proj_bias + nq_ + nk_ : w.v_proj_bias;
    std::memcpy(b_in_.data(), bq, sizeof(float) * nq_);
    std::memcpy(b_in_.data() + nqp_, bk, sizeof(float) * nk_);
    std::memcpy(b_in_.data() + nqp_ + nkp_, bv, sizeof(float) * nk_);
  }
  if (cfg_.has_out_bias()) std::memcpy(b_out_.data(), w.out_proj_bias, sizeof(float) * E);
  // The option arrays: inv_freq first (doubles, 64-byte aligned), then floats.
  float* x = extras_.data();
  inv_freq_ = nullptr;
  sinks_ = alibi_ = q_norm_ = k_norm_ = nullptr;
  if (half) {
    double* f = reinterpret_cast<double*>(x);
    std::memcpy(f, w.rope_inv_freq, sizeof(double) * half);
    inv_freq_ = f;
  }
  rope_ = Rope{cfg_.rope_dim, cfg_.rope_interleaved, inv_freq_, cfg_.rope_attention_factor};
  x += round_up(2 * half, 16);
  auto take = [&](const float* src, size_t n) {
    std::memcpy(x, src, sizeof(float) * n);
    x += n;
    return x - n;
  };
  if (cfg_.sinks) sinks_ = take(w.sinks, H_);
  if (cfg_.alibi) alibi_ = take(w.alibi_slopes, H_);
  if (cfg_.qk_norm) {
    q_norm_ = take(w.q_norm_weight, D_);
    k_norm_ = take(w.k_norm_weight, D_);
  }
  has_weights_ = true;
  return Status::kOk;
}

bool MultiHeadAttention::fused(const MhaForwardArgs& a) const {
  return a.query == a.key && a.key == a.value && cfg_.kdim == cfg_.embed_dim && cfg_.vdim == cfg_.embed_dim &&
         a.Lq == a.Lk;
}

MultiHeadAttention::Scratch MultiHeadAttention::carve(uint64_t proj_floats, uint64_t Mq, int threads,
                                                      Arena& arena) const {
  Scratch s;
  s.proj = arena.floats(proj_floats);
  s.attn = arena.floats(Mq * nq_);
  s.trig = cfg_.rope_dim ? arena.floats(static_cast<uint64_t>(threads) * cfg_.rope_dim) : nullptr;
  return s;
}

uint64_t MultiHeadAttention::bytes(uint64_t proj_floats, int B, int Lq, int Lk, int threads) const {
  Arena count;
  carve(proj_floats, static_cast<uint64_t>(B) * Lq, threads, count);
  AttentionArgs at;
  at.B = B, at.H = H_, at.Hkv = Hkv_, at.Lq = Lq, at.Lk = Lk, at.D = at.Dv = D_;
  return count.bytes() + Attention::workspace_bytes(at, threads);
}

namespace {
// Rows a sliding cache holding `held` rows keeps before appending n (it moves
// them to the front when the n do not fit behind): all, or the last capacity - n.
int kept_rows(int held, int n, int rows, int capacity) {
  return held + n <= rows ? held : std::min(held, capacity - n);
}
}  // namespace

uint64_t MultiHeadAttention::workspace_bytes(const MhaForwardArgs& a, int threads) const {
  const uint64_t Mq = static_cast<uint64_t>(a.B) * a.Lq, Mk = static_cast<uint64_t>(a.B) * a.Lk;
  const uint64_t proj = fused(a) ? Mq * ldf_ : Mq * nq_ + 2 * Mk * nk_;
  return bytes(proj, a.B, a.Lq, a.Lk, threads);
}

uint64_t MultiHeadAttention::workspace_bytes_cached(const MhaForwardArgs& a, const KVCache& c, CacheMode mode,
                                                    int threads) const {
  const uint64_t Mq = static_cast<uint64_t>(a.B) * a.Lq;
  if (mode == CacheMode::kAppend) {
    const int held = c.sliding_ ? kept_rows(c.held(), a.Lq, c.rows_, c.capacity_) : c.held();
    return bytes(Mq * ldf_, a.B, a.Lq, held + a.Lq, threads);
  }
  return bytes(Mq * nq_, a.B, a.Lq, c.length() == 0 ? a.Lk : c.length(), threads);
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
  const double kv = 2.0 * a.B * a.Lk * nk_ * (cfg_.kdim + cfg_.vdim);
  double proj = 2 * Mq * E * nq_;  // q
  int Lk = a.Lk;
  if (!c) {
    proj += kv;
  } else if (mode == CacheMode::kAppend) {
    proj += 2 * Mq * E * 2 * nk_, Lk = c->held() + a.Lq;
  } else if (c->length() == 0) {
    proj += kv;
  } else {
    Lk = c->length();
  }
  AttentionArgs at;
  at.B = a.B, at.H = H_, at.Hkv = Hkv_, at.Lq = a.Lq, at.Lk = Lk, at.D = at.Dv = D_;
  at.weights = a.weights;
  at.mask.window = cfg_.window, at.mask.causal = a.mask.causal;
  return proj + Attention::work(at) + 2 * Mq * E * nq_;
}

Status MultiHeadAttention::check(const MhaForwardArgs& a) const {
  if (!has_weights_) return Status::kNoWeights;
  if (a.B <= 0 || a.Lq <= 0 || a.Lk <= 0 || !a.query || !a.key || !a.value || !a.output)
    return Status::kInvalidArgument;
  if (a.trace && (!a.trace->out || a.trace->b < 0 || a.trace->b >= a.B || a.trace->i < 0 || a.trace->i >= a.Lq ||
                  a.trace->h < 0 || a.trace->h >= H_))
    return Status::kInvalidArgument;
  return Status::kOk;
}

Status MultiHeadAttention::check_cached(const MhaForwardArgs& a, const KVCache& c, CacheMode mode) const {
  if (!has_weights_) return Status::kNoWeights;
  const int E = cfg_.embed_dim;
  if (a.trace) return Status::kInvalidArgument;
  if (a.B <= 0 || a.Lq <= 0 || !a.query || !a.output || c.sliding_ != (mode == CacheMode::kAppend && cfg_.window > 0))
    return Status::kInvalidArgument;
  if (mode == CacheMode::kAppend) {
    // A sliding cache needs room for the new positions and the window - 1 before
    // them (or all of them while fewer have been seen).
    const bool fits = c.sliding_ ? static_cast<int64_t>(a.Lq) + std::min(cfg_.window - 1, c.length_) <= c.capacity_
                                 : a.Lq <= c.capacity_ - c.length_;
    if (cfg_.kdim != E || cfg_.vdim != E || a.key != a.query || a.value != a.query || c.batch_ != a.B ||
        c.width_ != nk_ || !fits || static_cast<int64_t>(c.length_) + a.Lq > INT32_MAX)
      return Status::kInvalidArgument;
  } else if (c.length_ == 0) {
    if (a.Lk <= 0 || !a.key || !a.value) return Status::kInvalidArgument;
  } else if (a.Lk != c.length_ || a.B != c.batch_ || c.width_ != nk_) {
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
    if (a.trace) write_trace(a, step);
    finish(step);
    last_request_bytes_ = 0;
  }
  ws.after_call(need);
  return s;
}

Gemm MultiHeadAttention::qkv_gemm(int M, const float* x, float* y) const {
  return w_in_.gemm(M, x, cfg_.embed_dim, y, ldf_, 0, static_cast<int>(ldf_), cfg_.has_qkv_bias() ? b_in_.data() : nullptr);
}

Gemm MultiHeadAttention::q_gemm(int M, const float* x, float* y) const {
  return w_in_.gemm(M, x, cfg_.embed_dim, y, nq_, 0, nq_, cfg_.has_qkv_bias() ? b_in_.data() : nullptr);
}

Gemm MultiHeadAttention::k_gemm(int M, const float* x, float* y) const {
  const float* b = cfg_.has_qkv_bias() ? b_in_.data() + nqp_ : nullptr;
  return kv_apart() ? w_k_.gemm(M, x, cfg_.kdim, y, nk_, 0, nk_, b) : w_in_.gemm(M, x, cfg_.kdim, y, nk_, nqp_, nk_, b);
}

Gemm MultiHeadAttention::v_gemm(int M, const float* x, float* y) const {
  const float* b = cfg_.has_qkv_bias() ? b_in_.data() + nqp_ + nkp_ : nullptr;
  return kv_apart() ? w_v_.gemm(M, x, cfg_.vdim, y, nk_, 0, nk_, b)
                    : w_in_.gemm(M, x, cfg_.vdim, y, nk_, nqp_ + nkp_, nk_, b);
}

// Positions. Without ids, query i is at q_pos0 + i; key j at j. With ids (the new
// tokens' rotary positions), query i is at ids[i], and so are the keys the same
// tokens produced: the last Lq keys when Lk >= Lq.
int MultiHeadAttention::query_position(const Step& st, int b, int i) {
  if (!st.position_ids) return st.q_pos0 + i;
  return st.position_ids[(st.positions_shared ? 0 : static_cast<size_t>(b) * st.Lq) + i];
}

int MultiHeadAttention::key_position(const Step& st, int b, int j) {
  const int offset = st.Lk - st.Lq;
  if (st.position_ids && offset >= 0 && j >= offset) return query_position(st, b, j - offset);
  return j;
}

bool MultiHeadAttention::row_phase(const Step& st) const { return st.append || cfg_.qk_norm || cfg_.rope_dim; }

// QK-norm (RMSNorm of each head's vector, weight norm) then the rotary embedding
// (trig: a rope_.table(), or null for none) of `heads` heads of D channels at x.
void MultiHeadAttention::norm_and_rotate(float* x, int heads, const float* norm, const float* trig) const {
  const int D = D_;
  for (int h = 0; h < heads; ++h) {
    float* v = x + static_cast<size_t>(h) * D;
    if (cfg_.qk_norm) kernels::rms_norm_row(v, D, norm, cfg_.qk_norm_eps, v);
    if (trig) rope_.rotate(v, trig);
  }
}

Status MultiHeadAttention::plan(const MhaForwardArgs& a, KVCache* c, CacheMode mode, int threads, Arena& arena,
                                const float* residual, Step& st) {
  const int E = cfg_.embed_dim;
  const size_t D = D_, nq = nq_, nk = nk_;
  const int Mq = a.B * a.Lq;  // fits: the workspace holds [Mq, E]
  st.work = work(a, c, mode);
  AttentionArgs at;
  at.B = a.B, at.H = H_, at.Hkv = Hkv_, at.Lq = a.Lq, at.D = D_, at.Dv = D_;
  at.mask = a.mask;
  at.mask.window = cfg_.window;
  st.B = a.B, st.Lq = a.Lq, st.Lk = a.Lk;
  st.position_ids = a.position_ids, st.positions_shared = a.positions_shared;
  float* weights = a.weights;
  size_t w_sl = 0;
  Scratch sc;
  if (!c) {
    const int Mk = a.B * a.Lk;
    at.Lk = a.Lk;
    st.q_pos0 = a.Lk - a.Lq;
    if (fused(a)) {
      sc = carve(static_cast<uint64_t>(Mq) * ldf_, Mq, threads, arena);
      st.proj[st.n_proj++] = qkv_gemm(Mq, a.query, sc.proj);
      at.q = {sc.proj, a.Lq * ldf_, D, ldf_};
      at.k = {sc.proj + nqp_, a.Lk * ldf_, D, ldf_};
      at.v = {sc.proj + nqp_ + nkp_, a.Lk * ldf_, D, ldf_};
      st.q = sc.proj, st.ldq = ldf_, st.q_rows = Mq, st.k_col = nqp_;
    } else {
      sc = carve(static_cast<uint64_t>(Mq) * nq + 2 * static_cast<uint64_t>(Mk) * nk, Mq, threads, arena);
      float* q = sc.proj;
      float* k = q + static_cast<size_t>(Mq) * nq;
      float* v = k + static_cast<size_t>(Mk) * nk;
      st.proj[st.n_proj++] = q_gemm(Mq, a.query, q);
      st.proj[st.n_proj++] = k_gemm(Mk, a.key, k);
      st.proj[st.n_proj++] = v_gemm(Mk, a.value, v);
      at.q = {q, a.Lq * nq, D, nq};
      at.k = {k, a.Lk * nk, D, nk};
      at.v = {v, a.Lk * nk, D, nk};
      st.q = q, st.ldq = nq, st.q_rows = Mq;
      st.k = k, st.ldk = nk, st.k_rows = Mk;
    }
  } else {
    if (mode == CacheMode::kAppend) {
      int held = c->held();
      if (c->sliding_ && held + a.Lq > c->rows_) {  // keep the last rows the window needs, at the front
        const int keep = kept_rows(held, a.Lq, c->rows_, c->capacity_);
        // Runs of rows: a head's (head-major), or a batch row's of every head.
        const int runs = c->head_major_ ? a.B * Hkv_ : a.B;
        const size_t w = c->row_stride(D_);
        for (int r = 0; r < runs; ++r) {
          const size_t base = static_cast<size_t>(r) * c->rows_ * w, from = static_cast<size_t>(held - keep) * w;
          std::memmove(c->k_.data() + base, c->k_.data() + base + from, sizeof(float) * keep * w);
          std::memmove(c->v_.data() + base, c->v_.data() + base + from, sizeof(float) * keep * w);
        }
        c->start_ += held - keep;
        held = keep;
      }
      sc = carve(static_cast<uint64_t>(Mq) * ldf_, Mq, threads, arena);
      st.proj[st.n_proj++] = qkv_gemm(Mq, a.query, sc.proj);
      st.q = sc.proj, st.ldq = ldf_, st.q_rows = Mq, st.k_col = nqp_;
      st.append = true, st.cache_row = held;
      st.q_pos0 = c->length_;
      st.Lk = st.Lq;  // the new keys are the new tokens
      at.Lk = held + a.Lq;
      at.q = {sc.proj, a.Lq * ldf_, D, ldf_};
      const int total = c->length_ + a.Lq, dropped = c->start_;
      if (dropped > 0) {  // masks and weights cover every position; the keys held start at `dropped`
        if (at.mask.bool_mask) at.mask.bool_mask += dropped;
        if (at.mask.float_mask) at.mask.float_mask += dropped;
        if (at.mask.key_padding) at.mask.key_padding += dropped, at.mask.kp_sb = total;
        if (weights) {
          std::fill_n(weights, static_cast<size_t>(a.B) * (a.average_weights ? 1 : H_) * a.Lq * total, 0.0f);
          weights += dropped, w_sl = total;
        }
      }
      st.cache_length = total;
    } else {
      sc = carve(static_cast<uint64_t>(Mq) * nq, Mq, threads, arena);
      st.proj[st.n_proj++] = q_gemm(Mq, a.query, sc.proj);
      if (c->length_ == 0) {  // the memory's keys and values, projected into the cache once
        const Status s = c->init(a.B, a.Lk, nk_);
        if (s != Status::kOk) {
          last_request_bytes_ = 2 * static_cast<uint64_t>(a.B) * a.Lk * nk * sizeof(float);
          return s;
        }
        c->head_major_ = false;  // the projections write [B * Lk, nk] rows
        st.proj[st.n_proj++] = k_gemm(a.B * a.Lk, a.key, c->k_.data());
        st.proj[st.n_proj++] = v_gemm(a.B * a.Lk, a.value, c->v_.data());
        st.k = c->k_.data(), st.ldk = nk, st.k_rows = a.B * a.Lk;
      }
      at.Lk = c->length_ == 0 ? a.Lk : c->length_;
      st.Lk = at.Lk;
      st.q_pos0 = at.Lk - a.Lq;
      at.q = {sc.proj, a.Lq * nq, D, nq};
      st.q = sc.proj, st.ldq = nq, st.q_rows = Mq;
      st.cache_length = at.Lk;
    }
    const size_t sb = static_cast<size_t>(c->rows_) * nk;
    at.k = {c->k_.data(), sb, c->head_stride(D_), c->row_stride(D_)};
    at.v = {c->v_.data(), sb, c->head_stride(D_), c->row_stride(D_)};
    st.cache = c;
  }
  st.trig = sc.trig;
  at.out = sc.attn;
  at.o_sb = a.Lq * nq, at.o_sh = D, at.o_sl = nq;
  at.scale = cfg_.scale > 0.0f ? cfg_.scale : 1.0f / std::sqrt(static_cast<float>(D_));
  at.softcap = cfg_.softcap;
  at.alibi = alibi_;
  at.sinks = sinks_;
  at.weights = weights;
  at.w_sl = w_sl;
  at.average_weights = a.average_weights;
  st.attention = Attention::plan(at, threads, arena);
  Epilogue res;
  res.residual = residual, res.ldr = E;
  st.out = w_out_.gemm(Mq, sc.attn, nq, a.output, E, 0, E, cfg_.has_out_bias() ? b_out_.data() : nullptr, res);
  return Status::kOk;
}

void MultiHeadAttention::run(const Step& st, ThreadPool::Team& team) const {
  gemm_phase(team, st.proj, st.n_proj);
  if (row_phase(st)) {
    const bool change = cfg_.qk_norm || cfg_.rope_dim;
    team.for_each(st.q_rows + st.k_rows, [&](int r) {
      float* trig = st.trig ? st.trig + static_cast<size_t>(team.thread()) * cfg_.rope_dim : nullptr;
      if (r < st.q_rows) {
        const int b = r / st.Lq, i = r % st.Lq;
        float* row = st.q + static_cast<size_t>(r) * st.ldq;
        if (change) {
          if (trig) rope_.table(query_position(st, b, i), trig);
          norm_and_rotate(row, H_, q_norm_, trig);
          if (st.k_col >= 0) norm_and_rotate(row + st.k_col, Hkv_, k_norm_, trig);  // fused: the same token's key
        }
        if (st.append) {  // the new positions' keys and values into the cache
          KVCache& c = *st.cache;
          const float* k = row + st.k_col;
          const float* v = k + nkp_;
          const size_t at = static_cast<size_t>(b) * c.rows_ * nk_ + (st.cache_row + i) * c.row_stride(D_);
          for (int h = 0; h < Hkv_; ++h) {
            std::memcpy(c.k_.data() + at + h * c.head_stride(D_), k + h * D_, sizeof(float) * D_);
            std::memcpy(c.v_.data() + at + h * c.head_stride(D_), v + h * D_, sizeof(float) * D_);
          }
        }
      } else {
        const int kr = r - st.q_rows, b = kr / st.Lk, j = kr % st.Lk;
        if (trig) rope_.table(key_position(st, b, j), trig);
        norm_and_rotate(st.k + static_cast<size_t>(kr) * st.ldk, Hkv_, k_norm_, trig);
      }
    });
  }
  Attention::run(st.attention, team);
  gemm_phase(team, st.out);
}

// After an uncached forward's job, while its workspace still holds the projections.
void MultiHeadAttention::write_trace(const MhaForwardArgs& a, const Step& st) const {
  const MhaTrace& t = *a.trace;
  const AttentionArgs& at = st.attention.a;
  const int D = D_, Lk = at.Lk, kvh = t.h / (H_ / Hkv_);
  float* o = t.out;
  const float* q = at.q.data + t.b * at.q.sb + t.h * at.q.sh + t.i * at.q.sl;
  o = std::copy(q, q + D, o);
  for (const View* x : {&at.k, &at.v})
    for (int j = 0; j < Lk; ++j) {
      const float* row = x->data + t.b * x->sb + kvh * x->sh + j * x->sl;
      o = std::copy(row, row + D, o);
    }
  Attention::Trace tr;
  float** steps[] = {&tr.raw, &tr.scaled, &tr.softcapped, &tr.biased, &tr.masked, &tr.weights};
  for (float** s : steps) *s = o, o += Lk;
  tr.head = o, o += D;
  Attention::trace(at, t.b, t.h, t.i, tr);
  const float* concat = at.out + t.b * at.o_sb + t.i * at.o_sl;
  o = std::copy(concat, concat + nq_, o);
  *o = sinks_ ? sinks_[t.h] : NAN;
}

void MultiHeadAttention::finish(const Step& st) {
  if (st.cache) st.cache->length_ = st.cache_length;
}

int KVCache::rows_for(int capacity, bool sliding) {
  if (!sliding) return capacity;
  // A quarter more rows: the rows kept are moved once every capacity / 4 steps.
  const int64_t rows = static_cast<int64_t>(capacity) + std::max<int64_t>(1, capacity / 4);
  return rows > INT32_MAX ? INT32_MAX : static_cast<int>(rows);
}

Status KVCache::init(int batch, int capacity, int width, bool sliding) {
  length_ = start_ = 0;
  if (batch <= 0 || capacity <= 0 || width <= 0) return Status::kInvalidArgument;
  const int rows = rows_for(capacity, sliding);
  const uint64_t n = static_cast<uint64_t>(batch) * rows * width;
  if (!k_.reserve(n) || !v_.reserve(n)) {
    batch_ = capacity_ = rows_ = width_ = 0;
    return Status::kOutOfMemory;
  }
  batch_ = batch, capacity_ = capacity, rows_ = rows, width_ = width, sliding_ = sliding, head_major_ = true;
  return Status::kOk;
}

}  // namespace mha
