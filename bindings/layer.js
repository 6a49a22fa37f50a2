// MultiHeadAttention (torch.nn.MultiheadAttention, batch_first=True, dropout 0).
// defineMultiHeadAttention makes the class users see, over any backend: it reads
// and checks the arguments where the call is made. mhaOps are what runs where the
// runtime is: the checks that need its state (a cache's length, weights set), the
// copies into wasm memory and the call into the Embind `Layer`.
import { maskFields, maskLayout, paddingLayout, readMask, readPadding } from './masks.js';
import { withAttentionConfig } from './layer-config.js';
import { alibiSlopes, checkStorable, floatArray, optional, positionsLayout, positiveFloat32, quantizedWeight, readPositions, readRope, readWeightType, splitScales } from './modern.js';
import { RECORDS, WEIGHT_TYPE } from './abi.js';
import { recordBytes } from './runtime.js';
import {
  bool, describe, expectArray, nonNegativeInt, expectCounts, expectDim, fmtDims, isTypedArray, plainObject, positiveInt, product, readEntries, sameDims, snapshotView, tensor,
  typedArrayKind, typedArrayLength,
} from './validate.js';

export const LAYER_OPTIONS = ['embedDim', 'numHeads', 'kdim', 'vdim', 'bias', 'numKvHeads', 'headDim', 'qkvBias', 'outBias', 'rope', 'alibi',
  'slidingWindow', 'softcap', 'scale', 'sinks', 'qkNorm', 'qkNormEps', 'weightType'];
const FORWARD_OPTIONS = ['attnMask', 'keyPaddingMask', 'isCausal', 'needWeights', 'averageWeights', 'cache', 'positionIds', 'transfer'];
const WEIGHT_NAMES = ['inProjWeight', 'qProjWeight', 'kProjWeight', 'vProjWeight', 'inProjBias', 'qProjBias', 'kProjBias', 'vProjBias',
  'outProjWeight', 'outProjBias', 'sinks', 'qNormWeight', 'kNormWeight'];
// PyTorch's state_dict names (what parseSafetensors returns for a saved
// nn.MultiheadAttention) and Hugging Face's (q_proj.weight, o_proj.weight, q_norm.weight,
// ...) are accepted as well as the camelCase ones.
const TORCH_NAMES = {
  in_proj_weight: 'inProjWeight', q_proj_weight: 'qProjWeight', k_proj_weight: 'kProjWeight', v_proj_weight: 'vProjWeight',
  in_proj_bias: 'inProjBias', 'out_proj.weight': 'outProjWeight', 'out_proj.bias': 'outProjBias',
};
const HF_NAMES = {
  'q_proj.weight': 'qProjWeight', 'k_proj.weight': 'kProjWeight', 'v_proj.weight': 'vProjWeight', 'o_proj.weight': 'outProjWeight',
  'q_proj.bias': 'qProjBias', 'k_proj.bias': 'kProjBias', 'v_proj.bias': 'vProjBias', 'o_proj.bias': 'outProjBias',
  'q_norm.weight': 'qNormWeight', 'k_norm.weight': 'kNormWeight',
};
// Null-prototype: a weight named "constructor" or "toString" must not find Object.prototype's.
const OTHER_NAMES = Object.assign(Object.create(null), TORCH_NAMES, HF_NAMES);
const TORCH_OF = Object.fromEntries(Object.entries(TORCH_NAMES).map(([t, c]) => [c, t]));
// camelCase name -> the MhaWeights record field (abi.js).
export const RECORD_FIELD = {
  inProjWeight: 'in_proj_weight', qProjWeight: 'q_proj_weight', kProjWeight: 'k_proj_weight', vProjWeight: 'v_proj_weight',
  inProjBias: 'in_proj_bias', qProjBias: 'q_proj_bias', kProjBias: 'k_proj_bias', vProjBias: 'v_proj_bias',
  outProjWeight: 'out_proj_weight', outProjBias: 'out_proj_bias', sinks: 'sinks', qNormWeight: 'q_norm_weight', kNormWeight: 'k_norm_weight',
};
const camel = (s) => s.replace(/[._]([a-z])/g, (_, c) => c.toUpperCase());

/** { camelCaseName: value } from camelCase, PyTorch or Hugging Face names; the given name is kept for messages. */
function canonicalWeights(given) {
  const { weights, scales: givenScales } = splitScales(readEntries('setWeights: weights', given, 'an object of Float32Arrays or tensors'));
  const out = Object.create(null), givenAs = Object.create(null), scales = Object.create(null);
  for (const k of Object.keys(weights)) {
    const name = WEIGHT_NAMES.includes(k) ? k : OTHER_NAMES[k];
    if (name === undefined) {
      if (k === 'bias_k' || k === 'bias_v')
        throw new TypeError(`setWeights: "${k}" comes from add_bias_kv=True, which is not supported`);
      const guess = WEIGHT_NAMES.find((n) => n.toLowerCase() === camel(k).toLowerCase());
      const hint = guess ? ` (did you mean ${guess}?)` : '';
      throw new TypeError(`setWeights: unknown weight "${k}"${hint}; expected ${WEIGHT_NAMES.join(', ')}, ` +
        `PyTorch's ${Object.keys(TORCH_NAMES).join(', ')} or Hugging Face's ${Object.keys(HF_NAMES).join(', ')}`);
    }
    if (givenAs[name] !== undefined)
      throw new TypeError(`setWeights: "${givenAs[name]}" and "${k}" are the same weight; give it once`);
    givenAs[name] = k;
    out[name] = weights[k];
    if (Object.hasOwn(givenScales, k)) scales[name] = givenScales[k];
  }
  return { weights: out, givenAs, scales };
}

// The matrices a scale (pre-quantized int8) may come with.
const MATRICES = ['inProjWeight', 'qProjWeight', 'kProjWeight', 'vProjWeight', 'outProjWeight'];

/** Checks constructor options; returns the frozen configuration. */
export function layerConfig(options) {
  if (options === undefined || options === null)
    throw new TypeError('MultiHeadAttention: options { embedDim, numHeads } are required');
  const o = plainObject('MultiHeadAttention options', options, LAYER_OPTIONS);
  const embedDim = positiveInt('embedDim', o.embedDim);
  const numHeads = positiveInt('numHeads', o.numHeads);
  const numKvHeads = o.numKvHeads === undefined ? numHeads : positiveInt('numKvHeads', o.numKvHeads);
  if (numHeads % numKvHeads !== 0)
    throw new RangeError(`numKvHeads must divide numHeads, got numKvHeads ${numKvHeads} and numHeads ${numHeads}`);
  let headDim;
  if (o.headDim === undefined) {
    if (embedDim % numHeads !== 0)
      throw new RangeError(`embedDim must be divisible by numHeads, got embedDim ${embedDim} and numHeads ${numHeads} (or give headDim)`);
    headDim = embedDim / numHeads;
  } else {
    headDim = positiveInt('headDim', o.headDim);
  }
  if ((numHeads + 2 * numKvHeads) * headDim > 2 ** 31 - 64)
    throw new RangeError(`(numHeads + 2 numKvHeads) * headDim = ${(numHeads + 2 * numKvHeads) * headDim} is too large`);
  const kdim = o.kdim === undefined ? embedDim : positiveInt('kdim', o.kdim);
  const vdim = o.vdim === undefined ? embedDim : positiveInt('vdim', o.vdim);
  const bias = bool('bias', o.bias, true);
  const qkvBias = bool('qkvBias', o.qkvBias, bias), outBias = bool('outBias', o.outBias, bias);
  const rope = readRope('rope', o.rope, headDim);
  let alibi = null;
  if (o.alibi === true) alibi = alibiSlopes(numHeads);
  else if (o.alibi !== undefined && o.alibi !== null && o.alibi !== false) alibi = Float32Array.from(floatArray('alibi', o.alibi, numHeads));
  const slidingWindow = optional('slidingWindow', o.slidingWindow, positiveInt);
  const softcap = optional('softcap', o.softcap, positiveFloat32);
  const scale = o.scale === undefined ? 1 / Math.sqrt(headDim) : positiveFloat32('scale', o.scale);
  const sinks = bool('sinks', o.sinks, false);
  const qkNorm = o.qkNorm === undefined || o.qkNorm === null ? null : o.qkNorm;
  if (qkNorm !== null && qkNorm !== 'rms')
    throw new (typeof qkNorm === 'string' ? RangeError : TypeError)(`qkNorm must be null or 'rms', got ${describe(qkNorm)}`);
  const qkNormEps = o.qkNormEps === undefined ? 1e-6 : positiveFloat32('qkNormEps', o.qkNormEps);
  const weightType = readWeightType('weightType', o.weightType);
  return Object.freeze({
    embedDim, numHeads, kdim, vdim, bias, headDim, numKvHeads, qkvBias, outBias, rope, alibi, slidingWindow, softcap, scale, sinks,
    qkNorm, qkNormEps, weightType, cacheWidth: numKvHeads * headDim,
  });
}

/** The options that rebuild cfg where the runtime is (the op reads them with layerConfig again). */
function configOptions(cfg) {
  const { embedDim, numHeads, kdim, vdim, bias, headDim, numKvHeads, qkvBias, outBias, scale, sinks, qkNormEps, weightType } = cfg;
  const out = { embedDim, numHeads, kdim, vdim, bias, headDim, numKvHeads, qkvBias, outBias, scale, sinks, qkNormEps, weightType };
  if (cfg.rope) {
    const { dim, interleaved, invFreq, attentionFactor } = cfg.rope;
    out.rope = { dim, interleaved, invFreq: Float64Array.from(invFreq), attentionFactor };
  }
  if (cfg.alibi) out.alibi = Float32Array.from(cfg.alibi);
  for (const k of ['slidingWindow', 'softcap', 'qkNorm']) if (cfg[k] !== null) out[k] = cfg[k];
  return out;
}

/** The weights' dims under a configuration (camelCase names). */
export function weightShapes({ embedDim: E, kdim, vdim, numHeads: H, numKvHeads: Hkv, headDim: D }) {
  const nq = H * D, nk = Hkv * D;
  return {
    inProjWeight: [nq + 2 * nk, E], qProjWeight: [nq, E], kProjWeight: [nk, kdim], vProjWeight: [nk, vdim],
    inProjBias: [nq + 2 * nk], qProjBias: [nq], kProjBias: [nk], vProjBias: [nk], outProjWeight: [E, nq], outProjBias: [E],
    sinks: [H], qNormWeight: [D], kNormWeight: [D],
  };
}

/** The record fields of the weights: each matrix's scale (pre-quantized int8) after the others. */
export const WEIGHT_FIELDS = [...Object.values(RECORD_FIELD), ...MATRICES.map((n) => `${RECORD_FIELD[n]}_scale`)];

/**
 * Where the runtime is: readWeights' arrays checked against cfg again (the op sizes its copies from
 * them): a Float32Array per field, or an Int8Array with a `<field>_scale` of one float per row.
 */
export function checkWeightArrays(what, cfg, arrays) {
  const shapes = weightShapes(cfg);
  for (const n of Object.keys(arrays)) {
    if (n.endsWith('_scale')) {
      const base = n.slice(0, -6), name = Object.keys(RECORD_FIELD).find((k) => RECORD_FIELD[k] === base);
      if (!MATRICES.includes(name) || !arrays[base] || cfg.weightType !== 'int8') throw new TypeError(`${what}: unknown weight ${JSON.stringify(n)}`);
      expectArray(`${what}: ${n}`, arrays[n], [Float32Array], shapes[name][0]);
      continue;
    }
    const name = Object.keys(RECORD_FIELD).find((k) => RECORD_FIELD[k] === n);
    if (name === undefined) throw new TypeError(`${what}: unknown weight ${JSON.stringify(n)}`);
    expectArray(`${what}: ${n}`, arrays[n], arrays[`${n}_scale`] ? [Int8Array] : [Float32Array], product(shapes[name]));
  }
}

/** The setWeights arrays, checked against the configuration: { recordField: Float32Array view }. */
export function readWeights(cfg, weights) {
  const { embedDim: E, kdim, vdim, qkvBias, outBias } = cfg;
  const { weights: w, givenAs, scales } = canonicalWeights(weights);
  const label = (n) => givenAs[n] ?? n;
  const has = (n) => w[n] !== undefined && w[n] !== null;
  const packed = has('inProjWeight');
  const separate = ['qProjWeight', 'kProjWeight', 'vProjWeight'].filter(has);
  if (packed && separate.length)
    throw new TypeError(`setWeights: give either inProjWeight or qProjWeight/kProjWeight/vProjWeight, not both (got ${label('inProjWeight')} and ${separate.map(label).join(', ')})`);
  if (packed && (kdim !== E || vdim !== E))
    throw new TypeError(`setWeights: inProjWeight is only used when kdim == vdim == embedDim (here kdim ${kdim}, vdim ${vdim}, embedDim ${E}); give qProjWeight, kProjWeight and vProjWeight`);
  const splitBias = ['qProjBias', 'kProjBias', 'vProjBias'].filter(has);
  if (has('inProjBias') && splitBias.length)
    throw new TypeError(`setWeights: give either inProjBias or qProjBias/kProjBias/vProjBias, not both (got ${label('inProjBias')} and ${splitBias.map(label).join(', ')})`);
  const shapes = weightShapes(cfg);
  const needed = [...(packed ? ['inProjWeight'] : ['qProjWeight', 'kProjWeight', 'vProjWeight']), 'outProjWeight'];
  if (qkvBias) needed.push(...(splitBias.length ? ['qProjBias', 'kProjBias', 'vProjBias'] : ['inProjBias']));
  if (outBias) needed.push('outProjBias');
  if (cfg.sinks) needed.push('sinks');
  if (cfg.qkNorm) needed.push('qNormWeight', 'kNormWeight');
  const arrays = {};
  for (const name of needed) {
    const dims = shapes[name];
    if (!has(name)) {
      const torch = TORCH_OF[name] ? `PyTorch ${TORCH_OF[name]}: ` : '';
      throw new TypeError(`setWeights: missing ${name} (${torch}a Float32Array of ${product(dims)} = ${fmtDims(dims)} floats)`);
    }
    if (Object.hasOwn(scales, name) && MATRICES.includes(name)) {
      const q = quantizedWeight('setWeights', label(name), w[name], scales[name], dims, cfg.weightType);
      arrays[RECORD_FIELD[name]] = q.data;
      arrays[`${RECORD_FIELD[name]}_scale`] = q.scale;
    } else {
      if (Object.hasOwn(scales, name)) throw new TypeError(`setWeights: ${label(name)}_scale given, but only weight matrices can be pre-quantized`);
      const data = weightArray(label(name), w[name], dims);
      arrays[RECORD_FIELD[name]] = MATRICES.includes(name) ? checkStorable('setWeights', label(name), data, cfg.weightType) : data;
    }
  }
  const qkvWhy = cfg.bias ? 'qkvBias: false' : 'bias: false', outWhy = cfg.bias ? 'outBias: false' : 'bias: false';
  const why = {
    inProjBias: qkvWhy, qProjBias: qkvWhy, kProjBias: qkvWhy, vProjBias: qkvWhy, outProjBias: outWhy, sinks: 'no sinks: true', qNormWeight: "no qkNorm: 'rms'", kNormWeight: "no qkNorm: 'rms'",
  };
  for (const name of Object.keys(why))
    if (has(name) && !needed.includes(name))
      throw new TypeError(`setWeights: ${label(name)} given, but the layer was created with ${why[name]}`);
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
    positionIds: readPositions('options.positionIds', o.positionIds),
    transfer: bool('options.transfer', o.transfer, false),
  };
}

/** The public class over a backend. ctx: { backend, Native, live, caches } (api.js). */
export function defineMultiHeadAttention({ backend, Native, live, caches }) {
  class MultiHeadAttention extends withAttentionConfig(Native) {
    #cfg;
    #weightsSent = false;  // setWeights succeeded (this thread) or was sent (a worker answers in order)

    /** @param {import('./index').MultiHeadAttentionOptions} options */
    constructor(options) {
      const cfg = layerConfig(options);
      super(cfg, 'MultiHeadAttention', 'MultiHeadAttention', configOptions(cfg));
      this.#cfg = cfg;
    }

    /** null, or { dim, base, interleaved, invFreq (Float64Array), attentionFactor } (a copy). */
    get rope() {
      const r = this.#cfg.rope;
      return r && { dim: r.dim, base: r.base, interleaved: r.interleaved, invFreq: Float64Array.from(r.invFreq), attentionFactor: r.attentionFactor };
    }
    /** null, or the ALiBi slopes (a copy). */
    get alibi() { return this.#cfg.alibi && Float32Array.from(this.#cfg.alibi); }

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
      return caches.create(this, 'MultiHeadAttention.createCache', this.#cfg.cacheWidth, options, this.#cfg.slidingWindow ?? 0);
    }

    /**
     * One token through one head, step by step (for teaching): the forward's
     * arguments (no cache, no needWeights) plus options { token, head, batch = 0 }.
     * Returns { batch, token, head, kvHead, q, k, v, raw, scaled, softcapped, biased,
     * masked, weights, sink, headOutput, concat, output } (see index.d.ts).
     */
    inspect(query, key, value, options) {
      return backend.run(() => {
        const id = live(this, 'inspect');
        if (!this.#weightsSent) throw new Error('MultiHeadAttention.inspect: weights are not set; call setWeights() first');
        const o = plainObject('inspect options', options, [...FORWARD_OPTIONS.filter((k) => !['cache', 'needWeights', 'averageWeights'].includes(k)), 'token', 'head', 'batch']);
        const { token, head, batch, ...forwardOptions } = o;
        const { cache, transfer, ...call } = readForward(this.#cfg, query, key, value, forwardOptions);
        const at = {
          batch: batch === undefined ? 0 : nonNegativeInt('options.batch', batch), token: nonNegativeInt('options.token', token),
          head: nonNegativeInt('options.head', head),
        };
        if (at.batch >= call.B) throw new RangeError(`options.batch must be below the batch size ${call.B}, got ${at.batch}`);
        if (at.token >= call.Lq) throw new RangeError(`options.token must be below the query length ${call.Lq}, got ${at.token}`);
        if (at.head >= this.#cfg.numHeads) throw new RangeError(`options.head must be below numHeads ${this.#cfg.numHeads}, got ${at.head}`);
        return backend.call('MultiHeadAttention.inspect', [id, call, at], { transfer, what: 'MultiHeadAttention.inspect' });
      });
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
      const { embedDim, numHeads, kdim, vdim, bias, rope } = cfg;
      const record = {
        weight_type: WEIGHT_TYPE[cfg.weightType.toUpperCase()],
        embed_dim: embedDim, num_heads: numHeads, kdim, vdim, bias, num_kv_heads: cfg.numKvHeads, head_dim: cfg.headDim,
        qkv_bias: cfg.qkvBias, out_bias: cfg.outBias, scale: cfg.scale, softcap: cfg.softcap ?? 0, window: cfg.slidingWindow ?? 0,
        alibi: cfg.alibi !== null, sinks: cfg.sinks, qk_norm: cfg.qkNorm !== null, qk_norm_eps: cfg.qkNormEps,
        rope_dim: rope ? rope.dim : 0, rope_interleaved: rope ? rope.interleaved : false, rope_attention_factor: rope ? rope.attentionFactor : 1,
      };
      return { handle: rt.withRecord('LayerConfig', record, (p) => new rt.mod.Layer(p), 'new MultiHeadAttention'), cfg, hasWeights: false };
    },

    'MultiHeadAttention.setWeights'(id, arrays) {
      const layer = get(id, 'MultiHeadAttention'), what = 'setWeights';
      checkWeightArrays('setWeights', layer.cfg, arrays);
      // The configured arrays go in with the weights.
      const all = { ...arrays };
      if (layer.cfg.alibi) all.alibi_slopes = layer.cfg.alibi;
      if (layer.cfg.rope) all.rope_inv_freq = layer.cfg.rope.invFreq;
      const names = Object.keys(all);
      const st = rt.stage([...names.map((n) => all[n]), RECORD_BYTES], what);
      try {
        const rec = st.at(names.length);
        const fields = [...WEIGHT_FIELDS, 'alibi_slopes', 'rope_inv_freq'];
        const values = Object.fromEntries(fields.map((f) => [f, names.includes(f) ? st.at(names.indexOf(f)) : 0]));
        rt.writeRecord(rec, 'MhaWeights', values);
        rt.check(layer.handle.setWeights(rec), what, () => layer.handle.lastRequestBytes());
        layer.hasWeights = true;
      } finally {
        rt.free(st.ptr);
      }
    },

    'MultiHeadAttention.inspect'(id, call, at) {
      const layer = get(id, 'MultiHeadAttention');
      const { numHeads: H, numKvHeads: Hkv, headDim: D, embedDim: E } = layer.cfg;
      const { batch, token, head } = at;
      expectCounts('MultiHeadAttention.inspect', { batch: batch + 1, token: token + 1, head: head + 1 });
      if (batch >= call.B || token >= call.Lq || head >= H) throw new RangeError('MultiHeadAttention.inspect: batch, token or head out of range');
      const Lk = call.Lkv;
      const { result } = forwardOp(id, { ...call, needWeights: false }, 0, { b: batch, h: head, i: token, floats: (2 * Lk + 2) * D + 6 * Lk + H * D + 1 });
      const t = result.trace;
      let o = 0;
      const take = (n) => t.subarray(o, (o += n));
      const q = take(D), k = { data: take(Lk * D), dims: [Lk, D] }, v = { data: take(Lk * D), dims: [Lk, D] };
      const [raw, scaled, softcapped, biased, masked, weights] = [0, 1, 2, 3, 4, 5].map(() => take(Lk));
      const headOutput = take(D), concat = take(H * D), sink = take(1)[0];
      const out = result.output.data;
      return {
        batch, token, head, kvHead: Math.floor(head / (H / Hkv)), q, k, v, raw, scaled, softcapped, biased, masked, weights,
        sink: Number.isNaN(sink) ? null : sink, headOutput, concat, output: out.slice((batch * call.Lq + token) * E, (batch * call.Lq + token + 1) * E),
      };
    },

    'MultiHeadAttention.forward'(id, call, cacheId) {
      return forwardOp(id, call, cacheId, null);
    },
  };

  /** A forward (trace: null, or { b, h, i, floats } for inspect, whose floats come back as result.trace). */
  function forwardOp(id, call, cacheId, trace) {
    const layer = get(id, 'MultiHeadAttention'), what = trace ? 'MultiHeadAttention.inspect' : 'MultiHeadAttention.forward';
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
    const pos = positionsLayout('options.positionIds', call.positionIds, { B, L: Lq, batched });
    // One copy of each distinct input array (self-attention copies once).
    const same = (a, b) => a.buffer === b.buffer && a.byteOffset === b.byteOffset && a.length === b.length;
    const inputs = [call.q];
    for (const d of [call.k, call.v]) if (d && !inputs.some((x) => same(x, d))) inputs.push(d);
    const outN = B * Lq * E, wN = needWeights ? B * (average ? 1 : H) * Lq * Lk : 0;
    const n = inputs.length;
    const st = rt.stage([...inputs, mask.data, kpm, outN * 4, wN * 4, FORWARD_BYTES, pos && pos.data, trace ? trace.floats * 4 : 0], what);
    try {
      const ptrOf = (d) => st.at(inputs.findIndex((x) => same(x, d ?? call.q)));
      const at = (d) => (d ? st.at(d === mask.data ? n : n + 1) : 0);
      const rec = st.at(n + 4);
      rt.writeRecord(rec, 'MhaForward', {
        batch: B, lq: Lq, lk: Lk, query: ptrOf(call.q), key: ptrOf(call.k), value: ptrOf(call.v),
        ...maskFields('', mask, kpm, call.causal, at), output: st.at(n + 2), weights: needWeights ? st.at(n + 3) : 0,
        average_weights: average, position_ids: pos ? st.at(n + 5) : 0, positions_shared: pos ? pos.shared : false,
        trace: trace ? st.at(n + 6) : 0, trace_b: trace ? trace.b : 0, trace_h: trace ? trace.h : 0, trace_i: trace ? trace.i : 0,
      });
      rt.check(layer.handle.forward(rec, cache.handle), what, () => layer.handle.lastRequestBytes());
      const output = { data: rt.readF32(st.at(n + 2), outN), dims: batched ? [B, Lq, E] : [Lq, E] };
      let weights = null;
      if (needWeights) {
        const dims = average ? [Lq, Lk] : [H, Lq, Lk];
        weights = { data: rt.readF32(st.at(n + 3), wN), dims: batched ? [B, ...dims] : dims };
      }
      const result = { output, weights };
      if (trace) result.trace = rt.readF32(st.at(n + 6), trace.floats);
      return { result, cacheLength: cache.length() };
    } finally {
      rt.free(st.ptr);
    }
  }
}

const RECORD_BYTES = recordBytes('MhaWeights'), FORWARD_BYTES = recordBytes('MhaForward');
/** The fields of a weight record that give the scales of pre-quantized int8 matrices (abi.js). */
export const scaleFields = (record) => RECORDS[record].map((f) => f.split(':')[0]).filter((n) => n.endsWith('_scale'));

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
