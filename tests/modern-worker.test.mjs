// Issue 13's modern attention options through mha-wasm/worker (the same classes with
// Promise methods, run in a worker_threads Worker), against the float64 references, on
// both builds: random configurations of modern-cases.mjs, cached decoding through a
// sliding-window ring with a refused step, scaledDotProductAttention with grouped heads,
// applyRotaryEmbedding, and errors that keep their class and message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { init } from 'mha-wasm/worker';
import { relErr, rng, uniform } from './reference.mjs';
import { applyRotaryReference, modernAttentionReference, modernSdpaReference, modernWeights } from './reference-modern.mjs';
import { TOL, compareResult, describeCase, layerArgs, layerWeights, randomCase, referenceOf, rowsOf } from './modern-cases.mjs';

const close = (got, want, what) => {
  const e = relErr(got, want);
  assert.ok(e <= TOL, `${what}: error ${e}`);
};

for (const threads of [1, 2]) {
  test(`threads=${threads}: random configurations in the worker agree with the float64 reference`, async () => {
    const mha = await init({ threads });
    try {
      assert.equal(mha.threads, threads);
      const failures = [];
      // several layers in flight at once
      const cases = Array.from({ length: 40 }, (_, i) => randomCase(7000 + 100 * threads + i));
      const layers = cases.map((cs) => new mha.MultiHeadAttention(cs.cfg));
      await Promise.all(layers.map((l, i) => l.setWeights(layerWeights(cases[i]))));
      const results = await Promise.all(layers.map((l, i) => l.forward(...layerArgs(cases[i]))));
      results.forEach((got, i) => {
        const msg = compareResult(cases[i], got, referenceOf(cases[i]));
        if (msg) failures.push(`${describeCase(cases[i])}: ${msg}`);
      });
      assert.deepEqual(failures, []);
      for (const l of layers) l.dispose();
      assert.equal((await mha.stats()).liveLayers, 0);
    } finally {
      mha.terminate();
    }
  });

  test(`threads=${threads}: a sliding-window ring in the worker decodes past maxLength like the full forward; a refused step rejects and changes nothing`, async () => {
    const mha = await init({ threads });
    try {
      const cfg = { embedDim: 10, numHeads: 6, numKvHeads: 3, headDim: 4, slidingWindow: 3, rope: { interleaved: true }, sinks: true, qkNorm: 'rms', alibi: true };
      const B = 2, L = 24, E = 10, r = rng(8);
      const w = modernWeights(r, cfg, { withSinks: true });
      const x = uniform(r, B * L * E, -1, 1);
      const positionIds = Int32Array.from({ length: B * L }, (_, t) => (2 + Math.floor(t / L)) * (t % L));
      const full = modernAttentionReference(cfg, w, B, L, L, x, x, x, { isCausal: true, positionIds, needWeights: true });
      const layer = new mha.MultiHeadAttention(cfg);
      await layer.setWeights(w);
      const cache = layer.createCache({ maxLength: 5, batch: B });
      const step = (pos, n, extra) => layer.forward({ data: rowsOf(x, B, L, E, pos, n), dims: [B, n, E] }, null, null,
        { cache, isCausal: true, positionIds: { data: rowsOf(positionIds, B, L, 1, pos, n), dims: [B, n] }, ...extra });
      const small = layer.createCache({ maxLength: 2, batch: B });  // below the window: a step of 1 fits until 2 are seen
      for (let t = 0; t < 2; t++) close((await step(t, 1, { cache: small })).output.data, rowsOf(full.output, B, L, E, t, 1), `token ${t} into a cache of 2`);
      await assert.rejects(step(2, 1, { cache: small }), { name: 'RangeError', message: /keeps the last 2 positions, but 1 new ones and the 2 before them \(slidingWindow 3\) need 3/ });
      assert.equal(small.length, 2);
      small.dispose();
      let pos = 0;
      for (const n of [3, 1, 1, 2, 1, 3, 1, 1, 1, 2]) {
        const y = await step(pos, n, { needWeights: true });
        close(y.output.data, rowsOf(full.output, B, L, E, pos, n), `step of ${n} at ${pos}`);
        const want = new Float64Array(B * n * (pos + n));
        for (let b = 0; b < B; b++) for (let i = 0; i < n; i++) want.set(full.weights.subarray((b * L + pos + i) * L, (b * L + pos + i) * L + pos + n), (b * n + i) * (pos + n));
        assert.deepEqual(y.weights.dims, [B, n, pos + n]);
        close(y.weights.data, want, `weights of the step at ${pos}`);
        pos += n;
        assert.equal(cache.length, pos);
      }
      await assert.rejects(step(pos, 4), { name: 'RangeError', message: /options\.cache keeps the last 5 positions, but 4 new ones and the 2 before them \(slidingWindow 3\) need 6/ });
      assert.equal(cache.length, pos);
      for (; pos < L; pos++) close((await step(pos, 1)).output.data, rowsOf(full.output, B, L, E, pos, 1), `token ${pos} after the refused step`);
      assert.equal(cache.length, L);
      layer.dispose();
    } finally {
      mha.terminate();
    }
  });
}

test('the worker: scaledDotProductAttention with grouped heads and the new options, applyRotaryEmbedding, and errors', async () => {
  const mha = await init({ threads: 2 });
  try {
    const r = rng(12);
    const [B, H, Hkv, Lq, Lk, D] = [2, 6, 2, 4, 9, 5];
    const q = uniform(r, B * H * Lq * D, -1, 1), k = uniform(r, B * Hkv * Lk * D, -1, 1), v = uniform(r, B * Hkv * Lk * D, -1, 1);
    const options = { isCausal: true, slidingWindow: 3, softcap: 0.7, alibiSlopes: uniform(r, H, 0, 1), sinks: uniform(r, H, -1, 1), scale: 0.6, needWeights: true };
    const got = await mha.scaledDotProductAttention({ data: q, dims: [B, H, Lq, D] }, { data: k, dims: [B, Hkv, Lk, D] }, { data: v, dims: [B, Hkv, Lk, D] }, options);
    const ref = modernSdpaReference({ B, H, Hkv, Lq, Lk, D }, q, k, v, options);
    close(got.output.data, ref.output, 'sdpa output');
    close(got.weights.data, ref.weights, 'sdpa weights');
    const x = uniform(r, 2 * 5 * 3 * 8, -1, 1), positions = Int32Array.from({ length: 10 }, (_, t) => 7 * t);
    const rope = { dim: 6, interleaved: true, invFreq: Float32Array.of(1, 0.2, 0.01), attentionFactor: 1.1 };
    const y = await mha.applyRotaryEmbedding({ data: x, dims: [2, 5, 3, 8] }, { ...rope, layout: 'blhd', positions: { data: positions, dims: [2, 5] } });
    assert.deepEqual(y.dims, [2, 5, 3, 8]);
    close(y.data, applyRotaryReference(x, 30, 8, (row) => positions[Math.floor(row / 3)], rope), 'rotary blhd [B, L]');

    // errors keep their class and message, and the worker keeps working
    assert.throws(() => new mha.MultiHeadAttention({ embedDim: 12, numHeads: 4, numKvHeads: 3 }), { name: 'RangeError', message: /numKvHeads must divide numHeads/ });
    assert.throws(() => new mha.MultiHeadAttention({ embedDim: 12, numHeads: 4, rope: { dim: 5 } }), { name: 'RangeError', message: /rope\.dim must be even/ });
    assert.throws(() => new mha.MultiHeadAttention({ embedDim: 12, numHeads: 4, slidingWindow: 0 }), { name: 'RangeError', message: /slidingWindow/ });
    const cfg = { embedDim: 16, numHeads: 4, numKvHeads: 2, sinks: true, qkNorm: 'rms', rope: {} };
    const w = modernWeights(r, cfg, { withSinks: true });
    const layer = new mha.MultiHeadAttention(cfg);
    await assert.rejects(layer.setWeights({ ...w, sinks: undefined }), { name: 'TypeError', message: /setWeights: missing sinks/ });
    await assert.rejects(layer.setWeights({ ...w, qNormWeight: new Float32Array(2) }), { name: 'RangeError', message: /qNormWeight/ });
    await layer.setWeights(w);
    const xin = uniform(r, 2 * 3 * 16, -1, 1);
    const input = { data: xin, dims: [2, 3, 16] };
    await assert.rejects(layer.forward(input, null, null, { positionIds: new Float32Array(3) }), { name: 'TypeError', message: /options\.positionIds must be an Int32Array/ });
    await assert.rejects(layer.forward(input, null, null, { positionIds: new Int32Array(4) }), { name: 'RangeError', message: /options\.positionIds must have dims \[2, 3\] or \[3\], got \[4\]/ });
    await assert.rejects(mha.scaledDotProductAttention({ data: q, dims: [B, H, Lq, D] }, { data: k.subarray(0, 4 * Lk * D), dims: [1, 4, Lk, D] }, { data: v.subarray(0, 4 * Lk * D), dims: [1, 4, Lk, D] }),
      { name: 'RangeError' });
    await assert.rejects(mha.scaledDotProductAttention({ data: q, dims: [B, H, Lq, D] }, { data: k, dims: [B, Hkv, Lk, D] }, { data: v, dims: [B, Hkv, Lk, D] }, { sinks: new Float32Array(2) }),
      { name: 'RangeError', message: /options\.sinks must have 6 elements, got 2/ });
    await assert.rejects(mha.applyRotaryEmbedding({ data: x, dims: [2, 5, 3, 8] }, { layout: 'bshd' }), { name: 'RangeError', message: /options\.layout/ });
    const pid = Int32Array.of(4, 9, 2);
    const out = await layer.forward(input, null, null, { isCausal: true, positionIds: pid, needWeights: true, averageWeights: false });
    const want = modernAttentionReference(cfg, w, 2, 3, 3, xin, xin, xin, { isCausal: true, positionIds: pid, needWeights: true, averageWeights: false });
    close(out.output.data, want.output, 'the layer after errors');
    close(out.weights.data, want.weights, 'its weights');
    layer.dispose();
  } finally {
    mha.terminate();
  }
});
