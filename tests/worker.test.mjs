// mha-wasm/worker in Node (worker_threads): the same classes with Promise
// methods, checked against the float64 reference; several layers in one worker;
// transferables; errors keep their class and message; dispose, the
// FinalizationRegistry backstop, terminate, and a script that exits by itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import { init } from 'mha-wasm/worker';
import { blockStateDict, decoderReference, encoderReference, layerNormRef, mhaReference, relErr, rng, sdpaReference, uniform } from './reference.mjs';
import { buildName } from './builds.mjs';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');
const root = fileURLToPath(new URL('..', import.meta.url));

function weightsFor(r, E) {
  const s = 1 / Math.sqrt(E);
  return { inProjWeight: uniform(r, 3 * E * E, -s, s), inProjBias: uniform(r, 3 * E, -s, s), outProjWeight: uniform(r, E * E, -s, s), outProjBias: uniform(r, E, -s, s) };
}

for (const threads of [1, 2]) {
  test(`threads=${threads}: layers in one worker agree with the float64 reference`, async () => {
    const mha = await init({ threads });
    try {
      assert.equal(mha.threads, threads);
      assert.equal(mha.build, buildName(threads !== 1));
      assert.ok(Object.isFrozen(mha.features), 'features is read-only, as in the main API');
      const r = rng(31 + threads);
      const specs = [{ E: 32, H: 4, B: 2, L: 37, opts: { isCausal: true, needWeights: true } },
        { E: 24, H: 3, B: 1, L: 70, opts: { needWeights: true, averageWeights: false } }];
      const layers = specs.map(({ E, H }) => new mha.MultiHeadAttention({ embedDim: E, numHeads: H }));
      const ws = specs.map(({ E }) => weightsFor(r, E));
      await Promise.all(layers.map((l, i) => l.setWeights(ws[i])));
      const xs = specs.map(({ E, B, L }) => uniform(r, B * L * E, -2, 2));
      // Interleaved requests on two layers, all in flight at once.
      const runs = await Promise.all([0, 1, 0, 1].map((i) => layers[i].forward({ data: xs[i], dims: [specs[i].B, specs[i].L, specs[i].E] }, null, null, specs[i].opts)));
      runs.forEach((got, n) => {
        const { E, H, B, L, opts } = specs[n % 2];
        const ref = mhaReference({ E, H, kdim: E, vdim: E, bias: true }, ws[n % 2], B, L, L, xs[n % 2], xs[n % 2], xs[n % 2], opts);
        assert.deepEqual(got.output.dims, [B, L, E]);
        assert.ok(relErr(got.output.data, ref.output) <= 1e-4);
        assert.ok(relErr(got.weights.data, ref.weights) <= 1e-4);
        assert.equal(got.output.data.buffer.byteLength, B * L * E * 4, 'the output owns an exact-size buffer');
      });
      assert.equal((await mha.stats()).liveLayers, 2);
      for (const l of layers) l.dispose();
      assert.deepEqual(await mha.stats(), { wasmMemoryBytes: (await mha.stats()).wasmMemoryBytes, liveLayers: 0 });

      const [B, H, L, D] = [2, 3, 20, 8];
      const q = uniform(r, B * H * L * D, -1, 1), k = uniform(r, B * H * L * D, -1, 1), v = uniform(r, B * H * L * D, -1, 1);
      const s = await mha.scaledDotProductAttention({ data: q, dims: [B, H, L, D] }, { data: k, dims: [B, H, L, D] }, { data: v, dims: [B, H, L, D] }, { isCausal: true });
      assert.ok(relErr(s.output.data, sdpaReference({ B, H, Lq: L, Lk: L, D, Dv: D }, q, k, v, { isCausal: true }).output) <= 1e-4);
    } finally {
      mha.terminate();
    }
  });
}

test('transfer moves input buffers; without it inputs stay usable, and subarrays send only their elements', async () => {
  const mha = await init({ threads: 1 });
  try {
    const r = rng(4), E = 16, L = 6;
    const w = weightsFor(r, E);
    const layer = new mha.MultiHeadAttention({ embedDim: E, numHeads: 2 });
    const wCopy = Object.fromEntries(Object.entries(w).map(([k, a]) => [k, a.slice()]));
    await layer.setWeights(wCopy, { transfer: true });
    assert.equal(wCopy.inProjWeight.length, 0, 'transferred: detached here');
    const big = uniform(r, 10 * L * E, -1, 1);
    const x = big.subarray(3 * L * E, 4 * L * E);
    const ref = mhaReference({ E, H: 2, kdim: E, vdim: E, bias: true }, w, 1, L, L, x, x, x, {});
    const a = await layer.forward({ data: x, dims: [L, E] });
    assert.equal(x.length, L * E, 'not transferred: still usable');
    assert.ok(relErr(a.output.data, ref.output) <= 1e-4);
    const own = x.slice();
    const b = await layer.forward({ data: own, dims: [L, E] }, null, null, { transfer: true });
    assert.equal(own.length, 0);
    assert.deepEqual(b.output.data, a.output.data);
    layer.dispose();
  } finally {
    mha.terminate();
  }
});

test('errors keep their class and message, and the worker keeps working', async () => {
  const mha = await init({ threads: 2 });
  try {
    const r = rng(9), E = 8;
    const layer = new mha.MultiHeadAttention({ embedDim: E, numHeads: 2 });
    assert.throws(() => new mha.MultiHeadAttention({ embedDim: 10, numHeads: 3 }), { name: 'RangeError', message: /embedDim must be divisible by numHeads/ });
    await assert.rejects(layer.forward({ data: uniform(r, E, 0, 1), dims: [1, E] }), { name: 'Error', message: /weights are not set/ });
    const w = weightsFor(r, E);
    await assert.rejects(layer.setWeights({ ...w, outProjBias: new Float64Array(E) }), { name: 'TypeError', message: /outProjBias must be a Float32Array/ });
    await layer.setWeights(w);
    await assert.rejects(layer.forward({ data: new Float32Array(5), dims: [1, 2, E] }), { name: 'RangeError', message: 'query.data has 5 elements but dims [1, 2, 8] need 16' });
    await assert.rejects(layer.forward({ data: uniform(r, E, 0, 1), dims: [1, E] }, null, null, { isCausal: 'yes' }), { name: 'TypeError', message: /options.isCausal must be a boolean/ });
    await assert.rejects(layer.forward({ data: uniform(r, E, 0, 1), dims: [1, E] }, null, null, { transfer: 1 }), { name: 'TypeError', message: /options.transfer must be a boolean/ });
    // Checked where the call is made, by the same validators as the main API.
    await assert.rejects(layer.forward({ data: () => 1, dims: [1, E] }), { name: 'TypeError', message: 'query.data must be a Float32Array, got a function' });
    await assert.rejects(layer.setWeights(w, { transfr: true }), { name: 'TypeError', message: /unknown option "transfr"/ });
    const x = uniform(r, 3 * E, -1, 1);
    const got = await layer.forward({ data: x, dims: [3, E] });
    assert.ok(relErr(got.output.data, mhaReference({ E, H: 2, kdim: E, vdim: E, bias: true }, w, 1, 3, 3, x, x, x, {}).output) <= 1e-4);
    layer.dispose();
    layer.dispose();
    assert.equal(layer.disposed, true);
    await assert.rejects(layer.forward({ data: x, dims: [3, E] }), { message: 'MultiHeadAttention.forward: this layer has been disposed' });
    // reserveMemory: refused as in the main API; room made in the worker's heap.
    await assert.rejects(async () => mha.reserveMemory(-1), { name: 'RangeError', message: /reserveMemory: bytes must be a non-negative integer, got -1/ });
    const before = (await mha.stats()).wasmMemoryBytes;
    await mha.reserveMemory(before + 2 ** 20);
    assert.ok((await mha.stats()).wasmMemoryBytes > before);
  } finally {
    mha.terminate();
  }
});

test('init option errors, a missing worker script, and terminate', async () => {
  // locateFile is called here, for every file, and its answers go to the worker as urls.
  await assert.rejects(init({ locateFile: () => 1 }), { name: 'TypeError', message: /locateFile\("mha-wasm-threads.js"\) must return a string or URL, got 1/ });
  const located = await init({ threads: 1, locateFile: (f) => new URL(`../dist/${f}`, import.meta.url) });
  assert.equal(located.build, buildName(false));
  located.terminate();
  await assert.rejects(init({ urls: { 'mha.wasm': 'x' } }), { name: 'TypeError', message: /urls: unknown file "mha.wasm"/ });
  await assert.rejects(init({ threads: 0 }), { name: 'RangeError', message: /threads must be 'auto' or a positive integer, got 0/ });
  await assert.rejects(init({ workerUrl: new URL('./no-such-host.js', import.meta.url) }), { message: /mha-wasm\/worker: the worker stopped .*no-such-host\.js/ });
  await assert.rejects(init({ threads: 1, baseUrl: new URL('./', import.meta.url) }), { message: /mha-wasm: cannot (read|load) .*tests\/mha-wasm-simd/ });

  const mha = await init({ threads: 1 });
  const layer = new mha.MultiHeadAttention({ embedDim: 8, numHeads: 1 });
  const pending = layer.setWeights(weightsFor(rng(1), 8));
  mha.terminate();
  await assert.rejects(pending, { message: /the worker stopped \(terminate\(\) was called\)/ });
  await assert.rejects(mha.stats(), { message: /the worker stopped/ });
  assert.throws(() => new mha.MultiHeadAttention({ embedDim: 8, numHeads: 1 }), { message: /the worker stopped/ });
});

test('a layer dropped without dispose() is freed in the worker (FinalizationRegistry)', async () => {
  const mha = await init({ threads: 1 });
  try {
    (() => { for (let i = 0; i < 5; i++) new mha.MultiHeadAttention({ embedDim: 8, numHeads: 2 }); })();
    assert.equal((await mha.stats()).liveLayers, 5);
    for (let i = 0; i < 20 && (await mha.stats()).liveLayers > 0; i++) {
      gc();
      await new Promise((res) => setTimeout(res, 20));
    }
    assert.deepEqual({ ...(await mha.stats()), wasmMemoryBytes: 0 }, { wasmMemoryBytes: 0, liveLayers: 0 });
  } finally {
    mha.terminate();
  }
});

test('a script using the worker API exits by itself', () => {
  const script = `
    import { init } from 'mha-wasm/worker';
    const mha = await init({ threads: 2 });
    const layer = new mha.MultiHeadAttention({ embedDim: 16, numHeads: 2 });
    const f = (n) => Float32Array.from({ length: n }, (_, i) => Math.cos(i) * 0.1);
    await layer.setWeights({ inProjWeight: f(768), inProjBias: f(48), outProjWeight: f(256), outProjBias: f(16) });
    const { output } = await layer.forward({ data: f(64), dims: [4, 16] });
    console.log(output.data.length);`;
  const res = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 30000 });
  assert.equal(res.error, undefined, `did not exit within 30 s: ${res.error}`);
  assert.equal(res.status, 0, res.stderr);
  assert.equal(res.stdout.trim(), '64');
});

test('Transformer blocks, LayerNorm and KV caches in the worker agree with the float64 reference', async () => {
  const mha = await init({ threads: 2 });
  try {
    const r = rng(90), E = 16, H = 4, F = 24, B = 2, L = 12, S = 5;
    const cfg = { E, H, F, activation: 'gelu', eps: 1e-5, normFirst: true, bias: true };
    const opts = { dModel: E, nhead: H, dimFeedforward: F, activation: 'gelu', normFirst: true };
    const enc = new mha.TransformerEncoderLayer(opts), dec = new mha.TransformerDecoderLayer(opts);
    assert.deepEqual([enc.dModel, enc.nhead, enc.dimFeedforward, enc.activation, enc.normFirst, enc.embedDim], [E, H, F, 'gelu', true, E]);
    assert.throws(() => new mha.TransformerDecoderLayer({ dModel: E, nhead: 3 }), { name: 'RangeError', message: /dModel must be divisible by nhead/ });
    const esd = blockStateDict(r, E, F, true), dsd = blockStateDict(r, E, F, true, true);
    await Promise.all([enc.setWeights(esd), dec.setWeights(dsd)]);
    const x = uniform(r, B * L * E, -2, 2), mem = uniform(r, B * S * E, -2, 2);
    const memory = { data: mem, dims: [B, S, E] };
    const [y, d] = await Promise.all([enc.forward({ data: x, dims: [B, L, E] }, { isCausal: true }), dec.forward({ data: x, dims: [B, L, E] }, memory, { tgtIsCausal: true, needWeights: true })]);
    assert.ok(relErr(y.data, encoderReference(cfg, esd, B, L, x, { isCausal: true })) <= 1e-4);
    const dref = decoderReference(cfg, dsd, B, L, S, x, mem, { isCausal: true });
    assert.ok(relErr(d.output.data, dref) <= 1e-4);
    assert.deepEqual(d.crossWeights.dims, [B, H, L, S]);
    // Step the decoder through a cache in the worker: every step equals the full causal forward.
    const cache = dec.createCache({ maxLength: L, batch: B });
    assert.throws(() => dec.createCache({ maxLength: -1 }), { name: 'RangeError', message: /maxLength must be a positive integer, got -1/ });
    for (let pos = 0; pos < L; pos += 3) {
      const step = new Float32Array(B * 3 * E);
      for (let b = 0; b < B; b++) step.set(x.subarray((b * L + pos) * E, (b * L + pos + 3) * E), b * 3 * E);
      const out = await dec.forward({ data: step, dims: [B, 3, E] }, memory, { cache, tgtIsCausal: true });
      assert.equal(cache.length, pos + 3);
      for (let b = 0; b < B; b++)
        assert.ok(relErr(out.data.subarray(b * 3 * E, (b + 1) * 3 * E), dref.subarray((b * L + pos) * E, (b * L + pos + 3) * E)) <= 1e-4, `step at ${pos}`);
    }
    await assert.rejects(dec.forward({ data: new Float32Array(B * E), dims: [B, 1, E] }, memory, { cache }), { name: 'RangeError', message: /options\.cache holds 12 of its maxLength 12 positions/ });
    await assert.rejects(enc.forward({ data: x, dims: [B, L, E] }, { cache }), { name: 'TypeError', message: /options\.cache was created by another layer/ });
    await assert.rejects(enc.forward({ data: x, dims: [B, L, E] }, { cache: {} }), { name: 'TypeError', message: /options\.cache must be a KVCache/ });
    await cache.reset();
    assert.equal(cache.length, 0);
    cache.dispose();
    await assert.rejects(cache.reset(), { message: 'KVCache.reset: this cache has been disposed' });
    // LayerNorm over the last dim, with weights.
    const norm = new mha.LayerNorm({ normalizedShape: E });
    const g = uniform(r, E, 0.5, 1.5), bta = uniform(r, E, -1, 1);
    await norm.setWeights({ weight: g, bias: bta });
    const n = await norm.forward({ data: x, dims: [B, L, E] });
    assert.ok(relErr(n.data, layerNormRef(x, B * L, E, g, bta, 1e-5)) <= 1e-5);
    assert.deepEqual([norm.normalizedShape, norm.eps], [[E], 1e-5]);
    await assert.rejects(norm.setWeights({ weight: g }), { name: 'TypeError', message: /LayerNorm\.setWeights: missing bias/ });
    // MultiHeadAttention self-attention through a cache in the worker.
    const att = new mha.MultiHeadAttention({ embedDim: E, numHeads: H }), aw = weightsFor(r, E);
    await att.setWeights(aw);
    const ac = att.createCache({ maxLength: 2 });
    const steps = [];
    for (let i = 0; i < 2; i++) steps.push((await att.forward({ data: x.subarray(i * E, (i + 1) * E), dims: [1, E] }, null, null, { cache: ac, isCausal: true })).output.data);
    assert.equal(ac.length, 2);
    const aref = mhaReference({ E, H, kdim: E, vdim: E, bias: true }, aw, 1, 2, 2, x.subarray(0, 2 * E), x.subarray(0, 2 * E), x.subarray(0, 2 * E), { isCausal: true }).output;
    assert.ok(relErr(Float32Array.from([...steps[0], ...steps[1]]), aref) <= 1e-4);
    for (const l of [enc, dec, norm, att, ac]) l.dispose();
    await assert.rejects(enc.forward({ data: x, dims: [B, L, E] }), { message: 'TransformerEncoderLayer.forward: this layer has been disposed' });
    const stats = await mha.stats();
    assert.equal(stats.liveLayers, 0);
  } finally {
    mha.terminate();
  }
});
