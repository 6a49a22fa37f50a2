// The mha-wasm/models declarations, compiled with tsc --noEmit (see usage.ts).
import { init, quantizeSafetensors, type Mha } from 'mha-wasm';
import { init as initWorker, type WorkerMha } from 'mha-wasm/worker';
import { loadModel, loadTokenizer, parseSafetensors, readSafetensors, type HfModel, type ModelOutput, type Tokenizer } from 'mha-wasm/models';

async function main(bytes: Uint8Array, config: Record<string, unknown>, tokenizerJson: object): Promise<void> {
  const mha = await init();
  const model: HfModel = await loadModel(mha, { config, weights: [parseSafetensors(bytes)], weightType: 'f32', onProgress: (p) => console.log(p.loaded, p.total, p.part) });
  const int8: Uint8Array = quantizeSafetensors(bytes, { type: 'int8', config, floatDtype: 'F16' });
  console.log(int8.length);
  const tokenizer: Tokenizer = await loadTokenizer({ tokenizerJson, tokenizerConfig: '{}' });
  const ids = tokenizer.encode('The capital of France is');
  const cache = model.createCache({ maxLength: 64 });
  const logits: ModelOutput = model.forward(ids, { cache, needWeights: true });
  console.log(logits.dims, logits.attentions?.[0].dims, model.memoryBytes, cache.length);
  const emb = model.embed([ids, ids.slice(1)], { pooling: 'cls', normalize: true });
  const core = new mha.Model(model.modelOptions);
  core.setEmbeddings({});
  const done: void = core.setTokenRows(0, new Float32Array(8 * model.hiddenSize));
  core.setHeadRows(0, new Float32Array(model.hiddenSize), { transfer: true });
  console.log(done);
  console.log(emb.data[0]);
  for await (const t of model.generate(ids, { maxNewTokens: 8, temperature: 0.7, topK: 40, topP: 0.95, seed: 1, onToken: (tok) => console.log(tok), signal: new AbortController().signal })) {
    const one: number = t;  // one prompt: a number per step
    console.log(tokenizer.decode([one]));
  }
  const chat = model.createCache({ maxLength: 256 });
  for await (const t of model.generate(ids, { maxNewTokens: 4, cache: chat })) console.log(t, chat.length);
  // @ts-expect-error a cache, not its length
  model.generate(ids, { cache: 5 });
  const stream = tokenizer.decodeStream(ids, { skipSpecialTokens: true });
  for await (const row of model.generate([ids, ids.slice(1)])) {
    const b: number[] = row;  // a batch: B ids per step
    const piece: string = stream.push(b[0]);
    console.log(piece, stream.shown.length, stream.tokens.length);
  }
  const rest: string = stream.end(), whole: string = stream.text;
  console.log(rest, whole);
  // @ts-expect-error a TextStream takes token ids
  stream.push('5');
  console.log(tokenizer.decodeStream(BigInt64Array.of(BigInt(1))).push(BigInt(2)), tokenizer.decodeStream(Int32Array.of(1), { skipSpecialTokens: false }).end());
  const text: string = tokenizer.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true });
  const chatIds: number[] = tokenizer.applyChatTemplate([{ role: 'user', content: 'Hi' }], { tokenize: true });
  console.log(text, chatIds);
  // @ts-expect-error weightType is 'f32' | 'f16' | 'int8'
  await loadModel(mha, { config, weights: {}, weightType: 'bf16' });
  model.dispose();

  const w = await initWorker({ threads: 2 });
  const remote = await loadModel(w, { config, weights: parseSafetensors(bytes) });
  const out: ModelOutput = await remote.forward({ data: new Int32Array(4), dims: [2, 2] }, { attentionMask: [[1, 1], [0, 1]] });
  // @ts-expect-error forward resolves to a Promise in the worker API
  const notAwaited: number = remote.forward([1, 2]).dims[0];
  console.log(out.dims, notAwaited);
  remote.dispose();
  w.terminate();
}
console.log(main);

// Ids as any integer typed array (BigInt64Array from an I64 tensor), stopTokens as a typed array,
// either API through one loadModel call, tokenize known only as a boolean, content parts.
export async function wider(api: Mha | WorkerMha, bytes: Uint8Array, config: Record<string, unknown>, tok: Tokenizer, b: boolean): Promise<void> {
  const model = await loadModel(api, { config, weights: parseSafetensors(bytes), weightType: 'int8' });
  const out = await model.forward(BigInt64Array.of(1n, 2n, 3n), { lastOnly: true });
  console.log(out.dims, model.modelOptions.weightType);
  for await (const t of model.generate({ data: Uint32Array.of(1, 2), dims: [1, 2] }, { stopTokens: Int32Array.of(5) })) console.log(t);
  const chat: string | number[] = tok.applyChatTemplate([{ role: 'assistant', content: null }, { role: 'user', content: [{ type: 'text', text: 'hi' }] }], { tokenize: b });
  console.log(chat);
}

// Files (an <input>'s, or fs.openAsBlob's) straight into loadModel; readSafetensors of a Blob.
export async function fromFiles(mha: Mha, config: Record<string, unknown>, files: File[], blob: Blob): Promise<void> {
  const model = await loadModel(mha, { config, weights: files, weightType: 'int8' });
  const one = await loadModel(mha, { config, weights: [blob, await readSafetensors(blob, { prefix: 'model.' })] });
  console.log(model.vocabSize, one.vocabSize);
}

export function templates(tok: Tokenizer): void {
  const prefill: string = tok.applyChatTemplate([{ role: 'tool', content: { result: 4 } }, { role: 'assistant', content: 'The answer is' }], { continueFinalMessage: true, chatTemplate: tok.chatTemplateNames[0] });
  console.log(prefill);
}
