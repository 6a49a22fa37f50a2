// mha-wasm/worker against hostile or unlucky callers: detached buffers (with
// and without transfer), getters and Proxies as options, buffers detached while
// a message is being sent, Node flags the worker must not inherit, and a worker
// host that answers with garbage. Nothing may hang, keep the process alive, or
// leave the two sides disagreeing about a layer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { MessageChannel, Worker } from 'node:worker_threads';
import { init } from 'mha-wasm/worker';
import { blockStateDict, rng, uniform } from './reference.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const workerModule = pathToFileURL(path.join(root, 'bindings/worker.js')).href;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mha-wasm-worker-hostile-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

/** p, or a rejection if it has not settled within ms: a hang fails the test instead of stalling it. */
const settle = (p, ms = 5000) => {
  let timer;
  const t = new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`hung: not settled within ${ms} ms`)), ms); });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
};
const detach = (buffer) => { structuredClone(buffer, { transfer: [buffer] }); };
/**
 * Whether postMessage refuses a detached buffer in its transfer list (Node 22:
 * DataCloneError) instead of sending a message the receiver cannot read (Node 20,
 * which then fires messageerror there). Where it refuses, no such message can be
 * sent this way, and the tests of what happens to one check the refusal instead.
 */
const refusesDetachedTransfer = (() => {
  const v = new Uint8Array(8);
  detach(v.buffer);
  const { port1, port2 } = new MessageChannel();
  try {
    port1.postMessage(v, [v.buffer]);
    return false;
  } catch {
    return true;
  } finally {
    port1.close();
    port2.close();
  }
})();
const f = (n, s = 1) => Float32Array.from({ length: n }, (_, i) => Math.cos(i * s) * 0.1);
function weightsFor(E) {
  const r = rng(E);
  return { inProjWeight: uniform(r, 3 * E * E, -0.3, 0.3), inProjBias: uniform(r, 3 * E, -0.3, 0.3), outProjWeight: uniform(r, E * E, -0.3, 0.3), outProjBias: uniform(r, E, -0.3, 0.3) };
}

/** Runs an ES module script (written to a temp file) with node flags; it must exit by itself. */
function runScript(name, source, flags = [], timeout = 30000) {
  const file = path.join(tmp, `${name}.mjs`);
  fs.writeFileSync(file, source);
  const res = spawnSync(process.execPath, [...flags, file], { cwd: root, encoding: 'utf8', timeout });
  assert.equal(res.error, undefined, `${name} ${flags.join(' ')}: did not exit within ${timeout / 1000} s (${res.error}); stdout: ${res.stdout}`);
  return res;
}

test('a call whose input buffer is detached rejects with a TypeError naming it, with or without transfer', async () => {
  const mha = await init({ threads: 1 });
  try {
    const E = 8;
    const layer = new mha.MultiHeadAttention({ embedDim: E, numHeads: 2 });
    await settle(layer.setWeights(weightsFor(E)));
    const dims = [2, E];
    const detachedMsg = (name) => ({ name: 'TypeError', message: new RegExp(`^${name.replace(/\./g, '\\.')} .*detached`) });

    // Moved away by structuredClone, then sent with and without transfer.
    const x = f(2 * E);
    detach(x.buffer);
    await assert.rejects(settle(layer.forward({ data: x, dims }, null, null, { transfer: true })), detachedMsg('query.data'));
    await assert.rejects(settle(layer.forward({ data: x, dims })), detachedMsg('query.data'));
    // Moved away by an earlier transfer call.
    const y = f(2 * E);
    await settle(layer.forward({ data: y, dims }, null, null, { transfer: true }));
    await assert.rejects(settle(layer.forward({ data: y, dims }, null, null, { transfer: true })), detachedMsg('query.data'));
    // A detached tensor in an option.
    const mask = new Float32Array(4);
    detach(mask.buffer);
    await assert.rejects(settle(layer.forward({ data: f(2 * E), dims }, null, null, { attnMask: { data: mask, dims: [2, 2] }, transfer: true })),
      detachedMsg('options.attnMask.data'));
    // setWeights with transfer: nothing is moved when one of the weights is detached.
    const w = weightsFor(E);
    detach(w.outProjBias.buffer);
    await assert.rejects(settle(layer.setWeights(w, { transfer: true })), { name: 'TypeError', message: /^setWeights: outProjBias .*detached/ });
    assert.equal(w.inProjWeight.length, 3 * E * E, 'the other weights were not transferred');
    await assert.rejects(settle(layer.setWeights({ ...weightsFor(E), inProjWeight: { data: x, dims: [3 * E, E] } })),
      { name: 'TypeError', message: /^setWeights: inProjWeight\.data .*detached/ });
    // scaledDotProductAttention.
    const q = new Float32Array(8);
    detach(q.buffer);
    await assert.rejects(settle(mha.scaledDotProductAttention({ data: q, dims: [1, 1, 1, 8] }, { data: f(8), dims: [1, 1, 1, 8] }, { data: f(8), dims: [1, 1, 1, 8] }, { transfer: true })),
      { name: 'TypeError', message: /^q\.data .*detached/ });

    // A getter read after the query was looked at detaches the query's buffer.
    const z = f(2 * E);
    const sneakyMask = { get data() { detach(z.buffer); return new Float32Array(4); }, dims: [2, 2] };
    await assert.rejects(settle(layer.forward({ data: z, dims }, null, null, { attnMask: sneakyMask, transfer: true })), detachedMsg('query.data'));
    // Only validated plain data is posted, so no user object's getter can run while
    // the message is serialized: an object option is refused here, and nothing moved.
    class Sneaky { constructor(buf) { Object.defineProperty(this, 'x', { enumerable: true, get() { detach(buf); return 1; } }); } }
    const u = f(2 * E);
    await assert.rejects(settle(layer.forward({ data: u, dims }, null, null, { transfer: true, sneaky: new Sneaky(u.buffer) })),
      { name: 'TypeError', message: /unknown option "sneaky"/ });
    assert.equal(u.length, 2 * E, 'nothing was moved');

    // The worker still works, and every call above was settled.
    const ok = await settle(layer.forward({ data: f(2 * E), dims }));
    assert.deepEqual(ok.output.dims, dims);
    assert.equal((await settle(mha.stats())).liveLayers, 1);
  } finally {
    mha.terminate();
  }
});

test('inputs are snapshots at call time: shared memory is copied, long arrays are not walked, a disposed cache is named', async () => {
  const mha = await init({ threads: 1 });
  try {
    const E = 16, L = 64;
    const layer = new mha.MultiHeadAttention({ embedDim: E, numHeads: 2 });
    await settle(layer.setWeights(weightsFor(E)));
    const x = f(L * E, 0.37);
    const want = (await settle(layer.forward({ data: x, dims: [L, E] }))).output.data;
    // The worker is kept busy, so it reads the second request well after the caller changed its data.
    const busy = layer.forward({ data: f(512 * E), dims: [512, E] });
    const sab = new Float32Array(new SharedArrayBuffer(x.byteLength));
    sab.set(x);
    const got = layer.forward({ data: sab, dims: [L, E] });
    sab.fill(7);
    await settle(busy);
    assert.deepEqual((await settle(got)).output.data, want, 'the worker saw the data as it was at the call');
    // A shared view of part of a buffer.
    const big = new Float32Array(new SharedArrayBuffer(3 * x.byteLength));
    big.set(x, L * E);
    assert.deepEqual((await settle(layer.forward({ data: big.subarray(L * E, 2 * L * E), dims: [L, E] }))).output.data, want);

    await assert.rejects(settle(layer.forward({ data: x, dims: new Array(2 ** 32 - 1) }), 2000), (e) => e instanceof TypeError || e instanceof RangeError);
    const cache = layer.createCache({ maxLength: 4 });
    cache.dispose();
    await assert.rejects(settle(layer.forward({ data: f(E), dims: [1, E] }, null, null, { cache })), { message: 'MultiHeadAttention.forward: options.cache has been disposed' });
  } finally {
    mha.terminate();
  }
});

test('a script whose worker calls fail before or while sending exits by itself', () => {
  const res = runScript('failed-calls-exit', `
    import { init } from ${JSON.stringify(workerModule)};
    const mha = await init({ threads: 2 });
    const E = 8, dims = [2, E];
    const f = (n) => Float32Array.from({ length: n }, (_, i) => Math.cos(i) * 0.1);
    const layer = new mha.MultiHeadAttention({ embedDim: E, numHeads: 2 });
    await layer.setWeights({ inProjWeight: f(3 * E * E), inProjBias: f(3 * E), outProjWeight: f(E * E), outProjBias: f(E) });
    const detached = () => { const a = f(2 * E); structuredClone(a.buffer, { transfer: [a.buffer] }); return a; };
    const errors = [];
    const attempt = async (p) => { try { await p; errors.push('resolved'); } catch (e) { errors.push(e.name); } };
    await attempt(layer.forward({ data: detached(), dims }, null, null, { transfer: true }));
    await attempt(layer.forward({ data: detached(), dims }));
    await attempt(layer.forward({ data: () => 1, dims }));
    await attempt(layer.setWeights({ inProjWeight: detached(), inProjBias: f(3 * E), outProjWeight: f(E * E), outProjBias: f(E) }, { transfer: true }));
    const u = f(2 * E);
    const sneaky = {};
    Object.defineProperty(sneaky, 'x', { enumerable: true, get() { structuredClone(u.buffer, { transfer: [u.buffer] }); return 1; } });
    class Box { constructor() { this.inner = sneaky; } }
    await attempt(layer.forward({ data: u, dims }, null, null, { transfer: true, box: new Box() }));
    console.log(errors.join(' '));`, [], 20000);
  assert.equal(res.status, 0, res.stderr);
  assert.equal(res.stdout.trim(), 'TypeError TypeError TypeError TypeError TypeError');
});

test('init() works in a process started with flags a worker does not accept; --jitless rejects clearly', () => {
  const script = `
    import { init } from ${JSON.stringify(workerModule)};
    let mha;
    try {
      mha = await init({ threads: 2 });
    } catch (e) {
      console.log(JSON.stringify({ rejected: e.name, message: e.message }));
      process.exit(0);
    }
    const layer = new mha.MultiHeadAttention({ embedDim: 8, numHeads: 2 });
    const f = (n) => Float32Array.from({ length: n }, (_, i) => Math.cos(i) * 0.1);
    await layer.setWeights({ inProjWeight: f(192), inProjBias: f(24), outProjWeight: f(64), outProjBias: f(8) });
    const { output } = await layer.forward({ data: f(16), dims: [2, 8] });
    console.log(JSON.stringify({ threads: mha.threads, n: output.data.length }));`;
  const flagSets = [[], ['--max-old-space-size=512'], ['--max-semi-space-size=16'], ['--expose-gc'], ['--stack-size=900'],
    ['--no-warnings'], ['--trace-warnings'], ['--title=mha-wasm-test'], ['--zero-fill-buffers'], ['--no-opt'],
    ['--conditions=development', '--experimental-vm-modules'], ['--expose-gc', '--max-old-space-size=300', '--no-warnings']];
  for (const flags of flagSets) {
    const res = runScript('flags', script, flags);
    assert.equal(res.status, 0, `${flags.join(' ')}: ${res.stderr}`);
    assert.deepEqual(JSON.parse(res.stdout.trim()), { threads: 2, n: 16 }, `${flags.join(' ')}: ${res.stdout} ${res.stderr}`);
  }
  // No WebAssembly without a JIT in Node >= 20 (V8 leaves it out): init rejects with an Error saying so.
  const res = runScript('flags', script, ['--jitless']);
  assert.equal(res.status, 0, res.stderr);
  const out = JSON.parse(res.stdout.trim());
  if (out.rejected !== undefined) {
    assert.equal(out.rejected, 'Error');
    assert.match(out.message, /WebAssembly/);
  } else {
    assert.deepEqual(out, { threads: 2, n: 16 });
  }
});

test('Proxy options work as plain objects, a revoked Proxy is refused at construction', async () => {
  const mha = await init({ threads: 1 });
  try {
    const E = 8, F = 16, r = rng(3);
    const mhaLayer = new mha.MultiHeadAttention(new Proxy({ embedDim: E, numHeads: 2 }, {}));
    assert.deepEqual([mhaLayer.embedDim, mhaLayer.numHeads, mhaLayer.kdim], [E, 2, E]);
    await settle(mhaLayer.setWeights(weightsFor(E)));
    assert.deepEqual((await settle(mhaLayer.forward({ data: f(2 * E), dims: [2, E] }))).output.dims, [2, E]);
    const cache = mhaLayer.createCache(new Proxy({ maxLength: 2 }, {}));
    await settle(mhaLayer.forward({ data: f(E), dims: [1, E] }, null, null, { cache }));
    assert.equal(cache.length, 1);

    const enc = new mha.TransformerEncoderLayer(new Proxy({ dModel: E, nhead: 2, dimFeedforward: F }, {}));
    await settle(enc.setWeights(blockStateDict(r, E, F, true)));
    assert.deepEqual((await settle(enc.forward({ data: f(3 * E), dims: [3, E] }))).dims, [3, E]);
    const dec = new mha.TransformerDecoderLayer(new Proxy({ dModel: E, nhead: 2, dimFeedforward: F, normFirst: true }, {}));
    assert.equal(dec.normFirst, true);
    await settle(dec.setWeights(blockStateDict(r, E, F, true, true)));
    assert.deepEqual((await settle(dec.forward({ data: f(3 * E), dims: [3, E] }, { data: f(2 * E), dims: [2, E] }))).dims, [3, E]);
    const norm = new mha.LayerNorm(new Proxy({ normalizedShape: new Proxy([E], {}), eps: 1e-3 }, {}));
    assert.deepEqual([norm.normalizedShape, norm.eps], [[E], 1e-3]);
    assert.deepEqual((await settle(norm.forward({ data: f(2 * E), dims: [2, E] }))).dims, [2, E]);

    const { proxy, revoke } = Proxy.revocable({ embedDim: E, numHeads: 2 }, {});
    revoke();
    assert.throws(() => new mha.MultiHeadAttention(proxy), TypeError);
    assert.throws(() => new mha.LayerNorm(new Proxy({}, { ownKeys() { throw new RangeError('no keys'); } })), /no keys/);
    assert.equal((await settle(mha.stats())).liveLayers, 5);
  } finally {
    mha.terminate();
  }
});

test('an option getter that answers differently on each read cannot make the worker disagree with the caller', async () => {
  const mha = await init({ threads: 1 });
  try {
    const E = 8, F = 16, r = rng(5);
    const shifty = (base, key, first, later) => { let n = 0; return Object.defineProperty({ ...base }, key, { enumerable: true, get: () => (n++ === 0 ? first : later) }); };

    const layer = new mha.MultiHeadAttention(shifty({ numHeads: 2 }, 'embedDim', E, 2 * E));
    assert.equal(layer.embedDim, E);
    await settle(layer.setWeights(weightsFor(E)));
    assert.deepEqual((await settle(layer.forward({ data: f(2 * E), dims: [2, E] }))).output.dims, [2, E]);

    for (const Kind of [mha.TransformerEncoderLayer, mha.TransformerDecoderLayer]) {
      const block = new Kind(shifty({ nhead: 2, dimFeedforward: F }, 'dModel', E, 2 * E));
      assert.equal(block.dModel, E);
      await settle(block.setWeights(blockStateDict(r, E, F, true, Kind === mha.TransformerDecoderLayer)));
      const out = Kind === mha.TransformerDecoderLayer ? block.forward({ data: f(3 * E), dims: [3, E] }, { data: f(2 * E), dims: [2, E] }) : block.forward({ data: f(3 * E), dims: [3, E] });
      assert.deepEqual((await settle(out)).dims, [3, E]);
    }

    const norm = new mha.LayerNorm(shifty({}, 'normalizedShape', [E], [2 * E]));
    assert.deepEqual(norm.normalizedShape, [E]);
    assert.deepEqual((await settle(norm.forward({ data: f(2 * E), dims: [2, E] }))).dims, [2, E]);

    // createCache: maxLength 2 on both sides.
    const cache = layer.createCache(shifty({}, 'maxLength', 2, 100));
    assert.equal(cache.maxLength, 2);
    for (let i = 0; i < 2; i++) await settle(layer.forward({ data: f(E), dims: [1, E] }, null, null, { cache }));
    await assert.rejects(settle(layer.forward({ data: f(E), dims: [1, E] }, null, null, { cache })), { name: 'RangeError', message: /holds 2 of its maxLength 2/ });

    // forward's options are read once: the cache the worker steps is the one whose length moves here.
    const a = layer.createCache({ maxLength: 4 }), b = layer.createCache({ maxLength: 4 });
    let n = 0;
    const opts = Object.defineProperty({}, 'cache', { enumerable: true, get: () => (n++ % 2 ? b : a) });
    await settle(layer.forward({ data: f(E), dims: [1, E] }, null, null, opts));
    assert.deepEqual([a.length, b.length], [1, 0]);
    await settle(layer.forward({ data: f(E), dims: [1, E] }, null, null, { cache: b }));
    assert.deepEqual([a.length, b.length], [1, 1], 'b was empty in the worker too');
  } finally {
    mha.terminate();
  }
});

test('a worker host answering with garbage cannot crash the caller or leave a call unsettled', () => {
  // A stand-in for worker-host.js: the init handshake, then one odd answer per stats() call.
  const host = path.join(tmp, 'fake-host.mjs');
  fs.writeFileSync(host, `
    import { parentPort } from 'node:worker_threads';
    let calls = 0;
    parentPort.on('message', ({ id, op }) => {
      if (op === 'init') return parentPort.postMessage({ id, ok: true, value: { threads: 1, features: {}, build: 'fake' } });
      switch (calls++) {
        case 0:  // garbage, an answer for an unknown id, then the answer
          parentPort.postMessage(null);
          parentPort.postMessage(42);
          parentPort.postMessage({ id: 9999, ok: true, value: 'stray' });
          return parentPort.postMessage({ id, ok: true, value: 'first' });
        case 1: return parentPort.postMessage({ id, ok: false, error: { name: 'toString', message: 'odd name' } });
        case 2: return parentPort.postMessage({ id, ok: false, error: { name: 'constructor', message: 'odder name' } });
        case 3: return parentPort.postMessage({ id, ok: false, error: null });
        case 4: {  // an answer the caller cannot read (where postMessage sends one: see refusesDetachedTransfer)
          const v = new Uint8Array(8);
          structuredClone(v.buffer, { transfer: [v.buffer] });
          try {
            return parentPort.postMessage({ id, ok: true, value: v }, [v.buffer]);
          } catch (e) {
            return parentPort.postMessage({ id, ok: true, value: 'refused: ' + e.name });
          }
        }
        case 5: return parentPort.postMessage({ id, ok: true, value: 'still here' });
        default: process.exit(3);
      }
    });
    parentPort.postMessage({ ready: true });`);
  const res = runScript('fake-host-caller', `
    import { init } from ${JSON.stringify(workerModule)};
    process.on('uncaughtException', (e) => { console.log('uncaught ' + e.message); process.exit(1); });
    const mha = await init({ workerUrl: ${JSON.stringify(pathToFileURL(host).href)} });
    const out = [];
    for (let i = 0; i < 7; i++) {
      try { out.push('ok ' + await mha.stats()); } catch (e) { out.push((e instanceof Error ? e.name : 'non-Error ' + typeof e) + ' ' + e.message); }
    }
    console.log(JSON.stringify(out));`, [], 20000);
  assert.equal(res.status, 0, res.stdout + res.stderr);
  const out = JSON.parse(res.stdout.trim());
  assert.equal(out[0], 'ok first');
  assert.equal(out[1], 'Error odd name');
  assert.equal(out[2], 'Error odder name');
  assert.match(out[3], /^Error /);
  if (refusesDetachedTransfer) assert.equal(out[4], 'ok refused: DataCloneError');
  else assert.match(out[4], /^Error .*could not read/);
  assert.equal(out[5], 'ok still here');
  assert.match(out[6], /^Error .*the worker stopped/);
});

test('the worker host answers every request even after malformed ones, and reports a message it could not read', async () => {
  const w = new Worker(new URL('../bindings/worker-host.js', import.meta.url));
  const got = [];
  let wake = () => {};
  w.on('message', (m) => { got.push(m); wake(); });
  const next = async (pred) => {
    for (;;) {
      const i = got.findIndex(pred);
      if (i >= 0) return got.splice(i, 1)[0];
      await settle(new Promise((res) => { wake = res; }));
    }
  };
  try {
    await next((m) => m && m.ready);
    w.postMessage(null);
    w.postMessage('hello');
    w.postMessage({ id: 'x', op: 'stats', args: [] });
    w.postMessage({ id: 1, op: 'toString', args: [] });
    w.postMessage({ id: 2, op: 'init', args: 5 });
    w.postMessage({ id: 3, op: 'init', args: [{ threads: 1, baseUrl: new URL('../dist/', import.meta.url).href, urls: {} }] });
    assert.deepEqual(await next((m) => m.id === 1), { id: 1, ok: false, error: { name: 'TypeError', message: 'mha-wasm/worker: unknown operation "toString"' } });
    assert.equal((await next((m) => m.id === 2)).ok, false);
    assert.equal((await next((m) => m.id === 3)).ok, true);
    const v = new Uint8Array(8);
    detach(v.buffer);
    if (refusesDetachedTransfer) assert.throws(() => w.postMessage({ id: 4, op: 'stats', args: [v] }, [v.buffer]), { name: 'DataCloneError' });
    else {
      w.postMessage({ id: 4, op: 'stats', args: [v] }, [v.buffer]);
      assert.deepEqual(await next((m) => m.unreadable), { unreadable: true, after: 3 });
    }
    w.postMessage({ id: 5, op: 'stats', args: [] });
    assert.equal((await next((m) => m.id === 5)).ok, true);
    assert.deepEqual(got, [], 'no answer for the malformed messages or the unreadable one');
  } finally {
    await w.terminate();
  }
});

test('the worker host refuses raw requests that do not match their own sizes, and keeps working', async () => {
  const w = new Worker(new URL('../bindings/worker-host.js', import.meta.url));
  const answers = new Map();
  let wake = () => {};
  w.on('message', (m) => { if (m && typeof m.id === 'number') answers.set(m.id, m); wake(); });
  const ask = async (id, op, args) => {
    w.postMessage({ id, op, args });
    while (!answers.has(id)) await settle(new Promise((res) => { wake = res; }));
    return answers.get(id);
  };
  const E = 8, f = (n) => new Float32Array(n);
  try {
    assert.equal((await ask(1, 'init', [{ threads: 1, baseUrl: new URL('../dist/', import.meta.url).href, urls: {} }])).ok, true);
    // A configuration the public constructor would refuse.
    const bad = await ask(2, 'create', [10, 'MultiHeadAttention', { embedDim: 8.5, numHeads: 2 }]);
    assert.deepEqual([bad.ok, bad.error.name], [false, 'RangeError']);
    assert.equal((await ask(3, 'create', [11, 'MultiHeadAttention', { embedDim: E, numHeads: 2 }])).ok, true);
    // Weights of the wrong size.
    const short = await ask(4, 'MultiHeadAttention.setWeights', [11, { in_proj_weight: f(3), out_proj_weight: f(E * E) }]);
    assert.match(short.error.message, /in_proj_weight: expected a Float32Array of 192 elements/);
    const w8 = { in_proj_weight: f(3 * E * E), in_proj_bias: f(3 * E), out_proj_weight: f(E * E), out_proj_bias: f(E) };
    assert.equal((await ask(5, 'MultiHeadAttention.setWeights', [11, w8])).ok, true);
    // A forward whose sizes ask for 100 x 4 rows of a 4-row query: refused, nothing read.
    const call = (B, q) => ({ B, Lq: 4, Lkv: 4, batched: true, q, k: null, v: null, attnMask: null, keyPaddingMask: null,
      causal: false, needWeights: false, average: true });
    const big = await ask(6, 'MultiHeadAttention.forward', [11, call(100, f(4 * E)), 0]);
    assert.deepEqual([big.ok, big.error.name], [false, 'RangeError']);
    assert.match(big.error.message, /query\.data: expected a Float32Array of 3200 elements/);
    // A mask whose data does not match its dims.
    const masked = await ask(7, 'MultiHeadAttention.forward', [11, { ...call(1, f(4 * E)), attnMask: { data: new Uint8Array(2), dims: [4, 4] } }, 0]);
    assert.match(masked.error.message, /options\.attnMask: the data does not match its dims/);
    // scaledDotProductAttention with dims that do not fit together.
    const t = (dims) => ({ data: f(dims.reduce((a, b) => a * b)), dims });
    const sd = await ask(8, 'scaledDotProductAttention', [{ q: t([2, 4]), k: t([3, 8]), v: t([3, 4]), scale: 1, attnMask: null,
      keyPaddingMask: null, causal: false, needWeights: false }]);
    assert.match(sd.error.message, /q, k and v do not fit together/);
    // The same layer still computes.
    const ok = await ask(9, 'MultiHeadAttention.forward', [11, call(1, f(4 * E)), 0]);
    assert.equal(ok.ok, true);
    assert.deepEqual(ok.value.result.output.dims, [1, 4, E]);
    // A model's table rows and reserveMemory, forged: refused by name, nothing allocated.
    const model = { vocabSize: 20, hiddenSize: E, numLayers: 1, attention: { numHeads: 2 }, feedForward: { dimFeedforward: 16 }, head: 'untied' };
    assert.equal((await ask(10, 'create', [12, 'Model', model])).ok, true);
    const rows = async (id, args) => (await ask(id, 'Model.setTableRows', [12, ...args])).error;
    assert.match((await rows(11, ['yes', 0, f(8 * E)])).message, /head must be a boolean/);
    assert.match((await rows(12, [false, -1, f(8 * E)])).message, /first must be a non-negative integer/);
    assert.match((await rows(13, [false, 0, new Float64Array(8 * E)])).message, /rows must be a Float32Array/);
    assert.match((await rows(14, [false, 8, f(8 * E)])).message, /rows 8\.\.15 are not the table's next piece \(the table is not begun/);
    assert.match((await rows(15, [false, 0, f(8 * E + 3)])).message, /are not the table's next piece/);
    assert.match((await rows(16, [false, 0, f(21 * E)])).message, /are not the table's next piece/);
    assert.equal((await ask(17, 'Model.setTableRows', [12, true, 0, f(20 * E)])).ok, true);  // the whole head, in one piece
    const reserve = async (id, n) => (await ask(id, 'reserveMemory', [n])).error;
    assert.match((await reserve(18, 'lots')).message, /reserveMemory: bytes must be a number/);
    assert.match((await reserve(19, 2 ** 40)).message, /more than a wasm32 heap can hold/);
    assert.equal((await ask(20, 'reserveMemory', [1024])).ok, true);
    const still = await ask(21, 'MultiHeadAttention.forward', [11, call(1, f(4 * E)), 0]);
    assert.equal(still.ok, true);
    // A cache's truncate, forged: a length it does not hold, not an integer, another object's id: refused by name.
    const made = await ask(22, 'create', [13, 'KVCache', { batch: 1, maxLength: 8, owner: 11, width: E, window: 0 }]);
    assert.equal(made.ok, true, JSON.stringify(made.error));
    const cut = async (id, args) => (await ask(id, 'KVCache.truncate', args)).error;
    assert.match((await cut(23, [13, 5])).message, /^KVCache\.truncate: the cache holds 0 positions; it cannot keep 5$/);
    assert.match((await cut(24, [13, -1])).message, /^KVCache\.truncate: length must be an integer from 0 to the cache's length, got -1$/);
    assert.match((await cut(25, [13, 'all'])).message, /length must be an integer/);
    assert.ok(await cut(26, [11, 0]), 'a layer is not a cache');
    assert.equal((await ask(27, 'MultiHeadAttention.forward', [11, { ...call(1, f(4 * E)), causal: true }, 13])).ok, true);
    assert.equal((await ask(28, 'KVCache.truncate', [13, 2])).ok, true);
    const after = await ask(29, 'MultiHeadAttention.forward', [11, { ...call(1, f(4 * E)), causal: true }, 13]);
    assert.equal(after.ok, true);
    assert.equal(after.value.cacheLength, 6, 'two kept, four added');
  } finally {
    await w.terminate();
  }
});
