// weightType 'int8' and 'f16' on the layer classes (MultiHeadAttention with the modern options,
// FeedForward, the Transformer blocks), in every build: the output against the float64 reference
// computed with the dequantized weights (quantized here, independently: per output row,
// symmetric, round half to even; halves by round to nearest even through Math.fround-free
// bit arithmetic), within 2e-3 x max |reference| for int8 and 1e-4 for f16; the error against
// the unquantized reference is printed. Pre-quantized int8 weights (compressed-tensors:
// <name> + <name>_scale) give the same output as quantizing on set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { init } from 'mha-wasm';
import { encoderReference, relToMax, rng, uniform } from './reference.mjs';
import { feedForwardReference, int8Rows, modernAttentionReference, modernWeights, roundEven } from './reference-modern.mjs';

/** x rounded to the nearest IEEE half (ties to even), as a number. */
function toHalf(x) {
  if (x === 0 || !Number.isFinite(x)) return x;
  const a = Math.abs(x), e = Math.max(Math.floor(Math.log2(a)), -14), ulp = 2 ** (e - 10);
  return Math.sign(x) * roundEven(a / ulp) * ulp;
}

const BOUND = { int8: 2e-3, f16: 1e-4 };

/** The weights with each matrix (name: [N, K]) stored as weightType, back in float. */
function dequantized(w, shapes, weightType) {
  const out = { ...w };
  for (const [name, [N, K]] of Object.entries(shapes))
    out[name] = weightType === 'int8' ? int8Rows(w[name], N, K).deq : Float32Array.from(w[name], toHalf);
  return out;
}

// Both int8 kernels (init's int8Dot); a SIMD128 build has only dot_i16x8 and runs it for either.
const INT8_DOTS = ['dot_i16x8', 'relaxed_dot_i8x16_i7x16'];
for (const threads of [1, 2]) for (const int8Dot of INT8_DOTS) {
  test(`threads=${threads}, int8Dot ${int8Dot}: MultiHeadAttention, FeedForward and the encoder block with int8 and f16 weights`, async () => {
    const mha = await init({ threads, int8Dot });
    assert.equal(mha.features.int8Dot, mha.features.relaxedSimd ? int8Dot : 'dot_i16x8');
    const r = rng(40 + threads);
    for (const weightType of ['int8', 'f16']) {
      // Attention: grouped heads, rotary, a window, causal.
      const cfg = { embedDim: 48, numHeads: 6, numKvHeads: 2, headDim: 10, rope: true, slidingWindow: 5 };
      const w = modernWeights(r, cfg);
      const shapes = { qProjWeight: [60, 48], kProjWeight: [20, 48], vProjWeight: [20, 48], outProjWeight: [48, 60] };
      const B = 2, L = 13, x = uniform(r, B * L * 48, -1, 1);
      const layer = new mha.MultiHeadAttention({ ...cfg, weightType });
      assert.equal(layer.weightType, weightType);
      layer.setWeights(w);
      const got = layer.forward({ data: x, dims: [B, L, 48] }, null, null, { isCausal: true }).output.data;
      const ref = modernAttentionReference(cfg, dequantized(w, shapes, weightType), B, L, L, x, x, x, { isCausal: true }).output;
      const plain = modernAttentionReference(cfg, w, B, L, L, x, x, x, { isCausal: true }).output;
      const err = relToMax(got, ref);
      assert.ok(err <= BOUND[weightType], `attention ${weightType}: ${err.toExponential(2)}`);
      console.log(`# attention ${weightType}: ${err.toExponential(2)} of max |ref| against the dequantized weights, ${relToMax(got, plain).toExponential(2)} against the unquantized`);
      if (weightType === 'int8') {  // pre-quantized: the same numbers
        const pre = { ...w };
        for (const [name, [N, K]] of Object.entries(shapes)) {
          const { q, scale } = int8Rows(w[name], N, K);
          pre[name] = { data: q, dims: [N, K] };
          pre[`${name}_scale`] = { data: Float32Array.from(scale), dims: [N, 1] };
        }
        const l2 = new mha.MultiHeadAttention({ ...cfg, weightType });
        l2.setWeights(pre);
        const again = l2.forward({ data: x, dims: [B, L, 48] }, null, null, { isCausal: true }).output.data;
        assert.ok(relToMax(again, got) < 1e-6, 'pre-quantized = quantized on set');
        assert.throws(() => new mha.MultiHeadAttention(cfg).setWeights(pre), /pre-quantized int8 weights need weightType: 'int8'/);
        l2.dispose();
      }
      layer.dispose();

      // Gated feed-forward: one row (the decoding GEMV), a few (tiles of up to 4 rows) and more (the
      // GEMM), at a depth within one int8 pass (512) and past it.
      for (const [E, F] of [[40, 72], [520, 36]]) {
        const fw = { gateProjWeight: uniform(r, F * E, -0.2, 0.2), upProjWeight: uniform(r, F * E, -0.2, 0.2), downProjWeight: uniform(r, E * F, -0.15, 0.15) };
        const ff = new mha.FeedForward({ dModel: E, dimFeedforward: F, activation: 'silu', gated: true, bias: false, weightType });
        ff.setWeights({ 'gate_proj.weight': fw.gateProjWeight, 'up_proj.weight': fw.upProjWeight, 'down_proj.weight': fw.downProjWeight });
        const dq = dequantized(fw, { gateProjWeight: [F, E], upProjWeight: [F, E], downProjWeight: [E, F] }, weightType);
        for (const M of [1, 3, 9]) {
          const xf = uniform(r, M * E, -1, 1), fgot = ff.forward({ data: xf, dims: [M, E] }).data;
          const fref = feedForwardReference({ embedDim: E, hiddenDim: F, activation: 'silu', gated: true }, dq, M, xf);
          assert.ok(relToMax(fgot, fref) <= BOUND[weightType], `feed-forward ${weightType} E ${E} M ${M}: ${relToMax(fgot, fref).toExponential(2)}`);
        }
        ff.dispose();
      }

      // Encoder block (pre-norm, GELU).
      const bc = { dModel: 32, nhead: 4, dimFeedforward: 48, activation: 'gelu', normFirst: true };
      const s = 1 / Math.sqrt(32);
      const sd = {
        'self_attn.in_proj_weight': uniform(r, 96 * 32, -s, s), 'self_attn.in_proj_bias': uniform(r, 96, -s, s),
        'self_attn.out_proj.weight': uniform(r, 32 * 32, -s, s), 'self_attn.out_proj.bias': uniform(r, 32, -s, s),
        'linear1.weight': uniform(r, 48 * 32, -s, s), 'linear1.bias': uniform(r, 48, -s, s),
        'linear2.weight': uniform(r, 32 * 48, -0.15, 0.15), 'linear2.bias': uniform(r, 32, -s, s),
        'norm1.weight': uniform(r, 32, 0.5, 1.5), 'norm1.bias': uniform(r, 32, -0.5, 0.5), 'norm2.weight': uniform(r, 32, 0.5, 1.5), 'norm2.bias': uniform(r, 32, -0.5, 0.5),
      };
      const enc = new mha.TransformerEncoderLayer({ ...bc, weightType });
      enc.setWeights(sd);
      const xe = uniform(r, 2 * 7 * 32, -1, 1);
      const egot = enc.forward({ data: xe, dims: [2, 7, 32] }).data;
      const eref = encoderReference({ E: 32, H: 4, F: 48, activation: 'gelu', eps: 1e-5, normFirst: true, bias: true }, dequantized(sd, { 'self_attn.in_proj_weight': [96, 32], 'self_attn.out_proj.weight': [32, 32], 'linear1.weight': [48, 32], 'linear2.weight': [32, 48] }, weightType), 2, 7, xe);
      assert.ok(relToMax(egot, eref) <= BOUND[weightType], `encoder ${weightType}: ${relToMax(egot, eref).toExponential(2)}`);
      if (weightType === 'int8') {  // pre-quantized block matrices (quantizeSafetensors' layout): the same numbers
        const shapes = { 'self_attn.in_proj_weight': [96, 32], 'self_attn.out_proj.weight': [32, 32], 'linear1.weight': [48, 32], 'linear2.weight': [32, 48] };
        const pre = { ...sd };
        for (const [name, [N, K]] of Object.entries(shapes)) {
          const { q, scale } = int8Rows(sd[name], N, K);
          pre[name] = { data: q, dims: [N, K] };
          pre[`${name}_scale`] = { data: Float32Array.from(scale), dims: [N] };
        }
        const e2 = new mha.TransformerEncoderLayer({ ...bc, weightType });
        e2.setWeights(pre);
        assert.ok(relToMax(e2.forward({ data: xe, dims: [2, 7, 32] }).data, egot) < 1e-6, 'pre-quantized block = quantized on set');
        assert.throws(() => new mha.TransformerEncoderLayer(bc).setWeights(pre), /pre-quantized int8 weights need weightType: 'int8'/);
        assert.throws(() => e2.setWeights({ ...pre, 'norm1.weight_scale': new Float32Array(32) }), /norm1\.weight_scale given, but only weight matrices can be pre-quantized/);
        e2.dispose();
      }
      enc.dispose();
    }
    assert.throws(() => new mha.FeedForward({ dModel: 4, dimFeedforward: 4, weightType: 'int4' }), (e) => e instanceof RangeError && /weightType must be one of 'f32', 'f16', 'int8', got "int4"/.test(e.message));
  });
}

test('weights int8 and f16 cannot store are refused by name, and the layer keeps working', async () => {
  const mha = await init({ threads: 1 });
  const w = { inProjWeight: new Float32Array(3 * 16), outProjWeight: new Float32Array(16), inProjBias: new Float32Array(12), outProjBias: new Float32Array(4) };
  const bad = (v, at) => ({ ...w, inProjWeight: Float32Array.from(w.inProjWeight, (x, i) => (i === at ? v : x)) });
  const l8 = new mha.MultiHeadAttention({ embedDim: 4, numHeads: 2, weightType: 'int8' });
  assert.throws(() => l8.setWeights(bad(NaN, 5)), (e) => e instanceof RangeError && /inProjWeight\[5\] is NaN; weightType 'int8' stores finite weights only/.test(e.message));
  const l16 = new mha.MultiHeadAttention({ embedDim: 4, numHeads: 2, weightType: 'f16' });
  assert.throws(() => l16.setWeights(bad(70000, 2)), (e) => e instanceof RangeError && /inProjWeight\[2\] = 70000 is beyond float16's range/.test(e.message));
  l16.setWeights(bad(60000, 2));  // a finite half
  l8.setWeights(w);
  assert.equal(l8.forward({ data: new Float32Array(8), dims: [2, 4] }).output.dims.join(), '2,4');
  l8.dispose();
  l16.dispose();
  // A Model's stored matrices outside the blocks: the token table (a tied head's too) and an untied head.
  const model = (head, weightType) => new mha.Model({ hiddenSize: 16, vocabSize: 10, numLayers: 1, head, attention: { numHeads: 2 }, feedForward: { dimFeedforward: 32 }, weightType });
  const table = (at, v) => Float32Array.from({ length: 160 }, (_, i) => (i === at ? v : 0.25));
  const tied = model('tied', 'int8');
  assert.throws(() => tied.setEmbeddings({ tokens: table(17, NaN) }), (e) => e instanceof RangeError && /Model.setEmbeddings: tokens\[17\] is NaN; weightType 'int8' stores finite weights only/.test(e.message));
  tied.setEmbeddings({ tokens: table(17, 3) });
  const tied16 = model('tied', 'f16');
  assert.throws(() => tied16.setEmbeddings({ tokens: table(3, -70000) }), (e) => e instanceof RangeError && /tokens\[3\] = -70000 is beyond float16's range/.test(e.message));
  const untied = model('untied', 'int8');
  assert.throws(() => untied.setEmbeddings({ tokens: table(4, -Infinity) }), (e) => e instanceof RangeError && /Model.setEmbeddings: tokens\[4\] is -Infinity/.test(e.message));
  untied.setEmbeddings({ tokens: table(4, 2) });
  assert.throws(() => untied.setHead({ weight: table(9, Infinity) }), (e) => e instanceof RangeError && /Model.setHead: weight\[9\] is Infinity/.test(e.message));
  untied.setHead({ weight: table(9, 1) });
  const f32 = model('none', 'f32');
  f32.setEmbeddings({ tokens: table(17, NaN) });  // float32 stores any float
  for (const m of [tied, tied16, untied, f32]) m.dispose();
});

/**
 * W1 [F, E] as a FeedForward stores it at weightType, read back: relu(x W1^T) W2^T with W2 the identity and
 * x = e_k, then -e_k, gives relu(column k) and relu(-column k), whose difference is the column as stored.
 * Returns (n, k) => the stored W1[n, k] (int8: up to the activations' int16 rounding).
 */
async function storedWeights(threads, weightType, w1, E, F, int8Dot = 'auto') {
  const mha = await init({ threads, int8Dot });
  const ff = new mha.FeedForward({ dModel: E, dimFeedforward: F, activation: 'relu', bias: false, weightType });
  ff.setWeights({ linear1Weight: w1, linear2Weight: Float32Array.from({ length: E * F }, (_, i) => (Math.floor(i / F) === i % F ? 1 : 0)) });
  const x = new Float32Array(2 * E * E);
  for (let k = 0; k < E; k++) x[k * E + k] = 1, x[(E + k) * E + k] = -1;
  const y = ff.forward({ data: x, dims: [2 * E, E] }).data;
  ff.dispose();
  return (n, k) => y[k * E + n] - y[(E + k) * E + n];
}

test('f16 weights are stored as IEEE halves, rounded to nearest even, bit for bit (normal, subnormal, ties), in both builds', async () => {
  const E = 37, F = 37;  // both past a multiple of 8: the packer's eight-value steps and its tail
  const special = [0, -0, 65504, -65519, 65519.99, 2 ** -14, -(2 ** -14) * (1 - 2 ** -11), 2 ** -24, -(2 ** -25), 1.5 * 2 ** -24,
    1 + 2 ** -11, 1 + 3 * 2 ** -11, 2049, -3e-5, 6.1e-5, 1e-8, 0.1, -123.456];
  const w1 = Float32Array.from({ length: F * E }, (_, i) => Math.fround(i % 3 === 0 ? special[(i / 3) % special.length] : Math.sin(i * 1.7) * (i % 7 === 1 ? 1e-5 : 50)));
  for (const threads of [1, 2]) {
    const stored = await storedWeights(threads, 'f16', w1, E, F);
    for (let k = 0; k < E; k++)
      for (let n = 0; n < F; n++)
        if (stored(n, k) !== toHalf(w1[n * E + k])) assert.fail(`threads ${threads}: W1[${n}, ${k}] = ${w1[n * E + k]} stored as ${stored(n, k)}, expected ${toHalf(w1[n * E + k])}`);
  }
});

test('int8 weights are stored as round(w / scale) with ties to even, per output row, in both builds (read back through a FeedForward)', async () => {
  // Each row of W1 has max |w| = 127/8, so its scale is 1/8 exactly, and (m + 1/2)/8 are ties; read back
  // (storedWeights), 8 w is the stored integer up to the activations' int16 rounding, far below half a step.
  const E = 37, F = 37;
  const w1 = new Float32Array(F * E), want = new Int32Array(F * E);
  for (let n = 0; n < F; n++)
    for (let k = 0; k < E; k++) {
      const m = ((k * 37 + n * 11) % 254) - 127, t = k === n ? (n % 2 ? -127 : 127) : m + 0.5;  // the largest on the diagonal
      w1[n * E + k] = t / 8;
      want[n * E + k] = k === n ? t : roundEven(t);
    }
  for (const threads of [1, 2])
    for (const int8Dot of INT8_DOTS) {
      const stored = await storedWeights(threads, 'int8', w1, E, F, int8Dot);
      for (let k = 0; k < E; k++)
        for (let n = 0; n < F; n++) {
          const q = 8 * stored(n, k);
          if (!(Math.abs(q - want[n * E + k]) < 0.05)) assert.fail(`threads ${threads} ${int8Dot}: W1[${n}, ${k}] = ${w1[n * E + k]} stored as ${q / 8}, expected ${want[n * E + k] / 8}`);
        }
    }
});
