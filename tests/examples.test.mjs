// examples/hf.mjs, run as a user runs it (a child process on a model folder), on tiny random
// models written here in the Hugging Face layout: its text against the float64 reference's
// greedy tokens (a sharded Llama, Mistral's SentencePiece tokenizer, GPT-2 at int8), a
// conversation on stdin (--chat) against the reference's answers with the earlier turns taken
// from the cache, its similarities against the reference's sentence embeddings (BERT), and its
// usage message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTokenizer } from 'mha-wasm/models';
import { tinyModel } from './models/tiny.mjs';
import { greedyReference, sentenceEmbeddingReference } from './models/reference.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const example = path.join(root, 'examples', 'hf.mjs');

/** Writes m (tinyModel) as a model folder: config.json, the safetensors (and index), the tokenizer files. */
function folder(m, t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `mha-example-${m.arch}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(m.config));
  for (const f of m.files) fs.writeFileSync(path.join(dir, f.name), f.bytes);
  if (m.index) fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify(m.index));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(m.tokenizerJson));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(m.tokenizerConfig));
  return dir;
}

const run = (...args) => spawnSync(process.execPath, [example, ...args], { cwd: root, encoding: 'utf8', timeout: 120000 });

for (const [arch, options, flags] of [['llama', { shards: 2 }, []], ['mistral', {}, []], ['gpt2', { int8Exact: 'outChannel' }, ['--weight-type', 'int8']]]) {
  test(`examples/hf.mjs continues a prompt with ${arch}'s greedy tokens (${flags.join(' ') || 'f32'}${options.shards ? ', sharded' : ''})`, async (t) => {
    const m = tinyModel(arch, { seed: 4, ...options });
    const dir = folder(m, t), prompt = 'the cat sat on the mat';
    const tokenizer = await loadTokenizer({ tokenizerJson: m.tokenizerJson, tokenizerConfig: m.tokenizerConfig });
    const ids = tokenizer.encode(prompt), ref = greedyReference({ config: m.config, tensors: m.tensors, prompts: ids, maxNewTokens: 6 });
    // Every step's top two logits clearly apart, so float32 must pick the reference's token.
    assert.ok(ref.margins.every(([g]) => g > 1e-2), `near ties: ${ref.margins.map(([g]) => g)}`);
    const r = run(dir, prompt, '--max-new-tokens', '6', '--threads', '1', ...flags);
    assert.equal(r.status, 0, r.stderr);
    // The new tokens' text is what they add to the prompt's (SentencePiece drops the space of a
    // list's first word, so not the new tokens decoded alone).
    const decode = (t) => tokenizer.decode(t, { skipSpecialTokens: true }), base = decode(ids), all = decode([...ids, ...ref.tokens[0]]);
    assert.ok(all.startsWith(base));
    assert.equal(r.stdout, `${prompt}${all.slice(base.length)}\n`);
    assert.match(r.stderr, new RegExp(`${m.config.architectures[0]}, 2 layers, ${flags.length ? 'int8' : 'f32'} weights in \\d+ KiB`));
    assert.match(r.stderr, /\d+ prompt tokens in \d+ ms, 6 new tokens, [\d.]+ tokens\/s after the first/);
  });
}

test('examples/hf.mjs --chat holds a conversation from stdin: each answer is the reference\'s greedy continuation of the whole conversation, the earlier turns taken from the cache', async (t) => {
  const m = tinyModel('llama', { seed: 4 });
  const dir = folder(m, t), turns = ['the cat sat', 'and the dog?', 'ok'];
  const tokenizer = await loadTokenizer({ tokenizerJson: m.tokenizerJson, tokenizerConfig: m.tokenizerConfig });
  const decode = (ids) => tokenizer.decode(ids, { skipSpecialTokens: true });
  for (const maxNew of [1, 4]) {
    // The reference conversation: each prompt the template of every turn so far; each answer what
    // its tokens add to the prompt's text.
    const messages = [], answers = [], sizes = [];
    for (const turn of turns) {
      messages.push({ role: 'user', content: turn });
      const all = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true, tokenize: true });
      const ref = greedyReference({ config: m.config, tensors: m.tensors, prompts: all, maxNewTokens: maxNew });
      assert.ok(ref.margins.every(([g]) => g > 1e-2), `near ties: ${ref.margins.map(([g]) => g)}`);
      const text = decode([...all, ...ref.tokens[0]]).slice(decode(all).length);
      answers.push(text);
      sizes.push(all.length);
      messages.push({ role: 'assistant', content: text });
    }
    const r = spawnSync(process.execPath, [example, dir, '--chat', '--max-new-tokens', String(maxNew), '--threads', '1'],
      { cwd: root, encoding: 'utf8', input: `${turns.join('\n')}\n`, timeout: 120000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, answers.map((a) => `${a}\n`).join(''), `maxNewTokens ${maxNew}`);
    const fromCache = [...r.stderr.matchAll(/\((\d+) of the conversation's (\d+) tokens from the cache\)/g)].map((x) => [Number(x[1]), Number(x[2])]);
    assert.deepEqual(fromCache.map(([, n]) => n), sizes);
    // One new token per answer leaves exactly each prompt in the cache, which the next prompt extends;
    // with more, the cache keeps at least the earlier prompt (an answer may be written as other tokens).
    if (maxNew === 1) assert.deepEqual(fromCache.map(([k]) => k), [0, ...sizes.slice(0, -1)]);
    else fromCache.slice(1).forEach(([k], i) => assert.ok(k >= sizes[i] && k < sizes[i + 1], `turn ${i + 2}: ${k} from the cache`));
  }
});

test('examples/hf.mjs prints the cosine similarities of sentence embeddings for BERT', async (t) => {
  const m = tinyModel('bert', { seed: 5 });
  const dir = folder(m, t), sentences = ['a man is eating', 'someone eats food', 'the sky is blue'];
  const tokenizer = await loadTokenizer({ tokenizerJson: m.tokenizerJson, tokenizerConfig: m.tokenizerConfig });
  const rows = sentences.map((s) => tokenizer.encode(s)), L = Math.max(...rows.map((r) => r.length)), H = m.config.hidden_size;
  const pad = (r, v) => [...r, ...new Array(L - r.length).fill(v)];
  const ref = sentenceEmbeddingReference({
    config: m.config, tensors: m.tensors, pooling: 'mean', normalize: true,
    ids: { data: rows.flatMap((r) => pad(r, m.config.pad_token_id ?? 0)), dims: [3, L] },
    attentionMask: { data: rows.flatMap((r) => pad(r.map(() => 1), 0)), dims: [3, L] },
  });
  const cos = (i, j) => ref.data.subarray(i * H, (i + 1) * H).reduce((s, x, k) => s + x * ref.data[j * H + k], 0);
  const r = run(dir, ...sentences, '--threads', '1');
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 3);
  lines.forEach((line, i) => {
    assert.ok(line.endsWith(`  ${sentences[i]}`), line);
    const got = line.split(' ').slice(0, 3).map(Number);
    got.forEach((g, j) => assert.ok(Math.abs(g - cos(i, j)) <= 1e-4, `${i},${j}: ${g} vs ${cos(i, j)}`));
  });
  assert.ok(Math.abs(cos(0, 1) - cos(0, 2)) > 1e-3, 'the sentences are told apart');
});

test('examples/hf.mjs without a prompt prints its usage and exits with 2', () => {
  const r = run(os.tmpdir());
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^usage: node examples\/hf\.mjs <model folder> <prompt>/);
});
