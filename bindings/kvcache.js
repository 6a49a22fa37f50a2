// KVCache: the keys and values of earlier positions for incremental decoding,
// made by layer.createCache() of MultiHeadAttention and the Transformer blocks.
// defineKVCache makes the class and the helpers the layer classes use where the
// call is made; cacheOps is what runs where the runtime is. A cache's buffers are
// allocated by its first forward (so creating one never fails for lack of memory,
// in either API; the first forward does).
import { MAX_HEAP, tooLarge } from './runtime.js';
import { describe, plainObject, positiveInt } from './validate.js';

/** createCache's options: { maxLength, batch = 1 }. */
function cacheOptions(what, options) {
  if (options === undefined || options === null) throw new TypeError(`${what}: options { maxLength } are required`);
  const o = plainObject(`${what} options`, options, ['maxLength', 'batch']);
  return Object.freeze({ maxLength: positiveInt('maxLength', o.maxLength), batch: o.batch === undefined ? 1 : positiveInt('batch', o.batch) });
}

/**
 * Rows a cache holds: maxLength, or for a sliding-window layer a quarter more, so
 * that the rows it keeps move to the front once every maxLength / 4 positions
 * (mha::KVCache::rows_for).
 */
const cacheRows = (maxLength, window) => (window ? maxLength + Math.max(1, Math.floor(maxLength / 4)) : maxLength);
/** The bytes of a cache's keys and values: batch x rows x width floats each (width: all its layers'). */
export const cacheBytes = (maxLength, batch, width, window = 0) => 2 * batch * cacheRows(maxLength, window) * width * 4;

/** truncate's length, checked where the call is made and where the cache is (an op takes forged requests). */
function truncateLength(n) {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new (typeof n === 'number' ? RangeError : TypeError)(`KVCache.truncate: length must be an integer from 0 to the cache's length, got ${describe(n)}`);
}

const TOKEN = Symbol('KVCache');
const SET_LENGTH = Symbol('setLength');

/** The class and the layers' helpers over a backend. ctx: { backend, Native, live } (api.js). */
export function defineKVCache({ backend, Native, live }) {
  const owners = new WeakMap();  // cache -> the layer that made it

  /** Keys and values of earlier positions, for incremental decoding. Made by layer.createCache(). */
  class KVCache extends Native {
    #batch;
    #maxLength;
    #length = 0;
    constructor(token, layer, cfg) {
      if (token !== TOKEN) throw new TypeError('KVCache: create a cache with layer.createCache({ maxLength, batch })');
      super('KVCache', 'KVCache', cfg, 'cache');
      owners.set(this, layer);
      this.#batch = cfg.batch;
      this.#maxLength = cfg.maxLength;
    }
    get batch() { return this.#batch; }
    get maxLength() { return this.#maxLength; }
    /** Positions held after the last completed forward() or reset() (in a worker, as of the last answer). */
    get length() {
      live(this, 'length');
      return this.#length;
    }
    [SET_LENGTH](n) { this.#length = n; }
    /** Empties the cache for a new sequence (keeps its memory). */
    reset() {
      return backend.run(() => backend.then(backend.call('KVCache.reset', [live(this, 'reset')], { what: 'KVCache.reset' }), () => {
        this.#length = 0;
      }));
    }
    /**
     * Keeps the first `length` positions, as if the later ones had never been added: the next
     * forward continues at position `length` (a chat whose last answer the template writes as
     * other tokens keeps what comes before it). A decoder layer's projected memory stays (so
     * truncate(0) is not reset() there). A sliding-window cache that has let go of its first
     * positions keeps all or none of them.
     */
    truncate(length) {
      return backend.run(() => {
        const id = live(this, 'truncate');
        truncateLength(length);  // here too: a worker's postMessage would refuse some values by a name of its own
        return backend.then(backend.call('KVCache.truncate', [id, length], { what: 'KVCache.truncate' }), () => {
          this.#length = length;
        });
      });
    }
  }

  return {
    KVCache,
    /** A new cache for layer (width: its model size); what names the call in errors. */
    create(layer, what, width, options, window = 0) {
      const { maxLength, batch } = cacheOptions(what, options);
      const bytes = cacheBytes(maxLength, batch, width, window);
      if (!(bytes < MAX_HEAP)) throw tooLarge(what, bytes, 'working memory', true);
      return new KVCache(TOKEN, layer, { maxLength, batch, width, window, owner: live(layer, 'createCache') });
    },
    /**
     * options.cache of a forward of layer with batch B, checked: null when there
     * is none, else { cache, id }.
     */
    use(layer, what, cache, B) {
      if (cache === undefined || cache === null) return null;
      if (!(cache instanceof KVCache)) throw new TypeError(`${what}: options.cache must be a KVCache from layer.createCache(), got ${describe(cache)}`);
      if (owners.get(cache) !== layer) throw new TypeError(`${what}: options.cache was created by another layer; each layer needs its own cache`);
      if (cache.disposed) throw new Error(`${what}: options.cache has been disposed`);
      if (B !== cache.batch) throw new RangeError(`${what}: the input has batch size ${B} but options.cache was created for batch ${cache.batch}`);
      return { cache, id: live(cache, 'forward') };
    },
    /** The user's result of a forward op's answer { result, cacheLength }, updating the cache's length. */
    after(c, answer) {
      return backend.then(answer, ({ result, cacheLength }) => {
        if (c) c.cache[SET_LENGTH](cacheLength);
        return result;
      });
    },
  };
}

/** What runs where the runtime is. ctx: { rt, get(id, kind) } (ops.js). */
export function cacheOps({ rt, get, kindOf }) {
  const ownerKind = (id) => kindOf(id) ?? 'MultiHeadAttention';
  return {
    KVCache(given) {
      const { batch, maxLength } = cacheOptions('createCache', { batch: given.batch, maxLength: given.maxLength });
      const kind = ownerKind(given.owner), owner = get(given.owner, kind), { embedDim, kdim, vdim } = owner.cfg;
      // A model's cache is one per block, each cacheWidth wide.
      const width = (owner.cfg.cacheWidth ?? embedDim) * (kind === 'Model' ? owner.cfg.numLayers : 1), window = owner.cfg.slidingWindow ?? 0;
      if (given.width !== width || given.window !== window || kdim !== embedDim || vdim !== embedDim)
        throw new RangeError('createCache: the cache does not match its layer');
      const cfg = { batch, maxLength, width, window, owner: given.owner };
      const handle = kind === 'Model'
        ? rt.withRecord('ModelCacheConfig', { batch, capacity: maxLength }, (p) => new rt.mod.ModelCache(owner.handle, p), 'createCache')
        : rt.withRecord('CacheConfig', { batch, capacity: maxLength, width, sliding: window > 0 }, (p) => new rt.mod.Cache(p), 'createCache');
      return { handle, cfg };
    },

    'KVCache.reset'(id) {
      get(id, 'KVCache').handle.reset();
    },

    'KVCache.truncate'(id, n) {
      const handle = get(id, 'KVCache').handle;
      truncateLength(n);
      const held = handle.length();
      if (n > held) throw new RangeError(`KVCache.truncate: the cache holds ${held} positions; it cannot keep ${n}`);
      if (!handle.truncate(n))
        throw new RangeError(`KVCache.truncate: this sliding-window cache has let go of its first positions (it holds the last ones of ${held}); it can keep all of them or none`);
    },

    /**
     * The cache cacheId (0: none) for a forward of layer ownerId adding L positions
     * with batch B: { handle, past, length() }. Checks the owner and that L more fit,
     * and allocates the buffers on first use.
     */
    cacheFor(cacheId, ownerId, what, L, B) {
      if (!cacheId) return { handle: null, past: 0, length: () => undefined };
      const c = get(cacheId, 'KVCache');
      if (c.cfg.owner !== ownerId) throw new TypeError(`${what}: options.cache was created by another layer; each layer needs its own cache`);
      if (c.cfg.batch !== B) throw new RangeError(`${what}: the input has batch size ${B} but options.cache was created for batch ${c.cfg.batch}`);
      const handle = c.handle, past = handle.length(), { maxLength, window } = c.cfg;
      const before = Math.min(window - 1, past);  // the earlier positions the new ones can see
      if (window && L + before > maxLength)
        throw new RangeError(`${what}: options.cache keeps the last ${maxLength} positions, but ${L} new ones and the ${before} before them ` +
          `(slidingWindow ${window}) need ${L + before}; give fewer positions a step, or create the cache with a larger maxLength`);
      if (!window && past + L > maxLength)
        throw new RangeError(`${what}: options.cache holds ${past} of its maxLength ${maxLength} positions; ${L} more do not fit ` +
          '(call cache.reset() for a new sequence, or create the cache with a larger maxLength)');
      rt.check(handle.ready(), `${what}: options.cache`, () => handle.requestBytes());
      return { handle, past, length: () => handle.length() };
    },
  };
}
