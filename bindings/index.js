// mha-wasm: multi-head attention in WebAssembly (SIMD128 or relaxed SIMD, optional threads).
//
//   import { init } from 'mha-wasm';
//   const mha = await init({ threads: 'auto' });
//   const layer = new mha.MultiHeadAttention({ embedDim: 64, numHeads: 4 });
//   layer.setWeights({ inProjWeight, inProjBias, outProjWeight, outProjBias });
//   const { output, weights } = layer.forward(query, key, value, { isCausal: true });
//   layer.dispose();
import { BUILDS, INT8_DOT_NAMES, MAX_THREADS, buildFiles } from './abi.js';
import { defineApi, localBackend, memoizedApi } from './api.js';
import { hardwareConcurrency, initOptions, instantiate, packagedBuilds, probeFeatures, unrefWorkers } from './loader.js';
import { Runtime } from './runtime.js';

const MAX_AUTO_THREADS = 8;
const cache = new Map();

/**
 * Loads the runtime. Memoized: the same options give the same runtime.
 * @param {import('./index').InitOptions} [options]
 * @returns {Promise<import('./index').Mha>}
 */
export function init(options = {}) {
  let opts;
  try {
    opts = initOptions(options);
  } catch (e) {
    return Promise.reject(e);
  }
  return memoizedApi(cache, JSON.stringify([opts.threads, opts.relaxedSimd, opts.int8Dot, opts.base ? opts.base.href : null, opts.urls]), () => load(opts));
}

/** The build of a kind: relaxed SIMD or SIMD128, threaded or not (bindings/abi.js BUILDS). */
const buildOf = (relaxed, threaded) => (relaxed ? (threaded ? 'relaxedThreads' : 'relaxedSimd') : threaded ? 'threads' : 'simd');

async function load({ threads, relaxedSimd, int8Dot, base, urls, inline }) {
  if (typeof WebAssembly !== 'object')
    throw new Error('mha-wasm: WebAssembly is not available here (in Node.js, --jitless and --no-expose-wasm turn it off)');
  const features = probeFeatures();
  if (!features.simd)
    throw new Error('mha-wasm needs WebAssembly SIMD (Chrome/Edge 91+, Firefox 89+, Safari 16.4+ and iOS 16.4+, Node.js 18+)');
  const asked = threads === 'auto' ? Math.min(MAX_AUTO_THREADS, await hardwareConcurrency()) : threads;
  const wanted = Math.min(asked, MAX_THREADS);
  const where = { base, urls, inline };
  const notes = [];
  if (asked > MAX_THREADS) notes.push(`threads: ${asked} is more than the ${MAX_THREADS} the thread pool can use; using ${MAX_THREADS}`);
  // The threaded build of a kind, or its single-thread build: { inst, note }.
  const start = async (relaxed) => {
    if (wanted > 1 && !features.threads) return { inst: await instantiate(buildOf(relaxed, false), where, 0), note: `single-thread build: ${features.threadsReason}` };
    if (wanted > 1) {
      try {
        return { inst: await instantiate(buildOf(relaxed, true), where, wanted - 1), note: null };
      } catch (e) {
        if (!e || e.workerFailure !== true) throw e;
        // The threaded build's workers cannot start here (a policy forbids the
        // Worker, say): one thread works, so that is what runs.
        return { inst: await instantiate(buildOf(relaxed, false), where, 0), note: `single-thread build: ${e.message.replace(/^mha-wasm: /, '')}` };
      }
    }
    return { inst: await instantiate(buildOf(relaxed, false), where, 0), note: null };
  };
  let started = null, relaxedSimdNote = null;
  const relaxedBuilds = Object.keys(BUILDS).filter((b) => BUILDS[b].relaxed);
  const packaged = relaxedSimd && features.relaxedSimd ? await packagedBuilds() : null;
  if (!relaxedSimd) relaxedSimdNote = 'init() was given relaxedSimd: false';
  else if (!features.relaxedSimd) relaxedSimdNote = 'this engine does not run WebAssembly relaxed SIMD (or does not compute it correctly)';
  else if (packaged && !relaxedBuilds.every((b) => packaged.includes(b)) &&
      !relaxedBuilds.some((b) => buildFiles(BUILDS[b]).some((f) => Object.hasOwn(urls, f))))
    // Not requested at all (its files would only answer 404): unless init() was told where they are.
    relaxedSimdNote = 'the relaxed-SIMD builds are not in this package (it was built without their toolchain, clang-19)';
  else {
    try {
      started = await start(true);
    } catch (e) {
      // Not in this package (built without clang-19), not served, or refused by
      // the engine: the SIMD128 build computes the same.
      relaxedSimdNote = `the relaxed-SIMD build could not be loaded (${String(e && e.message ? e.message : e).replace(/^mha-wasm: /, '')})`;
    }
  }
  if (started === null) started = await start(false);
  const { inst } = started;
  if (started.note) notes.push(started.note);
  const build = BUILDS[inst.build];
  const rt = new Runtime(inst);
  const used = rt.mod.setThreads(build.threads ? wanted : 1);
  // 'auto': the core's own choice (the relaxed dot where this engine runs it as one instruction).
  const dot = INT8_DOT_NAMES[rt.mod.int8Dot(int8Dot === 'auto' ? -1 : INT8_DOT_NAMES.indexOf(int8Dot))];
  unrefWorkers(inst.mod);
  return defineApi(localBackend(rt), {
    threads: used,
    features: Object.freeze({ simd: true, relaxedSimd: build.relaxed, threads: build.threads, int8Dot: dot }),
    build: build.file,
    threadsNote: notes.length ? notes.join('; ') : null,
    relaxedSimdNote,
  });
}

export { probeFeatures };
export { encodeSafetensors, parseSafetensors, readSafetensors, safetensorsMetadata } from './safetensors.js';
export { quantizeSafetensors } from './quantize.js';
