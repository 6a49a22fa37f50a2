// PackedMatrix (linear.h): W^T in 8-column panels of float32, float16 or int8;
// the panel layouts are described in kernels.h (float32) and quant.h.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels.h"
#include "linear.h"
#include "quant.h"

namespace mha {

namespace {
using kernels::kNR;

uint64_t panels(int N) { return (static_cast<uint64_t>(N) + kNR - 1) / kNR; }

// Elements of one panel: K rows of 8 (int8: in layout d, quant.h).
uint64_t panel_elements(int K, WeightType t, kernels::I8Dot d) {
  return t == WeightType::kInt8 ? kernels::i8_panel_bytes(K, d) : static_cast<uint64_t>(K) * kNR;
}

uint64_t element_bytes(WeightType t) {
  return t == WeightType::kF32 ? 4 : t == WeightType::kF16 ? 2 : 1;
}

// Where element (k, j) of a panel is, in elements: k-major rows of 8 (float16's
// in the order kernels::f16_position gives); int8 k-pairs or k-quads (kernels::i8_at).
size_t at(int k, int j, WeightType t, kernels::I8Dot d) {
  if (t == WeightType::kInt8) return kernels::i8_at(k, j, d);
  if (t == WeightType::kF16) return static_cast<size_t>(k) * kNR + kernels::f16_position(j);
  return static_cast<size_t>(k) * kNR + j;
}
}  // namespace

uint64_t PackedMatrix::bytes(int K, int N, WeightType t) {
  if (K <= 0 || N <= 0) return 0;
  const uint64_t p = panels(N);
  return p * panel_elements(K, t, kernels::i8_dot()) * element_bytes(t) + (t == WeightType::kInt8 ? p * kNR * sizeof(float) : 0);
}

Status PackedMatrix::reserve(int K, int N, WeightType t) {
  if (K <= 0 || N <= 0 || !valid_weight_type(t)) return Status::kInvalidArgument;
  const kernels::I8Dot d = kernels::i8_dot();
  const uint64_t data_bytes = panels(N) * panel_elements(K, t, d) * element_bytes(t);
  const uint64_t scales = t == WeightType::kInt8 ? panels(N) * kNR : 0;
  K_ = N_ = 0;
  if (!data_.reserve((data_bytes + sizeof(float) - 1) / sizeof(float)) || (scales && !scale_.reserve(scales)))
    return Status::kOutOfMemory;
  K_ = K, N_ = N, type_ = t, dot_ = d;
  panel_stride_ = static_cast<size_t>(panel_elements(K, t, d));
  std::memset(data_.data(), 0, static_cast<size_t>(data_bytes));
  if (scales) std::fill(scale_.data(), scale_.data() + scales, 0.0f);
  return Status::kOk;
}

Status PackedMatrix::check(WeightType t, const float* w, size_t count) {
  if (t == WeightType::kF32) return Status::kOk;
  const float limit = t == WeightType::kF16 ? 65520.0f : INFINITY;
  for (size_t i = 0; i < count; ++i)
    if (!(std::fabs(w[i]) < limit)) return Status::kInvalidArgument;  // NaN too
  return Status::kOk;
}

Status PackedMatrix::fill(int n0, int n, const float* w) {
  if (!columns(n0, n) || (n && !w)) return Status::kInvalidArgument;
  if (check(type_, w, static_cast<size_t>(n) * K_) != Status::kOk) return Status::kInvalidArgument;
  const int K = K_;
  for (int r = 0; r < n; ++r) {
    const int c = n0 + r, j = c % kNR;
    const size_t panel = static_cast<size_t>(c / kNR) * panel_stride_;
    const float* row = w + static_cast<size_t>(r) * K;
    switch (type_) {
      case WeightType::kF32: {
        float* p = data_.data() + panel;
        for (int k = 0; k < K; ++k) p[at(k, j, type_, dot_)] = row[k];
        break;
      }
      case WeightType::kF16: {
        kernels::pack_row_f16(row, K, reinterpret_cast<uint16_t*>(data_.data()) + panel, kernels::f16_position(j));
        break;
      }
      case WeightType::kInt8: {
        const float s = kernels::row_scale_i8(row, K);
        int8_t* p = reinterpret_cast<int8_t*>(data_.data()) + panel;
        kernels::pack_row_i8(row, K, s, p, j, dot_);
        if (kernels::kI7Built && dot_ == kernels::I8Dot::kI7) kernels::i8_column_sums(p, K, j);
        scale_.data()[c] = s;
        break;
      }
    }
  }
  return Status::kOk;
}

Status PackedMatrix::fill_int8(int n0, int n, const int8_t* q, const float* scale) {
  if (type_ != WeightType::kInt8 || !columns(n0, n) || (n && (!q || !scale))) return Status::kInvalidArgument;
  if (check(WeightType::kInt8, scale, n) != Status::kOk) return Status::kInvalidArgument;
  const int K = K_;
  for (int r = 0; r < n; ++r) {
    const int c = n0 + r, j = c % kNR;
    int8_t* p = reinterpret_cast<int8_t*>(data_.data()) + static_cast<size_t>(c / kNR) * panel_stride_;
    const int8_t* row = q + static_cast<size_t>(r) * K;
    for (int k = 0; k < K; ++k) p[at(k, j, type_, dot_)] = row[k];
    if (kernels::kI7Built && dot_ == kernels::I8Dot::kI7) kernels::i8_column_sums(p, K, j);
    scale_.data()[c] = scale[r];
  }
  return Status::kOk;
}

void PackedMatrix::dequantize(int n0, int n, float* w) const {
  for (int r = 0; r < n; ++r) {
    const int c = n0 + r, j = c % kNR;
    const size_t panel = static_cast<size_t>(c / kNR) * panel_stride_;
    float* row = w + static_cast<size_t>(r) * K_;
    for (int k = 0; k < K_; ++k) {
      const size_t i = panel + at(k, j, type_, dot_);
      switch (type_) {
        case WeightType::kF32: row[k] = data_.data()[i]; break;
        case WeightType::kF16: row[k] = kernels::float_from_half(reinterpret_cast<const uint16_t*>(data_.data())[i]); break;
        case WeightType::kInt8: row[k] = reinterpret_cast<const int8_t*>(data_.data())[i] * scale_.data()[c]; break;
      }
    }
  }
}

Gemm PackedMatrix::gemm(int M, const float* A, size_t lda, float* C, size_t ldc, int n0, int n, const float* bias,
                        Epilogue e) const {
  Gemm g;
  g.M = M, g.N = n, g.K = K_, g.A = A, g.lda = lda, g.type = type_, g.dot = dot_;
  const size_t at0 = static_cast<size_t>(n0 / kNR) * panel_stride_;
  const char* base = reinterpret_cast<const char*>(data_.data());
  g.Bp = base + at0 * element_bytes(type_);
  g.panel_stride = panel_stride_;
  g.scale = type_ == WeightType::kInt8 ? scale_.data() + n0 : nullptr;
  g.C = C, g.ldc = ldc, g.bias = bias, g.epilogue = e;
  return g;
}

}  // namespace mha
