// FeedForward (plain linear2(act(linear1(x))) and gated down(act(gate(x)) * up(x)))
// against the float64 reference of tests/reference-modern.mjs, in both builds and in
// mha-wasm/worker: odd sizes, every activation, bias on and off, PyTorch/Hugging Face
// and camelCase names, batched, unbatched and higher-rank input; bad arguments are
// named and leave the layer working; dispose and memory.
import { buildName } from './builds.mjs';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import { init } from 'mha-wasm';
import { init as initWorker } from 'mha-wasm/worker';
import { relErr, rng, uniform } from './reference.mjs';
import { feedForwardReference } from './reference-modern.mjs';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');
const ACTS = ['relu', 'gelu', 'gelu_tanh', 'silu'];
const TOL = 1e-5;

/**
 * Random weights of a block: { ref } in feedForwardReference's names (linear1 = up,
 * linear2 = down), { torch } in PyTorch's / Hugging Face's, { camel } in camelCase.
 */
function ffWeights(r, E, F, gated, bias) {
  const s = 1 / Math.sqrt(E), sf = 1 / Math.sqrt(F);
  const ref = { upProjWeight: uniform(r, F * E, -2 * s, 2 * s), downProjWeight: uniform(r, E * F, -sf, sf) };
  if (gated) ref.gateProjWeight = uniform(r, F * E, -2 * s, 2 * s);
  if (bias) {
    Object.assign(ref, { upProjBias: uniform(r, F, -s, s), downProjBias: uniform(r, E, -sf, sf) });
    if (gated) ref.gateProjBias = uniform(r, F, -s, s);
  }
  const names = gated
    ? { gateProjWeight: 'gate_proj.weight', gateProjBias: 'gate_proj.bias', upProjWeight: 'up_proj.weight', upProjBias: 'up_proj.bias', downProjWeight: 'down_proj.weight', downProjBias: 'down_proj.bias' }
    : { upProjWeight: 'linear1.weight', upProjBias: 'linear1.bias', downProjWeight: 'linear2.weight', downProjBias: 'linear2.bias' };
  const camel = (s) => s.replace(/[._]([a-z0-9])/g, (_, c) => c.toUpperCase());
  const torch = {}, cc = {};
  for (const [k, v] of Object.entries(ref)) {
    torch[names[k]] = v;
    cc[camel(names[k])] = v;
  }
  return { ref, torch, camel: cc };
}

for (const threads of [1, 2]) {
  test(`threads=${threads}: FeedForward matches the float64 reference (odd sizes, every activation, gated or not, bias or not)`, async () => {
    const mha = await init({ threads });
    assert.equal(mha.build, buildName(threads > 1));
    const r = rng(500 + threads);
    const shapes = [[13, 37, [2, 5]], [37, 13, [9]], [8, 16, [1, 1]], [5, 3, [2, 3, 4]], [64, 200, [3, 40]]];
    let n = 0;
    for (const [E, F, lead] of shapes)
      for (const activation of ACTS)
        for (const gated of [false, true])
          for (const bias of [true, false]) {
            const ff = new mha.FeedForward({ dModel: E, dimFeedforward: F, activation, gated, bias });
            assert.deepEqual([ff.dModel, ff.dimFeedforward, ff.activation, ff.gated, ff.bias], [E, F, activation, gated, bias]);
            const w = ffWeights(r, E, F, gated, bias);
            ff.setWeights(n++ % 2 ? w.torch : w.camel);
            const M = lead.reduce((a, b) => a * b, 1);
            const x = uniform(r, M * E, -2, 2);
            const y = ff.forward({ data: x, dims: [...lead, E] });
            assert.deepEqual(y.dims, [...lead, E]);
            assert.ok(y.data instanceof Float32Array);
            const ref = feedForwardReference({ embedDim: E, hiddenDim: F, activation, gated }, w.ref, M, x);
            const err = relErr(y.data, ref);
            assert.ok(err <= TOL, `E ${E} F ${F} ${activation} gated ${gated} bias ${bias}: ${err}`);
            ff.dispose();
          }
    assert.equal(mha.stats().liveLayers, 0);
  });
}

test('FeedForward: weights as { data, dims } tensors, a [dModel] input, and setWeights again replaces them', async () => {
  const mha = await init({ threads: 2 });
  const r = rng(7), E = 12, F = 20;
  const ff = new mha.FeedForward({ dModel: E, dimFeedforward: F, activation: 'gelu_tanh', gated: true });
  const w1 = ffWeights(r, E, F, true, true), w2 = ffWeights(r, E, F, true, true);
  const dimsOf = { 'gate_proj.weight': [F, E], 'up_proj.weight': [F, E], 'down_proj.weight': [E, F], 'gate_proj.bias': [F], 'up_proj.bias': [F], 'down_proj.bias': [E] };
  ff.setWeights(Object.fromEntries(Object.entries(w1.torch).map(([k, v]) => [k, { data: v, dims: dimsOf[k] }])));
  const cfg = { embedDim: E, hiddenDim: F, activation: 'gelu_tanh', gated: true };
  const x = uniform(r, E, -1, 1);
  const y = ff.forward({ data: x, dims: [E] });
  assert.deepEqual(y.dims, [E]);
  assert.ok(relErr(y.data, feedForwardReference(cfg, w1.ref, 1, x)) <= TOL);
  ff.setWeights(w2.camel);
  assert.ok(relErr(ff.forward({ data: x, dims: [1, E] }).data, feedForwardReference(cfg, w2.ref, 1, x)) <= TOL);
  ff.dispose();
});

test('FeedForward: bad options, weights and inputs are named TypeErrors/RangeErrors; the layer keeps working', async () => {
  const mha = await init({ threads: 1 });
  const bad = (opts, name, message) => assert.throws(() => new mha.FeedForward(opts), { name, message });
  bad(undefined, 'TypeError', /FeedForward: options \{ dModel, dimFeedforward \} are required/);
  bad({ dModel: 8 }, 'TypeError', /dimFeedforward must be a positive integer, got undefined/);
  bad({ dModel: 0, dimFeedforward: 8 }, 'RangeError', /dModel must be a positive integer, got 0/);
  bad({ dModel: 8, dimFeedforward: 2.5 }, 'RangeError', /dimFeedforward must be a positive integer, got 2\.5/);
  bad({ dModel: 8, dimFeedforward: 8, activation: 'swish' }, 'TypeError', /activation must be one of 'relu', 'gelu', 'gelu_tanh', 'silu', got "swish"/);
  bad({ dModel: 8, dimFeedforward: 8, gated: 1 }, 'TypeError', /gated must be a boolean, got 1/);
  bad({ dModel: 8, dimFeedforward: 8, hidden: 4 }, 'TypeError', /unknown option "hidden"/);
  bad({ dModel: 2 ** 16, dimFeedforward: 2 ** 16 }, 'RangeError', /FeedForward with dModel 65536 and dimFeedforward 65536 needs .* of wasm memory for its weights/);

  const r = rng(8), E = 6, F = 10;
  const ff = new mha.FeedForward({ dModel: E, dimFeedforward: F, gated: true, activation: 'silu' });
  const x = { data: uniform(r, 2 * E, -1, 1), dims: [2, E] };
  assert.throws(() => ff.forward(x), { name: 'Error', message: 'FeedForward.forward: weights are not set; call setWeights() first' });
  const w = ffWeights(r, E, F, true, true);
  const sw = (sd, name, message) => assert.throws(() => ff.setWeights(sd), { name, message });
  sw(null, 'TypeError', /FeedForward\.setWeights: weights must be an object of Float32Arrays or tensors, got null/);
  sw({ ...w.torch, 'linear1.weight': w.ref.upProjWeight }, 'TypeError',
    /unknown weight "linear1\.weight": that is a plain feed-forward's; this one has gated: true and takes gate_proj\.weight, gate_proj\.bias, up_proj\.weight/);
  sw({ ...w.torch, 'mlp.up_proj.weight': w.ref.upProjWeight }, 'TypeError', /unknown weight "mlp\.up_proj\.weight" \(strip the prefix "mlp\.": parseSafetensors/);
  sw({ ...w.torch, UpProjweight: w.ref.upProjWeight }, 'TypeError', /unknown weight "UpProjweight" \(did you mean up_proj\.weight\?\); expected gate_proj\.weight/);
  sw({ ...w.torch, upProjWeight: w.ref.upProjWeight }, 'TypeError', /"up_proj\.weight" and "upProjWeight" are the same weight; give it once/);
  const { 'down_proj.weight': _, ...noDown } = w.torch;
  sw(noDown, 'TypeError', /missing down_proj\.weight \(downProjWeight: a Float32Array of 60 = \[6, 10\] floats\)/);
  sw({ ...w.torch, 'gate_proj.weight': new Float32Array(F * E + 1) }, 'RangeError', /FeedForward\.setWeights: gate_proj\.weight must have 60 = \[10, 6\] elements, got 61/);
  sw({ ...w.torch, 'up_proj.weight': { data: w.ref.upProjWeight, dims: [E, F] } }, 'RangeError', /up_proj\.weight must have dims \[10, 6\], got \[6, 10\]/);
  sw({ ...w.torch, 'up_proj.bias': new Float64Array(F) }, 'TypeError', /up_proj\.bias must be a Float32Array of 10 = \[10\] floats, got Float64Array/);
  assert.throws(() => ff.setWeights(w.torch, { copy: true }), { name: 'TypeError', message: /unknown option "copy"/ });
  const noBias = new mha.FeedForward({ dModel: E, dimFeedforward: F, bias: false });
  assert.throws(() => noBias.setWeights({ ...ffWeights(r, E, F, false, false).torch, 'linear1.bias': new Float32Array(F) }),
    { name: 'TypeError', message: /"linear1\.bias" given, but the layer was created with bias: false/ });
  // Nothing was set by the refused calls: forward still says so.
  assert.throws(() => ff.forward(x), { message: /weights are not set/ });
  ff.setWeights(w.torch);
  const fx = (t, name, message) => assert.throws(() => ff.forward(t), { name, message });
  fx({ data: new Float32Array(2 * 7), dims: [2, 7] }, 'RangeError', /input must have dims \[\.\.\., 6\] \(ending in dModel\), got \[2, 7\]/);
  fx({ data: new Float32Array(1), dims: [] }, 'RangeError', /input must have dims \[\.\.\., 6\] \(ending in dModel\), got \[\]/);
  fx({ data: new Float32Array(11), dims: [2, E] }, 'RangeError', /input\.data has 11 elements but dims \[2, 6\] need 12/);
  fx(new Float32Array(E), 'TypeError', /input must be a tensor/);
  fx({ data: new Float64Array(E), dims: [E] }, 'TypeError', /input\.data must be a Float32Array/);
  assert.throws(() => ff.forward(x, { trnasfer: true }), { name: 'TypeError', message: /unknown option "trnasfer"/ });
  // After all of that, the layer computes what the reference says.
  const cfg = { embedDim: E, hiddenDim: F, activation: 'silu', gated: true };
  assert.ok(relErr(ff.forward(x).data, feedForwardReference(cfg, w.ref, 2, x.data)) <= TOL);
  ff.dispose();
  noBias.dispose();
  assert.throws(() => ff.forward(x), { name: 'Error', message: 'FeedForward.forward: this layer has been disposed' });
  assert.throws(() => ff.setWeights(w.torch), { name: 'Error', message: 'FeedForward.setWeights: this layer has been disposed' });
  ff.dispose();  // a second dispose does nothing
});

test('FeedForward and RMSNorm: 2,000 forward calls do not grow wasm memory; dispose and the FinalizationRegistry free them', async () => {
  const mha = await init({ threads: 2 });
  const base = mha.stats().liveLayers;
  const r = rng(9), E = 32, F = 88;
  const ff = new mha.FeedForward({ dModel: E, dimFeedforward: F, gated: true, activation: 'silu' });
  ff.setWeights(ffWeights(r, E, F, true, true).torch);
  const norm = new mha.RMSNorm({ normalizedShape: E, weightOffset: 1 });
  norm.setWeights({ weight: uniform(r, E, -0.5, 0.5) });
  const x = { data: uniform(r, 4 * 16 * E, -1, 1), dims: [4, 16, E] };
  const step = () => norm.forward(ff.forward(x));
  for (let i = 0; i < 20; i++) step();
  const before = mha.stats().wasmMemoryBytes, first = step().data;
  for (let i = 0; i < 2000; i++) step();
  assert.equal(mha.stats().wasmMemoryBytes, before);
  assert.deepEqual(step().data, first);
  assert.equal(mha.stats().liveLayers, base + 2);
  (() => {
    for (let i = 0; i < 50; i++) new mha.FeedForward({ dModel: E, dimFeedforward: F }).setWeights(ffWeights(r, E, F, false, true).torch);
    for (let i = 0; i < 50; i++) new mha.RMSNorm({ normalizedShape: E }).forward(x);
  })();
  assert.equal(mha.stats().liveLayers, base + 102);
  for (let i = 0; i < 50 && mha.stats().liveLayers > base + 2; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.equal(mha.stats().liveLayers, base + 2);
  ff.dispose();
  norm.dispose();
  assert.equal(mha.stats().liveLayers, base);
  // Created and disposed in a loop: memory stays flat.
  const flat = mha.stats().wasmMemoryBytes;
  for (let i = 0; i < 200; i++) {
    const f = new mha.FeedForward({ dModel: E, dimFeedforward: F, gated: true });
    f.setWeights(ffWeights(r, E, F, true, true).camel);
    f.forward(x);
    f.dispose();
  }
  assert.equal(mha.stats().wasmMemoryBytes, flat);
  assert.equal(mha.stats().liveLayers, base);
});

test('mha-wasm/worker: FeedForward agrees with the float64 reference; errors reject with their class', async () => {
  const mha = await initWorker({ threads: 2 });
  try {
    const r = rng(11), E = 13, F = 37, B = 2, L = 9;
    const x = uniform(r, B * L * E, -2, 2);
    const runs = [];
    for (const activation of ACTS)
      for (const gated of [false, true]) {
        const ff = new mha.FeedForward({ dModel: E, dimFeedforward: F, activation, gated });
        assert.deepEqual([ff.dModel, ff.gated, ff.activation], [E, gated, activation]);
        const w = ffWeights(r, E, F, gated, true);
        runs.push(ff.setWeights(w.torch).then(() => ff.forward({ data: x, dims: [B, L, E] })).then((y) => ({ y, w, activation, gated, ff })));
      }
    for (const { y, w, activation, gated, ff } of await Promise.all(runs)) {
      assert.deepEqual(y.dims, [B, L, E]);
      assert.ok(relErr(y.data, feedForwardReference({ embedDim: E, hiddenDim: F, activation, gated }, w.ref, B * L, x)) <= TOL, `${activation} ${gated}`);
      ff.dispose();
    }
    const ff = new mha.FeedForward({ dModel: E, dimFeedforward: F });
    assert.throws(() => new mha.FeedForward({ dModel: E, dimFeedforward: F, activation: 'tanh' }), { name: 'TypeError', message: /activation must be one of/ });
    await assert.rejects(ff.forward({ data: x, dims: [B, L, E] }), { name: 'Error', message: /weights are not set/ });
    await assert.rejects(ff.setWeights({ 'linear1.weight': new Float32Array(3) }), { name: 'RangeError', message: /linear1\.weight must have 481 = \[37, 13\] elements, got 3/ });
    const w = ffWeights(r, E, F, false, true);
    const copy = Object.fromEntries(Object.entries(w.torch).map(([k, v]) => [k, v.slice()]));
    await ff.setWeights(copy, { transfer: true });
    assert.equal(copy['linear1.weight'].length, 0, 'transferred');
    await assert.rejects(ff.forward({ data: x, dims: [B, L, E + 1] }), { name: 'RangeError', message: /input\.data has 234 elements but dims \[2, 9, 14\] need 252/ });
    const y = await ff.forward({ data: x.subarray(0, L * E), dims: [L, E] });
    assert.deepEqual(y.dims, [L, E]);
    assert.ok(relErr(y.data, feedForwardReference({ embedDim: E, hiddenDim: F }, w.ref, L, x.subarray(0, L * E))) <= TOL);
    ff.dispose();
    await assert.rejects(ff.forward({ data: x, dims: [B, L, E] }), { message: 'FeedForward.forward: this layer has been disposed' });
    assert.equal((await mha.stats()).liveLayers, 0);
  } finally {
    mha.terminate();
  }
});
