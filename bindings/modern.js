// The options of modern attention (rotary positions, ALiBi, windows, soft-capping,
// sinks), read where the call is made and again where the runtime is, shared by
// MultiHeadAttention, scaledDotProductAttention and applyRotaryEmbedding.
import { checkData } from './masks.js';
import { describe, fmtDims, isTypedArray, plainObject, positiveInt, sameDims, snapshotView, tensor, typedArrayKind, typedArrayLength } from './validate.js';

/** A finite number > 0. */
export function positiveNumber(name, v) {
  if (typeof v !== 'number') throw new TypeError(`${name} must be a positive number, got ${describe(v)}`);
  if (!(v > 0) || !Number.isFinite(v)) throw new RangeError(`${name} must be a positive finite number, got ${describe(v)}`);
  return v;
}

/** A finite number. */
export function finiteNumber(name, v) {
  if (typeof v !== 'number') throw new TypeError(`${name} must be a finite number, got ${describe(v)}`);
  if (!Number.isFinite(v)) throw new RangeError(`${name} must be a finite number, got ${describe(v)}`);
  return v;
}

// Options the core receives as float32 (the records' ':f' fields): a number float32 rounds
// to an infinity, or a positive one it rounds to 0, would reach the core as something else.
const FLOAT32_MAX = 3.4028234663852886e38;

/** A finite number that stays finite as a float32 (|v| < 3.4e38 after rounding). */
export function finiteFloat32(name, v) {
  finiteNumber(name, v);
  if (!Number.isFinite(Math.fround(v))) throw new RangeError(`${name} must be a finite float32 (|${name}| <= ${FLOAT32_MAX}), got ${describe(v)}`);
  return v;
}

/** A number > 0 that stays positive and finite as a float32 (about 1.4e-45 to 3.4e38). */
export function positiveFloat32(name, v) {
  positiveNumber(name, v);
  const f = Math.fround(v);
  if (!(f > 0)) throw new RangeError(`${name} must be a positive float32 (at least 1.4e-45), got ${describe(v)}, which float32 rounds to 0`);
  if (!Number.isFinite(f)) throw new RangeError(`${name} must be a positive float32 (at most ${FLOAT32_MAX}), got ${describe(v)}`);
  return v;
}

/** null / undefined -> null, else read(name, v). */
export const optional = (name, v, read) => (v === undefined || v === null ? null : read(name, v));

/**
 * ALiBi slopes of H heads (Press et al.): for H a power of two, 2^(-8k/H), k = 1..H;
 * otherwise (BLOOM's rule) those of the largest power of two n < H, then every
 * other slope of 2n heads for the H - n that remain.
 */
export function alibiSlopes(H) {
  const n = 2 ** Math.floor(Math.log2(H));
  const slopes = [];
  for (let k = 1; k <= n; k++) slopes.push(2 ** ((-8 * k) / n));
  for (let k = 1; slopes.length < H; k += 2) slopes.push(2 ** ((-8 * k) / (2 * n)));
  return Float32Array.from(slopes);
}

/** A float array option of n finite numbers (Float32Array, Float64Array or number[]) as a Float64Array copy. */
export function floatArray(name, v, n) {
  let values;
  const kind = typedArrayKind(v);
  if (kind === 'Float32Array' || kind === 'Float64Array') {
    const view = snapshotView(name, v);
    values = Float64Array.from(view);
  } else if (Array.isArray(v)) {
    if (v.length !== n) throw new RangeError(`${name} must have ${n} elements, got ${v.length}`);
    values = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const x = v[i];
      if (typeof x !== 'number') throw new TypeError(`${name}[${i}] must be a number, got ${describe(x)}`);
      values[i] = x;
    }
  } else {
    throw new TypeError(`${name} must be a Float32Array of ${n} numbers, got ${describe(v)}`);
  }
  if (values.length !== n) throw new RangeError(`${name} must have ${n} elements, got ${values.length}`);
  const bad = values.findIndex((x) => !Number.isFinite(x));
  if (bad >= 0) throw new RangeError(`${name}[${bad}] must be finite, got ${values[bad]}`);
  return values;
}

const ROPE_OPTIONS = ['base', 'dim', 'interleaved', 'invFreq', 'attentionFactor'];

/**
 * The rope option against a head width: null (none), true (defaults) or { base =
 * 10000, dim = headDim, interleaved = false, invFreq, attentionFactor = 1 }.
 * Returns null or a frozen { dim, base, interleaved, invFreq (Float64Array of dim / 2:
 * the given one, or base^(-2i/dim)), attentionFactor }.
 */
export function readRope(name, rope, headDim) {
  if (rope === undefined || rope === null || rope === false) return null;
  const o = rope === true ? {} : plainObject(name, rope, ROPE_OPTIONS);
  const dim = o.dim === undefined ? headDim : positiveInt(`${name}.dim`, o.dim);
  if (dim % 2 !== 0) throw new RangeError(`${name}.dim must be even (channels rotate in pairs), got ${dim}`);
  if (dim > headDim) throw new RangeError(`${name}.dim must be at most headDim ${headDim}, got ${dim}`);
  const base = o.base === undefined ? 10000 : positiveNumber(`${name}.base`, o.base);
  if (o.invFreq !== undefined && o.base !== undefined)
    throw new TypeError(`${name}: give base or invFreq, not both (invFreq replaces base^(-2i/dim))`);
  let invFreq;
  if (o.invFreq !== undefined) invFreq = floatArray(`${name}.invFreq`, o.invFreq, dim / 2);
  else invFreq = Float64Array.from({ length: dim / 2 }, (_, i) => 1 / base ** ((2 * i) / dim));
  const interleaved = o.interleaved === undefined ? false : o.interleaved;
  if (typeof interleaved !== 'boolean') throw new TypeError(`${name}.interleaved must be a boolean, got ${describe(interleaved)}`);
  const attentionFactor = o.attentionFactor === undefined ? 1 : finiteFloat32(`${name}.attentionFactor`, o.attentionFactor);
  return Object.freeze({ dim, base, interleaved, invFreq, attentionFactor });
}

/** A positions option (positionIds): null, or a snapshot { data: Int32Array, dims } of a tensor or a bare Int32Array ([L]). */
export function readPositions(name, v) {
  if (v === undefined || v === null) return null;
  if (isTypedArray(v)) {
    if (typedArrayKind(v) !== 'Int32Array') throw new TypeError(`${name} must be an Int32Array or a tensor { data: Int32Array, dims }, got ${describe(v)}`);
    const data = snapshotView(name, v);
    if (typedArrayLength(data) === 0) throw new RangeError(`${name} must not be empty`);
    return { data, dims: [typedArrayLength(data)] };
  }
  return tensor(name, v, { types: [Int32Array], ranks: [1, 2], shapeHint: 'dims [B, L] or [L]' });
}

/** Where the runtime is: positions checked against [B, L] (batched) or [L]: { data, shared } or null. */
export function positionsLayout(name, p, { B, L, batched }) {
  if (p === null || p === undefined) return null;
  checkData(name, p, [Int32Array]);
  if (sameDims(p.dims, [L])) return { data: p.data, shared: true };
  if (batched && sameDims(p.dims, [B, L])) return { data: p.data, shared: B === 1 };
  throw new RangeError(`${name} must have dims ${batched ? `[${B}, ${L}] or ` : ''}[${L}], got ${fmtDims(p.dims)}`);
}

/** The weight types a layer may store its matrices as (abi.js WEIGHT_TYPE by name). */
export const WEIGHT_TYPES = ['f32', 'f16', 'int8'];

/** weightType option: 'f32' (default), 'f16' or 'int8'. */
export function readWeightType(name, v) {
  if (v === undefined) return 'f32';
  if (!WEIGHT_TYPES.includes(v))
    throw new (typeof v === 'string' ? RangeError : TypeError)(`${name} must be one of ${WEIGHT_TYPES.map((w) => `'${w}'`).join(', ')}, got ${describe(v)}`);
  return v;
}

/**
 * A pre-quantized matrix in the compressed-tensors layout: int8 values of dims [out, in]
 * (an Int8Array or a tensor of one) and its scale, one float per output row ([out, 1] or [out]).
 * Only for a layer with weightType 'int8'. Returns { data: Int8Array, scale: Float32Array }.
 */
export function quantizedWeight(what, name, v, scale, dims, weightType) {
  if (weightType !== 'int8')
    throw new TypeError(`${what}: ${name}_scale given: pre-quantized int8 weights need weightType: 'int8' (this layer has '${weightType}')`);
  const n = dims[0] * dims[1];
  let data;
  if (typedArrayKind(v) === 'Int8Array') data = snapshotView(`${what}: ${name}`, v);
  else {
    const t = tensor(`${what}: ${name}`, v, { types: [Int8Array], ranks: [2], shapeHint: `dims ${fmtDims(dims)}` });
    if (!sameDims(t.dims, dims)) throw new RangeError(`${what}: ${name} must have dims ${fmtDims(dims)}, got ${fmtDims(t.dims)}`);
    data = t.data;
  }
  if (typedArrayLength(data) !== n) throw new RangeError(`${what}: ${name} must have ${n} = ${fmtDims(dims)} int8 values, got ${typedArrayLength(data)}`);
  let s;
  if (typedArrayKind(scale) === 'Float32Array') s = snapshotView(`${what}: ${name}_scale`, scale);
  else {
    const t = tensor(`${what}: ${name}_scale`, scale, { types: [Float32Array], ranks: [1, 2], shapeHint: `dims [${dims[0]}, 1] or [${dims[0]}]` });
    if (!(sameDims(t.dims, [dims[0]]) || sameDims(t.dims, [dims[0], 1])))
      throw new RangeError(`${what}: ${name}_scale must have dims [${dims[0]}, 1] or [${dims[0]}], got ${fmtDims(t.dims)}`);
    s = t.data;
  }
  if (typedArrayLength(s) !== dims[0]) throw new RangeError(`${what}: ${name}_scale must have ${dims[0]} values (one per output row), got ${typedArrayLength(s)}`);
  for (let i = 0; i < dims[0]; i++)
    if (!Number.isFinite(s[i])) throw new RangeError(`${what}: ${name}_scale[${i}] must be finite, got ${s[i]}`);
  return { data, scale: s };
}

/** Splits the `<name>_scale` entries (compressed-tensors) off an entries object: { weights, scales }. */
export function splitScales(entries) {
  const weights = Object.create(null), scales = Object.create(null);
  for (const k of Object.keys(entries)) {
    if (k.endsWith('_scale') && Object.hasOwn(entries, k.slice(0, -6))) scales[k.slice(0, -6)] = entries[k];
    else weights[k] = entries[k];
  }
  return { weights, scales };
}

/**
 * A float matrix a layer will store as weightType, checked first so the core never refuses it:
 * int8 and f16 need finite values, f16 also |w| < 65520 (what rounds to a finite half).
 */
export function checkStorable(what, name, data, weightType) {
  if (weightType === 'f32') return data;
  // One comparison per value (NaN fails it too); the message is worked out for the first that fails.
  const i = firstBeyond(data, weightType === 'f16' ? 65520 : Infinity);
  if (i < 0) return data;
  const x = data[i];
  if (!Number.isFinite(x)) throw new RangeError(`${what}: ${name}[${i}] is ${x}; weightType '${weightType}' stores finite weights only`);
  throw new RangeError(`${what}: ${name}[${i}] = ${x} is beyond float16's range (|w| < 65520)`);
}

/** The first index whose |value| is not below limit (NaN included), or -1. */
function firstBeyond(data, limit) {
  for (let i = 0; i < data.length; i++) if (!(Math.abs(data[i]) < limit)) return i;
  return -1;
}
