#include "attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <vector>

#include "kernels.h"

namespace mha {
namespace {

using kernels::kNR;

struct Job {
  const AttentionArgs* a;
  float* pk;  // packed K^T panels, one block of pk_stride floats per (b, h)
  float* pv;  // packed V panels, one block of pv_stride floats per (b, h)
  size_t pk_stride, pv_stride;
  float* scratch;
  size_t scratch_stride;  // floats per worker
  int n_qblocks;
  int dvp;  // Dv rounded up to 8
};

// Applies scale and masks to S[rows x jn] (row stride ld) for query rows
// i0.. and keys j0..j0+jn of (b, h).
void scale_and_mask(const AttentionArgs& a, int b, int h, int i0, int rows, int j0, int jn, float* S,
                    int ld) {
  const MaskArgs& m = a.mask;
  const uint8_t* kp = m.key_padding ? m.key_padding + static_cast<size_t>(b) * a.Lk + j0 : nullptr;
  for (int r = 0; r < rows; ++r) {
    float* s = S + static_cast<size_t>(r) * ld;
    const int i = i0 + r;
    kernels::scale_row(s, jn, a.scale);
    const size_t moff = b * m.sb + h * m.sh + i * m.sl + j0;
    if (m.float_mask) kernels::add_row(s, m.float_mask + moff, jn);
    if (m.bool_mask) {
      const uint8_t* bm = m.bool_mask + moff;
      for (int j = 0; j < jn; ++j)
        if (bm[j]) s[j] = -INFINITY;
    }
    if (kp)
      for (int j = 0; j < jn; ++j)
        if (kp[j]) s[j] = -INFINITY;
    if (m.causal) {
      const long first_masked = static_cast<long>(i) + (a.Lk - a.Lq) + 1 - j0;
      for (long j = std::max(0L, first_masked); j < jn; ++j) s[j] = -INFINITY;
    }
  }
}

// Exclusive end of the keys any row in [i0, i1) may see under the causal mask.
int key_end(const AttentionArgs& a, int i1) {
  if (!a.mask.causal) return a.Lk;
  const long end = static_cast<long>(i1 - 1) + (a.Lk - a.Lq) + 1;
  return static_cast<int>(std::clamp(end, 0L, static_cast<long>(a.Lk)));
}

bool all_padded(const AttentionArgs& a, int b, int j0, int jn) {
  if (!a.mask.key_padding) return false;
  const uint8_t* kp = a.mask.key_padding + static_cast<size_t>(b) * a.Lk + j0;
  for (int j = 0; j < jn; ++j)
    if (!kp[j]) return false;
  return true;
}

// S[rows x jn] (row stride kBlockK) = masked, scaled scores of query rows
// i0.. against keys j0..j0+jn of (b, h). False when every key of the block is
// padding (nothing computed: the block adds nothing).
bool scores(const AttentionArgs& a, int b, int h, int i0, int rows, int j0, int jn, const float* q, const float* pk,
            float* S) {
  if (all_padded(a, b, j0, jn)) return false;
  const size_t pk_panel = static_cast<size_t>(a.D) * kNR;
  kernels::gemm(rows, jn, a.D, q, a.q.sl, pk + (j0 / kNR) * pk_panel, pk_panel, S, Attention::kBlockK, false, nullptr);
  scale_and_mask(a, b, h, i0, rows, j0, jn, S, Attention::kBlockK);
  return true;
}

// One (b, h, query block). Writes the output rows and, when weights are
// requested, the weight rows (overwriting, or adding 1/H of them when averaging;
// first_head says whether to overwrite).
void attend_block(const Job& job, int b, int h, int qb, int worker, bool first_head) {
  const AttentionArgs& a = *job.a;
  const int BQ = Attention::kBlockQ, BK = Attention::kBlockK;
  const int i0 = qb * BQ, rows = std::min(BQ, a.Lq - i0);
  float* S = job.scratch + worker * job.scratch_stride;  // [BQ x BK]
  float* O = S + BQ * BK;                                 // [BQ x dvp]
  float* mx = O + static_cast<size_t>(BQ) * job.dvp;      // [BQ]
  float* l = mx + BQ;                                     // [BQ]
  const float* q = a.q.data + b * a.q.sb + h * a.q.sh + i0 * a.q.sl;
  const float* pk = job.pk + (static_cast<size_t>(b) * a.H + h) * job.pk_stride;
  const float* pv = job.pv + (static_cast<size_t>(b) * a.H + h) * job.pv_stride;
  const size_t pv_panel = static_cast<size_t>(a.Lk) * kNR;

  std::fill(mx, mx + rows, -INFINITY);
  std::fill(l, l + rows, 0.0f);
  std::fill(O, O + static_cast<size_t>(rows) * job.dvp, 0.0f);
  const int jend = key_end(a, i0 + rows);

  for (int j0 = 0; j0 < jend; j0 += BK) {
    const int jn = std::min(BK, jend - j0);
    if (!scores(a, b, h, i0, rows, j0, jn, q, pk, S)) continue;
    for (int r = 0; r < rows; ++r) {
      float* s = S + static_cast<size_t>(r) * BK;
      const float m_new = std::max(mx[r], kernels::max_row(s, jn));
      if (m_new == -INFINITY) {  // nothing visible yet: this block adds nothing
        std::fill(s, s + jn, 0.0f);
        continue;
      }
      const float corr = mx[r] == -INFINITY ? 0.0f : std::exp(mx[r] - m_new);
      const float sum = kernels::exp_shift_sum(s, jn, m_new);
      if (corr != 1.0f) kernels::scale_row(O + static_cast<size_t>(r) * job.dvp, a.Dv, corr);
      l[r] = l[r] * corr + sum;
      mx[r] = m_new;
    }
    kernels::gemm(rows, a.Dv, jn, S, BK, pv + static_cast<size_t>(j0) * kNR, pv_panel, O, job.dvp, true,
                  nullptr);
  }

  for (int r = 0; r < rows; ++r) {
    float* o = a.out + b * a.o_sb + h * a.o_sh + (i0 + r) * a.o_sl;
    if (l[r] > 0.0f) {
      const float inv = 1.0f / l[r];
      const float* src = O + static_cast<size_t>(r) * job.dvp;
      for (int c = 0; c < a.Dv; ++c) o[c] = src[c] * inv;
    } else {
      std::fill(o, o + a.Dv, 0.0f);  // every key masked: attends to nothing
    }
  }
  if (!a.weights) return;

  // Second pass for the weights: the same scores again, normalized with the
  // final max and sum of each row.
  const float head_w = a.average_weights ? 1.0f / a.H : 1.0f;
  float* wbase = a.average_weights
                     ? a.weights + (static_cast<size_t>(b) * a.Lq + i0) * a.Lk
                     : a.weights + ((static_cast<size_t>(b) * a.H + h) * a.Lq + i0) * a.Lk;
  if (first_head) std::fill(wbase, wbase + static_cast<size_t>(rows) * a.Lk, 0.0f);
  for (int j0 = 0; j0 < jend; j0 += BK) {
    const int jn = std::min(BK, jend - j0);
    if (!scores(a, b, h, i0, rows, j0, jn, q, pk, S)) continue;
    for (int r = 0; r < rows; ++r) {
      if (!(l[r] > 0.0f)) continue;
      float* s = S + static_cast<size_t>(r) * BK;
      kernels::exp_shift_sum(s, jn, mx[r]);
      float* w = wbase + static_cast<size_t>(r) * a.Lk + j0;
      kernels::axpby_row(w, 1.0f, s, head_w / l[r], jn);
    }
  }
}

void pack_task(void* ctx, int task, int) {
  const Job& job = *static_cast<const Job*>(ctx);
  const AttentionArgs& a = *job.a;
  const int b = task / a.H, h = task % a.H;
  const float* k = a.k.data + b * a.k.sb + h * a.k.sh;
  const float* v = a.v.data + b * a.v.sb + h * a.v.sh;
  // S = Q K^T: B operand is K^T (D x Lk), element (d, j) = k[j*sl + d].
  kernels::pack_panels(a.D, a.Lk, k, 1, a.k.sl, job.pk + task * job.pk_stride);
  // O += P V: B operand is V (Lk x Dv).
  kernels::pack_panels(a.Lk, a.Dv, v, a.v.sl, 1, job.pv + task * job.pv_stride);
}

void head_task(void* ctx, int task, int worker) {
  const Job& job = *static_cast<const Job*>(ctx);
  const AttentionArgs& a = *job.a;
  const int qb = task % job.n_qblocks, bh = task / job.n_qblocks;
  attend_block(job, bh / a.H, bh % a.H, qb, worker, true);
}

void averaged_task(void* ctx, int task, int worker) {  // all heads of one (b, query block)
  const Job& job = *static_cast<const Job*>(ctx);
  const int qb = task % job.n_qblocks, b = task / job.n_qblocks;
  for (int h = 0; h < job.a->H; ++h) attend_block(job, b, h, qb, worker, h == 0);
}

}  // namespace

Status Attention::run(const AttentionArgs& a, ThreadPool& pool) {
  if (a.B <= 0 || a.H <= 0 || a.Lq <= 0 || a.Lk <= 0 || a.D <= 0 || a.Dv <= 0 || !a.q.data ||
      !a.k.data || !a.v.data || !a.out || (a.mask.bool_mask && a.mask.float_mask))
    return Status::kInvalidArgument;
  // Sizes in 64 bits: on wasm32 size_t products can wrap around.
  const uint64_t bh = static_cast<uint64_t>(a.B) * a.H;
  const uint64_t pk_stride64 = static_cast<uint64_t>(a.D) * round_up(static_cast<uint64_t>(a.Lk), kNR);
  const uint64_t pv_stride64 = static_cast<uint64_t>(a.Lk) * round_up(static_cast<uint64_t>(a.Dv), kNR);
  const int dvp = static_cast<int>(round_up(a.Dv, kNR));
  const uint64_t scratch_stride =
      round_up(static_cast<uint64_t>(kBlockQ) * kBlockK + static_cast<uint64_t>(kBlockQ) * dvp + 2 * kBlockQ, 16);
  const uint64_t need_k = bh * pk_stride64, need_v = bh * pv_stride64,
                 need_s = scratch_stride * static_cast<uint64_t>(pool.size());
  last_request_bytes_ = (need_k + need_v + need_s) * sizeof(float);
  if (!packed_k_.reserve(need_k) || !packed_v_.reserve(need_v) || !scratch_.reserve(need_s))
    return Status::kOutOfMemory;
  last_request_bytes_ = 0;

  Job job{&a, packed_k_.data(), packed_v_.data(), static_cast<size_t>(pk_stride64), static_cast<size_t>(pv_stride64),
          scratch_.data(), static_cast<size_t>(scratch_stride), (a.Lq + kBlockQ - 1) / kBlockQ, dvp};
  const double flops = 4.0 * bh * a.Lq * a.Lk * std::max(a.D, a.Dv);
  const bool parallel = flops >= ThreadPool::kMinParallelFlops;
  pool.run(static_cast<int>(bh), pack_task, &job, parallel);
  if (a.weights && a.average_weights)
    pool.run(a.B * job.n_qblocks, averaged_task, &job, parallel);
  else
    pool.run(static_cast<int>(bh) * job.n_qblocks, head_task, &job, parallel);
  return Status::kOk;
}

void reference_softmax_row(const MaskArgs& m, int H, int Lq, int Lk, int b, int h, int i, double scale,
                           const std::function<double(int)>& dot, std::vector<double>& p, float* weights,
                           bool average) {
  p.assign(Lk, 0.0);
  double mx = -INFINITY;
  for (int j = 0; j < Lk; ++j) {
    double d = dot(j) * scale;
    const size_t moff = b * m.sb + h * m.sh + i * m.sl + j;
    if (m.float_mask) d += m.float_mask[moff];
    if (m.bool_mask && m.bool_mask[moff]) d = -INFINITY;
    if (m.key_padding && m.key_padding[static_cast<size_t>(b) * Lk + j]) d = -INFINITY;
    if (m.causal && j > i + (Lk - Lq)) d = -INFINITY;
    p[j] = d;
    mx = std::max(mx, d);
  }
  if (mx == -INFINITY) {  // attends to nothing
    std::fill(p.begin(), p.end(), 0.0);
    return;
  }
  double sum = 0;
  for (int j = 0; j < Lk; ++j) sum += p[j] = std::exp(p[j] - mx);
  for (int j = 0; j < Lk; ++j) p[j] /= sum;
  if (weights) {
    float* w = average ? weights + (static_cast<size_t>(b) * Lq + i) * Lk
                       : weights + ((static_cast<size_t>(b) * H + h) * Lq + i) * Lk;
    for (int j = 0; j < Lk; ++j) w[j] += static_cast<float>(p[j] / (average ? H : 1));
  }
}

void attention_reference(const AttentionArgs& a) {
  std::vector<double> p;
  if (a.weights) std::fill(a.weights, a.weights + static_cast<size_t>(a.B) * (a.average_weights ? 1 : a.H) * a.Lq * a.Lk, 0.0f);
  for (int b = 0; b < a.B; ++b)
    for (int h = 0; h < a.H; ++h)
      for (int i = 0; i < a.Lq; ++i) {
        const float* q = a.q.data + b * a.q.sb + h * a.q.sh + i * a.q.sl;
        auto dot = [&](int j) {
          const float* k = a.k.data + b * a.k.sb + h * a.k.sh + j * a.k.sl;
          double d = 0;
          for (int c = 0; c < a.D; ++c) d += static_cast<double>(q[c]) * k[c];
          return d;
        };
        reference_softmax_row(a.mask, a.H, a.Lq, a.Lk, b, h, i, a.scale, dot, p, a.weights, a.average_weights);
        float* o = a.out + b * a.o_sb + h * a.o_sh + i * a.o_sl;
        for (int c = 0; c < a.Dv; ++c) {
          double acc = 0;
          for (int j = 0; j < a.Lk; ++j) acc += p[j] * a.v.data[b * a.v.sb + h * a.v.sh + j * a.v.sl + c];
          o[c] = static_cast<float>(acc);
        }
      }
}

}  // namespace mha
