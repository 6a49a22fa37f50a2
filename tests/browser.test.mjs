// The package in headless Chromium: served cross-origin isolated it runs the
// threaded build; served without the COOP/COEP headers it falls back to one
// thread, says why, and still computes the same results. Chromium runs relaxed
// SIMD, so init() loads the relaxed builds (where the package has them), and
// init({ relaxedSimd: false }) the SIMD128 ones; both are checked, and against
// each other. Results are checked against the float64 reference
// (tests/reference.mjs) inside the page: the attention layer, the encoder and
// decoder layers, and a decoder stepped through a KV cache.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve } from '../scripts/serve.mjs';
import { launchChromium, watch } from '../scripts/chromium.mjs';
import { buildName, relaxedBuilt } from './builds.mjs';
import { relErr } from './reference.mjs';

// The package's bindings/ and dist/, and tests/ for the reference, on a blank page.
const serveTest = (isolated) => serve({
  port: 0, isolated, mounts: [['/tests/', 'tests']], memory: { '/blank.html': Buffer.from('<!doctype html><title>mha-wasm test</title><link rel="icon" href="data:,">') },
});

// Runs inside the page.
async function pageChecks(relaxedSimd) {
  const { init } = await import('/bindings/index.js');
  const { blockStateDict, decoderReference, encoderReference, mhaReference, relErr, relToMax, rng, uniform } = await import('/tests/reference.mjs');
  const mha = await init({ threads: 2, relaxedSimd });
  const out = { isolated: self.crossOriginIsolated, threads: mha.threads, features: mha.features, build: mha.build, note: mha.threadsNote,
    relaxedNote: mha.relaxedSimdNote, errs: [], outputs: [] };
  const r = rng(21), E = 48, H = 6, B = 2, L = 70, s = 1 / Math.sqrt(E);
  const w = { inProjWeight: uniform(r, 3 * E * E, -s, s), inProjBias: uniform(r, 3 * E, -s, s), outProjWeight: uniform(r, E * E, -s, s), outProjBias: uniform(r, E, -s, s) };
  const layer = new mha.MultiHeadAttention({ embedDim: E, numHeads: H });
  layer.setWeights(w);
  const x = uniform(r, B * L * E, -1, 1);
  const kpm = Uint8Array.from({ length: B * L }, () => (r() < 0.2 ? 1 : 0));
  const got = layer.forward({ data: x, dims: [B, L, E] }, null, null, { isCausal: true, needWeights: true, keyPaddingMask: { data: kpm, dims: [B, L] } });
  const ref = mhaReference({ E, H, kdim: E, vdim: E, bias: true }, w, B, L, L, x, x, x, { isCausal: true, needWeights: true, keyPaddingMask: kpm });
  out.errs.push(relErr(got.output.data, ref.output), relErr(got.weights.data, ref.weights));
  out.outputs.push(Array.from(got.output.data), Array.from(got.weights.data));
  try {
    layer.forward({ data: new Float64Array(4), dims: [1, 4] });
  } catch (e) {
    out.badInput = `${e.name}: ${e.message}`;
  }
  const again = layer.forward({ data: x, dims: [B, L, E] }, null, null, { isCausal: true, needWeights: true, keyPaddingMask: { data: kpm, dims: [B, L] } });
  out.errs.push(relErr(again.output.data, ref.output));
  layer.dispose();
  // The Transformer blocks, and a decoder stepped through a KV cache, in the page.
  const F = 64, T = 9, S = 7, cfg = { E, H, F, activation: 'gelu', eps: 1e-5, normFirst: false, bias: true };
  const opts = { dModel: E, nhead: H, dimFeedforward: F, activation: 'gelu' };
  const enc = new mha.TransformerEncoderLayer(opts), dec = new mha.TransformerDecoderLayer(opts);
  const esd = blockStateDict(r, E, F, true), dsd = blockStateDict(r, E, F, true, true);
  enc.setWeights(esd);
  dec.setWeights(dsd);
  const y = enc.forward({ data: x, dims: [B, L, E] }, { isCausal: true });
  out.errs.push(relErr(y.data, encoderReference(cfg, esd, B, L, x, { isCausal: true })));
  out.outputs.push(Array.from(y.data));
  const tgt = x.subarray(0, T * E), mem = x.subarray(T * E, (T + S) * E);
  const dref = decoderReference(cfg, dsd, 1, T, S, tgt, mem, { isCausal: true });
  const cache = dec.createCache({ maxLength: T });
  for (let i = 0; i < T; i++) {
    const step = dec.forward({ data: tgt.subarray(i * E, (i + 1) * E), dims: [1, E] }, { data: mem, dims: [S, E] }, { cache, tgtIsCausal: true });
    out.errs.push(relErr(step.data, dref.subarray(i * E, (i + 1) * E)));
    out.outputs.push(Array.from(step.data));
  }
  out.cacheLength = cache.length;
  for (const o of [cache, enc, dec]) o.dispose();
  out.live = mha.stats().liveLayers;
  // int8 weights on each kernel this build has ('auto': where this engine runs the relaxed dot as one
  // instruction, x86 with AVX-VNNI, it is that one): a gated FeedForward, one row (the decoding GEMV) and
  // 13 (the GEMM's tiles), against float64 with the dequantized weights.
  const { feedForwardReference, int8Rows } = await import('/tests/reference-modern.mjs');
  const FE = 72, FF = 40, fw = { gateProjWeight: uniform(r, FF * FE, -1, 1), upProjWeight: uniform(r, FF * FE, -1, 1), downProjWeight: uniform(r, FE * FF, -1, 1) };
  const deq = { gateProjWeight: int8Rows(fw.gateProjWeight, FF, FE).deq, upProjWeight: int8Rows(fw.upProjWeight, FF, FE).deq, downProjWeight: int8Rows(fw.downProjWeight, FE, FF).deq };
  out.int8 = [];
  for (const int8Dot of ['auto', 'dot_i16x8', 'relaxed_dot_i8x16_i7x16']) {
    const m = await init({ threads: 2, relaxedSimd, int8Dot });
    const ff = new m.FeedForward({ dModel: FE, dimFeedforward: FF, activation: 'silu', gated: true, bias: false, weightType: 'int8' });
    ff.setWeights(fw);
    for (const M of [1, 13]) {
      const fx = x.subarray(0, M * FE), got = ff.forward({ data: fx, dims: [M, FE] }).data;
      const ref = feedForwardReference({ embedDim: FE, hiddenDim: FF, activation: 'silu', gated: true }, deq, M, fx);
      out.int8.push({ int8Dot, used: m.features.int8Dot, M, err: relToMax(got, ref) });
    }
    ff.dispose();
  }
  return out;
}

let context, servers = [];
before(async () => {
  context = await launchChromium();
});
after(async () => {
  await context?.close();
  for (const s of servers) s.close();
});

for (const isolated of [true, false]) {
  test(`Chromium, ${isolated ? 'cross-origin isolated: threaded build' : 'no COOP/COEP: single-thread fallback'}, relaxed SIMD and SIMD128`, async () => {
    const server = await serveTest(isolated);
    servers.push(server);
    const runs = {};
    for (const relaxedSimd of [true, false]) {
      const page = await context.newPage();
      const w = watch(page);
      await page.goto(`http://127.0.0.1:${server.address().port}/blank.html`);
      const out = runs[relaxedSimd] = await page.evaluate(pageChecks, relaxedSimd);
      await page.close();
      assert.deepEqual(w.problems(), []);
      assert.equal(out.isolated, isolated);
      const relaxed = relaxedSimd && relaxedBuilt;
      assert.equal(out.build, buildName(isolated, relaxed));
      const { int8Dot, ...features } = out.features;
      assert.deepEqual(features, { simd: true, relaxedSimd: relaxed, threads: isolated });
      assert.ok(relaxed || int8Dot === 'dot_i16x8', int8Dot);
      console.log(`# ${relaxed ? 'relaxed' : 'SIMD128'} build: int8 kernel ${int8Dot}`);
      for (const r of out.int8) {
        assert.equal(r.used, r.int8Dot === 'auto' ? int8Dot : relaxed ? r.int8Dot : 'dot_i16x8', JSON.stringify(r));
        assert.ok(r.err <= 2e-3, JSON.stringify(r));
      }
      if (relaxed) assert.equal(out.relaxedNote, null);
      else assert.match(out.relaxedNote, relaxedSimd ? /relaxed-SIMD builds are not in this package/ : /relaxedSimd: false/);
      if (isolated) {
        assert.equal(out.threads, 2);
        assert.equal(out.note, null);
      } else {
        assert.equal(out.threads, 1);
        assert.match(out.note, /not cross-origin isolated/);
      }
      for (const e of out.errs) assert.ok(e <= 1e-4, `error ${e}`);
      assert.match(out.badInput, /^TypeError: query.data must be a Float32Array, got Float64Array/);
      assert.equal(out.errs.length, 4 + 9);  // layer (output, weights, again), encoder, 9 decoder steps
      assert.deepEqual([out.cacheLength, out.live], [9, 0]);
    }
    // The relaxed build (fused multiply-adds) and the SIMD128 build agree.
    const [a, b] = [runs.true.outputs, runs.false.outputs];
    assert.equal(a.length, b.length);
    for (let i = 0; i < a.length; i++) assert.ok(relErr(a[i], b[i]) <= 1e-4, `output ${i}: relaxed vs SIMD128 ${relErr(a[i], b[i])}`);
  });
}
