// GEMM kernels for weights stored as IEEE float16 or as int8 with one scale per
// output column, on the same 8-column panels and the same tiling as the float32
// GEMM (kernels.h). Their scalar twins are in tests/support/kernels_ref.h.
//
// Panels (PackedMatrix in linear.h fills them) hold W^T, 8 columns per panel:
//   float16: K x 8 halves, k-major, each row of 8 in the order of columns 0, 4,
//            1, 5, 2, 6, 3, 7 (the 32-bit lane j holds columns j and j + 4, which
//            two shifts each turn into floats; see halves_to_floats);
//   int8:    round_up(K, 2) / 2 k-pairs x 8 columns x 2: the 16 bytes of pair p
//            are column 0's k = 2p and 2p + 1, then column 1's, ..., zero padded.
// Both panels' row k starts at element 8k of the panel (k even for int8).
//
// float16: the halves are widened to float32 in registers (exact, subnormals
// included; weights are finite by construction) and multiplied as in the
// float32 micro-kernel. A tile of more than kMR rows converts each panel slice
// once into a float32 buffer and runs the float32 micro-kernel over it.
//
// int8 panels come in two layouts, one per integer dot product (I8Dot below):
//   kI16 (the one above): k-pairs for i32x4.dot_i16x8_s;
//   kI7:  round_up(K, 4) / 4 k-quads x 32 bytes: bytes 0-15 of quad t are columns
//         0-3's k = 4t .. 4t + 3 (column j at 4j), bytes 16-31 columns 4-7's, zero
//         padded; then, after the last quad, each pass's column sums (8 int32 per
//         pass of kI8KC, pass p at byte round_up(K, 4) * 8 + 32p of the panel).
//
// int8: y = row_scale * col_scale * sum_k a_q[k] w_q[k] + bias, with the
// activations a quantized dynamically to int16 (symmetric, round to nearest
// even, one scale per row and pass of kI8KC depth: max|a| / kActQMax), so their
// rounding error is 2^-15 of the row's largest value, far below the weights'.
// The weights are widened to int16 in registers and k-pairs are multiplied and
// added by i32x4.dot_i16x8_s (_mm_madd_epi16). The int32 sums are exact within a
// pass (see kI8KC) and are added up in float32 between passes. A row holding a
// NaN or an infinity gives NaN in every column.
//
// kI7 (relaxed-SIMD builds, where the engine runs i32x4.relaxed_dot_i8x16_i7x16_add_s
// as one exact instruction, x86's AVX-VNNI vpdpbusd: one instruction per 16 products
// instead of two widening loads, two dots and two adds): the activations are quantized
// to 14 bits instead (max|a| / 8191), offset to u = q + 8192 in [1, 16383] and split
// into two 7-bit halves hi = u >> 7, lo = u & 127, which the relaxed dot multiplies
// by the int8 weights exactly on every engine (its 7-bit operand's top bit is clear):
// sum_k q w = 128 * sum_k hi w + sum_k lo w - 8192 * sum_k w, the last from the
// panel's column sums. Within a pass of kI8KC every int32 stays exact. A tile's
// activations are k-quad major: quad t of row r at (t * MR + r) * 8 bytes, its four
// hi then its four lo.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "abi.h"
#include "kernels.h"

namespace mha {

// How a layer stores its weight matrices, as the bindings number them (bindings/abi.js).
using WeightType = abi::WeightType;
inline bool valid_weight_type(WeightType t) {
  return t == WeightType::kF32 || t == WeightType::kF16 || t == WeightType::kInt8;
}

namespace kernels {

// Where column j (0..7) of a float16 panel row is, in halves from the row's start.
constexpr int f16_position(int j) { return j < 4 ? 2 * j : 2 * (j - 4) + 1; }

constexpr int kActQMax = 16383;   // activations are quantized to [-16383, 16383]
constexpr int kWeightQMax = 128;  // |w_q| <= 128: pre-quantized weights may hold -128
// Depth of one int8 pass: its k-pairs' products, each at most 2 * kActQMax * 128 in
// magnitude per i32x4.dot_i16x8_s lane, add up exactly in int32. 1024 with activations
// of 15 bits (not 16): hidden sizes up to 1024 (SmolLM's 576, BERT-base's 768,
// Qwen2.5-0.5B's 896) take one pass, whose sums go to C once, where a pass of 512
// took two, the second short (an int8 prefill of SmolLM-135M's shapes: about 5% faster).
constexpr int kI8KC = abi::kInt8Pass;  // bindings/abi.js INT8_PASS
static_assert(kI8KC % 2 == 0, "an int8 pass holds whole k-pairs");
static_assert(static_cast<int64_t>(kI8KC / 2) * 2 * kActQMax * kWeightQMax <= INT32_MAX,
              "int32 accumulators cannot overflow within one int8 pass");
// The kI7 activations: q in [-kAct7QMax, kAct7QMax], u = q + kAct7Offset.
constexpr int kAct7QMax = 8191;
constexpr int kAct7Offset = 8192;
static_assert(static_cast<int64_t>(kI8KC) * 127 * kWeightQMax * 129 <= INT32_MAX,
              "128 * sum hi w + sum lo w stays exact in int32 within one int8 pass");
static_assert(kI8KC % 4 == 0, "an int8 pass holds whole k-quads");

// Which int8 kernel (and panel layout) a matrix uses; see above (bindings/abi.js INT8_DOT).
using I8Dot = abi::Int8Dot;
// Whether this build has the kI7 kernel: relaxed-SIMD builds, and native builds
// (emulated with SSSE3's maddubs, for the tests); not the SIMD128 wasm builds.
#if defined(__wasm_simd128__) && !defined(__wasm_relaxed_simd__)
constexpr bool kI7Built = false;
#else
constexpr bool kI7Built = true;
#endif
constexpr bool i8_dot_available(I8Dot d) { return d == I8Dot::kI16 || (kI7Built && d == I8Dot::kI7); }
// What this engine runs fast: kI7 where the relaxed dot is exact for a 7-bit
// operand whose top bit is set (then it is one unsigned-by-signed dot instruction,
// not two saturating multiply-adds); kI16 otherwise. Probed once.
I8Dot i8_dot_native();
// The kernel new int8 matrices get (PackedMatrix::reserve); i8_dot_native() until
// set. set_i8_dot returns false (and changes nothing) if d is not available.
I8Dot i8_dot();
bool set_i8_dot(I8Dot d);

// kI7: where the column sums of pass p (8 int32) are in a panel of depth K, in bytes.
inline size_t i8_sums_at(int K, int p) {
  return static_cast<size_t>((K + 3) / 4 * 4) * kNR + static_cast<size_t>(p) * kNR * sizeof(int32_t);
}
// Bytes of one int8 panel of depth K in layout d.
inline size_t i8_panel_bytes(int K, I8Dot d) {
  if (d == I8Dot::kI16) return static_cast<size_t>((K + 1) / 2 * 2) * kNR;
  return i8_sums_at(K, (K + kI8KC - 1) / kI8KC);
}
// Where element (k, j) of an int8 panel is, in bytes.
inline size_t i8_at(int k, int j, I8Dot d) {
  if (d == I8Dot::kI16) return static_cast<size_t>(k / 2) * 2 * kNR + 2 * j + (k & 1);
  return static_cast<size_t>(k / 4) * 32 + (j / 4) * 16 + (j % 4) * 4 + (k & 3);
}
// kI7: computes the column sums of column j (< 8) of a filled panel of depth K.
void i8_column_sums(int8_t* panel, int K, int j);

// Rows of A quantized together (a whole number of micro-tiles): their int16
// copy (kI8Rows x kI8KC) stays in L1 while every panel of the tile is read.
constexpr int kI8Rows = 4 * kMR;
static_assert(kI8Rows % kMR == 0, "int8 row blocks are whole micro-tiles");

// A float16 GEMM of more than kMR rows converts the slices of this many panels
// (kF16Panels x kKC x 8 floats, 32 KB on the stack) at a time, then runs the float32
// GEMM over them, which packs each tile of A once per call.
constexpr int kF16Panels = 4;

// IEEE binary16 conversions. half_from_float rounds to nearest even; |x| >= 65520
// gives +-infinity and NaN a quiet NaN (callers store finite halves only).
uint16_t half_from_float(float x);
float float_from_half(uint16_t h);
// half_from_float(w[k]) for k < K into a float16 panel at panel[k * 8 + pos] (pos:
// f16_position of the column), eight values per step, for finite |w| < 65520 (what
// PackedMatrix::check lets through).
void pack_row_f16(const float* w, int K, uint16_t* panel, int pos);

// Per-row int8 quantization of finite weights: scale = max|w[0..K)| / 127 (a
// float), and q = round(w / scale) to nearest even, the quotient in double (as
// quantizeSafetensors in bindings/quantize.js computes it). An all-zero row (or one so small that its
// scale underflows) has scale 0 and q = 0.
float row_scale_i8(const float* w, int K);
inline int8_t quantize_i8(float w, float scale) {
  if (scale == 0.0f) return 0;
  // w / scale in double, as bindings/quantize.js computes it: the same q whichever side quantizes.
  return static_cast<int8_t>(std::clamp(std::nearbyint(static_cast<double>(w) / scale), -127.0, 127.0));
}
// quantize_i8(w[k], scale) for k < K, into column j (< 8) of an int8 panel: value k at
// panel[(k / 2) * 16 + 2 * j + (k & 1)] (the k-pair layout above). Eight values at a time
// (two f64x2 divisions per four), as a matrix is set: one value at a time took ~10 ns.
// In layout d (kI7: value k at i8_at(k, j, kI7)); kI7 panels then need i8_column_sums.
void pack_row_i8(const float* w, int K, float scale, int8_t* panel, int j, I8Dot d = I8Dot::kI16);

// C[M x N] (ldc) = A[M x K] (lda) * B + bias (null: 0), B in float16 panels
// panel_stride halves apart.
void gemm_f16(int M, int N, int K, const float* A, size_t lda, const uint16_t* Bp, size_t panel_stride, float* C,
              size_t ldc, const float* bias);
// C[M x N] (ldc) = (A[M x K] (lda) * Bq) * scale + bias (null: 0), Bq in int8
// panels of layout d panel_stride bytes apart, scale the dequantization factor of
// each of the N columns, read in whole panels: scale[0 .. round_up(N, 8)) must be
// readable.
void gemm_i8(int M, int N, int K, const float* A, size_t lda, const int8_t* Bp, size_t panel_stride,
             const float* scale, float* C, size_t ldc, const float* bias, I8Dot d = I8Dot::kI16);

// One-row int8 products (a decoding step's GEMVs) that read the same row, such as
// the blocks of columns a thread takes or the query, key and value projections of
// one input: the row is quantized once (quantize_gemv_row, as gemm_i8 quantizes
// it: K <= kI8GemvK), then multiplied by each block (gemv_i8). The results are
// gemm_i8's, bit for bit.
constexpr int kI8GemvK = kI8Rows * kI8KC;
struct I8Row {
  const float* source = nullptr;  // what was quantized (callers may use it to reuse a row)
  int K = 0;
  I8Dot dot = I8Dot::kI16;  // for panels of this layout (kI7: q holds the hi/lo bytes)
  float scale[kI8Rows], shift[kI8Rows];  // pass p's
  alignas(16) int16_t q[kI8GemvK];      // pass p at q + p * kI8KC
};
void quantize_gemv_row(const float* a, int K, I8Row& row, I8Dot d = I8Dot::kI16);
// C[0 .. N) = (row * Bq) * scale + bias (null: 0), Bq as for gemm_i8 with K = row.K
// and the layout row.dot.
void gemv_i8(const I8Row& row, int N, const int8_t* Bp, size_t panel_stride, const float* scale, float* C,
             const float* bias);

// The activation quantization gemm_i8 applies to each row and pass: x [n] to q
// [round_up(n, 2)] (zero padded) with x ~ q * scale * shift, where shift is 1,
// or 2^-100 for a row whose largest |x| is below 2^-100 (so that scale stays a
// normal float, with all its precision). scale is 0 for a row of zeros and NaN
// for a row holding a NaN or an infinity.
void quantize_row_i16(const float* x, int n, int16_t* q, float* scale, float* shift);
// The same for kI7: x [n] to the hi/lo bytes of round_up(n, 4) / 4 k-quads, quad t
// at out + t * quad_stride (four hi, then four lo), with x ~ (u - 8192) * scale *
// shift; a row of zeros or one holding a NaN or an infinity gets u = 8192 (q = 0),
// and the padding past n u = 0.
void quantize_row_u14(const float* x, int n, uint8_t* out, size_t quad_stride, float* scale, float* shift);

}  // namespace kernels
}  // namespace mha
