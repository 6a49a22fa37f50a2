// Self-tests of the model test infrastructure (reference.mjs, tiny.mjs, tiny-tokenizers.mjs),
// none of which needs this package's models code:
// - the float64 references against ONNX Runtime running each whole tiny model as one ONNX
//   graph built here (Gather, LayerNormalization / RMSNormalization, MatMul on the stored
//   weights, RotaryEmbedding, opset 23 Attention, Gelu / Sigmoid), to 1e-4 on the real rows;
// - the references against the same models assembled from tests/reference.mjs and
//   tests/reference-modern.mjs (mhaReference, encoderReference, modernAttentionReference,
//   ropeFromHfConfig, rmsNormReference, feedForwardReference), which are ORT-checked on
//   their own, to 1e-9;
// - HF's config rules (tied defaults, rope_type / type / rope_parameters, Qwen2's window
//   layers, Mistral's window, gamma / beta names, prefixes), padding invariances and the
//   greedy reference;
// - the files: safetensors in F32 / F16 / BF16 read back equal to the tensors, shards and
//   the index, persisted buffers, int8-exact matrices;
// - the tokenizers load in @huggingface/tokenizers, encode to the ids of an independent
//   plain implementation and decode back to the text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tokenizer } from '@huggingface/tokenizers';
import { parseSafetensors } from 'mha-wasm';
import { tinyModel, tinyTokenizer, roundToF16, roundToBf16 } from './tiny.mjs';
import {
  referenceForward, llamaReference, gpt2Reference, bertReference, sentenceEmbeddingReference, poolReference, greedyReference,
  maskedRelErr, positionIdsFromMask, leftPad, decoderConfig, ropeReference, bertConfig, gpt2Config,
} from './reference.mjs';
import { encoderReference, mhaReference, layerNormRef, linear as linearRef } from '../reference.mjs';
import { feedForwardReference, modernAttentionReference, ropeFromHfConfig, rmsNormReference } from '../reference-modern.mjs';
import { loadOnnxProto, loadOrt, onnxKit, rotaryCaches, runModel, transposed } from '../ort-ops.mjs';

const ARCHS = ['bert', 'gpt2', 'llama', 'qwen2', 'mistral'];
// two left-padded rows (the decoders) or two right-padded rows (BERT), ids inside every tiny vocabulary
const ROWS = [[7, 23, 41, 5, 60, 12, 33, 8, 19], [44, 9, 71, 15, 28]];

function padded(rows, side, padId = 0) {
  const L = Math.max(...rows.map((r) => r.length)), B = rows.length;
  const ids = new Int32Array(B * L).fill(padId), mask = new Int32Array(B * L);
  rows.forEach((r, b) => r.forEach((id, i) => {
    const j = side === 'left' ? L - r.length + i : i;
    ids[b * L + j] = id;
    mask[b * L + j] = 1;
  }));
  return { ids: { data: ids, dims: [B, L] }, attentionMask: { data: mask, dims: [B, L] }, B, L, mask };
}

const inputsFor = (arch) => padded(ROWS, arch === 'bert' ? 'right' : 'left');
const getter = (m) => (name) => {
  const t = m.tensors[m.prefix + name] ?? m.tensors[name];
  if (!t) throw new Error(`no ${name}`);
  return t.data;
};

// ---------------------------------------------------------------------------------
// ONNX Runtime: each whole model as one graph

const { ort, reason, name: runtime } = await loadOrt();
const kit = ort ? onnxKit(loadOnnxProto()) : null;

/** A small graph builder over the onnx-proto kit. */
function graphBuilder() {
  const nodes = [], inits = [];
  let n = 0;
  const fresh = (p) => `${p}_${n++}`;
  const g = {
    nodes, inits,
    init(data, dims) { const name = fresh('c'); inits.push(kit.init(name, dims, data instanceof Float32Array ? data : data)); return name; },
    f32(data, dims) { return g.init(Float32Array.from(data), dims); },
    i64(vals) { return g.init(BigInt64Array.from(vals.map((v) => BigInt(v))), [vals.length]); },
    op(type, ins, attrs = [], outputs = 1) {
      const outs = Array.from({ length: outputs }, () => fresh(type));
      nodes.push(kit.node(type, ins, outs, attrs));
      return outputs === 1 ? outs[0] : outs;
    },
    // x [.., K] . W [K, N] + b: W given in MatMul's layout
    matmul(x, W, K, N, b) {
      const y = g.op('MatMul', [x, g.f32(W, [K, N])]);
      return b ? g.op('Add', [y, g.f32(b, [N])]) : y;
    },
    // nn.Linear: W [N, K] -> MatMul by its transpose
    linear(x, W, N, K, b) { return g.matmul(x, transposed(W, N, K), K, N, b); },
    layerNorm(x, w, b, N, eps) { return g.op('LayerNormalization', [x, g.f32(w, [N]), g.f32(b, [N])], [kit.int('axis', -1), kit.float('epsilon', eps)]); },
    rmsNorm(x, w, N, eps) { return g.op('RMSNormalization', [x, g.f32(w, [N])], [kit.int('axis', -1), kit.float('epsilon', eps)]); },
    // [B, L, heads*D] -> [B, heads, L, D]
    heads(x, B, L, heads, D) { return g.op('Transpose', [g.op('Reshape', [x, g.i64([B, L, heads, D])])], [kit.ints('perm', [0, 2, 1, 3])]); },
    // opset 23 Attention on [B, heads, L, D], a bool mask [B, H, L, L] (1 = attend); back to [B, L, H*D]
    attention(q, k, v, { B, L, H, Hkv, D, scale, allow }) {
      const o = g.op('Attention', [q, k, v, g.init(allow, [B, H, L, L])], [kit.int('q_num_heads', H), kit.int('kv_num_heads', Hkv), kit.float('scale', scale)]);
      return g.op('Reshape', [g.op('Transpose', [o], [kit.ints('perm', [0, 2, 1, 3])]), g.i64([B, L, H * D])]);
    },
  };
  return g;
}

/** The allowed (query, key) pairs [B, H, L, L] as ONNX's bool mask: 1 = attend. */
function allowMask(B, H, L, visible) {
  const a = new Uint8Array(B * H * L * L);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let i = 0; i < L; i++) for (let j = 0; j < L; j++)
    a[((b * H + h) * L + i) * L + j] = visible(b, i, j) ? 1 : 0;
  return a;
}

/** The whole model as an ONNX graph with input 'ids' [B, L] (int64), output 'y'. */
function onnxModel(m, { B, L, mask, positions }) {
  const g = graphBuilder(), T = getter(m), c = m.config;
  const arch = m.arch;
  let x, outDim;
  if (arch === 'bert') {
    const bc = bertConfig(c), E = bc.hidden, H = bc.heads, D = bc.headDim, F = bc.intermediate;
    const gather = (table, rows, idx) => g.op('Gather', [g.f32(table, [rows, E]), idx]);
    x = g.op('Add', [gather(T('embeddings.word_embeddings.weight'), bc.vocab, 'ids'), gather(T('embeddings.token_type_embeddings.weight'), 2, g.init(new BigInt64Array(B * L), [B, L]))]);
    x = g.op('Add', [x, gather(T('embeddings.position_embeddings.weight'), bc.maxPositions, g.init(BigInt64Array.from(positions, BigInt), [B, L]))]);
    x = g.layerNorm(x, T('embeddings.LayerNorm.weight'), T('embeddings.LayerNorm.bias'), E, bc.eps);
    const allow = allowMask(B, H, L, (b, i, j) => mask[b * L + j] !== 0);
    for (let l = 0; l < bc.layers; l++) {
      const p = `encoder.layer.${l}.`, lin = (v, name, N, K) => g.linear(v, T(`${p}${name}.weight`), N, K, T(`${p}${name}.bias`));
      const q = g.heads(lin(x, 'attention.self.query', E, E), B, L, H, D), k = g.heads(lin(x, 'attention.self.key', E, E), B, L, H, D), v = g.heads(lin(x, 'attention.self.value', E, E), B, L, H, D);
      const att = lin(g.attention(q, k, v, { B, L, H, Hkv: H, D, scale: 1 / Math.sqrt(D), allow }), 'attention.output.dense', E, E);
      const a = g.layerNorm(g.op('Add', [att, x]), T(`${p}attention.output.LayerNorm.weight`), T(`${p}attention.output.LayerNorm.bias`), E, bc.eps);
      const i1 = g.op('Gelu', [lin(a, 'intermediate.dense', F, E)]);
      x = g.layerNorm(g.op('Add', [lin(i1, 'output.dense', E, F), a]), T(`${p}output.LayerNorm.weight`), T(`${p}output.LayerNorm.bias`), E, bc.eps);
    }
    outDim = E;
  } else if (arch === 'gpt2') {
    const gc = gpt2Config(c), E = gc.hidden, H = gc.heads, D = gc.headDim, F = gc.inner;
    x = g.op('Add', [g.op('Gather', [g.f32(T('wte.weight'), [gc.vocab, E]), 'ids']), g.op('Gather', [g.f32(T('wpe.weight'), [gc.positions, E]), g.init(BigInt64Array.from(positions, BigInt), [B, L])])]);
    const allow = allowMask(B, H, L, (b, i, j) => j <= i && mask[b * L + j] !== 0);
    for (let l = 0; l < gc.layers; l++) {
      const p = `h.${l}.`;
      const h1 = g.layerNorm(x, T(`${p}ln_1.weight`), T(`${p}ln_1.bias`), E, gc.eps);
      // Conv1D weights [in, out] are MatMul's layout as stored
      const qkv = g.matmul(h1, T(`${p}attn.c_attn.weight`), E, 3 * E, T(`${p}attn.c_attn.bias`));
      const [q, k, v] = g.op('Split', [qkv], [kit.int('axis', -1), kit.int('num_outputs', 3)], 3).map((t) => g.heads(t, B, L, H, D));
      const att = g.attention(q, k, v, { B, L, H, Hkv: H, D, scale: 1 / Math.sqrt(D), allow });
      x = g.op('Add', [x, g.matmul(att, T(`${p}attn.c_proj.weight`), E, E, T(`${p}attn.c_proj.bias`))]);
      const h2 = g.layerNorm(x, T(`${p}ln_2.weight`), T(`${p}ln_2.bias`), E, gc.eps);
      const f = g.op('Gelu', [g.matmul(h2, T(`${p}mlp.c_fc.weight`), E, F, T(`${p}mlp.c_fc.bias`))], [kit.string('approximate', 'tanh')]);
      x = g.op('Add', [x, g.matmul(f, T(`${p}mlp.c_proj.weight`), F, E, T(`${p}mlp.c_proj.bias`))]);
    }
    x = g.layerNorm(x, T('ln_f.weight'), T('ln_f.bias'), E, gc.eps);
    x = g.linear(x, T('wte.weight'), gc.vocab, E, null);
    outDim = gc.vocab;
  } else {
    const dc = decoderConfig(c), E = dc.hidden, H = dc.heads, Hkv = dc.kvHeads, D = dc.headDim, F = dc.intermediate;
    x = g.op('Gather', [g.f32(T('embed_tokens.weight'), [dc.vocab, E]), 'ids']);
    const maxPos = Math.max(L, ...positions);
    const { cos, sin } = rotaryCaches(dc.rope.invFreq, maxPos, dc.rope.attentionFactor);
    const cosC = g.init(cos, [maxPos + 1, dc.rope.dim / 2]), sinC = g.init(sin, [maxPos + 1, dc.rope.dim / 2]);
    const pos = g.init(BigInt64Array.from(positions, BigInt), [B, L]);
    const rotary = (t) => g.op('RotaryEmbedding', [t, cosC, sinC, pos], [kit.int('interleaved', 0), kit.int('rotary_embedding_dim', dc.rope.dim)]);
    for (let l = 0; l < dc.layers; l++) {
      const p = `layers.${l}.`, W = dc.windows[l];
      const allow = allowMask(B, H, L, (b, i, j) => j <= i && mask[b * L + j] !== 0 && (W == null || i - j < W));
      const h = g.rmsNorm(x, T(`${p}input_layernorm.weight`), E, dc.eps);
      const proj = (name, N, bias) => g.linear(h, T(`${p}self_attn.${name}.weight`), N, E, bias ? T(`${p}self_attn.${name}.bias`) : null);
      const q = rotary(g.heads(proj('q_proj', H * D, dc.qkvBias), B, L, H, D));
      const k = rotary(g.heads(proj('k_proj', Hkv * D, dc.qkvBias), B, L, Hkv, D));
      const v = g.heads(proj('v_proj', Hkv * D, dc.qkvBias), B, L, Hkv, D);
      const att = g.attention(q, k, v, { B, L, H, Hkv, D, scale: D ** -0.5, allow });
      x = g.op('Add', [x, g.linear(att, T(`${p}self_attn.o_proj.weight`), E, H * D, dc.oBias ? T(`${p}self_attn.o_proj.bias`) : null)]);
      const h2 = g.rmsNorm(x, T(`${p}post_attention_layernorm.weight`), E, dc.eps);
      const gate = g.linear(h2, T(`${p}mlp.gate_proj.weight`), F, E), up = g.linear(h2, T(`${p}mlp.up_proj.weight`), F, E);
      const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
      x = g.op('Add', [x, g.linear(act, T(`${p}mlp.down_proj.weight`), E, F)]);
    }
    x = g.rmsNorm(x, T('norm.weight'), E, dc.eps);
    x = g.linear(x, dc.tied ? T('embed_tokens.weight') : T('lm_head.weight'), dc.vocab, E, null);
    outDim = dc.vocab;
  }
  g.nodes.push(kit.node('Identity', [x], ['y']));
  return { bytes: kit.model(g.nodes, g.inits, [kit.value('ids', [B, L], kit.DT.INT64)], [kit.value('y', [B, L, outDim])]), outDim };
}

for (const arch of ARCHS) {
  test(`${runtime ?? 'onnxruntime'}: the ${arch} reference equals the whole tiny model run as an ONNX graph`, { skip: ort ? false : reason }, async () => {
    const variants = arch === 'qwen2' ? [{}, { config: { use_sliding_window: true } }] : [{}];
    for (const v of variants) {
      const m = tinyModel(arch, { seed: 11, ...v });
      const inp = inputsFor(arch);
      const positions = arch === 'bert' ? Array.from({ length: inp.B * inp.L }, (_, t) => t % inp.L) : Array.from(positionIdsFromMask(inp.mask, inp.B, inp.L));
      const ref = referenceForward({ config: m.config, tensors: m.tensors, ids: inp.ids, attentionMask: inp.attentionMask });
      const { bytes, outDim } = onnxModel(m, { ...inp, positions });
      const out = await runModel(ort, bytes, { ids: [BigInt64Array.from(inp.ids.data, BigInt), [inp.B, inp.L]] });
      const e = maskedRelErr(out.y, ref.data, inp.mask, outDim);
      assert.ok(e <= 1e-4, `${arch} ${JSON.stringify(v)}: error ${e} against ${runtime}`);
    }
  });
}

// ---------------------------------------------------------------------------------
// The references against the same models built from the repository's other references

/** Llama / Qwen2 / Mistral from modernAttentionReference (ropeFromHfConfig) + rmsNormReference + feedForwardReference. */
function decoderFromModern(m, inp, weights = []) {
  const c = m.config, T = getter(m), { B, L, mask } = inp;
  const E = c.hidden_size, H = c.num_attention_heads, Hkv = c.num_key_value_heads, D = c.head_dim ?? E / H, F = c.intermediate_size, V = c.vocab_size;
  const qwen = m.arch === 'qwen2', eps = c.rms_norm_eps;
  const rope = ropeFromHfConfig({ headDim: D, ropeTheta: c.rope_theta, ropeScaling: c.rope_scaling ?? null, maxPositionEmbeddings: c.max_position_embeddings });
  const positionIds = positionIdsFromMask(mask, B, L);
  const keyPaddingMask = Uint8Array.from(mask, (v) => (v ? 0 : 1));
  let x = new Float64Array(B * L * E);
  inp.ids.data.forEach((id, t) => { for (let k = 0; k < E; k++) x[t * E + k] = T('embed_tokens.weight')[id * E + k]; });
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `layers.${l}.`;
    const window = m.arch === 'mistral' ? c.sliding_window : qwen && c.use_sliding_window && l >= c.max_window_layers ? c.sliding_window : undefined;
    const cfg = { embedDim: E, numHeads: H, numKvHeads: Hkv, headDim: D, qkvBias: qwen, outBias: false, rope, slidingWindow: window ?? undefined };
    const w = { qProjWeight: T(`${p}self_attn.q_proj.weight`), kProjWeight: T(`${p}self_attn.k_proj.weight`), vProjWeight: T(`${p}self_attn.v_proj.weight`), outProjWeight: T(`${p}self_attn.o_proj.weight`) };
    if (qwen) Object.assign(w, { qProjBias: T(`${p}self_attn.q_proj.bias`), kProjBias: T(`${p}self_attn.k_proj.bias`), vProjBias: T(`${p}self_attn.v_proj.bias`) });
    const h = rmsNormReference(x, B * L, E, T(`${p}input_layernorm.weight`), { eps });
    const r = modernAttentionReference(cfg, w, B, L, L, h, h, h, { isCausal: true, keyPaddingMask, positionIds, needWeights: true, averageWeights: false });
    const a = r.output;
    weights.push(r.weights);
    x = x.map((v, i) => v + a[i]);
    const h2 = rmsNormReference(x, B * L, E, T(`${p}post_attention_layernorm.weight`), { eps });
    const f = feedForwardReference({ embedDim: E, hiddenDim: F, activation: 'silu', gated: true }, { gateProjWeight: T(`${p}mlp.gate_proj.weight`), upProjWeight: T(`${p}mlp.up_proj.weight`), downProjWeight: T(`${p}mlp.down_proj.weight`) }, B * L, h2);
    x = x.map((v, i) => v + f[i]);
  }
  x = rmsNormReference(x, B * L, E, T('norm.weight'), { eps });
  return linearRef(x, B * L, E, c.tie_word_embeddings ? T('embed_tokens.weight') : T('lm_head.weight'), V);
}

/** GPT-2 from mhaReference (in_proj = c_attn^T) + layerNormRef + feedForwardReference(gelu_tanh). */
function gpt2FromReferences(m, inp, weights = []) {
  const c = m.config, T = getter(m), { B, L, mask } = inp, E = c.n_embd, F = 4 * E, V = c.vocab_size, M = B * L;
  const pos = positionIdsFromMask(mask, B, L);
  let x = new Float64Array(M * E);
  inp.ids.data.forEach((id, t) => { for (let k = 0; k < E; k++) x[t * E + k] = T('wte.weight')[id * E + k] + T('wpe.weight')[pos[t] * E + k]; });
  const keyPaddingMask = Uint8Array.from(mask, (v) => (v ? 0 : 1));
  for (let l = 0; l < c.n_layer; l++) {
    const p = `h.${l}.`;
    const h = layerNormRef(x, M, E, T(`${p}ln_1.weight`), T(`${p}ln_1.bias`), c.layer_norm_epsilon);
    const w = { inProjWeight: transposed(T(`${p}attn.c_attn.weight`), E, 3 * E), inProjBias: T(`${p}attn.c_attn.bias`), outProjWeight: transposed(T(`${p}attn.c_proj.weight`), E, E), outProjBias: T(`${p}attn.c_proj.bias`) };
    const r = mhaReference({ E, H: c.n_head, kdim: E, vdim: E, bias: true }, w, B, L, L, h, h, h, { isCausal: true, keyPaddingMask, needWeights: true, averageWeights: false });
    const a = r.output;
    weights.push(r.weights);
    x = x.map((v, i) => v + a[i]);
    const h2 = layerNormRef(x, M, E, T(`${p}ln_2.weight`), T(`${p}ln_2.bias`), c.layer_norm_epsilon);
    const f = feedForwardReference({ embedDim: E, hiddenDim: F, activation: 'gelu_tanh' }, {
      upProjWeight: transposed(T(`${p}mlp.c_fc.weight`), E, F), upProjBias: T(`${p}mlp.c_fc.bias`),
      downProjWeight: transposed(T(`${p}mlp.c_proj.weight`), F, E), downProjBias: T(`${p}mlp.c_proj.bias`),
    }, M, h2);
    x = x.map((v, i) => v + f[i]);
  }
  x = layerNormRef(x, M, E, T('ln_f.weight'), T('ln_f.bias'), c.layer_norm_epsilon);
  return linearRef(x, M, E, T('wte.weight'), V);
}

/** BERT from encoderReference (post-norm, gelu, eps 1e-12) over embeddings + layerNormRef. */
function bertFromReferences(m, inp) {
  const c = m.config, T = getter(m), { B, L, mask } = inp, E = c.hidden_size, M = B * L;
  let x = new Float64Array(M * E);
  inp.ids.data.forEach((id, t) => {
    for (let k = 0; k < E; k++) x[t * E + k] = T('embeddings.word_embeddings.weight')[id * E + k] + T('embeddings.token_type_embeddings.weight')[k] + T('embeddings.position_embeddings.weight')[(t % L) * E + k];
  });
  x = layerNormRef(x, M, E, T('embeddings.LayerNorm.weight'), T('embeddings.LayerNorm.bias'), c.layer_norm_eps);
  const keyPaddingMask = Uint8Array.from(mask, (v) => (v ? 0 : 1));
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `encoder.layer.${l}.`, cat = (...a) => Float32Array.from(a.flatMap((t) => Array.from(t)));
    const sd = {
      'self_attn.in_proj_weight': cat(T(`${p}attention.self.query.weight`), T(`${p}attention.self.key.weight`), T(`${p}attention.self.value.weight`)),
      'self_attn.in_proj_bias': cat(T(`${p}attention.self.query.bias`), T(`${p}attention.self.key.bias`), T(`${p}attention.self.value.bias`)),
      'self_attn.out_proj.weight': T(`${p}attention.output.dense.weight`), 'self_attn.out_proj.bias': T(`${p}attention.output.dense.bias`),
      'norm1.weight': T(`${p}attention.output.LayerNorm.weight`), 'norm1.bias': T(`${p}attention.output.LayerNorm.bias`),
      'linear1.weight': T(`${p}intermediate.dense.weight`), 'linear1.bias': T(`${p}intermediate.dense.bias`),
      'linear2.weight': T(`${p}output.dense.weight`), 'linear2.bias': T(`${p}output.dense.bias`),
      'norm2.weight': T(`${p}output.LayerNorm.weight`), 'norm2.bias': T(`${p}output.LayerNorm.bias`),
    };
    x = encoderReference({ E, H: c.num_attention_heads, F: c.intermediate_size, activation: 'gelu', eps: c.layer_norm_eps, normFirst: false, bias: true }, sd, B, L, x, { keyPaddingMask });
  }
  return x;
}

test('the references equal the same models assembled from tests/reference.mjs and tests/reference-modern.mjs', () => {
  const cases = [
    ['bert', {}], ['gpt2', {}], ['llama', {}], ['llama', { config: { rope_scaling: null, rope_theta: 500 } }],
    ['qwen2', {}], ['qwen2', { config: { use_sliding_window: true } }], ['mistral', {}], ['mistral', { config: { sliding_window: 2 } }],
  ];
  for (const [arch, o] of cases) {
    const m = tinyModel(arch, { seed: 5, ...o });
    const inp = inputsFor(arch);
    const ref = referenceForward({ config: m.config, tensors: m.tensors, ids: inp.ids, attentionMask: inp.attentionMask, needWeights: true });
    const weights = [];
    const other = arch === 'bert' ? bertFromReferences(m, inp) : arch === 'gpt2' ? gpt2FromReferences(m, inp, weights) : decoderFromModern(m, inp, weights);
    const e = maskedRelErr(ref.data, other, inp.mask, ref.dims[2]);
    assert.ok(e <= 1e-9, `${arch} ${JSON.stringify(o)}: error ${e}`);
    // needWeights: per layer [B, H, L, L]; the real query rows as the other references give them, each summing to 1
    assert.equal(ref.attentions.length, m.config.num_hidden_layers ?? m.config.n_layer);
    const { B, L } = inp, H = ref.attentions[0].length / (B * L * L);
    const realRows = Array.from({ length: B * H * L }, (_, r) => inp.mask[Math.floor(r / (H * L)) * L + (r % L)]);
    ref.attentions.forEach((w, l) => {
      for (let r = 0; r < B * H * L; r++) if (realRows[r]) assert.ok(Math.abs(w.subarray(r * L, (r + 1) * L).reduce((x, y) => x + y) - 1) < 1e-12);
      if (weights[l]) assert.ok(maskedRelErr(w, weights[l], realRows, L) <= 1e-12, `${arch} layer ${l} weights`);
    });
    if (arch !== 'bert') assert.equal(weights.length, ref.attentions.length);
  }
});

test('rotary frequencies: ropeReference equals reference-modern ropeFromHfConfig (default, linear, llama3; type and rope_type; v5 rope_parameters)', () => {
  const base = { hidden_size: 64, num_attention_heads: 4, max_position_embeddings: 256 };
  const llama3 = { factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 32 };
  for (const [cfg, scaling] of [
    [{ ...base, rope_theta: 10000 }, null],
    [{ ...base, head_dim: 24, rope_theta: 500 }, null],
    [{ ...base, rope_scaling: { type: 'linear', factor: 3 } }, { rope_type: 'linear', factor: 3 }],
    [{ ...base, rope_theta: 500000, rope_scaling: { rope_type: 'llama3', ...llama3 } }, { rope_type: 'llama3', ...llama3 }],
    [{ ...base, rope_scaling: { type: 'llama3', ...llama3 } }, { rope_type: 'llama3', ...llama3 }],
    [{ ...base, rope_parameters: { rope_type: 'llama3', rope_theta: 500000, ...llama3 } }, { rope_type: 'llama3', ...llama3 }],
  ]) {
    const mine = ropeReference(cfg);
    const theirs = ropeFromHfConfig({ headDim: cfg.head_dim ?? 16, ropeTheta: cfg.rope_parameters?.rope_theta ?? cfg.rope_theta ?? 10000, ropeScaling: scaling });
    assert.equal(mine.dim, theirs.dim);
    // HF divides the float32 buffer in float32; reference-modern scales in float64 first: an ulp apart at most
    mine.invFreq.forEach((f, i) => assert.ok(Math.abs(f - theirs.invFreq[i]) <= 2 ** -23 * f, `${JSON.stringify(cfg)}: ${i}`));
  }
  assert.throws(() => ropeReference({ ...base, rope_scaling: { rope_type: 'longrope', factor: 2 } }), /longrope/);
});

// ---------------------------------------------------------------------------------
// HF's configuration rules

test('config rules: tied defaults, rope keys, Qwen2 window layers, Mistral window, legacy names, prefixes', () => {
  const inp = inputsFor('llama');
  const fwd = (m, config = m.config, tensors = m.tensors, i = inp) => referenceForward({ config, tensors, ids: i.ids, attentionMask: i.attentionMask }).data;
  const same = (a, b, what) => assert.ok(maskedRelErr(a, b, inp.mask, 1) === 0, `${what}: should be identical`);
  const differ = (a, b, what) => assert.ok(maskedRelErr(a, b, inp.mask, 1) > 1e-6, `${what}: should differ`);

  // GPT-2: no tie_word_embeddings key = tied; an untied checkpoint uses lm_head.weight
  const g = tinyModel('gpt2');
  assert.ok(!('tie_word_embeddings' in g.config) && !('lm_head.weight' in g.tensors));
  const gu = tinyModel('gpt2', { tie: false });
  assert.equal(gu.config.tie_word_embeddings, false);
  assert.ok('lm_head.weight' in gu.tensors);
  const { ['lm_head.weight']: head, ...rest } = gu.tensors;
  differ(fwd(gu), fwd(gu, { ...gu.config, tie_word_embeddings: true }, rest), 'gpt2 untied head');
  assert.throws(() => fwd(gu, gu.config, rest), /lm_head\.weight is missing/);
  // Llama family: no key = untied (lm_head.weight required)
  const l = tinyModel('llama');
  const { tie_word_embeddings: _t, ...noTie } = l.config;
  same(fwd(l), fwd(l, noTie), 'llama tie default false');
  assert.throws(() => fwd(tinyModel('qwen2'), { ...tinyModel('qwen2').config, tie_word_embeddings: undefined }), /lm_head\.weight is missing/);
  // llama: head_dim from the config (16, while hidden / heads is 12)
  assert.equal(decoderConfig(l.config).headDim, 16);
  assert.deepEqual(l.tensors['model.layers.0.self_attn.q_proj.weight'].dims, [64, 48]);
  // rope_scaling: 'type' as 'rope_type'; transformers v5 rope_parameters; scaling matters
  const { rope_type: rt, ...rsNoType } = l.config.rope_scaling;
  same(fwd(l), fwd(l, { ...l.config, rope_scaling: { ...rsNoType, type: rt } }), 'rope_scaling.type');
  const { rope_scaling: rs, rope_theta: theta, ...noRope } = l.config;
  same(fwd(l), fwd(l, { ...noRope, rope_parameters: { ...rs, rope_theta: theta } }), 'rope_parameters');
  differ(fwd(l), fwd(l, { ...l.config, rope_scaling: null }), 'llama3 scaling');
  // Qwen2: the window only with use_sliding_window, only from max_window_layers on; layer_types say the same
  const q = tinyModel('qwen2');
  const qc = { ...q.config, sliding_window: 2 };
  same(fwd(q, qc), fwd(q, { ...qc, sliding_window: null }), 'qwen2 use_sliding_window false');
  differ(fwd(q, qc), fwd(q, { ...qc, use_sliding_window: true }), 'qwen2 window on');
  same(fwd(q, { ...qc, use_sliding_window: true, max_window_layers: 2 }), fwd(q, qc), 'qwen2 max_window_layers = layers');
  same(fwd(q, { ...qc, use_sliding_window: true }), fwd(q, { ...qc, use_sliding_window: true, max_window_layers: 0, layer_types: ['full_attention', 'sliding_attention'] }), 'qwen2 layer_types');
  assert.deepEqual(decoderConfig({ ...qc, use_sliding_window: true }).windows, [null, 2]);
  // Mistral: window W on every layer: equal to no window while L <= W; the key's absence means 4096
  const mi = tinyModel('mistral');
  differ(fwd(mi), fwd(mi, { ...mi.config, sliding_window: null }), 'mistral window');
  same(fwd(mi, { ...mi.config, sliding_window: 9 }), fwd(mi, { ...mi.config, sliding_window: null }), 'mistral window >= L');
  const { sliding_window: _w, ...noWindow } = mi.config;
  assert.deepEqual(decoderConfig(noWindow).windows, [4096, 4096]);
  // num_key_value_heads defaults: Llama = heads, Mistral 8, Qwen2 32 (HF's configs)
  const { num_key_value_heads: _k, ...noKv } = l.config;
  assert.equal(decoderConfig(noKv).kvHeads, 4);
  assert.equal(decoderConfig({ ...noKv, architectures: ['MistralForCausalLM'], num_attention_heads: 8 }).kvHeads, 8);
  assert.equal(decoderConfig({ ...noKv, architectures: ['Qwen2ForCausalLM'], num_attention_heads: 32 }).kvHeads, 32);

  // prefixes: with or without them, the same model
  for (const arch of ARCHS) {
    const a = tinyModel(arch, { seed: 2 }), b = tinyModel(arch, { seed: 2, prefix: arch === 'bert' ? true : false });
    assert.notDeepEqual(Object.keys(a.tensors).sort(), Object.keys(b.tensors).sort());
    const i = inputsFor(arch);
    assert.ok(maskedRelErr(fwd(a, a.config, a.tensors, i), fwd(b, b.config, b.tensors, i), i.mask, 1) === 0, `${arch} prefix`);
  }
  // BERT: legacy LayerNorm.gamma / .beta; BertForMaskedLM's `bert.` encoder with a cls head beside it
  const bi = inputsFor('bert');
  const b1 = tinyModel('bert', { seed: 4 }), b2 = tinyModel('bert', { seed: 4, legacyLayerNormNames: true }), b3 = tinyModel('bert', { seed: 4, variant: 'BertForMaskedLM' });
  assert.ok('encoder.layer.0.output.LayerNorm.gamma' in b2.tensors && 'bert.embeddings.word_embeddings.weight' in b3.tensors && 'cls.predictions.bias' in b3.tensors);
  assert.equal(maskedRelErr(fwd(b1, b1.config, b1.tensors, bi), fwd(b2, b2.config, b2.tensors, bi), bi.mask, 1), 0);
  // the first tensors are drawn in the same order, so the encoders agree up to the pooler / cls head
  assert.equal(maskedRelErr(fwd(b1, b1.config, b1.tensors, bi), fwd(b3, b3.config, b3.tensors, bi), bi.mask, 1), 0);
});

// ---------------------------------------------------------------------------------
// Padding, pooling, greedy generation

test('a left-padded row gives the logits of the row alone (decoders); right padding does for BERT', () => {
  for (const arch of ARCHS) {
    const m = tinyModel(arch, { seed: 9 });
    const inp = inputsFor(arch);
    const batch = referenceForward({ config: m.config, tensors: m.tensors, ids: inp.ids, attentionMask: inp.attentionMask });
    const N = batch.dims[2];
    ROWS.forEach((row, b) => {
      const alone = referenceForward({ config: m.config, tensors: m.tensors, ids: row });
      const off = arch === 'bert' ? 0 : inp.L - row.length;
      const part = batch.data.subarray((b * inp.L + off) * N, (b * inp.L + off + row.length) * N);
      const e = maskedRelErr(part, alone.data, null, N);
      assert.ok(e <= 1e-12, `${arch} row ${b}: ${e}`);
    });
    // rows given as arrays are left-padded by the reference itself, with the same result
    if (arch !== 'bert') {
      const rows = referenceForward({ config: m.config, tensors: m.tensors, ids: ROWS });
      assert.equal(maskedRelErr(rows.data, batch.data, inp.mask, N), 0);
    }
  }
  assert.deepEqual(Array.from(positionIdsFromMask([0, 0, 1, 1, 1, 1, 1, 1], 2, 4)), [1, 1, 0, 1, 0, 1, 2, 3]);
  assert.deepEqual(leftPad([[5, 6, 7], [8]], 0), { ids: Int32Array.of(5, 6, 7, 0, 0, 8), attentionMask: Int32Array.of(1, 1, 1, 0, 0, 1), dims: [2, 3] });
});

test('sentence embeddings: mean over real tokens, CLS, L2 normalisation', () => {
  const m = tinyModel('bert', { seed: 3 });
  const inp = inputsFor('bert');
  const h = bertReference({ config: m.config, tensors: m.tensors, ids: inp.ids, attentionMask: inp.attentionMask });
  const E = m.config.hidden_size;
  ROWS.forEach((row, b) => {
    const mean = new Float64Array(E);
    for (let i = 0; i < row.length; i++) for (let k = 0; k < E; k++) mean[k] += h.data[(b * inp.L + i) * E + k] / row.length;
    const pooled = poolReference(h.data, inp.B, inp.L, E, inp.mask, { pooling: 'mean' }).subarray(b * E, (b + 1) * E);
    assert.ok(maskedRelErr(pooled, mean, null, E) < 1e-14);
    const cls = poolReference(h.data, inp.B, inp.L, E, inp.mask, { pooling: 'cls' }).subarray(b * E, (b + 1) * E);
    assert.deepEqual(Array.from(cls), Array.from(h.data.subarray(b * inp.L * E, (b * inp.L + 1) * E)));
    const alone = sentenceEmbeddingReference({ config: m.config, tensors: m.tensors, ids: row, normalize: true });
    const batch = sentenceEmbeddingReference({ config: m.config, tensors: m.tensors, ids: inp.ids, attentionMask: inp.attentionMask, normalize: true });
    assert.ok(maskedRelErr(batch.data.subarray(b * E, (b + 1) * E), alone.data, null, E) < 1e-12);
    assert.ok(Math.abs(Math.hypot(...alone.data) - 1) < 1e-14);
  });
});

test('greedyReference: argmax of full forwards; a batch equals each prompt alone; EOS lists stop a row', () => {
  for (const arch of ['gpt2', 'llama', 'qwen2', 'mistral']) {
    const m = tinyModel(arch, { seed: 21 });
    const prompts = [[12, 40, 7, 3, 88], [61, 5]];
    const batch = greedyReference({ config: m.config, tensors: m.tensors, prompts, maxNewTokens: 5, eosTokenId: null });
    assert.equal(batch.steps.length, 5);
    prompts.forEach((p, b) => {
      const alone = greedyReference({ config: m.config, tensors: m.tensors, prompts: p, maxNewTokens: 5, eosTokenId: null });
      assert.deepEqual(alone.tokens[0], batch.tokens[b], `${arch} prompt ${b}`);
      // step 0 is the argmax of one forward's last row
      const r = referenceForward({ config: m.config, tensors: m.tensors, ids: p });
      const V = r.dims[2], last = r.data.subarray((p.length - 1) * V, p.length * V);
      assert.equal(alone.tokens[0][0], last.indexOf(Math.max(...last)));
      assert.ok(alone.margins[0][0] > 0);
    });
    // an EOS (here: whatever the second step produces, as part of a list) ends that row; the
    // other row goes on, and the finished one is fed pad tokens
    const stopAt = batch.steps[1][0];
    const eosRun = greedyReference({ config: m.config, tensors: m.tensors, prompts, maxNewTokens: 5, eosTokenId: [9999, stopAt], padTokenId: 0 });
    assert.deepEqual(eosRun.tokens[0], batch.tokens[0].slice(0, batch.tokens[0].indexOf(stopAt) + 1));
    if (!batch.tokens[1].slice(0, 4).includes(stopAt)) assert.deepEqual(eosRun.tokens[1].slice(0, 3), batch.tokens[1].slice(0, 3));
  }
  // config.eos_token_id as a list (the llama tiny config has two)
  const l = tinyModel('llama');
  assert.ok(Array.isArray(l.config.eos_token_id) && l.config.eos_token_id.length === 2);
});

// ---------------------------------------------------------------------------------
// The files

test('safetensors files: F32 / F16 / BF16 read back as the tensors; shards and the index; persisted buffers', () => {
  for (const arch of ARCHS)
    for (const [dtype, shards] of [['F32', 1], ['F16', 2], ['BF16', 3]]) {
      const m = tinyModel(arch, { dtype, shards, seed: 6 });
      assert.equal(m.files.length, shards);
      const seen = {};
      for (const f of m.files) {
        const n = Number(new DataView(f.bytes.buffer, f.bytes.byteOffset).getBigUint64(0, true));
        const header = JSON.parse(new TextDecoder().decode(f.bytes.subarray(8, 8 + n)));
        assert.deepEqual(header.__metadata__, { format: 'pt' });
        for (const [name, e] of Object.entries(header)) {
          if (name === '__metadata__') continue;
          const t = m.tensors[name];
          assert.equal(e.dtype, t.data instanceof Float32Array ? dtype : t.data instanceof BigInt64Array ? 'I64' : '?', name);
          assert.deepEqual(e.shape, t.dims);
        }
        for (const [name, t] of Object.entries(parseSafetensors(f.bytes))) {
          assert.ok(!(name in seen), `${name} in two shards`);
          seen[name] = f.name;
          assert.deepEqual(Array.from(t.data), Array.from(m.tensors[name].data), `${arch} ${dtype} ${name}`);
        }
      }
      assert.deepEqual(Object.keys(seen).sort(), Object.keys(m.tensors).sort());
      if (shards > 1) {
        assert.deepEqual(m.index.weight_map, Object.fromEntries(Object.keys(seen).sort().map((k) => [k, seen[k]])));
        assert.ok(m.files.every((f, i) => f.name === `model-0000${i + 1}-of-0000${shards}.safetensors`));
        const bytes = (t) => t.data.length * (t.data instanceof BigInt64Array ? 8 : dtype === 'F32' ? 4 : 2);
        assert.equal(m.index.metadata.total_size, Object.values(m.tensors).reduce((s, t) => s + bytes(t), 0));
      } else assert.equal(m.index, null);
      // stored precision: every float value is a float16 / bfloat16 value
      if (dtype !== 'F32')
        for (const t of Object.values(m.tensors)) if (t.data instanceof Float32Array)
          for (const v of t.data) assert.equal(dtype === 'F16' ? roundToF16(v) : roundToBf16(v), v);
    }
  // persisted buffers as real checkpoints carry them
  const b = tinyModel('bert').tensors['embeddings.position_ids'];
  assert.ok(b.data instanceof BigInt64Array && b.dims.join() === '1,64' && b.data[63] === 63n);
  const g = tinyModel('gpt2').tensors;
  assert.deepEqual(g['transformer.h.1.attn.bias'].dims, [1, 1, 64, 64]);
  assert.equal(g['transformer.h.1.attn.bias'].data[64 + 1], 1);
  assert.equal(g['transformer.h.1.attn.bias'].data[2], 0);
  assert.deepEqual(g['transformer.h.0.attn.masked_bias'], { data: Float32Array.of(-1e4), dims: [] });
  const legacy = tinyModel('llama', { legacyBuffers: true }).tensors['model.layers.1.self_attn.rotary_emb.inv_freq'];
  assert.deepEqual(legacy.dims, [8]);
  // roundToF16 / roundToBf16 against values worked out by hand
  assert.equal(roundToF16(1 + 2 ** -11), 1);               // a tie: to even
  assert.equal(roundToF16(1 + 3 * 2 ** -11), 1 + 2 ** -9);  // a tie: to even, upwards
  assert.equal(roundToF16(65519), 65504);
  assert.equal(roundToF16(65520), Infinity);
  assert.equal(roundToF16(2 ** -25), 0);                   // half of the smallest subnormal: to even (0)
  assert.equal(roundToF16(3 * 2 ** -26), 2 ** -24);
  assert.equal(roundToBf16(1 + 2 ** -8), 1);
  assert.equal(roundToBf16(1 + 3 * 2 ** -8), 1 + 2 ** -6);
});

test('int8-exact weights: every matrix is q * s (|q| <= 127, s a power of two) per output channel, or per tensor', () => {
  const quantExact = (a, rows, cols, axis) => {
    // symmetric int8 by channel, in float32 as an implementation would: s = max|w| / 127, q = round(w / s)
    const channels = axis === 0 ? rows : cols, len = axis === 0 ? cols : rows;
    const at = (c, t) => (axis === 0 ? c * cols + t : t * cols + c);
    const scales = new Set();
    for (let c = 0; c < channels; c++) {
      let amax = 0;
      for (let t = 0; t < len; t++) amax = Math.max(amax, Math.abs(a[at(c, t)]));
      const s = Math.fround(amax / 127);
      scales.add(s);
      assert.ok(Number.isInteger(Math.log2(s)), 'power-of-two scale');
      for (let t = 0; t < len; t++) {
        const q = Math.round(Math.fround(a[at(c, t)] / s));
        assert.ok(Math.abs(q) <= 127 && Math.fround(q * s) === a[at(c, t)]);
      }
    }
    return scales.size;
  };
  for (const arch of ARCHS)
    for (const dtype of ['F32', 'BF16']) {
      const m = tinyModel(arch, { int8Exact: 'outChannel', dtype });
      let matrices = 0, varied = 0;
      for (const [name, t] of Object.entries(m.tensors)) {
        if (!(t.data instanceof Float32Array) || t.dims.length !== 2) continue;
        const conv = arch === 'gpt2' && /(c_attn|c_proj|c_fc)\.weight$/.test(name);
        if (quantExact(t.data, t.dims[0], t.dims[1], conv ? 1 : 0) > 1) varied++;
        matrices++;
      }
      assert.ok(matrices >= 5 && varied >= matrices - 2, `${arch}: ${varied} of ${matrices} matrices with varied scales`);
      const u = tinyModel(arch, { int8Exact: 'tensor', dtype });
      for (const t of Object.values(u.tensors)) {
        if (!(t.data instanceof Float32Array) || t.dims.length !== 2) continue;
        assert.equal(quantExact(t.data, t.dims[0], t.dims[1], 0), 1);
        assert.equal(quantExact(t.data, t.dims[0], t.dims[1], 1), 1);
      }
    }
});

// ---------------------------------------------------------------------------------
// Tokenizers

test('tokenizers: load in @huggingface/tokenizers, encode as an independent implementation does, decode back', () => {
  const texts = ['The capital of France is Paris.', 'Hello world! How are you today?', "It's 2024, isn't it?  Yes.\nA new line", 'quiz: zebra & jam'];
  for (const arch of ARCHS) {
    const m = tinyModel(arch);
    // as the files would arrive: JSON text, parsed
    const tok = new Tokenizer(JSON.parse(JSON.stringify(m.tokenizerJson)), JSON.parse(JSON.stringify(m.tokenizerConfig)));
    assert.ok(m.tokenizer.size <= m.config.vocab_size, `${arch}: tokenizer ${m.tokenizer.size} > vocab_size ${m.config.vocab_size}`);
    assert.ok(m.tokenizer.size >= 100 && m.tokenizer.size <= 350);
    for (const text of texts) {
      const { ids } = tok.encode(text);
      assert.deepEqual(ids, m.tokenizer.expectedEncode(text), `${arch}: ${JSON.stringify(text)}`);
      const back = tok.decode(ids, { skip_special_tokens: true });
      const expected = m.tokenizer.kind === 'wordpiece' ? text.toLowerCase().replace(/\s+/g, ' ') : text;
      if (m.tokenizer.kind === 'wordpiece') assert.equal(back.replace(/ ' /g, "'").replace(/ ?([,:&?!.]) ?/g, '$1'), expected.replace(/ ?([,:&?!.]) ?/g, '$1'));
      else assert.equal(back, expected, `${arch}: decode`);
    }
    // the learned merges / whole words are used: the corpus sentence takes far fewer tokens than characters
    assert.ok(tok.encode(texts[0]).ids.length <= 0.6 * texts[0].length, `${arch}: ${tok.encode(texts[0]).ids.length} tokens`);
    // special tokens by their ids; the decoders' EOS ids are in the tokenizer
    const sp = m.tokenizer.special;
    for (const [content, id] of Object.entries(sp)) assert.deepEqual(tok.encode(content, { add_special_tokens: false }).ids, [id], content);
    if (arch !== 'bert') for (const e of [].concat(m.config.eos_token_id)) assert.ok(Object.values(sp).includes(e));
  }
  // BOS handling per family
  const first = (kind, text) => tinyTokenizer(kind).expectedEncode(text)[0];
  assert.equal(first('llama3', 'Hi'), tinyTokenizer('llama3').special['<|begin_of_text|>']);
  assert.equal(first('sentencepiece', 'Hi'), 1);
  assert.notEqual(first('gpt2', 'Hi'), tinyTokenizer('gpt2').special['<|endoftext|>']);
  // chat templates where the real files have them
  for (const arch of ['llama', 'qwen2', 'mistral']) assert.equal(typeof tinyModel(arch).tokenizerConfig.chat_template, 'string');
});
