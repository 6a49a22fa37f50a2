// Embind glue for the runtime: thread pool, scaled dot-product attention, stats.
// Pointers cross the boundary as plain numbers (byte offsets into the wasm
// heap); the JS wrapper owns the copies in and out. Failures come back as
// status codes, never as aborts.
#include <emscripten/bind.h>

#include <memory>

#include "attention.h"
#include "runtime.h"

namespace mha_bind {
namespace {
int g_live_objects = 0;
}  // namespace

LiveCount::LiveCount() { ++g_live_objects; }
LiveCount::~LiveCount() { --g_live_objects; }
int live_objects() { return g_live_objects; }

namespace {
std::unique_ptr<mha::ThreadPool> g_pool;
mha::Attention g_attention;  // workspace for the free-standing SDPA call

// Creates the pool once; returns the threads in use (the calling thread counts).
int set_threads(int n) {
#ifndef __EMSCRIPTEN_PTHREADS__
  n = 1;
#endif
  if (!g_pool || g_pool->size() != n) {
    g_pool.reset();
    g_pool = std::make_unique<mha::ThreadPool>(n);
  }
  return g_pool->size();
}

int threads() { return pool().size(); }

bool threaded_build() {
#ifdef __EMSCRIPTEN_PTHREADS__
  return true;
#else
  return false;
#endif
}

// q/k/v/out are [B,H,L,*] contiguous. maskKind: 0 none, 1 bool, 2 float;
// maskBroadcast: the attn mask is [Lq, Lk] rather than [B, H, Lq, Lk].
int sdpa(int B, int H, int Lq, int Lk, int D, int Dv, double q, double k, double v, double out, double scale,
         int maskKind, double mask, bool maskBroadcast, double keyPadding, bool causal, double weights) {
  mha::AttentionArgs a;
  a.B = B, a.H = H, a.Lq = Lq, a.Lk = Lk, a.D = D, a.Dv = Dv;
  a.q = {ptr<const float>(q), static_cast<size_t>(H) * Lq * D, static_cast<size_t>(Lq) * D, static_cast<size_t>(D)};
  a.k = {ptr<const float>(k), static_cast<size_t>(H) * Lk * D, static_cast<size_t>(Lk) * D, static_cast<size_t>(D)};
  a.v = {ptr<const float>(v), static_cast<size_t>(H) * Lk * Dv, static_cast<size_t>(Lk) * Dv, static_cast<size_t>(Dv)};
  a.out = ptr<float>(out);
  a.o_sb = static_cast<size_t>(H) * Lq * Dv, a.o_sh = static_cast<size_t>(Lq) * Dv, a.o_sl = Dv;
  a.scale = static_cast<float>(scale);
  set_mask(a.mask, maskKind, mask, maskBroadcast, H, Lq, Lk);
  a.mask.key_padding = ptr<const uint8_t>(keyPadding);
  a.mask.causal = causal;
  a.weights = ptr<float>(weights);
  a.average_weights = false;
  return static_cast<int>(g_attention.run(a, pool()));
}

double sdpa_request_bytes() { return static_cast<double>(g_attention.last_request_bytes()); }
}  // namespace

mha::ThreadPool& pool() {
  if (!g_pool) g_pool = std::make_unique<mha::ThreadPool>(1);
  return *g_pool;
}

void set_mask(mha::MaskArgs& m, int kind, double mask, bool broadcast, int H, int Lq, int Lk) {
  if (kind == 1) m.bool_mask = ptr<const uint8_t>(mask);
  if (kind == 2) m.float_mask = ptr<const float>(mask);
  m.sl = static_cast<size_t>(Lk);
  m.sh = broadcast ? 0 : static_cast<size_t>(Lq) * Lk;
  m.sb = broadcast ? 0 : static_cast<size_t>(H) * Lq * Lk;
}

}  // namespace mha_bind

EMSCRIPTEN_BINDINGS(mha_runtime) {
  emscripten::function("setThreads", &mha_bind::set_threads);
  emscripten::function("threads", &mha_bind::threads);
  emscripten::function("threadedBuild", &mha_bind::threaded_build);
  emscripten::function("sdpa", &mha_bind::sdpa);
  emscripten::function("sdpaRequestBytes", &mha_bind::sdpa_request_bytes);
  emscripten::function("liveLayers", &mha_bind::live_objects);
}
