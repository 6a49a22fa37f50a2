#include "quant.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "relaxed.h"

// The integer operations these kernels need have no xsimd 8.1 counterpart
// (widening, i32x4.dot_i16x8_s), so they are written against a few helpers with
// three definitions: WebAssembly SIMD128 (the builds that ship: each helper is
// one instruction; madd_f is relaxed_madd in relaxed-SIMD builds), SSE4.1 (the native build on x86, which the native tests run:
// the same operations lane for lane) and plain C++ elsewhere.
#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
#elif defined(__SSE4_1__)
#include <smmintrin.h>
#endif

namespace mha {
namespace kernels {

namespace {

#if defined(__wasm_simd128__)
using VI = v128_t;  // 16 int8, 8 int16 or 4 int32
using VF = v128_t;  // 4 float
inline VI load_i(const void* p) { return wasm_v128_load(p); }
inline void store_i(void* p, VI v) { wasm_v128_store(p, v); }
inline VI splat32(const void* p) { return wasm_v128_load32_splat(p); }
inline VI set_i32(int32_t x) { return wasm_i32x4_splat(x); }
inline VI zero_i() { return wasm_i32x4_splat(0); }
// 8 int8 at p sign-extended to int16: one instruction (v128.load8x8_s, x86's
// pmovsxbw from memory) where a load and two extends take four.
inline VI load_widen_i8(const int8_t* p) { return wasm_i16x8_load8x8(p); }
inline VI dot_i16(VI a, VI b) { return wasm_i32x4_dot_i16x8(a, b); }
inline VI add_i32(VI a, VI b) { return wasm_i32x4_add(a, b); }
inline VI sub_i32(VI a, VI b) { return wasm_i32x4_sub(a, b); }
inline VI max_i32(VI a, VI b) { return wasm_i32x4_max(a, b); }
inline VI and_i(VI a, VI b) { return wasm_v128_and(a, b); }
template <int N>
inline VI shl_i32(VI a) { return wasm_i32x4_shl(a, N); }
template <int N>
inline VI sra_i32(VI a) { return wasm_i32x4_shr(a, N); }
inline VI narrow_i16(VI a, VI b) { return wasm_i16x8_narrow_i32x4(a, b); }  // saturating
inline VF cvt_f32(VI a) { return wasm_f32x4_convert_i32x4(a); }
inline VF as_f(VI a) { return a; }
inline VI as_i(VF a) { return a; }
inline VF load_f(const float* p) { return wasm_v128_load(p); }
inline void store_f(float* p, VF v) { wasm_v128_store(p, v); }
inline VF set_f(float x) { return wasm_f32x4_splat(x); }
inline VF add_f(VF a, VF b) { return wasm_f32x4_add(a, b); }
inline VF mul_f(VF a, VF b) { return wasm_f32x4_mul(a, b); }
inline VI narrow_u8(VI a, VI b) { return wasm_u8x16_narrow_i16x8(a, b); }  // saturating
inline void store_lo64(void* p, VI v) { wasm_v128_store64_lane(p, v, 0); }
#ifdef MHA_RELAXED_MADD
#define MHA_I8_I7 1
static_assert(kI7Built, "quant.h and quant.cpp agree on the builds with kI7");
// acc + the four products of each lane's bytes, w signed, a in [0, 127].
inline VI rdot(VI w, VI a, VI acc) { return wasm_i32x4_relaxed_dot_i8x16_i7x16_add(w, a, acc); }
#endif
#ifdef MHA_RELAXED_MADD
inline VF madd_f(VF a, VF b, VF c) {
  typedef float f32x4 __attribute__((__vector_size__(16)));
  return (VF)__builtin_wasm_relaxed_madd_f32x4((f32x4)a, (f32x4)b, (f32x4)c);
}
#else
inline VF madd_f(VF a, VF b, VF c) { return add_f(mul_f(a, b), c); }
#endif
#elif defined(__SSE4_1__)
using VI = __m128i;
using VF = __m128;
inline VI load_i(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
inline void store_i(void* p, VI v) { _mm_storeu_si128(static_cast<__m128i*>(p), v); }
inline VI splat32(const void* p) {
  int32_t x;
  std::memcpy(&x, p, 4);
  return _mm_set1_epi32(x);
}
inline VI set_i32(int32_t x) { return _mm_set1_epi32(x); }
inline VI zero_i() { return _mm_setzero_si128(); }
inline VI load_widen_i8(const int8_t* p) { return _mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))); }
inline VI dot_i16(VI a, VI b) { return _mm_madd_epi16(a, b); }
inline VI add_i32(VI a, VI b) { return _mm_add_epi32(a, b); }
inline VI sub_i32(VI a, VI b) { return _mm_sub_epi32(a, b); }
inline VI max_i32(VI a, VI b) { return _mm_max_epi32(a, b); }
inline VI and_i(VI a, VI b) { return _mm_and_si128(a, b); }
template <int N>
inline VI shl_i32(VI a) { return _mm_slli_epi32(a, N); }
template <int N>
inline VI sra_i32(VI a) { return _mm_srai_epi32(a, N); }
inline VI narrow_i16(VI a, VI b) { return _mm_packs_epi32(a, b); }
inline VF cvt_f32(VI a) { return _mm_cvtepi32_ps(a); }
inline VF as_f(VI a) { return _mm_castsi128_ps(a); }
inline VI as_i(VF a) { return _mm_castps_si128(a); }
inline VF load_f(const float* p) { return _mm_loadu_ps(p); }
inline void store_f(float* p, VF v) { _mm_storeu_ps(p, v); }
inline VF set_f(float x) { return _mm_set1_ps(x); }
inline VF add_f(VF a, VF b) { return _mm_add_ps(a, b); }
inline VF mul_f(VF a, VF b) { return _mm_mul_ps(a, b); }
inline VF madd_f(VF a, VF b, VF c) { return add_f(mul_f(a, b), c); }
inline VI narrow_u8(VI a, VI b) { return _mm_packus_epi16(a, b); }
inline void store_lo64(void* p, VI v) { _mm_storel_epi64(static_cast<__m128i*>(p), v); }
#define MHA_I8_I7 1
// The relaxed dot as engines without a dot instruction run it (maddubs's pair sums
// cannot saturate here: |a w| <= 127 * 128).
inline VI rdot(VI w, VI a, VI acc) { return _mm_add_epi32(acc, _mm_madd_epi16(_mm_maddubs_epi16(a, w), _mm_set1_epi16(1))); }
#else
// Portable lanes: 16 bytes read as int8, int16 or int32 through memcpy.
struct VI {
  int32_t v[4];
};
struct VF {
  float v[4];
};
template <class T, class S>
inline T lanes(const S& s) {
  T t;
  std::memcpy(&t, &s, sizeof t);
  return t;
}
struct I16 { int16_t v[8]; };
inline VI load_i(const void* p) { VI r; std::memcpy(&r, p, 16); return r; }
inline void store_i(void* p, VI v) { std::memcpy(p, &v, 16); }
inline VI splat32(const void* p) { int32_t x; std::memcpy(&x, p, 4); return {{x, x, x, x}}; }
inline VI set_i32(int32_t x) { return {{x, x, x, x}}; }
inline VI zero_i() { return set_i32(0); }
inline VI load_widen_i8(const int8_t* p) {
  I16 h;
  for (int i = 0; i < 8; ++i) h.v[i] = p[i];
  return lanes<VI>(h);
}
inline VI dot_i16(VI a, VI b) {
  const I16 x = lanes<I16>(a), y = lanes<I16>(b);
  VI r;
  for (int i = 0; i < 4; ++i) r.v[i] = int32_t(x.v[2 * i]) * y.v[2 * i] + int32_t(x.v[2 * i + 1]) * y.v[2 * i + 1];
  return r;
}
template <class F>
inline VI map2(VI a, VI b, F f) { VI r; for (int i = 0; i < 4; ++i) r.v[i] = f(a.v[i], b.v[i]); return r; }
inline VI add_i32(VI a, VI b) { return map2(a, b, [](int32_t x, int32_t y) { return int32_t(uint32_t(x) + uint32_t(y)); }); }
inline VI sub_i32(VI a, VI b) { return map2(a, b, [](int32_t x, int32_t y) { return int32_t(uint32_t(x) - uint32_t(y)); }); }
inline VI max_i32(VI a, VI b) { return map2(a, b, [](int32_t x, int32_t y) { return std::max(x, y); }); }
inline VI and_i(VI a, VI b) { return map2(a, b, [](int32_t x, int32_t y) { return x & y; }); }
template <int N>
inline VI shl_i32(VI a) { VI r; for (int i = 0; i < 4; ++i) r.v[i] = int32_t(uint32_t(a.v[i]) << N); return r; }
template <int N>  // arithmetic: the sign fills in (division rounds toward zero, so not a / 2^N)
inline VI sra_i32(VI a) {
  VI r;
  for (int i = 0; i < 4; ++i) r.v[i] = a.v[i] < 0 ? ~int32_t(~uint32_t(a.v[i]) >> N) : int32_t(uint32_t(a.v[i]) >> N);
  return r;
}
inline VI narrow_i16(VI a, VI b) {
  I16 h;
  for (int i = 0; i < 4; ++i) {
    h.v[i] = int16_t(std::clamp(a.v[i], -32768, 32767));
    h.v[i + 4] = int16_t(std::clamp(b.v[i], -32768, 32767));
  }
  return lanes<VI>(h);
}
inline VI narrow_u8(VI a, VI b) {
  const I16 x = lanes<I16>(a), y = lanes<I16>(b);
  uint8_t u[16];
  for (int i = 0; i < 8; ++i) u[i] = uint8_t(std::clamp<int>(x.v[i], 0, 255)), u[i + 8] = uint8_t(std::clamp<int>(y.v[i], 0, 255));
  return lanes<VI>(u);
}
inline void store_lo64(void* p, VI v) { std::memcpy(p, &v, 8); }
#define MHA_I8_I7 1
inline VI rdot(VI w, VI a, VI acc) {
  int8_t x[16];
  uint8_t y[16];
  std::memcpy(x, &w, 16), std::memcpy(y, &a, 16);
  for (int i = 0; i < 4; ++i)
    for (int t = 4 * i; t < 4 * i + 4; ++t) acc.v[i] = int32_t(uint32_t(acc.v[i]) + uint32_t(x[t] * y[t]));
  return acc;
}
inline VF cvt_f32(VI a) { return {{float(a.v[0]), float(a.v[1]), float(a.v[2]), float(a.v[3])}}; }
inline VF as_f(VI a) { return lanes<VF>(a); }
inline VI as_i(VF a) { return lanes<VI>(a); }
inline VF load_f(const float* p) { VF r; std::memcpy(&r, p, 16); return r; }
inline void store_f(float* p, VF v) { std::memcpy(p, &v, 16); }
inline VF set_f(float x) { return {{x, x, x, x}}; }
inline VF add_f(VF a, VF b) { VF r; for (int i = 0; i < 4; ++i) r.v[i] = a.v[i] + b.v[i]; return r; }
inline VF mul_f(VF a, VF b) { VF r; for (int i = 0; i < 4; ++i) r.v[i] = a.v[i] * b.v[i]; return r; }
inline VF madd_f(VF a, VF b, VF c) { return add_f(mul_f(a, b), c); }
#endif

static_assert(kNR == 8, "the int8 and float16 panels are two 4-lane vectors wide");
static_assert(kMR == 4, "tiles of 1 to 4 rows");

// Nearest integer (ties to even) of each lane, for |x| < 2^22: adding 1.5 * 2^23
// rounds x into the low mantissa bits (one add and one subtract: the conversion
// instructions truncate, or are emulated lane by lane).
inline VI round_i32(VF x) {
  const VF magic = set_f(12582912.0f);
  return sub_i32(as_i(add_f(x, magic)), as_i(magic));
}

inline int32_t hmax_i32(VI v) {
  alignas(16) int32_t t[4];
  store_i(t, v);
  return std::max(std::max(t[0], t[1]), std::max(t[2], t[3]));
}

// ---- float16 -----------------------------------------------------------------
// 8 halves to 8 floats: columns 0-3 to lo, 4-7 to hi. A panel row stores column j
// in the low half of 32-bit lane j and column j + 4 in its high half
// (f16_position). Shifted right by 3 with the sign filling in, a half h =
// s|eeeee|m (10 bits) in bits 16-31 becomes s|sss|eeeee|m|... in bits 31-13:
// masking the three copies of the sign and the 13 bits below the mantissa (lane
// j's other half, for hi) leaves the float with exponent e and mantissa m, that
// is the half's value times 2^-112 (for e = 0 too: a subnormal half becomes a
// subnormal float), and the multiplication by 2^112 is exact. Seven operations
// for 8 halves (the low halves are shifted into the high ones first), where
// widening each 4 to 32 bits took nine. (e = 31, infinity or NaN, is never stored.)
// halves_to_scaled stops before the multiplication: the values times 2^-112.
inline void halves_to_scaled(const uint16_t* p, VF& lo, VF& hi) {
  const VI h = load_i(p), mask = set_i32(static_cast<int32_t>(0x8FFFE000u));
  lo = as_f(and_i(sra_i32<3>(shl_i32<16>(h)), mask));
  hi = as_f(and_i(sra_i32<3>(h), mask));
}
inline void halves_to_floats(const uint16_t* p, VF& lo, VF& hi) {
  const VF k = set_f(0x1p112f);
  halves_to_scaled(p, lo, hi);
  lo = mul_f(lo, k);
  hi = mul_f(hi, k);
}

// acc[MR x 8] = init + A[MR x K] * B (one float16 panel), converting the halves
// in registers: for tiles of at most kMR rows (a GEMV reads each weight once).
template <int MR>
inline void dot_f16(int K, const float* A, size_t lda, const uint16_t* B, const float* init, float* acc) {
  VF c[MR][2];
  for (int r = 0; r < MR; ++r) c[r][0] = load_f(init), c[r][1] = load_f(init + 4);
  for (int k = 0; k < K; ++k) {
    VF b0, b1;
    halves_to_floats(B + static_cast<size_t>(k) * kNR, b0, b1);
    for (int r = 0; r < MR; ++r) {
      const VF a = set_f(A[r * lda + k]);
      c[r][0] = madd_f(a, b0, c[r][0]);
      c[r][1] = madd_f(a, b1, c[r][1]);
    }
  }
  for (int r = 0; r < MR; ++r) store_f(acc + r * kNR, c[r][0]), store_f(acc + r * kNR + 4, c[r][1]);
}

// One row (a GEMV) against P float16 panels at once, `stride` halves apart (P
// memory streams): acc[P x 8] = init + a[0..K) * B. kScaled: a[k] * 2^112 times
// the halves' values * 2^-112 (halves_to_scaled), one multiplication per k for
// all P panels instead of two per panel; both scalings are exact while |a[k]| <
// 2^15 (a[k] * 2^112 stays finite), so the products and the sums are the same
// floats as a[k] times the halves' values.
template <int P, bool kScaled>
inline void dot_f16_panels(int K, const float* a, const uint16_t* B, size_t stride, const float* init, float* acc) {
  VF c[P][2];
  for (int q = 0; q < P; ++q) c[q][0] = load_f(init + q * kNR), c[q][1] = load_f(init + q * kNR + 4);
  for (int k = 0; k < K; ++k) {
    const VF ak = kScaled ? mul_f(set_f(a[k]), set_f(0x1p112f)) : set_f(a[k]);
    for (int q = 0; q < P; ++q) {
      VF b0, b1;
      if constexpr (kScaled)
        halves_to_scaled(B + q * stride + static_cast<size_t>(k) * kNR, b0, b1);
      else
        halves_to_floats(B + q * stride + static_cast<size_t>(k) * kNR, b0, b1);
      c[q][0] = madd_f(ak, b0, c[q][0]);
      c[q][1] = madd_f(ak, b1, c[q][1]);
    }
  }
  for (int q = 0; q < P; ++q) store_f(acc + q * kNR, c[q][0]), store_f(acc + q * kNR + 4, c[q][1]);
}

// Tiles of M <= kMR rows: C[M x N] = bias + A * B, panel by panel (one row: up
// to kGemvPanels panels at a time).
void rows_f16(int M, int K, const float* A, size_t lda, const uint16_t* Bp, size_t panel_stride, int N, float* C,
              size_t ldc, const float* bias) {
  alignas(16) float init[kGemvPanels * kNR], acc[kGemvPanels * kNR];
  if (M == 1) {
    // Scaled unless some |a[k]| >= 2^15 (std::max skips NaNs, which stay NaN either way).
    float amax = 0.0f;
    for (int k = 0; k < K; ++k) amax = std::max(amax, std::fabs(A[k]));
    const bool scaled = amax < 0x1p15f;
    for_each_gemv_group((N + kNR - 1) / kNR, [&](int first, int count, int step) {
      for (int q = 0; q < count; ++q) {
        const int j0 = (first + q * step) * kNR, n = std::min(kNR, N - j0);
        for (int j = 0; j < kNR; ++j) init[q * kNR + j] = bias && j < n ? bias[j0 + j] : 0.0f;
      }
      with_count<kGemvPanels>(count, [&](auto p) {
        const uint16_t* B = Bp + first * panel_stride;
        if (scaled)
          dot_f16_panels<decltype(p)::value, true>(K, A, B, step * panel_stride, init, acc);
        else
          dot_f16_panels<decltype(p)::value, false>(K, A, B, step * panel_stride, init, acc);
      });
      for (int q = 0; q < count; ++q) {
        const int j0 = (first + q * step) * kNR;
        std::copy(acc + q * kNR, acc + q * kNR + std::min(kNR, N - j0), C + j0);
      }
    });
    return;
  }
  for (int j0 = 0; j0 < N; j0 += kNR) {
    const int nr = std::min(kNR, N - j0);
    for (int j = 0; j < kNR; ++j) init[j] = bias && j < nr ? bias[j0 + j] : 0.0f;
    const uint16_t* panel = Bp + (j0 / kNR) * panel_stride;
    with_count<kMR>(M, [&](auto mr) { dot_f16<decltype(mr)::value>(K, A, lda, panel, init, acc); });
    for (int r = 0; r < M; ++r) std::copy(acc + r * kNR, acc + r * kNR + nr, C + r * ldc + j0);
  }
}

// ---- int8 ----------------------------------------------------------------------
// One pass over kp k-pairs for MR rows of int16 activations and one int8 panel
// slice: the MR x 8 int32 sums, into acc. The activations are a tile's, k-pair
// major: the pair (a[2p], a[2p+1]) of row r at aq + (p * MR + r) * 2, so that a
// k-pair's MR splats are one pointer plus constant offsets; both pointers are
// bumped once per k-pair (in WebAssembly every computed address is an
// instruction of its own).
template <int MR>
inline void dot_i8(int kp, const int16_t* aq, const int8_t* B, int32_t* acc) {
  const int8_t* const end = B + 16 * kp;
  if constexpr (MR == 1) {
    // One row: two k-pairs a step into four accumulators, so the adds do not wait
    // on each other (integer sums: the order changes nothing).
    VI c0 = zero_i(), c1 = zero_i(), c2 = zero_i(), c3 = zero_i();
    for (; end - B >= 32; B += 32, aq += 4) {
      const VI a0 = splat32(aq), a1 = splat32(aq + 2);
      c0 = add_i32(c0, dot_i16(a0, load_widen_i8(B)));
      c1 = add_i32(c1, dot_i16(a0, load_widen_i8(B + 8)));
      c2 = add_i32(c2, dot_i16(a1, load_widen_i8(B + 16)));
      c3 = add_i32(c3, dot_i16(a1, load_widen_i8(B + 24)));
    }
    if (B != end) {
      const VI a = splat32(aq);
      c0 = add_i32(c0, dot_i16(a, load_widen_i8(B)));
      c1 = add_i32(c1, dot_i16(a, load_widen_i8(B + 8)));
    }
    store_i(acc, add_i32(c0, c2)), store_i(acc + 4, add_i32(c1, c3));
    return;
  }
  VI c[MR][2];
  for (int r = 0; r < MR; ++r) c[r][0] = c[r][1] = zero_i();
  for (; B != end; B += 16, aq += 2 * MR) {
    // Columns 0-3 and 4-7, both k of the pair.
    const VI w0 = load_widen_i8(B), w1 = load_widen_i8(B + 8);
    for (int r = 0; r < MR; ++r) {
      const VI a = splat32(aq + 2 * r);  // (a[2p], a[2p+1]) in every lane
      c[r][0] = add_i32(c[r][0], dot_i16(a, w0));
      c[r][1] = add_i32(c[r][1], dot_i16(a, w1));
    }
  }
  for (int r = 0; r < MR; ++r) store_i(acc + r * kNR, c[r][0]), store_i(acc + r * kNR + 4, c[r][1]);
}

// One row (a GEMV) against P panels at once, `stride` int8 apart: P memory streams
// rather than one, which a core's prefetchers serve faster than a single stream
// (and one splat of the activations serves all P). acc: P x 8 int32.
template <int P>
inline void dot_i8_panels(int kp, const int16_t* aq, const int8_t* B, size_t stride, int32_t* acc) {
  VI c[P][2];
  for (int q = 0; q < P; ++q) c[q][0] = c[q][1] = zero_i();
  for (int p = 0; p < kp; ++p) {
    const VI a = splat32(aq + 2 * p);
    for (int q = 0; q < P; ++q) {
      const int8_t* w = B + q * stride + 16 * p;
      c[q][0] = add_i32(c[q][0], dot_i16(a, load_widen_i8(w)));
      c[q][1] = add_i32(c[q][1], dot_i16(a, load_widen_i8(w + 8)));
    }
  }
  for (int q = 0; q < P; ++q) store_i(acc + q * kNR, c[q][0]), store_i(acc + q * kNR + 4, c[q][1]);
}

// dot_i8 for a tile of mr (1 to kMR) rows.
inline void dot_i8_rows(int mr, int kp, const int16_t* aq, const int8_t* B, int32_t* acc) {
  with_count<kMR>(mr, [&](auto m) { dot_i8<decltype(m)::value>(kp, aq, B, acc); });
}

#ifdef MHA_I8_I7
// kI7: one pass over kq k-quads for R (1 or 2) rows of hi/lo activations (row r's
// quad t at a + t * astride + 8r) and one panel slice, with the pass's column sums
// cs: the R x 8 int32 sums of q * w, into acc. Not inlined: its twelve vectors need
// the registers to themselves (inlined into its callers, V8 spilled them in the loop).
template <int R>
[[gnu::noinline]] void dot_i7(int kq, const uint8_t* a, size_t astride, const int8_t* B, const int32_t* cs, int32_t* acc) {
  VI h[R][2], l[R][2];
  for (int r = 0; r < R; ++r) h[r][0] = h[r][1] = l[r][0] = l[r][1] = zero_i();
  for (const int8_t* const end = B + 32 * kq; B != end; B += 32, a += astride) {
    const VI w0 = load_i(B), w1 = load_i(B + 16);
    for (int r = 0; r < R; ++r) {
      const VI ah = splat32(a + 8 * r), al = splat32(a + 8 * r + 4);
      h[r][0] = rdot(w0, ah, h[r][0]), h[r][1] = rdot(w1, ah, h[r][1]);
      l[r][0] = rdot(w0, al, l[r][0]), l[r][1] = rdot(w1, al, l[r][1]);
    }
  }
  const VI c0 = shl_i32<13>(load_i(cs)), c1 = shl_i32<13>(load_i(cs + 4));
  for (int r = 0; r < R; ++r) {
    store_i(acc + r * kNR, sub_i32(add_i32(shl_i32<7>(h[r][0]), l[r][0]), c0));
    store_i(acc + r * kNR + 4, sub_i32(add_i32(shl_i32<7>(h[r][1]), l[r][1]), c1));
  }
}

// dot_i7 for a tile of mr (1 to kMR) rows, two at a time (four rows' sums would not
// fit in the registers).
inline void dot_i7_rows(int mr, int kq, const uint8_t* a, const int8_t* B, const int32_t* cs, int32_t* acc) {
  const size_t st = 8 * static_cast<size_t>(mr);
  for (int r = 0; r < mr; r += 2) {
    if (mr - r >= 2)
      dot_i7<2>(kq, a + 8 * r, st, B, cs, acc + r * kNR);
    else
      dot_i7<1>(kq, a + 8 * r, st, B, cs, acc + r * kNR);
  }
}

// One row against P (1 or 2) panels at once, `stride` bytes apart, as dot_i8_panels;
// each panel's column sums for this pass at cs_at bytes from its slice. Not inlined,
// as dot_i7.
template <int P>
[[gnu::noinline]] void dot_i7_panels(int kq, const uint8_t* a, const int8_t* B, size_t stride, size_t cs_at, int32_t* acc) {
  VI h[P][2], l[P][2];
  for (int q = 0; q < P; ++q) h[q][0] = h[q][1] = l[q][0] = l[q][1] = zero_i();
  for (int t = 0; t < kq; ++t) {
    const VI ah = splat32(a + 8 * t), al = splat32(a + 8 * t + 4);
    for (int q = 0; q < P; ++q) {
      const int8_t* w = B + q * stride + 32 * t;
      const VI w0 = load_i(w), w1 = load_i(w + 16);
      h[q][0] = rdot(w0, ah, h[q][0]), h[q][1] = rdot(w1, ah, h[q][1]);
      l[q][0] = rdot(w0, al, l[q][0]), l[q][1] = rdot(w1, al, l[q][1]);
    }
  }
  for (int q = 0; q < P; ++q) {
    const int32_t* cs = reinterpret_cast<const int32_t*>(B + q * stride + cs_at);
    store_i(acc + q * kNR, sub_i32(add_i32(shl_i32<7>(h[q][0]), l[q][0]), shl_i32<13>(load_i(cs))));
    store_i(acc + q * kNR + 4, sub_i32(add_i32(shl_i32<7>(h[q][1]), l[q][1]), shl_i32<13>(load_i(cs + 4))));
  }
}
#endif

// A pass's int32 sums for a tile of mr rows against one panel slice, in layout d:
// aq the tile's activations, cs the pass's column sums (kI7).
inline void dot_tile(I8Dot d, int mr, int kb, const int16_t* aq, const int8_t* B, const int8_t* cs, int32_t* acc) {
#ifdef MHA_I8_I7
  if (d == I8Dot::kI7)
    return dot_i7_rows(mr, (kb + 3) / 4, reinterpret_cast<const uint8_t*>(aq), B, reinterpret_cast<const int32_t*>(cs), acc);
#else
  (void)d, (void)cs;
#endif
  dot_i8_rows(mr, (kb + 1) / 2, aq, B, acc);
}

// C[rows x nr] (+)= acc * row_scale * row_shift (first: C is not read); after the
// last pass C = C * col_scale + bias (null: 0). Shared by every tile height (not
// inlined: it is once per tile and pass, the sums are once per k-pair).
[[gnu::noinline]] void store_i8(const int32_t* acc, int rows, const float* row_scale, const float* row_shift,
                                const float* col_scale, const float* bias, float* C, size_t ldc, int nr, bool first,
                                bool last) {
  alignas(16) float cs[kNR] = {0}, b[kNR] = {0}, t[kNR];
  if (last) {
    std::copy(col_scale, col_scale + kNR, cs);
    if (bias) std::copy(bias, bias + nr, b);
  }
  for (int r = 0; r < rows; ++r) {
    // A partial panel goes through t, so nothing past column nr is read or written.
    float* row = nr == kNR ? C + r * ldc : t;
    if (nr < kNR)
      for (int j = 0; j < kNR; ++j) t[j] = !first && j < nr ? C[r * ldc + j] : 0.0f;
    const VF s = set_f(row_scale[r]), sh = set_f(row_shift[r]);
    VF y0 = mul_f(mul_f(cvt_f32(load_i(acc + r * kNR)), s), sh), y1 = mul_f(mul_f(cvt_f32(load_i(acc + r * kNR + 4)), s), sh);
    if (!first) y0 = add_f(y0, load_f(row)), y1 = add_f(y1, load_f(row + 4));
    if (last) y0 = add_f(mul_f(y0, load_f(cs)), load_f(b)), y1 = add_f(mul_f(y1, load_f(cs + 4)), load_f(b + 4));
    store_f(row, y0);
    store_f(row + 4, y1);
    if (nr < kNR) std::copy(t, t + nr, C + r * ldc);
  }
}

void fill_bias(int M, int N, float* C, size_t ldc, const float* bias) {
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) C[i * ldc + j] = bias ? bias[j] : 0.0f;
}

}  // namespace

uint16_t half_from_float(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7FFFFFFFu;
  if (x > 0x7F800000u) return sign | 0x7E00u;   // NaN
  if (x >= 0x477FF000u) return sign | 0x7C00u;  // >= 65520 rounds to infinity
  if (x >= 0x38800000u) {                       // >= 2^-14: a normal half
    const uint32_t h = x - 0x38000000u;         // exponent rebiased from 127 to 15
    return sign | static_cast<uint16_t>((h + 0x0FFFu + ((h >> 13) & 1u)) >> 13);  // nearest even
  }
  float a;
  std::memcpy(&a, &x, 4);
  return sign | static_cast<uint16_t>(std::nearbyint(a * 0x1p24f));  // subnormal: units of 2^-24
}

void pack_row_f16(const float* w, int K, uint16_t* panel, int pos) {
  uint16_t* p = panel + pos;  // value k at p[k * kNR]
  int k = 0;
#if defined(__wasm_simd128__)
  // half_from_float's two finite cases, both computed and one selected per lane: a normal half
  // (the exponent rebiased, rounded to nearest even on the 13 dropped bits), or a subnormal one
  // (|x| * 2^24 rounded to nearest even).
  const v128_t abs_mask = wasm_i32x4_splat(0x7FFFFFFF), bias = wasm_i32x4_splat(0x38000000), round = wasm_i32x4_splat(0x0FFF);
  const v128_t one = wasm_i32x4_splat(1), sign_bit = wasm_i32x4_splat(0x8000), normal = wasm_i32x4_splat(0x38800000);
  const v128_t to_units = wasm_f32x4_splat(0x1p24f);
  const auto halves = [&](v128_t x) {
    const v128_t sign = wasm_v128_and(wasm_u32x4_shr(x, 16), sign_bit), a = wasm_v128_and(x, abs_mask);
    const v128_t h = wasm_i32x4_sub(a, bias);
    const v128_t n = wasm_u32x4_shr(wasm_i32x4_add(wasm_i32x4_add(h, round), wasm_v128_and(wasm_u32x4_shr(h, 13), one)), 13);
    const v128_t sub = wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_nearest(wasm_f32x4_mul(a, to_units)));
    return wasm_v128_or(wasm_v128_bitselect(n, sub, wasm_i32x4_ge(a, normal)), sign);
  };
  for (; k + 8 <= K; k += 8) {
    const v128_t h = wasm_u16x8_narrow_i32x4(halves(wasm_v128_load(w + k)), halves(wasm_v128_load(w + k + 4)));
    uint16_t* at = p + static_cast<size_t>(k) * kNR;
    wasm_v128_store16_lane(at, h, 0);
    wasm_v128_store16_lane(at + kNR, h, 1);
    wasm_v128_store16_lane(at + 2 * kNR, h, 2);
    wasm_v128_store16_lane(at + 3 * kNR, h, 3);
    wasm_v128_store16_lane(at + 4 * kNR, h, 4);
    wasm_v128_store16_lane(at + 5 * kNR, h, 5);
    wasm_v128_store16_lane(at + 6 * kNR, h, 6);
    wasm_v128_store16_lane(at + 7 * kNR, h, 7);
  }
#elif defined(__SSE4_1__)
  const __m128i abs_mask = _mm_set1_epi32(0x7FFFFFFF), bias = _mm_set1_epi32(0x38000000), round = _mm_set1_epi32(0x0FFF);
  const __m128i one = _mm_set1_epi32(1), sign_bit = _mm_set1_epi32(0x8000), below_normal = _mm_set1_epi32(0x38800000 - 1);
  const __m128 to_units = _mm_set1_ps(0x1p24f);
  const auto halves = [&](__m128i x) {
    const __m128i sign = _mm_and_si128(_mm_srli_epi32(x, 16), sign_bit), a = _mm_and_si128(x, abs_mask);
    const __m128i h = _mm_sub_epi32(a, bias);
    const __m128i n = _mm_srli_epi32(_mm_add_epi32(_mm_add_epi32(h, round), _mm_and_si128(_mm_srli_epi32(h, 13), one)), 13);
    const __m128i sub = _mm_cvttps_epi32(_mm_round_ps(_mm_mul_ps(_mm_castsi128_ps(a), to_units), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    return _mm_or_si128(_mm_blendv_epi8(sub, n, _mm_cmpgt_epi32(a, below_normal)), sign);
  };
  for (; k + 8 <= K; k += 8) {
    const __m128i h = _mm_packus_epi32(halves(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + k))),
                                       halves(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + k + 4))));
    alignas(16) uint16_t eight[8];
    _mm_store_si128(reinterpret_cast<__m128i*>(eight), h);
    for (int i = 0; i < 8; ++i) p[static_cast<size_t>(k + i) * kNR] = eight[i];
  }
#endif
  for (; k < K; ++k) p[static_cast<size_t>(k) * kNR] = half_from_float(w[k]);
}

float float_from_half(uint16_t h) {
  const uint32_t e = (h >> 10) & 31u, m = h & 0x3FFu;
  float v;
  if (e == 31) {
    const uint32_t bits = 0x7F800000u | (m << 13);
    std::memcpy(&v, &bits, 4);
  } else {
    v = std::ldexp(static_cast<float>(e ? (m | 0x400u) : m), (e ? static_cast<int>(e) : 1) - 25);
  }
  return h & 0x8000u ? -v : v;
}

void pack_row_i8(const float* w, int K, float scale, int8_t* panel, int j, I8Dot d) {
  int k = 0;
  // kI16: pair k / 2 at p + (k / 2) * 2 * kNR; kI7: quad k / 4 at p + (k / 4) * 32.
  const bool quads = kI7Built && d == I8Dot::kI7;
  int8_t* p = panel + i8_at(0, j, d);
  if (scale != 0.0f) {
#if defined(__wasm_simd128__)
    const v128_t sd = wasm_f64x2_splat(scale), lo = wasm_f64x2_splat(-127.0), hi = wasm_f64x2_splat(127.0);
    // Lanes 0 and 1 of f: their q in int32 lanes 0 and 1 (finite values: pmin/pmax clamp them).
    const auto q2 = [&](v128_t f) {
      const v128_t d = wasm_f64x2_nearest(wasm_f64x2_div(wasm_f64x2_promote_low_f32x4(f), sd));
      return wasm_i32x4_trunc_sat_f64x2_zero(wasm_f64x2_pmin(wasm_f64x2_pmax(d, lo), hi));
    };
    for (; k + 8 <= K; k += 8) {
      const v128_t a = wasm_v128_load(w + k), b = wasm_v128_load(w + k + 4);
      const v128_t q4a = wasm_i64x2_shuffle(q2(a), q2(wasm_i64x2_shuffle(a, a, 1, 1)), 0, 2);
      const v128_t q4b = wasm_i64x2_shuffle(q2(b), q2(wasm_i64x2_shuffle(b, b, 1, 1)), 0, 2);
      const v128_t q16 = wasm_i16x8_narrow_i32x4(q4a, q4b);
      const v128_t q8 = wasm_i8x16_narrow_i16x8(q16, q16);  // q0..q7 in bytes 0..7: four k-pairs
      if (quads) {
        wasm_v128_store32_lane(p + (k / 4) * 32, q8, 0);
        wasm_v128_store32_lane(p + (k / 4) * 32 + 32, q8, 1);
        continue;
      }
      int8_t* at = p + (k / 2) * 2 * kNR;
      wasm_v128_store16_lane(at, q8, 0);
      wasm_v128_store16_lane(at + 2 * kNR, q8, 1);
      wasm_v128_store16_lane(at + 4 * kNR, q8, 2);
      wasm_v128_store16_lane(at + 6 * kNR, q8, 3);
    }
#elif defined(__SSE4_1__)
    const __m128d sd = _mm_set1_pd(scale), lo = _mm_set1_pd(-127.0), hi = _mm_set1_pd(127.0);
    const auto q2 = [&](__m128 f) {
      const __m128d d = _mm_round_pd(_mm_div_pd(_mm_cvtps_pd(f), sd), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      return _mm_cvttpd_epi32(_mm_min_pd(_mm_max_pd(d, lo), hi));
    };
    for (; k + 8 <= K; k += 8) {
      const __m128 a = _mm_loadu_ps(w + k), b = _mm_loadu_ps(w + k + 4);
      const __m128i q4a = _mm_unpacklo_epi64(q2(a), q2(_mm_movehl_ps(a, a)));
      const __m128i q4b = _mm_unpacklo_epi64(q2(b), q2(_mm_movehl_ps(b, b)));
      const __m128i q16 = _mm_packs_epi32(q4a, q4b);
      const __m128i q8 = _mm_packs_epi16(q16, q16);
      if (quads) {
        const int64_t eight = _mm_cvtsi128_si64(q8);
        std::memcpy(p + (k / 4) * 32, &eight, 4);
        std::memcpy(p + (k / 4) * 32 + 32, reinterpret_cast<const char*>(&eight) + 4, 4);
        continue;
      }
      int8_t* at = p + (k / 2) * 2 * kNR;
      const uint16_t pairs[4] = {static_cast<uint16_t>(_mm_extract_epi16(q8, 0)), static_cast<uint16_t>(_mm_extract_epi16(q8, 1)),
                                 static_cast<uint16_t>(_mm_extract_epi16(q8, 2)), static_cast<uint16_t>(_mm_extract_epi16(q8, 3))};
      for (int pair = 0; pair < 4; ++pair) std::memcpy(at + pair * 2 * kNR, &pairs[pair], 2);
    }
#endif
  }
  for (; k < K; ++k) p[quads ? (k / 4) * 32 + (k & 3) : (k / 2) * 2 * kNR + (k & 1)] = quantize_i8(w[k], scale);
}

void i8_column_sums(int8_t* panel, int K, int j) {
  for (int k0 = 0, pass = 0; k0 < K; k0 += kI8KC, ++pass) {
    int32_t sum = 0;
    for (int k = k0; k < std::min(K, k0 + kI8KC); ++k) sum += panel[i8_at(k, j, I8Dot::kI7)];
    std::memcpy(panel + i8_sums_at(K, pass) + 4 * j, &sum, 4);
  }
}

I8Dot i8_dot_native() {
#if defined(MHA_I8_I7) && defined(__wasm_simd128__)
  static const I8Dot probed = [] {
    // 127 times 255 (a 7-bit operand with its top bit set): a dot instruction gives 4 * 127 * 255
    // (unsigned, as x86's vpdpbusd) or -4 * 127 (signed); two saturating multiply-adds (x86's
    // pmaddubsw, pmaddwd) 2 * 32767. Volatile, so that nothing is folded at compile time.
    static volatile int8_t w = 127;
    static volatile uint8_t a = 255;
    const int32_t r = wasm_i32x4_extract_lane(rdot(wasm_i8x16_splat(w), wasm_u8x16_splat(a), zero_i()), 0);
    return r == 4 * 127 * 255 || r == -4 * 127 ? I8Dot::kI7 : I8Dot::kI16;
  }();
  return probed;
#else
  return I8Dot::kI16;  // native builds emulate kI7 (for the tests)
#endif
}

namespace {
std::atomic<int> g_i8_dot{-1};  // -1: i8_dot_native()
}  // namespace

I8Dot i8_dot() {
  const int d = g_i8_dot.load(std::memory_order_relaxed);
  return d < 0 ? i8_dot_native() : static_cast<I8Dot>(d);
}

bool set_i8_dot(I8Dot d) {
  if (!i8_dot_available(d)) return false;
  g_i8_dot.store(static_cast<int>(d), std::memory_order_relaxed);
  return true;
}

namespace {
// max |x[i]| for i < n as a bit pattern: without the sign, floats order like their bits, and
// infinities and NaNs lie above every finite value. Four lanes and two chains at a time.
int32_t max_abs_bits(const float* x, int n) {
  const VI abs_mask = set_i32(0x7FFFFFFF);
  VI m0 = zero_i(), m1 = zero_i();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    m0 = max_i32(m0, and_i(as_i(load_f(x + i)), abs_mask));
    m1 = max_i32(m1, and_i(as_i(load_f(x + i + 4)), abs_mask));
  }
  int32_t mb = hmax_i32(max_i32(m0, m1));
  for (; i < n; ++i) {
    int32_t b;
    std::memcpy(&b, x + i, 4);
    mb = std::max(mb, b & 0x7FFFFFFF);
  }
  return mb;
}
}  // namespace

float row_scale_i8(const float* w, int K) {
  const int32_t mb = max_abs_bits(w, K);  // finite weights (PackedMatrix::check)
  float m;
  std::memcpy(&m, &mb, 4);
  return m / 127.0f;
}

namespace {
// The scales of a row x [n] quantized to [-qmax, qmax]: x ~ q * scale * shift with q =
// nearest(x * pre * inv). False (and scale 0, or NaN) for a row of zeros, or one holding a
// NaN or an infinity.
bool act_scale(const float* x, int n, int qmax, float* scale, float* shift, float* pre, float* inv) {
  const int32_t mb = max_abs_bits(x, n);
  *shift = 1.0f;
  if (mb == 0 || mb >= 0x7F800000) {  // zeros; or a NaN or an infinity: NaN for the whole row
    *scale = mb == 0 ? 0.0f : NAN;
    return false;
  }
  float mx;
  std::memcpy(&mx, &mb, 4);
  // A tiny row is scaled up by 2^100 first (exact), so that qmax / max stays
  // finite and the scale a normal float.
  const bool tiny = mx < 0x1p-100f;
  *pre = tiny ? 0x1p100f : 1.0f, *inv = qmax / (mx * *pre);
  *scale = mx * *pre / qmax;
  *shift = tiny ? 0x1p-100f : 1.0f;
  return true;
}
}  // namespace

void quantize_row_i16(const float* x, int n, int16_t* q, float* scale, float* shift) {
  const int n2 = (n + 1) & ~1;
  float pre, inv;
  if (!act_scale(x, n, kActQMax, scale, shift, &pre, &inv)) {
    std::fill(q, q + n2, int16_t{0});
    return;
  }
  const VF vp = set_f(pre), vi = set_f(inv);
  int i = 0;
  for (; i + 8 <= n; i += 8) {  // |x * pre * inv| <= kActQMax (+ rounding): inside int16
    const VI lo = round_i32(mul_f(mul_f(load_f(x + i), vp), vi));
    const VI hi = round_i32(mul_f(mul_f(load_f(x + i + 4), vp), vi));
    store_i(q + i, narrow_i16(lo, hi));
  }
  for (; i < n; ++i) q[i] = static_cast<int16_t>(std::nearbyint(x[i] * pre * inv));
  if (n2 > n) q[n] = 0;
}

void quantize_row_u14(const float* x, int n, uint8_t* out, size_t quad_stride, float* scale, float* shift) {
  const int nq = (n + 3) / 4;
  float pre, inv;
  const bool any = act_scale(x, n, kAct7QMax, scale, shift, &pre, &inv);
  int t = 0;
  if (any) {
    const VF vp = set_f(pre), vi = set_f(inv);
    const VI offset = set_i32(kAct7Offset), low7 = set_i32(127);
    for (; 4 * t + 4 <= n; ++t) {  // |q| <= 8191: u in [1, 16383]
      const VI u = add_i32(round_i32(mul_f(mul_f(load_f(x + 4 * t), vp), vi)), offset);
      const VI halves = narrow_i16(sra_i32<7>(u), and_i(u, low7));  // hi 0-3, lo 0-3
      store_lo64(out + t * quad_stride, narrow_u8(halves, halves));
    }
  }
  for (; t < nq; ++t) {
    uint8_t* o = out + t * quad_stride;
    for (int i = 0; i < 4; ++i) {
      const int k = 4 * t + i;
      const int u = k >= n ? 0 : kAct7Offset + (any ? static_cast<int>(std::nearbyint(x[k] * pre * inv)) : 0);
      o[i] = static_cast<uint8_t>(u >> 7), o[4 + i] = static_cast<uint8_t>(u & 127);
    }
  }
}

void gemm_f16(int M, int N, int K, const float* A, size_t lda, const uint16_t* Bp, size_t panel_stride, float* C,
              size_t ldc, const float* bias) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) return fill_bias(M, N, C, ldc, bias);
  if (M <= kMR) return rows_f16(M, K, A, lda, Bp, panel_stride, N, C, ldc, bias);
  // More rows: the slices of kF16Panels panels are converted once, then every row
  // of A goes through the float32 GEMM over them.
  alignas(64) float buf[kF16Panels * kKC * kNR];
  for (int k0 = 0; k0 < K; k0 += kKC) {
    const int kb = std::min(kKC, K - k0);
    for (int j0 = 0; j0 < N; j0 += kF16Panels * kNR) {
      const int n = std::min(kF16Panels * kNR, N - j0);
      for (int q = 0; q * kNR < n; ++q) {
        const uint16_t* panel = Bp + (j0 / kNR + q) * panel_stride + static_cast<size_t>(k0) * kNR;
        float* out = buf + static_cast<size_t>(q) * kb * kNR;
        for (int k = 0; k < kb; ++k) {
          VF lo, hi;
          halves_to_floats(panel + k * kNR, lo, hi);
          store_f(out + k * kNR, lo);
          store_f(out + k * kNR + 4, hi);
        }
      }
      gemm(M, n, kb, A + k0, lda, buf, static_cast<size_t>(kb) * kNR, C + j0, ldc, k0 > 0,
           k0 == 0 && bias ? bias + j0 : nullptr);
    }
  }
}

namespace {
// Row r of a tile of mr rows, kb deep, quantized (quantize_row_i16) into the
// tile's k-pair-major layout (dot_i8): the pair p at tile + (p * mr + r) * 2.
// kI7: the same in dot_i7's layout (quad t of row r at byte (t * mr + r) * 8).
void quantize_into_tile(const float* x, int kb, int r, int mr, int16_t* tile, float* scale, float* shift, I8Dot d) {
  if (kI7Built && d == I8Dot::kI7)
    return quantize_row_u14(x, kb, reinterpret_cast<uint8_t*>(tile) + 8 * r, 8 * static_cast<size_t>(mr), scale, shift);
  if (mr == 1) return quantize_row_i16(x, kb, tile, scale, shift);
  alignas(16) int16_t row[kI8KC];
  quantize_row_i16(x, kb, row, scale, shift);
  const int kp = (kb + 1) / 2;
  for (int p = 0; p < kp; ++p) std::memcpy(tile + (p * mr + r) * 2, row + 2 * p, 2 * sizeof(int16_t));
}

// One row against the panels over passes [k0 / kI8KC, + np) (aq: those passes'
// quantized activations, kI8KC apart; pass p's scales at rs[p * ss], rt[p * ss]), in groups of up to kGemvPanels panels
// (for_each_gemv_group). A panel's float sums stay in registers from pass to pass,
// added up as store_i8 adds them through C; C is read only when k0 > 0 (the sums
// of earlier chunks) and finished (* scale + bias) by the chunk that ends at K.
void gemv_i8_chunk(int N, int K, int k0, int np, const int16_t* aq, const float* rs, const float* rt, int ss,
                   const int8_t* Bp, size_t panel_stride, const float* scale, float* C, const float* bias, I8Dot d) {
  const bool finish = k0 + np * kI8KC >= K;
  for_each_gemv_group((N + kNR - 1) / kNR, [&](int first, int count, int step) {
    const int8_t* panel = Bp + first * panel_stride + static_cast<size_t>(k0) * kNR;
    alignas(16) int32_t acc[kGemvPanels * kNR];
    VF sum[kGemvPanels][2];
    for (int p = 0; p < np; ++p) {
      const int kb = std::min(kI8KC, K - k0 - p * kI8KC), kp = (kb + 1) / 2;
      const int8_t* slice = panel + static_cast<size_t>(p) * kI8KC * kNR;
#ifdef MHA_I8_I7
      if (d == I8Dot::kI7) {
        // Groups of two panels (four panels' sums would not fit in the registers).
        const size_t cs_at = i8_sums_at(K, k0 / kI8KC + p) - static_cast<size_t>(k0 + p * kI8KC) * kNR;
        const uint8_t* a = reinterpret_cast<const uint8_t*>(aq + p * kI8KC);
        if (count == 2)
          dot_i7_panels<2>((kb + 3) / 4, a, slice, step * panel_stride, cs_at, acc);
        else
          dot_i7_panels<1>((kb + 3) / 4, a, slice, step * panel_stride, cs_at, acc);
      } else
#endif
      {
        (void)d;
        with_count<kGemvPanels>(count, [&](auto g) {
          dot_i8_panels<decltype(g)::value>(kp, aq + p * kI8KC, slice, step * panel_stride, acc);
        });
      }
      const VF s = set_f(rs[p * ss]), sh = set_f(rt[p * ss]);
      for (int q = 0; q < count; ++q) {
        const VF y0 = mul_f(mul_f(cvt_f32(load_i(acc + q * kNR)), s), sh);
        const VF y1 = mul_f(mul_f(cvt_f32(load_i(acc + q * kNR + 4)), s), sh);
        if (p > 0) {
          sum[q][0] = add_f(y0, sum[q][0]), sum[q][1] = add_f(y1, sum[q][1]);
        } else if (k0 == 0) {
          sum[q][0] = y0, sum[q][1] = y1;
        } else {  // C holds the earlier chunks' sums
          const int j = (first + q * step) * kNR, nr = std::min(kNR, N - j);
          alignas(16) float c[kNR] = {0};
          std::copy(C + j, C + j + nr, c);
          sum[q][0] = add_f(y0, load_f(c)), sum[q][1] = add_f(y1, load_f(c + 4));
        }
      }
    }
    for (int q = 0; q < count; ++q) {
      const int j = (first + q * step) * kNR, nr = std::min(kNR, N - j);
      VF y0 = sum[q][0], y1 = sum[q][1];
      if (finish) {
        alignas(16) float b[kNR] = {0};
        if (bias) std::copy(bias + j, bias + j + nr, b);
        y0 = add_f(mul_f(y0, load_f(scale + j)), load_f(b));
        y1 = add_f(mul_f(y1, load_f(scale + j + 4)), load_f(b + 4));
      }
      if (nr == kNR) {
        store_f(C + j, y0), store_f(C + j + 4, y1);
      } else {
        alignas(16) float t[kNR];
        store_f(t, y0), store_f(t + 4, y1);
        std::copy(t, t + nr, C + j);
      }
    }
  }, d == I8Dot::kI7 ? 2 : kGemvPanels);
}

// Tiles of M <= kMR rows (a decoding step's GEMV): the rows are quantized for up
// to kI8Rows * kI8KC / M of depth (several passes) at once, then each panel is
// read from end to end of that depth, pass after pass. Memory is then read in
// one stream, as the hardware prefetchers like, rather than a pass-deep slice of
// every panel in turn (for M = 1, a whole panel of K <= 8192 in one go, and
// kGemvPanels panels side by side).
void rows_i8(int M, int N, int K, const float* A, size_t lda, const int8_t* Bp, size_t panel_stride,
             const float* scale, float* C, size_t ldc, const float* bias, I8Dot d) {
  alignas(64) int16_t aq[kI8Rows * kI8KC];
  float rs[kI8Rows * kMR], rt[kI8Rows * kMR];  // up to kI8Rows passes (M = 1)
  const int passes = kI8Rows / M;  // per chunk: M rows x passes x kI8KC fit in aq
  for (int k0 = 0; k0 < K; k0 += passes * kI8KC) {
    const int np = std::min(passes, (K - k0 + kI8KC - 1) / kI8KC);
    // Pass p: its M rows as a tile at aq + p * M * kI8KC (k-pair major, quantize_into_tile);
    // row r's scales at [p * kMR + r].
    for (int p = 0; p < np; ++p) {
      const int kb = std::min(kI8KC, K - k0 - p * kI8KC);
      for (int r = 0; r < M; ++r)
        quantize_into_tile(A + r * lda + k0 + p * kI8KC, kb, r, M, aq + p * M * kI8KC, rs + p * kMR + r, rt + p * kMR + r, d);
    }
    if (M == 1) {
      gemv_i8_chunk(N, K, k0, np, aq, rs, rt, kMR, Bp, panel_stride, scale, C, bias, d);
      continue;
    }
    for (int j0 = 0; j0 < N; j0 += kNR) {
      const int nr = std::min(kNR, N - j0);
      const int8_t* panel = Bp + (j0 / kNR) * panel_stride + static_cast<size_t>(k0) * kNR;
      alignas(16) int32_t acc[kMR * kNR];
      for (int p = 0; p < np; ++p) {
        const int kb = std::min(kI8KC, K - k0 - p * kI8KC);
        const int16_t* a = aq + p * M * kI8KC;
        const int8_t* slice = panel + static_cast<size_t>(p) * kI8KC * kNR;
        const int8_t* cs = Bp + (j0 / kNR) * panel_stride + i8_sums_at(K, k0 / kI8KC + p);
        dot_tile(d, M, kb, a, slice, cs, acc);
        const int kend = k0 + p * kI8KC + kb;
        store_i8(acc, M, rs + p * kMR, rt + p * kMR, scale + j0, bias ? bias + j0 : nullptr, C + j0, ldc, nr,
                 k0 == 0 && p == 0, kend == K);
      }
    }
  }
}
}  // namespace

void gemm_i8(int M, int N, int K, const float* A, size_t lda, const int8_t* Bp, size_t panel_stride,
             const float* scale, float* C, size_t ldc, const float* bias, I8Dot d) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) return fill_bias(M, N, C, ldc, bias);
  if (M <= kMR) return rows_i8(M, N, K, A, lda, Bp, panel_stride, scale, C, ldc, bias, d);
  // Row blocks of kI8Rows are quantized one pass at a time (once for every panel
  // of the tile), then each panel's slice runs over them in micro-tiles.
  alignas(64) int16_t aq[kI8Rows * kI8KC];
  float rs[kI8Rows], rt[kI8Rows];
  for (int i0 = 0; i0 < M; i0 += kI8Rows) {
    const int rows = std::min(kI8Rows, M - i0);
    for (int k0 = 0; k0 < K; k0 += kI8KC) {
      // A row's activations take ldq int16: whole k-pairs (kI16) or k-quads (kI7, 2 bytes a k).
      const int kb = std::min(kI8KC, K - k0), ldq = d == I8Dot::kI7 ? (kb + 3) / 4 * 4 : (kb + 1) / 2 * 2;
      const bool first = k0 == 0, last = k0 + kb == K;
      for (int r = 0; r < rows; ++r) {  // tile t (rows t..t+mr) at aq + t * ldq, k-pair (k-quad) major
        const int t = r / kMR * kMR, mr = std::min(kMR, rows - t);
        quantize_into_tile(A + (i0 + r) * lda + k0, kb, r - t, mr, aq + t * ldq, rs + r, rt + r, d);
      }
      for (int j0 = 0; j0 < N; j0 += kNR) {
        const int nr = std::min(kNR, N - j0);
        const int8_t* panel = Bp + (j0 / kNR) * panel_stride + static_cast<size_t>(k0) * kNR;
        const float* cs = scale + j0;
        const float* bj = bias ? bias + j0 : nullptr;
        float* c = C + i0 * ldc + j0;
        alignas(16) int32_t acc[kMR * kNR];
        for (int r = 0; r < rows; r += kMR) {
          const int mr = std::min(kMR, rows - r);
          const int16_t* a = aq + r * ldq;
          dot_tile(d, mr, kb, a, panel, Bp + (j0 / kNR) * panel_stride + i8_sums_at(K, k0 / kI8KC), acc);
          store_i8(acc, mr, rs + r, rt + r, cs, bj, c + r * ldc, ldc, nr, first, last);
        }
      }
    }
  }
}

void quantize_gemv_row(const float* a, int K, I8Row& row, I8Dot d) {
  row.source = a, row.K = K, row.dot = d;
  for (int p = 0; p * kI8KC < K; ++p)
    quantize_into_tile(a + p * kI8KC, std::min(kI8KC, K - p * kI8KC), 0, 1, row.q + p * kI8KC, row.scale + p, row.shift + p, d);
}

void gemv_i8(const I8Row& row, int N, const int8_t* Bp, size_t panel_stride, const float* scale, float* C,
             const float* bias) {
  if (N <= 0) return;
  if (row.K <= 0) return fill_bias(1, N, C, N, bias);
  gemv_i8_chunk(N, row.K, 0, (row.K + kI8KC - 1) / kI8KC, row.q, row.scale, row.shift, 1, Bp, panel_stride, scale, C,
                bias, row.dot);
}

}  // namespace kernels
}  // namespace mha
