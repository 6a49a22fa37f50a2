// Scratch memory for forward calls: one Workspace per runtime, shared by every
// layer and block (ggml's cplan work_data, XNNPACK's xnn_workspace). Layers hold
// weights and caches hold keys and values; everything a call computes on the
// way (projections, attention's packed keys, the feed-forward hidden layer,
// per-thread tiles) is carved from the workspace for that call only.
//
// Each operator says what it needs before it runs (workspace_bytes(args,
// threads)); the call reserves that much, carves it with an Arena, runs, and
// hands it back (after_call). Nothing throws: a failed allocation is
// Status::kOutOfMemory with last_request_bytes() = what was asked for.
//
// Release policy: the area grows to the largest call (by at least a quarter, so
// slowly growing calls such as cached decoding do not reallocate every step)
// and is kept while calls use a fair part of it, so a loop of calls allocates
// nothing. After a call that needed less than a quarter of it, when it is also
// more than kKeepSlackBytes larger than that call needed, it is freed: a one-off
// huge call does not pin its peak for the life of the runtime (the memory goes
// back to the allocator, where caches, weights and inputs can use it), and
// small workspaces are never freed and reallocated call after call.
#pragma once
#include <cstddef>
#include <cstdint>

#include "status.h"

namespace mha {

class Workspace {
 public:
  static constexpr uint64_t kAlign = 64;
  static constexpr uint64_t kKeepFactor = 4;             // freed when capacity > 4x what the call needed
  static constexpr uint64_t kKeepSlackBytes = 16u << 20;  // ... and more than 16 MiB beyond it

  Workspace() = default;
  ~Workspace() { release(); }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  // Makes `bytes` available at data() (kAlign-aligned; contents are not kept
  // when it grows). kOutOfMemory, with last_request_bytes() == bytes and the
  // workspace empty, when they cannot be had.
  Status reserve(uint64_t bytes);
  // The release policy, after a call that used `bytes` of it.
  void after_call(uint64_t bytes);
  void release();

  void* data() { return data_; }
  uint64_t capacity_bytes() const { return capacity_; }
  // What the last reserve() that failed asked for (0 after a success).
  uint64_t last_request_bytes() const { return last_request_bytes_; }

 private:
  void* data_ = nullptr;
  uint64_t capacity_ = 0;
  uint64_t last_request_bytes_ = 0;
};

// Carves kAlign-aligned float arrays off a region, in order. Without a base it
// only counts, which is how an operator's workspace_bytes() is computed: the
// same carving code sizes the region and then cuts it, so the two cannot
// disagree.
class Arena {
 public:
  Arena() = default;  // counting only: every array is null
  // Carves [base, base + capacity) (a workspace's data() and what was reserved).
  Arena(void* base, uint64_t capacity) : base_(static_cast<char*>(base)), capacity_(capacity) {}
  // n floats; null when counting, and also past the capacity, so that a carving
  // that disagrees with its own count fails at once instead of overwriting memory.
  float* floats(uint64_t n) {
    const uint64_t at = used_;
    used_ += (n * sizeof(float) + Workspace::kAlign - 1) / Workspace::kAlign * Workspace::kAlign;
    return base_ && used_ <= capacity_ ? reinterpret_cast<float*>(base_ + at) : nullptr;
  }
  uint64_t bytes() const { return used_; }
  bool counting() const { return base_ == nullptr; }
  // A mark to return to: arrays carved after it are dead once the arena is reset to it.
  uint64_t mark() const { return used_; }
  void reset(uint64_t mark) { used_ = mark; }

 private:
  char* base_ = nullptr;
  uint64_t capacity_ = 0;
  uint64_t used_ = 0;
};

}  // namespace mha
