// A Vite app that serves the SIMD128 single-thread build as separate files
// through `?url` imports of the package's dist/ files (package.json's exports
// lists them), instead of the inlined modules (relaxedSimd: false: the relaxed
// build, not named here, would come inlined). tests/bundlers.test.mjs reads
// window.mhaResult.
import { init } from 'mha-wasm';
import simdGlue from 'mha-wasm/dist/mha-wasm-simd.js?url';
import simdWasm from 'mha-wasm/dist/mha-wasm-simd.wasm?url';

async function run() {
  const mha = await init({ threads: 1, relaxedSimd: false, urls: { 'mha-wasm-simd.js': simdGlue, 'mha-wasm-simd.wasm': simdWasm } });
  const layer = new mha.MultiHeadAttention({ embedDim: 4, numHeads: 2 });
  const eye = new Float32Array(16);
  for (let i = 0; i < 4; i++) eye[i * 5] = 1;
  const inProj = new Float32Array(48);
  for (const o of [0, 16, 32]) inProj.set(eye, o);
  layer.setWeights({ inProjWeight: inProj, inProjBias: new Float32Array(12), outProjWeight: eye, outProjBias: new Float32Array(4) });
  // Identity projections and one key: attention returns that key's value.
  const kv = { data: Float32Array.of(5, 6, 7, 8), dims: [1, 4] };
  const out = Array.from(layer.forward({ data: Float32Array.of(1, 2, 3, 4), dims: [1, 4] }, kv, kv).output.data);
  layer.dispose();
  return { build: mha.build, out, urls: [simdGlue, simdWasm] };
}

window.mhaResult = run().catch((e) => ({ error: `${e && e.name}: ${e && e.message}` }));
