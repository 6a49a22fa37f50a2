// SIMD kernels (xsimd). Their scalar twins, which tests and benchmarks hold them
// against, live in tests/support/kernels_ref.h.
//
// Everything that multiplies matrices goes through one register-blocked
// micro-kernel: C[MR x 8] (+)= A[MR x K] * Bp[K x 8], where Bp is a "panel": 8
// consecutive columns of B stored k-major, 8 floats per k. B matrices are packed
// into panels once (weights in set_weights, K^T and V once per forward), so the
// inner loop is two vector loads, MR broadcasts and 2*MR*(8/W) mul+add, with the
// tile's rows of A packed k-major as it goes. A single row (a GEMV) reads
// kGemvPanels panels side by side, each end to end, instead (for_each_gemv_group);
// a decoding step's attention reads K and V unpacked (dot_rows, accumulate_rows).
//
// With -msimd128 -msse4.1, xsimd picks its sse4_1 arch and Emscripten lowers the
// SSE intrinsics to WebAssembly SIMD128 (f32x4.*). The same code builds natively.
#pragma once
#include <cstddef>
#include <type_traits>
#include <utility>

namespace mha {
namespace kernels {

constexpr int kNR = 8;    // panel width (columns per micro-tile)
constexpr int kMR = 4;    // rows per micro-tile (4x8 measured best for SIMD128 here)
constexpr int kKC = 256;  // depth of one GEMM pass (keeps a panel slice in L1)
constexpr int kNB = 64;   // panels per column block of a pass (their slices, 512 KB, stay in L2)
// A one-row product (a GEMV: a decoding step's) reads this many panels side by
// side, every weight type: that many memory streams at once, which one core's
// prefetchers serve faster than one stream. Measured natively on a decoding step
// of SmolLM-135M's shapes, 4 made one thread's int8 step about 1.3x faster than 1;
// 6 and 8 gained nothing more (and their sums would not fit in the 16 SIMD
// registers of x86-64).
constexpr int kGemvPanels = 4;

// Calls f(std::integral_constant<int, n>{}) for a count n known only at run time,
// n in [1, N] (more counts as N, less as 1): how a tile height or a group of
// panels picks its kernel instantiation.
template <int N, class F>
inline void with_count(int n, F&& f) {
  if constexpr (N > 1) {
    if (n < N) return with_count<N - 1>(n, std::forward<F>(f));
  }
  f(std::integral_constant<int, N>{});
}

// A one-row product over `panels` panels (the ones of its column range): calls
// f(first, count, step) for groups of up to kGemvPanels panels, {first, first +
// step, first + 2 * step, ...}, step = ceil(panels / kGemvPanels). Group after
// group, each of the kGemvPanels memory streams runs on through consecutive panels
// (contiguous in memory), a quarter of the range long, rather than stopping after
// one panel: a stream the prefetchers have picked up keeps going, where groups of
// adjacent panels start kGemvPanels short streams each (a panel is K x 8 weights,
// 4.6 KB for int8 at K = 576). Natively, a decoding step of SmolLM-135M's shapes
// got 1.13-1.2x faster in int8 on one thread and on two.
// G: the group size, kGemvPanels unless a kernel's sums for that many panels would
// not fit in the registers (the int8 kernel of quant.h's kI7 takes 2).
template <class F>
inline void for_each_gemv_group(int panels, F&& f, int G = kGemvPanels) {
  const int step = (panels + G - 1) / G;
  for (int first = 0; first < step; ++first) {
    const int count = (panels - 1 - first) / step + 1;  // first + q * step < panels
    f(first, count < G ? count : G, step);
  }
}

// Number of floats needed to pack a K x N matrix into ceil(N/8) panels.
size_t packed_size(int K, int N);

// Packs B (K x N; element (k, n) at b[k * row_stride + n * col_stride]) into
// ceil(N/8) panels of K x 8 floats each, zero padded on the right.
void pack_panels(int K, int N, const float* b, size_t row_stride, size_t col_stride,
                 float* out);

// C[M x N] = (accumulate ? C : bias) + A[M x K] * B, with B packed into panels
// spaced panel_stride floats apart (panel p holds columns 8p..8p+7; row k of a
// panel is at panel + 8k). bias (length N) may be null (zero). Row strides lda
// and ldc are in floats; columns are contiguous.
void gemm(int M, int N, int K, const float* A, size_t lda, const float* Bp, size_t panel_stride,
          float* C, size_t ldc, bool accumulate, const float* bias);

// Attention over few query rows without packing (a decoding step reads each
// cached key and value once, so packing them would cost as much as using them):
// S[r * lds + j] = q_r . k_j for rows r < rows and keys j < n, q_r at q + r * ldq
// and k_j at k + j * ldk (D floats each);
void dot_rows(int rows, int n, int D, const float* q, size_t ldq, const float* k, size_t ldk, float* S, size_t lds);
// O[r * ldo + c] += sum_j P[r * ldp + j] * v[j * ldv + c] for r < rows, c < Dv, j < n.
void accumulate_rows(int rows, int n, int Dv, const float* P, size_t ldp, const float* v, size_t ldv, float* O,
                     size_t ldo);

// Row operations used by the online softmax.
// -INFINITY for n == 0. A fast max: a NaN in x may or may not show in the result.
float max_row(const float* x, int n);
// True only if none of x[0..n) is NaN or +-inf (one vector pass over their sum; a
// sum that overflows answers false for finite x, which callers must allow).
bool all_finite(const float* x, size_t n);
bool has_nan(const float* x, int n);
// x[i] = exp(x[i] - shift); returns the sum. Requires x[i] - shift <= 0 (softmax).
// exp of -INFINITY (masked entries) is exactly 0; a NaN x[i] - shift (NaN in x,
// or inf - inf) gives NaN there and a NaN sum.
float exp_shift_sum(float* x, int n, float shift);
void scale_row(float* x, int n, float s);  // x *= s
void add_row(float* x, const float* y, int n);  // x += y
// x = x * s + y * t (used to average attention weights over heads)
void axpby_row(float* x, float s, const float* y, float t, int n);

// Layer normalization of one row (nn.LayerNorm over the last dim):
// out = (x - mean) / sqrt(var + eps) * gamma + beta, with the biased variance.
// gamma and beta may be null (1 and 0). Two passes (mean, then the squared
// deviations), so large offsets do not cancel. out may alias x.
void layer_norm_row(const float* x, int n, const float* gamma, const float* beta, float eps, float* out);
// x = max(x, 0)
void relu_row(float* x, int n);
// x = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)): PyTorch's exact GELU. Scalar
// (std::erf): its cost is one pass over the feed-forward activations, small
// beside the GEMMs around it.
void gelu_row(float* x, int n);
// x = x * sigmoid(x) = x / (1 + exp(-x)) (SiLU, Swish): +inf stays +inf, -inf gives
// NaN (-inf * 0), as PyTorch's.
void silu_row(float* x, int n);
// x = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): PyTorch's GELU with
// approximate='tanh' (gelu_pytorch_tanh in Hugging Face configs).
void gelu_tanh_row(float* x, int n);
// out = x * y
void mul_row(float* out, const float* x, const float* y, int n);

// RMS normalization of one row (nn.RMSNorm over the last dim):
// out = x / sqrt(mean(x^2) + eps) * gamma; gamma may be null (1). out may alias x.
void rms_norm_row(const float* x, int n, const float* gamma, float eps, float* out);

}  // namespace kernels
}  // namespace mha
