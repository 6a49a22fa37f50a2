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

const ERRORS = { TypeError, RangeError, Error };
const CACHE_TOKEN = Symbol('KVCache');
// The worker classes' shared internals, out of users' sight.
const REMOTE = Symbol('remote'), FORWARD = Symbol('forward');

/** A worker with request/response messaging. Node: worker_threads, unref'd while idle. */
async function startWorker(url) {
  let w, on;
  if (isNode) {
    const { Worker } = await import('node:worker_threads');
    // The parent's flags, minus one that only applies to `node -e` and would stop the worker.
    w = new Worker(url, { execArgv: process.execArgv.filter((a) => !a.startsWith('--input-type')) });
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
  const pending = new Map();
  let nextId = 1, dead = null, readyResolve, readyReject;
  const ready = new Promise((res, rej) => { readyResolve = res; readyReject = rej; });
  const idle = () => { if (isNode && pending.size === 0) w.unref(); };
  const die = (why) => {
    if (dead) return;
    dead = new Error(`mha-wasm/worker: the worker stopped (${why})`);
    readyReject(dead);
    for (const p of pending.values()) p.reject(dead);
    pending.clear();
    idle();
  };
  on('message', (m) => {
    if (m && m.ready) return readyResolve();
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    idle();
    if (m.ok) p.resolve(m.value);
    else p.reject(new (ERRORS[m.error.name] || Error)(m.error.message));
  });
  on('error', (e) => die(e ? e.message : `the worker script ${url} failed to load or threw`));
  on('messageerror', (e) => die(e.message));
  on('exit', (why) => die(why));

  return {
    ready,
    get dead() { return dead; },
    /** Sends one request; transfer: ArrayBuffers to move. */
    call(op, args, transfer = [], what = op) {
      if (dead) return Promise.reject(dead);
      const id = nextId++;
      return new Promise((resolve, reject) => {
        try {
          w.postMessage({ id, op, args }, transfer);
        } catch (e) {
          throw new TypeError(`${what}: the arguments cannot be sent to the worker (${e.name}: ${e.message})`);
        }
        pending.set(id, { resolve, reject });
        if (isNode && pending.size === 1) w.ref();
      });
    },
    terminate() {
      die('terminate() was called');
      w.terminate();
    },
  };
}

/**
 * Typed arrays in args (one level into tensors and option objects) are sent as
 * copies of just their elements, or, with transfer, by moving their buffers.
 */
function marshal(value, transfer, list) {
  if (ArrayBuffer.isView(value)) {
    const whole = value.byteOffset === 0 && value.byteLength === value.buffer.byteLength;
    if (transfer && whole && value.buffer instanceof ArrayBuffer) {
      if (!list.includes(value.buffer)) list.push(value.buffer);
      return value;
    }
    return whole && !transfer ? value : value.slice();  // a view of a larger buffer would clone all of it
  }
  if (value && typeof value === 'object' && !Array.isArray(value) && Object.getPrototypeOf(value) === Object.prototype) {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = ArrayBuffer.isView(v) ? marshal(v, transfer, list) :
      v && typeof v === 'object' && ArrayBuffer.isView(v.data) ? { ...v, data: marshal(v.data, transfer, list) } : v;
    return out;
  }
  return value;
}

/**
 * The tensors and options of a forward-style call, marshalled: options.transfer
 * (boolean) decides copy or move and is not sent. Returns { args, list } with
 * the buffers to transfer.
 */
function tensorCall(what, tensors, options) {
  const { transfer: t, ...rest } = plainObject(`${what} options`, options, Object.keys(options ?? {}));
  const transfer = bool('options.transfer', t, false);
  const list = [];
  return { args: [...tensors.map((x) => marshal(x, transfer, list)), marshal(rest, transfer, list)], list };
}

function makeWorkerClasses(conn) {
  // An object dropped without dispose() is freed in the worker. dispose() unregisters.
  const registry = new FinalizationRegistry((id) => { if (!conn.dead) conn.call('dispose', [id]).catch(() => {}); });
  const ids = new WeakMap();  // object -> its id in the worker
  const cacheLengths = new WeakMap();  // KVCache -> its length after the last completed call
  let nextId = 1;

  /** An object that lives in the worker: create, calls by id, dispose. */
  class Remote {
    #name;
    #noun;
    #disposed = false;
    /** create: [op, ...args] that makes it in the worker, after the id. */
    constructor(name, create, noun = 'layer') {
      if (conn.dead) throw conn.dead;
      const id = nextId++;
      ids.set(this, id);
      this.#name = name;
      this.#noun = noun;
      // A failure here (out of memory) is reported by the object's next call.
      conn.call(create[0], [id, ...create.slice(1)]).catch(() => {});
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
      const transfer = bool('setWeights options.transfer', plainObject('setWeights options', options, ['transfer']).transfer, false);
      const list = [];
      return this[REMOTE]('setWeights', [marshal(weights, transfer, list)], list);
    }

    /** The tensors and options of forward; a KV cache in options goes by its id. */
    async [FORWARD](tensors, options) {
      let opts = options;
      if (options && typeof options === 'object' && options.cache !== undefined && options.cache !== null) {
        if (!(options.cache instanceof KVCache))
          throw new TypeError(`${name}.forward: options.cache must be a KVCache from layer.createCache(), got ${describe(options.cache)}`);
        opts = { ...options, cache: { cacheId: ids.get(options.cache) } };
      }
      const { args, list } = tensorCall('forward', tensors, opts);
      const { result, cacheLength } = await this[REMOTE]('forward', args, list);
      if (cacheLength !== undefined) cacheLengths.set(options.cache, cacheLength);
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
      super(layerConfig(options), 'MultiHeadAttention', ['create', 'MultiHeadAttention', options]);
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
    forward(query, key, value, options) { return this[FORWARD]([query, key, value], options); }
  }

  class TransformerEncoderLayer extends withCache(withCalls(withBlockConfig(Remote), 'TransformerEncoderLayer'), 'TransformerEncoderLayer') {
    /** @param {import('./index').TransformerLayerOptions} options */
    constructor(options) {
      super(blockConfig('TransformerEncoderLayer', options), 'TransformerEncoderLayer', ['create', 'TransformerEncoderLayer', options]);
    }
    forward(src, options) { return this[FORWARD]([src], options); }
  }

  class TransformerDecoderLayer extends withCache(withCalls(withBlockConfig(Remote), 'TransformerDecoderLayer'), 'TransformerDecoderLayer') {
    /** @param {import('./index').TransformerLayerOptions} options */
    constructor(options) {
      super(blockConfig('TransformerDecoderLayer', options), 'TransformerDecoderLayer', ['create', 'TransformerDecoderLayer', options]);
    }
    forward(tgt, memory, options) { return this[FORWARD]([tgt, memory], options); }
  }

  class LayerNorm extends withCalls(withNormConfig(Remote), 'LayerNorm') {
    /** @param {import('./index').LayerNormOptions} options */
    constructor(options) {
      super(normConfig(options), 'LayerNorm', ['create', 'LayerNorm', options]);
    }
    forward(input, options) { return this[FORWARD]([input], options); }
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
  const opts = initOptions(options, { functions: false, extra: ['workerUrl'] });
  const { workerUrl } = options ?? {};
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
        const { args, list } = tensorCall('scaledDotProductAttention', [q, k, v], options);
        return conn.call('sdpa', args, list, 'scaledDotProductAttention');
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
