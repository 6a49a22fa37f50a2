// Hostile arguments at every public entry point of the main API: getters that
// change their answer, Proxies, typed arrays whose length lies, resizable,
// detached and shared buffers, sizes no heap can hold, and an instance that
// stops. Each call either computes what the float64 reference says for the
// values it validated, or throws a TypeError/RangeError naming the argument;
// the heap stays flat and the runtime keeps working.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { init } from 'mha-wasm';
import { runtimeOf } from '../bindings/api.js';
import {
  blockStateDict, decoderReference, encoderReference, layerNormRef, mhaReference, relErr, rng, sdpaReference, uniform,
} from './reference.mjs';

const E = 8, H = 2, F = 16;

/** An object whose property key answers first, then later on every later read. */
function flipping(base, key, first, later) {
  let reads = 0;
  return Object.defineProperty({ ...base }, key, { enumerable: true, get: () => (reads++ === 0 ? first : later) });
}

/** Detaches an ArrayBuffer by transferring it away. */
const detach = (buf) => { structuredClone(buf, { transfer: [buf] }); };

function fixtures(mha) {
  const r = rng(5), s = 1 / Math.sqrt(E);
  const w = { inProjWeight: uniform(r, 3 * E * E, -s, s), inProjBias: uniform(r, 3 * E, -s, s),
    outProjWeight: uniform(r, E * E, -s, s), outProjBias: uniform(r, E, -s, s) };
  const layer = new mha.MultiHeadAttention({ embedDim: E, numHeads: H });
  layer.setWeights(w);
  const cfg = { E, H, kdim: E, vdim: E, bias: true };
  const ref = (x, L, B = 1, opts = {}) => mhaReference(cfg, w, B, L, L, x, x, x, opts).output;
  return { r, w, layer, ref };
}

/** Float32Array subclass whose length getter lies. */
class LyingLength extends Float32Array {
  get length() { return 100000; }
}

for (const threads of [1, 2]) {
  test(`threads=${threads}: a dims getter that changes its answer cannot make the core read memory it was not given`, async () => {
    const mha = await init({ threads });
    const { r, layer, ref } = fixtures(mha);
    const data = uniform(r, 4 * E, -1, 1);
    // [4, E] while checked, [500, E] afterwards: the validated [4, E] is used (or it is refused).
    const q = flipping({ data }, 'dims', [4, E], [500, E]);
    const out = layer.forward(q).output;
    assert.deepEqual(out.dims, [4, E]);
    assert.equal(out.data.length, 4 * E);
    assert.ok(relErr(out.data, ref(data, 4)) < 1e-4);

    // The same through a Proxy whose get trap answers differently each time.
    let n = 0;
    const proxy = new Proxy({ data, dims: [4, E] }, { get: (t, k) => (k === 'dims' ? (n++ ? [500, E] : [4, E]) : t[k]) });
    assert.ok(relErr(layer.forward(proxy).output.data, ref(data, 4)) < 1e-4);

    // Each element of dims is read once: an element that answers 4, then 500.
    const dimsArr = [0, E];
    let e0 = 0;
    Object.defineProperty(dimsArr, 0, { enumerable: true, get: () => (e0++ ? 500 : 4) });
    const viaElement = layer.forward({ data, dims: dimsArr }).output;
    assert.deepEqual(viaElement.dims, [4, E]);
    assert.ok(relErr(viaElement.data, ref(data, 4)) < 1e-4);

    // dims elements and dims.length read once: an array whose length grows on every read.
    let lenReads = 0;
    const growing = new Proxy([4, E], { get: (t, k) => (k === 'length' ? 2 + lenReads++ : t[k]) });
    assert.ok(relErr(layer.forward({ data, dims: growing }).output.data, ref(data, 4)) < 1e-4);

    // scaledDotProductAttention, LayerNorm, blocks: the same getter on their tensors.
    const d = uniform(r, 3 * 4, -1, 1);
    const sq = flipping({ data: d }, 'dims', [3, 4], [3000, 4]);
    const sref = sdpaReference({ B: 1, H: 1, Lq: 3, Lk: 3, D: 4, Dv: 4 }, d, d, d).output;
    const so = mha.scaledDotProductAttention(sq, { data: d, dims: [3, 4] }, { data: d, dims: [3, 4] }).output;
    assert.equal(so.data.length, 12);
    assert.ok(relErr(so.data, sref) < 1e-4);
    const norm = new mha.LayerNorm({ normalizedShape: 4 });
    const no = norm.forward(flipping({ data: d }, 'dims', [3, 4], [3000, 4]));
    assert.equal(no.data.length, 12);
    assert.ok(relErr(no.data, layerNormRef(d, 3, 4, new Float32Array(4).fill(1), new Float32Array(4), 1e-5)) < 1e-4);
    const enc = new mha.TransformerEncoderLayer({ dModel: E, nhead: H, dimFeedforward: F });
    const sd = blockStateDict(rng(3), E, F, true);
    enc.setWeights(sd);
    const src = uniform(r, 3 * E, -1, 1);
    const eo = enc.forward(flipping({ data: src }, 'dims', [3, E], [3000, E]));
    assert.equal(eo.data.length, 3 * E);
    assert.ok(relErr(eo.data, encoderReference({ E, H, F, activation: 'relu', eps: 1e-5, normFirst: false, bias: true }, sd, 1, 3, src)) < 1e-4);
    // The decoder's tgt and memory, and a cached step.
    const dec = new mha.TransformerDecoderLayer({ dModel: E, nhead: H, dimFeedforward: F });
    const dsd = blockStateDict(rng(4), E, F, true, true);
    dec.setWeights(dsd);
    const mem = uniform(r, 5 * E, -1, 1);
    const dcfg = { E, H, F, activation: 'relu', eps: 1e-5, normFirst: false, bias: true };
    const dout = dec.forward(flipping({ data: src }, 'dims', [3, E], [3000, E]), flipping({ data: mem }, 'dims', [5, E], [50, E]));
    assert.deepEqual(dout.dims, [3, E]);
    assert.ok(relErr(dout.data, decoderReference(dcfg, dsd, 1, 3, 5, src, mem)) < 1e-4);
    const cache = enc.createCache({ maxLength: 8 });
    const step = enc.forward(flipping({ data: src }, 'dims', [3, E], [8, E]), { cache });
    assert.equal(cache.length, 3);
    assert.equal(step.data.length, 3 * E);
    for (const o of [dec, cache]) o.dispose();
    // A mask's dims, too.
    const mask = flipping({ data: new Uint8Array(16) }, 'dims', [4, 4], [400, 400]);
    assert.ok(relErr(layer.forward({ data, dims: [4, E] }, null, null, { attnMask: mask }).output.data, ref(data, 4)) < 1e-4);
    for (const o of [layer, norm, enc]) o.dispose();
  });

  test(`threads=${threads}: options, weights and constructor options are read once`, async () => {
    const mha = await init({ threads });
    const { r, w, layer, ref } = fixtures(mha);
    const data = uniform(r, 4 * E, -1, 1);
    // isCausal false while checked, a string later: false is used.
    const opts = flipping({}, 'isCausal', false, 'yes');
    assert.ok(relErr(layer.forward({ data, dims: [4, E] }, null, null, opts).output.data, ref(data, 4)) < 1e-4);
    // needWeights true once: the weights are returned and have the validated size.
    const nw = layer.forward({ data, dims: [4, E] }, null, null, flipping({}, 'needWeights', true, false));
    assert.deepEqual(nw.weights.dims, [4, 4]);
    // A weight that is a good Float32Array when checked and a short one afterwards.
    const l2 = new mha.MultiHeadAttention({ embedDim: E, numHeads: H });
    l2.setWeights(flipping(w, 'outProjWeight', w.outProjWeight, new Float32Array(1)));
    assert.ok(relErr(l2.forward({ data, dims: [4, E] }).output.data, ref(data, 4)) < 1e-4);
    // Constructor options: the layer is what its getters report.
    const l3 = new mha.MultiHeadAttention(flipping({ numHeads: H }, 'embedDim', E, 4 * E));
    assert.equal(l3.embedDim, E);
    l3.setWeights(w);
    assert.ok(relErr(l3.forward({ data, dims: [4, E] }).output.data, ref(data, 4)) < 1e-4);
    const n = new mha.LayerNorm(flipping({}, 'normalizedShape', [4], [2 ** 29]));
    assert.deepEqual(n.normalizedShape, [4]);
    // Cache options.
    const cache = layer.createCache(flipping({}, 'maxLength', 4, 1e9));
    assert.equal(cache.maxLength, 4);
    // A Proxy as options works like the object it wraps.
    const pl = new mha.MultiHeadAttention(new Proxy({ embedDim: E, numHeads: H }, {}));
    assert.equal(pl.headDim, E / H);
    for (const o of [l2, l3, n, cache, pl]) o.dispose();
    layer.dispose();
  });

  test(`threads=${threads}: typed arrays are measured by their buffer, never by a length that lies`, async () => {
    const mha = await init({ threads });
    const { r, layer, ref } = fixtures(mha);
    const data = uniform(r, 4 * E, -1, 1);
    // A subclass whose length getter lies: the intrinsic length (4 * E) is used.
    const lying = new LyingLength(data);
    assert.ok(relErr(layer.forward({ data: lying, dims: [4, E] }).output.data, ref(data, 4)) < 1e-4);
    assert.throws(() => layer.forward({ data: lying, dims: [100000 / E, E] }), (e) => e instanceof RangeError && /query.data has 32 elements/.test(e.message));
    // An own length property is ignored the same way.
    const own = Object.defineProperty(new Float32Array(data), 'length', { value: 4 });
    assert.ok(relErr(layer.forward({ data: own, dims: [4, E] }).output.data, ref(data, 4)) < 1e-4);
    // Not a typed array, though it claims to be one.
    const fake = Object.create(Float32Array.prototype);
    assert.throws(() => layer.forward({ data: fake, dims: [4, E] }), (e) => e instanceof TypeError && /query.data must be a Float32Array/.test(e.message));
    assert.throws(() => layer.forward({ data: new Proxy(data, {}), dims: [4, E] }), (e) => e instanceof TypeError && /query.data must be a Float32Array/.test(e.message));
    // A weight array with a lying length.
    const l2 = new mha.MultiHeadAttention({ embedDim: E, numHeads: H });
    const w = fixtures(mha).w;
    assert.throws(() => l2.setWeights({ ...w, outProjBias: new LyingLength(3) }), (e) => e instanceof RangeError && /outProjBias must have 8 = \[8\] elements, got 3/.test(e.message));
    l2.dispose();
    layer.dispose();
  });

  test(`threads=${threads}: resizable, detached and shared buffers work or are refused, and nothing leaks`, async () => {
    const mha = await init({ threads });
    const { r, layer, ref } = fixtures(mha);
    const data = uniform(r, 4 * E, -1, 1);
    // A length-tracking view of a resizable buffer, and a SharedArrayBuffer: they compute.
    const rab = new ArrayBuffer(data.byteLength, { maxByteLength: 4 * data.byteLength });
    const tracking = new Float32Array(rab);
    tracking.set(data);
    assert.ok(relErr(layer.forward({ data: tracking, dims: [4, E] }).output.data, ref(data, 4)) < 1e-4);
    const shared = new Float32Array(new SharedArrayBuffer(data.byteLength));
    shared.set(data);
    assert.ok(relErr(layer.forward({ data: shared, dims: [4, E] }).output.data, ref(data, 4)) < 1e-4);

    // Detached before the call.
    const gone = new Float32Array(data);
    detach(gone.buffer);
    assert.throws(() => layer.forward({ data: gone, dims: [4, E] }), (e) => e instanceof TypeError && /query.data/.test(e.message));

    // Shrunk, or detached, by an option getter after the query was checked.
    const shrinkDuring = () => {
      const b = new ArrayBuffer(data.byteLength, { maxByteLength: data.byteLength });
      const v = new Float32Array(b);
      v.set(data);
      const opts = Object.defineProperty({}, 'isCausal', { enumerable: true, get: () => { b.resize(4); return false; } });
      return [{ data: v, dims: [4, E] }, opts];
    };
    const [sq, sopts] = shrinkDuring();
    assert.throws(() => layer.forward(sq, null, null, sopts), (e) => e instanceof TypeError && /query.data is a view of an ArrayBuffer that was detached or resized/.test(e.message));

    // 200 calls whose buffer is detached mid-call: the heap does not grow, and nothing stays staged.
    const big = 1 << 18;  // 1 MiB of floats per call
    const detachDuring = () => {
      const v = new Float32Array(big * E / E);
      const opts = Object.defineProperty({}, 'needWeights', { enumerable: true, get: () => { detach(v.buffer); return false; } });
      return [{ data: v, dims: [big / E, E] }, opts];
    };
    layer.forward(...(() => { const v = new Float32Array(big); return [{ data: v, dims: [big / E, E] }]; })());  // warm the workspace
    const before = mha.stats().wasmMemoryBytes;
    for (let i = 0; i < 200; i++) {
      const [q, o] = detachDuring();
      assert.throws(() => layer.forward(q, null, null, o), TypeError);
    }
    assert.equal(mha.stats().wasmMemoryBytes, before);

    // The same for setWeights, LayerNorm and scaledDotProductAttention.
    const l2 = new mha.MultiHeadAttention({ embedDim: E, numHeads: H });
    const w = fixtures(mha).w;
    const wcopy = new Float32Array(w.outProjWeight);
    const weights = { ...w, outProjWeight: wcopy };
    Object.defineProperty(weights, 'outProjBias', { enumerable: true, get: () => { detach(wcopy.buffer); return w.outProjBias; } });
    assert.throws(() => l2.setWeights(weights), (e) => e instanceof TypeError && /outProjWeight/.test(e.message));
    const norm = new mha.LayerNorm({ normalizedShape: 4 });
    const nd = new Float32Array(8);
    detach(nd.buffer);
    assert.throws(() => norm.forward({ data: nd, dims: [2, 4] }), TypeError);
    const q4 = new Float32Array(12);
    const maskT = Object.defineProperty({ dims: [3, 3] }, 'data', { enumerable: true, get: () => { detach(q4.buffer); return new Uint8Array(9); } });
    assert.throws(() => mha.scaledDotProductAttention({ data: q4, dims: [3, 4] }, { data: new Float32Array(12), dims: [3, 4] },
      { data: new Float32Array(12), dims: [3, 4] }, { attnMask: maskT }), (e) => e instanceof TypeError && /q.data/.test(e.message));
    // Still working.
    assert.ok(relErr(layer.forward({ data, dims: [4, E] }).output.data, ref(data, 4)) < 1e-4);
    for (const o of [l2, norm, layer]) o.dispose();
  });

  test(`threads=${threads}: sizes no heap can hold are RangeErrors naming the size, and the instance is never aborted`, async () => {
    const mha = await init({ threads });
    const { r, layer, ref } = fixtures(mha);
    for (const normalizedShape of [2 ** 29, 2 ** 30, [46341, 46340], 2 ** 31 - 1]) {
      assert.throws(() => new mha.LayerNorm({ normalizedShape }),
        (e) => e instanceof RangeError && /LayerNorm with normalizedShape .* needs \d.* of wasm memory/.test(e.message), String(normalizedShape));
    }
    for (const [maxLength, batch] of [[2 ** 31 - 1, 1], [2 ** 31 - 1, 2 ** 31 - 1], [2 ** 24, 64]]) {
      assert.throws(() => layer.createCache({ maxLength, batch }), (e) => e instanceof RangeError && /needs about .* of wasm working memory/.test(e.message));
    }
    const blk = new mha.TransformerEncoderLayer({ dModel: 2 ** 30, nhead: 1, dimFeedforward: 2 ** 31 - 1 });
    assert.throws(() => blk.setWeights({}), TypeError);  // missing entries are named first
    blk.dispose();
    // A block's forward whose working memory (here the feed-forward's hidden rows, 2^16 x 2^14
    // floats) no heap can hold: a RangeError with the size (it asks the block how much it needed),
    // and the block computes as before afterwards.
    for (const decoder of [false, true]) {
      const FF = 2 ** 14, big = 2 ** 16;
      const Block = decoder ? mha.TransformerDecoderLayer : mha.TransformerEncoderLayer;
      const b = new Block({ dModel: E, nhead: H, dimFeedforward: FF });
      const sd = blockStateDict(rng(7), E, FF, true, decoder);
      b.setWeights(sd);
      const mem = { data: uniform(r, 2 * E, -1, 1), dims: [1, 2, E] };
      const run = (x) => (decoder ? b.forward(x, mem) : b.forward(x));
      const small = { data: uniform(r, 3 * E, -1, 1), dims: [1, 3, E] };
      const want = run(small).data.slice();
      assert.throws(() => run({ data: new Float32Array(big * E), dims: [1, big, E] }),
        (e) => e instanceof RangeError && new RegExp(`${decoder ? 'TransformerDecoderLayer' : 'TransformerEncoderLayer'}\\.forward needs about .* of wasm working memory`).test(e.message));
      assert.deepEqual(run(small).data, want);
      b.dispose();
    }
    const data = uniform(r, 4 * E, -1, 1);
    assert.ok(relErr(layer.forward({ data, dims: [4, E] }).output.data, ref(data, 4)) < 1e-4);
    assert.equal(runtimeOf(mha).deadReason, null);
    layer.dispose();
  });
}

test('an instance that stops (abort or trap) is marked dead: every later call says so, and init() loads a new one', async () => {
  const opts = { threads: 1, baseUrl: new URL('../dist/', import.meta.url) };  // its own memo entry
  const mha = await init(opts);
  const layer = new mha.MultiHeadAttention({ embedDim: E, numHeads: H });
  const rt = runtimeOf(mha);
  // Emscripten's abort('') tells Module.onAbort first (then throws a RuntimeError): an empty reason still kills it.
  rt.mod.onAbort('');
  assert.match(rt.deadReason, /abort/);
  for (const call of [() => new mha.MultiHeadAttention({ embedDim: E, numHeads: H }), () => layer.setWeights({}),
    () => mha.scaledDotProductAttention({ data: new Float32Array(4), dims: [1, 4] }, { data: new Float32Array(4), dims: [1, 4] },
      { data: new Float32Array(4), dims: [1, 4] }), () => new mha.LayerNorm({ normalizedShape: 4 })])
    assert.throws(call, (e) => e instanceof Error && /stopped \(abort\(\) was called\); call init\(\) again/.test(e.message));
  const again = await init(opts);
  assert.notEqual(again, mha);
  const l2 = new again.MultiHeadAttention({ embedDim: E, numHeads: H });
  const { w, ref, r } = fixtures(again);
  l2.setWeights(w);
  const data = uniform(r, 4 * E, -1, 1);
  assert.ok(relErr(l2.forward({ data, dims: [4, E] }).output.data, ref(data, 4)) < 1e-4);
  // A trap (an out-of-bounds read in the core) stops the instance the same way.
  const rt2 = runtimeOf(again);
  assert.throws(() => rt2.mod.sdpa(0xfffffff0),  // a call record beyond the heap
    (e) => e instanceof Error && /stopped \(sdpa failed: memory access out of bounds/.test(e.message));
  assert.throws(() => l2.forward({ data, dims: [4, E] }), /stopped/);
});

test('init({ threads }) is capped at what the pool uses, says so, and starts no unused workers', async () => {
  for (const threads of [1200, 1e6]) {
    const mha = await init({ threads });
    assert.equal(mha.threads, 64);
    assert.match(mha.threadsNote, new RegExp(`threads: ${threads} is more than the 64 the thread pool can use; using 64`));
    const P = runtimeOf(mha).mod.PThread;
    assert.equal(P.unusedWorkers.length + P.runningWorkers.length, 63);
  }
});

test('options are read from the object given (and its own prototypes), never from a polluted Object.prototype', async () => {
  const { encodeSafetensors, parseSafetensors, quantizeSafetensors } = await import('mha-wasm');
  const mha = await init({ threads: 1 });
  const ones = (n) => new Float32Array(n).fill(1);
  const t = { data: ones(8), dims: [2, 4] };
  const file = encodeSafetensors({ 'a.weight': { data: ones(4), dims: [2, 2] }, b: ones(2) });
  const polluted = { weightType: 'int8', isCausal: true, prefix: 'zzz.', filter: () => true, dtype: 'F16', numKvHeads: 3 };
  for (const [k, v] of Object.entries(polluted)) Object.prototype[k] = v;
  try {
    const layer = new mha.MultiHeadAttention({ embedDim: 8, numHeads: 2 });
    assert.equal(layer.weightType, 'f32');
    assert.equal(layer.numKvHeads, 2);
    layer.dispose();
    // Not causal: both keys equal, so each query weighs them 0.5 / 0.5.
    assert.deepEqual(Array.from(mha.scaledDotProductAttention(t, t, t, { needWeights: true }).weights.data), [0.5, 0.5, 0.5, 0.5]);
    assert.deepEqual(Object.keys(parseSafetensors(file)).sort(), ['a.weight', 'b']);
    assert.ok(quantizeSafetensors(file, { type: 'int8' }) instanceof Uint8Array);  // b, a vector, is left alone rather than filtered in
    assert.equal(parseSafetensors(encodeSafetensors({ c: ones(2) })).c.data.length, 2);
    // An options object's own prototype still counts.
    const base = { isCausal: true };
    assert.deepEqual(Array.from(mha.scaledDotProductAttention(t, t, t, Object.assign(Object.create(base), { needWeights: true })).weights.data), [1, 0, 0.5, 0.5]);
  } finally {
    for (const k of Object.keys(polluted)) delete Object.prototype[k];
  }
});
