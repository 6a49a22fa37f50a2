// `npm run bench:decode`: what the KV cache saves. A pre-norm TransformerEncoderLayer
// (dModel 256, 4 heads, dimFeedforward 1024) generates position n given n - 1
// earlier ones, two ways, interleaved in one process: one cached step (the new
// token only, attending over the cache), and the full causal forward over all n
// positions (what decoding without a cache recomputes every step). Prints medians
// and the ratio; both outputs are checked to agree. Then threads: one cached step
// of a larger pre-norm layer (dModel 1024, 16 heads, dimFeedforward 4096) at
// cached length 256, on 1 and on 2 threads side by side in this process
// (init({ threads: 1 }) and init({ threads: 2 }), steps interleaved; medians of
// wall and CPU time, which counts every thread of the process). Then the trained
// digit model decodes held-out inputs with mha-wasm (KV caches) and with TensorFlow.js.
//
//   npm run bench:decode [-- --threads 2 --rounds 15 --thread-steps 30]
import os from 'node:os';
import { parseArgs } from 'node:util';
import { init } from '../bindings/index.js';
import { median } from '../web/stats.js';

const { values } = parseArgs({ options: { threads: { type: 'string', default: '1' }, rounds: { type: 'string', default: '15' },
  'thread-steps': { type: 'string', default: '30' } } });
const mha = await init({ threads: Number(values.threads) });
const E = 256, H = 4, F = 1024, rounds = Number(values.rounds);
let seed = 1;
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) - 0.5;
const fill = (n, s) => Float32Array.from({ length: n }, () => rand() * s);
/** A TransformerEncoderLayer state_dict for dModel E, dimFeedforward F (weights scaled by 1/sqrt of their fan-in). */
const stateDict = (E, F) => {
  const s = 1.6 / Math.sqrt(E), sf = 1.6 / Math.sqrt(F);
  return { 'self_attn.in_proj_weight': fill(3 * E * E, s), 'self_attn.in_proj_bias': fill(3 * E, 0.1),
    'self_attn.out_proj.weight': fill(E * E, s), 'self_attn.out_proj.bias': fill(E, 0.1), 'linear1.weight': fill(F * E, s),
    'linear1.bias': fill(F, 0.1), 'linear2.weight': fill(E * F, sf), 'linear2.bias': fill(E, 0.1),
    'norm1.weight': fill(E, 1).map((v) => 1 + v), 'norm1.bias': fill(E, 0.2), 'norm2.weight': fill(E, 1).map((v) => 1 + v), 'norm2.bias': fill(E, 0.2) };
};
const layer = new mha.TransformerEncoderLayer({ dModel: E, nhead: H, dimFeedforward: F, normFirst: true });
layer.setWeights(stateDict(E, F));

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

// Threads: one cached step of a pre-norm layer with dModel 1024 and FF 4096 at cached
// length 256, on 1 thread and on 2. Each runtime fills its cache with the same 256
// positions once; the steps then alternate between the runtimes (which goes first
// alternates too), so step r of both attends over 256 + r cached positions. A short
// pause before each step lets the other runtime's workers stop spinning.
{
  const E2 = 1024, H2 = 16, F2 = 4096, cached = 256, steps = Number(values['thread-steps']);
  const sd2 = stateDict(E2, F2), x2 = fill((cached + steps) * E2, 2);
  const runs = [];
  for (const threads of [1, 2]) {
    const m = await init({ threads });
    const l = new m.TransformerEncoderLayer({ dModel: E2, nhead: H2, dimFeedforward: F2, normFirst: true });
    l.setWeights(sd2);
    const cache = l.createCache({ maxLength: cached + steps });
    l.forward({ data: x2.subarray(0, cached * E2), dims: [cached, E2] }, { cache, isCausal: true });
    runs.push({ m, l, cache, wall: [], cpu: [], out: null });
  }
  const pause = () => new Promise((resolve) => setTimeout(resolve, 5));
  let diff = 0;
  const load = os.loadavg()[0];
  for (let r = 0; r < steps; r++) {
    const token = { data: x2.subarray((cached + r) * E2, (cached + r + 1) * E2), dims: [1, E2] };
    for (const run of r % 2 ? [runs[1], runs[0]] : runs) {
      await pause();
      const c0 = process.cpuUsage(), t0 = performance.now();
      run.out = run.l.forward(token, { cache: run.cache, isCausal: true });
      const wall = performance.now() - t0, cpu = process.cpuUsage(c0);
      run.wall.push(wall);
      run.cpu.push((cpu.user + cpu.system) / 1000);
    }
    for (let k = 0; k < E2; k++) diff = Math.max(diff, Math.abs(runs[0].out.data[k] - runs[1].out.data[k]));
  }
  if (diff > 1e-3) throw new Error(`the 1- and 2-thread steps differ by ${diff}`);
  console.log(`\nThreads: one cached step of a pre-norm TransformerEncoderLayer, dModel ${E2}, ${H2} heads, FF ${F2}, ` +
    `cached length ${cached}..${cached + steps - 1}, ${steps} steps per runtime, interleaved (load average ${load.toFixed(2)} ` +
    `on ${os.availableParallelism ? os.availableParallelism() : os.cpus().length} CPUs):`);
  console.log('| threads | build | wall median (ms) | wall min (ms) | CPU median (ms) |');
  console.log('|---|---|---|---|---|');
  for (const run of runs)
    console.log(`| ${run.m.threads} | ${run.m.build} | ${median(run.wall).toFixed(3)} | ${Math.min(...run.wall).toFixed(3)} | ${median(run.cpu).toFixed(3)} |`);
  const [one, two] = runs;
  console.log(`2 threads vs 1: ${(median(one.wall) / median(two.wall)).toFixed(2)}x faster (wall medians; mins ` +
    `${(Math.min(...one.wall) / Math.min(...two.wall)).toFixed(2)}x), ${(median(two.cpu) / median(one.cpu)).toFixed(2)}x the CPU time`);
  for (const run of runs) run.cache.dispose(), run.l.dispose();
}

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
