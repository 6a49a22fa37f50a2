// Seeded fuzzing of the safetensors reader and writer. Valid files (written byte
// by byte here) are mutated: bit flips, truncation, appended bytes, header length
// fields near the limits, and header JSON edits (unsupported dtypes including
// Object.prototype names, bad or huge or negative dims, overlapping or
// out-of-range offsets, misshapen metadata). An independent check written below
// decides what the reader must do with each file: return exactly the tensors the
// header describes (values decoded here from the bytes), or throw a TypeError or
// RangeError, and when the file has one thing wrong, the kind of error that names
// it. Random tensor sets also go through encode -> parse and must come back
// equal (F16 against a float64 rounding reference).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeSafetensors, parseSafetensors, safetensorsMetadata } from 'mha-wasm';

const LIMIT = 100_000_000;  // the reference reader's MAX_HEADER_SIZE

// mulberry32: a small deterministic PRNG, so every run sees the same cases.
function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n) => Math.floor(next() * n);  // 0 .. n-1
  const pick = (xs) => xs[int(xs.length)];
  return { next, int, pick, chance: (p) => next() < p };
}

// --- The independent check -------------------------------------------------

const SIZES = new Map([['F32', 4], ['F16', 2], ['BF16', 2], ['F64', 8], ['I64', 8], ['U64', 8], ['I32', 4], ['U32', 4], ['I16', 2],
  ['U16', 2], ['I8', 1], ['U8', 1], ['BOOL', 1]]);
// The array each dtype is read into.
const ARRAY_OF = { F32: Float32Array, F16: Float32Array, BF16: Float32Array, F64: Float32Array, I64: BigInt64Array, U64: BigUint64Array,
  I32: Int32Array, U32: Uint32Array, I16: Int16Array, U16: Uint16Array, I8: Int8Array, U8: Uint8Array, BOOL: Uint8Array };

function halfToNumber(h) {
  const sign = h >> 15 ? -1 : 1, exp = (h >> 10) & 31, frac = h & 1023;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return exp ? sign * (1024 + frac) * 2 ** (exp - 25) : sign * frac * 2 ** -24;
}

function decode(buf, dtype, begin, n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    if (dtype === 'F32') out.push(buf.readFloatLE(begin + 4 * i));
    else if (dtype === 'F64') out.push(Math.fround(buf.readDoubleLE(begin + 8 * i)));
    else if (dtype === 'F16') out.push(halfToNumber(buf.readUInt16LE(begin + 2 * i)));
    else if (dtype === 'I64') out.push(buf.readBigInt64LE(begin + 8 * i));
    else if (dtype === 'U64') out.push(buf.readBigUInt64LE(begin + 8 * i));
    else if (dtype === 'I32') out.push(buf.readInt32LE(begin + 4 * i));
    else if (dtype === 'U32') out.push(buf.readUInt32LE(begin + 4 * i));
    else if (dtype === 'I16') out.push(buf.readInt16LE(begin + 2 * i));
    else if (dtype === 'U16') out.push(buf.readUInt16LE(begin + 2 * i));
    else if (dtype === 'I8') out.push(buf.readInt8(begin + i));
    else if (dtype === 'U8') out.push(buf.readUInt8(begin + i));
    else if (dtype === 'BOOL') out.push(buf.readUInt8(begin + i) ? 1 : 0);
    else { const b = Buffer.alloc(4); b.writeUInt32BE(buf.readUInt16LE(begin + 2 * i) * 65536); out.push(b.readFloatBE(0)); }
  }
  return out;
}

const isDim = (x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

/**
 * What the reader must do with a file: { tensors: [{ name, dims, values }] } when it
 * is valid, else { problems: [{ Kind, re }] } (every problem found, each with the error
 * class and the words the reader's message must hold when it is the only one).
 */
function expected(u8) {
  const buf = Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
  const fatal = (Kind, re) => ({ problems: [{ Kind, re }] });
  if (buf.length < 8) return fatal(RangeError, /too short/);
  const n = buf.readBigUInt64LE(0);
  if (n > BigInt(buf.length - 8)) return fatal(RangeError, /but only \d+ bytes follow it/);
  if (n > BigInt(LIMIT)) return fatal(RangeError, /limit of 100000000 bytes/);
  const head = buf.subarray(8, 8 + Number(n));
  if (n < 2n || head[0] !== 0x7b) return fatal(TypeError, /not a JSON object/);
  const text = head.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(head)) return fatal(TypeError, /not valid UTF-8 JSON/);  // Node's decoder replaces bad sequences
  let header;
  try { header = JSON.parse(text); } catch { return fatal(TypeError, /not valid UTF-8 JSON/); }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return fatal(TypeError, /not a JSON object/);
  const dataStart = 8 + Number(n), dataLen = buf.length - dataStart;
  const problems = [], tensors = [];
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (typeof e !== 'object' || e === null || Array.isArray(e) || !Object.values(e).every((v) => typeof v === 'string'))
        problems.push({ Kind: TypeError, re: /__metadata__ must be an object of strings/ });
      continue;
    }
    if (typeof e !== 'object' || e === null || Array.isArray(e)) { problems.push({ Kind: TypeError, re: /is not an object/ }); continue; }
    const own = (k) => (Object.hasOwn(e, k) ? e[k] : undefined);
    const dtype = own('dtype'), shape = own('shape'), off = own('data_offsets');
    const size = typeof dtype === 'string' && SIZES.has(dtype) ? SIZES.get(dtype) : 0;
    if (typeof dtype !== 'string') problems.push({ Kind: TypeError, re: /has no dtype/ });
    else if (!size) problems.push({ Kind: TypeError, re: /has dtype .*, which this reader does not know/ });
    const shapeOk = Array.isArray(shape) && shape.every(isDim);
    if (!shapeOk) problems.push({ Kind: TypeError, re: /invalid shape/ });
    const offOk = Array.isArray(off) && off.length === 2 && off.every(isDim);
    if (!offOk) { problems.push({ Kind: TypeError, re: /invalid data_offsets/ }); continue; }
    const [begin, end] = off;
    if (begin > end || end > dataLen) { problems.push({ Kind: RangeError, re: /outside the \d+-byte data section/ }); continue; }
    if (!size || !shapeOk) continue;
    const count = shape.reduce((p, d) => p * BigInt(d), 1n);  // exact
    if (count * BigInt(size) !== BigInt(end - begin)) { problems.push({ Kind: RangeError, re: /needs .* bytes, but its data_offsets/ }); continue; }
    tensors.push({ name, dims: shape, begin, end, Array: ARRAY_OF[dtype], values: decode(buf, dtype, dataStart + begin, Number(count)) });
  }
  const spans = tensors.filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < spans.length; i++)
    if (spans[i].begin < spans[i - 1].end) problems.push({ Kind: RangeError, re: /overlap in the data section/ });
  return problems.length ? { problems } : { tensors, metadata: Object.hasOwn(header, '__metadata__') ? header.__metadata__ : {} };
}

const same = (a, b) => Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));

function checkParse(u8, what) {
  const want = expected(u8);
  let got, err;
  try { got = parseSafetensors(u8); } catch (e) { err = e; }
  if (want.problems) {
    assert.ok(err, `${what}: accepted a file with ${want.problems.map((p) => p.re).join(', ')}`);
    assert.ok(err instanceof TypeError || err instanceof RangeError, `${what}: ${err?.stack}`);
    assert.match(err.message, /^parseSafetensors: /, what);
    if (want.problems.length === 1) {
      const [{ Kind, re }] = want.problems;
      assert.ok(err instanceof Kind && re.test(err.message), `${what}: ${err.name}: ${err.message.slice(0, 300)} (wanted ${Kind.name} ${re})`);
    }
    return 'refused';
  }
  assert.ok(!err, `${what}: refused a valid file: ${err?.name}: ${err?.message.slice(0, 300)}`);
  assert.deepEqual(Object.keys(got).sort(), want.tensors.map((t) => t.name).sort(), what);
  for (const t of want.tensors) {
    assert.ok(Object.hasOwn(got, t.name), what);
    const { data, dims } = got[t.name];
    assert.ok(data instanceof t.Array && Array.isArray(dims), what);
    assert.ok(dims.length === t.dims.length && dims.every((d, i) => d === t.dims[i]), `${what}: ${t.name} dims`);
    assert.equal(data.length, t.values.length, `${what}: ${t.name} length`);
    for (let i = 0; i < data.length; i++) assert.ok(same(data[i], t.values[i]), `${what}: ${t.name}[${i}] ${data[i]} != ${t.values[i]}`);
  }
  assert.deepEqual({ ...safetensorsMetadata(u8) }, { ...want.metadata }, what);
  return 'accepted';
}

// --- Valid files, and mutations of them -------------------------------------------

const NAMES = ['w', 'in_proj_weight', 'out_proj.bias', 'layers.0.self_attn.in_proj_bias', '', '__proto__', 'constructor', 'toString',
  'hasOwnProperty', 'ünï', '🙂', 'a"b\\c', '0', '__metadata__x'];
const DTYPES = ['F32', 'F16', 'BF16', 'F64', 'I64', 'U64', 'I32', 'U32', 'I16', 'U16', 'I8', 'U8', 'BOOL'];
const BAD_DTYPES = ['F8_E4M3', 'I4', 'bool', 'i8', 'f32', '', ' F32', 'toString', 'constructor', '__proto__', 'hasOwnProperty',
  'valueOf', 'isPrototypeOf', '__defineGetter__', 'toLocaleString', 'length', 'size', 32, null, true, ['F32'], { F32: 1 }];

/** A valid file's header object and data bytes: up to 4 tensors of random dtypes and dims, sometimes with gaps between them. */
function validFile(r) {
  const header = {};
  if (r.chance(0.3)) header.__metadata__ = r.chance(0.2) ? JSON.parse('{"__proto__": "p", "format": "pt"}') : { format: 'pt', n: String(r.int(9)) };
  const count = r.int(5);
  const names = new Set();
  while (names.size < count) names.add(r.chance(0.6) ? r.pick(NAMES) : `t${r.int(1000)}`);
  const chunks = [];
  let off = 0;
  for (const name of names) {
    const dtype = r.pick(DTYPES), size = SIZES.get(dtype);
    const dims = Array.from({ length: r.int(4) }, () => (r.chance(0.1) ? 0 : 1 + r.int(4)));
    const bytes = Buffer.alloc(dims.reduce((p, d) => p * d, 1) * size);
    for (let i = 0; i < bytes.length; i++) bytes[i] = r.int(256);
    if (r.chance(0.2)) { chunks.push(Buffer.alloc(r.int(9))); off += chunks.at(-1).length; }  // a gap is tolerated
    Object.defineProperty(header, name, { value: { dtype, shape: dims, data_offsets: [off, off + bytes.length] }, enumerable: true, configurable: true, writable: true });
    chunks.push(bytes);
    off += bytes.length;
  }
  return { header, data: Buffer.concat(chunks) };
}

function assemble(header, data, r) {
  let json = Buffer.from(JSON.stringify(header));
  if (r && r.chance(0.3)) json = Buffer.concat([json, Buffer.alloc(r.int(12), 0x20)]);  // trailing padding
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return new Uint8Array(Buffer.concat([len, json, data]));
}

const HUGE = [2 ** 31, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 64, 1e300, 1e308 * 10];
const BAD_NUMBERS = [-1, -0, 1.5, -(2 ** 31), NaN, '3', null, [2], {}, true];

function mutateHeader(r, header, dataLen) {
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  // A random entry that is still an object with the given array fields (earlier edits may have broken it), or null.
  const entry = (...arrays) => {
    const e = names.length ? header[r.pick(names)] : null;
    return e && typeof e === 'object' && !Array.isArray(e) && arrays.every((k) => Array.isArray(e[k])) ? e : null;
  };
  const dim = () => (r.chance(0.5) ? r.pick(HUGE) : r.pick(BAD_NUMBERS));
  const edits = [
    () => { const e = entry(); if (e) e.dtype = r.pick(BAD_DTYPES); },
    () => { const e = entry(); if (e) e.dtype = r.pick(DTYPES); },  // the right size only by chance
    () => { const e = entry(); if (e) delete e[r.pick(['dtype', 'shape', 'data_offsets'])]; },
    () => { const e = entry('shape'); if (e) e.shape.length ? (e.shape[r.int(e.shape.length)] = dim()) : e.shape.push(dim()); },
    () => { const e = entry('shape'); if (e) e.shape.push(r.pick([0, 1, 2, 2 ** 53 - 1])); },
    () => {  // many huge dims, sometimes ending in a zero (an empty tensor however large the others)
      const e = entry();
      if (e) e.shape = Array.from({ length: 1 + r.int(30) }, () => (r.chance(0.8) ? 2 ** 53 - 1 : r.pick([2 ** 40, 3]))).concat(r.chance(0.5) ? [0] : []);
      if (e && r.chance(0.5)) e.data_offsets = [0, 0];
    },
    () => { const e = entry(); if (e) e.shape = r.pick([null, 3, '3', {}, [[1]], [], [-1]]); },
    () => { const e = entry('data_offsets'); if (e) e.data_offsets[r.int(2)] = r.chance(0.5) ? r.int(dataLen + 16) : r.pick([...HUGE, ...BAD_NUMBERS]); },
    () => { const e = entry('data_offsets'); if (e) e.data_offsets.reverse(); },
    () => { const e = entry(); if (e) e.data_offsets = r.pick([[0], [0, 0, 0], null, '0,4', [dataLen, dataLen], [0, dataLen + 1], [dataLen + 1, dataLen + 1]]); },
    () => {  // overlap: one tensor's range moved onto (or next to) another's
      const a = entry('data_offsets'), b = entry('data_offsets');
      if (!a || !b || a === b) return;
      const at = Math.max(0, a.data_offsets[0] + r.int(9) - 4), len = b.data_offsets[1] - b.data_offsets[0];
      b.data_offsets = [at, at + len];
    },
    () => { if (names.length) header[r.pick(names)] = r.pick([null, 7, 'x', [1, 2], []]); },
    () => { header.__metadata__ = r.pick([{ n: 3 }, null, ['a'], 'x', { a: 'b', c: null }, {}, JSON.parse('{"__proto__": 1}'), JSON.parse('{"__proto__": "p"}')]); },
    () => {  // a copy under a name from Object.prototype (overlapping the original)
      const e = entry('shape', 'data_offsets');
      if (e) Object.defineProperty(header, r.pick(['__proto__', 'toString', 'constructor', 'hasOwnProperty']),
        { value: { ...e, shape: [...e.shape], data_offsets: [...e.data_offsets] }, enumerable: true, configurable: true, writable: true });
    },
  ];
  for (let i = r.chance(0.3) ? 1 + r.int(3) : 1; i > 0; i--) r.pick(edits)();
}

function mutateBytes(r, u8) {
  const kind = r.int(6);
  if (kind === 0) {  // bit flips anywhere
    const out = u8.slice();
    for (let i = 1 + r.int(4); i > 0; i--) out[r.int(out.length)] ^= 1 << r.int(8);
    return out;
  }
  if (kind === 1) {  // bit flips in the header text
    const out = u8.slice(), n = Number(Buffer.from(out.buffer).readBigUInt64LE(0));
    if (n) for (let i = 1 + r.int(2); i > 0; i--) out[8 + r.int(n)] ^= 1 << r.int(8);
    return out;
  }
  if (kind === 2) return u8.slice(0, r.int(u8.length));  // truncated
  if (kind === 3) {  // bytes appended
    const out = new Uint8Array(u8.length + 1 + r.int(16));
    out.set(u8);
    return out;
  }
  // A header length field near the limits (or off by a little from the true one).
  const out = u8.slice(), dv = new DataView(out.buffer), n = dv.getBigUint64(0, true), len = BigInt(u8.length);
  const L = BigInt(LIMIT), field = r.pick([L - 1n, L, L + 1n, 100n * 1024n * 1024n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 64n - 1n,
    0n, 1n, 2n, n - 1n, n + 1n, n + 8n, len - 8n, len - 7n]);
  dv.setBigUint64(0, field < 0n ? 0n : field, true);
  return out;
}

test('fuzz: mutated files are parsed exactly as the header says, or refused with a TypeError or RangeError', { timeout: 60000 }, () => {
  const r = prng(0x5afe7e45);
  const tally = { accepted: 0, refused: 0 };
  for (let iter = 0; iter < 3000; iter++) {
    const { header, data } = validFile(r);
    const mode = r.int(3);  // 0: valid as written, 1: header edits (sometimes bytes too), 2: bytes mutated
    if (mode === 1) mutateHeader(r, header, data.length);
    let u8 = assemble(header, data, r);
    if (mode === 2 || (mode === 1 && r.chance(0.2))) u8 = mutateBytes(r, u8);
    tally[checkParse(u8, `iteration ${iter}`)]++;
  }
  // Both outcomes are exercised.
  assert.ok(tally.accepted > 300 && tally.refused > 1000, JSON.stringify(tally));
});

test('fuzz: header lengths near the 100,000,000-byte limit', { timeout: 60000 }, () => {
  // Short files whose length field says anything near the limit (refused: the header is not all there)...
  const r = prng(7);
  for (let iter = 0; iter < 200; iter++) {
    const { header, data } = validFile(r);
    const u8 = assemble(header, data);
    const field = BigInt(LIMIT) + BigInt(r.int(9) - 4) * BigInt(1 + r.int(3)) ** BigInt(r.int(20));
    new DataView(u8.buffer).setBigUint64(0, field < 0n ? 0n : field % 2n ** 64n, true);
    assert.equal(checkParse(u8, `field ${field}`), 'refused');
  }
  // ...and files long enough for a header of about the limit: one tensor, its JSON padded with spaces.
  const big = new Uint8Array(8 + LIMIT + 64).fill(0x20), dv = new DataView(big.buffer);
  big.set(Buffer.from(JSON.stringify({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } })), 8);
  const outcomes = [];
  for (const n of [LIMIT, LIMIT + 1, LIMIT + 8, LIMIT + 52]) {
    dv.setBigUint64(0, BigInt(n), true);
    dv.setFloat32(8 + n, n, true);
    outcomes.push(checkParse(big.subarray(0, 8 + n + 4), `header of ${n} bytes`));
    big.fill(0x20, 8 + n, 8 + n + 4);
  }
  assert.deepEqual(outcomes, ['accepted', 'refused', 'refused', 'refused']);
});

// --- encode -> parse ----------------------------------------------------------

/** x (a float32 value) rounded to the nearest IEEE half, ties to even, in float64 arithmetic. */
function roundToHalf(x) {
  if (Number.isNaN(x) || x === 0 || !Number.isFinite(x)) return x;
  const sign = x < 0 ? -1 : 1, a = Math.abs(x);
  if (a >= 65520) return sign * Infinity;  // halfway to 2^16 and beyond: overflow
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  const ulp = 2 ** (Math.max(e, -14) - 10);  // subnormals share the smallest exponent's spacing
  const q = a / ulp;  // exact: a has 24 significant bits, ulp is a power of two
  let m = Math.floor(q);
  if (q - m > 0.5 || (q - m === 0.5 && m % 2 === 1)) m++;
  return sign * m * ulp;
}

const SPECIAL = [0, -0, 1, -1, 0.1, 1 / 3, 65504, 65519.99, 65520, -65536, 1e6, -1e-3, 2 ** -14, 2 ** -24, 2 ** -25, 3 * 2 ** -25, 2 ** -26,
  1e-8, 1 + 2 ** -11, 1 + 3 * 2 ** -11, Infinity, -Infinity, NaN, 3.4e38, 1e-45];

function randomValue(r) {
  if (r.chance(0.15)) return r.pick(SPECIAL);
  const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
  if (r.chance(0.2)) { u32[0] = Math.floor(r.next() * 2 ** 32); return f32[0]; }  // any bit pattern
  return (r.next() * 2 - 1) * 2 ** (r.int(40) - 25);
}

function randomName(r) {
  if (r.chance(0.4)) return r.pick(NAMES);
  const alphabet = 'ab._0Z-/ é🙂"\\\u0000\ud800';
  let s = r.chance(0.3) ? r.pick(['layers.0.', 'enc.', '__']) : '';
  for (let i = r.int(8); i > 0; i--) s += alphabet[r.int(alphabet.length)];
  return s;
}

test('fuzz: random tensor sets round-trip through encodeSafetensors and parseSafetensors', { timeout: 60000 }, () => {
  const r = prng(20240607);
  for (let iter = 0; iter < 1500; iter++) {
    const tensors = r.chance(0.5) ? Object.create(null) : {};
    const want = new Map();
    for (let k = r.int(6); k > 0; k--) {
      const name = randomName(r);
      if (name === '__metadata__') continue;
      const dims = Array.from({ length: r.int(4) }, () => (r.chance(0.15) ? 0 : 1 + r.int(5)));
      const data = Float32Array.from({ length: dims.reduce((p, d) => p * d, 1) }, () => randomValue(r));
      const bare = dims.length === 1 && r.chance(0.5);
      Object.defineProperty(tensors, name, { value: bare ? data : { data, dims }, enumerable: true, configurable: true, writable: true });
      want.set(name, { data, dims });
    }
    const metadata = r.chance(0.3) ? Object.fromEntries(Array.from({ length: r.int(3) }, () => [randomName(r), randomName(r)])) : undefined;
    if (metadata && r.chance(0.3)) Object.defineProperty(metadata, '__proto__', { value: 'm', enumerable: true });
    const dtype = r.pick(['F32', 'F16']);
    const bytes = encodeSafetensors(tensors, metadata, dtype === 'F32' && r.chance(0.5) ? undefined : { dtype });
    const what = `iteration ${iter} (${dtype})`;
    const check = expected(bytes);
    assert.ok(!check.problems, `${what}: the encoder wrote a file the independent check refuses: ${check.problems?.map((p) => p.re)}`);
    assert.equal(Number(Buffer.from(bytes.buffer).readBigUInt64LE(0)) % 8, 0, `${what}: data section aligned`);
    const got = parseSafetensors(bytes);
    assert.deepEqual(Object.keys(got).sort(), [...want.keys()].sort(), what);
    for (const [name, { data, dims }] of want) {
      assert.ok(Object.hasOwn(got, name), `${what}: ${JSON.stringify(name)}`);
      assert.deepEqual(got[name].dims, dims, what);
      assert.equal(got[name].data.length, data.length, what);
      for (let i = 0; i < data.length; i++) {
        const ref = dtype === 'F16' ? Math.fround(roundToHalf(data[i])) : data[i];
        assert.ok(same(got[name].data[i], ref), `${what}: ${JSON.stringify(name)}[${i}] ${data[i]} -> ${got[name].data[i]}, wanted ${ref}`);
      }
    }
    assert.deepEqual({ ...safetensorsMetadata(bytes) }, { ...(metadata ?? {}) }, what);
    // A prefix keeps exactly the names that start with it, stripped.
    if (want.size) {
      const some = [...want.keys()][r.int(want.size)], prefix = some.slice(0, r.int(some.length + 1));
      const kept = [...want.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length)).sort();
      if (prefix) assert.deepEqual(Object.keys(parseSafetensors(bytes, { prefix })).sort(), kept, what);
    }
  }
});

test('fuzz: encodeSafetensors refuses (TypeError or RangeError) whatever the reader would refuse, and writes the rest', { timeout: 60000 }, () => {
  const r = prng(99);
  const DIM_VALUES = [0, 1, 2, 3, -1, -0, 1.5, NaN, Infinity, 2 ** 53, 2 ** 53 - 1, '2', [2], null, undefined, 2n, {}];
  let written = 0;
  for (let iter = 0; iter < 1500; iter++) {
    const name = r.chance(0.1) ? '__metadata__' : randomName(r);
    const dims = r.chance(0.1) ? r.pick(['2', 2, null, undefined, { length: 1, 0: 2 }, new Float32Array(1)]) : Array.from({ length: r.int(4) }, () => r.pick(DIM_VALUES));
    const len = r.chance(0.7) && Array.isArray(dims) && dims.every(isDim) ? Math.min(64, dims.reduce((p, d) => p * d, 1)) : r.int(5);
    const data = r.chance(0.9) ? new Float32Array(len) : r.pick([[0], new Float64Array(len), null, 'x']);
    const entry = { data, dims };
    const tensors = Object.defineProperty({}, name, { value: entry, enumerable: true });
    const valid = name !== '__metadata__' && data instanceof Float32Array && Array.isArray(dims) && dims.every(isDim)
      && dims.reduce((p, d) => p * BigInt(d), 1n) === BigInt(data.length);
    let bytes, err;
    try { bytes = encodeSafetensors(tensors, undefined, { dtype: r.pick(['F32', 'F16']) }); } catch (e) { err = e; }
    const what = `iteration ${iter}: ${JSON.stringify(name)} dims ${String(dims)}`;
    if (!valid) {
      assert.ok(err, `${what}: written`);
      assert.ok((err instanceof TypeError || err instanceof RangeError) && /^encodeSafetensors: /.test(err.message), `${what}: ${err.stack}`);
      continue;
    }
    assert.ok(!err, `${what}: ${err?.message}`);
    const got = parseSafetensors(bytes)[name];
    assert.ok(got.dims.every((d, i) => d === dims[i]) && got.data.length === data.length, what);
    written++;
  }
  assert.ok(written > 100, `${written} written`);
});
