// Read-only configuration properties of the layer classes (here and in
// mha-wasm/worker), as mixins so they can sit on top of another base class. One
// factory makes them all: withConfig(keys) adds a getter per key of the frozen
// configuration the constructor is given (arrays and typed arrays as copies).
const configs = new WeakMap();  // object -> its configuration

const copy = (v) => (Array.isArray(v) ? v.slice() : ArrayBuffer.isView(v) ? v.slice() : v);

/** A mixin: constructor(cfg, ...rest) keeps cfg and passes rest on; a getter for each key. */
const withConfig = (keys) => (Base) => {
  class WithConfig extends Base {
    constructor(cfg, ...rest) {
      super(...rest);
      configs.set(this, cfg);
    }
  }
  for (const key of keys)
    Object.defineProperty(WithConfig.prototype, key, { get() { return copy(configs.get(this)[key]); }, configurable: true });
  return WithConfig;
};

// nn.MultiheadAttention's options, shared with the blocks (weightType: how the matrices are stored).
const LAYER_KEYS = ['embedDim', 'numHeads', 'kdim', 'vdim', 'bias', 'headDim', 'weightType'];

/** MultiHeadAttention's getters: the layer's and the modern options'. */
export const withAttentionConfig = withConfig([...LAYER_KEYS, 'numKvHeads', 'qkvBias', 'outBias', 'scale', 'slidingWindow', 'softcap',
  'sinks', 'qkNorm', 'qkNormEps']);

/** The Transformer blocks' getters (dModel, nhead, ...) and the layer ones. */
export const withBlockConfig = withConfig([...LAYER_KEYS, 'dModel', 'nhead', 'dimFeedforward', 'activation', 'layerNormEps', 'normFirst']);

/** LayerNorm's getters. */
export const withNormConfig = withConfig(['normalizedShape', 'eps', 'elementwiseAffine', 'bias']);

/** RMSNorm's getters. */
export const withRmsNormConfig = withConfig(['normalizedShape', 'eps', 'elementwiseAffine', 'weightOffset']);

/** FeedForward's getters. */
export const withFeedForwardConfig = withConfig(['dModel', 'dimFeedforward', 'activation', 'gated', 'bias', 'weightType']);
