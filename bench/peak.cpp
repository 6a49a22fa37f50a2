// Peak probes: independent chains (12 accumulators, enough to hide the latency)
// of one SIMD operation, the most a kernel built from it can reach on one core.
// - peak: f32x4.mul + f32x4.add, the float32 kernels' operation in SIMD128
//   builds; the bench reports each contestant's GFLOP/s as a share of it.
// - peak_dot16: i32x4.dot_i16x8_s + i32x4.add, the int8 kernels' operation
//   (quant.cpp: int16 activations times widened int8 weights), 8 MACs.
// Built with -mrelaxed-simd (clang 16+), it also has
// - peak_fma: f32x4.relaxed_madd, the float32 kernels' operation in relaxed builds;
// - peak_rdot: i32x4.relaxed_dot_i8x16_i7x16_add_s, 16 MACs of an int8 by a
//   7-bit operand (the int8 kernels do not use it: see quant.h).
// The bench prints their multiply-accumulates per second side by side: the
// ceiling of int8 against float32 layers in each build.
#include <emscripten/emscripten.h>
#include <wasm_simd128.h>

namespace {
constexpr int kAcc = 12;

template <class Step>
v128_t chains(int iterations, v128_t init_step, Step step) {
  v128_t acc[kAcc];
  for (int j = 0; j < kAcc; j++) acc[j] = wasm_f32x4_add(init_step, wasm_f32x4_splat(0.001f * j));
  for (int i = 0; i < iterations; i++)
    for (int j = 0; j < kAcc; j++) acc[j] = step(acc[j]);
  v128_t s = acc[0];
  for (int j = 1; j < kAcc; j++) s = wasm_v128_xor(s, acc[j]);
  return s;
}
}  // namespace

extern "C" EMSCRIPTEN_KEEPALIVE float peak(int iterations) {
  const v128_t a = wasm_f32x4_splat(0.9999f), b = wasm_f32x4_splat(0.0001f);
  const v128_t s = chains(iterations, wasm_f32x4_splat(0), [&](v128_t x) { return wasm_f32x4_add(wasm_f32x4_mul(x, a), b); });
  return wasm_f32x4_extract_lane(s, 0);  // keeps the loop alive
}

// FLOPs of one call: iterations x 12 accumulators x 4 lanes x (mul + add).
extern "C" EMSCRIPTEN_KEEPALIVE double peak_flops(int iterations) { return double(iterations) * kAcc * 4 * 2; }

extern "C" EMSCRIPTEN_KEEPALIVE int peak_dot16(int iterations) {
  const v128_t c = wasm_i16x8_splat(3);
  const v128_t s = chains(iterations, wasm_i32x4_splat(1), [&](v128_t x) { return wasm_i32x4_add(wasm_i32x4_dot_i16x8(x, c), x); });
  return wasm_i32x4_extract_lane(s, 0);
}

// Multiply-accumulates of one call of each probe: peak 4 per chain step, peak_dot16
// 8, peak_fma 4, peak_rdot 16.
extern "C" EMSCRIPTEN_KEEPALIVE double peak_macs(int iterations, int per_step) { return double(iterations) * kAcc * per_step; }

#if defined(__wasm_relaxed_simd__)
extern "C" EMSCRIPTEN_KEEPALIVE float peak_fma(int iterations) {
  typedef float f32x4 __attribute__((__vector_size__(16)));
  const v128_t a = wasm_f32x4_splat(0.9999f), b = wasm_f32x4_splat(0.0001f);
  const v128_t s = chains(iterations, wasm_f32x4_splat(0), [&](v128_t x) {
    return (v128_t)__builtin_wasm_relaxed_madd_f32x4((f32x4)x, (f32x4)a, (f32x4)b);
  });
  return wasm_f32x4_extract_lane(s, 0);
}

extern "C" EMSCRIPTEN_KEEPALIVE int peak_rdot(int iterations) {
  typedef signed char i8x16 __attribute__((__vector_size__(16)));
  typedef int i32x4 __attribute__((__vector_size__(16)));
  const v128_t c = wasm_i8x16_splat(3);
  const v128_t s = chains(iterations, wasm_i32x4_splat(1), [&](v128_t x) {
    return (v128_t)__builtin_wasm_relaxed_dot_i8x16_i7x16_add_s_i32x4((i8x16)x, (i8x16)c, (i32x4)x);
  });
  return wasm_i32x4_extract_lane(s, 0);
}
#endif
