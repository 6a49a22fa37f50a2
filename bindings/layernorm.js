// LayerNorm (torch.nn.LayerNorm) around the Embind `LayerNorm`: normalizes over the
// trailing dims given by normalizedShape, then scales by weight and adds bias.
// defineLayerNorm: the class where calls are made; normOps: what runs where the runtime is.
import { weightArray } from './layer.js';
import { withNormConfig } from './layer-config.js';
import { checkData } from './masks.js';
import { MAX_HEAP, recordBytes, tooLarge } from './runtime.js';
import { bool, describe, expectArray, fmtDims, plainObject, positiveInt, product, readArray, readEntries, sameDims, tensor } from './validate.js';

/** Checks LayerNorm's options; returns the frozen configuration. */
export function normConfig(options) {
  if (options === undefined || options === null) throw new TypeError('LayerNorm: options { normalizedShape } are required');
  const o = plainObject('LayerNorm options', options, ['normalizedShape', 'eps', 'elementwiseAffine', 'bias']);
  const s = o.normalizedShape;
  let shape;
  if (typeof s === 'number') shape = [positiveInt('normalizedShape', s)];
  else if (Array.isArray(s) && (shape = readArray('normalizedShape', s, 16, 'a non-empty array of positive integers')).length > 0)
    shape.forEach((d, i) => positiveInt(`normalizedShape[${i}]`, d));
  else throw new TypeError(`normalizedShape must be a positive integer or a non-empty array of them, got ${describe(s)}`);
  const eps = o.eps === undefined ? 1e-5 : o.eps;
  if (typeof eps !== 'number') throw new TypeError(`eps must be a positive number, got ${describe(eps)}`);
  if (!(eps > 0) || !Number.isFinite(eps)) throw new RangeError(`eps must be a positive number, got ${describe(eps)}`);
  const elementwiseAffine = bool('elementwiseAffine', o.elementwiseAffine, true);
  const bias = bool('bias', o.bias, true);
  // The layer keeps a weight and a bias of that many floats (and makes ones for PyTorch's initial weight).
  const bytes = 3 * product(shape) * 4;
  if (!(bytes < MAX_HEAP)) throw tooLarge(`LayerNorm with normalizedShape ${fmtDims(shape)}`, bytes, 'memory for its weights');
  return Object.freeze({ normalizedShape: Object.freeze(shape), eps, elementwiseAffine, bias: elementwiseAffine && bias });
}

/** The public class over a backend. ctx: { backend, Native, live } (api.js). */
export function defineLayerNorm({ backend, Native, live }) {
  class LayerNorm extends withNormConfig(Native) {
    #cfg;
    /** @param {import('./index').LayerNormOptions} options */
    constructor(options) {
      const cfg = normConfig(options);
      const { normalizedShape, eps, elementwiseAffine, bias } = cfg;
      super(cfg, 'LayerNorm', 'LayerNorm', { normalizedShape: [...normalizedShape], eps, elementwiseAffine, bias });
      this.#cfg = cfg;
    }

    /** Copies in { weight, bias } (PyTorch's state_dict of the module), each a Float32Array or a tensor of normalizedShape. */
    setWeights(stateDict, options) {
      return backend.run(() => {
        const id = live(this, 'setWeights');
        const { normalizedShape: shape, elementwiseAffine, bias } = this.#cfg;
        const sd = readEntries('LayerNorm.setWeights: stateDict', stateDict, 'an object { weight, bias }');
        if (!elementwiseAffine) throw new TypeError('LayerNorm.setWeights: the layer was created with elementwiseAffine: false and has no weights');
        const names = bias ? ['weight', 'bias'] : ['weight'];
        for (const k of Object.keys(sd))
          if (!names.includes(k)) {
            const why = k === 'bias' ? ', but the layer was created with bias: false' : `; expected ${names.join(', ')}`;
            throw new TypeError(`LayerNorm.setWeights: unknown entry "${k}"${why}`);
          }
        const arrays = names.map((name) => {
          if (sd[name] === undefined || sd[name] === null)
            throw new TypeError(`LayerNorm.setWeights: missing ${name} (${product(shape)} = ${fmtDims(shape)} floats)`);
          return weightArray(name, sd[name], shape, 'LayerNorm.setWeights');
        });
        const transfer = bool('options.transfer', plainObject('LayerNorm.setWeights options', options, ['transfer']).transfer, false);
        return backend.call('LayerNorm.setWeights', [id, arrays[0], arrays[1] ?? null], { transfer, what: 'LayerNorm.setWeights' });
      });
    }

    /** input [..., ...normalizedShape] -> a tensor of the same dims. options: { transfer }. */
    forward(input, options) {
      return backend.run(() => {
        const id = live(this, 'forward');
        const shape = this.#cfg.normalizedShape;
        const x = tensor('input', input, { shapeHint: `dims [..., ${shape.join(', ')}]` });
        const o = plainObject('LayerNorm.forward options', options, ['transfer']);
        if (x.dims.length < shape.length || !sameDims(x.dims.slice(x.dims.length - shape.length), shape))
          throw new RangeError(`input must have dims [..., ${shape.join(', ')}] (ending in normalizedShape), got ${fmtDims(x.dims)}`);
        return backend.call('LayerNorm.forward', [id, x], { transfer: bool('options.transfer', o.transfer, false), what: 'LayerNorm.forward' });
      });
    }
  }
  return LayerNorm;
}

/** What runs where the runtime is. ctx: { rt, get(id, kind) } (ops.js). */
export function normOps({ rt, get }) {
  const width = (cfg) => product(cfg.normalizedShape);
  return {
    LayerNorm(given) {
      const cfg = normConfig(given);  // again: the op sizes everything from it
      return { handle: rt.withRecord('NormConfig', { width: width(cfg), eps: cfg.eps }, (p) => new rt.mod.LayerNorm(p), 'new LayerNorm'), cfg };
    },

    'LayerNorm.setWeights'(id, weight, bias) {
      const norm = get(id, 'LayerNorm'), what = 'LayerNorm.setWeights';
      expectArray('weight', weight, [Float32Array], width(norm.cfg));
      if (bias !== null && bias !== undefined) expectArray('bias', bias, [Float32Array], width(norm.cfg));
      const st = rt.stage([weight, bias, recordBytes('NormWeights')], what);
      try {
        rt.writeRecord(st.at(2), 'NormWeights', { weight: st.at(0), bias: bias ? st.at(1) : 0 });
        rt.check(norm.handle.setWeights(st.at(2)), what, () => norm.handle.requestBytes());
      } finally {
        rt.free(st.ptr);
      }
    },

    'LayerNorm.forward'(id, x) {
      const norm = get(id, 'LayerNorm'), what = 'LayerNorm.forward';
      checkData('input', x, [Float32Array]);
      const n = x.data.length, rows = n / width(norm.cfg);
      if (!Number.isInteger(rows)) throw new RangeError('input: its size is not a multiple of normalizedShape');
      const st = rt.stage([x.data, n * 4, recordBytes('NormForward')], what);
      try {
        rt.writeRecord(st.at(2), 'NormForward', { rows, x: st.at(0), y: st.at(1) });
        rt.check(norm.handle.forward(st.at(2)), what, () => norm.handle.requestBytes());
        return { data: rt.readF32(st.at(1), n), dims: x.dims };
      } finally {
        rt.free(st.ptr);
      }
    },
  };
}
