// Compiled with `tsc --noEmit` by tests/package.test.mjs: the declarations must
// accept the documented usage and reject misuse (the @ts-expect-error lines).
import { init, type KVCache, type Mha, type Tensor } from 'mha-wasm';

async function main(): Promise<void> {
  const mha: Mha = await init({ threads: 'auto' });
  const threads: number = mha.threads;
  const usesThreads: boolean = mha.features.threads;
  const relaxed: boolean = mha.features.relaxedSimd;
  const why: string | null = mha.relaxedSimdNote;
  await init({ threads: 1, relaxedSimd: false, urls: { 'mha-wasm-relaxed-simd.wasm': '/r.wasm' } });
  // @ts-expect-error relaxedSimd is a boolean
  await init({ relaxedSimd: 'auto' });
  const layer = new mha.MultiHeadAttention({ embedDim: 8, numHeads: 2, kdim: 4, bias: true });
  layer.setWeights({
    qProjWeight: new Float32Array(64), kProjWeight: new Float32Array(32), vProjWeight: new Float32Array(64),
    inProjBias: new Float32Array(24), outProjWeight: { data: new Float32Array(64), dims: [8, 8] }, outProjBias: new Float32Array(8),
  });
  const q: Tensor = { data: new Float32Array(16), dims: [1, 2, 8] };
  const kv: Tensor = { data: new Float32Array(8), dims: [1, 2, 4] };
  const { output, weights } = layer.forward(q, kv, { data: new Float32Array(16), dims: [1, 2, 8] }, {
    attnMask: { data: new Uint8Array(4), dims: [2, 2] }, keyPaddingMask: { data: new Uint8Array(2), dims: [1, 2] },
    isCausal: true, needWeights: true, averageWeights: false,
  });
  const first: number = output.data[0] + (weights ? weights.data[0] : 0);
  const sd = mha.scaledDotProductAttention(q, q, q, { scale: 0.5, attnMask: { data: new Float32Array(4), dims: [2, 2] } });
  console.log(threads, usesThreads, relaxed, why, first, sd.output.dims, mha.stats().liveLayers);
  const selfCache = layer.createCache({ maxLength: 8 });
  console.log(layer.forward(q, null, null, { cache: selfCache, isCausal: true }).output.dims, selfCache.length);
  layer.dispose();
  const enc = new mha.TransformerEncoderLayer({ dModel: 8, nhead: 2, dimFeedforward: 16, activation: 'gelu', normFirst: true });
  enc.setWeights({ 'linear1.weight': { data: new Float32Array(128), dims: [16, 8] } });
  const y: Tensor = enc.forward({ data: new Float32Array(16), dims: [2, 8] }, { isCausal: true, srcKeyPaddingMask: { data: new Uint8Array(2), dims: [2] } });
  console.log(y.dims, enc.dModel);
  const cache: KVCache = enc.createCache({ maxLength: 16, batch: 1 });
  const step = enc.forward({ data: new Float32Array(8), dims: [1, 8] }, { cache, isCausal: true, needWeights: true });
  const w: Tensor = step.weights;
  console.log(step.output.dims, w.dims, cache.length, cache.maxLength);
  cache.reset();
  cache.dispose();
  enc.dispose();
  const dec = new mha.TransformerDecoderLayer({ dModel: 8, nhead: 2 });
  const out: Tensor = dec.forward(y, y, { tgtIsCausal: true, memoryKeyPaddingMask: { data: new Uint8Array(2), dims: [2] } });
  const { selfWeights, crossWeights } = dec.forward(y, y, { needWeights: true });
  console.log(out.dims, selfWeights.dims, crossWeights.dims);
  dec.dispose();
  const norm = new mha.LayerNorm({ normalizedShape: [8], eps: 1e-6, elementwiseAffine: true });
  norm.setWeights({ weight: new Float32Array(8), bias: new Float32Array(8) });
  const n: Tensor = norm.forward(y);
  console.log(n.dims, norm.normalizedShape);
  norm.dispose();
  // @ts-expect-error maxLength is required
  enc.createCache({ batch: 2 });
  // @ts-expect-error activation is 'relu' or 'gelu'
  new mha.TransformerEncoderLayer({ dModel: 8, nhead: 2, activation: 'tanh' });
  // @ts-expect-error numHeads is required
  new mha.MultiHeadAttention({ embedDim: 8 });
  // @ts-expect-error tensors need Float32Array data
  layer.forward({ data: [1, 2], dims: [1, 2] });
  // @ts-expect-error threads is 'auto' or a number
  await init({ threads: 'all' });
}
void main();
