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
 * head can attend by word or by position): the word vector (unit-variance,
 * fixed per word) in the first half, the sinusoidal encoding of the position
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
      for (let c = 0; c < Wd; c++) data[o + c] = normal(r);
      for (let c = Wd; c < dim; c++) data[o + c] = posScale * pe[c - Wd];
    }
    tokens.push(row);
  }
  return { data, dims: [B, L, dim], tokens, padMask };
}

// What each demo head is built to look at (cycling when there are more heads):
// null: the same word; k: the token k places away (-1: the previous one).
export const HEAD_OFFSETS = [null, -1, 1, -2];
export function headRole(h) {
  const k = HEAD_OFFSETS[h % HEAD_OFFSETS.length];
  if (k === null) return 'same word';
  return k < 0 ? `${-k === 1 ? 'previous token' : `${-k} tokens back`}` : `${k === 1 ? 'next token' : `${k} tokens ahead`}`;
}

/**
 * Weights (PyTorch layout, camelCase) for a layer whose heads make readable maps.
 * Word heads compare the word halves of two embeddings through a random
 * projection P_h. Position heads project queries with P_h and keys with P_h R on
 * the position half, where R rotates each sin/cos pair by -k positions
 * (PE(p + k) is a rotation of PE(p)), so query i scores key i + k highest.
 * sharpness scales the scores. Not trained: made to be read.
 */
export function demoWeights({ embedDim: E, numHeads: H, seed = 1, sharpness = 1 }) {
  const r = rng(seed * 2654435761 + E * 31 + H);
  const D = E / H, Wd = wordDims(E), P = E - Wd;
  const inProjWeight = new Float32Array(3 * E * E);
  const s = Math.sqrt(sharpness) / Math.sqrt(E) * Math.sqrt(Math.sqrt(D));
  for (let i = 0; i < E; i++) {
    const off = HEAD_OFFSETS[Math.floor(i / D) % HEAD_OFFSETS.length];  // this row's head
    const q = inProjWeight.subarray(i * E, (i + 1) * E), k = inProjWeight.subarray((E + i) * E, (E + i + 1) * E);
    if (off === null) {
      for (let c = 0; c < Wd; c++) q[c] = k[c] = normal(r) * s * Math.SQRT2;
    } else {
      for (let c = 0; c < P; c += 2) {
        const p0 = normal(r) * s * 2, p1 = c + 1 < P ? normal(r) * s * 2 : 0;
        const b = -off * positionFrequency(c, P), cb = Math.cos(b), sb = Math.sin(b);
        q[Wd + c] = p0;
        k[Wd + c] = p0 * cb - p1 * sb;                 // W_k = P R
        if (c + 1 < P) {
          q[Wd + c + 1] = p1;
          k[Wd + c + 1] = p0 * sb + p1 * cb;
        }
      }
    }
    for (let c = 0; c < E; c++) inProjWeight[(2 * E + i) * E + c] = normal(r) / Math.sqrt(E);  // W_v
  }
  const outProjWeight = Float32Array.from({ length: E * E }, () => normal(r) / Math.sqrt(E));
  return { inProjWeight, inProjBias: new Float32Array(3 * E), outProjWeight, outProjBias: new Float32Array(E) };
}

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
