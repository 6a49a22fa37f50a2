// Type declarations for mha-wasm/worker: the mha-wasm API run in a worker, with Promise methods.
import type {
  AttentionResult, CacheOptions, DecoderForwardOptions, DecoderStateDict, EncoderForwardOptions, EncoderStateDict, ForwardOptions,
  InitOptions, LayerNormOptions, LayerNormProperties, RuntimeInfo, MultiHeadAttentionOptions, MultiHeadAttentionProperties, MultiHeadAttentionWeights, SdpaOptions, Tensor,
  TensorMap, TorchMultiHeadAttentionWeights, TransformerLayerOptions, TransformerLayerProperties, Weight,
} from './index.js';

export type {
  AttentionResult, CacheOptions, DecoderForwardOptions, EncoderForwardOptions, ForwardOptions, InitOptions, LayerNormOptions, MhaFile,
  MultiHeadAttentionOptions, MultiHeadAttentionWeights, SdpaOptions, Tensor, TensorMap, TorchMultiHeadAttentionWeights,
  TransformerLayerOptions, Weight,
} from './index.js';
export { encodeSafetensors, parseSafetensors, probeFeatures, safetensorsMetadata } from './index.js';

export interface WorkerInitOptions extends Omit<InitOptions, 'locateFile'> {
  /** Where bindings/worker-host.js is served from (default: beside this module). Must be same-origin in browsers. */
  workerUrl?: string | URL;
}

export interface TransferOption {
  /** Move the input arrays' buffers to the worker instead of copying them; they become unusable here. Default false. */
  transfer?: boolean;
}

/** torch.nn.MultiheadAttention computed in the worker. */
export interface MultiHeadAttention extends MultiHeadAttentionProperties {}
export declare class MultiHeadAttention {
  /** Options are checked here and throw at once; the layer is made in the worker. */
  constructor(options: MultiHeadAttentionOptions);
  setWeights(weights: MultiHeadAttentionWeights | TorchMultiHeadAttentionWeights | TensorMap, options?: TransferOption): Promise<void>;
  forward(query: Tensor, key?: Tensor | null, value?: Tensor | null, options?: Omit<ForwardOptions, 'cache'> & { cache?: WorkerKVCache | null } & TransferOption): Promise<AttentionResult>;
  /** A KV cache in the worker for incremental self-attention. */
  createCache(options: CacheOptions): WorkerKVCache;
  /** Frees the layer in the worker; later calls reject. */
  dispose(): void;
}

/** A KV cache held in the worker, made by layer.createCache(). */
export interface WorkerKVCache {
  readonly batch: number;
  readonly maxLength: number;
  /** Positions held, as of the last completed forward() or reset(). */
  readonly length: number;
  readonly disposed: boolean;
  reset(): Promise<void>;
  dispose(): void;
}

interface WorkerBlock extends TransformerLayerProperties {
  /** Options are checked here and throw at once; the cache is made in the worker. */
  createCache(options: CacheOptions): WorkerKVCache;
}

/** torch.nn.TransformerEncoderLayer computed in the worker. */
export interface TransformerEncoderLayer extends WorkerBlock {}
export declare class TransformerEncoderLayer {
  constructor(options: TransformerLayerOptions);
  setWeights(stateDict: EncoderStateDict, options?: TransferOption): Promise<void>;
  forward(src: Tensor, options: Omit<EncoderForwardOptions, 'cache'> & { cache?: WorkerKVCache | null; needWeights: true } & TransferOption): Promise<{ output: Tensor; weights: Tensor }>;
  forward(src: Tensor, options?: Omit<EncoderForwardOptions, 'cache'> & { cache?: WorkerKVCache | null; needWeights?: false } & TransferOption): Promise<Tensor>;
}

/** torch.nn.TransformerDecoderLayer computed in the worker. */
export interface TransformerDecoderLayer extends WorkerBlock {}
export declare class TransformerDecoderLayer {
  constructor(options: TransformerLayerOptions);
  setWeights(stateDict: DecoderStateDict, options?: TransferOption): Promise<void>;
  forward(tgt: Tensor, memory: Tensor, options: Omit<DecoderForwardOptions, 'cache'> & { cache?: WorkerKVCache | null; needWeights: true } & TransferOption): Promise<{ output: Tensor; selfWeights: Tensor; crossWeights: Tensor }>;
  forward(tgt: Tensor, memory: Tensor, options?: Omit<DecoderForwardOptions, 'cache'> & { cache?: WorkerKVCache | null; needWeights?: false } & TransferOption): Promise<Tensor>;
}

/** torch.nn.LayerNorm computed in the worker. */
export interface LayerNorm extends LayerNormProperties {}
export declare class LayerNorm {
  constructor(options: LayerNormOptions);
  setWeights(stateDict: { weight: Weight; bias?: Weight }, options?: TransferOption): Promise<void>;
  forward(input: Tensor, options?: TransferOption): Promise<Tensor>;
}

export interface WorkerMha extends RuntimeInfo {
  readonly MultiHeadAttention: typeof MultiHeadAttention;
  readonly TransformerEncoderLayer: typeof TransformerEncoderLayer;
  readonly TransformerDecoderLayer: typeof TransformerDecoderLayer;
  readonly LayerNorm: typeof LayerNorm;
  scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, options?: SdpaOptions & TransferOption): Promise<AttentionResult>;
  stats(): Promise<{ wasmMemoryBytes: number; liveLayers: number; workerLayers: number }>;
  /** Stops the worker; pending and later calls reject. */
  terminate(): void;
}

/** Starts a worker (one per call) and loads the runtime in it. */
export declare function init(options?: WorkerInitOptions): Promise<WorkerMha>;
