// Finds and instantiates one of the two wasm builds. Shared by Node and browsers.
//
// Emscripten 3.1.6's ES6 output does not run in Node ESM, and its pthread
// workers load the main script with importScripts, so the glue is a classic
// script: Node loads it with require(); browsers import() it for its side effect
// (bindings/extern-post.js.in publishes the factory on globalThis) and hand its
// URL to the workers.

import { BUILDS, FILES } from './abi.js';
import { describe, plainObject } from './validate.js';


export const isNode =
  typeof process === 'object' && typeof process.versions === 'object' && typeof process.versions.node === 'string' &&
  typeof window === 'undefined' && typeof importScripts !== 'function';

// (module (func (result v128) (v128.const i32x4 0 0 0 0)))
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 22, 1, 20, 0, 253, 12,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 11]);
// (module (memory 1 1 shared) (func (drop (i32.atomic.load (i32.const 0)))))
const THREADS_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 5, 4, 1, 3, 1, 1, 10, 11, 1,
  9, 0, 65, 0, 254, 16, 2, 0, 26, 11]);

/** What this engine can run, and if threads are out, why. */
export function probeFeatures() {
  const wasm = typeof WebAssembly === 'object' && typeof WebAssembly.validate === 'function';
  const simd = wasm && WebAssembly.validate(SIMD_PROBE);
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
  return { simd, threads: threadsReason === null, threadsReason };
}

export async function hardwareConcurrency() {
  if (isNode) {
    const os = await import('node:os');
    return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  }
  return (typeof navigator === 'object' && navigator.hardwareConcurrency) || 1;
}


/** A URL from a string or URL: relative to the page in browsers, to the working directory for Node paths. */
export function resolveUrl(u, dir = false) {
  let s = String(u);
  if (dir && !s.endsWith('/')) s += '/';
  if (isNode && !/^[a-z][a-z0-9+.-]*:/i.test(s))  // a filesystem path in Node
    return new URL(s, 'file://' + (s.startsWith('/') ? '' : process.cwd() + '/'));
  return new URL(s, typeof location === 'object' ? location.href : import.meta.url);
}

/**
 * Checks init() options (each read once) and resolves locations: { threads,
 * base: URL, urls: { fileName: href }, extra: { name: value } }. locateFile is
 * called here for every file, so its answers become urls (they override baseUrl
 * and urls); that works across a worker boundary too. extra: other option names
 * allowed (mha-wasm/worker's workerUrl).
 */
export function initOptions(options, { extra = [] } = {}) {
  const where = extra.length ? 'init (mha-wasm/worker)' : 'init';
  const o = plainObject(`${where} options`, options, ['threads', 'baseUrl', 'urls', 'locateFile', ...extra]);
  const { threads = 'auto', baseUrl, urls = {}, locateFile } = o;
  if (threads !== 'auto' && !(Number.isInteger(threads) && threads >= 1)) {
    const msg = `${where}: threads must be 'auto' or a positive integer, got ${describe(threads)}`;
    throw typeof threads === 'number' ? new RangeError(msg) : new TypeError(msg);
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
  const base = baseUrl === undefined ? new URL('../dist/', import.meta.url) : resolveUrl(baseUrl, true);
  return { threads, base, urls: resolved, extra: Object.fromEntries(extra.map((k) => [k, o[k]])) };
}

function locate(name, where) {
  if (where.urls && where.urls[name]) return where.urls[name];
  return new URL(name, where.base).href;
}

async function readWasm(url) {
  let bytes;
  if (isNode && url.startsWith('file:')) {
    const fs = await import('node:fs/promises');
    const { fileURLToPath } = await import('node:url');
    try {
      bytes = new Uint8Array(await fs.readFile(fileURLToPath(url)));
    } catch (e) {
      throw new Error(`mha-wasm: cannot read ${url}: ${e.message}`, { cause: e });
    }
  } else {
    let res;
    try {
      res = await fetch(url, { credentials: 'same-origin' });
    } catch (e) {
      throw new Error(`mha-wasm: cannot fetch ${url}: ${e.message}`, { cause: e });
    }
    if (!res.ok) throw new Error(`mha-wasm: fetching ${url} failed with HTTP ${res.status} ${res.statusText}`.trim());
    bytes = new Uint8Array(await res.arrayBuffer());
  }
  const magic = [0, 0x61, 0x73, 0x6d];
  if (bytes.length < 8 || magic.some((b, i) => bytes[i] !== b)) {
    const head = new TextDecoder().decode(bytes.subarray(0, 40)).replace(/\s+/g, ' ');
    throw new Error(`mha-wasm: ${url} is not a WebAssembly module (it starts with "${head}"); ` +
      'check where the .wasm files are served from (init({ baseUrl }) or init({ locateFile }))');
  }
  return bytes;
}

async function loadFactory(build, glueUrl) {
  if (isNode && glueUrl.startsWith('file:')) {
    const { createRequire } = await import('node:module');
    const { fileURLToPath } = await import('node:url');
    try {
      return createRequire(import.meta.url)(fileURLToPath(glueUrl));
    } catch (e) {
      throw new Error(`mha-wasm: cannot load ${glueUrl}: ${e.message.split('\n')[0]}`, { cause: e });
    }
  }
  try {
    await import(/* @vite-ignore */ /* webpackIgnore: true */ glueUrl);
  } catch (e) {
    throw new Error(`mha-wasm: cannot load ${glueUrl}: ${e.message}`, { cause: e });
  }
  const factory = globalThis[build.exportName];
  if (typeof factory !== 'function') throw new Error(`mha-wasm: ${glueUrl} did not define ${build.exportName}`);
  return factory;
}

/**
 * Instantiates a build. where: { base: URL of the folder holding the files,
 * urls: { fileName: href } overriding it }. poolSize: pthread workers to pre-spawn.
 */
export async function instantiate(buildName, where, poolSize) {
  const build = BUILDS[buildName];
  const glueUrl = locate(build.file + '.js', where);
  const [factory, wasmBinary] = await Promise.all([loadFactory(build, glueUrl), readWasm(locate(build.file + '.wasm', where))]);
  // abort() may come before the runtime exists (while instantiating): remember it, then forward it.
  let aborted = null, listener = null;
  const moduleArg = {
    wasmBinary,
    mhaPoolSize: poolSize,
    locateFile: (name) => {  // the pthread worker script
      const url = locate(name, where);
      return isNode && url.startsWith('file:') ? decodeURIComponent(new URL(url).pathname) : url;
    },
    onAbort: (what) => {
      const why = what === undefined ? '' : String(what);
      if (aborted === null) aborted = why;
      if (listener) listener(why);
    },
  };
  if (!isNode) moduleArg.mainScriptUrlOrBlob = glueUrl;
  let mod;
  try {
    mod = await factory(moduleArg);
  } catch (e) {
    throw new Error(`mha-wasm: instantiating ${glueUrl} failed: ${e && e.message ? e.message : e}`, { cause: e });
  }
  return {
    mod,
    build: buildName,
    /** Why abort() was called during instantiation, or null. */
    aborted: () => (aborted === null ? null : `abort(${aborted ? JSON.stringify(aborted) : ''}) was called`),
    onAbort: (fn) => { listener = fn; },
  };
}

/** Lets Node exit while pool threads sleep (Emscripten 3.1.6 does not unref its workers). */
export function unrefWorkers(mod) {
  if (!isNode || !mod.PThread) return;
  for (const w of [...mod.PThread.unusedWorkers, ...mod.PThread.runningWorkers]) if (w && w.unref) w.unref();
}
