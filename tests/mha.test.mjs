// MultiHeadAttention and scaledDotProductAttention against the float64
// reference in reference.mjs, in both builds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { init } from 'mha-wasm';
import { mhaReference, relErr, rng, sdpaReference, uniform } from './reference.mjs';

const TOL = 1e-4;  // the contract: max |error| <= 1e-4 * max(1, max |reference|)
const builds = [['single-thread', { threads: 1 }], ['threaded', { threads: 2 }]];

function makeWeights(r, { E, kdim, vdim, bias }, packed) {
  const s = 1 / Math.sqrt(E);
  const w = { outProjWeight: uniform(r, E * E, -s, s) };
  if (packed) w.inProjWeight = uniform(r, 3 * E * E, -s, s);
  else Object.assign(w, { qProjWeight: uniform(r, E * E, -s, s), kProjWeight: uniform(r, E * kdim, -s, s), vProjWeight: uniform(r, E * vdim, -s, s) });
  if (bias) Object.assign(w, { inProjBias: uniform(r, 3 * E, -s, s), outProjBias: uniform(r, E, -s, s) });
  return w;
}

// Masks: each kind the API takes.
const MASKS = ['none', 'bool2d', 'bool4d', 'float2d', 'float4d', 'boolBH3d'];
function makeMask(r, kind, B, H, Lq, Lk, batched) {
  if (kind === 'none') return null;
  const full = kind.endsWith('4d') || kind === 'boolBH3d';
  const n = full ? B * H * Lq * Lk : Lq * Lk;
  const data = kind.startsWith('bool')
    ? Uint8Array.from({ length: n }, () => (r() < 0.3 ? 1 : 0))
    : Float32Array.from({ length: n }, () => (r() < 0.2 ? -Infinity : 4 * r() - 2));
  let dims = [Lq, Lk];
  if (full) dims = kind === 'boolBH3d' ? [B * H, Lq, Lk] : batched ? [B, H, Lq, Lk] : [H, Lq, Lk];
  return { data, dims };
}

function randomCase(seed) {
  const r = rng(seed);
  const pick = (a) => a[Math.floor(r() * a.length)];
  const [E, H] = pick([[8, 1], [8, 2], [12, 3], [16, 4], [24, 6], [32, 4], [64, 8], [40, 5]]);
  const self = r() < 0.4;
  const kdim = self ? E : pick([E, 5, 7, 19]);
  const vdim = self ? E : pick([E, 3, 9, 21]);
  const batched = r() < 0.8;
  const B = batched ? 1 + Math.floor(r() * 4) : 1;
  const Lq = pick([1, 3, 7, 17, 64, 70, 130]);
  const Lk = self ? Lq : pick([1, 4, 17, 33, 129, 200]);
  let mask = pick(MASKS);
  if (!batched && mask === 'boolBH3d') mask = 'bool4d';
  return {
    seed, E, H, kdim, vdim, B, Lq, Lk, self, batched, mask,
    bias: r() < 0.8, packed: kdim === E && vdim === E && r() < 0.5, padding: r() < 0.4, isCausal: r() < 0.4,
    needWeights: r() < 0.6, averageWeights: r() < 0.5,
  };
}

function runCase(mha, c) {
  const r = rng(c.seed * 7919 + 1);
  const cfg = { E: c.E, H: c.H, kdim: c.kdim, vdim: c.vdim, bias: c.bias };
  const w = makeWeights(r, cfg, c.packed);
  const layer = new mha.MultiHeadAttention({ embedDim: c.E, numHeads: c.H, kdim: c.kdim, vdim: c.vdim, bias: c.bias });
  try {
    layer.setWeights(w);
    const q = uniform(r, c.B * c.Lq * c.E, -1, 1);
    const k = c.self ? q : uniform(r, c.B * c.Lk * c.kdim, -1, 1);
    const v = c.self ? q : uniform(r, c.B * c.Lk * c.vdim, -1, 1);
    const dims = (L, d) => (c.batched ? [c.B, L, d] : [L, d]);
    const mask = makeMask(r, c.mask, c.B, c.H, c.Lq, c.Lk, c.batched);
    let kpm = null;
    if (c.padding) {
      kpm = Uint8Array.from({ length: c.B * c.Lk }, () => (r() < 0.3 ? 1 : 0));
      kpm.fill(1, 0, c.Lk);  // first batch: every key padded
    }
    const opts = { isCausal: c.isCausal, needWeights: c.needWeights, averageWeights: c.averageWeights };
    if (mask) opts.attnMask = mask;
    if (kpm) opts.keyPaddingMask = { data: kpm, dims: c.batched ? [c.B, c.Lk] : [c.Lk] };
    const query = { data: q, dims: dims(c.Lq, c.E) };
    const got = c.self && c.seed % 2 ? layer.forward(query, undefined, undefined, opts)
      : layer.forward(query, { data: k, dims: dims(c.Lk, c.kdim) }, { data: v, dims: dims(c.Lk, c.vdim) }, opts);
    const ref = mhaReference(cfg, w, c.B, c.Lq, c.Lk, q, k, v, {
      attnMask: mask && mask.data, maskBroadcast: mask && mask.dims.length === 2, keyPaddingMask: kpm,
      isCausal: c.isCausal, needWeights: c.needWeights, averageWeights: c.averageWeights,
    });
    const where = JSON.stringify(c);
    assert.deepEqual(got.output.dims, dims(c.Lq, c.E), where);
    assert.ok(got.output.data.every(Number.isFinite), `non-finite output ${where}`);
    assert.ok(relErr(got.output.data, ref.output) <= TOL, `output err ${relErr(got.output.data, ref.output)} ${where}`);
    if (!c.needWeights) {
      assert.equal(got.weights, null);
    } else {
      const wd = c.averageWeights ? [c.Lq, c.Lk] : [c.H, c.Lq, c.Lk];
      assert.deepEqual(got.weights.dims, c.batched ? [c.B, ...wd] : wd, where);
      assert.ok(got.weights.data.every(Number.isFinite), `non-finite weights ${where}`);
      assert.ok(relErr(got.weights.data, ref.weights) <= TOL, `weights err ${relErr(got.weights.data, ref.weights)} ${where}`);
    }
  } finally {
    layer.dispose();
  }
}

for (const [name, options] of builds) {
  test(`${name}: 120 random configurations match the float64 reference`, async () => {
    const mha = await init(options);
    const seen = new Set();
    for (let seed = 1; seed <= 120; seed++) {
      const c = randomCase(seed);
      for (const k of ['mask', 'isCausal', 'needWeights', 'batched', 'self', 'padding', 'packed']) seen.add(`${k}=${c[k]}`);
      runCase(mha, c);
    }
    // The random draw must have covered every option.
    for (const m of MASKS) assert.ok(seen.has(`mask=${m}`), `mask kind ${m} not covered`);
    for (const k of ['isCausal', 'needWeights', 'batched', 'self', 'padding', 'packed'])
      assert.ok(seen.has(`${k}=true`) && seen.has(`${k}=false`), `${k} not covered both ways`);
  });

  test(`${name}: large layers (E = 1024, L = 512) within tolerance`, async () => {
    const mha = await init(options);
    runCase(mha, { seed: 9001, E: 1024, H: 16, kdim: 1024, vdim: 1024, B: 1, Lq: 40, Lk: 40, self: true, batched: true,
      mask: 'none', bias: true, packed: true, padding: false, isCausal: false, needWeights: false, averageWeights: true });
    runCase(mha, { seed: 9002, E: 256, H: 4, kdim: 256, vdim: 256, B: 1, Lq: 512, Lk: 512, self: true, batched: true,
      mask: 'none', bias: true, packed: true, padding: false, isCausal: true, needWeights: true, averageWeights: false });
  });

  test(`${name}: a row whose keys are all masked gives the output bias and zero weights`, async () => {
    const mha = await init(options);
    const E = 8, H = 2, L = 4, r = rng(5);
    const layer = new mha.MultiHeadAttention({ embedDim: E, numHeads: H });
    const w = makeWeights(r, { E, kdim: E, vdim: E, bias: true }, true);
    layer.setWeights(w);
    const mask = new Uint8Array(L * L);
    mask.fill(1, 0, L);  // query 0 may attend nothing
    const x = { data: uniform(r, L * E, -1, 1), dims: [L, E] };
    const { output, weights } = layer.forward(x, x, x, { attnMask: { data: mask, dims: [L, L] }, needWeights: true });
    for (let c = 0; c < E; c++) assert.equal(output.data[c], w.outProjBias[c]);
    for (let j = 0; j < L; j++) assert.equal(weights.data[j], 0);
    assert.ok(output.data.every(Number.isFinite) && weights.data.every(Number.isFinite));
    layer.dispose();
  });

  test(`${name}: scaledDotProductAttention matches the reference`, async () => {
    const mha = await init(options);
    let seed = 300;
    for (const [B, H, Lq, Lk, D, Dv, rank] of [[1, 1, 1, 1, 1, 1, 4], [2, 3, 17, 5, 4, 7, 4], [1, 2, 129, 130, 16, 3, 3],
      [1, 1, 33, 65, 8, 8, 2], [3, 2, 64, 64, 64, 64, 4]]) {
      for (const variant of ['plain', 'boolCausal', 'floatScale', 'padWeights']) {
        const r = rng(seed++);
        const q = uniform(r, B * H * Lq * D, -2, 2), k = uniform(r, B * H * Lk * D, -2, 2), v = uniform(r, B * H * Lk * Dv, -1, 1);
        const lead = [B, H].slice(4 - rank);
        const opts = {}, ropts = {};
        if (variant === 'boolCausal') {
          const m = Uint8Array.from({ length: Lq * Lk }, () => (r() < 0.25 ? 1 : 0));
          Object.assign(opts, { attnMask: { data: m, dims: [Lq, Lk] }, isCausal: true });
          Object.assign(ropts, { attnMask: m, maskBroadcast: true, isCausal: true });
        } else if (variant === 'floatScale') {
          const m = Float32Array.from({ length: B * H * Lq * Lk }, () => (r() < 0.1 ? -Infinity : r() - 0.5));
          Object.assign(opts, { attnMask: { data: m, dims: [...lead, Lq, Lk] }, scale: 0.3 });
          Object.assign(ropts, { attnMask: m, maskBroadcast: false, scale: 0.3 });
        } else if (variant === 'padWeights') {
          const kpm = Uint8Array.from({ length: B * Lk }, () => (r() < 0.3 ? 1 : 0));
          Object.assign(opts, { keyPaddingMask: { data: kpm, dims: [B, Lk] }, needWeights: true });
          Object.assign(ropts, { keyPaddingMask: kpm });
        }
        const got = mha.scaledDotProductAttention({ data: q, dims: [...lead, Lq, D] }, { data: k, dims: [...lead, Lk, D] },
          { data: v, dims: [...lead, Lk, Dv] }, opts);
        const ref = sdpaReference({ B, H, Lq, Lk, D, Dv }, q, k, v, ropts);
        const where = `${[B, H, Lq, Lk, D, Dv, rank]} ${variant}`;
        assert.deepEqual(got.output.dims, [...lead, Lq, Dv]);
        assert.ok(relErr(got.output.data, ref.output) <= TOL, `${where}: ${relErr(got.output.data, ref.output)}`);
        if (opts.needWeights) assert.ok(relErr(got.weights.data, ref.weights) <= TOL, where);
        else assert.equal(got.weights, null);
      }
    }
  });
}

test('threaded and single-thread builds agree', async () => {
  const single = await init({ threads: 1 }), threaded = await init({ threads: 2 });
  assert.equal(single.features.threads, false);
  assert.equal(threaded.features.threads, true);
  assert.equal(threaded.threads, 2);
  const r = rng(77), E = 96, H = 6, B = 2, L = 150;
  const w = makeWeights(r, { E, kdim: E, vdim: E, bias: true }, true);
  const x = { data: uniform(r, B * L * E, -1, 1), dims: [B, L, E] };
  const outs = [single, threaded].map((mha) => {
    const layer = new mha.MultiHeadAttention({ embedDim: E, numHeads: H });
    layer.setWeights(w);
    const res = layer.forward(x, null, null, { isCausal: true, needWeights: true, averageWeights: false });
    layer.dispose();
    return res;
  });
  assert.ok(relErr(outs[0].output.data, outs[1].output.data) <= TOL);
  assert.ok(relErr(outs[0].weights.data, outs[1].weights.data) <= TOL);
  assert.notDeepEqual(outs[0].output.data, new Float32Array(B * L * E));
});

test('returned arrays belong to the caller', async () => {
  const mha = await init({ threads: 2 });
  const r = rng(3), E = 16;
  const layer = new mha.MultiHeadAttention({ embedDim: E, numHeads: 2 });
  layer.setWeights(makeWeights(r, { E, kdim: E, vdim: E, bias: true }, true));
  const x = { data: uniform(r, 5 * E, -1, 1), dims: [5, E] };
  const first = layer.forward(x, null, null, { needWeights: true });
  const copy = first.output.data.slice(), wcopy = first.weights.data.slice();
  assert.ok(!(first.output.data.buffer instanceof SharedArrayBuffer));
  layer.forward({ data: uniform(r, 5 * E, -1, 1), dims: [5, E] });
  layer.dispose();
  assert.deepEqual(first.output.data, copy);
  assert.deepEqual(first.weights.data, wcopy);
});
