// mha-wasm: multi-head attention in WebAssembly (SIMD128, optional threads).
//
//   import { init } from 'mha-wasm';
//   const mha = await init({ threads: 'auto' });
//   const layer = new mha.MultiHeadAttention({ embedDim: 64, numHeads: 4 });
//   layer.setWeights({ inProjWeight, inProjBias, outProjWeight, outProjBias });
//   const { output, weights } = layer.forward(query, key, value, { isCausal: true });
//   layer.dispose();
import { BUILDS, hardwareConcurrency, initOptions, instantiate, probeFeatures, unrefWorkers } from './loader.js';
import { makeMultiHeadAttention } from './layer.js';
import { Runtime } from './runtime.js';
import { makeScaledDotProductAttention } from './sdpa.js';
import { makeKVCache } from './kvcache.js';
import { makeLayerNorm } from './layernorm.js';
import { makeTransformerBlocks } from './transformer.js';

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
    opts = initOptions(options, { functions: true });
  } catch (e) {
    return Promise.reject(e);
  }
  // locateFile is a function and cannot be compared: no memoization then.
  const key = opts.locateFile ? null : JSON.stringify([opts.threads, opts.base.href, opts.urls]);
  if (key !== null && cache.has(key)) return cache.get(key);
  const p = load(opts);
  if (key !== null) {
    cache.set(key, p);
    p.catch(() => cache.delete(key));  // a failed load may be retried
  }
  return p;
}

async function load({ threads, base, urls, locateFile }) {
  const features = probeFeatures();
  if (!features.simd)
    throw new Error('mha-wasm needs WebAssembly SIMD (Chrome/Edge 91+, Firefox 89+, Safari 16.4+, Node.js 16.4+)');
  const wanted = threads === 'auto' ? Math.min(MAX_AUTO_THREADS, await hardwareConcurrency()) : threads;
  const useThreads = wanted > 1 && features.threads;
  const inst = await instantiate(useThreads ? 'threads' : 'simd', { base, urls, locateFile }, useThreads ? wanted - 1 : 0);
  const used = inst.mod.setThreads(useThreads ? wanted : 1);
  unrefWorkers(inst.mod);
  let threadsNote = null;
  if (wanted > 1 && !useThreads) threadsNote = `single-thread build: ${features.threadsReason}`;
  return createApi(new Runtime(inst), {
    threads: used,
    features: Object.freeze({ simd: true, threads: useThreads }),
    build: useThreads ? BUILDS.threads.file : BUILDS.simd.file,
    threadsNote,
  });
}

function createApi(rt, info) {
  const caches = makeKVCache(rt);
  const blocks = makeTransformerBlocks(rt, caches);
  const api = {
    threads: info.threads,
    features: info.features,
    /** Which build runs: 'mha-wasm-threads' or 'mha-wasm-simd'. */
    build: info.build,
    /** Why the single-thread build runs although threads were asked for, else null. */
    threadsNote: info.threadsNote,
    MultiHeadAttention: makeMultiHeadAttention(rt, caches),
    scaledDotProductAttention: makeScaledDotProductAttention(rt),
    LayerNorm: makeLayerNorm(rt),
    TransformerEncoderLayer: blocks.TransformerEncoderLayer,
    TransformerDecoderLayer: blocks.TransformerDecoderLayer,
    /** Diagnostics: wasm heap size and layers not yet freed. */
    stats: () => ({ wasmMemoryBytes: rt.memoryBytes(), liveLayers: rt.mod.liveLayers() }),  // layers and caches
  };
  return Object.freeze(api);
}

export { probeFeatures };
export { encodeSafetensors, parseSafetensors, safetensorsMetadata } from './safetensors.js';
