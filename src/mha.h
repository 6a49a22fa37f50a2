// torch.nn.MultiheadAttention (batch_first=True, dropout 0) forward pass.
#pragma once
#include <cstddef>
#include <cstdint>

#include "attention.h"
#include "buffer.h"
#include "linear.h"
#include "status.h"
#include "thread_pool.h"
#include "workspace.h"

namespace mha {

struct MhaConfig {
  int embed_dim = 0;
  int num_heads = 0;
  int kdim = 0;  // input size of key (defaults to embed_dim at the API level)
  int vdim = 0;  // input size of value
  bool bias = true;
};

// Weights in PyTorch state_dict layout. Either in_proj_weight [3E, E] (only when
// kdim == vdim == E) or the three q/k/v_proj_weight ([E,E], [E,kdim], [E,vdim]).
// Biases are required when config.bias and ignored otherwise.
struct MhaWeights {
  const float* in_proj_weight = nullptr;
  const float* q_proj_weight = nullptr;
  const float* k_proj_weight = nullptr;
  const float* v_proj_weight = nullptr;
  const float* in_proj_bias = nullptr;  // [3E]
  const float* out_proj_weight = nullptr;  // [E, E]
  const float* out_proj_bias = nullptr;    // [E]
};

struct MhaForwardArgs {
  int B = 0, Lq = 0, Lk = 0;
  const float* query = nullptr;  // [B, Lq, E]
  const float* key = nullptr;    // [B, Lk, kdim]
  const float* value = nullptr;  // [B, Lk, vdim]
  // Masks. For an attn mask of dims [Lq, Lk] set sb = sh = 0 and sl = Lk; for
  // [B, H, Lq, Lk] set the full strides.
  MaskArgs mask;
  float* output = nullptr;   // [B, Lq, E]
  float* weights = nullptr;  // optional: [B, H, Lq, Lk] or [B, Lq, Lk] if average
  bool average_weights = true;
};

// Projected keys and values of earlier positions, for incremental decoding:
// [batch, capacity, E] each. MultiHeadAttention::forward_cached fills it.
class KVCache {
 public:
  // Reserves both buffers and empties the cache; kOutOfMemory if they do not fit.
  Status init(int batch, int capacity, int width);
  int batch() const { return batch_; }
  int capacity() const { return capacity_; }
  int length() const { return length_; }
  void reset() { length_ = 0; }
  size_t memory_bytes() const { return k_.bytes() + v_.bytes(); }

 private:
  friend class MultiHeadAttention;
  int batch_ = 0, capacity_ = 0, width_ = 0, length_ = 0;
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
    const float* qkv = nullptr;  // kAppend: the fused projection, whose k | v rows go to the cache (one phase)
    size_t ld = 0;
    int B = 0, Lq = 0;
    KVCache* cache = nullptr;
    int cache_length = 0;    // the cache's length after the call
    Attention::Plan attention;  // two phases
    Gemm out;                // the output projection, plus the residual if any (one phase)
    double work = 0;
  };
  // Plans a call for a team of up to `threads` (check()ed first): carves its scratch
  // (workspace_bytes(_cached)(..., threads)) from arena; a kFixed cache that is
  // empty is allocated here (kOutOfMemory if it cannot be). cache null: uncached.
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
  // What a call carves: the projections (fused q | k | v rows of 3 * ep_, or q, k
  // and v of E each) and the attention output [B*Lq, E]; then the attention's own.
  struct Scratch {
    float* proj;
    float* attn;
  };
  Scratch carve(uint64_t proj_floats, uint64_t Mq, Arena& arena) const;
  uint64_t bytes(uint64_t proj_floats, int B, int Lq, int Lk, int threads) const;
  Status forward_in(const MhaForwardArgs& args, KVCache* cache, CacheMode mode, ThreadPool& pool, Workspace& ws);
  bool fused(const MhaForwardArgs& a) const;
  // The projection GEMMs: q | k | v of x in one (rows of 3 * ep_), q alone, k or v.
  Gemm qkv_gemm(int M, const float* x, float* y) const;
  Gemm q_gemm(int M, const float* x, float* y) const;
  Gemm k_gemm(int M, const float* x, float* y) const;
  Gemm v_gemm(int M, const float* x, float* y) const;

  MhaConfig cfg_;
  int ep_;  // E rounded up to the panel width
  bool has_weights_ = false;
  FloatBuffer w_in_;   // packed Wq^T | Wk^T | Wv^T, each padded to ep_ columns
  FloatBuffer b_in_;   // bq | bk | bv, each padded to ep_ (zeros)
  FloatBuffer w_out_;  // packed Wo^T
  FloatBuffer b_out_;
  uint64_t last_request_bytes_ = 0;
};

}  // namespace mha
