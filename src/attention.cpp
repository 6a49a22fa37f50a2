#include "attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels.h"

namespace mha {
namespace {

using kernels::kNR;

using Job = Attention::Plan;

// Row b of the key padding mask (null: none).
const uint8_t* padding_row(const AttentionArgs& a, int b) {
  const MaskArgs& m = a.mask;
  return m.key_padding ? m.key_padding + static_cast<size_t>(b) * (m.kp_sb ? m.kp_sb : static_cast<size_t>(a.Lk)) : nullptr;
}

// The key/value head query head h reads.
inline int kv_head(const AttentionArgs& a, int h) { return h / (a.H / a.Hkv); }

// Applies scale and masks to S[rows x jn] (row stride ld) for query rows
// i0.. and keys j0..j0+jn of (b, h). Masks are added as -inf, as in PyTorch: a
// masked NaN (or +inf) score becomes NaN, not -inf.
void scale_and_mask(const AttentionArgs& a, int b, int h, int i0, int rows, int j0, int jn, float* S,
                    int ld) {
  const MaskArgs& m = a.mask;
  const uint8_t* kp = m.key_padding ? padding_row(a, b) + j0 : nullptr;
  const long diag = causal_diagonal(m, a.Lq, a.Lk);
  const float slope = a.alibi ? a.alibi[h] : 0.0f;
  for (int r = 0; r < rows; ++r) {
    float* s = S + static_cast<size_t>(r) * ld;
    const int i = i0 + r;
    const long pos_q = static_cast<long>(i) + diag;  // keys sit at positions 0..Lk-1
    kernels::scale_row(s, jn, a.scale);
    if (a.softcap > 0.0f) {
      const float c = a.softcap, inv = 1.0f / a.softcap;
      for (int j = 0; j < jn; ++j) s[j] = c * std::tanh(s[j] * inv);
    }
    if (a.alibi)
      for (int j = 0; j < jn; ++j) s[j] -= slope * static_cast<float>(std::labs(pos_q - (j0 + j)));
    const size_t moff = b * m.sb + h * m.sh + i * m.sl + j0;
    if (m.float_mask) kernels::add_row(s, m.float_mask + moff, jn);
    if (m.bool_mask) {
      const uint8_t* bm = m.bool_mask + moff;
      for (int j = 0; j < jn; ++j)
        if (bm[j]) s[j] -= INFINITY;
    }
    if (kp)
      for (int j = 0; j < jn; ++j)
        if (kp[j]) s[j] -= INFINITY;
    if (m.causal) {
      const long first_masked = pos_q + 1 - j0;
      for (long j = std::max(0L, first_masked); j < jn; ++j) s[j] -= INFINITY;
    }
    if (m.window > 0) {  // visible: pos_q - window < key < pos_q + window
      const long first_visible = pos_q - m.window + 1 - j0;
      for (long j = 0; j < std::min<long>(first_visible, jn); ++j) s[j] -= INFINITY;
      if (!m.causal)
        for (long j = std::max(0L, pos_q + m.window - j0); j < jn; ++j) s[j] -= INFINITY;
    }
  }
}

// Exclusive end of the keys any row in [i0, i1) may see under the causal mask
// and the window.
int key_end(const AttentionArgs& a, int i1) {
  const long last_q = static_cast<long>(i1 - 1) + causal_diagonal(a.mask, a.Lq, a.Lk);
  long end = a.Lk;
  if (a.mask.causal) end = std::min(end, last_q + 1);
  else if (a.mask.window > 0) end = std::min(end, last_q + a.mask.window);
  return static_cast<int>(std::clamp(end, 0L, static_cast<long>(a.Lk)));
}

// The first key any row from i0 on may see under the window, rounded down to a
// whole panel (key blocks start at panels).
int key_begin(const AttentionArgs& a, int i0) {
  if (a.mask.window <= 0) return 0;
  const long first = static_cast<long>(i0) + causal_diagonal(a.mask, a.Lq, a.Lk) - a.mask.window + 1;
  const long b = std::clamp(first, 0L, static_cast<long>(a.Lk));
  return static_cast<int>(b - b % kNR);
}

// Whether some mask leaves query row i of (b, h) a key (only asked of NaN rows).
bool sees_a_key(const AttentionArgs& a, int b, int h, int i) {
  const MaskArgs& m = a.mask;
  const int end = key_end(a, i + 1);
  const long pos_q = static_cast<long>(i) + causal_diagonal(m, a.Lq, a.Lk);
  const uint8_t* kp = padding_row(a, b);
  const size_t moff = b * m.sb + h * m.sh + i * m.sl;
  for (int j = key_begin(a, i); j < end; ++j) {
    const bool hidden = (m.window > 0 && std::labs(pos_q - j) >= m.window) || (kp && kp[j]) ||
                        (m.bool_mask && m.bool_mask[moff + j]) ||
                        (m.float_mask && m.float_mask[moff + j] == -INFINITY);
    if (!hidden) return true;
  }
  return false;
}

bool all_padded(const AttentionArgs& a, int b, int j0, int jn) {
  if (!a.mask.key_padding) return false;
  const uint8_t* kp = padding_row(a, b) + j0;
  for (int j = 0; j < jn; ++j)
    if (!kp[j]) return false;
  return true;
}

bool reads_in_place(const AttentionArgs& a) { return a.Lq <= Attention::kDirectRows; }

// S[rows x jn] (row stride kBlockK) = masked, scaled scores of query rows
// i0.. against keys j0..j0+jn of (b, h), from K packed (pk) or, for a direct
// job, from K's rows k. False when skip_padded and every key of the block is
// padding (nothing computed: the block adds nothing).
bool scores(const Job& job, int b, int h, int i0, int rows, int j0, int jn, const float* q, const float* pk,
            const float* k, float* S, bool skip_padded) {
  const AttentionArgs& a = job.a;
  if (skip_padded && all_padded(a, b, j0, jn)) return false;
  if (job.direct) {
    kernels::dot_rows(rows, jn, a.D, q, a.q.sl, k + j0 * a.k.sl, a.k.sl, S, Attention::kBlockK);
  } else {
    const size_t pk_panel = static_cast<size_t>(a.D) * kNR;
    kernels::gemm(rows, jn, a.D, q, a.q.sl, pk + (j0 / kNR) * pk_panel, pk_panel, S, Attention::kBlockK, false,
                  nullptr);
  }
  scale_and_mask(a, b, h, i0, rows, j0, jn, S, Attention::kBlockK);
  return true;
}

// One (b, h, query block). Writes the output rows and, when weights are
// requested, the weight rows (overwriting, or adding 1/H of them when averaging;
// first_head says whether to overwrite).
void attend_block(const Job& job, int b, int h, int qb, int worker, bool first_head) {
  const AttentionArgs& a = job.a;
  const int BQ = Attention::kBlockQ, BK = Attention::kBlockK;
  const int i0 = qb * BQ, rows = std::min(BQ, a.Lq - i0);
  float* S = job.scratch + worker * job.scratch_stride;  // [BQ x BK]
  float* O = S + BQ * BK;                                 // [BQ x dvp]
  float* mx = O + static_cast<size_t>(BQ) * job.dvp;      // [BQ]
  float* l = mx + BQ;                                     // [BQ]
  float* vb = l + BQ;                                     // the key block of V in panels [dvp/8 x BK x 8]
  const int kvh = kv_head(a, h);
  const float* q = a.q.data + b * a.q.sb + h * a.q.sh + i0 * a.q.sl;
  const float* pk = job.direct ? nullptr : job.pk + (static_cast<size_t>(b) * a.Hkv + kvh) * job.pk_stride;
  const float* k = a.k.data + b * a.k.sb + kvh * a.k.sh;
  const float* v = a.v.data + b * a.v.sb + kvh * a.v.sh;

  // A sink is one more logit in the softmax that adds nothing to the output: it
  // starts each row's running max and sum (exp(sink - sink) = 1).
  const float sink = a.sinks ? a.sinks[h] : -INFINITY;
  std::fill(mx, mx + rows, sink);
  std::fill(l, l + rows, sink == -INFINITY ? 0.0f : 1.0f);
  std::fill(O, O + static_cast<size_t>(rows) * job.dvp, 0.0f);
  // Fully masked key blocks (past the causal end, or all padding) add exactly
  // nothing when q, k and v are finite; otherwise (NaN + -inf = NaN, 0 * NaN = NaN)
  // PyTorch's math reads them, so they are computed.
  bool skip = true;
  if (job.may_skip) {
    skip = job.kv_finite[static_cast<size_t>(b) * a.Hkv + kvh] != 0.0f;
    for (int r = 0; skip && r < rows; ++r) skip = kernels::all_finite(q + r * a.q.sl, a.D);
  }
  const int jbegin = skip ? key_begin(a, i0) : 0;
  const int jend = skip ? key_end(a, i0 + rows) : a.Lk;

  // The online softmax carries NaN: a NaN score makes its exp, the row sum l and
  // (through P V) the output row NaN. The fast max may drop a NaN, so a block whose
  // max says "nothing visible" is checked for one before it is skipped.
  for (int j0 = jbegin; j0 < jend; j0 += BK) {
    const int jn = std::min(BK, jend - j0);
    if (!scores(job, b, h, i0, rows, j0, jn, q, pk, k, S, skip)) continue;
    for (int r = 0; r < rows; ++r) {
      float* s = S + static_cast<size_t>(r) * BK;
      float m_new = std::max(mx[r], kernels::max_row(s, jn));
      if (m_new == -INFINITY) {
        if (!kernels::has_nan(s, jn)) {  // nothing visible yet: this block adds nothing
          std::fill(s, s + jn, 0.0f);
          continue;
        }
        m_new = NAN;
      }
      const float corr = mx[r] == -INFINITY ? 0.0f : std::exp(mx[r] - m_new);
      const float sum = kernels::exp_shift_sum(s, jn, m_new);
      if (corr != 1.0f) kernels::scale_row(O + static_cast<size_t>(r) * job.dvp, a.Dv, corr);
      l[r] = l[r] * corr + sum;
      mx[r] = m_new;
    }
    // O += P V over this key block: V's rows j0.. read in place (direct), or packed
    // here rather than all of V up front, so the workspace holds one block of V per
    // thread, whatever Dv is.
    if (job.direct) {
      kernels::accumulate_rows(rows, jn, a.Dv, S, BK, v + j0 * a.v.sl, a.v.sl, O, job.dvp);
    } else {
      kernels::pack_panels(jn, a.Dv, v + j0 * a.v.sl, a.v.sl, 1, vb);
      kernels::gemm(rows, a.Dv, jn, S, BK, vb, static_cast<size_t>(jn) * kNR, O, job.dvp, true, nullptr);
    }
  }

  for (int r = 0; r < rows; ++r) {
    float* o = a.out + b * a.o_sb + h * a.o_sh + (i0 + r) * a.o_sl;
    // l is 0 (nothing visible), >= 1, or NaN. A NaN row whose keys are all masked
    // (its NaN came from masked scores) still attends to nothing.
    if (std::isnan(l[r]) && !sees_a_key(a, b, h, i0 + r)) l[r] = 0.0f;
    if (l[r] != 0.0f) {
      const float inv = 1.0f / l[r];
      const float* src = O + static_cast<size_t>(r) * job.dvp;
      for (int c = 0; c < a.Dv; ++c) o[c] = src[c] * inv;
    } else {
      std::fill(o, o + a.Dv, 0.0f);  // every key masked: attends to nothing
    }
  }
  if (!a.weights) return;

  // Second pass for the weights: the same scores again, normalized with the
  // final max and sum of each row. A NaN sum means a NaN or +inf score: that
  // row's softmax is NaN at every key, skipped blocks included.
  const float head_w = a.average_weights ? 1.0f / a.H : 1.0f;
  const size_t wl = a.w_sl ? a.w_sl : static_cast<size_t>(a.Lk);
  float* wbase = a.average_weights
                     ? a.weights + (static_cast<size_t>(b) * a.Lq + i0) * wl
                     : a.weights + ((static_cast<size_t>(b) * a.H + h) * a.Lq + i0) * wl;
  if (first_head)
    for (int r = 0; r < rows; ++r) std::fill_n(wbase + static_cast<size_t>(r) * wl, a.Lk, 0.0f);
  for (int r = 0; r < rows; ++r)
    if (std::isnan(l[r])) std::fill_n(wbase + static_cast<size_t>(r) * wl, a.Lk, NAN);
  for (int j0 = jbegin; j0 < jend; j0 += BK) {
    const int jn = std::min(BK, jend - j0);
    if (!scores(job, b, h, i0, rows, j0, jn, q, pk, k, S, skip)) continue;
    for (int r = 0; r < rows; ++r) {
      if (l[r] == 0.0f || std::isnan(l[r])) continue;
      float* s = S + static_cast<size_t>(r) * BK;
      kernels::exp_shift_sum(s, jn, mx[r]);
      float* w = wbase + static_cast<size_t>(r) * wl + j0;
      kernels::axpby_row(w, 1.0f, s, head_w / l[r], jn);
    }
  }
}

// Whether K (packed, or its rows for a direct job) and V of (b, h) = task are
// finite at every key a skipped block may hold: past the first query block's
// causal end, or padding. Checked in runs of such keys (whole K panels; rows).
bool skippable_keys_finite(const Job& job, int task, int b, int kvh) {
  const AttentionArgs& a = job.a;
  const uint8_t* kp = padding_row(a, b);
  const int end = a.Lk, causal_end = job.causal_min_end;
  // The first j in [j, end) whose padding byte is (want_padded) nonzero / zero, eight at a time.
  auto scan = [&](int j, bool want_padded) {
    constexpr uint64_t kOnes = 0x0101010101010101ull, kHighs = 0x8080808080808080ull;
    for (; j + 8 <= end; j += 8) {
      uint64_t w;
      std::memcpy(&w, kp + j, 8);
      const bool has_zero = ((w - kOnes) & ~w & kHighs) != 0;
      if (want_padded ? w != 0 : has_zero) break;
    }
    while (j < end && (kp[j] != 0) != want_padded) ++j;
    return j;
  };
  const float* k = a.k.data + b * a.k.sb + kvh * a.k.sh;
  const float* v = a.v.data + b * a.v.sb + kvh * a.v.sh;
  const size_t k_panel = static_cast<size_t>(a.D) * kNR;
  auto rows_finite = [](const float* x, size_t sl, int width, int j, int e) {  // rows [j, e) of x
    if (sl == static_cast<size_t>(width)) return kernels::all_finite(x + j * sl, static_cast<size_t>(e - j) * width);
    for (int r = j; r < e; ++r)
      if (!kernels::all_finite(x + r * sl, width)) return false;
    return true;
  };
  auto check = [&](int j, int e) {  // keys [j, e): whole K panels (or K rows), V rows
    if (job.direct) {
      if (!rows_finite(k, a.k.sl, a.D, j, e)) return false;
    } else {
      const size_t p0 = j / kNR, p1 = (e - 1) / kNR + 1;
      if (!kernels::all_finite(job.pk + task * job.pk_stride + p0 * k_panel, (p1 - p0) * k_panel)) return false;
    }
    return rows_finite(v, a.v.sl, a.Dv, j, e);
  };
  if (a.mask.window > 0) return check(0, end);  // a window may skip keys anywhere
  for (int j = kp ? scan(0, true) : end; j < causal_end; j = scan(j, true)) {  // runs of padding before causal_end
    const int e = std::min(scan(j, false), causal_end);
    if (!check(j, e)) return false;
    j = e;
  }
  return causal_end >= end || check(causal_end, end);
}

void pack_task(const Job& job, int task) {  // task: (b, kv head)
  const AttentionArgs& a = job.a;
  const int b = task / a.Hkv, h = task % a.Hkv;
  const float* k = a.k.data + b * a.k.sb + h * a.k.sh;
  // S = Q K^T: B operand is K^T (D x Lk), element (d, j) = k[j*sl + d].
  if (!job.direct) kernels::pack_panels(a.D, a.Lk, k, 1, a.k.sl, job.pk + task * job.pk_stride);
  if (job.may_skip) job.kv_finite[task] = skippable_keys_finite(job, task, b, h) ? 1.0f : 0.0f;
}

void head_task(const Job& job, int task, int worker) {
  const AttentionArgs& a = job.a;
  const int qb = task % job.n_qblocks, bh = task / job.n_qblocks;
  attend_block(job, bh / a.H, bh % a.H, qb, worker, true);
}

void averaged_task(const Job& job, int task, int worker) {  // all heads of one (b, query block)
  const int qb = task % job.n_qblocks, b = task / job.n_qblocks;
  for (int h = 0; h < job.a.H; ++h) attend_block(job, b, h, qb, worker, h == 0);
}

// The workspace of a call: packed K, the per-(b, h) finiteness flags and the
// per-thread tiles, carved from arena in that order (or only counted).
struct Scratch {
  float* pk;
  size_t pk_stride;
  float* kv_finite;
  float* tiles;
  size_t tile_stride;
};

Scratch carve(const AttentionArgs& a, int threads, Arena& arena) {
  const uint64_t BQ = Attention::kBlockQ, BK = Attention::kBlockK;
  // Sizes in 64 bits: on wasm32 size_t products can wrap around. The workspace
  // cannot be reserved unless the total fits in size_t, and then so does each part.
  const uint64_t bh = static_cast<uint64_t>(a.B) * (a.Hkv ? a.Hkv : a.H);
  const uint64_t pk_stride = static_cast<uint64_t>(a.D) * round_up(static_cast<uint64_t>(a.Lk), kNR);
  const uint64_t dvp = round_up(static_cast<uint64_t>(a.Dv), kNR);
  // S [BQ x BK], O [BQ x dvp], max and sum [BQ] each, a key block of V [BK x dvp].
  const uint64_t tile_stride = round_up(BQ * BK + BQ * dvp + 2 * BQ + BK * dvp, 16);
  Scratch s;
  const bool direct = reads_in_place(a);
  s.pk = direct ? nullptr : arena.floats(bh * pk_stride);
  s.pk_stride = direct ? 0 : static_cast<size_t>(pk_stride);
  s.kv_finite = arena.floats(bh);
  s.tiles = arena.floats(tile_stride * static_cast<uint64_t>(threads));
  s.tile_stride = static_cast<size_t>(tile_stride);
  return s;
}

}  // namespace

bool Attention::valid(const AttentionArgs& a) {
  return a.B > 0 && a.H > 0 && a.Lq > 0 && a.Lk > 0 && a.D > 0 && a.Dv > 0 && a.q.data && a.k.data && a.v.data &&
         a.out && !(a.mask.bool_mask && a.mask.float_mask) && a.Hkv >= 0 && a.Hkv <= a.H &&
         (a.Hkv == 0 || a.H % a.Hkv == 0) && a.mask.window >= 0 && a.softcap >= 0.0f && std::isfinite(a.softcap);
}

double Attention::work(const AttentionArgs& a) {
  double keys = a.Lk;  // per query row
  if (a.mask.window > 0) keys = std::min(keys, (a.mask.causal ? 1.0 : 2.0) * a.mask.window + kBlockK);
  return 4.0 * a.B * a.H * a.Lq * keys * std::max(a.D, a.Dv) * (a.weights ? 1.5 : 1.0);
}

uint64_t Attention::workspace_bytes(const AttentionArgs& a, int threads) {
  Arena count;
  carve(a, threads, count);
  return count.bytes();
}

uint64_t Attention::workspace_bytes(const AttentionArgs& a, const ThreadPool& pool) {
  return workspace_bytes(a, pool.threads_for(work(a)));
}

Status Attention::run(const AttentionArgs& a, ThreadPool& pool, Workspace& ws) {
  if (!valid(a)) return Status::kInvalidArgument;
  const int threads = pool.threads_for(work(a));
  const uint64_t need = workspace_bytes(a, threads);
  const Status s = ws.reserve(need);
  if (s != Status::kOk) return s;
  Arena arena(ws.data(), need);
  const Plan p = plan(a, threads, arena);
  pool.job(threads, [&](ThreadPool::Team& team) { run(p, team); });
  ws.after_call(need);
  return Status::kOk;
}

Attention::Plan Attention::plan(const AttentionArgs& given, int threads, Arena& arena) {
  AttentionArgs a = given;
  if (a.Hkv == 0) a.Hkv = a.H;
  const Scratch sc = carve(a, threads, arena);
  // May a block be skipped? The first query block has the nearest causal end; the
  // padding is the same for every query block; a window hides keys on both sides.
  const int causal_min_end = a.mask.causal ? key_end(a, std::min(kBlockQ, a.Lq)) : a.Lk;
  bool may_skip = causal_min_end < a.Lk || a.mask.window > 0;
  for (int b = 0; !may_skip && a.mask.key_padding && b < a.B; ++b)
    for (int j0 = 0; !may_skip && j0 < a.Lk; j0 += kBlockK)
      may_skip = all_padded(a, b, j0, std::min(kBlockK, a.Lk - j0));
  return Plan{a, sc.pk, sc.pk_stride, sc.tiles, sc.tile_stride, (a.Lq + kBlockQ - 1) / kBlockQ,
              static_cast<int>(round_up(a.Dv, kNR)), may_skip, causal_min_end, sc.kv_finite, reads_in_place(a)};
}

void Attention::trace(const AttentionArgs& given, int b, int h, int i, const Trace& t) {
  AttentionArgs a = given;
  if (a.Hkv == 0) a.Hkv = a.H;
  const MaskArgs& m = a.mask;
  const int kvh = kv_head(a, h);
  const long pos_q = static_cast<long>(i) + causal_diagonal(m, a.Lq, a.Lk);
  const float* q = a.q.data + b * a.q.sb + h * a.q.sh + i * a.q.sl;
  const uint8_t* kp = padding_row(a, b);
  const size_t moff = b * m.sb + h * m.sh + i * m.sl;
  float mx = a.sinks ? a.sinks[h] : -INFINITY;
  bool visible = false;
  for (int j = 0; j < a.Lk; ++j) {
    const float* k = a.k.data + b * a.k.sb + kvh * a.k.sh + j * a.k.sl;
    float dot = 0.0f;
    for (int c = 0; c < a.D; ++c) dot += q[c] * k[c];
    t.raw[j] = dot;
    t.scaled[j] = dot * a.scale;
    t.softcapped[j] = a.softcap > 0.0f ? a.softcap * std::tanh(t.scaled[j] / a.softcap) : t.scaled[j];
    float s = t.softcapped[j];
    if (a.alibi) s -= a.alibi[h] * static_cast<float>(std::labs(pos_q - j));
    if (m.float_mask) s += m.float_mask[moff + j];
    t.biased[j] = s;
    const bool hidden = (m.bool_mask && m.bool_mask[moff + j]) || (kp && kp[j]) || (m.causal && j > pos_q) ||
                        (m.window > 0 && std::labs(pos_q - j) >= m.window);
    t.masked[j] = hidden ? s - INFINITY : s;
    if (t.masked[j] != -INFINITY) visible = true;
    mx = std::max(mx, t.masked[j]);
  }
  double sum = a.sinks && visible ? std::exp(static_cast<double>(a.sinks[h]) - mx) : 0.0;
  for (int j = 0; j < a.Lk; ++j) sum += visible ? std::exp(static_cast<double>(t.masked[j]) - mx) : 0.0;
  for (int j = 0; j < a.Lk; ++j)
    t.weights[j] = visible ? static_cast<float>(std::exp(static_cast<double>(t.masked[j]) - mx) / sum) : 0.0f;
  for (int c = 0; c < a.Dv; ++c) {
    double acc = 0;
    for (int j = 0; j < a.Lk; ++j)
      if (t.weights[j] != 0.0f) acc += static_cast<double>(t.weights[j]) * a.v.data[b * a.v.sb + kvh * a.v.sh + j * a.v.sl + c];
    t.head[c] = static_cast<float>(acc);
  }
}

void Attention::run(const Plan& p, ThreadPool::Team& team) {
  const AttentionArgs& a = p.a;
  const int bh = a.B * a.H;
  if (!p.direct || p.may_skip) team.for_each(a.B * a.Hkv, [&](int t) { pack_task(p, t); });
  if (a.weights && a.average_weights)
    team.for_each(a.B * p.n_qblocks, [&](int t) { averaged_task(p, t, team.thread()); });
  else
    team.for_each(bh * p.n_qblocks, [&](int t) { head_task(p, t, team.thread()); });
}

}  // namespace mha
