// The float64 reference of the modern attention options (reference-modern.mjs) checked
// on its own, before anything is compared with it: against a second formulation written
// differently (matrices with HF's repeat_kv expansion, rotary as complex multiplication,
// softmax through log-sum-exp with the sink as an extra column), against the MHA
// reference it must reduce to, against values fixed by hand (ALiBi slopes, activations,
// the rope_scaling ramps) and against properties of the math (rotary depends on relative
// positions only, a cached decode step is the last row of the full causal call).
// The cross-check against onnxruntime-node is reference-modern-ort.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mhaReference, relErr, rng, uniform } from './reference.mjs';
import {
  ACTIVATIONS, FLOAT32_EPS, alibiSlopes, applyRotaryReference, feedForwardReference, modernAttentionReference, modernWeights,
  resolveConfig, rmsNormReference, ropeDefault, ropeFromHfConfig, ropeLinear, ropeLlama3, ropeYarn,
} from './reference-modern.mjs';

const TIGHT = 1e-12;  // two float64 formulations of the same math

// ---------------------------------------------------------------------------------
// The second formulation: whole matrices, nested arrays, nothing shared with the reference

const zeros = (r, c) => Array.from({ length: r }, () => new Array(c).fill(0));
/** x [rows, K] (flat) times W^T (W [N, K], PyTorch layout) plus bias -> nested [rows][N]. */
function dense(x, rows, K, W, N, bias) {
  const y = zeros(rows, N);
  for (let i = 0; i < rows; i++) for (let n = 0; n < N; n++) {
    let s = 0;
    for (let k = 0; k < K; k++) s += W[n * K + k] * x[i * K + k];
    y[i][n] = s + (bias ? bias[n] : 0);
  }
  return y;
}
/** [B*L][n*D] -> [B][n][L][D] */
function splitHeads(y, B, L, n, D) {
  return Array.from({ length: B }, (_, b) => Array.from({ length: n }, (_, h) => Array.from({ length: L }, (_, t) => y[b * L + t].slice(h * D, (h + 1) * D))));
}
/** HF repeat_kv: [B][Hkv][L][D] -> [B][Hkv*rep][L][D], KV head g repeated rep times in a row. */
const repeatKv = (x, rep) => x.map((heads) => heads.flatMap((head) => Array.from({ length: rep }, () => head)));
function rmsRow(v, w, eps) {
  const norm = Math.hypot(...v), rms = Math.sqrt((norm * norm) / v.length + eps);
  return v.map((t, i) => (t / rms) * (w ? w[i] : 1));
}
/** Rotary as complex multiplication: pair c is the complex number (re, im), times af * e^{i pos f_c}. */
function rotateComplex(v, pos, rope) {
  const out = v.slice(), half = rope.dim / 2;
  const invFreq = rope.invFreq ?? Array.from({ length: half }, (_, c) => (rope.base ?? 10000) ** (-(2 * c) / rope.dim));
  const af = rope.attentionFactor ?? 1;
  for (let c = 0; c < half; c++) {
    const [ia, ib] = rope.interleaved ? [2 * c, 2 * c + 1] : [c, c + half];
    const re = v[ia], im = v[ib];
    const wr = af * Math.cos(pos * invFreq[c]), wi = af * Math.sin(pos * invFreq[c]);
    out[ia] = re * wr - im * wi;
    out[ib] = re * wi + im * wr;
  }
  return out;
}

function matrixFormAttention(cfg, w, B, Lq, Lk, query, key, value, opts = {}) {
  const E = cfg.embedDim, H = cfg.numHeads, Hkv = cfg.numKvHeads ?? H, D = cfg.headDim ?? E / H;
  const kdim = cfg.kdim ?? E, vdim = cfg.vdim ?? E, bias = cfg.bias ?? true;
  const qkvBias = cfg.qkvBias ?? bias, outBias = cfg.outBias ?? bias;
  const scale = cfg.scale ?? D ** -0.5;
  const slopes = cfg.alibi === true ? alibiSlopes(H) : cfg.alibi ?? null;
  let Q = splitHeads(dense(query, B * Lq, E, w.qProjWeight, H * D, qkvBias && w.qProjBias), B, Lq, H, D);
  let K = splitHeads(dense(key, B * Lk, kdim, w.kProjWeight, Hkv * D, qkvBias && w.kProjBias), B, Lk, Hkv, D);
  let V = splitHeads(dense(value, B * Lk, vdim, w.vProjWeight, Hkv * D, qkvBias && w.vProjBias), B, Lk, Hkv, D);
  if (cfg.qkNorm === 'rms') {
    const eps = cfg.qkNormEps ?? 1e-6;
    Q = Q.map((bq) => bq.map((hq) => hq.map((v) => rmsRow(v, w.qNormWeight, eps))));
    K = K.map((bk) => bk.map((hk) => hk.map((v) => rmsRow(v, w.kNormWeight, eps))));
  }
  // positions: rotary from positionIds (new tokens) else the defaults; masks use the defaults
  const pid = (b, i) => (opts.positionIds.length === Lq ? opts.positionIds[i] : opts.positionIds[b * Lq + i]);
  const qRot = (b, i) => (opts.positionIds ? Number(pid(b, i)) : Lk - Lq + i);
  const kRot = (b, j) => (opts.positionIds && j >= Lk - Lq ? Number(pid(b, j - (Lk - Lq))) : j);
  if (cfg.rope) {
    const rope = { dim: D, ...cfg.rope };
    Q = Q.map((bq, b) => bq.map((hq) => hq.map((v, i) => rotateComplex(v, qRot(b, i), rope))));
    K = K.map((bk, b) => bk.map((hk) => hk.map((v, j) => rotateComplex(v, kRot(b, j), rope))));
  }
  K = repeatKv(K, H / Hkv);
  V = repeatKv(V, H / Hkv);
  const heads = zeros(B * Lq, H * D);
  const weights = zeros(B * H * Lq, Lk);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) {
    // the full score matrix, then the additive bias matrix, then the visibility matrix
    const S = Q[b][h].map((qi) => K[b][h].map((kj) => qi.reduce((s, t, d) => s + t * kj[d], 0) * scale));
    if (cfg.softcap) for (const row of S) row.forEach((s, j) => { row[j] = cfg.softcap * Math.tanh(s / cfg.softcap); });
    for (let i = 0; i < Lq; i++) for (let j = 0; j < Lk; j++) {
      const qp = Lk - Lq + i;
      const mi = opts.maskBroadcast ? i * Lk + j : ((b * H + h) * Lq + i) * Lk + j;
      const floatMask = opts.attnMask instanceof Float32Array ? opts.attnMask[mi] : 0;
      S[i][j] += (slopes ? -slopes[h] * Math.abs(qp - j) : 0) + floatMask;
      const visible = !(opts.attnMask instanceof Uint8Array && opts.attnMask[mi]) && !(opts.keyPaddingMask && opts.keyPaddingMask[b * Lk + j]) &&
        !(opts.isCausal && j > qp) && !(cfg.slidingWindow && Math.abs(qp - j) >= cfg.slidingWindow) && S[i][j] !== -Infinity;
      if (!visible) S[i][j] = null;
    }
    for (let i = 0; i < Lq; i++) {
      const logits = S[i].filter((s) => s !== null);
      if (logits.length === 0) continue;  // the package's rule: no key, no attention
      if (w.sinks) logits.push(w.sinks[h]);
      const top = Math.max(...logits);
      const lse = top + Math.log(logits.reduce((s, x) => s + Math.exp(x - top), 0));
      const p = S[i].map((s) => (s === null ? 0 : Math.exp(s - lse)));
      weights[(b * H + h) * Lq + i] = p;
      for (let d = 0; d < D; d++) heads[b * Lq + i][h * D + d] = p.reduce((s, pj, j) => s + pj * V[b][h][j][d], 0);
    }
  }
  const out = dense(heads.flat(), B * Lq, H * D, w.outProjWeight, E, outBias && w.outProjBias);
  return { output: Float64Array.from(out.flat()), weights: Float64Array.from(weights.flat()) };
}

// ---------------------------------------------------------------------------------
// seeded cases

function makeCase(seed, cfg, { B = 2, Lq = 5, Lk = Lq, cross = Lq !== Lk, withSinks = false } = {}) {
  const r = rng(seed);
  const c = resolveConfig(cfg);
  const w = modernWeights(r, cfg, { withSinks });
  const query = uniform(r, B * Lq * c.E, -1, 1);
  const key = cross ? uniform(r, B * Lk * c.kdim, -1, 1) : query;
  const value = cross ? uniform(r, B * Lk * c.vdim, -1, 1) : query;
  return { r, c, w, B, Lq, Lk, query, key, value };
}

function randomMasks(r, kind, B, H, Lq, Lk) {
  if (kind === 'bool') return { attnMask: Uint8Array.from({ length: B * H * Lq * Lk }, () => (r() < 0.3 ? 1 : 0)) };
  if (kind === 'bool2d') return { attnMask: Uint8Array.from({ length: Lq * Lk }, () => (r() < 0.3 ? 1 : 0)), maskBroadcast: true };
  if (kind === 'float') return { attnMask: Float32Array.from({ length: B * H * Lq * Lk }, () => (r() < 0.15 ? -Infinity : 4 * r() - 2)) };
  if (kind === 'padding') return { keyPaddingMask: Uint8Array.from({ length: B * Lk }, () => (r() < 0.3 ? 1 : 0)) };
  return {};
}

const BASE = { embedDim: 24, numHeads: 6, numKvHeads: 2, headDim: 8 };
const CASES = [
  ['MHA, headDim = E/H', { embedDim: 16, numHeads: 4 }],
  ['GQA 6/2, headDim 8 (H*D != E)', BASE],
  ['MQA', { ...BASE, numKvHeads: 1 }],
  ['no biases', { ...BASE, bias: false }],
  ['qkv bias only', { ...BASE, qkvBias: true, outBias: false }],
  ['cross-attention kdim/vdim', { ...BASE, kdim: 7, vdim: 5 }, { Lq: 3, Lk: 6 }],
  ['scale', { ...BASE, scale: 0.9 }],
  ['softcap', { ...BASE, softcap: 0.4 }],
  ['rope', { ...BASE, rope: {} }],
  ['rope interleaved, base 100', { ...BASE, rope: { interleaved: true, base: 100 } }],
  ['rope partial', { ...BASE, rope: { dim: 4 } }],
  ['rope partial interleaved, attentionFactor', { ...BASE, rope: { dim: 6, interleaved: true, attentionFactor: 1.2 } }],
  ['rope invFreq (yarn)', { ...BASE, rope: { ...ropeFromHfConfig({ headDim: 8, ropeTheta: 50, maxPositionEmbeddings: 64, ropeScaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 16 } }) } }],
  ['rope, Lq < Lk', { ...BASE, rope: { base: 30 } }, { Lq: 2, Lk: 7 }],
  ['alibi', { ...BASE, alibi: true }],
  ['alibi, explicit slopes, Lq < Lk', { ...BASE, alibi: [0.5, 0.1, 1, 0.25, 2, 0] }, { Lq: 3, Lk: 6 }],
  ['sliding window 3', { ...BASE, slidingWindow: 3 }, { Lq: 7 }],
  ['sinks', BASE, { withSinks: true }],
  ['qkNorm', { ...BASE, qkNorm: 'rms' }],
  ['qkNorm eps, rope', { ...BASE, qkNorm: 'rms', qkNormEps: 0.1, rope: {} }],
  ['everything', { ...BASE, rope: { dim: 6 }, alibi: true, slidingWindow: 4, softcap: 0.8, scale: 0.3, qkNorm: 'rms' }, { Lq: 6, withSinks: true }],
  ['everything, Lq < Lk', { ...BASE, rope: { interleaved: true }, alibi: true, slidingWindow: 3, softcap: 2, qkNorm: 'rms' }, { Lq: 2, Lk: 8, withSinks: true }],
];

test('the reference agrees with the matrix formulation (repeat_kv, complex rotary, log-sum-exp sinks)', () => {
  let n = 0;
  for (const [name, cfg, shape = {}] of CASES)
    for (const masks of ['none', 'bool', 'bool2d', 'float', 'padding'])
      for (const isCausal of [false, true]) {
        const seed = 1000 + n++;
        const k = makeCase(seed, cfg, shape);
        const opts = { ...randomMasks(k.r, masks, k.B, k.c.H, k.Lq, k.Lk), isCausal, needWeights: true, averageWeights: false };
        const ref = modernAttentionReference(cfg, k.w, k.B, k.Lq, k.Lk, k.query, k.key, k.value, opts);
        const alt = matrixFormAttention(cfg, k.w, k.B, k.Lq, k.Lk, k.query, k.key, k.value, opts);
        assert.ok(relErr(ref.output, alt.output) < TIGHT, `${name}, ${masks}, causal ${isCausal}: output ${relErr(ref.output, alt.output)}`);
        assert.ok(relErr(ref.weights, alt.weights) < TIGHT, `${name}, ${masks}, causal ${isCausal}: weights`);
        for (const v of ref.output) assert.ok(Number.isFinite(v), `${name}: finite`);
      }
});

test('positionIds: [B, Lq] and [Lq] rotate the new tokens only, and agree with the matrix formulation', () => {
  const cfg = { ...BASE, rope: { base: 20 } };
  for (const [Lq, Lk] of [[5, 5], [2, 6]]) {
    const k = makeCase(77 + Lq, cfg, { Lq, Lk });
    const perBatch = BigInt64Array.from({ length: k.B * Lq }, () => BigInt(Math.floor(k.r() * 50)));
    const shared = Int32Array.from({ length: Lq }, () => Math.floor(k.r() * 50));
    for (const positionIds of [perBatch, shared]) {
      const ref = modernAttentionReference(cfg, k.w, k.B, Lq, Lk, k.query, k.key, k.value, { positionIds });
      const alt = matrixFormAttention(cfg, k.w, k.B, Lq, Lk, k.query, k.key, k.value, { positionIds });
      assert.ok(relErr(ref.output, alt.output) < TIGHT);
    }
    // positionIds equal to the defaults change nothing
    const defaults = Int32Array.from({ length: Lq }, (_, i) => Lk - Lq + i);
    const a = modernAttentionReference(cfg, k.w, k.B, Lq, Lk, k.query, k.key, k.value, {});
    const b = modernAttentionReference(cfg, k.w, k.B, Lq, Lk, k.query, k.key, k.value, { positionIds: defaults });
    assert.ok(relErr(a.output, b.output) < TIGHT);
  }
  // shifting every rotary position by the same amount changes nothing (self-attention)
  const k = makeCase(91, cfg, { Lq: 6 });
  const shifted = Int32Array.from({ length: 6 }, (_, i) => 1000 + i);
  const a = modernAttentionReference(cfg, k.w, k.B, 6, 6, k.query, k.key, k.value, { isCausal: true });
  const b = modernAttentionReference(cfg, k.w, k.B, 6, 6, k.query, k.key, k.value, { isCausal: true, positionIds: shifted });
  assert.ok(relErr(a.output, b.output) < 1e-9);
  // ...but rotating only some of them does
  const c = modernAttentionReference(cfg, k.w, k.B, 6, 6, k.query, k.key, k.value, { isCausal: true, positionIds: Int32Array.of(0, 1, 2, 3, 4, 9) });
  assert.ok(relErr(a.output, c.output) > 1e-3);
});

test('without the new options the reference is the MHA reference (inProjWeight stacked rows)', () => {
  for (const [E, H, bias] of [[16, 4, true], [12, 3, false], [8, 1, true]]) {
    const r = rng(E * 31 + H);
    const s = 1 / Math.sqrt(E);
    const w = { inProjWeight: uniform(r, 3 * E * E, -s, s), outProjWeight: uniform(r, E * E, -s, s) };
    if (bias) Object.assign(w, { inProjBias: uniform(r, 3 * E, -s, s), outProjBias: uniform(r, E, -s, s) });
    const B = 2, Lq = 4, Lk = 6;
    const q = uniform(r, B * Lq * E, -1, 1), kv = uniform(r, B * Lk * E, -1, 1);
    const mask = Uint8Array.from({ length: Lq * Lk }, () => (r() < 0.3 ? 1 : 0));
    const opts = { attnMask: mask, maskBroadcast: true, isCausal: true, needWeights: true };
    const a = modernAttentionReference({ embedDim: E, numHeads: H, bias }, w, B, Lq, Lk, q, kv, kv, opts);
    const b = mhaReference({ E, H, kdim: E, vdim: E, bias }, w, B, Lq, Lk, q, kv, kv, opts);
    assert.ok(relErr(a.output, b.output) < TIGHT);
    assert.ok(relErr(a.weights, b.weights) < TIGHT);
  }
});

test('a cached decode step is the last row of the full causal call (rope, alibi, window, sinks)', () => {
  const cfg = { ...BASE, rope: { dim: 6 }, alibi: true, slidingWindow: 3, qkNorm: 'rms' };
  const L = 7;
  const k = makeCase(5, cfg, { Lq: L, withSinks: true });
  const E = k.c.E;
  const full = modernAttentionReference(cfg, k.w, k.B, L, L, k.query, k.query, k.query, { isCausal: true });
  for (const Lq of [1, 3]) {
    // the last Lq tokens as queries, every token as keys
    const last = new Float32Array(k.B * Lq * E);
    for (let b = 0; b < k.B; b++) last.set(k.query.subarray((b * L + L - Lq) * E, (b * L + L) * E), b * Lq * E);
    const step = modernAttentionReference(cfg, k.w, k.B, Lq, L, last, k.query, k.query, { isCausal: true });
    const expected = new Float64Array(k.B * Lq * E);
    for (let b = 0; b < k.B; b++) expected.set(full.output.subarray((b * L + L - Lq) * E, (b * L + L) * E), b * Lq * E);
    assert.ok(relErr(step.output, expected) < TIGHT, `Lq ${Lq}`);
  }
});

test('limits of the options: huge window and softcap, -Infinity sinks, one-key windows', () => {
  const k = makeCase(8, BASE, { Lq: 6 });
  const run = (cfg, opts = {}, w = k.w) => modernAttentionReference(cfg, w, k.B, 6, 6, k.query, k.key, k.value, { needWeights: true, averageWeights: false, ...opts });
  const plain = run(BASE);
  assert.ok(relErr(run({ ...BASE, slidingWindow: 6 }).output, plain.output) < TIGHT, 'a window as long as the keys');
  assert.ok(relErr(run({ ...BASE, softcap: 1e7 }).output, plain.output) < 1e-9, 'a huge softcap');
  assert.ok(relErr(run(BASE, {}, { ...k.w, sinks: new Float32Array(6).fill(-Infinity) }).output, plain.output) < TIGHT, '-Infinity sinks');
  assert.ok(relErr(run({ ...BASE, alibi: new Float32Array(6) }).output, plain.output) < TIGHT, 'zero slopes');
  // window 1: each query sees only the key at its own position
  const one = run({ ...BASE, slidingWindow: 1 });
  for (let t = 0; t < k.B * 6 * 6; t++) for (let j = 0; j < 6; j++) assert.equal(one.weights[t * 6 + j], j === t % 6 ? 1 : 0);
  // causal + window W: the last W positions, itself included
  const w3 = run({ ...BASE, slidingWindow: 3 }, { isCausal: true });
  for (let i = 0; i < 6; i++) for (let j = 0; j < 6; j++) assert.equal(w3.weights[i * 6 + j] > 0, j <= i && j > i - 3, `(${i}, ${j})`);
  // sinks take weight: rows sum to less than 1, and a huge sink leaves only the output bias
  const sunk = run(BASE, {}, { ...k.w, sinks: new Float32Array(6).fill(0.5) });
  for (let t = 0; t < k.B * 6 * 6; t++) {
    const sum = sunk.weights.subarray(t * 6, t * 6 + 6).reduce((a, b) => a + b, 0);
    assert.ok(sum < 1 && sum > 0, `row ${t} sums to ${sum}`);
  }
  const drowned = run(BASE, {}, { ...k.w, sinks: new Float32Array(6).fill(800) });
  for (let t = 0; t < k.B * 6; t++) for (let e = 0; e < k.c.E; e++) assert.ok(Math.abs(drowned.output[t * k.c.E + e] - k.w.outProjBias[e]) < 1e-12);
});

test('a row with every key masked gives zero attention and zero weights, with sinks and every option too', () => {
  const cfg = { ...BASE, rope: {}, alibi: true, softcap: 1, qkNorm: 'rms' };
  const k = makeCase(9, cfg, { Lq: 4, withSinks: true });
  const mask = new Uint8Array(k.B * k.c.H * 4 * 4);
  mask.fill(1, 0, 4);  // batch 0, head 0, query 0
  const padding = new Uint8Array(k.B * 4);
  padding.fill(1, 4, 8);  // batch 1: every key
  const res = modernAttentionReference(cfg, k.w, k.B, 4, 4, k.query, k.key, k.value, { attnMask: mask, keyPaddingMask: padding, needWeights: true, averageWeights: false });
  assert.deepEqual([...res.weights.subarray(0, 4)], [0, 0, 0, 0]);
  for (let t = k.c.H * 16; t < 2 * k.c.H * 16; t++) assert.equal(res.weights[t], 0);
  for (let t = 4; t < 8; t++) for (let e = 0; e < k.c.E; e++) assert.equal(res.output[t * k.c.E + e], k.w.outProjBias[e]);  // batch 1 rows
  for (const v of res.output) assert.ok(Number.isFinite(v));
});

// ---------------------------------------------------------------------------------
// ALiBi, rope_scaling, rotary, RMSNorm, feed-forward

test('ALiBi slopes: the paper for powers of two, BLOOM for the others', () => {
  // as powers of two (the rule computes base ** p: equal to a few ulp)
  const same = (H, ...exponents) => {
    const s = alibiSlopes(H);
    assert.equal(s.length, H);
    exponents.forEach((e, h) => assert.ok(Math.abs(s[h] / 2 ** e - 1) < 1e-14, `H ${H}, head ${h}: ${s[h]} != 2^${e}`));
  };
  same(1, -8);
  same(2, -4, -8);
  same(4, -2, -4, -6, -8);
  same(8, -1, -2, -3, -4, -5, -6, -7, -8);
  same(6, -2, -4, -6, -8, -1, -3);
  same(12, -1, -2, -3, -4, -5, -6, -7, -8, -0.5, -1.5, -2.5, -3.5);
  same(16, ...Array.from({ length: 16 }, (_, h) => -(h + 1) / 2));
  same(24, ...Array.from({ length: 16 }, (_, h) => -(h + 1) / 2), -0.25, -0.75, -1.25, -1.75, -2.25, -2.75, -3.25, -3.75);
});

test('rope_scaling: default, linear, llama3, yarn (HF modeling_rope_utils)', () => {
  const close = (a, b, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} != ${b}`);
  const d = ropeDefault({ dim: 8, base: 10000 });
  [1, 0.1, 0.01, 0.001].forEach((f, i) => close(d.invFreq[i], f));
  ropeLinear({ dim: 8, base: 10000, factor: 4 }).invFreq.forEach((f, i) => close(f, d.invFreq[i] / 4));

  // Llama 3.1: factor 8, low 1, high 4, original context 8192, theta 500000, head 128
  const l3 = { dim: 128, base: 500000, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };
  const plain = ropeDefault(l3).invFreq, scaled = ropeLlama3(l3).invFreq;
  let kept = 0, divided = 0, smoothed = 0;
  for (let i = 0; i < 64; i++) {
    const wavelen = (2 * Math.PI) / plain[i];
    if (wavelen < 8192 / 4) { close(scaled[i], plain[i]); kept++; }
    else if (wavelen > 8192) { close(scaled[i], plain[i] / 8); divided++; }
    else {
      const s = (8192 / wavelen - 1) / 3;  // from 0 at wavelen 8192 to 1 at 2048
      assert.ok(s >= 0 && s <= 1);
      close(scaled[i], plain[i] * (s + (1 - s) / 8));
      smoothed++;
    }
  }
  assert.ok(kept > 0 && divided > 0 && smoothed > 0, `${kept} ${divided} ${smoothed}`);
  // by hand: wavelen = 2 pi 500000^(i/64) < 2048 for i <= 28, > 8192 for i >= 35
  assert.deepEqual([kept, smoothed, divided], [29, 6, 29]);

  // YaRN, head 128, base 10000, original 4096, beta 32/1: the ramp runs over dims 20..46
  const y = ropeYarn({ dim: 128, base: 10000, factor: 4, originalMaxPositionEmbeddings: 4096 });
  const p = ropeDefault({ dim: 128, base: 10000 }).invFreq;
  close(y.attentionFactor, 0.1 * Math.log(4) + 1);
  for (let i = 0; i <= 20; i++) close(y.invFreq[i], p[i]);
  for (let i = 46; i < 64; i++) close(y.invFreq[i], p[i] / 4);
  close(y.invFreq[33], p[33] * 0.5 + (p[33] / 4) * 0.5);  // ramp (33 - 20) / 26 = 1/2
  // truncate false (GPT-OSS) moves the ends of the ramp off the integers
  const yt = ropeYarn({ dim: 128, base: 10000, factor: 4, originalMaxPositionEmbeddings: 4096, truncate: false });
  // (unrounded ends 20.94 and 45.03: dim 21 has ramp 0.0025 instead of 1/26)
  close(yt.invFreq[20], p[20]);
  const rampAt21 = (21 - 128 * Math.log(4096 / (64 * Math.PI)) / (2 * Math.log(10000))) / ((128 * Math.log(4096 / (2 * Math.PI)) - 128 * Math.log(4096 / (64 * Math.PI))) / (2 * Math.log(10000)));
  close(yt.invFreq[21], p[21] * (1 - rampAt21) + (p[21] / 4) * rampAt21);
  close(y.invFreq[21], p[21] * (25 / 26) + (p[21] / 4) / 26);
  // mscale / mscale_all_dim (DeepSeek): equal ones cancel; given attention_factor wins
  close(ropeYarn({ dim: 64, factor: 40, originalMaxPositionEmbeddings: 4096, mscale: 1, mscaleAllDim: 1 }).attentionFactor, 1);
  close(ropeYarn({ dim: 64, factor: 40, originalMaxPositionEmbeddings: 4096, mscale: 0.707, mscaleAllDim: 0.707 }).attentionFactor, 1);
  close(ropeYarn({ dim: 64, factor: 40, originalMaxPositionEmbeddings: 4096, attentionFactor: 0.5 }).attentionFactor, 0.5);
  close(ropeYarn({ dim: 64, factor: 1, originalMaxPositionEmbeddings: 4096 }).attentionFactor, 1);

  // from HF configs: partial_rotary_factor, rope_type / type, float32 invFreq
  const phi = ropeFromHfConfig({ headDim: 80, partialRotaryFactor: 0.4, ropeTheta: 10000 });
  assert.equal(phi.dim, 32);
  assert.ok(phi.invFreq instanceof Float32Array && phi.invFreq.length === 16);
  const llama = ropeFromHfConfig({ headDim: 128, ropeTheta: 500000, ropeScaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } });
  llama.invFreq.forEach((f, i) => close(f, Math.fround(scaled[i]), 0));
  const oldKey = ropeFromHfConfig({ headDim: 8, ropeScaling: { type: 'linear', factor: 2 } });
  close(oldKey.invFreq[1], Math.fround(0.1 / 2), 0);
  const gptOss = ropeFromHfConfig({ headDim: 64, ropeTheta: 150000, maxPositionEmbeddings: 131072, ropeScaling: { rope_type: 'yarn', factor: 32, beta_fast: 32, beta_slow: 1, original_max_position_embeddings: 4096, truncate: false } });
  close(gptOss.attentionFactor, 0.1 * Math.log(32) + 1);
  assert.throws(() => ropeFromHfConfig({ headDim: 8, ropeScaling: { rope_type: 'longrope' } }), /not covered/);
});

test('rotary: relative positions only, norms kept, interleaved = a permutation of halves, partial and attentionFactor', () => {
  const r = rng(21);
  const D = 12, rope = { dim: 8, base: 50 };
  const q = uniform(r, D, -1, 1), k = uniform(r, D, -1, 1);
  const at = (x, pos, o = rope) => applyRotaryReference(x, 1, D, () => pos, o);
  const dot = (a, b) => a.reduce((s, t, i) => s + t * b[i], 0);
  // q.k after rotation depends on m - n only
  for (const interleaved of [false, true]) {
    const o = { ...rope, interleaved };
    const d0 = dot(at(q, 7, o), at(k, 3, o));
    for (const shift of [1, 10, 1234]) assert.ok(Math.abs(dot(at(q, 7 + shift, o), at(k, 3 + shift, o)) - d0) < 1e-12);
    assert.ok(Math.abs(dot(at(q, 8, o), at(k, 3, o)) - d0) > 1e-6);
  }
  // position 0 is the identity; each rotated pair keeps its length; channels >= dim pass through
  assert.deepEqual([...at(q, 0)], [...q]);
  const y = at(q, 5);
  for (let c = 0; c < 4; c++) assert.ok(Math.abs(Math.hypot(y[c], y[c + 4]) - Math.hypot(q[c], q[c + 4])) < 1e-12);
  for (let c = 8; c < D; c++) assert.equal(y[c], q[c]);
  // interleaved is the halves version with channels permuted: (2c, 2c+1) <-> (c, c + dim/2)
  const perm = [0, 4, 1, 5, 2, 6, 3, 7, 8, 9, 10, 11];  // interleaved index -> halves index
  const qi = Float32Array.from(perm.map((h) => q[h]));
  const yi = at(qi, 5, { ...rope, interleaved: true });
  perm.forEach((h, i) => assert.ok(Math.abs(yi[i] - y[h]) < 1e-15));
  // attentionFactor scales the rotated channels only
  const ya = at(q, 5, { ...rope, attentionFactor: 1.5 });
  for (let c = 0; c < D; c++) assert.ok(Math.abs(ya[c] - (c < 8 ? 1.5 * y[c] : q[c])) < 1e-15);
  // invFreq replaces base^(-2i/dim)
  const given = { dim: 8, invFreq: Float32Array.of(1, 0.5, 0.25, 0.125) };
  const yg = at(q, 3, given);
  assert.ok(Math.abs(yg[1] - (q[1] * Math.cos(1.5) - q[5] * Math.sin(1.5))) < 1e-15);
  assert.throws(() => at(q, 1, { dim: 7 }), RangeError);
  assert.throws(() => at(q, 1, { dim: 14 }), RangeError);
});

test('RMSNorm: unit RMS, float32 epsilon by default, Gemma weight offset', () => {
  const r = rng(3);
  const M = 4, N = 10, x = uniform(r, M * N, -4, 4), w = uniform(r, N, 0.5, 1.5);
  const y = rmsNormReference(x, M, N, null, { eps: 0 });
  for (let i = 0; i < M; i++) {
    const ms = y.subarray(i * N, (i + 1) * N).reduce((s, t) => s + t * t, 0) / N;
    assert.ok(Math.abs(ms - 1) < 1e-12);
  }
  assert.equal(FLOAT32_EPS, 1.1920928955078125e-7);
  const z = new Float32Array(N);  // all-zero rows: 0 / sqrt(eps) = 0
  assert.deepEqual([...rmsNormReference(z, 1, N, w)], [...new Float64Array(N)]);
  const tiny = Float32Array.from({ length: N }, () => 1e-4);  // eps matters: t / sqrt(t^2 + 2^-23)
  const t = tiny[0];
  assert.ok(Math.abs(rmsNormReference(tiny, 1, N, null)[0] - t / Math.sqrt(t * t + FLOAT32_EPS)) < 1e-15);
  const g = rmsNormReference(x, M, N, w, { weightOffset: 1 }), h = rmsNormReference(x, M, N, Float64Array.from(w, (t) => 1 + t));
  assert.ok(relErr(g, h) < 1e-15);
  const e = rmsNormReference(x, M, N, w, { eps: 0.5 });
  for (let k = 0; k < N; k++) {
    const row = Array.from(x.subarray(0, N));
    assert.ok(Math.abs(e[k] - (x[k] * w[k]) / Math.sqrt(row.reduce((s, t) => s + t * t, 0) / N + 0.5)) < 1e-12);
  }
});

test('feed-forward: the activations at known points, plain and gated', () => {
  const close = (a, b) => assert.ok(Math.abs(a - b) < 1e-14, `${a} != ${b}`);
  close(ACTIVATIONS.gelu(1), 0.8413447460685429);
  close(ACTIVATIONS.gelu(-2), -0.04550026389635842);
  close(ACTIVATIONS.gelu_tanh(1), 0.8411919906082768);
  close(ACTIVATIONS.silu(1), 0.7310585786300049);
  close(ACTIVATIONS.silu(-3), -0.14227761953270035);
  close(ACTIVATIONS.relu(-2), 0);
  close(ACTIVATIONS.relu(1.5), 1.5);
  const r = rng(4);
  const M = 3, E = 5, F = 7, x = uniform(r, M * E, -1, 1);
  const w = { gateProjWeight: uniform(r, F * E, -1, 1), upProjWeight: uniform(r, F * E, -1, 1), downProjWeight: uniform(r, E * F, -1, 1), upProjBias: uniform(r, F, -1, 1), downProjBias: uniform(r, E, -1, 1) };
  for (const activation of Object.keys(ACTIVATIONS))
    for (const gated of [false, true]) {
      const y = feedForwardReference({ embedDim: E, hiddenDim: F, activation, gated }, w, M, x);
      const gate = dense(x, M, E, w.gateProjWeight, F), up = dense(x, M, E, w.upProjWeight, F, w.upProjBias);
      const hidden = up.map((row, i) => row.map((u, f) => (gated ? ACTIVATIONS[activation](gate[i][f]) * u : ACTIVATIONS[activation](u))));
      const expected = dense(Float64Array.from(hidden.flat()), M, F, w.downProjWeight, E, w.downProjBias);
      assert.ok(relErr(y, Float64Array.from(expected.flat())) < TIGHT, `${activation} gated ${gated}`);
    }
});
