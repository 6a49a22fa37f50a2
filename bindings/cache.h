// The KV cache object JS holds (see layer.createCache): self-attention's keys and
// values, and for a decoder layer the projected memory of the cross-attention.
// Its buffers are allocated on first use (ready()), so creating a cache never
// fails for lack of memory in either API: the first forward that uses it does.
#pragma once
#include "mha.h"
#include "runtime.h"

namespace mha_bind {

class Cache {
 public:
  // config: a CacheConfig record.
  explicit Cache(uint32_t config) : cfg_(record<mha::abi::CacheConfig>(config)) {}
  // Allocates the buffers if not done yet; kOutOfMemory if they do not fit.
  mha::Status ready() {
    if (!allocated_) {
      const mha::Status s = self_.init(cfg_.batch, cfg_.capacity, cfg_.width, cfg_.sliding != 0);
      if (s != mha::Status::kOk) return s;
      allocated_ = true;
    }
    return mha::Status::kOk;
  }
  int readyStatus() { return static_cast<int>(ready()); }
  int length() const { return self_.length(); }
  int crossLength() const { return cross_.length(); }
  void reset() { self_.reset(), cross_.reset(); }
  // Keeps the self-attention's first n positions (a decoder's projected memory stays).
  bool truncate(int n) { return allocated_ ? self_.truncate(n) : n == 0; }
  // Bytes ready() needs: keys and values of batch x rows x width floats.
  double requestBytes() const {
    return 2.0 * cfg_.batch * mha::KVCache::rows_for(cfg_.capacity, cfg_.sliding != 0) * cfg_.width * sizeof(float);
  }
  double memoryBytes() const { return static_cast<double>(self_.memory_bytes() + cross_.memory_bytes()); }
  mha::KVCache* self() { return &self_; }
  mha::KVCache* cross() { return &cross_; }

 private:
  mha::abi::CacheConfig cfg_;
  bool allocated_ = false;
  mha::KVCache self_, cross_;
  LiveCount live_;
};

// kOk when there is no cache, or when its buffers are ready (allocated on first use).
inline mha::Status ready(Cache* cache) { return cache ? cache->ready() : mha::Status::kOk; }

}  // namespace mha_bind
