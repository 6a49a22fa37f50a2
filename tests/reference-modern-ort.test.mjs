// The float64 reference of the modern attention options (reference-modern.mjs) against
// onnxruntime-node, an implementation written by someone else, on seeded random cases,
// to 1e-4 (max |error| <= 1e-4 * max(1, max |reference|)). The whole layer runs as one
// ONNX graph (tests/ort-ops.mjs): projections, per-head RMSNormalization, RotaryEmbedding
// at the positions worked out here, then opset 23 Attention (GQA/MQA heads, is_causal,
// scale, softcap, masks, weights) or com.microsoft GroupQueryAttention (sliding windows
// as local_window_size, sinks as head_sink), then the output projection. RMSNorm and the
// feed-forward block are checked the same way.
//
// What ONNX Runtime cannot express natively is given to it as a mask computed here: ALiBi
// as an additive float mask, a non-causal sliding window as a boolean mask (and those two
// are checked against a second formulation in reference-modern.test.mjs as well).
//
// onnxruntime-node is optional: without it the tests run on onnxruntime-web (a dev
// dependency), with the same operators (see loadOrt in ort-ops.mjs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { relErr, rng, uniform } from './reference.mjs';
import {
  feedForwardReference, modernAttentionReference, modernWeights, resolveConfig, rmsNormReference, ropeFromHfConfig, splitWeights,
  applyRotaryReference, FLOAT32_EPS,
} from './reference-modern.mjs';
import { attentionLayerModel, feedForwardModel, loadOnnxProto, loadOrt, onnxKit, rmsNormModel, rotaryCaches, rotaryModel, runModel } from './ort-ops.mjs';

const TOL = 1e-4;
const { ort, reason, name: runtime } = await loadOrt();
const skip = ort ? false : reason;
const ORT = runtime ?? 'onnxruntime-node';
const kit = ort ? onnxKit(loadOnnxProto()) : null;

/**
 * One case through both: the reference, and the graph with op 'Attention' or 'GQA'.
 * shape: { B, Lq, Lk, cross, past (Attention: keys before Lk - Lq as past_key) };
 * opts: the reference's options (masks, isCausal, positionIds, needWeights);
 * extra: { alibiAsMask, windowAsMask } for what the op cannot express.
 */
async function crossCheck(seed, cfg, { B = 2, Lq = 5, Lk = Lq, cross = Lq !== Lk, op = 'Attention', past = Lq !== Lk, withSinks = false } = {}, opts = {}, extra = {}) {
  const r = rng(seed);
  const c = resolveConfig(cfg);
  const w = modernWeights(r, cfg, { withSinks });
  const query = uniform(r, B * Lq * c.E, -1, 1);
  const key = cross ? uniform(r, B * Lk * c.kdim, -1, 1) : query;
  const value = cross ? uniform(r, B * Lk * c.vdim, -1, 1) : query;
  const ref = modernAttentionReference(cfg, w, B, Lq, Lk, query, key, value, { ...opts, needWeights: op === 'Attention', averageWeights: false });

  // rotary positions, written out here: keys j, queries Lk - Lq + i; positionIds replace
  // the new tokens' (the queries and the last Lq keys)
  const P = Lk - Lq;
  const pid = (b, i) => (opts.positionIds.length === Lq ? opts.positionIds[i] : opts.positionIds[b * Lq + i]);
  const qPositions = new BigInt64Array(B * Lq), kPositions = new BigInt64Array(B * Lk);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < Lq; i++) qPositions[b * Lq + i] = BigInt(opts.positionIds ? pid(b, i) : P + i);
    for (let j = 0; j < Lk; j++) kPositions[b * Lk + j] = BigInt(opts.positionIds && j >= P ? pid(b, j - P) : j);
  }

  // one ONNX attn_mask [B, H, Lq, Lk] for Attention: boolean (true = attend) unless a float part is needed
  let onnxMask = null;
  const H = c.H;
  const needsFloat = opts.attnMask instanceof Float32Array || extra.alibiAsMask;
  if (op === 'Attention' && (opts.attnMask || opts.keyPaddingMask || extra.alibiAsMask || extra.windowAsMask)) {
    const n = B * H * Lq * Lk;
    const add = new Float32Array(n), allow = new Uint8Array(n).fill(1);
    for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let i = 0; i < Lq; i++) for (let j = 0; j < Lk; j++) {
      const t = ((b * H + h) * Lq + i) * Lk + j, m = opts.maskBroadcast ? i * Lk + j : t;
      if (opts.attnMask instanceof Uint8Array && opts.attnMask[m]) allow[t] = 0;
      if (opts.attnMask instanceof Float32Array) add[t] += opts.attnMask[m];
      if (opts.keyPaddingMask && opts.keyPaddingMask[b * Lk + j]) allow[t] = 0;
      if (extra.windowAsMask && Math.abs(P + i - j) >= cfg.slidingWindow) allow[t] = 0;
      if (extra.alibiAsMask) add[t] -= extra.alibiAsMask[h] * Math.abs(P + i - j);
    }
    onnxMask = needsFloat ? { data: add.map((a, t) => (allow[t] ? a : -Infinity)), dims: [B, H, Lq, Lk] } : { data: allow, dims: [B, H, Lq, Lk] };
  }
  // what the op does itself: drop the options the mask carries from the op's config
  const opConfig = { ...c, slopes: null };
  const bytes = attentionLayerModel(kit, opConfig, splitWeights(c, w), w.qNormWeight, w.kNormWeight, {
    B, Lq, Lk, op, qPositions, kPositions, isCausal: opts.isCausal, onnxMask, needWeights: op === 'Attention', past: op === 'Attention' && past,
    localWindowSize: op === 'GQA' && cfg.slidingWindow ? cfg.slidingWindow : undefined, sinks: withSinks ? w.sinks : undefined,
  });
  const out = await runModel(ort, bytes, { query: [query, [B, Lq, c.E]], key: [key, [B, Lk, c.kdim]], value: [value, [B, Lk, c.vdim]] });
  return { ref, out, w, c };
}

function expectClose({ ref, out }, what) {
  const e = relErr(out.y, ref.output);
  assert.ok(e <= TOL, `${what}: output error ${e}`);
  if (out.w) {
    const ew = relErr(out.w, ref.weights);
    assert.ok(ew <= TOL, `${what}: weights error ${ew}`);
  }
}

const BASE = { embedDim: 24, numHeads: 6, numKvHeads: 2, headDim: 8 };
const yarn = ropeFromHfConfig({ headDim: 8, ropeTheta: 100, maxPositionEmbeddings: 64, ropeScaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 16 } });
const llama3 = ropeFromHfConfig({ headDim: 8, ropeTheta: 5000, ropeScaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } });
const linear = ropeFromHfConfig({ headDim: 8, ropeScaling: { rope_type: 'linear', factor: 3 } });

// [name, config, shape, options]: opset 23 Attention
const ATTENTION_CASES = [
  ['MHA', { embedDim: 16, numHeads: 4 }],
  ['GQA 6/2, headDim 8', BASE],
  ['MQA, headDim 16', { embedDim: 24, numHeads: 4, numKvHeads: 1, headDim: 16 }],
  ['no biases', { ...BASE, bias: false }],
  ['qkv bias, no out bias', { ...BASE, outBias: false }],
  ['cross-attention, kdim/vdim', { ...BASE, kdim: 7, vdim: 5 }, { Lq: 3, Lk: 6, past: false }],
  ['causal', BASE, {}, { isCausal: true }],
  ['causal decode, Lq < Lk (bottom-right)', BASE, { Lq: 2, Lk: 7 }, { isCausal: true }],
  ['scale', { ...BASE, scale: 0.8 }, {}, { isCausal: true }],
  ['softcap', { ...BASE, softcap: 0.3 }],
  ['softcap, causal, bool mask', { ...BASE, softcap: 0.5 }, {}, { isCausal: true, mask: 'bool' }],
  ['softcap, float mask', { ...BASE, softcap: 0.5 }, {}, { mask: 'float' }],
  ['bool mask [Lq, Lk]', BASE, {}, { mask: 'bool2d' }],
  ['key padding, causal', BASE, { Lq: 6 }, { isCausal: true, mask: 'padding' }],
  ['rope', { ...BASE, rope: {} }],
  ['rope interleaved, base 50', { ...BASE, rope: { interleaved: true, base: 50 } }, {}, { isCausal: true }],
  ['rope partial (dim 4)', { ...BASE, rope: { dim: 4 } }],
  ['rope partial interleaved, attentionFactor', { ...BASE, rope: { dim: 6, interleaved: true, attentionFactor: 1.3 } }],
  ['rope yarn (invFreq, attentionFactor)', { ...BASE, rope: yarn }, { Lq: 7 }, { isCausal: true }],
  ['rope llama3', { ...BASE, rope: llama3 }],
  ['rope linear', { ...BASE, rope: linear }],
  ['rope decode, Lq < Lk', { ...BASE, rope: { base: 30 } }, { Lq: 2, Lk: 7 }, { isCausal: true }],
  ['rope positionIds [B, Lq]', { ...BASE, rope: { base: 30 } }, {}, { positionIds: 'batch' }],
  ['rope positionIds [Lq], decode', { ...BASE, rope: { base: 30 } }, { Lq: 3, Lk: 7 }, { isCausal: true, positionIds: 'shared' }],
  ['qkNorm', { ...BASE, qkNorm: 'rms' }],
  ['qkNorm eps, rope', { ...BASE, qkNorm: 'rms', qkNormEps: 0.05, rope: { dim: 6 } }, {}, { isCausal: true }],
  ['all of Attention', { ...BASE, numKvHeads: 3, qkNorm: 'rms', rope: { interleaved: true }, softcap: 1.5, scale: 0.5 }, { Lq: 3, Lk: 6 }, { isCausal: true, mask: 'float', positionIds: 'batch' }],
];

function optionsFor(r, B, H, Lq, Lk, o) {
  const opts = { isCausal: !!o.isCausal };
  if (o.mask === 'bool' || o.mask === 'bool2d') {
    const n = o.mask === 'bool' ? B * H * Lq * Lk : Lq * Lk;
    opts.attnMask = Uint8Array.from({ length: n }, () => (r() < 0.3 ? 1 : 0));
    for (let t = 0; t < n / Lk; t++) opts.attnMask[t * Lk + Lk - 1] = 0;  // every row keeps its last key
    opts.maskBroadcast = o.mask === 'bool2d';
  } else if (o.mask === 'float') {
    opts.attnMask = Float32Array.from({ length: B * H * Lq * Lk }, () => 4 * r() - 2);
  } else if (o.mask === 'padding') {
    opts.keyPaddingMask = Uint8Array.from({ length: B * Lk }, (_, t) => (t % Lk !== 0 && r() < 0.4 ? 1 : 0));
  }
  if (o.positionIds === 'batch') opts.positionIds = BigInt64Array.from({ length: B * Lq }, () => BigInt(Math.floor(r() * 60)));
  if (o.positionIds === 'shared') opts.positionIds = Int32Array.from({ length: Lq }, () => Math.floor(r() * 60));
  return opts;
}

test(`${ORT}: opset 23 Attention, RotaryEmbedding, RMSNormalization against the reference`, { skip }, async () => {
  let seed = 500;
  for (const [name, cfg, shape = {}, o = {}] of ATTENTION_CASES) {
    const B = shape.B ?? 2, Lq = shape.Lq ?? 5, Lk = shape.Lk ?? Lq;
    const opts = optionsFor(rng(seed * 3), B, cfg.numHeads, Lq, Lk, o);
    expectClose(await crossCheck(seed++, cfg, shape, opts), name);
  }
});

test(`${ORT}: ALiBi as an additive mask, a non-causal sliding window as a boolean mask`, { skip }, async () => {
  for (const [name, cfg, shape, opts] of [
    ['alibi', { ...BASE, alibi: true }, {}, {}],
    ['alibi, causal, softcap', { ...BASE, alibi: true, softcap: 0.7 }, { Lq: 6 }, { isCausal: true }],
    ['alibi explicit slopes, decode', { ...BASE, alibi: [0.5, 0.1, 1, 0.25, 2, 0] }, { Lq: 2, Lk: 7 }, { isCausal: true }],
    ['sliding window 3, not causal', { ...BASE, slidingWindow: 3 }, { Lq: 7 }, {}],
    ['sliding window 2, alibi, rope, decode', { ...BASE, slidingWindow: 2, alibi: true, rope: {} }, { Lq: 3, Lk: 6 }, {}],
  ]) {
    const c = resolveConfig(cfg);
    expectClose(await crossCheck(name.length, cfg, shape, opts, { alibiAsMask: c.slopes, windowAsMask: cfg.slidingWindow != null }), name);
  }
});

test(`${ORT}: GroupQueryAttention local_window_size, head_sink, softcap`, { skip }, async () => {
  for (const [name, cfg, shape] of [
    ['causal', BASE, { op: 'GQA' }],
    ['window 1', { ...BASE, slidingWindow: 1 }, { op: 'GQA', Lq: 6 }],
    ['window 3', { ...BASE, slidingWindow: 3 }, { op: 'GQA', Lq: 8 }],
    ['window 3, decode of 2 (batch 1)', { ...BASE, slidingWindow: 3 }, { op: 'GQA', B: 1, Lq: 2, Lk: 8 }],
    ['window 4, decode of 1', { ...BASE, slidingWindow: 4 }, { op: 'GQA', Lq: 1, Lk: 8 }],
    ['sinks', BASE, { op: 'GQA', withSinks: true }],
    ['sinks, decode of 1', BASE, { op: 'GQA', Lq: 1, Lk: 6, withSinks: true }],
    ['softcap', { ...BASE, softcap: 0.4 }, { op: 'GQA' }],
    ['MQA, window, sinks, softcap, rope, qkNorm', { ...BASE, numKvHeads: 1, slidingWindow: 3, softcap: 0.9, rope: { dim: 6 }, qkNorm: 'rms' }, { op: 'GQA', Lq: 7, withSinks: true }],
    ['window, sinks, rope, decode (batch 1)', { ...BASE, slidingWindow: 4, rope: { interleaved: true } }, { op: 'GQA', B: 1, Lq: 3, Lk: 9, withSinks: true }],
  ]) expectClose(await crossCheck(name.length * 7, cfg, shape, { isCausal: true }), `GQA ${name}`);
});

test(`${ORT}: fully masked rows are zeros in both`, { skip }, async () => {
  const B = 2, H = BASE.numHeads, Lq = 4, Lk = 4;
  const attnMask = new Uint8Array(B * H * Lq * Lk);
  attnMask.fill(1, 0, Lk);  // batch 0, head 0, query 0
  attnMask.fill(1, (H + 2) * Lq * Lk + Lk, (H + 2) * Lq * Lk + 2 * Lk);  // batch 1, head 2, query 1
  const res = await crossCheck(3, { ...BASE, rope: {} }, { Lq }, { attnMask });
  expectClose(res, 'fully masked rows');
  assert.deepEqual([...res.out.w.subarray(0, Lk)], [0, 0, 0, 0]);
});

test(`${ORT}: the check has teeth (a changed option is caught)`, { skip }, async () => {
  // the same ORT graph against a reference configured one step off: each must fail the tolerance
  const off = async (cfg, wrong, shape, opts) => {
    const { out, w } = await crossCheck(42, cfg, shape, opts);
    const r = rng(42);
    const c = resolveConfig(cfg);
    modernWeights(r, cfg, { withSinks: !!shape.withSinks });  // replay the case's random stream
    const B = shape.B ?? 2, Lq = shape.Lq ?? 5, Lk = shape.Lk ?? Lq;
    const query = uniform(r, B * Lq * c.E, -1, 1);
    const cross = Lq !== Lk, key = cross ? uniform(r, B * Lk * c.kdim, -1, 1) : query, value = cross ? uniform(r, B * Lk * c.vdim, -1, 1) : query;
    const bad = modernAttentionReference(wrong.cfg ?? cfg, wrong.w ? wrong.w(w) : w, B, Lq, Lk, query, key, value, wrong.opts ?? opts);
    return relErr(out.y, bad.output);
  };
  const cases = [
    ['rope halves vs interleaved', { ...BASE, rope: {} }, { cfg: { ...BASE, rope: { interleaved: true } } }, {}, {}],
    ['partial rotary dim', { ...BASE, rope: { dim: 4 } }, { cfg: { ...BASE, rope: { dim: 6 } } }, {}, {}],
    ['causal top-left instead of bottom-right', BASE, { opts: { attnMask: Uint8Array.from({ length: 2 * 7 }, (_, t) => (t % 7 > Math.floor(t / 7) ? 1 : 0)), maskBroadcast: true } }, { Lq: 2, Lk: 7 }, { isCausal: true }],
    ['window off by one', { ...BASE, slidingWindow: 3 }, { cfg: { ...BASE, slidingWindow: 4 } }, { op: 'GQA', Lq: 8 }, { isCausal: true }],
    ['sinks left out', BASE, { w: (w) => ({ ...w, sinks: undefined }) }, { op: 'GQA', withSinks: true }, { isCausal: true }],
    ['KV head h % Hkv instead of floor(h / group)', BASE, { w: (w) => permuteQHeads(w, BASE) }, {}, {}],
    ['qkNorm eps', { ...BASE, qkNorm: 'rms', qkNormEps: 0.5 }, { cfg: { ...BASE, qkNorm: 'rms', qkNormEps: 1e-6 } }, {}, {}],
  ];
  for (const [name, cfg, wrong, shape, opts] of cases) {
    const e = await off(cfg, wrong, shape, opts);
    assert.ok(e > 1e-3, `${name}: only ${e} apart`);
  }
});

/** The query heads reordered so that head h would read KV head h % Hkv: what a wrong grouping computes. */
function permuteQHeads(w, cfg) {
  const { H, Hkv, D, E } = resolveConfig(cfg), group = H / Hkv;
  const qw = new Float32Array(w.qProjWeight.length), qb = new Float32Array(w.qProjBias.length), ow = new Float32Array(w.outProjWeight.length);
  for (let h = 0; h < H; h++) {
    const src = (h % group) * Hkv + Math.floor(h / group);  // src % Hkv == floor(h / group): the KV head h reads
    qw.set(w.qProjWeight.subarray(src * D * E, (src + 1) * D * E), h * D * E);
    qb.set(w.qProjBias.subarray(src * D, (src + 1) * D), h * D);
    for (let e = 0; e < E; e++) for (let d = 0; d < D; d++) ow[e * H * D + h * D + d] = w.outProjWeight[e * H * D + src * D + d];
  }
  return { ...w, qProjWeight: qw, qProjBias: qb, outProjWeight: ow };
}

test(`${ORT}: RMSNormalization and RotaryEmbedding alone, and the feed-forward block`, { skip }, async () => {
  const r = rng(17);
  const M = 7, N = 24, x = uniform(r, M * N, -3, 3), w = uniform(r, N, 0.5, 1.5);
  for (const [eps, weightOffset] of [[FLOAT32_EPS, 0], [1e-6, 1], [1e-2, 0]]) {
    const ref = rmsNormReference(x, M, N, w, { eps, weightOffset });
    const out = await runModel(ort, rmsNormModel(kit, M, N, Float32Array.from(w, (t) => t + weightOffset), eps), { x: [x, [M, N]] });
    assert.ok(relErr(out.y, ref) <= TOL, `RMSNorm eps ${eps}, offset ${weightOffset}`);
  }
  for (const [dim, interleaved, rope] of [[16, false, {}], [16, true, { base: 300 }], [8, false, { base: 30 }], [6, true, { attentionFactor: 0.8 }],
    [16, false, ropeFromHfConfig({ headDim: 16, ropeTheta: 500, maxPositionEmbeddings: 256, ropeScaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 64, truncate: false } })]]) {
    const B = 2, heads = 3, L = 5, D = 16;
    const xr = uniform(r, B * heads * L * D, -1, 1);
    const positions = BigInt64Array.from({ length: B * L }, () => BigInt(Math.floor(r() * 100)));
    const full = { ...rope, dim, interleaved };
    const ref = applyRotaryReference(xr, B * heads * L, D, (row) => Number(positions[Math.floor(row / (heads * L)) * L + (row % L)]), full);
    const invFreq = full.invFreq ?? Float64Array.from({ length: dim / 2 }, (_, c) => (full.base ?? 10000) ** (-(2 * c) / dim));
    const { cos, sin } = rotaryCaches(invFreq, 100, full.attentionFactor ?? 1);
    const out = await runModel(ort, rotaryModel(kit, { B, heads, L, D, dim, interleaved, cos, sin, positions }), { x: [xr, [B, heads, L, D]] });
    assert.ok(relErr(out.y, ref) <= TOL, `rotary dim ${dim}, interleaved ${interleaved}`);
  }
  for (const activation of ['relu', 'gelu', 'gelu_tanh', 'silu'])
    for (const gated of [false, true]) {
      const E = 12, F = 20;
      const fw = { upProjWeight: uniform(r, F * E, -1, 1), downProjWeight: uniform(r, E * F, -1, 1), upProjBias: uniform(r, F, -1, 1), downProjBias: uniform(r, E, -1, 1) };
      if (gated) Object.assign(fw, { gateProjWeight: uniform(r, F * E, -1, 1), gateProjBias: uniform(r, F, -1, 1) });
      const xf = uniform(r, 6 * E, -2, 2), cfg = { embedDim: E, hiddenDim: F, activation, gated };
      const out = await runModel(ort, feedForwardModel(kit, cfg, fw, 6), { x: [xf, [6, E]] });
      assert.ok(relErr(out.y, feedForwardReference(cfg, fw, 6, xf)) <= TOL, `feed-forward ${activation}, gated ${gated}`);
    }
});
