// Mask options shared by every forward and by scaledDotProductAttention.
// Boolean masks: nonzero = may NOT attend (nn.MultiheadAttention's polarity).
// readMask runs where the call is made (it snapshots the tensor); maskLayout and
// paddingLayout run where the runtime is, once the key length is known (a KV
// cache's length is known only there).
import { MASK } from './abi.js';
import { checkIntact, fmtDims, finiteOrMinusInf, product, sameDims, tensor } from './validate.js';

/** An attn mask option: null, or a snapshot { data, dims } of a Uint8Array or Float32Array tensor (float values checked). */
export function readMask(name, m) {
  if (m === undefined || m === null) return null;
  const t = tensor(name, m, { types: [Uint8Array, Float32Array], shapeHint: 'the dims of a mask' });
  if (t.data instanceof Float32Array) finiteOrMinusInf(`${name}.data`, t.data);
  return t;
}

/** A key padding mask option: null, or a snapshot of a Uint8Array tensor. */
export function readPadding(name, m) {
  if (m === undefined || m === null) return null;
  return tensor(name, m, { types: [Uint8Array], shapeHint: 'dims [B, Lk]' });
}

/**
 * The attn mask's layout for a call: fullDims, e.g. [B, H, Lq, Lk] or, for
 * unbatched input, [H, Lq, Lk]; altDims: other spellings of the same layout
 * (PyTorch's [B*H, Lq, Lk]). Returns { kind, data, broadcast }.
 */
export function maskLayout(name, t, { Lq, Lk, fullDims, altDims = [] }) {
  if (t === null || t === undefined) return { kind: MASK.NONE, data: null, broadcast: true };
  checkData(name, t, [Uint8Array, Float32Array]);
  const shapes = [[Lq, Lk], fullDims, ...altDims];
  const k = shapes.findIndex((d) => sameDims(d, t.dims));
  if (k < 0) throw new RangeError(`${name} must have dims ${shapes.map((d) => fmtDims(d)).join(' or ')}, got ${fmtDims(t.dims)}`);
  return { kind: t.data instanceof Uint8Array ? MASK.BOOL : MASK.FLOAT, data: t.data, broadcast: k === 0 };
}

/** The key padding mask's data, checked against dims [B, Lk] ([Lk] when unbatched); null when absent. */
export function paddingLayout(name, t, { B, Lk, batched }) {
  if (t === null || t === undefined) return null;
  checkData(name, t, [Uint8Array]);
  const want = batched ? [B, Lk] : [Lk];
  if (!sameDims(t.dims, want)) throw new RangeError(`${name} must have dims ${fmtDims(want)}, got ${fmtDims(t.dims)}`);
  return t.data;
}

/**
 * Where the runtime is, a tensor's data is checked again against its dims and
 * allowed types (the op sizes its copies from them): a call that does not match
 * its own sizes is refused, never read past its data.
 */
export function checkData(name, t, types) {
  if (t && t.data) checkIntact(t.data);
  if (!t || !types.some((c) => t.data instanceof c) || !Array.isArray(t.dims) || !t.dims.every((d) => Number.isInteger(d) && d > 0) ||
      t.data.length !== product(t.dims))
    throw new RangeError(`${name}: the data does not match its dims or type`);
}

/** The record fields of a mask (prefix: '', 'tgt_', 'memory_'). */
export const maskFields = (prefix, mask, padding, causal, at) => ({
  [`${prefix}mask_kind`]: mask.kind, [`${prefix}mask`]: at(mask.data), [`${prefix}mask_broadcast`]: mask.broadcast ? 1 : 0,
  [`${prefix}key_padding`]: at(padding), [`${prefix}causal`]: causal ? 1 : 0,
});
