// TransformerEncoderLayer (torch.nn.TransformerEncoderLayer, batch_first=True,
// dropout 0) around the Embind `Encoder`. Weights by PyTorch's state_dict names
// (self_attn.in_proj_weight, linear1.weight, norm1.weight, ...), as
// parseSafetensors returns them.
import { weightArray } from './layer.js';
import { NativeLayer, live } from './native.js';
import { attnMask, keyPaddingMask } from './masks.js';
import { bool, describe, expectDim, fmtDims, plainObject, positiveInt, product, tensor } from './validate.js';

const ENCODER_OPTIONS = ['dModel', 'nhead', 'dimFeedforward', 'activation', 'layerNormEps', 'normFirst', 'bias'];
const ACTIVATIONS = ['relu', 'gelu'];

/** Checks TransformerEncoderLayer options; returns the frozen configuration. */
function encoderConfig(options) {
  if (options === undefined || options === null)
    throw new TypeError('TransformerEncoderLayer: options { dModel, nhead } are required');
  const o = plainObject('TransformerEncoderLayer options', options, ENCODER_OPTIONS);
  const dModel = positiveInt('dModel', o.dModel), nhead = positiveInt('nhead', o.nhead);
  if (dModel % nhead !== 0) throw new RangeError(`dModel must be divisible by nhead, got dModel ${dModel} and nhead ${nhead}`);
  const dimFeedforward = o.dimFeedforward === undefined ? 2048 : positiveInt('dimFeedforward', o.dimFeedforward);
  const activation = o.activation === undefined ? 'relu' : o.activation;
  if (!ACTIVATIONS.includes(activation))
    throw new TypeError(`activation must be 'relu' or 'gelu', got ${describe(activation)}`);
  const layerNormEps = o.layerNormEps === undefined ? 1e-5 : o.layerNormEps;
  if (typeof layerNormEps !== 'number' || !(layerNormEps > 0) || !Number.isFinite(layerNormEps))
    throw new RangeError(`layerNormEps must be a positive number, got ${describe(layerNormEps)}`);
  return Object.freeze({ dModel, nhead, dimFeedforward, activation, layerNormEps, normFirst: bool('normFirst', o.normFirst, false),
    bias: bool('bias', o.bias, true), embedDim: dModel, numHeads: nhead, kdim: dModel, vdim: dModel, headDim: dModel / nhead });
}

/** The state_dict entries of an encoder layer, in the order of the Embind weight table, with their dims. */
function encoderEntries({ dModel: E, dimFeedforward: F }) {
  return [
    ['self_attn.in_proj_weight', [3 * E, E]], ['self_attn.in_proj_bias', [3 * E], true],
    ['self_attn.out_proj.weight', [E, E]], ['self_attn.out_proj.bias', [E], true],
    ['linear1.weight', [F, E]], ['linear1.bias', [F], true], ['linear2.weight', [E, F]], ['linear2.bias', [E], true],
    ['norm1.weight', [E]], ['norm1.bias', [E], true], ['norm2.weight', [E]], ['norm2.bias', [E], true],
  ];
}

export function makeTransformerEncoderLayer(rt) {
  class TransformerEncoderLayer extends NativeLayer {
    #cfg;
    #hasWeights = false;

    /** @param {import('./index').TransformerEncoderLayerOptions} options */
    constructor(options) {
      const cfg = encoderConfig(options);
      rt.checkAlive();
      super(cfg, rt, 'TransformerEncoderLayer', new rt.mod.Encoder(cfg.dModel, cfg.nhead, cfg.dimFeedforward,
        ACTIVATIONS.indexOf(cfg.activation), cfg.layerNormEps, cfg.normFirst, cfg.bias));
      this.#cfg = cfg;
    }

    get dModel() { return this.#cfg.dModel; }
    get nhead() { return this.#cfg.nhead; }
    get dimFeedforward() { return this.#cfg.dimFeedforward; }
    get activation() { return this.#cfg.activation; }
    get layerNormEps() { return this.#cfg.layerNormEps; }
    get normFirst() { return this.#cfg.normFirst; }

    /**
     * Copies in the layer's PyTorch state_dict ({ 'self_attn.in_proj_weight': ..., 'linear1.weight': ..., ... }),
     * each entry a Float32Array or a { data, dims } tensor, e.g. parseSafetensors(bytes, { prefix: 'layers.0.' }).
     */
    setWeights(stateDict) {
      const handle = live(this, 'setWeights');
      if (stateDict === null || typeof stateDict !== 'object' || Array.isArray(stateDict) || ArrayBuffer.isView(stateDict))
        throw new TypeError(`TransformerEncoderLayer.setWeights: stateDict must be an object of Float32Arrays or tensors, got ${describe(stateDict)}`);
      const entries = encoderEntries(this.#cfg), names = entries.map((e) => e[0]);
      for (const k of Object.keys(stateDict)) {
        if (names.includes(k) || stateDict[k] === undefined) continue;
        const suffix = names.find((n) => k.endsWith(`.${n}`));
        const hint = suffix ? ` (strip the prefix "${k.slice(0, -suffix.length)}": parseSafetensors(bytes, { prefix }))` : '';
        throw new TypeError(`TransformerEncoderLayer.setWeights: unknown entry "${k}"${hint}; expected ${names.join(', ')}`);
      }
      const arrays = entries.map(([name, dims, isBias]) => {
        const v = stateDict[name];
        if (v === undefined || v === null) {
          if (isBias && !this.#cfg.bias) return null;
          throw new TypeError(`TransformerEncoderLayer.setWeights: missing ${name} (${product(dims)} = ${fmtDims(dims)} floats)`);
        }
        if (isBias && !this.#cfg.bias) throw new TypeError(`TransformerEncoderLayer.setWeights: ${name} given, but the layer was created with bias: false`);
        return weightArray(name, v, dims, 'TransformerEncoderLayer.setWeights');
      });
      const st = rt.stage([...arrays, arrays.length * 4], 'TransformerEncoderLayer.setWeights');
      try {
        const table = st.at(arrays.length);  // the heap offset of each entry, 0 when absent
        rt.writeU32(table, arrays.map((a, i) => (a ? st.at(i) : 0)));
        rt.check(handle.setWeights(table), 'TransformerEncoderLayer.setWeights', () => handle.lastRequestBytes());
        this.#hasWeights = true;
      } finally {
        rt.free(st.ptr);
      }
    }

    /**
     * @param {import('./index').Tensor} src [B, L, dModel] or [L, dModel]
     * @param {import('./index').EncoderForwardOptions} [options]
     * @returns {import('./index').Tensor} [B, L, dModel] (or [L, dModel])
     */
    forward(src, options) {
      const handle = live(this, 'forward');
      if (!this.#hasWeights) throw new Error('TransformerEncoderLayer.forward: weights are not set; call setWeights() first');
      const { dModel: E, nhead: H } = this.#cfg;
      const x = tensor('src', src, { ranks: [2, 3], shapeHint: `dims [B, L, ${E}] or [L, ${E}]` });
      const batched = x.dims.length === 3, nb = batched ? 1 : 0;
      expectDim('src', x.dims, nb + 1, E, 'dModel');
      const B = batched ? x.dims[0] : 1, L = x.dims[nb];
      const o = plainObject('forward options', options, ['srcMask', 'srcKeyPaddingMask', 'isCausal']);
      const mask = attnMask('options.srcMask', o.srcMask, { Lq: L, Lk: L, fullDims: batched ? [B, H, L, L] : [H, L, L], altDims: batched ? [[B * H, L, L]] : [] });
      const kpm = keyPaddingMask('options.srcKeyPaddingMask', o.srcKeyPaddingMask, { B, Lk: L, batched });
      const causal = bool('options.isCausal', o.isCausal, false);
      const n = B * L * E;
      const st = rt.stage([x.data, mask.data, kpm, n * 4], 'TransformerEncoderLayer.forward');
      try {
        const s = handle.forward(B, L, st.at(0), mask.kind, mask.data ? st.at(1) : 0, mask.broadcast, kpm ? st.at(2) : 0, causal, st.at(3));
        rt.check(s, 'TransformerEncoderLayer.forward', () => handle.lastRequestBytes());
        return { data: rt.readF32(st.at(3), n), dims: x.dims };
      } finally {
        rt.free(st.ptr);
      }
    }
  }
  return TransformerEncoderLayer;
}
