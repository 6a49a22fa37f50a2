// .safetensors Files and Blobs: readSafetensors (the header first, then tensor by tensor
// with Blob.slice, never the whole file at once), and loadModel given Files, which checks
// the model's size from its config before reading anything, checks every tensor from the
// headers before allocating, and reads each part's tensors only as it copies that part in.
// Files are written byte by byte here (safetensors-file.mjs) or by tiny.mjs's writer; models
// are held to the float64 reference.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { init, parseSafetensors, readSafetensors } from 'mha-wasm';
import { loadModel, readSafetensors as readFromModels } from 'mha-wasm/models';
import { init as initWorker } from 'mha-wasm/worker';
import { file } from './safetensors-file.mjs';
import { tinyModel } from './models/tiny.mjs';
import { referenceForward } from './models/reference.mjs';
import { relToMax } from './reference.mjs';

const mha = await init({ threads: 1 });

/** A Blob that counts the bytes its slices read (and can fail reading past a byte). */
class CountingBlob extends Blob {
  constructor(parts, { failFrom = Infinity } = {}) {
    super(parts);
    this.read = 0;
    this.largest = 0;  // the largest read
    this.failFrom = failFrom;
  }
  slice(begin, end) {
    const part = super.slice(begin, end), self = this;
    return {
      async arrayBuffer() {
        if (end > self.failFrom) throw new Error('the disk went away');
        self.read += end - begin;
        self.largest = Math.max(self.largest, end - begin);
        return part.arrayBuffer();
      },
    };
  }
}

test('readSafetensors reads a Blob tensor by tensor: what parseSafetensors reads from its bytes, every dtype; errors name the File', async () => {
  // F32, F16, BF16, F64, I64, I8, BOOL, an empty tensor and metadata, written byte by byte.
  const data = Buffer.alloc(48);
  data.writeFloatLE(1.5, 0); data.writeFloatLE(-2, 4);  // F32 [2]
  data.writeUInt16LE(0x3c00, 8); data.writeUInt16LE(0xc000, 10);  // F16 1, -2
  data.writeUInt16LE(0x3fc0, 12); data.writeUInt16LE(0x4040, 14);  // BF16 1.5, 3
  data.writeDoubleLE(0.25, 16);  // F64
  data.writeBigInt64LE(-7n, 24);  // I64
  data.writeInt8(-3, 32); data.writeInt8(4, 33);  // I8
  data.writeUInt8(2, 34); data.writeUInt8(0, 35);  // BOOL (nonzero is true)
  const bytes = file({
    __metadata__: { format: 'pt' },
    'a.f32': { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, 'a.f16': { dtype: 'F16', shape: [2], data_offsets: [8, 12] },
    'a.bf16': { dtype: 'BF16', shape: [1, 2], data_offsets: [12, 16] }, 'b.f64': { dtype: 'F64', shape: [1], data_offsets: [16, 24] },
    'b.i64': { dtype: 'I64', shape: [1], data_offsets: [24, 32] }, 'b.i8': { dtype: 'I8', shape: [2], data_offsets: [32, 34] },
    'b.bool': { dtype: 'BOOL', shape: [2], data_offsets: [34, 36] }, 'b.empty': { dtype: 'F32', shape: [0, 3], data_offsets: [36, 36] },
  }, data);
  const want = parseSafetensors(bytes);
  for (const read of [readSafetensors, readFromModels]) {
    const got = await read(new Blob([bytes]));
    assert.deepEqual(Object.keys(got), Object.keys(want));
    for (const [name, t] of Object.entries(want)) {
      assert.equal(got[name].data.constructor, t.data.constructor, name);
      assert.deepEqual(Array.from(got[name].data), Array.from(t.data), name);
      assert.deepEqual(got[name].dims, t.dims, name);
    }
  }
  const prefixed = await readSafetensors(new Blob([bytes]), { prefix: 'a.' });
  assert.deepEqual(Object.keys(prefixed), ['f32', 'f16', 'bf16']);
  assert.deepEqual(Array.from(prefixed.bf16.data), [1.5, 3]);
  // Errors: the same checks as parseSafetensors', naming the File.
  await assert.rejects(readSafetensors(new File([bytes.subarray(0, 40)], 'cut.safetensors')),
    (e) => e instanceof RangeError && /^readSafetensors: the header length field says \d+ bytes, but only 32 bytes follow it.*\(in "cut\.safetensors"\)$/.test(e.message));
  await assert.rejects(readSafetensors(new File([bytes.subarray(0, bytes.length - 13)], 'short.safetensors')),
    (e) => e instanceof RangeError && /outside the \d+-byte data section.*"short\.safetensors"/.test(e.message));
  await assert.rejects(readSafetensors(bytes), (e) => e instanceof TypeError && /expected a Blob or File, got Uint8Array/.test(e.message));
  await assert.rejects(readSafetensors(new Blob([bytes]), { prefix: 'zz.' }), (e) => e instanceof RangeError && /^readSafetensors: no tensor name starts with "zz\."/.test(e.message));
  // A read that fails names the tensor and the File.
  const failing = new CountingBlob([bytes], { failFrom: bytes.length - 20 });
  await assert.rejects(readSafetensors(failing), (e) => /^readSafetensors: cannot read tensor "b\.\w+" of the Blob: the disk went away/.test(e.message));
});

test('readSafetensors reads a file larger than 2 GiB (fs.openAsBlob of a sparse file) without reading it whole', async (t) => {
  if (typeof fs.openAsBlob !== 'function') return t.skip('fs.openAsBlob needs Node 19.8');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mha-big-'));
  try {
    // One tensor 2.25 GiB into the data section; the gap before it is a hole (no disk, no memory).
    const at = 2.25 * 2 ** 30;
    const bytes = file({ far: { dtype: 'F32', shape: [4], data_offsets: [at, at + 16] } });
    const name = path.join(dir, 'big.safetensors'), fd = fs.openSync(name, 'w');
    fs.writeSync(fd, bytes, 0, bytes.length, 0);
    const values = Buffer.alloc(16);
    [1, -2, 3.5, 4].forEach((v, i) => values.writeFloatLE(v, 4 * i));
    fs.writeSync(fd, values, 0, 16, bytes.length + at);
    fs.closeSync(fd);
    assert.ok(fs.statSync(name).size > 2 ** 31);
    const got = await readSafetensors(await fs.openAsBlob(name));
    assert.deepEqual(Array.from(got.far.data), [1, -2, 3.5, 4]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('loadModel takes .safetensors Files (one, or the shards), in both APIs, and gives the float64 reference\'s logits', async () => {
  const worker = await initWorker({ threads: 1 });
  try {
    const ids = [3, 1, 4, 1, 5, 9];
    for (const [arch, dtype, shards] of [['llama', 'BF16', 2], ['gpt2', 'F32', 1], ['bert', 'F16', 1], ['qwen2', 'F32', 3]]) {
      const m = tinyModel(arch, { seed: 8, dtype, shards });
      const files = m.files.map((f) => new File([f.bytes], f.name));
      const ref = referenceForward({ config: m.config, tensors: m.tensors, ids });
      for (const api of [mha, worker])
        for (const weightType of ['f32', 'int8']) {
          const model = await loadModel(api, { config: m.config, weights: files.length === 1 ? files[0] : files, weightType });
          const err = relToMax((await model.forward(ids)).data, ref.data);
          assert.ok(err <= (weightType === 'f32' ? 1e-4 : 2e-2), `${arch} ${dtype} x${shards} ${weightType} ${api === worker ? 'worker' : 'main'}: ${err}`);
          model.dispose();
        }
      // Files and parsed shards mix.
      if (shards > 1) {
        const model = await loadModel(mha, { config: m.config, weights: [files[0], ...m.files.slice(1).map((f) => parseSafetensors(f.bytes))] });
        assert.ok(relToMax(model.forward(ids).data, ref.data) <= 1e-4);
        model.dispose();
      }
    }
  } finally {
    worker.terminate();
  }
});

test('loadModel with Files: a model too large is refused before a byte is read; a bad tensor before anything is allocated', async () => {
  const m = tinyModel('llama', { seed: 9 });
  const live = mha.stats().liveLayers;
  const blob = new CountingBlob([m.files[0].bytes]);
  await assert.rejects(loadModel(mha, { config: { ...m.config, hidden_size: 8192, intermediate_size: 28672, num_hidden_layers: 80, num_attention_heads: 64, num_key_value_heads: 8, vocab_size: 128256 }, weights: blob }),
    (e) => e instanceof RangeError && /GiB/.test(e.message));
  assert.equal(blob.read, 0, 'nothing read');
  // A checkpoint whose header lacks a tensor: refused from the header alone (no tensor data read).
  const tensors = { ...m.tensors };
  delete tensors[`${m.prefix}layers.1.mlp.up_proj.weight`];
  const { writeSafetensors } = await import('./models/tiny.mjs');
  const partial = new CountingBlob([writeSafetensors(tensors)]);
  await assert.rejects(loadModel(mha, { config: m.config, weights: partial }), (e) => e instanceof TypeError && /missing tensor "model\.layers\.1\.mlp\.up_proj\.weight"/.test(e.message));
  const headerBytes = 8 + Number(Buffer.from(writeSafetensors(tensors)).readBigUInt64LE(0));
  assert.equal(partial.read, headerBytes, 'only the header was read');
  // A read failing midway: named, and the model freed.
  const failing = new CountingBlob([m.files[0].bytes], { failFrom: m.files[0].bytes.length - 100 });
  await assert.rejects(loadModel(mha, { config: m.config, weights: failing }), (e) => /cannot read tensor .* the disk went away/.test(e.message));
  assert.equal(mha.stats().liveLayers, live, 'nothing left allocated');
  // Not a Blob nor parsed tensors: named.
  await assert.rejects(loadModel(mha, { config: m.config, weights: [m.files[0].bytes] }), (e) => e instanceof TypeError && /weights\[0\] must be what parseSafetensors returns .* or a \.safetensors File or Blob/.test(e.message));
});

// The token table and the head of a File are read a piece of rows at a time (about 16 MiB of
// float32 each) as they are copied in, never whole: here 200,003 x 48 BF16 = 18.3 MiB each.
test('loadModel reads a File\'s token table and head in pieces of rows, in both APIs; float, int8 and int8-checkpoint tables alike', async () => {
  const worker = await initWorker({ threads: 1 });
  try {
    const { quantizeSafetensors } = await import('mha-wasm');
    const m = tinyModel('llama', { seed: 14, dtype: 'BF16', config: { vocab_size: 200003 } });
    const ids = [3, 200002, 17, 100001, 131072];  // rows of each piece
    const ref = referenceForward({ config: m.config, tensors: m.tensors, ids });
    const table = 200003 * 48 * 2, MiB = 2 ** 20;
    const q8 = quantizeSafetensors(m.files[0].bytes, { type: 'int8', embeddings: true });
    assert.ok(parseSafetensors(q8)['model.embed_tokens.weight'].data instanceof Int8Array, 'the int8 checkpoint holds an int8 table');
    for (const [bytes, weightType, bound, what] of [[m.files[0].bytes, 'f32', 1e-4, 'BF16'], [m.files[0].bytes, 'int8', 2e-2, 'BF16 at int8'], [q8, 'f32', 2e-2, 'int8 checkpoint']]) {
      for (const api of [mha, worker]) {
        const blob = new CountingBlob([bytes]);
        const model = await loadModel(api, { config: m.config, weights: blob, weightType });
        const err = relToMax((await model.forward(ids)).data, ref.data);
        assert.ok(err <= bound, `${what} ${api === worker ? 'worker' : 'main'}: ${err}`);
        assert.ok(blob.largest <= 8 * MiB && blob.largest < table / 2, `${what}: the largest read was ${(blob.largest / MiB).toFixed(1)} MiB`);
        assert.equal(blob.read, bytes.length, `${what}: every byte read once`);
        model.dispose();
      }
    }
  } finally {
    worker.terminate();
  }
});

test('loadModel with an int8 checkpoint split between Files and parsed shards: a matrix and its scale may come from either', async () => {
  const { quantizeSafetensors, encodeSafetensors } = await import('mha-wasm');
  const m = tinyModel('llama', { seed: 12 });
  const q = parseSafetensors(quantizeSafetensors(m.files[0].bytes, { type: 'int8' }));
  const ids = [2, 7, 1, 8];
  const want = (await loadModel(mha, { config: m.config, weights: q, weightType: 'int8' })), ref = want.forward(ids).data;
  want.dispose();
  // Matrices in a File and their scales parsed, and the other way round.
  const scales = Object.fromEntries(Object.entries(q).filter(([n]) => n.endsWith('_scale')));
  const rest = Object.fromEntries(Object.entries(q).filter(([n]) => !n.endsWith('_scale')));
  for (const [inFile, parsed] of [[rest, scales], [scales, rest]]) {
    const file = new File([encodeSafetensors(inFile)], 'part.safetensors');
    for (const weightType of ['int8', 'f32']) {
      const model = await loadModel(mha, { config: m.config, weights: [file, parsed], weightType });
      const err = relToMax(model.forward(ids).data, ref);
      assert.ok(err <= (weightType === 'int8' ? 1e-6 : 2e-2), `${weightType}: ${err}`);
      model.dispose();
    }
  }
});

test('loadModel with Files: when a part is refused, the read of the next one has finished before the error comes out', async () => {
  const { writeSafetensors } = await import('./models/tiny.mjs');
  const m = tinyModel('llama', { seed: 14 });
  const tensors = { ...m.tensors }, table = `${m.prefix}embed_tokens.weight`;
  tensors[table] = { ...tensors[table], data: Float32Array.from(tensors[table].data, (v, i) => (i === 5 ? 70000 : v)) };
  // Every read takes a few milliseconds, as from a disk.
  class SlowBlob extends CountingBlob {
    slice(begin, end) {
      const inner = super.slice(begin, end);
      return { arrayBuffer: () => new Promise((resolve) => setTimeout(resolve, 5)).then(() => inner.arrayBuffer()) };
    }
  }
  const blob = new SlowBlob([writeSafetensors(tensors)]);
  const live = mha.stats().liveLayers;
  await assert.rejects(loadModel(mha, { config: m.config, weights: blob, weightType: 'f16' }), /^RangeError: loadModel: embeddings: .*70000 is beyond float16's range/);
  const read = blob.read;
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(blob.read, read, 'no read goes on after loadModel has failed');
  assert.equal(mha.stats().liveLayers, live);
});
