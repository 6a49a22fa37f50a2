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
  /** How the weight matrices are stored: 'f32', 'f16' or 'int8'. */
  get weightType() { return this.#cfg.weightType; }
};

export const LayerConfig = withLayerConfig(class {});

/** The Transformer blocks' getters (dModel, nhead, ...) on top of the layer ones. */
export const withBlockConfig = (Base) => class extends withLayerConfig(Base) {
  #cfg;
  constructor(cfg, ...rest) {
    super(cfg, ...rest);
    this.#cfg = cfg;
  }
  get dModel() { return this.#cfg.dModel; }
  get nhead() { return this.#cfg.nhead; }
  get dimFeedforward() { return this.#cfg.dimFeedforward; }
  get activation() { return this.#cfg.activation; }
  get layerNormEps() { return this.#cfg.layerNormEps; }
  get normFirst() { return this.#cfg.normFirst; }
};

/** LayerNorm's getters. */
export const withNormConfig = (Base) => class extends Base {
  #cfg;
  constructor(cfg, ...rest) {
    super(...rest);
    this.#cfg = cfg;
  }
  get normalizedShape() { return this.#cfg.normalizedShape.slice(); }
  get eps() { return this.#cfg.eps; }
  get elementwiseAffine() { return this.#cfg.elementwiseAffine; }
  get bias() { return this.#cfg.bias; }
};

/** RMSNorm's getters. */
export const withRmsNormConfig = (Base) => class extends Base {
  #cfg;
  constructor(cfg, ...rest) {
    super(...rest);
    this.#cfg = cfg;
  }
  get normalizedShape() { return this.#cfg.normalizedShape.slice(); }
  get eps() { return this.#cfg.eps; }
  get elementwiseAffine() { return this.#cfg.elementwiseAffine; }
  get weightOffset() { return this.#cfg.weightOffset; }
};

/** FeedForward's getters. */
export const withFeedForwardConfig = (Base) => class extends Base {
  #cfg;
  constructor(cfg, ...rest) {
    super(...rest);
    this.#cfg = cfg;
  }
  get dModel() { return this.#cfg.dModel; }
  get dimFeedforward() { return this.#cfg.dimFeedforward; }
  get activation() { return this.#cfg.activation; }
  get gated() { return this.#cfg.gated; }
  get bias() { return this.#cfg.bias; }
  get weightType() { return this.#cfg.weightType; }
};
