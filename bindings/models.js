// mha-wasm/models: Hugging Face models (config.json, *.safetensors, tokenizer.json) on
// mha-wasm's Model, in this thread or in a worker.
//
//   import { init } from 'mha-wasm';                       // or 'mha-wasm/worker'
//   import { loadModel, loadTokenizer } from 'mha-wasm/models';
//   const mha = await init();
//   const model = await loadModel(mha, { config, weights: parseSafetensors(bytes) });
//   const tokenizer = await loadTokenizer({ tokenizerJson, tokenizerConfig });
//   for await (const t of model.generate(tokenizer.encode('Hello'), { maxNewTokens: 20 })) ...
//
// The architectures (hf-config.js): BertModel / BertForMaskedLM's encoder, GPT2LMHeadModel,
// LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM. The checkpoint is laid out as the
// Model's calls by hf-weights.js; the next token is chosen by generate.js.
import { MAX_HEAP_BYTES } from './abi.js';
import { modelSpec } from './hf-config.js';
import { checkpointPlan, openedSource } from './hf-weights.js';
import { cacheBytes } from './kvcache.js';
import { modelWeightBytes, tableBlockRows, tableRowsIn } from './model.js';
import { readGenerateOptions, throwIfAborted, tokenChooser } from './generate.js';
import { isBlob } from './safetensors.js';
import { fmtBytes, tooLarge } from './runtime.js';
import { describe, isTypedArray, plainObject, snapshotView } from './validate.js';

export { parseSafetensors, readSafetensors, safetensorsMetadata } from './safetensors.js';
export { loadTokenizer } from './hf-tokenizer.js';

const WEIGHT_TYPES = ['f32', 'f16', 'int8'];
const LOAD_OPTIONS = ['config', 'weights', 'weightType', 'onProgress'];
const FORWARD_OPTIONS = ['attentionMask', 'positionIds', 'tokenTypeIds', 'cache', 'needWeights', 'lastOnly', 'out'];
const EMBED_OPTIONS = ['attentionMask', 'tokenTypeIds', 'pooling', 'normalize'];

/** Rows of a token table or head read from a file at a time: about 16 MiB of float32, whole blocks of 8. */
const tableReadRows = (hidden) => tableRowsIn(hidden, 16 << 20);
/** An object's entries but the null ones. */
const withoutNulls = (o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null));

/** Bytes of wasm memory the weights take (mha::Model::weight_bytes), from the options alone. */
function weightBytes(o, numLayers = o.numLayers, int8Dot) {
  const a = o.attention, heads = a.numHeads, headDim = a.headDim ?? o.hiddenSize / heads;
  return modelWeightBytes({
    hiddenSize: o.hiddenSize, vocabSize: o.vocabSize, numLayers, maxPositions: o.maxPositions ?? 0, typeVocabSize: o.typeVocabSize ?? 0,
    head: o.head, weightType: o.weightType ?? 'f32', attention: { numHeads: heads, numKvHeads: a.numKvHeads ?? heads, headDim, rope: a.rope ?? null },
    feedForward: { dimFeedforward: o.feedForward.dimFeedforward, gated: !!o.feedForward.gated },
  }, int8Dot);
}

// ── weightType: the one place it reaches the core (a Model option) ──────────────────
function withWeightType(options, weightType) {
  return { ...options, weightType };
}

/**
 * Loads a Hugging Face checkpoint into a Model of mha (what init() from 'mha-wasm' or
 * 'mha-wasm/worker' resolves to). options: { config (config.json, parsed), weights (a
 * parseSafetensors result, or an array of them for a sharded checkpoint), weightType =
 * 'f32' | 'f16' | 'int8', onProgress({ loaded, total, part }) }.
 */
export async function loadModel(mha, options) {
  if (mha === null || typeof mha !== 'object' || typeof mha.Model !== 'function')
    throw new TypeError(`loadModel: the first argument must be what init() from 'mha-wasm' or 'mha-wasm/worker' resolves to, got ${describe(mha)}`);
  const o = plainObject('loadModel options', options, LOAD_OPTIONS);
  if (o.config === undefined) throw new TypeError('loadModel: options.config (the parsed config.json) is required');
  if (o.weights === undefined) throw new TypeError('loadModel: options.weights (parseSafetensors results) is required');
  const weightType = o.weightType === undefined ? 'f32' : o.weightType;
  if (!WEIGHT_TYPES.includes(weightType))
    throw new (typeof weightType === 'string' ? RangeError : TypeError)(`loadModel: options.weightType must be one of ${WEIGHT_TYPES.map((w) => `'${w}'`).join(', ')}, got ${describe(weightType)}`);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new TypeError(`loadModel: options.onProgress must be a function, got ${describe(o.onProgress)}`);
  const spec = modelSpec(o.config);

  // Size first, from the configuration alone: the weights plus the largest call's copy of its tensors.
  const { options: mo } = spec, H = mo.hiddenSize;
  const typed = { ...mo, weightType };
  const bytes = weightBytes(typed, mo.numLayers, mha.features?.int8Dot), perBlock = weightBytes(mo, 2) - weightBytes(mo, 1);  // blocks are copied in as float32
  // The copies in the heap: a block's tensors, a block of the token table's rows (or the head's), or the other tables.
  const staging = Math.max(perBlock, 4 * Math.min(mo.vocabSize, tableBlockRows(H)) * H, 4 * ((mo.maxPositions ?? 0) + (mo.typeVocabSize ?? 0) + 2) * H);
  if (!(bytes + staging < MAX_HEAP_BYTES))
    throw tooLarge(`loadModel: ${spec.architecture} with ${mo.numLayers} layers, hidden size ${H} and a vocabulary of ${mo.vocabSize}`, bytes + staging, 'memory for its weights (and to copy the largest part in)');

  const modelOptions = withWeightType(mo, weightType);
  // .safetensors Files or Blobs: their headers now (names, dtypes, dims: the plan's checks), each
  // part's tensors when the part is copied in.
  const weights = Array.isArray(o.weights) ? await Promise.all(o.weights.map((w) => (isBlob(w) ? openedSource(w) : w)))
    : isBlob(o.weights) ? await openedSource(o.weights) : o.weights;
  const plan = checkpointPlan(spec, weights);
  // Then the heap grows once, to what the weights and their copying in need (not in steps that overshoot;
  // with a margin for the allocator's leftovers between them), and a heap the engine cannot grow that far
  // is found out now, before anything is allocated.
  try {
    await mha.reserveMemory(Math.min(bytes + staging + 2 ** 20 + Math.ceil(bytes / 64), MAX_HEAP_BYTES - 1));
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    throw new RangeError(`loadModel: ${spec.architecture} with ${mo.numLayers} layers, hidden size ${H} and a vocabulary of ${mo.vocabSize} ` +
      `needs ${fmtBytes(bytes + staging)} of wasm memory for its weights (and to copy the largest part in), and this engine could not provide it: ${e.message}`);
  }
  // int8 tensors are dequantized (q * scale, exact in float32) and, at weightType 'int8', quantized again
  // per output row by the core: the same int8 values whenever a row spans ±127, as quantizeSafetensors
  // and compressed-tensors checkpoints write them.

  const core = new mha.Model(modelOptions);
  let held;  // the bytes the weights take once set
  let next = null;  // the next part's read, under way
  try {
    // The next part's tensors are read (from Files) while this one is copied in: in a worker the
    // copy runs there, so reading and converting overlap it.
    next = plan.parts.length ? plan.parts[0].fetch() : null;
    for (let i = 0; i < plan.parts.length; i++) {
      const p = plan.parts[i];
      await next;
      const args = p.args();
      p.release();
      next = i + 1 < plan.parts.length ? plan.parts[i + 1].fetch() : null;
      next?.catch(() => {});  // seen when awaited; if this part fails first, nobody awaits it
      // A part read from Blobs is made of arrays of its own: a worker may take them rather than copies.
      const opts = p.fresh ? { transfer: true } : undefined;
      try {
        if (p.table) {
          // The token table or the head from a Blob: read and copied in a piece of rows at a time
          // (the next piece read while this one is copied), the rest of the embeddings as usual.
          if (p.call === 'setEmbeddings') await core.setEmbeddings(withoutNulls(args), opts);
          const rows = tableReadRows(H), put = p.call === 'setEmbeddings' ? 'setTokenRows' : 'setHeadRows';
          let piece = p.table.read(0, Math.min(rows, p.table.rows));
          for (let first = 0; first < p.table.rows; first += rows) {
            const data = await piece;
            piece = first + rows < p.table.rows ? p.table.read(first + rows, Math.min(rows, p.table.rows - first - rows)) : null;
            piece?.catch(() => {});
            await core[put](first, data, { transfer: true });
          }
        } else {
          await (p.call === 'setBlock' ? core.setBlock(Number(p.what.slice(6)), args, opts) : core[p.call](args, opts));
        }
      } catch (e) {
        // A value the weight type cannot store (NaN at 'int8', 70000 at 'f16', ...): which part of the checkpoint.
        const Err = e instanceof RangeError || e instanceof TypeError ? e.constructor : Error;
        throw new Err(`loadModel: ${p.what}: ${e.message}`, { cause: e });
      }
      if (o.onProgress) o.onProgress({ loaded: i + 1, total: plan.parts.length, part: p.what });
    }
    held = await core.memoryBytes();
  } catch (e) {
    core.dispose();
    // A read still under way finishes before the error is thrown, and what it read is let go.
    if (next) await next.catch(() => {});
    for (const p of plan.parts) p.release();
    throw e;
  }
  return new HfModel(core, { ...spec, options: modelOptions }, o.config, held, typeof mha.terminate === 'function');
}

// ---------------------------------------------------------------------------------------
// Inputs: token ids, masks, positions

const isRow = (v) => Array.isArray(v) || isTypedArray(v);

/** Integer values of a row, checked. */
function intRow(name, row, lo, hi) {
  const out = new Int32Array(row.length);
  for (let i = 0; i < row.length; i++) {
    const v = typeof row[i] === 'bigint' ? Number(row[i]) : row[i];
    if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError(`${name}[${i}] must be an integer, got ${describe(row[i])}`);
    if (v < lo || v >= hi) throw new RangeError(`${name}[${i}] = ${v} is outside [${lo}, ${hi})`);
    out[i] = v;
  }
  return out;
}

/**
 * The id padded positions hold: the config's pad id, or 0 where that is outside the vocabulary
 * (a checkpoint's pad or EOS id may be; padded positions are masked, so any id in range does).
 */
const padFill = (pad, vocab) => (pad >= 0 && pad < vocab ? pad : 0);

/** Whether two row masks (null: every row full) are the same. */
const sameMask = (a, b) => (a === null || b === null ? a === b : a.length === b.length && a.every((v, i) => v === b[i]));

/**
 * A batch of integers in any accepted form: one row (number[] / typed array), an array of
 * rows (padded to the longest with pad on `side`; mask marks the real entries), or
 * { data, dims: [B, L] } (or [L]). Returns { data: Int32Array, B, L, mask: Uint8Array | null,
 * single: one sequence (a row, or dims [L]) }.
 */
function readBatch(name, v, { lo = 0, hi = 2 ** 31, pad = 0, side = 'left' } = {}) {
  if (isTypedArray(v)) snapshotView(name, v);  // a detached buffer is a TypeError naming it, not an empty row
  if (isRow(v) && !(Array.isArray(v) && v.length > 0 && isRow(v[0]))) {
    if (v.length === 0) throw new RangeError(`${name} is empty`);
    return { data: intRow(name, v, lo, hi), B: 1, L: v.length, mask: null, single: true };
  }
  if (Array.isArray(v)) {
    const rows = v.map((r, b) => {
      if (!isRow(r)) throw new TypeError(`${name}[${b}] must be a row of integers, got ${describe(r)}`);
      if (isTypedArray(r)) snapshotView(`${name}[${b}]`, r);
      if (r.length === 0) throw new RangeError(`${name}[${b}] is empty`);
      return intRow(`${name}[${b}]`, r, lo, hi);
    });
    const B = rows.length, L = Math.max(...rows.map((r) => r.length));
    const data = new Int32Array(B * L).fill(pad), mask = new Uint8Array(B * L);
    rows.forEach((r, b) => {
      const off = b * L + (side === 'left' ? L - r.length : 0);
      data.set(r, off);
      mask.fill(1, off, off + r.length);
    });
    return { data, B, L, mask: rows.some((r) => r.length < L) ? mask : null, single: false };
  }
  if (v !== null && typeof v === 'object' && 'data' in v && 'dims' in v) {
    const { data, dims } = v;
    if (!Array.isArray(dims) || (dims.length !== 1 && dims.length !== 2) || !dims.every((d) => Number.isSafeInteger(d) && d > 0))
      throw new TypeError(`${name}.dims must be [B, L] (or [L]) of positive sizes, got ${describe(dims)}`);
    if (!isRow(data)) throw new TypeError(`${name}.data must be an Int32Array (or numbers), got ${describe(data)}`);
    if (isTypedArray(data)) snapshotView(`${name}.data`, data);
    const [B, L] = dims.length === 2 ? dims : [1, dims[0]];
    if (data.length !== B * L) throw new RangeError(`${name}.data has ${data.length} entries; dims ${JSON.stringify(dims)} need ${B * L}`);
    return { data: intRow(`${name}.data`, data, lo, hi), B, L, mask: null, single: dims.length === 1 };
  }
  throw new TypeError(`${name} must be token ids (a number[] or Int32Array), an array of rows, or { data: Int32Array, dims: [B, L] }, got ${describe(v)}`);
}

/** HF generate()'s position ids of a mask [B, N]: cumsum(mask) - 1, and 1 where the mask is 0; the last L columns. */
function positionsFromMask(mask, B, N, L) {
  const pos = new Int32Array(B * L);
  for (let b = 0; b < B; b++) {
    let c = 0;
    for (let i = 0; i < N; i++) {
      c += mask[b * N + i];
      if (i >= N - L) pos[b * L + i - (N - L)] = mask[b * N + i] ? c - 1 : 1;
    }
  }
  return pos;
}

const MASKS = new WeakMap();  // a cache -> the attention mask of the positions it holds: { B, N, mask }
// Worker API: a cache -> its last forward still in flight, and what the cache will hold after it
// ({ tail, B, N, mask }). A forward issued before that one answers is prepared against that state
// (cache.length and MASKS change only when an answer arrives) and sent once it has.
const QUEUED = new WeakMap();

/** Records entry ({ tail, B, N, mask }) as cache's last call in flight, until its tail settles (unless a later call's is recorded). */
function queueOn(cache, entry) {
  QUEUED.set(cache, entry);
  const settle = () => { if (QUEUED.get(cache) === entry) QUEUED.delete(cache); };
  entry.tail.then(settle, settle);
}

/** The first n columns of each of the B rows of mask [B, N]. */
const firstColumns = (mask, B, N, n) => Uint8Array.from({ length: B * n }, (_, i) => mask[Math.floor(i / n) * N + (i % n)]);

// ---------------------------------------------------------------------------------------
// The model

class HfModel {
  #core;
  #spec;
  #async;
  #disposed = false;
  #caches = new WeakSet();  // what createCache made: the caches generate({ cache }) takes
  #using = new WeakSet();  // the caller's caches a generation is using

  constructor(core, spec, config, bytes, isAsync) {
    this.#core = core;
    this.#spec = spec;
    this.#async = isAsync;
    /** The config.json the model was loaded from. */
    this.config = config;
    /** 'BertModel', 'GPT2LMHeadModel', ...: config.architectures[0] (or model_type). */
    this.architecture = spec.architecture;
    /** The mha-wasm Model options it runs as. */
    this.modelOptions = spec.options;
    /** Bytes of wasm memory its weights take. */
    this.memoryBytes = bytes;
    /** Token ids that end generation (config.eos_token_id, as a list), and the id padding takes. */
    this.eosTokenIds = Object.freeze([...spec.eos]);
    this.padTokenId = spec.padId;
    /** true for encoders (BERT: hidden states out, embed()); false for the language models. */
    this.isEncoder = spec.encoder;
    this.numLayers = spec.options.numLayers;
    this.numHeads = spec.options.attention.numHeads;
    this.vocabSize = spec.options.vocabSize;
    this.hiddenSize = spec.options.hiddenSize;
    Object.freeze(this);
  }

  get disposed() { return this.#disposed; }

  /** Runs body, returning a Promise for the worker API (a throw becomes a rejection). */
  #run(body) {
    if (!this.#async) return body();
    try {
      return Promise.resolve(body());
    } catch (e) {
      return Promise.reject(e);
    }
  }

  #live(what) {
    if (this.#disposed) throw new Error(`${what}: the model has been disposed`);
  }

  /** KV caches for every layer: { maxLength, batch = 1 }. */
  createCache(options) {
    this.#live('createCache');
    return this.#then(this.#core.createCache(options), (cache) => {
      this.#caches.add(cache);
      this.#guard(cache);
      return cache;
    });
  }

  /**
   * The cache's truncate and reset, kept in order with this model's forwards on it: refused while
   * a generation uses it, and in the worker API sent after the forwards issued before them (which
   * this model holds back, QUEUED), with the state they leave recorded for the calls after them.
   */
  #guard(cache) {
    const using = this.#using;
    for (const op of ['truncate', 'reset']) {
      const own = cache[op].bind(cache);
      Object.defineProperty(cache, op, {
        configurable: true,
        value: (...args) => {
          if (using.has(cache)) {
            const e = new Error(`KVCache.${op}: a generation is using this cache; end it first`);
            if (this.#async) return Promise.reject(e);
            throw e;
          }
          const queued = this.#async ? QUEUED.get(cache) : undefined;
          if (!queued) return own(...args);
          // What the cache will hold: the first n positions of what the queued calls leave (as if valid;
          // an invalid n fails when it runs, and the calls after it run on the cache as it is).
          const n = op === 'reset' ? 0 : Number.isSafeInteger(args[0]) && args[0] >= 0 && args[0] <= queued.N ? args[0] : queued.N;
          const tail = queued.tail.then(() => own(...args), () => own(...args));
          queueOn(cache, { tail, B: queued.B, N: n, mask: queued.mask && n > 0 ? firstColumns(queued.mask, queued.B, queued.N, n) : null });
          return tail;
        },
      });
    }
  }

  /**
   * ids: one sequence (number[] / Int32Array), rows (padded here: on the left for the
   * language models, on the right for BERT), or { data: Int32Array, dims: [B, L] }.
   * options: attentionMask (1 = token, 0 = padding; the same forms, [B, L] or with a cache
   * [B, cache length + L]), positionIds (default: from the mask as HF's generate() computes
   * them, else after the cache), tokenTypeIds (BERT), cache, needWeights, lastOnly.
   * Returns logits [B, L, vocab] (BERT: the last hidden state [B, L, hidden]); with
   * needWeights its attentions ([B, heads, L, cache length + L] per layer).
   */
  forward(ids, options) {
    return this.#run(() => {
      this.#live('forward');
      const given = options?.cache;
      const queued = this.#async && given ? QUEUED.get(given) : undefined;
      const call = this.#prepare(ids, options ?? {}, queued);
      const send = () => this.#core.forward({ data: call.ids, dims: [call.B, call.L] }, call.options);
      const sent = queued
        ? queued.tail.then(send, () => { throw new Error('forward: an earlier forward on this cache failed, so this one, prepared to follow it, was not run'); })
        : send();
      const result = this.#then(sent, (r) => {
        if (call.cache && call.fullMask) MASKS.set(call.cache, { B: call.B, N: call.N, mask: call.fullMask });
        else if (call.cache) MASKS.delete(call.cache);
        const out = { data: r.output.data, dims: r.output.dims };
        if (call.options.needWeights) out.attentions = r.attentions;
        return out;
      });
      if (this.#async && call.cache) queueOn(call.cache, { tail: result, B: call.B, N: call.N, mask: call.fullMask });
      return result;
    });
  }

  #then(v, fn) {
    return v !== null && typeof v === 'object' && typeof v.then === 'function' ? v.then(fn) : fn(v);
  }

  /** A forward's arguments for the core (queued: the state its cache will have, QUEUED). */
  #prepare(ids, options, queued, what = 'forward') {
    const s = this.#spec, o = plainObject(`${what} options`, options, FORWARD_OPTIONS);
    const t = readBatch(`${what}: ids`, ids, { hi: s.options.vocabSize, pad: padFill(s.padId, s.options.vocabSize), side: s.encoder ? 'right' : 'left' });
    const { B, L } = t;
    const cache = o.cache ?? null;
    if (cache && s.encoder) throw new TypeError(`${what}: options.cache given, but ${s.architecture} attends both ways and takes no cache`);
    if (cache && cache.disposed === true) throw new Error(`${what}: options.cache has been disposed`);
    const past = cache ? (queued ? queued.N : cache.length) : 0;
    // The mask of every position the call sees: the cache's and the new ones.
    let mask = t.mask, N = past + L;
    if (o.attentionMask !== undefined && o.attentionMask !== null) {
      if (t.mask) throw new TypeError(`${what}: options.attentionMask given with rows of ids; rows are padded (and masked) here, give ids as { data, dims } to pass your own mask`);
      const m = readBatch(`${what}: options.attentionMask`, o.attentionMask, { lo: 0, hi: 2 });
      if (m.B !== B || (m.L !== L && m.L !== N))
        throw new RangeError(`${what}: options.attentionMask must be [${B}, ${L}]${past ? ` or [${B}, ${N}] (the cache's ${past} positions and the new ones)` : ''}, got [${m.B}, ${m.L}]`);
      mask = Uint8Array.from(m.data);
    }
    let full = null;
    if (mask && mask.length === B * N) full = mask;
    else if (past > 0) {
      const known = queued ? (queued.mask ? queued : undefined) : MASKS.get(cache);
      // A mask of more positions than the cache holds: the cache was truncated, and keeps their first ones.
      const fits = known && known.B === B && known.N >= past;
      if (!queued && known && !fits) MASKS.delete(cache);
      const before = !fits ? null : known.N === past ? known.mask : firstColumns(known.mask, B, known.N, past);
      if (before || mask) {
        full = new Uint8Array(B * N).fill(1);
        for (let b = 0; b < B; b++) {
          if (before) full.set(before.subarray(b * past, (b + 1) * past), b * N);
          if (mask) full.set(mask.subarray(b * L, (b + 1) * L), b * N + past);
        }
      }
    } else full = mask;
    const padded = full !== null && full.includes(0);
    const core = { cache: cache ?? undefined, needWeights: o.needWeights, lastOnly: o.lastOnly, out: o.out };
    if (padded) core.keyPaddingMask = { data: full.map((v) => 1 - v), dims: [B, N] };
    if (o.positionIds !== undefined && o.positionIds !== null) {
      // Rows are padded on the side ids' rows are, and must be as long as them.
      const p = readBatch(`${what}: options.positionIds`, o.positionIds, { lo: 0, hi: s.maxPositions ?? 2 ** 31, side: s.encoder ? 'right' : 'left' });
      if (p.B !== B || p.L !== L) throw new RangeError(`${what}: options.positionIds must be [${B}, ${L}] like ids, got [${p.B}, ${p.L}]`);
      if (!p.single && Array.isArray(o.positionIds) && !sameMask(p.mask, t.mask))
        throw new RangeError(`${what}: options.positionIds given as rows must have the lengths of the rows of ids`);
      core.positionIds = { data: p.data, dims: [B, L] };
    } else if (padded && !s.encoder) {
      core.positionIds = { data: positionsFromMask(full, B, N, L), dims: [B, L] };
    }
    if (o.tokenTypeIds !== undefined && o.tokenTypeIds !== null) {
      if (!s.options.typeVocabSize) throw new TypeError(`${what}: options.tokenTypeIds given, but ${s.architecture} has no token types`);
      const tt = readBatch(`${what}: options.tokenTypeIds`, o.tokenTypeIds, { hi: s.options.typeVocabSize, pad: 0, side: 'right' });
      if (tt.B !== B || tt.L !== L) throw new RangeError(`${what}: options.tokenTypeIds must be [${B}, ${L}] like ids, got [${tt.B}, ${tt.L}]`);
      core.tokenTypes = { data: tt.data, dims: [B, L] };
    }
    for (const k of Object.keys(core)) if (core[k] === undefined) delete core[k];
    return { ids: t.data, B, L, N, cache, fullMask: full, options: core };
  }

  /**
   * Sentence embeddings of an encoder (sentence-transformers' Pooling + Normalize):
   * pooling 'mean' (over the real tokens) or 'cls' (the first token's hidden state, not
   * BERT's tanh pooler), normalize (L2). ids as forward's (rows are right-padded).
   * Returns { data: Float32Array, dims: [B, hidden] }.
   */
  embed(ids, options) {
    return this.#run(() => {
      this.#live('embed');
      if (!this.#spec.encoder) throw new TypeError(`embed: ${this.architecture} is a language model; embed() is for encoders (BertModel)`);
      const o = plainObject('embed options', options ?? {}, EMBED_OPTIONS);
      const pooling = o.pooling ?? 'mean';
      if (pooling !== 'mean' && pooling !== 'cls') throw new (typeof pooling === 'string' ? RangeError : TypeError)(`embed: options.pooling must be 'mean' or 'cls', got ${describe(pooling)}`);
      if (o.normalize !== undefined && typeof o.normalize !== 'boolean') throw new TypeError(`embed: options.normalize must be a boolean, got ${describe(o.normalize)}`);
      const call = this.#prepare(ids, { attentionMask: o.attentionMask, tokenTypeIds: o.tokenTypeIds }, undefined, 'embed');
      const { B, L } = call, E = this.hiddenSize, mask = call.fullMask;
      return this.#then(this.#core.forward({ data: call.ids, dims: [B, L] }, call.options), (r) => {
        const h = r.output.data, out = new Float32Array(B * E), acc = new Float64Array(E);
        for (let b = 0; b < B; b++) {
          acc.fill(0);
          if (pooling === 'cls') for (let k = 0; k < E; k++) acc[k] = h[b * L * E + k];
          else {
            let n = 0;
            for (let i = 0; i < L; i++) {
              if (mask && !mask[b * L + i]) continue;
              n++;
              for (let k = 0; k < E; k++) acc[k] += h[(b * L + i) * E + k];
            }
            for (let k = 0; k < E; k++) acc[k] /= Math.max(n, 1e-9);
          }
          let norm = 1;
          if (o.normalize) norm = Math.max(Math.sqrt(acc.reduce((s, x) => s + x * x, 0)), 1e-12);
          for (let k = 0; k < E; k++) out[b * E + k] = acc[k] / norm;
        }
        return { data: out, dims: [B, E] };
      });
    });
  }

  /**
   * Generates tokens after ids (one prompt, or rows of prompts, left-padded here; or
   * { data, dims } with options.attentionMask), with a KV cache. options: maxNewTokens = 20,
   * temperature, topK, topP, seed (sampling when any of the first three is given; otherwise
   * greedy, HF's do_sample=False), repetitionPenalty, stopTokens (with config.eos_token_id),
   * onToken(token, step). An async iterator: a token id per step for one prompt, an array of
   * B for a batch (a finished row gives the pad id, as HF's output does). A row stops after
   * a stop token; generation after every row has, or after maxNewTokens. signal: an
   * AbortSignal; once it is aborted, the iterator throws its reason instead of the next token.
   * cache: a cache of this model (createCache, batch B) whose positions the prompt continues
   * (a conversation's earlier turns); it is kept, holding the prompt and the new tokens but
   * the last yielded, instead of a cache made and freed here. cache.length says how many
   * positions it holds (after the loop is left early, in a worker, the last yielded token's
   * step may have run). The repetition penalty then counts ids and the new tokens, not the
   * cache's. With a sliding window the rows of a batch continuing a cache must be as long as
   * each other (padding there would take window positions).
   */
  generate(ids, options) {
    this.#live('generate');
    const s = this.#spec;
    if (s.encoder) throw new TypeError(`generate: ${this.architecture} has no language-model head`);
    const opts = readGenerateOptions(options, s.options.vocabSize);
    const t = readBatch('generate: ids', ids, { hi: s.options.vocabSize, pad: padFill(s.padId, s.options.vocabSize), side: 'left' });
    // What Model.createCache asks for: one cache per block, numKvHeads x headDim wide, sliding
    // when every block has the window (modelConfig in model.js).
    const a = s.options.attention, headDim = a.headDim ?? s.options.hiddenSize / a.numHeads;
    const window = (s.options.windowFrom ?? 0) === 0 ? a.slidingWindow ?? 0 : 0;
    // The positions the cache holds already (a caller's cache; in a worker, after the forwards queued on it).
    const past = opts.cache !== null ? this.#cacheRoom(opts.cache, t, opts.maxNewTokens, window) : 0;
    // The cache holds the prompt and every new token but the last (which is never fed back).
    const positions = t.L + opts.maxNewTokens - 1;
    if (s.maxPositions !== null && past + positions > s.maxPositions)
      throw new RangeError(`generate: ${past ? `the cache's ${past} positions, ` : ''}${t.L} prompt tokens and maxNewTokens ${opts.maxNewTokens} do not fit the model's ${s.maxPositions} positions`);
    const kvBytes = cacheBytes(positions, t.B, s.options.numLayers * (a.numKvHeads ?? a.numHeads) * headDim, window);
    if (opts.cache === null && !(positions < 2 ** 31 && kvBytes < MAX_HEAP_BYTES))
      throw tooLarge(`generate: ${t.L} prompt tokens and options.maxNewTokens ${opts.maxNewTokens} (${t.B} sequence${t.B > 1 ? 's' : ''})`, kvBytes, 'memory for the KV caches');
    let mask = t.mask;
    if (opts.attentionMask !== undefined && opts.attentionMask !== null) {
      if (t.mask) throw new TypeError('generate: options.attentionMask given with rows of ids; rows are padded (and masked) here');
      const m = readBatch('generate: options.attentionMask', opts.attentionMask, { lo: 0, hi: 2 });
      if (m.B !== t.B || m.L !== t.L) throw new RangeError(`generate: options.attentionMask must be [${t.B}, ${t.L}] like ids, got [${m.B}, ${m.L}]`);
      mask = Uint8Array.from(m.data);
    }
    if (window && past > 0 && mask && mask.includes(0))
      throw new RangeError(`generate: options.cache: padded rows cannot continue a cache with a sliding window (slidingWindow ${window}): ` +
        'the padding would take window positions; give rows of one length');
    return this.#generate(t, mask, opts, t.single);
  }

  /** generate's options.cache checked for the prompt t and maxNew tokens: the positions it holds. */
  #cacheRoom(cache, t, maxNew, window) {
    const what = 'generate: options.cache';
    if (!this.#caches.has(cache)) throw new TypeError(`${what} must be a cache from this model's createCache(), got ${describe(cache)}`);
    if (cache.disposed === true) throw new Error(`${what} has been disposed`);
    if (cache.batch !== t.B) throw new RangeError(`${what} was created for batch ${cache.batch}, but the prompt has ${t.B} sequence${t.B > 1 ? 's' : ''}`);
    const queued = this.#async ? QUEUED.get(cache) : undefined;
    const past = queued ? queued.N : cache.length, steps = t.L + maxNew - 1;
    // A sliding cache keeps the window's positions: a call's new ones and those they see must fit
    // at once (the prompt's, then each step's one).
    const atOnce = Math.max(t.L + Math.min(window - 1, past), maxNew > 1 ? 1 + Math.min(window - 1, past + steps - 1) : 0);
    if (window ? atOnce > cache.maxLength : past + steps > cache.maxLength)
      throw new RangeError(`${what} holds ${past} of its maxLength ${cache.maxLength} positions; ${t.L} prompt tokens and maxNewTokens ${maxNew} ` +
        `need ${window ? `${atOnce} at once (slidingWindow ${window})` : `${steps} more`} (create it with a larger maxLength, or reset() it)`);
    return past;
  }

  async* #generate({ data, B, L }, mask, opts, single) {
    const V = this.vocabSize, stop = new Set([...this.#spec.eos, ...opts.stopTokens]), pad = this.#spec.padId;
    const fedPad = padFill(pad, V);  // what a finished row feeds the model (its outputs are ignored)
    const pick = tokenChooser(opts);
    const seen = Array.from({ length: B }, (_, b) => {
      const u = new Uint8Array(V);
      for (let i = 0; i < L; i++) if (!mask || mask[b * L + i]) u[data[b * L + i]] = 1;
      return u;
    });
    const done = new Array(B).fill(false);
    throwIfAborted(opts.signal);
    // The caller's cache is kept; one made here is freed once nothing more is computed.
    const own = opts.cache === null, cache = own ? await this.createCache({ maxLength: L + opts.maxNewTokens - 1, batch: B }) : opts.cache;
    // A caller's cache cannot be truncated or reset while the generation runs on it.
    if (!own) this.#using.add(cache);
    const free = () => { if (own) cache.dispose(); else this.#using.delete(cache); };
    let pending = null;
    try {
      // One array takes every step's logits (each is read before the next step is sent): a fresh
      // one per step cost more to touch than the token choice.
      const logits = new Float32Array(B * V);
      pending = this.forward({ data, dims: [B, L] }, { attentionMask: mask ? { data: mask, dims: [B, L] } : undefined, cache, lastOnly: true, out: logits });
      for (let step = 0; step < opts.maxNewTokens; step++) {
        let out;
        try {
          out = await pending;
        } catch (e) {
          // dispose() during a generation (in a worker, the step already sent fails): say so, not "forward".
          if (this.#disposed) throw new Error('generate: the model was disposed during the generation', { cause: e });
          throw e;
        } finally {
          pending = null;
        }
        // Aborted while the step ran (in a worker, or while the caller held the last token): no more tokens.
        throwIfAborted(opts.signal);
        const next = new Int32Array(B);
        for (let b = 0; b < B; b++) {
          if (done[b]) { next[b] = pad; continue; }
          let tok;
          try {
            tok = pick(out.data.subarray(b * V, (b + 1) * V), seen[b]);
          } catch (e) {
            throw new e.constructor(`generate: step ${step}${single ? '' : `, row ${b}`}: ${e.message}`);
          }
          next[b] = tok;
          seen[b][tok] = 1;
          if (stop.has(tok)) done[b] = true;
        }
        const last = step + 1 === opts.maxNewTokens || done.every(Boolean);
        const fed = next.map((t, b) => (done[b] && t === pad ? fedPad : t));
        const step1 = () => this.forward({ data: fed, dims: [B, 1] }, { cache, lastOnly: true, out: logits });
        // In a worker the next step runs while this token is handed out (a rejection is
        // seen when the step is awaited; dropped with the iterator, it is ignored).
        if (!last && this.#async) pending = step1();
        if (pending) pending.catch(() => {});
        // Nothing is computed after the last token: free the cache before handing it out, so a
        // caller that stops calling next() once it has maxNewTokens tokens leaves nothing behind.
        if (last) free();
        const token = single ? next[0] : Array.from(next);
        if (opts.onToken) opts.onToken(token, step);
        yield token;
        if (last) break;
        if (this.#disposed) throw new Error('generate: the model was disposed during the generation');
        throwIfAborted(opts.signal);  // aborted while the caller held the token: no step for nothing
        if (!pending) pending = step1();  // in this thread: after the caller has the token
      }
    } finally {
      if (pending && typeof pending.then === 'function') await pending.then(() => {}, () => {});
      free();
    }
  }

  /** Frees the model's wasm memory. */
  dispose() {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#core.dispose();
  }
}
