// The safetensors reader: files written byte by byte (safetensors-file.mjs, not
// the package's encoder), PyTorch nn.MultiheadAttention names fed straight into
// setWeights, conversions from F16/BF16/F64, and malformed or hostile files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeSafetensors, init, parseSafetensors, readSafetensors, safetensorsMetadata } from 'mha-wasm';
import { mhaReference, relErr, rng, uniform } from './reference.mjs';
import { f32File, file } from './safetensors-file.mjs';

test('a PyTorch nn.MultiheadAttention state dict loads by its own names and computes the layer', async () => {
  const mha = await init({ threads: 1 });
  const r = rng(5), E = 16, H = 4, L = 9, s = 1 / Math.sqrt(E);
  const w = { inProjWeight: uniform(r, 3 * E * E, -s, s), inProjBias: uniform(r, 3 * E, -s, s), outProjWeight: uniform(r, E * E, -s, s), outProjBias: uniform(r, E, -s, s) };
  const bytes = f32File({
    'out_proj.weight': { data: w.outProjWeight, dims: [E, E] }, in_proj_weight: { data: w.inProjWeight, dims: [3 * E, E] },
    'out_proj.bias': { data: w.outProjBias, dims: [E] }, in_proj_bias: { data: w.inProjBias, dims: [3 * E] },
  }, { format: 'pt', num_heads: String(H) });
  // An odd byte offset: the reader must not assume the file's buffer is aligned.
  const shifted = new Uint8Array(bytes.length + 1);
  shifted.set(bytes, 1);
  const tensors = parseSafetensors(shifted.subarray(1));
  assert.deepEqual(Object.keys(tensors).sort(), ['in_proj_bias', 'in_proj_weight', 'out_proj.bias', 'out_proj.weight']);
  assert.deepEqual(tensors.in_proj_weight.dims, [3 * E, E]);
  assert.deepEqual(tensors.in_proj_weight.data, w.inProjWeight);
  assert.deepEqual(safetensorsMetadata(bytes.buffer), { format: 'pt', num_heads: '4' });
  // A Node Buffer (what fs.readFileSync returns) inside a larger pool: Buffer.slice shares memory, so
  // each tensor must still be its own copy of exactly its elements.
  const pooled = Buffer.concat([Buffer.alloc(3), Buffer.from(bytes), Buffer.alloc(5)]).subarray(3, 3 + bytes.length);
  const fromBuffer = parseSafetensors(pooled);
  assert.equal(fromBuffer.in_proj_bias.data.length, 3 * E);
  assert.deepEqual(fromBuffer.in_proj_bias.data, w.inProjBias);

  const layer = new mha.MultiHeadAttention({ embedDim: E, numHeads: H });
  layer.setWeights(tensors);
  const x = uniform(r, L * E, -1, 1);
  const got = layer.forward({ data: x, dims: [1, L, E] }, null, null, { needWeights: true });
  const ref = mhaReference({ E, H, kdim: E, vdim: E, bias: true }, w, 1, L, L, x, x, x, { needWeights: true });
  assert.ok(relErr(got.output.data, ref.output) <= 1e-4);
  assert.ok(relErr(got.weights.data, ref.weights) <= 1e-4);
  layer.dispose();
});

test('separate q/k/v projections (kdim, vdim != embedDim), a prefix, and no bias', async () => {
  const mha = await init({ threads: 1 });
  const r = rng(8), E = 8, H = 2, kdim = 5, vdim = 3;
  const w = { qProjWeight: uniform(r, E * E, -1, 1), kProjWeight: uniform(r, E * kdim, -1, 1), vProjWeight: uniform(r, E * vdim, -1, 1), outProjWeight: uniform(r, E * E, -1, 1) };
  const bytes = f32File({
    'enc.attn.q_proj_weight': { data: w.qProjWeight, dims: [E, E] }, 'enc.attn.k_proj_weight': { data: w.kProjWeight, dims: [E, kdim] },
    'enc.attn.v_proj_weight': { data: w.vProjWeight, dims: [E, vdim] }, 'enc.attn.out_proj.weight': { data: w.outProjWeight, dims: [E, E] },
    'enc.norm.weight': { data: new Float32Array(E), dims: [E] },
  });
  const tensors = parseSafetensors(bytes, { prefix: 'enc.attn.' });
  assert.deepEqual(Object.keys(tensors).sort(), ['k_proj_weight', 'out_proj.weight', 'q_proj_weight', 'v_proj_weight']);
  const layer = new mha.MultiHeadAttention({ embedDim: E, numHeads: H, kdim, vdim, bias: false });
  layer.setWeights(tensors);
  const q = uniform(r, 2 * 4 * E, -1, 1), k = uniform(r, 2 * 6 * kdim, -1, 1), v = uniform(r, 2 * 6 * vdim, -1, 1);
  const got = layer.forward({ data: q, dims: [2, 4, E] }, { data: k, dims: [2, 6, kdim] }, { data: v, dims: [2, 6, vdim] });
  const ref = mhaReference({ E, H, kdim, vdim, bias: false }, w, 2, 4, 6, q, k, v, {});
  assert.ok(relErr(got.output.data, ref.output) <= 1e-4);
  assert.throws(() => parseSafetensors(bytes, { prefix: 'dec.' }), { name: 'RangeError', message: /no tensor name starts with "dec."/ });
  layer.dispose();
});

test('F16, BF16 and F64 tensors are converted to float32', () => {
  // F16: 1.0 = 0x3c00, -2.5 = 0xc100, 65504 = 0x7bff, smallest subnormal 2^-24 = 0x0001, -inf = 0xfc00.
  // BF16: 1.0 = 0x3f80, -3.0 = 0xc040. F64: 0.1.
  const d = Buffer.alloc(10 + 4 + 8);
  [0x3c00, 0xc100, 0x7bff, 0x0001, 0xfc00].forEach((h, i) => d.writeUInt16LE(h, 2 * i));
  [0x3f80, 0xc040].forEach((h, i) => d.writeUInt16LE(h, 10 + 2 * i));
  d.writeDoubleLE(0.1, 14);
  const t = parseSafetensors(file({
    h: { dtype: 'F16', shape: [5], data_offsets: [0, 10] }, b: { dtype: 'BF16', shape: [1, 2], data_offsets: [10, 14] },
    g: { dtype: 'F64', shape: [], data_offsets: [14, 22] },
  }, d));
  assert.deepEqual([...t.h.data], [1, -2.5, 65504, 2 ** -24, -Infinity].map(Math.fround));
  assert.deepEqual([...t.b.data], [1, -3]);
  assert.deepEqual(t.b.dims, [1, 2]);
  assert.deepEqual([...t.g.data], [Math.fround(0.1)]);
  assert.deepEqual(t.g.dims, []);
});

test('encodeSafetensors writes files the reader (and the format) accept', () => {
  const a = Float32Array.from([1, 2, 3, 4, 5, 6]), b = Float32Array.from([-1]);
  const bytes = encodeSafetensors({ 'out_proj.weight': { data: a, dims: [2, 3] }, bias: b }, { note: 'x' });
  const n = Number(Buffer.from(bytes).readBigUInt64LE(0));
  assert.equal((8 + n) % 8, 0, 'data section aligned to 8 bytes');
  const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString());
  assert.deepEqual(header, {
    __metadata__: { note: 'x' }, bias: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
    'out_proj.weight': { dtype: 'F32', shape: [2, 3], data_offsets: [4, 28] },
  });
  assert.equal(bytes.length, 8 + n + 28);
  assert.equal(Buffer.from(bytes).readFloatLE(8 + n + 4 + 20), 6);
  assert.throws(() => encodeSafetensors({ x: { data: a, dims: [4] } }), { name: 'TypeError', message: /"x" must be a Float32Array or \{ data: Float32Array, dims \} with matching sizes/ });
  assert.throws(() => encodeSafetensors({ x: a }, null, { dtype: 'BF16' }), { name: 'TypeError', message: /options\.dtype must be 'F32' or 'F16', got "BF16"/ });
});

test('encodeSafetensors F16: IEEE half bits, rounded to nearest with ties to even', () => {
  // [value, the half-precision bits IEEE 754 gives it]
  const cases = [[1, 0x3c00], [-2.5, 0xc100], [65504, 0x7bff], [65519, 0x7bff], [65520, 0x7c00], [1e6, 0x7c00], [-Infinity, 0xfc00],
    [2 ** -14, 0x0400], [2 ** -24, 0x0001], [2 ** -25, 0x0000], [3 * 2 ** -25, 0x0002], [2 ** -26, 0x0000], [1 / 3, 0x3555], [0.1, 0x2e66],
    [-0, 0x8000], [1 + 2 ** -10, 0x3c01], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [NaN, 0x7e00]];
  const data = Float32Array.from(cases, (c) => c[0]);
  const bytes = Buffer.from(encodeSafetensors({ h: data }, undefined, { dtype: 'F16' }));
  const n = Number(bytes.readBigUInt64LE(0));
  assert.deepEqual(JSON.parse(bytes.subarray(8, 8 + n).toString()).h, { dtype: 'F16', shape: [cases.length], data_offsets: [0, 2 * cases.length] });
  cases.forEach(([v, bits], i) => assert.equal(bytes.readUInt16LE(8 + n + 2 * i), bits, `${v}`));
  // Read back: within half a unit in the last place of half precision.
  const r = rng(3), x = uniform(r, 1000, -8, 8);
  const back = parseSafetensors(encodeSafetensors({ x }, undefined, { dtype: 'F16' })).x.data;
  for (let i = 0; i < x.length; i++) assert.ok(Math.abs(back[i] - x[i]) <= 2 ** -11 * Math.abs(x[i]) + 2 ** -25, `${x[i]} -> ${back[i]}`);
});

test('malformed and hostile files are refused with a clear message', () => {
  const ok = { w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  const data = new Uint8Array(8);
  const html = new TextEncoder().encode('<!doctype html><html><body>Not found</body></html>');
  const cases = [
    [42, TypeError, /bytes must be a Uint8Array or ArrayBuffer \(the file's contents\), got 42/],
    [new Uint8Array(5), RangeError, /the file is 5 bytes, too short/],
    [html, RangeError, /the header length field says \d+ bytes, but only \d+ bytes follow it/],
    [file(ok, data, 2 ** 40), RangeError, /the header length field says 1099511627776 bytes/],
    [file(ok, data, 3), TypeError, /the header is not valid UTF-8 JSON/],
    [file([1, 2]), TypeError, /the header is not a JSON object/],
    [file({ w: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } }, data), TypeError, /tensor "w" has dtype "F8_E4M3", which this reader does not know/],
    [file({ w: { shape: [2], data_offsets: [0, 8] } }, data), TypeError, /entry "w" has no dtype/],
    [file({ w: { dtype: 'F32', shape: [2, -1], data_offsets: [0, 8] } }, data), TypeError, /tensor "w" has an invalid shape \[2,-1\]/],
    [file({ w: { dtype: 'F32', shape: [2], data_offsets: [0] } }, data), TypeError, /tensor "w" has invalid data_offsets \[0\]/],
    [file({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 4096] } }, data), RangeError, /data_offsets \[0, 4096\] outside the 8-byte data section/],
    [file({ w: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, data), RangeError, /data_offsets \[8, 0\] outside/],
    [file({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, data), RangeError, /tensor "w" \(F32, shape \[3\]\) needs 12 bytes, but its data_offsets \[0, 8\] span 8/],
    [file({ w: { dtype: 'F32', shape: [1e6, 1e6], data_offsets: [0, 8] } }, data), RangeError, /needs 4000000000000 bytes/],
    [file({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, data), RangeError, /tensors "a" and "b" overlap/],
    [file({ ...ok, __metadata__: { n: 3 } }, data), TypeError, /__metadata__ must be an object of strings/],
  ];
  for (const [bytes, Kind, msg] of cases)
    assert.throws(() => parseSafetensors(bytes), (e) => e instanceof Kind && /^parseSafetensors: /.test(e.message) && msg.test(e.message) || assert.fail(`${e.name}: ${e.message} (wanted ${msg})`));
  // A tensor named __proto__ is a plain entry, not a prototype.
  const t = parseSafetensors(file({ ['__proto__']: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, data));
  assert.deepEqual(Object.keys(t), ['__proto__']);
  assert.equal(Object.getPrototypeOf(t), Object.prototype);
});

test('a file whose shapes do not fit the layer is refused by setWeights with the PyTorch name', async () => {
  const mha = await init({ threads: 1 });
  const E = 8;
  const tensors = parseSafetensors(f32File({
    in_proj_weight: { data: new Float32Array(3 * E * E), dims: [3 * E, E] }, in_proj_bias: { data: new Float32Array(3 * E), dims: [3 * E] },
    'out_proj.weight': { data: new Float32Array(E * E), dims: [E / 2, 2 * E] }, 'out_proj.bias': { data: new Float32Array(E), dims: [E] },
  }));
  const layer = new mha.MultiHeadAttention({ embedDim: E, numHeads: 2 });
  assert.throws(() => layer.setWeights(tensors), { name: 'RangeError', message: 'setWeights: out_proj.weight must have dims [8, 8], got [4, 16]' });
  layer.dispose();
});

// Every error a malformed file or argument gives: a TypeError or RangeError from this module.
const refused = (Kind, re, prefix = 'parseSafetensors') => (e) =>
  (e instanceof Kind && e.message.startsWith(`${prefix}: `) && re.test(e.message)) || assert.fail(`${e.name}: ${e.message} (wanted ${Kind.name} ${re})`);

test('a dtype named like an Object.prototype member is an unsupported dtype, not a table lookup', () => {
  const data = new Uint8Array(8);
  // Every name Object.prototype has (toString, constructor, __proto__, hasOwnProperty, valueOf, …).
  for (const dtype of Object.getOwnPropertyNames(Object.prototype)) {
    const bytes = file({ w: { dtype, shape: [2], data_offsets: [0, 8] } }, data);
    assert.throws(() => parseSafetensors(bytes), refused(TypeError, new RegExp(`tensor "w" has dtype ${JSON.stringify(dtype)}, which this reader does not know`)), dtype);
    assert.throws(() => safetensorsMetadata(bytes), refused(TypeError, /has dtype/), dtype);
  }
  // Nor does a polluted Object.prototype reach the dtype table or the entries' fields.
  const polluted = { Q4: { size: 1, Array: Int8Array, read: () => 0 }, dtype: 'F32', shape: [2], data_offsets: [0, 8] };
  Object.assign(Object.prototype, polluted);
  try {
    assert.throws(() => parseSafetensors(file({ w: { dtype: 'Q4', shape: [8], data_offsets: [0, 8] } }, data)), refused(TypeError, /tensor "w" has dtype "Q4"/));
    assert.throws(() => parseSafetensors(file({ w: {} }, data)), refused(TypeError, /entry "w" has no dtype/));
  } finally {
    for (const k of Object.keys(polluted)) delete Object.prototype[k];
  }
  // Metadata keys and tensor names from Object.prototype stay plain entries.
  const meta = safetensorsMetadata(file({ __metadata__: JSON.parse('{"__proto__": "p", "toString": "s"}') }));
  assert.ok(Object.hasOwn(meta, '__proto__') && meta.__proto__ === 'p' && meta.toString === 's');
  assert.equal(Object.getPrototypeOf(meta), Object.prototype);
});

test('encodeSafetensors refuses the name __metadata__ and dims the reader would refuse, naming the tensor', () => {
  const a = Float32Array.from([1, 2, 3]);
  assert.throws(() => encodeSafetensors({ __metadata__: a }), refused(TypeError, /a tensor may not be named "__metadata__"/, 'encodeSafetensors'));
  assert.throws(() => encodeSafetensors({ __metadata__: { data: a, dims: [3] } }, { note: 'x' }), refused(TypeError, /"__metadata__"/, 'encodeSafetensors'));
  const bad = [
    // [dims, error class, what the message says]
    [['3'], TypeError, /tensor "x": dims\[0\] must be a non-negative integer, got "3"/],
    [[1, '3'], TypeError, /dims\[1\] must be a non-negative integer, got "3"/],
    [[[3]], TypeError, /dims\[0\] must be a non-negative integer, got \[3\]/],
    [[1.5, 2], RangeError, /tensor "x": dims\[0\] must be a non-negative integer, got 1\.5/],
    [[-1, -3], RangeError, /dims\[0\] must be a non-negative integer, got -1/],
    [[NaN], RangeError, /dims\[0\] must be a non-negative integer, got NaN/],
    [[Infinity, 0], RangeError, /dims\[0\] must be a non-negative integer, got Infinity/],
    [[2 ** 53, 0], RangeError, /dims\[0\] must be a non-negative integer, got 9007199254740992/],
    [[3n], TypeError, /dims\[0\] must be a non-negative integer/],
    ['3', TypeError, /tensor "x": dims must be an array of non-negative integers, got "3"/],
    [3, TypeError, /dims must be an array of non-negative integers, got 3/],
    [{ 0: 3, length: 1 }, TypeError, /dims must be an array/],
    [undefined, TypeError, /dims must be an array/],
    [null, TypeError, /dims must be an array/],
  ];
  for (const [dims, Kind, re] of bad)
    assert.throws(() => encodeSafetensors({ ok: a, x: { data: a, dims } }), refused(Kind, re, 'encodeSafetensors'), String(dims));
  // A zero dim with any other non-negative integer is an empty tensor, as the reader has it.
  const empty = parseSafetensors(encodeSafetensors({ e: { data: new Float32Array(0), dims: [0, 2 ** 53 - 1, 2 ** 53 - 1, 2 ** 53 - 1, 2 ** 53 - 1] } }));
  assert.deepEqual(empty.e.dims, [0, 2 ** 53 - 1, 2 ** 53 - 1, 2 ** 53 - 1, 2 ** 53 - 1]);
  assert.equal(empty.e.data.length, 0);
});

test('the reader takes a zero dim after huge ones as an empty tensor (the element count does not overflow to NaN)', () => {
  const big = 2 ** 53 - 1;
  const t = parseSafetensors(file({ z: { dtype: 'F16', shape: [big, big, big, big, big, big, big, big, big, big, big, big, big, big, big, big, big, big, big, big, big, 0], data_offsets: [0, 0] } }));
  assert.equal(t.z.data.length, 0);
  // Huge dims without a zero need more bytes than any file has.
  assert.throws(() => parseSafetensors(file({ h: { dtype: 'F16', shape: Array(22).fill(big), data_offsets: [0, 0] } })), refused(RangeError, /tensor "h" \(F16, shape \[.*\]\) needs more than \d+ bytes/));
});

test('encodeSafetensors reads each entry once and validates its own copies', () => {
  const a = Float32Array.from([1, 2, 3]);
  // A dims array whose element answers differently on a second read: the first answer is the one checked and written.
  let reads = 0;
  const dims = [0];
  Object.defineProperty(dims, 0, { get: () => (reads++ ? -1 : 3), enumerable: true });
  let dataReads = 0, dimsReads = 0;
  const entry = { get data() { dataReads++; return a; }, get dims() { dimsReads++; return dims; } };
  const back = parseSafetensors(encodeSafetensors({ x: entry }));
  assert.deepEqual(back.x.dims, [3]);
  assert.deepEqual([...back.x.data], [1, 2, 3]);
  assert.deepEqual([reads, dataReads, dimsReads], [1, 1, 1]);
  // Through a Proxy: every property of dims is read at most once.
  const gets = new Map();
  const proxy = new Proxy([3], { get: (t, k, r) => { gets.set(k, (gets.get(k) ?? 0) + 1); return Reflect.get(t, k, r); } });
  encodeSafetensors({ x: { data: a, dims: proxy } });
  for (const [k, n] of gets) assert.equal(n, 1, `dims[${String(k)}] read ${n} times`);
  // A Float32Array subclass whose length lies: the intrinsic length counts, for a bare array and for { data }.
  class Liar extends Float32Array { get length() { return 1; } }
  const liar = Liar.from([4, 5, 6]);
  assert.deepEqual(parseSafetensors(encodeSafetensors({ x: liar })).x.dims, [3]);
  assert.deepEqual([...parseSafetensors(encodeSafetensors({ x: { data: liar, dims: [3] } }, null, { dtype: 'F16' })).x.data], [4, 5, 6]);
  assert.throws(() => encodeSafetensors({ x: { data: liar, dims: [1] } }), refused(TypeError, /"x" must be a Float32Array or \{ data: Float32Array, dims \} with matching sizes, got 3 elements for dims \[1\]/, 'encodeSafetensors'));
  const own = Float32Array.from([7, 8]);
  Object.defineProperty(own, 'length', { value: 100 });
  assert.deepEqual([...parseSafetensors(encodeSafetensors({ own })).own.data], [7, 8]);
  // Something that only inherits from Float32Array.prototype is not a Float32Array.
  const fake = Object.setPrototypeOf({ length: 2, 0: 1, 1: 2 }, Float32Array.prototype);
  assert.throws(() => encodeSafetensors({ fake }), refused(TypeError, /"fake" must be a Float32Array/, 'encodeSafetensors'));
  assert.throws(() => encodeSafetensors({ fake: { data: fake, dims: [2] } }), refused(TypeError, /"fake" must be a Float32Array/, 'encodeSafetensors'));
  // A later entry's getter that detaches an earlier entry's buffer: the earlier entry is refused, not written as garbage.
  const early = Float32Array.from([1, 2]);
  const detach = (arr) => ({ get data() { structuredClone(arr.buffer, { transfer: [arr.buffer] }); return a; }, dims: [3] });
  assert.throws(() => encodeSafetensors({ a: early, b: detach(early) }), refused(TypeError, /"a" must be a Float32Array or \{ data: Float32Array, dims \} with matching sizes, got 0 elements for dims \[2\]/, 'encodeSafetensors'));
  const early2 = Float32Array.from([1, 2]);
  assert.throws(() => encodeSafetensors({ a: { data: early2, dims: [1, 2] }, b: detach(early2) }), refused(TypeError, /"a" .*got 0 elements for dims \[1, 2\]/, 'encodeSafetensors'));
  // Metadata values are read once too.
  let metaReads = 0;
  const meta = { get note() { return metaReads++ ? 42 : 'first'; } };
  assert.deepEqual(safetensorsMetadata(encodeSafetensors({ a }, meta)), { note: 'first' });
  assert.equal(metaReads, 1);
});

test('a tensor or metadata key named __proto__ round-trips as an own entry', () => {
  const a = Float32Array.from([1, -2]);
  const nullProto = Object.create(null);
  nullProto.__proto__ = { data: a, dims: [1, 2] };  // no setter on a null-prototype object: an own property
  nullProto.w = a;
  const defined = Object.defineProperty({ w: a }, '__proto__', { value: { data: a, dims: [2, 1] }, enumerable: true });
  for (const [tensors, dims] of [[nullProto, [1, 2]], [defined, [2, 1]]]) {
    for (const dtype of ['F32', 'F16']) {
      const bytes = encodeSafetensors(tensors, JSON.parse('{"__proto__": "m"}'), { dtype });
      const t = parseSafetensors(bytes);
      assert.deepEqual(Object.keys(t).sort(), ['__proto__', 'w']);
      assert.ok(Object.hasOwn(t, '__proto__'));
      assert.equal(Object.getPrototypeOf(t), Object.prototype);
      assert.deepEqual(t.__proto__.dims, dims);
      assert.deepEqual([...t.__proto__.data], [1, -2]);
      const meta = safetensorsMetadata(bytes);
      assert.ok(Object.hasOwn(meta, '__proto__') && meta.__proto__ === 'm');
      assert.deepEqual(Object.keys(parseSafetensors(bytes, { prefix: '__pro' })), ['to__']);
    }
  }
});

// A file whose header is exactly n bytes: one F32 tensor, padded with spaces (as the format allows).
function paddedFile(n, missing = 0) {
  const json = Buffer.from(JSON.stringify({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }));
  const u8 = new Uint8Array(8 + n + 4 - missing);
  const dv = new DataView(u8.buffer);
  dv.setUint32(0, n % 2 ** 32, true);
  dv.setUint32(4, Math.floor(n / 2 ** 32), true);
  u8.set(json, 8);
  u8.fill(0x20, 8 + json.length, Math.min(8 + n, u8.length));
  if (!missing) dv.setFloat32(8 + n, 1.5, true);
  return u8;
}

test('the header length limit is the reference reader\'s 100,000,000 bytes', () => {
  const limit = 100_000_000;
  assert.deepEqual([...parseSafetensors(paddedFile(100)).w.data], [1.5]);
  assert.deepEqual([...parseSafetensors(paddedFile(limit)).w.data], [1.5], 'exactly at the limit');
  for (const n of [limit + 1, limit + 8, 100 * 1024 * 1024])  // beyond the limit, even when the file is that long
    assert.throws(() => parseSafetensors(paddedFile(n)), refused(RangeError, new RegExp(`the header length field says ${n} bytes, more than the format's limit of 100000000 bytes`)), String(n));
  // Beyond the file (however far beyond the limit too): the file is truncated, or not a safetensors file.
  assert.throws(() => parseSafetensors(paddedFile(limit, 5)), refused(RangeError, /the header length field says 100000000 bytes, but only 99999999 bytes follow it/));
  const short = paddedFile(100);
  for (const n of [limit + 1, 2 ** 32 + 5, 2n ** 64n - 1n]) {
    new DataView(short.buffer).setBigUint64(0, BigInt(n), true);
    assert.throws(() => parseSafetensors(short), refused(RangeError, new RegExp(`the header length field says ${n} bytes, but only 104 bytes follow it`)), String(n));
  }
});

test('the bytes are read through their intrinsic buffer, offset and length, not the object\'s own properties', () => {
  // Only 8 data bytes, while the header wants 16: a view that claims to be longer must not make it fit.
  const short = file({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, new Uint8Array(8));
  const wants = (bytes) => assert.throws(() => parseSafetensors(bytes), refused(RangeError, /data_offsets \[0, 16\] outside the 8-byte data section/));
  wants(short);
  const ownLength = short.slice();
  Object.defineProperty(ownLength, 'length', { value: short.length + 8 });
  wants(ownLength);
  // Inside a larger buffer whose next bytes are not part of the file: a subclass lying about its size and copies.
  const pool = new Uint8Array(short.length + 64);
  pool.set(short);
  class Lying extends Uint8Array {
    get length() { return super.length + 8; }
    get byteLength() { return super.byteLength + 8; }
    subarray() { return pool; }
    slice() { return pool.slice(); }
  }
  wants(new Lying(pool.buffer, 0, short.length));
  const dv = new DataView(pool.buffer, 0, short.length);
  Object.defineProperty(dv, 'byteLength', { value: short.length + 8 });
  wants(dv);
  // Look-alikes that only inherit the prototype are not bytes.
  for (const fake of [Object.setPrototypeOf({ length: 8, buffer: new ArrayBuffer(8), byteOffset: 0, byteLength: 8 }, Uint8Array.prototype),
    Object.setPrototypeOf({ byteLength: 16 }, ArrayBuffer.prototype)])
    assert.throws(() => parseSafetensors(fake), refused(TypeError, /bytes must be a Uint8Array or ArrayBuffer/));
  // The genuine kinds still work: ArrayBuffer, SharedArrayBuffer, DataView, another typed array, a Buffer.
  const good = f32File({ w: { data: Float32Array.from([1, 2]), dims: [2] } });
  const sab = new SharedArrayBuffer(good.length);
  new Uint8Array(sab).set(good);
  for (const bytes of [good.slice().buffer, sab, new DataView(good.buffer), new Uint16Array(good.buffer, 0, good.length / 2), Buffer.from(good)])
    assert.deepEqual([...parseSafetensors(bytes).w.data], [1, 2], describeKind(bytes));
});

const describeKind = (v) => Object.prototype.toString.call(v);

test('integer and bool tensors: read as the matching typed arrays, and written as their own dtypes', () => {
  const tensors = {
    q: { data: Int8Array.from([-128, -1, 0, 1, 127, 5]), dims: [2, 3] }, ids: { data: BigInt64Array.from([0n, -(2n ** 63n), 2n ** 63n - 1n]), dims: [3] },
    u: Uint8Array.from([0, 255]), i16: Int16Array.from([-32768, 32767]), i32: Int32Array.from([-(2 ** 31), 2 ** 31 - 1]),
    u16: Uint16Array.from([65535]), u32: Uint32Array.from([2 ** 32 - 1]), u64: BigUint64Array.from([2n ** 64n - 1n]),
    f: { data: Float32Array.from([0.5, -2]), dims: [1, 2] },
  };
  const bytes = encodeSafetensors(tensors);
  // The header says each dtype (read independently of the reader).
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  assert.deepEqual(Object.fromEntries(Object.entries(header).map(([k, v]) => [k, v.dtype])),
    { f: 'F32', i16: 'I16', i32: 'I32', ids: 'I64', q: 'I8', u: 'U8', u16: 'U16', u32: 'U32', u64: 'U64' });
  const back = parseSafetensors(bytes);
  for (const [name, t] of Object.entries(tensors)) {
    const data = t.data ?? t, dims = t.dims ?? [t.length];
    assert.equal(back[name].data.constructor, data.constructor, name);
    assert.deepEqual(Array.from(back[name].data), Array.from(data), name);
    assert.deepEqual(back[name].dims, dims, name);
  }
  // BOOL: a Uint8Array of 0 and 1, whatever nonzero byte the file holds.
  const b = file({ m: { dtype: 'BOOL', shape: [3], data_offsets: [0, 3] } }, Uint8Array.from([0, 7, 1]));
  assert.deepEqual(Array.from(parseSafetensors(b).m.data), [0, 1, 1]);
  assert.ok(parseSafetensors(b).m.data instanceof Uint8Array);
});

test('F16 and BF16: every bit pattern converts as IEEE says, at even and odd byte offsets, from bytes and from a Blob', async () => {
  // The expected float32 of each pattern, computed here from the definitions (sign, exponent, mantissa).
  const f16 = (h) => {
    const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    return e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  };
  const bf16 = (h) => {
    const s = h & 0x8000 ? -1 : 1, e = (h >> 7) & 0xff, m = h & 0x7f;
    return e === 0 ? s * m * 2 ** -133 : e === 255 ? (m ? NaN : s * Infinity) : s * (1 + m / 128) * 2 ** (e - 127);
  };
  const n = 65536, data = Buffer.alloc(1 + 4 * n);
  for (let h = 0; h < n; h++) data.writeUInt16LE(h, 1 + 2 * h), data.writeUInt16LE(h, 1 + 2 * n + 2 * h);
  for (const odd of [0, 1]) {  // odd: a 1-byte U8 tensor first, so the halves start at an odd offset
    const header = { h: { dtype: 'F16', shape: [n], data_offsets: [odd, odd + 2 * n] }, b: { dtype: 'BF16', shape: [n], data_offsets: [odd + 2 * n, odd + 4 * n] } };
    if (odd) header.u = { dtype: 'U8', shape: [1], data_offsets: [0, 1] };
    const bytes = file(header, odd ? data : data.subarray(1));
    for (const t of [parseSafetensors(bytes), await readSafetensors(new Blob([bytes]))]) {
      for (let h = 0; h < n; h++) {
        const a = t.h.data[h], b = t.b.data[h];
        if (!Object.is(a, Math.fround(f16(h))) && !(Number.isNaN(a) && Number.isNaN(f16(h)))) assert.fail(`F16 0x${h.toString(16)}: ${a}, expected ${f16(h)}`);
        if (!Object.is(b, Math.fround(bf16(h))) && !(Number.isNaN(b) && Number.isNaN(bf16(h)))) assert.fail(`BF16 0x${h.toString(16)}: ${b}, expected ${bf16(h)}`);
      }
    }
  }
});
