// Mask options shared by MultiHeadAttention.forward and scaledDotProductAttention.
// Boolean masks: nonzero = may NOT attend (nn.MultiheadAttention's polarity).
import { fmtDims, finiteOrMinusInf, sameDims, tensor } from './validate.js';

export const MASK_NONE = 0, MASK_BOOL = 1, MASK_FLOAT = 2;

/**
 * fullDims: the dims of a per-(batch, head) mask, e.g. [B, H, Lq, Lk] or, for
 * unbatched input, [H, Lq, Lk]. altDims: other accepted spellings of the same
 * layout (PyTorch's [B*H, Lq, Lk]). Returns { kind, data, broadcast }.
 */
export function attnMask(name, m, { Lq, Lk, fullDims, altDims = [] }) {
  if (m === undefined || m === null) return { kind: MASK_NONE, data: null, broadcast: true };
  const shapes = [[Lq, Lk], fullDims, ...altDims];
  const hint = `dims ${shapes.map((d) => fmtDims(d)).join(' or ')}`;
  const t = tensor(name, m, { types: [Uint8Array, Float32Array], shapeHint: hint });
  const k = shapes.findIndex((d) => sameDims(d, t.dims));
  if (k < 0) throw new RangeError(`${name} must have ${hint}, got ${fmtDims(t.dims)}`);
  if (t.data instanceof Float32Array) finiteOrMinusInf(`${name}.data`, t.data);
  return { kind: t.data instanceof Uint8Array ? MASK_BOOL : MASK_FLOAT, data: t.data, broadcast: k === 0 };
}

/** Key padding mask: Uint8Array, dims [B, Lk] (or [Lk] when unbatched), nonzero = ignore that key. */
export function keyPaddingMask(name, m, { B, Lk, batched }) {
  if (m === undefined || m === null) return null;
  const want = batched ? [B, Lk] : [Lk];
  const t = tensor(name, m, { types: [Uint8Array], ranks: [want.length], shapeHint: `dims ${fmtDims(want)}` });
  if (!sameDims(t.dims, want)) throw new RangeError(`${name} must have dims ${fmtDims(want)}, got ${fmtDims(t.dims)}`);
  return t.data;
}
