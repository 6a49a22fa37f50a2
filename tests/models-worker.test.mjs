// mha-wasm/models through the worker API (init from 'mha-wasm/worker'): the same results as
// the float64 references, methods returning Promises (refusals as rejections), generation
// streaming token by token out of the worker while this thread stays free, two generations
// interleaved, and embed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { init as initWorker } from 'mha-wasm/worker';
import { parseSafetensors } from 'mha-wasm';
import { loadModel } from 'mha-wasm/models';
import { tinyModel } from './models/tiny.mjs';
import { greedyReference, referenceForward, maskedRelErr, sentenceEmbeddingReference, leftPad } from './models/reference.mjs';

const weightsOf = (m) => m.files.map((f) => parseSafetensors(f.bytes));

for (const threads of [1, 2]) {
  test(`worker (threads ${threads}): forward, greedy generation and embed equal the references; methods return Promises`, async () => {
    const mha = await initWorker({ threads });
    for (const arch of ['gpt2', 'llama', 'qwen2', 'mistral']) {
      const m = tinyModel(arch, { seed: 17, shards: 2, dtype: arch === 'llama' ? 'BF16' : 'F32' });
      const model = await loadModel(mha, { config: m.config, weights: weightsOf(m) });
      const rows = [[7, 23, 41, 5, 60], [44, 9]];
      const p = leftPad(rows, model.padTokenId);
      const pending = model.forward(rows, { needWeights: true });
      assert.ok(pending instanceof Promise);
      const out = await pending;
      const ref = referenceForward({ config: m.config, tensors: m.tensors, ids: { data: p.ids, dims: p.dims }, attentionMask: { data: p.attentionMask, dims: p.dims } });
      assert.ok(maskedRelErr(out.data, ref.data, p.attentionMask, ref.dims[2]) <= 1e-4, arch);
      assert.equal(out.attentions.length, model.numLayers);
      const g = greedyReference({ config: m.config, tensors: m.tensors, prompts: rows, maxNewTokens: 6, eosTokenId: null });
      const got = [];
      for await (const t of model.generate(rows, { maxNewTokens: 6 })) got.push(t);
      for (let s = 0; s < g.steps.length && g.margins[s].every((x) => x > 1e-3); s++) assert.deepEqual(got[s], g.steps[s], `${arch} step ${s}`);
      // a refusal is a rejection, and the model keeps working
      await assert.rejects(model.forward([1, model.vocabSize]), RangeError);
      const cache = model.createCache({ maxLength: 8 });
      await model.forward([1, 2, 3], { cache });
      assert.equal(cache.length, 3);
      cache.dispose();
      model.dispose();
    }
    const b = tinyModel('bert', { seed: 2 });
    const bert = await loadModel(mha, { config: b.config, weights: weightsOf(b) });
    const e = await bert.embed([[7, 23, 41], [44, 9, 8, 12]], { pooling: 'mean', normalize: true });
    const ids = { data: Int32Array.of(7, 23, 41, 0, 44, 9, 8, 12), dims: [2, 4] }, mask = { data: Int32Array.of(1, 1, 1, 0, 1, 1, 1, 1), dims: [2, 4] };
    const ref = sentenceEmbeddingReference({ config: b.config, tensors: b.tensors, ids, attentionMask: mask, pooling: 'mean', normalize: true });
    assert.ok(maskedRelErr(e.data, ref.data, null, 32) <= 1e-4);
    bert.dispose();
    await assert.rejects(loadModel(mha, { config: { ...b.config, architectures: ['RobertaModel'] }, weights: {} }), /RobertaModel/);
    mha.terminate();
  });
}

test('worker: tokens stream out one step at a time while this thread keeps running; two generations interleave correctly', async () => {
  const mha = await initWorker({ threads: 2 });
  const m = tinyModel('llama', { seed: 5, config: { hidden_size: 256, intermediate_size: 512, num_hidden_layers: 4, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 32 } });
  const model = await loadModel(mha, { config: m.config, weights: weightsOf(m) });
  let ticks = 0;
  const timer = setInterval(() => { ticks++; }, 0);
  const arrivals = [];
  // Enough steps that the ones after the first outlast the first token's own start-up (with 40, a
  // fast machine's steps came close to it).
  const N = 120;
  const t0 = performance.now();
  for await (const t of model.generate([7, 23, 41], { maxNewTokens: N })) arrivals.push([performance.now() - t0, ticks, t]);
  clearInterval(timer);
  assert.equal(arrivals.length, N);
  assert.ok(arrivals.at(-1)[1] > arrivals[0][1], `the timer ran during generation (${arrivals[0][1]} -> ${arrivals.at(-1)[1]})`);
  assert.ok(arrivals[0][0] < arrivals.at(-1)[0] / 2, 'the first token came out long before the last');
  // two iterators at once on one worker, each with its own cache: each gives what it gives alone
  const alone = async (ids, o) => { const out = []; for await (const t of model.generate(ids, o)) out.push(t); return out; };
  const a = await alone([7, 23, 41], { maxNewTokens: 10 }), b = await alone([[5, 6], [9, 10, 11]], { maxNewTokens: 10, temperature: 0.8, seed: 3 });
  const ia = model.generate([7, 23, 41], { maxNewTokens: 10 }), ib = model.generate([[5, 6], [9, 10, 11]], { maxNewTokens: 10, temperature: 0.8, seed: 3 });
  const ga = [], gb = [];
  for (let i = 0; i < 10; i++) {
    const [x, y] = await Promise.all([ia.next(), ib.next()]);
    ga.push(x.value);
    gb.push(y.value);
  }
  assert.deepEqual(ga, a);
  assert.deepEqual(gb, b);
  assert.deepEqual(arrivals.map((x) => x[2]), (await alone([7, 23, 41], { maxNewTokens: N })));
  model.dispose();
  mha.terminate();
});

test('worker: cached forwards issued without awaiting follow each other (the padded first step\'s mask and length count), and one after a failed call is refused', async () => {
  const mha = await initWorker({ threads: 1 });
  const m = tinyModel('llama', { seed: 5 });
  const model = await loadModel(mha, { config: m.config, weights: weightsOf(m) });
  const V = model.vocabSize;
  const ids = Int32Array.of(0, 7, 23, 41, 5), mask = Int32Array.of(0, 1, 1, 1, 1);
  // The float64 reference of the whole sequence, the pad masked; the last two positions are step 2's.
  const ref = referenceForward({ config: m.config, tensors: m.tensors, ids: { data: ids, dims: [1, 5] }, attentionMask: { data: mask, dims: [1, 5] } });
  const cache = await model.createCache({ maxLength: 8 });
  const p1 = model.forward({ data: ids.subarray(0, 3), dims: [1, 3] }, { cache, attentionMask: { data: mask.subarray(0, 3), dims: [1, 3] } });
  const p2 = model.forward({ data: ids.subarray(3), dims: [1, 2] }, { cache });  // sent before p1 answers
  const [a, b] = await Promise.all([p1, p2]);
  assert.ok(maskedRelErr(a.data, ref.data.subarray(0, 3 * V), mask.subarray(0, 3), V) <= 1e-4, 'step 1');
  assert.ok(maskedRelErr(b.data, ref.data.subarray(3 * V), null, V) <= 1e-4, 'step 2, issued before step 1 answered');
  assert.equal(cache.length, 5);
  // A call that fails (past the cache's maxLength) makes the one queued behind it fail too, named, not run on a wrong state.
  const bad = model.forward([1, 2, 3, 4], { cache });
  const next = model.forward([1], { cache });
  await assert.rejects(bad, RangeError);
  await assert.rejects(next, /an earlier forward on this cache failed/);
  assert.equal(cache.length, 5);
  const ok = await model.forward([9], { cache });  // the cache is as the last good call left it
  assert.equal(ok.dims.join(), '1,1,' + V);
  cache.dispose();
  model.dispose();
  mha.terminate();
});
