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
  // y = LayerNorm(x) row by row, M rows of width(); y may alias x.
  void forward(ThreadPool& pool, int M, const float* x, float* y) const;
  // Rows [r0, r1) only (for a caller that splits the rows itself).
  void forward_rows(int r0, int r1, const float* x, float* y) const;
  size_t memory_bytes() const { return buf_.bytes(); }

 private:
  int width_;
  float eps_;
  bool has_weights_ = false;
  FloatBuffer buf_;  // gamma | beta
};

}  // namespace mha
