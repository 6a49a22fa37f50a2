// y = x W^T + b with W in PyTorch layout [out_features, in_features], packed
// once into 8-column panels so forward calls only stream x through the GEMM
// micro-kernel. Inside a job a GEMM is one phase: its C is cut into tiles of
// whole micro-tile rows and whole panels, which the team's threads take one by
// one. A GEMV (one row, or a few) is cut by output columns only.
#pragma once
#include <cstddef>

#include "buffer.h"
#include "kernels.h"
#include "status.h"
#include "thread_pool.h"

namespace mha {

// Packs W [N, K] (row-major, PyTorch layout) as the K x N matrix W^T into
// `out` (kernels::packed_size(K, N) floats).
void pack_weight_transposed(int N, int K, const float* w, float* out);

// What a GEMM task does to the tile of C it has just computed: add a residual
// (same layout as C, row stride ldr), or apply an activation. The operations are
// those a separate pass would do, so results do not change.
//
// glu (a gated linear unit, as a fused gate and up projection computes it): C's
// columns are groups of kernels::kNR, gate and up in turn (gate columns 0-7, up
// columns 0-7, gate 8-15, ...); the activation goes to the gate columns only, and
// act(gate) * up is written to glu (row stride ldg, glu_width columns: C holds
// 2 * round_up(glu_width, kNR) of them). Tiles then hold whole pairs of groups.
struct Epilogue {
  enum class Act { kNone, kRelu, kGelu, kGeluTanh, kSilu };
  const float* residual = nullptr;
  size_t ldr = 0;
  Act act = Act::kNone;
  float* glu = nullptr;
  size_t ldg = 0;
  int glu_width = 0;
};

// x = act(x) over a row.
void apply_act(Epilogue::Act act, float* x, int n);

// C[M x N] (ldc) = A[M x K] (lda) * B + bias, then the epilogue; B packed as for
// kernels::gemm (panel_stride floats between panels), bias may be null.
struct Gemm {
  int M = 0, N = 0, K = 0;
  const float* A = nullptr;
  size_t lda = 0;
  const float* Bp = nullptr;
  size_t panel_stride = 0;
  float* C = nullptr;
  size_t ldc = 0;
  const float* bias = nullptr;
  Epilogue epilogue;
  double work() const { return 2.0 * M * N * K; }
};

// How a GEMM is cut for a team of `threads`: row blocks of mb rows (whole
// micro-tiles), column blocks of nb columns (whole panels), tasks in all.
struct GemmSplit {
  int mb, nb, col_blocks, tasks;
};
// Column blocks are whole groups of col_group columns (a multiple of kernels::kNR).
GemmSplit split_gemm(int M, int N, int threads, int col_group = kernels::kNR);
// Computes tile `task` of g as cut by s, and applies the epilogue to it.
void gemm_tile(const Gemm& g, const GemmSplit& s, int task);

// GEMMs that do not depend on one another as one phase of a job: their tiles
// spread over the team, then a barrier.
void gemm_phase(ThreadPool::Team& team, const Gemm* gemms, int count);
inline void gemm_phase(ThreadPool::Team& team, const Gemm& g) { gemm_phase(team, &g, 1); }

// One GEMM as a job of its own (threads as ThreadPool::threads_for its work).
void parallel_gemm(ThreadPool& pool, int M, int N, int K, const float* A, size_t lda, const float* Bp,
                   size_t panel_stride, float* C, size_t ldc, const float* bias);

// torch.nn.Linear: y = x W^T + b, W [out, in] (PyTorch layout) packed once into panels.
class Linear {
 public:
  Linear(int in_features, int out_features) : in_(in_features), out_(out_features) {}
  // b may be null (no bias).
  Status set_weights(const float* w, const float* b);
  // y[M x out] (ldy) = x[M x in] (ldx) W^T + b, then the epilogue, as a Gemm.
  Gemm gemm(int M, const float* x, size_t ldx, float* y, size_t ldy, Epilogue epilogue = {}) const;
  size_t memory_bytes() const { return w_.bytes() + b_.bytes(); }

 private:
  int in_, out_;
  bool has_bias_ = false;
  FloatBuffer w_, b_;
};

}  // namespace mha
