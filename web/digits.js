// The task of the trained example model: reverse a string of 1 to 8 digits.
// A sequence is the digits, '>', the digits reversed, '.'; the model reads it
// left to right (causal) and learns to write everything after '>'.
export const VOCAB = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '>', '.'];
export const SEP = 10, END = 11;
export const MAX_DIGITS = 8;
/** Longest input the model reads: digits, '>', the reversed digits (the final '.' is never read). */
export const MAX_POSITIONS = 2 * MAX_DIGITS + 1;

/** The tokens of a solved example: [...digits, SEP, ...reversed, END]. */
export function sequence(digits) {
  return [...digits, SEP, ...digits.slice().reverse(), END];
}

/** Held-out inputs (about 1 in 10 of each length), never used in training: FNV-1a of the digits, mod 10. */
export function isHeldOut(digits) {
  let h = 0x811c9dc5;
  for (const d of [digits.length, ...digits]) h = Math.imul(h ^ d, 0x01000193) >>> 0;
  return h % 10 === 0;
}

/** A small seeded generator (mulberry32) so training and tests draw the same examples every run. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random digits from one side of the held-out split, n of them (default: a random length 1..MAX_DIGITS). */
export function randomDigits(rand, heldOut, length = 0) {
  for (;;) {
    const n = length || 1 + Math.floor(rand() * MAX_DIGITS);
    const d = Array.from({ length: n }, () => Math.floor(rand() * 10));
    if (isHeldOut(d) === heldOut) return d;
  }
}

/** Digits from user text: every character must be 0-9, 1..MAX_DIGITS of them. */
export function parseDigits(text) {
  const s = String(text).trim();
  if (!/^[0-9]+$/.test(s)) throw new TypeError('type digits only (0-9)');
  if (s.length > MAX_DIGITS) throw new RangeError(`at most ${MAX_DIGITS} digits`);
  return [...s].map(Number);
}
