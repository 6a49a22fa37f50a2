// Row normalizations over the last `width` elements of each row, with their
// weights copied in once:
//   LayerNorm (torch.nn.LayerNorm): (x - mean) / sqrt(var + eps) * gamma + beta,
//     kernels::layer_norm_row;
//   RMSNorm (torch.nn.RMSNorm): x / sqrt(mean(x^2) + eps) * (weight_offset + gamma),
//     kernels::rms_norm_row; weight_offset 1 is Gemma's (1 + weight).
// Both are a RowNorm: the weights, the row loop and the job or phase.
#pragma once
#include <cstddef>

#include "buffer.h"
#include "status.h"
#include "thread_pool.h"

namespace mha {

class RowNorm {
 public:
  // Copies gamma (and, for LayerNorm, beta) in. gamma null: ones (no elementwise
  // affine; RMSNorm's weight_offset is not added then); beta null: zeros. RMSNorm
  // ignores beta. kOutOfMemory if the rows do not fit.
  Status set_weights(const float* gamma, const float* beta);
  bool has_weights() const { return has_weights_; }
  int width() const { return width_; }
  float eps() const { return eps_; }
  // Floats of weights the norm keeps: what set_weights allocates.
  size_t weight_floats() const { return static_cast<size_t>(rms_ ? 1 : 2) * width_; }
  // The work of M rows (ThreadPool::threads_for).
  double work(int M) const { return 8.0 * M * width_; }
  // y = norm(x) row by row, M rows of width(), as a job; y may alias x.
  void forward(ThreadPool& pool, int M, const float* x, float* y) const;
  // The same as one phase of a job (ends with a barrier). With `add`, first
  // x += add row by row (x is then written), as a residual connection does.
  void phase(ThreadPool::Team& team, int M, const float* x, float* y) const;
  void add_phase(ThreadPool::Team& team, int M, float* x, const float* add, float* y) const;
  size_t memory_bytes() const { return buf_.bytes(); }

 protected:
  RowNorm(bool rms, int width, float eps, float weight_offset)
      : rms_(rms), width_(width), eps_(eps), weight_offset_(weight_offset) {}

 private:
  void rows(int r0, int r1, const float* x, float* y) const;

  bool rms_;
  int width_;
  float eps_, weight_offset_;
  bool has_weights_ = false;
  FloatBuffer buf_;  // gamma | beta (LayerNorm); gamma + weight_offset (RMSNorm)
};

class LayerNorm : public RowNorm {
 public:
  LayerNorm(int width, float eps) : RowNorm(false, width, eps, 0.0f) {}
};

class RMSNorm : public RowNorm {
 public:
  RMSNorm(int width, float eps, float weight_offset = 0.0f) : RowNorm(true, width, eps, weight_offset) {}
};

}  // namespace mha
