// y = x W^T + b with W in PyTorch layout [out_features, in_features], packed
// once into 8-column panels (PackedMatrix: float32, float16 or int8) so forward
// calls only stream x through the GEMM micro-kernels. Inside a job a GEMM is one
// phase: its C is cut into tiles of whole micro-tile rows and whole panels, which
// the team's threads take one by one. A GEMV (one row, or a few) is cut by
// output columns only.
#pragma once
#include <cstddef>
#include <cstdint>

#include "buffer.h"
#include "kernels.h"
#include "quant.h"
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

// C[M x N] (ldc) = A[M x K] (lda) * B + bias, then the epilogue; bias may be null.
// B is packed in panels of `type` elements (kernels::gemm's for float32,
// quant.h's for float16 and int8), panel_stride elements apart; int8 panels come
// with scale, the dequantization factor of each column (read in whole panels).
// PackedMatrix::gemm fills these in.
struct Gemm {
  int M = 0, N = 0, K = 0;
  const float* A = nullptr;
  size_t lda = 0;
  WeightType type = WeightType::kF32;
  kernels::I8Dot dot = kernels::I8Dot::kI16;  // int8: the panels' layout
  const void* Bp = nullptr;
  size_t panel_stride = 0;
  const float* scale = nullptr;
  float* C = nullptr;
  size_t ldc = 0;
  const float* bias = nullptr;
  Epilogue epilogue;
  double work() const { return 2.0 * M * N * K; }
};

// How a GEMM is cut for a team of `threads`: row blocks of mb rows (whole
// micro-tiles), column blocks of nb columns (whole panels), tasks in all. A
// one-row GEMV on several threads is cut instead into guided blocks of `unit`
// columns (unit > 0): each task takes ceil(remaining / (2 * threads)) units, so
// the first tasks are long (long memory streams) and the last are one unit each
// (the threads finish close together).
struct GemmSplit {
  int mb, nb, col_blocks, tasks;
  int unit = 0, threads = 1;
};
// Column blocks are whole groups of col_group columns (a multiple of kernels::kNR).
GemmSplit split_gemm(int M, int N, int threads, int col_group = kernels::kNR);
// The columns [first, first + count) of guided task `task` (s.unit > 0) of N columns.
void guided_columns(const GemmSplit& s, int N, int task, int& first, int& count);
// Computes tile `task` of g as cut by s, and applies the epilogue to it. row: g's
// one row of A, already quantized (kernels::quantize_gemv_row; int8 only), or null.
void gemm_tile(const Gemm& g, const GemmSplit& s, int task, const kernels::I8Row* row = nullptr);

// GEMMs that do not depend on one another as one phase of a job: their tiles
// spread over the team, then a barrier.
void gemm_phase(ThreadPool::Team& team, const Gemm* gemms, int count);
inline void gemm_phase(ThreadPool::Team& team, const Gemm& g) { gemm_phase(team, &g, 1); }

// One GEMM as a job of its own (threads as ThreadPool::threads_for its work).
void parallel_gemm(ThreadPool& pool, int M, int N, int K, const float* A, size_t lda, const float* Bp,
                   size_t panel_stride, float* C, size_t ldc, const float* bias);

// A weight matrix W [N, K] (PyTorch layout: N outputs of K inputs) held as W^T in
// 8-column panels of one type: float32; IEEE float16 (half the bytes); or int8
// with one scale per output channel (a quarter of the bytes, plus the scales),
// symmetric. Its gemm() describes a GEMM over a range of its columns.
class PackedMatrix {
 public:
  PackedMatrix() = default;
  // Room for W [N, K] stored as t, every element zero (so are the columns no
  // fill() writes); kInvalidArgument for K or N <= 0, kOutOfMemory (bytes(K, N, t)
  // is what was asked for) if it cannot be had.
  Status reserve(int K, int N, WeightType t);
  static uint64_t bytes(int K, int N, WeightType t);
  // Whether count floats of W can be stored as t: always for float32; for
  // float16 and int8 they must be finite, and below 65520 in magnitude for
  // float16 (which would round to infinity). kInvalidArgument otherwise.
  static Status check(WeightType t, const float* w, size_t count);
  // Packs rows [n, K] of W (row-major) as columns [n0, n0 + n), n0 a multiple of
  // 8: float32 as they are; float16 rounded to nearest even; int8 quantized per
  // row (scale = max|row| / 127, q = round(w / scale) to nearest even; an
  // all-zero row gets scale 0). kInvalidArgument when check() refuses w or the
  // columns are out of range; nothing is written then.
  Status fill(int n0, int n, const float* w);
  // Packs pre-quantized rows: q [n, K] int8 with w = q * scale[row] (the
  // compressed-tensors layout). Only for int8 matrices; scales must be finite
  // (kInvalidArgument otherwise).
  Status fill_int8(int n0, int n, const int8_t* q, const float* scale);
  // Rows [n, K] of W as the kernels see them (dequantized), into w.
  void dequantize(int n0, int n, float* w) const;
  // C[M x n] (ldc) = A[M x K] (lda) * W^T[:, n0 .. n0 + n) + bias, then the
  // epilogue; bias (null: none) holds the n columns' biases; n0 a multiple of 8.
  Gemm gemm(int M, const float* A, size_t lda, float* C, size_t ldc, int n0, int n, const float* bias,
            Epilogue e = {}) const;
  WeightType type() const { return type_; }
  kernels::I8Dot i8_dot() const { return dot_; }  // int8: the kernel and layout its panels have
  int K() const { return K_; }
  int N() const { return N_; }
  size_t memory_bytes() const { return data_.bytes() + scale_.bytes(); }

 private:
  bool columns(int n0, int n) const { return n0 >= 0 && n0 % 8 == 0 && n >= 0 && n <= N_ - n0; }
  int K_ = 0, N_ = 0;
  WeightType type_ = WeightType::kF32;
  kernels::I8Dot dot_ = kernels::I8Dot::kI16;  // int8: kernels::i8_dot() when reserved
  size_t panel_stride_ = 0;  // elements between panels
  FloatBuffer data_;         // the panels, of whichever type
  FloatBuffer scale_;        // int8: a scale per column, zero padded to whole panels
};

// torch.nn.Linear: y = x W^T + b, W [out, in] (PyTorch layout) packed once into panels.
class Linear {
 public:
  Linear(int in_features, int out_features, WeightType type = WeightType::kF32)
      : in_(in_features), out_(out_features), type_(type) {}
  // b may be null (no bias). w_scale null: w is float [out, in]; else w holds
  // pre-quantized int8 values [out, in] with w_scale [out] (the layer must be
  // int8). kInvalidArgument when the weights cannot be stored (PackedMatrix::check).
  Status set_weights(const float* w, const float* b, const float* w_scale = nullptr);
  // set_weights(w, nullptr) in blocks of rows: reserve() makes room for W (every
  // element zero) and drops the bias; fill_rows(n0, n, w) packs rows [n0, n0 + n)
  // of W (n0 a multiple of kernels::kNR), refused as set_weights refuses w.
  Status reserve();
  Status fill_rows(int n0, int n, const float* w) { return w_.fill(n0, n, w); }
  // y[M x out] (ldy) = x[M x in] (ldx) W^T + b, then the epilogue, as a Gemm.
  Gemm gemm(int M, const float* x, size_t ldx, float* y, size_t ldy, Epilogue epilogue = {}) const;
  WeightType weight_type() const { return type_; }
  // Rows [n0, n0 + n) of W as the kernels see them (dequantized), into w [n, in].
  void weight_rows(int n0, int n, float* w) const { w_.dequantize(n0, n, w); }
  // Bytes set_weights allocates.
  uint64_t weight_bytes() const { return PackedMatrix::bytes(in_, out_, type_) + sizeof(float) * out_; }
  size_t memory_bytes() const { return w_.memory_bytes() + b_.bytes(); }

 private:
  int in_, out_;
  WeightType type_;
  bool has_bias_ = false;
  PackedMatrix w_;
  FloatBuffer b_;
};

}  // namespace mha
