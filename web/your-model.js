// The "Your model" tab: a Hugging Face model chosen from disk (a folder, or its files; they
// are read with File.arrayBuffer(), nothing is uploaded or fetched) runs on mha-wasm/models
// in a worker of its own. Language models write text token by token (tokens per second, a
// stop button); encoders (BERT) compare sentences by their embeddings; both show each
// layer's and head's attention maps. Errors are shown as the loader and the model throw them.
import { init } from 'mha-wasm/worker';
import { loadModel, loadTokenizer } from 'mha-wasm/models';
import { color, heatmap } from './heatmap.js';
import {
  MAX_ATTENTION_TOKENS, MAX_DRAWN_TOKENS, cosineMatrix, formatBytes, pathOf, pickModelFiles, poolingMode, shardFiles, tokenLabel,
} from './model-files.js';

const $ = (id) => document.getElementById(id);
const fmt = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

// What the tab holds and did last (the end-to-end test reads it).
const state = {
  runtime: null, model: null, tokenizer: null, files: null, meta: null, attention: null,
  loading: 0, generating: false, stop: false, job: 0,
  loads: 0, generations: 0, embeds: 0, attentions: 0, errors: 0,
  lastLoad: null, lastGeneration: null, lastEmbed: null, lastError: null, lastMemory: null,
  // A kept conversation: its messages, the KV cache of its turns and the token ids it holds.
  chat: { messages: [], cache: null, held: [] },
};
// The positions a conversation's KV cache holds (fewer when the model has fewer).
const CHAT_POSITIONS = 2048;
window.mhaDemo.hf = state;

function showError(e) {
  const el = $('hf-error');
  el.hidden = !e;
  el.textContent = e ? (e instanceof Error ? `${e.name}: ${e.message}` : String(e)) : '';
  if (e) {
    state.lastError = el.textContent;
    state.errors++;
  }
}

/**
 * Runs an action of the tab, showing what it throws, unless the model it ran on was
 * unloaded or replaced meanwhile (which makes its pending calls fail: no error of the user's).
 */
async function guarded(fn, { replaces = false } = {}) {
  const model = state.model;
  try {
    showError(null);
    await fn();
  } catch (e) {
    if (replaces || model === null || state.model === model) showError(e);
  }
}

function progress(text, done = 0, total = 1) {
  $('hf-progress-box').hidden = text === null;
  $('hf-progress-text').textContent = text ?? '';
  $('hf-progress').max = total;
  $('hf-progress').value = done;
}

// ---- the runtime: a worker of its own ----
// Its own workerUrl, so init() does not hand back the playground's worker (init() is
// memoized by its options): unloading a model terminates this worker, which gives the
// model's wasm memory back to the browser.
const WORKER_URL = new URL('./worker-host.js?model', import.meta.resolve('mha-wasm/worker'));

/** Forgets the kept conversation and frees its cache. */
function endConversation() {
  const { cache } = state.chat;
  state.chat = { messages: [], cache: null, held: [] };
  try {
    cache?.dispose();
  } catch { /* the worker may be gone already */ }
}

/** Whether Generate adds a turn to a kept conversation. */
const keeping = () => !$('hf-chat-field').hidden && $('hf-chat').checked && $('hf-keep').checked;
function showKeep() {
  $('hf-keep-field').hidden = $('hf-chat-field').hidden || !$('hf-chat').checked;
  if (!keeping()) endConversation();
}

async function unload() {
  state.job++;
  state.stop = true;
  endConversation();
  const { model, runtime } = state;
  Object.assign(state, { model: null, tokenizer: null, meta: null, attention: null, runtime: null });
  for (const id of ['hf-gen', 'hf-emb', 'hf-att', 'hf-att-sentence-field']) $(id).hidden = true;
  $('hf-att-sentence').replaceChildren();
  state.lastEmbed = null;
  $('hf-maps').replaceChildren();
  $('hf-info').textContent = '';
  $('hf-memory').textContent = '';
  $('hf-unload').disabled = true;
  try {
    model?.dispose();
  } catch { /* the worker may be gone already */ }
  if (runtime) await runtime.then((mha) => mha.terminate(), () => {});
}

const readJson = async (file) => {
  const text = await file.text();
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new SyntaxError(`${pathOf(file)} is not JSON: ${e.message}`);
  }
};

/** Loads the model the chosen files hold (replacing the one loaded). */
async function load(files) {
  const id = ++state.loading;
  await unload();
  state.files = files;
  state.lastLoad = null;
  try {
    progress('Reading the model\'s files…');
    const pick = pickModelFiles(files);
    const config = await readJson(pick.config);
    const tokenizer = await loadTokenizer({ tokenizerJson: await pick.tokenizer.text(), tokenizerConfig: pick.tokenizerConfig ? await pick.tokenizerConfig.text() : null });
    const shards = pick.index ? shardFiles(await readJson(pick.index), pick.safetensors) : pick.safetensors;
    const pooling = pick.pooling ? poolingMode(await readJson(pick.pooling)) : null;
    const total = shards.reduce((s, f) => s + f.size, 0);
    progress('Starting the worker…', 0, 1);
    state.runtime = init({ threads: 'auto', workerUrl: WORKER_URL });
    const mha = await state.runtime;
    if (id !== state.loading) return;
    const weightType = $('hf-int8').checked ? 'int8' : 'f32';
    // The files go to loadModel as they are: it checks the size from config.json, then the
    // tensors from the files' headers, then reads each part (embeddings, each layer, ...) as it
    // copies it into wasm memory. No file is read whole (so none is too large to read) and no
    // copy of all the weights is held outside the wasm heap.
    const t0 = performance.now();
    const model = await loadModel(mha, {
      config, weights: shards, weightType,
      onProgress: ({ loaded, total: parts, part }) => progress(`Reading the weights into wasm memory: ${part} (${loaded} of ${parts})…`, loaded, parts),
    });
    if (id !== state.loading) return model.dispose();
    const tLoad = performance.now();
    Object.assign(state, { model, tokenizer, meta: { config, pooling, weightType, folder: pick.folder, files: shards.map((f) => f.name), mha } });
    const kv = model.modelOptions.attention?.numKvHeads ?? model.numHeads;
    $('hf-info').textContent = `${model.architecture} from ${pick.folder || 'the chosen files'}: ${model.numLayers} layers, ${model.numHeads} heads` +
      `${kv !== model.numHeads ? ` sharing ${kv} KV heads` : ''}, hidden size ${model.hiddenSize}, vocabulary ${model.vocabSize}; weights as ${weightType}${weightType === 'int8' ? ` (kernel ${mha.features.int8Dot})` : ''}. ` +
      `Read ${formatBytes(total)} from ${shards.length} file${shards.length > 1 ? 's' : ''} into wasm memory in ${fmt((tLoad - t0) / 1000)} s; ` +
      `${mha.features.threads ? `${mha.threads} threads` : 'one thread'}${mha.threadsNote ? ` (${mha.threadsNote})` : ''}.`;
    $('hf-unload').disabled = false;
    state.lastLoad = {
      architecture: model.architecture, numLayers: model.numLayers, numHeads: model.numHeads, numKvHeads: kv, hiddenSize: model.hiddenSize,
      vocabSize: model.vocabSize, isEncoder: model.isEncoder, memoryBytes: model.memoryBytes, weightType, files: state.meta.files, pooling,
      int8Dot: mha.features.int8Dot,
    };
    $('hf-layer').replaceChildren(...Array.from({ length: model.numLayers }, (_, l) => new Option(`${l + 1} of ${model.numLayers}`, String(l))));
    progress(null);
    await showMemory();
    state.loads++;
  } catch (e) {
    if (id !== state.loading) return;  // a newer load replaced this one (and stopped its worker)
    progress(null);
    await unload();
    throw e;
  }
  // A first look (its errors leave the model loaded): an encoder compares the sentences, a
  // language model shows the prompt's attention maps.
  const { model, tokenizer } = state;
  if (id !== state.loading || !model) return;
  try {
    if (model.isEncoder) {
      $('hf-pooling').value = state.meta.pooling ?? 'mean';  // the model's 1_Pooling, else the page's default
      $('hf-emb').hidden = false;
      await embed();
    } else {
      $('hf-chat-field').hidden = tokenizer.chatTemplate === null;
      $('hf-chat').checked = tokenizer.chatTemplate !== null;
      $('hf-keep').checked = false;
      showKeep();
      $('hf-gen').hidden = false;
      $('hf-output').querySelector('.gen').textContent = '';
      $('hf-speed').textContent = '';
      const ids = $('hf-prompt').value.trim() ? readPrompt().ids : [];
      $('hf-output').querySelector('.prompt').textContent = tokenizer.decode(ids, { skipSpecialTokens: true });
      if (ids.length) await attention(ids, 'the prompt');
    }
  } catch (e) {
    if (state.model === model) throw e;  // else the model was replaced meanwhile
  }
}

async function showMemory() {
  const { model, meta } = state;
  if (!model) return;
  const { wasmMemoryBytes } = await meta.mha.stats();
  state.lastMemory = { memoryBytes: model.memoryBytes, wasmMemoryBytes };
  $('hf-memory').textContent = `Memory: the weights take ${formatBytes(model.memoryBytes)} of wasm memory (${meta.weightType}); ` +
    `the worker's wasm heap is ${formatBytes(wasmMemoryBytes)} (the weights, the KV caches and each call's working memory; it is given back when the model is unloaded).`;
}

// ---- generation ----
/** The prompt: { ids, messages } (messages: the chat's, this turn's included; null for plain text). */
function readPrompt() {
  const { tokenizer } = state, text = $('hf-prompt').value;
  const chat = !$('hf-chat-field').hidden && $('hf-chat').checked;
  const messages = chat ? [...(keeping() ? state.chat.messages : []), { role: 'user', content: text }] : null;
  const ids = chat ? tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true, tokenize: true }) : tokenizer.encode(text);
  if (ids.length === 0) throw new Error('The prompt has no tokens: type something.');
  return { ids, messages };
}

/** The generate() options the controls ask for: greedy at temperature 0, else sampling. */
function generateOptions() {
  // An emptied field means its default (Number('') would be 0).
  const num = (id, dflt) => ($(id).value.trim() === '' ? dflt : Number($(id).value));
  const o = { maxNewTokens: num('hf-max', 48) };
  const temperature = num('hf-temp', 0), topK = num('hf-topk', 0), topP = num('hf-topp', 1);
  if (temperature !== 0) {
    Object.assign(o, { temperature, seed: num('hf-seed', 1) });
    if (topK !== 0) o.topK = topK;
    if (topP !== 1) o.topP = topP;
  }
  return o;
}

async function generate() {
  const { model, tokenizer } = state;
  if (!model || state.generating) return;
  const job = ++state.job;
  const { ids, messages } = readPrompt(), options = generateOptions(), keep = keeping(), chat = state.chat;
  // A kept conversation's cache holds its earlier turns: it keeps the longest start of this prompt
  // it holds (the template may write an earlier answer as other tokens than were generated), and
  // generate continues it with the rest.
  let fed = ids;
  if (keep) {
    if (!chat.cache) chat.cache = await model.createCache({ maxLength: Math.min(CHAT_POSITIONS, model.modelOptions.maxPositions || CHAT_POSITIONS) });
    if (ids.length + options.maxNewTokens > chat.cache.maxLength)
      throw new RangeError(`The conversation (${ids.length} tokens) and ${options.maxNewTokens} new tokens do not fit its KV cache of ${chat.cache.maxLength} positions: ` +
        'uncheck "Keep the conversation" to start a new one.');
    let same = 0;
    while (same < chat.held.length && same < ids.length - 1 && chat.held[same] === ids[same]) same++;
    try {
      await chat.cache.truncate(same);
    } catch (e) {  // a sliding-window cache past its window keeps all or none
      if (!(e instanceof RangeError)) throw e;
      await chat.cache.truncate((same = 0));
    }
    fed = ids.slice(same);
  }
  const fromCache = ids.length - fed.length;
  const decode = (t) => tokenizer.decode(t, { skipSpecialTokens: true });
  const text = tokenizer.decodeStream(ids, { skipSpecialTokens: true });  // the new tokens' text after the prompt's
  const out = $('hf-output'), gen = out.querySelector('.gen');
  out.querySelector('.prompt').textContent = decode(ids);
  gen.textContent = '';
  out.dataset.tokens = '0';
  const speed = $('hf-speed');
  speed.textContent = `Reading the prompt (${ids.length} tokens)…`;
  state.generating = true;
  state.stop = false;
  $('hf-run').disabled = true;
  $('hf-stop').disabled = false;
  const tokens = [];
  const t0 = performance.now();
  let tFirst = 0, tLast = 0, stopped = false;
  const rate = () => (tokens.length > 1 ? ((tokens.length - 1) * 1000) / (tLast - tFirst) : null);
  try {
    for await (const t of model.generate(fed, { ...options, cache: keep ? chat.cache : null })) {
      if (job !== state.job) return;
      tLast = performance.now();
      if (tokens.length === 0) tFirst = tLast;
      tokens.push(t);
      text.push(t);
      gen.textContent = text.shown;
      out.dataset.tokens = String(tokens.length);
      const r = rate();
      speed.textContent = `${tokens.length} token${tokens.length > 1 ? 's' : ''}${r ? `: ${fmt(r)} tokens/s` : ''}`;
      if (state.stop) {
        stopped = true;
        break;  // ends the iterator, which frees its cache
      }
    }
  } catch (e) {
    if (job === state.job) speed.textContent = tokens.length ? `Stopped by an error after ${tokens.length} token${tokens.length > 1 ? 's' : ''}.` : '';
    throw e;
  } finally {
    state.generating = false;
    $('hf-run').disabled = false;
    $('hf-stop').disabled = true;
    // What the kept conversation's cache now holds (also after a stop or an error).
    if (keep && state.chat === chat && !chat.cache.disposed) chat.held = [...ids, ...tokens].slice(0, chat.cache.length);
  }
  text.end();
  gen.textContent = text.text;
  if (keep && state.chat === chat) chat.messages = [...messages, { role: 'assistant', content: text.text }];
  const r = rate(), last = tokens.at(-1);
  const end = stopped ? ' Stopped.' : model.eosTokenIds.includes(last) ? ` Ended at ${tokenizer.idToToken(last) ?? last}, an end-of-text token.` : '';
  const turn = keep ? ` Turn ${chat.messages.length / 2} of the conversation: ${fromCache} of the prompt's tokens came from the KV cache.` : '';
  speed.textContent = `${tokens.length} new token${tokens.length === 1 ? '' : 's'}: the prompt's ${fed.length === ids.length ? '' : 'new '}${fed.length} tokens were read and the first token chosen in ` +
    `${fmt(tFirst - t0)} ms${r ? `, then ${fmt(r)} tokens/s (one step per token, with the KV cache)` : ''}.${end}${turn}`;
  state.lastGeneration = { promptIds: Array.from(ids), tokens, text: gen.textContent, stopped, options, prefillMs: tFirst - t0, tokensPerSecond: r, fromCache };
  state.generations++;
  await showMemory();
  await attention([...ids, ...tokens], 'the prompt and the generated tokens');
}

// ---- sentence similarities ----
async function embed() {
  const { model, tokenizer } = state;
  if (!model) return;
  const job = ++state.job;
  const sentences = $('hf-sentences').value.split('\n').map((s) => s.trim()).filter(Boolean);
  if (sentences.length === 0) throw new Error('Type at least one sentence.');
  if (sentences.length > 32) throw new RangeError(`Compare at most 32 sentences at once, got ${sentences.length}.`);
  const rows = sentences.map((s) => tokenizer.encode(s));
  const max = model.modelOptions.maxPositions, long = rows.findIndex((r) => max && r.length > max);
  if (long >= 0) throw new RangeError(`Sentence ${long + 1} is ${rows[long].length} tokens long; this model reads at most ${max}: shorten it.`);
  const pooling = $('hf-pooling').value;
  const t0 = performance.now();
  const e = await model.embed(rows, { pooling, normalize: true });
  const ms = performance.now() - t0;
  if (job !== state.job) return;
  const [B, E] = e.dims;
  const cos = cosineMatrix(e.data, B, E);
  renderSimilarities(sentences, cos);
  $('hf-emb-info').textContent = `${B} sentence${B > 1 ? 's' : ''} (${rows.reduce((s, r) => s + r.length, 0)} tokens, padded to ${Math.max(...rows.map((r) => r.length))}) ` +
    `embedded in one batch in ${fmt(ms)} ms: ${pooling === 'mean' ? 'the mean of each sentence\'s token vectors' : 'each sentence\'s first token vector'}, ${E} numbers, normalized.`;
  state.lastEmbed = { sentences, ids: rows, pooling, dims: e.dims, cosines: Array.from(cos), ms };
  state.embeds++;
  const sel = $('hf-att-sentence');
  const keep = Math.min(Number(sel.value) || 0, B - 1);
  sel.replaceChildren(...sentences.map((s, i) => new Option(`${i + 1}: ${s.length > 40 ? `${s.slice(0, 39)}…` : s}`, String(i))));
  sel.value = String(keep);
  $('hf-att-sentence-field').hidden = false;
  await showMemory();
  await attention(rows[keep], `sentence ${keep + 1}`);
}

function renderSimilarities(sentences, cos) {
  const B = sentences.length, table = $('hf-sim');
  const head = document.createElement('tr');
  head.append(document.createElement('th'), ...sentences.map((_, j) => Object.assign(document.createElement('th'), { scope: 'col', textContent: String(j + 1) })));
  table.tHead.replaceChildren(head);
  table.tBodies[0].replaceChildren(...sentences.map((s, i) => {
    const tr = document.createElement('tr');
    const th = Object.assign(document.createElement('th'), { scope: 'row', textContent: `${i + 1}: ${s}` });
    tr.append(th);
    for (let j = 0; j < B; j++) {
      const c = cos[i * B + j], td = document.createElement('td');
      td.className = 'num';
      td.textContent = c.toFixed(3);
      td.title = `sentence ${i + 1} · sentence ${j + 1}: ${c.toFixed(6)}`;
      td.dataset.value = String(c);
      td.style.background = color(Math.max(0, c));
      td.style.color = c > 0.6 ? '#111' : '#fff';
      tr.append(td);
    }
    return tr;
  }));
  table.hidden = false;
}

// ---- attention maps ----
/** Each layer's maps for ids (one forward with needWeights), then the chosen layer drawn. */
async function attention(ids, what) {
  const { model, tokenizer } = state;
  const job = state.job;
  const note = $('hf-att-note');
  $('hf-att').hidden = false;
  if (ids.length > MAX_ATTENTION_TOKENS) {
    state.attention = null;
    $('hf-maps').replaceChildren();
    note.textContent = `The maps are computed for at most ${MAX_ATTENTION_TOKENS} tokens; ${what} have ${ids.length}.`;
    return;
  }
  const r = await model.forward(ids, { needWeights: true, lastOnly: true });
  if (job !== state.job) return;
  state.attention = { ids: Array.from(ids), labels: Array.from(ids, (t) => tokenLabel(tokenizer, t)), maps: r.attentions, what };
  state.attentions++;
  drawAttention();
}

function drawAttention() {
  const a = state.attention, model = state.model;
  if (!a || !model) return;
  const layer = Number($('hf-layer').value), { data, dims } = a.maps[layer];
  const [, H, L, Lk] = dims, n = Math.min(L, MAX_DRAWN_TOKENS), r0 = L - n, c0 = Lk - n;
  const kv = model.modelOptions.attention?.numKvHeads ?? H;
  const maps = [];
  for (let h = 0; h < H; h++) {
    const block = new Float32Array(n * n);
    for (let i = 0; i < n; i++) block.set(data.subarray((h * L + r0 + i) * Lk + c0, (h * L + r0 + i) * Lk + Lk), i * n);
    const fig = heatmap({
      title: `Layer ${layer + 1}, head ${h + 1}`, note: kv < H ? `KV head ${Math.floor(h / (H / kv)) + 1}` : undefined,
      rows: a.labels.slice(r0), cols: a.labels.slice(c0), data: block,
    });
    fig.dataset.head = String(h);
    maps.push(fig);
  }
  $('hf-maps').replaceChildren(...maps);
  $('hf-att-note').textContent = `Every head of layer ${layer + 1} on ${a.what} (${L} tokens), from one forward pass with the attention weights returned. ` +
    `Row i is the token being read, columns the tokens it may look at; ${model.isEncoder ? 'an encoder sees every token' : 'the causal mask hides later ones, and the bottom row is the last step\'s'}.` +
    `${n < L ? ` Only the last ${n} rows and columns are drawn: weight on earlier tokens is not shown.` : ''}`;
  state.drawn = { layer, first: r0, rows: n, heads: H };
}

// ---- controls ----
const chosen = (input) => () => {
  const files = [...input.files];
  input.value = '';  // choosing the same files again loads them again
  if (files.length) guarded(() => load(files), { replaces: true });
};
$('hf-folder').addEventListener('change', chosen($('hf-folder')));
$('hf-files').addEventListener('change', chosen($('hf-files')));
$('hf-int8').addEventListener('change', () => { if (state.files) guarded(() => load(state.files), { replaces: true }); });
$('hf-unload').addEventListener('click', () => guarded(async () => {
  state.files = null;
  await unload();
  $('hf-info').textContent = 'Unloaded: the worker and its memory are gone.';
}));
$('hf-gen-form').addEventListener('submit', (e) => { e.preventDefault(); guarded(generate); });
$('hf-stop').addEventListener('click', () => { state.stop = true; });
$('hf-chat').addEventListener('change', showKeep);
$('hf-keep').addEventListener('change', showKeep);
$('hf-emb-form').addEventListener('submit', (e) => { e.preventDefault(); guarded(embed); });
$('hf-layer').addEventListener('change', () => guarded(async () => drawAttention()));
$('hf-att-sentence').addEventListener('change', () => guarded(async () => {
  const i = Number($('hf-att-sentence').value), ids = state.lastEmbed?.ids[i];
  if (ids && state.model?.isEncoder) await attention(ids, `sentence ${i + 1}`);
}));
