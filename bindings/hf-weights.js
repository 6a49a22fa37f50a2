// mha-wasm/models: a Hugging Face checkpoint's tensors (by HF's own names, with or without
// the architecture's prefix `bert.` / `transformer.` / `model.`, from one or several
// parseSafetensors results) laid out as the calls of mha-wasm's Model: setEmbeddings,
// setBlock(i), setFinalNorm, setHead. Every tensor is accounted for before anything is
// allocated: a missing or misshapen one is refused by name, and so is one the architecture
// does not have; persisted buffers (position ids, GPT-2's causal-mask buffers, rotary
// inv_freq) and heads the model does not run (BERT's pooler, BertForMaskedLM's cls.*) are
// skipped.
import { openSafetensors } from './safetensors.js';
import { describe, fmtDims, isTypedArray, product, snapshotView, typedArrayKind, typedArrayLength } from './validate.js';

const fail = (Err, msg) => { throw new Err(`loadModel: ${msg}`); };
const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

/** Names of tensors that are read nowhere: persisted buffers and heads not run. */
const SKIPPED = {
  bert: [/^embeddings\.(position_ids|token_type_ids)$/, /^pooler\./, /^cls\./],
  gpt2: [/^h\.\d+\.attn\.(bias|masked_bias)$/],
  llama: [/(^|\.)rotary_emb\.inv_freq$/],
};
SKIPPED.qwen2 = SKIPPED.llama;
SKIPPED.mistral = SKIPPED.llama;

/**
 * The checkpoint's tensors by name with the prefix taken off: { get(name) -> entry | undefined,
 * names() } over one parseSafetensors result or an array of them (shards). A name held twice
 * (in two shards, or with and without the prefix) is refused.
 */
export function tensorIndex(weights, prefix) {
  const shards = Array.isArray(weights) ? weights : [weights];
  if (shards.length === 0) fail(TypeError, 'weights is an empty array (give parseSafetensors results or .safetensors Files, one per shard)');
  const map = new Map();
  const add = (name, entry, s) => {
    const key = name.startsWith(prefix) ? name.slice(prefix.length) : name;
    if (map.has(key)) fail(TypeError, `tensor ${JSON.stringify(name)} is given twice (${JSON.stringify(map.get(key).name)}${shards.length > 1 ? ', in two shards' : ''})`);
    map.set(key, { name, ...entry });
  };
  shards.forEach((shard, s) => {
    if (OPENED.has(shard)) {  // a Blob's header (openSafetensors): its tensors are read when their part is loaded
      for (const t of shard.tensors) add(t.name, { lazy: t }, s);
      return;
    }
    if (shard === null || typeof shard !== 'object' || isTypedArray(shard) || shard instanceof ArrayBuffer)
      fail(TypeError, `weights${shards.length > 1 || Array.isArray(weights) ? `[${s}]` : ''} must be what parseSafetensors returns ({ name: { data, dims } }) or a .safetensors File or Blob, got ${describe(shard)}`);
    for (const name of Object.keys(shard)) add(name, { t: shard[name] }, s);
  });
  return map;
}

/** Headers of Blobs opened by loadModel (openSafetensors results), told apart from parsed tensors. */
const OPENED = new WeakSet();
/** A Blob's header as a source of tensors for checkpointPlan. */
export async function openedSource(blob) {
  const source = await openSafetensors(blob);
  OPENED.add(source);
  return source;
}

/**
 * A tensor's { data, dims, kind }, checked to be a tensor (data a typed array, dims integers
 * matching it); one of a Blob is { load, dims, kind }, its header checked already.
 */
function entryOf({ name, t, lazy }) {
  if (lazy) return { load: lazy.load, loadRows: lazy.loadRows, dims: lazy.dims, kind: lazy.kind };
  if (t === null || typeof t !== 'object') fail(TypeError, `tensor ${JSON.stringify(name)} must be { data, dims }, got ${describe(t)}`);
  // Each read once (getters may run), then only these values are used: a fixed view of the data
  // and a copy of the dims.
  const { data: given, dims: givenDims } = t;
  if (!isTypedArray(given)) fail(TypeError, `tensor ${JSON.stringify(name)}: data must be a typed array, got ${describe(given)}`);
  const dims = Array.isArray(givenDims) ? Array.from(givenDims) : givenDims;
  if (!Array.isArray(dims) || !dims.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(TypeError, `tensor ${JSON.stringify(name)}: dims must be an array of sizes, got ${describe(dims)}`);
  const data = snapshotView(`tensor ${JSON.stringify(name)}`, given), n = typedArrayLength(data);
  if (product(dims) !== n) fail(RangeError, `tensor ${JSON.stringify(name)}: dims ${fmtDims(dims)} do not fit its ${n} values`);
  return { data, dims, kind: typedArrayKind(data) };
}

/**
 * The plan of a checkpoint: [{ what, call, args(get) }] where call is a Model method and
 * args builds its arguments from get(tensorName) -> Float32Array. plan.check() has already
 * refused missing, misshapen and unexpected tensors. quantized: names of I8 matrices given
 * with a <name>_scale (compressed-tensors' int8 per output channel).
 */
export function checkpointPlan(spec, weights) {
  const index = tensorIndex(weights, spec.prefix);
  const layout = LAYOUTS[spec.arch](spec.options, spec);
  const used = new Set(), quantized = new Set();
  // key -> { data | load, dims, scale | loadScale, byColumn }: the values find() checked, the only ones used
  // (load: a Blob's tensor, read when its part is fetched).
  const checked = new Map();
  /** The entry of name (or of one of its alternative names), checked against dims. */
  const find = (names, dims) => {
    const list = Array.isArray(names) ? names : [names];
    const key = list.find((n) => index.has(n));
    if (key === undefined) {
      const full = (n) => (/^(lm_head|cls)\./.test(n) ? n : spec.prefix + n);
      fail(TypeError, `missing tensor ${JSON.stringify(full(list[0]))}${list.length > 1 ? ` (or ${list.slice(1).map((n) => JSON.stringify(full(n))).join(', ')})` : ''} ${fmtDims(dims)}`);
    }
    const e = index.get(key), { data, load, loadRows, dims: got, kind } = entryOf(e);
    if (!same(got, dims)) fail(RangeError, `tensor ${JSON.stringify(e.name)} has dims ${fmtDims(got)}, expected ${fmtDims(dims)}`);
    if (kind === 'Int8Array' && dims.length === 2) {
      const scale = index.get(`${key}_scale`);
      if (!scale) fail(TypeError, `tensor ${JSON.stringify(e.name)} is int8 but ${JSON.stringify(`${e.name}_scale`)} is missing`);
      const s = entryOf(scale);
      // A scale per row ([R, 1] or [R]: an nn.Linear's output channels), or per column ([1, C]:
      // a GPT-2 Conv1D's output channels, stored [in, out]; quantizeSafetensors with its config).
      const byColumn = same(s.dims, [1, dims[1]]) && !same(s.dims, [dims[0], 1]);
      if (!byColumn && !same(s.dims, [dims[0], 1]) && !same(s.dims, [dims[0]]))
        fail(RangeError, `tensor ${JSON.stringify(scale.name)} has dims ${fmtDims(s.dims)}, expected ${fmtDims([dims[0], 1])} (a scale per row) or ${fmtDims([1, dims[1]])} (per column)`);
      if (s.kind !== 'Float32Array') fail(TypeError, `tensor ${JSON.stringify(scale.name)} must be floating point, got ${s.kind}`);
      used.add(`${key}_scale`);
      quantized.add(key);
      checked.set(key, { data, load, loadRows, dims: got, scale: s.data, loadScale: s.load, byColumn });
    } else if (kind !== 'Float32Array') {
      fail(TypeError, `tensor ${JSON.stringify(e.name)} is ${kind}, expected floating point (F32, F16, BF16)${dims.length === 2 ? ' or int8 with a _scale' : ''}`);
    }
    used.add(key);
    if (!checked.has(key)) checked.set(key, { data, load, loadRows, dims: got });
    return key;
  };
  // Pass 1: every tensor the layout reads exists with its dims; nothing else is there.
  const keys = new Map();  // layout name list -> resolved key
  for (const part of layout) for (const [names, dims] of part.tensors) keys.set(names, find(names, dims));
  const skipped = SKIPPED[spec.arch];
  for (const [key, { name }] of index) {
    if (used.has(key) || skipped.some((re) => re.test(key))) continue;
    // a tied head is the token table: HF ties over whatever was stored (a quantized one too)
    if ((key === 'lm_head.weight' || key === 'lm_head.weight_scale') && spec.tied) continue;
    fail(TypeError, `unexpected tensor ${JSON.stringify(name)}: ${spec.architecture} with this config has no such weight`);
  }
  const fetched = new Map();  // key -> { data, scale } of a Blob's tensor, while its part is loaded
  // The token table and the head, when a Blob holds them: read a piece of rows at a time as they
  // are copied in (part.table), never whole. get() gives null for them. Every layout lists a
  // setEmbeddings part's token table, and a setHead part's matrix, first.
  const streamed = new Set();
  for (const p of layout) {
    if (p.call !== 'setEmbeddings' && p.call !== 'setHead') continue;
    const key = keys.get(p.tensors[0][0]), c = checked.get(key);
    if (c.loadRows && !c.byColumn) streamed.add(key);
  }
  const get = (names) => {
    const key = keys.get(names);
    if (streamed.has(key)) return null;
    const c = checked.get(key), f = c.load || c.loadScale ? fetched.get(key) : c;
    if (!f) throw new Error(`loadModel: tensor ${JSON.stringify(key)} was not read for its part (this is a bug)`);
    // ── int8 checkpoints: q * scale (exact in float32 for int8 q); at weightType 'int8' the core
    // quantizes the rows again (the same q where a row's largest |q| is 127). ──
    if (quantized.has(key)) return dequantize(f.data, f.scale, c.dims[0], c.dims[1], c.byColumn);
    return f.data;
  };
  const parts = layout.map((p) => {
    const all = p.tensors.map(([names]) => keys.get(names));
    // A tensor or its int8 scale read from a Blob (the other may come from a parsed shard).
    const lazy = all.filter((key) => !streamed.has(key) && (checked.get(key).load || checked.get(key).loadScale));
    const tableKey = streamed.has(all[0]) ? all[0] : null;
    return {
      what: p.what, call: p.call,
      // { rows, read(first, count) -> Float32Array of those rows } of a streamed table, else null
      table: tableKey === null ? null : tableReader(checked.get(tableKey), quantized.has(tableKey)),
      // fresh: every array of its arguments was made here (read from a Blob, or dequantized), so it
      // may be moved rather than copied
      fresh: all.every((key) => checked.get(key).load || quantized.has(key)),
      /** Reads the part's tensors held in Blobs (before args()); release() lets them go. */
      async fetch() {
        await Promise.all(lazy.map(async (key) => {
          const c = checked.get(key);
          const [data, scale] = await Promise.all([c.load ? c.load() : c.data, c.loadScale ? c.loadScale() : c.scale]);
          fetched.set(key, { data, scale });
        }));
      },
      release() {
        for (const key of lazy) fetched.delete(key);
      },
      args: () => p.build(get),
    };
  });
  return { parts, quantized: [...quantized] };
}

/** Rows of a table held in a Blob (c: its checked entry; quantized: q with a scale per row), read on demand. */
function tableReader(c, quantized) {
  const [rows, cols] = c.dims;
  let scale = null;  // an int8 table's scales, read once
  return {
    rows,
    async read(first, count) {
      const data = await c.loadRows(first, count);
      if (!quantized) return data;
      scale ??= await (c.loadScale ? c.loadScale() : c.scale);
      return dequantize(data, scale.subarray(first, first + count), count, cols, false);
    },
  };
}

/** q [N, K] times its scales: scale[n] per row, or scale[k] per column (byColumn). */
function dequantize(q, scale, N, K, byColumn) {
  const out = new Float32Array(N * K);
  for (let n = 0; n < N; n++)
    for (let k = 0; k < K; k++) out[n * K + k] = q[n * K + k] * scale[byColumn ? k : n];
  return out;
}

/** a [R, C] transposed to [C, R] (GPT-2's Conv1D stores [in, out]; nn.Linear's layout is [out, in]). */
function transpose(a, R, C) {
  const out = new Float32Array(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) out[c * R + r] = a[r * C + c];
  return out;
}

// ---------------------------------------------------------------------------------------
// Layouts: each part names its tensors ([names, dims]; names: one name or alternatives)
// and builds its Model call's arguments from get(names).

const part = (what, call, tensors, build) => ({ what, call, tensors, build });

const LAYOUTS = {
  bert(o) {
    const E = o.hiddenSize, F = o.feedForward.dimFeedforward;
    // bert-base-uncased's checkpoint still says LayerNorm.gamma / .beta (HF renames them on load)
    const ln = (p) => [[`${p}.LayerNorm.weight`, `${p}.LayerNorm.gamma`], [E]];
    const lnb = (p) => [[`${p}.LayerNorm.bias`, `${p}.LayerNorm.beta`], [E]];
    const parts = [];
    const emb = [['embeddings.word_embeddings.weight', [o.vocabSize, E]], ['embeddings.position_embeddings.weight', [o.maxPositions, E]],
      ['embeddings.token_type_embeddings.weight', [o.typeVocabSize, E]], ln('embeddings'), lnb('embeddings')];
    parts.push(part('embeddings', 'setEmbeddings', emb, (get) => ({
      tokens: get(emb[0][0]), positions: get(emb[1][0]), types: get(emb[2][0]), normWeight: get(emb[3][0]), normBias: get(emb[4][0]),
    })));
    for (let l = 0; l < o.numLayers; l++) {
      const p = `encoder.layer.${l}`;
      const t = {
        q: [`${p}.attention.self.query.weight`, [E, E]], qb: [`${p}.attention.self.query.bias`, [E]],
        k: [`${p}.attention.self.key.weight`, [E, E]], kb: [`${p}.attention.self.key.bias`, [E]],
        v: [`${p}.attention.self.value.weight`, [E, E]], vb: [`${p}.attention.self.value.bias`, [E]],
        o: [`${p}.attention.output.dense.weight`, [E, E]], ob: [`${p}.attention.output.dense.bias`, [E]],
        n1: ln(`${p}.attention.output`), n1b: lnb(`${p}.attention.output`),
        f1: [`${p}.intermediate.dense.weight`, [F, E]], f1b: [`${p}.intermediate.dense.bias`, [F]],
        f2: [`${p}.output.dense.weight`, [E, F]], f2b: [`${p}.output.dense.bias`, [E]],
        n2: ln(`${p}.output`), n2b: lnb(`${p}.output`),
      };
      parts.push(part(`block ${l}`, 'setBlock', Object.values(t), (get) => ({
        // post-norm: norm1 after attention + residual, norm2 after the feed-forward + residual
        norm1Weight: get(t.n1[0]), norm1Bias: get(t.n1b[0]), norm2Weight: get(t.n2[0]), norm2Bias: get(t.n2b[0]),
        attention: {
          qProjWeight: get(t.q[0]), kProjWeight: get(t.k[0]), vProjWeight: get(t.v[0]), outProjWeight: get(t.o[0]),
          qProjBias: get(t.qb[0]), kProjBias: get(t.kb[0]), vProjBias: get(t.vb[0]), outProjBias: get(t.ob[0]),
        },
        feedForward: { linear1Weight: get(t.f1[0]), linear1Bias: get(t.f1b[0]), linear2Weight: get(t.f2[0]), linear2Bias: get(t.f2b[0]) },
      })));
    }
    return parts;
  },

  gpt2(o) {
    const E = o.hiddenSize, F = o.feedForward.dimFeedforward;
    const parts = [];
    const emb = [['wte.weight', [o.vocabSize, E]], ['wpe.weight', [o.maxPositions, E]]];
    parts.push(part('embeddings', 'setEmbeddings', emb, (get) => ({ tokens: get(emb[0][0]), positions: get(emb[1][0]) })));
    for (let l = 0; l < o.numLayers; l++) {
      const p = `h.${l}`;
      // Conv1D weights are [in, out]: transposed here into nn.Linear's [out, in]. c_attn's
      // output is [q | k | v], so its transpose is in_proj_weight as it is.
      const t = {
        n1: [`${p}.ln_1.weight`, [E]], n1b: [`${p}.ln_1.bias`, [E]],
        qkv: [`${p}.attn.c_attn.weight`, [E, 3 * E]], qkvb: [`${p}.attn.c_attn.bias`, [3 * E]],
        o: [`${p}.attn.c_proj.weight`, [E, E]], ob: [`${p}.attn.c_proj.bias`, [E]],
        n2: [`${p}.ln_2.weight`, [E]], n2b: [`${p}.ln_2.bias`, [E]],
        f1: [`${p}.mlp.c_fc.weight`, [E, F]], f1b: [`${p}.mlp.c_fc.bias`, [F]],
        f2: [`${p}.mlp.c_proj.weight`, [F, E]], f2b: [`${p}.mlp.c_proj.bias`, [E]],
      };
      parts.push(part(`block ${l}`, 'setBlock', Object.values(t), (get) => ({
        norm1Weight: get(t.n1[0]), norm1Bias: get(t.n1b[0]), norm2Weight: get(t.n2[0]), norm2Bias: get(t.n2b[0]),
        attention: {
          inProjWeight: transpose(get(t.qkv[0]), E, 3 * E), inProjBias: get(t.qkvb[0]),
          outProjWeight: transpose(get(t.o[0]), E, E), outProjBias: get(t.ob[0]),
        },
        feedForward: {
          linear1Weight: transpose(get(t.f1[0]), E, F), linear1Bias: get(t.f1b[0]), linear2Weight: transpose(get(t.f2[0]), F, E), linear2Bias: get(t.f2b[0]),
        },
      })));
    }
    const fin = [['ln_f.weight', [E]], ['ln_f.bias', [E]]];
    parts.push(part('final norm', 'setFinalNorm', fin, (get) => ({ weight: get(fin[0][0]), bias: get(fin[1][0]) })));
    if (o.head === 'untied') parts.push(part('head', 'setHead', [['lm_head.weight', [o.vocabSize, E]]], (get) => ({ weight: get('lm_head.weight') })));
    return parts;
  },

  llama: decoderLayout,
  qwen2: decoderLayout,
  mistral: decoderLayout,
};

function decoderLayout(o) {
  const E = o.hiddenSize, a = o.attention, F = o.feedForward.dimFeedforward;
  const nq = a.numHeads * a.headDim, nk = a.numKvHeads * a.headDim;
  const parts = [part('embeddings', 'setEmbeddings', [['embed_tokens.weight', [o.vocabSize, E]]], (get) => ({ tokens: get('embed_tokens.weight') }))];
  for (let l = 0; l < o.numLayers; l++) {
    const p = `layers.${l}`;
    const attn = [['q_proj', nq], ['k_proj', nk], ['v_proj', nk]];
    const tensors = [[`${p}.input_layernorm.weight`, [E]], [`${p}.post_attention_layernorm.weight`, [E]]];
    const attention = {}, feedForward = {};
    const add = (into, key, name, dims) => { tensors.push([name, dims]); into[key] = name; };
    for (const [n, N] of attn) {
      add(attention, `${n}.weight`, `${p}.self_attn.${n}.weight`, [N, E]);
      if (a.qkvBias) add(attention, `${n}.bias`, `${p}.self_attn.${n}.bias`, [N]);
    }
    add(attention, 'o_proj.weight', `${p}.self_attn.o_proj.weight`, [E, nq]);
    if (a.outBias) add(attention, 'o_proj.bias', `${p}.self_attn.o_proj.bias`, [E]);
    for (const [n, dims] of [['gate_proj', [F, E]], ['up_proj', [F, E]], ['down_proj', [E, F]]]) {
      add(feedForward, `${n}.weight`, `${p}.mlp.${n}.weight`, dims);
      if (o.feedForward.bias) add(feedForward, `${n}.bias`, `${p}.mlp.${n}.bias`, [dims[0]]);
    }
    const map = (names, get) => Object.fromEntries(Object.entries(names).map(([k, n]) => [k, get(n)]));
    parts.push(part(`block ${l}`, 'setBlock', tensors, (get) => ({
      norm1Weight: get(tensors[0][0]), norm2Weight: get(tensors[1][0]), attention: map(attention, get), feedForward: map(feedForward, get),
    })));
  }
  parts.push(part('final norm', 'setFinalNorm', [['norm.weight', [E]]], (get) => ({ weight: get('norm.weight') })));
  if (o.head === 'untied') parts.push(part('head', 'setHead', [['lm_head.weight', [o.vocabSize, E]]], (get) => ({ weight: get('lm_head.weight') })));
  return parts;
}
