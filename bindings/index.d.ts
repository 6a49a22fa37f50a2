// Type declarations for mha-wasm. Each class is declared once, for both APIs:
// XOf<'sync'> is the main API's, XOf<'async'> mha-wasm/worker's, whose methods
// return a Promise of the same value (worker.d.ts only names them).

/** How methods return: 'sync' (mha-wasm) or 'async' (mha-wasm/worker: a Promise of the same value). */
export type Mode = 'sync' | 'async';
/** T, or a Promise of T in the worker API. */
export type Returns<M extends Mode, T> = M extends 'async' ? Promise<T> : T;

/** A row-major tensor, batch first. `data.length` must equal the product of `dims`. */
export interface Tensor<T extends Float32Array | Uint8Array = Float32Array> {
  data: T;
  dims: number[];
}

/** The files init() loads: the threaded build (with its pthread worker script) or the single-thread build. */
export type MhaFile = 'mha-wasm-threads.js' | 'mha-wasm-threads.wasm' | 'mha-wasm-threads.worker.js' | 'mha-wasm-simd.js' | 'mha-wasm-simd.wasm'
  | 'mha-wasm-relaxed-threads.js' | 'mha-wasm-relaxed-threads.wasm' | 'mha-wasm-relaxed-threads.worker.js' | 'mha-wasm-relaxed-simd.js' | 'mha-wasm-relaxed-simd.wasm';

export interface InitOptions {
  /** 'auto' (default): the machine's cores, at most 8. 1 loads the single-thread build. */
  threads?: 'auto' | number;
  /**
   * true (default): load a relaxed-SIMD build (fused multiply-add) where the engine runs relaxed SIMD
   * correctly (a probe module checks) and the package has one; false: always a SIMD128 build.
   */
  relaxedSimd?: boolean;
  /** Folder (URL, or a path in Node) holding the dist/ files. Default: the package's own dist/ (in a bundle, the inlined builds of dist/*.inline.mjs). */
  baseUrl?: string | URL;
  /** URLs of single files, e.g. { 'mha-wasm-simd.wasm': 'https://cdn.example/x.wasm' }; the rest come from baseUrl. */
  urls?: Partial<Record<MhaFile, string | URL>>;
  /** Maps a file name (e.g. 'mha-wasm-threads.wasm') to its URL; overrides baseUrl and urls. Called by init() for every file. */
  locateFile?: (fileName: MhaFile) => string | URL;
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

export interface TransferOption {
  /**
   * mha-wasm/worker: move the input arrays' buffers to the worker instead of copying them (they become
   * unusable here). Default false. The main API copies into wasm memory either way.
   */
  transfer?: boolean;
}

export interface MaskOptions extends TransferOption {
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

export interface ForwardOptions<M extends Mode = 'sync'> extends MaskOptions {
  /** Return attention weights. Default false. */
  needWeights?: boolean;
  /** Average the weights over heads ([B, Lq, Lk]) instead of [B, H, Lq, Lk]. Default true. */
  averageWeights?: boolean;
  /**
   * Self-attention only (key and value omitted): query holds new positions, whose keys and values are
   * appended to the cache; they attend over every cached position (Lk = the cache's length after this call).
   */
  cache?: KVCacheOf<M> | null;
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
export interface MultiHeadAttentionOf<M extends Mode> extends MultiHeadAttentionProperties {
  /** Copies the weights in: camelCase or PyTorch names (e.g. parseSafetensors(bytes)). */
  setWeights(weights: MultiHeadAttentionWeights | TorchMultiHeadAttentionWeights | TensorMap, options?: TransferOption): Returns<M, void>;
  /**
   * query [B, Lq, E] or [Lq, E]; key [B, Lk, kdim]; value [B, Lk, vdim].
   * key and value omitted or null: self-attention.
   */
  forward(query: Tensor, key?: Tensor | null, value?: Tensor | null, options?: ForwardOptions<M>): Returns<M, AttentionResult>;
  /** A KV cache for incremental self-attention (needs kdim == vdim == embedDim). */
  createCache(options: CacheOptions): KVCacheOf<M>;
  /** Frees the layer's wasm memory; further use throws. */
  dispose(): void;
}
export type MultiHeadAttention = MultiHeadAttentionOf<'sync'>;

/** Options of TransformerEncoderLayer and TransformerDecoderLayer. */
export interface TransformerLayerOptions {
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
export type TransformerEncoderLayerOptions = TransformerLayerOptions;
export type TransformerDecoderLayerOptions = TransformerLayerOptions;

export interface CacheOptions {
  /** The most positions the cache will hold. */
  maxLength: number;
  /** Default 1. Inputs used with the cache must have this batch size (unbatched input: 1). */
  batch?: number;
}

/**
 * Keys and values of earlier positions for incremental decoding, made by
 * layer.createCache(). Each layer needs its own cache.
 */
export interface KVCacheOf<M extends Mode> {
  readonly batch: number;
  readonly maxLength: number;
  /** Positions held after the last completed forward() or reset(). */
  readonly length: number;
  readonly disposed: boolean;
  /** Empties the cache for a new sequence (keeps its memory). */
  reset(): Returns<M, void>;
  dispose(): void;
}
export type KVCache = KVCacheOf<'sync'>;

export interface EncoderForwardOptions<M extends Mode = 'sync'> extends TransferOption {
  /** [L, Lk] or [B, nhead, L, Lk] (also [B*nhead, L, Lk]); Uint8Array nonzero = masked, Float32Array added. Lk = L, or with a cache its length after this call. */
  srcMask?: Tensor<Uint8Array> | Tensor<Float32Array> | null;
  /** [B, Lk], nonzero = padding (ignored as a key). */
  srcKeyPaddingMask?: Tensor<Uint8Array> | null;
  /** Query i sees keys up to i (with a cache: the cached positions and new ones up to i). */
  isCausal?: boolean;
  /** src holds new positions: their keys and values are appended to the cache and they attend over all cached ones. */
  cache?: KVCacheOf<M> | null;
  /** Also return the self-attention weights per head, [B, nhead, L, Lk]. */
  needWeights?: boolean;
}

export interface DecoderForwardOptions<M extends Mode = 'sync'> extends TransferOption {
  /** Self-attention mask: [T, Lk] or [B, nhead, T, Lk] (also [B*nhead, T, Lk]); Lk = T, or the cache's length after this call. */
  tgtMask?: Tensor<Uint8Array> | Tensor<Float32Array> | null;
  /** Cross-attention mask: [T, S] or [B, nhead, T, S] (also [B*nhead, T, S]). */
  memoryMask?: Tensor<Uint8Array> | Tensor<Float32Array> | null;
  /** [B, Lk], nonzero = padding. */
  tgtKeyPaddingMask?: Tensor<Uint8Array> | null;
  /** [B, S], nonzero = padding. */
  memoryKeyPaddingMask?: Tensor<Uint8Array> | null;
  tgtIsCausal?: boolean;
  /** Target position t (counting cached positions) may attend memory positions j <= t: aligned at the start, unlike tgtIsCausal. */
  memoryIsCausal?: boolean;
  /** tgt holds new positions (appended to the cache). The cache projects memory on its first use and reuses it until reset(). */
  cache?: KVCacheOf<M> | null;
  /** Also return the attention weights per head. */
  needWeights?: boolean;
}

/**
 * The layer's PyTorch state_dict by its dotted names: self_attn.in_proj_weight [3E, E],
 * self_attn.in_proj_bias [3E], self_attn.out_proj.weight [E, E], self_attn.out_proj.bias [E],
 * linear1.weight [F, E], linear1.bias [F], linear2.weight [E, F], linear2.bias [E],
 * norm1.weight, norm1.bias, norm2.weight, norm2.bias [E]; a decoder layer also has
 * multihead_attn.* (as self_attn.*) and norm3.weight, norm3.bias. Biases only when bias is true.
 */
export type EncoderStateDict = Record<string, Weight>;
export type DecoderStateDict = Record<string, Weight>;

/** The read-only configuration and lifecycle of both Transformer blocks. */
export interface TransformerLayerProperties {
  readonly dModel: number;
  readonly nhead: number;
  readonly dimFeedforward: number;
  readonly activation: 'relu' | 'gelu';
  readonly layerNormEps: number;
  readonly normFirst: boolean;
  readonly bias: boolean;
  readonly disposed: boolean;
  dispose(): void;
}

/** torch.nn.TransformerEncoderLayer with batch_first=True and dropout 0. */
export interface TransformerEncoderLayerOf<M extends Mode> extends TransformerLayerProperties {
  /** Copies in the state_dict, e.g. parseSafetensors(bytes, { prefix: 'layers.0.' }). */
  setWeights(stateDict: EncoderStateDict, options?: TransferOption): Returns<M, void>;
  /** src [B, L, dModel] or [L, dModel]; returns the same dims. */
  forward(src: Tensor, options: EncoderForwardOptions<M> & { needWeights: true }): Returns<M, { output: Tensor; weights: Tensor }>;
  forward(src: Tensor, options?: EncoderForwardOptions<M> & { needWeights?: false }): Returns<M, Tensor>;
  /** A KV cache for this layer's incremental forward. */
  createCache(options: CacheOptions): KVCacheOf<M>;
}
export type TransformerEncoderLayer = TransformerEncoderLayerOf<'sync'>;

/** torch.nn.TransformerDecoderLayer with batch_first=True and dropout 0. */
export interface TransformerDecoderLayerOf<M extends Mode> extends TransformerLayerProperties {
  setWeights(stateDict: DecoderStateDict, options?: TransferOption): Returns<M, void>;
  /** tgt [B, T, dModel] or [T, dModel], memory [B, S, dModel] or [S, dModel]; returns tgt's dims. */
  forward(tgt: Tensor, memory: Tensor, options: DecoderForwardOptions<M> & { needWeights: true }): Returns<M, { output: Tensor; selfWeights: Tensor; crossWeights: Tensor }>;
  forward(tgt: Tensor, memory: Tensor, options?: DecoderForwardOptions<M> & { needWeights?: false }): Returns<M, Tensor>;
  createCache(options: CacheOptions): KVCacheOf<M>;
}
export type TransformerDecoderLayer = TransformerDecoderLayerOf<'sync'>;

export interface LayerNormOptions {
  /** The trailing dims to normalize over: a number or an array. */
  normalizedShape: number | number[];
  /** Default 1e-5. */
  eps?: number;
  /** Learnable weight (and bias); default true. Weight starts at 1, bias at 0, as in PyTorch. */
  elementwiseAffine?: boolean;
  /** Default true. */
  bias?: boolean;
}

export interface LayerNormProperties {
  readonly normalizedShape: number[];
  readonly eps: number;
  readonly elementwiseAffine: boolean;
  readonly bias: boolean;
  readonly disposed: boolean;
  dispose(): void;
}

/** torch.nn.LayerNorm. */
export interface LayerNormOf<M extends Mode> extends LayerNormProperties {
  /** { weight, bias } of normalizedShape (PyTorch's state_dict names). */
  setWeights(stateDict: { weight: Weight; bias?: Weight }, options?: TransferOption): Returns<M, void>;
  /** input [..., ...normalizedShape]; returns the same dims. */
  forward(input: Tensor, options?: TransferOption): Returns<M, Tensor>;
}
export type LayerNorm = LayerNormOf<'sync'>;

/** What init() loaded (the same in mha-wasm/worker). */
export interface RuntimeInfo {
  /** Threads in use (1 when SharedArrayBuffer is unavailable). */
  readonly threads: number;
  /** relaxedSimd: a relaxed-SIMD build runs; threads: a threaded build runs. */
  readonly features: { readonly simd: true; readonly relaxedSimd: boolean; readonly threads: boolean };
  /** The build that runs: 'mha-wasm-relaxed-threads', 'mha-wasm-relaxed-simd', 'mha-wasm-threads' or 'mha-wasm-simd'. */
  readonly build: string;
  /** Why the single-thread build runs although more threads were asked for; otherwise null. */
  readonly threadsNote: string | null;
  /** Why a SIMD128 build runs instead of a relaxed-SIMD one (turned off, unsupported, not in the package); otherwise null. */
  readonly relaxedSimdNote: string | null;
}

/** Diagnostics: the wasm heap's size, and layers, blocks, LayerNorms and KV caches not yet freed. */
export interface Stats {
  wasmMemoryBytes: number;
  liveLayers: number;
}

/** What init() resolves to. Constructors check their options at once and throw, in both APIs. */
export interface MhaOf<M extends Mode> extends RuntimeInfo {
  readonly MultiHeadAttention: new (options: MultiHeadAttentionOptions) => MultiHeadAttentionOf<M>;
  readonly TransformerEncoderLayer: new (options: TransformerLayerOptions) => TransformerEncoderLayerOf<M>;
  readonly TransformerDecoderLayer: new (options: TransformerLayerOptions) => TransformerDecoderLayerOf<M>;
  readonly LayerNorm: new (options: LayerNormOptions) => LayerNormOf<M>;
  /** q [B, H, Lq, D], k [B, H, Lk, D], v [B, H, Lk, Dv] ([H, L, D] and [L, D] also accepted). */
  scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, options?: SdpaOptions): Returns<M, AttentionResult>;
  stats(): Returns<M, Stats>;
}
export type Mha = MhaOf<'sync'>;

/** Loads the runtime (memoized per options). Falls back to one thread when threads are unavailable. */
export declare function init(options?: InitOptions): Promise<Mha>;

/** What this engine supports (relaxedSimd: relaxed SIMD, computed correctly), and if threads are out, why. */
export declare function probeFeatures(): { simd: boolean; relaxedSimd: boolean; threads: boolean; threadsReason: string | null };

/**
 * Reads a .safetensors file (Hugging Face's format) into tensors by name; F16,
 * BF16 and F64 become float32. prefix keeps only names starting with it, and
 * strips it. A malformed file throws a TypeError or RangeError saying what is wrong.
 */
export declare function parseSafetensors(bytes: Uint8Array | ArrayBuffer, options?: { prefix?: string }): TensorMap;

/** The file's __metadata__ ({} when it has none). */
export declare function safetensorsMetadata(bytes: Uint8Array | ArrayBuffer): Record<string, string>;

/**
 * Writes float32 tensors (a bare Float32Array counts as 1-D) as a .safetensors file, stored as
 * F32 or (dtype: 'F16', half the size) rounded to half precision.
 */
export declare function encodeSafetensors(tensors: Record<string, Tensor<Float32Array> | Float32Array>, metadata?: Record<string, string> | null,
  options?: { dtype?: 'F32' | 'F16' }): Uint8Array;
