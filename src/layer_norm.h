// torch.nn.LayerNorm over the last `width` elements of each row, with its weight
// (gamma) and bias (beta) copied in once. The row kernel is
// kernels::layer_norm_row.
#pragma once
#include <cstddef>

#include "buffer.h"
#include "status.h"
#include "thread_pool.h"

namespace mha {

class LayerNorm {
 public:
  LayerNorm(int width, float eps) : width_(width), eps_(eps) {}
  // Copies gamma and beta in. gamma null: ones (no elementwise affine); beta
  // null: zeros. kOutOfMemory if the two rows do not fit.
  Status set_weights(const float* gamma, const float* beta);
  bool has_weights() const { return has_weights_; }
  int width() const { return width_; }
  float eps() const { return eps_; }
  // The work of M rows (ThreadPool::threads_for).
  double work(int M) const { return 8.0 * M * width_; }
  // y = LayerNorm(x) row by row, M rows of width(), as a job; y may alias x.
  void forward(ThreadPool& pool, int M, const float* x, float* y) const;
  // The same as one phase of a job (ends with a barrier). With `add`, first
  // x += add row by row (x is then written), as a residual connection does.
  void phase(ThreadPool::Team& team, int M, const float* x, float* y) const;
  void add_phase(ThreadPool::Team& team, int M, float* x, const float* add, float* y) const;
  size_t memory_bytes() const { return buf_.bytes(); }

 private:
  void rows(int r0, int r1, const float* x, float* y) const;

  int width_;
  float eps_;
  bool has_weights_ = false;
  FloatBuffer buf_;  // gamma | beta
};

}  // namespace mha
