// State shared by the Embind glue files: one thread pool per wasm instance.
#pragma once
#include "thread_pool.h"

namespace mha_bind {
mha::ThreadPool& pool();
}

#include "attention.h"
namespace mha_bind {
// Fills the attn-mask part of m. kind: 0 none, 1 bool (Uint8Array), 2 float.
// broadcast: dims [Lq, Lk]; otherwise [B, H, Lq, Lk].
void set_mask(mha::MaskArgs& m, int kind, double mask, bool broadcast, int H, int Lq, int Lk);
}
