// LayerNorm (torch.nn.LayerNorm) around the Embind `Norm`: normalizes over the
// trailing dims given by normalizedShape, then scales by weight and adds bias.
import { weightArray } from './layer.js';
import { withNormConfig } from './layer-config.js';
import { Native, live } from './native.js';
import { MAX_HEAP, tooLarge } from './runtime.js';
import { bool, describe, fmtDims, plainObject, positiveInt, product, readArray, readEntries, sameDims, tensor } from './validate.js';

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

export function makeLayerNorm(rt) {
  class LayerNorm extends withNormConfig(Native) {
    #cfg;
    /** @param {import('./index').LayerNormOptions} options */
    constructor(options) {
      const cfg = normConfig(options);
      rt.checkAlive();
      const handle = new rt.mod.Norm(product(cfg.normalizedShape), cfg.eps);
      super(cfg, rt, 'LayerNorm', handle);
      this.#cfg = cfg;
      try {
        rt.check(handle.setWeights(0, 0), 'LayerNorm', () => 3 * product(cfg.normalizedShape) * 4);  // PyTorch's init: ones, zeros
      } catch (e) {
        this.dispose();
        throw e;
      }
    }

    /** Copies in { weight, bias } (PyTorch's state_dict of the module), each a Float32Array or a tensor of normalizedShape. */
    setWeights(stateDict) {
      const handle = live(this, 'setWeights');
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
      const st = rt.stage(arrays, 'LayerNorm.setWeights');
      try {
        rt.check(handle.setWeights(st.at(0), bias ? st.at(1) : 0), 'LayerNorm.setWeights', () => 2 * product(shape) * 4);
      } finally {
        rt.free(st.ptr);
      }
    }

    /** input [..., ...normalizedShape] -> a tensor of the same dims. options: none yet ({} or undefined). */
    forward(input, options) {
      const handle = live(this, 'forward');
      const shape = this.#cfg.normalizedShape;
      const x = tensor('input', input, { shapeHint: `dims [..., ${shape.join(', ')}]` });
      plainObject('LayerNorm.forward options', options, []);
      if (x.dims.length < shape.length || !sameDims(x.dims.slice(x.dims.length - shape.length), shape))
        throw new RangeError(`input must have dims [..., ${shape.join(', ')}] (ending in normalizedShape), got ${fmtDims(x.dims)}`);
      const n = x.data.length, rows = n / product(shape);
      const st = rt.stage([x.data, n * 4], 'LayerNorm.forward');
      try {
        rt.check(handle.forward(rows, st.at(0), st.at(1)), 'LayerNorm.forward', () => 0);
        return { data: rt.readF32(st.at(1), n), dims: x.dims };
      } finally {
        rt.free(st.ptr);
      }
    }
  }
  return LayerNorm;
}
