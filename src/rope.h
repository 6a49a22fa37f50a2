// Rotary position embeddings (RoFormer; Llama's rotate_half and GPT-J's
// interleaved pairs), used by MultiHeadAttention and mha.applyRotaryEmbedding.
#pragma once
#include <cstddef>
#include <cstdint>

#include "status.h"
#include "thread_pool.h"
#include "workspace.h"

namespace mha {

struct Rope {
  int dim = 0;                      // channels that rotate: even, the first dim of a head
  bool interleaved = false;         // pairs (2c, 2c + 1); else (c, c + dim / 2)
  const double* inv_freq = nullptr;  // [dim / 2]: pair c turns by position * inv_freq[c]
  float attention_factor = 1.0f;    // multiplies cos and sin

  // trig[0, dim/2) = cos, trig[dim/2, dim) = sin of position pos's angles (times
  // the attention factor). Angles are computed in double, so far positions keep
  // their precision.
  void table(int64_t pos, float* trig) const;
  // Rotates the first dim channels of one head's vector v by a table().
  void rotate(float* v, const float* trig) const;
};

// mha.applyRotaryEmbedding: y = x rotated, x [B, H, L, D] (or [B, L, H, D] when
// blhd); token l of batch b at positions[(shared ? 0 : b * L) + l], or l when
// positions is null. y may alias x.
struct RotaryArgs {
  int B = 0, H = 0, L = 0, D = 0;
  bool blhd = false;
  const float* x = nullptr;
  float* y = nullptr;
  const int32_t* positions = nullptr;
  bool positions_shared = false;
  Rope rope;
};

// Per-thread tables come from ws; kOutOfMemory if they cannot be had.
Status apply_rotary(const RotaryArgs& a, ThreadPool& pool, Workspace& ws);

}  // namespace mha
