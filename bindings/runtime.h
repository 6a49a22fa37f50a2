// State and helpers shared by the Embind glue files: one thread pool per wasm
// instance, pointers from JS numbers, and the attn-mask arguments.
#pragma once
#include <cstdint>

#include "attention.h"
#include "thread_pool.h"

namespace mha_bind {

mha::ThreadPool& pool();

// Layers and blocks created from JS and not yet deleted (for the memory tests).
// Each bound class holds a LiveCount member.
int live_objects();
struct LiveCount {
  LiveCount();
  ~LiveCount();
  LiveCount(const LiveCount&) = delete;
  LiveCount& operator=(const LiveCount&) = delete;
};

// Pointers cross the boundary as plain numbers (byte offsets into the heap).
template <class T>
T* ptr(double p) {
  return reinterpret_cast<T*>(static_cast<uintptr_t>(p));
}

// Fills the attn-mask part of m. kind: 0 none, 1 bool (Uint8Array), 2 float.
// broadcast: dims [Lq, Lk]; otherwise [B, H, Lq, Lk].
void set_mask(mha::MaskArgs& m, int kind, double mask, bool broadcast, int H, int Lq, int Lk);

}  // namespace mha_bind
