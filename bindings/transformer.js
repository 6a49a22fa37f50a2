// TransformerEncoderLayer and TransformerDecoderLayer (torch.nn's, batch_first=True,
// dropout 0) around the Embind `Encoder` and `Decoder`, with KV caches
// (kvcache.js) for incremental decoding. Weights by PyTorch's state_dict names
// (self_attn.in_proj_weight, linear1.weight, norm1.weight, ...), as
// parseSafetensors returns them. defineBlocks: the classes where calls are made;
// blockOps: what runs where the runtime is.
import { ACTIVATION, WEIGHT_TYPE } from './abi.js';
import { scaleFields, weightArray } from './layer.js';
import { checkStorable, positiveFloat32, quantizedWeight, readWeightType, splitScales } from './modern.js';
import { withBlockConfig } from './layer-config.js';
import { maskFields, maskLayout, paddingLayout, readMask, readPadding } from './masks.js';
import { recordBytes } from './runtime.js';
import { bool, describe, expectArray, expectCounts, expectDim, fmtDims, plainObject, positiveInt, product, readEntries, tensor } from './validate.js';

const BLOCK_OPTIONS = ['dModel', 'nhead', 'dimFeedforward', 'activation', 'layerNormEps', 'normFirst', 'bias', 'weightType'];
const ACTIVATIONS = ['relu', 'gelu'];  // ACTIVATION (abi.js) by name

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
  positiveFloat32('layerNormEps', layerNormEps);
  return Object.freeze({ dModel, nhead, dimFeedforward, activation, layerNormEps, normFirst: bool('normFirst', o.normFirst, false),
    bias: bool('bias', o.bias, true), weightType: readWeightType('weightType', o.weightType),
    embedDim: dModel, numHeads: nhead, kdim: dModel, vdim: dModel, headDim: dModel / nhead });
}

const attnEntries = (p, E) => [
  [`${p}.in_proj_weight`, [3 * E, E]], [`${p}.in_proj_bias`, [3 * E], true],
  [`${p}.out_proj.weight`, [E, E]], [`${p}.out_proj.bias`, [E], true],
];
const ffEntries = (E, F) => [['linear1.weight', [F, E]], ['linear1.bias', [F], true], ['linear2.weight', [E, F]], ['linear2.bias', [E], true]];
const normEntries = (n, E) => [[`norm${n}.weight`, [E]], [`norm${n}.bias`, [E], true]];

/** The state_dict entries of each block, [name, dims, isBias], in the order of its weight record (abi.js). */
const ENTRIES = {
  TransformerEncoderLayer: ({ dModel: E, dimFeedforward: F }) =>
    [...attnEntries('self_attn', E), ...ffEntries(E, F), ...normEntries(1, E), ...normEntries(2, E)],
  TransformerDecoderLayer: ({ dModel: E, dimFeedforward: F }) => [...attnEntries('self_attn', E),
    ...attnEntries('multihead_attn', E), ...ffEntries(E, F), ...normEntries(1, E), ...normEntries(2, E), ...normEntries(3, E)],
};
const RECORD = { TransformerEncoderLayer: 'EncoderWeights', TransformerDecoderLayer: 'DecoderWeights' };
/** A state_dict name's field in the weight record: self_attn.out_proj.weight -> self_attn_out_proj_weight. */
const fieldOf = (name) => name.replace(/\./g, '_');

/** The arrays of a state_dict by record field (null for the biases of a bias-free block); every entry checked. */
function stateDictArrays(what, cfg, stateDict) {
  const at = `${what}.setWeights`;
  // <name>_scale beside an I8 <name>: a pre-quantized int8 matrix (compressed-tensors' layout).
  const { weights: sd, scales } = splitScales(readEntries(`${at}: stateDict`, stateDict, 'an object of Float32Arrays or tensors'));
  const entries = ENTRIES[what](cfg), names = entries.map((e) => e[0]);
  for (const k of Object.keys(sd)) {
    if (names.includes(k)) continue;
    const suffix = names.find((n) => k.endsWith(`.${n}`));
    const hint = suffix ? ` (strip the prefix "${k.slice(0, -suffix.length)}": parseSafetensors(bytes, { prefix }))` : '';
    throw new TypeError(`${at}: unknown entry "${k}"${hint}; expected ${names.join(', ')}`);
  }
  const arrays = {};
  for (const [name, dims, isBias] of entries) {
    const v = sd[name];
    if (v === undefined || v === null) {
      if (isBias && !cfg.bias) {
        arrays[fieldOf(name)] = null;
        continue;
      }
      throw new TypeError(`${at}: missing ${name} (${product(dims)} = ${fmtDims(dims)} floats)`);
    }
    if (isBias && !cfg.bias) throw new TypeError(`${at}: ${name} given, but the layer was created with bias: false`);
    if (Object.hasOwn(scales, name)) {
      if (dims.length !== 2) throw new TypeError(`${at}: ${name}_scale given, but only weight matrices can be pre-quantized`);
      const q = quantizedWeight(at, name, v, scales[name], dims, cfg.weightType);
      arrays[fieldOf(name)] = q.data;
      arrays[`${fieldOf(name)}_scale`] = q.scale;
      continue;
    }
    arrays[fieldOf(name)] = dims.length === 2 ? checkStorable(at, name, weightArray(name, v, dims, at), cfg.weightType) : weightArray(name, v, dims, at);
  }
  return arrays;
}

/** A batched ([B, L, E]) or unbatched ([L, E]) input: { x, batched, B, L }. */
function blockInput(name, t, E, letter) {
  const x = tensor(name, t, { ranks: [2, 3], shapeHint: `dims [B, ${letter}, ${E}] or [${letter}, ${E}]` });
  const batched = x.dims.length === 3, nb = batched ? 1 : 0;
  expectDim(name, x.dims, nb + 1, E, 'dModel');
  return { x, batched, B: batched ? x.dims[0] : 1, L: x.dims[nb] };
}

const WEIGHTS_SENT = Symbol('weightsSent');
const DECODER_FORWARD = ['tgtMask', 'memoryMask', 'tgtKeyPaddingMask', 'memoryKeyPaddingMask', 'tgtIsCausal', 'memoryIsCausal',
  'cache', 'needWeights', 'transfer'];

/** The public classes over a backend. ctx: { backend, Native, live, caches } (api.js). */
export function defineBlocks({ backend, Native, live, caches }) {
  /** What both blocks share: construction, weights and createCache. */
  class Block extends withBlockConfig(Native) {
    #cfg;
    #name;
    #weightsSent = false;  // setWeights succeeded (this thread) or was sent (a worker answers in order)
    constructor(name, options) {
      const cfg = blockConfig(name, options);
      const { dModel, nhead, dimFeedforward, activation, layerNormEps, normFirst, bias, weightType } = cfg;
      super(cfg, name, name, { dModel, nhead, dimFeedforward, activation, layerNormEps, normFirst, bias, weightType });
      this.#cfg = cfg;
      this.#name = name;
    }

    /**
     * Copies in the layer's PyTorch state_dict ({ 'self_attn.in_proj_weight': ..., 'linear1.weight': ..., ... }),
     * each entry a Float32Array or a { data, dims } tensor, e.g. parseSafetensors(bytes, { prefix: 'layers.0.' }).
     */
    setWeights(stateDict, options) {
      return backend.run(() => {
        const what = `${this.#name}.setWeights`, id = live(this, 'setWeights');
        const arrays = stateDictArrays(this.#name, this.#cfg, stateDict);
        const transfer = bool('options.transfer', plainObject(`${what} options`, options, ['transfer']).transfer, false);
        const done = backend.call(`${this.#name}.setWeights`, [id, arrays], { transfer, what });
        this.#weightsSent = true;
        return done;
      });
    }

    /** forward's first check, before its arguments: the weights were set. */
    [WEIGHTS_SENT]() {
      if (!this.#weightsSent) throw new Error(`${this.#name}.forward: weights are not set; call setWeights() first`);
    }

    /**
     * A KV cache for incremental decoding with this layer: forward(newPositions, { cache }) appends their
     * keys and values, and they attend over every cached position.
     */
    createCache(options) {
      live(this, 'createCache');
      return caches.create(this, `${this.#name}.createCache`, this.#cfg.dModel, options);
    }
  }

  class TransformerEncoderLayer extends Block {
    /** @param {import('./index').TransformerLayerOptions} options */
    constructor(options) { super('TransformerEncoderLayer', options); }

    /**
     * src [B, L, dModel] or [L, dModel]. Returns the output tensor (dims of src), or
     * { output, weights } with needWeights ([B, H, L, Lk] per head).
     */
    forward(src, options) {
      return backend.run(() => {
        const what = 'TransformerEncoderLayer.forward', id = live(this, 'forward');
        this[WEIGHTS_SENT]();
        const { x, batched, B, L } = blockInput('src', src, this.dModel, 'L');
        const o = plainObject('forward options', options, ['srcMask', 'srcKeyPaddingMask', 'isCausal', 'cache', 'needWeights', 'transfer']);
        const call = {
          x: x.data, dims: x.dims, batched, B, L, srcMask: readMask('options.srcMask', o.srcMask),
          srcKeyPaddingMask: readPadding('options.srcKeyPaddingMask', o.srcKeyPaddingMask), causal: bool('options.isCausal', o.isCausal, false),
          needWeights: bool('options.needWeights', o.needWeights, false),
        };
        const c = caches.use(this, what, o.cache, B);
        return caches.after(c, backend.call(what, [id, call, c ? c.id : 0], { transfer: bool('options.transfer', o.transfer, false), what }));
      });
    }
  }

  class TransformerDecoderLayer extends Block {
    /** @param {import('./index').TransformerLayerOptions} options */
    constructor(options) { super('TransformerDecoderLayer', options); }

    /**
     * tgt [B, T, dModel] or [T, dModel]; memory [B, S, dModel] or [S, dModel] (the same rank).
     * Returns the output tensor (dims of tgt), or { output, selfWeights, crossWeights } with needWeights.
     */
    forward(tgt, memory, options) {
      return backend.run(() => {
        const what = 'TransformerDecoderLayer.forward', id = live(this, 'forward');
        this[WEIGHTS_SENT]();
        const E = this.dModel;
        const { x, batched, B, L: T } = blockInput('tgt', tgt, E, 'T');
        const m = blockInput('memory', memory, E, 'S');
        if (m.batched !== batched) throw new RangeError(`memory must have the same rank as tgt (dims ${fmtDims(x.dims)}), got dims ${fmtDims(m.x.dims)}`);
        if (batched) expectDim('memory', m.x.dims, 0, B, 'the batch size of tgt');
        const o = plainObject('forward options', options, DECODER_FORWARD);
        const call = {
          tgt: x.data, memory: m.x.data, dims: x.dims, batched, B, T, S: m.L,
          tgtMask: readMask('options.tgtMask', o.tgtMask), memoryMask: readMask('options.memoryMask', o.memoryMask),
          tgtKeyPaddingMask: readPadding('options.tgtKeyPaddingMask', o.tgtKeyPaddingMask),
          memoryKeyPaddingMask: readPadding('options.memoryKeyPaddingMask', o.memoryKeyPaddingMask),
          tgtIsCausal: bool('options.tgtIsCausal', o.tgtIsCausal, false), memoryIsCausal: bool('options.memoryIsCausal', o.memoryIsCausal, false),
          needWeights: bool('options.needWeights', o.needWeights, false),
        };
        const c = caches.use(this, what, o.cache, B);
        return caches.after(c, backend.call(what, [id, call, c ? c.id : 0], { transfer: bool('options.transfer', o.transfer, false), what }));
      });
    }
  }

  return { TransformerEncoderLayer, TransformerDecoderLayer };
}

const maskDims = (batched, B, H, Lq, Lk) => ({ Lq, Lk, fullDims: batched ? [B, H, Lq, Lk] : [H, Lq, Lk], altDims: batched ? [[B * H, Lq, Lk]] : [] });
const weightsDims = (batched, B, H, Lq, Lk) => (batched ? [B, H, Lq, Lk] : [H, Lq, Lk]);

/** What runs where the runtime is. ctx: { rt, get(id, kind), cacheFor } (ops.js). */
export function blockOps({ rt, get, cacheFor }) {
  const create = (kind, Handle) => (given) => {
    const cfg = blockConfig(kind, given);  // again: the op sizes everything from it
    const { dModel, nhead, dimFeedforward, activation, layerNormEps, normFirst, bias } = cfg;
    const rec = { d_model: dModel, nhead, dim_feedforward: dimFeedforward, activation: ACTIVATION[activation.toUpperCase()],
      layer_norm_eps: layerNormEps, norm_first: normFirst, bias, weight_type: WEIGHT_TYPE[cfg.weightType.toUpperCase()] };
    return { handle: rt.withRecord('BlockConfig', rec, (p) => new rt.mod[Handle](p), `new ${kind}`), cfg, hasWeights: false };
  };
  const setWeights = (kind) => (id, arrays) => {
    const block = get(id, kind), what = `${kind}.setWeights`;
    const dimsOf = Object.fromEntries(ENTRIES[kind](block.cfg).map(([name, dims]) => [fieldOf(name), dims]));
    const fields = Object.keys(dimsOf), scaled = scaleFields(RECORD[kind]);
    // An Int8Array matrix comes with its <field>_scale (pre-quantized int8, int8 blocks only).
    const isScale = (f) => scaled.includes(f) && Object.hasOwn(dimsOf, f.slice(0, -6)) && arrays[f.slice(0, -6)] && block.cfg.weightType === 'int8';
    for (const f of Object.keys(arrays)) if (!Object.hasOwn(dimsOf, f) && !isScale(f)) throw new TypeError(`${what}: unknown entry ${JSON.stringify(f)}`);
    const present = [...fields, ...scaled].filter((f) => arrays[f]);
    for (const f of fields.filter((x) => arrays[x])) {
      const q = arrays[`${f}_scale`] !== undefined;
      expectArray(`${what}: ${f}`, arrays[f], [q ? Int8Array : Float32Array], product(dimsOf[f]));
      if (q) expectArray(`${what}: ${f}_scale`, arrays[`${f}_scale`], [Float32Array], dimsOf[f][0]);
    }
    const st = rt.stage([...present.map((f) => arrays[f]), recordBytes(RECORD[kind])], what);
    try {
      const rec = st.at(present.length);
      const values = Object.fromEntries([...fields, ...scaled].map((f) => [f, arrays[f] ? st.at(present.indexOf(f)) : 0]));
      rt.writeRecord(rec, RECORD[kind], values);
      rt.check(block.handle.setWeights(rec), what, () => block.handle.lastRequestBytes());
      block.hasWeights = true;
    } finally {
      rt.free(st.ptr);
    }
  };
  /** The block, checked to have weights. */
  const ready = (id, kind) => {
    const block = get(id, kind);
    if (!block.hasWeights) throw new Error(`${kind}.forward: weights are not set; call setWeights() first`);
    return block;
  };

  return {
    TransformerEncoderLayer: create('TransformerEncoderLayer', 'Encoder'),
    TransformerDecoderLayer: create('TransformerDecoderLayer', 'Decoder'),
    'TransformerEncoderLayer.setWeights': setWeights('TransformerEncoderLayer'),
    'TransformerDecoderLayer.setWeights': setWeights('TransformerDecoderLayer'),

    'TransformerEncoderLayer.forward'(id, call, cacheId) {
      const what = 'TransformerEncoderLayer.forward', block = ready(id, 'TransformerEncoderLayer');
      const { dModel: E, nhead: H } = block.cfg, { batched, B, L, needWeights } = call;
      expectCounts(what, { B, L });
      expectArray('src.data', call.x, [Float32Array], B * L * E);
      const cache = cacheFor(cacheId, id, what, L, B), Lk = cache.past + L;
      const mask = maskLayout('options.srcMask', call.srcMask, maskDims(batched, B, H, L, Lk));
      const kpm = paddingLayout('options.srcKeyPaddingMask', call.srcKeyPaddingMask, { B, Lk, batched });
      const n = B * L * E, nw = needWeights ? B * H * L * Lk : 0;
      const st = rt.stage([call.x, mask.data, kpm, n * 4, nw * 4, recordBytes('EncoderForward')], what);
      try {
        const at = (d) => (d ? st.at(d === mask.data ? 1 : 2) : 0);
        rt.writeRecord(st.at(5), 'EncoderForward', {
          batch: B, length: L, src: st.at(0), ...maskFields('', mask, kpm, call.causal, at), output: st.at(3),
          weights: needWeights ? st.at(4) : 0,
        });
        rt.check(block.handle.forward(st.at(5), cache.handle), what, () => block.handle.lastRequestBytes());
        const output = { data: rt.readF32(st.at(3), n), dims: call.dims };
        const result = needWeights ? { output, weights: { data: rt.readF32(st.at(4), nw), dims: weightsDims(batched, B, H, L, Lk) } } : output;
        return { result, cacheLength: cache.length() };
      } finally {
        rt.free(st.ptr);
      }
    },

    'TransformerDecoderLayer.forward'(id, call, cacheId) {
      const what = 'TransformerDecoderLayer.forward', block = ready(id, 'TransformerDecoderLayer');
      const { dModel: E, nhead: H } = block.cfg, { batched, B, T, S, needWeights } = call;
      expectCounts(what, { B, T, S });
      expectArray('tgt.data', call.tgt, [Float32Array], B * T * E);
      expectArray('memory.data', call.memory, [Float32Array], B * S * E);
      const cache = cacheFor(cacheId, id, what, T, B), Lk = cache.past + T;
      const cross = cache.handle ? cache.handle.crossLength() : 0;
      if (cross && cross !== S)
        throw new RangeError(`TransformerDecoderLayer.forward: options.cache holds a memory of length ${cross}, got memory of length ${S}; ` +
          'a cache keeps the memory it first saw (call cache.reset() for a new one)');
      const tMask = maskLayout('options.tgtMask', call.tgtMask, maskDims(batched, B, H, T, Lk));
      const mMask = maskLayout('options.memoryMask', call.memoryMask, maskDims(batched, B, H, T, S));
      const tPad = paddingLayout('options.tgtKeyPaddingMask', call.tgtKeyPaddingMask, { B, Lk, batched });
      const mPad = paddingLayout('options.memoryKeyPaddingMask', call.memoryKeyPaddingMask, { B, Lk: S, batched });
      const n = B * T * E, ns = needWeights ? B * H * T * Lk : 0, nc = needWeights ? B * H * T * S : 0;
      const parts = [call.tgt, call.memory, tMask.data, mMask.data, tPad, mPad, n * 4, ns * 4, nc * 4, recordBytes('DecoderForward')];
      const st = rt.stage(parts, what);
      try {
        const at = (d) => (d ? st.at(parts.indexOf(d)) : 0);
        rt.writeRecord(st.at(9), 'DecoderForward', {
          batch: B, tgt_length: T, memory_length: S, tgt: st.at(0), memory: st.at(1),
          ...maskFields('tgt_', tMask, tPad, call.tgtIsCausal, at), ...maskFields('memory_', mMask, mPad, call.memoryIsCausal, at),
          output: st.at(6), self_weights: needWeights ? st.at(7) : 0, cross_weights: needWeights ? st.at(8) : 0,
        });
        rt.check(block.handle.forward(st.at(9), cache.handle), what, () => block.handle.lastRequestBytes());
        const output = { data: rt.readF32(st.at(6), n), dims: call.dims };
        const result = !needWeights ? output : {
          output,
          selfWeights: { data: rt.readF32(st.at(7), ns), dims: weightsDims(batched, B, H, T, Lk) },
          crossWeights: { data: rt.readF32(st.at(8), nc), dims: weightsDims(batched, B, H, T, S) },
        };
        return { result, cacheLength: cache.length() };
      } finally {
        rt.free(st.ptr);
      }
    },
  };
}
