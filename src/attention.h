// Scaled dot-product attention, computed flash-style: each task takes a block of
// query rows of one (batch, head), walks the keys in blocks, and keeps a running
// max and sum per row (online softmax). No Lq x Lk matrix exists unless the
// caller asks for the attention weights, and even then it is only the output.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "buffer.h"
#include "status.h"
#include "thread_pool.h"

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
  // key padding mask [B, Lk], nonzero = ignore that key.
  const uint8_t* key_padding = nullptr;
  // query i may attend key j only when j <= i + (Lk - Lq) (bottom-right aligned).
  bool causal = false;
};

struct AttentionArgs {
  int B = 0, H = 0, Lq = 0, Lk = 0, D = 0, Dv = 0;
  View q, k, v;  // q: [B,H,Lq,D], k: [B,H,Lk,D], v: [B,H,Lk,Dv] as views
  float* out = nullptr;  // (b, h, i, c) at out + b*o_sb + h*o_sh + i*o_sl + c
  size_t o_sb = 0, o_sh = 0, o_sl = 0;
  float scale = 1.0f;
  MaskArgs mask;
  // Optional attention weights: [B, H, Lq, Lk], or [B, Lq, Lk] (mean over heads)
  // when average_weights. Rows that attend nothing are all zero.
  float* weights = nullptr;
  bool average_weights = false;
};

class Attention {
 public:
  // Query and key block sizes of a task (key blocks are a multiple of 8).
  static constexpr int kBlockQ = 64;
  static constexpr int kBlockK = 128;

  Status run(const AttentionArgs& a, ThreadPool& pool);
  // Bytes the last failing call tried to hold in workspace (for error messages).
  uint64_t last_request_bytes() const { return last_request_bytes_; }
  size_t workspace_bytes() const { return packed_k_.bytes() + packed_v_.bytes() + scratch_.bytes(); }

 private:
  FloatBuffer packed_k_, packed_v_, scratch_;
  uint64_t last_request_bytes_ = 0;
};

// Scalar float64 reference (tests only): same arguments, no workspace.
void attention_reference(const AttentionArgs& a);

// The reference's softmax of one query row i of (b, h) with every mask applied:
// p[j] = attention probability of key j (all 0 when no key is visible).
// dot(j) is q_i . k_j in double. When weights is non-null the row is added to
// it ([B,H,Lq,Lk], or 1/H of it to [B,Lq,Lk]).
void reference_softmax_row(const MaskArgs& m, int H, int Lq, int Lk, int b, int h, int i, double scale,
                           const std::function<double(int)>& dot, std::vector<double>& p, float* weights,
                           bool average);

}  // namespace mha
