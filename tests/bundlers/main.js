// The app every bundler test builds (tests/bundlers.test.mjs): it imports the
// package as a newcomer's app would, by name and with no configuration, runs a
// multi-head attention layer, an encoder layer and a KV-cached decoder step
// through both APIs (mha-wasm in this thread, mha-wasm/worker in a worker), and
// checks them against the float64 reference in the page. The test reads
// window.mhaResult. The test copies this file and ../reference.mjs into each
// app folder, so the relative import holds there too.
import { init } from 'mha-wasm';
import { init as initWorker } from 'mha-wasm/worker';
import { blockStateDict, encoderReference, mhaReference, relErr, rng, uniform } from '../reference.mjs';

const E = 32, H = 4, B = 2, L = 9, F = 48;

/** Every call of one API (await works on both: the main API returns values, the worker API Promises). */
async function check(api) {
  const r = rng(7), s = 1 / Math.sqrt(E);
  const w = { inProjWeight: uniform(r, 3 * E * E, -s, s), inProjBias: uniform(r, 3 * E, -s, s), outProjWeight: uniform(r, E * E, -s, s), outProjBias: uniform(r, E, -s, s) };
  const x = uniform(r, B * L * E, -1, 1);
  const kpm = Uint8Array.from({ length: B * L }, (_, i) => (i % L === L - 1 ? 1 : 0));
  const errs = [];
  const layer = new api.MultiHeadAttention({ embedDim: E, numHeads: H });
  await layer.setWeights(w);
  const got = await layer.forward({ data: x, dims: [B, L, E] }, null, null, { isCausal: true, needWeights: true, keyPaddingMask: { data: kpm, dims: [B, L] } });
  const ref = mhaReference({ E, H, kdim: E, vdim: E, bias: true }, w, B, L, L, x, x, x, { isCausal: true, needWeights: true, keyPaddingMask: kpm });
  errs.push(relErr(got.output.data, ref.output), relErr(got.weights.data, ref.weights));
  layer.dispose();
  const cfg = { E, H, F, activation: 'gelu', eps: 1e-5, normFirst: true, bias: true };
  const enc = new api.TransformerEncoderLayer({ dModel: E, nhead: H, dimFeedforward: F, activation: 'gelu', normFirst: true });
  const sd = blockStateDict(r, E, F, true);
  await enc.setWeights(sd);
  const full = encoderReference(cfg, sd, 1, L, x.subarray(0, L * E), { isCausal: true });
  const y = await enc.forward({ data: x.slice(0, L * E), dims: [1, L, E] }, { isCausal: true });
  errs.push(relErr(y.data, full));
  // The same sequence one position at a time through a KV cache.
  const cache = enc.createCache({ maxLength: L, batch: 1 });
  for (let i = 0; i < L; i++) {
    const step = await enc.forward({ data: x.slice(i * E, (i + 1) * E), dims: [1, 1, E] }, { cache, isCausal: true });
    errs.push(relErr(step.data, full.subarray(i * E, (i + 1) * E)));
  }
  cache.dispose();
  enc.dispose();
  return { build: api.build, threads: api.threads, threadsNote: api.threadsNote, maxErr: Math.max(...errs), checks: errs.length };
}

async function run() {
  const out = { isolated: globalThis.crossOriginIsolated === true };
  let t = performance.now();
  const mha = await init({ threads: 2 });
  out.mainLoadMs = performance.now() - t;
  out.main = await check(mha);
  if (new URLSearchParams(location.search).has('main-only')) return out;  // a page where no worker may start
  t = performance.now();
  const wmha = await initWorker({ threads: 2 });
  out.workerLoadMs = performance.now() - t;
  out.worker = await check(wmha);
  wmha.terminate();
  return out;
}

window.mhaResult = run().catch((e) => ({ error: `${e && e.name}: ${e && e.message}` }));
