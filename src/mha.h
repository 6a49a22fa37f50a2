// torch.nn.MultiheadAttention (batch_first=True, dropout 0) forward pass.
#pragma once
#include <cstddef>
#include <cstdint>

#include "attention.h"
#include "buffer.h"
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
  // Workspace bytes forward(args) needs on `threads` threads: the projections,
  // the concatenated heads and the attention's (args' sizes only are read).
  uint64_t workspace_bytes(const MhaForwardArgs& args, int threads) const;
  // The same for forward_cached(args, cache, mode).
  uint64_t workspace_bytes_cached(const MhaForwardArgs& args, const KVCache& cache, CacheMode mode, int threads) const;

  // Self-attention (query == key == value, same sizes) uses one fused QKV GEMM.
  // Scratch comes from ws (see workspace.h); kOutOfMemory if it cannot be had.
  Status forward(const MhaForwardArgs& args, ThreadPool& pool, Workspace& ws);
  // forward() with a KV cache (see CacheMode). The cache's length grows only when the call succeeds.
  Status forward_cached(const MhaForwardArgs& args, KVCache& cache, CacheMode mode, ThreadPool& pool, Workspace& ws);
  // The same two in scratch carved from arena, for a caller (a block) that reserved
  // workspace_bytes(_cached)(args, ..., pool.size()) as part of its own workspace.
  Status forward(const MhaForwardArgs& args, ThreadPool& pool, Arena& arena);
  Status forward_cached(const MhaForwardArgs& args, KVCache& cache, CacheMode mode, ThreadPool& pool, Arena& arena);

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
  // Attention of at.q/k/v into attn, then the output projection into a.output.
  void attend(const MhaForwardArgs& a, AttentionArgs& at, float* attn, ThreadPool& pool, Arena& arena);
  // q = query Wq^T + bq into q ([B*Lq, E]).
  void project_query(const MhaForwardArgs& a, float* q, ThreadPool& pool);
  // Self-attention's q | k | v of query in one GEMM into proj; returns its row stride (3 * ep_).
  size_t project_qkv(const MhaForwardArgs& a, float* proj, ThreadPool& pool);
  // key Wk^T + bk into k and value Wv^T + bv into v ([B*Lk, E] each).
  void project_kv(const MhaForwardArgs& a, float* k, float* v, ThreadPool& pool);
  bool fused(const MhaForwardArgs& a) const;

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
