// Independent float64 reference of torch.nn.MultiheadAttention (batch_first,
// dropout 0) and of scaled dot-product attention, written plainly for the tests.
// Masks: bool nonzero = masked; float masks add. The math is PyTorch's math path
// done literally: masks are added to the scores as -Infinity (so NaN + -Infinity
// stays NaN and +Infinity + -Infinity is NaN), softmax over every key, then the
// weights times V over every key (0 * NaN = NaN). One deliberate difference: a row
// that no mask leaves a key (or whose scores are all -Infinity) attends to nothing:
// zero attention and zero weights, whatever the inputs hold.

export function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => {  // xorshift32 in [0, 1)
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}
export const uniform = (r, n, lo, hi) => Float32Array.from({ length: n }, () => lo + (hi - lo) * r());

/** Attention for one (b, h): q [Lq, D], k [Lk, D], v [Lk, Dv] as accessor functions. */
function attendHead({ Lq, Lk, D, Dv, q, k, v, scale, masked, addMask }) {
  const out = new Float64Array(Lq * Dv), w = new Float64Array(Lq * Lk);
  const s = new Float64Array(Lk);
  for (let i = 0; i < Lq; i++) {
    let m = -Infinity, nan = false, visible = false;
    for (let j = 0; j < Lk; j++) {
      let d = 0;
      for (let c = 0; c < D; c++) d += q(i, c) * k(j, c);
      const add = addMask(i, j), hidden = masked(i, j);
      d = d * scale + add;
      if (hidden) d += -Infinity;
      if (!hidden && add !== -Infinity) visible = true;
      s[j] = d;
      if (Number.isNaN(d)) nan = true;
      else if (d > m) m = d;
    }
    if (!visible || (!nan && m === -Infinity)) continue;  // attends to nothing
    if (nan) m = NaN;  // softmax of a row holding NaN is NaN everywhere
    let sum = 0;
    for (let j = 0; j < Lk; j++) sum += (s[j] = Math.exp(s[j] - m));  // +Infinity - +Infinity = NaN
    for (let j = 0; j < Lk; j++) w[i * Lk + j] = s[j] / sum;
    for (let c = 0; c < Dv; c++) {
      let acc = 0;
      for (let j = 0; j < Lk; j++) acc += w[i * Lk + j] * v(j, c);  // every key: 0 * NaN = NaN
      out[i * Dv + c] = acc;
    }
  }
  return { out, w };
}

// Causal: query i sees key j only when j <= i + qOffset; qOffset (the key position of
// query 0) defaults to Lk - Lq, bottom-right aligned.
function maskFns({ attnMask, maskBatchStride, maskHeadStride, keyPaddingMask, isCausal, qOffset, Lq, Lk }) {
  const isBool = attnMask && attnMask instanceof Uint8Array;
  const diag = qOffset ?? Lk - Lq;
  return (b, h) => ({
    masked: (i, j) =>
      (isBool && attnMask[b * maskBatchStride + h * maskHeadStride + i * Lk + j] !== 0) ||
      (keyPaddingMask && keyPaddingMask[b * Lk + j] !== 0) ||
      (isCausal && j > i + diag),
    addMask: (i, j) => (attnMask && !isBool ? attnMask[b * maskBatchStride + h * maskHeadStride + i * Lk + j] : 0),
  });
}

/**
 * x: Float32Array [M, K]; W: [N, K] (PyTorch layout); returns Float64Array [M, N].
 */
export function linear(x, M, K, W, N, bias) {
  const y = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let n = 0; n < N; n++) {
      let s = bias ? bias[n] : 0;
      for (let k = 0; k < K; k++) s += x[i * K + k] * W[n * K + k];
      y[i * N + n] = s;
    }
  return y;
}

/**
 * Full layer. cfg: { E, H, kdim, vdim, bias }; w: camelCase weights; query/key/value:
 * Float32Arrays [B, L, *]; opts: { attnMask (data), maskBroadcast, keyPaddingMask,
 * isCausal, qOffset, needWeights, averageWeights }.
 */
export function mhaReference(cfg, w, B, Lq, Lk, query, key, value, opts = {}) {
  const { E, H } = cfg, D = E / H;
  const E2 = E * E;
  const wq = w.inProjWeight ? w.inProjWeight.subarray(0, E2) : w.qProjWeight;
  const wk = w.inProjWeight ? w.inProjWeight.subarray(E2, 2 * E2) : w.kProjWeight;
  const wv = w.inProjWeight ? w.inProjWeight.subarray(2 * E2) : w.vProjWeight;
  const bi = cfg.bias ? w.inProjBias : null;
  const q = linear(query, B * Lq, E, wq, E, bi && bi.subarray(0, E));
  const k = linear(key, B * Lk, cfg.kdim, wk, E, bi && bi.subarray(E, 2 * E));
  const v = linear(value, B * Lk, cfg.vdim, wv, E, bi && bi.subarray(2 * E));
  const attn = new Float64Array(B * Lq * E);
  const average = opts.averageWeights !== false;
  const weights = opts.needWeights ? new Float64Array(B * (average ? 1 : H) * Lq * Lk) : null;
  const masks = maskFns({
    attnMask: opts.attnMask, maskBatchStride: opts.maskBroadcast ? 0 : H * Lq * Lk,
    maskHeadStride: opts.maskBroadcast ? 0 : Lq * Lk, keyPaddingMask: opts.keyPaddingMask, isCausal: opts.isCausal, qOffset: opts.qOffset, Lq, Lk,
  });
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const r = attendHead({
        Lq, Lk, D, Dv: D, scale: 1 / Math.sqrt(D), ...masks(b, h),
        q: (i, c) => q[(b * Lq + i) * E + h * D + c],
        k: (j, c) => k[(b * Lk + j) * E + h * D + c],
        v: (j, c) => v[(b * Lk + j) * E + h * D + c],
      });
      for (let i = 0; i < Lq; i++) for (let c = 0; c < D; c++) attn[(b * Lq + i) * E + h * D + c] = r.out[i * D + c];
      if (weights)
        for (let i = 0; i < Lq * Lk; i++) {
          if (average) weights[b * Lq * Lk + i] += r.w[i] / H;
          else weights[(b * H + h) * Lq * Lk + i] = r.w[i];
        }
    }
  const out = linear(attn, B * Lq, E, w.outProjWeight, E, cfg.bias ? w.outProjBias : null);
  return { output: out, weights };
}

/** q [B,H,Lq,D], k [B,H,Lk,D], v [B,H,Lk,Dv] (flat Float32Arrays). */
export function sdpaReference({ B, H, Lq, Lk, D, Dv }, q, k, v, opts = {}) {
  const out = new Float64Array(B * H * Lq * Dv), weights = new Float64Array(B * H * Lq * Lk);
  const masks = maskFns({
    attnMask: opts.attnMask, maskBatchStride: opts.maskBroadcast ? 0 : H * Lq * Lk,
    maskHeadStride: opts.maskBroadcast ? 0 : Lq * Lk, keyPaddingMask: opts.keyPaddingMask, isCausal: opts.isCausal, qOffset: opts.qOffset, Lq, Lk,
  });
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const bh = b * H + h;
      const r = attendHead({
        Lq, Lk, D, Dv, scale, ...masks(b, h),
        q: (i, c) => q[(bh * Lq + i) * D + c], k: (j, c) => k[(bh * Lk + j) * D + c], v: (j, c) => v[(bh * Lk + j) * Dv + c],
      });
      out.set(r.out, bh * Lq * Dv);
      weights.set(r.w, bh * Lq * Lk);
    }
  return { output: out, weights };
}

/** max |a - ref| over max |ref| (int8 and f16 bounds; a NaN in a gives NaN, which no bound passes). */
export function relToMax(a, ref) {
  let e = 0, m = 0;
  for (let i = 0; i < ref.length; i++) e = Math.max(e, Math.abs(a[i] - ref[i])), m = Math.max(m, Math.abs(ref[i]));
  return e / m;
}

/** max |a - ref| / max(1, max |ref|) */
export function relErr(a, ref) {
  if (a.length !== ref.length) throw new Error(`length ${a.length} != ${ref.length}`);
  let e = 0, m = 1;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(a[i] - ref[i]);
    if (!(d <= e)) e = d;  // NaN counts as an error
    m = Math.max(m, Math.abs(ref[i]));
  }
  return e / m;
}

/**
 * relErr for results that may hold NaN or Infinity: a non-finite reference entry must
 * be matched exactly (NaN by NaN, +Infinity by +Infinity), a finite one by a finite
 * value; returns Infinity when they differ, else relErr over the finite entries.
 */
export function relErrNonFinite(a, ref) {
  if (a.length !== ref.length) throw new Error(`length ${a.length} != ${ref.length}`);
  let e = 0, m = 1;
  for (let i = 0; i < ref.length; i++) {
    if (!Number.isFinite(ref[i]) || !Number.isFinite(a[i])) {
      if (!Object.is(a[i], ref[i]) && !(Number.isNaN(a[i]) && Number.isNaN(ref[i]))) return Infinity;
      continue;
    }
    e = Math.max(e, Math.abs(a[i] - ref[i]));
    m = Math.max(m, Math.abs(ref[i]));
  }
  return e / m;
}

/** LayerNorm over the last dim (biased variance), rows of width E; g/b may be null. */
export function layerNormRef(x, M, E, g, b, eps) {
  const y = new Float64Array(M * E);
  for (let i = 0; i < M; i++) {
    let mean = 0, v = 0;
    for (let k = 0; k < E; k++) mean += x[i * E + k];
    mean /= E;
    for (let k = 0; k < E; k++) v += (x[i * E + k] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / E + eps);
    for (let k = 0; k < E; k++) y[i * E + k] = (x[i * E + k] - mean) * inv * (g ? g[k] : 1) + (b ? b[k] : 0);
  }
  return y;
}

/** erf (Abramowitz-Stegun 7.1.26 is too coarse): a series / continued fraction accurate to ~1e-15. */
export function erf(x) {
  const t = Math.abs(x);
  if (t < 3) {  // Maclaurin series
    let sum = t, term = t, n = 0;
    while (Math.abs(term) > 1e-17 * Math.abs(sum)) {
      n++;
      term *= -t * t / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  let f = 0;  // continued fraction for erfc
  for (let k = 60; k >= 1; k--) f = (k / 2) / (t + f);
  return Math.sign(x) * (1 - Math.exp(-t * t) / Math.sqrt(Math.PI) / (t + f));
}

/** The float64 pieces of a Transformer block: attention (by state_dict prefix), feed-forward, norms. */
function blockParts(cfg, sd, B) {
  const { E, F } = cfg, bias = cfg.bias;
  const attn = (p, Lq, Lk, x, kv, opts) => {
    const w = { inProjWeight: sd[`${p}.in_proj_weight`], inProjBias: sd[`${p}.in_proj_bias`], outProjWeight: sd[`${p}.out_proj.weight`], outProjBias: sd[`${p}.out_proj.bias`] };
    return mhaReference({ E, H: cfg.H, kdim: E, vdim: E, bias }, w, B, Lq, Lk, x, kv, kv, opts).output;
  };
  const act = cfg.activation === 'gelu' ? (s) => 0.5 * s * (1 + erf(s / Math.SQRT2)) : (s) => Math.max(s, 0);
  const ff = (v, M) => linear(linear(v, M, E, sd['linear1.weight'], F, bias && sd['linear1.bias']).map(act), M, F, sd['linear2.weight'], E, bias && sd['linear2.bias']);
  const norm = (v, M, i) => layerNormRef(v, M, E, sd[`norm${i}.weight`], bias && sd[`norm${i}.bias`], cfg.eps);
  const add = (a, b) => a.map((t, i) => t + b[i]);
  return { attn, ff, norm, add };
}

/**
 * torch.nn.TransformerEncoderLayer (batch_first, dropout 0) in float64. cfg: { E, H, F,
 * activation, eps, normFirst, bias }; sd: the state_dict (dotted names, Float32Arrays);
 * opts as mhaReference's masks.
 */
export function encoderReference(cfg, sd, B, L, x, opts = {}) {
  const M = B * L, { attn, ff: ffn, norm: nrm, add } = blockParts(cfg, sd, B);
  const sa = (v) => attn('self_attn', L, L, v, v, opts), ff = (v) => ffn(v, M), norm = (v, i) => nrm(v, M, i);
  if (!cfg.normFirst) {
    const h = norm(add(x, sa(x)), 1);
    return norm(add(h, ff(h)), 2);
  }
  const h = add(x, sa(norm(x, 1)));
  return add(h, ff(norm(h, 2)));
}

/**
 * torch.nn.TransformerDecoderLayer (batch_first, dropout 0) in float64: tgt [B, T, E],
 * memory [B, S, E]; tgtOpts / memOpts as mhaReference's masks for the self- and the
 * cross-attention. memOpts.isCausal (memoryIsCausal) lines the target up with the
 * memory from the start: target position t sees memory positions j <= t (qOffset 0).
 */
export function decoderReference(cfg, sd, B, T, S, tgt, memory, tgtOpts = {}, memOpts = {}) {
  const M = B * T, { attn, ff: ffn, norm: nrm, add } = blockParts(cfg, sd, B);
  const sa = (v) => attn('self_attn', T, T, v, v, tgtOpts), ca = (v) => attn('multihead_attn', T, S, v, memory, { qOffset: 0, ...memOpts });
  const ff = (v) => ffn(v, M), norm = (v, i) => nrm(v, M, i);
  if (!cfg.normFirst) {
    let h = norm(add(tgt, sa(tgt)), 1);
    h = norm(add(h, ca(h)), 2);
    return norm(add(h, ff(h)), 3);
  }
  let h = add(tgt, sa(norm(tgt, 1)));
  h = add(h, ca(norm(h, 2)));
  return add(h, ff(norm(h, 3)));
}

/**
 * A random state_dict of a Transformer block (PyTorch's names, flat Float32Arrays):
 * an encoder layer's, or with decoder a decoder layer's (multihead_attn, norm3).
 */
export function blockStateDict(r, E, F, bias, decoder = false) {
  const s = 1 / Math.sqrt(E), sf = 1 / Math.sqrt(F);
  const attn = decoder ? ['self_attn', 'multihead_attn'] : ['self_attn'], norms = decoder ? [1, 2, 3] : [1, 2];
  const sd = { 'linear1.weight': uniform(r, F * E, -s, s), 'linear2.weight': uniform(r, E * F, -sf, sf) };
  for (const a of attn) Object.assign(sd, { [`${a}.in_proj_weight`]: uniform(r, 3 * E * E, -s, s), [`${a}.out_proj.weight`]: uniform(r, E * E, -s, s) });
  for (const n of norms) sd[`norm${n}.weight`] = uniform(r, E, 0.5, 1.5);
  if (!bias) return sd;
  Object.assign(sd, { 'linear1.bias': uniform(r, F, -s, s), 'linear2.bias': uniform(r, E, -sf, sf) });
  for (const a of attn) Object.assign(sd, { [`${a}.in_proj_bias`]: uniform(r, 3 * E, -s, s), [`${a}.out_proj.bias`]: uniform(r, E, -s, s) });
  for (const n of norms) sd[`norm${n}.bias`] = uniform(r, E, -0.5, 0.5);
  return sd;
}
