// State and helpers shared by the Embind glue files: one thread pool and one
// workspace per wasm instance, pointers from record fields, and the mask fields
// of a record.
// Every call takes one record (bindings/abi.js, generated as abi.h) written by
// the JS side into wasm memory, rather than positional arguments.
#pragma once
#include <cstdint>

#include "abi.h"
#include "attention.h"
#include "mha.h"
#include "thread_pool.h"
#include "workspace.h"

namespace mha_bind {

mha::ThreadPool& pool();
// The scratch memory every forward call of this instance runs in (workspace.h).
mha::Workspace& workspace();

// Layers and blocks created from JS and not yet deleted (for the memory tests).
// Each bound class holds a LiveCount member.
int live_objects();
struct LiveCount {
  LiveCount();
  ~LiveCount();
  LiveCount(const LiveCount&) = delete;
  LiveCount& operator=(const LiveCount&) = delete;
};

// A heap offset (a record field, or a record's own address) as a pointer; 0 is null.
template <class T>
T* ptr(uint32_t p) {
  return reinterpret_cast<T*>(static_cast<uintptr_t>(p));
}
template <class Record>
const Record& record(uint32_t p) {
  return *ptr<const Record>(p);
}

// Fills m from a record's mask fields (kind, mask, broadcast, key_padding,
// causal). broadcast: the attn mask is [Lq, Lk]; otherwise [B, H, Lq, Lk].
void set_mask(mha::MaskArgs& m, int32_t kind, uint32_t mask, int32_t broadcast, uint32_t key_padding, int32_t causal,
              int H, int Lq, int Lk);

// set_mask with the fields of a record whose mask fields carry prefix P (none, tgt_, memory_).
#define MHA_SET_MASK(m, r, P, H, Lq, Lk) \
  set_mask(m, (r).P##mask_kind, (r).P##mask, (r).P##mask_broadcast, (r).P##key_padding, (r).P##causal, H, Lq, Lk)

// The MultiHeadAttention weights of a record whose fields carry prefix P (mhaWeights in abi.js).
#define MHA_WEIGHTS_OF(r, P)                                                                                       \
  [&] {                                                                                                            \
    mha::MhaWeights w_;                                                                                            \
    w_.in_proj_weight = ptr<const float>((r).P##in_proj_weight), w_.q_proj_weight = ptr<const float>((r).P##q_proj_weight); \
    w_.k_proj_weight = ptr<const float>((r).P##k_proj_weight), w_.v_proj_weight = ptr<const float>((r).P##v_proj_weight); \
    w_.in_proj_bias = ptr<const float>((r).P##in_proj_bias), w_.out_proj_weight = ptr<const float>((r).P##out_proj_weight); \
    w_.out_proj_bias = ptr<const float>((r).P##out_proj_bias), w_.q_proj_bias = ptr<const float>((r).P##q_proj_bias); \
    w_.k_proj_bias = ptr<const float>((r).P##k_proj_bias), w_.v_proj_bias = ptr<const float>((r).P##v_proj_bias); \
    w_.sinks = ptr<const float>((r).P##sinks), w_.alibi_slopes = ptr<const float>((r).P##alibi_slopes);             \
    w_.q_norm_weight = ptr<const float>((r).P##q_norm_weight), w_.k_norm_weight = ptr<const float>((r).P##k_norm_weight); \
    w_.rope_inv_freq = ptr<const double>((r).P##rope_inv_freq);                                                    \
    /* Pre-quantized int8 matrices: with a scale, the matrix pointer holds int8 values. */                         \
    w_.in_proj_weight_scale = ptr<const float>((r).P##in_proj_weight_scale);                                       \
    w_.q_proj_weight_scale = ptr<const float>((r).P##q_proj_weight_scale);                                         \
    w_.k_proj_weight_scale = ptr<const float>((r).P##k_proj_weight_scale);                                         \
    w_.v_proj_weight_scale = ptr<const float>((r).P##v_proj_weight_scale);                                         \
    w_.out_proj_weight_scale = ptr<const float>((r).P##out_proj_weight_scale);                                     \
    return w_;                                                                                                     \
  }()

// The attention options of a record whose fields carry prefix P (attnOptions in abi.js), over c.
#define MHA_ATTENTION_OPTIONS(c, r, P)                                                                              \
  do {                                                                                                             \
    (c).num_heads = (r).P##num_heads, (c).bias = (r).P##bias != 0, (c).num_kv_heads = (r).P##num_kv_heads;         \
    (c).head_dim = (r).P##head_dim, (c).qkv_bias = (r).P##qkv_bias, (c).out_bias = (r).P##out_bias;                \
    (c).scale = (r).P##scale, (c).softcap = (r).P##softcap, (c).window = (r).P##window;                            \
    (c).alibi = (r).P##alibi != 0, (c).sinks = (r).P##sinks != 0, (c).qk_norm = (r).P##qk_norm != 0;               \
    (c).qk_norm_eps = (r).P##qk_norm_eps, (c).rope_dim = (r).P##rope_dim;                                          \
    (c).rope_interleaved = (r).P##rope_interleaved != 0, (c).rope_attention_factor = (r).P##rope_attention_factor; \
  } while (0)

}  // namespace mha_bind
