// The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte
// little-endian header length N, N bytes of JSON
//   { "name": { "dtype": "F32", "shape": [3, 4], "data_offsets": [begin, end] }, ...,
//     "__metadata__": { "key": "value" } }
// then the data, offsets relative to its start. Plain JS, no wasm: it works
// before init() and in any worker.
import { describe, fmtDims, product } from './validate.js';

const MAX_HEADER = 100 * 1024 * 1024;  // the format's own limit
// Element size and a reader into Float32. Integer and bool tensors are refused:
// every weight of an attention layer is floating point.
const DTYPES = {
  F32: { size: 4, read: (dv, o) => dv.getFloat32(o, true) },
  F64: { size: 8, read: (dv, o) => dv.getFloat64(o, true) },
  F16: { size: 2, read: (dv, o) => half(dv.getUint16(o, true)) },
  BF16: { size: 2, read: (dv, o) => bf16(dv.getUint16(o, true)) },
};
const fail = (Kind, msg) => { throw new Kind(`parseSafetensors: ${msg}`); };

function half(h) {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
const bf16Scratch = new DataView(new ArrayBuffer(4));
function bf16(b) {
  bf16Scratch.setUint32(0, b << 16);
  return bf16Scratch.getFloat32(0);
}

function asBytes(bytes) {
  // A plain Uint8Array view even of a Node Buffer, whose slice() shares memory instead of copying.
  if (bytes instanceof Uint8Array) return bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes instanceof ArrayBuffer || (typeof SharedArrayBuffer === 'function' && bytes instanceof SharedArrayBuffer))
    return new Uint8Array(bytes);
  if (ArrayBuffer.isView(bytes)) return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  throw new TypeError(`parseSafetensors: bytes must be a Uint8Array or ArrayBuffer (the file's contents), got ${describe(bytes)}`);
}

function readHeader(u8) {
  if (u8.length < 8) fail(RangeError, `the file is ${u8.length} bytes, too short for a safetensors header`);
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  const n = dv.getUint32(0, true) + dv.getUint32(4, true) * 2 ** 32;
  if (n > u8.length - 8)
    fail(RangeError, `the header length field says ${n} bytes, but only ${u8.length - 8} bytes follow it (not a safetensors file, or truncated)`);
  if (n > MAX_HEADER) fail(RangeError, `the header length ${n} exceeds the format's limit of ${MAX_HEADER} bytes`);
  if (n < 2 || u8[8] !== 0x7b) fail(TypeError, 'the header is not a JSON object (not a safetensors file)');
  let header;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(u8.subarray(8, 8 + n)));
  } catch (e) {
    fail(TypeError, `the header is not valid UTF-8 JSON (${e.message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail(TypeError, 'the header is not a JSON object');
  return { header, dataStart: 8 + n, dv };
}

function checkEntry(name, e, dataLen) {
  if (e === null || typeof e !== 'object' || Array.isArray(e)) fail(TypeError, `entry "${name}" is not an object`);
  const { dtype, shape, data_offsets: off } = e;
  if (typeof dtype !== 'string') fail(TypeError, `entry "${name}" has no dtype`);
  const dt = DTYPES[dtype];
  if (!dt) fail(TypeError, `tensor "${name}" has dtype ${JSON.stringify(dtype).slice(0, 20)}; only floating-point tensors (F32, F16, BF16, F64) can be weights`);
  if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0))
    fail(TypeError, `tensor "${name}" has an invalid shape ${JSON.stringify(shape)?.slice(0, 60)} (expected an array of non-negative integers)`);
  if (!Array.isArray(off) || off.length !== 2 || off.some((x) => !Number.isSafeInteger(x) || x < 0))
    fail(TypeError, `tensor "${name}" has invalid data_offsets ${JSON.stringify(off)?.slice(0, 60)} (expected [begin, end])`);
  const [begin, end] = off;
  if (begin > end || end > dataLen)
    fail(RangeError, `tensor "${name}" has data_offsets [${begin}, ${end}] outside the ${dataLen}-byte data section`);
  const want = product(shape) * dt.size;
  if (end - begin !== want)
    fail(RangeError, `tensor "${name}" (${dtype}, shape ${fmtDims(shape)}) needs ${want} bytes, but its data_offsets [${begin}, ${end}] span ${end - begin}`);
  return { dt, dtype, shape, begin, end };
}

function parse(bytes) {
  const u8 = asBytes(bytes);
  const { header, dataStart, dv } = readHeader(u8);
  const dataLen = u8.length - dataStart;
  let metadata = {};
  const entries = [];
  for (const name of Object.keys(header)) {
    if (name === '__metadata__') {
      const m = header[name];
      if (m === null || typeof m !== 'object' || Array.isArray(m) || Object.values(m).some((v) => typeof v !== 'string'))
        fail(TypeError, '__metadata__ must be an object of strings');
      metadata = m;
      continue;
    }
    entries.push({ name, ...checkEntry(name, header[name], dataLen) });
  }
  // Tensors may not overlap (the format also forbids holes; a gap is harmless, so it is tolerated).
  const byStart = entries.filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < byStart.length; i++)
    if (byStart[i].begin < byStart[i - 1].end)
      fail(RangeError, `tensors "${byStart[i - 1].name}" and "${byStart[i].name}" overlap in the data section`);
  return { u8, dv, dataStart, entries, metadata };
}

function toFloat32(u8, dv, start, e) {
  const n = (e.end - e.begin) / e.dt.size;
  if (e.dtype === 'F32') return new Float32Array(u8.slice(start + e.begin, start + e.end).buffer);  // a copy, aligned
  const out = new Float32Array(n);
  for (let i = 0, o = start + e.begin; i < n; i++, o += e.dt.size) out[i] = e.dt.read(dv, o);
  return out;
}

/**
 * Reads a .safetensors file into { name: { data: Float32Array, dims } } (F16,
 * BF16 and F64 are converted to float32). With prefix, keeps only the names
 * that start with it and strips it ('layers.0.self_attn.'). A malformed file
 * throws a TypeError or RangeError that says what is wrong.
 * @param {Uint8Array | ArrayBuffer} bytes
 * @param {{ prefix?: string }} [options]
 */
export function parseSafetensors(bytes, options = {}) {
  if (options === null || typeof options !== 'object') throw new TypeError(`parseSafetensors: options must be an object, got ${describe(options)}`);
  for (const k of Object.keys(options))
    if (k !== 'prefix') throw new TypeError(`parseSafetensors: unknown option "${k}" (expected prefix)`);
  const { prefix = '' } = options;
  if (typeof prefix !== 'string') throw new TypeError(`parseSafetensors: options.prefix must be a string, got ${describe(prefix)}`);
  const { u8, dv, dataStart, entries } = parse(bytes);
  const out = {};
  for (const e of entries) {
    if (!e.name.startsWith(prefix)) continue;
    // defineProperty: a tensor named "__proto__" stays a plain entry.
    Object.defineProperty(out, e.name.slice(prefix.length), {
      value: { data: toFloat32(u8, dv, dataStart, e), dims: e.shape.slice() }, enumerable: true, writable: true, configurable: true,
    });
  }
  if (prefix && Object.keys(out).length === 0)
    fail(RangeError, `no tensor name starts with "${prefix}" (names: ${entries.slice(0, 6).map((e) => e.name).join(', ')}${entries.length > 6 ? ', …' : ''})`);
  return out;
}

/** The file's "__metadata__" (string keys and values), {} when it has none. */
export function safetensorsMetadata(bytes) {
  return { ...parse(bytes).metadata };
}

const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);

/** The IEEE half-precision bits nearest to x (round to nearest, ties to even; overflow gives ±Infinity). */
export function toHalfBits(x) {
  f32[0] = x;
  const b = u32[0], sign = (b >>> 16) & 0x8000, exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);  // Infinity, NaN
  const e = exp - 112;  // the half exponent field
  if (e >= 0x1f) return sign | 0x7c00;
  let shift = 13, base = e << 10;
  if (e <= 0) {  // subnormal half (or zero): the implicit 1 becomes explicit
    if (e < -10) return sign;
    mant |= 0x800000;
    shift = 14 - e;
    base = 0;
  }
  let h = base | (mant >>> shift);
  const rem = mant & ((1 << shift) - 1), halfway = 1 << (shift - 1);
  if (rem > halfway || (rem === halfway && (h & 1))) h++;  // a carry rounds up into the exponent, as it should
  return sign | h;
}

/**
 * Writes { name: { data: Float32Array, dims } } (or bare Float32Arrays, 1-D) as
 * a .safetensors file (in name order). metadata: an object of strings.
 * options.dtype: 'F32' (default) or 'F16' (half the size; values rounded to nearest).
 * @returns {Uint8Array}
 */
export function encodeSafetensors(tensors, metadata, options = {}) {
  if (tensors === null || typeof tensors !== 'object' || Array.isArray(tensors))
    throw new TypeError(`encodeSafetensors: tensors must be an object { name: { data: Float32Array, dims } }, got ${describe(tensors)}`);
  if (options === null || typeof options !== 'object') throw new TypeError(`encodeSafetensors: options must be an object, got ${describe(options)}`);
  for (const k of Object.keys(options))
    if (k !== 'dtype') throw new TypeError(`encodeSafetensors: unknown option "${k}" (expected dtype)`);
  const dtype = options.dtype ?? 'F32';
  if (dtype !== 'F32' && dtype !== 'F16') throw new TypeError(`encodeSafetensors: options.dtype must be 'F32' or 'F16', got ${describe(dtype)}`);
  const size = dtype === 'F16' ? 2 : 4;
  const header = {};
  if (metadata !== undefined && metadata !== null) {
    if (typeof metadata !== 'object' || Object.values(metadata).some((v) => typeof v !== 'string'))
      throw new TypeError('encodeSafetensors: metadata must be an object of strings');
    header.__metadata__ = { ...metadata };
  }
  const parts = [];
  let offset = 0;
  for (const name of Object.keys(tensors).sort()) {
    const t = tensors[name];
    const data = t instanceof Float32Array ? t : t && t.data;
    const dims = t instanceof Float32Array ? [t.length] : t && t.dims;
    if (!(data instanceof Float32Array) || !Array.isArray(dims) || product(dims) !== data.length)
      throw new TypeError(`encodeSafetensors: "${name}" must be a Float32Array or { data: Float32Array, dims } with matching sizes, got ${describe(t)}`);
    header[name] = { dtype, shape: dims.slice(), data_offsets: [offset, offset + data.length * size] };
    parts.push(data);
    offset += data.length * size;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + new TextEncoder().encode(json).length) % 8)) % 8);  // align the data
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + offset);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, head.length, true);
  out.set(head, 8);
  let at = 8 + head.length;
  for (const d of parts) {
    if (size === 4) for (let i = 0; i < d.length; i++, at += 4) dv.setFloat32(at, d[i], true);
    else for (let i = 0; i < d.length; i++, at += 2) dv.setUint16(at, toHalfBits(d[i]), true);
  }
  return out;
}
