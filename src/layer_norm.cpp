#include "layer_norm.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels.h"

namespace mha {

Status RowNorm::set_weights(const float* gamma, const float* beta) {
  has_weights_ = false;
  if (!buf_.reserve(weight_floats())) return Status::kOutOfMemory;
  float* g = buf_.data();
  if (gamma) {
    // RMSNorm's offset is folded in here, in float32, as Gemma's (1 + weight) is computed.
    if (rms_) for (int i = 0; i < width_; ++i) g[i] = weight_offset_ + gamma[i];
    else std::memcpy(g, gamma, sizeof(float) * width_);
  } else {
    std::fill(g, g + width_, 1.0f);
  }
  if (!rms_) {
    if (beta) std::memcpy(g + width_, beta, sizeof(float) * width_);
    else std::fill(g + width_, g + 2 * width_, 0.0f);
  }
  has_weights_ = true;
  return Status::kOk;
}

void RowNorm::rows(int r0, int r1, const float* x, float* y) const {
  const float* g = buf_.data();
  const size_t e = static_cast<size_t>(width_);
  for (int r = r0; r < r1; ++r) {
    if (rms_) kernels::rms_norm_row(x + r * e, width_, g, eps_, y + r * e);
    else kernels::layer_norm_row(x + r * e, width_, g, g + e, eps_, y + r * e);
  }
}

void RowNorm::phase(ThreadPool::Team& team, int M, const float* x, float* y) const {
  team.for_ranges(M, [&](int r0, int r1) { rows(r0, r1, x, y); });
}

void RowNorm::add_phase(ThreadPool::Team& team, int M, float* x, const float* add, float* y) const {
  const size_t e = static_cast<size_t>(width_);
  team.for_ranges(M, [&](int r0, int r1) {
    for (int r = r0; r < r1; ++r) kernels::add_row(x + r * e, add + r * e, width_);
    rows(r0, r1, x, y);
  });
}

void RowNorm::forward(ThreadPool& pool, int M, const float* x, float* y) const {
  pool.job(pool.threads_for(work(M)), [&](ThreadPool::Team& team) { phase(team, M, x, y); });
}

}  // namespace mha
