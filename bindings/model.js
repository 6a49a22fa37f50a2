// Model: a whole Transformer run one call per step (mha::Model): token (+ learned
// position, + token type) embeddings, N pre- or post-norm blocks of
// MultiHeadAttention (every modern option) and FeedForward (plain or gated), a
// final norm and an optional head over the vocabulary, with a KV cache per block.
// mha-wasm/models builds one from a Hugging Face checkpoint; it can also be
// assembled by hand. defineModel: the class where calls are made; modelOps: what
// runs where the runtime is.
import { ACTIVATION, INT8_PASS, WEIGHT_TYPE } from './abi.js';
import { checkFeedForwardArrays, FF_OPTIONS, feedForwardConfig, readWeights as readFeedForwardWeights, WEIGHT_FIELDS as FF_FIELDS } from './feedforward.js';
import { checkWeightArrays, LAYER_OPTIONS, layerConfig, readWeights as readAttentionWeights, scaleFields, WEIGHT_FIELDS, weightArray } from './layer.js';
import { checkData } from './masks.js';
import { checkStorable, positionsLayout, positiveFloat32, readPositions, readWeightType } from './modern.js';
import { MAX_HEAP, recordBytes, tooLarge } from './runtime.js';
import { bool, describe, expectArray, fmtDims, nonNegativeInt, plainObject, positiveInt, product, sameDims, snapshotView, tensor, typedArrayKind, typedArrayLength } from './validate.js';

const OPTIONS = ['vocabSize', 'hiddenSize', 'numLayers', 'maxPositions', 'typeVocabSize', 'embedNorm', 'norm', 'normBias', 'normEps',
  'preNorm', 'finalNorm', 'head', 'causal', 'windowFrom', 'attention', 'feedForward', 'weightType'];
const HEADS = ['none', 'tied', 'untied'];
/**
 * The token table and an untied head go into the heap this many bytes of rows at a
 * time (Model::set_token_rows, set_head_rows): a float32 copy of a whole table would
 * grow the heap, which never shrinks, by hundreds of MB for a large vocabulary.
 */
const TABLE_BLOCK_BYTES = 4 << 20;
/** A piece of a table other than its last is a multiple of this many rows (the core's Model::kRowBlock). */
const TABLE_ROW_BLOCK = 8;
/** Rows of a table [vocab, hidden] that bytes of float32 hold: whole blocks of TABLE_ROW_BLOCK, at least one. */
export const tableRowsIn = (hidden, bytes) => Math.max(TABLE_ROW_BLOCK, Math.floor(bytes / (4 * hidden) / TABLE_ROW_BLOCK) * TABLE_ROW_BLOCK);
/** Rows of a table copied into the heap at a time. */
export const tableBlockRows = (hidden) => tableRowsIn(hidden, TABLE_BLOCK_BYTES);
const FORWARD_OPTIONS = ['tokenTypes', 'positionIds', 'keyPaddingMask', 'cache', 'lastOnly', 'needWeights', 'transfer', 'out'];

const oneOf = (name, v, allowed, dflt) => {
  if (v === undefined) return dflt;
  if (!allowed.includes(v)) throw new (typeof v === 'string' ? RangeError : TypeError)(`${name} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${describe(v)}`);
  return v;
};

/**
 * Model's options, checked: { vocabSize, hiddenSize, numLayers, maxPositions = 0 (a learned
 * position table), typeVocabSize = 0, embedNorm = false, norm = 'layer' | 'rms', normBias = true,
 * normEps = 1e-5, preNorm = true, finalNorm = true, head = 'none' | 'tied' | 'untied', causal = true,
 * windowFrom = 0 (attention.slidingWindow applies from this block on), attention (MultiHeadAttention's
 * options but embedDim, kdim, vdim), feedForward (FeedForward's but dModel) }.
 */
export function modelConfig(options) {
  if (options === undefined || options === null) throw new TypeError('Model: options { vocabSize, hiddenSize, numLayers, attention, feedForward } are required');
  const o = plainObject('Model options', options, OPTIONS);
  const vocabSize = positiveInt('vocabSize', o.vocabSize), hiddenSize = positiveInt('hiddenSize', o.hiddenSize);
  const numLayers = positiveInt('numLayers', o.numLayers);
  const maxPositions = o.maxPositions === undefined ? 0 : nonNegativeInt('maxPositions', o.maxPositions);
  const typeVocabSize = o.typeVocabSize === undefined ? 0 : nonNegativeInt('typeVocabSize', o.typeVocabSize);
  const norm = oneOf('norm', o.norm, ['layer', 'rms'], 'layer');
  const head = oneOf('head', o.head, HEADS, 'none');
  const windowFrom = o.windowFrom === undefined ? 0 : nonNegativeInt('windowFrom', o.windowFrom);
  const weightType = readWeightType('weightType', o.weightType);
  const a = plainObject('attention', o.attention, LAYER_OPTIONS);
  for (const k of ['embedDim', 'kdim', 'vdim', 'weightType'])
    if (a[k] !== undefined) throw new TypeError(`attention.${k} is the model's ${k === 'weightType' ? 'weightType' : 'hiddenSize'}; leave it out`);
  const attention = layerConfig({ ...a, embedDim: hiddenSize, weightType });
  const f = plainObject('feedForward', o.feedForward, FF_OPTIONS);
  for (const k of ['dModel', 'weightType'])
    if (f[k] !== undefined) throw new TypeError(`feedForward.${k} is the model's ${k === 'weightType' ? 'weightType' : 'hiddenSize'}; leave it out`);
  const feedForward = feedForwardConfig({ ...f, dModel: hiddenSize, weightType });
  const cfg = {
    vocabSize, hiddenSize, numLayers, maxPositions, typeVocabSize, embedNorm: bool('embedNorm', o.embedNorm, false), norm,
    normBias: bool('normBias', o.normBias, true), normEps: o.normEps === undefined ? 1e-5 : positiveFloat32('normEps', o.normEps),
    preNorm: bool('preNorm', o.preNorm, true), finalNorm: bool('finalNorm', o.finalNorm, true), head, causal: bool('causal', o.causal, true),
    windowFrom, attention, feedForward, weightType,
    // What the KV cache (kvcache.js) reads of its owner: every block's cache is this wide; the
    // cache never fills up only when every block has the window.
    embedDim: hiddenSize, kdim: hiddenSize, vdim: hiddenSize, cacheWidth: attention.cacheWidth,
    slidingWindow: attention.slidingWindow !== null && windowFrom === 0 ? attention.slidingWindow : null,
  };
  const bytes = modelWeightBytes(cfg);
  if (!(bytes < MAX_HEAP)) throw tooLarge(`Model with ${numLayers} blocks of hiddenSize ${hiddenSize} and vocabSize ${vocabSize}`, bytes, 'memory for its weights');
  return Object.freeze(cfg);
}

/**
 * Bytes of wasm memory the model's weights take once set (mha::Model::weight_bytes), from the
 * configuration alone: the matrices (the blocks' and the head's) at 4, 2 or 1 byte a weight (int8:
 * plus a float scale per output row, and with the relaxed int8 kernel, int8Dot, a column sum per
 * row and INT8_PASS of depth), everything else in float32.
 */
export function modelWeightBytes(cfg, int8Dot = 'dot_i16x8') {
  const up8 = (n) => Math.ceil(n / 8) * 8;
  const H = cfg.hiddenSize, V = cfg.vocabSize, a = cfg.attention, f = cfg.feedForward;
  const nq = a.numHeads * a.headDim, nk = a.numKvHeads * a.headDim, F = f.dimFeedforward;
  const per = { f32: 4, f16: 2, int8: 1 }[cfg.weightType ?? 'f32'], int8 = cfg.weightType === 'int8';
  const sums = int8 && int8Dot === 'relaxed_dot_i8x16_i7x16';
  // W [N, K] packed as K x N (the relaxed kernel's panels: whole k-quads, and a sum per pass)
  const matrix = (K, N) => (sums ? Math.ceil(K / 4) * 4 : K) * up8(N) * per + (int8 ? 4 * up8(N) : 0) + (sums ? 4 * up8(N) * Math.ceil(K / INT8_PASS) : 0);
  const matrices = matrix(H, nq + 2 * nk) + matrix(nq, H) + matrix(H, (f.gated ? 2 : 1) * up8(F)) + matrix(F, H);
  const floats = 2 * up8(nq + 2 * nk) + H + 3 * up8(F) + H + 4 * H + 2 * a.numHeads + 2 * a.headDim + (a.rope ? a.rope.dim : 0);
  // The token table: float32 as given; in f16 or int8, a tied head's rows (no copy) or a packed table.
  const table = (cfg.weightType ?? 'f32') === 'f32' ? 4 * V * H : cfg.head === 'tied' ? 0 : matrix(H, V);
  const emb = (cfg.maxPositions + cfg.typeVocabSize) * H + 4 * H;
  return cfg.numLayers * (matrices + 4 * floats) + table + 4 * emb + (cfg.head === 'none' ? 0 : matrix(H, V));
}

/** The options that rebuild cfg where the runtime is. */
function configOptions(cfg) {
  const { embedDim: _e, kdim: _k, vdim: _v, cacheWidth: _c, slidingWindow: _s, attention, feedForward, ...rest } = cfg;
  const { embedDim, kdim, vdim, cacheWidth, weightType: _w, ...a } = attention;
  const att = { ...a };
  if (att.rope) att.rope = { dim: att.rope.dim, interleaved: att.rope.interleaved, invFreq: Float64Array.from(att.rope.invFreq), attentionFactor: att.rope.attentionFactor };
  if (att.alibi) att.alibi = Float32Array.from(att.alibi);
  for (const k of Object.keys(att)) if (att[k] === null) delete att[k];
  const { dModel, weightType: _fw, ...ff } = feedForward;
  return { ...rest, attention: att, feedForward: ff };
}

/** A float weight of dims (a Float32Array or a tensor), or an error naming it. */
const floatWeight = (what, name, v, dims) => {
  if (v === undefined || v === null) throw new TypeError(`${what}: missing ${name} (a Float32Array of ${product(dims)} = ${fmtDims(dims)} floats)`);
  return weightArray(name, v, dims, what);
};

/**
 * Reads { name: weight } for the entries [name, dims, required] against an object with only those
 * names; required: true, false (the configuration has no use for it) or 'optional'.
 */
function readNamed(what, given, spec) {
  const o = plainObject(`${what}: weights`, given, spec.map(([n]) => n));
  const out = {};
  for (const [name, dims, required] of spec) {
    if (required === 'optional' && (o[name] === undefined || o[name] === null)) continue;
    if (!required) {
      if (o[name] !== undefined && o[name] !== null) throw new TypeError(`${what}: ${name} given, but the model's configuration has no use for it`);
      continue;
    }
    out[name] = floatWeight(what, name, o[name], dims);
  }
  return out;
}

/** The public class over a backend. ctx: { backend, Native, live, caches } (api.js). */
export function defineModel({ backend, Native, live, caches }) {
  class Model extends Native {
    #cfg;
    #sent = { embeddings: false, blocks: new Set(), finalNorm: false };  // the tables: #rows
    #rows = { tokens: -1, head: -1 };  // rows of the token table and the head sent (setTokenRows, setHeadRows); -1: none
    #spare = null;  // forward({ out }) through a worker: the array the worker writes into (see forward)

    /** @param {import('./index').ModelOptions} options */
    constructor(options) {
      const cfg = modelConfig(options);
      super('Model', 'Model', configOptions(cfg));
      this.#cfg = cfg;
    }

    /** The configuration with its defaults filled in (attention and feedForward as their layers report them). */
    get config() { return configOptions(this.#cfg); }

    /**
     * Token table [vocabSize, hiddenSize], and as configured: positions [maxPositions, H], types [typeVocabSize, H],
     * normWeight/normBias [H]. Without tokens, the table comes by setTokenRows.
     */
    setEmbeddings(weights, options) {
      return backend.run(() => {
        const id = live(this, 'setEmbeddings'), c = this.#cfg, H = c.hiddenSize;
        const arrays = readNamed('Model.setEmbeddings', weights, [
          ['tokens', [c.vocabSize, H], 'optional'], ['positions', [c.maxPositions, H], c.maxPositions > 0],
          ['types', [c.typeVocabSize, H], c.typeVocabSize > 0], ['normWeight', [H], c.embedNorm], ['normBias', [H], c.embedNorm && c.normBias],
        ]);
        // The token table is stored as weightType (a tied head: it is the head).
        if (arrays.tokens) checkStorable('Model.setEmbeddings', 'tokens', arrays.tokens, c.weightType ?? 'f32');
        const transfer = transferOf('Model.setEmbeddings', options);
        if (arrays.tokens) this.#rows.tokens = -1;  // until the call is done
        const done = backend.call('Model.setEmbeddings', [id, arrays], { transfer, what: 'Model.setEmbeddings' });
        this.#sent.embeddings = true;
        return arrays.tokens ? this.#rowsSent('tokens', done, c.vocabSize) : done;
      });
    }

    /**
     * Rows [first, first + n) of the token table, rows holding n * hiddenSize floats: the table in
     * pieces, for one too large to hold whole (setEmbeddings without tokens sets the rest). In order
     * from row 0 (first 0 begins the table again), each piece a multiple of 8 rows but the last.
     */
    setTokenRows(first, rows, options) {
      return this.#setRows('setTokenRows', false, first, rows, options);
    }

    /** The head's rows (head: 'untied'), as setTokenRows gives the token table's. */
    setHeadRows(first, rows, options) {
      return this.#setRows('setHeadRows', true, first, rows, options);
    }

    #setRows(name, head, first, rows, options) {
      return backend.run(() => {
        const id = live(this, name), c = this.#cfg, H = c.hiddenSize, V = c.vocabSize, what = `Model.${name}`, key = head ? 'head' : 'tokens';
        if (head && c.head !== 'untied') throw new TypeError(`${what}: the model was created with head: '${c.head}'${c.head === 'tied' ? ' (the token table is the head)' : ''}`);
        nonNegativeInt(`${what}: first`, first);
        if (typedArrayKind(rows) !== 'Float32Array') throw new TypeError(`${what}: rows must be a Float32Array of whole rows of ${H} floats, got ${describe(rows)}`);
        const n = typedArrayLength(rows) / H, next = this.#rows[key];
        if (!Number.isInteger(n) || n < 1) throw new RangeError(`${what}: rows holds ${typedArrayLength(rows)} floats, not a positive number of rows of ${H}`);
        if (first + n > V) throw new RangeError(`${what}: rows ${first}..${first + n - 1} go past the vocabulary's ${V} rows`);
        if (first !== 0 && first !== next)
          throw new RangeError(`${what}: rows come in order: first must be 0 (to begin the table again)${next > 0 && next < V ? ` or ${next}, the next row` : ''}, got ${first}`);
        if (first + n < V && n % TABLE_ROW_BLOCK !== 0) throw new RangeError(`${what}: a piece other than the table's last must be a multiple of ${TABLE_ROW_BLOCK} rows, got ${n}`);
        const data = weightArray('rows', rows, [n, H], what);
        checkStorable(what, 'rows', data, c.weightType ?? 'f32');
        const transfer = transferOf(what, options);
        this.#rows[key] = -1;  // until the rows are in
        return this.#rowsSent(key, backend.call('Model.setTableRows', [id, head, first, data], { transfer, what }), first + n);
      });
    }

    // A table's rows up to `rows` sent (done: the call's result, a Promise in a worker): counted
    // now, and no longer if the call fails later (the core then holds none of the table).
    #rowsSent(key, done, rows) {
      this.#rows[key] = rows;
      if (done && typeof done.then === 'function') done.then(undefined, () => { if (this.#rows[key] === rows) this.#rows[key] = -1; });
      return done;
    }

    /**
     * Block i's weights: { norm1Weight, norm1Bias, attention: MultiHeadAttention's weights (any of its names),
     * norm2Weight, norm2Bias, feedForward: FeedForward's weights }.
     */
    setBlock(i, weights, options) {
      return backend.run(() => {
        const id = live(this, 'setBlock'), c = this.#cfg, H = c.hiddenSize, what = `Model.setBlock(${i})`;
        if (nonNegativeInt('block', i) >= c.numLayers) throw new RangeError(`Model.setBlock: block must be below numLayers ${c.numLayers}, got ${i}`);
        const o = plainObject(`${what}: weights`, weights, ['norm1Weight', 'norm1Bias', 'attention', 'norm2Weight', 'norm2Bias', 'feedForward']);
        const bias = c.norm === 'layer' && c.normBias;
        const norms = readNamed(what, { norm1Weight: o.norm1Weight, norm1Bias: o.norm1Bias, norm2Weight: o.norm2Weight, norm2Bias: o.norm2Bias },
          [['norm1Weight', [H], true], ['norm1Bias', [H], bias], ['norm2Weight', [H], true], ['norm2Bias', [H], bias]]);
        const attention = readAttentionWeights(c.attention, o.attention);
        const feedForward = readFeedForwardWeights(c.feedForward, o.feedForward, `${what}: feedForward`);
        const done = backend.call('Model.setBlock', [id, i, { norms, attention, feedForward }], { transfer: transferOf(what, options), what });
        this.#sent.blocks.add(i);
        return done;
      });
    }

    /** The final norm: { weight, bias } (bias for a LayerNorm with bias). */
    setFinalNorm(weights, options) {
      return backend.run(() => {
        const id = live(this, 'setFinalNorm'), c = this.#cfg, H = c.hiddenSize;
        if (!c.finalNorm) throw new TypeError('Model.setFinalNorm: the model was created with finalNorm: false');
        const arrays = readNamed('Model.setFinalNorm', weights, [['weight', [H], true], ['bias', [H], c.norm === 'layer' && c.normBias]]);
        const done = backend.call('Model.setFinalNorm', [id, arrays], { transfer: transferOf('Model.setFinalNorm', options), what: 'Model.setFinalNorm' });
        this.#sent.finalNorm = true;
        return done;
      });
    }

    /** The head { weight [vocabSize, hiddenSize] } (head: 'untied'; a tied head is the token table). */
    setHead(weights, options) {
      return backend.run(() => {
        const id = live(this, 'setHead'), c = this.#cfg;
        if (c.head !== 'untied') throw new TypeError(`Model.setHead: the model was created with head: '${c.head}'${c.head === 'tied' ? ' (the token table is the head)' : ''}`);
        const arrays = readNamed('Model.setHead', weights, [['weight', [c.vocabSize, c.hiddenSize], true]]);
        checkStorable('Model.setHead', 'weight', arrays.weight, c.weightType ?? 'f32');
        const transfer = transferOf('Model.setHead', options);
        this.#rows.head = -1;  // until the call is done
        const done = backend.call('Model.setHead', [id, arrays], { transfer, what: 'Model.setHead' });
        return this.#rowsSent('head', done, c.vocabSize);
      });
    }

    /** Bytes of wasm memory the weights set so far take, as the core holds them (packed matrices, tables, norms). */
    memoryBytes() {
      return backend.run(() => backend.call('Model.memoryBytes', [live(this, 'memoryBytes')], { what: 'Model.memoryBytes' }));
    }

    /** KV caches for every block: { maxLength, batch = 1 }. */
    createCache(options) {
      live(this, 'createCache');
      return caches.create(this, 'Model.createCache', this.#cfg.cacheWidth * this.#cfg.numLayers, options, this.#cfg.slidingWindow ?? 0);
    }

    /**
     * ids: an Int32Array [L] (one sequence) or a tensor { data: Int32Array, dims: [B, L] }. Options:
     * tokenTypes (like ids), positionIds ([B, L] or [L]; default: after what the cache holds),
     * keyPaddingMask (Uint8Array [B, cache length + L], nonzero = padding), cache, lastOnly (only each
     * sequence's last position), needWeights (attention maps per block [B, H, L, cache length + L]),
     * out (a Float32Array of the output's size, filled and returned as output.data: a decoding loop
     * reuses it instead of touching a fresh array each step).
     * Returns { output: logits [B, L, vocabSize] (or hidden states [B, L, hiddenSize] without a head), attentions }.
     */
    forward(ids, options) {
      return backend.run(() => {
        const id = live(this, 'forward');
        const missing = this.#missing();
        if (missing) throw new Error(`Model.forward: weights are not set: ${missing}`);
        const t = readIds('ids', ids);
        const o = plainObject('Model.forward options', options, FORWARD_OPTIONS);
        const call = {
          ids: t, tokenTypes: o.tokenTypes === undefined || o.tokenTypes === null ? null : readIds('options.tokenTypes', o.tokenTypes),
          positionIds: readPositions('options.positionIds', o.positionIds),
          keyPaddingMask: o.keyPaddingMask === undefined || o.keyPaddingMask === null ? null
            : tensor('options.keyPaddingMask', o.keyPaddingMask, { types: [Uint8Array], ranks: [1, 2], shapeHint: 'dims [B, Lk] or [Lk]' }),
          lastOnly: bool('options.lastOnly', o.lastOnly, false), needWeights: bool('options.needWeights', o.needWeights, false),
        };
        const B = t.dims.length === 2 ? t.dims[0] : 1;
        const n = outputShape(this.#cfg, B, t.dims.at(-1), call.lastOnly).n, out = readOut(o.out, n);
        // In this thread the op writes into out itself. A worker writes into this object's
        // spare array, which is moved there and back (not copied), then copied into out
        // here: a fresh answer every step would make the worker touch new pages (0.6 ms
        // for a 49152-token vocabulary). A spare still on its way (calls not awaited) is
        // not shared: that call gets a new one.
        let spare = null;
        if (out && backend.async) {
          spare = this.#spare !== null && this.#spare.length === n ? this.#spare : new Float32Array(n);
          this.#spare = null;
        }
        call.out = backend.async ? spare : out;
        const c = caches.use(this, 'Model.forward', o.cache, B);
        const answer = caches.after(c, backend.call('Model.forward', [id, call, c ? c.id : 0],
          { transfer: bool('options.transfer', o.transfer, false), move: spare ? [spare] : [], what: 'Model.forward' }));
        if (!out || !backend.async) return answer;
        return backend.then(answer, (r) => {
          out.set(r.output.data);
          this.#spare = r.output.data;
          r.output.data = out;
          return r;
        });
      });
    }

    #missing() {
      const c = this.#cfg, s = this.#sent, out = [];
      if (!s.embeddings) out.push('setEmbeddings');
      else if (this.#rows.tokens !== c.vocabSize) out.push(`setTokenRows (rows ${Math.max(0, this.#rows.tokens)}..${c.vocabSize - 1})`);
      const blocks = Array.from({ length: c.numLayers }, (_, i) => i).filter((i) => !s.blocks.has(i));
      if (blocks.length) out.push(`setBlock(${blocks.length === 1 ? blocks[0] : `${blocks[0]}..${blocks.at(-1)}`})`);
      if (c.finalNorm && !s.finalNorm) out.push('setFinalNorm');
      if (c.head === 'untied' && this.#rows.head !== c.vocabSize) out.push(this.#rows.head > 0 ? `setHeadRows (rows ${this.#rows.head}..${c.vocabSize - 1})` : 'setHead');
      return out.join(', ');
    }
  }
  return Model;
}

const transferOf = (what, options) => bool('options.transfer', plainObject(`${what} options`, options, ['transfer']).transfer, false);

/** What Model.forward writes for B sequences of L tokens: rows per sequence, width, n floats in all. */
function outputShape(cfg, B, L, lastOnly) {
  const rows = lastOnly ? 1 : L, width = cfg.head === 'none' ? cfg.hiddenSize : cfg.vocabSize;
  return { rows, width, n: B * rows * width };
}

/** options.out of Model.forward: null, or a Float32Array of n elements (checked here, before the call runs). */
function readOut(v, n) {
  if (v === undefined || v === null) return null;
  if (typedArrayKind(v) !== 'Float32Array') throw new TypeError(`options.out must be a Float32Array, got ${describe(v)}`);
  snapshotView('options.out', v);  // a detached buffer is a TypeError naming it
  if (typedArrayLength(v) !== n) throw new RangeError(`options.out has ${typedArrayLength(v)} elements; this forward writes ${n}`);
  return v;
}

/** Token ids: an Int32Array [L], or a tensor of Int32Array data, dims [L] or [B, L]. */
function readIds(name, v) {
  if (v instanceof Int32Array || (v && typeof v === 'object' && !('data' in v) && ArrayBuffer.isView(v))) {
    if (typedArrayKind(v)) snapshotView(name, v);  // a detached buffer is a TypeError naming it, not an empty row
    return tensor(name, { data: v, dims: [typedArrayLength(v)] }, { types: [Int32Array], ranks: [1], shapeHint: 'dims [L]' });
  }
  return tensor(name, v, { types: [Int32Array], ranks: [1, 2], shapeHint: 'dims [B, L] or [L]' });
}

/** What runs where the runtime is. ctx: { rt, get(id, kind), cacheFor } (ops.js). */
export function modelOps({ rt, get, cacheFor }) {
  // Rows first.. of a table [vocab, hidden] (the token table, or the untied head; row 0 reserves it
  // first, so that the copies come and go above it) in blocks of rows, each staged alone. The core
  // counts the rows set (tableRows: -1 when not begun, or refused since).
  const setTableRows = (m, head, first, data, what) => {
    const H = m.cfg.hiddenSize, V = m.cfg.vocabSize, block = tableBlockRows(H), next = m.handle.tableRows(head);
    const n = data.length / H;
    if (!Number.isInteger(n) || n < 1 || first + n > V || (first !== 0 && first !== next) || (first + n < V && n % TABLE_ROW_BLOCK !== 0))
      throw new RangeError(`${what}: rows ${first}..${first + n - 1} are not the table's next piece${next < 0 ? ' (the table is not begun, or a piece was refused: begin again from row 0)' : `, row ${next}`}`);
    if (first === 0) rt.check(m.handle.beginTableRows(head), what, () => m.handle.lastRequestBytes());
    for (let r = 0; r < n; r += block) {
      const count = Math.min(block, n - r), st = rt.stage([data.subarray(r * H, (r + count) * H)], what);
      try {
        rt.check(m.handle.setTableRows(head, first + r, count, st.at(0)), what, () => m.handle.lastRequestBytes());
      } finally {
        rt.free(st.ptr);
      }
    }
  };
  const stageRecord = (what, parts, record, values, call) => {
    const names = Object.keys(parts);
    const st = rt.stage([...names.map((n) => parts[n]), recordBytes(record)], what);
    try {
      const rec = st.at(names.length);
      rt.writeRecord(rec, record, values((n) => (parts[n] ? st.at(names.indexOf(n)) : 0)));
      call(rec);
    } finally {
      rt.free(st.ptr);
    }
  };
  return {
    Model(given) {
      const cfg = modelConfig(given);
      const a = cfg.attention, f = cfg.feedForward;
      const record = {
        vocab: cfg.vocabSize, hidden: cfg.hiddenSize, layers: cfg.numLayers, max_positions: cfg.maxPositions, type_vocab: cfg.typeVocabSize,
        embed_norm: cfg.embedNorm, rms_norm: cfg.norm === 'rms', norm_bias: cfg.normBias, norm_eps: cfg.normEps, pre_norm: cfg.preNorm,
        final_norm: cfg.finalNorm, head: HEADS.indexOf(cfg.head), causal: cfg.causal, window_from: cfg.windowFrom,
        attn_num_heads: a.numHeads, attn_bias: a.bias, attn_num_kv_heads: a.numKvHeads, attn_head_dim: a.headDim, attn_qkv_bias: a.qkvBias,
        attn_out_bias: a.outBias, attn_scale: a.scale, attn_softcap: a.softcap ?? 0, attn_window: a.slidingWindow ?? 0, attn_alibi: a.alibi !== null,
        attn_sinks: a.sinks, attn_qk_norm: a.qkNorm !== null, attn_qk_norm_eps: a.qkNormEps, attn_rope_dim: a.rope ? a.rope.dim : 0,
        attn_rope_interleaved: a.rope ? a.rope.interleaved : false, attn_rope_attention_factor: a.rope ? a.rope.attentionFactor : 1,
        dim_feedforward: f.dimFeedforward, activation: ACTIVATION[f.activation.toUpperCase()], gated: f.gated, ffn_bias: f.bias,
        weight_type: WEIGHT_TYPE[cfg.weightType.toUpperCase()],
      };
      return { handle: rt.withRecord('ModelConfig', record, (p) => new rt.mod.Model(p), 'new Model'), cfg, ready: false };
    },

    'Model.setEmbeddings'(id, arrays) {
      const m = get(id, 'Model'), c = m.cfg, H = c.hiddenSize, what = 'Model.setEmbeddings';
      const sizes = { tokens: c.vocabSize * H, positions: c.maxPositions * H, types: c.typeVocabSize * H, normWeight: H, normBias: H };
      for (const [n, a] of Object.entries(arrays)) {
        if (!Object.hasOwn(sizes, n)) throw new TypeError(`${what}: unknown weight ${JSON.stringify(n)}`);
        expectArray(`${what}: ${n}`, a, [Float32Array], sizes[n]);
      }
      // The token table first, so that one the weight type cannot store is refused before the other tables are reserved.
      const { tokens, ...rest } = arrays;
      if (tokens) setTableRows(m, false, 0, tokens, what);
      stageRecord(what, rest, 'EmbeddingWeights', (at) => ({
        tokens: 0, positions: at('positions'), types: at('types'), norm_weight: at('normWeight'), norm_bias: at('normBias'),
      }), (rec) => rt.check(m.handle.setEmbeddings(rec), what, () => m.handle.lastRequestBytes()));
    },

    'Model.setBlock'(id, i, { norms, attention, feedForward }) {
      const m = get(id, 'Model'), c = m.cfg, H = c.hiddenSize, what = `Model.setBlock(${i})`;
      if (!Number.isInteger(i) || i < 0 || i >= c.numLayers) throw new RangeError(`${what}: no such block`);
      for (const [n, a] of Object.entries(norms)) expectArray(`${what}: ${n}`, a, [Float32Array], H);
      checkWeightArrays(`${what}: attention`, c.attention, attention);
      checkFeedForwardArrays(`${what}: feedForward`, c.feedForward, feedForward);
      const parts = { ...norms };
      for (const [n, a] of Object.entries(attention)) parts[`attn_${n}`] = a;
      if (c.attention.alibi) parts.attn_alibi_slopes = c.attention.alibi;
      if (c.attention.rope) parts.attn_rope_inv_freq = c.attention.rope.invFreq;
      for (const [n, a] of Object.entries(feedForward)) parts[n] = a;
      const fields = [...WEIGHT_FIELDS.map((f) => `attn_${f}`), 'attn_alibi_slopes', 'attn_rope_inv_freq', ...FF_FIELDS,
        ...scaleFields('FeedForwardWeights')];
      stageRecord(what, parts, 'BlockWeights', (at) => ({
        norm1_weight: at('norm1Weight'), norm1_bias: at('norm1Bias'), norm2_weight: at('norm2Weight'), norm2_bias: at('norm2Bias'),
        ...Object.fromEntries(fields.map((f) => [f, at(f)])),
      }), (rec) => rt.check(m.handle.setBlock(i, rec), what, () => m.handle.lastRequestBytes()));
    },

    'Model.setFinalNorm'(id, arrays) {
      const m = get(id, 'Model'), what = 'Model.setFinalNorm';
      for (const [n, a] of Object.entries(arrays)) expectArray(`${what}: ${n}`, a, [Float32Array], m.cfg.hiddenSize);
      const st = rt.stage([arrays.weight, arrays.bias ?? null], what);
      try {
        rt.check(m.handle.setFinalNorm(st.at(0), arrays.bias ? st.at(1) : 0), what, () => m.handle.lastRequestBytes());
      } finally {
        rt.free(st.ptr);
      }
    },

    'Model.setTableRows'(id, head, first, rows) {
      const m = get(id, 'Model'), what = head ? 'Model.setHeadRows' : 'Model.setTokenRows';
      if (typeof head !== 'boolean') throw new TypeError('Model.setTableRows: head must be a boolean');
      if (head && m.cfg.head !== 'untied') throw new TypeError(`${what}: the model has no head of its own`);
      if (!Number.isSafeInteger(first) || first < 0) throw new RangeError(`${what}: first must be a non-negative integer`);
      if (!(rows instanceof Float32Array)) throw new TypeError(`${what}: rows must be a Float32Array`);
      expectArray(`${what}: rows`, rows, [Float32Array], rows.length);
      setTableRows(m, head, first, rows, what);
    },

    'Model.memoryBytes'(id) {
      return get(id, 'Model').handle.memoryBytes();
    },

    'Model.setHead'(id, arrays) {
      const m = get(id, 'Model'), what = 'Model.setHead';
      expectArray(`${what}: weight`, arrays.weight, [Float32Array], m.cfg.vocabSize * m.cfg.hiddenSize);
      setTableRows(m, true, 0, arrays.weight, what);
    },

    'Model.forward'(id, call, cacheId) {
      const m = get(id, 'Model'), c = m.cfg, what = 'Model.forward';
      checkData('ids', call.ids, [Int32Array]);
      const batched = call.ids.dims.length === 2, B = batched ? call.ids.dims[0] : 1, L = call.ids.dims.at(-1);
      const ids = call.ids.data;
      for (let i = 0; i < ids.length; i++)
        if (!(ids[i] >= 0 && ids[i] < c.vocabSize)) throw new RangeError(`ids[${i}] = ${ids[i]} is not a token id below vocabSize ${c.vocabSize}`);
      let types = null;
      if (call.tokenTypes) {
        checkData('options.tokenTypes', call.tokenTypes, [Int32Array]);
        if (!sameDims(call.tokenTypes.dims, call.ids.dims)) throw new RangeError(`options.tokenTypes must have the dims of ids ${fmtDims(call.ids.dims)}, got ${fmtDims(call.tokenTypes.dims)}`);
        if (c.typeVocabSize === 0) throw new TypeError('options.tokenTypes given, but the model has no token types');
        types = call.tokenTypes.data;
        for (let i = 0; i < types.length; i++)
          if (!(types[i] >= 0 && types[i] < c.typeVocabSize)) throw new RangeError(`options.tokenTypes[${i}] = ${types[i]} is not below typeVocabSize ${c.typeVocabSize}`);
      }
      const cache = cacheFor(cacheId, id, what, L, B);
      const Lk = cache.past + L;
      const pos = positionsLayout('options.positionIds', call.positionIds, { B, L, batched });
      let positions = null;
      if (pos) {
        positions = pos.shared && B > 1 ? Int32Array.from({ length: B * L }, (_, i) => pos.data[i % L]) : pos.data;
        if (c.maxPositions)
          for (let i = 0; i < positions.length; i++)
            if (!(positions[i] >= 0 && positions[i] < c.maxPositions)) throw new RangeError(`options.positionIds[${i}] = ${positions[i]} is not below the model's ${c.maxPositions} positions`);
      } else if (c.maxPositions && Lk > c.maxPositions) {
        throw new RangeError(`${what}: positions up to ${Lk - 1} do not fit the model's ${c.maxPositions} learned positions`);
      }
      let kpm = null;
      if (call.keyPaddingMask) {
        checkData('options.keyPaddingMask', call.keyPaddingMask, [Uint8Array]);
        const want = batched ? [B, Lk] : [Lk];
        if (!sameDims(call.keyPaddingMask.dims, want)) throw new RangeError(`options.keyPaddingMask must have dims ${fmtDims(want)} (the cache's positions and the new ones), got ${fmtDims(call.keyPaddingMask.dims)}`);
        kpm = call.keyPaddingMask.data;
      }
      // Written into only after the run; refused before it, so that the cache does not move.
      if (call.out && call.out.buffer === rt.views()._f32.buffer) throw new TypeError('options.out must not be a view of the runtime\'s own wasm memory');
      const { rows, width, n: outN } = outputShape(c, B, L, call.lastOnly);
      const H = c.attention.numHeads, wN = call.needWeights ? c.numLayers * B * H * L * Lk : 0;
      if (!(4 * (outN + wN) < MAX_HEAP)) throw tooLarge(what, 4 * (outN + wN), 'memory for its output', true);
      const st = rt.stage([ids, types, positions, kpm, outN * 4, wN * 4, recordBytes('ModelForward')], what);
      try {
        rt.writeRecord(st.at(6), 'ModelForward', {
          batch: B, length: L, ids: st.at(0), token_types: types ? st.at(1) : 0, positions: positions ? st.at(2) : 0,
          key_padding: kpm ? st.at(3) : 0, output: st.at(4), last_only: call.lastOnly, weights: wN ? st.at(5) : 0,
        });
        rt.check(m.handle.forward(st.at(6), cache.handle), what, () => m.handle.lastRequestBytes());
        const output = { data: call.out ? rt.readF32Into(st.at(4), call.out) : rt.readF32(st.at(4), outN), dims: batched ? [B, rows, width] : [rows, width] };
        let attentions = null;
        if (wN) {
          const all = rt.readF32(st.at(5), wN), per = B * H * L * Lk;
          attentions = Array.from({ length: c.numLayers }, (_, i) => ({ data: all.slice(i * per, (i + 1) * per), dims: batched ? [B, H, L, Lk] : [H, L, Lk] }));
        }
        return { result: { output, attentions }, cacheLength: cache.length() };
      } finally {
        rt.free(st.ptr);
      }
    },
  };
}
