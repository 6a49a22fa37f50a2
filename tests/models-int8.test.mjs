// mha-wasm/models with weightType 'int8' and 'f16': models whose matrices int8 represents
// exactly (tinyModel's int8Exact), so only the activations' precision counts. Logits stay
// within 2e-2 x max |f32 logit| of the float64 reference (f16: 1e-3), greedy generation with
// caches matches the reference while its top two logits are clearly apart, the weights take
// a quarter (a half) of the bytes, and an int8 checkpoint loads at weightType 'int8'.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { init, parseSafetensors, quantizeSafetensors } from 'mha-wasm';
import { loadModel } from 'mha-wasm/models';
import { tinyModel, writeSafetensors } from './models/tiny.mjs';
import { greedyReference, referenceForward } from './models/reference.mjs';
import { relToMax } from './reference.mjs';
import { modelConfig, modelWeightBytes } from '../bindings/model.js';

const DECODERS = ['gpt2', 'llama', 'qwen2', 'mistral'];
const weightsOf = (m) => m.files.map((f) => parseSafetensors(f.bytes));

async function collect(iter) {
  const out = [];
  for await (const t of iter) out.push(t);
  return out;
}


// Both int8 kernels (init's int8Dot); a SIMD128 build has only dot_i16x8 and runs it for either.
for (const threads of [1, 2]) for (const int8Dot of ['dot_i16x8', 'relaxed_dot_i8x16_i7x16']) {
  test(`threads=${threads}, int8Dot ${int8Dot}: int8 and f16 models: logits near the float64 reference, greedy tokens match, memory shrinks`, async () => {
    const mha = await init({ threads, int8Dot });
    for (const arch of DECODERS) {
      const m = tinyModel(arch, { seed: 21, int8Exact: 'outChannel' });
      const ids = [3, 17, 42, 8, 99, 5, 23, 61];
      const ref = referenceForward({ config: m.config, tensors: m.tensors, ids });
      const f32 = await loadModel(mha, { config: m.config, weights: weightsOf(m) });
      const bytes32 = f32.memoryBytes;
      f32.dispose();
      for (const [weightType, bound] of [['int8', 2e-2], ['f16', 1e-3]]) {
        const model = await loadModel(mha, { config: m.config, weights: weightsOf(m), weightType });
        const logits = model.forward(ids);
        const err = relToMax(logits.data, ref.data);
        assert.ok(err <= bound, `${arch} ${weightType}: logits off by ${err.toExponential(2)} of max |logit| (bound ${bound})`);
        assert.ok(model.memoryBytes < bytes32 * (weightType === 'int8' ? 0.5 : 0.75), `${arch} ${weightType}: ${model.memoryBytes} bytes vs ${bytes32} for f32`);
        // Greedy with caches: the reference's tokens while its top two logits are apart by
        // more than this step's error can move them.
        const greedy = greedyReference({ config: m.config, tensors: m.tensors, prompts: ids, maxNewTokens: 6, eosTokenId: null });
        const got = await collect(model.generate(ids, { maxNewTokens: 6, stopTokens: [] }));
        const apart = 4 * bound * Math.max(...greedy.logits.map((l) => Math.max(...Array.from(l, Math.abs))));
        for (let s = 0; s < greedy.steps.length && greedy.margins[s][0] > apart; s++)
          assert.equal(got[s], greedy.steps[s][0], `${arch} ${weightType}: step ${s}`);
        model.dispose();
      }
    }
  });
}

test('an int8 checkpoint (quantizeSafetensors, with the config) loads at weightType int8 as the float checkpoint quantized at load', async () => {
  // Random weights: both ways quantize each output channel once, to the same q and scale; GPT-2's
  // Conv1D matrices ([in, out]) are quantized by column (scale [1, out]) given its config.
  const mha = await init({ threads: 1 });
  for (const arch of ['llama', 'gpt2']) {
    const m = tinyModel(arch, { seed: 22 });
    const q = parseSafetensors(quantizeSafetensors(m.files[0].bytes, { type: 'int8', config: m.config }));
    const c = `${m.prefix}h.0.attn.c_attn.weight`;
    if (arch === 'gpt2') assert.deepEqual(q[`${c}_scale`].dims, [1, q[c].dims[1]]);
    const ids = [1, 2, 3, 4, 5];
    const a = await loadModel(mha, { config: m.config, weights: q, weightType: 'int8' });
    const b = await loadModel(mha, { config: m.config, weights: weightsOf(m), weightType: 'int8' });
    const la = a.forward(ids).data, lb = b.forward(ids).data;
    assert.ok(relToMax(la, lb) < 1e-6, `${arch}: the same int8 weights either way (${relToMax(la, lb)})`);
    a.dispose();
    b.dispose();
  }
});

test('a tied checkpoint that also stores lm_head.weight loads after quantizeSafetensors (the stored head and its scale are ignored)', async () => {
  const mha = await init({ threads: 1 });
  for (const arch of ['qwen2', 'gpt2']) {
    const m = tinyModel(arch, { seed: 23, int8Exact: 'outChannel' });
    const table = Object.keys(m.tensors).find((n) => /(embed_tokens|wte)\.weight$/.test(n));
    const withHead = { ...m.tensors, 'lm_head.weight': m.tensors[table] };
    const q = parseSafetensors(quantizeSafetensors(writeSafetensors(withHead), { type: 'int8', config: m.config }));
    assert.ok(q['lm_head.weight_scale'], `${arch}: the stored head was quantized`);
    const ids = [3, 1, 4, 1, 5];
    const ref = referenceForward({ config: m.config, tensors: m.tensors, ids });
    for (const weightType of ['f32', 'int8']) {
      const model = await loadModel(mha, { config: m.config, weights: q, weightType });
      const err = relToMax(model.forward(ids).data, ref.data);
      assert.ok(err <= { f32: 1e-4, int8: 2e-2 }[weightType], `${arch} ${weightType}: logits off by ${err}`);
      model.dispose();
    }
  }
});

test('the token table is stored as weightType: a tied head is its only copy, an untied model packs one of its own (logits and memoryBytes)', async () => {
  const mha = await init({ threads: 1 });
  const ids = [3, 17, 42, 8];
  for (const weightType of ['f32', 'int8', 'f16']) {
    const bytes = {};
    for (const tie of [true, false]) {
      const m = tinyModel('qwen2', { seed: 22, int8Exact: 'outChannel', tie });
      const model = await loadModel(mha, { config: m.config, weights: weightsOf(m), weightType });
      assert.equal(model.modelOptions.head, tie ? 'tied' : 'untied');
      const ref = referenceForward({ config: m.config, tensors: m.tensors, ids });
      const err = relToMax(model.forward(ids).data, ref.data);
      assert.ok(err <= { f32: 1e-4, int8: 2e-2, f16: 1e-3 }[weightType], `tie ${tie} ${weightType}: logits off by ${err.toExponential(2)}`);
      bytes[tie] = { bytes: model.memoryBytes, V: model.vocabSize, H: model.hiddenSize };
      model.dispose();
    }
    const { V, H } = bytes[true], up8 = Math.ceil(V / 8) * 8;
    // f32: the float32 table and a packed copy of it (tied) or the table and lm_head (untied): the
    // same bytes. f16 / int8: the untied model's table packed as weightType is the difference.
    const table = { f32: 0, f16: 2 * H * up8, int8: H * up8 + 4 * up8 }[weightType];
    assert.equal(bytes[false].bytes - bytes[true].bytes, table, `${weightType}: ${bytes[false].bytes} untied vs ${bytes[true].bytes} tied`);
  }
});

// loadModel refuses a model that cannot fit before allocating anything, from modelWeightBytes
// (the configuration alone); memoryBytes is what the core holds once the weights are set. The
// estimate counts every matrix and table exactly and may only over-count float32 vectors that
// an architecture does not have (biases, QK-norm weights, rotary frequencies): so its excess is
// the same for every weight type and head, and below those vectors' bytes.
test('the size check before allocation (modelWeightBytes) is what the weights take, for every weight type and head', async () => {
  for (const int8Dot of ['dot_i16x8', 'relaxed_dot_i8x16_i7x16']) await sizeCheck(await init({ threads: 1, int8Dot }));
});

async function sizeCheck(mha) {
  for (const arch of ['bert', ...DECODERS]) {
    let excess = null;
    for (const tie of [true, false])
      for (const weightType of ['f32', 'f16', 'int8']) {
        const m = tinyModel(arch, { seed: 3, tie });
        const model = await loadModel(mha, { config: m.config, weights: weightsOf(m), weightType });
        const cfg = modelConfig(model.modelOptions), what = `${arch} tie ${tie} ${weightType}`;
        assert.equal(cfg.weightType, weightType, `${what}: modelOptions carry the weight type`);
        const over = modelWeightBytes(cfg, mha.features.int8Dot) - model.memoryBytes;
        excess ??= over;
        assert.equal(over, excess, `${what}: the estimate is ${over} bytes over, ${excess} for the first load of ${arch}`);
        const a = cfg.attention, H = cfg.hiddenSize, nq = a.numHeads * a.headDim, nk = a.numKvHeads * a.headDim, F = cfg.feedForward.dimFeedforward;
        const vectors = cfg.numLayers * (2 * (nq + 2 * nk + 8) + 6 * H + 3 * (F + 8) + 2 * a.numHeads + 2 * a.headDim + (a.rope ? a.rope.dim : 0)) + 4 * H;
        assert.ok(over >= 0 && over <= 4 * vectors, `${what}: the estimate is ${over} bytes over (float32 vectors: ${4 * vectors} bytes)`);
        model.dispose();
      }
  }
}
