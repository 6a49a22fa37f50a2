// mha-wasm/models: a Hugging Face config.json read into the options of mha-wasm's Model,
// with each architecture's defaults as transformers' configuration_*.py sets them:
//   BertModel / BertForMaskedLM (the encoder), GPT2LMHeadModel, LlamaForCausalLM,
//   Qwen2ForCausalLM, MistralForCausalLM.
// A field whose value the model cannot honour is refused with a TypeError/RangeError naming
// it; fields that change nothing at inference (dropouts, initializer_range, use_cache,
// torch_dtype, ...) are not looked at.
import { MAX_HEAP_BYTES } from './abi.js';
import { tooLarge } from './runtime.js';
import { positiveFloat32 } from './modern.js';
import { describe } from './validate.js';

const ARCHITECTURES = {
  BertModel: 'bert', BertForMaskedLM: 'bert', GPT2LMHeadModel: 'gpt2',
  LlamaForCausalLM: 'llama', Qwen2ForCausalLM: 'qwen2', MistralForCausalLM: 'mistral',
};
const MODEL_TYPES = ['bert', 'gpt2', 'llama', 'qwen2', 'mistral'];

/** transformers' activation names (activations.py ACT2FN) that the core's kernels compute. */
const ACTIVATIONS = {
  gelu: 'gelu', gelu_python: 'gelu',  // exact, erf
  gelu_new: 'gelu_tanh', gelu_pytorch_tanh: 'gelu_tanh', gelu_fast: 'gelu_tanh',  // the tanh form (gelu_fast: the same formula, constants folded)
  relu: 'relu', silu: 'silu', swish: 'silu',
};

const fail = (Err, msg) => { throw new Err(`loadModel: ${msg}`); };

/** The architecture ('bert' | 'gpt2' | 'llama' | 'qwen2' | 'mistral') a config names. */
export function architectureOf(config) {
  if (config === null || typeof config !== 'object' || Array.isArray(config))
    fail(TypeError, `config must be the parsed config.json (an object), got ${describe(config)}`);
  const archs = config.architectures;
  if (archs !== undefined && archs !== null && (!Array.isArray(archs) || typeof archs[0] !== 'string'))
    fail(TypeError, `config.architectures must be an array of names, got ${describe(archs)}`);
  const name = archs?.[0];
  if (name !== undefined) {
    if (!Object.hasOwn(ARCHITECTURES, name))
      fail(TypeError, `architecture ${JSON.stringify(name)} is not supported (supported: ${Object.keys(ARCHITECTURES).join(', ')})`);
    return ARCHITECTURES[name];
  }
  if (MODEL_TYPES.includes(config.model_type)) return config.model_type;
  return fail(TypeError, `model_type ${describe(config.model_type)} is not supported and config.architectures is missing (supported: ${Object.keys(ARCHITECTURES).join(', ')})`);
}

// Readers of config fields: each names the field when its value is wrong.
const field = (config, name, dflt) => (config[name] === undefined || config[name] === null ? dflt : config[name]);
function int(config, name, dflt, min = 1) {
  const v = field(config, name, dflt);
  if (typeof v !== 'number') fail(TypeError, `config.${name} must be an integer, got ${describe(v)}`);
  if (!Number.isSafeInteger(v) || v < min) fail(RangeError, `config.${name} must be an integer >= ${min}, got ${v}`);
  if (v > 2 ** 31 - 1) fail(RangeError, `config.${name} must be at most 2147483647 (the core's sizes are 32-bit), got ${v}`);
  return v;
}
function num(config, name, dflt) {
  const v = field(config, name, dflt);
  // The core holds it as a float32 (a norm's epsilon): the options' own check, with loadModel's prefix.
  try {
    return positiveFloat32(`config.${name}`, v);
  } catch (e) {
    return fail(e.constructor, e.message);
  }
}
function flag(config, name, dflt) {
  const v = field(config, name, dflt);
  if (typeof v !== 'boolean') fail(TypeError, `config.${name} must be true or false, got ${describe(v)}`);
  return v;
}
function activation(config, name, dflt) {
  const v = field(config, name, dflt);
  if (typeof v !== 'string') fail(TypeError, `config.${name} must be an activation name, got ${describe(v)}`);
  if (!Object.hasOwn(ACTIVATIONS, v)) fail(RangeError, `config.${name} ${JSON.stringify(v)} is not supported (supported: ${Object.keys(ACTIVATIONS).join(', ')})`);
  return ACTIVATIONS[v];
}
/** A field that must keep the value the model implements (off, say). */
function only(config, name, allowed, why) {
  const v = config[name];
  if (v === undefined || allowed.includes(v)) return;
  fail(typeof v === typeof allowed[0] || v === null ? RangeError : TypeError, `config.${name} ${describe(v)} is not supported${why ? ` (${why})` : ''}`);
}
/** The class of a refusal: a number out of range is a RangeError, anything else a TypeError. */
const errorFor = (v) => (typeof v === 'number' ? RangeError : TypeError);
/** A token id or a list of them (eos_token_id may be either). */
function tokenIds(config, name, dflt) {
  // An explicit null is "none" (transformers' None), not the architecture's default.
  const v = config[name] === undefined ? dflt : config[name];
  const list = v === null ? [] : Array.isArray(v) ? v : [v];
  for (const id of list)
    if (!Number.isSafeInteger(id) || id < 0) fail(errorFor(id), `config.${name} must be a token id or a list of them, got ${describe(v)}`);
  return list;
}

function checkQuantization(config) {
  const q = config.quantization_config;
  if (q === undefined || q === null) return;
  const method = q && typeof q === 'object' ? q.quant_method : undefined;
  // compressed-tensors' int8 per-channel layout (<name> I8 + <name>_scale) is read tensor by tensor.
  if (method !== 'compressed-tensors')
    fail(RangeError, `config.quantization_config.quant_method ${describe(method)} is not supported (int8 checkpoints in the compressed-tensors layout are, as quantizeSafetensors writes them)`);
}

// ---------------------------------------------------------------------------------------
// Rotary frequencies (transformers' modeling_rope_utils.py)

/**
 * The rope option of the attention from a decoder config: { dim, invFreq (float32 values,
 * as HF keeps its inv_freq buffer), attentionFactor }, from head_dim, rope_theta,
 * partial_rotary_factor and rope_scaling ('default', 'linear', 'llama3', 'yarn'; its type
 * as rope_type or the older type), or transformers v5's rope_parameters.
 */
export function ropeOf(config, headDim) {
  const rp = config.rope_parameters ?? null;
  const rs = rp ?? config.rope_scaling ?? null;
  const where = rp ? 'config.rope_parameters' : 'config.rope_scaling';
  if (rs !== null && (typeof rs !== 'object' || Array.isArray(rs))) fail(TypeError, `${where} must be an object or null, got ${describe(rs)}`);
  const type = rs ? rs.rope_type ?? rs.type ?? 'default' : 'default';
  const base = rp?.rope_theta ?? config.rope_theta ?? 10000;
  if (typeof base !== 'number' || !(base > 1)) fail(errorFor(base), `config.rope_theta must be a number above 1, got ${describe(base)}`);
  const partial = rp?.partial_rotary_factor ?? config.partial_rotary_factor ?? 1;
  if (typeof partial !== 'number' || !(partial > 0 && partial <= 1)) fail(errorFor(partial), `config.partial_rotary_factor must be in (0, 1], got ${describe(partial)}`);
  const dim = Math.trunc(headDim * partial);
  if (dim < 2 || dim % 2) fail(RangeError, `the rotary dim int(head_dim ${headDim} * partial_rotary_factor ${partial}) = ${dim} must be even and at least 2`);
  const factorOf = (dflt) => {
    const f = rs.factor ?? dflt;
    if (typeof f !== 'number' || !(f >= 1)) fail(errorFor(f), `${where}.factor must be a number >= 1, got ${describe(f)}`);
    return f;
  };
  // _compute_default_rope_parameters: 1 / base^(arange(0, dim, 2) / dim)
  const inv = Float64Array.from({ length: dim / 2 }, (_, i) => 1 / base ** ((2 * i) / dim));
  let out = inv, attentionFactor = 1;
  if (type === 'default') { /* as is */ } else if (type === 'linear') {
    const f = factorOf();
    out = inv.map((x) => x / f);
  } else if (type === 'llama3') {
    // _compute_llama3_parameters: long wavelengths slowed by factor, short ones kept, a smooth ramp between
    const f = factorOf(), low = rs.low_freq_factor, high = rs.high_freq_factor, old = rs.original_max_position_embeddings;
    for (const [k, v] of [['low_freq_factor', low], ['high_freq_factor', high], ['original_max_position_embeddings', old]])
      if (typeof v !== 'number' || !(v > 0)) fail(errorFor(v), `${where}.${k} must be a positive number for rope_type 'llama3', got ${describe(v)}`);
    if (!(high > low)) fail(RangeError, `${where}: high_freq_factor ${high} must exceed low_freq_factor ${low}`);
    const lowWavelen = old / low, highWavelen = old / high;
    out = inv.map((x) => {
      const wavelen = (2 * Math.PI) / x;
      if (wavelen < highWavelen) return x;
      if (wavelen > lowWavelen) return x / f;
      const smooth = (old / wavelen - low) / (high - low);
      return (1 - smooth) * (x / f) + smooth * x;
    });
  } else if (type === 'yarn') {
    // _compute_yarn_parameters
    const maxPos = config.max_position_embeddings;
    const old = rs.original_max_position_embeddings ?? maxPos;
    if (typeof old !== 'number' || !(old > 0)) fail(errorFor(old), `${where}.original_max_position_embeddings (or config.max_position_embeddings) must be a positive number for rope_type 'yarn', got ${describe(old)}`);
    const f = factorOf(typeof maxPos === 'number' ? maxPos / old : undefined);
    const mscale = (s, m = 1) => (s <= 1 ? 1 : 0.1 * m * Math.log(s) + 1);
    for (const k of ['attention_factor', 'mscale', 'mscale_all_dim', 'beta_fast', 'beta_slow'])
      if (rs[k] !== undefined && rs[k] !== null && (typeof rs[k] !== 'number' || !(Number.isFinite(rs[k]) && rs[k] >= 0)))
        fail(errorFor(rs[k]), `${where}.${k} must be a finite number >= 0, got ${describe(rs[k])}`);
    attentionFactor = rs.attention_factor ?? (rs.mscale && rs.mscale_all_dim ? mscale(f, rs.mscale) / mscale(f, rs.mscale_all_dim) : mscale(f));
    if (typeof attentionFactor !== 'number' || !(attentionFactor > 0 && Number.isFinite(Math.fround(attentionFactor)))) fail(RangeError, `${where}.attention_factor must be a positive number, got ${describe(attentionFactor)}`);
    const betaFast = rs.beta_fast || 32, betaSlow = rs.beta_slow || 1, truncate = rs.truncate ?? true;
    const corrDim = (rot) => (dim * Math.log(old / (rot * 2 * Math.PI))) / (2 * Math.log(base));
    let lo = corrDim(betaFast), hi = corrDim(betaSlow);
    if (truncate) { lo = Math.floor(lo); hi = Math.ceil(hi); }
    lo = Math.max(lo, 0); hi = Math.min(hi, dim - 1);
    if (lo === hi) hi += 0.001;
    out = inv.map((x, i) => {
      const ramp = Math.min(1, Math.max(0, (i - lo) / (hi - lo)));
      const extrapolation = 1 - ramp;  // 1 keeps the frequency, 0 interpolates it
      return (x / f) * (1 - extrapolation) + x * extrapolation;
    });
  } else {
    fail(RangeError, `${where} rope type ${describe(type)} is not supported (supported: default, linear, llama3, yarn)`);
  }
  return { dim, invFreq: Float64Array.from(out, Math.fround), attentionFactor };
}

// ---------------------------------------------------------------------------------------
// Each architecture's Model options

/**
 * What loadModel needs to know of a config: { arch, options (mha-wasm Model options),
 * prefix (the architecture's tensor-name prefix), encoder (true for BERT: no head, hidden
 * states out), eos (token ids), padId, bosId, maxPositions (learned positions, or null),
 * numLayers, numHeads, ... }.
 */
export function modelSpec(config) {
  const arch = architectureOf(config);
  checkQuantization(config);
  only(config, 'is_encoder_decoder', [false]);
  only(config, 'add_cross_attention', [false], 'cross-attention');
  const spec = arch === 'bert' ? bertSpec(config) : arch === 'gpt2' ? gpt2Spec(config) : decoderSpec(config, arch);
  return Object.freeze({ arch, architecture: config.architectures?.[0] ?? arch, ...spec });
}

function bertSpec(config) {
  const E = int(config, 'hidden_size', 768), H = int(config, 'num_attention_heads', 12);
  if (E % H) fail(RangeError, `config.hidden_size ${E} is not a multiple of num_attention_heads ${H}`);
  only(config, 'position_embedding_type', ['absolute'], "only 'absolute' position embeddings");
  only(config, 'is_decoder', [false], 'BertModel as a decoder');
  const options = {
    vocabSize: int(config, 'vocab_size', 30522), hiddenSize: E, numLayers: int(config, 'num_hidden_layers', 12),
    maxPositions: int(config, 'max_position_embeddings', 512), typeVocabSize: int(config, 'type_vocab_size', 2),
    embedNorm: true, norm: 'layer', normBias: true, normEps: num(config, 'layer_norm_eps', 1e-12),
    preNorm: false, finalNorm: false, head: 'none', causal: false,
    attention: { numHeads: H, bias: true },
    feedForward: { dimFeedforward: int(config, 'intermediate_size', 3072), activation: activation(config, 'hidden_act', 'gelu'), gated: false, bias: true },
  };
  return {
    options, prefix: 'bert.', encoder: true, eos: [], bosId: null, padId: tokenIds(config, 'pad_token_id', 0)[0] ?? 0,
    maxPositions: options.maxPositions, tied: false,
  };
}

function gpt2Spec(config) {
  // GPT2Config's attribute_map: hidden_size, num_hidden_layers, ... are aliases of n_embd, n_layer, ...
  const alias = (a, b) => (config[a] ?? config[b]);
  const c = { ...config, n_embd: alias('n_embd', 'hidden_size'), n_layer: alias('n_layer', 'num_hidden_layers'), n_head: alias('n_head', 'num_attention_heads'), n_positions: alias('n_positions', 'max_position_embeddings') };
  const E = int(c, 'n_embd', 768), H = int(c, 'n_head', 12);
  if (E % H) fail(RangeError, `config.n_embd ${E} is not a multiple of n_head ${H}`);
  only(config, 'scale_attn_by_inverse_layer_idx', [false], 'a different attention scale in every layer');
  const tied = flag(config, 'tie_word_embeddings', true);  // PretrainedConfig's default: GPT-2's configs leave it out
  const options = {
    vocabSize: int(c, 'vocab_size', 50257), hiddenSize: E, numLayers: int(c, 'n_layer', 12), maxPositions: int(c, 'n_positions', 1024),
    norm: 'layer', normBias: true, normEps: num(c, 'layer_norm_epsilon', 1e-5), preNorm: true, finalNorm: true,
    head: tied ? 'tied' : 'untied', causal: true,
    attention: { numHeads: H, bias: true, ...(flag(c, 'scale_attn_weights', true) ? {} : { scale: 1 }) },
    feedForward: { dimFeedforward: int(c, 'n_inner', 4 * E), activation: activation(c, 'activation_function', 'gelu_new'), gated: false, bias: true },
  };
  const eos = tokenIds(config, 'eos_token_id', 50256);
  return {
    options, prefix: 'transformer.', encoder: false, eos, bosId: tokenIds(config, 'bos_token_id', 50256)[0] ?? null,
    padId: tokenIds(config, 'pad_token_id', null)[0] ?? eos[0] ?? 0, maxPositions: options.maxPositions, tied,
  };
}

const DECODER_DEFAULTS = {
  // configuration_{llama,qwen2,mistral}.py
  llama: { vocab: 32000, hidden: 4096, intermediate: 11008, layers: 32, heads: 32, kvHeads: null, bos: 1, eos: 2 },
  qwen2: { vocab: 151936, hidden: 4096, intermediate: 22016, layers: 32, heads: 32, kvHeads: 32, bos: null, eos: null },
  mistral: { vocab: 32000, hidden: 4096, intermediate: 14336, layers: 32, heads: 32, kvHeads: 8, bos: 1, eos: 2 },
};

function decoderSpec(config, arch) {
  const d = DECODER_DEFAULTS[arch];
  const E = int(config, 'hidden_size', d.hidden), H = int(config, 'num_attention_heads', d.heads);
  const Hkv = int(config, 'num_key_value_heads', d.kvHeads ?? H), layers = int(config, 'num_hidden_layers', d.layers);
  if (H % Hkv) fail(RangeError, `config.num_attention_heads ${H} is not a multiple of num_key_value_heads ${Hkv}`);
  if (config.head_dim === undefined || config.head_dim === null) {
    if (E % H) fail(RangeError, `config.hidden_size ${E} is not a multiple of num_attention_heads ${H} (and there is no head_dim)`);
  }
  const D = int(config, 'head_dim', E / H);
  // Llama's attention_bias puts a bias on q/k/v and o_proj; Qwen2 always has q/k/v biases, never one on o_proj.
  const attentionBias = arch === 'llama' ? flag(config, 'attention_bias', false) : false;
  if (arch !== 'llama') only(config, 'attention_bias', [false]);
  const mlpBias = arch === 'llama' ? flag(config, 'mlp_bias', false) : false;
  if (arch !== 'llama') only(config, 'mlp_bias', [false]);
  const tied = flag(config, 'tie_word_embeddings', false);
  // Sliding windows: Mistral's on every layer (4096 when the key is absent, none when null);
  // Qwen2's only with use_sliding_window, from max_window_layers on (or as layer_types says).
  let window = null, windowFrom = 0;
  if (arch === 'mistral') {
    window = config.sliding_window === undefined ? 4096 : config.sliding_window === null ? null : int(config, 'sliding_window');
  } else if (arch === 'qwen2' && flag(config, 'use_sliding_window', false) && config.sliding_window !== null) {
    window = int(config, 'sliding_window', 4096);
    windowFrom = int(config, 'max_window_layers', 28, 0);
    if (Array.isArray(config.layer_types)) windowFrom = windowFromLayerTypes(config.layer_types, layers);
    if (windowFrom >= layers) window = null, windowFrom = 0;
  } else if (arch === 'llama' && Array.isArray(config.layer_types) && config.layer_types.some((t) => t !== 'full_attention')) {
    fail(RangeError, 'config.layer_types: LlamaForCausalLM has no sliding-window layers');
  }
  // The query projection alone (H * D x E floats) must fit the heap before anything is sized
  // from D (the rotary table has D / 2 entries); loadModel checks the whole model next.
  if (!(4 * H * D * E < MAX_HEAP_BYTES))
    throw tooLarge(`loadModel: ${config.architectures?.[0] ?? arch} with hidden size ${E}, ${H} heads and head_dim ${D}`, 4 * H * D * E,
      'memory for one layer\'s query projection alone');
  const rope = ropeOf({ ...config, hidden_size: E, num_attention_heads: H }, D);
  const options = {
    vocabSize: int(config, 'vocab_size', d.vocab), hiddenSize: E, numLayers: layers, maxPositions: 0,
    norm: 'rms', normEps: num(config, 'rms_norm_eps', 1e-6), preNorm: true, finalNorm: true, head: tied ? 'tied' : 'untied', causal: true,
    windowFrom,
    attention: {
      numHeads: H, numKvHeads: Hkv, headDim: D, bias: false, qkvBias: arch === 'qwen2' || attentionBias, outBias: attentionBias,
      rope: { dim: rope.dim, invFreq: rope.invFreq, attentionFactor: rope.attentionFactor },
      ...(window !== null ? { slidingWindow: window } : {}),
    },
    feedForward: { dimFeedforward: int(config, 'intermediate_size', d.intermediate), activation: activation(config, 'hidden_act', 'silu'), gated: true, bias: mlpBias },
  };
  const eos = tokenIds(config, 'eos_token_id', d.eos);
  return {
    options, prefix: 'model.', encoder: false, eos, bosId: tokenIds(config, 'bos_token_id', d.bos)[0] ?? null,
    padId: tokenIds(config, 'pad_token_id', null)[0] ?? eos[0] ?? 0, maxPositions: null, tied,
  };
}

/** Qwen2's layer_types as the first sliding layer: full_attention layers, then only sliding_attention ones. */
function windowFromLayerTypes(types, layers) {
  if (types.length !== layers) fail(RangeError, `config.layer_types has ${types.length} entries for ${layers} layers`);
  const first = types.indexOf('sliding_attention');
  const from = first < 0 ? layers : first;
  types.forEach((t, i) => {
    if (t !== 'full_attention' && t !== 'sliding_attention') fail(RangeError, `config.layer_types[${i}] ${describe(t)} is not supported`);
    if ((t === 'sliding_attention') !== (i >= from))
      fail(RangeError, 'config.layer_types: sliding-window layers must come after all full-attention layers (the model windows every layer from one on)');
  });
  return from;
}
