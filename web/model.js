// The playground's inputs, as plain functions of the settings (no DOM), so the
// page and the end-to-end test build exactly the same numbers.
//   tokens -> embeddings (a fixed pseudo-random vector per word) + sinusoidal
//   positions -> a layer whose heads compare tokens in their own subspaces.

export const MAX_TOKENS = 40;
export const PAD = '<pad>';

/** Lower-cased words, numbers and punctuation marks, at most MAX_TOKENS. */
export function tokenize(text) {
  return (String(text).toLowerCase().match(/[\p{L}\p{N}']+|[^\s\p{L}\p{N}]/gu) || []).slice(0, MAX_TOKENS);
}

/** xorshift32 in [0, 1). */
export function rng(seed) {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}

/** FNV-1a of a string: the seed of a word's embedding. */
export function hash(str) {
  let h = 0x811c9dc5;
  for (const ch of str) {
    h ^= ch.codePointAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** A standard normal draw (Box-Muller) from a uniform source. */
const normal = (r) => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());

/** The angular frequency of dims (c, c + 1) in a dim-wide position encoding: 1 / 10000^(c/dim), c even. */
export const positionFrequency = (c, dim) => 1 / 10000 ** (c / dim);

/** Sinusoidal position encoding (Vaswani et al.): PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(...). */
export function positionEncoding(pos, dim, out = new Float32Array(dim)) {
  for (let i = 0; i < dim; i += 2) {
    const a = pos * positionFrequency(i, dim);
    out[i] = Math.sin(a);
    if (i + 1 < dim) out[i + 1] = Math.cos(a);
  }
  return out;
}

/** The word vector fills the first half of an embedding, the position encoding the rest. */
export const wordDims = (dim) => Math.ceil(dim / 2);

/**
 * Embeddings of a batch of token lists, padded to the longest with PAD:
 * { data: Float32Array [B, L, dim], dims, tokens (padded), padMask: Uint8Array [B, L] (1 = pad) }.
 * token embedding + position encoding, each in its own half of the dims (so a
 * head can attend by word or by position): the word vector (random signs,
 * +-1, fixed per word) in the first half, the sinusoidal encoding of the position
 * (times posScale) in the second.
 */
export function embedBatch(batch, dim, { posScale = 1 } = {}) {
  const B = batch.length, L = Math.max(1, ...batch.map((t) => t.length));
  const data = new Float32Array(B * L * dim), padMask = new Uint8Array(B * L);
  const tokens = [], Wd = wordDims(dim), pe = new Float32Array(dim - Wd);
  for (let b = 0; b < B; b++) {
    const row = [];
    for (let p = 0; p < L; p++) {
      const word = batch[b][p];
      row.push(word ?? PAD);
      if (word === undefined) { padMask[b * L + p] = 1; continue; }  // pads stay zero: they are masked anyway
      const r = rng(hash(word));
      positionEncoding(p, dim - Wd, pe);
      const o = (b * L + p) * dim;
      for (let c = 0; c < Wd; c++) data[o + c] = r() < 0.5 ? -1 : 1;
      for (let c = Wd; c < dim; c++) data[o + c] = posScale * pe[c - Wd];
    }
    tokens.push(row);
  }
  return { data, dims: [B, L, dim], tokens, padMask };
}

// What each demo head is built to look at, cycling when there are more heads:
// uniform: every key it may see, equally; offset k: the token k places away
// (-1: the previous one); word: the keys holding the same word as the query.
export const HEAD_ROLES = Object.freeze([
  { kind: 'uniform' }, { kind: 'offset', k: -1 }, { kind: 'offset', k: 1 }, { kind: 'word' },
  { kind: 'offset', k: -2 }, { kind: 'offset', k: 2 }, { kind: 'offset', k: -3 }, { kind: 'offset', k: 3 },
].map(Object.freeze));
export const headRole = (h) => HEAD_ROLES[h % HEAD_ROLES.length];

/** A role in words: "previous token", "2 tokens ahead", "same word", "all tokens equally". */
export function roleName(role) {
  if (role.kind === 'uniform') return 'all tokens equally';
  if (role.kind === 'word') return 'same word';
  const k = role.k;
  if (k === -1) return 'previous token';
  if (k === 1) return 'next token';
  return k < 0 ? `${-k} tokens back` : `${k} tokens ahead`;
}

/**
 * The key indices where a head of this role should put its weight for query i
 * (tokens: the padded row), or null for a pad query or a target outside the
 * sequence. uniform: every non-pad key.
 */
export function roleTargets(role, tokens, i) {
  if (tokens[i] === PAD) return null;
  const all = tokens.map((_, j) => j).filter((j) => tokens[j] !== PAD);
  if (role.kind === 'uniform') return all;
  if (role.kind === 'word') return all.filter((j) => tokens[j] === tokens[i]);
  const j = i + role.k;
  return j >= 0 && j < tokens.length && tokens[j] !== PAD ? [j] : null;
}

/**
 * How far a map (L x L, row-major: the weights the package returned) follows a
 * role, over the rows whose target a mask leaves visible (weight > 0): for a
 * position or word role the mean weight on the target keys; for uniform, the
 * mean of 1 - (total variation distance from equal weights over the keys with
 * weight > 0). { share: 0..1 or null when no row can see its target, rows }.
 */
export function roleShare(role, tokens, data) {
  const L = tokens.length;
  let sum = 0, rows = 0;
  for (let i = 0; i < L; i++) {
    const t = roleTargets(role, tokens, i);
    if (!t) continue;
    const w = data.subarray ? data.subarray(i * L, (i + 1) * L) : data.slice(i * L, (i + 1) * L);
    if (role.kind === 'uniform') {
      const seen = t.filter((j) => w[j] > 0);
      if (seen.length === 0) continue;
      let tv = 0;
      for (const j of seen) tv += Math.abs(w[j] - 1 / seen.length);
      sum += 1 - tv / 2;
    } else {
      if (!t.some((j) => w[j] > 0)) continue;
      sum += t.reduce((a, j) => a + w[j], 0);
    }
    rows++;
  }
  return { share: rows ? sum / rows : null, rows };
}

// The rotary embedding's base (the package's rope: true default).
export const ROPE_BASE = 10000;
const FAST = 1.5;  // a pair turning more than this (radians) over MAX_TOKENS - 1 positions carries position, slower ones words

/**
 * How a head's D channels are used. Channels p and p + D/2 form rotary pair p,
 * which turns by theta(p) = ROPE_BASE^(-2p/D) radians per position when rope is
 * on. The fast pairs closest to 1, 1/3 and 1/10 radians carry position (pos), the
 * slow pairs carry the word (word): a slow pair barely turns over a sentence, so
 * rotary positions hardly disturb word matching (trained RoPE models use their
 * channels the same way). Every head uses this layout, so heads that share a KV
 * head (numKvHeads < numHeads) find what they need in the shared keys.
 */
export function headLayout(D) {
  if (!Number.isInteger(D) || D < 2 || D % 2) throw new RangeError(`the demo heads need an even head size, got ${D}`);
  const half = D / 2, theta = (p) => ROPE_BASE ** ((-2 * p) / D);
  const fast = [], word = [];
  for (let p = 0; p < half; p++) (theta(p) * (MAX_TOKENS - 1) > FAST ? fast : word).push(p);
  const pos = [];
  for (const t of [1, 1 / 3, 1 / 10]) {
    let best = -1;
    for (const p of fast)
      if (!pos.includes(p) && (best < 0 || Math.abs(Math.log(theta(p) / t)) < Math.abs(Math.log(theta(best) / t)))) best = p;
    if (best >= 0) pos.push(best);
  }
  return { half, pos, word, theta };
}

/** K(0) - max K(d) over 0 < |d| < MAX_TOKENS, where K(d) = sum of cos(d f) over the frequencies: how much a position head prefers its target. */
export function kernelGap(freqs) {
  const K = (d) => freqs.reduce((a, f) => a + Math.cos(d * f), 0);
  let top = -Infinity;
  for (let d = 1; d < MAX_TOKENS; d++) top = Math.max(top, K(d));
  return K(0) - top;
}

// Scores, in nats at sharpness 1: a position head's target beats every other
// key by at least POS_GAP (capped, so that small heads, whose one or two
// position frequencies repeat, stay readable); a word head's score drops by
// 2 WORD_UNIT for each word channel where two words differ.
const POS_GAP = 2.5, MAX_AMP = 40, WORD_UNIT = 1.2;

/** n distinct dims of m, at random (n <= m). */
function pick(r, n, m) {
  const dims = Array.from({ length: m }, (_, i) => i);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(r() * (m - i));
    [dims[i], dims[j]] = [dims[j], dims[i]];
  }
  return dims.slice(0, n);
}

/**
 * Weights (PyTorch layout, camelCase, packed inProjWeight [(H + 2 Hkv) D, E])
 * for a layer whose heads make readable maps; not trained, made to be read.
 *
 * Keys (one set per KV head): the position channels hold the position, the
 * word channels some of the word vector's dims (+-1 each, so a word matches
 * itself in every channel and another word in about half). Queries: a
 * position head (offset k) holds its position shifted by k, so query i scores key
 * i + k highest (K(d) = sum cos((j - i - k) f) peaks at j = i + k); a word head
 * holds the same dims, so equal words score highest; a uniform head
 * holds nothing, so every score is 0.
 *
 * The position comes from the input's sinusoidal encoding (embedBatch), whose
 * pair (sin pf, cos pf) a query rotates by k f (each channel pair reads exactly
 * one sinusoid pair: a random mix of them would make a score depend on i as well
 * as on j - i, and the heads would drift to other offsets and to the sentence's
 * end), or, with rope, from the rotary
 * embedding alone: constant key and query vectors (biases) that the package
 * rotates by each token's position, the query's turned by k theta in advance,
 * and then the input carries no position (playInput: posScale 0).
 * sharpness scales the queries; values and the output projection are random.
 */
export function demoWeights({ embedDim: E, numHeads: H, numKvHeads: Hkv = H, rope = false, seed = 1, sharpness = 1 }) {
  const r = rng(seed * 2654435761 + E * 31 + H);
  const D = E / H, Wd = wordDims(E), P = E - Wd, group = H / Hkv;
  const { half, pos, word, theta } = headLayout(D);
  const wordPairs = word.slice(0, Math.floor(Wd / 2));  // as many dims as the word vector has, at most
  const nq = H * D, nk = Hkv * D;
  const inProjWeight = new Float32Array((nq + 2 * nk) * E), inProjBias = new Float32Array(nq + 2 * nk);
  // The input's sinusoid pair (dims Wd + c, Wd + c + 1) whose frequency is nearest theta(p).
  const pePair = (p) => {
    let best = 0;
    for (let c = 0; c + 1 < P; c += 2)
      if (Math.abs(Math.log(positionFrequency(c, P) / theta(p))) < Math.abs(Math.log(positionFrequency(best, P) / theta(p)))) best = c;
    return best;
  };
  const freq = (p) => (rope ? theta(p) : positionFrequency(pePair(p), P));
  const root = Math.sqrt(D);  // the layer scales scores by 1/sqrt(D)
  const posAmp = pos.length ? Math.min(MAX_AMP, (sharpness * POS_GAP) / kernelGap(pos.map(freq))) * root : 0;
  const wordAmp = sharpness * WORD_UNIT * root;
  const row = (n) => inProjWeight.subarray(n * E, (n + 1) * E);
  const projections = [];
  for (let g = 0; g < Hkv; g++) {
    const k0 = nq + g * D, v0 = nq + nk + g * D;
    for (const p of pos) {
      if (rope) inProjBias[k0 + p] = 1;
      else {
        const c = pePair(p);
        row(k0 + p)[Wd + c] = 1;
        row(k0 + p + half)[Wd + c + 1] = 1;
      }
    }
    const dims = pick(r, 2 * wordPairs.length, Wd);
    wordPairs.forEach((p, n) => {
      row(k0 + p)[dims[2 * n]] = 1;
      row(k0 + p + half)[dims[2 * n + 1]] = 1;
    });
    projections.push(dims);
    for (let d = 0; d < D; d++) {
      const v = row(v0 + d);
      for (let c = 0; c < E; c++) v[c] = normal(r) / Math.sqrt(E);
    }
  }
  for (let h = 0; h < H; h++) {
    const role = headRole(h), q0 = h * D, dims = projections[Math.floor(h / group)];
    if (role.kind === 'offset') {
      for (const p of pos) {
        const f = freq(p), a = role.k * f, cos = Math.cos(a) * posAmp, sin = Math.sin(a) * posAmp;
        if (rope) {
          inProjBias[q0 + p] = cos;  // turned by k theta: after rotary, query i points where key i + k does
          inProjBias[q0 + p + half] = sin;
        } else {
          const c = pePair(p);  // (sin if, cos if) -> (sin (i+k)f, cos (i+k)f)
          row(q0 + p)[Wd + c] = cos;
          row(q0 + p)[Wd + c + 1] = sin;
          row(q0 + p + half)[Wd + c] = -sin;
          row(q0 + p + half)[Wd + c + 1] = cos;
        }
      }
    } else if (role.kind === 'word') {
      wordPairs.forEach((p, n) => {
        row(q0 + p)[dims[2 * n]] = wordAmp;
        row(q0 + p + half)[dims[2 * n + 1]] = wordAmp;
      });
    }
  }
  const outProjWeight = Float32Array.from({ length: E * nq }, () => normal(r) / Math.sqrt(nq));
  return { inProjWeight, inProjBias, outProjWeight, outProjBias: new Float32Array(E) };
}

/** The playground's input for a batch of token lists: positions in the input, or (rope) none: the rotary embedding adds them. */
export const playInput = (batch, { embedDim, rope = false }) => embedBatch(batch, embedDim, { posScale: rope ? 0 : 1 });

/** Head-averaged weights [B, L, L] from per-head weights [B, H, L, L]. */
export function averageHeads(w, B, H, L) {
  const out = new Float32Array(B * L * L);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < L * L; i++) out[b * L * L + i] += w[(b * H + h) * L * L + i] / H;
  return out;
}

/** Divisors of n that can be head counts (head size >= 1), at most max. */
export const headChoices = (n, max = 16) => Array.from({ length: Math.min(n, max) }, (_, i) => i + 1).filter((h) => n % h === 0);
