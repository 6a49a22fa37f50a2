// quantizeSafetensors and `mha-wasm quantize`: the compressed-tensors int8 layout,
// checked against an independent per-row quantization written here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeSafetensors, parseSafetensors, quantizeSafetensors, safetensorsMetadata } from 'mha-wasm';
import { rng, uniform } from './reference.mjs';
import { tinyModel } from './models/tiny.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Round half to even in float64 (as torch.round). */
const roundEven = (x) => { const f = Math.floor(x), d = x - f; return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f; };

const STEP = 2 ** -4;  // a row max of 127 steps makes the scale exactly this

function model(r) {
  return {
    'model.embed_tokens.weight': { data: uniform(r, 11 * 6, -1, 1), dims: [11, 6] },
    'model.layers.0.self_attn.q_proj.weight': { data: uniform(r, 6 * 6, -2, 2), dims: [6, 6] },
    'model.layers.0.self_attn.q_proj.bias': { data: uniform(r, 6, -1, 1), dims: [6] },
    // rows: ordinary, all zeros, and one whose third value is exactly 2.5 steps (a tie)
    'model.layers.0.mlp.down_proj.weight': { data: Float32Array.from([0.5, -0.25, 1.5, 0, 0, 0, 0, 0, 127 * STEP, -127 * STEP, 2.5 * STEP, 0]), dims: [3, 4] },
    'model.layers.0.input_layernorm.weight': { data: uniform(r, 6, 0.5, 1.5), dims: [6] },
    in_proj_weight: { data: uniform(r, 9 * 3, -1, 1), dims: [9, 3] },
    'embeddings.position_ids': { data: BigInt64Array.from([0n, 1n, 2n]), dims: [1, 3] },
  };
}

test('quantizeSafetensors writes int8 matrices per output channel with F32 scales [out, 1]; the rest is kept', () => {
  const src = model(rng(3));
  const bytes = encodeSafetensors(src, { format: 'pt' });
  const q = parseSafetensors(quantizeSafetensors(bytes, { type: 'int8' }));
  const quantized = ['model.layers.0.self_attn.q_proj.weight', 'model.layers.0.mlp.down_proj.weight', 'in_proj_weight'];
  for (const name of quantized) {
    const { data: w, dims: [N, K] } = src[name];
    assert.ok(q[name].data instanceof Int8Array, name);
    assert.deepEqual(q[name].dims, [N, K]);
    assert.deepEqual(q[`${name}_scale`].dims, [N, 1]);
    for (let n = 0; n < N; n++) {
      let max = 0;
      for (let k = 0; k < K; k++) max = Math.max(max, Math.abs(w[n * K + k]));
      const s = Math.fround(max / 127);
      assert.equal(q[`${name}_scale`].data[n], s, `${name} scale ${n}`);
      for (let k = 0; k < K; k++) {
        const want = s === 0 ? 0 : Math.max(-127, Math.min(127, roundEven(w[n * K + k] / s)));
        assert.equal(q[name].data[n * K + k], want, `${name}[${n}, ${k}]`);
        assert.ok(Math.abs(q[name].data[n * K + k] * s - w[n * K + k]) <= s / 2 * (1 + 1e-6), `${name}[${n}, ${k}] within half a step`);
      }
    }
  }
  // A row of zeros has scale 0 and zeros; a tie (2.5 steps) rounds to even.
  assert.equal(q['model.layers.0.mlp.down_proj.weight_scale'].data[1], 0);
  assert.equal(src['model.layers.0.mlp.down_proj.weight'].data[10] / STEP, 2.5, 'the test holds a tie');
  assert.deepEqual(Array.from(q['model.layers.0.mlp.down_proj.weight'].data.subarray(8, 12)), [127, -127, 2, 0]);
  // Embeddings, biases, norms and integer tensors are unchanged.
  for (const name of ['model.embed_tokens.weight', 'model.layers.0.self_attn.q_proj.bias', 'model.layers.0.input_layernorm.weight', 'embeddings.position_ids']) {
    assert.deepEqual(Array.from(q[name].data), Array.from(src[name].data), name);
    assert.equal(q[name].data.constructor, src[name].data.constructor, name);
  }
  assert.equal(Object.keys(q).length, Object.keys(src).length + quantized.length);
  assert.deepEqual(safetensorsMetadata(quantizeSafetensors(bytes, { type: 'int8' })), { format: 'pt', quantization: 'int8 per-channel symmetric' });
  // embeddings: true quantizes the table; filter chooses by name.
  assert.ok(parseSafetensors(quantizeSafetensors(bytes, { type: 'int8', embeddings: true }))['model.embed_tokens.weight'].data instanceof Int8Array);
  const only = parseSafetensors(quantizeSafetensors(bytes, { type: 'int8', filter: (n) => n === 'in_proj_weight' }));
  assert.deepEqual(Object.keys(only).filter((n) => only[n].data instanceof Int8Array), ['in_proj_weight']);
});

test('quantizeSafetensors floatDtype F16 halves the floats it keeps, scales stay F32; bad options are named', () => {
  const bytes = encodeSafetensors(model(rng(4)));
  const f16 = quantizeSafetensors(bytes, { type: 'int8', floatDtype: 'F16' });
  const n = Number(new DataView(f16.buffer, f16.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(f16.subarray(8, 8 + n)));
  assert.equal(header['model.embed_tokens.weight'].dtype, 'F16');
  assert.equal(header['in_proj_weight_scale'].dtype, 'F32');
  assert.equal(header['in_proj_weight'].dtype, 'I8');
  assert.throws(() => quantizeSafetensors(bytes), /quantizeSafetensors: options \{ type: 'int8' \} are required/);
  assert.throws(() => quantizeSafetensors(bytes, { type: 'int4' }), (e) => e instanceof RangeError && /options.type must be 'int8', got "int4"/.test(e.message));
  assert.throws(() => quantizeSafetensors(bytes, { type: 'int8', floatDtype: 'BF16' }), (e) => e instanceof TypeError && /options.floatDtype/.test(e.message));
  assert.throws(() => quantizeSafetensors(bytes, { type: 'int8', bits: 4 }), (e) => e instanceof TypeError && /unknown option "bits"/.test(e.message));
  // A row with a NaN names its tensor.
  const nan = encodeSafetensors({ 'lin.weight': { data: Float32Array.of(1, 2, 3, NaN), dims: [2, 2] } });
  assert.throws(() => quantizeSafetensors(nan, { type: 'int8' }), (e) => e instanceof RangeError && /"lin\.weight" row 1 holds a non-finite value/.test(e.message));
  const twice = quantizeSafetensors(quantizeSafetensors(bytes, { type: 'int8' }), { type: 'int8' });
  assert.ok(parseSafetensors(twice).in_proj_weight.data instanceof Int8Array, 'an I8 tensor is not quantized again');
  // Given a GPT-2 config, its Conv1D matrices ([in, out]) are quantized per column: scale =
  // max |column| / 127; other matrices per row as before; a bad config is named.
  const w = uniform(rng(9), 3 * 4, -1, 1);
  const conv = encodeSafetensors({ 'h.0.mlp.c_fc.weight': { data: w, dims: [3, 4] }, 'lm_head.weight': { data: w, dims: [4, 3] } });
  const byCol = parseSafetensors(quantizeSafetensors(conv, { type: 'int8', config: { model_type: 'gpt2' } }));
  assert.deepEqual(byCol['h.0.mlp.c_fc.weight_scale'].dims, [1, 4]);
  assert.deepEqual(byCol['lm_head.weight_scale'].dims, [4, 1]);
  for (let n = 0; n < 4; n++) {
    const col = [0, 1, 2].map((k) => w[k * 4 + n]), s = Math.max(...col.map(Math.abs)) / 127;
    assert.equal(byCol['h.0.mlp.c_fc.weight_scale'].data[n], Math.fround(s));
    for (let k = 0; k < 3; k++) assert.equal(byCol['h.0.mlp.c_fc.weight'].data[k * 4 + n], Math.round(col[k] / Math.fround(s)));
  }
  assert.deepEqual(parseSafetensors(quantizeSafetensors(conv, { type: 'int8', config: { model_type: 'llama' } }))['h.0.mlp.c_fc.weight_scale'].dims, [3, 1]);
  assert.throws(() => quantizeSafetensors(conv, { type: 'int8', config: 'gpt2' }), (e) => e instanceof TypeError && /options\.config must be the parsed config\.json/.test(e.message));
  // A kept float beyond float16's range is refused rather than written as Infinity; F32 keeps it.
  const big = encodeSafetensors({ 'norm.weight': { data: Float32Array.of(1, 70000), dims: [2] }, 'lin.weight': { data: Float32Array.of(1, 2, 3, 4), dims: [2, 2] } });
  assert.throws(() => quantizeSafetensors(big, { type: 'int8', floatDtype: 'F16' }),
    (e) => e instanceof RangeError && /"norm\.weight"\[1\] = 70000 is beyond float16's range/.test(e.message));
  assert.equal(parseSafetensors(quantizeSafetensors(big, { type: 'int8' }))['norm.weight'].data[1], 70000);
});

test('npx mha-wasm quantize writes the same file; usage errors exit non-zero with a message', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mha-quantize-'));
  try {
    const bytes = encodeSafetensors(model(rng(5)));
    const input = path.join(dir, 'in.safetensors'), output = path.join(dir, 'out.safetensors');
    fs.writeFileSync(input, bytes);
    const cli = path.join(root, 'bindings', 'cli.js');
    const ok = spawnSync(process.execPath, [cli, 'quantize', input, output], { encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    assert.deepEqual(new Uint8Array(fs.readFileSync(output)), quantizeSafetensors(bytes, { type: 'int8' }));
    const bad = spawnSync(process.execPath, [cli, 'quantize', input], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /quantize takes an input and an output file/);
    const missing = spawnSync(process.execPath, [cli, 'quantize', path.join(dir, 'nope'), output], { encoding: 'utf8' });
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /cannot read/);
    const unwritable = spawnSync(process.execPath, [cli, 'quantize', input, dir], { encoding: 'utf8' });
    assert.equal(unwritable.status, 1);
    assert.ok(unwritable.stderr.includes(`cannot write ${dir}`), unwritable.stderr);
    const help = spawnSync(process.execPath, [cli, 'quantize', '--help'], { encoding: 'utf8' });
    assert.equal(help.status, 0);
    assert.match(help.stdout, /^usage: mha-wasm quantize/);
    // A model folder: its config.json is read, and GPT-2's Conv1D matrices ([in, out]) are
    // quantized per output column, as quantizeSafetensors does given the config.
    const gpt2 = tinyModel('gpt2', { seed: 3 }), folder = path.join(dir, 'gpt2');
    fs.mkdirSync(folder);
    fs.writeFileSync(path.join(folder, 'config.json'), JSON.stringify(gpt2.config));
    fs.writeFileSync(path.join(folder, 'model.safetensors'), gpt2.files[0].bytes);
    const q = spawnSync(process.execPath, [cli, 'quantize', path.join(folder, 'model.safetensors'), output], { encoding: 'utf8' });
    assert.equal(q.status, 0, q.stderr);
    const written = parseSafetensors(fs.readFileSync(output)), c = `${gpt2.prefix}h.0.mlp.c_fc.weight`;
    assert.deepEqual(written[`${c}_scale`].dims, [1, gpt2.tensors[c].dims[1]]);
    assert.deepEqual(new Uint8Array(fs.readFileSync(output)), quantizeSafetensors(gpt2.files[0].bytes, { type: 'int8', config: gpt2.config }));
    fs.writeFileSync(path.join(folder, 'config.json'), '{ not json');
    const badConfig = spawnSync(process.execPath, [cli, 'quantize', path.join(folder, 'model.safetensors'), output], { encoding: 'utf8' });
    assert.equal(badConfig.status, 1);
    assert.match(badConfig.stderr, /cannot read .*config\.json/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
