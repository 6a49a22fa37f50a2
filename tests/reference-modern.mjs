// Independent float64 reference of the modern attention options (grouped-query heads,
// a head width of its own, rotary embeddings with HF's rope_scaling types, ALiBi,
// sliding windows, logit soft-capping, attention sinks, QK-norm), of RMSNorm and of
// the (gated) feed-forward block, written plainly for the tests: loops, no tricks.
// Where a choice had to be made it follows Hugging Face transformers' modeling code
// (rotate_half / apply_rotary_pos_emb / repeat_kv of Llama, modeling_rope_utils.py,
// BLOOM's ALiBi slopes, Gemma 2's soft-capping, GPT-OSS's sinks, Qwen3's q_norm/k_norm),
// with this package's own rules on top: boolean masks are "nonzero = masked", causal
// masks are bottom-right aligned, and a query row that no mask leaves a key attends to
// nothing (zero attention, zero weights), never NaN.
//
// Positions. Without a cache, key j sits at position j and query i at Lk - Lq + i (so a
// decode step with a cache is the same call with the whole history as keys). ALiBi,
// the sliding window and the causal mask use these positions. opts.positionIds
// overrides the *rotary* positions of the new tokens only: the queries, and the last
// Lq keys when Lk >= Lq (the keys those same tokens produced); earlier keys keep j.
// opts.keyPositionIds overrides every key's rotary position explicitly.
//
// Order inside one head: q, k projected; q, k RMS-normalised per head (qkNorm); rotary
// on q and k; scores = (q . k) * scale; softcap c: c * tanh(s / c); then the additive
// terms (ALiBi, a float attnMask) and the masks (bool attnMask, keyPaddingMask,
// isCausal, slidingWindow); softmax over the visible keys plus the head's sink logit;
// the weights returned exclude the sink.
import { linear, erf } from './reference.mjs';

/** float32 machine epsilon: torch.nn.RMSNorm's eps when none is given (finfo(float32).eps). */
export const FLOAT32_EPS = 2 ** -23;

// ---------------------------------------------------------------------------------
// ALiBi slopes and rotary frequencies

/**
 * ALiBi slopes of H heads (Press et al.), with BLOOM's rule for head counts that are not
 * powers of two: the slopes of the largest power of two n <= H, then every other slope
 * of 2n heads (odd powers), H - n of them.
 */
export function alibiSlopes(H) {
  const n = 2 ** Math.floor(Math.log2(H));
  const slopes = [];
  const base = 2 ** -(2 ** -(Math.log2(n) - 3));  // 2^(-8/n)
  for (let p = 1; p <= n; p++) slopes.push(base ** p);
  if (n !== H) {
    const extraBase = 2 ** -(2 ** -(Math.log2(2 * n) - 3));  // 2^(-4/n)
    const remaining = Math.min(n, H - n);
    for (let p = 1; p < 1 + 2 * remaining; p += 2) slopes.push(extraBase ** p);
  }
  return Float64Array.from(slopes);
}

/** HF's default inverse frequencies: base^(-2i/dim), i = 0 .. dim/2 - 1. */
export function ropeDefault({ dim, base = 10000 }) {
  const invFreq = new Float64Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) invFreq[i] = 1 / base ** ((2 * i) / dim);
  return { invFreq, attentionFactor: 1 };
}

/** rope_scaling {type: 'linear', factor}: the default frequencies divided by factor. */
export function ropeLinear({ dim, base = 10000, factor }) {
  const { invFreq } = ropeDefault({ dim, base });
  return { invFreq: invFreq.map((f) => f / factor), attentionFactor: 1 };
}

/**
 * rope_scaling {type: 'llama3', factor, low_freq_factor, high_freq_factor,
 * original_max_position_embeddings} (HF _compute_llama3_parameters): wavelengths longer
 * than old/low are divided by factor, shorter than old/high kept, and in between a
 * smooth mix.
 */
export function ropeLlama3({ dim, base = 10000, factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings }) {
  const { invFreq } = ropeDefault({ dim, base });
  const old = originalMaxPositionEmbeddings;
  const lowFreqWavelen = old / lowFreqFactor, highFreqWavelen = old / highFreqFactor;
  const out = new Float64Array(invFreq.length);
  for (let i = 0; i < invFreq.length; i++) {
    const f = invFreq[i], wavelen = (2 * Math.PI) / f;
    if (wavelen < highFreqWavelen) out[i] = f;
    else if (wavelen > lowFreqWavelen) out[i] = f / factor;
    else {
      const smooth = (old / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
      out[i] = (1 - smooth) * (f / factor) + smooth * f;
    }
  }
  return { invFreq: out, attentionFactor: 1 };
}

/**
 * rope_scaling {type: 'yarn', factor, original_max_position_embeddings, beta_fast = 32,
 * beta_slow = 1, attention_factor, mscale, mscale_all_dim, truncate = true} (HF
 * _compute_yarn_parameters, the version with mscale and truncate): a ramp between the
 * interpolated (f / factor) and the extrapolated (f) frequency over the dimensions whose
 * rotation count at the original context length lies between beta_slow and beta_fast;
 * attention_factor defaults to 0.1 ln(factor) + 1 (or the mscale ratio DeepSeek uses).
 */
export function ropeYarn({ dim, base = 10000, factor, originalMaxPositionEmbeddings, betaFast = 32, betaSlow = 1, attentionFactor, mscale, mscaleAllDim, truncate = true }) {
  const getMscale = (scale, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
  let af = attentionFactor;
  if (af == null) af = mscale && mscaleAllDim ? getMscale(factor, mscale) / getMscale(factor, mscaleAllDim) : getMscale(factor);
  // the dimension index at which a frequency makes `rotations` turns over the original context
  const correctionDim = (rotations) => (dim * Math.log(originalMaxPositionEmbeddings / (rotations * 2 * Math.PI))) / (2 * Math.log(base));
  let low = correctionDim(betaFast), high = correctionDim(betaSlow);
  if (truncate) { low = Math.floor(low); high = Math.ceil(high); }
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (low === high) high += 0.001;
  const invFreq = new Float64Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    const posFreq = base ** ((2 * i) / dim);
    const extrapolation = 1 / posFreq, interpolation = 1 / (factor * posFreq);
    const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
    const extrapolationFactor = 1 - ramp;
    invFreq[i] = interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor;
  }
  return { invFreq, attentionFactor: af };
}

/**
 * From an HF config: { headDim, ropeTheta = 10000, partialRotaryFactor = 1,
 * maxPositionEmbeddings, ropeScaling } where ropeScaling is HF's rope_scaling dict
 * (snake_case keys, 'rope_type' or the older 'type'), or null. Returns the `rope`
 * option: { dim, base, invFreq (Float32Array, as HF keeps it), attentionFactor }.
 */
export function ropeFromHfConfig({ headDim, ropeTheta = 10000, partialRotaryFactor = 1, maxPositionEmbeddings, ropeScaling = null }) {
  const dim = Math.trunc(headDim * partialRotaryFactor), base = ropeTheta;
  const rs = ropeScaling ?? {}, type = rs.rope_type ?? rs.type ?? 'default';
  let r;
  if (type === 'default') r = ropeDefault({ dim, base });
  else if (type === 'linear') r = ropeLinear({ dim, base, factor: rs.factor });
  else if (type === 'llama3') {
    r = ropeLlama3({ dim, base, factor: rs.factor, lowFreqFactor: rs.low_freq_factor, highFreqFactor: rs.high_freq_factor, originalMaxPositionEmbeddings: rs.original_max_position_embeddings });
  } else if (type === 'yarn') {
    const originalMaxPositionEmbeddings = rs.original_max_position_embeddings ?? maxPositionEmbeddings;
    const factor = rs.factor ?? maxPositionEmbeddings / originalMaxPositionEmbeddings;
    r = ropeYarn({
      dim, base, factor, originalMaxPositionEmbeddings, betaFast: rs.beta_fast || 32, betaSlow: rs.beta_slow || 1,
      attentionFactor: rs.attention_factor, mscale: rs.mscale, mscaleAllDim: rs.mscale_all_dim, truncate: rs.truncate ?? true,
    });
  } else throw new Error(`rope type ${type} is not covered by this reference`);
  return { dim, base, invFreq: Float32Array.from(r.invFreq), attentionFactor: r.attentionFactor };
}

/** The rope option with its defaults filled in; invFreq as float64 values. */
export function resolveRope(rope, headDim) {
  const dim = rope.dim ?? headDim;
  if (dim % 2 !== 0 || dim > headDim || dim <= 0) throw new RangeError(`rope.dim ${dim} must be even and in (0, headDim ${headDim}]`);
  const invFreq = rope.invFreq ? Float64Array.from(rope.invFreq) : ropeDefault({ dim, base: rope.base ?? 10000 }).invFreq;
  if (invFreq.length !== dim / 2) throw new RangeError(`rope.invFreq has ${invFreq.length} entries, dim / 2 = ${dim / 2}`);
  return { dim, invFreq, interleaved: !!rope.interleaved, attentionFactor: rope.attentionFactor ?? 1 };
}

// ---------------------------------------------------------------------------------
// Rotary embedding, RMSNorm, feed-forward

/**
 * Rotary embedding of rows of width `width` (a Float32Array or Float64Array [rows *
 * width], e.g. [tokens, heads, headDim] flattened with width = headDim): row r is at
 * position pos(r). Returns a new Float64Array. rope: { base, dim, interleaved, invFreq,
 * attentionFactor } (resolved against width). The first rope.dim channels rotate, the
 * rest pass through unchanged (partial rotary).
 *   interleaved false (rotate_half, Llama/NeoX): channel c pairs with c + dim/2.
 *   interleaved true (GPT-J): channel 2c pairs with 2c + 1.
 * In pair c the angle is pos * invFreq[c]; cos and sin are multiplied by attentionFactor.
 */
export function applyRotaryReference(x, rows, width, pos, rope) {
  const { dim, invFreq, interleaved, attentionFactor } = resolveRope(rope, width);
  const y = Float64Array.from(x);
  const half = dim / 2;
  for (let r = 0; r < rows; r++) {
    const p = pos(r), o = r * width;
    for (let c = 0; c < half; c++) {
      const angle = p * invFreq[c];
      const cos = Math.cos(angle) * attentionFactor, sin = Math.sin(angle) * attentionFactor;
      const a = interleaved ? o + 2 * c : o + c, b = interleaved ? o + 2 * c + 1 : o + c + half;
      y[a] = x[a] * cos - x[b] * sin;
      y[b] = x[b] * cos + x[a] * sin;
    }
  }
  return y;
}

/**
 * RMSNorm over rows of width N: x / sqrt(mean(x^2) + eps) * (weightOffset + weight).
 * weight null means no scale (1). eps defaults to float32's epsilon (torch.nn.RMSNorm);
 * weightOffset 1 is Gemma's (1 + weight).
 */
export function rmsNormReference(x, M, N, weight, { eps = FLOAT32_EPS, weightOffset = 0 } = {}) {
  const y = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    let ms = 0;
    for (let k = 0; k < N; k++) ms += x[i * N + k] * x[i * N + k];
    const inv = 1 / Math.sqrt(ms / N + eps);
    for (let k = 0; k < N; k++) y[i * N + k] = x[i * N + k] * inv * (weight ? weightOffset + weight[k] : 1);
  }
  return y;
}

export const ACTIVATIONS = {
  relu: (s) => Math.max(s, 0),
  gelu: (s) => 0.5 * s * (1 + erf(s / Math.SQRT2)),
  gelu_tanh: (s) => 0.5 * s * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (s + 0.044715 * s * s * s))),
  silu: (s) => s / (1 + Math.exp(-s)),
};

/** x rounded to the nearest integer, ties to even. */
export const roundEven = (x) => { const f = Math.floor(x), d = x - f; return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f; };

/** W [N, K] as int8 per row: { q, scale, deq }. */
export function int8Rows(w, N, K) {
  const q = new Int8Array(N * K), scale = new Float32Array(N), deq = new Float32Array(N * K);
  for (let n = 0; n < N; n++) {
    let max = 0;
    for (let k = 0; k < K; k++) max = Math.max(max, Math.abs(w[n * K + k]));
    const s = Math.fround(max / 127);  // the core's float scale; w / s in float64, as the core divides
    scale[n] = s;
    for (let k = 0; k < K; k++) {
      q[n * K + k] = s === 0 ? 0 : Math.max(-127, Math.min(127, roundEven(w[n * K + k] / s)));
      deq[n * K + k] = q[n * K + k] * s;
    }
  }
  return { q, scale, deq };
}

/**
 * Feed-forward block on x [M, E]. cfg: { embedDim, hiddenDim, activation = 'relu',
 * gated = false }. Weights (PyTorch layout [out, in], biases optional):
 *   plain:  down(act(up(x)))            upProjWeight [F, E], downProjWeight [E, F]
 *   gated:  down(act(gate(x)) * up(x))  gateProjWeight [F, E], upProjWeight [F, E], downProjWeight [E, F]
 * with upProjBias, gateProjBias, downProjBias when present.
 */
export function feedForwardReference(cfg, w, M, x) {
  const E = cfg.embedDim, F = cfg.hiddenDim;
  const act = ACTIVATIONS[cfg.activation ?? 'relu'];
  if (!act) throw new Error(`activation ${cfg.activation}`);
  const up = linear(x, M, E, w.upProjWeight, F, w.upProjBias);
  const h = new Float64Array(M * F);
  if (cfg.gated) {
    const gate = linear(x, M, E, w.gateProjWeight, F, w.gateProjBias);
    for (let i = 0; i < M * F; i++) h[i] = act(gate[i]) * up[i];
  } else {
    for (let i = 0; i < M * F; i++) h[i] = act(up[i]);
  }
  return linear(h, M, F, w.downProjWeight, E, w.downProjBias);
}

// ---------------------------------------------------------------------------------
// The attention layer

/** The configuration with its defaults: see modernAttentionReference. */
export function resolveConfig(cfg) {
  const E = cfg.embedDim, H = cfg.numHeads;
  const Hkv = cfg.numKvHeads ?? H;
  const D = cfg.headDim ?? E / H;
  if (!Number.isInteger(D) || D <= 0) throw new RangeError(`headDim ${D}`);
  if (H % Hkv !== 0) throw new RangeError(`numHeads ${H} is not a multiple of numKvHeads ${Hkv}`);
  const bias = cfg.bias ?? true;
  return {
    E, H, Hkv, D, kdim: cfg.kdim ?? E, vdim: cfg.vdim ?? E,
    qkvBias: cfg.qkvBias ?? bias, outBias: cfg.outBias ?? bias,
    scale: cfg.scale ?? 1 / Math.sqrt(D),
    rope: cfg.rope ? resolveRope(cfg.rope, D) : null,
    slopes: cfg.alibi === true ? alibiSlopes(H) : cfg.alibi ? Float64Array.from(cfg.alibi) : null,
    slidingWindow: cfg.slidingWindow ?? null,
    softcap: cfg.softcap ?? null,
    qkNorm: cfg.qkNorm ?? null,
    qkNormEps: cfg.qkNormEps ?? 1e-6,
  };
}

/**
 * The projection weights by name: qProjWeight [H*D, E], kProjWeight [Hkv*D, kdim],
 * vProjWeight [Hkv*D, vdim] (or inProjWeight [(H + 2 Hkv) * D, E], their rows stacked,
 * when kdim == vdim == E), qProjBias/kProjBias/vProjBias (or inProjBias) when qkvBias,
 * outProjWeight [E, H*D], outProjBias [E] when outBias; sinks [H]; qNormWeight and
 * kNormWeight [D] with qkNorm.
 */
export function splitWeights(c, w) {
  const nq = c.H * c.D, nk = c.Hkv * c.D;
  const rowsOf = (a, from, n, width) => a.subarray(from * width, (from + n) * width);
  const wq = w.inProjWeight ? rowsOf(w.inProjWeight, 0, nq, c.E) : w.qProjWeight;
  const wk = w.inProjWeight ? rowsOf(w.inProjWeight, nq, nk, c.E) : w.kProjWeight;
  const wv = w.inProjWeight ? rowsOf(w.inProjWeight, nq + nk, nk, c.E) : w.vProjWeight;
  let bq = null, bk = null, bv = null;
  if (c.qkvBias) {
    bq = w.inProjBias ? w.inProjBias.subarray(0, nq) : w.qProjBias;
    bk = w.inProjBias ? w.inProjBias.subarray(nq, nq + nk) : w.kProjBias;
    bv = w.inProjBias ? w.inProjBias.subarray(nq + nk, nq + 2 * nk) : w.vProjBias;
  }
  return { wq, wk, wv, bq, bk, bv, wo: w.outProjWeight, bo: c.outBias ? w.outProjBias : null };
}

/**
 * The rotary positions of the queries and keys of batch b: { qPos(i), kPos(j) }.
 * positionIds: [B, Lq] or [Lq] (numbers, typed array or BigInt64Array).
 */
export function rotaryPositions(b, Lq, Lk, opts) {
  const ids = opts.positionIds, keyIds = opts.keyPositionIds;
  const perBatch = (a, L) => (a && a.length === L ? 0 : b * L);
  const pid = ids ? (i) => Number(ids[perBatch(ids, Lq) + i]) : null;
  const offset = Lk - Lq;
  return {
    qPos: (i) => (pid ? pid(i) : offset + i),
    kPos: (j) => {
      if (keyIds) return Number(keyIds[perBatch(keyIds, Lk) + j]);
      if (pid && j >= offset && offset >= 0) return pid(j - offset);
      return j;
    },
  };
}

/**
 * The modern attention layer in float64.
 *
 * cfg: { embedDim, numHeads, numKvHeads = numHeads, headDim = embedDim / numHeads,
 *   kdim = embedDim, vdim = embedDim, bias = true, qkvBias = bias, outBias = bias,
 *   rope: { base = 10000, dim = headDim, interleaved = false, invFreq, attentionFactor = 1 },
 *   alibi: true | slopes[numHeads], slidingWindow: W, softcap: c, scale = 1/sqrt(headDim),
 *   qkNorm: 'rms', qkNormEps = 1e-6 }. Sinks are on when weights.sinks is given.
 * weights: see splitWeights.
 * query [B, Lq, embedDim], key [B, Lk, kdim], value [B, Lk, vdim]: flat Float32Arrays.
 * opts: { attnMask ([Lq, Lk] with maskBroadcast, else [B, H, Lq, Lk]; Uint8Array nonzero =
 *   masked, Float32Array added), maskBroadcast, keyPaddingMask [B, Lk], isCausal,
 *   positionIds ([B, Lq] or [Lq]), keyPositionIds ([B, Lk] or [Lk]), needWeights,
 *   averageWeights = true }.
 * Returns { output: Float64Array [B, Lq, E], weights: [B, Lq, Lk] averaged over heads or
 *   [B, H, Lq, Lk], or null; q, k, v: the per-head tensors after norm and rotary
 *   ([B, Lq, H, D], [B, Lk, Hkv, D], [B, Lk, Hkv, D]) for the tests }.
 */
export function modernAttentionReference(cfg, weights, B, Lq, Lk, query, key, value, opts = {}) {
  const c = resolveConfig(cfg);
  const { E, H, Hkv, D } = c;
  const group = H / Hkv;  // query head h reads KV head floor(h / group) (HF repeat_kv)
  const p = splitWeights(c, weights);

  // 1. projections: q [B, Lq, H, D], k and v [B, Lk, Hkv, D]
  let q = linear(query, B * Lq, E, p.wq, H * D, p.bq);
  let k = linear(key, B * Lk, c.kdim, p.wk, Hkv * D, p.bk);
  const v = linear(value, B * Lk, c.vdim, p.wv, Hkv * D, p.bv);

  // 2. QK-norm: RMSNorm over each head's vector
  if (c.qkNorm === 'rms') {
    q = rmsNormReference(q, B * Lq * H, D, weights.qNormWeight, { eps: c.qkNormEps });
    k = rmsNormReference(k, B * Lk * Hkv, D, weights.kNormWeight, { eps: c.qkNormEps });
  } else if (c.qkNorm) throw new Error(`qkNorm ${c.qkNorm}`);

  // 3. rotary: row r of q is (b, i, h) = (floor(r / (Lq H)), floor(r / H) % Lq, r % H)
  if (c.rope) {
    q = applyRotaryReference(q, B * Lq * H, D, (r) => rotaryPositions(Math.floor(r / (Lq * H)), Lq, Lk, opts).qPos(Math.floor(r / H) % Lq), c.rope);
    k = applyRotaryReference(k, B * Lk * Hkv, D, (r) => rotaryPositions(Math.floor(r / (Lk * Hkv)), Lq, Lk, opts).kPos(Math.floor(r / Hkv) % Lk), c.rope);
  }

  // 4. attention, one (b, h) at a time
  const attn = new Float64Array(B * Lq * H * D);
  const average = opts.averageWeights !== false;
  const weightsOut = opts.needWeights ? new Float64Array(B * (average ? 1 : H) * Lq * Lk) : null;
  const maskStrideB = opts.maskBroadcast ? 0 : H * Lq * Lk, maskStrideH = opts.maskBroadcast ? 0 : Lq * Lk;
  const boolMask = opts.attnMask instanceof Uint8Array;
  const s = new Float64Array(Lk), prob = new Float64Array(Lk);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / group);
      for (let i = 0; i < Lq; i++) {
        const posQ = Lk - Lq + i;
        let m = -Infinity, nan = false, visible = false;
        for (let j = 0; j < Lk; j++) {
          let d = 0;
          for (let t = 0; t < D; t++) d += q[((b * Lq + i) * H + h) * D + t] * k[((b * Lk + j) * Hkv + kvh) * D + t];
          d *= c.scale;
          if (c.softcap) d = c.softcap * Math.tanh(d / c.softcap);
          if (c.slopes) d += -c.slopes[h] * Math.abs(posQ - j);
          const mi = b * maskStrideB + h * maskStrideH + i * Lk + j;
          const add = opts.attnMask && !boolMask ? opts.attnMask[mi] : 0;
          d += add;
          const hidden = (boolMask && opts.attnMask[mi] !== 0) ||
            (opts.keyPaddingMask && opts.keyPaddingMask[b * Lk + j] !== 0) ||
            (opts.isCausal && j > posQ) ||
            (c.slidingWindow != null && Math.abs(posQ - j) >= c.slidingWindow);
          if (hidden) d += -Infinity;
          if (!hidden && add !== -Infinity) visible = true;
          s[j] = d;
          if (Number.isNaN(d)) nan = true;
          else if (d > m) m = d;
        }
        if (!visible || (!nan && m === -Infinity)) continue;  // attends to nothing: zeros
        const sink = weights.sinks ? Number(weights.sinks[h]) : null;
        if (sink !== null && sink > m) m = sink;
        if (nan) m = NaN;
        let sum = sink !== null ? Math.exp(sink - m) : 0;
        for (let j = 0; j < Lk; j++) sum += (prob[j] = Math.exp(s[j] - m));
        for (let j = 0; j < Lk; j++) prob[j] /= sum;
        for (let t = 0; t < D; t++) {
          let acc = 0;
          for (let j = 0; j < Lk; j++) acc += prob[j] * v[((b * Lk + j) * Hkv + kvh) * D + t];
          attn[((b * Lq + i) * H + h) * D + t] = acc;
        }
        if (weightsOut)
          for (let j = 0; j < Lk; j++) {
            if (average) weightsOut[(b * Lq + i) * Lk + j] += prob[j] / H;
            else weightsOut[((b * H + h) * Lq + i) * Lk + j] = prob[j];
          }
      }
    }

  // 5. output projection [B, Lq, H*D] -> [B, Lq, E]
  const output = linear(attn, B * Lq, H * D, p.wo, E, p.bo);
  return { output, weights: weightsOut, q, k, v };
}

/**
 * Random weights for a configuration (camelCase names, flat Float32Arrays): projections
 * in +-1/sqrt(fan-in), biases when the config has them, norm weights in [0.5, 1.5],
 * sinks in [-1, 1] when withSinks.
 */
export function modernWeights(r, cfg, { withSinks = false } = {}) {
  const c = resolveConfig(cfg);
  const u = (n, a) => Float32Array.from({ length: n }, () => (2 * r() - 1) * a);
  const w = {
    qProjWeight: u(c.H * c.D * c.E, 1 / Math.sqrt(c.E)),
    kProjWeight: u(c.Hkv * c.D * c.kdim, 1 / Math.sqrt(c.kdim)),
    vProjWeight: u(c.Hkv * c.D * c.vdim, 1 / Math.sqrt(c.vdim)),
    outProjWeight: u(c.E * c.H * c.D, 1 / Math.sqrt(c.H * c.D)),
  };
  if (c.qkvBias) Object.assign(w, { qProjBias: u(c.H * c.D, 0.5), kProjBias: u(c.Hkv * c.D, 0.5), vProjBias: u(c.Hkv * c.D, 0.5) });
  if (c.outBias) w.outProjBias = u(c.E, 0.5);
  if (c.qkNorm) Object.assign(w, { qNormWeight: Float32Array.from({ length: c.D }, () => 0.5 + r()), kNormWeight: Float32Array.from({ length: c.D }, () => 0.5 + r()) });
  if (withSinks) w.sinks = u(c.H, 1);
  return w;
}

// ---------------------------------------------------------------------------------
// scaledDotProductAttention with the modern options

/**
 * Scaled dot-product attention with grouped k/v heads and the modern options, in
 * float64. q [B, H, Lq, D], k [B, Hkv, Lk, D], v [B, Hkv, Lk, Dv] (flat arrays); query
 * head h reads k/v head floor(h / (H / Hkv)) (PyTorch's enable_gqa, HF's repeat_kv).
 * Query i sits at position Lk - Lq + i and key j at j (bottom-right, like isCausal).
 * opts: { attnMask ([Lq, Lk] with maskBroadcast, else [B, H, Lq, Lk]; Uint8Array
 *   nonzero = masked, Float32Array added), maskBroadcast, keyPaddingMask [B, Lk],
 *   isCausal, scale = 1 / sqrt(D), softcap, alibiSlopes [H], slidingWindow, sinks [H] }.
 * Per score: (q . k) * scale; softcap c: c * tanh(s / c); minus slope_h * |pos_q - pos_k|;
 * plus a float mask; then the masks (bool, padding, causal, window |pos_q - pos_k| >= W);
 * softmax over the visible keys and the head's sink logit; the weights leave the sink
 * out. A row with no visible key attends to nothing (zeros). For finite inputs (the
 * NaN rules of reference.mjs are not repeated here).
 * Returns { output [B, H, Lq, Dv], weights [B, H, Lq, Lk] } (Float64Arrays).
 */
export function modernSdpaReference({ B, H, Hkv = H, Lq, Lk, D, Dv = D }, q, k, v, opts = {}) {
  if (H % Hkv !== 0) throw new RangeError(`H ${H} is not a multiple of Hkv ${Hkv}`);
  const group = H / Hkv, scale = opts.scale ?? 1 / Math.sqrt(D);
  const output = new Float64Array(B * H * Lq * Dv), weights = new Float64Array(B * H * Lq * Lk);
  const boolMask = opts.attnMask instanceof Uint8Array;
  const s = new Float64Array(Lk);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / group);
      for (let i = 0; i < Lq; i++) {
        const posQ = Lk - Lq + i;
        let m = -Infinity, visible = false;
        for (let j = 0; j < Lk; j++) {
          let d = 0;
          for (let t = 0; t < D; t++) d += q[((b * H + h) * Lq + i) * D + t] * k[((b * Hkv + g) * Lk + j) * D + t];
          d *= scale;
          if (opts.softcap != null) d = opts.softcap * Math.tanh(d / opts.softcap);
          if (opts.alibiSlopes) d -= opts.alibiSlopes[h] * Math.abs(posQ - j);
          const mi = opts.maskBroadcast ? i * Lk + j : ((b * H + h) * Lq + i) * Lk + j;
          if (opts.attnMask && !boolMask) d += opts.attnMask[mi];
          const hidden = (boolMask && opts.attnMask[mi] !== 0) ||
            (opts.keyPaddingMask && opts.keyPaddingMask[b * Lk + j] !== 0) ||
            (opts.isCausal && j > posQ) ||
            (opts.slidingWindow != null && Math.abs(posQ - j) >= opts.slidingWindow);
          s[j] = hidden ? -Infinity : d;
          if (s[j] !== -Infinity) visible = true;
          m = Math.max(m, s[j]);
        }
        if (!visible) continue;
        const sink = opts.sinks ? Number(opts.sinks[h]) : -Infinity;
        m = Math.max(m, sink);
        let sum = Math.exp(sink - m);
        for (let j = 0; j < Lk; j++) sum += Math.exp(s[j] - m);
        const row = ((b * H + h) * Lq + i) * Lk;
        for (let j = 0; j < Lk; j++) weights[row + j] = Math.exp(s[j] - m) / sum;
        for (let t = 0; t < Dv; t++) {
          let acc = 0;
          for (let j = 0; j < Lk; j++) acc += weights[row + j] * v[((b * Hkv + g) * Lk + j) * Dv + t];
          output[((b * H + h) * Lq + i) * Dv + t] = acc;
        }
      }
    }
  return { output, weights };
}
