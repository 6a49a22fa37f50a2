// platform.js for bundlers (Vite, webpack, esbuild, Rollup, Parcel): package.json's
// "browser" field puts this file in its place, so a bundle holds nothing Node-only.
//
// Unless init() is told where the files are (baseUrl, urls, locateFile), the
// builds come from dist/*.inline.mjs: each build's Emscripten glue and .wasm gzip-
// compressed as base64 and its pthread worker script as text, one module per build, written by
// scripts/inline-dist.mjs. A bundler sees them as ordinary JS behind a literal
// import(), so it emits them (and loads only the build in use) with no
// configuration and no asset handling; the glue and the workers then run from
// same-origin blob: URLs, wherever the bundle is hosted. mha-wasm/worker's
// worker host comes the same way, pre-bundled (dist/worker-host.inline.mjs).
import { BUILDS } from './abi.js';
import * as web from './platform-web.js';

export const isNode = false;

/** No folder: the builds are inlined (see inlineSources). */
export const defaultBase = () => null;

/** mha-wasm/worker's default worker: the inlined worker host. */
export const INLINE_HOST = 'inline worker host';
export const defaultWorker = () => INLINE_HOST;

// One literal import() per build of bindings/abi.js's BUILDS, so bundlers see each.
const MODULES = {
  threads: () => import('../dist/mha-wasm-threads.inline.mjs'),
  simd: () => import('../dist/mha-wasm-simd.inline.mjs'),
  relaxedThreads: () => import('../dist/mha-wasm-relaxed-threads.inline.mjs'),
  relaxedSimd: () => import('../dist/mha-wasm-relaxed-simd.inline.mjs'),
};

function decodeBase64(s) {
  if (typeof Uint8Array.fromBase64 === 'function') return Uint8Array.fromBase64(s);
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** A build's files, built in: { glue: text, wasm: bytes, worker: text or null }. */
export async function inlineSources(buildName) {
  const file = `dist/${BUILDS[buildName].file}.inline.mjs`;
  let m;
  try {
    m = await MODULES[buildName]();
  } catch (e) {
    throw new Error(`mha-wasm: cannot load the inlined ${buildName} build (${file}): ${e.message}`, { cause: e });
  }
  // A relaxed-SIMD build is left out of a package built without its toolchain.
  if (m.glue === null) throw new Error(`mha-wasm: the ${BUILDS[buildName].file} build is not in this package (${file} says it was not built)`);
  const [glue, wasm] = await Promise.all([gunzip(decodeBase64(m.glue)), gunzip(decodeBase64(m.wasm))]);
  return { glue: new TextDecoder().decode(glue), wasm, worker: m.worker ?? null };
}

/** Inflates gzip bytes (the inline modules' glue and .wasm) with the platform's DecompressionStream. */
async function gunzip(bytes) {
  if (typeof DecompressionStream !== 'function')
    throw new Error('mha-wasm: this browser has no DecompressionStream (Chrome 80, Firefox 113, Safari 16.4) to unpack the inlined build');
  const body = new Response(bytes).body.pipeThrough(new DecompressionStream('gzip'));
  return new Uint8Array(await new Response(body).arrayBuffer());
}

export const hardwareConcurrency = web.hardwareConcurrency;
export const resolveUrl = (s) => new URL(s, web.here());
export const readWasm = web.fetchBytes;
export const loadGlue = web.loadGlue;
export const pthreadWorker = web.pthreadWorker;
export const unrefWorkers = () => {};

export async function startWorker(target, name) {
  if (target !== INLINE_HOST) return web.moduleWorker(target, name);
  let source;
  try {
    ({ source } = await import('../dist/worker-host.inline.mjs'));
  } catch (e) {
    throw new Error(`mha-wasm/worker: cannot load the inlined worker host (dist/worker-host.inline.mjs): ${e.message}`, { cause: e });
  }
  return web.moduleWorker({ source }, name);
}

export const hostPort = web.webPort;
