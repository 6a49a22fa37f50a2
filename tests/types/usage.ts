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
  const kernel: 'dot_i16x8' | 'relaxed_dot_i8x16_i7x16' = (await init({ int8Dot: 'relaxed_dot_i8x16_i7x16' })).features.int8Dot;
  await init({ int8Dot: 'auto' });
  // @ts-expect-error int8Dot names a kernel
  await init({ int8Dot: 'vnni' });
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
  const stored: 'f32' | 'f16' | 'int8' = layer.weightType;
  // @ts-expect-error weightType is read-only
  layer.weightType = 'int8';
  const ffStored = new mha.FeedForward({ dModel: 8, dimFeedforward: 16, weightType: 'f16' });
  const block = new mha.TransformerEncoderLayer({ dModel: 8, nhead: 2, weightType: 'int8' });
  console.log(stored, ffStored.weightType, block.weightType);
  ffStored.dispose();
  block.dispose();
  const sd = mha.scaledDotProductAttention(q, q, q, { scale: 0.5, attnMask: { data: new Float32Array(4), dims: [2, 2] } });
  const reserved: void = mha.reserveMemory(64 * 2 ** 20);
  console.log(threads, usesThreads, relaxed, why, first, sd.output.dims, mha.stats().liveLayers, reserved);
  const selfCache = layer.createCache({ maxLength: 8 });
  console.log(layer.forward(q, null, null, { cache: selfCache, isCausal: true }).output.dims, selfCache.length);
  layer.dispose();
  const gqa = new mha.MultiHeadAttention({
    embedDim: 8, numHeads: 4, numKvHeads: 2, headDim: 3, qkvBias: true, outBias: false, rope: { base: 10000, dim: 2, interleaved: true },
    alibi: true, slidingWindow: 4, softcap: 30, scale: 0.5, sinks: true, qkNorm: 'rms', qkNormEps: 1e-6,
  });
  gqa.setWeights({ 'q_proj.weight': new Float32Array(96), 'k_proj.weight': new Float32Array(48), 'v_proj.weight': new Float32Array(48),
    'o_proj.weight': new Float32Array(96), sinks: new Float32Array(4), qNormWeight: new Float32Array(3), kNormWeight: new Float32Array(3) });
  const rotated = gqa.forward(q, null, null, { positionIds: new Int32Array([5, 6]), isCausal: true }).output;
  const inside = gqa.inspect(q, null, null, { token: 1, head: 3, isCausal: true });
  const kvHead: number = inside.kvHead;
  const w0: number = inside.weights[0] + (inside.sink ?? 0) + inside.k.dims[0];
  // @ts-expect-error qkNorm is 'rms' or null
  new mha.MultiHeadAttention({ embedDim: 8, numHeads: 2, qkNorm: 'layer' });
  // @ts-expect-error token is required
  gqa.inspect(q, null, null, { head: 0 });
  const r = mha.applyRotaryEmbedding({ data: new Float32Array(24), dims: [1, 2, 3, 4] }, { positions: new Int32Array([0, 1, 2]), layout: 'bhld', dim: 4 });
  const g = mha.scaledDotProductAttention({ data: new Float32Array(24), dims: [1, 4, 2, 3] }, { data: new Float32Array(12), dims: [1, 2, 2, 3] },
    { data: new Float32Array(12), dims: [1, 2, 2, 3] }, { slidingWindow: 2, softcap: 5, alibiSlopes: new Float32Array(4), sinks: [0, 0, 0, 0] });
  console.log(rotated.dims, kvHead, w0, r.dims, g.output.dims, gqa.rope?.invFreq.length, gqa.numKvHeads);
  const lm = new mha.Model({ vocabSize: 10, hiddenSize: 8, numLayers: 1, norm: 'rms', head: 'tied',
    attention: { numHeads: 2, numKvHeads: 1, rope: true, bias: false }, feedForward: { dimFeedforward: 16, gated: true, activation: 'silu', bias: false } });
  lm.setEmbeddings({ tokens: new Float32Array(80) });
  const lmCache = lm.createCache({ maxLength: 4 });
  const logits: Tensor = lm.forward(new Int32Array([1, 2]), { cache: lmCache, lastOnly: true }).output;
  // @ts-expect-error ids are an Int32Array or a tensor of one
  lm.forward([1, 2]);
  console.log(logits.dims, lm.config.vocabSize);
  const enc = new mha.TransformerEncoderLayer({ dModel: 8, nhead: 2, dimFeedforward: 16, activation: 'gelu', normFirst: true });
  enc.setWeights({ 'linear1.weight': { data: new Float32Array(128), dims: [16, 8] } });
  const y: Tensor = enc.forward({ data: new Float32Array(16), dims: [2, 8] }, { isCausal: true, srcKeyPaddingMask: { data: new Uint8Array(2), dims: [2] } });
  console.log(y.dims, enc.dModel);
  const cache: KVCache = enc.createCache({ maxLength: 16, batch: 1 });
  const step = enc.forward({ data: new Float32Array(8), dims: [1, 8] }, { cache, isCausal: true, needWeights: true });
  const w: Tensor = step.weights;
  console.log(step.output.dims, w.dims, cache.length, cache.maxLength);
  cache.reset();
  const kept: void = cache.truncate(0);
  console.log(kept);
  // @ts-expect-error a number of positions
  cache.truncate("all");
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
  const rms = new mha.RMSNorm({ normalizedShape: 8, weightOffset: 1 });
  rms.setWeights({ weight: new Float32Array(8) });
  const rn: Tensor = rms.forward(y);
  console.log(rn.dims, rms.eps, rms.weightOffset, rms.elementwiseAffine);
  rms.dispose();
  const ff = new mha.FeedForward({ dModel: 8, dimFeedforward: 16, activation: 'silu', gated: true, bias: false });
  ff.setWeights({ 'gate_proj.weight': new Float32Array(128), upProjWeight: new Float32Array(128), 'down_proj.weight': { data: new Float32Array(128), dims: [8, 16] } });
  const f: Tensor = ff.forward(y);
  const act: 'relu' | 'gelu' | 'gelu_tanh' | 'silu' = ff.activation;
  console.log(f.dims, act, ff.gated, ff.dimFeedforward);
  ff.dispose();
  // @ts-expect-error RMSNorm has no bias
  new mha.RMSNorm({ normalizedShape: 8, bias: false });
  // @ts-expect-error dimFeedforward is required
  new mha.FeedForward({ dModel: 8 });
  // @ts-expect-error activation is one of relu, gelu, gelu_tanh, silu
  new mha.FeedForward({ dModel: 8, dimFeedforward: 8, activation: 'tanh' });
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

// Pre-quantized int8 matrices (bare Int8Array + <name>_scale) beside float32 ones; Float64Array slopes.
export function quantizedWeights(mha: Mha, q: Int8Array, s: Float32Array, f: Float32Array): void {
  const attn = new mha.MultiHeadAttention({ embedDim: 8, numHeads: 2, weightType: 'int8', alibi: Float64Array.of(0.5, 0.25) });
  attn.setWeights({ inProjWeight: q, inProjWeight_scale: s, outProjWeight: f });
  const ff = new mha.FeedForward({ dModel: 8, dimFeedforward: 16, weightType: 'int8' });
  ff.setWeights({ 'linear1.weight': { data: q, dims: [16, 8] }, 'linear1.weight_scale': s, 'linear2.weight': f });
  const r = mha.scaledDotProductAttention({ data: f, dims: [2, 1, 4] }, { data: f, dims: [2, 1, 4] }, { data: f, dims: [2, 1, 4] },
    { alibiSlopes: Float64Array.of(0.5, 0.25), keyPaddingMask: { data: new Uint8Array(1), dims: [1] } });
  console.log(r.output.dims);
}
