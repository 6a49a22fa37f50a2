#include "kernels_ref.h"

#include <algorithm>
#include <cmath>

namespace mha {
namespace kernels {

void gemm_ref(int M, int N, int K, const float* A, size_t lda, const float* Bp, size_t panel_stride,
              float* C, size_t ldc, bool accumulate, const float* bias) {
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      float s = accumulate ? C[i * ldc + j] : (bias ? bias[j] : 0.0f);
      const float* panel = Bp + (j / kNR) * panel_stride + (j % kNR);
      for (int k = 0; k < K; ++k) s += A[i * lda + k] * panel[k * kNR];
      C[i * ldc + j] = s;
    }
}

float max_row_ref(const float* x, int n) {
  float m = -INFINITY;
  for (int i = 0; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

float exp_shift_sum_ref(float* x, int n, float shift) {
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - shift);
    sum += x[i];
  }
  return sum;
}

void scale_row_ref(float* x, int n, float s) {
  for (int i = 0; i < n; ++i) x[i] *= s;
}

void add_row_ref(float* x, const float* y, int n) {
  for (int i = 0; i < n; ++i) x[i] += y[i];
}

void axpby_row_ref(float* x, float s, const float* y, float t, int n) {
  for (int i = 0; i < n; ++i) x[i] = x[i] * s + y[i] * t;
}

void layer_norm_row_ref(const float* x, int n, const float* gamma, const float* beta, float eps, float* out) {
  float mean = 0, c = 0, var = 0;
  for (int i = 0; i < n; ++i) mean += x[i];
  mean /= n;
  for (int i = 0; i < n; ++i) c += x[i] - mean;
  c /= n;
  for (int i = 0; i < n; ++i) var += (x[i] - mean - c) * (x[i] - mean - c);
  const float inv = 1.0f / std::sqrt(var / n + eps);
  for (int i = 0; i < n; ++i) out[i] = (x[i] - mean - c) * inv * (gamma ? gamma[i] : 1.0f) + (beta ? beta[i] : 0.0f);
}

void relu_row_ref(float* x, int n) {
  for (int i = 0; i < n; ++i) x[i] = x[i] > 0 ? x[i] : 0.0f;
}

void silu_row_ref(float* x, int n) {
  for (int i = 0; i < n; ++i) x[i] = x[i] / (1.0f + std::exp(-x[i]));
}

void gelu_tanh_row_ref(float* x, int n) {
  for (int i = 0; i < n; ++i)
    x[i] = 0.5f * x[i] * (1.0f + std::tanh(0.79788456080286536f * (x[i] + 0.044715f * x[i] * x[i] * x[i])));
}

void rms_norm_row_ref(const float* x, int n, const float* gamma, float eps, float* out) {
  float q = 0;
  for (int i = 0; i < n; ++i) q += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(q / n + eps);
  for (int i = 0; i < n; ++i) out[i] = x[i] * inv * (gamma ? gamma[i] : 1.0f);
}

}  // namespace kernels
}  // namespace mha
