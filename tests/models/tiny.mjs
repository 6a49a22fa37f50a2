// Tiny random models in the exact Hugging Face layout, written by the tests themselves
// (nothing is downloaded): config.json (the real configs' field names and values, tiny
// sizes), safetensors files with HF's tensor names and the persisted buffers real
// checkpoints carry, a model.safetensors.index.json when sharded, and tokenizer.json +
// tokenizer_config.json (tiny-tokenizers.mjs).
//
//   const m = tinyModel('llama', { seed: 3, dtype: 'BF16', shards: 2 });
//   m.config, m.files ([{ name, bytes }]), m.index, m.tokenizerJson, m.tokenizerConfig,
//   m.tensors: { name: { data, dims } } exactly as stored (F16/BF16 values already rounded),
//   ready for the float64 references of reference.mjs.
//
// Architectures: 'bert' (BertModel as sentence-transformers saves it; variant
// 'BertForMaskedLM' writes the `bert.` prefix and the cls.predictions head), 'gpt2'
// (GPT2LMHeadModel), 'llama' (Llama 3.2-style: head_dim in the config and different from
// hidden/heads, rope_scaling llama3, eos a list), 'qwen2' (Qwen2.5-style: q/k/v biases, tied,
// vocab_size larger than the tokenizer), 'mistral' (Mistral 7B v0.1-style: sliding_window, GQA).
import { encodeSafetensors } from 'mha-wasm';
import { tinyTokenizer } from './tiny-tokenizers.mjs';

export { tinyTokenizer, bytesToUnicode } from './tiny-tokenizers.mjs';

/** xorshift32 in [0, 1). */
export function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}

// ---------------------------------------------------------------------------------
// Storage precision

/** The float16 value nearest to x (round to nearest, ties to even; ±Infinity past 65504). */
export function roundToF16(x) {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x), sign = Math.sign(x);
  if (a >= 65520) return sign * Infinity;
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  const q = 2 ** (Math.max(e, -14) - 10);  // the spacing of halves near a (subnormals: 2^-24)
  const m = a / q, f = Math.floor(m), d = m - f;
  const n = d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
  return sign * n * q;
}

const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);

/** The bfloat16 bits of a float32 value (round to nearest, ties to even). */
export function bf16Bits(x) {
  f32[0] = x;
  const u = u32[0];
  if ((u & 0x7f800000) === 0x7f800000) return (u >>> 16) | ((u & 0xffff) ? 0x40 : 0);  // Infinity, NaN
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The bfloat16 value nearest to x. */
export function roundToBf16(x) {
  u32[0] = bf16Bits(x) << 16;
  return f32[0];
}

/** Rounds a Float32Array in place to what storage as dtype ('F32' | 'F16' | 'BF16') keeps. */
function roundTo(a, dtype) {
  if (dtype === 'F16') for (let i = 0; i < a.length; i++) a[i] = roundToF16(a[i]);
  else if (dtype === 'BF16') for (let i = 0; i < a.length; i++) a[i] = roundToBf16(a[i]);
  else if (dtype !== 'F32') throw new Error(`dtype ${dtype}`);
  return a;
}

/**
 * A .safetensors file of { name: { data, dims } }: Float32Arrays stored as dtype ('F32',
 * 'F16' through encodeSafetensors; 'BF16' written here, which encodeSafetensors does not do),
 * integer arrays (BigInt64Array, Int32Array, Uint8Array ...) as their own dtypes.
 * metadata defaults to { format: 'pt' }, as transformers writes it.
 */
export function writeSafetensors(tensors, { dtype = 'F32', metadata = { format: 'pt' } } = {}) {
  if (dtype !== 'BF16') return encodeSafetensors(tensors, metadata, { dtype });
  const INT = new Map([[BigInt64Array, 'I64'], [Int32Array, 'I32'], [Int16Array, 'I16'], [Int8Array, 'I8'], [Uint8Array, 'U8'], [BigUint64Array, 'U64'], [Uint32Array, 'U32'], [Uint16Array, 'U16']]);
  const names = Object.keys(tensors).sort();
  const header = metadata ? { __metadata__: metadata } : {};
  let offset = 0;
  const parts = names.map((name) => {
    const { data, dims } = tensors[name];
    const dt = data instanceof Float32Array ? 'BF16' : INT.get(data.constructor);
    if (!dt) throw new TypeError(`writeSafetensors: ${name}: ${data.constructor.name}`);
    let bytes;
    if (dt === 'BF16') {
      const h = new Uint16Array(data.length);
      for (let i = 0; i < data.length; i++) h[i] = bf16Bits(data[i]);
      bytes = new Uint8Array(h.buffer);
    } else bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    header[name] = { dtype: dt, shape: dims, data_offsets: [offset, offset + bytes.length] };
    offset += bytes.length;
    return bytes;
  });
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + json.length) % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let o = 8 + head.length;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

// ---------------------------------------------------------------------------------
// int8-exact matrices

/**
 * Makes a matrix [rows, cols] exactly representable in symmetric int8: every value q * s
 * with q an integer in [-127, 127] and s a power of two. granularity:
 *   'outChannel': a scale per output channel (axis 0 = rows of nn.Linear / embedding
 *     tables; axis 1 = columns of GPT-2's Conv1D [in, out]), scales varying between
 *     channels, each channel holding a ±127 (so max|w| / 127 is its scale exactly);
 *   'tensor': one scale, with a ±127 in every row and every column, so per-row, per-column
 *     and per-tensor symmetric quantizers all find it exactly.
 */
function int8Exact(a, rows, cols, axis, granularity, r) {
  const at = (i, j) => i * cols + j;
  const pow2 = (v) => 2 ** Math.round(Math.log2(v));
  if (granularity === 'tensor') {
    let amax = 0;
    for (const v of a) amax = Math.max(amax, Math.abs(v));
    const s = pow2(amax / 127);
    for (let i = 0; i < a.length; i++) a[i] = Math.max(-127, Math.min(127, Math.round(a[i] / s))) * s;
    for (let i = 0; i < rows; i++) a[at(i, i % cols)] = (r() < 0.5 ? -127 : 127) * s;
    for (let j = 0; j < cols; j++) a[at(j % rows, j)] = (r() < 0.5 ? -127 : 127) * s;
    return a;
  }
  if (granularity !== 'outChannel') throw new Error(`int8Exact granularity ${granularity}`);
  const channels = axis === 0 ? rows : cols, len = axis === 0 ? cols : rows;
  const idx = (c, t) => (axis === 0 ? at(c, t) : at(t, c));
  for (let c = 0; c < channels; c++) {
    let amax = 0, arg = 0;
    for (let t = 0; t < len; t++) if (Math.abs(a[idx(c, t)]) > amax) { amax = Math.abs(a[idx(c, t)]); arg = t; }
    const s = pow2(amax / 127) * 2 ** (Math.floor(r() * 3) - 1);  // channels get different scales
    for (let t = 0; t < len; t++) a[idx(c, t)] = Math.max(-127, Math.min(127, Math.round(a[idx(c, t)] / s))) * s;
    a[idx(c, arg)] = (a[idx(c, arg)] < 0 ? -127 : 127) * s;
  }
  return a;
}

// ---------------------------------------------------------------------------------
// Architectures: configs and tensor lists

const TORCH_DTYPE = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/**
 * The tensors of an architecture: [{ name, dims, kind }] in HF's names (without the model
 * prefix), kind: 'linear' [out, in] | 'conv1d' [in, out] | 'embedding' | 'normWeight' |
 * 'normBias' | 'bias' | buffers ('i64', 'attnBias', 'maskedBias', 'invFreq').
 */
function tensorList(arch, c, o) {
  const L = [];
  const add = (name, dims, kind, extra) => L.push({ name, dims, kind, ...extra });
  if (arch === 'bert') {
    const E = c.hidden_size, F = c.intermediate_size;
    const [lw, lb] = o.legacyLayerNormNames ? ['gamma', 'beta'] : ['weight', 'bias'];
    const ln = (p) => { add(`${p}.LayerNorm.${lw}`, [E], 'normWeight'); add(`${p}.LayerNorm.${lb}`, [E], 'normBias'); };
    const lin = (p, N, K) => { add(`${p}.weight`, [N, K], 'linear'); add(`${p}.bias`, [N], 'bias'); };
    add('embeddings.word_embeddings.weight', [c.vocab_size, E], 'embedding');
    add('embeddings.position_embeddings.weight', [c.max_position_embeddings, E], 'embedding');
    add('embeddings.token_type_embeddings.weight', [c.type_vocab_size, E], 'embedding');
    ln('embeddings');
    if (o.persistedBuffers) add('embeddings.position_ids', [1, c.max_position_embeddings], 'i64');
    for (let l = 0; l < c.num_hidden_layers; l++) {
      const p = `encoder.layer.${l}`;
      for (const n of ['query', 'key', 'value']) lin(`${p}.attention.self.${n}`, E, E);
      lin(`${p}.attention.output.dense`, E, E);
      ln(`${p}.attention.output`);
      lin(`${p}.intermediate.dense`, F, E);
      lin(`${p}.output.dense`, E, F);
      ln(`${p}.output`);
    }
    if (o.variant === 'BertForMaskedLM') {
      add('cls.predictions.bias', [c.vocab_size], 'bias', { root: true });
      add('cls.predictions.transform.dense.weight', [E, E], 'linear', { root: true });
      add('cls.predictions.transform.dense.bias', [E], 'bias', { root: true });
      add(`cls.predictions.transform.LayerNorm.${lw}`, [E], 'normWeight', { root: true });
      add(`cls.predictions.transform.LayerNorm.${lb}`, [E], 'normBias', { root: true });
    } else lin('pooler.dense', E, E);
    return L;
  }
  if (arch === 'gpt2') {
    const E = c.n_embd, F = c.n_inner ?? 4 * E, P = c.n_positions;
    add('wte.weight', [c.vocab_size, E], 'embedding');
    add('wpe.weight', [P, E], 'embedding');
    for (let l = 0; l < c.n_layer; l++) {
      const p = `h.${l}`;
      add(`${p}.ln_1.weight`, [E], 'normWeight'); add(`${p}.ln_1.bias`, [E], 'normBias');
      if (o.persistedBuffers) { add(`${p}.attn.bias`, [1, 1, P, P], 'attnBias'); add(`${p}.attn.masked_bias`, [], 'maskedBias'); }
      add(`${p}.attn.c_attn.weight`, [E, 3 * E], 'conv1d'); add(`${p}.attn.c_attn.bias`, [3 * E], 'bias');
      add(`${p}.attn.c_proj.weight`, [E, E], 'conv1d'); add(`${p}.attn.c_proj.bias`, [E], 'bias');
      add(`${p}.ln_2.weight`, [E], 'normWeight'); add(`${p}.ln_2.bias`, [E], 'normBias');
      add(`${p}.mlp.c_fc.weight`, [E, F], 'conv1d'); add(`${p}.mlp.c_fc.bias`, [F], 'bias');
      add(`${p}.mlp.c_proj.weight`, [F, E], 'conv1d'); add(`${p}.mlp.c_proj.bias`, [E], 'bias');
    }
    add('ln_f.weight', [E], 'normWeight'); add('ln_f.bias', [E], 'normBias');
    if (c.tie_word_embeddings === false) add('lm_head.weight', [c.vocab_size, E], 'linear', { root: true });
    return L;
  }
  // llama, qwen2, mistral
  const E = c.hidden_size, H = c.num_attention_heads, Hkv = c.num_key_value_heads, D = c.head_dim ?? E / H, F = c.intermediate_size;
  const qkvBias = arch === 'qwen2' || (arch === 'llama' && c.attention_bias), oBias = arch === 'llama' && c.attention_bias;
  const mlpBias = arch === 'llama' && c.mlp_bias;
  add('embed_tokens.weight', [c.vocab_size, E], 'embedding');
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `layers.${l}`;
    add(`${p}.input_layernorm.weight`, [E], 'normWeight');
    for (const [n, N] of [['q_proj', H * D], ['k_proj', Hkv * D], ['v_proj', Hkv * D]]) {
      add(`${p}.self_attn.${n}.weight`, [N, E], 'linear');
      if (qkvBias) add(`${p}.self_attn.${n}.bias`, [N], 'bias');
    }
    add(`${p}.self_attn.o_proj.weight`, [E, H * D], 'linear');
    if (oBias) add(`${p}.self_attn.o_proj.bias`, [E], 'bias');
    if (o.persistedBuffers && o.legacyBuffers) add(`${p}.self_attn.rotary_emb.inv_freq`, [D / 2], 'invFreq', { base: c.rope_theta ?? 10000 });
    add(`${p}.post_attention_layernorm.weight`, [E], 'normWeight');
    for (const [n, N, K] of [['gate_proj', F, E], ['up_proj', F, E], ['down_proj', E, F]]) {
      add(`${p}.mlp.${n}.weight`, [N, K], 'linear');
      if (mlpBias) add(`${p}.mlp.${n}.bias`, [N], 'bias');
    }
  }
  add('norm.weight', [E], 'normWeight');
  if (!c.tie_word_embeddings) add('lm_head.weight', [c.vocab_size, E], 'linear', { root: true });
  return L;
}

const DEFAULT_TOKENIZER = { bert: 'wordpiece', gpt2: 'gpt2', llama: 'llama3', qwen2: 'qwen2', mistral: 'sentencepiece' };
const PREFIX = { bert: 'bert.', gpt2: 'transformer.', llama: 'model.', qwen2: 'model.', mistral: 'model.' };

/** The config.json of a tiny model of arch, given its tokenizer (ids of the special tokens, size). */
function tinyConfig(arch, tok, o) {
  const torch_dtype = TORCH_DTYPE[o.dtype];
  const sp = tok.special;
  if (arch === 'bert') return {
    _name_or_path: 'tiny-random-bert', architectures: [o.variant], attention_probs_dropout_prob: 0.1, classifier_dropout: null,
    gradient_checkpointing: false, hidden_act: 'gelu', hidden_dropout_prob: 0.1, hidden_size: 32, initializer_range: 0.02,
    intermediate_size: 64, layer_norm_eps: 1e-12, max_position_embeddings: 64, model_type: 'bert', num_attention_heads: 4,
    num_hidden_layers: 2, pad_token_id: sp['[PAD]'], position_embedding_type: 'absolute', torch_dtype, transformers_version: '4.41.2',
    type_vocab_size: 2, use_cache: true, vocab_size: tok.size,
  };
  if (arch === 'gpt2') {
    // like openai-community/gpt2's config.json: no tie_word_embeddings key (tied by default)
    const c = {
      activation_function: 'gelu_new', architectures: ['GPT2LMHeadModel'], attn_pdrop: 0.1, bos_token_id: sp['<|endoftext|>'],
      embd_pdrop: 0.1, eos_token_id: sp['<|endoftext|>'], initializer_range: 0.02, layer_norm_epsilon: 1e-5, model_type: 'gpt2',
      n_ctx: 64, n_embd: 32, n_head: 4, n_inner: null, n_layer: 2, n_positions: 64, reorder_and_upcast_attn: false, resid_pdrop: 0.1,
      scale_attn_by_inverse_layer_idx: false, scale_attn_weights: true, summary_activation: null, summary_first_dropout: 0.1,
      summary_proj_to_labels: true, summary_type: 'cls_index', summary_use_proj: true,
      task_specific_params: { 'text-generation': { do_sample: true, max_length: 50 } }, torch_dtype, transformers_version: '4.41.2',
      use_cache: true, vocab_size: tok.size,
    };
    if (o.tie === false) c.tie_word_embeddings = false;
    return c;
  }
  if (arch === 'llama') return {
    // Llama 3.2-style: head_dim given (here != hidden/heads), llama3 rope scaling, eos a list
    architectures: ['LlamaForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: sp['<|begin_of_text|>'],
    eos_token_id: [sp['<|end_of_text|>'], sp['<|eot_id|>']], head_dim: 16, hidden_act: 'silu', hidden_size: 48,
    initializer_range: 0.02, intermediate_size: 96, max_position_embeddings: 256, mlp_bias: false, model_type: 'llama',
    num_attention_heads: 4, num_hidden_layers: 2, num_key_value_heads: 2, pretraining_tp: 1, rms_norm_eps: 1e-5,
    rope_scaling: { factor: 4.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 16, rope_type: 'llama3' },
    rope_theta: 10000.0, tie_word_embeddings: o.tie ?? false, torch_dtype, transformers_version: '4.45.0', use_cache: true, vocab_size: tok.size,
  };
  if (arch === 'qwen2') return {
    // Qwen2.5-0.5B-style; vocab_size padded beyond the tokenizer (151936 vs 151665 in the real one)
    architectures: ['Qwen2ForCausalLM'], attention_dropout: 0.0, bos_token_id: sp['<|endoftext|>'], eos_token_id: sp['<|im_end|>'],
    hidden_act: 'silu', hidden_size: 64, initializer_range: 0.02, intermediate_size: 128, max_position_embeddings: 256,
    max_window_layers: 1, model_type: 'qwen2', num_attention_heads: 4, num_hidden_layers: 2, num_key_value_heads: 2,
    rms_norm_eps: 1e-6, rope_scaling: null, rope_theta: 1000000.0, sliding_window: 4, tie_word_embeddings: o.tie ?? true, torch_dtype,
    transformers_version: '4.43.1', use_cache: true, use_sliding_window: false, vocab_size: Math.ceil((tok.size + 20) / 64) * 64,
  };
  if (arch === 'mistral') return {
    // Mistral 7B v0.1-style: no head_dim key, sliding_window on every layer
    architectures: ['MistralForCausalLM'], attention_dropout: 0.0, bos_token_id: sp['<s>'], eos_token_id: sp['</s>'], hidden_act: 'silu',
    hidden_size: 64, initializer_range: 0.02, intermediate_size: 160, max_position_embeddings: 256, model_type: 'mistral',
    num_attention_heads: 4, num_hidden_layers: 2, num_key_value_heads: 2, rms_norm_eps: 1e-5, rope_theta: 10000.0, sliding_window: 4,
    tie_word_embeddings: o.tie ?? false, torch_dtype, transformers_version: '4.34.0', use_cache: true, vocab_size: tok.size,
  };
  throw new Error(`arch ${arch}`);
}

/** Random values of a tensor of `kind`. */
function randomTensor(t, r, c, arch) {
  const n = t.dims.reduce((a, b) => a * b, 1);
  const u = (lo, hi) => Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
  switch (t.kind) {
    case 'embedding': return u(-1, 1);
    case 'linear': { const a = Math.sqrt(3 / t.dims[1]); return u(-a, a); }
    case 'conv1d': { const a = Math.sqrt(3 / t.dims[0]); return u(-a, a); }
    case 'normWeight': return u(0.5, 1.5);
    case 'normBias': case 'bias': return u(-0.2, 0.2);
    case 'i64': return BigInt64Array.from({ length: n }, (_, i) => BigInt(i));
    case 'attnBias': {  // torch.tril(ones(P, P)) viewed [1, 1, P, P]
      const P = t.dims[2], a = new Float32Array(n);
      for (let i = 0; i < P; i++) for (let j = 0; j <= i; j++) a[i * P + j] = 1;
      return a;
    }
    case 'maskedBias': return Float32Array.of(-1e4);
    case 'invFreq': { const D2 = t.dims[0]; return Float32Array.from({ length: D2 }, (_, i) => 1 / t.base ** ((2 * i) / (2 * D2))); }
    default: throw new Error(`kind ${t.kind} (${arch}, ${c.model_type})`);
  }
}

/**
 * A tiny random model of arch 'bert' | 'gpt2' | 'llama' | 'qwen2' | 'mistral'.
 * options: {
 *   seed = 1,
 *   dtype: 'F32' (default) | 'F16' | 'BF16' — storage of every float tensor,
 *   shards: 1 — files; more writes model-0000i-of-0000n.safetensors and the index,
 *   tie: tied word embeddings (default: gpt2 tied with no config key, qwen2 tied, llama and
 *     mistral untied); false for gpt2 writes tie_word_embeddings: false and lm_head.weight,
 *   prefix: write the architecture's prefix (default true for the LM models: `transformer.`,
 *     `model.`; bert: BertModel without prefix, or variant 'BertForMaskedLM' with `bert.`),
 *   variant: 'BertModel' | 'BertForMaskedLM' (bert),
 *   persistedBuffers = true: BERT's embeddings.position_ids (I64), GPT-2's attn.bias /
 *     attn.masked_bias; with legacyBuffers also Llama's self_attn.rotary_emb.inv_freq (older
 *     checkpoints),
 *   legacyLayerNormNames: BERT LayerNorm.gamma / .beta (as bert-base-uncased has them),
 *   int8Exact: false | 'outChannel' | 'tensor' — every float matrix exactly q * s (int8Exact),
 *   config: fields merged over the generated config (e.g. { use_sliding_window: true }),
 *   tokenizer: a tiny-tokenizers kind instead of the architecture's own,
 * }
 * Returns { arch, config, tensors, files: [{ name, bytes }], index (or null), tokenizer,
 * tokenizerJson, tokenizerConfig, prefix }.
 */
export function tinyModel(arch, options = {}) {
  const o = {
    seed: 1, dtype: 'F32', shards: 1, persistedBuffers: true, legacyBuffers: false, legacyLayerNormNames: false, int8Exact: false,
    variant: 'BertModel', ...options,
  };
  if (!PREFIX[arch]) throw new Error(`arch ${arch}`);
  const tok = tinyTokenizer(o.tokenizer ?? DEFAULT_TOKENIZER[arch]);
  const config = { ...tinyConfig(arch, tok, o), ...(o.config ?? {}) };
  const bertPrefix = o.prefix === undefined ? o.variant === 'BertForMaskedLM' : o.prefix;
  const prefix = arch === 'bert' ? (bertPrefix ? 'bert.' : '') : o.prefix === false ? '' : PREFIX[arch];
  const r = rng(o.seed * 7919 + 17);
  const tensors = {};
  for (const t of tensorList(arch, config, o)) {
    const data = randomTensor(t, r, config, arch);
    if (data instanceof Float32Array) {
      if (o.int8Exact && t.dims.length === 2) int8Exact(data, t.dims[0], t.dims[1], t.kind === 'conv1d' ? 1 : 0, o.int8Exact, r);
      roundTo(data, o.dtype);
    }
    tensors[(t.root ? '' : prefix) + t.name] = { data, dims: t.dims };
  }
  // shards: names in order, cut into runs of about equal bytes
  const names = Object.keys(tensors).sort();
  const bytesOf = (n) => tensors[n].data.length * (tensors[n].data instanceof Float32Array ? (o.dtype === 'F32' ? 4 : 2) : tensors[n].data.BYTES_PER_ELEMENT);
  const total = names.reduce((s, n) => s + bytesOf(n), 0);
  const groups = Array.from({ length: o.shards }, () => []);
  let acc = 0;
  for (const n of names) {
    groups[Math.min(o.shards - 1, Math.floor((acc / total) * o.shards))].push(n);
    acc += bytesOf(n);
  }
  const fileName = (i) => (o.shards === 1 ? 'model.safetensors' : `model-${String(i + 1).padStart(5, '0')}-of-${String(o.shards).padStart(5, '0')}.safetensors`);
  const files = groups.map((g, i) => ({ name: fileName(i), bytes: writeSafetensors(Object.fromEntries(g.map((n) => [n, tensors[n]])), { dtype: o.dtype }) }));
  const index = o.shards === 1 ? null : {
    metadata: { total_size: total },
    weight_map: Object.fromEntries(groups.flatMap((g, i) => g.map((n) => [n, fileName(i)])).sort(([a], [b]) => (a < b ? -1 : 1))),
  };
  return { arch, config, tensors, files, index, tokenizer: tok, tokenizerJson: tok.tokenizerJson, tokenizerConfig: tok.tokenizerConfig, prefix };
}
