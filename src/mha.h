// torch.nn.MultiheadAttention (batch_first=True, dropout 0) forward pass.
#pragma once
#include <cstddef>
#include <cstdint>

#include "attention.h"
#include "buffer.h"
#include "status.h"
#include "thread_pool.h"

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
  // Self-attention (query == key == value, same sizes) uses one fused QKV GEMM.
  Status forward(const MhaForwardArgs& args, ThreadPool& pool);
  // forward() with a KV cache (see CacheMode). The cache's length grows only when the call succeeds.
  Status forward_cached(const MhaForwardArgs& args, KVCache& cache, CacheMode mode, ThreadPool& pool);

  const MhaConfig& config() const { return cfg_; }
  // Bytes the last failing call needed (0 after a success).
  uint64_t last_request_bytes() const { return last_request_bytes_; }
  size_t memory_bytes() const;

 private:
  // Attention of at.q/k/v into attn_, then the output projection into a.output.
  Status attend(const MhaForwardArgs& a, AttentionArgs& at, ThreadPool& pool);
  // q = query Wq^T + bq into proj_ ([B*Lq, E]).
  void project_query(const MhaForwardArgs& a, ThreadPool& pool);
  // Self-attention's q | k | v of query in one GEMM into proj_; returns its row stride (3 * ep_).
  size_t project_qkv(const MhaForwardArgs& a, ThreadPool& pool);
  // key Wk^T + bk into k and value Wv^T + bv into v ([B*Lk, E] each).
  void project_kv(const MhaForwardArgs& a, float* k, float* v, ThreadPool& pool);

  MhaConfig cfg_;
  int ep_;  // E rounded up to the panel width
  bool has_weights_ = false;
  FloatBuffer w_in_;   // packed Wq^T | Wk^T | Wv^T, each padded to ep_ columns
  FloatBuffer b_in_;   // bq | bk | bv, each padded to ep_ (zeros)
  FloatBuffer w_out_;  // packed Wo^T
  FloatBuffer b_out_;
  FloatBuffer proj_;  // projected q/k/v (fused: [B*L, 3*ep_])
  FloatBuffer attn_;  // concatenated head outputs [B*Lq, E]
  Attention attention_;
  uint64_t last_request_bytes_ = 0;
};

}  // namespace mha
