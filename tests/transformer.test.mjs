// TransformerEncoderLayer against the float64 reference in reference.mjs
// (post- and pre-norm, ReLU and GELU, bias or not, masks), in both builds;
// state_dict names straight from a safetensors file; bad weights named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeSafetensors, init, parseSafetensors } from 'mha-wasm';
import { blockStateDict, encoderReference, erf, mhaReference, relErr, rng, uniform } from './reference.mjs';

const stateDict = (r, E, F, bias) => blockStateDict(r, E, F, bias);

test('the reference erf is accurate', () => {
  for (const [x, want] of [[0.5, 0.5204998778130465], [1, 0.8427007929497149], [2.5, 0.9995930479825550], [3.5, 0.9999992569016276], [-1.2, -0.9103139782296353]])
    assert.ok(Math.abs(erf(x) - want) < 1e-14, `erf(${x})`);
});

for (const threads of [1, 2]) {
  test(`threads=${threads}: TransformerEncoderLayer matches the float64 reference`, async () => {
    const mha = await init({ threads });
    const r = rng(40 + threads);
    const cases = [
      { E: 16, H: 4, F: 32, B: 2, L: 9, activation: 'relu', normFirst: false, bias: true, opts: {} },
      { E: 24, H: 3, F: 40, B: 1, L: 33, activation: 'gelu', normFirst: true, bias: true, opts: { isCausal: true } },
      { E: 32, H: 8, F: 64, B: 3, L: 17, activation: 'gelu', normFirst: false, bias: false, opts: { padding: true } },
      { E: 64, H: 4, F: 128, B: 2, L: 70, activation: 'relu', normFirst: true, bias: true, opts: { mask: true } },
    ];
    for (const c of cases) {
      const layer = new mha.TransformerEncoderLayer({ dModel: c.E, nhead: c.H, dimFeedforward: c.F, activation: c.activation, normFirst: c.normFirst, bias: c.bias });
      assert.deepEqual([layer.dModel, layer.nhead, layer.dimFeedforward, layer.activation, layer.normFirst, layer.layerNormEps], [c.E, c.H, c.F, c.activation, c.normFirst, 1e-5]);
      const sd = stateDict(r, c.E, c.F, c.bias);
      layer.setWeights(sd);
      const x = uniform(r, c.B * c.L * c.E, -2, 2);
      const options = {}, refOpts = {};
      if (c.opts.isCausal) options.isCausal = refOpts.isCausal = true;
      if (c.opts.padding) {
        const kpm = Uint8Array.from({ length: c.B * c.L }, (_, i) => (i % c.L >= c.L - 1 - Math.floor(i / c.L) ? 1 : 0));
        options.srcKeyPaddingMask = { data: kpm, dims: [c.B, c.L] };
        refOpts.keyPaddingMask = kpm;
      }
      if (c.opts.mask) {
        const m = Float32Array.from({ length: c.L * c.L }, () => (r() < 0.2 ? -Infinity : r() - 0.5));
        for (let i = 0; i < c.L; i++) m[i * c.L + i] = 0;
        options.srcMask = { data: m, dims: [c.L, c.L] };
        Object.assign(refOpts, { attnMask: m, maskBroadcast: true });
      }
      const y = layer.forward({ data: x, dims: [c.B, c.L, c.E] }, options);
      assert.deepEqual(y.dims, [c.B, c.L, c.E]);
      const ref = encoderReference({ E: c.E, H: c.H, F: c.F, activation: c.activation, eps: 1e-5, normFirst: c.normFirst, bias: c.bias }, sd, c.B, c.L, x, refOpts);
      assert.ok(relErr(y.data, ref) <= 1e-4, `${JSON.stringify(c)}: ${relErr(y.data, ref)}`);
      // Unbatched input gives the first batch item.
      const y1 = layer.forward({ data: x.subarray(0, c.L * c.E), dims: [c.L, c.E] }, { isCausal: !!c.opts.isCausal, ...(c.opts.mask ? { srcMask: options.srcMask } : {}) });
      assert.deepEqual(y1.dims, [c.L, c.E]);
      if (!c.opts.padding) assert.ok(relErr(y1.data, ref.subarray(0, c.L * c.E)) <= 1e-4);
      layer.dispose();
    }
    assert.equal(mha.stats().liveLayers, 0);
  });
}

test('state_dict from a safetensors file (with a prefix); bad weights and options are named', async () => {
  const mha = await init({ threads: 1 });
  const r = rng(9), E = 8, F = 16;
  const sd = stateDict(r, E, F, true);
  const dims = { 'self_attn.in_proj_weight': [3 * E, E], 'self_attn.out_proj.weight': [E, E], 'linear1.weight': [F, E], 'linear2.weight': [E, F] };
  const file = encodeSafetensors(Object.fromEntries(Object.entries(sd).map(([k, v]) => [`encoder.layers.0.${k}`, { data: v, dims: dims[k] ?? [v.length] }])));
  const layer = new mha.TransformerEncoderLayer({ dModel: E, nhead: 2, dimFeedforward: F });
  assert.throws(() => layer.setWeights(parseSafetensors(file)), { name: 'TypeError', message: /unknown entry "encoder\.layers\.0\.[a-z0-9_.]+" \(strip the prefix "encoder\.layers\.0\."/ });
  layer.setWeights(parseSafetensors(file, { prefix: 'encoder.layers.0.' }));
  const x = uniform(r, 3 * E, -1, 1);
  const ref = encoderReference({ E, H: 2, F, activation: 'relu', eps: 1e-5, normFirst: false, bias: true }, sd, 1, 3, x);
  assert.ok(relErr(layer.forward({ data: x, dims: [1, 3, E] }).data, ref) <= 1e-4);
  const { 'linear2.weight': _, ...missing } = sd;
  assert.throws(() => layer.setWeights(missing), { name: 'TypeError', message: /missing linear2\.weight \(128 = \[8, 16\] floats\)/ });
  assert.throws(() => layer.setWeights({ ...sd, 'linear1.weight': { data: new Float32Array(F * E), dims: [E, F] } }), { name: 'RangeError', message: /linear1\.weight must have dims \[16, 8\], got \[8, 16\]/ });
  assert.throws(() => layer.setWeights({ ...sd, 'norm1.bias': new Float32Array(E + 1) }), { name: 'RangeError', message: /norm1\.bias must have 8 = \[8\] elements, got 9/ });
  assert.throws(() => new mha.TransformerEncoderLayer({ dModel: 8, nhead: 3 }), { name: 'RangeError', message: /dModel must be divisible by nhead/ });
  assert.throws(() => new mha.TransformerEncoderLayer({ dModel: 8, nhead: 2, activation: 'tanh' }), { name: 'TypeError', message: /activation must be 'relu' or 'gelu', got "tanh"/ });
  assert.throws(() => new mha.TransformerEncoderLayer({ dModel: 8, nhead: 2, layerNormEps: 0 }), { name: 'RangeError', message: /layerNormEps must be a positive number, got 0/ });
  assert.throws(() => new mha.TransformerDecoderLayer({ dModel: 8, nhead: 2, layerNormEps: 1e-50 }), { name: 'RangeError', message: /layerNormEps must be a positive float32 \(at least 1\.4e-45\), got 1e-50/ });
  assert.throws(() => new mha.TransformerEncoderLayer({ dModel: 8, nhead: 2, layerNormEps: '1e-5' }), { name: 'TypeError', message: /layerNormEps must be a positive number, got "1e-5"/ });
  assert.throws(() => layer.forward({ data: x, dims: [1, 3, E] }, { srcKeyPaddingMask: { data: new Uint8Array(2), dims: [1, 2] } }), { name: 'RangeError', message: /options\.srcKeyPaddingMask must have dims \[1, 3\], got \[1, 2\]/ });
  const noBias = new mha.TransformerEncoderLayer({ dModel: E, nhead: 2, dimFeedforward: F, bias: false });
  assert.throws(() => noBias.setWeights(sd), { name: 'TypeError', message: /self_attn\.in_proj_bias given, but the layer was created with bias: false/ });
  // Still works after the errors.
  assert.ok(relErr(layer.forward({ data: x, dims: [1, 3, E] }).data, ref) <= 1e-4);
  layer.dispose();
  noBias.dispose();
  assert.throws(() => layer.forward({ data: x, dims: [1, 3, E] }), { message: 'TransformerEncoderLayer.forward: this layer has been disposed' });
});
