// Whether this build has relaxed SIMD's fused multiply-add (MHA_RELAXED_MADD),
// for the kernels' madd helpers (kernels.cpp, quant.cpp): in relaxed-SIMD builds
// (-mrelaxed-simd) a * b + c is f32x4.relaxed_madd, which the engine runs as one
// fused multiply-add where the CPU has one (rounding once) and as mul then add
// elsewhere; callers accept either. Everywhere else it is mul then add. Clang 14
// also defines __wasm_relaxed_simd__, but emits a prototype opcode no engine
// accepts and has no relaxed_madd builtin, so the builtin is required too and
// such a build stops here.
#pragma once

#if defined(__wasm_relaxed_simd__) && defined(__has_builtin)
#if __has_builtin(__builtin_wasm_relaxed_madd_f32x4)
#define MHA_RELAXED_MADD 1
#endif
#endif
#if defined(__wasm_relaxed_simd__) && !defined(MHA_RELAXED_MADD)
#error "-mrelaxed-simd needs clang 16 or later (the final relaxed-SIMD opcodes); see scripts/build.mjs"
#endif
