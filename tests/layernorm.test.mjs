// LayerNorm (torch.nn.LayerNorm) against the float64 reference: widths around the
// vector width, a large common offset (a one-pass variance would cancel),
// multi-dim normalizedShape, with and without the affine part; bad input named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { init } from 'mha-wasm';
import { layerNormRef, relErr, rng, uniform } from './reference.mjs';

for (const threads of [1, 2]) {
  test(`threads=${threads}: LayerNorm matches the float64 reference`, async () => {
    const mha = await init({ threads });
    const r = rng(60 + threads);
    for (const width of [1, 3, 4, 5, 17, 129, 768]) {
      for (const [elementwiseAffine, bias] of [[true, true], [true, false], [false, true]]) {
        const norm = new mha.LayerNorm({ normalizedShape: width, elementwiseAffine, bias, eps: 1e-6 });
        assert.deepEqual([norm.normalizedShape, norm.eps, norm.elementwiseAffine, norm.bias], [[width], 1e-6, elementwiseAffine, elementwiseAffine && bias]);
        const rows = 37;
        const x = uniform(r, rows * width, 999, 1001);  // offset 1000, spread 1
        let g = null, b = null;
        if (elementwiseAffine) {
          g = uniform(r, width, 0.5, 1.5);
          b = bias ? uniform(r, width, -1, 1) : null;
          norm.setWeights(bias ? { weight: g, bias: { data: b, dims: [width] } } : { weight: g });
        }
        const y = norm.forward({ data: x, dims: [rows, width] });
        assert.deepEqual(y.dims, [rows, width]);
        const ref = layerNormRef(x, rows, width, g, b, 1e-6);
        assert.ok(relErr(y.data, ref) <= 1e-4, `width ${width} affine ${elementwiseAffine} bias ${bias}: ${relErr(y.data, ref)}`);
        norm.dispose();
      }
    }
    // normalizedShape over two dims of a [2, 3, 4, 5] input; defaults are PyTorch's (weight 1, bias 0).
    const norm = new mha.LayerNorm({ normalizedShape: [4, 5] });
    const x = uniform(r, 2 * 3 * 4 * 5, -3, 3);
    const y0 = norm.forward({ data: x, dims: [2, 3, 4, 5] });
    assert.ok(relErr(y0.data, layerNormRef(x, 6, 20, null, null, 1e-5)) <= 1e-5);
    const g = uniform(r, 20, 0.5, 1.5), b = uniform(r, 20, -1, 1);
    norm.setWeights({ weight: { data: g, dims: [4, 5] }, bias: b });
    assert.ok(relErr(norm.forward({ data: x, dims: [2, 3, 4, 5] }).data, layerNormRef(x, 6, 20, g, b, 1e-5)) <= 1e-5);
    norm.dispose();
    assert.equal(mha.stats().liveLayers, 0);
  });
}

test('LayerNorm: bad options, weights and inputs are named; the layer keeps working', async () => {
  const mha = await init({ threads: 1 });
  assert.throws(() => new mha.LayerNorm(), { name: 'TypeError', message: /LayerNorm: options \{ normalizedShape \} are required/ });
  assert.throws(() => new mha.LayerNorm({ normalizedShape: [] }), { name: 'TypeError', message: /normalizedShape must be a positive integer or a non-empty array of them, got \[\]/ });
  assert.throws(() => new mha.LayerNorm({ normalizedShape: [4, 0] }), { name: 'RangeError', message: /normalizedShape\[1\] must be a positive integer, got 0/ });
  assert.throws(() => new mha.LayerNorm({ normalizedShape: NaN }), { name: 'RangeError', message: /normalizedShape must be a positive integer, got NaN/ });
  assert.throws(() => new mha.LayerNorm({ normalizedShape: 4, eps: '1e-5' }), { name: 'TypeError', message: /eps must be a positive number, got "1e-5"/ });
  assert.throws(() => new mha.LayerNorm({ normalizedShape: 4, eps: -1 }), { name: 'RangeError', message: /eps must be a positive number, got -1/ });
  assert.throws(() => new mha.LayerNorm({ normalizedShape: 4, eps: 1e39 }), { name: 'RangeError', message: /eps must be a positive float32 \(at most 3\.4028234663852886e\+38\), got 1e\+39/ });
  assert.throws(() => new mha.LayerNorm({ normalizedShape: 4, affine: false }), { name: 'TypeError', message: /unknown option "affine"/ });
  const norm = new mha.LayerNorm({ normalizedShape: 4 });
  assert.throws(() => norm.setWeights({ weight: new Float32Array(4) , beta: new Float32Array(4) }), { name: 'TypeError', message: /LayerNorm\.setWeights: unknown entry "beta"; expected weight, bias/ });
  assert.throws(() => norm.setWeights({ weight: new Float32Array(4) }), { name: 'TypeError', message: /LayerNorm\.setWeights: missing bias \(4 = \[4\] floats\)/ });
  assert.throws(() => norm.setWeights({ weight: new Float32Array(5), bias: new Float32Array(4) }), { name: 'RangeError', message: /LayerNorm\.setWeights: weight must have 4 = \[4\] elements, got 5/ });
  assert.throws(() => norm.forward({ data: new Float32Array(10), dims: [2, 5] }), { name: 'RangeError', message: /input must have dims \[\.\.\., 4\] \(ending in normalizedShape\), got \[2, 5\]/ });
  assert.throws(() => norm.forward(new Float32Array(4)), { name: 'TypeError', message: /input must be a tensor/ });
  const noAffine = new mha.LayerNorm({ normalizedShape: 4, elementwiseAffine: false });
  assert.throws(() => noAffine.setWeights({ weight: new Float32Array(4) }), { name: 'TypeError', message: /created with elementwiseAffine: false/ });
  const noBias = new mha.LayerNorm({ normalizedShape: 4, bias: false });
  assert.throws(() => noBias.setWeights({ weight: new Float32Array(4), bias: new Float32Array(4) }), { name: 'TypeError', message: /unknown entry "bias", but the layer was created with bias: false/ });
  const y = norm.forward({ data: Float32Array.of(1, 2, 3, 4), dims: [4] });
  assert.ok(relErr(y.data, layerNormRef([1, 2, 3, 4], 1, 4, null, null, 1e-5)) <= 1e-5);
  for (const n of [norm, noAffine, noBias]) n.dispose();
  assert.throws(() => norm.forward({ data: Float32Array.of(1, 2, 3, 4), dims: [4] }), { message: 'LayerNorm.forward: this layer has been disposed' });
});
