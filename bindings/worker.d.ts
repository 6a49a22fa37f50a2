// Type declarations for mha-wasm/worker: the mha-wasm API run in a worker. Its
// classes are index.d.ts's, in 'async' mode (methods return Promises of the same
// values): nothing here restates them.
import type {
  InitOptions, KVCacheOf, LayerNormOf, MhaOf, MultiHeadAttentionOf, TransformerDecoderLayerOf, TransformerEncoderLayerOf,
} from './index.js';
import type { FeedForwardOf, RMSNormOf } from './index.js';

export type {
  AttentionResult, CacheOptions, DecoderForwardOptions, EncoderForwardOptions, ForwardOptions, InitOptions, LayerNormOptions, MhaFile,
  Mode, MultiHeadAttentionOptions, MultiHeadAttentionWeights, Returns, SdpaOptions, Stats, Tensor, TensorMap, TorchMultiHeadAttentionWeights,
  TransferOption, TransformerLayerOptions, Weight,
} from './index.js';
export type { FeedForwardActivation, FeedForwardOptions, FeedForwardWeights, ModelBlockWeights, ModelOptions, ModelResult, RMSNormOptions } from './index.js';
export { encodeSafetensors, parseSafetensors, probeFeatures, quantizeSafetensors, safetensorsMetadata } from './index.js';

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
/** @deprecated the same as KVCache */
export type WorkerKVCache = KVCache;

export interface WorkerMha extends MhaOf<'async'> {
  /** Stops the worker; pending and later calls reject, and init() with the same options starts a new one. */
  terminate(): void;
}

/** Starts a worker and loads the runtime in it (memoized per options, as init() from 'mha-wasm'). */
export declare function init(options?: WorkerInitOptions): Promise<WorkerMha>;
