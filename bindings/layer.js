// MultiHeadAttention (torch.nn.MultiheadAttention, batch_first=True, dropout 0).
// defineMultiHeadAttention makes the class users see, over any backend: it reads
// and checks the arguments where the call is made. mhaOps are what runs where the
// runtime is: the checks that need its state (a cache's length, weights set), the
// copies into wasm memory and the call into the Embind `Layer`.
import { maskFields, maskLayout, paddingLayout, readMask, readPadding } from './masks.js';
import { withLayerConfig } from './layer-config.js';
import { recordBytes } from './runtime.js';
import {
  bool, describe, expectArray, expectCounts, expectDim, fmtDims, isTypedArray, plainObject, positiveInt, product, readEntries, sameDims, snapshotView, tensor,
  typedArrayKind, typedArrayLength,
} from './validate.js';

const CTOR_OPTIONS = ['embedDim', 'numHeads', 'kdim', 'vdim', 'bias'];
const FORWARD_OPTIONS = ['attnMask', 'keyPaddingMask', 'isCausal', 'needWeights', 'averageWeights', 'cache', 'transfer'];
const WEIGHT_NAMES = ['inProjWeight', 'qProjWeight', 'kProjWeight', 'vProjWeight', 'inProjBias', 'outProjWeight', 'outProjBias'];
// PyTorch's state_dict names (what parseSafetensors returns for a saved
// nn.MultiheadAttention) are accepted as well as the camelCase ones.
const TORCH_NAMES = {
  in_proj_weight: 'inProjWeight', q_proj_weight: 'qProjWeight', k_proj_weight: 'kProjWeight', v_proj_weight: 'vProjWeight',
  in_proj_bias: 'inProjBias', 'out_proj.weight': 'outProjWeight', 'out_proj.bias': 'outProjBias',
};
const TORCH_OF = Object.fromEntries(Object.entries(TORCH_NAMES).map(([t, c]) => [c, t]));
// camelCase name -> the MhaWeights record field (abi.js).
const RECORD_FIELD = {
  inProjWeight: 'in_proj_weight', qProjWeight: 'q_proj_weight', kProjWeight: 'k_proj_weight', vProjWeight: 'v_proj_weight',
  inProjBias: 'in_proj_bias', outProjWeight: 'out_proj_weight', outProjBias: 'out_proj_bias',
};
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

/** Checks constructor options; returns the frozen configuration. */
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

/** The setWeights arrays, checked against the configuration: { recordField: Float32Array view }. */
function readWeights(cfg, weights) {
  const { embedDim: E, kdim, vdim, bias } = cfg;
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
    arrays[RECORD_FIELD[name]] = weightArray(label(name), v, dims);
  }
  if (!bias)
    for (const name of ['inProjBias', 'outProjBias'])
      if (w[name] !== undefined && w[name] !== null)
        throw new TypeError(`setWeights: ${label(name)} given, but the layer was created with bias: false`);
  return arrays;
}

/** A KV cache holds self-attention's keys and values: kdim and vdim must be embedDim. */
function checkCacheable({ kdim, vdim, embedDim }) {
  if (kdim !== embedDim || vdim !== embedDim)
    throw new TypeError('MultiHeadAttention.createCache: a KV cache is for self-attention, which needs kdim == vdim == embedDim');
}

/** forward's arguments read and checked against the configuration (all but what depends on a cache's length). */
function readForward(cfg, query, key, value, options) {
  const { embedDim: E, kdim, vdim } = cfg;
  const q = tensor('query', query, { ranks: [2, 3], shapeHint: `dims [B, Lq, ${E}] or [Lq, ${E}]` });
  const batched = q.dims.length === 3;
  const nb = batched ? 1 : 0;
  expectDim('query', q.dims, nb + 1, E, 'embedDim');
  const B = batched ? q.dims[0] : 1, Lq = q.dims[nb];
  const noKey = key === undefined || key === null, noValue = value === undefined || value === null;
  if (noKey !== noValue)
    throw new TypeError(`forward: key and value must both be given or both be omitted (self-attention), got key ${describe(key)} and value ${describe(value)}`);
  let k = null, v = null, Lkv = Lq;
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
    Lkv = k.dims[nb];
  } else if (kdim !== E || vdim !== E) {
    throw new TypeError(`forward: key and value are required when kdim or vdim differ from embedDim (kdim ${kdim}, vdim ${vdim}, embedDim ${E})`);
  }
  const o = plainObject('forward options', options, FORWARD_OPTIONS);
  if (o.cache !== undefined && o.cache !== null && !noKey)
    throw new TypeError('MultiHeadAttention.forward: options.cache is for self-attention; omit key and value (the cache holds the earlier ones)');
  return {
    B, Lq, Lkv, batched, q: q.data, k: k && k.data, v: v && v.data,
    attnMask: readMask('options.attnMask', o.attnMask), keyPaddingMask: readPadding('options.keyPaddingMask', o.keyPaddingMask),
    causal: bool('options.isCausal', o.isCausal, false), needWeights: bool('options.needWeights', o.needWeights, false),
    average: bool('options.averageWeights', o.averageWeights, true), cache: o.cache ?? null,
    transfer: bool('options.transfer', o.transfer, false),
  };
}

/** The public class over a backend. ctx: { backend, Native, live, caches } (api.js). */
export function defineMultiHeadAttention({ backend, Native, live, caches }) {
  class MultiHeadAttention extends withLayerConfig(Native) {
    #cfg;
    #weightsSent = false;  // setWeights succeeded (this thread) or was sent (a worker answers in order)

    /** @param {import('./index').MultiHeadAttentionOptions} options */
    constructor(options) {
      const cfg = layerConfig(options);
      const { embedDim, numHeads, kdim, vdim, bias } = cfg;
      super(cfg, 'MultiHeadAttention', 'MultiHeadAttention', { embedDim, numHeads, kdim, vdim, bias });
      this.#cfg = cfg;
    }

    /**
     * Copies weights in: the PyTorch state_dict, by camelCase or PyTorch names
     * (in_proj_weight, out_proj.weight, ...), e.g. parseSafetensors(bytes).
     * options.transfer: a worker may take the arrays' buffers instead of copying them.
     */
    setWeights(weights, options) {
      return backend.run(() => {
        const id = live(this, 'setWeights');
        const arrays = readWeights(this.#cfg, weights);
        const transfer = bool('options.transfer', plainObject('setWeights options', options, ['transfer']).transfer, false);
        const done = backend.call('MultiHeadAttention.setWeights', [id, arrays], { transfer, what: 'MultiHeadAttention.setWeights' });
        this.#weightsSent = true;
        return done;
      });
    }

    /**
     * A KV cache for incremental self-attention: forward(newPositions, null, null, { cache }) appends
     * their keys and values, and they attend over every cached position.
     */
    createCache(options) {
      live(this, 'createCache');
      checkCacheable(this.#cfg);
      return caches.create(this, 'MultiHeadAttention.createCache', this.#cfg.embedDim, options);
    }

    /**
     * query [B, Lq, E] or [Lq, E]; key [B, Lk, kdim] and value [B, Lk, vdim], or
     * omitted for self-attention. Returns { output, weights }.
     */
    forward(query, key, value, options) {
      return backend.run(() => {
        const id = live(this, 'forward');
        if (!this.#weightsSent) throw new Error('MultiHeadAttention.forward: weights are not set; call setWeights() first');
        const { cache, transfer, ...call } = readForward(this.#cfg, query, key, value, options);
        const c = caches.use(this, 'MultiHeadAttention.forward', cache, call.B);
        return caches.after(c, backend.call('MultiHeadAttention.forward', [id, call, c ? c.id : 0],
          { transfer, what: 'MultiHeadAttention.forward' }));
      });
    }
  }
  return MultiHeadAttention;
}

/** What runs where the runtime is. ctx: { rt, get(id, kind), cacheFor(id, what, L, B) } (ops.js). */
export function mhaOps({ rt, get, cacheFor }) {
  return {
    MultiHeadAttention(given) {
      const cfg = layerConfig(given);  // again: the op sizes everything from it
      const { embedDim, numHeads, kdim, vdim, bias } = cfg;
      return { handle: rt.withRecord('LayerConfig', { embed_dim: embedDim, num_heads: numHeads, kdim, vdim, bias },
        (p) => new rt.mod.Layer(p), 'new MultiHeadAttention'), cfg, hasWeights: false };
    },

    'MultiHeadAttention.setWeights'(id, arrays) {
      const layer = get(id, 'MultiHeadAttention'), what = 'setWeights';
      const names = Object.keys(arrays);
      const { embedDim: E, kdim, vdim } = layer.cfg;
      const sizes = { in_proj_weight: 3 * E * E, q_proj_weight: E * E, k_proj_weight: E * kdim, v_proj_weight: E * vdim,
        in_proj_bias: 3 * E, out_proj_weight: E * E, out_proj_bias: E };
      for (const n of names) {
        if (!Object.hasOwn(sizes, n)) throw new TypeError(`setWeights: unknown weight ${JSON.stringify(n)}`);
        expectArray(`setWeights: ${n}`, arrays[n], [Float32Array], sizes[n]);
      }
      const st = rt.stage([...names.map((n) => arrays[n]), RECORD_BYTES], what);
      try {
        const rec = st.at(names.length);
        const values = Object.fromEntries(Object.values(RECORD_FIELD).map((f) => [f, names.includes(f) ? st.at(names.indexOf(f)) : 0]));
        rt.writeRecord(rec, 'MhaWeights', values);
        rt.check(layer.handle.setWeights(rec), what, () => layer.handle.lastRequestBytes());
        layer.hasWeights = true;
      } finally {
        rt.free(st.ptr);
      }
    },

    'MultiHeadAttention.forward'(id, call, cacheId) {
      const layer = get(id, 'MultiHeadAttention'), what = 'MultiHeadAttention.forward';
      if (!layer.hasWeights) throw new Error('MultiHeadAttention.forward: weights are not set; call setWeights() first');
      const { embedDim: E, numHeads: H, kdim, vdim } = layer.cfg;
      const { B, Lq, Lkv, batched, needWeights, average } = call;
      expectCounts(what, { B, Lq, Lkv });
      expectArray('query.data', call.q, [Float32Array], B * Lq * E);
      if (call.k || call.v) {
        expectArray('key.data', call.k, [Float32Array], B * Lkv * kdim);
        expectArray('value.data', call.v, [Float32Array], B * Lkv * vdim);
      } else if (Lkv !== Lq || kdim !== E || vdim !== E) {
        throw new RangeError(`${what}: self-attention needs the query's length and kdim == vdim == embedDim`);
      }
      const cache = cacheFor(cacheId, id, what, Lq, B);
      const Lk = cache.past + call.Lkv;
      const mask = maskLayout('options.attnMask', call.attnMask, {
        Lq, Lk, fullDims: batched ? [B, H, Lq, Lk] : [H, Lq, Lk], altDims: batched ? [[B * H, Lq, Lk]] : [],
      });
      const kpm = paddingLayout('options.keyPaddingMask', call.keyPaddingMask, { B, Lk, batched });
      // One copy of each distinct input array (self-attention copies once).
      const same = (a, b) => a.buffer === b.buffer && a.byteOffset === b.byteOffset && a.length === b.length;
      const inputs = [call.q];
      for (const d of [call.k, call.v]) if (d && !inputs.some((x) => same(x, d))) inputs.push(d);
      const outN = B * Lq * E, wN = needWeights ? B * (average ? 1 : H) * Lq * Lk : 0;
      const n = inputs.length;
      const st = rt.stage([...inputs, mask.data, kpm, outN * 4, wN * 4, FORWARD_BYTES], what);
      try {
        const ptrOf = (d) => st.at(inputs.findIndex((x) => same(x, d ?? call.q)));
        const at = (d) => (d ? st.at(d === mask.data ? n : n + 1) : 0);
        const rec = st.at(n + 4);
        rt.writeRecord(rec, 'MhaForward', {
          batch: B, lq: Lq, lk: Lk, query: ptrOf(call.q), key: ptrOf(call.k), value: ptrOf(call.v),
          ...maskFields('', mask, kpm, call.causal, at), output: st.at(n + 2), weights: needWeights ? st.at(n + 3) : 0,
          average_weights: average,
        });
        rt.check(layer.handle.forward(rec, cache.handle), what, () => layer.handle.lastRequestBytes());
        const output = { data: rt.readF32(st.at(n + 2), outN), dims: batched ? [B, Lq, E] : [Lq, E] };
        let weights = null;
        if (needWeights) {
          const dims = average ? [Lq, Lk] : [H, Lq, Lk];
          weights = { data: rt.readF32(st.at(n + 3), wN), dims: batched ? [B, ...dims] : dims };
        }
        return { result: { output, weights }, cacheLength: cache.length() };
      } finally {
        rt.free(st.ptr);
      }
    },
  };
}

const RECORD_BYTES = recordBytes('MhaWeights'), FORWARD_BYTES = recordBytes('MhaForward');

/** A weight as a validated Float32Array view of exactly dims' size; what: the call named in errors. */
export function weightArray(name, v, dims, what = 'setWeights') {
  const n = product(dims);
  let data;
  if (typedArrayKind(v) === 'Float32Array') {
    data = snapshotView(`${what}: ${name}`, v);
  } else if (v && typeof v === 'object' && !isTypedArray(v) && 'data' in v && 'dims' in v) {
    const t = tensor(`${what}: ${name}`, v, { ranks: [dims.length], shapeHint: `dims ${fmtDims(dims)}` });
    if (!sameDims(t.dims, dims))
      throw new RangeError(`${what}: ${name} must have dims ${fmtDims(dims)}, got ${fmtDims(t.dims)}`);
    data = t.data;
  } else {
    throw new TypeError(`${what}: ${name} must be a Float32Array of ${n} = ${fmtDims(dims)} floats, got ${describe(v)}`);
  }
  if (typedArrayLength(data) !== n)
    throw new RangeError(`${what}: ${name} must have ${n} = ${fmtDims(dims)} elements, got ${typedArrayLength(data)}`);
  return data;
}
