// Transformer blocks on the same kernels and thread pool as the attention:
// torch.nn.TransformerEncoderLayer (batch_first=True, dropout 0), post-norm
// (norm_first = false, PyTorch's default) or pre-norm.
//   post-norm: x = norm1(x + self_attn(x)); x = norm2(x + ff(x))
//   pre-norm:  x = x + self_attn(norm1(x)); x = x + ff(norm2(x))
//   ff(x) = linear2(activation(linear1(x))): a FeedForward (feed_forward.h)
#pragma once
#include <cstdint>

#include "abi.h"
#include "buffer.h"
#include "feed_forward.h"
#include "layer_norm.h"
#include "linear.h"
#include "mha.h"
#include "status.h"
#include "thread_pool.h"
#include "workspace.h"

namespace mha {

struct EncoderConfig {
  int d_model = 0, nhead = 0, dim_feedforward = 2048;
  Activation activation = Activation::kRelu;
  float layer_norm_eps = 1e-5f;
  bool norm_first = false;
  bool bias = true;  // linear and LayerNorm biases too, as in PyTorch
  // How the attention and feed-forward matrices are stored (biases and norms stay float32).
  WeightType weight_type = WeightType::kF32;
};

// Matrices may come pre-quantized in an int8 block, as in MhaWeights: with
// linear1_weight_scale set, linear1_weight points to int8 values (likewise linear2).
struct EncoderWeights {
  MhaWeights self_attn;  // in_proj_weight / in_proj_bias / out_proj (and their _scale)
  const float* linear1_weight = nullptr;  // [F, E]
  const float* linear1_bias = nullptr;    // [F]
  const float* linear2_weight = nullptr;  // [E, F]
  const float* linear2_bias = nullptr;    // [E]
  const float* linear1_weight_scale = nullptr;  // [F]
  const float* linear2_weight_scale = nullptr;  // [E]
  const float* norm1_weight = nullptr;    // [E]
  const float* norm1_bias = nullptr;
  const float* norm2_weight = nullptr;
  const float* norm2_bias = nullptr;
};

struct EncoderForwardArgs {
  int B = 0, L = 0;
  const float* src = nullptr;  // [B, L, E]
  MaskArgs mask;               // src_mask, src_key_padding_mask, is_causal
  float* output = nullptr;     // [B, L, E]; may not alias src
  // Incremental decoding: src holds the new positions, whose keys and values are
  // appended to the cache; they attend over all cached positions (Lk = length
  // after the append, the size masks must have).
  KVCache* cache = nullptr;
  float* weights = nullptr;    // optional self-attention weights per head [B, H, L, Lk]
};

class TransformerEncoderLayer {
 public:
  explicit TransformerEncoderLayer(const EncoderConfig& cfg);
  static bool valid(const EncoderConfig& cfg);
  Status set_weights(const EncoderWeights& w);
  // Workspace bytes forward(a) needs on `threads` threads: two [B*L, E] activations
  // and the larger of what the self-attention and the feed-forward need.
  uint64_t workspace_bytes(const EncoderForwardArgs& a, int threads) const;
  // What forward(a) needs from ws: on the threads the pool gives its work.
  uint64_t workspace_bytes(const EncoderForwardArgs& a, const ThreadPool& pool) const;
  // Floating-point operations of a call (ThreadPool::threads_for).
  double work(const EncoderForwardArgs& a) const;
  // The whole step is one job of the pool (attention, norms and feed-forward as
  // phases with barriers between them). Scratch comes from ws (see
  // workspace.h); kOutOfMemory if it cannot be had.
  Status forward(const EncoderForwardArgs& a, ThreadPool& pool, Workspace& ws);
  uint64_t last_request_bytes() const { return last_request_bytes_; }
  // The weights (the layer holds nothing else).
  size_t memory_bytes() const;

 private:
  Status check(const EncoderForwardArgs& a) const;
  MhaForwardArgs self_args(const EncoderForwardArgs& a, const float* x, float* y) const;

  EncoderConfig cfg_;
  MultiHeadAttention attn_;
  FeedForward ff_;
  LayerNorm norm1_, norm2_;
  bool has_weights_ = false;
  uint64_t last_request_bytes_ = 0;
};

// torch.nn.TransformerDecoderLayer (batch_first=True, dropout 0): self-attention
// over tgt, cross-attention over memory, feed-forward; post- or pre-norm.
//   post-norm: x = norm1(x + sa(x)); x = norm2(x + mha(x, mem)); x = norm3(x + ff(x))
//   pre-norm:  x = x + sa(norm1(x)); x = x + mha(norm2(x), mem); x = x + ff(norm3(x))
using DecoderConfig = EncoderConfig;

struct DecoderWeights {
  MhaWeights self_attn, cross_attn;  // multihead_attn in PyTorch's names
  const float* linear1_weight = nullptr;
  const float* linear1_bias = nullptr;
  const float* linear2_weight = nullptr;
  const float* linear2_bias = nullptr;
  const float* linear1_weight_scale = nullptr;
  const float* linear2_weight_scale = nullptr;
  const float* norm_weight[3] = {nullptr, nullptr, nullptr};
  const float* norm_bias[3] = {nullptr, nullptr, nullptr};
};

struct DecoderForwardArgs {
  int B = 0, T = 0, S = 0;           // target and memory lengths
  const float* tgt = nullptr;        // [B, T, E]
  const float* memory = nullptr;     // [B, S, E]
  MaskArgs tgt_mask;                 // tgt_mask, tgt_key_padding_mask, tgt_is_causal
  // memory_mask, memory_key_padding_mask, memory_is_causal. memory_mask.causal lines
  // the target up with the memory from the start: target position t sees memory
  // positions j <= t (the mask [T, S] with j > t masked; for T == S the same as
  // bottom-right). With the caches, t counts the cached positions: the step's row i
  // is t = self_cache length before the call + i. That does not depend on how long
  // the target grows, so stepping positions 0..T-1 through the caches gives the full
  // forward's rows. The layer sets q_offset itself.
  MaskArgs memory_mask;
  float* output = nullptr;           // [B, T, E]; may not alias tgt or memory
  // Incremental decoding: tgt's keys and values are appended to self_cache
  // (CacheMode::kAppend); cross_cache holds memory's, projected on the first call
  // after a reset (kFixed). Both or neither.
  KVCache* self_cache = nullptr;
  KVCache* cross_cache = nullptr;
  float* self_weights = nullptr;     // optional weights per head: [B, H, T, T (or cached length)]
  float* cross_weights = nullptr;    // [B, H, T, S]
};

class TransformerDecoderLayer {
 public:
  explicit TransformerDecoderLayer(const DecoderConfig& cfg);
  static bool valid(const DecoderConfig& cfg) { return TransformerEncoderLayer::valid(cfg); }
  Status set_weights(const DecoderWeights& w);
  // Workspace bytes forward(a) needs on `threads` threads: two [B*T, E] activations
  // and the largest of what the two attentions and the feed-forward need.
  uint64_t workspace_bytes(const DecoderForwardArgs& a, int threads) const;
  // What forward(a) needs from ws: on the threads the pool gives its work.
  uint64_t workspace_bytes(const DecoderForwardArgs& a, const ThreadPool& pool) const;
  // Floating-point operations of a call (ThreadPool::threads_for).
  double work(const DecoderForwardArgs& a) const;
  // The whole step is one job of the pool, as the encoder's. Scratch comes from
  // ws (see workspace.h); kOutOfMemory if it cannot be had.
  Status forward(const DecoderForwardArgs& a, ThreadPool& pool, Workspace& ws);
  uint64_t last_request_bytes() const { return last_request_bytes_; }
  // The weights (the layer holds nothing else).
  size_t memory_bytes() const;

 private:
  Status check(const DecoderForwardArgs& a) const;
  // The arguments of the self- and cross-attention with query x and output y.
  MhaForwardArgs self_args(const DecoderForwardArgs& a, const float* x, float* y) const;
  MhaForwardArgs cross_args(const DecoderForwardArgs& a, const float* x, float* y) const;

  DecoderConfig cfg_;
  MultiHeadAttention self_attn_, cross_attn_;
  FeedForward ff_;
  LayerNorm norm1_, norm2_, norm3_;
  bool has_weights_ = false;
  uint64_t last_request_bytes_ = 0;
};

// One encoder block's step as phases of a job, after its attention was planned
// (step sa) with the residual x: pre-norm: query t, output h; post-norm: query x,
// output t. M rows of x (read) into out (which may be x), through t and h [M, E]
// and the feed-forward's scratch hidden.
//   pre-norm:  out = h + ff(norm2(h)), h = x + attn(norm1(x))
//   post-norm: out = norm2(h + ff(h)), h = norm1(x + attn(x))
// The Transformer encoder layer and each block of a Model run it.
void block_phases(ThreadPool::Team& team, bool pre_norm, int M, const RowNorm& norm1, const MultiHeadAttention& attn,
                  const MultiHeadAttention::Step& sa, const RowNorm& norm2, const FeedForward& ff, const float* x, float* t,
                  float* h, float* hidden, float* out);

// The decoder's cross-attention mask: memory_mask with the causal mask aligned so that
// query row i is target position first_position + i and sees memory positions j <= it.
MaskArgs cross_mask(const MaskArgs& memory_mask, int first_position);

}  // namespace mha
