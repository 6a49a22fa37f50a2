// Seeded random cases of MultiHeadAttention with the modern options (issue 13), shared
// by modern.test.mjs (wasm against the float64 reference), modern-worker.test.mjs (the
// worker API) and modern-ort.test.mjs (wasm against onnxruntime): a configuration, its
// weights, the inputs and the forward options, in the forms the layer takes
// (layerArgs, layerWeights) and the forms the reference takes (referenceOf).
import { relErr, rng, uniform } from './reference.mjs';
import { modernAttentionReference, modernWeights, resolveConfig } from './reference-modern.mjs';

export const TOL = 1e-4;  // max |error| <= TOL * max(1, max |reference|) (relErr)

/** rng(seed) with the seed scrambled and a few values dropped: xorshift's first values from small seeds are small. */
export function seededRng(seed) {
  const r = rng((Math.imul(seed, 0x9e3779b1) ^ 0x5bd1e995) >>> 0);
  for (let i = 0; i < 4; i++) r();
  return r;
}

const pick = (r, a) => a[Math.floor(r() * a.length)];
const int = (r, lo, hi) => lo + Math.floor(r() * (hi - lo + 1));
const chance = (r, p) => r() < p;

/** A rope option for head width D (D >= 2): true, or { dim, interleaved, base | invFreq, attentionFactor } in random subsets. */
export function randomRope(r, D) {
  if (D % 2 === 0 && chance(r, 0.15)) return true;
  const rope = {};
  const evenDims = Array.from({ length: Math.floor(D / 2) }, (_, i) => 2 * (i + 1));
  if (D % 2 !== 0 || chance(r, 0.4)) rope.dim = pick(r, evenDims);  // odd D: partial rotary only
  const dim = rope.dim ?? D;
  if (chance(r, 0.5)) rope.interleaved = chance(r, 0.7);
  if (chance(r, 0.3)) rope.invFreq = Float32Array.from({ length: dim / 2 }, () => 0.02 + 1.2 * r());
  else if (chance(r, 0.5)) rope.base = pick(r, [10, 50, 500, 10000]);
  if (chance(r, 0.3)) rope.attentionFactor = 0.7 + 0.6 * r();
  return rope;
}

/**
 * A random constructor configuration over every option. ort: only what the ONNX graphs
 * of modern-ort.test.mjs express (sinks go through GroupQueryAttention, which has no
 * ALiBi and takes head widths that are multiples of 8); long: windows for sequences of a few hundred.
 */
export function randomConfig(r, { ort = false, long = false } = {}) {
  const H = pick(r, [1, 2, 3, 4, 6, 8]);
  const cfg = { embedDim: 0, numHeads: H };
  if (chance(r, 0.7)) cfg.numKvHeads = pick(r, Array.from({ length: H }, (_, i) => i + 1).filter((d) => H % d === 0));
  let D;
  if (chance(r, 0.5)) {  // headDim given: embedDim need not be a multiple of numHeads
    D = pick(r, [4, 5, 6, 7, 8, 12]);
    cfg.headDim = D;
    cfg.embedDim = int(r, 3, 30);
  } else {
    D = pick(r, [2, 4, 5, 6, 8]);
    cfg.embedDim = H * D;
  }
  if (chance(r, 0.2)) Object.assign(cfg, { kdim: int(r, 2, 20), vdim: int(r, 2, 20) });
  if (chance(r, 0.2)) cfg.bias = false;
  if (chance(r, 0.2)) cfg.qkvBias = chance(r, 0.5);
  if (chance(r, 0.2)) cfg.outBias = chance(r, 0.5);
  if (D >= 2 && chance(r, 0.5)) cfg.rope = randomRope(r, D);
  if (chance(r, 0.3)) cfg.sinks = true;
  if (chance(r, 0.25) && !(ort && cfg.sinks)) cfg.alibi = chance(r, 0.5) ? true : uniform(r, H, 0, 1.5);
  if (chance(r, 0.35)) cfg.slidingWindow = long ? pick(r, [1, 5, 40, 64, 100, 129]) : int(r, 1, 6);
  if (chance(r, 0.3)) cfg.softcap = 0.3 + 3 * r();
  if (chance(r, 0.2)) cfg.scale = 0.1 + r();
  if (ort && cfg.sinks && D % 8 !== 0) {  // GroupQueryAttention takes head widths that are multiples of 8
    D = cfg.headDim = pick(r, [8, 16]);
    if (cfg.rope) cfg.rope = randomRope(r, D);
  }
  if (chance(r, 0.3)) {
    cfg.qkNorm = 'rms';
    if (chance(r, 0.5)) cfg.qkNormEps = pick(r, [1e-5, 0.01, 0.3]);
  }
  return cfg;
}

/**
 * A random case from a seed: { seed, cfg, c (resolved), w (weights), weightsForm, B, Lq,
 * Lk, batched, mode ('self': key and value omitted; 'same': the query tensor passed
 * three times; 'copies': equal copies; 'cross': other inputs), query, key, value (flat
 * Float32Arrays), mask ({ kind: 'bool' | 'float', form: '2d' | 'full' | 'bh', data, dims }
 * or null), keyPaddingMask, isCausal, positionIds ({ form: 'bare' | '1d' | '2d', data }
 * or null), needWeights, averageWeights }.
 * given.cfg fixes the configuration; given.long makes the sequences longer than one
 * block of queries (64) and keys (128) of the kernels; given.ort restricts to what ONNX Runtime's graphs
 * express: a case with sinks goes through GroupQueryAttention, which is causal, takes
 * no masks, needs Lk >= Lq, and batch 1 when it has both past keys and several queries.
 */
export function randomCase(seed, given = {}) {
  const r = seededRng(seed);
  const ort = !!given.ort;
  const cfg = given.cfg ?? randomConfig(r, { ort, long: given.long });
  const c = resolveConfig(cfg);
  const w = modernWeights(r, cfg, { withSinks: !!cfg.sinks });
  const gqa = ort && !!cfg.sinks;
  const crossDims = c.kdim !== c.E || c.vdim !== c.E;
  const mode = crossDims ? 'cross' : pick(r, ['self', 'self', 'same', 'copies', 'cross']);
  const batched = chance(r, 0.8);
  let B = batched ? int(r, 1, 3) : 1;
  const Lq = given.long ? int(r, 60, 200) : int(r, 1, 9);
  const Lk = mode !== 'cross' ? Lq : gqa ? Lq + int(r, 0, given.long ? 90 : 2) : given.long ? int(r, 100, 290) : int(r, 1, 11);
  if (gqa && Lk > Lq && Lq > 1) B = 1;
  const query = uniform(r, B * Lq * c.E, -1, 1);
  const key = mode === 'cross' ? uniform(r, B * Lk * c.kdim, -1, 1) : query;
  const value = mode === 'cross' ? uniform(r, B * Lk * c.vdim, -1, 1) : query;
  let mask = null, keyPaddingMask = null;
  const maskKind = gqa ? null : pick(r, [null, null, 'bool', 'float']);
  if (maskKind) {
    const form = batched ? pick(r, ['2d', 'full', 'bh']) : pick(r, ['2d', 'full']);
    const n = form === '2d' ? Lq * Lk : B * c.H * Lq * Lk;
    const data = maskKind === 'bool' ? Uint8Array.from({ length: n }, () => (chance(r, 0.25) ? 1 : 0))
      : Float32Array.from({ length: n }, () => (chance(r, 0.08) ? -Infinity : 4 * r() - 2));
    const dims = form === '2d' ? [Lq, Lk] : form === 'bh' ? [B * c.H, Lq, Lk] : batched ? [B, c.H, Lq, Lk] : [c.H, Lq, Lk];
    mask = { kind: maskKind, form, data, dims };
  }
  if (!gqa && chance(r, 0.3)) keyPaddingMask = Uint8Array.from({ length: B * Lk }, () => (chance(r, 0.3) ? 1 : 0));
  const isCausal = gqa || chance(r, 0.5);
  let positionIds = null;
  if (cfg.rope && chance(r, 0.5)) {
    const form = batched ? pick(r, ['bare', '1d', '2d']) : pick(r, ['bare', '1d']);
    positionIds = { form, data: Int32Array.from({ length: form === '2d' ? B * Lq : Lq }, () => int(r, 0, 60)) };
  }
  const needWeights = chance(r, 0.5);
  const averageWeights = pick(r, [undefined, true, false]);
  const packable = !crossDims && chance(r, 0.3);
  const weightsForm = packable ? 'packed' : pick(r, ['camel', 'camel', 'hf']);
  return {
    seed, cfg, c, w, weightsForm, B, Lq, Lk, batched, mode, query, key, value, mask, keyPaddingMask, isCausal, positionIds, needWeights, averageWeights,
  };
}

/** A short description of a case for messages. */
export function describeCase(cs) {
  const cfg = Object.fromEntries(Object.entries(cs.cfg).map(([k, v]) => [k, ArrayBuffer.isView(v) ? `[${v.length}]` : v]));
  if (cfg.rope && typeof cfg.rope === 'object') cfg.rope = Object.fromEntries(Object.entries(cfg.rope).map(([k, v]) => [k, ArrayBuffer.isView(v) ? `[${v.length}]` : v]));
  const shape = { B: cs.B, Lq: cs.Lq, Lk: cs.Lk, batched: cs.batched, mode: cs.mode, weights: cs.weightsForm };
  const opts = {
    mask: cs.mask && `${cs.mask.kind} ${cs.mask.form}`, padding: !!cs.keyPaddingMask, causal: cs.isCausal, positionIds: cs.positionIds?.form,
    needWeights: cs.needWeights, averageWeights: cs.averageWeights,
  };
  return `seed ${cs.seed}: ${JSON.stringify(cfg)} ${JSON.stringify(shape)} ${JSON.stringify(opts)}`;
}

/** The weights in the case's form: camelCase, packed inProjWeight/inProjBias, or Hugging Face names. */
export function layerWeights(cs) {
  const { w, c } = cs;
  if (cs.weightsForm === 'packed') {
    const out = { inProjWeight: Float32Array.from([...w.qProjWeight, ...w.kProjWeight, ...w.vProjWeight]), outProjWeight: w.outProjWeight };
    if (c.qkvBias) out.inProjBias = Float32Array.from([...w.qProjBias, ...w.kProjBias, ...w.vProjBias]);
    for (const k of ['outProjBias', 'sinks', 'qNormWeight', 'kNormWeight']) if (w[k]) out[k] = w[k];
    return out;
  }
  if (cs.weightsForm === 'hf') {
    const names = {
      qProjWeight: 'q_proj.weight', kProjWeight: 'k_proj.weight', vProjWeight: 'v_proj.weight', outProjWeight: 'o_proj.weight',
      qProjBias: 'q_proj.bias', kProjBias: 'k_proj.bias', vProjBias: 'v_proj.bias', outProjBias: 'o_proj.bias',
      qNormWeight: 'q_norm.weight', kNormWeight: 'k_norm.weight', sinks: 'sinks',
    };
    return Object.fromEntries(Object.entries(w).map(([k, v]) => [names[k], v]));
  }
  return { ...w };
}

/** The layer's forward arguments: [query, key, value, options]. */
export function layerArgs(cs) {
  const { B, Lq, Lk, batched, c } = cs;
  const dims = (L, n) => (batched ? [B, L, n] : [L, n]);
  const query = { data: cs.query, dims: dims(Lq, c.E) };
  let key = null, value = null;
  if (cs.mode === 'same') key = value = query;
  else if (cs.mode === 'copies') {
    key = { data: cs.query.slice(), dims: dims(Lq, c.E) };
    value = { data: cs.query.slice(), dims: dims(Lq, c.E) };
  } else if (cs.mode === 'cross') {
    key = { data: cs.key, dims: dims(Lk, c.kdim) };
    value = { data: cs.value, dims: dims(Lk, c.vdim) };
  }
  const options = { isCausal: cs.isCausal, needWeights: cs.needWeights };
  if (cs.averageWeights !== undefined) options.averageWeights = cs.averageWeights;
  if (cs.mask) options.attnMask = { data: cs.mask.data, dims: cs.mask.dims };
  if (cs.keyPaddingMask) options.keyPaddingMask = { data: cs.keyPaddingMask, dims: batched ? [B, Lk] : [Lk] };
  if (cs.positionIds) {
    const p = cs.positionIds;
    options.positionIds = p.form === 'bare' ? p.data : { data: p.data, dims: p.form === '2d' ? [B, Lq] : [Lq] };
  }
  return [query, key, value, options];
}

/** The reference's options for the case (masks as flat arrays). */
export function referenceOpts(cs) {
  return {
    attnMask: cs.mask?.data, maskBroadcast: cs.mask?.form === '2d', keyPaddingMask: cs.keyPaddingMask ?? undefined, isCausal: cs.isCausal,
    positionIds: cs.positionIds?.data, needWeights: cs.needWeights, averageWeights: cs.averageWeights !== false,
  };
}

/** The float64 reference of the case: { output [B, Lq, E], weights, ... }. */
export function referenceOf(cs) {
  return modernAttentionReference(cs.cfg, cs.w, cs.B, cs.Lq, cs.Lk, cs.query, cs.key, cs.value, referenceOpts(cs));
}

/** The dims the layer's outputs have: { output, weights (null without needWeights) }. */
export function expectedDims(cs) {
  const { B, Lq, Lk, batched, c } = cs;
  const lead = batched ? [B] : [];
  const w = cs.averageWeights === false ? [c.H, Lq, Lk] : [Lq, Lk];
  return { output: [...lead, Lq, c.E], weights: cs.needWeights ? [...lead, ...w] : null };
}

/** Compares a forward's result with the reference; returns an error message or null. */
export function compareResult(cs, got, ref) {
  const dims = expectedDims(cs);
  if (JSON.stringify(got.output.dims) !== JSON.stringify(dims.output)) return `output dims ${JSON.stringify(got.output.dims)}, want ${JSON.stringify(dims.output)}`;
  const e = relErr(got.output.data, ref.output);
  if (!(e <= TOL)) return `output error ${e}`;
  if (!dims.weights) return got.weights === null ? null : 'weights returned without needWeights';
  if (JSON.stringify(got.weights.dims) !== JSON.stringify(dims.weights)) return `weights dims ${JSON.stringify(got.weights.dims)}, want ${JSON.stringify(dims.weights)}`;
  const ew = relErr(got.weights.data, ref.weights);
  return ew <= TOL ? null : `weights error ${ew}`;
}

/** Rows [pos, pos + n) of each batch item of x [B, L, width] (flat), as a new array of x's type. */
export function rowsOf(x, B, L, width, pos, n) {
  const out = new x.constructor(B * n * width);
  for (let b = 0; b < B; b++) out.set(x.subarray((b * L + pos) * width, (b * L + pos + n) * width), b * n * width);
  return out;
}
