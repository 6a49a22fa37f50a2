// LayerNorm (torch.nn.LayerNorm) around the Embind `LayerNorm`: normalizes over the
// trailing dims given by normalizedShape, then scales by weight and adds bias.
// defineLayerNorm: the class where calls are made; normOps: what runs where the runtime is.
// Both are built from what every row norm shares (defineNormClass, normOpsOf), which
// RMSNorm (rmsnorm.js) uses too.
import { weightArray } from './layer.js';
import { positiveFloat32 } from './modern.js';
import { withNormConfig } from './layer-config.js';
import { checkData } from './masks.js';
import { MAX_HEAP, recordBytes, tooLarge } from './runtime.js';
import { bool, describe, expectArray, fmtDims, plainObject, positiveInt, product, readArray, readEntries, sameDims, tensor } from './validate.js';

/**
 * The options every row norm reads (what: its class name): normalizedShape, eps (default
 * defaultEps) and elementwiseAffine, and the other option names in `more`. Returns
 * { o (the options read), shape, eps, elementwiseAffine }.
 */
export function readNormOptions(what, options, more, defaultEps) {
  if (options === undefined || options === null) throw new TypeError(`${what}: options { normalizedShape } are required`);
  const o = plainObject(`${what} options`, options, ['normalizedShape', 'eps', 'elementwiseAffine', ...more]);
  const s = o.normalizedShape;
  let shape;
  if (typeof s === 'number') shape = [positiveInt('normalizedShape', s)];
  else if (Array.isArray(s) && (shape = readArray('normalizedShape', s, 16, 'a non-empty array of positive integers')).length > 0)
    shape.forEach((d, i) => positiveInt(`normalizedShape[${i}]`, d));
  else throw new TypeError(`normalizedShape must be a positive integer or a non-empty array of them, got ${describe(s)}`);
  const eps = o.eps === undefined ? defaultEps : o.eps;
  if (typeof eps !== 'number') throw new TypeError(`eps must be a positive number, got ${describe(eps)}`);
  if (!(eps > 0) || !Number.isFinite(eps)) throw new RangeError(`eps must be a positive number, got ${describe(eps)}`);
  positiveFloat32('eps', eps);
  const elementwiseAffine = bool('elementwiseAffine', o.elementwiseAffine, true);
  // The layer keeps its weights (and makes ones for the initial weight): at most three rows.
  const bytes = 3 * product(shape) * 4;
  if (!(bytes < MAX_HEAP)) throw tooLarge(`${what} with normalizedShape ${fmtDims(shape)}`, bytes, 'memory for its weights');
  return { o, shape, eps, elementwiseAffine };
}

/** Checks LayerNorm's options; returns the frozen configuration. */
export function normConfig(options) {
  const { o, shape, eps, elementwiseAffine } = readNormOptions('LayerNorm', options, ['bias'], 1e-5);
  const bias = bool('bias', o.bias, true);
  return Object.freeze({ normalizedShape: Object.freeze(shape), eps, elementwiseAffine, bias: elementwiseAffine && bias });
}

/**
 * What a row norm class is: name; hasBias: whether it has a bias option; config(options)
 * -> its frozen configuration (normalizedShape, eps, elementwiseAffine, bias if it has one), which
 * is also what the backend is sent to make it; mixin:
 * its getters (layer-config.js); make(rt, cfg, width) -> the Embind handle.
 */
export const LAYER_NORM = Object.freeze({
  name: 'LayerNorm',
  hasBias: true,
  config: normConfig,
  mixin: withNormConfig,
  make: (rt, cfg, width) => rt.withRecord('NormConfig', { width, eps: cfg.eps }, (p) => new rt.mod.LayerNorm(p), 'new LayerNorm'),
});

/** The public class of a row norm (spec: LAYER_NORM, RMS_NORM) over a backend. ctx: { backend, Native, live } (api.js). */
export function defineNormClass({ backend, Native, live }, spec) {
  const { name } = spec;
  const Norm = class extends spec.mixin(Native) {
    #cfg;
    constructor(options) {
      const cfg = spec.config(options);
      super(cfg, name, name, { ...cfg, normalizedShape: [...cfg.normalizedShape] });
      this.#cfg = cfg;
    }

    /** Copies in { weight, bias } (PyTorch's state_dict of the module), each a Float32Array or a tensor of normalizedShape. */
    setWeights(stateDict, options) {
      return backend.run(() => {
        const id = live(this, 'setWeights');
        const { normalizedShape: shape, elementwiseAffine, bias = false } = this.#cfg;
        const at = `${name}.setWeights`;
        const sd = readEntries(`${at}: stateDict`, stateDict, bias ? 'an object { weight, bias }' : 'an object { weight }');
        if (!elementwiseAffine) throw new TypeError(`${at}: the layer was created with elementwiseAffine: false and has no weights`);
        const names = bias ? ['weight', 'bias'] : ['weight'];
        for (const k of Object.keys(sd))
          if (!names.includes(k)) {
            const why = k === 'bias' && spec.hasBias ? ', but the layer was created with bias: false' : `; expected ${names.join(', ')}`;
            throw new TypeError(`${at}: unknown entry "${k}"${why}`);
          }
        const arrays = names.map((n) => {
          if (sd[n] === undefined || sd[n] === null)
            throw new TypeError(`${at}: missing ${n} (${product(shape)} = ${fmtDims(shape)} floats)`);
          return weightArray(n, sd[n], shape, at);
        });
        const transfer = bool('options.transfer', plainObject(`${at} options`, options, ['transfer']).transfer, false);
        return backend.call(at, [id, arrays[0], arrays[1] ?? null], { transfer, what: at });
      });
    }

    /** input [..., ...normalizedShape] -> a tensor of the same dims. options: { transfer }. */
    forward(input, options) {
      return backend.run(() => {
        const id = live(this, 'forward');
        const shape = this.#cfg.normalizedShape;
        const x = tensor('input', input, { shapeHint: `dims [..., ${shape.join(', ')}]` });
        const o = plainObject(`${name}.forward options`, options, ['transfer']);
        if (x.dims.length < shape.length || !sameDims(x.dims.slice(x.dims.length - shape.length), shape))
          throw new RangeError(`input must have dims [..., ${shape.join(', ')}] (ending in normalizedShape), got ${fmtDims(x.dims)}`);
        return backend.call(`${name}.forward`, [id, x], { transfer: bool('options.transfer', o.transfer, false), what: `${name}.forward` });
      });
    }
  };
  Object.defineProperty(Norm, 'name', { value: name });
  return Norm;
}

/** The public LayerNorm class over a backend. ctx: { backend, Native, live } (api.js). */
export const defineLayerNorm = (ctx) => defineNormClass(ctx, LAYER_NORM);

/** What a row norm (spec) runs where the runtime is. ctx: { rt, get(id, kind) } (ops.js). */
export function normOpsOf({ rt, get }, spec) {
  const { name } = spec;
  const width = (cfg) => product(cfg.normalizedShape);
  return {
    [name](given) {
      const cfg = spec.config(given);  // again: the op sizes everything from it
      return { handle: spec.make(rt, cfg, width(cfg)), cfg };
    },

    [`${name}.setWeights`](id, weight, bias) {
      const norm = get(id, name), what = `${name}.setWeights`;
      expectArray('weight', weight, [Float32Array], width(norm.cfg));
      if (bias !== null && bias !== undefined) {
        if (!norm.cfg.bias) throw new TypeError(`${what}: the layer has no bias`);
        expectArray('bias', bias, [Float32Array], width(norm.cfg));
      }
      const st = rt.stage([weight, bias, recordBytes('NormWeights')], what);
      try {
        rt.writeRecord(st.at(2), 'NormWeights', { weight: st.at(0), bias: bias ? st.at(1) : 0 });
        rt.check(norm.handle.setWeights(st.at(2)), what, () => norm.handle.requestBytes());
      } finally {
        rt.free(st.ptr);
      }
    },

    [`${name}.forward`](id, x) {
      const norm = get(id, name), what = `${name}.forward`;
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

/** What LayerNorm runs where the runtime is. ctx: { rt, get(id, kind) } (ops.js). */
export const normOps = (ctx) => normOpsOf(ctx, LAYER_NORM);
