// Scalar twins of the SIMD kernels in src/kernels.h, for tests and benchmarks
// only (not part of the wasm builds). Each computes what its kernel computes,
// one element at a time in the obvious order, so a test can hold the SIMD
// version against it and a benchmark can show what the vectors buy.
#pragma once
#include <cstddef>

#include "kernels.h"

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
void gelu_tanh_row_ref(float* x, int n);  // 0.5 x (1 + std::tanh(...))
void rms_norm_row_ref(const float* x, int n, const float* gamma, float eps, float* out);

}  // namespace kernels
}  // namespace mha
