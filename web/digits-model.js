// The trained digit-reversal model (web/models/reverse-digits.safetensors, made
// by `npm run train-example`) on mha-wasm: token + learned position embeddings,
// pre-norm TransformerEncoderLayer blocks with a causal mask, a final LayerNorm
// and a linear head. The embeddings and the 64 x 12 head are a few lines of JS;
// everything else runs in WebAssembly. It awaits every call, so the same code
// runs on either API: mha-wasm (the Node tests and benchmark) or mha-wasm/worker
// (the demo page, whose main thread never blocks). It imports nothing from the
// package, so it loads the same way in Node and on a page (import map).
import { END, MAX_DIGITS, SEP, VOCAB } from './digits.js';

const int = (meta, key) => {
  const v = Number(meta[key]);
  if (!Number.isInteger(v) || v <= 0) throw new TypeError(`model file: metadata "${key}" must be a positive integer, got ${JSON.stringify(meta[key])}`);
  return v;
};

export class DigitsModel {
  /**
   * The model with its weights set: mha is the api from either init(); tensors
   * and meta: parseSafetensors(file) and safetensorsMetadata(file); options.weightType: the blocks' weights as f32, f16 or int8.
   */
  static async load(mha, tensors, meta, { weightType = 'f32' } = {}) {
    const model = new DigitsModel(mha, tensors, meta, weightType);
    try {
      await model.#setWeights(tensors);
    } catch (e) {
      model.dispose();
      throw e;
    }
    return model;
  }

  #mha;
  /** Use DigitsModel.load(), which also sets the weights. */
  constructor(mha, tensors, meta, weightType = 'f32') {
    this.#mha = mha;
    if (meta.vocab !== VOCAB.join('')) throw new TypeError(`model file: vocab ${JSON.stringify(meta.vocab)} is not this task's ${JSON.stringify(VOCAB.join(''))}`);
    const cfg = {
      dModel: int(meta, 'd_model'), nhead: int(meta, 'nhead'), dimFeedforward: int(meta, 'dim_feedforward'),
      numLayers: int(meta, 'num_layers'), positions: int(meta, 'positions'), activation: meta.activation,
      normFirst: meta.norm_first === 'true', layerNormEps: Number(meta.layer_norm_eps),
    };
    this.config = Object.freeze(cfg);
    this.metadata = meta;
    const sd = tensors;
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
      for (let l = 0; l < cfg.numLayers; l++)
        this.layers.push(new mha.TransformerEncoderLayer({ dModel: E, nhead: cfg.nhead, dimFeedforward: cfg.dimFeedforward,
          activation: cfg.activation, normFirst: cfg.normFirst, layerNormEps: cfg.layerNormEps, weightType }));
      this.norm = new mha.LayerNorm({ normalizedShape: E, eps: cfg.layerNormEps });
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  async #setWeights(sd) {
    for (const [l, layer] of this.layers.entries()) {
      const prefix = `layers.${l}.`;
      await layer.setWeights(Object.fromEntries(Object.keys(sd).filter((k) => k.startsWith(prefix)).map((k) => [k.slice(prefix.length), sd[k]])));
    }
    await this.norm.setWeights({ weight: sd['norm.weight'], bias: sd['norm.bias'] });
  }

  /** Which build runs the model. */
  get build() { return this.#mha.build; }

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
  async head(hidden, rows) {
    const E = this.config.dModel, V = VOCAB.length;
    const h = (await this.norm.forward({ data: hidden, dims: [rows, E] })).data;
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
  async logits(batch) {
    const B = batch.length, T = batch[0].length, E = this.config.dModel;
    let x = this.embed(batch);
    for (const layer of this.layers) x = (await layer.forward({ data: x, dims: [B, T, E] }, { isCausal: true })).data;
    return { data: await this.head(x, B * T), dims: [B, T, VOCAB.length] };
  }

  /**
   * Greedy decoding with a KV cache per layer, one step at a time: the first step
   * reads digits + '>' at once, every later step reads the token it produced last,
   * until '.'. Each step costs attention over the cached positions only. Yields
   * after every step { token, probability, read, answer, maps }: read = the
   * tokens read so far (N of them), maps = each layer's attention maps [H, N, N]
   * (row i: what position i looked at when it was read), ms = the step's time.
   * Stopping early (return()) frees the caches.
   */
  async *decode(digits) {
    if (!Array.isArray(digits) || digits.length < 1 || digits.length > MAX_DIGITS || !digits.every((d) => Number.isInteger(d) && d >= 0 && d <= 9))
      throw new RangeError(`digits must be an array of 1 to ${MAX_DIGITS} digits 0-9`);
    const { dModel: E, nhead: H, positions: P } = this.config, V = VOCAB.length;
    const caches = this.layers.map((l) => l.createCache({ maxLength: P }));
    const full = this.layers.map(() => new Float32Array(H * P * P));  // rows as they are read
    const read = [...digits, SEP], answer = [];
    const mapsFor = (N) => full.map((m) => {
      const out = new Float32Array(H * N * N);
      for (let h = 0; h < H; h++) for (let i = 0; i < N; i++) out.set(m.subarray((h * P + i) * P, (h * P + i) * P + N), (h * N + i) * N);
      return out;
    });
    try {
      let input = read.slice(), pos = 0;
      for (;;) {
        const n = input.length, Lk = pos + n, t0 = performance.now();
        let x = this.embed([input], pos);
        for (let l = 0; l < this.layers.length; l++) {
          const r = await this.layers[l].forward({ data: x, dims: [n, E] }, { cache: caches[l], isCausal: true, needWeights: true });
          x = r.output.data;
          for (let h = 0; h < H; h++)
            for (let i = 0; i < n; i++) full[l].set(r.weights.data.subarray((h * n + i) * Lk, (h * n + i + 1) * Lk), (h * P + pos + i) * P);
        }
        const logits = await this.head(x.subarray((n - 1) * E), 1);
        let token = 0;
        for (let v = 1; v < V; v++) if (logits[v] > logits[token]) token = v;
        let sum = 0;
        for (let v = 0; v < V; v++) sum += Math.exp(logits[v] - logits[token]);
        answer.push(token);
        pos = Lk;
        const done = token === END || pos >= P;
        const ms = performance.now() - t0;
        yield { token, probability: 1 / sum, read: read.slice(), answer: answer.slice(), maps: mapsFor(pos), done, ms };
        if (done) return;
        read.push(token);
        input = [token];
      }
    } finally {
      for (const c of caches) c.dispose();
    }
  }

  /** decode() to the end: { read, answer, probabilities, maps, text }; onToken(token, probability) per step. */
  async generate(digits, { onToken } = {}) {
    let last = null;
    const probabilities = [];
    for await (const step of this.decode(digits)) {
      probabilities.push(step.probability);
      if (onToken) onToken(step.token, step.probability);
      last = step;
    }
    const text = last.answer.filter((t) => t !== END).map((t) => VOCAB[t]).join('');
    return { read: last.read, answer: last.answer, probabilities, maps: last.maps, text };
  }

  dispose() {
    for (const l of this.layers) l.dispose();
    this.norm?.dispose();
  }
}
