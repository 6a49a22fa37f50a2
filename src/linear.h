// y = x W^T + b with W in PyTorch layout [out_features, in_features], packed
// once into 8-column panels so forward calls only stream x through the GEMM
// micro-kernel. The GEMM is split across threads by (row block, column block).
#pragma once
#include <cstddef>

#include "buffer.h"
#include "status.h"
#include "thread_pool.h"

namespace mha {

// Packs W [N, K] (row-major, PyTorch layout) as the K x N matrix W^T into
// `out` (kernels::packed_size(K, N) floats).
void pack_weight_transposed(int N, int K, const float* w, float* out);

// C[M x N] (ldc) = A[M x K] (lda) * B + bias, B packed as for kernels::gemm
// (panel_stride floats between panels), work split across the pool.
void parallel_gemm(ThreadPool& pool, int M, int N, int K, const float* A, size_t lda, const float* Bp,
                   size_t panel_stride, float* C, size_t ldc, const float* bias);

// torch.nn.Linear: y = x W^T + b, W [out, in] (PyTorch layout) packed once into panels.
class Linear {
 public:
  Linear(int in_features, int out_features) : in_(in_features), out_(out_features) {}
  // b may be null (no bias).
  Status set_weights(const float* w, const float* b);
  // y[M x out] (ldy) = x[M x in] (ldx) W^T + b
  void forward(ThreadPool& pool, int M, const float* x, size_t ldx, float* y, size_t ldy) const;
  size_t memory_bytes() const { return w_.bytes() + b_.bytes(); }

 private:
  int in_, out_;
  bool has_bias_ = false;
  FloatBuffer w_, b_;
};

}  // namespace mha
