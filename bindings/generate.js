// mha-wasm/models: choosing the next token from a row of logits, as transformers'
// generate() does: the repetition penalty (RepetitionPenaltyLogitsProcessor), then for
// sampling temperature, top-k and top-p (TemperatureLogitsWarper, TopKLogitsWarper,
// TopPLogitsWarper, in that order) and a draw from the softmax with a seeded generator;
// greedy (do_sample=False) takes the argmax (the first index among equals).
import { describe, plainObject } from './validate.js';

export const GENERATE_OPTIONS = ['maxNewTokens', 'temperature', 'topK', 'topP', 'seed', 'repetitionPenalty', 'stopTokens', 'onToken', 'attentionMask', 'signal', 'cache'];

const bad = (Err, what, v) => { throw new Err(`generate: options.${what}, got ${describe(v)}`); };

/** generate()'s options, checked; vocab bounds the token ids. */
export function readGenerateOptions(options, vocab) {
  const o = plainObject('generate options', options ?? {}, GENERATE_OPTIONS);
  const num = (k, ok, msg) => {
    const v = o[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'number') bad(TypeError, `${k} must be ${msg}`, v);
    if (!ok(v)) bad(RangeError, `${k} must be ${msg}`, v);
    return v;
  };
  const maxNewTokens = num('maxNewTokens', (v) => Number.isSafeInteger(v) && v >= 1, 'a positive integer') ?? 20;
  const temperature = num('temperature', (v) => v >= 0 && Number.isFinite(v), 'a number >= 0 (0 = greedy)');
  const topK = num('topK', (v) => Number.isSafeInteger(v) && v >= 1, 'a positive integer');
  const topP = num('topP', (v) => v > 0 && v <= 1, 'a number in (0, 1]');
  const seed = num('seed', (v) => Number.isSafeInteger(v), 'a safe integer (|seed| <= 2 ** 53 - 1)');
  const repetitionPenalty = num('repetitionPenalty', (v) => v > 0 && Number.isFinite(v), 'a positive number (1 = none)') ?? 1;
  let stopTokens = [];
  if (o.stopTokens !== undefined && o.stopTokens !== null) {
    const s = o.stopTokens;
    if (!Array.isArray(s) && !(ArrayBuffer.isView(s) && !(s instanceof DataView))) bad(TypeError, 'stopTokens must be an array of token ids', s);
    stopTokens = Array.from(s, (t) => {
      if (!Number.isSafeInteger(t) || t < 0 || t >= vocab)
        bad(typeof t === 'number' ? RangeError : TypeError, `stopTokens must hold token ids below the vocabulary's ${vocab}`, t);
      return t;
    });
  }
  if (o.onToken !== undefined && typeof o.onToken !== 'function') bad(TypeError, 'onToken must be a function', o.onToken);
  // An AbortSignal (or an object like one: its aborted and reason, as a polyfill has them).
  const signal = o.signal ?? null;
  if (signal !== null && (typeof signal !== 'object' || typeof signal.aborted !== 'boolean' || typeof signal.addEventListener !== 'function'))
    bad(TypeError, 'signal must be an AbortSignal', signal);
  // Sampling when a sampling option says so; temperature 0 is greedy.
  const sample = temperature !== 0 && (temperature !== undefined || topK !== undefined || topP !== undefined);
  return { maxNewTokens, temperature: temperature ?? 1, topK, topP, seed, repetitionPenalty, stopTokens, onToken: o.onToken, attentionMask: o.attentionMask, signal, sample, cache: o.cache === undefined ? null : o.cache };
}

/** Throws signal's reason once it is aborted (AbortSignal.throwIfAborted, which older engines lack). */
export function throwIfAborted(signal) {
  if (!signal?.aborted) return;
  throw signal.reason ?? (typeof DOMException === 'function' ? new DOMException('This operation was aborted', 'AbortError') : new Error('This operation was aborted'));
}

/**
 * mulberry32: a small seeded generator of numbers in [0, 1). seed: a safe integer; its bits
 * above the low 32 are mixed in (so 1 and 2 ** 32 + 1, or -1 and 2 ** 32 - 1, differ), and
 * seeds in [0, 2 ** 32) are mulberry32's own.
 */
export function seededRandom(seed) {
  const hi = Math.floor(seed / 2 ** 32);  // |hi| < 2 ** 21 for a safe integer
  let a = ((seed >>> 0) ^ Math.imul(hi | 0, 0x9e3779b9)) >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A chooser of next tokens: pick(logits, seen) -> token id, where logits is one row
 * (Float32Array [vocab]) and seen a Uint8Array [vocab] marking the tokens of the sequence
 * so far (for the repetition penalty). Its scratch arrays are allocated once and reused
 * from step to step: a vocabulary's row of float64 is hundreds of KB, and fresh memory
 * costs more to touch than the work done on it (on a 2-CPU VM, 49152 floats took 0.6 ms to
 * write into a new array and 0.03 ms into a reused one).
 */
export function tokenChooser(opts) {
  const random = opts.sample ? seededRandom(opts.seed ?? Math.floor(Math.random() * 2 ** 32)) : null;
  let s = null, p = null, tmp = null, order = null;
  return (logits, seen) => {
    const V = logits.length;
    if (!s || s.length !== V) s = new Float64Array(V), p = new Float64Array(V), tmp = new Float64Array(V), order = new Int32Array(V);
    s.set(logits);
    // NaN logits come from non-finite weights or inputs: no token can be chosen from them
    // (torch.argmax would pick the NaN, HF's sampling raises).
    for (let t = 0; t < V; t++) if (Number.isNaN(s[t])) throw new RangeError(`the logits hold NaN (token ${t}): the model's weights or inputs are not finite`);
    if (opts.repetitionPenalty !== 1) {
      const r = opts.repetitionPenalty;
      for (let t = 0; t < V; t++) if (seen[t]) s[t] = s[t] < 0 ? s[t] * r : s[t] / r;
    }
    if (!opts.sample) {
      let best = 0;
      for (let t = 1; t < V; t++) if (s[t] > s[best]) best = t;
      return best;
    }
    if (opts.temperature !== 1) {
      // (s - max) / T: the same softmax, top-k and top-p as s / T, without overflowing to
      // Infinity when T is tiny (the largest score stays 0, the rest go towards -Infinity).
      let m = -Infinity;
      for (let t = 0; t < V; t++) if (s[t] > m) m = s[t];
      if (Number.isFinite(m)) for (let t = 0; t < V; t++) s[t] = (s[t] - m) / opts.temperature;
    }
    if (opts.topK !== undefined && opts.topK < V) {
      // keep every score >= the k-th largest (ties at the edge stay, as torch.topk's threshold does)
      tmp.set(s);
      const kth = nthSmallest(tmp, V - opts.topK);
      for (let t = 0; t < V; t++) if (s[t] < kth) s[t] = -Infinity;
    }
    if (opts.topP !== undefined && opts.topP < 1) {
      // sorted ascending, drop the tokens whose cumulative probability is <= 1 - topP (always keep the
      // top one). Tokens already at -Infinity have probability 0 and stay dropped, so only the others
      // are sorted (after top-k, a few).
      let n = 0;
      for (let t = 0; t < V; t++) if (s[t] !== -Infinity) order[n++] = t;
      const live = order.subarray(0, n).sort((a, b) => s[a] - s[b] || a - b);
      softmax(s, p);
      let cum = 0;
      for (let i = 0; i < n - 1; i++) {
        cum += p[live[i]];
        if (cum <= 1 - opts.topP) s[live[i]] = -Infinity;
        else break;
      }
    }
    let any = false;
    for (let t = 0; t < V && !any; t++) any = s[t] !== -Infinity;
    if (!any) throw new RangeError('every logit is -Infinity: there is no token to sample');
    softmax(s, p);
    let r = random(), last = 0;
    for (let t = 0; t < V; t++) {
      if (p[t] === 0) continue;
      last = t;
      r -= p[t];
      if (r < 0) return t;
    }
    return last;  // rounding left a sliver: the last possible token
  };
}

/** The value at index i of a sorted ascending (a quickselect, in place: a is scrambled). No NaNs. */
function nthSmallest(a, i) {
  let lo = 0, hi = a.length - 1;
  while (lo < hi) {
    // median of three as the pivot, then a Hoare partition
    const mid = (lo + hi) >>> 1;
    let x = a[lo], y = a[mid], z = a[hi];
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : (x < z ? x : y < z ? z : y);
    let l = lo, h = hi;
    while (l <= h) {
      while (a[l] < pivot) l++;
      while (a[h] > pivot) h--;
      if (l <= h) {
        x = a[l], a[l] = a[h], a[h] = x;
        l++, h--;
      }
    }
    if (i <= h) hi = h;
    else if (i >= l) lo = l;
    else return a[i];
  }
  return a[lo];
}

/** softmax of s into p (both [V]). */
function softmax(s, p) {
  let m = -Infinity;
  for (let t = 0; t < s.length; t++) if (s[t] > m) m = s[t];
  let sum = 0;
  // Scores that overflowed to +Infinity (a tiny temperature or repetition penalty): the limit,
  // where the largest scores take all the probability, in equal shares.
  if (m === Infinity) for (let t = 0; t < s.length; t++) sum += (p[t] = s[t] === Infinity ? 1 : 0);
  else for (let t = 0; t < s.length; t++) sum += (p[t] = s[t] === -Infinity ? 0 : Math.exp(s[t] - m));
  for (let t = 0; t < s.length; t++) p[t] /= sum;
}
