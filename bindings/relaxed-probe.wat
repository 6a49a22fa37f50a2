;; The relaxed-SIMD probe init() runs before it picks a relaxed build (bindings/loader.js
;; holds its bytes: wat2wasm --enable-relaxed-simd bindings/relaxed-probe.wat; tests/relaxed.test.mjs
;; checks they match). run() applies each relaxed instruction the builds may use to inputs from the
;; data segment, so nothing is folded at compile time, and stores the results for the loader to
;; check against what the instruction must give.
(module
  (memory (export "memory") 1 1)
  ;; 0: madd a, 16: b, 32: c (f32x4); lane 0 is (1+2^-12)^2 - (1+2^-11), 2^-24 fused and 0 unfused,
  ;; lane 3 its negation
  (data (i32.const 0) "\00\08\80\3f\00\00\00\40\00\00\c0\bf\00\08\80\bf")
  (data (i32.const 16) "\00\08\80\3f\00\00\40\40\00\00\80\40\00\08\80\3f")
  (data (i32.const 32) "\00\10\80\bf\00\00\80\3f\00\00\80\3e\00\10\80\3f")
  ;; 64: dot a (i8x16), 80: b (i8x16, 0..127), 96: accumulator (i32x4)
  (data (i32.const 64) "\80\7f\fd\05\64\9c\07\00\01\02\03\04\ff\fe\fd\fc")
  (data (i32.const 80) "\7f\7f\09\0b\32\3c\00\7f\01\01\01\01\7e\7d\7c\7b")
  (data (i32.const 96) "\e8\03\00\00\30\f8\ff\ff\e0\93\04\00\f9\ff\ff\ff")
  (func (export "run")
    ;; 48: f32x4.relaxed_madd(a, b, c) = a * b + c, fused or not
    (v128.store (i32.const 48)
      (f32x4.relaxed_madd (v128.load (i32.const 0)) (v128.load (i32.const 16)) (v128.load (i32.const 32))))
    ;; 112: i32x4.relaxed_dot_i8x16_i7x16_add_s: each lane = accumulator + the sum of its four products
    (v128.store (i32.const 112)
      (i32x4.dot_i8x16_i7x16_add_s (v128.load (i32.const 64)) (v128.load (i32.const 80)) (v128.load (i32.const 96))))))
