// Memory: no growth over 10,000 forward calls after warm-up; layers are freed
// both by dispose() and, as a safety net, by the FinalizationRegistry; layers
// share one workspace per runtime, which a one-off long call does not pin.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import { init } from 'mha-wasm';
import { blockStateDict, rng, uniform } from './reference.mjs';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');

function makeLayer(mha, E = 32, H = 4) {
  const r = rng(E), s = 1 / Math.sqrt(E);
  const layer = new mha.MultiHeadAttention({ embedDim: E, numHeads: H });
  layer.setWeights({ inProjWeight: uniform(r, 3 * E * E, -s, s), inProjBias: uniform(r, 3 * E, -s, s),
    outProjWeight: uniform(r, E * E, -s, s), outProjBias: uniform(r, E, -s, s) });
  return layer;
}

for (const threads of [1, 2]) {
  test(`threads=${threads}: 10,000 forward calls do not grow wasm memory`, async () => {
    const mha = await init({ threads });
    const layer = makeLayer(mha);
    const r = rng(9);
    const x = { data: uniform(r, 2 * 16 * 32, -1, 1), dims: [2, 16, 32] };
    const kv = { data: uniform(r, 2 * 24 * 32, -1, 1), dims: [2, 24, 32] };
    const mask = { data: new Uint8Array(16 * 24), dims: [16, 24] };
    const call = (i) => (i % 2
      ? layer.forward(x, kv, kv, { attnMask: mask, needWeights: true })
      : layer.forward(x, null, null, { isCausal: true }));
    for (let i = 0; i < 20; i++) call(i);
    const before = mha.stats().wasmMemoryBytes;
    const first = call(0).output.data;
    for (let i = 0; i < 10000; i++) call(i);
    assert.equal(mha.stats().wasmMemoryBytes, before);
    assert.deepEqual(call(0).output.data, first);  // and the results did not drift
    layer.dispose();
  });

  test(`threads=${threads}: dispose() frees layers; so does the FinalizationRegistry for forgotten ones`, async () => {
    const mha = await init({ threads });
    const base = mha.stats().liveLayers;
    // Explicit path: create and dispose many layers; memory stays flat.
    for (let i = 0; i < 50; i++) makeLayer(mha, 64, 8).dispose();
    const flat = mha.stats().wasmMemoryBytes;
    for (let i = 0; i < 500; i++) makeLayer(mha, 64, 8).dispose();
    assert.equal(mha.stats().liveLayers, base);
    assert.equal(mha.stats().wasmMemoryBytes, flat);

    // Safety net: layers dropped without dispose() are freed after GC.
    (() => { for (let i = 0; i < 200; i++) makeLayer(mha, 64, 8); })();
    assert.equal(mha.stats().liveLayers, base + 200);
    for (let i = 0; i < 50 && mha.stats().liveLayers > base; i++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(mha.stats().liveLayers, base);

    // dispose() unregisters: a disposed layer is not freed a second time by the registry.
    const kept = makeLayer(mha);
    kept.dispose();
    gc();
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(mha.stats().liveLayers, base);
  });
}

test('Transformer blocks, LayerNorms and KV caches: decoding loops do not grow memory; dropped ones are freed', async () => {
  const mha = await init({ threads: 1 });
  const base = mha.stats().liveLayers;
  const r = rng(4), E = 32, F = 64;
  const layer = new mha.TransformerEncoderLayer({ dModel: E, nhead: 4, dimFeedforward: F });
  layer.setWeights(blockStateDict(r, E, F, true));
  const norm = new mha.LayerNorm({ normalizedShape: E });
  const cache = layer.createCache({ maxLength: 32 });
  const tok = { data: uniform(r, E, -1, 1), dims: [1, E] };
  const decode = () => {
    cache.reset();
    for (let i = 0; i < 32; i++) {
      const y = layer.forward(tok, { cache, isCausal: true, needWeights: i % 2 === 0 });
      norm.forward(i % 2 === 0 ? y.output : y);
    }
  };
  for (let i = 0; i < 5; i++) decode();
  const before = mha.stats().wasmMemoryBytes;
  for (let i = 0; i < 300; i++) decode();  // 9,600 cached steps
  assert.equal(mha.stats().wasmMemoryBytes, before);
  assert.equal(mha.stats().liveLayers, base + 3);
  // Dropped caches and blocks go through the FinalizationRegistry too.
  (() => {
    for (let i = 0; i < 100; i++) layer.createCache({ maxLength: 64 });
    for (let i = 0; i < 20; i++) new mha.TransformerDecoderLayer({ dModel: E, nhead: 4, dimFeedforward: F });
  })();
  assert.equal(mha.stats().liveLayers, base + 123);
  for (let i = 0; i < 50 && mha.stats().liveLayers > base + 3; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.equal(mha.stats().liveLayers, base + 3);
  for (const o of [cache, norm, layer]) o.dispose();
  assert.equal(mha.stats().liveLayers, base);
});

// Eight encoder layers (dModel 256, FF 1024) run once at L = 2048 share the
// runtime's workspace: the heap grows by at most 1.3x what one of them needs. Each
// run is a fresh process holding the same eight layers (so both start from the same
// heap); one forwards only the first layer, the other all eight in a row. (Each
// layer kept its own scratch before: 33 -> 248 MiB for the eight.)
const root = fileURLToPath(new URL('..', import.meta.url));
const heapRun = (threads, layersRun) => `
  import { init } from 'mha-wasm';
  const { blockStateDict, rng, uniform } = await import(${JSON.stringify(new URL('./reference.mjs', import.meta.url).href)});
  const mha = await init({ threads: ${threads} });
  const E = 256, F = 1024, L = 2048, r = rng(7);
  const layers = Array.from({ length: 8 }, () => {
    const layer = new mha.TransformerEncoderLayer({ dModel: E, nhead: 4, dimFeedforward: F });
    layer.setWeights(blockStateDict(r, E, F, true));
    return layer;
  });
  let x = { data: uniform(r, L * E, -1, 1), dims: [1, L, E] };
  const before = mha.stats().wasmMemoryBytes;
  for (const layer of layers.slice(0, ${layersRun})) x = layer.forward(x);
  const finite = x.data.every(Number.isFinite);
  console.log(JSON.stringify({ growth: mha.stats().wasmMemoryBytes - before, finite }));
`;
function runChild(script) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: root });
    let out = '', err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out.trim())) : reject(new Error(`exit ${code}: ${err}`))));
  });
}

for (const threads of [1, 2]) {
  test(`threads=${threads}: eight encoder layers at L = 2048 grow the heap by at most 1.3x one layer's step`, { timeout: 120000 }, async () => {
    const one = await runChild(heapRun(threads, 1));
    const eight = await runChild(heapRun(threads, 8));
    assert.ok(one.finite && eight.finite);
    const MiB = 2 ** 20;
    assert.ok(one.growth > 4 * MiB, `one layer's step grew the heap by ${one.growth / MiB} MiB`);
    assert.ok(eight.growth <= 1.3 * one.growth,
      `eight layers grew the heap by ${(eight.growth / MiB).toFixed(2)} MiB, one by ${(one.growth / MiB).toFixed(2)} MiB`);
  });
}

test('a one-off long call does not pin its workspace: its memory serves a KV cache afterwards', async () => {
  const mha = await init({ threads: 1 });
  const r = rng(12), E = 256, F = 1024;
  const layer = new mha.TransformerEncoderLayer({ dModel: E, nhead: 4, dimFeedforward: F });
  layer.setWeights(blockStateDict(r, E, F, true));
  const short = { data: uniform(r, 16 * E, -1, 1), dims: [1, 16, E] };
  layer.forward({ data: uniform(r, 4096 * E, -1, 1), dims: [1, 4096, E] });  // about 28 MiB of workspace
  const peak = mha.stats().wasmMemoryBytes;
  layer.forward(short);  // needs far less: the workspace is freed
  const cache = layer.createCache({ maxLength: 12000 });  // 23 MiB, allocated on first use
  layer.forward(short, { cache, isCausal: true });
  assert.equal(mha.stats().wasmMemoryBytes, peak);
  cache.dispose();
  layer.dispose();
});

// reserveMemory(bytes): room for bytes in one piece, made now. In a fresh process, a
// layer whose weights and their copy in take 32 MiB then fits in what was reserved:
// the heap does not grow again.
const reserveRun = (threads) => `
  import { init } from 'mha-wasm';
  const mha = await init({ threads: ${threads} });
  const before = mha.stats().wasmMemoryBytes;
  await mha.reserveMemory(40 * 2 ** 20);
  const reserved = mha.stats().wasmMemoryBytes;
  const E = 1024, layer = new mha.MultiHeadAttention({ embedDim: E, numHeads: 8 });
  layer.setWeights({ inProjWeight: new Float32Array(3 * E * E).fill(0.01), inProjBias: new Float32Array(3 * E),
    outProjWeight: new Float32Array(E * E).fill(0.01), outProjBias: new Float32Array(E) });
  console.log(JSON.stringify({ before, reserved, after: mha.stats().wasmMemoryBytes }));
`;
for (const threads of [1, 2]) {
  test(`threads=${threads}: reserveMemory makes room at once: a 32 MiB load then leaves the heap as it was`, async () => {
    const r = await runChild(reserveRun(threads));
    const MiB = 2 ** 20;
    assert.ok(r.reserved >= 40 * MiB && r.reserved < r.before + 48 * MiB, `reserved: ${r.before / MiB} -> ${r.reserved / MiB} MiB`);
    assert.equal(r.after, r.reserved);
  });
}

// More than the allocator grows the heap by at once (2 GiB): taken in pieces. Pages untouched, so
// this costs address space, not memory.
test('reserveMemory makes room for 2.5 GiB in a fresh process; a layer then fits in it', async () => {
  const r = await runChild(`
    import { init } from 'mha-wasm';
    const mha = await init({ threads: 1 });
    await mha.reserveMemory(2.5 * 2 ** 30);
    const reserved = mha.stats().wasmMemoryBytes;
    const layer = new mha.MultiHeadAttention({ embedDim: 256, numHeads: 4 });
    layer.setWeights({ inProjWeight: new Float32Array(3 * 256 * 256), inProjBias: new Float32Array(768), outProjWeight: new Float32Array(256 * 256), outProjBias: new Float32Array(256) });
    console.log(JSON.stringify({ reserved, after: mha.stats().wasmMemoryBytes }));
  `);
  assert.ok(r.reserved >= 2.5 * 2 ** 30, `${r.reserved / 2 ** 30} GiB`);
  assert.equal(r.after, r.reserved);
});

test('reserveMemory refuses what is not a byte count a wasm32 heap can hold, naming it; the runtime keeps working', async () => {
  const mha = await init({ threads: 1 });
  const before = mha.stats().wasmMemoryBytes;
  assert.throws(() => mha.reserveMemory('1024'), { name: 'TypeError', message: /reserveMemory: bytes must be a number, got/ });
  assert.throws(() => mha.reserveMemory(), { name: 'TypeError', message: /reserveMemory: bytes/ });
  for (const bad of [-1, 1.5, NaN, Infinity, 2 ** 53])
    assert.throws(() => mha.reserveMemory(bad), { name: 'RangeError', message: /reserveMemory: bytes must be a non-negative integer/ }, String(bad));
  assert.throws(() => mha.reserveMemory(4 * 2 ** 30), { name: 'RangeError', message: /reserveMemory: 4.00 GiB is more than a wasm32 heap can hold/ });
  mha.reserveMemory(0);
  mha.reserveMemory(1024);  // room there is already: nothing grows
  assert.equal(mha.stats().wasmMemoryBytes, before);
  const layer = makeLayer(mha);
  assert.ok(layer.forward({ data: new Float32Array(4 * 32).fill(0.5), dims: [4, 32] }).output.data.every(Number.isFinite));
  layer.dispose();
});
