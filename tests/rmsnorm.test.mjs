// RMSNorm (torch.nn.RMSNorm; Gemma's with weightOffset 1) against the float64
// reference of tests/reference-modern.mjs, in both builds and in mha-wasm/worker:
// widths around the vector width, the default eps (float32's epsilon, which matters
// for small inputs), weightOffset, elementwiseAffine false, multi-dim normalizedShape,
// unbatched input; bad arguments are named and leave the layer working.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { init } from 'mha-wasm';
import { init as initWorker } from 'mha-wasm/worker';
import { relErr, rng, uniform } from './reference.mjs';
import { FLOAT32_EPS, rmsNormReference } from './reference-modern.mjs';

const TOL = 1e-5;

for (const threads of [1, 2]) {
  test(`threads=${threads}: RMSNorm matches the float64 reference`, async () => {
    const mha = await init({ threads });
    const r = rng(70 + threads);
    for (const width of [1, 3, 4, 5, 13, 37, 129, 768]) {
      for (const [elementwiseAffine, weightOffset] of [[true, 0], [true, 1], [false, 0]]) {
        const norm = new mha.RMSNorm({ normalizedShape: width, elementwiseAffine, weightOffset, eps: 1e-6 });
        assert.deepEqual([norm.normalizedShape, norm.eps, norm.elementwiseAffine, norm.weightOffset], [[width], 1e-6, elementwiseAffine, weightOffset]);
        const rows = 41;
        const x = uniform(r, rows * width, -3, 3);
        // Until setWeights (or without weights) the scale is 1.
        const y0 = norm.forward({ data: x, dims: [rows, width] });
        assert.deepEqual(y0.dims, [rows, width]);
        assert.ok(relErr(y0.data, rmsNormReference(x, rows, width, null, { eps: 1e-6 })) <= TOL, `width ${width}, initial`);
        if (!elementwiseAffine) {
          norm.dispose();
          continue;
        }
        const w = uniform(r, width, -0.5, 1.5);
        norm.setWeights({ weight: w });
        const y = norm.forward({ data: x, dims: [rows, width] });
        const err = relErr(y.data, rmsNormReference(x, rows, width, w, { eps: 1e-6, weightOffset }));
        assert.ok(err <= TOL, `width ${width} offset ${weightOffset}: ${err}`);
        norm.dispose();
      }
    }
    // The default eps is float32's epsilon (torch.nn.RMSNorm's): with inputs of ~1e-4 it
    // makes a difference a wrong default would show.
    const norm = new mha.RMSNorm({ normalizedShape: [4, 5] });
    assert.equal(norm.eps, FLOAT32_EPS);
    const x = uniform(r, 2 * 3 * 4 * 5, -3e-4, 3e-4);
    const g = uniform(r, 20, 0.5, 1.5);
    norm.setWeights({ weight: { data: g, dims: [4, 5] } });
    const y = norm.forward({ data: x, dims: [2, 3, 4, 5] });
    assert.deepEqual(y.dims, [2, 3, 4, 5]);
    assert.ok(relErr(y.data, rmsNormReference(x, 6, 20, g)) <= TOL);
    assert.ok(relErr(y.data, rmsNormReference(x, 6, 20, g, { eps: 1e-6 })) > 0.1, 'the eps used matters here');
    // Unbatched: the input is normalizedShape itself.
    const one = norm.forward({ data: x.subarray(0, 20), dims: [4, 5] });
    assert.deepEqual(one.dims, [4, 5]);
    assert.ok(relErr(one.data, rmsNormReference(x.subarray(0, 20), 1, 20, g)) <= TOL);
    norm.dispose();
    assert.equal(mha.stats().liveLayers, 0);
  });
}

test('RMSNorm: bad options, weights and inputs are named; the layer keeps working', async () => {
  const mha = await init({ threads: 1 });
  const bad = (opts, name, message) => assert.throws(() => new mha.RMSNorm(opts), { name, message });
  bad(undefined, 'TypeError', /RMSNorm: options \{ normalizedShape \} are required/);
  bad({ normalizedShape: [] }, 'TypeError', /normalizedShape must be a positive integer or a non-empty array of them, got \[\]/);
  bad({ normalizedShape: [4, 0] }, 'RangeError', /normalizedShape\[1\] must be a positive integer, got 0/);
  bad({ normalizedShape: 4, eps: 0 }, 'RangeError', /eps must be a positive number, got 0/);
  bad({ normalizedShape: 4, eps: '1e-6' }, 'TypeError', /eps must be a positive number, got "1e-6"/);
  bad({ normalizedShape: 4, weightOffset: '1' }, 'TypeError', /weightOffset must be a finite number, got "1"/);
  bad({ normalizedShape: 4, weightOffset: Infinity }, 'RangeError', /weightOffset must be a finite number, got Infinity/);
  // float32 is what the core holds: beyond its range a value would arrive as 0 or Infinity.
  bad({ normalizedShape: 4, eps: 1e-50 }, 'RangeError', /eps must be a positive float32 \(at least 1\.4e-45\), got 1e-50, which float32 rounds to 0/);
  bad({ normalizedShape: 4, weightOffset: -1e39 }, 'RangeError', /weightOffset must be a finite float32/);
  bad({ normalizedShape: 4, weightOffset: 1, elementwiseAffine: false }, 'TypeError', /weightOffset \(1\) scales the weight, which a layer with elementwiseAffine: false does not have/);
  bad({ normalizedShape: 4, bias: false }, 'TypeError', /unknown option "bias"/);
  bad({ normalizedShape: [2 ** 20, 2 ** 10] }, 'RangeError', /RMSNorm with normalizedShape \[1048576, 1024\] needs .* of wasm memory for its weights/);
  const norm = new mha.RMSNorm({ normalizedShape: 4 });
  assert.throws(() => norm.setWeights({ weight: new Float32Array(4), bias: new Float32Array(4) }), { name: 'TypeError', message: /RMSNorm\.setWeights: unknown entry "bias"; expected weight$/ });
  assert.throws(() => norm.setWeights({}), { name: 'TypeError', message: /RMSNorm\.setWeights: missing weight \(4 = \[4\] floats\)/ });
  assert.throws(() => norm.setWeights({ weight: new Float32Array(5) }), { name: 'RangeError', message: /RMSNorm\.setWeights: weight must have 4 = \[4\] elements, got 5/ });
  assert.throws(() => norm.setWeights(new Float32Array(4)), { name: 'TypeError', message: /RMSNorm\.setWeights: stateDict must be an object \{ weight \}/ });
  assert.throws(() => norm.forward({ data: new Float32Array(10), dims: [2, 5] }), { name: 'RangeError', message: /input must have dims \[\.\.\., 4\] \(ending in normalizedShape\), got \[2, 5\]/ });
  assert.throws(() => norm.forward({ data: new Float32Array(4), dims: [4] }, { inPlace: true }), { name: 'TypeError', message: /RMSNorm\.forward options: unknown option "inPlace" \(expected transfer\)/ });
  const noAffine = new mha.RMSNorm({ normalizedShape: 4, elementwiseAffine: false });
  assert.throws(() => noAffine.setWeights({ weight: new Float32Array(4) }), { name: 'TypeError', message: /RMSNorm\.setWeights: the layer was created with elementwiseAffine: false/ });
  const x = Float32Array.of(1, -2, 3, 4);
  assert.ok(relErr(norm.forward({ data: x, dims: [4] }).data, rmsNormReference(x, 1, 4, null)) <= TOL);
  for (const n of [norm, noAffine]) n.dispose();
  assert.throws(() => norm.forward({ data: x, dims: [4] }), { message: 'RMSNorm.forward: this layer has been disposed' });
  // LayerNorm, which shares the code, is unchanged: still its bias, still its messages.
  const ln = new mha.LayerNorm({ normalizedShape: 4, bias: false });
  assert.equal(ln.bias, false);
  assert.throws(() => ln.setWeights({ weight: x, bias: x }), { name: 'TypeError', message: /LayerNorm\.setWeights: unknown entry "bias", but the layer was created with bias: false/ });
  ln.dispose();
});

test('mha-wasm/worker: RMSNorm agrees with the float64 reference; errors reject with their class', async () => {
  const mha = await initWorker({ threads: 2 });
  try {
    const r = rng(12), E = 37, M = 29;
    const norm = new mha.RMSNorm({ normalizedShape: E, weightOffset: 1, eps: 1e-6 });
    assert.deepEqual([norm.normalizedShape, norm.weightOffset, norm.eps], [[E], 1, 1e-6]);
    assert.throws(() => new mha.RMSNorm({ normalizedShape: E, eps: -1 }), { name: 'RangeError', message: /eps must be a positive number, got -1/ });
    const x = uniform(r, M * E, -2, 2), w = uniform(r, E, -0.5, 0.5);
    await norm.setWeights({ weight: w });
    const y = await norm.forward({ data: x, dims: [M, E] });
    assert.ok(relErr(y.data, rmsNormReference(x, M, E, w, { eps: 1e-6, weightOffset: 1 })) <= TOL);
    await assert.rejects(norm.setWeights({ weight: w, bias: w }), { name: 'TypeError', message: /unknown entry "bias"/ });
    await assert.rejects(norm.forward({ data: x, dims: [M * E] }), { name: 'RangeError', message: /ending in normalizedShape/ });
    const again = await norm.forward({ data: x.subarray(0, E), dims: [E] });
    assert.ok(relErr(again.data, rmsNormReference(x.subarray(0, E), 1, E, w, { eps: 1e-6, weightOffset: 1 })) <= TOL);
    norm.dispose();
    assert.equal((await mha.stats()).liveLayers, 0);
  } finally {
    mha.terminate();
  }
});
