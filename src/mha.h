// torch.nn.MultiheadAttention (batch_first=True, dropout 0) forward pass.
#pragma once
#include <cstddef>
#include <cstdint>

#include "attention.h"
#include "buffer.h"
#include "linear.h"
#include "rope.h"
#include "status.h"
#include "thread_pool.h"
#include "workspace.h"

namespace mha {

struct MhaConfig {
  int embed_dim = 0;
  int num_heads = 0;
  int kdim = 0;  // input size of key (defaults to embed_dim at the API level)
  int vdim = 0;  // input size of value
  bool bias = true;  // the default of qkv_bias and out_bias
  // The options of modern attention (defaults: nn.MultiheadAttention's behaviour).
  int num_kv_heads = 0;  // key/value heads, dividing num_heads (0: num_heads)
  int head_dim = 0;      // per-head width (0: embed_dim / num_heads, which must divide)
  int qkv_bias = -1;     // q/k/v projection biases: 1, 0, or -1 for `bias`
  int out_bias = -1;     // output projection bias: 1, 0, or -1 for `bias`
  float scale = 0.0f;    // score scale (0: 1 / sqrt(head_dim))
  float softcap = 0.0f;  // > 0: scores become softcap * tanh(scores / softcap)
  int window = 0;        // > 0: sliding window (see MaskArgs::window)
  bool alibi = false;    // ALiBi: slopes [H] come with the weights
  bool sinks = false;    // attention sinks: sinks [H] come with the weights
  bool qk_norm = false;  // RMSNorm of each head's q and k: q_norm, k_norm [head_dim] with the weights
  float qk_norm_eps = 1e-6f;
  // Rotary embedding of q and k after QK-norm (0: none): the first rope_dim
  // channels of each head rotate (even, <= head_dim), by angle position *
  // inv_freq[c] (inv_freq [rope_dim / 2] comes with the weights); cos and sin are
  // multiplied by rope_attention_factor. Not interleaved: channel c pairs with
  // c + rope_dim / 2 (rotate_half); interleaved: 2c with 2c + 1.
  int rope_dim = 0;
  bool rope_interleaved = false;
  float rope_attention_factor = 1.0f;
  // How the four projection matrices are stored (biases and the option arrays stay float32).
  WeightType weight_type = WeightType::kF32;

  int H() const { return num_heads; }
  int Hkv() const { return num_kv_heads ? num_kv_heads : num_heads; }
  int D() const { return head_dim ? head_dim : (num_heads ? embed_dim / num_heads : 0); }
  bool has_qkv_bias() const { return qkv_bias < 0 ? bias : qkv_bias != 0; }
  bool has_out_bias() const { return out_bias < 0 ? bias : out_bias != 0; }
};

// Weights in PyTorch state_dict layout, with Hq = num_heads * head_dim and Hk =
// num_kv_heads * head_dim rows. Either in_proj_weight [Hq + 2 Hk, E] (only when
// kdim == vdim == E) or the three q/k/v_proj_weight ([Hq, E], [Hk, kdim], [Hk,
// vdim]); out_proj_weight [E, Hq]. Biases: in_proj_bias [Hq + 2 Hk] or the three
// q/k/v_proj_bias, required when has_qkv_bias(); out_proj_bias [E] when
// has_out_bias(); ignored otherwise. The option arrays are required when their
// option is on and ignored otherwise.
// Each matrix may come pre-quantized (the compressed-tensors layout) in an int8
// layer: when its <name>_scale is set, <name> points to int8 values of the same
// dims (row-major) and the scale to one float per row, w = q * scale; the layer
// must have weight_type kInt8 (kInvalidArgument otherwise).
struct MhaWeights {
  const float* in_proj_weight = nullptr;
  const float* q_proj_weight = nullptr;
  const float* k_proj_weight = nullptr;
  const float* v_proj_weight = nullptr;
  const float* in_proj_bias = nullptr;
  const float* out_proj_weight = nullptr;
  const float* out_proj_bias = nullptr;
  const float* q_proj_bias = nullptr;
  const float* k_proj_bias = nullptr;
  const float* v_proj_bias = nullptr;
  const float* sinks = nullptr;         // [H]
  const float* alibi_slopes = nullptr;  // [H]
  const float* q_norm_weight = nullptr;  // [head_dim]
  const float* k_norm_weight = nullptr;  // [head_dim]
  const double* rope_inv_freq = nullptr;  // [rope_dim / 2], in double: angles of far positions stay exact
  const float* in_proj_weight_scale = nullptr;   // [Hq + 2 Hk]
  const float* q_proj_weight_scale = nullptr;    // [Hq]
  const float* k_proj_weight_scale = nullptr;    // [Hk]
  const float* v_proj_weight_scale = nullptr;    // [Hk]
  const float* out_proj_weight_scale = nullptr;  // [E]
};

// What MultiHeadAttention::forward writes for inspect (uncached only): query row
// i of batch b through head h, step by step, into out: q [D] (after QK-norm and
// rotary) | k [Lk, D] | v [Lk, D] of its key/value head | raw | scaled |
// softcapped | biased | masked | weights [Lk] each (see Attention::Trace) | the
// head's output [D] | every head's output for the token [H * D] | sink (NaN if none).
// The layer's output row is in the forward's output.
struct MhaTrace {
  int b = 0, h = 0, i = 0;
  float* out = nullptr;
  static uint64_t floats(int Lk, int H, int D) { return (2ull * Lk + 2) * D + 6ull * Lk + static_cast<uint64_t>(H) * D + 1; }
};

struct MhaForwardArgs {
  int B = 0, Lq = 0, Lk = 0;
  const float* query = nullptr;  // [B, Lq, E]
  const float* key = nullptr;    // [B, Lk, kdim]
  const float* value = nullptr;  // [B, Lk, vdim]
  // Masks. For an attn mask of dims [Lq, Lk] set sb = sh = 0 and sl = Lk; for
  // [B, H, Lq, Lk] set the full strides. With a cache, Lk counts every position
  // the cache has seen plus the new ones (a sliding-window cache's masks and
  // weights cover the positions it no longer holds too).
  MaskArgs mask;
  // The rotary positions of the new tokens (null: their sequence index, see
  // MultiHeadAttention): [B, Lq], or [Lq] for every batch when positions_shared.
  const int32_t* position_ids = nullptr;
  bool positions_shared = false;
  float* output = nullptr;   // [B, Lq, E]
  float* weights = nullptr;  // optional: [B, H, Lq, Lk] or [B, Lq, Lk] if average
  bool average_weights = true;
  const MhaTrace* trace = nullptr;  // optional, uncached calls only
};

// Projected keys and values of earlier positions, for incremental decoding:
// [batch, num_kv_heads, rows, head_dim] each as appended (self-attention), so
// that a decoding step reads each head's keys and values as one run of memory;
// [batch, rows, width] (width = num_kv_heads * head_dim) as a fixed memory's keys
// and values, which the projection writes in one go (CacheMode::kFixed).
// MultiHeadAttention::forward_cached fills it. A sliding-window layer's cache
// keeps only the last `capacity` positions: it holds a few more rows than that
// and, when they are full, moves the last ones it needs to the front.
class KVCache {
 public:
  // Reserves both buffers and empties the cache; kOutOfMemory if they do not fit.
  // sliding: the cache of a sliding-window layer (it never fills up).
  Status init(int batch, int capacity, int width, bool sliding = false);
  // Rows a cache of this capacity holds (more than capacity when sliding).
  static int rows_for(int capacity, bool sliding);
  int batch() const { return batch_; }
  int capacity() const { return capacity_; }
  // Positions seen since the last reset (a sliding cache holds the last ones).
  int length() const { return length_; }
  void reset() { length_ = start_ = 0; }
  // Whether truncate(n) can keep the first n positions: n in [0, length], and a
  // sliding cache still holding every position since its reset (or n = length, or 0).
  bool can_truncate(int n) const { return n >= 0 && n <= length_ && (n == length_ || n == 0 || start_ == 0); }
  // Keeps the first n positions, as if the later ones had never been appended
  // (the next append continues at position n); false, changing nothing, when
  // !can_truncate(n).
  bool truncate(int n) {
    if (!can_truncate(n)) return false;
    length_ = n;
    if (n == 0) start_ = 0;
    return true;
  }
  size_t memory_bytes() const { return k_.bytes() + v_.bytes(); }

 private:
  friend class MultiHeadAttention;
  int held() const { return length_ - start_; }
  // Floats between a kv head's consecutive rows, and between its heads, for heads of
  // head_dim D (the layout, head_major_); batch b starts at b * rows_ * width_.
  size_t row_stride(int D) const { return head_major_ ? static_cast<size_t>(D) : static_cast<size_t>(width_); }
  size_t head_stride(int D) const { return head_major_ ? static_cast<size_t>(rows_) * D : static_cast<size_t>(D); }
  int batch_ = 0, capacity_ = 0, rows_ = 0, width_ = 0, length_ = 0;
  int start_ = 0;  // the position row 0 holds
  bool sliding_ = false;
  bool head_major_ = true;  // the layout: [batch, kv head, rows, head_dim], else [batch, rows, width]
  FloatBuffer k_, v_;
};

enum class CacheMode {
  // Self-attention: query == key == value hold the new positions [B, Lq, E]. Their
  // keys and values are appended, and the queries attend over every cached
  // position: Lk = the length after the append (masks are sized for it, and
  // causal is bottom-right aligned, so new position i sees the prefix and itself).
  kAppend,
  // Cross-attention over a memory that stays the same: an empty cache is sized
  // for and filled with the projected key/value [B, Lk, kdim/vdim]; later calls
  // reuse them (key/value are not read, Lk must equal the cached length).
  kFixed,
};

class MultiHeadAttention {
 public:
  // The config must satisfy valid(); the constructor allocates nothing.
  explicit MultiHeadAttention(const MhaConfig& cfg);
  static bool valid(const MhaConfig& cfg);

  Status set_weights(const MhaWeights& w);
  bool has_weights() const { return has_weights_; }

  // Whether forward(args) / forward_cached(args, cache, mode) may run: kNoWeights,
  // kInvalidArgument or kOk.
  Status check(const MhaForwardArgs& args) const;
  Status check_cached(const MhaForwardArgs& args, const KVCache& cache, CacheMode mode) const;
  // Floating-point operations of a call (ThreadPool::threads_for); cache null: uncached.
  double work(const MhaForwardArgs& args, const KVCache* cache, CacheMode mode) const;
  // Workspace bytes a call needs on a team of `threads`: the projections, the
  // concatenated heads and the attention's (args' sizes only are read).
  uint64_t workspace_bytes(const MhaForwardArgs& args, int threads) const;
  uint64_t workspace_bytes_cached(const MhaForwardArgs& args, const KVCache& cache, CacheMode mode, int threads) const;
  // What forward / forward_cached need from ws: on the threads pool gives their work.
  uint64_t workspace_bytes(const MhaForwardArgs& args, const ThreadPool& pool) const;
  uint64_t workspace_bytes_cached(const MhaForwardArgs& args, const KVCache& cache, CacheMode mode,
                                  const ThreadPool& pool) const;

  // Self-attention (query == key == value, same sizes) uses one fused QKV GEMM.
  // The call is one job of the pool; scratch comes from ws (see workspace.h),
  // kOutOfMemory if it cannot be had.
  Status forward(const MhaForwardArgs& args, ThreadPool& pool, Workspace& ws);
  // forward() with a KV cache (see CacheMode). The cache's length grows only when the call succeeds.
  Status forward_cached(const MhaForwardArgs& args, KVCache& cache, CacheMode mode, ThreadPool& pool, Workspace& ws);

  // A call planned to run as phases of a job: the blocks run theirs inside their own.
  struct Step {
    Gemm proj[3];            // the projections (one phase)
    int n_proj = 0;
    // Rows of projections that QK-norm and the rotary embedding change, and the
    // cache append (one phase over q_rows + k_rows rows): row r < q_rows is query
    // row r of q (and, fused, k at k_col of the same row, whose k | v go to the
    // cache when appending); the others are key rows of k.
    float* q = nullptr;
    size_t ldq = 0;
    int q_rows = 0;
    float* k = nullptr;      // separate key rows (not fused)
    size_t ldk = 0;
    int k_rows = 0;
    int k_col = -1;          // fused: the column of k in a q row (-1: none)
    int B = 0, Lq = 0, Lk = 0;
    const int32_t* position_ids = nullptr;
    bool positions_shared = false;
    int q_pos0 = 0;          // position of query 0 when no ids are given
    float* trig = nullptr;   // per thread: rope_dim floats of cos | sin
    KVCache* cache = nullptr;
    bool append = false;     // kAppend: copy the new keys and values into the cache
    int cache_row = 0;       // the row of the first new position
    int cache_length = 0;    // the cache's length after the call
    Attention::Plan attention;  // two phases
    Gemm out;                // the output projection, plus the residual if any (one phase)
    double work = 0;
  };
  // Plans a call for a team of up to `threads` (check()ed first): carves its scratch
  // (workspace_bytes(_cached)(..., threads)) from arena; a kFixed cache that is
  // empty is allocated here (kOutOfMemory if it cannot be), and a sliding cache
  // that is full moves the rows it keeps to the front. cache null: uncached.
  // With residual (a [B*Lq, E] array), the output projection adds it.
  Status plan(const MhaForwardArgs& args, KVCache* cache, CacheMode mode, int threads, Arena& arena,
              const float* residual, Step& step);
  // Runs a planned step as phases of a job (each ends in a barrier).
  void run(const Step& step, ThreadPool::Team& team) const;
  // After the job: the cache's new length.
  static void finish(const Step& step);

  const MhaConfig& config() const { return cfg_; }
  // Bytes the last failing call needed (0 after a success).
  uint64_t last_request_bytes() const { return last_request_bytes_; }
  // The weights (the layer holds nothing else).
  size_t memory_bytes() const;

 private:
  // What a call carves: the projections (fused q | k | v rows of ldf_, or q, k
  // and v apart), the attention output [B*Lq, H*D] and the rotary tables; then the
  // attention's own.
  struct Scratch {
    float* proj;
    float* attn;
    float* trig;
  };
  Scratch carve(uint64_t proj_floats, uint64_t Mq, int threads, Arena& arena) const;
  uint64_t bytes(uint64_t proj_floats, int B, int Lq, int Lk, int threads) const;
  Status forward_in(const MhaForwardArgs& args, KVCache* cache, CacheMode mode, ThreadPool& pool, Workspace& ws);
  bool fused(const MhaForwardArgs& a) const;
  // kdim or vdim differ from embed_dim: Wk^T and Wv^T are held apart, in w_k_ and w_v_.
  bool kv_apart() const { return cfg_.kdim != cfg_.embed_dim || cfg_.vdim != cfg_.embed_dim; }
  bool row_phase(const Step& st) const;
  void write_trace(const MhaForwardArgs& a, const Step& st) const;
  void norm_and_rotate(float* x, int heads, const float* norm, const float* trig) const;
  static int query_position(const Step& st, int b, int i);
  static int key_position(const Step& st, int b, int j);
  // The projection GEMMs: q | k | v of x in one (rows of ldf_), q alone, k or v.
  Gemm qkv_gemm(int M, const float* x, float* y) const;
  Gemm q_gemm(int M, const float* x, float* y) const;
  Gemm k_gemm(int M, const float* x, float* y) const;
  Gemm v_gemm(int M, const float* x, float* y) const;

  MhaConfig cfg_;
  int H_, Hkv_, D_;
  int nq_, nk_;     // H * D and Hkv * D
  int nqp_, nkp_;   // rounded up to the panel width
  size_t ldf_;      // a fused projection row: nqp_ + 2 nkp_
  bool has_weights_ = false;
  PackedMatrix w_in_;  // Wq^T | Wk^T | Wv^T, of nqp_, nkp_, nkp_ columns (Wq^T alone when kv_apart())
  PackedMatrix w_k_, w_v_;
  FloatBuffer b_in_;   // bq | bk | bv, padded likewise (zeros)
  PackedMatrix w_out_;  // Wo^T
  FloatBuffer b_out_;
  // inv_freq [rope_dim / 2] (doubles) | sinks [H] | alibi [H] | q_norm [D] | k_norm [D], as configured
  FloatBuffer extras_;
  const double* inv_freq_ = nullptr;
  const float* sinks_ = nullptr;
  const float* alibi_ = nullptr;
  const float* q_norm_ = nullptr;
  const float* k_norm_ = nullptr;
  Rope rope_;
  uint64_t last_request_bytes_ = 0;
};

}  // namespace mha
