#include "rope.h"

#include <cmath>
#include <cstring>

namespace mha {

void Rope::table(int64_t pos, float* trig) const {
  const int half = dim / 2;
  for (int c = 0; c < half; ++c) {
    const double angle = static_cast<double>(pos) * inv_freq[c];
    trig[c] = static_cast<float>(std::cos(angle) * attention_factor);
    trig[half + c] = static_cast<float>(std::sin(angle) * attention_factor);
  }
}

void Rope::rotate(float* v, const float* trig) const {
  const int half = dim / 2;
  const float* cs = trig;
  const float* sn = trig + half;
  if (interleaved) {
    for (int c = 0; c < half; ++c) {
      const float a = v[2 * c], b = v[2 * c + 1];
      v[2 * c] = a * cs[c] - b * sn[c];
      v[2 * c + 1] = b * cs[c] + a * sn[c];
    }
  } else {
    for (int c = 0; c < half; ++c) {
      const float a = v[c], b = v[c + half];
      v[c] = a * cs[c] - b * sn[c];
      v[c + half] = b * cs[c] + a * sn[c];
    }
  }
}

Status apply_rotary(const RotaryArgs& a, ThreadPool& pool, Workspace& ws) {
  const Rope& r = a.rope;
  if (a.B <= 0 || a.H <= 0 || a.L <= 0 || a.D <= 0 || !a.x || !a.y || r.dim <= 0 || r.dim % 2 || r.dim > a.D ||
      !r.inv_freq)
    return Status::kInvalidArgument;
  const int tokens = a.B * a.L;
  const int threads = pool.threads_for(4.0 * tokens * a.H * r.dim + 40.0 * tokens * r.dim);
  const uint64_t need = static_cast<uint64_t>(threads) * r.dim * sizeof(float);  // a table per thread
  if (const Status s = ws.reserve(need); s != Status::kOk) return s;
  float* tables = static_cast<float*>(ws.data());
  pool.job(threads, [&](ThreadPool::Team& team) {
    team.for_each(tokens, [&](int t) {  // a token's table serves its H heads
      float* trig = tables + static_cast<size_t>(team.thread()) * r.dim;
      const int b = t / a.L, l = t % a.L;
      const int64_t pos = a.positions ? a.positions[(a.positions_shared ? 0 : static_cast<size_t>(b) * a.L) + l] : l;
      r.table(pos, trig);
      for (int h = 0; h < a.H; ++h) {
        const size_t at = a.blhd ? ((static_cast<size_t>(b) * a.L + l) * a.H + h) * a.D
                                 : ((static_cast<size_t>(b) * a.H + h) * a.L + l) * a.D;
        if (a.y != a.x) std::memcpy(a.y + at, a.x + at, sizeof(float) * a.D);
        r.rotate(a.y + at, trig);
      }
    });
  });
  ws.after_call(need);
  return Status::kOk;
}

}  // namespace mha
