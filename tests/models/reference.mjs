// Independent float64 references of the Hugging Face architectures of issue 15, written
// plainly (loops, no tricks) from transformers' own modeling code:
//   BertModel (models/bert/modeling_bert.py), GPT2LMHeadModel (models/gpt2/modeling_gpt2.py),
//   LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM (models/{llama,qwen2,mistral}/
//   modeling_*.py and configuration_*.py), the rotary frequencies of modeling_rope_utils.py,
//   the activations of activations.py, the sliding-window rule of masking_utils.py, the
//   position ids of GenerationMixin.prepare_inputs_for_generation, and sentence-transformers'
//   Pooling / Normalize modules.
//
// Inputs (every function): { config (the parsed config.json), tensors (name -> { data, dims },
// HF names, with or without the architecture's prefix `bert.` / `transformer.` / `model.`),
// ids, attentionMask, positionIds, tokenTypeIds (BERT) }.
//   ids: number[] / Int32Array (one sequence), an array of rows (left-padded here with
//   config.pad_token_id ?? 0, mask 0 on the padding), or { data, dims: [B, L] }.
//   attentionMask: the same forms (1 = token, 0 = padding); default all ones (or from the
//   padding of rows). positionIds: the same forms; default for the decoders is what HF's
//   generate() computes from the mask, cumsum(mask) - 1 with padded slots set to 1 (equal to
//   0..L-1 when nothing is padded; note HF's bare forward() would use 0..L-1 even with
//   padding); for BERT 0..L-1 (BertEmbeddings' position_ids buffer).
//
// Masking follows HF: causal and sliding-window masks work on indices in the (padded)
// sequence, padded keys (mask 0) are never attended to. A query row with no visible key
// (a left-padded slot of a decoder) gets what HF's eager attention gives it, uniform weights
// over all keys: its output is meaningless and never reaches a real token; compare only real
// rows (maskedRelErr).
//
// Outputs: { data: Float64Array, dims, attentions? } where data is the logits [B, L, vocab_size]
// of the LM models and BERT's last_hidden_state [B, L, hidden]; with needWeights, attentions
// is one Float64Array [B, H, L, L] per layer (the softmax weights, HF's output_attentions).

// ---------------------------------------------------------------------------------
// Small helpers

const isTyped = (a) => ArrayBuffer.isView(a) && !(a instanceof DataView);

/** erf to ~1e-15 (series below 3, continued fraction above). */
export function erf(x) {
  const t = Math.abs(x);
  if (t < 3) {
    let sum = t, term = t, n = 0;
    while (Math.abs(term) > 1e-17 * Math.abs(sum)) {
      n++;
      term *= (-t * t) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  let f = 0;
  for (let k = 60; k >= 1; k--) f = k / 2 / (t + f);
  return Math.sign(x) * (1 - Math.exp(-t * t) / Math.sqrt(Math.PI) / (t + f));
}

/** transformers/activations.py ACT2FN, the names these architectures use. */
export const ACT2FN = {
  gelu: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),  // GELUActivation: exact erf form
  gelu_new: (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))),  // NewGELUActivation
  gelu_pytorch_tanh: (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))),
  gelu_fast: (x) => 0.5 * x * (1 + Math.tanh(x * 0.7978845608 * (1 + 0.044715 * x * x))),
  quick_gelu: (x) => x / (1 + Math.exp(-1.702 * x)),
  relu: (x) => Math.max(0, x),
  silu: (x) => x / (1 + Math.exp(-x)),
  swish: (x) => x / (1 + Math.exp(-x)),
};

function activation(name) {
  const f = ACT2FN[name];
  if (!f) throw new Error(`activation ${JSON.stringify(name)} is not covered by this reference`);
  return f;
}

/** A [B, L] batch in any of the accepted forms -> { data: number[], B, L, mask? } */
function batchOf(x, what, padId) {
  if (x && !isTyped(x) && !Array.isArray(x) && x.data) {
    const [B, L] = x.dims;
    if (x.dims.length !== 2 || x.data.length !== B * L) throw new RangeError(`${what}: dims ${JSON.stringify(x.dims)} do not fit ${x.data.length} values`);
    return { data: Array.from(x.data, Number), B, L, mask: null };
  }
  if (Array.isArray(x) && x.length > 0 && (Array.isArray(x[0]) || isTyped(x[0]))) {
    const B = x.length, L = Math.max(...x.map((r) => r.length));
    const data = new Array(B * L).fill(padId), mask = new Array(B * L).fill(0);
    x.forEach((row, b) => {
      const off = L - row.length;
      for (let i = 0; i < row.length; i++) { data[b * L + off + i] = Number(row[i]); mask[b * L + off + i] = 1; }
    });
    return { data, B, L, mask };
  }
  if (Array.isArray(x) || isTyped(x)) return { data: Array.from(x, Number), B: 1, L: x.length, mask: null };
  throw new TypeError(`${what}: expected number[], rows or { data, dims }`);
}

/** Left-pads rows: { ids: Int32Array, attentionMask: Int32Array, dims: [B, L] }. */
export function leftPad(rows, padId = 0) {
  const { data, B, L, mask } = batchOf(rows, 'rows', padId);
  return { ids: Int32Array.from(data), attentionMask: Int32Array.from(mask ?? data.map(() => 1)), dims: [B, L] };
}

/**
 * HF generate()'s position ids: cumsum(mask) - 1, and 1 where the mask is 0
 * (GenerationMixin.prepare_inputs_for_generation). mask: flat [B, L].
 */
export function positionIdsFromMask(mask, B, L) {
  const pos = new Int32Array(B * L);
  for (let b = 0; b < B; b++) {
    let c = 0;
    for (let i = 0; i < L; i++) {
      c += Number(mask[b * L + i]);
      pos[b * L + i] = Number(mask[b * L + i]) === 0 ? 1 : c - 1;
    }
  }
  return pos;
}

/** Resolves ids / attentionMask / positionIds / tokenTypeIds to flat number arrays. */
function inputsOf(args, { padId, positions }) {
  const ids = batchOf(args.ids, 'ids', padId);
  const { B, L } = ids;
  const flat = (x, what) => {
    if (x == null) return null;
    const r = batchOf(x, what, 0);
    if (r.B * r.L !== B * L) throw new RangeError(`${what} has ${r.B * r.L} entries, ids ${B * L}`);
    return r.data;
  };
  const mask = flat(args.attentionMask, 'attentionMask') ?? ids.mask ?? new Array(B * L).fill(1);
  let pos = flat(args.positionIds, 'positionIds');
  if (!pos) pos = positions === 'arange' ? Array.from({ length: B * L }, (_, t) => t % L) : Array.from(positionIdsFromMask(mask, B, L));
  return { B, L, ids: ids.data, mask, pos, tokenTypes: flat(args.tokenTypeIds, 'tokenTypeIds') };
}

/**
 * A tensor getter over HF names: get('embed_tokens.weight') finds it as given or under one
 * of the prefixes ('model.' ...); dims are checked. root names (lm_head.weight) are tried
 * as given first too.
 */
function tensorGetter(tensors, prefixes) {
  const find = (name) => {
    for (const p of ['', ...prefixes]) if (Object.prototype.hasOwnProperty.call(tensors, p + name)) return { key: p + name, t: tensors[p + name] };
    return null;
  };
  const check = (key, t, dims) => {
    if (dims && (t.dims.length !== dims.length || t.dims.some((d, i) => d !== dims[i])))
      throw new RangeError(`tensor ${key} has dims ${JSON.stringify(t.dims)}, expected ${JSON.stringify(dims)}`);
    if (t.data.length !== t.dims.reduce((a, b) => a * b, 1)) throw new RangeError(`tensor ${key}: ${t.data.length} values for dims ${JSON.stringify(t.dims)}`);
    return t.data;
  };
  return {
    has: (name) => find(name) !== null,
    get(name, dims) {
      const f = find(name);
      if (!f) throw new Error(`tensor ${name} is missing (prefixes tried: ${['', ...prefixes].map((p) => JSON.stringify(p)).join(', ')})`);
      return check(f.key, f.t, dims);
    },
    opt(name, dims) {
      const f = find(name);
      return f ? check(f.key, f.t, dims) : null;
    },
  };
}

/** y [M, N] = x [M, K] . W^T + b, W in nn.Linear's layout [N, K]. */
function linear(x, M, K, W, N, b) {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = b ? b[n] : 0;
      for (let k = 0; k < K; k++) s += x[m * K + k] * W[n * K + k];
      y[m * N + n] = s;
    }
  return y;
}

/** y [M, N] = x [M, K] . W + b, W in GPT-2's Conv1D layout [K, N] (transformers.pytorch_utils.Conv1D). */
function conv1d(x, M, K, W, N, b) {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = b ? b[n] : 0;
      for (let k = 0; k < K; k++) s += x[m * K + k] * W[k * N + n];
      y[m * N + n] = s;
    }
  return y;
}

/** nn.LayerNorm over rows of width N (biased variance). */
function layerNorm(x, M, N, w, b, eps) {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    let mean = 0, v = 0;
    for (let k = 0; k < N; k++) mean += x[m * N + k];
    mean /= N;
    for (let k = 0; k < N; k++) v += (x[m * N + k] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / N + eps);
    for (let k = 0; k < N; k++) y[m * N + k] = (x[m * N + k] - mean) * inv * w[k] + b[k];
  }
  return y;
}

/** LlamaRMSNorm / Qwen2RMSNorm: weight * x * rsqrt(mean(x^2) + eps). */
function rmsNorm(x, M, N, w, eps) {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    let ms = 0;
    for (let k = 0; k < N; k++) ms += x[m * N + k] ** 2;
    const inv = 1 / Math.sqrt(ms / N + eps);
    for (let k = 0; k < N; k++) y[m * N + k] = w[k] * (x[m * N + k] * inv);
  }
  return y;
}

const addInto = (a, b) => { for (let i = 0; i < a.length; i++) a[i] += b[i]; return a; };

/** Rows of an embedding table [V, N] by ids. */
function embed(table, V, N, ids, what) {
  const y = new Float64Array(ids.length * N);
  ids.forEach((id, t) => {
    if (!Number.isInteger(id) || id < 0 || id >= V) throw new RangeError(`${what}: id ${id} outside [0, ${V})`);
    for (let k = 0; k < N; k++) y[t * N + k] = table[id * N + k];
  });
  return y;
}

/**
 * Softmax attention of one layer. q [B, L, H, D], k and v [B, L, Hkv, D] (query head h reads
 * KV head floor(h / (H / Hkv)), HF's repeat_kv). visible(b, i, j): may query i see key j.
 * A row that sees no key gets uniform weights over all L keys (HF eager with a fully masked
 * row: every score plus finfo.min). Returns { out [B, L, H*D], weights [B, H, L, L] | null }.
 */
function attention({ B, L, H, Hkv, D, q, k, v, scale, visible, needWeights }) {
  const group = H / Hkv;
  const out = new Float64Array(B * L * H * D);
  const weights = needWeights ? new Float64Array(B * H * L * L) : null;
  const s = new Float64Array(L), p = new Float64Array(L);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / group);
      for (let i = 0; i < L; i++) {
        let m = -Infinity, any = false;
        for (let j = 0; j < L; j++) {
          if (!visible(b, i, j)) { s[j] = -Infinity; continue; }
          let d = 0;
          for (let t = 0; t < D; t++) d += q[((b * L + i) * H + h) * D + t] * k[((b * L + j) * Hkv + g) * D + t];
          s[j] = d * scale;
          any = true;
          if (s[j] > m) m = s[j];
        }
        if (!any) p.fill(1 / L);
        else {
          let sum = 0;
          for (let j = 0; j < L; j++) sum += (p[j] = s[j] === -Infinity ? 0 : Math.exp(s[j] - m));
          for (let j = 0; j < L; j++) p[j] /= sum;
        }
        for (let t = 0; t < D; t++) {
          let acc = 0;
          for (let j = 0; j < L; j++) acc += p[j] * v[((b * L + j) * Hkv + g) * D + t];
          out[((b * L + i) * H + h) * D + t] = acc;
        }
        if (weights) weights.set(p, ((b * H + h) * L + i) * L);
      }
    }
  return { out, weights };
}

// ---------------------------------------------------------------------------------
// BERT

/** BertConfig with its defaults (configuration_bert.py). */
export function bertConfig(config) {
  const c = {
    hidden: config.hidden_size ?? 768,
    layers: config.num_hidden_layers ?? 12,
    heads: config.num_attention_heads ?? 12,
    intermediate: config.intermediate_size ?? 3072,
    act: config.hidden_act ?? 'gelu',
    eps: config.layer_norm_eps ?? 1e-12,
    vocab: config.vocab_size ?? 30522,
    maxPositions: config.max_position_embeddings ?? 512,
    typeVocab: config.type_vocab_size ?? 2,
    padId: config.pad_token_id ?? 0,
    positionType: config.position_embedding_type ?? 'absolute',
  };
  if (c.positionType !== 'absolute') throw new Error(`position_embedding_type ${c.positionType} is not covered by this reference`);
  if (c.hidden % c.heads !== 0) throw new RangeError(`hidden_size ${c.hidden} is not a multiple of num_attention_heads ${c.heads}`);
  c.headDim = c.hidden / c.heads;
  return c;
}

/**
 * BertModel's last_hidden_state [B, L, hidden]: word + token_type + absolute position
 * embeddings, LayerNorm; per layer (post-norm): LayerNorm(x + dense(selfattn(x))), then
 * LayerNorm(a + dense(act(dense(a)))). Padded keys (mask 0) are masked; no causal mask.
 * LayerNorm parameters may be named weight/bias or the legacy gamma/beta (as in
 * bert-base-uncased's checkpoint; HF renames them on load). The pooler is not applied.
 */
export function bertReference(args) {
  const c = bertConfig(args.config);
  const { B, L, ids, mask, pos, tokenTypes } = inputsOf(args, { padId: c.padId, positions: 'arange' });
  const T = tensorGetter(args.tensors, ['bert.']);
  const E = c.hidden, M = B * L;
  const ln = (p) => ({
    w: T.opt(`${p}.LayerNorm.weight`, [E]) ?? T.get(`${p}.LayerNorm.gamma`, [E]),
    b: T.opt(`${p}.LayerNorm.bias`, [E]) ?? T.get(`${p}.LayerNorm.beta`, [E]),
  });
  const act = activation(c.act);

  let x = embed(T.get('embeddings.word_embeddings.weight', [c.vocab, E]), c.vocab, E, ids, 'input_ids');
  addInto(x, embed(T.get('embeddings.token_type_embeddings.weight', [c.typeVocab, E]), c.typeVocab, E, tokenTypes ?? ids.map(() => 0), 'token_type_ids'));
  addInto(x, embed(T.get('embeddings.position_embeddings.weight', [c.maxPositions, E]), c.maxPositions, E, pos, 'position_ids'));
  const eln = ln('embeddings');
  x = layerNorm(x, M, E, eln.w, eln.b, c.eps);

  const attentions = [];
  for (let l = 0; l < c.layers; l++) {
    const p = `encoder.layer.${l}`;
    const lin = (name, N, K) => ({ W: T.get(`${p}.${name}.weight`, [N, K]), b: T.get(`${p}.${name}.bias`, [N]) });
    const qw = lin('attention.self.query', E, E), kw = lin('attention.self.key', E, E), vw = lin('attention.self.value', E, E);
    const q = linear(x, M, E, qw.W, E, qw.b), k = linear(x, M, E, kw.W, E, kw.b), v = linear(x, M, E, vw.W, E, vw.b);
    const { out, weights } = attention({
      B, L, H: c.heads, Hkv: c.heads, D: c.headDim, q, k, v, scale: 1 / Math.sqrt(c.headDim),
      visible: (b, i, j) => mask[b * L + j] !== 0, needWeights: args.needWeights,
    });
    if (weights) attentions.push(weights);
    const o = lin('attention.output.dense', E, E), oln = ln(`${p}.attention.output`);
    const a = layerNorm(addInto(linear(out, M, E, o.W, E, o.b), x), M, E, oln.w, oln.b, c.eps);
    const i1 = lin('intermediate.dense', c.intermediate, E), o2 = lin('output.dense', E, c.intermediate), ln2 = ln(`${p}.output`);
    const inter = linear(a, M, E, i1.W, c.intermediate, i1.b).map(act);
    x = layerNorm(addInto(linear(inter, M, c.intermediate, o2.W, E, o2.b), a), M, E, ln2.w, ln2.b, c.eps);
  }
  return { data: x, dims: [B, L, E], attentions: args.needWeights ? attentions : undefined };
}

/**
 * sentence-transformers pooling of hidden [B, L, N] with mask [B, L]: 'mean' = sum of the
 * real tokens' vectors / max(count, 1e-9) (Pooling, pooling_mode_mean_tokens); 'cls' = the
 * first token's vector (pooling_mode_cls_token; not BERT's tanh pooler); normalize = x /
 * max(||x||_2, 1e-12) (Normalize: F.normalize). Returns Float64Array [B, N].
 */
export function poolReference(hidden, B, L, N, mask, { pooling = 'mean', normalize = false } = {}) {
  const y = new Float64Array(B * N);
  for (let b = 0; b < B; b++) {
    if (pooling === 'cls') for (let k = 0; k < N; k++) y[b * N + k] = hidden[(b * L) * N + k];
    else if (pooling === 'mean') {
      let count = 0;
      for (let i = 0; i < L; i++) {
        const m = mask ? Number(mask[b * L + i]) : 1;
        count += m;
        if (m) for (let k = 0; k < N; k++) y[b * N + k] += hidden[(b * L + i) * N + k] * m;
      }
      for (let k = 0; k < N; k++) y[b * N + k] /= Math.max(count, 1e-9);
    } else throw new Error(`pooling ${pooling}`);
    if (normalize) {
      let n2 = 0;
      for (let k = 0; k < N; k++) n2 += y[b * N + k] ** 2;
      const d = Math.max(Math.sqrt(n2), 1e-12);
      for (let k = 0; k < N; k++) y[b * N + k] /= d;
    }
  }
  return y;
}

/** BertModel + sentence-transformers pooling: { data: Float64Array [B, hidden], dims }. */
export function sentenceEmbeddingReference(args) {
  const c = bertConfig(args.config);
  const { B, L, mask } = inputsOf(args, { padId: c.padId, positions: 'arange' });
  const h = bertReference(args);
  return { data: poolReference(h.data, B, L, c.hidden, mask, { pooling: args.pooling ?? 'mean', normalize: !!args.normalize }), dims: [B, c.hidden] };
}

// ---------------------------------------------------------------------------------
// GPT-2

/** GPT2Config with its defaults (configuration_gpt2.py; hidden_size etc. are attribute_map aliases). */
export function gpt2Config(config) {
  const E = config.n_embd ?? config.hidden_size ?? 768;
  const c = {
    hidden: E,
    layers: config.n_layer ?? config.num_hidden_layers ?? 12,
    heads: config.n_head ?? config.num_attention_heads ?? 12,
    inner: config.n_inner ?? 4 * E,
    positions: config.n_positions ?? config.max_position_embeddings ?? 1024,
    vocab: config.vocab_size ?? 50257,
    act: config.activation_function ?? 'gelu_new',
    eps: config.layer_norm_epsilon ?? 1e-5,
    scaleAttnWeights: config.scale_attn_weights ?? true,
    scaleByInverseLayerIdx: config.scale_attn_by_inverse_layer_idx ?? false,
    tied: config.tie_word_embeddings ?? true,  // PretrainedConfig's default: GPT-2 configs leave it out
    padId: config.pad_token_id ?? config.eos_token_id ?? 0,
  };
  if (config.add_cross_attention) throw new Error('add_cross_attention is not covered by this reference');
  if (E % c.heads !== 0) throw new RangeError(`n_embd ${E} is not a multiple of n_head ${c.heads}`);
  c.headDim = E / c.heads;
  return c;
}

/**
 * GPT2LMHeadModel's logits [B, L, vocab]: wte[ids] + wpe[positions]; per layer (pre-norm)
 * x += c_proj(attn(ln_1(x))), x += mlp.c_proj(act(mlp.c_fc(ln_2(x)))), Conv1D weights
 * [in, out]; c_attn's output is [q | k | v]; scores / sqrt(head_dim) when scale_attn_weights,
 * and / (layer + 1) with scale_attn_by_inverse_layer_idx; causal + padding masks; ln_f;
 * logits = x . wte^T when tied (the default), else lm_head.weight.
 */
export function gpt2Reference(args) {
  const c = gpt2Config(args.config);
  const { B, L, ids, mask, pos } = inputsOf(args, { padId: c.padId, positions: 'generate' });
  const T = tensorGetter(args.tensors, ['transformer.']);
  const E = c.hidden, M = B * L, D = c.headDim, H = c.heads;
  const act = activation(c.act);
  const wte = T.get('wte.weight', [c.vocab, E]);
  let x = embed(wte, c.vocab, E, ids, 'input_ids');
  addInto(x, embed(T.get('wpe.weight', [c.positions, E]), c.positions, E, pos, 'position_ids'));
  const attentions = [];
  for (let l = 0; l < c.layers; l++) {
    const p = `h.${l}`;
    const h1 = layerNorm(x, M, E, T.get(`${p}.ln_1.weight`, [E]), T.get(`${p}.ln_1.bias`, [E]), c.eps);
    const qkv = conv1d(h1, M, E, T.get(`${p}.attn.c_attn.weight`, [E, 3 * E]), 3 * E, T.get(`${p}.attn.c_attn.bias`, [3 * E]));
    const q = new Float64Array(M * E), k = new Float64Array(M * E), v = new Float64Array(M * E);
    for (let t = 0; t < M; t++)
      for (let e = 0; e < E; e++) {
        q[t * E + e] = qkv[t * 3 * E + e];
        k[t * E + e] = qkv[t * 3 * E + E + e];
        v[t * E + e] = qkv[t * 3 * E + 2 * E + e];
      }
    let scale = c.scaleAttnWeights ? 1 / Math.sqrt(D) : 1;
    if (c.scaleByInverseLayerIdx) scale /= l + 1;
    const { out, weights } = attention({
      B, L, H, Hkv: H, D, q, k, v, scale, needWeights: args.needWeights,
      visible: (b, i, j) => j <= i && mask[b * L + j] !== 0,
    });
    if (weights) attentions.push(weights);
    addInto(x, conv1d(out, M, E, T.get(`${p}.attn.c_proj.weight`, [E, E]), E, T.get(`${p}.attn.c_proj.bias`, [E])));
    const h2 = layerNorm(x, M, E, T.get(`${p}.ln_2.weight`, [E]), T.get(`${p}.ln_2.bias`, [E]), c.eps);
    const f = conv1d(h2, M, E, T.get(`${p}.mlp.c_fc.weight`, [E, c.inner]), c.inner, T.get(`${p}.mlp.c_fc.bias`, [c.inner])).map(act);
    addInto(x, conv1d(f, M, c.inner, T.get(`${p}.mlp.c_proj.weight`, [c.inner, E]), E, T.get(`${p}.mlp.c_proj.bias`, [E])));
  }
  x = layerNorm(x, M, E, T.get('ln_f.weight', [E]), T.get('ln_f.bias', [E]), c.eps);
  const head = c.tied ? wte : T.get('lm_head.weight', [c.vocab, E]);
  return { data: linear(x, M, E, head, c.vocab, null), dims: [B, L, c.vocab], attentions: args.needWeights ? attentions : undefined };
}

// ---------------------------------------------------------------------------------
// Llama, Qwen2, Mistral

const DECODER_TYPES = {
  LlamaForCausalLM: 'llama', Qwen2ForCausalLM: 'qwen2', MistralForCausalLM: 'mistral',
};

/**
 * The rotary inverse frequencies of modeling_rope_utils.py (default, linear, llama3; the
 * rope type from rope_scaling.rope_type or the older rope_scaling.type, or from
 * transformers v5's rope_parameters), in float32 as HF keeps the inv_freq buffer.
 * dim = int(head_dim * partial_rotary_factor), head_dim = config.head_dim or hidden/heads.
 * Returns { dim, invFreq: Float64Array (float32 values), attentionFactor }.
 */
export function ropeReference(config) {
  const rp = config.rope_parameters ?? null;  // transformers v5 keeps theta and scaling here
  const rs = rp ?? config.rope_scaling ?? null;
  const type = rs ? rs.rope_type ?? rs.type ?? 'default' : 'default';
  const base = rp?.rope_theta ?? config.rope_theta ?? 10000;
  const headDim = config.head_dim ?? config.hidden_size / config.num_attention_heads;
  const partial = rp?.partial_rotary_factor ?? config.partial_rotary_factor ?? 1;
  const dim = Math.trunc(headDim * partial);
  // _compute_default_rope_parameters: 1 / base^(arange(0, dim, 2) / dim), float32
  const f32 = (a) => a.map((v) => Math.fround(v));
  let inv = f32(Float64Array.from({ length: dim / 2 }, (_, i) => 1 / base ** ((2 * i) / dim)));
  if (type === 'default') { /* as is */ } else if (type === 'linear') inv = f32(inv.map((f) => f / rs.factor));
  else if (type === 'llama3') {
    // _compute_llama3_parameters
    const { factor, low_freq_factor: lowF, high_freq_factor: highF, original_max_position_embeddings: old } = rs;
    const lowWl = old / lowF, highWl = old / highF;
    inv = f32(inv.map((f) => {
      const wl = (2 * Math.PI) / f;
      if (wl < highWl) return f;
      if (wl > lowWl) return f / factor;
      const smooth = (old / wl - lowF) / (highF - lowF);
      return (1 - smooth) * (f / factor) + smooth * f;
    }));
  } else throw new Error(`rope type ${JSON.stringify(type)} is not covered by this reference`);
  return { dim, invFreq: inv, attentionFactor: 1 };
}

/** The decoder's config with each architecture's own defaults (configuration_{llama,qwen2,mistral}.py). */
export function decoderConfig(config) {
  const arch = config.architectures?.[0];
  const type = DECODER_TYPES[arch] ?? config.model_type;
  if (!['llama', 'qwen2', 'mistral'].includes(type)) throw new Error(`architecture ${arch ?? config.model_type} is not a Llama-family decoder`);
  const heads = config.num_attention_heads ?? 32;
  const hidden = config.hidden_size ?? 4096;
  const layers = config.num_hidden_layers ?? 32;
  // num_key_value_heads: Llama defaults to num_attention_heads, Mistral to 8, Qwen2 to 32
  const kvHeads = config.num_key_value_heads ?? { llama: heads, mistral: 8, qwen2: 32 }[type];
  const c = {
    type, hidden, heads, kvHeads, layers,
    headDim: config.head_dim ?? hidden / heads,
    intermediate: config.intermediate_size ?? { llama: 11008, mistral: 14336, qwen2: 22016 }[type],
    vocab: config.vocab_size ?? { llama: 32000, mistral: 32000, qwen2: 151936 }[type],
    eps: config.rms_norm_eps ?? 1e-6,
    act: config.hidden_act ?? 'silu',
    tied: config.tie_word_embeddings ?? false,
    // q/k/v biases: Llama's attention_bias (also on o_proj), always on for Qwen2 (o_proj without)
    qkvBias: type === 'qwen2' ? true : type === 'llama' ? !!config.attention_bias : false,
    oBias: type === 'llama' ? !!config.attention_bias : false,
    mlpBias: type === 'llama' ? !!config.mlp_bias : false,
    padId: config.pad_token_id ?? 0,
    rope: ropeReference({ ...config, hidden_size: hidden, num_attention_heads: heads }),
  };
  // Sliding window per layer: Mistral on every layer (sliding_window, 4096 when the key is
  // absent, null = off); Qwen2 only with use_sliding_window, on layers >= max_window_layers
  // (or as config.layer_types says); Llama never.
  c.windows = Array.from({ length: layers }, (_, l) => {
    if (type === 'mistral') return config.sliding_window === undefined ? 4096 : config.sliding_window;
    if (type === 'qwen2') {
      const w = config.use_sliding_window ? (config.sliding_window === undefined ? 4096 : config.sliding_window) : null;
      if (w == null) return null;
      if (Array.isArray(config.layer_types)) return config.layer_types[l] === 'sliding_attention' ? w : null;
      return l >= (config.max_window_layers ?? 28) ? w : null;
    }
    return null;
  });
  if (c.heads % c.kvHeads !== 0) throw new RangeError(`num_attention_heads ${c.heads} is not a multiple of num_key_value_heads ${c.kvHeads}`);
  if (!Number.isInteger(c.headDim)) throw new RangeError(`head_dim ${c.headDim}`);
  if (config.pretraining_tp && config.pretraining_tp !== 1) { /* only a training detail in HF >= 4.4x: ignored */ }
  return c;
}

/**
 * rotate_half rotary on rows of width D (the first `dim` channels; the rest pass through,
 * as HF's partial-rotary models do): x * cos + rotate_half(x) * sin, channel c paired with
 * c + dim/2, angle pos * invFreq[c], both times attentionFactor.
 */
function applyRotary(x, rows, D, posOfRow, rope) {
  const half = rope.dim / 2;
  for (let r = 0; r < rows; r++) {
    const p = posOfRow(r), o = r * D;
    for (let c = 0; c < half; c++) {
      const a = p * rope.invFreq[c];
      const cos = Math.cos(a) * rope.attentionFactor, sin = Math.sin(a) * rope.attentionFactor;
      const x1 = x[o + c], x2 = x[o + c + half];
      x[o + c] = x1 * cos - x2 * sin;
      x[o + c + half] = x2 * cos + x1 * sin;
    }
  }
  return x;
}

/**
 * LlamaForCausalLM / Qwen2ForCausalLM / MistralForCausalLM logits [B, L, vocab_size]:
 * embed_tokens[ids]; per layer (pre-norm, RMSNorm) x += o_proj(attn(input_layernorm(x))),
 * x += down_proj(act(gate_proj(h)) * up_proj(h)) with h = post_attention_layernorm(x);
 * q/k rotated at positionIds; GQA; scale head_dim^-0.5; causal, padding and the layer's
 * sliding window (query index i sees keys i - W < j <= i); norm; lm_head (or embed_tokens
 * when tie_word_embeddings).
 */
export function llamaReference(args) {
  const c = decoderConfig(args.config);
  const { B, L, ids, mask, pos } = inputsOf(args, { padId: c.padId, positions: 'generate' });
  const T = tensorGetter(args.tensors, ['model.']);
  const E = c.hidden, M = B * L, H = c.heads, Hkv = c.kvHeads, D = c.headDim, F = c.intermediate;
  const act = activation(c.act);
  const embedTokens = T.get('embed_tokens.weight', [c.vocab, E]);
  let x = embed(embedTokens, c.vocab, E, ids, 'input_ids');
  const attentions = [];
  for (let l = 0; l < c.layers; l++) {
    const p = `layers.${l}`;
    const h = rmsNorm(x, M, E, T.get(`${p}.input_layernorm.weight`, [E]), c.eps);
    const proj = (name, N, bias) => linear(h, M, E, T.get(`${p}.self_attn.${name}.weight`, [N, E]), N, bias ? T.get(`${p}.self_attn.${name}.bias`, [N]) : null);
    const q = applyRotary(proj('q_proj', H * D, c.qkvBias), M * H, D, (r) => pos[Math.floor(r / H)], c.rope);
    const k = applyRotary(proj('k_proj', Hkv * D, c.qkvBias), M * Hkv, D, (r) => pos[Math.floor(r / Hkv)], c.rope);
    const v = proj('v_proj', Hkv * D, c.qkvBias);
    const W = c.windows[l];
    const { out, weights } = attention({
      B, L, H, Hkv, D, q, k, v, scale: D ** -0.5, needWeights: args.needWeights,
      visible: (b, i, j) => j <= i && mask[b * L + j] !== 0 && (W == null || j > i - W),
    });
    if (weights) attentions.push(weights);
    addInto(x, linear(out, M, H * D, T.get(`${p}.self_attn.o_proj.weight`, [E, H * D]), E, c.oBias ? T.get(`${p}.self_attn.o_proj.bias`, [E]) : null));
    const h2 = rmsNorm(x, M, E, T.get(`${p}.post_attention_layernorm.weight`, [E]), c.eps);
    const mlp = (name, N, K, input) => linear(input, M, K, T.get(`${p}.mlp.${name}.weight`, [N, K]), N, c.mlpBias ? T.get(`${p}.mlp.${name}.bias`, [N]) : null);
    const gate = mlp('gate_proj', F, E, h2), up = mlp('up_proj', F, E, h2);
    for (let i = 0; i < gate.length; i++) gate[i] = act(gate[i]) * up[i];
    addInto(x, mlp('down_proj', E, F, gate));
  }
  x = rmsNorm(x, M, E, T.get('norm.weight', [E]), c.eps);
  const head = c.tied ? embedTokens : T.get('lm_head.weight', [c.vocab, E]);
  return { data: linear(x, M, E, head, c.vocab, null), dims: [B, L, c.vocab], attentions: args.needWeights ? attentions : undefined };
}

// ---------------------------------------------------------------------------------
// Dispatch, greedy generation, comparisons

/** 'bert' | 'gpt2' | 'llama' | 'qwen2' | 'mistral' from config.architectures[0] / model_type. */
export function architectureOf(config) {
  const arch = config.architectures?.[0];
  if (arch === 'BertModel' || arch === 'BertForMaskedLM' || (!arch && config.model_type === 'bert')) return 'bert';
  if (arch === 'GPT2LMHeadModel' || (!arch && config.model_type === 'gpt2')) return 'gpt2';
  if (DECODER_TYPES[arch]) return DECODER_TYPES[arch];
  if (!arch && ['llama', 'qwen2', 'mistral'].includes(config.model_type)) return config.model_type;
  throw new Error(`architecture ${arch ?? config.model_type} is not covered by this reference`);
}

/** The forward of whatever architecture the config names. */
export function referenceForward(args) {
  const a = architectureOf(args.config);
  return a === 'bert' ? bertReference(args) : a === 'gpt2' ? gpt2Reference(args) : llamaReference(args);
}

/** config.eos_token_id as a list (it may be a number, a list or absent). */
export function eosTokenIds(config) {
  const e = config.eos_token_id;
  return e == null ? [] : Array.isArray(e) ? e.map(Number) : [Number(e)];
}

/**
 * Greedy generation by full forwards (no cache): HF's do_sample=False. prompts: one
 * number[] or an array of rows (left-padded with padTokenId; the mask and generate()'s
 * position ids follow). Each step runs the whole sequence, takes the argmax (first index on
 * ties) of each row's last logits and appends it with mask 1. A row that produced an EOS
 * (eosTokenId: number | number[], default config.eos_token_id; [] for none) continues with
 * padTokenId (default config.pad_token_id ?? first EOS ?? 0), as HF does; generation
 * stops when every row has finished or after maxNewTokens.
 * Returns { tokens: number[][] per row (the EOS included, nothing after it), steps: number[][]
 * (per step, B tokens as appended), margins: number[][] (per step and row, the top-1 minus
 * top-2 logit), logits: Float64Array[] (per step, [B, vocab] last-position logits) }.
 */
export function greedyReference({ config, tensors, prompts, maxNewTokens, eosTokenId, padTokenId }) {
  const single = !(Array.isArray(prompts) && prompts.length > 0 && (Array.isArray(prompts[0]) || isTyped(prompts[0])));
  const rows = (single ? [prompts] : prompts).map((r) => Array.from(r, Number));
  const eos = eosTokenId === undefined ? eosTokenIds(config) : eosTokenId === null ? [] : [].concat(eosTokenId);
  const pad = padTokenId ?? config.pad_token_id ?? eos[0] ?? 0;
  const B = rows.length, Lp = Math.max(...rows.map((r) => r.length));
  const ids = rows.map((r) => [...new Array(Lp - r.length).fill(pad), ...r]);
  const mask = rows.map((r) => [...new Array(Lp - r.length).fill(0), ...r.map(() => 1)]);
  const done = new Array(B).fill(false);
  const out = { tokens: rows.map(() => []), steps: [], margins: [], logits: [] };
  for (let step = 0; step < maxNewTokens && !done.every(Boolean); step++) {
    const L = ids[0].length;
    const r = referenceForward({ config, tensors, ids: { data: ids.flat(), dims: [B, L] }, attentionMask: { data: mask.flat(), dims: [B, L] } });
    const V = r.dims[2];
    const last = new Float64Array(B * V), chosen = [], margins = [];
    for (let b = 0; b < B; b++) {
      const row = r.data.subarray(((b * L) + L - 1) * V, (b * L + L) * V);
      last.set(row, b * V);
      let best = 0;
      for (let t = 1; t < V; t++) if (row[t] > row[best]) best = t;
      let second = -Infinity;
      for (let t = 0; t < V; t++) if (t !== best && row[t] > second) second = row[t];
      const tok = done[b] ? pad : best;
      if (!done[b]) {
        out.tokens[b].push(tok);
        if (eos.includes(tok)) done[b] = true;
      }
      chosen.push(tok);
      margins.push(row[best] - second);
      ids[b].push(tok);
      mask[b].push(1);
    }
    out.steps.push(chosen);
    out.margins.push(margins);
    out.logits.push(last);
  }
  return out;
}

/**
 * max |a - ref| / max(1, max |ref|) over the real rows only: rows [B, L] of width N whose
 * mask entry is nonzero (mask null = all rows). For logits and hidden states of padded
 * batches, whose padded rows are unspecified.
 */
export function maskedRelErr(a, ref, mask, N) {
  if (a.length !== ref.length) throw new RangeError(`length ${a.length} != ${ref.length}`);
  const rows = ref.length / N;
  let e = 0, m = 1;
  for (let r = 0; r < rows; r++) {
    if (mask && Number(mask[r]) === 0) continue;
    for (let k = 0; k < N; k++) {
      const d = Math.abs(a[r * N + k] - ref[r * N + k]);
      if (!(d <= e)) e = Number.isNaN(d) ? Infinity : d;  // NaN counts as an error, for good
      m = Math.max(m, Math.abs(ref[r * N + k]));
    }
  }
  return e / m;
}
