// Finds and instantiates one of the wasm builds. Shared by Node and browsers;
// what differs lives in platform.js (Node.js, and pages that load bindings/
// unbundled), which package.json's "browser" field replaces by
// platform-browser.js in bundles.
//
// Emscripten 3.1.6's ES6 output does not run in Node ESM, and its pthread
// workers load the main script with importScripts, so the glue is a classic
// script: Node loads it with require(); browsers import() it (a URL, or a blob:
// URL of its text) for its side effect (bindings/extern-post.js.in publishes
// the factory on globalThis) and hand it to the workers.

import { BUILDS, FILES, INT8_DOT_NAMES } from './abi.js';
import * as platform from './platform.js';
import { describe, plainObject } from './validate.js';

export const isNode = platform.isNode;
export const hardwareConcurrency = platform.hardwareConcurrency;
export const unrefWorkers = platform.unrefWorkers;

/**
 * An init() option only this package passes (the worker host, given the builds
 * by its caller): (buildName) => Promise<{ glue, wasm, worker }>, for the files
 * baseUrl, urls and locateFile do not name.
 */
export const INLINE_SOURCES = Symbol('mha-wasm inline sources');

// (module (func (result v128) (v128.const i32x4 0 0 0 0)))
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 22, 1, 20, 0, 253, 12,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 11]);
// (module (memory 1 1 shared) (func (drop (i32.atomic.load (i32.const 0)))))
const THREADS_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 5, 4, 1, 3, 1, 1, 10, 11, 1,
  9, 0, 65, 0, 254, 16, 2, 0, 26, 11]);

// bindings/relaxed-probe.wat, compiled (wat2wasm --enable-relaxed-simd; tests/relaxed.test.mjs checks it):
// run() stores relaxed_madd and relaxed_dot_i8x16_i7x16_add_s of inputs from its data segment.
export const RELAXED_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 5, 4, 1, 1, 1, 1, 7, 16, 2, 6, 109, 101, 109, 111, 114,
  121, 2, 0, 3, 114, 117, 110, 0, 0, 10, 62, 1, 60, 0, 65, 48, 65, 0, 253, 0, 4, 0, 65, 16, 253, 0, 4, 0, 65, 32,
  253, 0, 4, 0, 253, 133, 2, 253, 11, 4, 0, 65, 240, 0, 65, 192, 0, 253, 0, 4, 0, 65, 208, 0, 253, 0, 4, 0, 65, 224,
  0, 253, 0, 4, 0, 253, 147, 2, 253, 11, 4, 0, 11, 11, 130, 1, 6, 0, 65, 0, 11, 16, 0, 8, 128, 63, 0, 0, 0, 64, 0, 0,
  192, 191, 0, 8, 128, 191, 0, 65, 16, 11, 16, 0, 8, 128, 63, 0, 0, 64, 64, 0, 0, 128, 64, 0, 8, 128, 63, 0, 65, 32,
  11, 16, 0, 16, 128, 191, 0, 0, 128, 63, 0, 0, 128, 62, 0, 16, 128, 63, 0, 65, 192, 0, 11, 16, 128, 127, 253, 5,
  100, 156, 7, 0, 1, 2, 3, 4, 255, 254, 253, 252, 0, 65, 208, 0, 11, 16, 127, 127, 9, 11, 50, 60, 0, 127, 1, 1, 1, 1,
  126, 125, 124, 123, 0, 65, 224, 0, 11, 16, 232, 3, 0, 0, 48, 248, 255, 255, 224, 147, 4, 0, 249, 255, 255, 255]);

/**
 * Whether this engine runs relaxed SIMD, and runs it right: the probe must
 * validate, and its results must be what the instructions give. relaxed_madd
 * may round once (fused) or twice; relaxed_dot_i8x16_i7x16_add_s must add its
 * accumulator (Node 20's baseline compiler, with --experimental-wasm-relaxed-simd,
 * loses it: that engine gets the SIMD128 build).
 */
function relaxedSimdWorks() {
  try {
    if (!WebAssembly.validate(RELAXED_PROBE)) return false;
    const { exports } = new WebAssembly.Instance(new WebAssembly.Module(RELAXED_PROBE), {});
    exports.run();
    const buf = exports.memory.buffer;
    const f = new Float32Array(buf, 0, 16);  // a, b, c, a * b + c
    for (let i = 0; i < 4; i++) {
      const [a, b, c, got] = [f[i], f[4 + i], f[8 + i], f[12 + i]];
      // The inputs are short enough that a * b + c is exact in float64.
      if (got !== Math.fround(a * b + c) && got !== Math.fround(Math.fround(a * b) + c)) return false;
    }
    const x = new Int8Array(buf, 64, 16), y = new Int8Array(buf, 80, 16), acc = new Int32Array(buf, 96, 4), dot = new Int32Array(buf, 112, 4);
    for (let j = 0; j < 4; j++) {
      let want = acc[j];
      for (let t = 4 * j; t < 4 * j + 4; t++) want += x[t] * y[t];
      if (dot[j] !== want) return false;
    }
    return true;
  } catch {
    return false;
  }
}

/**
 * The builds (names in abi.js BUILDS) this package's dist/ holds, from
 * dist/builds.mjs (scripts/inline-dist.mjs), or null if that cannot be read. A
 * package built without the relaxed-SIMD toolchain lacks the relaxed builds, and
 * init() need not request their files to find out.
 */
export async function packagedBuilds() {
  try {
    const { builds } = await import('../dist/builds.mjs');
    return Array.isArray(builds) ? builds : null;
  } catch {
    return null;
  }
}

/** What this engine can run (relaxedSimd: relaxed SIMD, correctly), and if threads are out, why. */
export function probeFeatures() {
  const wasm = typeof WebAssembly === 'object' && typeof WebAssembly.validate === 'function';
  const simd = wasm && WebAssembly.validate(SIMD_PROBE);
  const relaxedSimd = simd && relaxedSimdWorks();
  let threadsReason = null;
  if (!wasm || !WebAssembly.validate(THREADS_PROBE)) threadsReason = 'this engine has no WebAssembly threads';
  else if (typeof SharedArrayBuffer !== 'function')
    threadsReason = isNode
      ? 'SharedArrayBuffer is unavailable in this Node.js'
      : 'SharedArrayBuffer is unavailable: the page is not cross-origin isolated (serve it with ' +
        'Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp)';
  else if (!isNode && globalThis.crossOriginIsolated !== true)
    threadsReason = 'the page is not cross-origin isolated (serve it with Cross-Origin-Opener-Policy: same-origin ' +
      'and Cross-Origin-Embedder-Policy: require-corp)';
  else if (!isNode && typeof Worker !== 'function') threadsReason = 'Web Workers are unavailable here';
  return { simd, relaxedSimd, threads: threadsReason === null, threadsReason };
}

/** A URL from a string or URL: relative to the page in browsers, to the working directory for Node paths. */
export function resolveUrl(u, dir = false) {
  let s = String(u);
  if (dir && !s.endsWith('/')) s += '/';
  return platform.resolveUrl(s);
}

/**
 * Checks init() options (each read once) and resolves locations: { threads,
 * relaxedSimd, int8Dot, base: URL or null, urls: { fileName: href }, inline, extra: { name: value } }.
 * base null: the files baseUrl/urls/locateFile do not name are built in, and
 * inline(buildName) gives them (bundles: platform-browser.js; the worker host:
 * its caller, through options[INLINE_SOURCES]). locateFile is
 * called here for every file, so its answers become urls (they override baseUrl
 * and urls); that works across a worker boundary too. extra: other option names
 * allowed (mha-wasm/worker's workerUrl).
 */
export function initOptions(options, { extra = [] } = {}) {
  const where = extra.length ? 'init (mha-wasm/worker)' : 'init';
  const o = plainObject(`${where} options`, options, ['threads', 'relaxedSimd', 'int8Dot', 'baseUrl', 'urls', 'locateFile', ...extra]);
  const { threads = 'auto', relaxedSimd = true, int8Dot = 'auto', baseUrl, urls = {}, locateFile } = o;
  if (threads !== 'auto' && !(Number.isInteger(threads) && threads >= 1)) {
    const msg = `${where}: threads must be 'auto' or a positive integer, got ${describe(threads)}`;
    throw typeof threads === 'number' ? new RangeError(msg) : new TypeError(msg);
  }
  if (typeof relaxedSimd !== 'boolean') throw new TypeError(`${where}: relaxedSimd must be true or false, got ${describe(relaxedSimd)}`);
  if (int8Dot !== 'auto' && !INT8_DOT_NAMES.includes(int8Dot)) {
    const msg = `${where}: int8Dot must be 'auto', ${INT8_DOT_NAMES.map((n) => `'${n}'`).join(' or ')}, got ${describe(int8Dot)}`;
    throw typeof int8Dot === 'string' ? new RangeError(msg) : new TypeError(msg);
  }
  if (baseUrl !== undefined && typeof baseUrl !== 'string' && !(baseUrl instanceof URL))
    throw new TypeError(`${where}: baseUrl must be a string or URL, got ${describe(baseUrl)}`);
  if (urls === null || typeof urls !== 'object' || Array.isArray(urls))
    throw new TypeError(`${where}: urls must be an object { fileName: url }, got ${describe(urls)}`);
  const resolved = {};
  for (const [name, u] of Object.entries(urls)) {
    if (!FILES.includes(name)) throw new TypeError(`${where}: urls: unknown file "${name}" (the files are ${FILES.join(', ')})`);
    if (typeof u !== 'string' && !(u instanceof URL)) throw new TypeError(`${where}: urls["${name}"] must be a string or URL, got ${describe(u)}`);
    resolved[name] = resolveUrl(u).href;
  }
  if (locateFile !== undefined) {
    if (typeof locateFile !== 'function')
      throw new TypeError(`${where}: locateFile must be a function (fileName) => url, got ${describe(locateFile)}`);
    for (const name of FILES) {
      const u = locateFile(name);
      if (typeof u !== 'string' && !(u instanceof URL))
        throw new TypeError(`${where}: locateFile("${name}") must return a string or URL, got ${describe(u)}`);
      resolved[name] = resolveUrl(u).href;
    }
  }
  const given = options !== null && typeof options === 'object' ? options[INLINE_SOURCES] : undefined;
  const inline = typeof given === 'function' ? given : platform.inlineSources;
  const base = baseUrl !== undefined ? resolveUrl(baseUrl, true) : typeof given === 'function' ? null : platform.defaultBase();
  return { threads, relaxedSimd, int8Dot, base, urls: resolved, inline, extra: Object.fromEntries(extra.map((k) => [k, o[k]])) };
}

const WASM_MAGIC = [0, 0x61, 0x73, 0x6d];

function checkWasm(bytes, where) {
  if (bytes.length < 8 || WASM_MAGIC.some((b, i) => bytes[i] !== b)) {
    const head = new TextDecoder().decode(bytes.subarray(0, 40)).replace(/\s+/g, ' ');
    throw new Error(`mha-wasm: ${where} is not a WebAssembly module (it starts with "${head}"); ` +
      'check where the .wasm files are served from (init({ baseUrl }) or init({ locateFile }))');
  }
  return bytes;
}

/**
 * Instantiates a build. where: { base: URL of the folder holding the files or
 * null, urls: { fileName: href } overriding it, inline: the built-in files }.
 * poolSize: pthread workers to pre-spawn. A threaded build whose workers cannot
 * start rejects with an Error marked workerFailure (init() then loads the
 * single-thread build).
 */
export async function instantiate(buildName, where, poolSize) {
  const build = BUILDS[buildName];
  const names = { glue: `${build.file}.js`, wasm: `${build.file}.wasm`, worker: `${build.file}.worker.js` };
  const at = (name) => where.urls[name] ?? (where.base ? new URL(name, where.base).href : null);
  const wanted = build.threads ? ['glue', 'wasm', 'worker'] : ['glue', 'wasm'];
  let inline = null;
  if (wanted.some((k) => at(names[k]) === null)) {
    if (typeof where.inline !== 'function') throw new Error(`mha-wasm: no location for ${build.file} (give init() a baseUrl)`);
    inline = await where.inline(buildName);
  }
  const src = (k) => (at(names[k]) !== null ? { url: at(names[k]) } : { text: inline[k] });
  const glueWhere = at(names.glue) ?? `the inlined ${names.glue}`;
  const [glue, wasmBinary] = await Promise.all([
    platform.loadGlue(build, src('glue')),
    at(names.wasm) !== null ? platform.readWasm(at(names.wasm)).then((b) => checkWasm(b, at(names.wasm)))
      : checkWasm(inline.wasm, `the inlined ${names.wasm}`),
  ]);
  const worker = build.threads ? await platform.pthreadWorker(src('worker')) : null;
  // abort() may come before the runtime exists (while instantiating): remember it, then forward it.
  let aborted = null, listener = null, workersFailed;
  const failed = new Promise((_, reject) => { workersFailed = (why) => reject(Object.assign(new Error(why), { workerFailure: true })); });
  failed.catch(() => {});
  const moduleArg = {
    wasmBinary,
    mhaPoolSize: poolSize,
    locateFile: (name) => (name === names.worker && worker ? worker.url : at(name) ?? name),
    onAbort: (what) => {
      const why = what === undefined ? '' : String(what);
      if (aborted === null) aborted = why;
      if (listener) listener(why);
    },
    // Emscripten reports a pthread worker that threw while loading only here
    // (and then waits for it forever): give up, so init() can use one thread.
    printErr: (text) => {
      const s = String(text);
      if (s.startsWith('worker sent an error!')) workersFailed(`a worker threw while loading (${s.slice(22).trim()})`);
      else console.warn(s);
    },
  };
  if (glue.script !== undefined) moduleArg.mainScriptUrlOrBlob = glue.script;
  let mod;
  try {
    const ready = glue.factory(moduleArg);
    // The pool's workers exist now (the glue made them synchronously). One that
    // cannot load its script (a Content-Security-Policy's worker-src forbids it,
    // say) reports it before Emscripten listens.
    const cannotLoad = () => workersFailed(`a Worker could not load ${worker.url.startsWith('blob:') ? 'its script from a blob: URL' : worker.url}` +
      ' (does a Content-Security-Policy worker-src forbid it?)');
    for (const w of (moduleArg.PThread && moduleArg.PThread.unusedWorkers) || []) {
      if (typeof w.addEventListener === 'function') w.addEventListener('error', cannotLoad);
      else if (typeof w.on === 'function') w.on('error', cannotLoad);
    }
    mod = await Promise.race([ready, failed]);
  } catch (e) {
    if (moduleArg.PThread) try { moduleArg.PThread.terminateAllThreads(); } catch { /* nothing more to free */ }
    if (worker) worker.release();
    if (build.threads && e && (e.workerFailure === true || e.name === 'SecurityError'))
      throw Object.assign(new Error(`mha-wasm: its pthread workers could not start: ${e.message}`, { cause: e }), { workerFailure: true });
    throw new Error(`mha-wasm: instantiating ${glueWhere} failed: ${e && e.message ? e.message : e}`, { cause: e });
  }
  return {
    mod,
    build: buildName,
    /** Why abort() was called during instantiation, or null. */
    aborted: () => (aborted === null ? null : `abort(${aborted ? JSON.stringify(aborted) : ''}) was called`),
    onAbort: (fn) => { listener = fn; },
  };
}
