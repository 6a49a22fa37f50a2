// The SIMD128 peak probe: independent f32x4 multiply-add chains (12
// accumulators, enough to hide the latency), the most a kernel built from
// f32x4.mul + f32x4.add can reach on one core of this machine. The bench
// reports each contestant's GFLOP/s as a share of this.
#include <emscripten/emscripten.h>
#include <wasm_simd128.h>

extern "C" EMSCRIPTEN_KEEPALIVE float peak(int iterations) {
  constexpr int kAcc = 12;
  v128_t acc[kAcc];
  for (int j = 0; j < kAcc; j++) acc[j] = wasm_f32x4_splat(0.001f * j);
  const v128_t a = wasm_f32x4_splat(0.9999f), b = wasm_f32x4_splat(0.0001f);
  for (int i = 0; i < iterations; i++)
    for (int j = 0; j < kAcc; j++) acc[j] = wasm_f32x4_add(wasm_f32x4_mul(acc[j], a), b);
  v128_t s = acc[0];
  for (int j = 1; j < kAcc; j++) s = wasm_f32x4_add(s, acc[j]);
  return wasm_f32x4_extract_lane(s, 0);  // keeps the loop alive
}

// FLOPs of one call: iterations x 12 accumulators x 4 lanes x (mul + add).
extern "C" EMSCRIPTEN_KEEPALIVE double peak_flops(int iterations) { return double(iterations) * 12 * 4 * 2; }
