// FeedForward, the position-wise feed-forward block of a Transformer, around the
// Embind `FeedForward`:
//   plain (gated: false): linear2(act(linear1(x)))     PyTorch's names linear1.*, linear2.*
//   gated (gated: true):  down_proj(act(gate_proj(x)) * up_proj(x))   Hugging Face's (Llama, Gemma)
// act: 'relu', 'gelu' (exact, erf), 'gelu_tanh' (the tanh approximation), 'silu'.
// defineFeedForward: the class where calls are made; feedForwardOps: what runs where the runtime is.
import { ACTIVATION, WEIGHT_TYPE } from './abi.js';
import { scaleFields, weightArray } from './layer.js';
import { checkStorable, quantizedWeight, readWeightType, splitScales } from './modern.js';
import { withFeedForwardConfig } from './layer-config.js';
import { checkData } from './masks.js';
import { MAX_HEAP, recordBytes, tooLarge } from './runtime.js';
import { bool, describe, expectArray, fmtDims, plainObject, positiveInt, product, readEntries, tensor } from './validate.js';

export const FF_OPTIONS = ['dModel', 'dimFeedforward', 'activation', 'gated', 'bias', 'weightType'];
const ACTIVATIONS = ['relu', 'gelu', 'gelu_tanh', 'silu'];  // ACTIVATION (abi.js) by name

/** Checks FeedForward's options; returns the frozen configuration. */
export function feedForwardConfig(options) {
  if (options === undefined || options === null) throw new TypeError('FeedForward: options { dModel, dimFeedforward } are required');
  const o = plainObject('FeedForward options', options, FF_OPTIONS);
  const dModel = positiveInt('dModel', o.dModel), dimFeedforward = positiveInt('dimFeedforward', o.dimFeedforward);
  const activation = o.activation === undefined ? 'relu' : o.activation;
  if (!ACTIVATIONS.includes(activation))
    throw new TypeError(`activation must be one of ${ACTIVATIONS.map((a) => `'${a}'`).join(', ')}, got ${describe(activation)}`);
  const gated = bool('gated', o.gated, false), bias = bool('bias', o.bias, true);
  const weightType = readWeightType('weightType', o.weightType);
  // The packed weights: two or three [dimFeedforward, dModel] matrices, columns padded to 8.
  const bytes = 4 * (gated ? 3 : 2) * dModel * (dimFeedforward + 8);
  if (!(bytes < MAX_HEAP))
    throw tooLarge(`FeedForward with dModel ${dModel} and dimFeedforward ${dimFeedforward}`, bytes, 'memory for its weights');
  return Object.freeze({ dModel, dimFeedforward, activation, gated, bias, weightType });
}

const camel = (s) => s.replace(/[._]([a-z0-9])/g, (_, c) => c.toUpperCase());
const PLAIN = [['linear1', 'up', false], ['linear2', 'down', true]];
const GATED = [['gate_proj', 'gate', false], ['up_proj', 'up', false], ['down_proj', 'down', true]];

/**
 * The state_dict entries of a configuration: { name (PyTorch's), alias (camelCase), dims,
 * field (of the FeedForwardWeights record) }, biases only with bias.
 */
export function entries({ dModel: E, dimFeedforward: F, gated, bias }) {
  const out = [];
  for (const [module, role, isDown] of gated ? GATED : PLAIN) {
    const field = `${role}_`;
    out.push({ name: `${module}.weight`, dims: isDown ? [E, F] : [F, E], field: `${field}weight` });
    if (bias) out.push({ name: `${module}.bias`, dims: [isDown ? E : F], field: `${field}bias` });
  }
  for (const e of out) e.alias = camel(e.name);
  return out;
}

/** The TypeError message for a weight name k that is not an entry of cfg's state_dict (known: entries(cfg)). */
function unknownWeight(cfg, k, known) {
  const at = 'FeedForward.setWeights';
  const names = known.map((e) => e.name).join(', ');
  const expected = `expected ${names} (or ${known.map((e) => e.alias).join(', ')})`;
  const mine = entries({ ...cfg, bias: true }).find((e) => e.name === k || e.alias === k);
  if (mine) return `${at}: "${k}" given, but the layer was created with bias: false`;
  const other = entries({ ...cfg, gated: !cfg.gated, bias: true }).find((e) => e.name === k || e.alias === k);
  if (other) return `${at}: unknown weight "${k}": that is a ${cfg.gated ? 'plain' : 'gated'} feed-forward's; this one has gated: ${cfg.gated} and takes ${names}`;
  const suffix = known.find((e) => k.endsWith(`.${e.name}`));
  if (suffix) return `${at}: unknown weight "${k}" (strip the prefix "${k.slice(0, -suffix.name.length)}": parseSafetensors(bytes, { prefix })); ${expected}`;
  const loose = (s) => s.replace(/[._]/g, '').toLowerCase();
  const guess = known.find((e) => loose(e.name) === loose(k));
  return `${at}: unknown weight "${k}"${guess ? ` (did you mean ${guess.name}?)` : ''}; ${expected}`;
}

/** setWeights' arrays by record field, every entry checked against cfg (at: the call named in errors). */
export function readWeights(cfg, stateDict, at = 'FeedForward.setWeights') {
  const { weights: sd, scales } = splitScales(readEntries(`${at}: weights`, stateDict, 'an object of Float32Arrays or tensors'));
  const known = entries(cfg);
  const given = new Map();  // entry -> the name it was given under
  for (const k of Object.keys(sd)) {
    const e = known.find((x) => x.name === k || x.alias === k);
    if (e === undefined) throw new TypeError(unknownWeight(cfg, k, known));
    if (given.has(e)) throw new TypeError(`${at}: "${given.get(e)}" and "${k}" are the same weight; give it once`);
    given.set(e, k);
  }
  const arrays = {};
  for (const e of known) {
    const k = given.get(e), v = k === undefined ? undefined : sd[k];
    if (v === undefined || v === null)
      throw new TypeError(`${at}: missing ${e.name} (${e.alias}: a Float32Array of ${product(e.dims)} = ${fmtDims(e.dims)} floats)`);
    if (Object.hasOwn(scales, k)) {  // pre-quantized int8 (compressed-tensors)
      if (e.dims.length !== 2) throw new TypeError(`${at}: ${k}_scale given, but only weight matrices can be pre-quantized`);
      const q = quantizedWeight(at, k, v, scales[k], e.dims, cfg.weightType);
      arrays[e.field] = q.data;
      arrays[`${e.field}_scale`] = q.scale;
    } else {
      const data = weightArray(k, v, e.dims, at);
      arrays[e.field] = e.dims.length === 2 ? checkStorable(at, k, data, cfg.weightType) : data;
    }
  }
  return arrays;
}

/** The public class over a backend. ctx: { backend, Native, live } (api.js). */
export function defineFeedForward({ backend, Native, live }) {
  class FeedForward extends withFeedForwardConfig(Native) {
    #cfg;
    #weightsSent = false;  // setWeights succeeded (this thread) or was sent (a worker answers in order)

    /** @param {import('./index').FeedForwardOptions} options */
    constructor(options) {
      const cfg = feedForwardConfig(options);
      super(cfg, 'FeedForward', 'FeedForward', { ...cfg });
      this.#cfg = cfg;
    }

    /**
     * Copies the weights in, by PyTorch's / Hugging Face's names (linear1.weight, ... or
     * gate_proj.weight, up_proj.weight, down_proj.weight, ...) or camelCase ones.
     */
    setWeights(weights, options) {
      return backend.run(() => {
        const id = live(this, 'setWeights');
        const arrays = readWeights(this.#cfg, weights);
        const transfer = bool('options.transfer', plainObject('FeedForward.setWeights options', options, ['transfer']).transfer, false);
        const done = backend.call('FeedForward.setWeights', [id, arrays], { transfer, what: 'FeedForward.setWeights' });
        this.#weightsSent = true;
        return done;
      });
    }

    /** x [..., dModel] (e.g. [B, L, dModel] or [L, dModel]) -> a tensor of the same dims. options: { transfer }. */
    forward(input, options) {
      return backend.run(() => {
        const id = live(this, 'forward');
        if (!this.#weightsSent) throw new Error('FeedForward.forward: weights are not set; call setWeights() first');
        const E = this.#cfg.dModel;
        const x = tensor('input', input, { shapeHint: `dims [..., ${E}]` });
        const o = plainObject('FeedForward.forward options', options, ['transfer']);
        if (x.dims.length < 1 || x.dims[x.dims.length - 1] !== E)
          throw new RangeError(`input must have dims [..., ${E}] (ending in dModel), got ${fmtDims(x.dims)}`);
        return backend.call('FeedForward.forward', [id, x], { transfer: bool('options.transfer', o.transfer, false), what: 'FeedForward.forward' });
      });
    }
  }
  return FeedForward;
}

export const WEIGHT_FIELDS = ['gate_weight', 'gate_bias', 'up_weight', 'up_bias', 'down_weight', 'down_bias'];

/**
 * Where the runtime is: readWeights' arrays checked against cfg again: a Float32Array per
 * field, or (a matrix) an Int8Array with a `<field>_scale` of one float per row.
 */
export function checkFeedForwardArrays(what, cfg, arrays) {
  const known = entries(cfg);
  for (const f of Object.keys(arrays)) {
    const e = known.find((x) => x.field === f || `${x.field}_scale` === f);
    if (!e || (f !== e.field && (!arrays[e.field] || cfg.weightType !== 'int8'))) throw new TypeError(`${what}: unknown weight ${JSON.stringify(f)}`);
  }
  for (const e of known) {
    const scaled = arrays[`${e.field}_scale`] !== undefined;
    expectArray(`${what}: ${e.field}`, arrays[e.field], scaled ? [Int8Array] : [Float32Array], product(e.dims));
    if (scaled) expectArray(`${what}: ${e.field}_scale`, arrays[`${e.field}_scale`], [Float32Array], e.dims[0]);
  }
}

/** What runs where the runtime is. ctx: { rt, get(id, kind) } (ops.js). */
export function feedForwardOps({ rt, get }) {
  return {
    FeedForward(given) {
      const cfg = feedForwardConfig(given);  // again: the op sizes everything from it
      const rec = { d_model: cfg.dModel, dim_feedforward: cfg.dimFeedforward, activation: ACTIVATION[cfg.activation.toUpperCase()],
        gated: cfg.gated, bias: cfg.bias, weight_type: WEIGHT_TYPE[cfg.weightType.toUpperCase()] };
      return { handle: rt.withRecord('FeedForwardConfig', rec, (p) => new rt.mod.FeedForward(p), 'new FeedForward'), cfg, hasWeights: false };
    },

    'FeedForward.setWeights'(id, arrays) {
      const ff = get(id, 'FeedForward'), what = 'FeedForward.setWeights';
      checkFeedForwardArrays(what, ff.cfg, arrays);
      const fields = Object.keys(arrays);
      const st = rt.stage([...fields.map((f) => arrays[f]), recordBytes('FeedForwardWeights')], what);
      try {
        const rec = st.at(fields.length);
        const values = Object.fromEntries([...WEIGHT_FIELDS, ...scaleFields('FeedForwardWeights')].map((f) => [f, fields.includes(f) ? st.at(fields.indexOf(f)) : 0]));
        rt.writeRecord(rec, 'FeedForwardWeights', values);
        rt.check(ff.handle.setWeights(rec), what, () => ff.handle.requestBytes());
        ff.hasWeights = true;
      } finally {
        rt.free(st.ptr);
      }
    },

    'FeedForward.forward'(id, x) {
      const ff = get(id, 'FeedForward'), what = 'FeedForward.forward';
      if (!ff.hasWeights) throw new Error('FeedForward.forward: weights are not set; call setWeights() first');
      checkData('input', x, [Float32Array]);
      const n = x.data.length, rows = n / ff.cfg.dModel;
      if (!Number.isInteger(rows) || rows < 1) throw new RangeError(`input: its size (${n}) is not a positive multiple of dModel (${ff.cfg.dModel})`);
      const st = rt.stage([x.data, n * 4, recordBytes('FeedForwardForward')], what);
      try {
        rt.writeRecord(st.at(2), 'FeedForwardForward', { rows, x: st.at(0), y: st.at(1) });
        rt.check(ff.handle.forward(st.at(2)), what, () => ff.handle.requestBytes());
        return { data: rt.readF32(st.at(1), n), dims: x.dims };
      } finally {
        rt.free(st.ptr);
      }
    },
  };
}
