// The trained digit-reversal model (web/models/reverse-digits.safetensors, made
// by `npm run train-example`) on mha-wasm: token + learned position embeddings,
// pre-norm TransformerEncoderLayer blocks with a causal mask, a final LayerNorm
// and a linear head. The embeddings and the 64 x 12 head are a few lines of JS;
// everything else runs in WebAssembly. Used by the demo page and by the Node test.
import { parseSafetensors, safetensorsMetadata } from 'mha-wasm';
import { END, MAX_DIGITS, SEP, VOCAB } from './digits.js';

const int = (meta, key) => {
  const v = Number(meta[key]);
  if (!Number.isInteger(v) || v <= 0) throw new TypeError(`model file: metadata "${key}" must be a positive integer, got ${JSON.stringify(meta[key])}`);
  return v;
};

export class DigitsModel {
  /** mha: the api from init(); bytes: the .safetensors file. */
  constructor(mha, bytes) {
    const meta = safetensorsMetadata(bytes);
    if (meta.vocab !== VOCAB.join('')) throw new TypeError(`model file: vocab ${JSON.stringify(meta.vocab)} is not this task's ${JSON.stringify(VOCAB.join(''))}`);
    const cfg = {
      dModel: int(meta, 'd_model'), nhead: int(meta, 'nhead'), dimFeedforward: int(meta, 'dim_feedforward'),
      numLayers: int(meta, 'num_layers'), positions: int(meta, 'positions'), activation: meta.activation,
      normFirst: meta.norm_first === 'true', layerNormEps: Number(meta.layer_norm_eps),
    };
    this.config = Object.freeze(cfg);
    this.metadata = meta;
    const sd = parseSafetensors(bytes);
    const E = cfg.dModel, V = VOCAB.length;
    const take = (name, n) => {
      const t = sd[name];
      if (!t || t.data.length !== n) throw new TypeError(`model file: ${name} must hold ${n} floats`);
      return t.data;
    };
    this.embedding = take('embed.weight', V * E);
    this.positionEmbedding = take('pos_embed.weight', cfg.positions * E);
    this.headWeight = take('head.weight', V * E);
    this.headBias = take('head.bias', V);
    this.layers = [];
    try {
      for (let l = 0; l < cfg.numLayers; l++) {
        const layer = new mha.TransformerEncoderLayer({ dModel: E, nhead: cfg.nhead, dimFeedforward: cfg.dimFeedforward,
          activation: cfg.activation, normFirst: cfg.normFirst, layerNormEps: cfg.layerNormEps });
        this.layers.push(layer);
        layer.setWeights(parseSafetensors(bytes, { prefix: `layers.${l}.` }));
      }
      this.norm = new mha.LayerNorm({ normalizedShape: E, eps: cfg.layerNormEps });
      this.norm.setWeights({ weight: sd['norm.weight'], bias: sd['norm.bias'] });
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  /** Token + position embeddings of tokens [B][T] (all the same length) starting at position start: [B * T * E]. */
  embed(batch, start = 0) {
    const E = this.config.dModel, T = batch[0].length;
    if (start + T > this.config.positions) throw new RangeError(`the model reads at most ${this.config.positions} positions`);
    const x = new Float32Array(batch.length * T * E);
    batch.forEach((tokens, b) => tokens.forEach((tok, t) => {
      const o = (b * T + t) * E;
      for (let k = 0; k < E; k++) x[o + k] = this.embedding[tok * E + k] + this.positionEmbedding[(start + t) * E + k];
    }));
    return x;
  }

  /** The head on the final LayerNorm: logits [rows * V] of hidden [rows * E]. */
  head(hidden, rows) {
    const E = this.config.dModel, V = VOCAB.length;
    const h = this.norm.forward({ data: hidden, dims: [rows, E] }).data;
    const out = new Float32Array(rows * V);
    for (let i = 0; i < rows; i++)
      for (let v = 0; v < V; v++) {
        let s = this.headBias[v];
        for (let k = 0; k < E; k++) s += h[i * E + k] * this.headWeight[v * E + k];
        out[i * V + v] = s;
      }
    return out;
  }

  /** Full causal forward of tokens [B][T] (same length): logits { data [B, T, V], dims }. */
  logits(batch) {
    const B = batch.length, T = batch[0].length, E = this.config.dModel;
    let x = this.embed(batch);
    for (const layer of this.layers) x = layer.forward({ data: x, dims: [B, T, E] }, { isCausal: true }).data;
    return { data: this.head(x, B * T), dims: [B, T, VOCAB.length] };
  }

  /**
   * Greedy decoding with a KV cache per layer: reads digits + '>' in one step,
   * then one token per step until '.'. Returns the tokens read, the answer, the
   * probability of each answer token, and each layer's attention maps
   * [H, N, N] over the N positions read (row i: what position i looked at).
   * onToken(token, probability) is called as each answer token comes.
   */
  generate(digits, { onToken } = {}) {
    if (digits.length < 1 || digits.length > MAX_DIGITS) throw new RangeError(`1 to ${MAX_DIGITS} digits`);
    const { dModel: E, nhead: H, positions: P } = this.config, V = VOCAB.length;
    const caches = this.layers.map((l) => l.createCache({ maxLength: P }));
    const steps = [];  // per step: { pos, n, weights per layer [H, n, pos + n] }
    const read = [...digits, SEP], answer = [], probs = [];
    try {
      let input = read.slice(), pos = 0;
      for (;;) {
        let x = this.embed([input], pos);
        const weights = [];
        for (let l = 0; l < this.layers.length; l++) {
          const r = this.layers[l].forward({ data: x, dims: [input.length, E] }, { cache: caches[l], isCausal: true, needWeights: true });
          x = r.output.data;
          weights.push(r.weights.data);
        }
        steps.push({ pos, n: input.length, weights });
        const logits = this.head(x.subarray((input.length - 1) * E), 1);
        let best = 0, max = -Infinity, sum = 0;
        for (let v = 0; v < V; v++) if (logits[v] > max) { max = logits[v]; best = v; }
        for (let v = 0; v < V; v++) sum += Math.exp(logits[v] - max);
        answer.push(best);
        probs.push(1 / sum);
        if (onToken) onToken(best, 1 / sum);
        pos += input.length;
        if (best === END || pos >= P) break;
        read.push(best);
        input = [best];
      }
    } finally {
      for (const c of caches) c.dispose();
    }
    const N = read.length;
    const maps = this.layers.map((_, l) => {
      const m = new Float32Array(H * N * N);
      for (const { pos, n, weights } of steps)
        for (let h = 0; h < H; h++)
          for (let i = 0; i < n && pos + i < N; i++)
            m.set(weights[l].subarray((h * n + i) * (pos + n), (h * n + i + 1) * (pos + n)), (h * N + pos + i) * N);
      return m;
    });
    return { read, answer, probs, maps, text: answer.filter((t) => t !== END).map((t) => VOCAB[t]).join('') };
  }

  dispose() {
    for (const l of this.layers) l.dispose();
    this.norm?.dispose();
  }
}
