// A whole Transformer model on the core's layers, one call per step: token
// (+ learned position, + token type) embeddings, N blocks, a final norm and an
// optional head over the vocabulary. Each block is
//   pre-norm (GPT-2, Llama, Qwen2, Mistral): x += attn(norm1(x)); x += ffn(norm2(x))
//   post-norm (BERT):                        x = norm1(x + attn(x)); x = norm2(x + ffn(x))
// with the attention's modern options (grouped KV heads, rotary, windows, ...) and a
// plain or gated feed-forward. Weights stay in wasm memory; a ModelCache holds a KV
// cache per block for incremental decoding.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "buffer.h"
#include "feed_forward.h"
#include "layer_norm.h"
#include "linear.h"
#include "mha.h"
#include "status.h"
#include "thread_pool.h"
#include "workspace.h"

namespace mha {

struct ModelConfig {
  int vocab = 0, hidden = 0, layers = 0;
  int max_positions = 0;    // rows of a learned absolute position table (0: none)
  int type_vocab = 0;       // rows of a token-type table (0: none)
  bool embed_norm = false;  // a LayerNorm over the summed embeddings (BERT), with norm_eps
  bool rms_norm = false;    // the blocks' and the final norm: RMSNorm, else LayerNorm
  bool norm_bias = true;    // LayerNorms have a bias
  float norm_eps = 1e-5f;
  bool pre_norm = true;
  bool final_norm = true;
  enum Head : int { kNoHead = 0, kTied = 1, kUntied = 2 };
  int head = kNoHead;       // logits over the vocabulary (tied: the token table), or hidden states
  bool causal = true;
  MhaConfig attention;      // embed_dim = kdim = vdim = hidden
  int window_from = 0;      // attention.window applies to blocks window_from.. only (Qwen2's max_window_layers)
  FeedForwardConfig ffn;    // d_model = hidden
  // The blocks' matrices are stored as attention.weight_type and ffn.weight_type,
  // and so are the head and the token table. In float32 the lookup reads the table
  // as given (a tied head: a packed copy of it). In float16 or int8 the lookup
  // dequantizes a token's row (int8: one scale per token): of a tied head, which
  // then is the only copy (for SmolLM-135M, 113 MB less than a float32 table), or
  // of a packed table of its own. The position and token-type tables and the
  // norms stay float32.
};

// One block's weights (PyTorch layout). norm*_bias only for a LayerNorm with bias.
struct BlockWeights {
  const float* norm1_weight = nullptr;
  const float* norm1_bias = nullptr;
  MhaWeights attention;
  const float* norm2_weight = nullptr;
  const float* norm2_bias = nullptr;
  FeedForwardWeights ffn;
};

struct EmbeddingWeights {
  const float* tokens = nullptr;     // [vocab, hidden], or null: set by Model::set_token_rows
  const float* positions = nullptr;  // [max_positions, hidden], when the config has them
  const float* types = nullptr;      // [type_vocab, hidden]
  const float* norm_weight = nullptr;  // embed_norm
  const float* norm_bias = nullptr;
};

class Model;

// A KV cache per block, for batch `batch` and up to `capacity` positions (a
// sliding-window block's keeps the last capacity ones).
class ModelCache {
 public:
  ModelCache(const ModelConfig& cfg, int batch, int capacity) : cfg_(cfg), batch_(batch), capacity_(capacity) {}
  // Allocates every block's buffers; kOutOfMemory if they do not fit.
  Status ready();
  static uint64_t bytes(const ModelConfig& cfg, int batch, int capacity);
  int batch() const { return batch_; }
  int capacity() const { return capacity_; }
  int length() const { return allocated_ ? caches_[0].length() : 0; }
  void reset();
  // Keeps every block's first n positions (KVCache::truncate); false, changing
  // nothing, when some block cannot (n past the length, or a sliding block that
  // has let go of its first positions).
  bool truncate(int n);
  size_t memory_bytes() const;
  KVCache& block(int i) { return caches_[i]; }

 private:
  ModelConfig cfg_;
  int batch_, capacity_;
  bool allocated_ = false;
  std::unique_ptr<KVCache[]> caches_;
};

struct ModelForwardArgs {
  int B = 0, L = 0;
  const int32_t* ids = nullptr;          // [B, L] token ids in [0, vocab)
  const int32_t* token_types = nullptr;  // [B, L] in [0, type_vocab), or null (type 0)
  // Positions of the new tokens [B, L] (learned table rows and rotary angles), or
  // null: their index after what the cache holds.
  const int32_t* positions = nullptr;
  // [B, cache length + L]: nonzero = ignore that key (padding), or null.
  const uint8_t* key_padding = nullptr;
  ModelCache* cache = nullptr;
  // Logits [B, rows, vocab] with a head, else hidden states [B, rows, hidden];
  // rows = 1 (each sequence's last position) when last_only, else L.
  float* output = nullptr;
  bool last_only = false;
  // Optional attention weights per block and head: [layers, B, H, L, cache length + L].
  float* weights = nullptr;
};

class Model {
 public:
  explicit Model(const ModelConfig& cfg);
  static bool valid(const ModelConfig& cfg);
  const ModelConfig& config() const { return cfg_; }
  // Bytes of weights the model holds once every set_* succeeded (packed; the
  // blocks' matrices as their weight types, everything else float32).
  static uint64_t weight_bytes(const ModelConfig& cfg);

  Status set_embeddings(const EmbeddingWeights& w);
  Status set_block(int i, const BlockWeights& w);
  // The final norm (final_norm); bias only for a LayerNorm with bias.
  Status set_final_norm(const float* weight, const float* bias);
  // The head [vocab, hidden] (kUntied; kTied takes the token table in set_embeddings).
  Status set_head(const float* weight);
  // The token table and an untied head in blocks of rows, for a caller that would
  // rather not hold a float32 copy of a whole table in this memory at once (for a
  // 150k-token vocabulary that is hundreds of MB, and wasm memory never shrinks):
  // begin_*_rows() reserves the table (kOutOfMemory if it cannot), every row unset;
  // then set_*_rows packs rows [first, first + count) of [vocab, hidden] in order
  // (first = the rows set so far), every block but the last a multiple of
  // kRowBlock rows. The table is set once its last row is; set_embeddings with
  // tokens null sets the other embeddings. A refused block (kInvalidArgument: out
  // of order, or values the weight type cannot store) leaves the table unset, to
  // be begun again.
  static constexpr int kRowBlock = kernels::kNR;
  Status begin_token_rows() { return begin_table_rows(false); }
  Status set_token_rows(int first, int count, const float* rows) { return set_table_rows(false, first, count, rows); }
  Status begin_head_rows();
  Status set_head_rows(int first, int count, const float* rows);
  // Rows set so far of the token table (head false) or the head: -1 when not begun or
  // refused since, vocab when complete.
  int table_rows(bool head) const { return head ? head_rows_ : token_rows_; }
  bool ready() const;

  // kInvalidArgument when an id, type or position is out of range or the cache
  // does not fit; kNoWeights before every weight is set.
  Status forward(const ModelForwardArgs& a, ThreadPool& pool, Workspace& ws);
  uint64_t last_request_bytes() const { return last_request_bytes_; }
  size_t memory_bytes() const;

 private:
  struct Block {
    RowNorm norm1, norm2;
    MultiHeadAttention attn;
    FeedForward ffn;
    bool has_weights = false;
  };
  RowNorm make_norm() const;
  MhaConfig block_attention(int i) const;
  Status check(const ModelForwardArgs& a) const;
  MhaForwardArgs attn_args(const ModelForwardArgs& a, const float* x, float* y, int block) const;

  ModelConfig cfg_;
  std::vector<Block> blocks_;
  FloatBuffer tokens_, positions_, types_;
  PackedMatrix token_rows_storage_;  // the token table as weight_type (f16, int8) when no tied head holds it
  RowNorm embed_norm_, final_norm_;
  Linear head_;
  Status begin_table_rows(bool head);
  Status set_table_rows(bool head, int first, int count, const float* rows);
  // Rows set so far of the token table and of the head (vocab when complete), or
  // -1: not begun (or refused since).
  int token_rows_ = -1, head_rows_ = -1;
  bool has_embeddings_ = false, has_final_norm_ = false;  // the embeddings but the token table
  uint64_t last_request_bytes_ = 0;
};

}  // namespace mha
