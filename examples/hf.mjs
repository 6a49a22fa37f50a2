// Runs a Hugging Face model from its folder, in Node: text generation for the language models
// (SmolLM, Qwen2.5, Llama 3.x, GPT-2, Mistral, TinyLlama), sentence similarities for the
// BERT-family encoders (all-MiniLM-L6-v2 and other sentence-transformers checkpoints).
//
//   node examples/hf.mjs <folder> "The capital of France is" [--weight-type int8] [--max-new-tokens 64]
//        [--chat] [--temperature 0.7 --top-k 40 --top-p 0.95 --seed 1] [--threads 2]
//   node examples/hf.mjs <folder> --chat [--max-length 2048]    a conversation: a line of stdin per turn, an answer
//        per turn, the earlier turns kept in a KV cache of that many positions
//   node examples/hf.mjs <folder of all-MiniLM-L6-v2> "A man is eating." "Someone eats food." "The sky is blue."
//
// The folder holds the files the model's page on the hub lists: config.json, model.safetensors
// (or its shards and model.safetensors.index.json), tokenizer.json and tokenizer_config.json.
// Nothing is downloaded. The text goes to stdout, everything else (progress, speed) to stderr.
import fs from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { init } from 'mha-wasm';
import { loadModel, loadTokenizer, parseSafetensors } from 'mha-wasm/models';

const { values: o, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'weight-type': { type: 'string', default: 'f32' }, 'max-new-tokens': { type: 'string', default: '32' },
    chat: { type: 'boolean', default: false }, threads: { type: 'string', default: 'auto' }, 'max-length': { type: 'string', default: '2048' },
    temperature: { type: 'string' }, 'top-k': { type: 'string' }, 'top-p': { type: 'string' }, seed: { type: 'string' },
  },
});
const [folder, ...texts] = positionals;
if (!folder || (!texts.length && !o.chat)) {
  console.error('usage: node examples/hf.mjs <model folder> <prompt> [more sentences, for an encoder] [--weight-type f32|f16|int8] ' +
    '[--max-new-tokens N] [--chat] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--threads N|auto]\n' +
    '       node examples/hf.mjs <model folder> --chat [--max-length 2048]   (a conversation, a line of stdin per turn)');
  process.exit(2);
}
const file = (name) => path.join(folder, name);
const json = (name) => JSON.parse(fs.readFileSync(file(name), 'utf8'));
const number = (name) => (o[name] === undefined ? undefined : Number(o[name]));

// The weights: one file, or the shards the index names. Given as Blobs, loadModel reads each part
// of the model as it copies it in, never the whole file at once.
const shards = fs.existsSync(file('model.safetensors.index.json'))
  ? [...new Set(Object.values(json('model.safetensors.index.json').weight_map))] : ['model.safetensors'];
const open = (name) => (fs.openAsBlob ? fs.openAsBlob(file(name)) : parseSafetensors(fs.readFileSync(file(name))));
const weights = await Promise.all(shards.map(open));

const mha = await init({ threads: o.threads === 'auto' ? 'auto' : Number(o.threads) });
const t0 = performance.now();
const model = await loadModel(mha, {
  config: json('config.json'), weights: weights.length === 1 ? weights[0] : weights, weightType: o['weight-type'],
  onProgress: ({ loaded, total }) => process.stderr.isTTY && process.stderr.write(`\rloading ${loaded}/${total}`),
});
const tokenizer = await loadTokenizer({
  tokenizerJson: fs.readFileSync(file('tokenizer.json'), 'utf8'),
  tokenizerConfig: fs.existsSync(file('tokenizer_config.json')) ? fs.readFileSync(file('tokenizer_config.json'), 'utf8') : undefined,
});
const size = (b) => (b < 2 ** 20 ? `${(b / 1024).toFixed(0)} KiB` : `${(b / 2 ** 20).toFixed(0)} MiB`);
console.error(`${process.stderr.isTTY ? '\r' : ''}${model.architecture}, ${model.numLayers} layers, ${o['weight-type']} weights in ${size(model.memoryBytes)}, ` +
  `loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s (${mha.build}, ${mha.threads} thread(s))`);

/**
 * Generates after ids (continuing cache, when given, which holds what came before them; context:
 * the whole prompt), streaming the text to stdout. Returns { tokens, text }.
 */
async function generate(ids, context, cache) {
  // decodeStream: each token's text after the prompt's (a SentencePiece tokenizer would drop
  // the first word's space from the new tokens alone), an unsettled end (a character split over
  // tokens, a space) held back until a later token settles it.
  const stream = tokenizer.decodeStream(context, { skipSpecialTokens: true });
  let first = 0;
  const start = performance.now();
  for await (const t of model.generate(ids, {
    maxNewTokens: Number(o['max-new-tokens']), temperature: number('temperature'), topK: number('top-k'), topP: number('top-p'), seed: number('seed'), cache,
  })) {
    if (!first) first = performance.now();
    process.stdout.write(stream.push(t));
  }
  process.stdout.write(`${stream.end()}\n`);
  const end = performance.now(), made = stream.tokens;
  console.error(`${ids.length} prompt tokens in ${(first - start).toFixed(0)} ms, ${made.length} new tokens` +
    (made.length > 1 ? `, ${((made.length - 1) / ((end - first) / 1000)).toFixed(1)} tokens/s after the first` : ''));
  return { tokens: made, text: stream.text };
}

if (model.isEncoder) {
  // Sentence embeddings (mean pooling over the real tokens, normalized, as sentence-transformers
  // does), then every pair's cosine similarity.
  const e = model.embed(texts.map((t) => tokenizer.encode(t)), { pooling: 'mean', normalize: true });
  const H = e.dims[1], row = (i) => e.data.subarray(i * H, (i + 1) * H);
  const cos = (a, b) => row(a).reduce((s, x, k) => s + x * row(b)[k], 0);
  texts.forEach((t, i) => console.log(`${texts.map((_, j) => cos(i, j).toFixed(4)).join(' ')}  ${t}`));
} else if (!texts.length) {
  // A conversation: each turn's prompt is the whole conversation through the chat template, and
  // generate continues the cache from the longest start of that prompt it holds (the earlier
  // turns), so only the rest is computed.
  if (tokenizer.chatTemplate === null) throw new TypeError(`${folder}: tokenizer_config.json has no chat template`);
  const cache = model.createCache({ maxLength: Number(o['max-length']) });  // the conversation's positions
  const messages = [];
  let held = [];  // the conversation's token ids the cache holds
  const lines = createInterface({ input: process.stdin, terminal: false });
  if (process.stdin.isTTY) process.stderr.write('> ');
  for await (const line of lines) {
    messages.push({ role: 'user', content: line });
    const all = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true, tokenize: true });
    if (all.length + Number(o['max-new-tokens']) > cache.maxLength) {
      console.error(`The conversation (${all.length} tokens) and an answer no longer fit --max-length ${cache.maxLength}.`);
      break;
    }
    // The cache keeps what it holds of this prompt: the template may write an earlier answer as
    // other tokens than were generated, and from there on the prompt is computed again.
    let same = 0;
    while (same < held.length && same < all.length - 1 && held[same] === all[same]) same++;
    try {
      await cache.truncate(same);
    } catch (e) {  // a sliding-window cache past its window keeps all or none
      if (!(e instanceof RangeError)) throw e;
      await cache.truncate((same = 0));
    }
    console.error(`(${same} of the conversation's ${all.length} tokens from the cache)`);
    const answer = await generate(all.slice(same), all, cache);
    held = [...all, ...answer.tokens].slice(0, cache.length);
    messages.push({ role: 'assistant', content: answer.text });
    if (process.stdin.isTTY) process.stderr.write('> ');
  }
  cache.dispose();
} else {
  const ids = o.chat
    ? tokenizer.applyChatTemplate([{ role: 'user', content: texts.join(' ') }], { addGenerationPrompt: true, tokenize: true })
    : tokenizer.encode(texts.join(' '));
  if (!o.chat) process.stdout.write(texts.join(' '));
  await generate(ids, ids, null);
}
model.dispose();
