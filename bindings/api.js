// The object init() resolves to: the classes and functions bound to one runtime.
import { makeMultiHeadAttention } from './layer.js';
import { makeScaledDotProductAttention } from './sdpa.js';
import { makeKVCache } from './kvcache.js';
import { makeLayerNorm } from './layernorm.js';
import { makeTransformerBlocks } from './transformer.js';

const runtimes = new WeakMap();  // api -> Runtime

/** The Runtime behind an api object (for init's memo and for tests). */
export const runtimeOf = (api) => runtimes.get(api);

export function createApi(rt, info) {
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
  Object.freeze(api);
  runtimes.set(api, rt);
  return api;
}

