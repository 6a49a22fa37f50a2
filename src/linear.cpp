#include "linear.h"

#include <algorithm>
#include <cstring>

#include "kernels.h"

namespace mha {

void pack_weight_transposed(int N, int K, const float* w, float* out) {
  // W^T element (k, n) = w[n * K + k].
  kernels::pack_panels(K, N, w, 1, static_cast<size_t>(K), out);
}

namespace {
struct GemmJob {
  int M, N, K;
  const float* A;
  size_t lda;
  const float* Bp;
  size_t panel_stride;
  float* C;
  size_t ldc;
  const float* bias;
  int mb, nb, n_col_blocks;  // block sizes (rows, columns) and column-block count
};

void gemm_task(void* ctx, int task, int) {
  const GemmJob& g = *static_cast<const GemmJob*>(ctx);
  const int i0 = (task / g.n_col_blocks) * g.mb, j0 = (task % g.n_col_blocks) * g.nb;
  const int m = std::min(g.mb, g.M - i0), n = std::min(g.nb, g.N - j0);
  kernels::gemm(m, n, g.K, g.A + i0 * g.lda, g.lda, g.Bp + (j0 / kernels::kNR) * g.panel_stride, g.panel_stride,
                g.C + i0 * g.ldc + j0, g.ldc, false, g.bias ? g.bias + j0 : nullptr);
}
}  // namespace

void parallel_gemm(ThreadPool& pool, int M, int N, int K, const float* A, size_t lda, const float* Bp,
                   size_t panel_stride, float* C, size_t ldc, const float* bias) {
  if (M <= 0 || N <= 0) return;
  const double flops = 2.0 * M * N * K;
  const bool parallel = pool.size() > 1 && flops >= ThreadPool::kMinParallelFlops;
  // Row blocks a multiple of the micro-tile height, column blocks of whole
  // panels; aim for several tasks per thread so dynamic scheduling evens out.
  int mb = M, nb = N;
  if (parallel) {
    const int want = pool.size() * 4;
    mb = std::max(kernels::kMR, static_cast<int>(round_up((M + 1) / 2, kernels::kMR)));
    if (M <= 64) mb = static_cast<int>(round_up(M, kernels::kMR));
    const int row_blocks = (M + mb - 1) / mb;
    const int col_blocks = std::max(1, std::min((N + 63) / 64, (want + row_blocks - 1) / row_blocks));
    nb = static_cast<int>(round_up((N + col_blocks - 1) / col_blocks, kernels::kNR));
  }
  GemmJob g{M, N, K, A, lda, Bp, panel_stride, C, ldc, bias, mb, nb, (N + nb - 1) / nb};
  const int tasks = ((M + mb - 1) / mb) * g.n_col_blocks;
  pool.run(tasks, gemm_task, &g, parallel);
}

Status Linear::set_weights(const float* w, const float* b) {
  if (!w) return Status::kInvalidArgument;
  if (!w_.reserve(kernels::packed_size(in_, out_)) || (b && !b_.reserve(out_))) return Status::kOutOfMemory;
  pack_weight_transposed(out_, in_, w, w_.data());
  has_bias_ = b != nullptr;
  if (b) std::memcpy(b_.data(), b, sizeof(float) * out_);
  return Status::kOk;
}

void Linear::forward(ThreadPool& pool, int M, const float* x, size_t ldx, float* y, size_t ldy) const {
  parallel_gemm(pool, M, out_, in_, x, ldx, w_.data(), static_cast<size_t>(in_) * kernels::kNR, y, ldy,
                has_bias_ ? b_.data() : nullptr);
}

}  // namespace mha
