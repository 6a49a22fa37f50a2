// Embind glue for the runtime: thread pool, workspace, scaled dot-product attention, stats.
// Calls take one record (abi.h) written by the JS wrapper, which validates every
// argument first and owns the copies in and out. Failures come back as status
// codes, never as aborts.
#include <emscripten/bind.h>

#include <memory>

#include "attention.h"
#include "quant.h"
#include "rope.h"
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
mha::Workspace g_workspace;

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

// The int8 kernel of the matrices set from now on (abi Int8Dot): -1 (or any value
// that is not a kernel this build has: set_i8_dot refuses it) keeps the one chosen;
// returns the one in use.
int int8_dot(int d) {
  mha::kernels::set_i8_dot(static_cast<mha::abi::Int8Dot>(d));
  return static_cast<int>(mha::kernels::i8_dot());
}

bool threaded_build() {
#ifdef __EMSCRIPTEN_PTHREADS__
  return true;
#else
  return false;
#endif
}

// q/output are [B,H,L,*] contiguous, k/v [B,Hkv,L,*].
int sdpa(uint32_t rec) {
  const mha::abi::Sdpa& r = record<mha::abi::Sdpa>(rec);
  const size_t H = r.heads, Hkv = r.kv_heads, Lq = r.lq, Lk = r.lk, D = r.d, Dv = r.dv;
  mha::AttentionArgs a;
  a.B = r.batch, a.H = r.heads, a.Hkv = r.kv_heads, a.Lq = r.lq, a.Lk = r.lk, a.D = r.d, a.Dv = r.dv;
  a.q = {ptr<const float>(r.q), H * Lq * D, Lq * D, D};
  a.k = {ptr<const float>(r.k), Hkv * Lk * D, Lk * D, D};
  a.v = {ptr<const float>(r.v), Hkv * Lk * Dv, Lk * Dv, Dv};
  a.softcap = r.softcap;
  a.alibi = ptr<const float>(r.alibi);
  a.sinks = ptr<const float>(r.sinks);
  a.out = ptr<float>(r.output);
  a.o_sb = H * Lq * Dv, a.o_sh = Lq * Dv, a.o_sl = Dv;
  a.scale = r.scale;
  MHA_SET_MASK(a.mask, r, , r.heads, r.lq, r.lk);
  a.mask.window = r.window;
  a.weights = ptr<float>(r.weights);
  a.average_weights = false;
  return static_cast<int>(mha::Attention::run(a, pool(), workspace()));
}

// mha.applyRotaryEmbedding (a Rotary record).
int rotary(uint32_t rec) {
  const mha::abi::Rotary& r = record<mha::abi::Rotary>(rec);
  mha::RotaryArgs a;
  a.B = r.batch, a.H = r.heads, a.L = r.length, a.D = r.d, a.blhd = r.blhd != 0;
  a.x = ptr<const float>(r.x);
  a.y = ptr<float>(r.y);
  a.positions = ptr<const int32_t>(r.positions);
  a.positions_shared = r.positions_shared != 0;
  a.rope = mha::Rope{r.dim, r.interleaved != 0, ptr<const double>(r.inv_freq), r.attention_factor};
  return static_cast<int>(mha::apply_rotary(a, pool(), workspace()));
}

double sdpa_request_bytes() { return static_cast<double>(workspace().last_request_bytes()); }
}  // namespace

mha::ThreadPool& pool() {
  if (!g_pool) g_pool = std::make_unique<mha::ThreadPool>(1);
  return *g_pool;
}

mha::Workspace& workspace() { return g_workspace; }

void set_mask(mha::MaskArgs& m, int32_t kind, uint32_t mask, int32_t broadcast, uint32_t key_padding, int32_t causal,
              int H, int Lq, int Lk) {
  if (kind == static_cast<int32_t>(mha::abi::MaskKind::kBool)) m.bool_mask = ptr<const uint8_t>(mask);
  if (kind == static_cast<int32_t>(mha::abi::MaskKind::kFloat)) m.float_mask = ptr<const float>(mask);
  m.sl = static_cast<size_t>(Lk);
  m.sh = broadcast ? 0 : static_cast<size_t>(Lq) * Lk;
  m.sb = broadcast ? 0 : static_cast<size_t>(H) * Lq * Lk;
  m.key_padding = ptr<const uint8_t>(key_padding);
  m.causal = causal != 0;
}

}  // namespace mha_bind

EMSCRIPTEN_BINDINGS(mha_runtime) {
  emscripten::function("setThreads", &mha_bind::set_threads);
  emscripten::function("int8Dot", &mha_bind::int8_dot);
  emscripten::function("threads", &mha_bind::threads);
  emscripten::function("threadedBuild", &mha_bind::threaded_build);
  emscripten::function("sdpa", &mha_bind::sdpa);
  emscripten::function("sdpaRequestBytes", &mha_bind::sdpa_request_bytes);
  emscripten::function("rotary", &mha_bind::rotary);
  emscripten::function("liveLayers", &mha_bind::live_objects);
}
