#include "layer_norm.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels.h"

namespace mha {

Status LayerNorm::set_weights(const float* gamma, const float* beta) {
  has_weights_ = false;
  if (!buf_.reserve(2 * static_cast<uint64_t>(width_))) return Status::kOutOfMemory;
  float* g = buf_.data();
  if (gamma) std::memcpy(g, gamma, sizeof(float) * width_);
  else std::fill(g, g + width_, 1.0f);
  if (beta) std::memcpy(g + width_, beta, sizeof(float) * width_);
  else std::fill(g + width_, g + 2 * width_, 0.0f);
  has_weights_ = true;
  return Status::kOk;
}

void LayerNorm::forward_rows(int r0, int r1, const float* x, float* y) const {
  const float* g = buf_.data();
  const size_t e = static_cast<size_t>(width_);
  for (int r = r0; r < r1; ++r) kernels::layer_norm_row(x + r * e, width_, g, g + e, eps_, y + r * e);
}

void LayerNorm::forward(ThreadPool& pool, int M, const float* x, float* y) const {
  pool.parallel_for(M, [&](int r, int) { forward_rows(r, r + 1, x, y); },
                    static_cast<uint64_t>(M) * width_ >= (1u << 16));
}

}  // namespace mha
