// mha-wasm/models: generate() and cached forward() against the float64 references:
// greedy generation with KV caches equals the argmax of full forwards (greedyReference) for
// every decoder, one prompt and left-padded batches, stop tokens, windows longer than they
// reach; cached steps equal the full forward; sampling draws from the distribution HF's
// warpers (repetition penalty, temperature, top-k, top-p) give, reproducibly by seed; bad
// arguments named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { init, parseSafetensors } from 'mha-wasm';
import { loadModel } from 'mha-wasm/models';
import { seededRandom, tokenChooser, readGenerateOptions } from '../bindings/generate.js';
import { tinyModel, writeSafetensors } from './models/tiny.mjs';
import { greedyReference, referenceForward, maskedRelErr, leftPad } from './models/reference.mjs';

const DECODERS = ['gpt2', 'llama', 'qwen2', 'mistral'];
const builds = [['simd', await init({ threads: 1 })], ['threads', await init({ threads: 2 })]];
const [, mha] = builds[0];
const weightsOf = (m) => m.files.map((f) => parseSafetensors(f.bytes));
const load = (api, m) => loadModel(api, { config: m.config, weights: weightsOf(m) });

async function collect(iter) {
  const out = [];
  for await (const t of iter) out.push(t);
  return out;
}

/**
 * Our steps against the reference's, step by step while the reference's top two logits are
 * clearly apart in every row (past a near tie, float32 may rightly pick the other token).
 * Returns how many steps were compared.
 */
function sameGreedy(got, ref, what, single) {
  let n = 0;
  for (let s = 0; s < ref.steps.length; s++) {
    if (ref.margins[s].some((m) => m < 1e-3)) break;
    assert.ok(s < got.length, `${what}: stopped after ${got.length} steps, the reference went on`);
    assert.deepEqual(got[s], single ? ref.steps[s][0] : ref.steps[s], `${what}: step ${s}`);
    n++;
  }
  if (n === ref.steps.length) assert.equal(got.length, ref.steps.length, `${what}: steps`);
  return n;
}

for (const [build, api] of builds) {
  test(`${build}: greedy generation with caches equals the argmax of full forwards, one prompt and a left-padded batch`, async () => {
    let compared = 0;
    for (const arch of DECODERS) {
      const m = tinyModel(arch, { seed: 21 });
      const model = await load(api, m);
      const prompt = [7, 23, 41, 5, 60];
      const ref = greedyReference({ config: m.config, tensors: m.tensors, prompts: prompt, maxNewTokens: 10, eosTokenId: null });
      compared += sameGreedy(await collect(model.generate(prompt, { maxNewTokens: 10 })), ref, `${arch} one prompt`, true);
      const rows = [[7, 23, 41, 5, 60, 12, 33], [44, 9], [71, 15, 28, 3]];
      const refB = greedyReference({ config: m.config, tensors: m.tensors, prompts: rows, maxNewTokens: 8, eosTokenId: null });
      const batch = await collect(model.generate(rows, { maxNewTokens: 8 }));
      compared += sameGreedy(batch, refB, `${arch} batch`, false);
      // the same batch as { data, dims } with the caller's mask
      const p = leftPad(rows, model.padTokenId);
      assert.deepEqual(await collect(model.generate({ data: p.ids, dims: p.dims }, { maxNewTokens: 8, attentionMask: { data: p.attentionMask, dims: p.dims } })), batch);
      model.dispose();
    }
    assert.ok(compared >= 40, `only ${compared} steps compared (too many near ties)`);
  });
}

test('windows: Mistral and Qwen2 (use_sliding_window from max_window_layers) generate past the window as the reference does', async () => {
  for (const [arch, config] of [['mistral', { sliding_window: 3 }], ['qwen2', { use_sliding_window: true, sliding_window: 3, max_window_layers: 1 }],
    ['qwen2', { use_sliding_window: true, sliding_window: 2, max_window_layers: 0 }]]) {
    const m = tinyModel(arch, { seed: 8, config });
    const model = await load(mha, m);
    const rows = [[7, 23, 41, 5, 60, 12], [44, 9, 8]];
    const ref = greedyReference({ config: m.config, tensors: m.tensors, prompts: rows, maxNewTokens: 10, eosTokenId: null });
    assert.ok(sameGreedy(await collect(model.generate(rows, { maxNewTokens: 10 })), ref, `${arch} ${JSON.stringify(config)}`, false) >= 3);
    model.dispose();
  }
});

test('stop tokens: config.eos_token_id (a list for Llama) and the caller\'s stopTokens end a row; finished rows give the pad id', async () => {
  const m = tinyModel('llama', { seed: 21 });
  const model = await load(mha, m);
  const rows = [[7, 23, 41, 5, 60, 12, 33], [44, 9]];
  const free = greedyReference({ config: m.config, tensors: m.tensors, prompts: rows, maxNewTokens: 8, eosTokenId: null });
  const stopAt = free.steps[2][0];  // row 0's third token ends it
  const ref = greedyReference({ config: m.config, tensors: m.tensors, prompts: rows, maxNewTokens: 8, eosTokenId: [...m.config.eos_token_id, stopAt] });
  const got = await collect(model.generate(rows, { maxNewTokens: 8, stopTokens: [stopAt] }));
  sameGreedy(got, ref, 'stopTokens', false);
  assert.equal(got[3][0], model.padTokenId, 'row 0 gives the pad id once it stopped');
  // every row stopping ends the iterator
  const row1 = free.steps.map((st) => st[1]), stop1 = row1[3];
  const alone = await collect(model.generate(rows[1], { maxNewTokens: 8, stopTokens: [stop1] }));
  assert.deepEqual(alone, row1.slice(0, row1.indexOf(stop1) + 1));
  // config.eos_token_id is a list: its second id stops too
  const eos = m.config.eos_token_id[1];
  const cfg = { ...m.config, eos_token_id: [m.config.eos_token_id[0], free.steps[0][1]] };
  const model2 = await loadModel(mha, { config: cfg, weights: weightsOf(m) });
  assert.deepEqual(await collect(model2.generate(rows[1], { maxNewTokens: 8 })), [free.steps[0][1]]);
  assert.ok(eos !== undefined);
  model.dispose();
  model2.dispose();
});

test('cached forward: prompt then steps (full-length or new-column masks) equal the full forward of the padded batch', async () => {
  for (const arch of DECODERS) {
    const m = tinyModel(arch, { seed: 31 });
    const model = await load(mha, m);
    const rows = [[7, 23, 41, 5, 60], [44, 9, 71]];
    const p = leftPad(rows, model.padTokenId);
    const [B, L] = p.dims, V = model.vocabSize;
    const steps = [[3, 4], [5, 6], [8, 9]];
    for (const form of ['full', 'new']) {
      const cache = model.createCache({ maxLength: 16, batch: B });
      const first = model.forward({ data: p.ids, dims: [B, L] }, { attentionMask: { data: p.attentionMask, dims: [B, L] }, cache });
      let ids = Array.from(p.ids), mask = Array.from(p.attentionMask), n = L;
      const refOf = () => referenceForward({ config: m.config, tensors: m.tensors, ids: { data: ids, dims: [B, n] }, attentionMask: { data: mask, dims: [B, n] } });
      assert.ok(maskedRelErr(first.data, refOf().data, p.attentionMask, V) <= 1e-4, `${arch} prompt`);
      for (const s of steps) {
        ids = rows.flatMap((_, b) => [...ids.slice(b * n, (b + 1) * n), s[b]]);
        mask = rows.flatMap((_, b) => [...mask.slice(b * n, (b + 1) * n), 1]);
        n++;
        const am = form === 'full' ? { data: Int32Array.from(mask), dims: [B, n] } : { data: Int32Array.of(1, 1), dims: [B, 1] };
        const out = model.forward({ data: Int32Array.from(s), dims: [B, 1] }, { attentionMask: am, cache });
        const ref = refOf();
        const last = new Float64Array(B * V);
        for (let b = 0; b < B; b++) last.set(ref.data.subarray((b * n + n - 1) * V, (b * n + n) * V), b * V);
        assert.deepEqual(out.dims, [B, 1, V]);
        assert.ok(maskedRelErr(out.data, last, null, V) <= 1e-4, `${arch} ${form} step ${n}`);
      }
      assert.equal(cache.length, L + steps.length);
      cache.dispose();
    }
    // lastOnly on a prompt: each row's last logits
    const lo = model.forward(rows, { lastOnly: true });
    const full = model.forward(rows);
    assert.deepEqual(lo.dims, [2, 1, V]);
    for (let b = 0; b < 2; b++) assert.deepEqual(lo.data.subarray(b * V, (b + 1) * V), full.data.subarray((b * L + L - 1) * V, (b * L + L) * V));
    model.dispose();
  }
});

// ---------------------------------------------------------------------------------
// Sampling

/** HF's warpers in float64, independently: the distribution sampling draws from. */
function hfDistribution(logits, seen, { temperature = 1, topK, topP, repetitionPenalty = 1 }) {
  const V = logits.length;
  let s = Array.from(logits, (x, t) => (seen.has(t) ? (x < 0 ? x * repetitionPenalty : x / repetitionPenalty) : x));
  s = s.map((x) => x / temperature);
  if (topK !== undefined) {
    const kth = [...s].sort((a, b) => b - a)[Math.min(topK, V) - 1];
    s = s.map((x) => (x < kth ? -Infinity : x));
  }
  const soft = (a) => { const m = Math.max(...a); const e = a.map((x) => Math.exp(x - m)); const z = e.reduce((x, y) => x + y); return e.map((x) => x / z); };
  if (topP !== undefined) {
    const p = soft(s), order = [...p.keys()].sort((a, b) => p[a] - p[b]);
    let cum = 0;
    const drop = new Set();
    order.forEach((t, i) => { cum += p[t]; if (cum <= 1 - topP && i < V - 1) drop.add(t); });
    s = s.map((x, t) => (drop.has(t) ? -Infinity : x));
  }
  return soft(s);
}

test('sampling draws from the distribution of HF\'s repetition penalty, temperature, top-k and top-p', () => {
  const V = 12, logits = Float32Array.from({ length: V }, (_, t) => Math.sin(t * 1.7) * 2 + (t % 3) * 0.3);
  const seen = new Set([1, 4, 7]), seenArr = new Uint8Array(V);
  for (const t of seen) seenArr[t] = 1;
  const cases = [{ temperature: 1 }, { temperature: 0.5 }, { temperature: 2, topK: 4 }, { topP: 0.8 }, { temperature: 0.7, topK: 6, topP: 0.9, repetitionPenalty: 1.3 }, { topK: 1 }];
  for (const c of cases) {
    const opts = readGenerateOptions({ ...c, seed: 42 }, V);
    assert.equal(opts.sample, true);
    const pick = tokenChooser(opts), n = 40000, counts = new Array(V).fill(0);
    for (let i = 0; i < n; i++) counts[pick(logits, seenArr)]++;
    const p = hfDistribution(logits, seen, c);
    for (let t = 0; t < V; t++) {
      if (p[t] === 0) assert.equal(counts[t], 0, `${JSON.stringify(c)}: token ${t} is filtered out`);
      else assert.ok(Math.abs(counts[t] / n - p[t]) <= 5 * Math.sqrt((p[t] * (1 - p[t])) / n) + 1e-3, `${JSON.stringify(c)}: token ${t}: ${counts[t] / n} vs ${p[t]}`);
    }
  }
  // A temperature so small that scores / T overflow float64 is the limit of sampling: the argmax
  // (it drew the last token of the vocabulary every time); a repetition penalty so small that seen
  // scores overflow picks among those.
  const tiny = tokenChooser(readGenerateOptions({ temperature: 1e-308, seed: 1 }, V)), none = new Uint8Array(V);
  for (let i = 0; i < 50; i++) assert.equal(tiny(logits, none), logits.indexOf(Math.max(...logits)));
  const harsh = tokenChooser(readGenerateOptions({ repetitionPenalty: 1e-308, temperature: 1, seed: 1 }, V));
  for (let i = 0; i < 50; i++) assert.ok([...seen].filter((t) => logits[t] > 0).includes(harsh(logits, seenArr)));
  // greedy: the argmax after the penalty; temperature 0 is greedy
  for (const o of [{}, { temperature: 0, topK: 3 }, { repetitionPenalty: 5 }]) {
    const opts = readGenerateOptions(o, V);
    assert.equal(opts.sample, false);
    const p = hfDistribution(logits, seen, { repetitionPenalty: o.repetitionPenalty });
    assert.equal(tokenChooser(opts)(logits, seenArr), p.indexOf(Math.max(...p)));
  }
});

test('generate samples reproducibly by seed, as the reference\'s logits would make it (repetition penalty over the prompt and the output)', async () => {
  const m = tinyModel('qwen2', { seed: 13 });
  const model = await load(mha, m);
  const prompt = [7, 23, 41, 5];
  const o = { maxNewTokens: 12, temperature: 0.9, topK: 30, topP: 0.95, repetitionPenalty: 1.2, seed: 7 };
  const a = await collect(model.generate(prompt, o));
  assert.deepEqual(await collect(model.generate(prompt, o)), a, 'same seed, same tokens');
  assert.notDeepEqual(await collect(model.generate(prompt, { ...o, seed: 8 })), a, 'another seed, other tokens');
  // the same draws over the float64 reference's logits (full forwards)
  const pick = tokenChooser(readGenerateOptions(o, model.vocabSize)), seen = new Uint8Array(model.vocabSize);
  const ids = [...prompt];
  for (const t of prompt) seen[t] = 1;
  const eos = new Set([].concat(m.config.eos_token_id));
  const ref = [];
  for (let s = 0; s < o.maxNewTokens; s++) {
    const r = referenceForward({ config: m.config, tensors: m.tensors, ids });
    const V = r.dims[2], t = pick(Float32Array.from(r.data.subarray((ids.length - 1) * V)), seen);
    ref.push(t);
    seen[t] = 1;
    ids.push(t);
    if (eos.has(t)) break;
  }
  assert.deepEqual(a, ref);
  // topK 1 is greedy
  const greedy = await collect(model.generate(prompt, { maxNewTokens: 6 }));
  assert.deepEqual(await collect(model.generate(prompt, { maxNewTokens: 6, topK: 1, seed: 3 })), greedy);
  model.dispose();
});

test('onToken sees each step before the iterator yields it; breaking off frees the cache', async () => {
  const m = tinyModel('gpt2', { seed: 3 });
  const model = await load(mha, m);
  const live = mha.stats().liveLayers;
  const log = [];
  for await (const t of model.generate([[1, 2, 3], [4, 5]], { maxNewTokens: 5, onToken: (tok, step) => log.push(['on', step, tok]) })) {
    log.push(['yield', t]);
    assert.ok(Array.isArray(t) && t.length === 2);
  }
  assert.equal(log.length, 10);
  for (let i = 0; i < 5; i++) assert.deepEqual(log[2 * i + 1][1], log[2 * i][2]);
  let n = 0;
  for await (const t of model.generate([1, 2, 3], { maxNewTokens: 50 })) {
    assert.equal(typeof t, 'number');
    if (++n === 2) break;
  }
  assert.equal(mha.stats().liveLayers, live, 'the generation cache was freed');
  // A caller that takes exactly maxNewTokens tokens and never resumes the generator leaves no cache behind.
  const gen = model.generate([1, 2, 3], { maxNewTokens: 3, stopTokens: [] });
  for (let i = 0; i < 3; i++) {
    const r = await gen.next();
    if (r.done) break;
  }
  assert.equal(mha.stats().liveLayers, live, 'freed once the last token was handed out');
  // GPT-2's learned positions bound prompt + maxNewTokens
  assert.throws(() => model.generate([1, 2, 3], { maxNewTokens: 63 }), /3 prompt tokens and maxNewTokens 63 do not fit the model's 64 positions/);
  // The last new token is never fed back: 3 + 62 tokens need 64 positions, which fit.
  let last = 0;
  for await (const t of model.generate([1, 2, 3], { maxNewTokens: 62 })) last = t;
  assert.equal(typeof last, 'number');
  model.dispose();
});

test('bad arguments of forward, generate and embed are named; the model keeps working', async () => {
  const m = tinyModel('llama');
  const model = await load(mha, m);
  const V = model.vocabSize;
  const bad = [
    [() => model.generate([1, 2], { maxNewTokens: 0 }), RangeError, /maxNewTokens/],
    // A rotary model has no position table: what bounds maxNewTokens is the KV caches' memory, checked by generate() itself.
    [() => model.generate([1, 2], { maxNewTokens: 2 ** 31 }), RangeError, /generate: 2 prompt tokens and options\.maxNewTokens 2147483648 \(1 sequence\) needs .* of wasm memory for the KV caches/],
    [() => model.generate([[1, 2], [3]], { maxNewTokens: 1e8 }), RangeError, /options\.maxNewTokens 100000000 \(2 sequences\) needs .* GiB/],
    [() => model.generate([1, 2], { temperature: -1 }), RangeError, /temperature/],
    [() => model.generate([1, 2], { topP: 2 }), RangeError, /topP/],
    [() => model.generate([1, 2], { topK: 1.5 }), RangeError, /topK/],
    [() => model.generate([1, 2], { seed: 'x' }), TypeError, /seed/],
    [() => model.generate([1, 2], { stopTokens: [-1] }), RangeError, /stopTokens/],
    [() => model.generate([1, 2], { stopTokens: ['1'] }), TypeError, /stopTokens must hold token ids/],
    [() => model.generate([1, 2], { stopTokens: new DataView(new ArrayBuffer(4)) }), TypeError, /stopTokens must be an array of token ids, got a DataView/],
    [() => model.generate([1, 2], { onToken: 'x' }), TypeError, /onToken/],
    [() => model.generate([1, 2], { maxTokens: 3 }), TypeError, /unknown option "maxTokens"/],
    [() => model.generate([1, V]), RangeError, new RegExp(`^generate: ids\\[1\\] = ${V} is outside \\[0, ${V}\\)`)],
    [() => model.generate([]), RangeError, /^generate: ids is empty$/],
    [() => model.forward([]), RangeError, /^forward: ids is empty$/],
    [() => model.generate([[1, 2], 'x']), TypeError, /ids\[1\]/],
    [() => model.forward([1, 2.5]), TypeError, /^forward: ids\[1\] must be an integer/],
    [() => model.forward({ data: new Int32Array(5), dims: [2, 3] }), RangeError, /ids\.data has 5 entries/],
    [() => model.forward([[1, 2], [3]], { attentionMask: [[1, 1], [0, 1]] }), TypeError, /attentionMask given with rows/],
    [() => model.forward({ data: new Int32Array(4), dims: [2, 2] }, { attentionMask: { data: new Int32Array(6), dims: [2, 3] } }), RangeError, /attentionMask must be \[2, 2\]/],
    [() => model.forward({ data: new Int32Array(4), dims: [2, 2] }, { attentionMask: { data: Int32Array.of(1, 1, 2, 1), dims: [2, 2] } }), RangeError, /^forward: options\.attentionMask\.data\[2\] = 2/],
    [() => model.forward([1, 2], { tokenTypeIds: [0, 0] }), TypeError, /no token types/],
    [() => model.forward([1, 2], { positionIds: [0, 1, 2] }), RangeError, /positionIds must be \[1, 2\]/],
    [() => model.forward([[1, 2, 3], [4, 5]], { positionIds: [[0, 1, 2], [0, 1, 2]] }), RangeError, /positionIds given as rows must have the lengths of the rows of ids/],
    [() => model.forward([1, 2], { mask: [1, 1] }), TypeError, /unknown option "mask"/],
    // A detached buffer is named, not read as an empty row.
    ...[(a) => a, (a) => [Int32Array.of(1), a], (a) => ({ data: a, dims: [2] })].map((form) => {
      const a = Int32Array.of(1, 2);
      structuredClone(a.buffer, { transfer: [a.buffer] });
      return [() => model.forward(form(a)), TypeError, /ids(\[1\]|\.data)? is a view of a detached or out-of-bounds ArrayBuffer/];
    }),
    [() => { const a = Int32Array.of(1, 2); structuredClone(a.buffer, { transfer: [a.buffer] }); return model.forward([1, 2], { positionIds: a }); }, TypeError, /options\.positionIds is a view of a detached/],
    [() => model.embed([1, 2]), TypeError, /embed\(\) is for encoders/],
  ];
  for (const [fn, Err, re] of bad) assert.throws(fn, (e) => e instanceof Err && re.test(e.message), `${re}`);
  const bert = await load(mha, tinyModel('bert'));
  assert.throws(() => bert.generate([1, 2]), /no language-model head/);
  assert.throws(() => bert.embed([1, 2], { pooling: 'max' }), RangeError);
  assert.throws(() => bert.forward([1, 2], { tokenTypeIds: [0, 2] }), { name: 'RangeError', message: /^forward: options\.tokenTypeIds\[1\] = 2 is outside \[0, 2\)/ });
  assert.throws(() => bert.embed([[1, 2], []]), { name: 'RangeError', message: 'embed: ids[1] is empty' });
  assert.throws(() => bert.embed([1, 2], { tokenTypeIds: [0, 2] }), { name: 'RangeError', message: /^embed: options\.tokenTypeIds\[1\] = 2 is outside \[0, 2\)/ });
  const bc = bert.createCache({ maxLength: 4 });
  assert.throws(() => bert.forward([1, 2], { cache: bc }), { name: 'TypeError', message: /options\.cache given, but BertModel attends both ways and takes no cache/ });
  bc.dispose();
  const gone = model.createCache({ maxLength: 4 });
  gone.dispose();
  assert.throws(() => model.forward([1, 2], { cache: gone }), { message: 'forward: options.cache has been disposed' });
  // Rows of positionIds are padded as the rows of ids are (on the right for an encoder): row 1's tokens keep positions 0, 1.
  const E = bert.hiddenSize, alone = bert.forward([4, 5]).data;
  const rows = bert.forward([[1, 2, 3], [4, 5]], { positionIds: [[0, 1, 2], [0, 1]] }).data;
  assert.ok(Math.max(...alone.map((v, i) => Math.abs(v - rows[3 * E + i]))) < 1e-5, 'a ragged row with its own positionIds = the row alone');
  bert.dispose();
  // still fine
  const ref = referenceForward({ config: m.config, tensors: m.tensors, ids: [1, 2, 3] });
  assert.ok(maskedRelErr(model.forward([1, 2, 3]).data, ref.data, null, V) <= 1e-4);
  model.dispose();
});

test('a pad id outside the vocabulary (a checkpoint\'s pad_token_id or EOS) still pads: padded positions hold an id in range', async () => {
  const m = tinyModel('llama');
  const V = m.config.vocab_size;
  const model = await loadModel(mha, { config: { ...m.config, pad_token_id: V + 99 }, weights: weightsOf(m) });
  assert.equal(model.padTokenId, V + 99);  // reported as the config says
  const rows = model.forward([[1, 2, 3], [4, 5]]).data, alone = model.forward([4, 5]).data;
  // Row 1 is left-padded by one: its two real positions are the last two of three.
  assert.ok(Math.max(...alone.map((v, i) => Math.abs(v - rows[4 * V + i]))) < 1e-4, 'a padded row = the row alone');
  const ref = referenceForward({ config: m.config, tensors: m.tensors, ids: [4, 5] });
  assert.ok(maskedRelErr(alone, ref.data, null, V) <= 1e-4);
  let steps = 0;
  for await (const t of model.generate([[1, 2, 3], [4, 5]], { maxNewTokens: 3, stopTokens: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].filter((x) => x < V) })) {
    assert.equal(t.length, 2);
    steps++;
  }
  assert.ok(steps >= 1);
  model.dispose();
});

test('no token from NaN logits (a model with a non-finite weight) or from all -Infinity when sampling; seeds differ beyond 32 bits', async () => {
  const V = 4, none = new Uint8Array(V);
  for (const o of [{}, { temperature: 0.8, seed: 1 }, { topK: 2, seed: 1 }]) {
    const pick = tokenChooser(readGenerateOptions(o, V));
    for (const logits of [Float32Array.of(NaN, 1, 5, 2), Float32Array.of(1, NaN, 5, 2)])
      assert.throws(() => pick(logits, none), (e) => e instanceof RangeError && /the logits hold NaN \(token [01]\)/.test(e.message), JSON.stringify(o));
  }
  const dead = Float32Array.of(-Infinity, -Infinity, -Infinity, -Infinity);
  assert.throws(() => tokenChooser(readGenerateOptions({ temperature: 1, seed: 1 }, V))(dead, none), /every logit is -Infinity/);
  assert.equal(tokenChooser(readGenerateOptions({}, V))(dead, none), 0, 'greedy: the first, as torch.argmax');
  // A NaN weight loads at 'f32' (its logits are NaN): generate names the step and frees its cache.
  const m = tinyModel('llama', { seed: 31 });
  const tensors = { ...m.tensors }, name = `${m.prefix}layers.0.mlp.down_proj.weight`;
  tensors[name] = { ...tensors[name], data: Float32Array.from(tensors[name].data, (v, i) => (i === 5 ? NaN : v)) };
  const live = mha.stats().liveLayers;
  const model = await loadModel(mha, { config: m.config, weights: parseSafetensors(writeSafetensors(tensors)) });
  await assert.rejects(collect(model.generate([3, 4, 5], { maxNewTokens: 3 })), (e) => e instanceof RangeError && /^generate: step 0: the logits hold NaN/.test(e.message));
  await assert.rejects(collect(model.generate([[3, 4, 5], [6]], { maxNewTokens: 3, temperature: 1 })), /^RangeError: generate: step 0, row 0: the logits hold NaN/);
  model.dispose();
  assert.equal(mha.stats().liveLayers, live, 'the model and its caches were freed');
  // seeds: the bits above 32 count (1 and 2^32 + 1, -1 and 2^32 - 1 draw differently)
  const draws = (seed) => { const r = seededRandom(seed); return [r(), r(), r()]; };
  assert.notDeepEqual(draws(1), draws(2 ** 32 + 1));
  assert.notDeepEqual(draws(-1), draws(2 ** 32 - 1));
  assert.deepEqual(draws(2 ** 40 + 7), draws(2 ** 40 + 7));
});

test('dispose() during a generation ends it with an error that says so, in both APIs; nothing is left allocated', async () => {
  const { init: initWorker } = await import('mha-wasm/worker');
  const worker = await initWorker({ threads: 1 });
  try {
    const m = tinyModel('llama', { seed: 41 });
    for (const api of [mha, worker]) {
      const model = await load(api, m);
      const seen = [];
      await assert.rejects((async () => {
        for await (const t of model.generate([3, 4, 5], { maxNewTokens: 10 })) {
          seen.push(t);
          if (seen.length === 2) model.dispose();
        }
      })(), (e) => e.message === 'generate: the model was disposed during the generation', api === worker ? 'worker' : 'main');
      assert.ok(seen.length >= 2 && seen.length <= 3, `${seen.length} tokens`);
      assert.equal(model.disposed, true);
    }
    assert.equal((await worker.stats()).liveLayers, 0);
  } finally {
    worker.terminate();
  }
});

test('signal: an abort ends the generation with the signal\'s reason after the tokens already handed out, in both APIs; the cache is freed', async () => {
  const { init: initWorker } = await import('mha-wasm/worker');
  const worker = await initWorker({ threads: 1 });
  try {
    const m = tinyModel('llama', { seed: 43 });
    const greedy = greedyReference({ config: m.config, tensors: m.tensors, prompts: [3, 4, 5], maxNewTokens: 8, eosTokenId: null });
    for (const api of [mha, worker]) {
      const what = api === worker ? 'worker' : 'main';
      const model = await load(api, m);
      const live = (await api.stats()).liveLayers;
      // Aborted from onToken at step 2: the three tokens so far (the reference's), then the AbortError.
      // In this thread no step runs after the abort (the prompt and two steps); a worker has sent the
      // next one before the token is handed out.
      const ctl = new AbortController(), seen = [], proto = Object.getPrototypeOf(model), forward = proto.forward;
      let calls = 0;
      proto.forward = function (...args) { calls++; return forward.apply(this, args); };
      await assert.rejects((async () => {
        for await (const t of model.generate([3, 4, 5], { maxNewTokens: 8, stopTokens: [], signal: ctl.signal, onToken: (tok, step) => { if (step === 2) ctl.abort(); } })) seen.push(t);
      })(), { name: 'AbortError' }, what);
      proto.forward = forward;
      assert.deepEqual(seen, greedy.steps.slice(0, 3).map((s) => s[0]), what);
      assert.equal(calls, api === worker ? 4 : 3, `${what}: forward calls`);
      // An object like a signal (an old engine's, or a polyfill's: no throwIfAborted) will do.
      const like = { aborted: false, reason: undefined, addEventListener() {}, removeEventListener() {} };
      const few = [];
      await assert.rejects((async () => {
        for await (const t of model.generate([3, 4, 5], { maxNewTokens: 8, stopTokens: [], signal: like })) if (few.push(t) === 2) like.aborted = true;
      })(), { name: 'AbortError' }, what);
      assert.equal(few.length, 2, what);
      // Aborted by the loop itself, with a reason of its own, which comes out as it is.
      const ctl2 = new AbortController(), reason = new Error('the user pressed stop');
      let n = 0;
      await assert.rejects((async () => {
        for await (const t of model.generate([[3, 4, 5], [6, 7]], { maxNewTokens: 8, signal: ctl2.signal })) {
          assert.equal(t.length, 2);
          if (++n === 4) ctl2.abort(reason);
        }
      })(), (e) => e === reason, what);
      assert.equal(n, 4, what);
      // Already aborted: no token at all.
      await assert.rejects(model.generate([3, 4, 5], { signal: AbortSignal.abort() }).next(), { name: 'AbortError' }, what);
      // Not aborted: the whole generation, as without a signal.
      const all = [];
      for await (const t of model.generate([3, 4, 5], { maxNewTokens: 8, stopTokens: [], signal: new AbortController().signal })) all.push(t);
      assert.deepEqual(all, greedy.steps.map((s) => s[0]), what);
      assert.equal((await api.stats()).liveLayers, live, `${what}: every generation's cache was freed`);
      // Not a signal: named.
      for (const bad of ['stop', {}, { aborted: false }])
        assert.throws(() => model.generate([3, 4, 5], { signal: bad }), { name: 'TypeError', message: /generate: options.signal must be an AbortSignal, got/ }, what);
      model.dispose();
    }
  } finally {
    worker.terminate();
  }
});

test('generate({ cache }): a second turn continues the first one\'s cache as greedy generation over the whole conversation does (both APIs, one prompt and a batch, a sliding window); the cache is kept; refusals named', async () => {
  const { init: initWorker } = await import('mha-wasm/worker');
  const worker = await initWorker({ threads: 1 });
  try {
    let compared = 0;
    for (const arch of ['llama', 'gpt2', 'mistral']) {
      const m = tinyModel(arch, { seed: 52 });
      const ref = (prompts, n) => greedyReference({ config: m.config, tensors: m.tensors, prompts, maxNewTokens: n });
      for (const api of [mha, worker]) {
        const what = `${arch} ${api === worker ? 'worker' : 'main'}`;
        const model = await load(api, m), other = await load(api, m);
        const live = (await api.stats()).liveLayers;
        const eos = model.eosTokenIds;
        // One conversation: turn 1, then turn 2 feeds turn 1's last token (never fed back) and its own.
        const cache = await model.createCache({ maxLength: 40 });
        const p1 = [7, 23, 41, 5, 60], g1 = await collect(model.generate(p1, { maxNewTokens: 4, cache }));
        compared += sameGreedy(g1, ref(p1, 4), `${what}: turn 1`, true);
        assert.ok(!g1.some((t) => eos.includes(t)), `${what}: turn 1 ended early; pick another seed`);
        assert.equal(cache.length, p1.length + g1.length - 1, `${what}: the cache holds the prompt and the tokens but the last`);
        const p2 = [g1.at(-1), 11, 12], g2 = await collect(model.generate(p2, { maxNewTokens: 5, cache }));
        compared += sameGreedy(g2, ref([...p1, ...g1, 11, 12], 5), `${what}: turn 2`, true);
        assert.equal(cache.length, p1.length + g1.length + 2 + g2.length - 1);
        // A batch: rows left-padded in turn 1, the same length in turn 2 (the padding stays at the front).
        const rows = [[7, 23, 41, 5, 60, 12, 33], [44, 9]], cacheB = await model.createCache({ maxLength: 40, batch: 2 });
        const b1 = await collect(model.generate(rows, { maxNewTokens: 3, cache: cacheB }));
        assert.ok(!b1.flat().some((t) => eos.includes(t)), `${what}: a batch row ended early; pick another seed`);
        const turn2 = [[b1.at(-1)[0], 11, 12], [b1.at(-1)[1], 13, 14]];
        const b2 = await collect(model.generate(turn2, { maxNewTokens: 4, cache: cacheB }));
        const whole = rows.map((r, b) => [...r, ...b1.map((s) => s[b]), ...turn2[b].slice(1)]);
        compared += sameGreedy(b2, ref(whole, 4), `${what}: batch turn 2`, false);
        // truncate: a turn that keeps only the first positions (a template that wrote the last answer otherwise).
        // The batch's padding mask is kept for the positions that stay.
        await cache.truncate(p1.length + 2);
        const kept = [...p1, ...g1.slice(0, 2)], t3 = await collect(model.generate([21, 22], { maxNewTokens: 4, cache }));
        compared += sameGreedy(t3, ref([...kept, 21, 22], 4), `${what}: after truncate`, true);
        // truncate and reset keep their place among the forwards issued before and after them (a worker holds
        // a forward back until the one before it answers), and are refused while a generation uses the cache.
        const ordered = await model.createCache({ maxLength: 40 });
        const calls = [model.forward(p1, { cache: ordered }), model.forward([11, 12], { cache: ordered }), ordered.truncate(3), model.forward([13, 14], { cache: ordered })];
        const last = (await Promise.all(calls))[3];
        const want = referenceForward({ config: m.config, tensors: m.tensors, ids: [...p1.slice(0, 3), 13, 14] });
        assert.ok(maskedRelErr(last.data, want.data.subarray(3 * model.vocabSize), null, model.vocabSize) <= 1e-4, `${what}: the forward after truncate(3)`);
        assert.equal(ordered.length, 5);
        const again = [model.forward([1, 2], { cache: ordered }), ordered.reset(), model.forward([13, 14], { cache: ordered })];
        const fromZero = (await Promise.all(again))[2], alone = referenceForward({ config: m.config, tensors: m.tensors, ids: [13, 14] });
        assert.ok(maskedRelErr(fromZero.data, alone.data, null, model.vocabSize) <= 1e-4, `${what}: the forward after reset()`);
        const busy = model.generate([5, 6], { maxNewTokens: 3, cache: ordered });
        await busy.next();
        for (const op of [() => ordered.truncate(0), () => ordered.reset()])
          await assert.rejects(async () => op(), { message: /^KVCache\.(truncate|reset): a generation is using this cache; end it first$/ }, what);
        for await (const tok of busy) assert.ok(tok >= 0);
        await ordered.truncate(1);  // the generation is over
        ordered.dispose();
        await cacheB.truncate(rows[0].length + 1);
        const b3 = await collect(model.generate([[31, 32], [33, 34]], { maxNewTokens: 3, cache: cacheB }));
        compared += sameGreedy(b3, ref(rows.map((r, b) => [...r, b1[0][b], 31 + 2 * b, 32 + 2 * b]), 3), `${what}: batch after truncate`, false);
        // Refused before anything runs, by name; the caches are the caller's, kept until it frees them.
        await assert.rejects(async () => model.generate(rows, { cache }), { name: 'RangeError', message: 'generate: options.cache was created for batch 1, but the prompt has 2 sequences' }, what);
        // A sliding cache (Mistral's window of 4) needs room for a call's positions and the window before them only.
        const small = await model.createCache({ maxLength: arch === 'mistral' ? 4 : 6 });
        await assert.rejects(async () => model.generate(p1, { maxNewTokens: 4, cache: small }), {
          name: 'RangeError',
          message: arch === 'mistral' ? /^generate: options\.cache holds 0 of its maxLength 4 positions; 5 prompt tokens and maxNewTokens 4 need 5 at once \(slidingWindow 4\)/
            : /^generate: options\.cache holds 0 of its maxLength 6 positions; 5 prompt tokens and maxNewTokens 4 need 8 more/,
        }, what);
        if (arch === 'mistral') {  // a sliding cache smaller than the conversation keeps the window: the same two turns
          const slide = await model.createCache({ maxLength: 6 });
          assert.deepEqual(await collect(model.generate(p1, { maxNewTokens: 4, cache: slide })), g1, what);
          assert.deepEqual(await collect(model.generate(p2, { maxNewTokens: 5, cache: slide })), g2, what);
          slide.dispose();
        }
        if (arch === 'gpt2') {  // 64 positions: the cache's count
          const big = await model.createCache({ maxLength: 100 });
          await model.forward(p1, { cache: big });
          await assert.rejects(async () => model.generate(p1, { maxNewTokens: 56, cache: big }),
            { name: 'RangeError', message: 'generate: the cache\'s 5 positions, 5 prompt tokens and maxNewTokens 56 do not fit the model\'s 64 positions' }, what);
          big.dispose();
        }
        const foreign = await other.createCache({ maxLength: 40 });  // held here: a collected one would be freed by the backstop
        for (const bad of [{}, false, 0, '', foreign])
          await assert.rejects(async () => model.generate(p1, { cache: bad }), { name: 'TypeError', message: /^generate: options\.cache must be a cache from this model's createCache\(\), got/ }, what);
        if (arch === 'mistral')  // padding inside the window would take its positions
          await assert.rejects(async () => model.generate([[1, 2, 3], [4]], { cache: cacheB }), {
            name: 'RangeError', message: /^generate: options\.cache: padded rows cannot continue a cache with a sliding window \(slidingWindow 4\)/,
          }, what);
        // Left early: the cache holds the prompt and the tokens handed out but the last (a worker may have run its step too).
        const early = await model.createCache({ maxLength: 40 });
        let handed = 0;
        for await (const tok of model.generate(p1, { maxNewTokens: 8, stopTokens: [], cache: early })) if (tok >= 0 && ++handed === 3) break;
        assert.ok(early.length === p1.length + 2 || (api === worker && early.length === p1.length + 3), `${what}: ${early.length} after leaving early`);
        early.dispose();
        small.dispose();
        await assert.rejects(async () => model.generate(p1, { cache: small }), { name: 'Error', message: 'generate: options.cache has been disposed' }, what);
        foreign.dispose();
        other.dispose();
        assert.equal((await api.stats()).liveLayers, live + 1, `${what}: the two caches in use are kept (the other model gone)`);
        cache.dispose();
        cacheB.dispose();
        assert.equal((await api.stats()).liveLayers, live - 1, what);
        model.dispose();
      }
    }
    assert.ok(compared >= 50, `compared ${compared} steps`);
  } finally {
    worker.terminate();
  }
});

test('forward({ out }): the logits go into the caller\'s array (both APIs, also with calls under way at once); a wrong one is refused by name before the run, and the cache does not move', async () => {
  const { init: initWorker } = await import('mha-wasm/worker');
  const m = tinyModel('llama', { seed: 31 });
  const V = m.config.vocab_size, ids = [3, 17, 42, 8];
  const worker = await initWorker({ threads: 1 });
  try {
    for (const api of [mha, worker]) {
      const model = await load(api, m);
      const c1 = await model.createCache({ maxLength: 8 }), c2 = await model.createCache({ maxLength: 8 });
      const plain = await model.forward(ids, { cache: c1, lastOnly: true });
      const out = new Float32Array(V).fill(NaN);
      const got = await model.forward(ids, { cache: c2, lastOnly: true, out });
      assert.equal(got.data, out, 'the same array comes back');
      assert.deepEqual(Array.from(out), Array.from(plain.data));
      assert.deepEqual(got.dims, plain.dims);
      // A step into the same array, as generate does; then the whole prompt's rows into a bigger one.
      const step = await model.forward([5], { cache: c1, lastOnly: true });
      assert.equal((await model.forward([5], { cache: c2, lastOnly: true, out })).data, out);
      assert.deepEqual(Array.from(out), Array.from(step.data));
      const all = new Float32Array(ids.length * V);
      assert.deepEqual(Array.from((await model.forward(ids, { out: all })).data), Array.from((await model.forward(ids)).data));
      // Refused before anything runs: the cache keeps its length.
      const before = c2.length;
      for (const [bad, type, msg] of [
        [new Float32Array(V + 1), RangeError, new RegExp(`options\\.out has ${V + 1} elements; this forward writes ${V}`)],
        [new Float64Array(V), TypeError, /options\.out must be a Float32Array, got Float64Array/],
        [Array.from({ length: V }, () => 0), TypeError, /options\.out must be a Float32Array/],
      ]) {
        await assert.rejects(async () => model.forward([7], { cache: c2, lastOnly: true, out: bad }), (e) => e instanceof type && msg.test(e.message), String(msg));
        assert.equal(c2.length, before);
      }
      const gone = new Float32Array(V);
      structuredClone(gone.buffer, { transfer: [gone.buffer] });
      await assert.rejects(async () => model.forward([7], { cache: c2, lastOnly: true, out: gone }), (e) => e instanceof TypeError && /options\.out is a view of a detached/.test(e.message));
      assert.equal(c2.length, before);
      assert.deepEqual(Array.from((await model.forward([7], { cache: c2, lastOnly: true, out })).data), Array.from((await model.forward([7], { cache: c1, lastOnly: true })).data));
      // Two calls under way at once, each into its own array (through a worker, the model's
      // spare array that carries the answer is on its way for the first one), then one more.
      const c3 = await model.createCache({ maxLength: 8 });
      for (const x of [ids, [5], [7]]) await model.forward(x, { cache: c3, lastOnly: true });
      const ref = Array.from((await model.forward([9], { cache: c3, lastOnly: true })).data);
      const o1 = new Float32Array(V), o2 = new Float32Array(V);
      const both = await Promise.all([model.forward([9], { cache: c1, lastOnly: true, out: o1 }), model.forward([9], { cache: c2, lastOnly: true, out: o2 })]);
      assert.equal(both[0].data, o1);
      assert.equal(both[1].data, o2);
      assert.deepEqual(Array.from(o1), ref);
      assert.deepEqual(Array.from(o2), ref);
      assert.deepEqual(Array.from((await model.forward([9], { lastOnly: true, out })).data), Array.from((await model.forward([9], { lastOnly: true })).data));
      c1.dispose(), c2.dispose(), c3.dispose(), model.dispose();
    }
  } finally {
    worker.terminate();
  }
});
