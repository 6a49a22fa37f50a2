// The object init() resolves to, defined once for both APIs over a backend:
//   - localBackend(rt): the runtime is in this thread; methods return results.
//   - the worker backend (worker.js): the runtime is in a worker; methods return
//     Promises of the same results.
// Either way the classes read and check every argument here, where the call is
// made, and the backend runs the op of the same name from ops.js.
import { defineKVCache } from './kvcache.js';
import { defineMultiHeadAttention } from './layer.js';
import { defineLayerNorm } from './layernorm.js';
import { makeNative } from './native.js';
import { makeOps, reserveBytes } from './ops.js';
import { defineRotary } from './rotary.js';
import { defineSdpa } from './sdpa.js';
import { defineBlocks } from './transformer.js';
import { defineRMSNorm } from './rmsnorm.js';
import { defineFeedForward } from './feedforward.js';
import { defineModel } from './model.js';

/**
 * A backend: { async, run(fn), then(value, fn), checkAlive(), create(kind, cfg, what) -> id,
 * call(op, args, { transfer, move, what }), release(id) }. run(fn) runs a method's body
 * (throwing, or rejecting when async); then(v, fn) maps a call's result;
 * checkAlive() throws once the runtime (or its worker) has stopped. call's move: arrays of the
 * library's own whose buffers a worker backend moves there (the answer may bring them back);
 * the local backend has nothing to move.
 */
export function localBackend(rt) {
  const ops = makeOps(rt);
  let nextId = 1;
  return {
    async: false,
    rt,
    ops,
    run: (fn) => fn(),
    checkAlive: () => rt.checkAlive(),
    then: (value, fn) => fn(value),
    create(kind, cfg) {
      const id = nextId++;
      ops.create(id, kind, cfg);
      return id;
    },
    call: (op, args) => ops.call(op, args),
    release(id) {
      try {
        ops.dispose(id);
      } catch { /* the runtime stopped: nothing to free */ }
    },
  };
}

const backends = new WeakMap();  // api -> its backend

/** The backend behind an api object (for init's memo and for tests). */
export const backendOf = (api) => backends.get(api);

/**
 * The api object over backend. info: { threads, features, build, threadsNote, relaxedSimdNote };
 * extra: members only one API has (terminate for the worker).
 */
export function defineApi(backend, info, extra = {}) {
  const { Native, live } = makeNative(backend);
  const caches = defineKVCache({ backend, Native, live });
  const ctx = { backend, Native, live, caches };
  const blocks = defineBlocks(ctx);
  const api = {
    threads: info.threads,
    features: Object.isFrozen(info.features) ? info.features : Object.freeze({ ...info.features }),  // a worker's arrives as a copy
    /** Which build runs: 'mha-wasm-threads', 'mha-wasm-simd', 'mha-wasm-relaxed-threads' or 'mha-wasm-relaxed-simd'. */
    build: info.build,
    /** Why fewer threads run than were asked for, else null. */
    threadsNote: info.threadsNote,
    /** Why a SIMD128 build runs instead of a relaxed-SIMD one, else null. */
    relaxedSimdNote: info.relaxedSimdNote,
    MultiHeadAttention: defineMultiHeadAttention(ctx),
    scaledDotProductAttention: defineSdpa(ctx),
    applyRotaryEmbedding: defineRotary(ctx),
    LayerNorm: defineLayerNorm(ctx),
    TransformerEncoderLayer: blocks.TransformerEncoderLayer,
    TransformerDecoderLayer: blocks.TransformerDecoderLayer,
    RMSNorm: defineRMSNorm(ctx),
    FeedForward: defineFeedForward(ctx),
    Model: defineModel(ctx),
    /** Diagnostics: wasm heap size and layers, blocks, LayerNorms and caches not yet freed. */
    stats: () => backend.run(() => backend.call('stats', [], { what: 'stats' })),
    /** Room for bytes in one piece in the wasm heap, made now (see index.d.ts). */
    reserveMemory: (bytes) => backend.run(() => backend.call('reserveMemory', [reserveBytes(bytes)], { what: 'reserveMemory' })),
    ...extra,
  };
  Object.freeze(api);
  backends.set(api, backend);
  return api;
}

/**
 * The memo both init()s share (memo: a Map): the api loaded for key, unless that
 * load failed or the api's runtime (or worker) has stopped; then load() runs again.
 */
export function memoizedApi(memo, key, load) {
  const known = memo.get(key);
  if (known && (known.api === null || isAlive(known.api))) return known.promise;
  const entry = { promise: load(), api: null };
  memo.set(key, entry);
  entry.promise.then((api) => { entry.api = api; }, () => { if (memo.get(key) === entry) memo.delete(key); });  // a failed load may be retried
  return entry.promise;
}

function isAlive(api) {
  try {
    backends.get(api).checkAlive();
    return true;
  } catch {
    return false;
  }
}

/** The Runtime behind an api object of the main API (tests). */
export const runtimeOf = (api) => backends.get(api)?.rt;
