// Type declarations for mha-wasm.

/** A row-major tensor, batch first. `data.length` must equal the product of `dims`. */
export interface Tensor<T extends Float32Array | Uint8Array = Float32Array> {
  data: T;
  dims: number[];
}

/** The files init() loads: the threaded build (with its pthread worker script) or the single-thread build. */
export type MhaFile = 'mha-wasm-threads.js' | 'mha-wasm-threads.wasm' | 'mha-wasm-threads.worker.js' | 'mha-wasm-simd.js' | 'mha-wasm-simd.wasm';

export interface InitOptions {
  /** 'auto' (default): the machine's cores, at most 8. 1 loads the single-thread build. */
  threads?: 'auto' | number;
  /** Folder (URL, or a path in Node) holding the dist/ files. Default: the package's own dist/. */
  baseUrl?: string | URL;
  /** URLs of single files, e.g. { 'mha-wasm-simd.wasm': 'https://cdn.example/x.wasm' }; the rest come from baseUrl. */
  urls?: Partial<Record<MhaFile, string | URL>>;
  /** Maps a file name (e.g. 'mha-wasm-threads.wasm') to its URL; overrides baseUrl and urls. */
  locateFile?: (fileName: string) => string | URL;
}

export interface MultiHeadAttentionOptions {
  embedDim: number;
  numHeads: number;
  /** Input size of key. Default embedDim. */
  kdim?: number;
  /** Input size of value. Default embedDim. */
  vdim?: number;
  /** Default true. */
  bias?: boolean;
}

export type Weight = Float32Array | Tensor<Float32Array>;

/**
 * PyTorch nn.MultiheadAttention state_dict, camelCase. Give either inProjWeight
 * [3E, E] (only when kdim == vdim == embedDim) or qProjWeight [E, E], kProjWeight
 * [E, kdim] and vProjWeight [E, vdim]. Biases are required when bias is true.
 */
export interface MultiHeadAttentionWeights {
  inProjWeight?: Weight;
  qProjWeight?: Weight;
  kProjWeight?: Weight;
  vProjWeight?: Weight;
  /** [3E] */
  inProjBias?: Weight;
  /** [E, E] */
  outProjWeight: Weight;
  /** [E] */
  outProjBias?: Weight;
}

/** The same weights by PyTorch's state_dict names, as parseSafetensors() returns them. */
export interface TorchMultiHeadAttentionWeights {
  in_proj_weight?: Weight;
  q_proj_weight?: Weight;
  k_proj_weight?: Weight;
  v_proj_weight?: Weight;
  in_proj_bias?: Weight;
  'out_proj.weight'?: Weight;
  'out_proj.bias'?: Weight;
}

/** Tensors read from a .safetensors file, by name. */
export type TensorMap = Record<string, Tensor<Float32Array>>;

export interface MaskOptions {
  /**
   * [Lq, Lk], or one mask per batch and head. A Uint8Array mask: nonzero = NOT
   * allowed to attend (nn.MultiheadAttention's polarity; PyTorch's
   * scaled_dot_product_attention uses the opposite). A Float32Array mask is added
   * to the scores (finite values or -Infinity).
   */
  attnMask?: Tensor<Uint8Array> | Tensor<Float32Array> | null;
  /** [B, Lk] ([Lk] for unbatched input), nonzero = ignore that key. */
  keyPaddingMask?: Tensor<Uint8Array> | null;
  /** Query i may attend key j only when j <= i + (Lk - Lq). */
  isCausal?: boolean;
}

export interface ForwardOptions extends MaskOptions {
  /** Return attention weights. Default false. */
  needWeights?: boolean;
  /** Average the weights over heads ([B, Lq, Lk]) instead of [B, H, Lq, Lk]. Default true. */
  averageWeights?: boolean;
}

export interface SdpaOptions extends MaskOptions {
  /** Default 1 / sqrt(D). */
  scale?: number;
  /** Return the attention weights [B, H, Lq, Lk]. Default false. */
  needWeights?: boolean;
}

export interface AttentionResult {
  output: Tensor<Float32Array>;
  /** null unless needWeights. Rows that attend to nothing are zero. */
  weights: Tensor<Float32Array> | null;
}

/** The configuration of a layer, and whether it has been disposed. */
export interface MultiHeadAttentionProperties {
  readonly embedDim: number;
  readonly numHeads: number;
  readonly kdim: number;
  readonly vdim: number;
  readonly bias: boolean;
  readonly headDim: number;
  readonly disposed: boolean;
}

/** torch.nn.MultiheadAttention with batch_first=True and dropout 0. */
export interface MultiHeadAttention extends MultiHeadAttentionProperties {}
export declare class MultiHeadAttention {
  constructor(options: MultiHeadAttentionOptions);
  /** Copies the weights in: camelCase or PyTorch names (e.g. parseSafetensors(bytes)). */
  setWeights(weights: MultiHeadAttentionWeights | TorchMultiHeadAttentionWeights | TensorMap): void;
  /**
   * query [B, Lq, E] or [Lq, E]; key [B, Lk, kdim]; value [B, Lk, vdim].
   * key and value omitted or null: self-attention.
   */
  forward(query: Tensor, key?: Tensor | null, value?: Tensor | null, options?: ForwardOptions): AttentionResult;
  /** Frees the layer's wasm memory; further use throws. */
  dispose(): void;
}

export interface TransformerEncoderLayerOptions {
  dModel: number;
  nhead: number;
  /** Default 2048. */
  dimFeedforward?: number;
  /** Default 'relu'. 'gelu' is PyTorch's exact (erf) GELU. */
  activation?: 'relu' | 'gelu';
  /** Default 1e-5. */
  layerNormEps?: number;
  /** Pre-norm when true. Default false (post-norm, PyTorch's default). */
  normFirst?: boolean;
  /** Biases in the linear layers and LayerNorms. Default true. */
  bias?: boolean;
}

export interface EncoderForwardOptions {
  /** [L, L] or [B, nhead, L, L] (also [B*nhead, L, L]); Uint8Array nonzero = masked, Float32Array added. */
  srcMask?: Tensor<Uint8Array> | Tensor<Float32Array> | null;
  /** [B, L], nonzero = padding (ignored as a key). */
  srcKeyPaddingMask?: Tensor<Uint8Array> | null;
  isCausal?: boolean;
}

/**
 * The layer's PyTorch state_dict by its dotted names: self_attn.in_proj_weight [3E, E],
 * self_attn.in_proj_bias [3E], self_attn.out_proj.weight [E, E], self_attn.out_proj.bias [E],
 * linear1.weight [F, E], linear1.bias [F], linear2.weight [E, F], linear2.bias [E],
 * norm1.weight, norm1.bias, norm2.weight, norm2.bias [E]. Biases only when bias is true.
 */
export type EncoderStateDict = Record<string, Weight>;

/** torch.nn.TransformerEncoderLayer with batch_first=True and dropout 0. */
export declare class TransformerEncoderLayer {
  constructor(options: TransformerEncoderLayerOptions);
  readonly dModel: number;
  readonly nhead: number;
  readonly dimFeedforward: number;
  readonly activation: 'relu' | 'gelu';
  readonly layerNormEps: number;
  readonly normFirst: boolean;
  readonly bias: boolean;
  readonly disposed: boolean;
  /** Copies in the state_dict, e.g. parseSafetensors(bytes, { prefix: 'layers.0.' }). */
  setWeights(stateDict: EncoderStateDict): void;
  /** src [B, L, dModel] or [L, dModel]; returns the same dims. */
  forward(src: Tensor, options?: EncoderForwardOptions): Tensor;
  dispose(): void;
}

export interface Mha {
  /** Threads in use (1 when SharedArrayBuffer is unavailable). */
  readonly threads: number;
  readonly features: { readonly simd: true; readonly threads: boolean };
  /** 'mha-wasm-threads' or 'mha-wasm-simd'. */
  readonly build: string;
  /** Why the single-thread build runs although more threads were asked for; otherwise null. */
  readonly threadsNote: string | null;
  readonly MultiHeadAttention: typeof MultiHeadAttention;
  readonly TransformerEncoderLayer: typeof TransformerEncoderLayer;
  /** q [B, H, Lq, D], k [B, H, Lk, D], v [B, H, Lk, Dv] ([H, L, D] and [L, D] also accepted). */
  scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, options?: SdpaOptions): AttentionResult;
  /** Diagnostics: liveLayers counts attention layers and Transformer blocks not yet freed. */
  stats(): { wasmMemoryBytes: number; liveLayers: number };
}

/** Loads the runtime (memoized per options). Falls back to one thread when threads are unavailable. */
export declare function init(options?: InitOptions): Promise<Mha>;

/** What this engine supports, and if threads are out, why. */
export declare function probeFeatures(): { simd: boolean; threads: boolean; threadsReason: string | null };

/**
 * Reads a .safetensors file (Hugging Face's format) into tensors by name; F16,
 * BF16 and F64 become float32. prefix keeps only names starting with it, and
 * strips it. A malformed file throws a TypeError or RangeError saying what is wrong.
 */
export declare function parseSafetensors(bytes: Uint8Array | ArrayBuffer, options?: { prefix?: string }): TensorMap;

/** The file's __metadata__ ({} when it has none). */
export declare function safetensorsMetadata(bytes: Uint8Array | ArrayBuffer): Record<string, string>;

/** Writes float32 tensors (a bare Float32Array counts as 1-D) as a .safetensors file. */
export declare function encodeSafetensors(tensors: Record<string, Tensor<Float32Array> | Float32Array>, metadata?: Record<string, string>): Uint8Array;
