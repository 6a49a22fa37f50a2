#include "kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <xsimd/xsimd.hpp>
#include <xmmintrin.h>

#include "relaxed.h"

namespace mha {
namespace kernels {

namespace {
using V = xsimd::batch<float>;
using VI = xsimd::batch<int32_t>;
constexpr int kW = static_cast<int>(V::size);
static_assert(kNR % kW == 0, "panel width must be a multiple of the vector width");
constexpr int kNV = kNR / kW;

// ---- fused multiply-add ------------------------------------------------------
// a * b + c: relaxed_madd in relaxed-SIMD builds, mul then add elsewhere (relaxed.h).
inline V madd(V a, V b, V c) {
#ifdef MHA_RELAXED_MADD
  return V(__builtin_wasm_relaxed_madd_f32x4(a.data, b.data, c.data));
#else
  return a * b + c;
#endif
}

// ---- GEMM micro-kernel -------------------------------------------------------
// C[MR x 8] = (acc ? C : init) + A[MR x K] * B[K x 8 panel], A packed k-major
// (ap[k * MR + r]). init is 8 floats (bias) or null for zero. MR independent rows
// x kNV vectors = MR*kNV accumulators, all in registers.
template <int MR>
inline void micro(int K, const float* ap, const float* B, float* C, size_t ldc, bool acc, const float* init) {
  V c[MR][kNV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < kNV; ++v)
      c[r][v] = acc ? V::load_unaligned(C + r * ldc + v * kW)
                    : (init ? V::load_unaligned(init + v * kW) : V(0.0f));
  // Two pointers bumped once per k (not indices): in WebAssembly every address is
  // a 32-bit sum the engine computes with an instruction of its own, and this loop
  // is bound by instructions issued, not by its multiply-adds. A packed k-major,
  // its MR values of a k are one pointer plus constant offsets (rows of A in place
  // would take a pointer and an add each).
  const float* const end = B + static_cast<size_t>(K) * kNR;
  for (const float* b_k = B; b_k != end; b_k += kNR, ap += MR) {
    V b[kNV];
    for (int v = 0; v < kNV; ++v) b[v] = V::load_unaligned(b_k + v * kW);
    for (int r = 0; r < MR; ++r) {
      const V ar(ap[r]);
      for (int v = 0; v < kNV; ++v) c[r][v] = madd(ar, b[v], c[r][v]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < kNV; ++v) c[r][v].store_unaligned(C + r * ldc + v * kW);
}

// A tile with nr < 8 valid columns goes through an 8-wide scratch tile so the
// kernel never reads or writes past column N.
template <int MR>
inline void micro_edge(int K, const float* ap, const float* B, float* C, size_t ldc, int nr, bool acc,
                       const float* bias) {
  alignas(64) float tile[MR * kNR];
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < kNR; ++j)
      tile[r * kNR + j] = j < nr ? (acc ? C[r * ldc + j] : (bias ? bias[j] : 0.0f)) : 0.0f;
  micro<MR>(K, ap, B, tile, kNR, true, nullptr);
  for (int r = 0; r < MR; ++r) std::memcpy(C + r * ldc, tile + r * kNR, sizeof(float) * nr);
}

// MR rows of A (kb deep, row stride lda), packed k-major into ap, then run over
// the panels of columns [j0, j1): C[MR x (j1 - j0)] (+)= A * those panels.
template <int MR>
inline void tile_row(int kb, const float* A, size_t lda, float* ap, const float* Bp, size_t panel_stride, int j0,
                     int j1, float* C, size_t ldc, bool acc, const float* bias) {
  int k = 0;
  if constexpr (MR == 4)  // 4 k at a time: a 4x4 transpose in registers
    for (; k + 4 <= kb; k += 4) {
      __m128 r0 = _mm_loadu_ps(A + k), r1 = _mm_loadu_ps(A + lda + k), r2 = _mm_loadu_ps(A + 2 * lda + k),
             r3 = _mm_loadu_ps(A + 3 * lda + k);
      _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
      _mm_storeu_ps(ap + k * 4, r0), _mm_storeu_ps(ap + k * 4 + 4, r1);
      _mm_storeu_ps(ap + k * 4 + 8, r2), _mm_storeu_ps(ap + k * 4 + 12, r3);
    }
  for (; k < kb; ++k)
    for (int r = 0; r < MR; ++r) ap[k * MR + r] = A[r * lda + k];
  for (int j = j0; j < j1; j += kNR) {
    const int nr = std::min(kNR, j1 - j);
    const float* panel = Bp + (j / kNR) * panel_stride;
    const float* bj = bias ? bias + j : nullptr;
    if (nr == kNR)
      micro<MR>(kb, ap, panel, C + j, ldc, acc, bj);
    else
      micro_edge<MR>(kb, ap, panel, C + j, ldc, nr, acc, bj);
  }
}

// One row against P panels (a GEMV), `stride` floats apart: out[q * kNR + j] +=
// a[0..K) * panel q, all of K in one go, so the panels are read as P streams from
// end to end (one core's prefetchers serve several streams faster than one).
// Each column is one sum in k order whatever P is, so a column's value does not
// depend on how the columns were grouped (by the split over threads, say); the
// P * kNV sums are the independent chains.
template <int P>
inline void row_panels(int K, const float* a, const float* B, size_t stride, float* out) {
  V c[P][kNV];
  for (int q = 0; q < P; ++q)
    for (int v = 0; v < kNV; ++v) c[q][v] = V::load_unaligned(out + q * kNR + v * kW);
  for (int k = 0; k < K; ++k) {
    const V ak(a[k]);
    for (int q = 0; q < P; ++q)
      for (int v = 0; v < kNV; ++v) c[q][v] = madd(ak, V::load_unaligned(B + q * stride + k * kNR + v * kW), c[q][v]);
  }
  for (int q = 0; q < P; ++q)
    for (int v = 0; v < kNV; ++v) c[q][v].store_unaligned(out + q * kNR + v * kW);
}

// ---- exp ----------------------------------------------------------------------
// exp(x) for x <= 0: x = n*ln2 + t, |t| <= ln2/2, 2^n built from the exponent
// bits of a magic-biased float (only add/shift/bitcast: every op maps to one
// SIMD128 instruction; cvtps2dq would be emulated lane by lane), e^t from a
// degree-5 minimax polynomial (relative error ~1e-7). Inputs below ln(FLT_MIN)
// give 0, including -INFINITY; NaN gives NaN (it is not clamped: the final select
// alone replaces whatever the underflowing lanes computed).
inline V exp_nonpositive(V x) {
  const V log2e(0x1.715476p+0f), magic(0x1.8000FEp23f);
  const V minus_ln2_hi(-0x1.62E400p-1f), minus_ln2_lo(-0x1.7F7D1Cp-20f);
  const V c5(0x1.0F9F9Cp-7f), c4(0x1.573A1Ap-5f), c3(0x1.555A80p-3f), c2(0x1.FFFDC6p-2f),
      c1(0x1.FFFFF6p-1f);
  const V cutoff(-0x1.5D589Ep6f);  // ln(FLT_MIN) ~ -87.3365
  const auto underflow = x < cutoff;  // false for NaN, which flows through n and t
  V n = madd(x, log2e, magic);
  const V s = xsimd::bitwise_cast<V>(xsimd::bitwise_cast<VI>(n) << 23);
  n = n - magic;
  V t = madd(n, minus_ln2_hi, x);
  t = madd(n, minus_ln2_lo, t);
  V p = madd(c5, t, c4);
  p = madd(p, t, c3);
  p = madd(p, t, c2);
  p = madd(p, t, c1);
  t = t * s;
  const V f = madd(t, p, s);
  return xsimd::select(underflow, V(0.0f), f);
}

// 1 / (1 + exp(-x)) for any x, through exp of -|x| (which cannot overflow):
// e / (1 + e) for x < 0, 1 / (1 + e) otherwise. NaN gives NaN.
inline V sigmoid(V x) {
  const V one(1.0f);
  const V e = exp_nonpositive(-xsimd::abs(x));
  const V r = one / (one + e);
  return xsimd::select(x < V(0.0f), e * r, r);
}

inline float hmax(V v) {
  alignas(64) float tmp[kW];
  v.store_aligned(tmp);
  float m = tmp[0];
  for (int i = 1; i < kW; ++i) m = std::max(m, tmp[i]);
  return m;
}
}  // namespace

size_t packed_size(int K, int N) {
  return static_cast<size_t>(K) * ((static_cast<size_t>(N) + kNR - 1) / kNR * kNR);
}

void pack_panels(int K, int N, const float* b, size_t row_stride, size_t col_stride, float* out) {
  for (int j0 = 0; j0 < N; j0 += kNR) {
    const int nr = std::min(kNR, N - j0);
    float* panel = out + static_cast<size_t>(j0) * K;
    for (int k = 0; k < K; ++k) {
      float* dst = panel + static_cast<size_t>(k) * kNR;
      const float* src = b + k * row_stride + j0 * col_stride;
      int j = 0;
      if (col_stride == 1)
        for (; j < nr; ++j) dst[j] = src[j];
      else
        for (; j < nr; ++j) dst[j] = src[j * col_stride];
      for (; j < kNR; ++j) dst[j] = 0.0f;
    }
  }
}

void gemm(int M, int N, int K, const float* A, size_t lda, const float* Bp, size_t panel_stride,
          float* C, size_t ldc, bool accumulate, const float* bias) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // C = accumulate ? C : bias
    if (!accumulate)
      for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) C[i * ldc + j] = bias ? bias[j] : 0.0f;
    return;
  }
  if (M == 1) {  // a GEMV: groups of up to kGemvPanels panels, each end to end (row_panels)
    alignas(64) float t[kGemvPanels * kNR];
    for_each_gemv_group((N + kNR - 1) / kNR, [&](int first, int count, int step) {
      for (int q = 0; q < count; ++q) {
        const int j0 = (first + q * step) * kNR, n = std::min(kNR, N - j0);
        for (int j = 0; j < kNR; ++j) t[q * kNR + j] = j < n ? (accumulate ? C[j0 + j] : bias ? bias[j0 + j] : 0.0f) : 0.0f;
      }
      with_count<kGemvPanels>(count, [&](auto p) {
        row_panels<decltype(p)::value>(K, A, Bp + first * panel_stride, step * panel_stride, t);
      });
      for (int q = 0; q < count; ++q) {
        const int j0 = (first + q * step) * kNR;
        std::memcpy(C + j0, t + q * kNR, sizeof(float) * std::min(kNR, N - j0));
      }
    });
    return;
  }
  // Depth passes of kKC; in each, column blocks of kNB panels, whose slices of
  // the pass (kNB x kKC x 8 floats, 512 KB) stay in L2 while every tile of kMR
  // rows of A, packed (kMR x kKC floats, in L1), runs over them. Packing costs a
  // copy of A per column block; it saves the micro-kernel an add per row and k.
  alignas(64) float ap[kMR * kKC];
  for (int k0 = 0; k0 < K; k0 += kKC) {
    const int kb = std::min(kKC, K - k0);
    const bool acc = accumulate || k0 > 0;
    const float* bias0 = k0 == 0 ? bias : nullptr;
    const float* panels = Bp + static_cast<size_t>(k0) * kNR;
    for (int jb = 0; jb < N; jb += kNB * kNR) {
      const int j1 = std::min(N, jb + kNB * kNR);
      int i = 0;
      for (; i + kMR <= M; i += kMR)
        tile_row<kMR>(kb, A + i * lda + k0, lda, ap, panels, panel_stride, jb, j1, C + i * ldc, ldc, acc, bias0);
      if (i < M)  // the last 1 to kMR - 1 rows
        with_count<kMR - 1>(M - i, [&](auto mr) {
          tile_row<decltype(mr)::value>(kb, A + i * lda + k0, lda, ap, panels, panel_stride, jb, j1, C + i * ldc, ldc, acc,
                                        bias0);
        });
    }
  }
}

float max_row(const float* x, int n) {
  int i = 0;
  float m = -INFINITY;
  if (n >= 2 * kW) {
    V m0(-INFINITY), m1(-INFINITY);
    for (; i + 2 * kW <= n; i += 2 * kW) {
      m0 = xsimd::max(m0, V::load_unaligned(x + i));
      m1 = xsimd::max(m1, V::load_unaligned(x + i + kW));
    }
    m = hmax(xsimd::max(m0, m1));
  }
  for (; i < n; ++i) m = std::max(m, x[i]);
  return m;
}
bool all_finite(const float* x, size_t n) {
  // Any NaN or +-inf makes the sum NaN or +-inf, so a finite sum proves every x is
  // finite (a sum of finite values that overflows answers false: only a slower path).
  V s0(0.0f), s1(0.0f), s2(0.0f), s3(0.0f);
  size_t i = 0;
  for (; i + 4 * kW <= n; i += 4 * kW) {
    s0 += V::load_unaligned(x + i);
    s1 += V::load_unaligned(x + i + kW);
    s2 += V::load_unaligned(x + i + 2 * kW);
    s3 += V::load_unaligned(x + i + 3 * kW);
  }
  for (; i + kW <= n; i += kW) s0 += V::load_unaligned(x + i);
  float s = xsimd::hadd((s0 + s1) + (s2 + s3));
  for (; i < n; ++i) s += x[i];
  return std::isfinite(s);
}

bool has_nan(const float* x, int n) {
  bool nan = false;
  for (int i = 0; i < n; ++i) nan |= x[i] != x[i];
  return nan;
}


float exp_shift_sum(float* x, int n, float shift) {
  const V vs(shift);
  V s0(0.0f), s1(0.0f);
  int i = 0;
  for (; i + 2 * kW <= n; i += 2 * kW) {
    const V e0 = exp_nonpositive(V::load_unaligned(x + i) - vs);
    const V e1 = exp_nonpositive(V::load_unaligned(x + i + kW) - vs);
    e0.store_unaligned(x + i);
    e1.store_unaligned(x + i + kW);
    s0 += e0;
    s1 += e1;
  }
  for (; i + kW <= n; i += kW) {
    const V e = exp_nonpositive(V::load_unaligned(x + i) - vs);
    e.store_unaligned(x + i);
    s0 += e;
  }
  float sum = xsimd::hadd(s0 + s1);
  if (i < n) {  // scalar tail through one padded vector, so exp is the same function
    alignas(64) float tmp[kW];
    for (int j = 0; j < kW; ++j) tmp[j] = i + j < n ? x[i + j] - shift : -INFINITY;
    const V e = exp_nonpositive(V::load_aligned(tmp));
    e.store_aligned(tmp);
    for (int j = 0; i + j < n; ++j) {
      x[i + j] = tmp[j];
      sum += tmp[j];
    }
  }
  return sum;
}

void scale_row(float* x, int n, float s) {
  const V vs(s);
  int i = 0;
  for (; i + kW <= n; i += kW) (V::load_unaligned(x + i) * vs).store_unaligned(x + i);
  for (; i < n; ++i) x[i] *= s;
}

void dot_rows(int rows, int n, int D, const float* q, size_t ldq, const float* k, size_t ldk, float* S, size_t lds) {
  // kW keys at a time, one accumulator each, then one horizontal add of all kW. The
  // kW keys are m apart (j, j + m, ...): kW memory streams, which the hardware
  // prefetchers run ahead of concurrently; consecutive keys would be one short
  // stream, read at memory latency. Each key's sum is the same either way.
  const int m = n / kW;
  for (int r = 0; r < rows; ++r) {
    const float* qr = q + r * ldq;
    float* s = S + r * lds;
    for (int j = 0; j < m; ++j) {
      V acc[kW];
      for (int t = 0; t < kW; ++t) acc[t] = V(0.0f);
      int c = 0;
      for (; c + kW <= D; c += kW) {
        const V x = V::load_unaligned(qr + c);
        for (int t = 0; t < kW; ++t) acc[t] = madd(x, V::load_unaligned(k + (j + t * m) * ldk + c), acc[t]);
      }
      alignas(64) float sums[kW];
      xsimd::haddp(acc).store_aligned(sums);
      for (; c < D; ++c)
        for (int t = 0; t < kW; ++t) sums[t] += qr[c] * k[(j + t * m) * ldk + c];
      for (int t = 0; t < kW; ++t) s[j + t * m] = sums[t];
    }
    for (int j = kW * m; j < n; ++j) {
      const float* kj = k + j * ldk;
      V acc(0.0f);
      int c = 0;
      for (; c + kW <= D; c += kW) acc = madd(V::load_unaligned(qr + c), V::load_unaligned(kj + c), acc);
      float sum = xsimd::hadd(acc);
      for (; c < D; ++c) sum += qr[c] * kj[c];
      s[j] = sum;
    }
  }
}

namespace {
// O[c, c + U * kW) += sum_j p[j] * v[j * ldv + c ...]: U vectors of output kept in
// registers while every key adds its row.
template <int U>
inline void accumulate_chunk(int n, const float* p, const float* v, size_t ldv, float* o) {
  V acc[U];
  for (int u = 0; u < U; ++u) acc[u] = V::load_unaligned(o + u * kW);
  for (int j = 0; j < n; ++j) {
    const V pj(p[j]);
    const float* vj = v + j * ldv;
    for (int u = 0; u < U; ++u) acc[u] = madd(pj, V::load_unaligned(vj + u * kW), acc[u]);
  }
  for (int u = 0; u < U; ++u) acc[u].store_unaligned(o + u * kW);
}
}  // namespace

void accumulate_rows(int rows, int n, int Dv, const float* P, size_t ldp, const float* v, size_t ldv, float* O,
                     size_t ldo) {
  // Output columns in chunks of 8 vectors (a head of 64 in two passes over V), then
  // 4, then 1. Each column's sum runs over the keys in order, whatever its chunk.
  for (int r = 0; r < rows; ++r) {
    const float* p = P + r * ldp;
    float* o = O + r * ldo;
    int c = 0;
    for (; c + 8 * kW <= Dv; c += 8 * kW) accumulate_chunk<8>(n, p, v + c, ldv, o + c);
    for (; c + 4 * kW <= Dv; c += 4 * kW) accumulate_chunk<4>(n, p, v + c, ldv, o + c);
    for (; c + kW <= Dv; c += kW) accumulate_chunk<1>(n, p, v + c, ldv, o + c);
    for (; c < Dv; ++c) {
      float acc = o[c];
      for (int j = 0; j < n; ++j) acc += p[j] * v[j * ldv + c];
      o[c] = acc;
    }
  }
}

void add_row(float* x, const float* y, int n) {
  int i = 0;
  for (; i + kW <= n; i += kW) (V::load_unaligned(x + i) + V::load_unaligned(y + i)).store_unaligned(x + i);
  for (; i < n; ++i) x[i] += y[i];
}

void axpby_row(float* x, float s, const float* y, float t, int n) {
  const V vs(s), vt(t);
  int i = 0;
  for (; i + kW <= n; i += kW)
    madd(V::load_unaligned(x + i), vs, V::load_unaligned(y + i) * vt).store_unaligned(x + i);
  for (; i < n; ++i) x[i] = x[i] * s + y[i] * t;
}

static float row_sum(const float* x, int n) {
  V s0(0.0f), s1(0.0f);
  int i = 0;
  for (; i + 2 * kW <= n; i += 2 * kW) {
    s0 += V::load_unaligned(x + i);
    s1 += V::load_unaligned(x + i + kW);
  }
  float s = xsimd::hadd(s0 + s1);
  for (; i < n; ++i) s += x[i];
  return s;
}

// Sums of d = x - mean and of d^2. The first is not exactly 0 when mean is rounded:
// it corrects the mean (the corrected two-pass algorithm).
static void row_dev_sums(const float* x, int n, float mean, float* sum_d, float* sum_d2) {
  const V vm(mean);
  V s0(0.0f), s1(0.0f), q0(0.0f), q1(0.0f);
  int i = 0;
  for (; i + 2 * kW <= n; i += 2 * kW) {
    const V d0 = V::load_unaligned(x + i) - vm, d1 = V::load_unaligned(x + i + kW) - vm;
    s0 += d0, s1 += d1;
    q0 = madd(d0, d0, q0), q1 = madd(d1, d1, q1);
  }
  float s = xsimd::hadd(s0 + s1), q = xsimd::hadd(q0 + q1);
  for (; i < n; ++i) {
    const float d = x[i] - mean;
    s += d, q += d * d;
  }
  *sum_d = s, *sum_d2 = q;
}

void layer_norm_row(const float* x, int n, const float* gamma, const float* beta, float eps, float* out) {
  const float mean = row_sum(x, n) / n;
  float sd, sd2;
  row_dev_sums(x, n, mean, &sd, &sd2);
  const float c = sd / n;  // mean's rounding error
  const float inv = 1.0f / std::sqrt(std::max(sd2 / n - c * c, 0.0f) + eps);
  const V vm(mean), vc(c), vi(inv);
  int i = 0;
  for (; i + kW <= n; i += kW) {
    V y = (V::load_unaligned(x + i) - vm - vc) * vi;
    if (gamma && beta) y = madd(y, V::load_unaligned(gamma + i), V::load_unaligned(beta + i));
    else if (gamma) y *= V::load_unaligned(gamma + i);
    else if (beta) y += V::load_unaligned(beta + i);
    y.store_unaligned(out + i);
  }
  for (; i < n; ++i) out[i] = (x[i] - mean - c) * inv * (gamma ? gamma[i] : 1.0f) + (beta ? beta[i] : 0.0f);
}

// max(x, 0) that keeps NaN, as torch.relu does (SSE's and wasm's max would give 0 for it).
void relu_row(float* x, int n) {
  const V zero(0.0f);
  int i = 0;
  for (; i + kW <= n; i += kW) {
    const V v = V::load_unaligned(x + i);
    xsimd::select(v < zero, zero, v).store_unaligned(x + i);
  }
  for (; i < n; ++i) x[i] = x[i] < 0.0f ? 0.0f : x[i];
}

namespace {
// GELU's exact form, x (1 + erf(x / sqrt 2)) / 2, as x h with e = erfc(|x| / sqrt 2):
// h = 1 - e/2 for x >= 0, e/2 below. erfc from Abramowitz and Stegun 7.1.26 (absolute
// error below 1.5e-7), t = 1 / (1 + p z), (a1 t + ... + a5 t^5) exp(-z^2), with this
// file's exp: about 15 SIMD operations for four values, where std::erf took a call per
// value (a fifth of a BERT encoder's time at int8). Infinities and NaN as the plain
// formula gives them: +inf -> +inf, -inf -> -inf * 0 = NaN, NaN -> NaN; -0 stays -0.
inline V gelu(V x) {
  const V z = xsimd::abs(x) * V(0.70710678118654752f);
  const V t = V(1.0f) / madd(z, V(0.3275911f), V(1.0f));
  V p = madd(V(1.061405429f), t, V(-1.453152027f));
  p = madd(p, t, V(1.421413741f));
  p = madd(p, t, V(-0.284496736f));
  p = madd(p, t, V(0.254829592f));
  const V half_e = (V(0.5f) * p) * (t * exp_nonpositive(-(z * z)));
  return x * xsimd::select(x >= V(0.0f), V(1.0f) - half_e, half_e);
}

// x[i] = f(x[i]) over a row, kW at a time, the tail through one padded vector so
// that every element goes through the same function.
template <class F>
inline void map_row(float* x, int n, F f) {
  int i = 0;
  for (; i + kW <= n; i += kW) f(V::load_unaligned(x + i)).store_unaligned(x + i);
  if (i < n) {
    alignas(64) float tmp[kW] = {};
    for (int j = 0; i + j < n; ++j) tmp[j] = x[i + j];
    f(V::load_aligned(tmp)).store_aligned(tmp);
    for (int j = 0; i + j < n; ++j) x[i + j] = tmp[j];
  }
}

// x = x * sigmoid(arg(x)) over a row.
template <class Arg>
inline void times_sigmoid_row(float* x, int n, Arg arg) {
  map_row(x, n, [&](V v) { return v * sigmoid(arg(v)); });
}
}  // namespace

void gelu_row(float* x, int n) { map_row(x, n, gelu); }

void silu_row(float* x, int n) {
  times_sigmoid_row(x, n, [](V v) { return v; });
}

void gelu_tanh_row(float* x, int n) {
  // 0.5 (1 + tanh(u)) = sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3)
  const V a(2.0f * 0.79788456080286536f), b(2.0f * 0.79788456080286536f * 0.044715f);
  times_sigmoid_row(x, n, [&](V v) { return v * (a + b * v * v); });
}

void mul_row(float* out, const float* x, const float* y, int n) {
  int i = 0;
  for (; i + kW <= n; i += kW) (V::load_unaligned(x + i) * V::load_unaligned(y + i)).store_unaligned(out + i);
  for (; i < n; ++i) out[i] = x[i] * y[i];
}

void rms_norm_row(const float* x, int n, const float* gamma, float eps, float* out) {
  V q0(0.0f), q1(0.0f);
  int i = 0;
  for (; i + 2 * kW <= n; i += 2 * kW) {
    const V a = V::load_unaligned(x + i), b = V::load_unaligned(x + i + kW);
    q0 += a * a, q1 += b * b;
  }
  float q = xsimd::hadd(q0 + q1);
  for (; i < n; ++i) q += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(q / n + eps);
  const V vi(inv);
  i = 0;
  for (; i + kW <= n; i += kW) {
    V y = V::load_unaligned(x + i) * vi;
    if (gamma) y *= V::load_unaligned(gamma + i);
    y.store_unaligned(out + i);
  }
  for (; i < n; ++i) out[i] = x[i] * inv * (gamma ? gamma[i] : 1.0f);
}

}  // namespace kernels
}  // namespace mha
