// mha-wasm/worker: the same API, computed in a worker so the caller's thread
// (a page's main thread, say) never blocks. Methods return Promises; results
// come back as transferables; several layers can share one worker.
//
//   import { init } from 'mha-wasm/worker';
//   const mha = await init({ threads: 'auto' });        // starts one worker
//   const layer = new mha.MultiHeadAttention({ embedDim: 64, numHeads: 4 });
//   await layer.setWeights(weights);
//   const { output, weights } = await layer.forward(x, null, null, { needWeights: true });
//   layer.dispose();
//   mha.terminate();
import { checkCacheable, layerConfig } from './layer.js';
import { withBlockConfig, withLayerConfig, withNormConfig } from './layer-config.js';
import { normConfig } from './layernorm.js';
import { cacheOptions } from './kvcache.js';
import { blockConfig } from './transformer.js';
import { initOptions, isNode, probeFeatures } from './loader.js';
import { bool, describe, plainObject } from './validate.js';

export { probeFeatures };
export { encodeSafetensors, parseSafetensors, safetensorsMetadata } from './safetensors.js';

// The error classes a worker's error is rebuilt as (any other name: Error).
const ERRORS = Object.freeze(Object.assign(Object.create(null), { TypeError, RangeError, Error }));
const CACHE_TOKEN = Symbol('KVCache');
// The worker classes' shared internals, out of users' sight.
const REMOTE = Symbol('remote'), FORWARD = Symbol('forward');

/** An Error of the class an error message from the worker names, with its message. */
function rebuildError(info) {
  if (info === null || typeof info !== 'object' || typeof info.message !== 'string')
    return new Error('mha-wasm/worker: the worker reported an error it could not describe');
  return new (typeof info.name === 'string' && Object.hasOwn(ERRORS, info.name) ? ERRORS[info.name] : Error)(info.message);
}

/**
 * A worker with request/response messaging. Node: worker_threads, unref'd
 * while no request is pending, so it never keeps a finished script alive.
 */
async function startWorker(url) {
  let w, on;
  if (isNode) {
    const { Worker } = await import('node:worker_threads');
    // No flags from the parent: the worker needs none, Node refuses many in a
    // worker (--max-old-space-size, --expose-gc, --stack-size, --title, ...:
    // ERR_WORKER_INVALID_EXEC_ARGV), and some would break it (--input-type).
    // V8 flags are process-wide, so the worker gets them anyway.
    w = new Worker(url, { execArgv: [] });
    on = (ev, fn) => w.on(ev, ev === 'exit' ? (code) => fn(`it exited with code ${code}`) : fn);
    w.unref();
  } else {
    w = new Worker(url, { type: 'module', name: 'mha-wasm' });
    on = (ev, fn) => {
      if (ev === 'message') w.addEventListener('message', (e) => fn(e.data));
      else if (ev === 'error') w.addEventListener('error', (e) => { e.preventDefault(); fn(e.message ? new Error(e.message) : null); });
      else if (ev === 'messageerror') w.addEventListener('messageerror', () => fn(new Error('a message could not be decoded')));
    };
  }
  const pending = new Map();  // id -> { resolve, reject, what }, in the order sent
  let nextId = 1, dead = null, readyResolve, readyReject;
  const ready = new Promise((res, rej) => { readyResolve = res; readyReject = rej; });
  const idle = () => { if (isNode && pending.size === 0) w.unref(); };
  const settle = (id, fn) => {
    const p = pending.get(id);
    if (!p) return;
    pending.delete(id);
    idle();
    fn(p);
  };
  const die = (why) => {
    if (dead) return;
    dead = new Error(`mha-wasm/worker: the worker stopped (${why})`);
    readyReject(dead);
    for (const p of pending.values()) p.reject(dead);
    pending.clear();
    idle();
    w.terminate();
  };
  on('message', (m) => {
    if (m === null || typeof m !== 'object') return;  // not from worker-host.js: ignored
    if (m.ready === true) return readyResolve();
    if (m.unreadable === true) {
      // The worker could not deserialize the first request it got after id
      // m.after (a buffer detached while the message was being serialized, say):
      // messages arrive in order, so that is the first pending id after it.
      for (const [id, p] of pending) {
        if (id > m.after) {
          settle(id, () => p.reject(new TypeError(`${p.what}: the worker could not read the arguments (was a buffer in them detached while they were being sent?)`)));
          break;
        }
      }
      return;
    }
    settle(m.id, (p) => (m.ok === true ? p.resolve(m.value) : p.reject(rebuildError(m.error))));
  });
  // An answer that cannot be deserialized here: the worker answers in the
  // order it was asked, so it is the oldest pending request's.
  on('messageerror', () => {
    const [first] = pending.keys();
    if (first !== undefined) settle(first, (p) => p.reject(new Error(`${p.what}: could not read the worker's answer`)));
  });
  on('error', (e) => die(e ? e.message : `the worker script ${url} failed to load or threw`));
  on('exit', (why) => die(why));

  /**
   * Sends one request and returns the Promise of its answer; throws (sending
   * nothing) if it cannot be sent. transfer: Map of ArrayBuffer -> argument
   * name, the buffers to move.
   */
  function send(op, args, transfer = new Map(), what = op) {
    if (dead) throw dead;
    // A detached buffer in the transfer list would make postMessage "succeed"
    // with a message the worker cannot read. marshal() checked each one, but
    // a getter it ran afterwards may have detached an earlier one.
    for (const [buffer, name] of transfer)
      if (isDetached(buffer)) throw detachedError(what, name);
    const id = nextId++;
    try {
      w.postMessage({ id, op, args }, [...transfer.keys()]);
    } catch (e) {
      throw new TypeError(`${what}: the arguments cannot be sent to the worker (${e instanceof Error ? `${e.name}: ${e.message}` : String(e)})`, { cause: e });
    }
    const answer = new Promise((resolve, reject) => pending.set(id, { resolve, reject, what }));
    if (isNode && pending.size === 1) w.ref();
    return answer;
  }

  return {
    ready,
    get dead() { return dead; },
    send,
    /** send(), with a failure to send as a rejection. */
    call(...a) {
      try {
        return send(...a);
      } catch (e) {
        return Promise.reject(e);
      }
    },
    terminate() {
      die('terminate() was called');
    },
  };
}

// Intrinsics, so a typed array or buffer cannot answer for itself (own
// properties named buffer, byteLength, detached, constructor, ...).
const TypedArrayProto = Object.getPrototypeOf(Uint8Array.prototype);
const getter = (proto, key) => Object.getOwnPropertyDescriptor(proto, key)?.get;
const taName = getter(TypedArrayProto, Symbol.toStringTag);
const taBuffer = getter(TypedArrayProto, 'buffer'), taOffset = getter(TypedArrayProto, 'byteOffset'), taBytes = getter(TypedArrayProto, 'byteLength');
const dvBuffer = getter(DataView.prototype, 'buffer'), dvOffset = getter(DataView.prototype, 'byteOffset'), dvBytes = getter(DataView.prototype, 'byteLength');
const abBytes = getter(ArrayBuffer.prototype, 'byteLength'), abDetached = getter(ArrayBuffer.prototype, 'detached');
const TYPED = Object.freeze(Object.assign(Object.create(null), Object.fromEntries(
  ['Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array', 'Float32Array',
    'Float64Array', 'BigInt64Array', 'BigUint64Array', 'Float16Array'].filter((n) => typeof globalThis[n] === 'function').map((n) => [n, globalThis[n]]))));

/** Whether buffer is an ArrayBuffer (not a SharedArrayBuffer). */
function isArrayBuffer(buffer) {
  try {
    abBytes.call(buffer);
    return true;
  } catch {
    return false;
  }
}

/** Whether an ArrayBuffer is detached (transferred away). A SharedArrayBuffer never is. */
function isDetached(buffer) {
  if (!isArrayBuffer(buffer)) return false;
  if (abDetached) return abDetached.call(buffer);
  if (abBytes.call(buffer) !== 0) return false;
  try {
    new Uint8Array(buffer);  // throws on a detached buffer, before ArrayBuffer.prototype.detached (Node < 22)
    return false;
  } catch {
    return true;
  }
}

const MAX_ARRAY = 1024;

const detachedError = (what, name) =>
  new TypeError(`${what}: ${name} is a view of a detached ArrayBuffer (moved away earlier, e.g. by a call with transfer: true, or by structuredClone/postMessage with transfer); it cannot be sent to the worker`);

/**
 * A snapshot of value to post to the worker, read once: plain objects and
 * arrays are copied (each property read once), typed arrays are checked for
 * detached buffers and sent as copies of just their elements, or, with
 * ctx.transfer, by moving their buffers (recorded in ctx.list, buffer -> name;
 * a view of part of a buffer, or of a SharedArrayBuffer, is copied instead).
 * Other objects go as they are, for structured clone to copy or refuse.
 * name: the argument's path, for messages.
 */
function marshal(value, name, ctx) {
  if (typeof value === 'function' || typeof value === 'symbol')
    throw new TypeError(`${ctx.what}: the arguments cannot be sent to the worker: ${name} is ${describe(value)}`);
  if (value === null || typeof value !== 'object') return value;
  if (ctx.seen.has(value)) return ctx.seen.get(value);
  let out;
  if (ArrayBuffer.isView(value)) {
    const typeName = taName.call(value);
    const [buffer, offset, bytes] = typeName === undefined ? [dvBuffer.call(value)] : [taBuffer.call(value), taOffset.call(value), taBytes.call(value)];
    if (isDetached(buffer)) throw detachedError(ctx.what, name);
    if (typeName === undefined) {  // a DataView: a copy of its bytes
      const [o, n] = [dvOffset.call(value), dvBytes.call(value)];
      const copy = new Uint8Array(n);
      copy.set(new Uint8Array(buffer, o, n));
      out = new DataView(copy.buffer);
    } else {
      // A SharedArrayBuffer would be shared with the worker, not copied: the
      // caller could change the data while the worker reads it. Copy it.
      const shared = !isArrayBuffer(buffer);
      const whole = !shared && offset === 0 && bytes === abBytes.call(buffer);
      if (whole && ctx.transfer) {
        if (!ctx.list.has(buffer)) ctx.list.set(buffer, name);
        out = value;
      } else if (whole || !TYPED[typeName]) {
        out = value;  // structured clone copies it, reading no properties
      } else {  // a view of part of a buffer would clone all of it
        const copy = new Uint8Array(bytes);
        copy.set(new Uint8Array(buffer, offset, bytes));
        out = new TYPED[typeName](copy.buffer);
      }
    }
    ctx.seen.set(value, out);
    return out;
  }
  if (Array.isArray(value)) {
    const n = value.length;
    // No argument takes a long array (dims have at most 16): a long or sparse
    // one goes as it is, for the worker to refuse, instead of being walked.
    if (!(n <= MAX_ARRAY)) return value;
    out = [];
    ctx.seen.set(value, out);
    for (let i = 0; i < n; i++) out.push(marshal(value[i], `${name}[${i}]`, ctx));
    return out;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  out = {};
  ctx.seen.set(value, out);
  for (const k of Object.keys(value)) out[k] = marshal(value[k], `${name}.${k}`, ctx);
  return out;
}

/**
 * An options object (or undefined/null: {}) copied once, its own enumerable
 * properties each read once; anything else is a TypeError.
 */
function optionsSnapshot(name, options) {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' || Array.isArray(options) || ArrayBuffer.isView(options))
    throw new TypeError(`${name} must be an object, got ${describe(options)}`);
  const out = {};
  for (const k of Object.keys(options)) out[k] = options[k];
  return out;
}

/**
 * The tensors and options of a forward-style call, marshalled: options.transfer
 * (boolean) decides copy or move and is not sent. names: the tensors' argument
 * names; snapshot: the options from optionsSnapshot(). Returns { args, transfer }
 * with the buffers to move (buffer -> argument name).
 */
function tensorCall(what, names, tensors, snapshot) {
  const { transfer: t, ...rest } = snapshot;
  const ctx = { what, transfer: bool('options.transfer', t, false), list: new Map(), seen: new Map() };
  const args = tensors.map((x, i) => marshal(x, names[i], ctx));
  args.push(marshal(rest, 'options', ctx));
  return { args, transfer: ctx.list };
}

/** A Transformer block's constructor options, from its validated config. */
const blockOptions = ({ dModel, nhead, dimFeedforward, activation, layerNormEps, normFirst, bias }) =>
  ({ dModel, nhead, dimFeedforward, activation, layerNormEps, normFirst, bias });

function makeWorkerClasses(conn) {
  // An object dropped without dispose() is freed in the worker. dispose() unregisters.
  const registry = new FinalizationRegistry((id) => { if (!conn.dead) conn.call('dispose', [id]).catch(() => {}); });
  const ids = new WeakMap();  // object -> its id in the worker
  const caches = new WeakSet();  // the KVCaches made here
  const cacheLengths = new WeakMap();  // KVCache -> its length after the last completed call
  let nextId = 1;

  /** An object that lives in the worker: create, calls by id, dispose. */
  class Remote {
    #name;
    #noun;
    #disposed = false;
    /**
     * create: [op, ...args] that makes it in the worker, after the id; args
     * are the validated config (plain data), never the caller's options.
     */
    constructor(name, create, noun = 'layer') {
      const id = nextId++;
      // Throws if it cannot be sent (the worker stopped). A failure in the
      // worker (out of memory) is reported by the object's next call.
      conn.send(create[0], [id, ...create.slice(1)], undefined, `${name} constructor`).catch(() => {});
      ids.set(this, id);
      this.#name = name;
      this.#noun = noun;
      registry.register(this, id, this);
    }

    get disposed() { return this.#disposed; }

    /** Calls method in the worker with args; transfer: buffers to move. */
    [REMOTE](method, args, transfer = []) {
      if (this.#disposed) return Promise.reject(new Error(`${this.#name}.${method}: this ${this.#noun} has been disposed`));
      return conn.call('invoke', [ids.get(this), method, args], transfer, `${this.#name}.${method}`);
    }

    /** Frees it in the worker. Further calls reject; a second dispose() does nothing. */
    dispose() {
      if (this.#disposed) return;
      this.#disposed = true;
      registry.unregister(this);
      if (!conn.dead) conn.call('dispose', [ids.get(this)]).catch(() => {});
    }
  }

  /** setWeights(weights, { transfer }) and forward(...tensors, options) as the synchronous classes have them. */
  const withCalls = (Base, name) => class extends Base {
    /**
     * Copies the weights to the worker (transfer: true moves their buffers instead).
     * @returns {Promise<void>}
     */
    async setWeights(weights, options) {
      const o = plainObject('setWeights options', optionsSnapshot('setWeights options', options), ['transfer']);
      const ctx = { what: `${name}.setWeights`, transfer: bool('setWeights options.transfer', o.transfer, false), list: new Map(), seen: new Map() };
      return this[REMOTE]('setWeights', [marshal(weights, 'weights', ctx)], ctx.list);
    }

    /**
     * The tensors (names: their argument names) and options of forward, each
     * read once; a KV cache in options goes by its id.
     */
    async [FORWARD](names, tensors, options) {
      const what = `${name}.forward`;
      const opts = optionsSnapshot(`${what} options`, options), cache = opts.cache;
      if (cache !== undefined && cache !== null) {
        if (!caches.has(cache))
          throw new TypeError(`${what}: options.cache must be a KVCache from layer.createCache(), got ${describe(cache)}`);
        if (cache.disposed) throw new Error(`${what}: options.cache has been disposed`);
        opts.cache = { cacheId: ids.get(cache) };
      }
      const { args, transfer } = tensorCall(what, names, tensors, opts);
      const { result, cacheLength } = await this[REMOTE]('forward', args, transfer);
      if (cacheLength !== undefined) cacheLengths.set(cache, cacheLength);
      return result;
    }
  };

  /** A KV cache in the worker; length is as of the last completed forward() or reset(). */
  class KVCache extends Remote {
    #batch;
    #maxLength;
    constructor(token, layer, what, options) {
      if (token !== CACHE_TOKEN) throw new TypeError('KVCache: create a cache with layer.createCache({ maxLength, batch })');
      const { maxLength, batch } = cacheOptions(what, options);
      super('KVCache', ['createCache', ids.get(layer), { maxLength, batch }], 'cache');
      caches.add(this);
      this.#batch = batch;
      this.#maxLength = maxLength;
    }
    get batch() { return this.#batch; }
    get maxLength() { return this.#maxLength; }
    get length() { return cacheLengths.get(this) ?? 0; }
    /** Empties the cache for a new sequence. */
    async reset() {
      await this[REMOTE]('reset', []);
      cacheLengths.set(this, 0);
    }
  }

  const withCache = (Base, name) => class extends Base {
    /** A KV cache in the worker for this layer (options as the synchronous createCache). */
    createCache(options) {
      if (this.disposed) throw new Error(`${name}.createCache: this layer has been disposed`);
      return new KVCache(CACHE_TOKEN, this, `${name}.createCache`, options);
    }
  };

  class MultiHeadAttention extends withCache(withCalls(withLayerConfig(Remote), 'MultiHeadAttention'), 'MultiHeadAttention') {
    /** @param {import('./index').MultiHeadAttentionOptions} options */
    constructor(options) {
      const cfg = layerConfig(options);
      const { embedDim, numHeads, kdim, vdim, bias } = cfg;
      super(cfg, 'MultiHeadAttention', ['create', 'MultiHeadAttention', { embedDim, numHeads, kdim, vdim, bias }]);
    }
    createCache(options) {
      checkCacheable(this);
      return super.createCache(options);
    }
    /**
     * The same arguments as the synchronous forward(); options.transfer: true
     * moves the input buffers to the worker (they become unusable here).
     * @returns {Promise<import('./index').AttentionResult>}
     */
    forward(query, key, value, options) { return this[FORWARD](['query', 'key', 'value'], [query, key, value], options); }
  }

  class TransformerEncoderLayer extends withCache(withCalls(withBlockConfig(Remote), 'TransformerEncoderLayer'), 'TransformerEncoderLayer') {
    /** @param {import('./index').TransformerLayerOptions} options */
    constructor(options) {
      const cfg = blockConfig('TransformerEncoderLayer', options);
      super(cfg, 'TransformerEncoderLayer', ['create', 'TransformerEncoderLayer', blockOptions(cfg)]);
    }
    forward(src, options) { return this[FORWARD](['src'], [src], options); }
  }

  class TransformerDecoderLayer extends withCache(withCalls(withBlockConfig(Remote), 'TransformerDecoderLayer'), 'TransformerDecoderLayer') {
    /** @param {import('./index').TransformerLayerOptions} options */
    constructor(options) {
      const cfg = blockConfig('TransformerDecoderLayer', options);
      super(cfg, 'TransformerDecoderLayer', ['create', 'TransformerDecoderLayer', blockOptions(cfg)]);
    }
    forward(tgt, memory, options) { return this[FORWARD](['tgt', 'memory'], [tgt, memory], options); }
  }

  class LayerNorm extends withCalls(withNormConfig(Remote), 'LayerNorm') {
    /** @param {import('./index').LayerNormOptions} options */
    constructor(options) {
      const cfg = normConfig(options);
      const { normalizedShape, eps, elementwiseAffine, bias } = cfg;
      super(cfg, 'LayerNorm', ['create', 'LayerNorm', { normalizedShape: [...normalizedShape], eps, elementwiseAffine, bias }]);
    }
    forward(input, options) { return this[FORWARD](['input'], [input], options); }
  }

  return { MultiHeadAttention, TransformerEncoderLayer, TransformerDecoderLayer, LayerNorm };
}

/**
 * Starts a worker and loads the runtime in it. Not memoized: each call is a
 * new worker (terminate() it when done). Options as init() from 'mha-wasm',
 * except locateFile (a function cannot reach a worker: use baseUrl or urls),
 * plus workerUrl: where bindings/worker-host.js is served from.
 * @param {import('./worker').WorkerInitOptions} [options]
 * @returns {Promise<import('./worker').WorkerMha>}
 */
export async function init(options = {}) {
  const o = optionsSnapshot('init (mha-wasm/worker) options', options);
  const opts = initOptions(o, { functions: false, extra: ['workerUrl'] });
  const { workerUrl } = o;
  if (workerUrl !== undefined && typeof workerUrl !== 'string' && !(workerUrl instanceof URL))
    throw new TypeError(`init (mha-wasm/worker): workerUrl must be a string or URL, got ${describe(workerUrl)}`);
  const url = workerUrl === undefined ? new URL('./worker-host.js', import.meta.url) : new URL(String(workerUrl), typeof location === 'object' ? location.href : import.meta.url);
  const conn = await startWorker(url);
  try {
    await conn.ready;
    const info = await conn.call('init', [{ threads: opts.threads, baseUrl: opts.base.href, urls: opts.urls }]);
    return Object.freeze({
      ...info,
      ...makeWorkerClasses(conn),
      /** scaledDotProductAttention in the worker; options.transfer as in forward(). */
      async scaledDotProductAttention(q, k, v, options) {
        const what = 'scaledDotProductAttention';
        const { args, transfer } = tensorCall(what, ['query', 'key', 'value'], [q, k, v], optionsSnapshot(`${what} options`, options));
        return conn.call('sdpa', args, transfer, what);
      },
      /** Diagnostics from the worker: wasm heap size, live layers. */
      stats: () => conn.call('stats', []),
      /** Stops the worker. Pending and later calls reject. */
      terminate: () => conn.terminate(),
    });
  } catch (e) {
    conn.terminate();
    throw e;
  }
}
