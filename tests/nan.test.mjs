// NaN and Infinity in the inputs propagate as in PyTorch's math path
// (softmax(q k^T * scale + mask) @ v, masks added as -Infinity): a NaN query row
// gives a NaN output row; a NaN key gives NaN scores even where a mask hides it
// (NaN + -Infinity = NaN), so every row of that batch and head that attends to
// anything is NaN; a NaN value reaches every such row through its weight, even a
// zero one (0 * NaN = NaN). The one exception, kept on purpose: a row that no mask
// leaves a key attends to nothing and stays zero. Compared with the literal float64
// reference (NaN where it has NaN, Infinity where it has Infinity), in both builds,
// through MultiHeadAttention.forward (weights too) and scaledDotProductAttention.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { init } from 'mha-wasm';
import { mhaReference, relErrNonFinite, rng, sdpaReference, uniform } from './reference.mjs';

const TOL = 1e-4;
const builds = [['single-thread', { threads: 1 }], ['threaded', { threads: 2 }]];

const isNaNRow = (data, row, width) => data.subarray(row * width, (row + 1) * width).every(Number.isNaN);
const isFiniteRow = (data, row, width) => data.subarray(row * width, (row + 1) * width).every(Number.isFinite);

function layerWeights(r, E) {
  const s = 1 / Math.sqrt(E);
  return { inProjWeight: uniform(r, 3 * E * E, -s, s), inProjBias: uniform(r, 3 * E, -s, s), outProjWeight: uniform(r, E * E, -s, s), outProjBias: uniform(r, E, -s, s) };
}

// B = 2 batches of L = 200 positions: 4 query blocks and 2 key blocks, so the causal
// mask skips whole key blocks and the key padding below pads out the second one.
const B = 2, L = 200, E = 16, H = 4;
const padTail = () => Uint8Array.from({ length: B * L }, (_, i) => (i % L >= 120 ? 1 : 0));  // keys 120.. are padding

/** The scenarios: where the non-finite value goes, and the masks. */
const SCENARIOS = [
  { name: 'NaN in a query row', put: { query: [[1, 70, 3, NaN]] }, masks: ['none', 'causal', 'padding'],
    expect: (out, m) => { assert.ok(isNaNRow(out, L + 70, E)); assert.ok(isFiniteRow(out, L + 69, E) && isFiniteRow(out, 70, E)); } },
  { name: 'NaN in a key every query sees', put: { key: [[0, 5, 0, NaN]] }, masks: ['none', 'causal'],
    expect: (out, m) => { for (const i of [10, 100, 199]) assert.ok(isNaNRow(out, i, E)); assert.ok(isFiniteRow(out, L + 10, E)); } },
  { name: 'NaN in a key the causal mask hides from the first rows', put: { key: [[0, 180, 2, NaN]] }, masks: ['causal'],
    expect: (out) => { for (const i of [0, 63, 179, 180]) assert.ok(isNaNRow(out, i, E), `row ${i}`); assert.ok(isFiniteRow(out, L, E)); } },
  { name: 'NaN in a padded key', put: { key: [[1, 150, 7, NaN]] }, masks: ['padding', 'causalPadding'],
    expect: (out) => { assert.ok(isNaNRow(out, L + 0, E) && isNaNRow(out, L + 199, E)); assert.ok(isFiniteRow(out, 0, E)); } },
  { name: 'NaN in a value with weight', put: { value: [[0, 20, 1, NaN]] }, masks: ['none', 'causal', 'padding'],
    expect: (out) => { assert.ok(isNaNRow(out, 199, E) && isNaNRow(out, 0, E)); assert.ok(isFiniteRow(out, L, E)); } },
  { name: 'NaN in a value only masked keys hold (0 * NaN)', put: { value: [[1, 190, 0, NaN]] }, masks: ['causal', 'padding'],
    expect: (out) => { assert.ok(isNaNRow(out, L + 0, E) && isNaNRow(out, L + 100, E)); assert.ok(isFiniteRow(out, 0, E)); } },
  { name: '+Infinity in a key', put: { key: [[0, 30, 4, Infinity]] }, masks: ['none', 'causal', 'padding'],
    expect: (out) => assert.ok(isFiniteRow(out, L + 150, E)) },
  { name: '-Infinity in a query row', put: { query: [[1, 8, 9, -Infinity]] }, masks: ['none', 'causal'],
    expect: (out) => { assert.ok(isNaNRow(out, L + 8, E)); assert.ok(isFiniteRow(out, L + 9, E)); } },
  { name: '+Infinity in a value', put: { value: [[0, 40, 6, Infinity]] }, masks: ['none', 'padding'],
    expect: () => {} },
];

function maskOptions(kind) {
  const opts = {}, ropts = {};
  if (kind === 'causal' || kind === 'causalPadding') opts.isCausal = ropts.isCausal = true;
  if (kind === 'padding' || kind === 'causalPadding') {
    ropts.keyPaddingMask = padTail();
    opts.keyPaddingMask = { data: ropts.keyPaddingMask, dims: [B, L] };
  }
  return { opts, ropts };
}

for (const [buildName, options] of builds) {
  test(`${buildName}: MultiHeadAttention.forward propagates NaN and Infinity as PyTorch's math does`, async () => {
    const mha = await init(options);
    const r = rng(4242);
    const w = layerWeights(r, E);
    const layer = new mha.MultiHeadAttention({ embedDim: E, numHeads: H });
    layer.setWeights(w);
    const base = { query: uniform(r, B * L * E, -1, 1), key: uniform(r, B * L * E, -1, 1), value: uniform(r, B * L * E, -1, 1) };
    for (const sc of SCENARIOS)
      for (const m of sc.masks)
        for (const averageWeights of [true, false]) {
          const x = { query: base.query.slice(), key: base.key.slice(), value: base.value.slice() };
          for (const [which, cells] of Object.entries(sc.put)) for (const [b, i, c, val] of cells) x[which][(b * L + i) * E + c] = val;
          const { opts, ropts } = maskOptions(m);
          const got = layer.forward({ data: x.query, dims: [B, L, E] }, { data: x.key, dims: [B, L, E] }, { data: x.value, dims: [B, L, E] },
            { ...opts, needWeights: true, averageWeights });
          const ref = mhaReference({ E, H, kdim: E, vdim: E, bias: true }, w, B, L, L, x.query, x.key, x.value, { ...ropts, needWeights: true, averageWeights });
          const where = `${sc.name}, ${m}, averageWeights=${averageWeights}`;
          assert.ok(relErrNonFinite(got.output.data, ref.output) <= TOL, `output: ${where}: ${relErrNonFinite(got.output.data, ref.output)}`);
          assert.ok(relErrNonFinite(got.weights.data, ref.weights) <= TOL, `weights: ${where}: ${relErrNonFinite(got.weights.data, ref.weights)}`);
          sc.expect(got.output.data, m);
        }
    layer.dispose();
  });

  test(`${buildName}: a row that no mask leaves a key stays zero, whatever NaN the inputs hold`, async () => {
    const mha = await init(options);
    const r = rng(99), n = 6;
    const w = layerWeights(r, E);
    const layer = new mha.MultiHeadAttention({ embedDim: E, numHeads: H });
    layer.setWeights(w);
    const q = uniform(r, n * E, -1, 1), k = uniform(r, n * E, -1, 1), v = uniform(r, n * E, -1, 1);
    q[0] = NaN, k[2 * E + 1] = NaN, v[3 * E] = NaN;  // query row 0, key 2 and value 3
    const mask = new Uint8Array(n * n);
    mask.fill(1, 0, n);  // query 0 may attend nothing
    const got = layer.forward({ data: q, dims: [n, E] }, { data: k, dims: [n, E] }, { data: v, dims: [n, E] },
      { attnMask: { data: mask, dims: [n, n] }, needWeights: true });
    const ref = mhaReference({ E, H, kdim: E, vdim: E, bias: true }, w, 1, n, n, q, k, v, { attnMask: mask, maskBroadcast: true, needWeights: true });
    assert.deepEqual(got.output.data.subarray(0, E), w.outProjBias);  // the output bias: zero attention
    assert.ok(got.weights.data.subarray(0, n).every((x) => x === 0));
    for (let i = 1; i < n; i++) assert.ok(isNaNRow(got.output.data, i, E) && isNaNRow(got.weights.data, i, n), `row ${i}`);
    assert.ok(relErrNonFinite(got.output.data, ref.output) <= TOL && relErrNonFinite(got.weights.data, ref.weights) <= TOL);
    layer.dispose();
  });

  test(`${buildName}: scaledDotProductAttention propagates NaN and Infinity as PyTorch's math does`, async () => {
    const mha = await init(options);
    const r = rng(777), Bs = 2, Hs = 2, Lq = 140, Lk = 150, D = 8, Dv = 5;
    const q0 = uniform(r, Bs * Hs * Lq * D, -1, 1), k0 = uniform(r, Bs * Hs * Lk * D, -1, 1), v0 = uniform(r, Bs * Hs * Lk * Dv, -1, 1);
    const kpm = Uint8Array.from({ length: Bs * Lk }, (_, i) => (i % Lk >= 130 ? 1 : 0));
    // [tensor, (b, h, row, column), value]; rows of head (0, 1) and (1, 0) are poisoned, the others stay finite.
    const cases = [
      ['q', [0, 1, 100, 2], NaN], ['k', [0, 1, 3, 0], NaN], ['k', [0, 1, 149, 5], NaN], ['k', [1, 0, 140, 1], NaN],
      ['v', [0, 1, 7, 4], NaN], ['v', [1, 0, 145, 2], NaN], ['v', [1, 0, 135, 0], Infinity], ['k', [0, 1, 9, 3], Infinity],
      ['q', [1, 0, 0, 0], -Infinity],
    ];
    for (const [which, [b, h, i, c], val] of cases)
      for (const m of ['none', 'causal', 'padding', 'causalPadding']) {
        const q = q0.slice(), k = k0.slice(), v = v0.slice();
        const t = { q: [q, Lq, D], k: [k, Lk, D], v: [v, Lk, Dv] }[which];
        t[0][((b * Hs + h) * t[1] + i) * t[2] + c] = val;
        const opts = { needWeights: true }, ropts = {};
        if (m.includes('ausal')) opts.isCausal = ropts.isCausal = true;
        if (m.includes('adding')) opts.keyPaddingMask = { data: (ropts.keyPaddingMask = kpm), dims: [Bs, Lk] };
        const got = mha.scaledDotProductAttention({ data: q, dims: [Bs, Hs, Lq, D] }, { data: k, dims: [Bs, Hs, Lk, D] },
          { data: v, dims: [Bs, Hs, Lk, Dv] }, opts);
        const ref = sdpaReference({ B: Bs, H: Hs, Lq, Lk, D, Dv }, q, k, v, ropts);
        const where = `${which}[${[b, h, i, c]}] = ${val}, ${m}`;
        assert.ok(relErrNonFinite(got.output.data, ref.output) <= TOL, `output: ${where}: ${relErrNonFinite(got.output.data, ref.output)}`);
        assert.ok(relErrNonFinite(got.weights.data, ref.weights) <= TOL, `weights: ${where}: ${relErrNonFinite(got.weights.data, ref.weights)}`);
        // Only the poisoned (b, h) may hold non-finite values.
        for (let bh = 0; bh < Bs * Hs; bh++)
          if (bh !== b * Hs + h) assert.ok(got.output.data.subarray(bh * Lq * Dv, (bh + 1) * Lq * Dv).every(Number.isFinite), `${where}: head ${bh}`);
      }
    // A NaN value poisons its column only: the weights of a visible NaN value are finite.
    const v = v0.slice();
    v[((0 * Hs + 0) * Lk + 10) * Dv + 3] = NaN;
    const got = mha.scaledDotProductAttention({ data: q0, dims: [Bs, Hs, Lq, D] }, { data: k0, dims: [Bs, Hs, Lk, D] }, { data: v, dims: [Bs, Hs, Lk, Dv] }, { needWeights: true });
    for (let i = 0; i < Lq; i++)
      for (let c = 0; c < Dv; c++) assert.equal(Number.isNaN(got.output.data[i * Dv + c]), c === 3);
    assert.ok(got.weights.data.every(Number.isFinite));
  });
}

// relu keeps NaN, as torch.relu does, in every lane of the vector loop and in its scalar tail
// (dimFeedforward 4, 5, 8, 9): a NaN input element makes every hidden unit it reaches NaN.
for (const [name, options] of builds) {
  test(`${name}: FeedForward relu propagates NaN at every hidden size, every weight type`, async () => {
    const mha = await init(options);
    for (const weightType of ['f32', 'f16', 'int8'])
      for (const F of [4, 5, 8, 9]) {
        const ff = new mha.FeedForward({ dModel: 4, dimFeedforward: F, activation: 'relu', bias: false, weightType });
        ff.setWeights({ linear1Weight: new Float32Array(F * 4).fill(0.5), linear2Weight: new Float32Array(4 * F).fill(0.5) });
        const out = ff.forward({ data: Float32Array.of(NaN, 1, 1, 1, 1, 2, 3, 4), dims: [2, 4] }).data;
        assert.ok(out.subarray(0, 4).every(Number.isNaN), `${weightType} F ${F}: ${out.subarray(0, 4)}`);
        for (const y of out.subarray(4)) assert.ok(Math.abs(y - 0.25 * 10 * F) <= 1e-3 * F, `${weightType} F ${F}: the finite row: ${y}`);
        ff.dispose();
      }
  });
}
