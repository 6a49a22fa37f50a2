// What `npm run bench:models` runs in Node and in its Chromium page (bench/browser/models-page.mjs):
// the two models' configurations, their seeded random weights by Hugging Face's names, the
// timing loops of mha-wasm/models (prefill and decode of the decoder, embed of the encoder),
// the bytes of weights a decoding step reads, and a copy-bandwidth probe. Plain ESM with no
// Node or DOM APIs, so that both sides run the same code on the same weights.
import { init } from '../bindings/index.js';
import { init as initWorker } from '../bindings/worker.js';
import { loadModel } from '../bindings/models.js';
import { median } from '../web/stats.js';

export { median };

export const PREFILL = 128;

/** A Llama-architecture config.json with SmolLM-135M's shapes. */
export const DECODER_CONFIG = Object.freeze({
  architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 576, num_hidden_layers: 30, num_attention_heads: 9,
  num_key_value_heads: 3, intermediate_size: 1536, vocab_size: 49152, max_position_embeddings: 2048, rms_norm_eps: 1e-5,
  rope_theta: 10000, tie_word_embeddings: true, hidden_act: 'silu', attention_bias: false, mlp_bias: false,
  bos_token_id: 1, eos_token_id: 2,
});

/** A BertModel config.json with all-MiniLM-L6-v2's shapes. */
export const ENCODER_CONFIG = Object.freeze({
  architectures: ['BertModel'], model_type: 'bert', hidden_size: 384, num_hidden_layers: 6, num_attention_heads: 12,
  intermediate_size: 1536, vocab_size: 30522, max_position_embeddings: 512, type_vocab_size: 2, hidden_act: 'gelu',
  layer_norm_eps: 1e-12, pad_token_id: 0,
});

/** FNV-1a of a string: each tensor's own seed, so that its values do not depend on the others. */
function hash(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** n uniform values of standard deviation std around mean, from xorshift32 seeded by (seed, name). */
export function randomTensor(name, n, std, mean = 0, seed = 1) {
  let x = (hash(name) ^ Math.imul(seed, 0x9e3779b1)) >>> 0 || 1;
  const out = new Float32Array(n), a = std * Math.sqrt(3) / 2 ** 31;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    out[i] = mean + (x | 0) * a;
  }
  return out;
}

/**
 * The decoder's tensors by HF's names (model.layers.N.self_attn.q_proj.weight, ...) as
 * [name, dims, std, mean] in checkpoint order; tensor(entry) makes its values. Matrices have
 * std 1/sqrt(fan-in), the embeddings std 1, the norms 1 ± 0.1.
 */
export function decoderTensors(c = DECODER_CONFIG) {
  const E = c.hidden_size, F = c.intermediate_size, hd = E / c.num_attention_heads, nk = c.num_key_value_heads * hd;
  const out = [['model.embed_tokens.weight', [c.vocab_size, E], 1, 0]];
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}`;
    out.push([`${p}.input_layernorm.weight`, [E], 0.1, 1], [`${p}.self_attn.q_proj.weight`, [E, E], 1 / Math.sqrt(E), 0],
      [`${p}.self_attn.k_proj.weight`, [nk, E], 1 / Math.sqrt(E), 0], [`${p}.self_attn.v_proj.weight`, [nk, E], 1 / Math.sqrt(E), 0],
      [`${p}.self_attn.o_proj.weight`, [E, E], 1 / Math.sqrt(E), 0], [`${p}.post_attention_layernorm.weight`, [E], 0.1, 1],
      [`${p}.mlp.gate_proj.weight`, [F, E], 1 / Math.sqrt(E), 0], [`${p}.mlp.up_proj.weight`, [F, E], 1 / Math.sqrt(E), 0],
      [`${p}.mlp.down_proj.weight`, [E, F], 1 / Math.sqrt(F), 0]);
  }
  out.push(['model.norm.weight', [E], 0.1, 1]);
  return out;
}

/** The encoder's tensors by HF's names, as decoderTensors. */
export function encoderTensors(c = ENCODER_CONFIG) {
  const E = c.hidden_size, F = c.intermediate_size, s = 1 / Math.sqrt(E);
  const out = [['embeddings.word_embeddings.weight', [c.vocab_size, E], 1, 0], ['embeddings.position_embeddings.weight', [c.max_position_embeddings, E], 0.1, 0],
    ['embeddings.token_type_embeddings.weight', [c.type_vocab_size, E], 0.1, 0], ['embeddings.LayerNorm.weight', [E], 0.1, 1], ['embeddings.LayerNorm.bias', [E], 0.1, 0]];
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `encoder.layer.${l}`;
    for (const n of ['query', 'key', 'value']) out.push([`${p}.attention.self.${n}.weight`, [E, E], s, 0], [`${p}.attention.self.${n}.bias`, [E], 0.1, 0]);
    out.push([`${p}.attention.output.dense.weight`, [E, E], s, 0], [`${p}.attention.output.dense.bias`, [E], 0.1, 0],
      [`${p}.attention.output.LayerNorm.weight`, [E], 0.1, 1], [`${p}.attention.output.LayerNorm.bias`, [E], 0.1, 0],
      [`${p}.intermediate.dense.weight`, [F, E], s, 0], [`${p}.intermediate.dense.bias`, [F], 0.1, 0],
      [`${p}.output.dense.weight`, [E, F], 1 / Math.sqrt(F), 0], [`${p}.output.dense.bias`, [E], 0.1, 0],
      [`${p}.output.LayerNorm.weight`, [E], 0.1, 1], [`${p}.output.LayerNorm.bias`, [E], 0.1, 0]);
  }
  return out;
}

export const tensorValues = ([name, dims, std, mean], seed = 1) => randomTensor(name, dims.reduce((a, b) => a * b, 1), std, mean, seed);

/** { name: { data, dims } } (what parseSafetensors returns) of a tensor list, every value made now. */
export const checkpoint = (list, seed = 1) => Object.fromEntries(list.map((t) => [t[0], { data: tensorValues(t, seed), dims: t[1] }]));

/**
 * loadModel at weightType, or { skipped: why } when this build of mha-wasm refuses the
 * weight type (int8 before the core has it).
 */
export async function loadAt(mha, config, weights, weightType) {
  try {
    return { model: await loadModel(mha, { config, weights, weightType }) };
  } catch (e) {
    if (weightType !== 'f32' && /weightType|not available/.test(e.message)) return { skipped: e.message };
    throw e;
  }
}

/**
 * The decoder's vocabulary in its GGUF file (bench/models-gguf.mjs): <unk>, <s>, </s>, the 256
 * byte tokens, then CHAR_COUNT tokens that are one CJK character each (U+4E00 on), then
 * "▁t<id>". Prompts are drawn from the one-character tokens, so that llama.cpp's tokenizer
 * (wllama takes the prompt as text) gives back exactly these ids.
 */
export const CHAR_FIRST_ID = 259, CHAR_COUNT = 0x9fff - 0x4e00 + 1;
export const tokenText = (id) => (id >= CHAR_FIRST_ID && id < CHAR_FIRST_ID + CHAR_COUNT ? String.fromCodePoint(0x4e00 + id - CHAR_FIRST_ID) : `▁t${id}`);
/** The ids of generated text: the inverse of tokenText over the normal tokens ('▁' shown as ' '). */
export const textIds = (text) => [...text.matchAll(/ t(\d+)|([\u4e00-\u9fff])/g)].map((m) => (m[1] ? Number(m[1]) : CHAR_FIRST_ID + m[2].codePointAt(0) - 0x4e00));

/** The prompt of round r: PREFILL ids of one-character tokens. */
export function prompt(r) {
  let x = 0x2545f491 ^ Math.imul(r + 1, 0x9e3779b1);
  return Int32Array.from({ length: PREFILL }, () => {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    return CHAR_FIRST_ID + ((x >>> 0) % CHAR_COUNT);
  });
}

/** The greedy token of one row of logits; skip: ids never chosen (llama.cpp's ignore_eos biases EOS to -inf). */
export function argmax(logits, skip = [DECODER_CONFIG.eos_token_id]) {
  let best = -1, v = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > v && !skip.includes(i)) v = logits[i], best = i;
  return best;
}

/** The k most likely ids of a row of logits with their log-probabilities: [{ id, logprob }]. */
export function topLogprobs(logits, k = 5) {
  let max = -Infinity, sum = 0;
  for (const x of logits) max = Math.max(max, x);
  for (const x of logits) sum += Math.exp(x - max);
  const lse = max + Math.log(sum), top = [];
  for (let i = 0; i < logits.length; i++) {
    if (top.length === k && logits[i] <= top[k - 1].x) continue;
    top.push({ id: i, x: logits[i] });
    top.sort((a, b) => b.x - a.x);
    if (top.length > k) top.pop();
  }
  return top.map(({ id, x }) => ({ id, logprob: x - lse }));
}

/**
 * One round of the decoder: an empty cache, the prompt's prefill (lastOnly), then `steps`
 * greedy steps of one token. Returns { prefillMs, stepMs: [ms per step], tokens }: every
 * time is a forward() call and the argmax of its logits, as the caller sees it. check: also
 * top, the 5 most likely ids after the prefill and after the first step (to compare with the peer).
 */
export async function decodeRound(model, cache, ids, steps, { check = false } = {}) {
  await cache.reset();
  // One array takes every step's logits, as generate() does (options.out).
  const logits = new Float32Array(model.vocabSize);
  let t = performance.now();
  let out = await model.forward(ids, { cache, lastOnly: true, out: logits });
  let tok = argmax(out.data);
  const prefillMs = performance.now() - t, stepMs = [], tokens = [tok], top = [];
  if (check) top.push(topLogprobs(out.data));
  for (let s = 0; s < steps; s++) {
    t = performance.now();
    out = await model.forward(Int32Array.of(tok), { cache, lastOnly: true, out: logits });
    tok = argmax(out.data);
    stepMs.push(performance.now() - t);
    tokens.push(tok);
    if (check && s === 0) top.push(topLogprobs(out.data));
  }
  return { prefillMs, stepMs, tokens, ...(check ? { top } : {}) };
}

/** ms of one embed() (mean pooling, normalized) of the encoder over L token ids. */
export async function embedRound(model, r, L = PREFILL) {
  const ids = prompt(r).subarray(0, L);  // ids below 21251 < the encoder's vocabulary
  const t = performance.now();
  await model.embed(ids, { pooling: 'mean', normalize: true });
  return performance.now() - t;
}

/**
 * Bytes of weights one decoding step reads, counted from the config: every block's seven
 * matrices and two norm vectors, the final norm, the head over the vocabulary (the tied token
 * table, all of it) and the one embedding row looked up. int8: one byte per weight plus a
 * float32 scale per output row (per-channel int8, the head included); f16 two bytes, f32 four.
 * Norms and the embedding row are float32.
 */
export function bytesPerToken(c, weightType) {
  const E = c.hidden_size, F = c.intermediate_size, hd = E / c.num_attention_heads, nk = c.num_key_value_heads * hd, V = c.vocab_size;
  const matrices = [[E, E], [nk, E], [nk, E], [E, E], [F, E], [F, E], [E, F], [V, E]];  // [out, in]; the last is the head
  const weights = matrices.map(([o, i], k) => (k < 7 ? c.num_hidden_layers : 1) * o * i).reduce((a, b) => a + b, 0);
  const rows = matrices.map(([o], k) => (k < 7 ? c.num_hidden_layers : 1) * o).reduce((a, b) => a + b, 0);
  const vectors = (2 * c.num_hidden_layers + 1) * E + E;  // norms, and the embedding row
  const perWeight = { f32: 4, f16: 2, int8: 1 }[weightType];
  return perWeight * weights + (weightType === 'int8' ? 4 * rows : 0) + 4 * vectors;
}

/**
 * This process's (or page's) memory copy bandwidth: `dst.set(src)` of mib MiB, the fastest of
 * `reps` copies after one warm-up (a limit: other processes only slow it down), and the median.
 * STREAM's convention: bytes read + bytes written per second.
 */
export function copyBandwidth(mib = 256, reps = 7) {
  return copyProbe(mib)(reps);
}

/**
 * copyBandwidth's measurement with its two buffers allocated once: probe(reps) measures again.
 * A probe before every decoding round (runDecoders) then leaves no garbage for the collector to
 * sweep during the round.
 */
export function copyProbe(mib = 256) {
  const n = mib * 2 ** 20 / 4, src = new Float32Array(n).fill(1), dst = new Float32Array(n).fill(2);
  return (reps = 3) => copyOnce(mib, n, src, dst, reps);
}

function copyOnce(mib, n, src, dst, reps) {
  dst.set(src);
  const ms = [];
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    dst.set(src);
    ms.push(performance.now() - t);
  }
  const best = Math.min(...ms);
  return { mib, reps, bestMs: best, medianMs: median(ms), gbPerS: (2 * n * 4) / (best / 1000) / 1e9, medianGbPerS: (2 * n * 4) / (median(ms) / 1000) / 1e9 };
}

/**
 * What one WebAssembly thread reads per second: a SIMD128 loop summing mib MiB of its memory
 * (four v128.load a 64-byte line into four f32x4 accumulators), the fastest of `reps` passes
 * after one warm-up, and the median. The module is assembled here: (func (param $p i32) (param $end i32) (result f32)).
 */
export function wasmReadBandwidth(mib = 256, reps = 7) {
  const leb = (n) => { const out = []; do { let b = n & 0x7f; n >>>= 7; if (n) b |= 0x80; out.push(b); } while (n); return out; };
  const section = (id, bytes) => [id, ...leb(bytes.length), ...bytes];
  const str = (t) => [t.length, ...[...t].map((c) => c.charCodeAt(0))];
  const pages = mib * 16 + 1;
  const acc = (i) => [0x20, 2 + i, 0x20, 0, 0xfd, 0x00, 4, ...leb(16 * i), 0xfd, 0xe4, 0x01, 0x21, 2 + i];  // acc_i += v128.load offset=16i ($p)
  const body = [1, 4, 0x7b,  // four v128 locals
    0x03, 0x40, ...acc(0), ...acc(1), ...acc(2), ...acc(3),
    0x20, 0, 0x41, 0xc0, 0x00, 0x6a, 0x22, 0, 0x20, 1, 0x49, 0x0d, 0, 0x0b,  // $p += 64; br_if ($p < $end)
    0x20, 2, 0x20, 3, 0xfd, 0xe4, 0x01, 0x20, 4, 0xfd, 0xe4, 0x01, 0x20, 5, 0xfd, 0xe4, 0x01, 0xfd, 0x1f, 0, 0x0b];
  const bytes = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...section(1, [1, 0x60, 2, 0x7f, 0x7f, 1, 0x7d]), ...section(3, [1, 0]), ...section(5, [1, 0, ...leb(pages)]),
    ...section(7, [2, ...str('m'), 2, 0, ...str('sum'), 0, 0]), ...section(10, [1, ...leb(body.length), ...body])]);
  const { exports } = new WebAssembly.Instance(new WebAssembly.Module(bytes));
  const n = mib * 2 ** 20;
  new Float32Array(exports.m.buffer, 0, n / 4).fill(1);  // every page written: none is the shared zero page
  if (exports.sum(0, 1024) !== 64) throw new Error('wasmReadBandwidth: the probe sums wrongly');
  exports.sum(0, n);
  const ms = [];
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    exports.sum(0, n);
    ms.push(performance.now() - t);
  }
  const best = Math.min(...ms);
  return { mib, reps, bestMs: best, medianMs: median(ms), gbPerS: n / (best / 1000) / 1e9, medianGbPerS: n / (median(ms) / 1000) / 1e9 };
}

export const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * mha-wasm's contestants: for each thread count a runtime (init({ threads }) of mha-wasm, or
 * of mha-wasm/worker with api 'worker'), and in it the decoder (and the encoder) at each weight type. Returns { decoders, encoders, notes }: a
 * decoder is { id, lib, weightType, threads, build, round(r, steps) -> decodeRound's result },
 * an encoder { id, ..., embed(r) -> ms }. A weight type the build refuses is left out, with a note.
 */
export async function mhaContestants({ api = 'main', threads = [1, 2], weightTypes = ['f32'], int8Dots = ['auto'], decoder = true, encoder = true, maxLength = 512, seed = 1 } = {}) {
  const decoders = [], encoders = [], notes = [], refused = new Set();
  // A runtime per thread count and int8 kernel (init's int8Dot); other weight types run on the first kernel's.
  const runtimes = [];
  for (const t of threads)
    for (const [i, int8Dot] of int8Dots.entries()) runtimes.push({ mha: await (api === 'worker' ? initWorker : init)({ threads: t, int8Dot }), dotIndex: i });
  const kinds = [];
  if (decoder) kinds.push(['decoder', DECODER_CONFIG, () => checkpoint(decoderTensors(), seed)]);
  if (encoder) kinds.push(['encoder', ENCODER_CONFIG, () => checkpoint(encoderTensors(), seed)]);
  for (const [kind, config, make] of kinds) {
    let weights = make();  // every contestant of this kind loads these; dropped afterwards
    for (const { mha, dotIndex } of runtimes) {
      for (const weightType of weightTypes) {
        if (refused.has(weightType) || (weightType !== 'int8' && dotIndex > 0)) continue;
        const { model, skipped } = await loadAt(mha, config, weights, weightType);
        if (skipped) {
          refused.add(weightType);
          notes.push(`${weightType} skipped: ${skipped}`);
          continue;
        }
        const kernel = weightType === 'int8' && int8Dots.length > 1 ? ` ${mha.features.int8Dot}` : '';
        const c = { id: `mha-wasm${api === 'worker' ? '/worker' : ''} ${weightType}${kernel} ${mha.threads}t`, lib: 'mha-wasm', api, weightType, threads: mha.threads, build: mha.build, memoryBytes: model.memoryBytes };
        if (kind === 'decoder') {
          const cache = await model.createCache({ maxLength });
          decoders.push({ ...c, round: (r, steps, o) => decodeRound(model, cache, prompt(r), steps, o), dispose: () => { cache.dispose(); model.dispose(); } });
        } else {
          encoders.push({ ...c, embed: (r) => embedRound(model, r), dispose: () => model.dispose() });
        }
      }
    }
    weights = null;
  }
  return { decoders, encoders, notes, runtimes: runtimes.map((r) => r.mha) };
}

/**
 * Runs `rounds` rounds of every decoder, interleaved (each round in a rotated order, after a
 * warm-up round each), a pause between runs so that another runtime's threads stop spinning.
 * Returns per id { prefillMs: [per round], stepMs: [every step], tokens and top: the warm-up's }.
 */
export async function runDecoders(list, { rounds, steps, log = () => {}, probe = null }) {
  const out = Object.fromEntries(list.map((c) => [c.id, { prefillMs: [], stepMs: [], tokens: null, top: null, extra: [], roundStepMs: [], roundGbPerS: [] }]));
  for (let r = -1; r < rounds; r++) {
    for (let i = 0; i < list.length; i++) {
      const c = list[(i + Math.max(r, 0)) % list.length];
      await pause(50);
      // The copy bandwidth right before the round, for the limit paired with it.
      if (r >= 0 && probe && c.lib === 'mha-wasm') out[c.id].roundGbPerS.push((await probe()).gbPerS);
      const res = await c.round(r < 0 ? 0 : r, steps, { check: r < 0 });
      if (r < 0) {
        out[c.id].tokens = res.tokens;
        out[c.id].top = res.top;
        continue;
      }
      out[c.id].prefillMs.push(res.prefillMs);
      out[c.id].stepMs.push(...res.stepMs);
      out[c.id].roundStepMs.push(median(res.stepMs));
      if (res.extra) out[c.id].extra.push(res.extra);
      log(`round ${r + 1}/${rounds} ${c.id}: prefill ${res.prefillMs.toFixed(0)} ms, step median ${median(res.stepMs).toFixed(1)} ms`);
    }
  }
  return out;
}

/** Runs `rounds` embeds of every encoder, interleaved after a warm-up each. Returns per id [ms]. */
export async function runEncoders(list, { rounds }) {
  const out = Object.fromEntries(list.map((c) => [c.id, []]));
  for (let r = -1; r < rounds; r++) {
    for (let i = 0; i < list.length; i++) {
      const c = list[(i + Math.max(r, 0)) % list.length];
      await pause(20);
      const ms = await c.embed(Math.max(r, 0));
      if (r >= 0) out[c.id].push(ms);
    }
  }
  return out;
}
