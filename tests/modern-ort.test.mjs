// The wasm layer itself (not the float64 reference) against ONNX Runtime, an
// implementation written by someone else, on the seeded random cases of
// modern-cases.mjs, to 1e-4 (max |error| <= 1e-4 * max(1, max |ONNX Runtime|)), on both
// builds. Each case's layer is one ONNX graph (tests/ort-ops.mjs attentionLayerModel):
// projections, per-head RMSNormalization (qkNorm), RotaryEmbedding at positions worked
// out here, then
// - opset 23 Attention (q_num_heads, kv_num_heads, is_causal, scale, softcap; the keys
//   before the last Lq as past_key so that is_causal is bottom-right), with what it
//   cannot express given as one attn_mask computed here: the case's masks, key padding,
//   ALiBi (additive), a sliding window (boolean), and a causal mask when Lq > Lk;
// - or, for cases with sinks, com.microsoft GroupQueryAttention (causal, local_window_size
//   for the window, head_sink, softcap);
// then the output projection. Also: scaledDotProductAttention with grouped heads against
// the Attention op, applyRotaryEmbedding against RotaryEmbedding, and cached decoding
// through a sliding-window ring against GroupQueryAttention over the whole sequence.
//
// Runs on onnxruntime-node when installed, else onnxruntime-web (a dev dependency); see
// loadOrt in ort-ops.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { init } from 'mha-wasm';
import { relErr, rng, uniform } from './reference.mjs';
import { modernWeights, resolveConfig, resolveRope, splitWeights } from './reference-modern.mjs';
import { attentionLayerModel, loadOnnxProto, loadOrt, onnxKit, rotaryCaches, rotaryModel, runModel } from './ort-ops.mjs';
import { TOL, describeCase, layerArgs, layerWeights, randomCase, randomRope, rowsOf, seededRng } from './modern-cases.mjs';

const { ort, reason, name: runtime } = await loadOrt();
const skip = ort ? false : reason;
const ORT = runtime ?? 'onnxruntime';
const kit = ort ? onnxKit(loadOnnxProto()) : null;

/** The rotary positions of a case as ONNX Runtime takes them: { qPositions [B*Lq], kPositions [B*Lk] } (BigInt64Array). */
function positionsOf({ B, Lq, Lk, positionIds }) {
  const P = Lk - Lq;
  const pid = (b, i) => positionIds.data[positionIds.form === '2d' ? b * Lq + i : i];
  const qPositions = new BigInt64Array(B * Lq), kPositions = new BigInt64Array(B * Lk);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < Lq; i++) qPositions[b * Lq + i] = BigInt(positionIds ? pid(b, i) : P + i);
    // positionIds are the new tokens': the queries', and the last Lq keys' when Lk >= Lq
    for (let j = 0; j < Lk; j++) kPositions[b * Lk + j] = BigInt(positionIds && P >= 0 && j >= P ? pid(b, j - P) : j);
  }
  // Queries of a cross-attention with fewer keys than queries sit at negative positions,
  // which RotaryEmbedding's tables cannot hold: every position moves up by the same amount,
  // which changes no score (the rotation of q . k depends on the difference of positions).
  if (P < 0 && !positionIds) for (const a of [qPositions, kPositions]) for (let t = 0; t < a.length; t++) a[t] -= BigInt(P);
  return { qPositions, kPositions };
}

/**
 * One random case through ONNX Runtime: { y [B, Lq, E], w [B, H, Lq, Lk] or undefined, op }.
 * Cases with sinks go through GroupQueryAttention (randomCase with ort: true made them
 * causal, unmasked, Lk >= Lq); the others through Attention.
 */
async function ortCase(cs) {
  const { B, Lq, Lk, c } = cs;
  const op = cs.cfg.sinks ? 'GQA' : 'Attention';
  const P = Lk - Lq, H = c.H;
  let onnxMask = null, isCausal = cs.isCausal;
  if (op === 'Attention') {
    const causalByMask = cs.isCausal && P < 0;  // is_causal with past keys is bottom-right; with fewer keys than queries, a mask
    if (causalByMask) isCausal = false;
    if (cs.mask || cs.keyPaddingMask || c.slopes || c.slidingWindow != null || causalByMask) {
      const n = B * H * Lq * Lk, add = new Float32Array(n), allow = new Uint8Array(n).fill(1);
      for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let i = 0; i < Lq; i++) for (let j = 0; j < Lk; j++) {
        const t = ((b * H + h) * Lq + i) * Lk + j, m = cs.mask?.form === '2d' ? i * Lk + j : t, pos = P + i;
        if (cs.mask?.kind === 'bool' && cs.mask.data[m]) allow[t] = 0;
        if (cs.mask?.kind === 'float') add[t] += cs.mask.data[m];
        if (cs.keyPaddingMask && cs.keyPaddingMask[b * Lk + j]) allow[t] = 0;
        if (c.slidingWindow != null && Math.abs(pos - j) >= c.slidingWindow) allow[t] = 0;
        if (causalByMask && j > pos) allow[t] = 0;
        if (c.slopes) add[t] -= c.slopes[h] * Math.abs(pos - j);
      }
      const float = cs.mask?.kind === 'float' || !!c.slopes;
      onnxMask = float ? { data: add.map((a, t) => (allow[t] ? a : -Infinity)), dims: [B, H, Lq, Lk] } : { data: allow, dims: [B, H, Lq, Lk] };
    }
  }
  const bytes = attentionLayerModel(kit, { ...c, slopes: null }, splitWeights(c, cs.w), cs.w.qNormWeight, cs.w.kNormWeight, {
    B, Lq, Lk, op, ...positionsOf(cs), isCausal, onnxMask, needWeights: op === 'Attention', past: op === 'Attention' && P > 0,
    localWindowSize: op === 'GQA' ? c.slidingWindow ?? undefined : undefined, sinks: op === 'GQA' ? cs.w.sinks : undefined,
  });
  const out = await runModel(ort, bytes, { query: [cs.query, [B, Lq, c.E]], key: [cs.key, [B, Lk, c.kdim]], value: [cs.value, [B, Lk, c.vdim]] });
  return { ...out, op };
}

/** The layer's weights as ONNX Runtime's per head [B, H, Lq, Lk] give them (averaged when the case averages). */
function ortWeights(cs, w) {
  if (cs.averageWeights === false) return w;
  const { B, Lq, Lk, c } = cs, out = new Float64Array(B * Lq * Lk);
  for (let b = 0; b < B; b++) for (let h = 0; h < c.H; h++) for (let t = 0; t < Lq * Lk; t++) out[b * Lq * Lk + t] += w[(b * c.H + h) * Lq * Lk + t] / c.H;
  return out;
}

for (const threads of [1, 2]) {
  test(`${ORT}, threads=${threads}: the wasm layer on 80 random cases agrees with Attention / GroupQueryAttention graphs`, { skip }, async () => {
    const mha = await init({ threads });
    const failures = [], ops = new Set();
    for (let seed = 1; seed <= 80; seed++) {
      const cs = randomCase(seed + 20000 * threads, { ort: true });
      const layer = new mha.MultiHeadAttention(cs.cfg);
      layer.setWeights(layerWeights(cs));
      const got = layer.forward(...layerArgs(cs));
      layer.dispose();
      const want = await ortCase(cs);
      ops.add(want.op);
      const e = relErr(got.output.data, want.y);
      if (!(e <= TOL)) failures.push(`${want.op} ${describeCase(cs)}: output ${e}`);
      if (cs.needWeights && want.w) {
        const ew = relErr(got.weights.data, ortWeights(cs, want.w));
        if (!(ew <= TOL)) failures.push(`${want.op} ${describeCase(cs)}: weights ${ew}`);
      }
    }
    assert.deepEqual(failures, []);
    assert.deepEqual([...ops].sort(), ['Attention', 'GQA']);
  });
}

test(`${ORT}: named cases (odd head widths, grouped + rotary + window + softcap + sinks + QK-norm, left padding)`, { skip }, async () => {
  const mha = await init({ threads: 2 });
  const CASES = [
    ['GQA op: MQA, window 3, sinks, softcap, partial interleaved rope, qkNorm', { embedDim: 14, numHeads: 4, numKvHeads: 1, headDim: 8, slidingWindow: 3, softcap: 0.9, rope: { dim: 6, interleaved: true }, qkNorm: 'rms', sinks: true }],
    ['GQA op: headDim 16, embedDim 11, window 2, sinks, scale', { embedDim: 11, numHeads: 6, numKvHeads: 2, headDim: 16, slidingWindow: 2, rope: { dim: 10 }, sinks: true, scale: 0.7 }],
    ['Attention op: headDim 7, ALiBi, window, softcap, qkNorm eps', { embedDim: 9, numHeads: 3, headDim: 7, alibi: true, slidingWindow: 4, softcap: 1.3, qkNorm: 'rms', qkNormEps: 0.01, rope: { dim: 6, attentionFactor: 1.2 } }],
    ['Attention op: headDim 12, GQA 8/2, invFreq', { embedDim: 20, numHeads: 8, numKvHeads: 2, headDim: 12, rope: { invFreq: Float32Array.from({ length: 6 }, (_, i) => 0.7 / (i + 1)) }, softcap: 2 }],
  ];
  for (const [i, [name, cfg]] of CASES.entries()) {
    for (let k = 0; k < 4; k++) {
      const cs = randomCase(900 + 10 * i + k, { ort: true, cfg });
      const layer = new mha.MultiHeadAttention(cfg);
      layer.setWeights(layerWeights(cs));
      const got = layer.forward(...layerArgs(cs));
      layer.dispose();
      const want = await ortCase(cs);
      assert.ok(relErr(got.output.data, want.y) <= TOL, `${name}: ${describeCase(cs)}: ${relErr(got.output.data, want.y)}`);
    }
  }
});

test(`${ORT}: scaledDotProductAttention with fewer k/v heads against the Attention op (causal, scale, softcap, masks, ALiBi and windows as masks)`, { skip }, async () => {
  const mha = await init({ threads: 2 });
  for (let seed = 1; seed <= 40; seed++) {
    const r = seededRng(seed + 40000);
    const pick = (a) => a[Math.floor(r() * a.length)];
    const B = 1 + Math.floor(r() * 2), H = pick([1, 2, 4, 6]);
    const Hkv = pick(Array.from({ length: H }, (_, i) => i + 1).filter((d) => H % d === 0));
    const Lk = 1 + Math.floor(r() * 10), Lq = 1 + Math.floor(r() * Lk), D = pick([4, 5, 8]);
    const q = uniform(r, B * H * Lq * D, -1, 1), k = uniform(r, B * Hkv * Lk * D, -1, 1), v = uniform(r, B * Hkv * Lk * D, -1, 1);
    const options = { isCausal: r() < 0.5, needWeights: true };
    if (r() < 0.4) options.scale = 0.2 + r();
    if (r() < 0.4) options.softcap = 0.3 + 2 * r();
    if (r() < 0.4) options.alibiSlopes = uniform(r, H, 0, 1);
    if (r() < 0.4) options.slidingWindow = 1 + Math.floor(r() * 4);
    const padding = r() < 0.3 ? Uint8Array.from({ length: B * Lk }, () => (r() < 0.3 ? 1 : 0)) : null;
    if (padding) options.keyPaddingMask = { data: padding, dims: [B, Lk] };
    const got = mha.scaledDotProductAttention({ data: q, dims: [B, H, Lq, D] }, { data: k, dims: [B, Hkv, Lk, D] }, { data: v, dims: [B, Hkv, Lk, D] }, options);
    // the graph: Attention on q, and k/v split into past (the first Lk - Lq) and new
    const P = Lk - Lq, nodes = [], inits = [];
    const i64 = (n, vals) => { inits.push(kit.init(n, [vals.length], BigInt64Array.from(vals.map(BigInt)))); return n; };
    const slice = (x, n, from, to) => { nodes.push(kit.node('Slice', [x, i64(`${n}St`, [from]), i64(`${n}En`, [to]), i64(`${n}Ax`, [2])], [n])); return n; };
    let mask = '';
    if (options.alibiSlopes || options.slidingWindow || padding) {
      const m = new Float32Array(B * H * Lq * Lk);
      for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let i = 0; i < Lq; i++) for (let j = 0; j < Lk; j++) {
        const t = ((b * H + h) * Lq + i) * Lk + j, dist = Math.abs(P + i - j);
        if ((options.slidingWindow && dist >= options.slidingWindow) || (padding && padding[b * Lk + j])) m[t] = -Infinity;
        else if (options.alibiSlopes) m[t] = -options.alibiSlopes[h] * dist;
      }
      inits.push(kit.init('mask', [B, H, Lq, Lk], m));
      mask = 'mask';
    }
    const attrs = [kit.int('q_num_heads', H), kit.int('kv_num_heads', Hkv), kit.float('scale', options.scale ?? 1 / Math.sqrt(D)), kit.int('qk_matmul_output_mode', 3)];
    if (options.isCausal) attrs.push(kit.int('is_causal', 1));
    if (options.softcap) attrs.push(kit.float('softcap', options.softcap));
    const ins = P > 0 ? ['q', slice('k', 'newK', P, Lk), slice('v', 'newV', P, Lk), mask, slice('k', 'pastK', 0, P), slice('v', 'pastV', 0, P)] : ['q', 'k', 'v', mask];
    nodes.push(kit.node('Attention', ins, ['y', P > 0 ? 'presentK' : '', P > 0 ? 'presentV' : '', 'w'], attrs));
    const bytes = kit.model(nodes, inits, [kit.value('q', [B, H, Lq, D]), kit.value('k', [B, Hkv, Lk, D]), kit.value('v', [B, Hkv, Lk, D])],
      [kit.value('y', [B, H, Lq, D]), kit.value('w', [B, H, Lq, Lk])]);
    const want = await runModel(ort, bytes, { q: [q, [B, H, Lq, D]], k: [k, [B, Hkv, Lk, D]], v: [v, [B, Hkv, Lk, D]] });
    const what = `seed ${seed}: B ${B} H ${H} Hkv ${Hkv} Lq ${Lq} Lk ${Lk} D ${D} ${JSON.stringify(Object.keys(options))}`;
    assert.ok(relErr(got.output.data, want.y) <= TOL, `${what}: output ${relErr(got.output.data, want.y)}`);
    assert.ok(relErr(got.weights.data, want.w) <= TOL, `${what}: weights ${relErr(got.weights.data, want.w)}`);
  }
});

test(`${ORT}: applyRotaryEmbedding against RotaryEmbedding (both layouts, [L] and [B, L] positions, partial, interleaved, invFreq, attentionFactor)`, { skip }, async () => {
  const mha = await init({ threads: 1 });
  for (let seed = 1; seed <= 30; seed++) {
    const r = seededRng(seed + 50000);
    const B = 1 + Math.floor(r() * 2), H = 1 + Math.floor(r() * 3), L = 1 + Math.floor(r() * 8), D = [2, 4, 5, 6, 8, 12][Math.floor(r() * 6)];
    const given = randomRope(r, D), rope = given === true ? {} : given;
    const shared = r() < 0.5, blhd = r() < 0.5;
    const pos = Int32Array.from({ length: shared ? L : B * L }, () => Math.floor(r() * 100));
    const x = uniform(r, B * H * L * D, -2, 2);  // [B, H, L, D]
    let input = x;
    if (blhd) {  // the same tensor as [B, L, H, D]
      input = new Float32Array(x.length);
      for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let l = 0; l < L; l++)
        input.set(x.subarray(((b * H + h) * L + l) * D, ((b * H + h) * L + l + 1) * D), ((b * L + l) * H + h) * D);
    }
    const got = mha.applyRotaryEmbedding({ data: input, dims: blhd ? [B, L, H, D] : [B, H, L, D] },
      { ...rope, layout: blhd ? 'blhd' : 'bhld', positions: shared ? pos : { data: pos, dims: [B, L] } });
    const res = resolveRope(rope, D);
    const positions = BigInt64Array.from({ length: B * L }, (_, t) => BigInt(pos[shared ? t % L : t]));
    const { cos, sin } = rotaryCaches(res.invFreq, 100, res.attentionFactor);
    const want = (await runModel(ort, rotaryModel(kit, { B, heads: H, L, D, dim: res.dim, interleaved: res.interleaved, cos, sin, positions }), { x: [x, [B, H, L, D]] })).y;
    let mine = got.data;
    if (blhd) {
      mine = new Float32Array(x.length);
      for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let l = 0; l < L; l++)
        mine.set(got.data.subarray(((b * L + l) * H + h) * D, ((b * L + l) * H + h + 1) * D), ((b * H + h) * L + l) * D);
    }
    assert.ok(relErr(mine, want) <= TOL, `seed ${seed}: [${B}, ${H}, ${L}, ${D}] ${blhd ? 'blhd' : 'bhld'} ${JSON.stringify(given)}: ${relErr(mine, want)}`);
  }
});

test(`${ORT}: decoding through a sliding-window ring (W 3, maxLength 5) equals GroupQueryAttention over the whole sequence`, { skip }, async () => {
  for (const threads of [1, 2]) {
    const mha = await init({ threads });
    const cfg = { embedDim: 12, numHeads: 4, numKvHeads: 2, headDim: 8, slidingWindow: 3, rope: { dim: 6 }, sinks: true, softcap: 1.5, qkNorm: 'rms' };
    const B = 2, L = 20, E = 12, r = rng(77 + threads);
    const w = modernWeights(r, cfg, { withSinks: true });
    const x = uniform(r, B * L * E, -1, 1);
    const c = resolveConfig(cfg);
    const positions = BigInt64Array.from({ length: B * L }, (_, t) => BigInt(t % L));
    const bytes = attentionLayerModel(kit, c, splitWeights(c, w), w.qNormWeight, w.kNormWeight, {
      B, Lq: L, Lk: L, op: 'GQA', qPositions: positions, kPositions: positions, isCausal: true, localWindowSize: 3, sinks: w.sinks,
    });
    const want = (await runModel(ort, bytes, { query: [x, [B, L, E]], key: [x, [B, L, E]], value: [x, [B, L, E]] })).y;
    const layer = new mha.MultiHeadAttention(cfg);
    layer.setWeights(w);
    const cache = layer.createCache({ maxLength: 5, batch: B });
    let pos = 0;
    for (const n of [3, 1, 1, 2, 1, 3, 1, 1, 3, 1, 2, 1]) {
      const y = layer.forward({ data: rowsOf(x, B, L, E, pos, n), dims: [B, n, E] }, null, null, { cache, isCausal: true });
      const e = relErr(y.output.data, rowsOf(want, B, L, E, pos, n));
      assert.ok(e <= TOL, `threads=${threads}: step of ${n} at ${pos}: ${e}`);
      pos += n;
    }
    assert.equal(cache.length, L);
    layer.dispose();
  }
});
