// The MultiHeadAttention class (torch.nn.MultiheadAttention, batch_first=True,
// dropout 0) around the Embind `Layer`.
import { attnMask, keyPaddingMask } from './masks.js';
import { NativeLayer, live } from './native.js';
import {
  bool, describe, expectDim, fmtDims, isTypedArray, plainObject, positiveInt, product, readEntries, sameDims, snapshotView, tensor,
  typedArrayKind, typedArrayLength,
} from './validate.js';

const CTOR_OPTIONS = ['embedDim', 'numHeads', 'kdim', 'vdim', 'bias'];
const FORWARD_OPTIONS = ['attnMask', 'keyPaddingMask', 'isCausal', 'needWeights', 'averageWeights', 'cache'];
const WEIGHT_NAMES = ['inProjWeight', 'qProjWeight', 'kProjWeight', 'vProjWeight', 'inProjBias', 'outProjWeight', 'outProjBias'];
// PyTorch's state_dict names (what parseSafetensors returns for a saved
// nn.MultiheadAttention) are accepted as well as the camelCase ones.
const TORCH_NAMES = {
  in_proj_weight: 'inProjWeight', q_proj_weight: 'qProjWeight', k_proj_weight: 'kProjWeight', v_proj_weight: 'vProjWeight',
  in_proj_bias: 'inProjBias', 'out_proj.weight': 'outProjWeight', 'out_proj.bias': 'outProjBias',
};
const TORCH_OF = Object.fromEntries(Object.entries(TORCH_NAMES).map(([t, c]) => [c, t]));
const camel = (s) => s.replace(/[._]([a-z])/g, (_, c) => c.toUpperCase());

/** { camelCaseName: value } from camelCase or PyTorch names; the given name is kept for messages. */
function canonicalWeights(given) {
  const weights = readEntries('setWeights: weights', given, 'an object of Float32Arrays or tensors');
  const out = Object.create(null), givenAs = Object.create(null);
  for (const k of Object.keys(weights)) {
    const name = WEIGHT_NAMES.includes(k) ? k : TORCH_NAMES[k];
    if (name === undefined) {
      if (k === 'bias_k' || k === 'bias_v')
        throw new TypeError(`setWeights: "${k}" comes from add_bias_kv=True, which is not supported`);
      const guess = WEIGHT_NAMES.find((n) => n.toLowerCase() === camel(k).toLowerCase());
      const hint = guess ? ` (did you mean ${guess}?)` : '';
      throw new TypeError(`setWeights: unknown weight "${k}"${hint}; expected ${WEIGHT_NAMES.join(', ')} ` +
        `or PyTorch's ${Object.keys(TORCH_NAMES).join(', ')}`);
    }
    if (givenAs[name] !== undefined)
      throw new TypeError(`setWeights: "${givenAs[name]}" and "${k}" are the same weight; give it once`);
    givenAs[name] = k;
    out[name] = weights[k];
  }
  return { weights: out, givenAs };
}

/** Checks constructor options; returns the frozen configuration. Shared with the worker API. */
export function layerConfig(options) {
  if (options === undefined || options === null)
    throw new TypeError('MultiHeadAttention: options { embedDim, numHeads } are required');
  const o = plainObject('MultiHeadAttention options', options, CTOR_OPTIONS);
  const embedDim = positiveInt('embedDim', o.embedDim);
  const numHeads = positiveInt('numHeads', o.numHeads);
  if (embedDim % numHeads !== 0)
    throw new RangeError(`embedDim must be divisible by numHeads, got embedDim ${embedDim} and numHeads ${numHeads}`);
  const kdim = o.kdim === undefined ? embedDim : positiveInt('kdim', o.kdim);
  const vdim = o.vdim === undefined ? embedDim : positiveInt('vdim', o.vdim);
  const bias = bool('bias', o.bias, true);
  return Object.freeze({ embedDim, numHeads, kdim, vdim, bias, headDim: embedDim / numHeads });
}

/** A KV cache holds self-attention's keys and values: kdim and vdim must be embedDim. Shared with the worker API. */
export function checkCacheable({ kdim, vdim, embedDim }) {
  if (kdim !== embedDim || vdim !== embedDim)
    throw new TypeError('MultiHeadAttention.createCache: a KV cache is for self-attention, which needs kdim == vdim == embedDim');
}

/** caches: makeKVCache(rt), shared with the other layer classes of the runtime. */
export function makeMultiHeadAttention(rt, caches) {
  class MultiHeadAttention extends NativeLayer {
    #cfg;
    #hasWeights = false;

    /** @param {import('./index').MultiHeadAttentionOptions} options */
    constructor(options) {
      const cfg = layerConfig(options);
      rt.checkAlive();
      super(cfg, rt, 'MultiHeadAttention', new rt.mod.Layer(cfg.embedDim, cfg.numHeads, cfg.kdim, cfg.vdim, cfg.bias));
      this.#cfg = cfg;
    }

    /**
     * Copies weights in: the PyTorch state_dict, by camelCase or PyTorch names
     * (in_proj_weight, out_proj.weight, ...), e.g. parseSafetensors(bytes).
     * @param {import('./index').MultiHeadAttentionWeights} weights
     */
    setWeights(weights) {
      const handle = live(this, 'setWeights');
      const { embedDim: E, kdim, vdim, bias } = this.#cfg;
      const { weights: w, givenAs } = canonicalWeights(weights);
      const label = (n) => givenAs[n] ?? n;
      const packed = w.inProjWeight !== undefined;
      const separate = ['qProjWeight', 'kProjWeight', 'vProjWeight'].filter((k) => w[k] !== undefined);
      if (packed && separate.length)
        throw new TypeError(`setWeights: give either inProjWeight or qProjWeight/kProjWeight/vProjWeight, not both (got ${label('inProjWeight')} and ${separate.map(label).join(', ')})`);
      if (packed && (kdim !== E || vdim !== E))
        throw new TypeError(`setWeights: inProjWeight is only used when kdim == vdim == embedDim (here kdim ${kdim}, vdim ${vdim}, embedDim ${E}); give qProjWeight, kProjWeight and vProjWeight`);
      const shapes = {
        inProjWeight: [3 * E, E], qProjWeight: [E, E], kProjWeight: [E, kdim], vProjWeight: [E, vdim],
        inProjBias: [3 * E], outProjWeight: [E, E], outProjBias: [E],
      };
      const needed = [...(packed ? ['inProjWeight'] : ['qProjWeight', 'kProjWeight', 'vProjWeight']), 'outProjWeight',
        ...(bias ? ['inProjBias', 'outProjBias'] : [])];
      const arrays = {};
      for (const name of needed) {
        const v = w[name];
        const dims = shapes[name];
        if (v === undefined || v === null)
          throw new TypeError(`setWeights: missing ${name} (PyTorch ${TORCH_OF[name]}: a Float32Array of ${product(dims)} = ${fmtDims(dims)} floats)`);
        arrays[name] = weightArray(label(name), v, dims);
      }
      if (!bias)
        for (const name of ['inProjBias', 'outProjBias'])
          if (w[name] !== undefined && w[name] !== null)
            throw new TypeError(`setWeights: ${label(name)} given, but the layer was created with bias: false`);
      const names = Object.keys(arrays);
      const st = rt.stage(names.map((n) => arrays[n]), 'setWeights');
      try {
        const p = (n) => (names.includes(n) ? st.at(names.indexOf(n)) : 0);
        const s = handle.setWeights(p('inProjWeight'), p('qProjWeight'), p('kProjWeight'), p('vProjWeight'),
          p('inProjBias'), p('outProjWeight'), p('outProjBias'));
        rt.check(s, 'setWeights', () => handle.lastRequestBytes());
        this.#hasWeights = true;
      } finally {
        rt.free(st.ptr);
      }
    }

    /**
     * A KV cache for incremental self-attention: forward(newPositions, null, null, { cache }) appends
     * their keys and values, and they attend over every cached position.
     * @param {import('./index').CacheOptions} options { maxLength, batch = 1 }
     */
    createCache(options) {
      live(this, 'createCache');
      checkCacheable(this.#cfg);
      return caches.createCache(this, 'MultiHeadAttention.createCache', this.#cfg.embedDim, options);
    }

    /**
     * @param {import('./index').Tensor} query [B, Lq, E] or [Lq, E]
     * @param {import('./index').Tensor | null} [key] [B, Lk, kdim]; omitted: self-attention
     * @param {import('./index').Tensor | null} [value] [B, Lk, vdim]
     * @param {import('./index').ForwardOptions} [options]
     */
    forward(query, key, value, options) {
      const handle = live(this, 'forward');
      const { embedDim: E, numHeads: H, kdim, vdim } = this.#cfg;
      if (!this.#hasWeights) throw new Error('MultiHeadAttention.forward: weights are not set; call setWeights() first');
      const q = tensor('query', query, { ranks: [2, 3], shapeHint: `dims [B, Lq, ${E}] or [Lq, ${E}]` });
      const batched = q.dims.length === 3;
      const nb = batched ? 1 : 0;
      expectDim('query', q.dims, nb + 1, E, 'embedDim');
      const B = batched ? q.dims[0] : 1, Lq = q.dims[nb];
      const noKey = key === undefined || key === null, noValue = value === undefined || value === null;
      if (noKey !== noValue)
        throw new TypeError(`forward: key and value must both be given or both be omitted (self-attention), got key ${describe(key)} and value ${describe(value)}`);
      let k = q, v = q;
      if (!noKey) {
        const rank = batched ? 'dims [B, Lk, ' : 'dims [Lk, ';
        k = tensor('key', key, { ranks: [q.dims.length], shapeHint: `${rank}${kdim}] (the same rank as query)` });
        v = tensor('value', value, { ranks: [q.dims.length], shapeHint: `${rank}${vdim}] (the same rank as query)` });
        if (batched) {
          expectDim('key', k.dims, 0, B, 'the batch size of query');
          expectDim('value', v.dims, 0, B, 'the batch size of query');
        }
        expectDim('key', k.dims, nb + 1, kdim, 'kdim');
        expectDim('value', v.dims, nb + 1, vdim, 'vdim');
        expectDim('value', v.dims, nb, k.dims[nb], 'the sequence length of key');
      } else if (kdim !== E || vdim !== E) {
        throw new TypeError(`forward: key and value are required when kdim or vdim differ from embedDim (kdim ${kdim}, vdim ${vdim}, embedDim ${E})`);
      }
      const o = plainObject('forward options', options, FORWARD_OPTIONS);
      if (o.cache !== undefined && o.cache !== null && !noKey)
        throw new TypeError('MultiHeadAttention.forward: options.cache is for self-attention; omit key and value (the cache holds the earlier ones)');
      const cache = caches.cacheFor(this, 'MultiHeadAttention.forward', o.cache, B, Lq);
      const Lk = cache.past + k.dims[nb];
      const mask = attnMask('options.attnMask', o.attnMask, {
        Lq, Lk, fullDims: batched ? [B, H, Lq, Lk] : [H, Lq, Lk], altDims: batched ? [[B * H, Lq, Lk]] : [],
      });
      const kpm = keyPaddingMask('options.keyPaddingMask', o.keyPaddingMask, { B, Lk, batched });
      const causal = bool('options.isCausal', o.isCausal, false);
      const needWeights = bool('options.needWeights', o.needWeights, false);
      const average = bool('options.averageWeights', o.averageWeights, true);

      // One copy of each distinct input array (self-attention copies once).
      const same = (a, b) => a.buffer === b.buffer && a.byteOffset === b.byteOffset && a.length === b.length;
      const inputs = [q.data];
      for (const d of [k.data, v.data]) if (!inputs.some((x) => same(x, d))) inputs.push(d);
      const outN = B * Lq * E, wN = needWeights ? B * (average ? 1 : H) * Lq * Lk : 0;
      const parts = [...inputs, mask.data, kpm, outN * 4, wN * 4];
      const n = inputs.length;
      const st = rt.stage(parts, 'MultiHeadAttention.forward');
      try {
        const ptrOf = (d) => st.at(inputs.findIndex((x) => same(x, d)));
        const s = handle.forward(B, Lq, Lk, ptrOf(q.data), ptrOf(k.data), ptrOf(v.data), mask.kind,
          mask.data ? st.at(n) : 0, mask.broadcast, kpm ? st.at(n + 1) : 0, causal, st.at(n + 2),
          needWeights ? st.at(n + 3) : 0, average, cache.handle);
        rt.check(s, 'MultiHeadAttention.forward', () => handle.lastRequestBytes());
        const output = { data: rt.readF32(st.at(n + 2), outN), dims: batched ? [B, Lq, E] : [Lq, E] };
        let w = null;
        if (needWeights) {
          const dims = average ? [Lq, Lk] : [H, Lq, Lk];
          w = { data: rt.readF32(st.at(n + 3), wN), dims: batched ? [B, ...dims] : dims };
        }
        return { output, weights: w };
      } finally {
        rt.free(st.ptr);
      }
    }
  }
  return MultiHeadAttention;
}

/** A weight as a validated Float32Array view of exactly dims' size; what: the call named in errors. */
export function weightArray(name, v, dims, what = 'setWeights') {
  const n = product(dims);
  let data;
  if (typedArrayKind(v) === 'Float32Array') {
    data = snapshotView(`${what}: ${name}`, v);
  } else {
    if (v && typeof v === 'object' && !isTypedArray(v) && 'data' in v && 'dims' in v) {
      const t = tensor(`${what}: ${name}`, v, { ranks: [dims.length], shapeHint: `dims ${fmtDims(dims)}` });
      if (!sameDims(t.dims, dims))
        throw new RangeError(`${what}: ${name} must have dims ${fmtDims(dims)}, got ${fmtDims(t.dims)}`);
      data = t.data;
    } else {
      throw new TypeError(`${what}: ${name} must be a Float32Array of ${n} = ${fmtDims(dims)} floats, got ${describe(v)}`);
    }
  }
  if (typedArrayLength(data) !== n)
    throw new RangeError(`${what}: ${name} must have ${n} = ${fmtDims(dims)} elements, got ${typedArrayLength(data)}`);
  return data;
}
