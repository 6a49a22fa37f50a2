// The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte
// little-endian header length N, N bytes of JSON
//   { "name": { "dtype": "F32", "shape": [3, 4], "data_offsets": [begin, end] }, ...,
//     "__metadata__": { "key": "value" } }
// then the data, offsets relative to its start. Plain JS, no wasm: it works
// before init() and in any worker.
import { TypedArrayPrototype, describe, fmtDims, intrinsic, plainObject, typedArrayKind, typedArrayLength } from './validate.js';

const MAX_HEADER = 100_000_000;  // the reference reader's limit (MAX_HEADER_SIZE in the safetensors crate)
// Element size, the typed array a tensor is read into, and a reader. Floating-point
// tensors become Float32Arrays (weights); integer and bool tensors the matching
// integer arrays (int8 weights, token ids, persisted buffers such as BERT's
// position_ids; BOOL as a Uint8Array of 0 and 1). A Map, like every lookup keyed
// by the file's own strings: no dtype ("toString", "__proto__", …) reaches
// Object.prototype.
const DTYPES = new Map([
  ['F32', { size: 4, Array: Float32Array, read: (dv, o) => dv.getFloat32(o, true) }],
  ['F64', { size: 8, Array: Float32Array, read: (dv, o) => dv.getFloat64(o, true) }],
  ['F16', { size: 2, Array: Float32Array, read: (dv, o) => half(dv.getUint16(o, true)) }],
  ['BF16', { size: 2, Array: Float32Array, read: (dv, o) => bf16(dv.getUint16(o, true)) }],
  ['I64', { size: 8, Array: BigInt64Array, read: (dv, o) => dv.getBigInt64(o, true) }],
  ['U64', { size: 8, Array: BigUint64Array, read: (dv, o) => dv.getBigUint64(o, true) }],
  ['I32', { size: 4, Array: Int32Array, read: (dv, o) => dv.getInt32(o, true) }],
  ['U32', { size: 4, Array: Uint32Array, read: (dv, o) => dv.getUint32(o, true) }],
  ['I16', { size: 2, Array: Int16Array, read: (dv, o) => dv.getInt16(o, true) }],
  ['U16', { size: 2, Array: Uint16Array, read: (dv, o) => dv.getUint16(o, true) }],
  ['I8', { size: 1, Array: Int8Array, read: (dv, o) => dv.getInt8(o) }],
  ['U8', { size: 1, Array: Uint8Array, read: (dv, o) => dv.getUint8(o) }],
  ['BOOL', { size: 1, Array: Uint8Array, read: (dv, o) => (dv.getUint8(o) ? 1 : 0) }],
]);
// What encodeSafetensors writes for each kind of array (floats: options.dtype).
const WRITE_DTYPES = new Map([
  ['Int8Array', 'I8'], ['Uint8Array', 'U8'], ['Int16Array', 'I16'], ['Uint16Array', 'U16'], ['Int32Array', 'I32'],
  ['Uint32Array', 'U32'], ['BigInt64Array', 'I64'], ['BigUint64Array', 'U64'],
]);
const SETTERS = {
  F32: (dv, o, v) => dv.setFloat32(o, v, true), F16: (dv, o, v) => dv.setUint16(o, toHalfBits(v), true),
  I8: (dv, o, v) => dv.setInt8(o, v), U8: (dv, o, v) => dv.setUint8(o, v), I16: (dv, o, v) => dv.setInt16(o, v, true),
  U16: (dv, o, v) => dv.setUint16(o, v, true), I32: (dv, o, v) => dv.setInt32(o, v, true), U32: (dv, o, v) => dv.setUint32(o, v, true),
  I64: (dv, o, v) => dv.setBigInt64(o, v, true), U64: (dv, o, v) => dv.setBigUint64(o, v, true),
};
const SIZE_OF = { F32: 4, F16: 2, I8: 1, U8: 1, I16: 2, U16: 2, I32: 4, U32: 4, I64: 8, U64: 8 };
const fail = (Kind, msg) => { throw new Kind(`parseSafetensors: ${msg}`); };

// The engine's own accessors (validate.js's intrinsic()), taken once: a caller's view
// may carry its own (or a subclass's) length, byteLength, subarray or slice, and an
// object may merely inherit Uint8Array.prototype. These read the internal slots, and
// run none of the caller's code.
const typedArrayBytes = [intrinsic(TypedArrayPrototype, 'buffer'), intrinsic(TypedArrayPrototype, 'byteOffset'), intrinsic(TypedArrayPrototype, 'byteLength')];
const dataViewBytes = [intrinsic(DataView.prototype, 'buffer'), intrinsic(DataView.prototype, 'byteOffset'), intrinsic(DataView.prototype, 'byteLength')];
const arrayBufferLength = intrinsic(ArrayBuffer.prototype, 'byteLength');  // throws unless a genuine ArrayBuffer
const sharedBufferLength = typeof SharedArrayBuffer === 'function' ? intrinsic(SharedArrayBuffer.prototype, 'byteLength') : () => { throw new TypeError(); };
const attempt = (f, v) => { try { return f(v); } catch { return undefined; } };
const isObject = (v) => v !== null && typeof v === 'object';
const isFloat32Array = (v) => isObject(v) && typedArrayKind(v) === 'Float32Array';
// Arrays encodeSafetensors writes: Float32Array (as options.dtype) and the integer kinds.
const isWritable = (v) => isObject(v) && (typedArrayKind(v) === 'Float32Array' || WRITE_DTYPES.has(typedArrayKind(v)));
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** describe(v) without running v's code where that can be avoided (an error message must not itself throw something else). */
function what(v) {
  if (typeof v === 'function') return 'a function';
  if (!isObject(v)) return describe(v);
  const kind = typedArrayKind(v);
  if (kind) return `${kind} of length ${typedArrayLength(v)}`;
  if (ArrayBuffer.isView(v)) return 'a DataView';
  if (attempt(arrayBufferLength, v) !== undefined) return 'an ArrayBuffer';
  if (attempt(sharedBufferLength, v) !== undefined) return 'a SharedArrayBuffer';
  try {
    if (Array.isArray(v)) return describe(v);
  } catch { /* a revoked Proxy, or an element's getter that throws */ }
  return 'an object';
}

/** A name as quoted in messages (a hostile file's names can be megabytes long). */
const quote = (s) => JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
const fmtShape = (dims) => (dims.length > 16 ? `[${dims.slice(0, 16).join(', ')}, … (${dims.length} dims)]` : fmtDims(dims));

/** The number of elements: exact up to 2^53 (and 0 with any zero dim, whatever the others), else something larger. */
function elements(dims) {
  if (dims.includes(0)) return 0;
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

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

/**
 * A fresh Uint8Array over the caller's bytes, from their intrinsic buffer, offset and
 * length (also a view of a Node Buffer, whose slice() shares memory instead of
 * copying), and whether that memory is shared.
 */
function asBytes(bytes) {
  if (isObject(bytes)) {
    try {
      let parts;
      if (typedArrayKind(bytes)) parts = typedArrayBytes.map((get) => get(bytes));
      else if (ArrayBuffer.isView(bytes)) parts = dataViewBytes.map((get) => get(bytes));
      else {
        const n = attempt(arrayBufferLength, bytes) ?? attempt(sharedBufferLength, bytes);
        if (n !== undefined) parts = [bytes, 0, n];
      }
      if (parts) return { u8: new Uint8Array(...parts), shared: attempt(sharedBufferLength, parts[0]) !== undefined };
    } catch {
      throw new TypeError(`parseSafetensors: bytes must be a Uint8Array or ArrayBuffer (the file's contents), got a view of a detached or shrunk buffer`);
    }
  }
  throw new TypeError(`parseSafetensors: bytes must be a Uint8Array or ArrayBuffer (the file's contents), got ${what(bytes)}`);
}

/** The header's length from its 8-byte field (dv over at least those 8 bytes), checked against the file's size. */
function headerLength(dv, size) {
  if (size < 8) fail(RangeError, `the file is ${size} bytes, too short for a safetensors header`);
  const field = dv.getBigUint64(0, true);
  if (field > BigInt(size - 8))
    fail(RangeError, `the header length field says ${field} bytes, but only ${size - 8} bytes follow it (not a safetensors file, or truncated)`);
  // The reference reader's limit holds however long the file is.
  if (field > BigInt(MAX_HEADER))
    fail(RangeError, `the header length field says ${field} bytes, more than the format's limit of ${MAX_HEADER} bytes`);
  return Number(field);
}

/** The header's JSON object from its n bytes (text: a Uint8Array of them, not shared memory). */
function headerObject(text) {
  if (text.length < 2 || text[0] !== 0x7b) fail(TypeError, 'the header is not a JSON object (not a safetensors file)');
  let header;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(text));
  } catch (e) {
    fail(TypeError, `the header is not valid UTF-8 JSON (${e.message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail(TypeError, 'the header is not a JSON object');
  return header;
}

function readHeader(u8, shared) {
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  const n = headerLength(dv, u8.length);
  const text = shared ? u8.slice(8, 8 + n) : u8.subarray(8, 8 + n);  // TextDecoder may refuse shared memory
  return { header: headerObject(text), dataStart: 8 + n, dv };
}

// An entry's own field (never one inherited from Object.prototype).
const own = (o, k) => (Object.hasOwn(o, k) ? o[k] : undefined);

function checkEntry(name, e, dataLen) {
  if (e === null || typeof e !== 'object' || Array.isArray(e)) fail(TypeError, `entry ${quote(name)} is not an object`);
  const dtype = own(e, 'dtype'), shape = own(e, 'shape'), off = own(e, 'data_offsets');
  if (typeof dtype !== 'string') fail(TypeError, `entry ${quote(name)} has no dtype`);
  const dt = DTYPES.get(dtype);
  if (!dt) fail(TypeError, `tensor ${quote(name)} has dtype ${quote(dtype)}, which this reader does not know (${[...DTYPES.keys()].join(', ')})`);
  if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0))
    fail(TypeError, `tensor ${quote(name)} has an invalid shape ${JSON.stringify(shape)?.slice(0, 60)} (expected an array of non-negative integers)`);
  if (!Array.isArray(off) || off.length !== 2 || off.some((x) => !Number.isSafeInteger(x) || x < 0))
    fail(TypeError, `tensor ${quote(name)} has invalid data_offsets ${JSON.stringify(off)?.slice(0, 60)} (expected [begin, end])`);
  const [begin, end] = off;
  if (begin > end || end > dataLen)
    fail(RangeError, `tensor ${quote(name)} has data_offsets [${begin}, ${end}] outside the ${dataLen}-byte data section`);
  const want = elements(shape) * dt.size;
  if (end - begin !== want)
    fail(RangeError, `tensor ${quote(name)} (${dtype}, shape ${fmtShape(shape)}) needs ${Number.isSafeInteger(want) ? want : `more than ${Number.MAX_SAFE_INTEGER}`} bytes, but its data_offsets [${begin}, ${end}] span ${end - begin}`);
  return { dt, dtype, shape: shape.map((d) => d + 0), begin, end };  // + 0: a "-0" in the file is 0
}

/** The header's tensors ({ name, dt, dtype, shape, begin, end }, checked against a data section of dataLen bytes) and metadata. */
function entriesOf(header, dataLen) {
  let metadata = {};
  const entries = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (value === null || typeof value !== 'object' || Array.isArray(value) || Object.values(value).some((v) => typeof v !== 'string'))
        fail(TypeError, '__metadata__ must be an object of strings');
      metadata = value;
      continue;
    }
    entries.push({ name, ...checkEntry(name, value, dataLen) });
  }
  // Tensors may not overlap (the format also forbids holes; a gap is harmless, so it is tolerated).
  const byStart = entries.filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < byStart.length; i++)
    if (byStart[i].begin < byStart[i - 1].end)
      fail(RangeError, `tensors ${quote(byStart[i - 1].name)} and ${quote(byStart[i].name)} overlap in the data section`);
  return { entries, metadata };
}

function parse(bytes) {
  const { u8, shared } = asBytes(bytes);
  const { header, dataStart, dv } = readHeader(u8, shared);
  return { u8, dv, dataStart, ...entriesOf(header, u8.length - dataStart) };
}

/** float32 of every float16 bit pattern (256 KiB, made on first use): F16 tensors convert by lookup. */
let halfTable = null;
// The loops on their own, each seeing one kind of array (they run once per element of a checkpoint).
function widenBf16(bits, word) {
  for (let i = 0; i < bits.length; i++) word[i] = bits[i] << 16;
}
function widenF16(bits, out, table) {
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]];
}

/** Whether a tensor's bytes are its array's own (little-endian, same width; not BOOL's 0/1). */
const storedAsRead = (e) => LITTLE_ENDIAN && e.dtype !== 'BOOL' && e.dt.Array.BYTES_PER_ELEMENT === e.dt.size;

function toArray(u8, dv, start, e) {
  const n = (e.end - e.begin) / e.dt.size;
  if (storedAsRead(e)) return new e.dt.Array(u8.slice(start + e.begin, start + e.end).buffer);  // a copy, aligned
  if (LITTLE_ENDIAN && (e.dtype === 'F16' || e.dtype === 'BF16')) {
    // Half-width floats, widened a whole array at a time (a DataView read and a conversion per
    // element took ~150 ns, 20 s for a 135M-parameter BF16 checkpoint): BF16 is the top half of
    // a float32, F16 a table lookup. The bits are read through a Uint16Array, over the bytes
    // where they are aligned, else over a copy.
    const at = u8.byteOffset + start + e.begin;
    const bits = at % 2 === 0 ? new Uint16Array(u8.buffer, at, n) : new Uint16Array(u8.slice(start + e.begin, start + e.end).buffer);
    const out = new Float32Array(n);
    if (e.dtype === 'BF16') widenBf16(bits, new Uint32Array(out.buffer));
    else widenF16(bits, out, halfTable ??= Float32Array.from({ length: 65536 }, (_, h) => half(h)));
    return out;
  }
  const out = new e.dt.Array(n);
  for (let i = 0, o = start + e.begin; i < n; i++, o += e.dt.size) out[i] = e.dt.read(dv, o);
  return out;
}

/**
 * Reads a .safetensors file into { name: { data, dims } }: floating-point tensors as
 * Float32Arrays (F16, BF16 and F64 converted), integer ones as the matching typed
 * array (I8 → Int8Array, I64 → BigInt64Array, …; BOOL → Uint8Array of 0 and 1). With prefix, keeps only the names
 * that start with it and strips it ('layers.0.self_attn.'). A malformed file
 * throws a TypeError or RangeError that says what is wrong.
 * @param {Uint8Array | ArrayBuffer} bytes
 * @param {{ prefix?: string }} [options]
 */
export function parseSafetensors(bytes, options = {}) {
  const prefix = prefixOption('parseSafetensors', options);
  const { u8, dv, dataStart, entries } = parse(bytes);
  const out = {};
  for (const e of withPrefix('parseSafetensors', entries, prefix)) put(out, e.name.slice(prefix.length), { data: toArray(u8, dv, dataStart, e), dims: e.shape });
  return out;
}

/** options.prefix of parseSafetensors and readSafetensors (what), checked; '' when absent. */
function prefixOption(what, options) {
  if (options === null || typeof options !== 'object') throw new TypeError(`${what}: options must be an object, got ${describe(options)}`);
  const { prefix = '' } = plainObject(what, options, ['prefix']);
  if (typeof prefix !== 'string') throw new TypeError(`${what}: options.prefix must be a string, got ${describe(prefix)}`);
  return prefix;
}

/** The tensors (of a header: { name }) whose names start with prefix; none is a RangeError (where: which file). */
function withPrefix(what, tensors, prefix, where = '') {
  const chosen = tensors.filter((t) => t.name.startsWith(prefix));
  if (prefix && chosen.length === 0)
    throw new RangeError(`${what}: no tensor name starts with "${prefix}"${where} (names: ${tensors.slice(0, 6).map((t) => t.name).join(', ')}${tensors.length > 6 ? ', …' : ''})`);
  return chosen;
}

/** out[name] = tensor, with defineProperty: a tensor named "__proto__" stays a plain entry. */
const put = (out, name, tensor) => Object.defineProperty(out, name, { value: tensor, enumerable: true, writable: true, configurable: true });

/** The file's "__metadata__" (string keys and values), {} when it has none. */
export function safetensorsMetadata(bytes) {
  return { ...parse(bytes).metadata };
}

// ── Files as Blobs (a File from an <input>, fetch()'s response.blob(), Node's fs.openAsBlob) ──
// The header is read first; each tensor's bytes only when asked, with Blob.slice(): no copy
// of the whole file is ever made, so files of any size read (Chromium's Blob.arrayBuffer()
// refuses about 2 GiB and more) and the memory a read takes is the tensors', not twice that.

/** Whether v is a Blob (a File too). */
export const isBlob = (v) => typeof Blob === 'function' && v instanceof Blob;
const blobName = (blob) => (typeof blob.name === 'string' && blob.name ? quote(blob.name) : 'the Blob');

/** The bytes [begin, end) of a Blob, as an ArrayBuffer of exactly that length. */
async function readRange(blob, begin, end, what) {
  let buf;
  try {
    buf = await blob.slice(begin, end).arrayBuffer();
  } catch (e) {
    throw new Error(`readSafetensors: cannot read ${what} of ${blobName(blob)}: ${e?.message ?? e}`, { cause: e });
  }
  if (buf.byteLength !== end - begin)
    throw new RangeError(`readSafetensors: ${blobName(blob)} gave ${buf.byteLength} bytes for ${what}, ${end - begin} expected (did the file change?)`);
  return buf;
}

/**
 * An open .safetensors Blob: its header read and checked now, its tensors' data on demand.
 * { metadata, tensors: [{ name, dims, kind (the typed array the data is read into), load(),
 * loadRows(first, count) (rows [first, first + count) of a tensor of two or more dims) }] }.
 * For mha-wasm/models' loadModel, which reads each part of a model as it copies it in.
 */
export async function openSafetensors(blob) {
  if (!isBlob(blob)) throw new TypeError(`readSafetensors: expected a Blob or File, got ${what(blob)}`);
  const size = blob.size;
  const label = (e) => (e instanceof TypeError || e instanceof RangeError
    ? new e.constructor(`${e.message.replace(/^parseSafetensors: /, 'readSafetensors: ')} (in ${blobName(blob)})`) : e);
  try {
    const n = headerLength(new DataView(await readRange(blob, 0, Math.min(8, size), 'the header length')), size);
    const dataStart = 8 + n;
    const { entries, metadata } = entriesOf(headerObject(new Uint8Array(await readRange(blob, 8, dataStart, 'the header'))), size - dataStart);
    // Bytes [begin, end) of tensor e's data, read and converted as its whole would be.
    const readPart = async (e, begin, end, what) => {
      const buf = await readRange(blob, dataStart + begin, dataStart + end, what);
      if (storedAsRead(e)) return new e.dt.Array(buf);  // the read's own buffer: no copy
      return toArray(new Uint8Array(buf), new DataView(buf), -begin, { ...e, begin, end });
    };
    const tensors = entries.map((e) => ({
      name: e.name, dims: e.shape, kind: e.dt.Array.name,
      load: () => readPart(e, e.begin, e.end, `tensor ${quote(e.name)}`),
      async loadRows(first, count) {
        const rowBytes = e.shape.length < 2 ? 0 : (e.end - e.begin) / e.shape[0];
        if (!(rowBytes > 0 && Number.isSafeInteger(first) && Number.isSafeInteger(count) && first >= 0 && count > 0 && first + count <= e.shape[0]))
          throw new RangeError(`readSafetensors: tensor ${quote(e.name)} ${fmtShape(e.shape)} has no rows ${first}..${first + count - 1}`);
        const begin = e.begin + first * rowBytes;
        return readPart(e, begin, begin + count * rowBytes, `rows ${first}..${first + count - 1} of tensor ${quote(e.name)}`);
      },
    }));
    return { metadata: { ...metadata }, tensors };
  } catch (e) {
    throw label(e);
  }
}

/**
 * parseSafetensors for a Blob or File, read tensor by tensor (nothing holds the whole file):
 * the same { name: { data, dims } } and the same errors (they name a File).
 * @param {Blob} blob
 * @param {{ prefix?: string }} [options]
 */
export async function readSafetensors(blob, options = {}) {
  const prefix = prefixOption('readSafetensors', options);
  const { tensors } = await openSafetensors(blob);
  const out = {};
  for (const t of withPrefix('readSafetensors', tensors, prefix, ` in ${blobName(blob)}`)) put(out, t.name.slice(prefix.length), { data: await t.load(), dims: t.dims });
  return out;
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

/** A copy of an entry's dims, each element read once, checked as the reader checks a shape. */
function copyDims(name, dims) {
  const problem = `encodeSafetensors: tensor ${quote(name)}:`;
  if (!Array.isArray(dims)) throw new TypeError(`${problem} dims must be an array of non-negative integers, got ${what(dims)}`);
  const copy = [];
  for (let i = 0, n = dims.length; i < n; i++) {
    const d = dims[i];
    if (typeof d !== 'number') throw new TypeError(`${problem} dims[${i}] must be a non-negative integer, got ${what(d)}`);
    if (!Number.isSafeInteger(d) || d < 0) throw new RangeError(`${problem} dims[${i}] must be a non-negative integer, got ${describe(d)}`);
    copy.push(d + 0);  // -0 is written as 0
  }
  return copy;
}

/**
 * Writes { name: { data, dims } } (or bare arrays, 1-D) as a .safetensors file (in
 * name order). data: a Float32Array, written as options.dtype: 'F32' (default) or
 * 'F16' (half the size; values rounded to nearest); or an integer array, written as
 * its own dtype (Int8Array → I8, Uint8Array → U8, Int32Array → I32, BigInt64Array →
 * I64, …). An entry's own `dtype` ('F32' or 'F16') overrides options.dtype for it.
 * metadata: an object of strings.
 * Refuses what parseSafetensors would refuse (the name "__metadata__", dims that are
 * not non-negative integers); any other name, "__proto__" included, is written as given.
 * @returns {Uint8Array}
 */
export function encodeSafetensors(tensors, metadata, options = {}) {
  if (tensors === null || typeof tensors !== 'object' || Array.isArray(tensors))
    throw new TypeError(`encodeSafetensors: tensors must be an object { name: { data: Float32Array, dims } }, got ${what(tensors)}`);
  if (options === null || typeof options !== 'object') throw new TypeError(`encodeSafetensors: options must be an object, got ${what(options)}`);
  const dtype = plainObject('encodeSafetensors', options, ['dtype']).dtype ?? 'F32';
  if (dtype !== 'F32' && dtype !== 'F16') throw new TypeError(`encodeSafetensors: options.dtype must be 'F32' or 'F16', got ${what(dtype)}`);
  // No prototype: a tensor named "__proto__" is an entry like any other, not a prototype to set.
  const header = Object.create(null);
  if (metadata !== undefined && metadata !== null) {
    if (typeof metadata !== 'object') throw new TypeError(`encodeSafetensors: metadata must be an object of strings, got ${what(metadata)}`);
    const copy = Object.create(null);
    for (const k of Object.keys(metadata)) {
      const v = metadata[k];  // read once: the copy is what is checked and written
      if (typeof v !== 'string') throw new TypeError(`encodeSafetensors: metadata must be an object of strings, got ${what(v)} for ${quote(k)}`);
      copy[k] = v;
    }
    header.__metadata__ = copy;
  }
  // First every read of the caller's objects (each entry, its data and its dims once; getters may run)...
  const entries = [];
  for (const name of Object.keys(tensors).sort()) {
    if (name === '__metadata__')
      throw new TypeError('encodeSafetensors: a tensor may not be named "__metadata__" (the format keeps the file\'s metadata under that name)');
    const t = tensors[name];
    let data = t, dims, tensorDtype;
    if (isWritable(t)) dims = [typedArrayLength(t)];  // a bare array: 1-D
    else {
      if (!isObject(t) || typedArrayKind(t))
        throw new TypeError(`encodeSafetensors: ${quote(name)} must be a Float32Array or { data: Float32Array, dims } with matching sizes, got ${what(t)}`);
      data = t.data;
      const own = t.dtype;  // read once
      if (own !== undefined && own !== 'F32' && own !== 'F16')
        throw new TypeError(`encodeSafetensors: ${quote(name)}.dtype must be 'F32' or 'F16' (for a Float32Array), got ${what(own)}`);
      tensorDtype = own;
      if (!isWritable(data))
        throw new TypeError(`encodeSafetensors: ${quote(name)} must be a Float32Array or { data: Float32Array, dims } with matching sizes, got ${data === undefined ? what(t) : `data ${what(data)}`}`);
      dims = copyDims(name, t.dims);
    }
    entries.push({ name, data, dims, length: NaN, floatDtype: tensorDtype ?? dtype });
  }
  // ...then the sizes, from the arrays' intrinsic lengths, now that no caller code runs any more
  // (a getter of a later entry may have detached or resized an earlier entry's buffer).
  let offset = 0;
  for (const e of entries) {
    e.length = typedArrayLength(e.data);
    if (elements(e.dims) !== e.length)
      throw new TypeError(`encodeSafetensors: ${quote(e.name)} must be a Float32Array or { data: Float32Array, dims } with matching sizes, got ${e.length} elements for dims ${fmtShape(e.dims)}`);
    e.dtype = isFloat32Array(e.data) ? e.floatDtype : WRITE_DTYPES.get(typedArrayKind(e.data));
    const bytes = e.length * SIZE_OF[e.dtype];
    header[e.name] = { dtype: e.dtype, shape: e.dims, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + new TextEncoder().encode(json).length) % 8)) % 8);  // align the data
  const head = new TextEncoder().encode(json);
  if (head.length > MAX_HEADER)
    throw new RangeError(`encodeSafetensors: the header would be ${head.length} bytes, more than the format's limit of ${MAX_HEADER} (names or metadata too long)`);
  const out = new Uint8Array(8 + head.length + offset);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, head.length, true);
  out.set(head, 8);
  let at = 8 + head.length;
  for (const { data: d, length: n, dtype: dt } of entries) {
    const set = SETTERS[dt], size = SIZE_OF[dt];
    for (let i = 0; i < n; i++, at += size) set(dv, at, d[i]);
  }
  return out;
}
