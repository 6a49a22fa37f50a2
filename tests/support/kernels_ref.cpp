#include "kernels_ref.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

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
  for (int i = 0; i < n; ++i) x[i] = x[i] < 0 ? 0.0f : x[i];  // torch.relu: NaN stays NaN
}

void silu_row_ref(float* x, int n) {
  for (int i = 0; i < n; ++i) x[i] = x[i] / (1.0f + std::exp(-x[i]));
}

void gelu_row_ref(float* x, int n) {
  for (int i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
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

uint16_t half_from_float_ref(float x) {
  const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  if (std::isnan(x)) return sign | 0x7E00;
  const double a = std::fabs(static_cast<double>(x));
  if (a >= 65520.0) return sign | 0x7C00;
  if (a < 0x1p-14) return sign | static_cast<uint16_t>(std::nearbyint(a * 0x1p24));  // subnormal (or 2^-14)
  int e;
  std::frexp(a, &e);  // a = f * 2^e, f in [0.5, 1)
  int E = e - 1;
  double m = std::nearbyint((a / std::ldexp(1.0, E) - 1.0) * 1024.0);
  if (m == 1024.0) m = 0, ++E;
  return sign | static_cast<uint16_t>((E + 15) << 10 | static_cast<int>(m));
}

double half_to_double_ref(uint16_t h) {
  const int e = (h >> 10) & 31, m = h & 0x3FF;
  const double s = h & 0x8000 ? -1.0 : 1.0;
  if (e == 31) return m ? NAN : s * INFINITY;
  return s * (e ? std::ldexp(1024.0 + m, e - 25) : std::ldexp(static_cast<double>(m), -24));
}

void quantize_row_i8_ref(const float* w, int K, int8_t* q, float* scale) {
  float m = 0;
  for (int k = 0; k < K; ++k) m = std::max(m, std::fabs(w[k]));
  *scale = m / 127.0f;
  for (int k = 0; k < K; ++k)
    q[k] = *scale == 0.0f ? 0 : static_cast<int8_t>(std::max(-127.0, std::min(127.0, std::nearbyint(double(w[k]) / *scale))));
}

void quantize_row_i16_ref(const float* x, int n, int16_t* q, float* scale, float* shift, int qmax) {
  float m = 0;
  bool finite = true;
  for (int k = 0; k < n; ++k) finite = finite && std::isfinite(x[k]), m = std::max(m, std::fabs(x[k]));
  std::fill(q, q + (n + 1) / 2 * 2, int16_t{0});
  *shift = 1.0f;
  if (!finite || m == 0) {
    *scale = finite ? 0.0f : NAN;
    return;
  }
  const float pre = m < 0x1p-100f ? 0x1p100f : 1.0f, inv = qmax / (m * pre);
  *scale = m * pre / qmax;
  if (pre != 1.0f) *shift = 0x1p-100f;
  for (int k = 0; k < n; ++k) q[k] = static_cast<int16_t>(std::nearbyint(x[k] * pre * inv));
}

void gemm_f16_ref(int M, int N, int K, const float* A, size_t lda, const uint16_t* wh, float* C, size_t ldc,
                  const float* bias) {
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      float s = bias ? bias[j] : 0.0f;
      for (int k = 0; k < K; ++k) s += A[i * lda + k] * static_cast<float>(half_to_double_ref(wh[size_t(j) * K + k]));
      C[i * ldc + j] = s;
    }
}

void gemm_i8_ref(int M, int N, int K, const float* A, size_t lda, const int8_t* q, const float* scale, float* C,
                 size_t ldc, const float* bias) {
  std::vector<int16_t> aq(kI8KC);
  const int qmax = i8_dot() == I8Dot::kI7 ? kAct7QMax : kActQMax;
  for (int i = 0; i < M; ++i)
    for (int k0 = 0; k0 < K; k0 += kI8KC) {
      const int kb = std::min(kI8KC, K - k0);
      float s, t;
      quantize_row_i16_ref(A + i * lda + k0, kb, aq.data(), &s, &t, qmax);
      for (int j = 0; j < N; ++j) {
        int64_t acc = 0;
        for (int k = 0; k < kb; ++k) acc += int64_t(aq[k]) * q[size_t(j) * K + k0 + k];
        const float part = static_cast<float>(acc) * s * t;
        float& c = C[i * ldc + j];
        c = k0 == 0 ? part : c + part;
        if (k0 + kb == K) c = c * scale[j] + (bias ? bias[j] : 0.0f);
      }
    }
  if (K <= 0)
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j) C[i * ldc + j] = bias ? bias[j] : 0.0f;
}

}  // namespace kernels
}  // namespace mha

namespace {
// MHA_I8_DOT=i7 (CTest's "i7." run of every test): int8 matrices get the kI7 kernel.
[[maybe_unused]] const bool kI8DotFromEnvironment = [] {
  const char* d = std::getenv("MHA_I8_DOT");
  return d && std::strcmp(d, "i7") == 0 && mha::kernels::set_i8_dot(mha::kernels::I8Dot::kI7);
}();
}  // namespace
