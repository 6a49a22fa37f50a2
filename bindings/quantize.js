// quantizeSafetensors: a .safetensors file's weight matrices as int8, in the
// compressed-tensors layout that every layer's setWeights (and loadModel) reads
// back: an I8 tensor <name> [out, in] and a float tensor <name>_scale [out, 1],
// per output channel (row), symmetric, round to nearest (ties to even):
//   scale = max |row| / 127, q = clamp(round(w / scale), -127, 127).
// Plain JS, no wasm. Norms, biases, 1-D tensors, integer tensors and embeddings
// stay as they are (floats written as F32, or F16 with floatDtype: 'F16').
// GPT-2's Conv1D matrices are stored [in, out]: given the model's config, they are
// quantized per column (their output channel) and keep their layout, with a
// <name>_scale [1, out].
import { encodeSafetensors, parseSafetensors, safetensorsMetadata } from './safetensors.js';
import { describe, plainObject } from './validate.js';

const OPTIONS = ['type', 'embeddings', 'floatDtype', 'filter', 'config'];
// GPT-2's Conv1D modules (transformers' GPT2Attention and GPT2MLP).
const CONV1D = /(^|\.)h\.\d+\.(attn|crossattention|mlp)\.(c_attn|q_attn|c_proj|c_fc)\.weight$/;
const isGpt2 = (config) => config.model_type === 'gpt2' ||
  (Array.isArray(config.architectures) && config.architectures.some((a) => typeof a === 'string' && a.startsWith('GPT2')));
const EMBEDDING = /(^|\.)(embed_tokens|embeddings?|wte|wpe|word_embeddings|position_embeddings|token_type_embeddings)(\.|$)/;

/** Round to nearest, ties to even (torch.round). */
function roundEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** One [N, K] float matrix as { q: Int8Array, scale: Float32Array [N] }, per row (name, row: for errors). */
export function quantizeRows(w, N, K, name = 'a matrix', row = 'row') {
  const q = new Int8Array(N * K), scale = new Float32Array(N);
  for (let n = 0; n < N; n++) {
    let max = 0;
    for (let k = 0; k < K; k++) max = Math.max(max, Math.abs(w[n * K + k]));
    if (!Number.isFinite(max)) throw new RangeError(`quantizeSafetensors: ${JSON.stringify(name)} ${row} ${n} holds a non-finite value`);
    const s = Math.fround(max / 127);
    scale[n] = s;
    if (s === 0) continue;
    for (let k = 0; k < K; k++) q[n * K + k] = Math.max(-127, Math.min(127, roundEven(w[n * K + k] / s)));
  }
  return { q, scale };
}

/** A [K, N] matrix stored [in, out] (Conv1D), per column: { q: Int8Array [K, N], scale: Float32Array [N] }. */
function quantizeColumns(w, K, N, name) {
  const t = new Float32Array(K * N);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) t[n * K + k] = w[k * N + n];
  const { q, scale } = quantizeRows(t, N, K, name, 'column');
  const out = new Int8Array(K * N);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) out[k * N + n] = q[n * K + k];
  return { q: out, scale };
}

/**
 * bytes: a .safetensors file. options: { type: 'int8' (required), embeddings = false
 * (quantize embedding tables too), floatDtype = 'F32' | 'F16' (for what stays float),
 * filter(name, dims) → boolean (overrides which tensors are quantized), config: the
 * model's config.json, parsed (for GPT-2: its Conv1D matrices per output column) }.
 * Returns the new file's bytes; its metadata keeps the input's and adds
 * "quantization": "int8 per-channel symmetric".
 */
export function quantizeSafetensors(bytes, options) {
  if (options === null || typeof options !== 'object') throw new TypeError(`quantizeSafetensors: options { type: 'int8' } are required, got ${describe(options)}`);
  const { type, embeddings = false, floatDtype = 'F32', filter, config } = plainObject('quantizeSafetensors', options, OPTIONS);
  if (type !== 'int8') throw new (typeof type === 'string' ? RangeError : TypeError)(`quantizeSafetensors: options.type must be 'int8', got ${describe(type)}`);
  if (typeof embeddings !== 'boolean') throw new TypeError(`quantizeSafetensors: options.embeddings must be a boolean, got ${describe(embeddings)}`);
  if (floatDtype !== 'F32' && floatDtype !== 'F16') throw new TypeError(`quantizeSafetensors: options.floatDtype must be 'F32' or 'F16', got ${describe(floatDtype)}`);
  if (filter !== undefined && typeof filter !== 'function') throw new TypeError(`quantizeSafetensors: options.filter must be a function, got ${describe(filter)}`);
  if (config !== undefined && (config === null || typeof config !== 'object' || Array.isArray(config)))
    throw new TypeError(`quantizeSafetensors: options.config must be the parsed config.json (an object), got ${describe(config)}`);
  const conv1d = config !== undefined && isGpt2(config);
  const tensors = parseSafetensors(bytes), metadata = safetensorsMetadata(bytes);
  const chosen = (name, t) => (filter ? !!filter(name, t.dims.slice())
    : t.dims.length === 2 && /(^|[._])weight$/.test(name) && (embeddings || !EMBEDDING.test(name)));
  const out = {};
  for (const [name, t] of Object.entries(tensors)) {
    if (t.data instanceof Float32Array && chosen(name, t)) {
      if (t.dims.length !== 2) throw new RangeError(`quantizeSafetensors: ${JSON.stringify(name)} has dims [${t.dims}]; only matrices [out, in] are quantized`);
      if (Object.hasOwn(tensors, `${name}_scale`)) throw new TypeError(`quantizeSafetensors: ${JSON.stringify(name)} already has a ${name}_scale (quantized already?)`);
      if (conv1d && CONV1D.test(name)) {
        const [K, N] = t.dims;
        const { q, scale } = quantizeColumns(t.data, K, N, name);
        out[name] = { data: q, dims: [K, N] };
        out[`${name}_scale`] = { data: scale, dims: [1, N] };
        continue;
      }
      const [N, K] = t.dims;
      const { q, scale } = quantizeRows(t.data, N, K, name);
      out[name] = { data: q, dims: [N, K] };
      out[`${name}_scale`] = { data: scale, dims: [N, 1] };
    } else {
      out[name] = t;
    }
  }
  // Scales stay F32; other floats as floatDtype. A finite value beyond float16's range
  // (|v| >= 65520, which F16 would store as ±Infinity) is refused, naming the tensor.
  if (floatDtype === 'F16')
    for (const [name, t] of Object.entries(out))
      if (t.data instanceof Float32Array && !(name.endsWith('_scale') && out[name.slice(0, -6)]?.data instanceof Int8Array)) {
        const i = t.data.findIndex((v) => Number.isFinite(v) && Math.abs(v) >= 65520);
        if (i >= 0) throw new RangeError(`quantizeSafetensors: ${JSON.stringify(name)}[${i}] = ${t.data[i]} is beyond float16's range (|v| < 65520); use floatDtype 'F32'`);
        out[name] = { ...t, dtype: 'F16' };
      }
  return encodeSafetensors(out, { ...metadata, quantization: 'int8 per-channel symmetric' });
}
