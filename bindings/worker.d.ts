// Type declarations for mha-wasm/worker: the mha-wasm API run in a worker. Its
// classes are index.d.ts's, in 'async' mode (methods return Promises of the same
// values): nothing here restates them.
import type {
  InitOptions, KVCacheOf, LayerNormOf, MhaOf, ModelOf, MultiHeadAttentionOf, TransformerDecoderLayerOf, TransformerEncoderLayerOf,
} from './index.js';
import type { FeedForwardOf, RMSNormOf } from './index.js';

// Every type of the API but the classes' sync aliases, which are redefined below.
export type {
  AttentionResult, CacheOptions, DecoderForwardOptions, DecoderStateDict, EncoderForwardOptions, EncoderStateDict, ForwardOptions,
  HfAttentionWeights, InitOptions, InspectOptions, InspectResult, KVCacheOf, LayerNormOf, LayerNormOptions, LayerNormProperties, MaskOptions,
  MatrixWeight, MhaFile, MhaOf, Mode, ModelOf, MultiHeadAttentionOf, MultiHeadAttentionOptions, MultiHeadAttentionProperties,
  MultiHeadAttentionWeights, ModernAttentionProperties, Returns, RopeOptions, RotaryOptions, RuntimeInfo, ScaleWeights, SdpaOptions, Stats,
  StoredArray, StoredTensor, Tensor, TensorMap, TorchMultiHeadAttentionWeights, TransferOption, TransformerDecoderLayerOf,
  TransformerDecoderLayerOptions, TransformerEncoderLayerOf, TransformerEncoderLayerOptions, TransformerLayerOptions,
  TransformerLayerProperties, Weight, WeightType,
} from './index.js';
export type {
  FeedForwardActivation, FeedForwardOf, FeedForwardOptions, FeedForwardProperties, FeedForwardWeights, ModelBlockWeights, ModelForwardOptions,
  ModelOptions, ModelResult, RMSNormOf, RMSNormOptions, RMSNormProperties,
} from './index.js';
export { encodeSafetensors, parseSafetensors, probeFeatures, quantizeSafetensors, readSafetensors, safetensorsMetadata } from './index.js';

export interface WorkerInitOptions extends InitOptions {
  /** Where bindings/worker-host.js is served from (default: beside this module; bundles use their own copy). Another origin works: it is started through a same-origin blob. */
  workerUrl?: string | URL;
}

export type MultiHeadAttention = MultiHeadAttentionOf<'async'>;
export type TransformerEncoderLayer = TransformerEncoderLayerOf<'async'>;
export type TransformerDecoderLayer = TransformerDecoderLayerOf<'async'>;
export type LayerNorm = LayerNormOf<'async'>;
export type RMSNorm = RMSNormOf<'async'>;
export type FeedForward = FeedForwardOf<'async'>;
export type KVCache = KVCacheOf<'async'>;
export type Model = ModelOf<'async'>;
/** @deprecated the same as KVCache */
export type WorkerKVCache = KVCache;

export interface WorkerMha extends MhaOf<'async'> {
  /** Stops the worker; pending and later calls reject, and init() with the same options starts a new one. */
  terminate(): void;
}

/** Starts a worker and loads the runtime in it (memoized per options, as init() from 'mha-wasm'). */
export declare function init(options?: WorkerInitOptions): Promise<WorkerMha>;
