// TransformerEncoderLayer and TransformerDecoderLayer (torch.nn's, batch_first=True,
// dropout 0) around the Embind `Encoder` and `Decoder`, with KV caches
// (kvcache.js) for incremental decoding. Weights by PyTorch's state_dict names
// (self_attn.in_proj_weight, linear1.weight, norm1.weight, ...), as
// parseSafetensors returns them.
import { weightArray } from './layer.js';
import { withBlockConfig } from './layer-config.js';
import { Native, live } from './native.js';
import { attnMask, keyPaddingMask } from './masks.js';
import { bool, describe, expectDim, fmtDims, plainObject, positiveInt, product, readEntries, tensor } from './validate.js';

const BLOCK_OPTIONS = ['dModel', 'nhead', 'dimFeedforward', 'activation', 'layerNormEps', 'normFirst', 'bias'];
const ACTIVATIONS = ['relu', 'gelu'];

/** Checks the options of a block (what: its class name); returns the frozen configuration. */
export function blockConfig(what, options) {
  if (options === undefined || options === null) throw new TypeError(`${what}: options { dModel, nhead } are required`);
  const o = plainObject(`${what} options`, options, BLOCK_OPTIONS);
  const dModel = positiveInt('dModel', o.dModel), nhead = positiveInt('nhead', o.nhead);
  if (dModel % nhead !== 0) throw new RangeError(`dModel must be divisible by nhead, got dModel ${dModel} and nhead ${nhead}`);
  const dimFeedforward = o.dimFeedforward === undefined ? 2048 : positiveInt('dimFeedforward', o.dimFeedforward);
  const activation = o.activation === undefined ? 'relu' : o.activation;
  if (!ACTIVATIONS.includes(activation))
    throw new TypeError(`activation must be 'relu' or 'gelu', got ${describe(activation)}`);
  const layerNormEps = o.layerNormEps === undefined ? 1e-5 : o.layerNormEps;
  if (typeof layerNormEps !== 'number') throw new TypeError(`layerNormEps must be a positive number, got ${describe(layerNormEps)}`);
  if (!(layerNormEps > 0) || !Number.isFinite(layerNormEps))
    throw new RangeError(`layerNormEps must be a positive number, got ${describe(layerNormEps)}`);
  return Object.freeze({ dModel, nhead, dimFeedforward, activation, layerNormEps, normFirst: bool('normFirst', o.normFirst, false),
    bias: bool('bias', o.bias, true), embedDim: dModel, numHeads: nhead, kdim: dModel, vdim: dModel, headDim: dModel / nhead });
}

const attnEntries = (p, E) => [
  [`${p}.in_proj_weight`, [3 * E, E]], [`${p}.in_proj_bias`, [3 * E], true],
  [`${p}.out_proj.weight`, [E, E]], [`${p}.out_proj.bias`, [E], true],
];
const ffEntries = (E, F) => [['linear1.weight', [F, E]], ['linear1.bias', [F], true], ['linear2.weight', [E, F]], ['linear2.bias', [E], true]];
const normEntries = (n, E) => [[`norm${n}.weight`, [E]], [`norm${n}.bias`, [E], true]];

/** The state_dict entries of each block, [name, dims, isBias], in the order of its Embind weight table. */
const ENTRIES = {
  TransformerEncoderLayer: ({ dModel: E, dimFeedforward: F }) =>
    [...attnEntries('self_attn', E), ...ffEntries(E, F), ...normEntries(1, E), ...normEntries(2, E)],
  TransformerDecoderLayer: ({ dModel: E, dimFeedforward: F }) => [...attnEntries('self_attn', E),
    ...attnEntries('multihead_attn', E), ...ffEntries(E, F), ...normEntries(1, E), ...normEntries(2, E), ...normEntries(3, E)],
};

/** The arrays of a state_dict in table order (null for the biases of a bias-free block); every entry checked. */
function stateDictArrays(what, cfg, stateDict) {
  const at = `${what}.setWeights`;
  const sd = readEntries(`${at}: stateDict`, stateDict, 'an object of Float32Arrays or tensors');
  const entries = ENTRIES[what](cfg), names = entries.map((e) => e[0]);
  for (const k of Object.keys(sd)) {
    if (names.includes(k)) continue;
    const suffix = names.find((n) => k.endsWith(`.${n}`));
    const hint = suffix ? ` (strip the prefix "${k.slice(0, -suffix.length)}": parseSafetensors(bytes, { prefix }))` : '';
    throw new TypeError(`${at}: unknown entry "${k}"${hint}; expected ${names.join(', ')}`);
  }
  return entries.map(([name, dims, isBias]) => {
    const v = sd[name];
    if (v === undefined || v === null) {
      if (isBias && !cfg.bias) return null;
      throw new TypeError(`${at}: missing ${name} (${product(dims)} = ${fmtDims(dims)} floats)`);
    }
    if (isBias && !cfg.bias) throw new TypeError(`${at}: ${name} given, but the layer was created with bias: false`);
    return weightArray(name, v, dims, at);
  });
}

// The blocks' shared internals, out of users' sight.
const BEGIN = Symbol('begin'), CACHE_FOR = Symbol('cacheFor');

/** caches: makeKVCache(rt), shared with the other layer classes of the runtime. */
export function makeTransformerBlocks(rt, caches) {
  /** What both blocks share: construction, weights, createCache and the cache checks of forward. */
  class Block extends withBlockConfig(Native) {
    #cfg;
    #name;
    #hasWeights = false;
    constructor(name, options, Handle) {
      const cfg = blockConfig(name, options);
      rt.checkAlive();
      super(cfg, rt, name, new Handle(cfg.dModel, cfg.nhead, cfg.dimFeedforward, ACTIVATIONS.indexOf(cfg.activation),
        cfg.layerNormEps, cfg.normFirst, cfg.bias));
      this.#cfg = cfg;
      this.#name = name;
    }

    /**
     * Copies in the layer's PyTorch state_dict ({ 'self_attn.in_proj_weight': ..., 'linear1.weight': ..., ... }),
     * each entry a Float32Array or a { data, dims } tensor, e.g. parseSafetensors(bytes, { prefix: 'layers.0.' }).
     */
    setWeights(stateDict) {
      const handle = live(this, 'setWeights');
      const arrays = stateDictArrays(this.#name, this.#cfg, stateDict);
      const what = `${this.#name}.setWeights`;
      const st = rt.stage([...arrays, arrays.length * 4], what);
      try {
        const table = st.at(arrays.length);  // the heap offset of each entry, 0 when absent
        rt.writeU32(table, arrays.map((a, i) => (a ? st.at(i) : 0)));
        rt.check(handle.setWeights(table), what, () => handle.lastRequestBytes());
        this.#hasWeights = true;
      } finally {
        rt.free(st.ptr);
      }
    }

    /**
     * A KV cache for incremental decoding with this layer: forward(newPositions, { cache }) appends their
     * keys and values, and they attend over every cached position.
     * @param {import('./index').CacheOptions} options { maxLength, batch = 1 }
     */
    createCache(options) {
      live(this, 'createCache');
      return caches.createCache(this, `${this.#name}.createCache`, this.#cfg.dModel, options);
    }

    /** The forward call's first checks: alive, weights set. */
    [BEGIN]() {
      const handle = live(this, 'forward');
      if (!this.#hasWeights) throw new Error(`${this.#name}.forward: weights are not set; call setWeights() first`);
      return handle;
    }

    /** The Embind cache of options.cache (or null) and the positions it already holds; checks it fits L more. */
    [CACHE_FOR](cache, B, L) { return caches.cacheFor(this, `${this.#name}.forward`, cache, B, L); }
  }

  /** A batched ([B, L, E]) or unbatched ([L, E]) input: { x, batched, B, L }. */
  function blockInput(name, t, E, letter) {
    const x = tensor(name, t, { ranks: [2, 3], shapeHint: `dims [B, ${letter}, ${E}] or [${letter}, ${E}]` });
    const batched = x.dims.length === 3, nb = batched ? 1 : 0;
    expectDim(name, x.dims, nb + 1, E, 'dModel');
    return { x, batched, B: batched ? x.dims[0] : 1, L: x.dims[nb] };
  }

  const maskDims = (batched, B, H, Lq, Lk) => ({ Lq, Lk, fullDims: batched ? [B, H, Lq, Lk] : [H, Lq, Lk], altDims: batched ? [[B * H, Lq, Lk]] : [] });
  const weightsDims = (batched, B, H, Lq, Lk) => (batched ? [B, H, Lq, Lk] : [H, Lq, Lk]);

  class TransformerEncoderLayer extends Block {
    /** @param {import('./index').TransformerLayerOptions} options */
    constructor(options) { super('TransformerEncoderLayer', options, rt.mod.Encoder); }

    /**
     * @param {import('./index').Tensor} src [B, L, dModel] or [L, dModel]
     * @param {import('./index').EncoderForwardOptions} [options]
     * @returns the output tensor (dims of src), or { output, weights } with needWeights ([B, H, L, Lk] per head)
     */
    forward(src, options) {
      const handle = this[BEGIN]();
      const { dModel: E, nhead: H } = this;
      const { x, batched, B, L } = blockInput('src', src, E, 'L');
      const o = plainObject('forward options', options, ['srcMask', 'srcKeyPaddingMask', 'isCausal', 'cache', 'needWeights']);
      const cache = this[CACHE_FOR](o.cache, B, L), Lk = cache.past + L;
      const mask = attnMask('options.srcMask', o.srcMask, maskDims(batched, B, H, L, Lk));
      const kpm = keyPaddingMask('options.srcKeyPaddingMask', o.srcKeyPaddingMask, { B, Lk, batched });
      const causal = bool('options.isCausal', o.isCausal, false);
      const needWeights = bool('options.needWeights', o.needWeights, false);
      const n = B * L * E, nw = needWeights ? B * H * L * Lk : 0;
      const st = rt.stage([x.data, mask.data, kpm, n * 4, nw * 4], 'TransformerEncoderLayer.forward');
      try {
        const s = handle.forward(B, L, st.at(0), mask.kind, mask.data ? st.at(1) : 0, mask.broadcast, kpm ? st.at(2) : 0, causal,
          st.at(3), cache.handle, needWeights ? st.at(4) : 0);
        rt.check(s, 'TransformerEncoderLayer.forward', () => handle.lastRequestBytes());
        const output = { data: rt.readF32(st.at(3), n), dims: x.dims };
        if (!needWeights) return output;
        return { output, weights: { data: rt.readF32(st.at(4), nw), dims: weightsDims(batched, B, H, L, Lk) } };
      } finally {
        rt.free(st.ptr);
      }
    }
  }

  const DECODER_FORWARD = ['tgtMask', 'memoryMask', 'tgtKeyPaddingMask', 'memoryKeyPaddingMask', 'tgtIsCausal', 'memoryIsCausal',
    'cache', 'needWeights'];

  class TransformerDecoderLayer extends Block {
    /** @param {import('./index').TransformerLayerOptions} options */
    constructor(options) { super('TransformerDecoderLayer', options, rt.mod.Decoder); }

    /**
     * @param {import('./index').Tensor} tgt [B, T, dModel] or [T, dModel]
     * @param {import('./index').Tensor} memory [B, S, dModel] or [S, dModel] (the same rank as tgt)
     * @param {import('./index').DecoderForwardOptions} [options]
     * @returns the output tensor (dims of tgt), or { output, selfWeights, crossWeights } with needWeights
     */
    forward(tgt, memory, options) {
      const handle = this[BEGIN]();
      const { dModel: E, nhead: H } = this;
      const { x, batched, B, L: T } = blockInput('tgt', tgt, E, 'T');
      const m = blockInput('memory', memory, E, 'S');
      if (m.batched !== batched) throw new RangeError(`memory must have the same rank as tgt (dims ${fmtDims(x.dims)}), got dims ${fmtDims(m.x.dims)}`);
      if (batched) expectDim('memory', m.x.dims, 0, B, 'the batch size of tgt');
      const S = m.L;
      const o = plainObject('forward options', options, DECODER_FORWARD);
      const cache = this[CACHE_FOR](o.cache, B, T), Lk = cache.past + T;
      const cross = cache.handle ? cache.handle.crossLength() : 0;
      if (cross && cross !== S)
        throw new RangeError(`TransformerDecoderLayer.forward: options.cache holds a memory of length ${cross}, got memory of length ${S}; ` +
          'a cache keeps the memory it first saw (call cache.reset() for a new one)');
      const tMask = attnMask('options.tgtMask', o.tgtMask, maskDims(batched, B, H, T, Lk));
      const mMask = attnMask('options.memoryMask', o.memoryMask, maskDims(batched, B, H, T, S));
      const tPad = keyPaddingMask('options.tgtKeyPaddingMask', o.tgtKeyPaddingMask, { B, Lk, batched });
      const mPad = keyPaddingMask('options.memoryKeyPaddingMask', o.memoryKeyPaddingMask, { B, Lk: S, batched });
      const tCausal = bool('options.tgtIsCausal', o.tgtIsCausal, false), mCausal = bool('options.memoryIsCausal', o.memoryIsCausal, false);
      const needWeights = bool('options.needWeights', o.needWeights, false);
      const n = B * T * E, ns = needWeights ? B * H * T * Lk : 0, nc = needWeights ? B * H * T * S : 0;
      const st = rt.stage([x.data, m.x.data, tMask.data, mMask.data, tPad, mPad, n * 4, ns * 4, nc * 4], 'TransformerDecoderLayer.forward');
      try {
        const p = (i, present) => (present ? st.at(i) : 0);
        const s = handle.forward(B, T, S, st.at(0), st.at(1),
          tMask.kind, p(2, tMask.data), tMask.broadcast, p(4, tPad), tCausal,
          mMask.kind, p(3, mMask.data), mMask.broadcast, p(5, mPad), mCausal,
          st.at(6), cache.handle, p(7, needWeights), p(8, needWeights));
        rt.check(s, 'TransformerDecoderLayer.forward', () => handle.lastRequestBytes());
        const output = { data: rt.readF32(st.at(6), n), dims: x.dims };
        if (!needWeights) return output;
        return {
          output,
          selfWeights: { data: rt.readF32(st.at(7), ns), dims: weightsDims(batched, B, H, T, Lk) },
          crossWeights: { data: rt.readF32(st.at(8), nc), dims: weightsDims(batched, B, H, T, S) },
        };
      } finally {
        rt.free(st.ptr);
      }
    }
  }

  return { TransformerEncoderLayer, TransformerDecoderLayer };
}
