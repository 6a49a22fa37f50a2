// The mha-wasm/worker declarations, compiled with tsc --noEmit (see usage.ts).
import { init, parseSafetensors, type Tensor, type WorkerMha } from 'mha-wasm/worker';
import { encodeSafetensors, safetensorsMetadata } from 'mha-wasm';

async function main(): Promise<void> {
  const mha: WorkerMha = await init({ threads: 2, baseUrl: '/assets/', urls: { 'mha-wasm-simd.wasm': new URL('https://cdn.example/s.wasm') } });
  const layer = new mha.MultiHeadAttention({ embedDim: 8, numHeads: 2 });
  const file: Uint8Array = encodeSafetensors({ 'out_proj.weight': { data: new Float32Array(64), dims: [8, 8] } }, { num_heads: '2' });
  const meta: Record<string, string> = safetensorsMetadata(file);
  await layer.setWeights(parseSafetensors(file, { prefix: '' }), { transfer: true });
  await layer.setWeights({ in_proj_weight: new Float32Array(192), 'out_proj.weight': new Float32Array(64) });
  const r = await layer.forward({ data: new Float32Array(16), dims: [2, 8] }, null, null, { needWeights: true, transfer: true, cache: layer.createCache({ maxLength: 2 }) });
  const s = await mha.scaledDotProductAttention(r.output, r.output, r.output, { isCausal: true });
  await mha.reserveMemory(2 ** 20);
  console.log(meta, s.output.dims, (await mha.stats()).liveLayers, mha.threadsNote);
  layer.dispose();
  const gqa = new mha.MultiHeadAttention({ embedDim: 8, numHeads: 2, numKvHeads: 1, rope: true, slidingWindow: 3 });
  const inside = await gqa.inspect(r.output, null, null, { token: 0, head: 1 });
  const rot: Tensor = await mha.applyRotaryEmbedding({ data: new Float32Array(8), dims: [1, 1, 2, 4] });
  // @ts-expect-error inspect resolves to a Promise in the worker API
  const notAwaited: number = gqa.inspect(r.output, null, null, { token: 0, head: 1 }).kvHead;
  console.log(inside.masked.length, rot.dims, notAwaited);
  const enc = new mha.TransformerEncoderLayer({ dModel: 8, nhead: 2, dimFeedforward: 16 });
  await enc.setWeights({ 'linear1.weight': new Float32Array(128) }, { transfer: true });
  const cache = enc.createCache({ maxLength: 4 });
  const step = await enc.forward({ data: new Float32Array(8), dims: [1, 8] }, { cache, isCausal: true, needWeights: true });
  const y: Tensor = await enc.forward(step.output, { transfer: true });
  await cache.reset();
  const cut: Promise<void> = cache.truncate(0);
  await cut;
  const dec = new mha.TransformerDecoderLayer({ dModel: 8, nhead: 2 });
  const d = await dec.forward(y, y, { needWeights: true, memoryIsCausal: false });
  const norm = new mha.LayerNorm({ normalizedShape: 8 });
  const n: Tensor = await norm.forward(d.output, { transfer: true });
  console.log(step.weights.dims, cache.length, d.crossWeights.dims, n.dims, enc.dModel, norm.eps);
  const rms = new mha.RMSNorm({ normalizedShape: 8 });
  const ff = new mha.FeedForward({ dModel: 8, dimFeedforward: 16, activation: 'gelu_tanh' });
  await ff.setWeights({ linear1Weight: new Float32Array(128), 'linear1.bias': new Float32Array(16), linear2Weight: new Float32Array(128), linear2Bias: new Float32Array(8) }, { transfer: true });
  const ffy: Tensor = await ff.forward(await rms.forward(n), { transfer: true });
  console.log(ffy.dims, rms.weightOffset, ff.gated);
  // @ts-expect-error forward returns a Promise
  ff.forward(n).dims;
  mha.terminate();
  // @ts-expect-error forward returns a Promise
  layer.forward({ data: new Float32Array(16), dims: [2, 8] }).output;
  // locateFile is called on this side, for every file, so it works with a worker too.
  await init({ locateFile: (n) => `/cdn/${n}` });
  // @ts-expect-error locateFile is asked only for the package's files
  await init({ locateFile: (n: 'other.wasm') => n });
  // @ts-expect-error only the package's files can be given urls
  await init({ urls: { 'other.wasm': 'x' } });
}
void main();

// The worker's Model alias and the shared types re-exported by mha-wasm/worker; a needWeights
// that is only known to be a boolean; pre-quantized int8 weights beside float ones.
import type { Model as WorkerModel, WeightType as WorkerWeightType, RuntimeInfo as WorkerRuntimeInfo } from 'mha-wasm/worker';
export async function more(w: WorkerMha, nw: boolean, q: Int8Array, s: Float32Array, f: Float32Array): Promise<void> {
  const wt: WorkerWeightType = 'int8';
  const m: WorkerModel = new w.Model({ hiddenSize: 8, vocabSize: 16, numLayers: 1, attention: { numHeads: 2 }, feedForward: { dimFeedforward: 16 }, weightType: wt });
  const info: WorkerRuntimeInfo = w;
  console.log(info.build, m.disposed);
  const enc = new w.TransformerEncoderLayer({ dModel: 8, nhead: 2, weightType: 'int8' });
  await enc.setWeights({ 'self_attn.in_proj_weight': q, 'self_attn.in_proj_weight_scale': s, 'self_attn.out_proj.weight': f });
  const r = await enc.forward({ data: new Float32Array(16), dims: [2, 8] }, { needWeights: nw });
  console.log('output' in r ? r.output.dims : r.dims);
}
