// mha-wasm/models: loadModel on tiny random models in the exact Hugging Face layout
// (tests/models/tiny.mjs) against the float64 references of tests/models/reference.mjs,
// in both builds: logits (BERT: hidden states) to 1e-4 on the real rows, attention maps,
// sentence embeddings; shards, F16 / BF16 storage, tied and untied heads, prefixes, legacy
// names, persisted buffers, Qwen2 windows, rope_scaling variants, int8 checkpoints; and
// every refusal named, with everything working afterwards.
import { buildName } from './builds.mjs';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { init, parseSafetensors, quantizeSafetensors, encodeSafetensors } from 'mha-wasm';
import { loadModel } from 'mha-wasm/models';
import { tinyModel } from './models/tiny.mjs';
import { referenceForward, maskedRelErr, sentenceEmbeddingReference, ropeReference } from './models/reference.mjs';
import { ropeFromHfConfig } from './reference-modern.mjs';
import { ropeOf } from '../bindings/hf-config.js';

const ARCHS = ['bert', 'gpt2', 'llama', 'qwen2', 'mistral'];
const ROWS = [[7, 23, 41, 5, 60, 12, 33, 8, 19], [44, 9, 71, 15, 28]];
const TOL = 1e-4;

const builds = [['simd', await init({ threads: 1 })], ['threads', await init({ threads: 2 })]];
assert.equal(builds[0][1].build, buildName(false));

const weightsOf = (m) => (m.files.length === 1 ? parseSafetensors(m.files[0].bytes) : m.files.map((f) => parseSafetensors(f.bytes)));

/** The rows padded as the model pads them (left for decoders, right for BERT), as { ids, attentionMask, mask }. */
function padded(rows, side, padId) {
  const B = rows.length, L = Math.max(...rows.map((r) => r.length));
  const ids = new Int32Array(B * L).fill(padId), mask = new Int32Array(B * L);
  rows.forEach((r, b) => r.forEach((id, i) => {
    const j = side === 'left' ? L - r.length + i : i;
    ids[b * L + j] = id;
    mask[b * L + j] = 1;
  }));
  return { ids: { data: ids, dims: [B, L] }, attentionMask: { data: mask, dims: [B, L] }, mask, B, L };
}

/** Loads m, runs forward on ROWS, compares with the reference on the real rows; returns the error. */
async function compare(mha, m, { rows = ROWS, weights = weightsOf(m), what = m.arch } = {}) {
  const model = await loadModel(mha, { config: m.config, weights });
  try {
    const inp = padded(rows, m.arch === 'bert' ? 'right' : 'left', model.padTokenId);
    const out = await model.forward(rows);
    const ref = referenceForward({ config: m.config, tensors: m.tensors, ids: inp.ids, attentionMask: inp.attentionMask });
    assert.deepEqual(out.dims, ref.dims, `${what}: dims`);
    const e = maskedRelErr(out.data, ref.data, inp.mask, out.dims[2]);
    assert.ok(e <= TOL, `${what}: error ${e}`);
    return e;
  } finally {
    model.dispose();
  }
}

for (const [build, mha] of builds) {
  test(`${build}: each architecture's logits (BERT: hidden states) equal the float64 reference to 1e-4 on the real rows`, async () => {
    for (const arch of ARCHS) {
      const m = tinyModel(arch, { seed: 2 });
      await compare(mha, m);
      // one sequence: [1, L, vocab], the row alone
      const model = await loadModel(mha, { config: m.config, weights: weightsOf(m) });
      const one = model.forward(ROWS[1]);
      const ref = referenceForward({ config: m.config, tensors: m.tensors, ids: ROWS[1] });
      assert.deepEqual(one.dims, [1, ROWS[1].length, ref.dims[2]]);
      assert.ok(maskedRelErr(one.data, ref.data, null, ref.dims[2]) <= TOL, `${arch}: one sequence`);
      // the same row padded in a batch gives the same numbers (decoders: HF generate's positions)
      const both = model.forward(ROWS), V = ref.dims[2], L = ROWS[0].length, n = ROWS[1].length;
      const row = arch === 'bert' ? both.data.subarray(L * V, (L + n) * V) : both.data.subarray((2 * L - n) * V, 2 * L * V);
      assert.ok(maskedRelErr(row, ref.data, null, V) <= TOL, `${arch}: the padded row`);
      model.dispose();
    }
  });
}

const [, mha] = builds[0];

test('shards, F16 and BF16 storage, with and without the prefix, tied and untied heads', async () => {
  for (const arch of ARCHS) {
    for (const o of [{ shards: 3 }, { dtype: 'F16' }, { dtype: 'BF16', shards: 2 }, { prefix: arch === 'bert' }]) {
      const m = tinyModel(arch, { seed: 5, ...o });
      if (o.shards) assert.ok(Array.isArray(weightsOf(m)) && weightsOf(m).length === o.shards);
      await compare(mha, m, { what: `${arch} ${JSON.stringify(o)}` });
    }
    if (arch === 'bert') {
      await compare(mha, tinyModel('bert', { variant: 'BertForMaskedLM', seed: 3 }), { what: 'BertForMaskedLM (bert. prefix, cls.* skipped)' });
      await compare(mha, tinyModel('bert', { legacyLayerNormNames: true }), { what: 'bert LayerNorm.gamma/beta' });
      continue;
    }
    for (const tie of [true, false]) {
      const m = tinyModel(arch, { tie, seed: 7 });
      const model = await loadModel(mha, { config: m.config, weights: weightsOf(m) });
      assert.equal(model.modelOptions.head, tie ? 'tied' : 'untied', `${arch} tie ${tie}`);
      model.dispose();
      await compare(mha, m, { what: `${arch} tie ${tie}` });
    }
  }
  // GPT-2 without tie_word_embeddings is tied (openai-community/gpt2's config has no key)
  const g = tinyModel('gpt2');
  assert.equal(g.config.tie_word_embeddings, undefined);
  assert.ok(!Object.keys(g.tensors).some((n) => n.includes('lm_head')));
  // Qwen2's logits have vocab_size columns, more than the tokenizer's
  const q = tinyModel('qwen2');
  assert.ok(q.config.vocab_size > q.tokenizer.size);
  // persisted buffers are there and skipped: GPT-2 attn.bias / masked_bias, BERT position_ids (I64), Llama inv_freq
  const l = tinyModel('llama', { legacyBuffers: true });
  assert.ok(Object.keys(l.tensors).some((n) => n.endsWith('rotary_emb.inv_freq')));
  await compare(mha, l, { what: 'llama with rotary_emb.inv_freq buffers' });
  assert.ok(parseSafetensors(tinyModel('bert').files[0].bytes)['embeddings.position_ids'].data instanceof BigInt64Array);
});

test('config rules: Qwen2 windows from max_window_layers / layer_types, Mistral windows, Llama attention_bias and mlp_bias, rope scaling', async () => {
  const cases = [
    ['qwen2', { use_sliding_window: true, sliding_window: 3, max_window_layers: 1 }, (o) => o.windowFrom === 1 && o.attention.slidingWindow === 3],
    ['qwen2', { use_sliding_window: true, sliding_window: 3, max_window_layers: 0 }, (o) => o.windowFrom === 0 && o.attention.slidingWindow === 3],
    ['qwen2', { use_sliding_window: true, sliding_window: 3, layer_types: ['full_attention', 'sliding_attention'] }, (o) => o.windowFrom === 1],
    ['qwen2', { use_sliding_window: false, sliding_window: 3 }, (o) => o.attention.slidingWindow === undefined],
    ['mistral', { sliding_window: null }, (o) => o.attention.slidingWindow === undefined],
    ['mistral', { sliding_window: 2 }, (o) => o.attention.slidingWindow === 2],
    ['llama', { attention_bias: true, mlp_bias: true }, (o) => o.attention.qkvBias && o.attention.outBias && o.feedForward.bias],
    ['llama', { rope_scaling: { type: 'linear', factor: 2 } }, () => true],
    ['llama', { rope_scaling: null, rope_theta: 500000 }, () => true],
    ['llama', { rope_scaling: null, head_dim: 8 }, (o) => o.attention.headDim === 8],
    ['mistral', { num_key_value_heads: 1 }, (o) => o.attention.numKvHeads === 1],
  ];
  for (const [arch, config, check] of cases) {
    const m = tinyModel(arch, { seed: 11, config });
    const model = await loadModel(mha, { config: m.config, weights: weightsOf(m) });
    assert.ok(check(model.modelOptions), `${arch} ${JSON.stringify(config)}: ${JSON.stringify(model.modelOptions)}`);
    model.dispose();
    await compare(mha, m, { rows: [[7, 23, 41, 5, 60, 12, 33, 8, 19, 3, 4, 5], [44, 9, 71, 15, 28]], what: `${arch} ${JSON.stringify(config)}` });
  }
});

test('rotary frequencies: default, linear, llama3 (type or rope_type, rope_parameters) as the references compute them; yarn as reference-modern does', () => {
  const base = { hidden_size: 64, num_attention_heads: 4, max_position_embeddings: 256, rope_theta: 10000 };
  const variants = [
    {}, { rope_scaling: { type: 'linear', factor: 4 } }, { rope_scaling: { rope_type: 'linear', factor: 2 } },
    { rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } },
    { partial_rotary_factor: 0.5 }, { head_dim: 8 }, { rope_theta: 1e6 },
    { rope_parameters: { rope_type: 'linear', factor: 3, rope_theta: 5000 } },
  ];
  for (const v of variants) {
    const c = { ...base, ...v }, D = c.head_dim ?? 16;
    const mine = ropeOf(c, D), ref = ropeReference(c);
    assert.equal(mine.dim, ref.dim, JSON.stringify(v));
    for (let i = 0; i < ref.invFreq.length; i++) assert.ok(Math.abs(mine.invFreq[i] - ref.invFreq[i]) <= 1e-6 * ref.invFreq[i], `${JSON.stringify(v)} [${i}]`);
    assert.equal(mine.attentionFactor, 1);
  }
  for (const rs of [{ rope_type: 'yarn', factor: 4, original_max_position_embeddings: 64 }, { type: 'yarn', factor: 8, beta_fast: 16, original_max_position_embeddings: 32, mscale: 1, mscale_all_dim: 0.5 }]) {
    const mine = ropeOf({ ...base, rope_scaling: rs }, 16);
    const ref = ropeFromHfConfig({ headDim: 16, ropeTheta: 10000, ropeScaling: rs, maxPositionEmbeddings: 256 });
    for (let i = 0; i < ref.invFreq.length; i++) assert.ok(Math.abs(mine.invFreq[i] - ref.invFreq[i]) <= 1e-6 * ref.invFreq[i], `yarn [${i}]`);
    assert.ok(Math.abs(mine.attentionFactor - ref.attentionFactor) <= 1e-12, `yarn attention factor ${mine.attentionFactor} vs ${ref.attentionFactor}`);
  }
});

test('needWeights: every layer\'s attention maps [B, heads, L, L] equal the reference on the real rows', async () => {
  for (const arch of ARCHS) {
    const m = tinyModel(arch, { seed: 4 });
    const model = await loadModel(mha, { config: m.config, weights: weightsOf(m) });
    const inp = padded(ROWS, arch === 'bert' ? 'right' : 'left', model.padTokenId);
    const out = model.forward(ROWS, { needWeights: true });
    const ref = referenceForward({ config: m.config, tensors: m.tensors, ids: inp.ids, attentionMask: inp.attentionMask, needWeights: true });
    assert.equal(out.attentions.length, model.numLayers);
    const { B, L } = inp, H = model.numHeads;
    out.attentions.forEach((a, l) => {
      assert.deepEqual(a.dims, [B, H, L, L]);
      for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let i = 0; i < L; i++) {
        if (!inp.mask[b * L + i]) continue;  // padded query rows: HF's are uniform, ours zero
        for (let j = 0; j < L; j++) {
          const k = ((b * H + h) * L + i) * L + j;
          assert.ok(Math.abs(a.data[k] - ref.attentions[l][k]) <= 1e-5, `${arch} layer ${l} [${b},${h},${i},${j}]`);
        }
      }
    });
    model.dispose();
  }
});

test('embed: mean and CLS pooling, with and without normalisation, equal sentence-transformers\' (right-padded rows)', async () => {
  for (const o of [{}, { prefix: true }, { dtype: 'BF16' }]) {
    const m = tinyModel('bert', { seed: 9, ...o });
    const model = await loadModel(mha, { config: m.config, weights: weightsOf(m) });
    const inp = padded(ROWS, 'right', model.padTokenId);
    for (const pooling of ['mean', 'cls']) {
      for (const normalize of [false, true]) {
        const e = model.embed(ROWS, { pooling, normalize });
        const ref = sentenceEmbeddingReference({ config: m.config, tensors: m.tensors, ids: inp.ids, attentionMask: inp.attentionMask, pooling, normalize });
        assert.deepEqual(e.dims, [2, 32]);
        assert.ok(maskedRelErr(e.data, ref.data, null, 32) <= TOL, `${pooling} ${normalize}`);
        if (normalize) for (let b = 0; b < 2; b++) assert.ok(Math.abs(Math.hypot(...e.data.subarray(b * 32, b * 32 + 32)) - 1) < 1e-5);
        // one sentence alone gives its row of the batch
        const one = model.embed(ROWS[1], { pooling, normalize });
        assert.ok(maskedRelErr(one.data, ref.data.subarray(32), null, 32) <= TOL);
      }
    }
    // { data, dims } with the caller's mask and token types
    const types = new Int32Array(inp.ids.data.length).fill(1);
    const e = model.embed(inp.ids, { attentionMask: inp.attentionMask, tokenTypeIds: { data: types, dims: inp.ids.dims } });
    const ref = sentenceEmbeddingReference({ config: m.config, tensors: m.tensors, ids: inp.ids, attentionMask: inp.attentionMask, tokenTypeIds: { data: types, dims: inp.ids.dims } });
    assert.ok(maskedRelErr(e.data, ref.data, null, 32) <= TOL, 'token types');
    model.dispose();
  }
});

test('int8 checkpoints (quantizeSafetensors, compressed-tensors layout) load at weightType f32 as q * scale', async () => {
  for (const arch of ['llama', 'bert', 'gpt2']) {
    const m = tinyModel(arch, { seed: 6, int8Exact: 'outChannel' });
    const q = parseSafetensors(quantizeSafetensors(m.files[0].bytes, { type: 'int8' }));
    const names = Object.keys(q).filter((n) => q[n].data instanceof Int8Array);
    assert.ok(names.length > 4, `${arch}: ${names.length} int8 tensors`);
    // the reference on the dequantized tensors (for int8-exact matrices: the same values)
    const tensors = { ...m.tensors };
    for (const n of names) {
      const s = q[`${n}_scale`].data, [N, K] = q[n].dims;
      tensors[n] = { data: Float32Array.from(q[n].data, (v, i) => v * s[Math.floor(i / K)]), dims: [N, K] };
    }
    await compare(mha, { ...m, tensors }, { weights: q, what: `${arch} int8` });
  }
});

test('refusals are named: architecture, config values, tensors, weightType, memory; the runtime keeps working', async () => {
  const m = tinyModel('llama');
  const w = weightsOf(m);
  const live = mha.stats().liveLayers;
  const refuse = async (what, options, Err, re, api = mha) => {
    await assert.rejects(loadModel(api, options), (e) => {
      assert.ok(e instanceof Err, `${what}: ${e.constructor.name}: ${e.message}`);
      assert.match(e.message, re, what);
      return true;
    });
  };
  const cfg = (over, arch = 'llama') => ({ ...(arch === 'llama' ? m.config : tinyModel(arch).config), ...over });
  await refuse('unknown architecture', { config: cfg({ architectures: ['T5ForConditionalGeneration'] }), weights: w }, TypeError, /T5ForConditionalGeneration/);
  await refuse('unknown model_type', { config: { model_type: 'falcon' }, weights: w }, TypeError, /falcon/);
  await refuse('rope type', { config: cfg({ rope_scaling: { rope_type: 'dynamic', factor: 2 } }), weights: w }, RangeError, /rope_scaling.*dynamic/);
  await refuse('activation', { config: cfg({ hidden_act: 'quick_gelu' }), weights: w }, RangeError, /hidden_act.*quick_gelu/);
  await refuse('bert relative positions', { config: cfg({ position_embedding_type: 'relative_key' }, 'bert'), weights: w }, RangeError, /position_embedding_type/);
  await refuse('gpt2 per-layer scale', { config: cfg({ scale_attn_by_inverse_layer_idx: true }, 'gpt2'), weights: w }, RangeError, /scale_attn_by_inverse_layer_idx/);
  await refuse('quantization_config', { config: cfg({ quantization_config: { quant_method: 'gptq', bits: 4 } }), weights: w }, RangeError, /quant_method.*gptq/);
  await refuse('kv heads', { config: cfg({ num_key_value_heads: 3 }), weights: w }, RangeError, /num_key_value_heads/);
  await refuse('a field of the wrong type', { config: cfg({ hidden_size: '48' }), weights: w }, TypeError, /hidden_size/);
  // A number out of range is a RangeError, anything else a TypeError.
  await refuse('rope_theta as a string', { config: cfg({ rope_theta: '10000' }), weights: w }, TypeError, /config\.rope_theta/);
  await refuse('rope_theta out of range', { config: cfg({ rope_theta: 0.5 }), weights: w }, RangeError, /config\.rope_theta/);
  await refuse('eos_token_id negative', { config: cfg({ eos_token_id: -1 }), weights: w }, RangeError, /config\.eos_token_id/);
  await refuse('eos_token_id as a string', { config: cfg({ eos_token_id: '2' }), weights: w }, TypeError, /config\.eos_token_id/);
  await refuse('rope_scaling.factor as a string', { config: cfg({ rope_scaling: { rope_type: 'linear', factor: '2' } }), weights: w }, TypeError, /rope_scaling\.factor/);
  await refuse('an epsilon float32 rounds to 0', { config: cfg({ rms_norm_eps: 1e-50 }), weights: w }, RangeError, /config\.rms_norm_eps must be a positive float32/);
  assert.throws(() => new mha.Model({ vocabSize: 4, hiddenSize: 8, numLayers: 1, normEps: 1e39, attention: { numHeads: 2 }, feedForward: { dimFeedforward: 8 } }),
    { name: 'RangeError', message: /normEps must be a positive float32/ });
  {
    const core = new mha.Model({ vocabSize: 4, hiddenSize: 8, numLayers: 1, attention: { numHeads: 2 }, feedForward: { dimFeedforward: 8 } });
    const f = (n, v = 0.1) => new Float32Array(n).fill(v);
    core.setEmbeddings({ tokens: f(32) });
    core.setBlock(0, { norm1Weight: f(8, 1), norm1Bias: f(8), norm2Weight: f(8, 1), norm2Bias: f(8),
      attention: { inProjWeight: f(192), inProjBias: f(24), outProjWeight: f(64), outProjBias: f(8) },
      feedForward: { 'linear1.weight': f(64), 'linear1.bias': f(8), 'linear2.weight': f(64), 'linear2.bias': f(8) } });
    core.setFinalNorm({ weight: f(8, 1), bias: f(8) });
    assert.equal(core.forward(Int32Array.of(1, 2)).output.dims.join(), '2,8');
    const ids = Int32Array.of(1, 2);
    structuredClone(ids.buffer, { transfer: [ids.buffer] });
    assert.throws(() => core.forward(ids), { name: 'TypeError', message: /ids is a view of a detached or out-of-bounds ArrayBuffer/ });
    core.dispose();
  }
  await refuse('Qwen2 layer_types out of order', { config: cfg({ use_sliding_window: true, layer_types: ['sliding_attention', 'full_attention'] }, 'qwen2'), weights: w }, RangeError, /layer_types/);

  const without = (name) => Object.fromEntries(Object.entries(w).filter(([n]) => n !== name));
  await refuse('missing tensor', { config: m.config, weights: without('model.layers.1.mlp.up_proj.weight') }, TypeError, /missing tensor "model\.layers\.1\.mlp\.up_proj\.weight"/);
  await refuse('missing head', { config: m.config, weights: without('lm_head.weight') }, TypeError, /missing tensor "lm_head\.weight"/);
  const bent = { ...w, 'model.layers.0.self_attn.k_proj.weight': { data: new Float32Array(48 * 48), dims: [48, 48] } };
  await refuse('misshapen tensor', { config: m.config, weights: bent }, RangeError, /"model\.layers\.0\.self_attn\.k_proj\.weight" has dims \[48, 48\], expected \[32, 48\]/);
  await refuse('unexpected tensor', { config: m.config, weights: { ...w, 'model.layers.0.self_attn.q_norm.weight': { data: new Float32Array(16), dims: [16] } } }, TypeError, /unexpected tensor "model\.layers\.0\.self_attn\.q_norm\.weight"/);
  await refuse('a layer too many', { config: m.config, weights: [w, weightsOf(tinyModel('llama', { config: { num_hidden_layers: 3 } }))].map((x, i) => (i ? { 'model.layers.2.input_layernorm.weight': x['model.layers.2.input_layernorm.weight'] } : x)) }, TypeError, /unexpected tensor "model\.layers\.2\.input_layernorm\.weight"/);
  await refuse('a tensor in two shards', { config: m.config, weights: [w, { 'model.norm.weight': w['model.norm.weight'] }] }, TypeError, /"model\.norm\.weight" is given twice/);
  await refuse('an integer tensor as a weight', { config: m.config, weights: { ...w, 'model.norm.weight': { data: new Int32Array(48), dims: [48] } } }, TypeError, /"model\.norm\.weight" is Int32Array/);
  await refuse('int8 without its scale', { config: m.config, weights: { ...w, 'lm_head.weight': { data: new Int8Array(301 * 48), dims: [301, 48] } } }, TypeError, /lm_head\.weight_scale/);
  await refuse('weights not tensors', { config: m.config, weights: new Uint8Array(8) }, TypeError, /parseSafetensors/);

  await refuse('weightType unknown', { config: m.config, weights: w, weightType: 'bf16' }, RangeError, /weightType/);
  for (const wt of ['int8', 'f16']) {
    try {
      const model = await loadModel(mha, { config: m.config, weights: w, weightType: wt });  // a build whose Model has weightType
      model.dispose();
    } catch (e) {
      assert.equal(e.constructor, Error);
      assert.match(e.message, new RegExp(`weightType '${wt}' is not available in this build`));
    }
  }
  await refuse('not an api', { config: m.config, weights: w }, TypeError, /init\(\)/, {});
  await refuse('unknown option', { config: m.config, weights: w, dtype: 'f32' }, TypeError, /dtype/);

  // Too large: refused from the config alone (no weights needed), before anything is allocated.
  const before = mha.stats().wasmMemoryBytes;
  const big = { ...m.config, hidden_size: 8192, intermediate_size: 28672, num_hidden_layers: 80, num_attention_heads: 64, num_key_value_heads: 8, head_dim: 128, vocab_size: 128256 };
  await refuse('too large', { config: big, weights: {} }, RangeError, /LlamaForCausalLM with 80 layers.*needs .*GiB of wasm memory/);
  const tall = { ...tinyModel('gpt2').config, vocab_size: 3e6, n_embd: 256, n_head: 4 };
  await refuse('embeddings too large', { config: tall, weights: {} }, RangeError, /GPT2LMHeadModel.*wasm memory/);
  // A head size nothing could hold is refused at once, before the rotary table (head_dim / 2 entries) is built.
  const t0 = performance.now();
  await refuse('head_dim too large', { config: { ...m.config, head_dim: 1e9 }, weights: {} }, RangeError, /LlamaForCausalLM .*head_dim 1000000000 needs .* of wasm memory for one layer's query projection/);
  await refuse('hidden_size too large', { config: { ...tinyModel('qwen2').config, hidden_size: 2 ** 30 }, weights: {} }, RangeError, /Qwen2ForCausalLM with hidden size 1073741824/);
  await refuse('a size beyond 32 bits', { config: { ...tinyModel('mistral').config, sliding_window: 2 ** 31 }, weights: {} }, RangeError, /config\.sliding_window must be at most 2147483647/);
  await refuse('yarn mscale as a string', { config: cfg({ rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 64, mscale: 'a', mscale_all_dim: 'b' } }), weights: w }, TypeError, /config\.rope_scaling\.mscale must be a finite number/);
  await refuse('yarn beta_fast as a string', { config: cfg({ rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 64, beta_fast: 'x' } }), weights: w }, TypeError, /config\.rope_scaling\.beta_fast/);
  assert.ok(performance.now() - t0 < 2000, `refused in ${performance.now() - t0} ms`);
  assert.equal(mha.stats().wasmMemoryBytes, before, 'nothing allocated');
  assert.equal(mha.stats().liveLayers, live, 'no model left behind');

  // a failure while copying in (the final norm's buffer, checked at the start, detached after the first part) disposes the half-loaded model
  const norm = w['model.norm.weight'], own = Float32Array.from(norm.data);
  const fickle = { ...w, 'model.norm.weight': { dims: norm.dims, data: own } };
  const detachNorm = () => { if (own.buffer.byteLength) structuredClone(own.buffer, { transfer: [own.buffer] }); };
  await assert.rejects(loadModel(mha, { config: m.config, weights: fickle, onProgress: detachNorm }), (e) => e instanceof TypeError && /detached/.test(e.message));
  assert.equal(mha.stats().liveLayers, live, 'the half-loaded model was disposed');

  // and the runtime works afterwards
  await compare(mha, m);
});

test('loadModel accepts what the files give: the safetensors of encodeSafetensors, onProgress per part, memoryBytes', async () => {
  const m = tinyModel('gpt2', { tie: false });
  const seen = [];
  const model = await loadModel(mha, { config: JSON.parse(JSON.stringify(m.config)), weights: parseSafetensors(encodeSafetensors(m.tensors)), onProgress: (p) => seen.push(p) });
  assert.deepEqual(seen.map((p) => p.part), ['embeddings', 'block 0', 'block 1', 'final norm', 'head']);
  assert.ok(seen.every((p, i) => p.loaded === i + 1 && p.total === 5));
  const floats = Object.entries(m.tensors).filter(([n]) => !/attn\.(bias|masked_bias)$/.test(n)).reduce((sum, [, t]) => sum + t.data.length, 0);
  assert.ok(model.memoryBytes >= 4 * floats && model.memoryBytes < 4 * floats * 1.2, `memoryBytes ${model.memoryBytes} for ${floats} floats`);
  assert.equal(model.architecture, 'GPT2LMHeadModel');
  assert.deepEqual(model.eosTokenIds, [m.config.eos_token_id]);
  model.dispose();
  assert.equal(model.disposed, true);
  // eos_token_id: null is "no EOS" (transformers' None), not GPT-2's default 50256; absent, it is the default.
  const none = await loadModel(mha, { config: { ...m.config, eos_token_id: null }, weights: parseSafetensors(m.files[0].bytes) });
  assert.deepEqual(none.eosTokenIds, []);
  none.dispose();
  const { eos_token_id: _, ...noKey } = m.config;
  const dflt = await loadModel(mha, { config: noKey, weights: parseSafetensors(m.files[0].bytes) });
  assert.deepEqual(dflt.eosTokenIds, [50256]);
  dflt.dispose();
  assert.throws(() => model.forward([1, 2]), /disposed/);
  model.dispose();
});

test('each tensor\'s data and dims are read once: a getter that answers differently later changes nothing (GPT-2 Conv1D, an int8 scale)', async () => {
  const mha = await init({ threads: 1 });
  for (const [arch, quantized] of [['gpt2', false], ['llama', true]]) {
    const m = tinyModel(arch, { seed: 8, int8Exact: quantized ? 'outChannel' : undefined });
    const w = quantized ? parseSafetensors(quantizeSafetensors(m.files[0].bytes, { type: 'int8' })) : weightsOf(m);
    const target = Object.keys(w).find((n) => (quantized ? n.endsWith('up_proj.weight_scale') : n.endsWith('attn.c_attn.weight')));
    const honest = await loadModel(mha, { config: m.config, weights: w });
    const want = honest.forward([3, 1, 4, 1, 5]).data;
    honest.dispose();
    const real = w[target];
    let reads = 0;
    const lying = { ...w, [target]: { get data() { return reads++ === 0 ? real.data : real.data.subarray(0, 1); }, dims: real.dims } };
    const model = await loadModel(mha, { config: m.config, weights: lying });
    assert.equal(reads, 1, `${arch}: ${target} read once`);
    assert.deepEqual(model.forward([3, 1, 4, 1, 5]).data, want, `${arch}: the values read first are the ones loaded`);
    model.dispose();
  }
});

test('a weight the weight type cannot store is refused naming the part of the checkpoint; nothing is left allocated', async () => {
  const m = tinyModel('llama', { seed: 31 });
  const live = mha.stats().liveLayers;
  for (const [n, v, weightTypes, part] of [['layers.1.mlp.down_proj.weight', NaN, ['int8', 'f16'], /^loadModel: block 1: .*down_proj\.weight\[5\] is NaN/],
    ['embed_tokens.weight', 70000, ['f16'], /^loadModel: embeddings: .*tokens\[5\] = 70000 is beyond float16's range/]]) {
    const tensors = { ...m.tensors }, name = m.prefix + n;
    tensors[name] = { ...tensors[name], data: Float32Array.from(tensors[name].data, (x, i) => (i === 5 ? v : x)) };
    const weights = parseSafetensors(encodeSafetensors(tensors));
    for (const weightType of weightTypes)
      await assert.rejects(loadModel(mha, { config: m.config, weights, weightType }), (e) => e instanceof RangeError && part.test(e.message), `${n} ${weightType}`);
    (await loadModel(mha, { config: m.config, weights, weightType: 'f32' })).dispose();  // float32 holds it
  }
  assert.equal(mha.stats().liveLayers, live);
});

test('modelOptions names the weight type, the default too; weightType null is refused like every other reader of it', async () => {
  const m = tinyModel('llama', { seed: 5 });
  const model = await loadModel(mha, { config: m.config, weights: weightsOf(m) });
  assert.equal(model.modelOptions.weightType, 'f32');
  const again = new mha.Model(model.modelOptions);  // the options a core Model takes
  assert.equal(again.config.weightType, 'f32');
  again.dispose();
  model.dispose();
  await assert.rejects(loadModel(mha, { config: m.config, weights: weightsOf(m), weightType: null }),
    (e) => e instanceof TypeError && /options\.weightType must be one of 'f32', 'f16', 'int8', got null/.test(e.message));
});

// A large vocabulary, in a process of its own (a fresh heap): the token table and the untied head go
// into the heap in blocks of rows (4 MiB of float32 at a time), and loadModel makes room for the weights
// first, so the heap grows once by about what the model holds. Before, a float32 copy of a whole table
// (48 MiB here) sat in the heap beside the weights, and the heap grew in steps that overshoot.
const bigVocabRun = (weightType) => `
  import { init, parseSafetensors } from 'mha-wasm';
  import { loadModel } from 'mha-wasm/models';
  import { tinyModel } from ${JSON.stringify(new URL('./models/tiny.mjs', import.meta.url).href)};
  import { referenceForward } from ${JSON.stringify(new URL('./models/reference.mjs', import.meta.url).href)};
  const mha = await init({ threads: 1 });
  const m = tinyModel('llama', { seed: 31, tie: false, config: { vocab_size: 250007 }, ...(${JSON.stringify(weightType)} === 'int8' ? { int8Exact: 'outChannel' } : {}) });
  const weights = parseSafetensors(m.files[0].bytes);
  const before = mha.stats().wasmMemoryBytes;
  const model = await loadModel(mha, { config: m.config, weights, weightType: ${JSON.stringify(weightType)} });
  const growth = mha.stats().wasmMemoryBytes - before, held = model.memoryBytes;
  const ids = [3, 250006, 17, 125000, 42, 249999];  // rows of the first, a middle and the last block
  const got = model.forward(ids).data, ref = referenceForward({ config: m.config, tensors: m.tensors, ids }).data;
  let err = 0, max = 0;
  for (let i = 0; i < ref.length; i++) err = Math.max(err, Math.abs(got[i] - ref[i])), max = Math.max(max, Math.abs(ref[i]));
  console.log(JSON.stringify({ growth, held, err: err / max, n: got.length }));
`;

test('a 250k-token vocabulary loads in blocks of rows: the heap grows by about what the model holds, logits equal the reference', { timeout: 120000 }, async () => {
  const { spawn } = await import('node:child_process');
  const run = (script) => new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: new URL('..', import.meta.url) });
    let out = '', err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out.trim())) : reject(new Error(`exit ${code}: ${err}`))));
  });
  const MiB = 2 ** 20;
  for (const [weightType, bound] of [['f32', 1e-4], ['int8', 2e-2]]) {
    const r = await run(bigVocabRun(weightType));
    assert.equal(r.n, 6 * 250007);
    assert.ok(r.err <= bound, `${weightType}: logits off by ${r.err} of max |logit|`);
    // The float32 table alone is 250007 x 48 x 4 bytes = 45.8 MiB.
    assert.ok(r.growth <= r.held + 8 * MiB, `${weightType}: the heap grew by ${(r.growth / MiB).toFixed(1)} MiB for ${(r.held / MiB).toFixed(1)} MiB of weights`);
  }
});

// Model.setTokenRows / setHeadRows: the tables in pieces of rows make the model the whole tables
// make (the float64 reference's logits), in both APIs; pieces out of order, of a wrong size or
// type, or a head the model does not have, are refused by name, and the model keeps working.
test('Model.setTokenRows and setHeadRows: tables in pieces equal the whole tables; bad pieces are named', async () => {
  const { init: initWorker } = await import('mha-wasm/worker');
  const worker = await initWorker({ threads: 1 });
  try {
    const m = tinyModel('llama', { seed: 33, tie: false });
    const ids = [5, 1, 70, 3, m.config.vocab_size - 1];
    const ref = referenceForward({ config: m.config, tensors: m.tensors, ids });
    const V = m.config.vocab_size, H = m.config.hidden_size;
    for (const api of [mha, worker]) {
      const what = api === worker ? 'worker' : 'main';
      const model = await loadModel(api, { config: m.config, weights: weightsOf(m) });
      // The same checkpoint into a second core Model: everything from the loaded one's plan, but the tables in pieces.
      const core = new api.Model(model.modelOptions);
      const t = (name) => m.tensors[name].data;
      await core.setEmbeddings({});
      const pieces = [16, 24, V - 40];
      await assert.rejects(async () => core.setTokenRows(8, t('model.embed_tokens.weight').subarray(0, 8 * H)), { name: 'RangeError', message: /Model\.setTokenRows: rows come in order: first must be 0 \(to begin the table again\), got 8/ });
      for (const [name, put] of [['model.embed_tokens.weight', 'setTokenRows'], ['lm_head.weight', 'setHeadRows']]) {
        let first = 0;
        for (const n of pieces) {
          await core[put](first, t(name).slice(first * H, (first + n) * H));
          first += n;
        }
      }
      for (let l = 0; l < m.config.num_hidden_layers; l++) {
        const p = `model.layers.${l}`;
        await core.setBlock(l, { norm1Weight: t(`${p}.input_layernorm.weight`), norm2Weight: t(`${p}.post_attention_layernorm.weight`),
          attention: Object.fromEntries(['q_proj', 'k_proj', 'v_proj', 'o_proj'].map((n) => [`${n}.weight`, t(`${p}.self_attn.${n}.weight`)])),
          feedForward: Object.fromEntries(['gate_proj', 'up_proj', 'down_proj'].map((n) => [`${n}.weight`, t(`${p}.mlp.${n}.weight`)])) });
      }
      await core.setFinalNorm({ weight: t('model.norm.weight') });
      // The loaded model's positions for one sequence are 0..L-1, as forward's without positionIds.
      const got = (await core.forward(Int32Array.from(ids))).output;
      assert.ok(maskedRelErr(got.data, ref.data, null, V) <= TOL, `${what}: pieces give the reference's logits`);
      // Refusals, by name; the model keeps its tables.
      const rows = (n) => new Float32Array(n * H).fill(0.5);
      await assert.rejects(async () => core.setTokenRows(16, rows(8)), { name: 'RangeError', message: /first must be 0 \(to begin the table again\), got 16/ }, what);
      await assert.rejects(async () => core.setTokenRows(0, rows(12)), { name: 'RangeError', message: /a piece other than the table's last must be a multiple of 8 rows, got 12/ }, what);
      await assert.rejects(async () => core.setTokenRows(0, new Float32Array(H + 1)), { name: 'RangeError', message: /rows holds 49 floats, not a positive number of rows of 48/ }, what);
      await assert.rejects(async () => core.setTokenRows(V - 8, rows(16)), { name: 'RangeError', message: /go past the vocabulary's/ }, what);
      await assert.rejects(async () => core.setTokenRows(0, new Float64Array(8 * H)), { name: 'TypeError', message: /Model\.setTokenRows: rows must be a Float32Array/ }, what);
      await assert.rejects(async () => core.setTokenRows(-1, rows(8)), { name: 'RangeError', message: /first must be a non-negative integer/ }, what);
      assert.ok(maskedRelErr((await core.forward(Int32Array.from(ids))).output.data, ref.data, null, V) <= TOL, `${what}: still the same model`);
      // A table begun again and not finished: forward says which rows are missing.
      await core.setHeadRows(0, rows(8));
      await assert.rejects(async () => core.forward(Int32Array.from(ids)), { message: /setHeadRows \(rows 8\.\.\d+\)/ }, what);
      core.dispose();
      const tied = new api.Model({ ...model.modelOptions, head: 'tied' });
      await assert.rejects(async () => tied.setHeadRows(0, rows(8)), { name: 'TypeError', message: /Model\.setHeadRows: the model was created with head: 'tied' \(the token table is the head\)/ }, what);
      tied.dispose();
      model.dispose();
    }
  } finally {
    worker.terminate();
  }
});
