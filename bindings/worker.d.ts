// Type declarations for mha-wasm/worker: the mha-wasm API run in a worker, with Promise methods.
import type {
  AttentionResult, ForwardOptions, InitOptions, MultiHeadAttentionOptions, MultiHeadAttentionProperties, MultiHeadAttentionWeights,
  SdpaOptions, Tensor, TensorMap, TorchMultiHeadAttentionWeights,
} from './index.js';

export type {
  AttentionResult, ForwardOptions, InitOptions, MhaFile, MultiHeadAttentionOptions, MultiHeadAttentionWeights, SdpaOptions, Tensor,
  TensorMap, TorchMultiHeadAttentionWeights, Weight,
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
  forward(query: Tensor, key?: Tensor | null, value?: Tensor | null, options?: ForwardOptions & TransferOption): Promise<AttentionResult>;
  /** Frees the layer in the worker; later calls reject. */
  dispose(): void;
}

export interface WorkerMha {
  readonly threads: number;
  readonly features: { readonly simd: true; readonly threads: boolean };
  readonly build: string;
  readonly threadsNote: string | null;
  readonly MultiHeadAttention: typeof MultiHeadAttention;
  scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, options?: SdpaOptions & TransferOption): Promise<AttentionResult>;
  stats(): Promise<{ wasmMemoryBytes: number; liveLayers: number; workerLayers: number }>;
  /** Stops the worker; pending and later calls reject. */
  terminate(): void;
}

/** Starts a worker (one per call) and loads the runtime in it. */
export declare function init(options?: WorkerInitOptions): Promise<WorkerMha>;
