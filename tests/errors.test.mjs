// Every malformed argument throws a TypeError or RangeError naming it, and the
// same layer and runtime keep giving correct results afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { init } from 'mha-wasm';
import { mhaReference, relErr, rng, uniform } from './reference.mjs';

const E = 8, H = 2, B = 2, L = 3;
function setup(mha) {
  const r = rng(11), s = 1 / Math.sqrt(E);
  const w = { inProjWeight: uniform(r, 3 * E * E, -s, s), inProjBias: uniform(r, 3 * E, -s, s),
    outProjWeight: uniform(r, E * E, -s, s), outProjBias: uniform(r, E, -s, s) };
  const layer = new mha.MultiHeadAttention({ embedDim: E, numHeads: H });
  layer.setWeights(w);
  const x = { data: uniform(r, B * L * E, -1, 1), dims: [B, L, E] };
  const ref = mhaReference({ E, H, kdim: E, vdim: E, bias: true }, w, B, L, L, x.data, x.data, x.data).output;
  const stillWorks = () => assert.ok(relErr(layer.forward(x).output.data, ref) <= 1e-4, 'layer broken after the error');
  return { layer, w, x, stillWorks };
}

const f32 = (n) => new Float32Array(n);
const CTOR_CASES = [
  [undefined, TypeError, /options \{ embedDim, numHeads \} are required/],
  [{ embedDim: NaN, numHeads: 2 }, RangeError, /embedDim must be a positive integer, got NaN/],
  [{ embedDim: '8', numHeads: 2 }, TypeError, /embedDim must be a positive integer, got "8"/],
  [{ embedDim: 8, numHeads: 0 }, RangeError, /numHeads must be a positive integer, got 0/],
  [{ embedDim: 8, numHeads: 2.5 }, RangeError, /numHeads must be a positive integer, got 2.5/],
  [{ embedDim: 10, numHeads: 3 }, RangeError, /embedDim must be divisible by numHeads, got embedDim 10 and numHeads 3/],
  [{ embedDim: 8, numHeads: 2, kdim: -1 }, RangeError, /kdim must be a positive integer, got -1/],
  [{ embedDim: 8, numHeads: 2, vdim: Infinity }, RangeError, /vdim must be a positive integer, got Infinity/],
  [{ embedDim: 8, numHeads: 2, bias: 1 }, TypeError, /bias must be a boolean, got 1/],
  [{ embedDim: 8, numHeads: 2, embed_dim: 8 }, TypeError, /unknown option "embed_dim"/],
];

const WEIGHT_CASES = (w) => [
  [null, TypeError, /weights must be an object of Float32Arrays or tensors, got null/],
  [{ ...w, outProjWeight: undefined }, TypeError, /missing outProjWeight \(PyTorch out_proj.weight: a Float32Array of 64 = \[8, 8\] floats\)/],
  [{ ...w, inProjWeight: f32(10) }, RangeError, /inProjWeight must have 192 = \[24, 8\] elements, got 10/],
  [{ ...w, inProjBias: new Float64Array(24) }, TypeError, /inProjBias must be a Float32Array of 24 = \[24\] floats, got Float64Array of length 24/],
  [{ ...w, inprojweight: w.inProjWeight }, TypeError, /unknown weight "inprojweight" \(did you mean inProjWeight\?\)/],
  // Names of Object.prototype's members are unknown names too, not lookups that find them.
  [{ ...w, constructor: w.outProjBias }, TypeError, /unknown weight "constructor"/],
  [{ ...w, toString: w.outProjBias }, TypeError, /unknown weight "toString"/],
  [{ ...w, ...JSON.parse('{"__proto__": 1}') }, TypeError, /unknown weight "__proto__"/],
  [{ ...w, in_proj_weight: w.inProjWeight }, TypeError, /"inProjWeight" and "in_proj_weight" are the same weight/],
  [{ ...w, bias_k: w.outProjBias }, TypeError, /"bias_k" comes from add_bias_kv=True, which is not supported/],
  [{ in_proj_weight: w.inProjWeight, in_proj_bias: w.inProjBias, 'out_proj.weight': w.outProjWeight }, TypeError, /missing outProjBias \(PyTorch out_proj.bias/],
  [{ ...w, outProjWeight: undefined, 'out_proj.weight': { data: f32(72), dims: [8, 9] } }, RangeError, /out_proj.weight must have dims \[8, 8\], got \[8, 9\]/],
  [{ ...w, qProjWeight: f32(64) }, TypeError, /either inProjWeight or qProjWeight\/kProjWeight\/vProjWeight, not both/],
  [{ outProjWeight: w.outProjWeight, inProjBias: w.inProjBias, outProjBias: w.outProjBias, qProjWeight: f32(64) }, TypeError, /missing kProjWeight/],
  [{ ...w, outProjWeight: { data: f32(64), dims: [4, 16] } }, RangeError, /outProjWeight must have dims \[8, 8\], got \[4, 16\]/],
];

const FORWARD_CASES = (x) => [
  [[undefined], TypeError, /query must be a tensor \{ data: Float32Array, dims: number\[\] \}, got undefined/],
  [[x.data], TypeError, /query must be a tensor .* got Float32Array of length 48/],
  [[{ data: Array.from(x.data), dims: x.dims }], TypeError, /query.data must be a Float32Array, got an Array of length 48/],
  [[{ data: new Float64Array(48), dims: x.dims }], TypeError, /query.data must be a Float32Array, got Float64Array/],
  [[{ data: x.data, dims: 'B,L,E' }], TypeError, /query.dims must be an array of positive integers, got "B,L,E"/],
  [[{ data: x.data, dims: [2, NaN, 8] }], RangeError, /query.dims\[1\] must be a positive integer, got NaN/],
  [[{ data: x.data, dims: [48] }], RangeError, /query must have dims \[B, Lq, 8\] or \[Lq, 8\], got dims \[48\]/],
  [[{ data: x.data, dims: [2, 4, 8] }], RangeError, /query.data has 48 elements but dims \[2, 4, 8\] need 64/],
  [[{ data: x.data, dims: [2, 6, 4] }], RangeError, /query.dims\[2\] must be embedDim \(8\), got 4/],
  [[x, x, undefined], TypeError, /key and value must both be given or both be omitted/],
  [[x, { data: f32(8 * 3), dims: [1, 3, 8] }, { data: f32(8 * 3), dims: [1, 3, 8] }], RangeError, /key.dims\[0\] must be the batch size of query \(2\), got 1/],
  [[x, x, { data: f32(2 * 4 * 8), dims: [2, 4, 8] }], RangeError, /value.dims\[1\] must be the sequence length of key \(3\), got 4/],
  [[x, x, { data: f32(3 * 8), dims: [3, 8] }], RangeError, /value must have dims \[B, Lk, 8\] \(the same rank as query\), got dims \[3, 8\]/],
  [[x, null, null, 'causal'], TypeError, /forward options must be an object, got "causal"/],
  [[x, null, null, { is_causal: true }], TypeError, /unknown option "is_causal"/],
  [[x, null, null, { isCausal: 'yes' }], TypeError, /options.isCausal must be a boolean, got "yes"/],
  [[x, null, null, { needWeights: 1 }], TypeError, /options.needWeights must be a boolean, got 1/],
  [[x, null, null, { attnMask: { data: new Int32Array(9), dims: [3, 3] } }], TypeError, /options.attnMask.data must be a Uint8Array or Float32Array, got Int32Array/],
  [[x, null, null, { attnMask: { data: new Uint8Array(12), dims: [3, 4] } }], RangeError, /options.attnMask must have dims \[3, 3\] or \[2, 2, 3, 3\] or \[4, 3, 3\], got \[3, 4\]/],
  [[x, null, null, { attnMask: { data: new Uint8Array(10), dims: [3, 3] } }], RangeError, /options.attnMask.data has 10 elements but dims \[3, 3\] need 9/],
  [[x, null, null, { attnMask: { data: Float32Array.of(0, NaN, 0, 0, 0, 0, 0, 0, 0), dims: [3, 3] } }], RangeError, /options.attnMask.data\[1\] is NaN/],
  [[x, null, null, { keyPaddingMask: { data: new Uint8Array(6), dims: [3, 2] } }], RangeError, /options.keyPaddingMask must have dims \[2, 3\], got \[3, 2\]/],
  [[x, null, null, { keyPaddingMask: { data: f32(6), dims: [2, 3] } }], TypeError, /options.keyPaddingMask.data must be a Uint8Array, got Float32Array/],
];

for (const threads of [1, 2]) {
  test(`threads=${threads}: bad constructor options`, async () => {
    const mha = await init({ threads });
    const { stillWorks } = setup(mha);
    for (const [opts, Err, re] of CTOR_CASES) {
      assert.throws(() => new mha.MultiHeadAttention(opts), (e) => e instanceof Err && re.test(e.message), `${JSON.stringify(opts)}`);
      stillWorks();
    }
  });

  test(`threads=${threads}: bad weights`, async () => {
    const mha = await init({ threads });
    const { layer, w, stillWorks } = setup(mha);
    for (const [weights, Err, re] of WEIGHT_CASES(w)) {
      assert.throws(() => layer.setWeights(weights), (e) => e instanceof Err && re.test(e.message), String(re));
      stillWorks();
    }
    const noBias = new mha.MultiHeadAttention({ embedDim: E, numHeads: H, bias: false });
    assert.throws(() => noBias.setWeights(w), (e) => e instanceof TypeError && /inProjBias given, but the layer was created with bias: false/.test(e.message));
    const cross = new mha.MultiHeadAttention({ embedDim: E, numHeads: H, kdim: 4 });
    assert.throws(() => cross.setWeights(w), (e) => e instanceof TypeError && /inProjWeight is only used when kdim == vdim == embedDim/.test(e.message));
    assert.throws(() => cross.forward({ data: f32(E), dims: [1, E] }), /weights are not set; call setWeights\(\) first/);
    noBias.dispose();
    cross.dispose();
    stillWorks();
  });

  test(`threads=${threads}: bad forward arguments`, async () => {
    const mha = await init({ threads });
    const { layer, x, stillWorks } = setup(mha);
    for (const [args, Err, re] of FORWARD_CASES(x)) {
      assert.throws(() => layer.forward(...args), (e) => e instanceof Err && re.test(e.message), String(re));
      stillWorks();
    }
  });

  test(`threads=${threads}: bad scaledDotProductAttention arguments`, async () => {
    const mha = await init({ threads });
    const { stillWorks } = setup(mha);
    const t = (dims) => ({ data: f32(dims.reduce((a, b) => a * b)), dims });
    const cases = [
      [[t([2, 3]), t([2, 3, 4]), t([2, 3, 4])], RangeError, /k must have 2 dims like q \[2, 3\], got dims \[2, 3, 4\]/],
      [[t([2, 3, 4]), t([2, 5, 5]), t([2, 5, 4])], RangeError, /k.dims\[2\] must be the last dim of q \(4\), got 5/],
      [[t([1, 2, 3, 4]), t([1, 3, 5, 4]), t([1, 3, 5, 4])], RangeError, /k and v must have a number of heads that divides q's 2 \(grouped-query attention\), got 3/],
      [[t([1, 4, 3, 4]), t([1, 2, 5, 4]), t([1, 1, 5, 4])], RangeError, /v.dims\[1\] must be the number of heads of k \(2\), got 1/],
      [[t([2, 4, 3, 4]), t([1, 2, 5, 4]), t([1, 2, 5, 4])], RangeError, /k.dims\[0\] must be the batch size of q \(2\), got 1/],
      [[t([1, 2, 3, 4]), t([1, 2, 5, 4]), t([1, 2, 5, 4]), { slidingWindow: 0 }], RangeError, /options.slidingWindow must be a positive integer, got 0/],
      [[t([1, 2, 3, 4]), t([1, 2, 5, 4]), t([1, 2, 5, 4]), { softcap: -1 }], RangeError, /options.softcap must be a positive finite number, got -1/],
      [[t([1, 2, 3, 4]), t([1, 2, 5, 4]), t([1, 2, 5, 4]), { alibiSlopes: new Float32Array(3) }], RangeError, /options.alibiSlopes must have 2 elements, got 3/],
      [[t([1, 2, 3, 4]), t([1, 2, 5, 4]), t([1, 2, 5, 4]), { sinks: 'x' }], TypeError, /options.sinks must be a Float32Array of 2 numbers, got "x"/],
      [[t([3, 4]), t([5, 4]), t([5, 2]), { scale: 'big' }], TypeError, /options.scale must be a finite number, got "big"/],
      [[t([3, 4]), t([5, 4]), t([5, 2]), { scale: -1e39 }], RangeError, /options.scale must be a finite float32 .*, got -1e\+39/],
      [[t([3, 4]), t([5, 4]), t([5, 2]), { softcap: 1e-46 }], RangeError, /options.softcap must be a positive float32 \(at least 1\.4e-45\)/],
      [[t([3, 4]), t([5, 4]), t([5, 2]), { scale: NaN }], RangeError, /options.scale must be a finite number, got NaN/],
    ];
    for (const [args, Err, re] of cases) {
      assert.throws(() => mha.scaledDotProductAttention(...args), (e) => e instanceof Err && re.test(e.message), String(re));
      stillWorks();
    }
  });

  test(`threads=${threads}: a call too large for wasm memory throws a RangeError and the runtime stays usable`, async () => {
    const mha = await init({ threads });
    const { stillWorks } = setup(mha);
    // needWeights for B*H*L*L = 1 * 64 * 4096 * 4096 floats = 4 GiB: more than a wasm32 heap.
    const big = new mha.MultiHeadAttention({ embedDim: 64, numHeads: 64 });
    big.setWeights({ inProjWeight: f32(3 * 64 * 64), inProjBias: f32(192), outProjWeight: f32(64 * 64), outProjBias: f32(64) });
    const x = { data: f32(4096 * 64), dims: [4096, 64] };
    assert.throws(() => big.forward(x, null, null, { needWeights: true, averageWeights: false }),
      (e) => e instanceof RangeError && /needs 4\.\d+ GiB of wasm memory/.test(e.message));
    // (With the 4 GiB heap, a call whose inputs are staged and whose working memory then does not fit
    // would need gigabytes of real memory in the test; the core's refusal of working memory is covered by
    // tests/hostile.test.mjs and the memory tests with sizes that fail before anything is staged.)
    stillWorks();
    const small = big.forward({ data: uniform(rng(1), 2 * 64, -1, 1), dims: [2, 64] });
    assert.equal(small.output.data.length, 128);
    big.dispose();
  });

  test(`threads=${threads}: a disposed layer throws, dispose twice is harmless`, async () => {
    const mha = await init({ threads });
    const { layer, x, w } = setup(mha);
    layer.dispose();
    assert.equal(layer.disposed, true);
    assert.throws(() => layer.forward(x), /MultiHeadAttention.forward: this layer has been disposed/);
    assert.throws(() => layer.setWeights(w), /MultiHeadAttention.setWeights: this layer has been disposed/);
    layer.dispose();
    setup(mha).stillWorks();
  });
}

test('init rejects bad options with a clear error', async () => {
  await assert.rejects(init({ threads: 0 }), (e) => e instanceof RangeError && /threads must be 'auto' or a positive integer, got 0/.test(e.message));
  await assert.rejects(init({ threads: 'many' }), (e) => e instanceof TypeError && /got "many"/.test(e.message));
  await assert.rejects(init({ thread: 2 }), (e) => e instanceof TypeError && /unknown option "thread"/.test(e.message));
  await assert.rejects(init({ baseUrl: '/nonexistent/dir/' }), (e) => /cannot (read|load) file:\/\/\/nonexistent\/dir\/mha-wasm-\w+\.(wasm|js)/.test(e.message));
});
