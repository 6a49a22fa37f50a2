// The KV cache object JS holds (see layer.createCache): self-attention's keys and
// values, and for a decoder layer the projected memory of the cross-attention.
#pragma once
#include "mha.h"
#include "runtime.h"

namespace mha_bind {

class Cache {
 public:
  Cache(int batch, int capacity, int width) : status_(self_.init(batch, capacity, width)) {}
  int status() const { return static_cast<int>(status_); }
  int length() const { return self_.length(); }
  int crossLength() const { return cross_.length(); }
  void reset() { self_.reset(), cross_.reset(); }
  double memoryBytes() const { return static_cast<double>(self_.memory_bytes() + cross_.memory_bytes()); }
  // Null when the buffers could not be allocated (forward then refuses to run).
  mha::KVCache* self() { return status_ == mha::Status::kOk ? &self_ : nullptr; }
  mha::KVCache* cross() { return status_ == mha::Status::kOk ? &cross_ : nullptr; }

 private:
  mha::KVCache self_, cross_;
  mha::Status status_;
  LiveCount live_;
};

}  // namespace mha_bind
