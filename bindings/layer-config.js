// Read-only configuration properties shared by the layer classes (here and in
// mha-wasm/worker), as a mixin so they can sit on top of another base class.
export const withLayerConfig = (Base) => class extends Base {
  #cfg;
  constructor(cfg, ...rest) {
    super(...rest);
    this.#cfg = cfg;
  }
  get embedDim() { return this.#cfg.embedDim; }
  get numHeads() { return this.#cfg.numHeads; }
  get kdim() { return this.#cfg.kdim; }
  get vdim() { return this.#cfg.vdim; }
  get bias() { return this.#cfg.bias; }
  get headDim() { return this.#cfg.headDim; }
};

export const LayerConfig = withLayerConfig(class {});
