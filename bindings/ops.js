// The operations of one runtime, by name: what every public method does once its
// arguments are read and checked where the call was made (api.js). They run in
// the runtime's thread: directly for the main API, or in the worker host for
// mha-wasm/worker, from this same table. Objects live here under ids.
import { cacheOps } from './kvcache.js';
import { mhaOps } from './layer.js';
import { normOps } from './layernorm.js';
import { rotaryOps } from './rotary.js';
import { sdpaOps } from './sdpa.js';
import { blockOps } from './transformer.js';
import { rmsNormOps } from './rmsnorm.js';
import { feedForwardOps } from './feedforward.js';
import { modelOps } from './model.js';
import { fmtBytes, MAX_HEAP } from './runtime.js';
import { describe } from './validate.js';

/** bytes for reserveMemory: a whole number of bytes the heap can hold. */
export function reserveBytes(bytes) {
  if (typeof bytes !== 'number') throw new TypeError(`reserveMemory: bytes must be a number, got ${describe(bytes)}`);
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`reserveMemory: bytes must be a non-negative integer, got ${describe(bytes)}`);
  if (!(bytes < MAX_HEAP)) throw new RangeError(`reserveMemory: ${fmtBytes(bytes)} is more than a wasm32 heap can hold (${fmtBytes(MAX_HEAP)})`);
  return bytes;
}

/** The largest piece reserveMemory takes at once: the allocator grows the heap by less than 2 GiB a step. */
const RESERVE_PIECE = 2 ** 29;

/**
 * Room for bytes in rt's heap: taken (the heap grows to what is needed, not in steps of
 * a fifth of its size each), in pieces of at most RESERVE_PIECE that follow one another,
 * then given back at once for what is allocated next. A RangeError when the engine cannot
 * provide it; then nothing stays taken.
 */
function reserveMemory(rt, bytes) {
  reserveBytes(bytes);
  const have = rt.memoryBytes(), pieces = [];
  try {
    for (let left = bytes; left > 0; left -= RESERVE_PIECE) {
      const p = rt.mod._malloc(Math.min(left, RESERVE_PIECE)) >>> 0;
      if (!p) throw new RangeError(`reserveMemory: the wasm heap could not make room for ${fmtBytes(bytes)} (${fmtBytes(have)} now, ${fmtBytes(MAX_HEAP)} at most; the engine or the device may allow less)`);
      pieces.push(p);
    }
  } finally {
    for (const p of pieces) rt.free(p);
  }
}

/** The table of ops and constructors by name; ctx: { rt, get }, filled in with cacheFor. */
function buildTable(ctx) {
  const caches = cacheOps(ctx);
  ctx.cacheFor = caches.cacheFor;
  return Object.assign(Object.create(null), mhaOps(ctx), blockOps(ctx), normOps(ctx), sdpaOps(ctx), rotaryOps(ctx), caches, {
    stats: () => ({ wasmMemoryBytes: ctx.rt.memoryBytes(), liveLayers: ctx.rt.mod.liveLayers() }),  // layers and caches
    reserveMemory: (bytes) => reserveMemory(ctx.rt, bytes),
  }, rmsNormOps(ctx), feedForwardOps(ctx), modelOps(ctx));
}

/** The classes ops can create, and the names call() takes (the table's dotted names, sdpa and stats). */
export const CLASSES = Object.freeze(['MultiHeadAttention', 'TransformerEncoderLayer', 'TransformerDecoderLayer', 'LayerNorm', 'KVCache',
  'RMSNorm', 'FeedForward', 'Model']);
export const CALLS = Object.freeze(Object.keys(buildTable({})).filter((k) => !CLASSES.includes(k) && k !== 'cacheFor'));

/** The op table of Runtime rt: { create(id, kind, cfg), dispose(id), call(op, args) }. */
export function makeOps(rt) {
  const objects = new Map();  // id -> { kind, handle, cfg, ... }
  const NOUN = { KVCache: 'cache' };

  /** The live object id, which must be a kind. */
  function get(id, kind) {
    const o = objects.get(id);
    if (o === undefined) throw new Error(`${kind}: this ${NOUN[kind] ?? 'layer'} has been disposed`);
    if (o.kind !== kind) throw new TypeError(`mha-wasm: object ${id} is a ${o.kind}, not a ${kind}`);
    return o;
  }

  const table = buildTable({ rt, get, kindOf: (id) => objects.get(id)?.kind });

  return {
    /** Makes an object of kind from its validated configuration, under id. */
    create(id, kind, cfg) {
      if (!CLASSES.includes(kind)) throw new TypeError(`mha-wasm: unknown class ${JSON.stringify(String(kind))}`);
      if (objects.has(id)) throw new TypeError(`mha-wasm: object ${id} exists already`);
      rt.checkAlive();
      objects.set(id, { ...table[kind](cfg), kind });
    },
    /** Frees object id (nothing if it is gone already). */
    dispose(id) {
      const o = objects.get(id);
      if (o === undefined) return;
      objects.delete(id);
      o.handle.delete();
    },
    /** Runs op with args (an array). */
    call(op, args) {
      if (typeof op !== 'string' || !CALLS.includes(op)) throw new TypeError(`mha-wasm: unknown operation ${JSON.stringify(String(op))}`);
      if (!Array.isArray(args)) throw new TypeError(`mha-wasm: the arguments of ${op} must be an array`);
      return table[op](...args);
    },
  };
}
