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
// Units a guided task takes when `rem` are left (GemmSplit).
int guided_units(int rem, int threads) { return std::max(1, (rem + 2 * threads - 1) / (2 * threads)); }
}  // namespace

GemmSplit split_gemm(int M, int N, int threads, int col_group) {
  if (M <= 0 || N <= 0) return {1, 1, 1, 0};
  if (threads <= 1) return {M, N, 1, 1};
  // A one-row GEMV reads kGemvPanels panels at a time: guided blocks of whole
  // groups, so that only the last block ends in a smaller (slower) group.
  static_assert((kernels::kGemvPanels * kernels::kNR) % (2 * kernels::kNR) == 0, "groups hold whole gated pairs");
  if (M == 1) {
    const int unit = std::max(col_group, kernels::kGemvPanels * kernels::kNR);
    int tasks = 0;
    for (int rem = (N + unit - 1) / unit; rem > 0; ++tasks) rem -= guided_units(rem, threads);
    return {1, N, 1, tasks, unit, threads};
  }
  // Row blocks a multiple of the micro-tile height (up to 64 rows: one block, so a
  // short GEMM is cut by output columns only), column blocks of whole panels;
  // several tasks per thread so that dynamic scheduling evens them out.
  const int want = threads * 4;
  int mb = std::max(kernels::kMR, static_cast<int>(round_up((M + 1) / 2, kernels::kMR)));
  if (M <= 64) mb = static_cast<int>(round_up(M, kernels::kMR));
  const int row_blocks = (M + mb - 1) / mb;
  const int panels = (N + kernels::kNR - 1) / kernels::kNR;
  // Columns: no more blocks than the wanted tasks need; at least a panel each for a
  // few rows, at least 64 columns when more rows of A are read per block.
  const int min_panels = M <= 16 ? 1 : 64 / kernels::kNR;
  const int col_blocks = std::max(1, std::min((panels + min_panels - 1) / min_panels, (want + row_blocks - 1) / row_blocks));
  const int nb = static_cast<int>(round_up((N + col_blocks - 1) / col_blocks, col_group));
  const int cb = (N + nb - 1) / nb;
  return {mb, nb, cb, row_blocks * cb};
}

namespace {
constexpr int kMaxGemms = 4;  // GEMMs in one phase
// Whether g is a one-row int8 product whose row kernels::quantize_gemv_row takes.
bool quantized_row_gemv(const Gemm& g) {
  return g.type == WeightType::kInt8 && g.M == 1 && g.K > 0 && g.K <= kernels::kI8GemvK;
}
}  // namespace

void guided_columns(const GemmSplit& s, int N, int task, int& first, int& count) {
  int start = 0, rem = (N + s.unit - 1) / s.unit, take = guided_units(rem, s.threads);
  for (int t = 0; t < task; ++t) start += take, rem -= take, take = guided_units(rem, s.threads);
  first = start * s.unit, count = std::min(take * s.unit, N - first);
}

void gemm_tile(const Gemm& g, const GemmSplit& s, int task, const kernels::I8Row* row) {
  int i0 = 0, j0 = 0, n = 0;
  if (s.unit > 0)
    guided_columns(s, g.N, task, j0, n);
  else
    i0 = (task / s.col_blocks) * s.mb, j0 = (task % s.col_blocks) * s.nb, n = std::min(s.nb, g.N - j0);
  const int m = std::min(s.mb, g.M - i0);
  float* c = g.C + i0 * g.ldc + j0;
  const float* a = g.A + i0 * g.lda;
  const float* bias = g.bias ? g.bias + j0 : nullptr;
  const size_t panel = (j0 / kernels::kNR) * g.panel_stride;  // in elements
  switch (g.type) {
    case WeightType::kF16:
      kernels::gemm_f16(m, n, g.K, a, g.lda, static_cast<const uint16_t*>(g.Bp) + panel, g.panel_stride, c, g.ldc, bias);
      break;
    case WeightType::kInt8:
      if (row)
        kernels::gemv_i8(*row, n, static_cast<const int8_t*>(g.Bp) + panel, g.panel_stride, g.scale + j0, c, bias);
      else
        kernels::gemm_i8(m, n, g.K, a, g.lda, static_cast<const int8_t*>(g.Bp) + panel, g.panel_stride, g.scale + j0, c,
                         g.ldc, bias, g.dot);
      break;
    case WeightType::kF32:
      kernels::gemm(m, n, g.K, a, g.lda, static_cast<const float*>(g.Bp) + panel, g.panel_stride, c, g.ldc, false, bias);
      break;
  }
  const Epilogue& e = g.epilogue;
  constexpr int G = kernels::kNR;
  for (int r = 0; r < m; ++r) {
    float* row = c + r * g.ldc;
    if (e.residual) kernels::add_row(row, e.residual + (i0 + r) * e.ldr + j0, n);
    if (!e.glu) {
      apply_act(e.act, row, n);
      continue;
    }
    // Pairs of groups: gate at row[q], up at row[q + G], hidden columns f0.. of glu.
    float* out = e.glu + (i0 + r) * e.ldg;
    for (int q = 0; q < n; q += 2 * G) {
      const int f0 = (j0 + q) / 2, w = std::min(G, e.glu_width - f0);
      if (w <= 0) break;
      apply_act(e.act, row + q, w);
      kernels::mul_row(out + f0, row + q, row + q + G, w);
    }
  }
}

void apply_act(Epilogue::Act act, float* x, int n) {
  switch (act) {
    case Epilogue::Act::kRelu: kernels::relu_row(x, n); break;
    case Epilogue::Act::kGelu: kernels::gelu_row(x, n); break;
    case Epilogue::Act::kGeluTanh: kernels::gelu_tanh_row(x, n); break;
    case Epilogue::Act::kSilu: kernels::silu_row(x, n); break;
    case Epilogue::Act::kNone: break;
  }
}

namespace {
// Runs f(i, tile) for every tile of gemm_phase's GEMMs (their tasks numbered in
// turn: GEMM i's from first[i]), spread over the team.
template <class F>
void for_each_tile(ThreadPool::Team& team, const int* first, int count, F&& f) {
  team.for_each(first[count], [&](int t) {
    int i = 0;
    while (t >= first[i + 1]) ++i;
    f(i, t - first[i]);
  });
}

// gemm_phase's tasks when one-row int8 products are cut into several: each thread
// quantizes a row once, for every task it takes that reads it (the tasks of one
// GEMV, or GEMMs of one input such as the query, key and value projections),
// rather than once per task. Its own function: only these phases hold the row.
[[gnu::noinline]] void gemv_tasks(ThreadPool::Team& team, const Gemm* gemms, const GemmSplit* split, const int* first,
                                  int count) {
  kernels::I8Row row;
  for_each_tile(team, first, count, [&](int i, int tile) {
    const Gemm& g = gemms[i];
    if (!quantized_row_gemv(g)) return gemm_tile(g, split[i], tile);
    if (row.source != g.A || row.K != g.K || row.dot != g.dot) kernels::quantize_gemv_row(g.A, g.K, row, g.dot);
    gemm_tile(g, split[i], tile, &row);
  });
}
}  // namespace

void gemm_phase(ThreadPool::Team& team, const Gemm* gemms, int count) {
  GemmSplit split[kMaxGemms];
  int first[kMaxGemms + 1] = {0};
  bool rows = false;  // one-row int8 products, whose rows the tasks may share
  for (int i = 0; i < count && i < kMaxGemms; ++i) {
    split[i] = split_gemm(gemms[i].M, gemms[i].N, team.size(), gemms[i].epilogue.glu ? 2 * kernels::kNR : kernels::kNR);
    first[i + 1] = first[i] + split[i].tasks;
    rows = rows || quantized_row_gemv(gemms[i]);
  }
  if (rows && first[count] > 1) return gemv_tasks(team, gemms, split, first, count);
  for_each_tile(team, first, count, [&](int i, int tile) { gemm_tile(gemms[i], split[i], tile); });
}

void parallel_gemm(ThreadPool& pool, int M, int N, int K, const float* A, size_t lda, const float* Bp,
                   size_t panel_stride, float* C, size_t ldc, const float* bias) {
  if (M <= 0 || N <= 0) return;
  Gemm g;
  g.M = M, g.N = N, g.K = K, g.A = A, g.lda = lda, g.Bp = Bp, g.panel_stride = panel_stride, g.C = C, g.ldc = ldc;
  g.bias = bias;
  pool.job(pool.threads_for(g.work()), [&](ThreadPool::Team& team) { gemm_phase(team, g); });
}

Status Linear::set_weights(const float* w, const float* b, const float* w_scale) {
  if (!w || (w_scale && type_ != WeightType::kInt8)) return Status::kInvalidArgument;
  const size_t n = static_cast<size_t>(in_) * out_;
  if (w_scale ? PackedMatrix::check(WeightType::kF32, w_scale, out_) != Status::kOk
              : PackedMatrix::check(type_, w, n) != Status::kOk)
    return Status::kInvalidArgument;
  if (w_.reserve(in_, out_, type_) != Status::kOk || (b && !b_.reserve(out_))) return Status::kOutOfMemory;
  const Status s = w_scale ? w_.fill_int8(0, out_, reinterpret_cast<const int8_t*>(w), w_scale) : w_.fill(0, out_, w);
  if (s != Status::kOk) return s;
  has_bias_ = b != nullptr;
  if (b) std::memcpy(b_.data(), b, sizeof(float) * out_);
  return Status::kOk;
}

Status Linear::reserve() {
  has_bias_ = false;
  return w_.reserve(in_, out_, type_);
}

Gemm Linear::gemm(int M, const float* x, size_t ldx, float* y, size_t ldy, Epilogue epilogue) const {
  return w_.gemm(M, x, ldx, y, ldy, 0, out_, has_bias_ ? b_.data() : nullptr, epilogue);
}

}  // namespace mha
