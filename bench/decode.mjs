// `npm run bench:decode`: what the KV cache saves. A pre-norm TransformerEncoderLayer
// (dModel 256, 4 heads, dimFeedforward 1024) generates position n given n - 1
// earlier ones, two ways, interleaved in one process: one cached step (the new
// token only, attending over the cache), and the full causal forward over all n
// positions (what decoding without a cache recomputes every step). Prints medians
// and the ratio; both outputs are checked to agree. Then the trained digit model
// decodes held-out inputs with mha-wasm (KV caches) and with TensorFlow.js.
//
//   npm run bench:decode [-- --threads 2 --rounds 15]
import { parseArgs } from 'node:util';
import { init } from '../bindings/index.js';
import { median } from '../web/stats.js';

const { values } = parseArgs({ options: { threads: { type: 'string', default: '1' }, rounds: { type: 'string', default: '15' } } });
const mha = await init({ threads: Number(values.threads) });
const E = 256, H = 4, F = 1024, rounds = Number(values.rounds);
let seed = 1;
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) - 0.5;
const fill = (n, s) => Float32Array.from({ length: n }, () => rand() * s);
const layer = new mha.TransformerEncoderLayer({ dModel: E, nhead: H, dimFeedforward: F, normFirst: true });
const sd = { 'self_attn.in_proj_weight': fill(3 * E * E, 0.1), 'self_attn.in_proj_bias': fill(3 * E, 0.1),
  'self_attn.out_proj.weight': fill(E * E, 0.1), 'self_attn.out_proj.bias': fill(E, 0.1), 'linear1.weight': fill(F * E, 0.1),
  'linear1.bias': fill(F, 0.1), 'linear2.weight': fill(E * F, 0.05), 'linear2.bias': fill(E, 0.1),
  'norm1.weight': fill(E, 1).map((v) => 1 + v), 'norm1.bias': fill(E, 0.2), 'norm2.weight': fill(E, 1).map((v) => 1 + v), 'norm2.bias': fill(E, 0.2) };
layer.setWeights(sd);

console.log(`mha-wasm ${mha.build}, ${mha.threads} thread(s); TransformerEncoderLayer dModel ${E}, ${H} heads, FF ${F}, pre-norm`);
console.log('| position n | cached step (ms) | full causal forward (ms) | full / cached |');
console.log('|---|---|---|---|');
for (const n of [16, 64, 256, 1024]) {
  const x = fill(n * E, 2);
  const cache = layer.createCache({ maxLength: n });
  const tStep = [], tFull = [];
  let diff = 0;
  for (let r = 0; r < rounds; r++) {
    cache.reset();
    layer.forward({ data: x.subarray(0, (n - 1) * E), dims: [n - 1, E] }, { cache, isCausal: true });  // the prefix, once
    let t = performance.now();
    const step = layer.forward({ data: x.subarray((n - 1) * E), dims: [1, E] }, { cache, isCausal: true });
    tStep.push(performance.now() - t);
    t = performance.now();
    const full = layer.forward({ data: x, dims: [n, E] }, { isCausal: true });
    tFull.push(performance.now() - t);
    for (let k = 0; k < E; k++) diff = Math.max(diff, Math.abs(full.data[(n - 1) * E + k] - step.data[k]));
  }
  cache.dispose();
  if (diff > 1e-3) throw new Error(`cached and full outputs differ by ${diff}`);
  const s = median(tStep), f = median(tFull);
  console.log(`| ${n} | ${s.toFixed(3)} | ${f.toFixed(3)} | ${(f / s).toFixed(1)}x |`);
}
layer.dispose();

// The trained digit-reversal model (web/models): greedy decoding of held-out inputs
// with mha-wasm (a KV cache per layer) against TensorFlow.js, the framework that
// trained it (its pure-JS cpu backend, the training code's forward, full forward per step).
{
  const fs = await import('node:fs');
  const tf = await import('@tensorflow/tfjs');
  const { parseSafetensors, safetensorsMetadata } = await import('../bindings/index.js');
  const { DigitsModel } = await import('../web/digits-model.js');
  const { greedyDecode } = await import('../scripts/digits-tfjs-model.mjs');
  const { SEP, randomDigits, rng, sequence } = await import('../web/digits.js');
  await tf.setBackend('cpu');
  const bytes = fs.readFileSync(new URL('../web/models/reverse-digits.safetensors', import.meta.url));
  const tensors = parseSafetensors(bytes);
  const model = await DigitsModel.load(mha, tensors, safetensorsMetadata(bytes));
  const params = Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, tf.tensor(t.data, t.dims)]));
  const r = rng(99), inputs = Array.from({ length: 50 }, () => randomDigits(r, true));
  const times = { ours: [], tf: [] };
  for (let round = 0; round < 5; round++) {
    let t = performance.now(), ok = 0;
    for (const d of inputs) ok += (await model.generate(d)).text === d.slice().reverse().join('') ? 1 : 0;
    times.ours.push(performance.now() - t);
    t = performance.now();
    for (const d of inputs) ok += greedyDecode(params, model.config, d, SEP).every((tok, j) => tok === sequence(d)[j]) ? 1 : 0;
    times.tf.push(performance.now() - t);
    if (ok !== 2 * inputs.length) throw new Error(`only ${ok} of ${2 * inputs.length} decodings were right`);
  }
  const ours = median(times.ours), theirs = median(times.tf);
  console.log(`\nTrained digit model, greedy decoding of ${inputs.length} held-out inputs (all reversed correctly by both):`);
  console.log(`mha-wasm with KV caches ${ours.toFixed(1)} ms, TF.js cpu (full forward per step) ${theirs.toFixed(1)} ms: ${(theirs / ours).toFixed(1)}x`);
  model.dispose();
}
