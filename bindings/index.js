// mha-wasm: multi-head attention in WebAssembly (SIMD128, optional threads).
//
//   import { init } from 'mha-wasm';
//   const mha = await init({ threads: 'auto' });
//   const layer = new mha.MultiHeadAttention({ embedDim: 64, numHeads: 4 });
//   layer.setWeights({ inProjWeight, inProjBias, outProjWeight, outProjBias });
//   const { output, weights } = layer.forward(query, key, value, { isCausal: true });
//   layer.dispose();
import { BUILDS, MAX_THREADS } from './abi.js';
import { defineApi, localBackend, memoizedApi } from './api.js';
import { hardwareConcurrency, initOptions, instantiate, probeFeatures, unrefWorkers } from './loader.js';
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
  return memoizedApi(cache, JSON.stringify([opts.threads, opts.base ? opts.base.href : null, opts.urls]), () => load(opts));
}

async function load({ threads, base, urls, inline }) {
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
  let inst = null;
  if (wanted > 1 && !features.threads) notes.push(`single-thread build: ${features.threadsReason}`);
  else if (wanted > 1) {
    try {
      inst = await instantiate('threads', where, wanted - 1);
    } catch (e) {
      if (!e || e.workerFailure !== true) throw e;
      // The threaded build's workers cannot start here (a policy forbids the
      // Worker, say): one thread works, so that is what runs.
      notes.push(`single-thread build: ${e.message.replace(/^mha-wasm: /, '')}`);
    }
  }
  const useThreads = inst !== null;
  if (!useThreads) inst = await instantiate('simd', where, 0);
  const rt = new Runtime(inst);
  const used = rt.mod.setThreads(useThreads ? wanted : 1);
  unrefWorkers(inst.mod);
  const threadsNote = notes.length ? notes.join('; ') : null;
  return defineApi(localBackend(rt), {
    threads: used,
    features: Object.freeze({ simd: true, threads: useThreads }),
    build: useThreads ? BUILDS.threads.file : BUILDS.simd.file,
    threadsNote,
  });
}

export { probeFeatures };
export { encodeSafetensors, parseSafetensors, safetensorsMetadata } from './safetensors.js';
export { quantizeSafetensors } from './quantize.js';
