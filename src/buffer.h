// Grow-only, 64-byte aligned float buffer that never throws: allocation failure
// is reported as a bool so the caller can turn it into Status::kOutOfMemory.
// What persists is held in these: layers' packed weights and KV caches' keys and
// values. Scratch for a call comes from a Workspace (workspace.h) instead.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace mha {

class FloatBuffer {
 public:
  FloatBuffer() = default;
  FloatBuffer(const FloatBuffer&) = delete;
  FloatBuffer& operator=(const FloatBuffer&) = delete;
  FloatBuffer(FloatBuffer&& o) noexcept : data_(o.data_), capacity_(o.capacity_) {
    o.data_ = nullptr;
    o.capacity_ = 0;
  }
  ~FloatBuffer() { std::free(data_); }

  // Makes room for n floats (contents are not preserved when it grows). n is
  // 64-bit so sizes computed on wasm32 cannot wrap around before this check.
  bool reserve(uint64_t n) {
    if (n <= capacity_) return true;
    if (n > (SIZE_MAX - 64) / sizeof(float)) return false;
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, bytes);
    if (!p) return false;
    std::free(data_);
    data_ = static_cast<float*>(p);
    capacity_ = n;
    return true;
  }
  void release() {
    std::free(data_);
    data_ = nullptr;
    capacity_ = 0;
  }
  float* data() { return data_; }
  const float* data() const { return data_; }
  size_t capacity() const { return capacity_; }
  size_t bytes() const { return capacity_ * sizeof(float); }

 private:
  float* data_ = nullptr;
  size_t capacity_ = 0;
};

inline uint64_t round_up(uint64_t x, uint64_t m) { return (x + m - 1) / m * m; }

}  // namespace mha
