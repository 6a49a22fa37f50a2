// Read-only configuration properties shared by the layer classes (here and in mha-wasm/worker).
export class LayerConfig {
  #cfg;
  constructor(cfg) { this.#cfg = cfg; }
  get embedDim() { return this.#cfg.embedDim; }
  get numHeads() { return this.#cfg.numHeads; }
  get kdim() { return this.#cfg.kdim; }
  get vdim() { return this.#cfg.vdim; }
  get bias() { return this.#cfg.bias; }
  get headDim() { return this.#cfg.headDim; }
}
