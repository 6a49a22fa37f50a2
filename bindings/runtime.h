// State and helpers shared by the Embind glue files: one thread pool and one
// workspace per wasm instance, pointers from record fields, and the mask fields
// of a record.
// Every call takes one record (bindings/abi.js, generated as abi.h) written by
// the JS side into wasm memory, rather than positional arguments.
#pragma once
#include <cstdint>

#include "abi.h"
#include "attention.h"
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

}  // namespace mha_bind
