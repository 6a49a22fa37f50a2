// TransformerDecoderLayer against the float64 reference (post- and pre-norm, ReLU
// and GELU, bias or not, target and memory masks), in both builds; bad weights
// and arguments named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { init } from 'mha-wasm';
import { blockStateDict, decoderReference, mhaReference, relErr, rng, uniform } from './reference.mjs';

const padding = (B, L, keep) => Uint8Array.from({ length: B * L }, (_, i) => (i % L >= keep(Math.floor(i / L)) ? 1 : 0));

for (const threads of [1, 2]) {
  test(`threads=${threads}: TransformerDecoderLayer matches the float64 reference`, async () => {
    const mha = await init({ threads });
    const r = rng(70 + threads);
    const cases = [
      { E: 16, H: 4, F: 32, B: 2, T: 9, S: 5, activation: 'relu', normFirst: false, bias: true, causal: true },
      { E: 24, H: 3, F: 40, B: 1, T: 33, S: 17, activation: 'gelu', normFirst: true, bias: true, causal: true, memPad: true },
      { E: 32, H: 8, F: 64, B: 3, T: 5, S: 40, activation: 'gelu', normFirst: false, bias: false, tgtPad: true, memMask: true },
      { E: 64, H: 4, F: 128, B: 2, T: 70, S: 3, activation: 'relu', normFirst: true, bias: true, tgtMask: true, memPad: true },
    ];
    for (const c of cases) {
      const cfg = { dModel: c.E, nhead: c.H, dimFeedforward: c.F, activation: c.activation, normFirst: c.normFirst, bias: c.bias };
      const layer = new mha.TransformerDecoderLayer(cfg);
      const sd = blockStateDict(r, c.E, c.F, c.bias, true);
      layer.setWeights(sd);
      const tgt = uniform(r, c.B * c.T * c.E, -2, 2), mem = uniform(r, c.B * c.S * c.E, -2, 2);
      const options = {}, tOpts = {}, mOpts = {};
      if (c.causal) options.tgtIsCausal = tOpts.isCausal = true;
      if (c.tgtPad) {
        tOpts.keyPaddingMask = padding(c.B, c.T, (b) => c.T - b);
        options.tgtKeyPaddingMask = { data: tOpts.keyPaddingMask, dims: [c.B, c.T] };
      }
      if (c.memPad) {
        mOpts.keyPaddingMask = padding(c.B, c.S, (b) => c.S - 1 - b);
        options.memoryKeyPaddingMask = { data: mOpts.keyPaddingMask, dims: [c.B, c.S] };
      }
      if (c.tgtMask) {
        const m = Uint8Array.from({ length: c.T * c.T }, (_, i) => (i % c.T > Math.floor(i / c.T) + 3 ? 1 : 0));
        options.tgtMask = { data: m, dims: [c.T, c.T] };
        Object.assign(tOpts, { attnMask: m, maskBroadcast: true });
      }
      if (c.memMask) {
        const m = Float32Array.from({ length: c.B * c.H * c.T * c.S }, () => (r() < 0.2 ? -Infinity : r() - 0.5));
        for (let i = 0; i < m.length; i += c.S) m[i] = 0;  // every row sees something
        options.memoryMask = { data: m, dims: [c.B, c.H, c.T, c.S] };
        Object.assign(mOpts, { attnMask: m, maskBroadcast: false });
      }
      const y = layer.forward({ data: tgt, dims: [c.B, c.T, c.E] }, { data: mem, dims: [c.B, c.S, c.E] }, options);
      assert.deepEqual(y.dims, [c.B, c.T, c.E]);
      const refCfg = { E: c.E, H: c.H, F: c.F, activation: c.activation, eps: 1e-5, normFirst: c.normFirst, bias: c.bias };
      const ref = decoderReference(refCfg, sd, c.B, c.T, c.S, tgt, mem, tOpts, mOpts);
      assert.ok(relErr(y.data, ref) <= 1e-4, `${JSON.stringify(c)}: ${relErr(y.data, ref)}`);
      // needWeights: the same output, and (post-norm) the self-attention weights of tgt itself.
      const withW = layer.forward({ data: tgt, dims: [c.B, c.T, c.E] }, { data: mem, dims: [c.B, c.S, c.E] }, { ...options, needWeights: true });
      assert.deepEqual(withW.output.data, y.data);
      assert.deepEqual([withW.selfWeights.dims, withW.crossWeights.dims], [[c.B, c.H, c.T, c.T], [c.B, c.H, c.T, c.S]]);
      if (!c.normFirst) {
        const w = { inProjWeight: sd['self_attn.in_proj_weight'], inProjBias: sd['self_attn.in_proj_bias'], outProjWeight: sd['self_attn.out_proj.weight'], outProjBias: sd['self_attn.out_proj.bias'] };
        const sw = mhaReference({ E: c.E, H: c.H, kdim: c.E, vdim: c.E, bias: c.bias }, w, c.B, c.T, c.T, tgt, tgt, tgt, { ...tOpts, needWeights: true, averageWeights: false }).weights;
        assert.ok(relErr(withW.selfWeights.data, sw) <= 1e-5);
      }
      layer.dispose();
    }
    assert.equal(mha.stats().liveLayers, 0);
  });
}

test('TransformerDecoderLayer: bad weights, inputs and options are named; the layer keeps working', async () => {
  const mha = await init({ threads: 1 });
  const r = rng(5), E = 8, F = 12, T = 3, S = 4;
  const layer = new mha.TransformerDecoderLayer({ dModel: E, nhead: 2, dimFeedforward: F });
  const sd = blockStateDict(r, E, F, true, true);
  const tgt = { data: uniform(r, T * E, -1, 1), dims: [1, T, E] }, mem = { data: uniform(r, S * E, -1, 1), dims: [1, S, E] };
  assert.throws(() => layer.forward(tgt, mem), { message: 'TransformerDecoderLayer.forward: weights are not set; call setWeights() first' });
  const { 'multihead_attn.out_proj.weight': _, ...missing } = sd;
  assert.throws(() => layer.setWeights(missing), { name: 'TypeError', message: /TransformerDecoderLayer\.setWeights: missing multihead_attn\.out_proj\.weight \(64 = \[8, 8\] floats\)/ });
  assert.throws(() => layer.setWeights({ ...sd, 'norm3.weight': new Float32Array(E - 1) }), { name: 'RangeError', message: /norm3\.weight must have 8 = \[8\] elements, got 7/ });
  assert.throws(() => layer.setWeights({ ...sd, 'norm4.weight': new Float32Array(E) }), { name: 'TypeError', message: /unknown entry "norm4\.weight"/ });
  assert.throws(() => layer.setWeights({ ...sd, 'linear1.weight': new Float64Array(F * E) }), { name: 'TypeError', message: /linear1\.weight must be a Float32Array of 96 = \[12, 8\] floats, got Float64Array/ });
  layer.setWeights(sd);
  const ref = decoderReference({ E, H: 2, F, activation: 'relu', eps: 1e-5, normFirst: false, bias: true }, sd, 1, T, S, tgt.data, mem.data);
  assert.throws(() => layer.forward(tgt), { name: 'TypeError', message: /memory must be a tensor/ });
  assert.throws(() => layer.forward(tgt, { data: mem.data, dims: [S, E] }), { name: 'RangeError', message: /memory must have the same rank as tgt/ });
  assert.throws(() => layer.forward(tgt, { data: new Float32Array(2 * S * E), dims: [2, S, E] }), { name: 'RangeError', message: /memory\.dims\[0\] must be the batch size of tgt \(1\)/ });
  assert.throws(() => layer.forward(tgt, mem, { memoryKeyPaddingMask: { data: new Uint8Array(T), dims: [1, T] } }), { name: 'RangeError', message: /options\.memoryKeyPaddingMask must have dims \[1, 4\], got \[1, 3\]/ });
  assert.throws(() => layer.forward(tgt, mem, { isCausal: true }), { name: 'TypeError', message: /unknown option "isCausal"/ });
  assert.ok(relErr(layer.forward(tgt, mem).data, ref) <= 1e-4);
  // Unbatched tgt and memory give the same result.
  const y1 = layer.forward({ data: tgt.data, dims: [T, E] }, { data: mem.data, dims: [S, E] });
  assert.deepEqual(y1.dims, [T, E]);
  assert.ok(relErr(y1.data, ref) <= 1e-4);
  layer.dispose();
});
