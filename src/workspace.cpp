#include "workspace.h"

#include <cstdlib>

namespace mha {

Status Workspace::reserve(uint64_t bytes) {
  last_request_bytes_ = 0;
  if (bytes < kAlign) bytes = kAlign;  // data() is never null after a success
  if (bytes <= capacity_) return Status::kOk;
  // Grow by a quarter at least, so calls that grow a little at a time (a KV
  // cache filling up) do not reallocate on every call.
  uint64_t want = capacity_ + capacity_ / 4;
  if (want < bytes) want = bytes;
  want = (want + kAlign - 1) / kAlign * kAlign;
  release();  // first, so the allocator can reuse the space
  void* p = want <= SIZE_MAX ? std::aligned_alloc(kAlign, static_cast<size_t>(want)) : nullptr;
  if (!p && want > bytes) {  // the quarter did not fit: exactly what was asked
    want = (bytes + kAlign - 1) / kAlign * kAlign;
    p = want <= SIZE_MAX ? std::aligned_alloc(kAlign, static_cast<size_t>(want)) : nullptr;
  }
  if (!p) {
    last_request_bytes_ = bytes;
    return Status::kOutOfMemory;
  }
  data_ = p;
  capacity_ = want;
  return Status::kOk;
}

void Workspace::after_call(uint64_t bytes) {
  if (capacity_ > kKeepFactor * bytes && capacity_ - bytes > kKeepSlackBytes) release();
}

void Workspace::release() {
  std::free(data_);
  data_ = nullptr;
  capacity_ = 0;
}

}  // namespace mha
