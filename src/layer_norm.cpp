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

void LayerNorm::rows(int r0, int r1, const float* x, float* y) const {
  const float* g = buf_.data();
  const size_t e = static_cast<size_t>(width_);
  for (int r = r0; r < r1; ++r) kernels::layer_norm_row(x + r * e, width_, g, g + e, eps_, y + r * e);
}

void LayerNorm::phase(ThreadPool::Team& team, int M, const float* x, float* y) const {
  team.for_ranges(M, [&](int r0, int r1) { rows(r0, r1, x, y); });
}

void LayerNorm::add_phase(ThreadPool::Team& team, int M, float* x, const float* add, float* y) const {
  const size_t e = static_cast<size_t>(width_);
  team.for_ranges(M, [&](int r0, int r1) {
    for (int r = r0; r < r1; ++r) kernels::add_row(x + r * e, add + r * e, width_);
    rows(r0, r1, x, y);
  });
}

void LayerNorm::forward(ThreadPool& pool, int M, const float* x, float* y) const {
  pool.job(pool.threads_for(work(M)), [&](ThreadPool::Team& team) { phase(team, M, x, y); });
}

}  // namespace mha
