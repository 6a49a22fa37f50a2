// The browser side of bench/models.mjs: mha-wasm's decoder and encoder (the same code as in
// Node, ../models-lib.mjs) and the peer, @wllama/wllama (llama.cpp in WebAssembly), running
// the same decoder from the GGUF file the runner wrote (served at /models/decoder-q8_0.gguf),
// in this one cross-origin-isolated page. The runner calls setup(), then round(id, r, steps),
// embed(id, r) and bandwidth(), interleaving the contestants itself.
import { Wllama } from '/wllama/esm/index.js';
import { copyBandwidth, copyProbe, mhaContestants, prompt, textIds, tokenText, wasmReadBandwidth } from '../models-lib.mjs';

const decoders = new Map(), encoders = new Map();
const logs = [];
const logger = {
  debug: () => {}, log: () => {},
  warn: (...a) => logs.push(`warn: ${a.join(' ')}`), error: (...a) => logs.push(`error: ${a.join(' ')}`),
};

/**
 * llama.cpp through wllama, at threads: one Wllama instance (its own worker) with the GGUF
 * loaded, CPU only. A round is one raw completion from the prompt's token ids: greedy,
 * EOS ignored, no prompt cache, steps + 1 tokens (the first one comes from the prefill, as
 * mha-wasm's), streamed with llama.cpp's own timings per token. The prompt goes in as text
 * (wllama refuses token ids), one character per token, and the tokens come back as text.
 */
async function wllamaContestant(threads, blob, steps) {
  const w = new Wllama({ default: new URL('/wllama/esm/wasm/wllama.wasm', location.href).href }, { logger });
  const t0 = performance.now();
  await w.loadModel([blob], { n_threads: threads, n_ctx: 512, n_batch: 512, n_ubatch: 512, n_gpu_layers: 0, n_parallel: 1 });
  const loadMs = performance.now() - t0;
  const round = async (r, n, { check = false } = {}) => {
    const chunks = [];
    const t = performance.now();
    await w.createCompletion({
      prompt: Array.from(prompt(r), tokenText).join(''), max_tokens: n + 1, temperature: 0, top_k: 1, ignore_eos: true, cache_prompt: false,
      ...(check ? { logprobs: 5 } : {}), timings_per_token: true, stream: true, onData: (c) => chunks.push({ at: performance.now() - t, c }),
    });
    const timed = chunks.filter((x) => x.c.timings);
    const last = timed.at(-1)?.c.timings;
    if (!last) throw new Error(`wllama: no timings in its ${chunks.length} chunks`);
    // llama.cpp's own clock: predicted_ms after each token; a step is the difference.
    const stepMs = [];
    for (let i = 1; i < timed.length; i++) {
      const a = timed[i - 1].c.timings, b = timed[i].c.timings;
      if (b.predicted_n > a.predicted_n) stepMs.push((b.predicted_ms - a.predicted_ms) / (b.predicted_n - a.predicted_n));
    }
    const tokens = textIds(chunks.map((x) => x.c.choices?.[0]?.text ?? '').join(''));
    if (last.prompt_n !== prompt(r).length || last.cache_n) throw new Error(`wllama: ${last.prompt_n} prompt tokens evaluated (${last.cache_n} from its cache), expected ${prompt(r).length}`);
    const top = check ? chunks.flatMap((x) => x.c.choices?.[0]?.logprobs?.content ?? []).slice(0, 2)
      .map((t) => t.top_logprobs.map(({ id, logprob }) => ({ id, logprob }))) : undefined;
    return {
      prefillMs: last.prompt_ms, stepMs, tokens, top,
      extra: { predictedN: last.predicted_n, predictedMs: last.predicted_ms, wallMs: chunks.at(-1).at, firstChunkMs: chunks[0].at, chunks: chunks.length },
    };
  };
  return {
    id: `wllama q8_0 ${threads}t`, lib: 'wllama', weightType: 'q8_0', threads, multithread: w.isMultithread(), nThreads: w.getNumThreads(),
    loadMs, round, dispose: () => w.exit(),
  };
}

const describe = ({ round, embed, dispose, ...rest }) => rest;

/** Loads every contestant; resolves to their descriptions and notes. */
self.setup = async ({ apis, threads, weightTypes, int8Dots, wllama, encoder, steps }) => {
  const notes = [];
  for (const api of apis) {
    const mha = await mhaContestants({ api, threads, weightTypes, int8Dots, encoder });
    for (const c of mha.decoders) decoders.set(c.id, c);
    for (const c of mha.encoders) encoders.set(c.id, c);
    notes.push(...mha.notes.map((n) => `${api} API: ${n}`));
  }
  if (wllama) {
    const blob = await (await fetch('/models/decoder-q8_0.gguf')).blob();
    for (const t of threads) {
      try {
        const c = await wllamaContestant(t, blob, steps);
        decoders.set(c.id, c);
      } catch (e) {
        notes.push(`wllama with ${t} thread(s) failed: ${e.message}`);
      }
    }
  }
  return { decoders: [...decoders.values()].map(describe), encoders: [...encoders.values()].map(describe), notes, logs: logs.slice() };
};
self.round = (id, r, steps, o) => decoders.get(id).round(r, steps, o);
self.embed = (id, r) => encoders.get(id).embed(r);
self.bandwidth = () => ({ copy: copyBandwidth(), read: wasmReadBandwidth() });
let probe = null;  // before each decoding round (runDecoders' probe), its buffers allocated once
self.copyProbe = () => (probe ??= copyProbe(256))(3);
self.logs = () => logs.slice();
self.benchInfo = {
  crossOriginIsolated: self.crossOriginIsolated, hardwareConcurrency: navigator.hardwareConcurrency, userAgent: navigator.userAgent,
  wllamaVersion: Wllama.getLibllamaVersion?.() ?? null,
};
self.benchReady = true;
