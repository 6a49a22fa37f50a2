// KVCache: the keys and values of earlier positions for incremental decoding,
// made by layer.createCache() of MultiHeadAttention and the Transformer blocks.
// One per runtime: makeKVCache(rt) returns the class and the helpers the layers use.
import { Native, live } from './native.js';
import { describe, plainObject, positiveInt } from './validate.js';

/** createCache's options: { maxLength, batch = 1 }. */
export function cacheOptions(what, options) {
  if (options === undefined || options === null) throw new TypeError(`${what}: options { maxLength } are required`);
  const o = plainObject(`${what} options`, options, ['maxLength', 'batch']);
  return { maxLength: positiveInt('maxLength', o.maxLength), batch: o.batch === undefined ? 1 : positiveInt('batch', o.batch) };
}

const TOKEN = Symbol('KVCache');

export function makeKVCache(rt) {
  const owners = new WeakMap();  // cache -> the layer that made it

  /** Keys and values of earlier positions, for incremental decoding. Made by layer.createCache(). */
  class KVCache extends Native {
    #batch;
    #maxLength;
    constructor(token, layer, handle, batch, maxLength) {
      if (token !== TOKEN) throw new TypeError('KVCache: create a cache with layer.createCache({ maxLength, batch })');
      super(rt, 'KVCache', handle, 'cache');
      owners.set(this, layer);
      this.#batch = batch;
      this.#maxLength = maxLength;
    }
    get batch() { return this.#batch; }
    get maxLength() { return this.#maxLength; }
    /** Positions held (0 after reset()). */
    get length() { return live(this, 'length').length(); }
    /** Empties the cache for a new sequence (keeps its memory). */
    reset() { live(this, 'reset').reset(); }
  }

  /** A new cache for layer (width: its embedding size); what names the call in errors. */
  function createCache(layer, what, width, options) {
    const { maxLength, batch } = cacheOptions(what, options);
    const handle = new rt.mod.Cache(batch, maxLength, width);
    const st = handle.status();
    if (st !== 0) {
      handle.delete();
      rt.check(st, what, () => 2 * batch * maxLength * width * 4);
    }
    return new KVCache(TOKEN, layer, handle, batch, maxLength);
  }

  /**
   * The Embind cache of options.cache for layer's forward (null when there is
   * none) and the positions it already holds; checks that L more fit.
   */
  function cacheFor(layer, what, cache, B, L) {
    if (cache === undefined || cache === null) return { handle: null, past: 0 };
    if (!(cache instanceof KVCache)) throw new TypeError(`${what}: options.cache must be a KVCache from layer.createCache(), got ${describe(cache)}`);
    if (owners.get(cache) !== layer) throw new TypeError(`${what}: options.cache was created by another layer; each layer needs its own cache`);
    if (cache.disposed) throw new Error(`${what}: options.cache has been disposed`);
    if (B !== cache.batch) throw new RangeError(`${what}: the input has batch size ${B} but options.cache was created for batch ${cache.batch}`);
    const handle = live(cache, 'forward'), past = handle.length();
    if (past + L > cache.maxLength)
      throw new RangeError(`${what}: options.cache holds ${past} of its maxLength ${cache.maxLength} positions; ${L} more do not fit ` +
        '(call cache.reset() for a new sequence, or create the cache with a larger maxLength)');
    return { handle, past };
  }

  return { KVCache, createCache, cacheFor };
}
