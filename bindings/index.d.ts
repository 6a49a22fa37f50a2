// Type declarations for mha-wasm. Each class is declared once, for both APIs:
// XOf<'sync'> is the main API's, XOf<'async'> mha-wasm/worker's, whose methods
// return a Promise of the same value (worker.d.ts only names them).

/** How methods return: 'sync' (mha-wasm) or 'async' (mha-wasm/worker: a Promise of the same value). */
export type Mode = 'sync' | 'async';
/** T, or a Promise of T in the worker API. */
export type Returns<M extends Mode, T> = M extends 'async' ? Promise<T> : T;

/** A row-major tensor, batch first. `data.length` must equal the product of `dims`. */
export interface Tensor<T extends Float32Array | Uint8Array | Int32Array | Int8Array = Float32Array> {
  data: T;
  dims: number[];
}

/** The files init() loads: the threaded build (with its pthread worker script) or the single-thread build. */
export type MhaFile = 'mha-wasm-threads.js' | 'mha-wasm-threads.wasm' | 'mha-wasm-threads.worker.js' | 'mha-wasm-simd.js' | 'mha-wasm-simd.wasm'
  | 'mha-wasm-relaxed-threads.js' | 'mha-wasm-relaxed-threads.wasm' | 'mha-wasm-relaxed-threads.worker.js' | 'mha-wasm-relaxed-simd.js' | 'mha-wasm-relaxed-simd.wasm';

/** The int8 kernels: i32x4.dot_i16x8_s on int16 activations, or i32x4.relaxed_dot_i8x16_i7x16_add_s on 14-bit ones. */
export type Int8Dot = 'dot_i16x8' | 'relaxed_dot_i8x16_i7x16';

export interface InitOptions {
  /** 'auto' (default): the machine's cores, at most 8. 1 loads the single-thread build. */
  threads?: 'auto' | number;
  /**
   * true (default): load a relaxed-SIMD build (fused multiply-add) where the engine runs relaxed SIMD
   * correctly (a probe module checks) and the package has one; false: always a SIMD128 build.
   */
  relaxedSimd?: boolean;
  /**
   * The kernel of int8 weights (weightType 'int8'). 'auto' (default): 'relaxed_dot_i8x16_i7x16' where a
   * relaxed-SIMD build runs and the engine computes that instruction as one (x86 with AVX-VNNI, in
   * Chromium), else 'dot_i16x8'. 'relaxed_dot_i8x16_i7x16' quantizes activations to 14 bits instead of 16;
   * a SIMD128 build lacks it and runs 'dot_i16x8' (features.int8Dot says which runs).
   */
  int8Dot?: 'auto' | Int8Dot;
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
  /** Default true: the default of qkvBias and outBias. */
  bias?: boolean;
  /** Key/value heads, dividing numHeads (1 = multi-query). Query head h reads KV head floor(h / (numHeads / numKvHeads)). Default numHeads. */
  numKvHeads?: number;
  /** Per-head width. Default embedDim / numHeads; when given, embedDim need not be divisible by numHeads. */
  headDim?: number;
  /** Biases of the q/k/v projections. Default `bias` (Qwen2: true with outBias false). */
  qkvBias?: boolean;
  /** Bias of the output projection. Default `bias`. */
  outBias?: boolean;
  /** Rotary position embedding of queries and keys (after QK-norm). Default null (none). */
  rope?: RopeOptions | boolean | null;
  /** ALiBi: true for the paper's slopes (BLOOM's rule when numHeads is not a power of two), or numHeads slopes. Adds -slope_h * |pos_q - pos_k|. */
  alibi?: boolean | Float32Array | Float64Array | number[] | null;
  /** A key is visible to a query only when |pos_q - pos_k| < slidingWindow (with isCausal: the last W positions). */
  slidingWindow?: number | null;
  /** Scores become softcap * tanh(scores / softcap) after scaling, before masks and ALiBi (Gemma 2). */
  softcap?: number | null;
  /** Score scale, positive. Default 1 / sqrt(headDim). */
  scale?: number;
  /** Adds a learned weight `sinks` [numHeads]: one extra logit per head in each softmax denominator (gpt-oss). Default false. */
  sinks?: boolean;
  /** 'rms': RMSNorm over each head's query and key before the rotary embedding, weights qNormWeight, kNormWeight [headDim]. */
  qkNorm?: 'rms' | null;
  /** Default 1e-6. */
  qkNormEps?: number;
  /** How the weight matrices are stored and computed: 'f32' (default), 'f16' (half the memory) or 'int8' (per output channel, a quarter). */
  weightType?: WeightType;
}

/**
 * How a layer stores its weight matrices: float32, IEEE half, or int8 per output channel (symmetric,
 * round to nearest; activations are quantized inside the kernel per row to int16). Biases and norms stay
 * float32. Pre-quantized int8 matrices load too (compressed-tensors layout: an Int8Array `<name>` with a
 * Float32Array `<name>_scale` of one value per output row, [out, 1] or [out]), into a layer with weightType 'int8'.
 */
export type WeightType = 'f32' | 'f16' | 'int8';

/**
 * Rotary embedding options (RoFormer). The first `dim` channels of each head rotate in pairs: (c, c + dim/2)
 * (Llama/NeoX rotate_half) or, interleaved, (2c, 2c + 1) (GPT-J). Pair c turns by position * invFreq[c], and
 * cos and sin are multiplied by attentionFactor; invFreq and attentionFactor express HF's rope_scaling.
 */
export interface RopeOptions {
  /** Default 10000: invFreq[c] = base^(-2c/dim). */
  base?: number;
  /** Even, at most headDim (partial rotary below it). Default headDim. */
  dim?: number;
  /** Default false. */
  interleaved?: boolean;
  /** dim / 2 inverse frequencies, replacing base's. */
  invFreq?: Float32Array | Float64Array | number[];
  /** Default 1. */
  attentionFactor?: number;
}

export type Weight = Float32Array | Tensor<Float32Array>;
/** A weight matrix: float32, or pre-quantized int8 with its `<name>_scale` beside it (see WeightType). */
export type MatrixWeight = Weight | Int8Array | Tensor<Int8Array>;
/** The `<name>_scale` of each pre-quantized int8 matrix `<name>`: one value per output row, [out, 1] or [out]. */
export type ScaleWeights = { [name: `${string}_scale`]: Weight };

/**
 * The layer's weights, camelCase, with H = numHeads, Hkv = numKvHeads, D = headDim. Give either inProjWeight
 * [(H + 2 Hkv) D, E] (only when kdim == vdim == embedDim) or qProjWeight [H D, E], kProjWeight [Hkv D, kdim]
 * and vProjWeight [Hkv D, vdim]. q/k/v biases (inProjBias, or qProjBias, kProjBias and vProjBias) are required
 * when qkvBias is true, outProjBias when outBias is.
 */
export interface MultiHeadAttentionWeights extends ScaleWeights {
  inProjWeight?: MatrixWeight;
  qProjWeight?: MatrixWeight;
  kProjWeight?: MatrixWeight;
  vProjWeight?: MatrixWeight;
  /** [(H + 2 Hkv) D] */
  inProjBias?: Weight;
  /** [H D] */
  qProjBias?: Weight;
  /** [Hkv D] */
  kProjBias?: Weight;
  /** [Hkv D] */
  vProjBias?: Weight;
  /** [E, H D] */
  outProjWeight: MatrixWeight;
  /** [E] */
  outProjBias?: Weight;
  /** [H], with sinks: true. */
  sinks?: Weight;
  /** [D], with qkNorm: 'rms'. */
  qNormWeight?: Weight;
  /** [D], with qkNorm: 'rms'. */
  kNormWeight?: Weight;
}

/** The same weights by Hugging Face's names (e.g. a Llama layer's self_attn.* tensors). */
export interface HfAttentionWeights extends ScaleWeights {
  'q_proj.weight'?: MatrixWeight;
  'k_proj.weight'?: MatrixWeight;
  'v_proj.weight'?: MatrixWeight;
  'o_proj.weight'?: MatrixWeight;
  'q_proj.bias'?: Weight;
  'k_proj.bias'?: Weight;
  'v_proj.bias'?: Weight;
  'o_proj.bias'?: Weight;
  'q_norm.weight'?: Weight;
  'k_norm.weight'?: Weight;
  sinks?: Weight;
}

/** The same weights by PyTorch's state_dict names, as parseSafetensors() returns them. */
export interface TorchMultiHeadAttentionWeights extends ScaleWeights {
  in_proj_weight?: MatrixWeight;
  q_proj_weight?: MatrixWeight;
  k_proj_weight?: MatrixWeight;
  v_proj_weight?: MatrixWeight;
  in_proj_bias?: Weight;
  'out_proj.weight'?: MatrixWeight;
  'out_proj.bias'?: Weight;
}

/** Tensors read from a .safetensors file, by name. */
export type TensorMap = Record<string, StoredTensor>;

/** What a safetensors tensor is read into: floats as Float32Array, integers (and BOOL, as 0/1 bytes) as their own arrays. */
export type StoredArray = Float32Array | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;
export interface StoredTensor {
  data: StoredArray;
  dims: number[];
}

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
  /**
   * The new tokens' positions for the rotary embedding only ([B, Lq] or [Lq]; HF's position_ids, e.g. for
   * left-padded batches). Default: their sequence index (continuing from the cache). ALiBi, windows and
   * causality always use the sequence index.
   */
  positionIds?: Int32Array | Tensor<Int32Array> | null;
}

/** MultiHeadAttention.inspect's options: the forward's (no cache, no weights) and which token and head. */
export interface InspectOptions extends Omit<ForwardOptions, 'cache' | 'needWeights' | 'averageWeights'> {
  token: number;
  head: number;
  /** Default 0. */
  batch?: number;
}

/** One token through one head, step by step (Lk keys, D = headDim). */
export interface InspectResult {
  batch: number;
  token: number;
  head: number;
  /** The key/value head this head reads. */
  kvHead: number;
  /** [D], after QK-norm and the rotary embedding. */
  q: Float32Array;
  /** [Lk, D] of kvHead, after QK-norm and the rotary embedding. */
  k: Tensor<Float32Array>;
  /** [Lk, D] of kvHead. */
  v: Tensor<Float32Array>;
  /** q . k_j */
  raw: Float32Array;
  /** raw * scale */
  scaled: Float32Array;
  /** softcap * tanh(scaled / softcap), or scaled */
  softcapped: Float32Array;
  /** plus ALiBi and a float mask */
  biased: Float32Array;
  /** -Infinity where a mask hides the key */
  masked: Float32Array;
  /** softmax(masked) (a sink counts in the denominator only) */
  weights: Float32Array;
  /** This head's sink logit, or null. */
  sink: number | null;
  /** sum_j weights_j v_j: [D] */
  headOutput: Float32Array;
  /** Every head's output for this token: [H D]. */
  concat: Float32Array;
  /** The layer's output for this token (the output projection of concat): [E]. */
  output: Float32Array;
}

export interface SdpaOptions extends MaskOptions {
  /** Default 1 / sqrt(D). Any finite float32 (0 and negative too, as in PyTorch). */
  scale?: number;
  /** [B, Lk]; for [H, L, D] and [L, D] inputs [Lk] or [1, Lk]. Nonzero = ignore that key. */
  keyPaddingMask?: Tensor<Uint8Array> | null;
  /** Return the attention weights [B, H, Lq, Lk]. Default false. */
  needWeights?: boolean;
  /** A key is visible to a query only when |pos_q - pos_k| < slidingWindow (query i at i + Lk - Lq). */
  slidingWindow?: number | null;
  /** Scores become softcap * tanh(scores / softcap) after scaling. */
  softcap?: number | null;
  /** ALiBi slopes, one per query head: adds -slope_h * |pos_q - pos_k|. */
  alibiSlopes?: Float32Array | Float64Array | number[] | null;
  /** One extra logit per query head in each softmax denominator. */
  sinks?: Float32Array | Float64Array | number[] | null;
}

/** mha.applyRotaryEmbedding's options (RopeOptions with dim defaulting to the last dim of x). */
export interface RotaryOptions extends RopeOptions, TransferOption {
  /** [L] or [B, L] (an Int32Array is [L]). Default 0 .. L-1. */
  positions?: Int32Array | Tensor<Int32Array> | null;
  /** 'bhld' (default): x is [B, H, L, D]; 'blhd': [B, L, H, D]. */
  layout?: 'bhld' | 'blhd';
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
  /** How the weight matrices are stored (the weightType option, default 'f32'). */
  readonly weightType: WeightType;
  readonly disposed: boolean;
}

/** MultiHeadAttention's configuration beyond nn.MultiheadAttention's. */
export interface ModernAttentionProperties {
  readonly numKvHeads: number;
  readonly qkvBias: boolean;
  readonly outBias: boolean;
  readonly scale: number;
  readonly slidingWindow: number | null;
  readonly softcap: number | null;
  readonly sinks: boolean;
  readonly qkNorm: 'rms' | null;
  readonly qkNormEps: number;
  /** A copy, with the defaults filled in. */
  readonly rope: { dim: number; base: number; interleaved: boolean; invFreq: Float64Array; attentionFactor: number } | null;
  /** A copy of the slopes. */
  readonly alibi: Float32Array | null;
}

/** torch.nn.MultiheadAttention with batch_first=True and dropout 0, plus the options of modern attention. */
export interface MultiHeadAttentionOf<M extends Mode> extends MultiHeadAttentionProperties, ModernAttentionProperties {
  /** Copies the weights in: camelCase, PyTorch or Hugging Face names (e.g. parseSafetensors(bytes)). */
  setWeights(weights: MultiHeadAttentionWeights | TorchMultiHeadAttentionWeights | HfAttentionWeights | TensorMap, options?: TransferOption): Returns<M, void>;
  /** One token through one head, step by step (what the demo's "Inside one head" shows). */
  inspect(query: Tensor, key: Tensor | null | undefined, value: Tensor | null | undefined, options: InspectOptions): Returns<M, InspectResult>;
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
  /** How the weight matrices are stored: 'f32' (default), 'f16' or 'int8'. */
  weightType?: WeightType;
}
export type TransformerEncoderLayerOptions = TransformerLayerOptions;
export type TransformerDecoderLayerOptions = TransformerLayerOptions;

export interface CacheOptions {
  /**
   * The most positions the cache will hold. A sliding-window layer's cache keeps the last maxLength positions
   * and never fills up (it must be at least slidingWindow; a step of L positions needs L + slidingWindow - 1).
   */
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
  /** Positions held after the last completed forward() or reset(). Throws once the cache is disposed. */
  readonly length: number;
  readonly disposed: boolean;
  /** Empties the cache for a new sequence (keeps its memory). */
  reset(): Returns<M, void>;
  /**
   * Keeps the first `length` positions (0 to the cache's length), as if the later ones had never been added. A decoder
   * layer's projected memory stays (truncate(0) is not reset() there). A sliding-window cache that has let go of its
   * first positions keeps all or none. A Hugging Face model's cache (mha-wasm/models) is truncated after the forwards
   * issued on it before, and refuses while a generation uses it; a layer's, in the worker API, once its forwards settle.
   */
  truncate(length: number): Returns<M, void>;
  dispose(): void;
}
export type KVCache = KVCacheOf<'sync'>;

export interface EncoderForwardOptions<M extends Mode = 'sync'> extends TransferOption {
  /** [L, Lk] or [B, nhead, L, Lk] (also [B*nhead, L, Lk]); Uint8Array nonzero = masked, Float32Array added. Lk = L, or with a cache its length after this call. */
  srcMask?: Tensor<Uint8Array> | Tensor<Float32Array> | null;
  /** [B, Lk] ([Lk] for unbatched src), nonzero = padding (ignored as a key). */
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
  /** [B, Lk] ([Lk] unbatched), nonzero = padding. */
  tgtKeyPaddingMask?: Tensor<Uint8Array> | null;
  /** [B, S] ([S] unbatched), nonzero = padding. */
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
export type EncoderStateDict = Record<string, MatrixWeight> | TensorMap;
export type DecoderStateDict = Record<string, MatrixWeight> | TensorMap;

/** The read-only configuration and lifecycle of both Transformer blocks. */
export interface TransformerLayerProperties {
  readonly dModel: number;
  readonly nhead: number;
  readonly dimFeedforward: number;
  readonly activation: 'relu' | 'gelu';
  readonly layerNormEps: number;
  readonly normFirst: boolean;
  readonly bias: boolean;
  /** How the weight matrices are stored (the weightType option, default 'f32'). */
  readonly weightType: WeightType;
  /** The self-attention's MultiHeadAttention options: dModel, nhead, dModel, dModel and dModel / nhead. */
  readonly embedDim: number;
  readonly numHeads: number;
  readonly kdim: number;
  readonly vdim: number;
  readonly headDim: number;
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
  forward(src: Tensor, options?: EncoderForwardOptions<M>): Returns<M, Tensor | { output: Tensor; weights: Tensor }>;
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
  forward(tgt: Tensor, memory: Tensor, options?: DecoderForwardOptions<M>): Returns<M, Tensor | { output: Tensor; selfWeights: Tensor; crossWeights: Tensor }>;
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

export interface RMSNormOptions {
  /** The trailing dims to normalize over: a number or an array. */
  normalizedShape: number | number[];
  /** Default 2 ** -23, float32's epsilon (torch.nn.RMSNorm's default). */
  eps?: number;
  /** Learnable weight; default true. The scale is 1 until setWeights. */
  elementwiseAffine?: boolean;
  /** The scale is weightOffset + weight; default 0. Gemma's RMSNorm is weightOffset: 1. Needs elementwiseAffine. */
  weightOffset?: number;
}

export interface RMSNormProperties {
  readonly normalizedShape: number[];
  readonly eps: number;
  readonly elementwiseAffine: boolean;
  readonly weightOffset: number;
  readonly disposed: boolean;
  dispose(): void;
}

/** torch.nn.RMSNorm: x / sqrt(mean(x^2) + eps) * (weightOffset + weight) over normalizedShape. */
export interface RMSNormOf<M extends Mode> extends RMSNormProperties {
  /** { weight } of normalizedShape (the module's state_dict). */
  setWeights(stateDict: { weight: Weight }, options?: TransferOption): Returns<M, void>;
  /** input [..., ...normalizedShape]; returns the same dims. */
  forward(input: Tensor, options?: TransferOption): Returns<M, Tensor>;
}
export type RMSNorm = RMSNormOf<'sync'>;

/** 'gelu' is the exact (erf) GELU, 'gelu_tanh' its tanh approximation (gelu_pytorch_tanh), 'silu' x * sigmoid(x). */
export type FeedForwardActivation = 'relu' | 'gelu' | 'gelu_tanh' | 'silu';

export interface FeedForwardOptions {
  dModel: number;
  /** The hidden size F. */
  dimFeedforward: number;
  /** Default 'relu'. */
  activation?: FeedForwardActivation;
  /** Default false: linear2(act(linear1(x))). true: down_proj(act(gate_proj(x)) * up_proj(x)) (Llama, Gemma). */
  gated?: boolean;
  /** Biases in the projections. Default true. */
  bias?: boolean;
  /** How the weight matrices are stored: 'f32' (default), 'f16' or 'int8'. */
  weightType?: WeightType;
}

/**
 * FeedForward weights, by PyTorch's / Hugging Face's names or camelCase (linear1Weight,
 * gateProjWeight, upProjBias, ...). gated false: linear1.weight [F, E], linear2.weight [E, F]
 * (and linear1.bias [F], linear2.bias [E]); gated true: gate_proj.weight [F, E],
 * up_proj.weight [F, E], down_proj.weight [E, F] (and their .bias). Biases only with bias.
 */
export type FeedForwardWeights = Record<string, MatrixWeight> | TensorMap;

export interface FeedForwardProperties {
  readonly dModel: number;
  readonly dimFeedforward: number;
  readonly activation: FeedForwardActivation;
  readonly gated: boolean;
  readonly bias: boolean;
  /** How the weight matrices are stored (the weightType option, default 'f32'). */
  readonly weightType: WeightType;
  readonly disposed: boolean;
  dispose(): void;
}

/** A Transformer's position-wise feed-forward block, plain (PyTorch's) or gated (Hugging Face's MLP). */
export interface FeedForwardOf<M extends Mode> extends FeedForwardProperties {
  /** Copies the weights in, e.g. parseSafetensors(bytes, { prefix: 'model.layers.0.mlp.' }). */
  setWeights(weights: FeedForwardWeights, options?: TransferOption): Returns<M, void>;
  /** x [..., dModel] (e.g. [B, L, dModel] or [L, dModel]); returns the same dims. */
  forward(input: Tensor, options?: TransferOption): Returns<M, Tensor>;
}
export type FeedForward = FeedForwardOf<'sync'>;

/** Model's options (a whole Transformer run one call per step; mha-wasm/models builds one from a Hugging Face checkpoint). */
export interface ModelOptions {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  /** Rows of a learned absolute position table (GPT-2, BERT). Default 0 (none). */
  maxPositions?: number;
  /** Rows of a token-type table (BERT). Default 0 (none). */
  typeVocabSize?: number;
  /** A LayerNorm over the summed embeddings (BERT). Default false. */
  embedNorm?: boolean;
  /** The blocks' and the final norm. Default 'layer'. */
  norm?: 'layer' | 'rms';
  /** LayerNorms have a bias. Default true. */
  normBias?: boolean;
  /** Default 1e-5. */
  normEps?: number;
  /** Pre-norm blocks (GPT-2, Llama) or post-norm (BERT). Default true. */
  preNorm?: boolean;
  /** Default true. */
  finalNorm?: boolean;
  /** Logits over the vocabulary ('tied': the token table) or hidden states ('none'). Default 'none'. */
  head?: 'none' | 'tied' | 'untied';
  /** Default true. */
  causal?: boolean;
  /** attention.slidingWindow applies to blocks from this one on (Qwen2's max_window_layers). Default 0. */
  windowFrom?: number;
  attention: Omit<MultiHeadAttentionOptions, 'embedDim' | 'kdim' | 'vdim' | 'weightType'>;
  feedForward: Omit<FeedForwardOptions, 'dModel' | 'weightType'>;
  /**
   * How the blocks' matrices, the head and the token table are stored: 'f32' (default), 'f16' or 'int8'
   * (the lookup dequantizes a token's row; a 'tied' head is the table's only copy). Position and
   * token-type tables and the norms stay float32.
   */
  weightType?: WeightType;
}

export interface ModelBlockWeights {
  norm1Weight: Weight;
  norm1Bias?: Weight;
  attention: MultiHeadAttentionWeights | TorchMultiHeadAttentionWeights | HfAttentionWeights | TensorMap;
  norm2Weight: Weight;
  norm2Bias?: Weight;
  feedForward: FeedForwardWeights;
}

export interface ModelForwardOptions<M extends Mode = 'sync'> extends TransferOption {
  /** Like ids ([L] or [B, L]). */
  tokenTypes?: Int32Array | Tensor<Int32Array> | null;
  /** [B, L] or [L]: learned-table rows and rotary positions. Default: after what the cache holds. */
  positionIds?: Int32Array | Tensor<Int32Array> | null;
  /** [B, cache length + L] ([Lk] for one sequence): nonzero = padding (ignored as a key). */
  keyPaddingMask?: Tensor<Uint8Array> | null;
  cache?: KVCacheOf<M> | null;
  /** Only each sequence's last position (for generation). Default false. */
  lastOnly?: boolean;
  /** Also return every block's attention maps. Default false. */
  needWeights?: boolean;
  /**
   * A Float32Array of the output's size, filled and returned as output.data (a decoding loop reuses
   * one array instead of touching a fresh one each step). Checked before the call runs.
   */
  out?: Float32Array | null;
}

export interface ModelResult {
  /** Logits [B, L (1 with lastOnly), vocabSize], or hidden states [B, L, hiddenSize] without a head ([L, ...] for one sequence). */
  output: Tensor<Float32Array>;
  /** With needWeights: per block, [B, H, L, cache length + L] ([H, L, ...] for one sequence). */
  attentions: Tensor<Float32Array>[] | null;
}

export interface ModelOf<M extends Mode> {
  readonly disposed: boolean;
  /** The options with their defaults filled in. */
  readonly config: ModelOptions;
  /** Without tokens, the token table comes by setTokenRows. */
  setEmbeddings(weights: { tokens?: Weight; positions?: Weight; types?: Weight; normWeight?: Weight; normBias?: Weight }, options?: TransferOption): Returns<M, void>;
  /**
   * Rows [first, first + n) of the token table (rows: n * hiddenSize floats), for a table too large to hold
   * whole: in order from row 0 (first 0 begins the table again), each piece a multiple of 8 rows but the last.
   */
  setTokenRows(first: number, rows: Float32Array, options?: TransferOption): Returns<M, void>;
  /** An untied head's rows, as setTokenRows gives the token table's. */
  setHeadRows(first: number, rows: Float32Array, options?: TransferOption): Returns<M, void>;
  setBlock(block: number, weights: ModelBlockWeights, options?: TransferOption): Returns<M, void>;
  setFinalNorm(weights: { weight: Weight; bias?: Weight }, options?: TransferOption): Returns<M, void>;
  setHead(weights: { weight: Weight }, options?: TransferOption): Returns<M, void>;
  /** Bytes of wasm memory the weights set so far take, as the core holds them. */
  memoryBytes(): Returns<M, number>;
  /** KV caches for every block. */
  createCache(options: CacheOptions): KVCacheOf<M>;
  /** ids: an Int32Array [L] (one sequence) or a tensor [B, L]. */
  forward(ids: Int32Array | Tensor<Int32Array>, options?: ModelForwardOptions<M>): Returns<M, ModelResult>;
  dispose(): void;
}
export type Model = ModelOf<'sync'>;

/** What init() loaded (the same in mha-wasm/worker). */
export interface RuntimeInfo {
  /** Threads in use (1 when SharedArrayBuffer is unavailable). */
  readonly threads: number;
  /** relaxedSimd: a relaxed-SIMD build runs; threads: a threaded build runs; int8Dot: the kernel of int8 weights. */
  readonly features: { readonly simd: true; readonly relaxedSimd: boolean; readonly threads: boolean; readonly int8Dot: Int8Dot };
  /** The build that runs: 'mha-wasm-relaxed-threads', 'mha-wasm-relaxed-simd', 'mha-wasm-threads' or 'mha-wasm-simd'. */
  readonly build: string;
  /** Why fewer threads run than were asked for (no SharedArrayBuffer or cross-origin isolation, or more than the pool's 64); otherwise null. */
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
  readonly RMSNorm: new (options: RMSNormOptions) => RMSNormOf<M>;
  readonly FeedForward: new (options: FeedForwardOptions) => FeedForwardOf<M>;
  readonly Model: new (options: ModelOptions) => ModelOf<M>;
  /**
   * q [B, H, Lq, D], k [B, Hkv, Lk, D], v [B, Hkv, Lk, Dv] with Hkv dividing H (grouped-query; [H, L, D] and
   * [L, D] also accepted).
   */
  scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, options?: SdpaOptions): Returns<M, AttentionResult>;
  /** Rotary position embedding of x [B, H, L, D] (or [B, L, H, D] with layout 'blhd'); returns a new tensor. */
  applyRotaryEmbedding(x: Tensor, options?: RotaryOptions): Returns<M, Tensor<Float32Array>>;
  stats(): Returns<M, Stats>;
  /**
   * Makes room for `bytes` in one piece in the wasm heap now, and leaves it free for what is allocated
   * next: the heap (which never shrinks) then grows once, to what is needed, rather than in steps that
   * overshoot by up to a fifth of its size. loadModel does this with the bytes a model needs. A RangeError
   * when the engine cannot provide the memory (a wasm32 heap holds at most 4 GiB; a browser or device may
   * allow less), before anything is allocated; the heap may have grown on the way.
   */
  reserveMemory(bytes: number): Returns<M, void>;
}
export type Mha = MhaOf<'sync'>;

/** Loads the runtime (memoized per options). Falls back to one thread when threads are unavailable. */
export declare function init(options?: InitOptions): Promise<Mha>;

/** What this engine supports (relaxedSimd: relaxed SIMD, computed correctly), and if threads are out, why. */
export declare function probeFeatures(): { simd: boolean; relaxedSimd: boolean; threads: boolean; threadsReason: string | null };

/**
 * Reads a .safetensors file (Hugging Face's format) into tensors by name; F16,
 * BF16 and F64 become float32, integer tensors the matching typed array (I8 → Int8Array,
 * I64 → BigInt64Array, BOOL → Uint8Array of 0 and 1). prefix keeps only names starting with it, and
 * strips it. A malformed file throws a TypeError or RangeError saying what is wrong.
 */
export declare function parseSafetensors(bytes: Uint8Array | ArrayBuffer, options?: { prefix?: string }): TensorMap;

/**
 * A .safetensors file's weight matrices as int8 per output channel (symmetric, round to nearest, ties to even), in
 * the compressed-tensors layout the layers' setWeights read back: an I8 tensor <name> [out, in] and an F32
 * <name>_scale [out, 1]. Rank-2 tensors named *weight are quantized, except embedding tables unless
 * `embeddings`; `filter(name, dims)` overrides the choice. What stays float is written as floatDtype (default 'F32';
 * 'F16' refuses a value beyond float16's range with a RangeError naming the tensor).
 * `config` (the model's parsed config.json): for GPT-2, whose Conv1D weights are stored [in, out], those are
 * quantized per output column and keep their layout, with a <name>_scale [1, out] (loadModel reads both forms).
 */
export declare function quantizeSafetensors(bytes: Uint8Array | ArrayBuffer, options: {
  type: 'int8'; embeddings?: boolean; floatDtype?: 'F32' | 'F16'; filter?: (name: string, dims: number[]) => boolean;
  config?: Record<string, unknown>;
}): Uint8Array;

/**
 * parseSafetensors for a Blob or File (an <input>'s File, fetch()'s response.blob(), Node's fs.openAsBlob): the header
 * first, then tensor by tensor with Blob.slice, so no copy of the whole file is made and files of any size read
 * (Chromium's Blob.arrayBuffer() refuses about 2 GiB and more). The same result and errors, naming the File.
 */
export declare function readSafetensors(blob: Blob, options?: { prefix?: string }): Promise<TensorMap>;

/** The file's __metadata__ ({} when it has none). */
export declare function safetensorsMetadata(bytes: Uint8Array | ArrayBuffer): Record<string, string>;

/**
 * Writes tensors (a bare array counts as 1-D) as a .safetensors file: Float32Arrays stored as F32 or
 * (dtype: 'F16', half the size) rounded to half precision; integer arrays as their own dtype (I8, U8, I16,
 * U16, I32, U32, I64, U64).
 */
export declare function encodeSafetensors(tensors: Record<string, StoredTensor | StoredArray | (Tensor<Float32Array> & { dtype?: 'F32' | 'F16' })>, metadata?: Record<string, string> | null,
  options?: { dtype?: 'F32' | 'F16' }): Uint8Array;
