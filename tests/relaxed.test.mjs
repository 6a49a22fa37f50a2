// The relaxed-SIMD builds: what they hold, when init() picks them, and that they
// compute what the SIMD128 builds compute (within 1e-4) and what the float64
// reference computes. Which build is expected comes from tests/builds.mjs (the
// engine's known behaviour), not from the loader's probe. `npm test` runs this
// file under Node.js 20 (no relaxed SIMD without flags) and again under Node.js 22
// (relaxed SIMD by default), where the agreement tests run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { init, probeFeatures } from 'mha-wasm';
import { init as initWorker } from 'mha-wasm/worker';
import { BUILDS, INT8_DOT_NAMES, buildFiles } from '../bindings/abi.js';
import { RELAXED_PROBE } from '../bindings/loader.js';
import { buildName, nodeRunsRelaxed, relaxedBuilt, relaxedHere } from './builds.mjs';
import {
  blockStateDict, decoderReference, encoderReference, layerNormRef, mhaReference, relErr, rng, sdpaReference, uniform,
} from './reference.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = path.join(root, 'dist');
const nodeMajor = Number(process.versions.node.split('.')[0]);
const notBuilt = relaxedBuilt ? false : 'the relaxed-SIMD builds are not in dist/ (no clang-19 when it was built)';

test('the probe init() runs is bindings/relaxed-probe.wat, compiled', (t) => {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mha-probe-')), 'probe.wasm');
  try {
    const r = spawnSync('wat2wasm', ['--enable-relaxed-simd', path.join(root, 'bindings', 'relaxed-probe.wat'), '-o', out], { encoding: 'utf8' });
    if (r.error?.code === 'ENOENT') return t.skip('wat2wasm (Debian wabt) is not installed');
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(Array.from(RELAXED_PROBE), Array.from(fs.readFileSync(out)));
  } finally {
    fs.rmSync(path.dirname(out), { recursive: true, force: true });
  }
});

test('the relaxed builds use relaxed instructions and the SIMD128 builds none: who validates them', { skip: notBuilt }, () => {
  for (const b of Object.values(BUILDS)) {
    const ok = WebAssembly.validate(fs.readFileSync(path.join(dist, `${b.file}.wasm`)));
    // Node 20 without flags refuses every relaxed opcode; Node 22 accepts the final ones (not clang 14's prototypes).
    assert.equal(ok, b.relaxed ? nodeRunsRelaxed : true, b.file);
  }
});

test('the relaxed builds\' multiply-adds are f32x4.relaxed_madd (fd 85 02), and only theirs', { skip: notBuilt }, (t) => {
  for (const b of Object.values(BUILDS)) {
    const r = spawnSync('wasm-objdump', ['-d', path.join(dist, `${b.file}.wasm`)], { encoding: 'utf8', maxBuffer: 256 << 20 });
    if (r.error?.code === 'ENOENT') return t.skip('wasm-objdump (Debian wabt) is not installed');
    assert.equal(r.status, 0, r.stderr);
    const madds = r.stdout.split('\n').filter((l) => /\|\s*f32x4\.relaxed_madd\b/.test(l) && /: fd 85 02\b/.test(l)).length;
    if (b.relaxed) assert.ok(madds >= 16, `${b.file}: ${madds} relaxed_madd`);
    else assert.equal(madds, 0, b.file);
  }
});

test('init({ int8Dot }) picks the int8 kernel (the relaxed one only in a relaxed build), in both APIs; a bad value is refused by name', async () => {
  await assert.rejects(init({ int8Dot: 'vnni' }), { name: 'RangeError', message: /init: int8Dot must be 'auto', 'dot_i16x8' or 'relaxed_dot_i8x16_i7x16', got "vnni"/ });
  await assert.rejects(init({ int8Dot: 1 }), { name: 'TypeError', message: /int8Dot must be/ });
  await assert.rejects(initWorker({ int8Dot: null }), { name: 'TypeError', message: /init \(mha-wasm\/worker\): int8Dot must be/ });
  for (const threads of [1, 2]) {
    const auto = await init({ threads });
    for (const int8Dot of INT8_DOT_NAMES) {
      const mha = await init({ threads, int8Dot });
      assert.notEqual(mha, auto);  // memoized by its options: a runtime of its own
      assert.equal(mha.features.int8Dot, relaxedHere ? int8Dot : 'dot_i16x8');
      assert.equal((await init({ threads, int8Dot, relaxedSimd: false })).features.int8Dot, 'dot_i16x8');
    }
  }
  const w = await initWorker({ threads: 1, int8Dot: 'relaxed_dot_i8x16_i7x16' });
  try {
    assert.equal(w.features.int8Dot, relaxedHere ? 'relaxed_dot_i8x16_i7x16' : 'dot_i16x8');
  } finally {
    w.terminate();
  }
});

test('init() picks a relaxed build exactly where the engine runs relaxed SIMD; relaxedSimd: false picks SIMD128', async () => {
  assert.equal(probeFeatures().relaxedSimd, nodeRunsRelaxed);
  for (const threads of [1, 2]) {
    const mha = await init({ threads });
    assert.equal(mha.build, buildName(threads > 1));
    const { int8Dot, ...features } = mha.features;
    assert.deepEqual(features, { simd: true, relaxedSimd: relaxedHere, threads: threads > 1 });
    assert.ok(INT8_DOT_NAMES.includes(int8Dot) && (relaxedHere || int8Dot === 'dot_i16x8'), int8Dot);
    if (relaxedHere) assert.equal(mha.relaxedSimdNote, null);
    // A package without the relaxed builds says so in dist/builds.mjs, and init() requests none of their files.
    else assert.match(mha.relaxedSimdNote, nodeRunsRelaxed ? /relaxed-SIMD builds are not in this package/ : /does not run WebAssembly relaxed SIMD/);
    const off = await init({ threads, relaxedSimd: false });
    assert.equal(off.build, buildName(threads > 1, false));
    assert.deepEqual(off.features, { simd: true, relaxedSimd: false, threads: threads > 1, int8Dot: 'dot_i16x8' });
    assert.equal(off.relaxedSimdNote, 'init() was given relaxedSimd: false');
  }
  const w = await initWorker({ threads: 2, relaxedSimd: false });
  try {
    assert.deepEqual([w.build, w.features.relaxedSimd, w.relaxedSimdNote], [buildName(true, false), false, 'init() was given relaxedSimd: false']);
  } finally {
    w.terminate();
  }
});

test('relaxedSimd must be a boolean', async () => {
  for (const v of ['auto', 1, null]) {
    await assert.rejects(init({ relaxedSimd: v }), { name: 'TypeError', message: /^init: relaxedSimd must be true or false, got / });
    await assert.rejects(initWorker({ relaxedSimd: v }), { name: 'TypeError', message: /^init \(mha-wasm\/worker\): relaxedSimd must be true or false/ });
  }
});

test('relaxed builds that cannot be loaded (not where baseUrl says): init() loads SIMD128 and says why', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mha-norelaxed-'));
  try {
    for (const b of Object.values(BUILDS).filter((x) => !x.relaxed))
      for (const f of buildFiles(b)) fs.copyFileSync(path.join(dist, f), path.join(dir, f));
    fs.copyFileSync(path.join(dist, 'package.json'), path.join(dir, 'package.json'));
    for (const threads of [2, 1]) {
      const mha = await init({ threads, baseUrl: dir + '/' });
      assert.equal(mha.build, buildName(threads > 1, false));
      assert.equal(mha.features.relaxedSimd, false);
      assert.match(mha.relaxedSimdNote, !nodeRunsRelaxed ? /does not run/ : !relaxedBuilt ? /not in this package/
        : new RegExp(`relaxed-SIMD build could not be loaded \\(cannot (read|load) .*${buildName(threads > 1, true)}`));
      const layer = new mha.MultiHeadAttention({ embedDim: 8, numHeads: 2 });
      const r = rng(5), w = { inProjWeight: uniform(r, 192, -0.3, 0.3), outProjWeight: uniform(r, 64, -0.3, 0.3),
        inProjBias: uniform(r, 24, -0.3, 0.3), outProjBias: uniform(r, 8, -0.3, 0.3) };
      layer.setWeights(w);
      const x = uniform(r, 5 * 8, -1, 1);
      const got = layer.forward({ data: x, dims: [5, 8] }).output.data;
      const ref = mhaReference({ E: 8, H: 2, kdim: 8, vdim: 8, bias: true }, w, 1, 5, 5, x, x, x).output;
      assert.ok(relErr(got, ref) <= 1e-4);
      layer.dispose();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// An engine that validates relaxed SIMD but computes it wrong must get the SIMD128
// build: Node 20's baseline compiler (Liftoff) with --experimental-wasm-relaxed-simd
// loses relaxed_dot_i8x16_i7x16_add_s's accumulator; its optimizing compiler is right.
const childScript = `
  import { init, probeFeatures } from 'mha-wasm';
  import { mhaReference, relErr, rng, uniform } from ${JSON.stringify(new URL('./reference.mjs', import.meta.url).href)};
  const mha = await init({ threads: 1 });
  const E = 16, H = 2, L = 9, r = rng(3), s = 0.25;
  const w = { inProjWeight: uniform(r, 3 * E * E, -s, s), inProjBias: uniform(r, 3 * E, -s, s), outProjWeight: uniform(r, E * E, -s, s), outProjBias: uniform(r, E, -s, s) };
  const layer = new mha.MultiHeadAttention({ embedDim: E, numHeads: H });
  layer.setWeights(w);
  const x = uniform(r, L * E, -1, 1);
  const got = layer.forward({ data: x, dims: [L, E] }, null, null, { isCausal: true }).output.data;
  const ref = mhaReference({ E, H, kdim: E, vdim: E, bias: true }, w, 1, L, L, x, x, x, { isCausal: true }).output;
  console.log(JSON.stringify({ probe: probeFeatures().relaxedSimd, build: mha.build, err: relErr(got, ref) }));
`;
function child(flags) {
  const r = spawnSync(process.execPath, [...flags, '--input-type=module', '-e', childScript], { cwd: root, encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim());
}

test('Node 20 with --experimental-wasm-relaxed-simd: the baseline compiler\'s wrong dot product keeps it on SIMD128; the optimizing compiler gets the relaxed build',
  { skip: nodeMajor !== 20 ? `Node.js ${process.versions.node}: the flag and the bug are Node 20's` : false }, () => {
    const liftoff = child(['--experimental-wasm-relaxed-simd', '--liftoff', '--no-wasm-tier-up']);
    assert.deepEqual([liftoff.probe, liftoff.build], [false, buildName(false, false)]);
    assert.ok(liftoff.err <= 1e-4, `${liftoff.err}`);
    const turbofan = child(['--experimental-wasm-relaxed-simd', '--no-liftoff']);
    assert.deepEqual([turbofan.probe, turbofan.build], [true, buildName(false, relaxedBuilt)]);
    assert.ok(turbofan.err <= 1e-4, `${turbofan.err}`);
  });

test('Node 22+: the baseline compiler alone computes relaxed SIMD right, and the relaxed build runs there',
  { skip: !nodeRunsRelaxed ? `Node.js ${process.versions.node} runs no relaxed SIMD without flags` : false }, () => {
    const liftoff = child(['--liftoff', '--no-wasm-tier-up']);
    assert.deepEqual([liftoff.probe, liftoff.build], [true, buildName(false, relaxedBuilt)]);
    assert.ok(liftoff.err <= 1e-4, `${liftoff.err}`);
  });

// ---- the relaxed builds against the SIMD128 builds (and both against float64) ----

const AGREE = 1e-4;
const noRelaxed = !relaxedHere ? `this Node.js (${process.versions.node}) does not load the relaxed builds` : false;

/** { relaxed, simd128 }: the same runtime kind of both, for threads. */
async function pair(threads) {
  const relaxed = await init({ threads }), simd128 = await init({ threads, relaxedSimd: false });
  assert.deepEqual([relaxed.build, simd128.build], [buildName(threads > 1, true), buildName(threads > 1, false)]);
  return { relaxed, simd128 };
}

/** Runs fn on both runtimes and checks each result pairwise (and against ref when given). */
function agree(where, a, b, ref) {
  assert.equal(a.length, b.length, where);
  const e = relErr(a, b);
  assert.ok(e <= AGREE, `${where}: relaxed vs SIMD128 ${e}`);
  if (ref) for (const [name, x] of [['relaxed', a], ['SIMD128', b]]) assert.ok(relErr(x, ref) <= 1e-4, `${where}: ${name} vs float64 ${relErr(x, ref)}`);
}

for (const threads of [1, 2]) {
  test(`threads=${threads}: MultiHeadAttention on random configurations, relaxed vs SIMD128 within 1e-4`, { skip: noRelaxed }, async () => {
    const { relaxed, simd128 } = await pair(threads);
    for (let seed = 1; seed <= 12; seed++) {
      const r = rng(1000 * threads + seed);
      const pick = (a) => a[Math.floor(r() * a.length)];
      const [E, H] = pick([[8, 2], [12, 3], [32, 4], [40, 5], [64, 8], [96, 6]]);
      const self = r() < 0.5, kdim = self ? E : pick([E, 7, 19]), vdim = self ? E : pick([E, 9, 21]);
      const B = 1 + Math.floor(r() * 3), Lq = pick([1, 5, 17, 64, 130]), Lk = self ? Lq : pick([1, 4, 33, 200]);
      const isCausal = r() < 0.4, needWeights = r() < 0.6, padding = r() < 0.4;
      const s = 1 / Math.sqrt(E);
      const w = { qProjWeight: uniform(r, E * E, -s, s), kProjWeight: uniform(r, E * kdim, -s, s), vProjWeight: uniform(r, E * vdim, -s, s),
        inProjBias: uniform(r, 3 * E, -s, s), outProjWeight: uniform(r, E * E, -s, s), outProjBias: uniform(r, E, -s, s) };
      const q = uniform(r, B * Lq * E, -1, 1), k = self ? q : uniform(r, B * Lk * kdim, -1, 1), v = self ? q : uniform(r, B * Lk * vdim, -1, 1);
      const kpm = padding ? Uint8Array.from({ length: B * Lk }, (_, i) => (i % Lk !== 0 && r() < 0.3 ? 1 : 0)) : null;
      const opts = { isCausal: isCausal && Lq === Lk, needWeights };
      const outs = [relaxed, simd128].map((mha) => {
        const layer = new mha.MultiHeadAttention({ embedDim: E, numHeads: H, kdim, vdim });
        layer.setWeights(w);
        const res = layer.forward({ data: q, dims: [B, Lq, E] }, { data: k, dims: [B, Lk, kdim] }, { data: v, dims: [B, Lk, vdim] },
          { ...opts, ...(kpm ? { keyPaddingMask: { data: kpm, dims: [B, Lk] } } : {}) });
        layer.dispose();
        return res;
      });
      const ref = mhaReference({ E, H, kdim, vdim, bias: true }, w, B, Lq, Lk, q, k, v, { ...opts, keyPaddingMask: kpm });
      const where = `seed ${seed}: E ${E} H ${H} B ${B} Lq ${Lq} Lk ${Lk} kdim ${kdim} vdim ${vdim} ${JSON.stringify(opts)} padding ${padding}`;
      agree(`${where} output`, outs[0].output.data, outs[1].output.data, ref.output);
      if (needWeights) agree(`${where} weights`, outs[0].weights.data, outs[1].weights.data, ref.weights);
    }
  });

  test(`threads=${threads}: large layer (E = 768, L = 128), blocks, a KV-cached decoder, LayerNorm and sdpa, relaxed vs SIMD128 within 1e-4`, { skip: noRelaxed }, async () => {
    const { relaxed, simd128 } = await pair(threads);
    const both = (fn) => [relaxed, simd128].map(fn);
    const r = rng(40 + threads);
    {
      const E = 768, H = 12, L = 128, s = 1 / Math.sqrt(E);
      const w = { inProjWeight: uniform(r, 3 * E * E, -s, s), inProjBias: uniform(r, 3 * E, -s, s), outProjWeight: uniform(r, E * E, -s, s), outProjBias: uniform(r, E, -s, s) };
      const x = uniform(r, L * E, -1, 1);
      const [a, b] = both((mha) => {
        const layer = new mha.MultiHeadAttention({ embedDim: E, numHeads: H });
        layer.setWeights(w);
        const y = layer.forward({ data: x, dims: [1, L, E] }).output.data;
        layer.dispose();
        return y;
      });
      agree('E 768 L 128', a, b, mhaReference({ E, H, kdim: E, vdim: E, bias: true }, w, 1, L, L, x, x, x).output);
    }
    const E = 48, H = 6, F = 80, B = 2, L = 33, T = 7, S = 11;
    for (const [activation, normFirst] of [['relu', false], ['gelu', true]]) {
      const cfg = { E, H, F, activation, eps: 1e-5, normFirst, bias: true };
      const opts = { dModel: E, nhead: H, dimFeedforward: F, activation, normFirst };
      const esd = blockStateDict(r, E, F, true), dsd = blockStateDict(r, E, F, true, true);
      const x = uniform(r, B * L * E, -1, 1), mem = uniform(r, S * E, -1, 1);
      const [ea, eb] = both((mha) => {
        const enc = new mha.TransformerEncoderLayer(opts);
        enc.setWeights(esd);
        const y = enc.forward({ data: x, dims: [B, L, E] }, { isCausal: true }).data;
        enc.dispose();
        return y;
      });
      agree(`encoder ${activation}`, ea, eb, encoderReference(cfg, esd, B, L, x, { isCausal: true }));
      const tgt = x.subarray(0, T * E);
      const dref = decoderReference(cfg, dsd, 1, T, S, tgt, mem, { isCausal: true });
      const [da, db] = both((mha) => {
        const dec = new mha.TransformerDecoderLayer(opts);
        dec.setWeights(dsd);
        const cache = dec.createCache({ maxLength: T });
        const steps = new Float32Array(T * E);
        for (let i = 0; i < T; i++)
          steps.set(dec.forward({ data: tgt.subarray(i * E, (i + 1) * E), dims: [1, E] }, { data: mem, dims: [S, E] }, { cache, tgtIsCausal: true }).data, i * E);
        cache.dispose();
        dec.dispose();
        return steps;
      });
      agree(`decoder ${activation} (KV cache)`, da, db, dref);
    }
    {
      const g = uniform(r, E, 0.5, 1.5), bias = uniform(r, E, -0.5, 0.5), x = uniform(r, L * E, -3, 5);
      const [a, b] = both((mha) => {
        const norm = new mha.LayerNorm({ normalizedShape: E });
        norm.setWeights({ weight: g, bias });
        const y = norm.forward({ data: x, dims: [L, E] }).data;
        norm.dispose();
        return y;
      });
      agree('LayerNorm', a, b, layerNormRef(x, L, E, g, bias, 1e-5));
    }
    {
      const Hs = 3, Lq = 40, Lk = 70, D = 16, Dv = 24;
      const q = uniform(r, B * Hs * Lq * D, -1, 1), k = uniform(r, B * Hs * Lk * D, -1, 1), v = uniform(r, B * Hs * Lk * Dv, -1, 1);
      const [a, b] = both((mha) => mha.scaledDotProductAttention({ data: q, dims: [B, Hs, Lq, D] }, { data: k, dims: [B, Hs, Lk, D] },
        { data: v, dims: [B, Hs, Lk, Dv] }, { needWeights: true }));
      const ref = sdpaReference({ B, H: Hs, Lq, Lk, D, Dv }, q, k, v, { needWeights: true });
      agree('sdpa output', a.output.data, b.output.data, ref.output);
      agree('sdpa weights', a.weights.data, b.weights.data, ref.weights);
    }
  });
}
