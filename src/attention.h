// Scaled dot-product attention, computed flash-style: each task takes a block of
// query rows of one (batch, head), walks the keys in blocks, and keeps a running
// max and sum per row (online softmax). No Lq x Lk matrix exists unless the
// caller asks for the attention weights, and even then it is only the output.
//
// Non-finite inputs give what PyTorch's math path gives (softmax(q k^T * scale +
// mask) @ v, masks added as -inf), computed literally:
//   - masks are added: NaN + -inf is NaN and +inf + -inf is NaN, so a mask does not
//     hide a NaN score; a row's softmax is NaN everywhere when a score is NaN or
//     +inf (inf - inf); -inf scores weigh 0 like masked keys;
//   - the weights multiply every value, masked keys' too: 0 * NaN = 0 * inf = NaN.
// So a NaN query row gives a NaN output row, and a NaN key or value of (b, h) gives
// NaN in every row of (b, h) that attends to anything (in the value's column only,
// for a value). The one difference, on purpose: a row that no mask leaves a key (or
// whose scores are all -inf) attends to nothing: zero output, zero weights, and it
// reads no value. Skipping fully masked key blocks keeps this exact: blocks are
// skipped only when the query block, K and V of (b, h) are finite (checked once per
// forward where a block may be skipped); otherwise every block is computed.
#pragma once
#include <climits>
#include <cstddef>
#include <cstdint>

#include "buffer.h"
#include "status.h"
#include "thread_pool.h"
#include "workspace.h"

namespace mha {

// A 4-D float tensor view: element (b, h, i, c) at data + b*sb + h*sh + i*sl + c.
struct View {
  const float* data = nullptr;
  size_t sb = 0, sh = 0, sl = 0;
};

// Masks. Boolean masks use the nn.MultiheadAttention polarity: nonzero = this
// key may NOT be attended. Float masks are added to the scaled scores.
struct MaskArgs {
  // attn mask, element (b, h, i, j) at base + b*sb + h*sh + i*sl + j; set sb/sh
  // to 0 to broadcast an [Lq, Lk] mask. At most one of the two is non-null.
  const uint8_t* bool_mask = nullptr;
  const float* float_mask = nullptr;
  size_t sb = 0, sh = 0, sl = 0;
  // key padding mask [B, Lk] (row b at key_padding + b * kp_sb; kp_sb 0 means Lk),
  // nonzero = ignore that key.
  const uint8_t* key_padding = nullptr;
  size_t kp_sb = 0;
  // query i may attend key j only when j <= i + q_offset: q_offset is the key
  // position of query 0. kAlignEnd (the default) means Lk - Lq, bottom-right
  // aligned: the last query sees the last key, as when the queries are the last Lq
  // of the Lk positions (self-attention over a KV cache).
  //
  // Positions: key j is at position j and query i at i + q_offset, so q_offset
  // also places the sliding window and ALiBi's distances.
  bool causal = false;
  static constexpr int kAlignEnd = INT_MIN;
  int q_offset = kAlignEnd;
  // Sliding window (0: none): query i may attend key j only when
  // |i + q_offset - j| < window (with causal: the last `window` positions).
  int window = 0;
};

// The causal diagonal: query i may attend key j only when j <= i + causal_diagonal
// (it is also query 0's position among the keys).
inline long causal_diagonal(const MaskArgs& m, int Lq, int Lk) {
  return m.q_offset == MaskArgs::kAlignEnd ? static_cast<long>(Lk) - Lq : static_cast<long>(m.q_offset);
}

struct AttentionArgs {
  int B = 0, H = 0, Lq = 0, Lk = 0, D = 0, Dv = 0;
  // Key/value heads (0: H). H must be a multiple: query head h reads key/value
  // head h / (H / Hkv) (grouped-query attention; 1 = multi-query).
  int Hkv = 0;
  View q, k, v;  // q: [B,H,Lq,D], k: [B,Hkv,Lk,D], v: [B,Hkv,Lk,Dv] as views
  float* out = nullptr;  // (b, h, i, c) at out + b*o_sb + h*o_sh + i*o_sl + c
  size_t o_sb = 0, o_sh = 0, o_sl = 0;
  float scale = 1.0f;
  // Soft-capping (0: none): scores become softcap * tanh(scores / softcap) after
  // the scale, before ALiBi and the masks.
  float softcap = 0.0f;
  // ALiBi slopes [H] (null: none): score -= slope_h * |pos_q - pos_k|.
  const float* alibi = nullptr;
  // Attention sinks [H] (null: none): one extra logit per head in each softmax's
  // denominator that attends to nothing; the weights returned leave it out.
  const float* sinks = nullptr;
  MaskArgs mask;
  // Optional attention weights: [B, H, Lq, Lk], or [B, Lq, Lk] (mean over heads)
  // when average_weights. Rows that attend nothing are all zero; a row whose softmax
  // is NaN (see above) is NaN everywhere.
  float* weights = nullptr;
  bool average_weights = false;
  // Row stride of the weights (0: Lk); a (b, h) block is Lq rows of it. Columns
  // past Lk are left as they are.
  size_t w_sl = 0;
};

// Scaled dot-product attention. It keeps nothing between calls: its scratch (K
// packed into panels once per (b, h); per thread a score tile, an output tile and
// the current key block of V packed into panels) comes from a Workspace. A call
// is planned (scratch carved, block skipping decided) on the calling thread and
// run as two phases of a job: K packed per (b, h), then the query blocks.
class Attention {
 public:
  // Query and key block sizes of a task (key blocks are a multiple of 8).
  static constexpr int kBlockQ = 64;
  static constexpr int kBlockK = 128;
  // Up to this many query rows (a decoding step), K and V are read where they lie
  // (kernels::dot_rows, accumulate_rows): packing them would cost as much as the
  // attention itself. More rows pack K^T once per (b, kv head) and V per key block
  // for the GEMM micro-kernel.
  static constexpr int kDirectRows = 4;

  static bool valid(const AttentionArgs& a);
  // Floating-point operations of a call (ThreadPool::threads_for).
  static double work(const AttentionArgs& a);
  // Workspace bytes a call with a's sizes needs on a team of `threads` (only the
  // sizes are read): D * Lk (rounded up to 8) floats per (b, h) for K, and a few
  // blocks per thread. V is packed a key block at a time, so a small Dv costs
  // no more than Dv.
  static uint64_t workspace_bytes(const AttentionArgs& a, int threads);
  // What run(a, pool, ws) needs: on the threads the pool gives a call of this work.
  static uint64_t workspace_bytes(const AttentionArgs& a, const ThreadPool& pool);
  // Checks a, reserves workspace_bytes(a, pool) in ws and runs the call as one
  // job; kOutOfMemory (ws.last_request_bytes() says how much) if that fails.
  static Status run(const AttentionArgs& a, ThreadPool& pool, Workspace& ws);

  // A call ready to run in a job.
  struct Plan {
    AttentionArgs a;  // a.Hkv set (never 0)
    float* pk;  // packed K^T panels, one block of pk_stride floats per (b, kv head); null when direct
    size_t pk_stride;
    float* scratch;
    size_t scratch_stride;  // floats per thread
    int n_qblocks;
    int dvp;  // Dv rounded up to 8
    // Whether some key block is fully masked for some query block (so it may be
    // skipped), and then, per (b, kv head), 1 if K and V are finite at every key a
    // skipped block may hold (past the first query block's causal end, or padding;
    // with a window, every key), else 0.
    bool may_skip;
    int causal_min_end;
    float* kv_finite;
    bool direct;  // a.Lq <= kDirectRows: K and V are read in place, nothing is packed
  };
  // Plans a (valid()) for a team of up to `threads`: carves its scratch
  // (workspace_bytes(a, threads)) from arena. Reads no data, only sizes and masks.
  static Plan plan(const AttentionArgs& a, int threads, Arena& arena);
  // Runs a planned call as two phases of a job, each ending in a barrier.
  static void run(const Plan& p, ThreadPool::Team& team);

  // One query row of (b, h), step by step, for teaching (mha's inspect): scores
  // raw = q.k, scaled, soft-capped, biased (ALiBi and a float mask added), masked
  // (-inf where a mask hides the key), the softmax weights (a sink in the
  // denominator, not in the weights) [Lk] each, and the head's output [Dv].
  // Plain scalar code over a's views, with the same rules as run().
  struct Trace {
    float *raw, *scaled, *softcapped, *biased, *masked, *weights, *head;
  };
  static void trace(const AttentionArgs& a, int b, int h, int i, const Trace& out);
};

}  // namespace mha
