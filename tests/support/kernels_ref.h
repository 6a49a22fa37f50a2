// Scalar twins of the SIMD kernels in src/kernels.h, for tests and benchmarks
// only (not part of the wasm builds). Each computes what its kernel computes,
// one element at a time in the obvious order, so a test can hold the SIMD
// version against it and a benchmark can show what the vectors buy.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels.h"
#include "quant.h"

namespace mha {
namespace kernels {

// kernels::gemm: C[M x N] = (accumulate ? C : bias) + A * B, B packed into panels.
void gemm_ref(int M, int N, int K, const float* A, size_t lda, const float* Bp, size_t panel_stride, float* C,
              size_t ldc, bool accumulate, const float* bias);
float max_row_ref(const float* x, int n);
// x[i] = std::exp(x[i] - shift); returns the sum.
float exp_shift_sum_ref(float* x, int n, float shift);
void scale_row_ref(float* x, int n, float s);
void add_row_ref(float* x, const float* y, int n);
void axpby_row_ref(float* x, float s, const float* y, float t, int n);
void layer_norm_row_ref(const float* x, int n, const float* gamma, const float* beta, float eps, float* out);
void relu_row_ref(float* x, int n);
void silu_row_ref(float* x, int n);       // x / (1 + std::exp(-x))
void gelu_row_ref(float* x, int n);       // 0.5 x (1 + std::erf(x / sqrt 2))
void gelu_tanh_row_ref(float* x, int n);  // 0.5 x (1 + std::tanh(...))
void rms_norm_row_ref(const float* x, int n, const float* gamma, float eps, float* out);

// IEEE binary16, computed from the value (frexp, rounding of the scaled
// mantissa) rather than from the bits: nearest even, +-infinity from 65520 on.
uint16_t half_from_float_ref(float x);
double half_to_double_ref(uint16_t h);
// Per-row int8 quantization (quant.h): scale = max|w| / 127, q = round(w / scale) (in double).
void quantize_row_i8_ref(const float* w, int K, int8_t* q, float* scale);
// quant.h's activation quantization of one row pass: q [round_up(n, 2)], x ~ q * scale * shift,
// q in [-qmax, qmax] (kActQMax for the kI16 kernel, kAct7QMax for kI7).
void quantize_row_i16_ref(const float* x, int n, int16_t* q, float* scale, float* shift, int qmax = kActQMax);
// kernels::gemm_f16 on W given as halves wh [N, K] (PyTorch layout, not packed).
void gemm_f16_ref(int M, int N, int K, const float* A, size_t lda, const uint16_t* wh, float* C, size_t ldc,
                  const float* bias);
// kernels::gemm_i8 on W given as q [N, K] and scale [N] (not packed): the same
// passes of kI8KC, activations quantized per row and pass (to the precision of the
// kernel new matrices get, kernels::i8_dot()), sums in int64.
void gemm_i8_ref(int M, int N, int K, const float* A, size_t lda, const int8_t* q, const float* scale, float* C,
                 size_t ldc, const float* bias);

}  // namespace kernels
}  // namespace mha
