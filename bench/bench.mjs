// `npm run bench`: mha-wasm against onnxruntime-web, TF.js (wasm backend) and
// plain JavaScript on the performance issue's shapes, interleaved in one run,
// in Node. Prints a table (median ms, GFLOP/s, % of the SIMD128 peak measured
// by a probe, speed-ups) and writes build/bench/results-node.json. Where this
// Node runs relaxed SIMD (Node 22, which `npm run bench` runs on when setup has
// installed it, scripts/node22.mjs; not Node 20), the relaxed-SIMD build runs beside
// the SIMD128 build and a second table compares them. One-thread groups are
// timed in process CPU time (wall time beside it).
//
//   npm run bench [-- --shapes S1,S4 --rounds 5 --no-plain --no-long --no-quant]
//
// The one-thread group also runs int8 and f16 layers (weightType) of each build
// and ORT-web's int8 graph on S1-S4, with PASS/FAIL against the int8 targets.
//
// Each group runs in its own child process: one thread (mha-wasm, ORT-web,
// TF.js, plain JS), two threads (mha-wasm 1 and 2 threads, ORT-web with 2;
// ORT-web's thread count is fixed per process), and the L = 16384 case.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { LONG, SHAPES, TWO_THREAD_SHAPES, benchShape, fmt as f, label, macsLine, makeData, makeMhaWasm, nativeTable, probeMacs, probePeak, quantTable, relaxedTable, table } from './peers.mjs';
import { BUILDS, buildFiles } from '../bindings/abi.js';
import { RELAXED_ENV, emscriptenEnv, missingRelaxedToolchain } from '../scripts/build.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);
const out = path.join(root, 'build', 'bench');

export function args(argv) {
  const a = { shapes: SHAPES.map((s) => s.id), rounds: 5, plain: true, long: true, quant: true, child: null };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--shapes') a.shapes = argv[++i].split(',');
    else if (k === '--rounds') a.rounds = Number(argv[++i]);
    else if (k === '--no-plain') a.plain = false;
    else if (k === '--no-long') a.long = false;
    else if (k === '--no-quant') a.quant = false;
    else if (k === '--child') a.child = argv[++i];
    else throw new Error(`unknown argument ${k} (expected --shapes S1,S2 --rounds N --no-plain --no-long --no-quant)`);
  }
  const unknown = a.shapes.filter((id) => !SHAPES.some((s) => s.id === id));
  if (unknown.length) throw new Error(`unknown shape ${unknown.join(', ')} (shapes: ${SHAPES.map((s) => s.id).join(', ')})`);
  return a;
}

// ---------------- the peak probes ----------------
// build/bench/peak.js: the SIMD128 probes (bench/peak.cpp); peak-relaxed.js: the
// same source built with relaxed SIMD (clang-19, as scripts/build.mjs builds the
// relaxed builds), when that toolchain is installed.
function emBuild(name, extra, env) {
  const js = path.join(out, `${name}.js`);
  if (fs.existsSync(js) && fs.statSync(js).mtimeMs > fs.statSync(path.join(root, 'bench', 'peak.cpp')).mtimeMs) return true;
  const obj = path.join(out, `${name}.o`);
  const em = (args) => spawnSync('em++', args, { stdio: 'inherit', env: { ...emscriptenEnv(), ...env } }).status === 0;
  // Compiled at -O3, linked at -O1: Debian's binaryen (wasm-opt, -O2 and up) cannot read relaxed opcodes.
  return em(['-O3', '-msimd128', ...extra, '-c', path.join(root, 'bench', 'peak.cpp'), '-o', obj]) &&
    em(['-O1', ...extra, '-sMODULARIZE', `-sEXPORT_NAME=MhaPeak`, '-sENVIRONMENT=node,web', '-sWASM_BIGINT',
      `-sEXPORTED_FUNCTIONS=${['_peak', '_peak_flops', '_peak_dot16', '_peak_macs', ...(extra.length ? ['_peak_fma', '_peak_rdot'] : [])].join(',')}`, '-o', js, obj]);
}

export function buildPeak() {
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'package.json'), '{"type":"commonjs"}\n');
  if (!emBuild('peak', [], {})) throw new Error('building the peak probe failed (em++ is needed: npm run setup)');
  if (missingRelaxedToolchain().length || !emBuild('peak-relaxed', ['-mrelaxed-simd'], RELAXED_ENV)) fs.rmSync(path.join(out, 'peak-relaxed.js'), { force: true });
}

async function peakGflops() {
  const M = await require(path.join(out, 'peak.js'))({ wasmBinary: fs.readFileSync(path.join(out, 'peak.wasm')) });
  return probePeak(M);
}

/** probeMacs of the probes built here; the relaxed one where this engine has relaxed SIMD. */
export async function peakMacs() {
  const load = async (name) => require(path.join(out, `${name}.js`))({ wasmBinary: fs.readFileSync(path.join(out, `${name}.wasm`)) });
  const relaxedWasm = path.join(out, 'peak-relaxed.wasm');
  const relaxed = fs.existsSync(relaxedWasm) && WebAssembly.validate(fs.readFileSync(relaxedWasm)) ? await load('peak-relaxed') : null;
  return probeMacs(await load('peak'), relaxed);
}

// ---------------- children ----------------
async function loadPeers(threads) {
  const ort = await import('onnxruntime-web');
  ort.env.wasm.numThreads = threads;
  const { onnx } = require('onnx-proto');
  return { ort, onnx };
}

/**
 * onnxruntime-node, the native reference, or { native: null, why }. It is not a dev
 * dependency (288 MB, and its install script downloads GPU binaries from outside
 * npm): `npm install --no-save --ignore-scripts onnxruntime-node@1.30` adds it, or
 * NODE_PATH may point at a scratch install's node_modules.
 */
export function loadNative() {
  try {
    return { native: require('onnxruntime-node') };
  } catch (e) {
    return { native: null, why: e.code === 'MODULE_NOT_FOUND' ? 'onnxruntime-node is not installed (npm install --no-save --ignore-scripts onnxruntime-node@1.30)' : `onnxruntime-node failed to load: ${e.message}` };
  }
}

async function loadTfjs() {
  const tf = require('@tensorflow/tfjs-core');
  require('@tensorflow/tfjs-backend-wasm');
  await tf.setBackend('wasm');
  await tf.ready();
  return tf;
}

async function child(kind, a) {
  const { init } = await import('mha-wasm');
  const results = [];
  const log = (m) => process.stderr.write(`  ${m}\n`);
  if (kind === 'long') {
    for (const threads of [1, 2]) {
      const mha = await init({ threads });
      const d = makeData(LONG);
      const before = mha.stats().wasmMemoryBytes;
      const run = await makeMhaWasm(mha, LONG, d);
      const t0 = performance.now();
      const y = await run();
      const ms = performance.now() - t0;
      results.push({ shape: LONG.id, contestant: `mha-wasm t${threads}`, threads, ms, finite: y.every(Number.isFinite),
        wasmMemoryBefore: before, wasmMemoryAfter: mha.stats().wasmMemoryBytes });
      run.dispose();
      log(`${LONG.id} t${threads}: ${ms.toFixed(0)} ms, wasm memory ${(mha.stats().wasmMemoryBytes / 2 ** 20).toFixed(0)} MiB`);
    }
    return results;
  }
  const threads = kind === 't2' ? 2 : 1;
  const { ort, onnx } = await loadPeers(threads);
  const tf = kind === 't1' ? await loadTfjs() : null;
  const { native, why } = kind === 't1' ? loadNative() : { native: null };
  if (kind === 't1' && !native) log(`no native reference: ${why}`);
  const both = async (n) => {
    const relaxed = await init({ threads: n });
    return [await init({ threads: n, relaxedSimd: false }), relaxed.features.relaxedSimd ? relaxed : null];
  };
  const [m1, r1] = await both(1), [m2, r2] = kind === 't2' ? await both(2) : [null, null];
  if (!r1) log(`no relaxed-SIMD build here: ${(await init({ threads: 1 })).relaxedSimdNote}`);
  const cpu = async () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
  const shapes = SHAPES.filter((s) => a.shapes.includes(s.id) && (kind === 't1' || TWO_THREAD_SHAPES.includes(s.id)));
  for (const s of shapes) {
    log(`${label(s)} (${kind})`);
    results.push(...await benchShape(s, { m1, m2, r1, r2, ort, onnx, tf, threads, plain: a.plain, rounds: a.rounds, log, cpu, quant: a.quant, native }));
  }
  return results;
}

// ---------------- the parent: run the children, print the table ----------------
export function sizes() {
  const gz = (f) => zlib.gzipSync(fs.readFileSync(path.join(root, 'dist', f)), { level: 9 }).length;
  // Each build's files (bindings/abi.js): wasm + glue (+ the pthread worker script); null if not built.
  const build = (b) => (buildFiles(b).every((f) => fs.existsSync(path.join(root, 'dist', f))) ? buildFiles(b).reduce((n, f) => n + gz(f), 0) : null);
  const builds = Object.fromEntries(Object.values(BUILDS).map((b) => [b.file, build(b)]));
  const ortDir = path.join(root, 'node_modules', 'onnxruntime-web', 'dist');
  const ortWasm = fs.statSync(path.join(ortDir, 'ort-wasm-simd-threaded.wasm')).size;
  return { builds, threadsGz: builds[BUILDS.threads.file], simdGz: builds[BUILDS.simd.file], ortWasmBytes: ortWasm,
    ortWasmGz: zlib.gzipSync(fs.readFileSync(path.join(ortDir, 'ort-wasm-simd-threaded.wasm')), { level: 9 }).length };
}

async function main() {
  const a = args(process.argv.slice(2));
  if (a.child) {
    const results = await child(a.child, a);
    process.stdout.write(JSON.stringify(results));
    process.exit(0);  // ORT-web's worker threads would keep the process alive
  }
  buildPeak();
  const peak = await peakGflops();
  console.log(`SIMD128 peak probe: ${peak.toFixed(1)} GFLOP/s per core`);
  const macs = await peakMacs();
  console.log(macsLine(macs));
  const results = [];
  const self = fileURLToPath(import.meta.url);
  for (const kind of ['t1', 't2', ...(a.long ? ['long'] : [])]) {
    console.log(`running group ${kind}…`);
    const r = spawnSync(process.execPath, [self, '--child', kind, '--shapes', a.shapes.join(','), '--rounds', String(a.rounds), ...(a.plain ? [] : ['--no-plain']), ...(a.quant ? [] : ['--no-quant'])],
      { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 });
    if (r.status !== 0) throw new Error(`group ${kind} failed (exit ${r.status})`);
    results.push(...JSON.parse(r.stdout));
  }
  const bad = results.filter((r) => r.relDiff !== undefined && !(r.relDiff < (r.tolerance ?? 1e-3)));
  const info = { date: new Date().toISOString().slice(0, 10), node: process.version, cpu: os.cpus()[0].model, cores: os.cpus().length, peak, peakMacs: macs, sizes: sizes() };
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'results-node.json'), JSON.stringify({ info, results }, null, 1));
  console.log(`\nNode ${info.node}, ${info.cpu} (${info.cores} cores), ${info.date}. Times are medians; "vs X" and every ratio below = the median over rounds of X's time / mha-wasm's in that round (higher is better for mha-wasm).`);
  console.log(table(results, peak));
  const rt = relaxedTable(results);
  console.log(rt ? `\nThe relaxed-SIMD build (f32x4.relaxed_madd) against the SIMD128 build and ORT-web, same runs:\n${rt}` : `\nNo relaxed-SIMD build ran: Node ${process.version} does not run relaxed SIMD (Node 22 does: \`npm run bench\` runs on the Node.js 22 that \`npm run setup\` installs on linux-x64), or dist/ lacks it.`);
  const nt = nativeTable(results);
  console.log(nt ? `\nAgainst native onnxruntime-node (1 intra-op thread; CPU time medians, same runs):\n${nt}` : '\nNo native reference ran (onnxruntime-node is not installed: npm install --no-save --ignore-scripts onnxruntime-node@1.30).');
  const qt = quantTable(results);
  if (qt) console.log(`\nint8 and f16 weights (MultiHeadAttention weightType; 1 thread, CPU time medians, same runs), and ORT-web's int8 graph (DynamicQuantizeLinear + MatMulInteger, per-channel int8 weights):\n${qt}`);
  for (const r of results.filter((x) => x.shape === LONG.id))
    console.log(`${label(LONG)}, needWeights false, ${r.contestant}: ${f(r.ms)} ms, wasm memory ${(r.wasmMemoryBefore / 2 ** 20).toFixed(0)} -> ${(r.wasmMemoryAfter / 2 ** 20).toFixed(0)} MiB (an L x L score matrix would be ${(LONG.L ** 2 * 4 / 2 ** 30).toFixed(0)} GiB per head), finite: ${r.finite}`);
  const sz = info.sizes;
  console.log(`Sizes (gzip -9, .wasm + JS glue + pthread worker): ${Object.entries(sz.builds).map(([b, n]) => `${b} ${n === null ? 'not built' : `${(n / 1000).toFixed(1)} KB`}`).join(', ')}; ORT-web's threaded .wasm alone ${(sz.ortWasmGz / 1e6).toFixed(1)} MB gzipped.`);
  if (bad.length) {
    console.error(`outputs disagree with plain JS: ${bad.map((r) => `${r.shape} ${r.contestant} t${r.threads}: ${r.relDiff}`).join('; ')}`);
    process.exit(1);
  }
  console.log('All outputs agree with the plain-JS layer (max relative difference < 1e-3; int8, against the unquantized layer, < 5e-3).');
  // One more group, in its own process: the modern-attention targets (its own table and results-modern.json).
  console.log('\nModern attention (bench/modern.mjs):');
  const modern = spawnSync(process.execPath, [path.join(root, 'bench', 'modern.mjs')], { cwd: root, stdio: 'inherit' });
  if (modern.status !== 0) throw new Error(`bench/modern.mjs failed (exit ${modern.status})`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url))
  main().catch((e) => { console.error(`bench: ${e.message}`); process.exit(1); });
