// The contract between the JS bindings and the C++ core, written once: status
// codes, enum values, limits, the built files, and the layout of every record a
// call writes into wasm memory. The bindings import it; scripts/gen-abi.mjs turns
// it into the C++ header (abi.h) and the CMake settings (abi.cmake) at build time.

/** What a core call returns (mha::Status). */
export const STATUS = Object.freeze({ OK: 0, INVALID_ARGUMENT: 1, OUT_OF_MEMORY: 2, NO_WEIGHTS: 3 });

/** attn-mask kinds: none, Uint8Array (nonzero = masked), Float32Array (added to the scores). */
export const MASK = Object.freeze({ NONE: 0, BOOL: 1, FLOAT: 2 });

/** Feed-forward activations (mha::Activation). */
export const ACTIVATION = Object.freeze({ RELU: 0, GELU: 1, GELU_TANH: 2, SILU: 3 });

/** How a layer stores its weight matrices (mha::WeightType): float32, IEEE float16, or int8 with one scale per output channel. */
export const WEIGHT_TYPE = Object.freeze({ F32: 0, F16: 1, INT8: 2 });

/**
 * The int8 kernels (mha::abi::Int8Dot, src/quant.h): i32x4.dot_i16x8_s on int16 activations (every
 * build), or i32x4.relaxed_dot_i8x16_i7x16_add_s on 14-bit activations split into two 7-bit halves
 * (relaxed-SIMD builds). The names init()'s int8Dot option and features.int8Dot use.
 */
export const INT8_DOT = Object.freeze({ I16: 0, I7: 1 });
export const INT8_DOT_NAMES = Object.freeze(['dot_i16x8', 'relaxed_dot_i8x16_i7x16']);
/** Depth of one int8 pass (mha::kernels::kI8KC): the relaxed kernel's panels hold a column sum per pass. */
export const INT8_PASS = 1024;

/** The wasm heap's maximum (-sMAXIMUM_MEMORY): no call may need more. */
export const MAX_HEAP_BYTES = 2 ** 32;

/** The most threads the core's pool runs (mha::ThreadPool::kMaxThreads); init() caps threads there. */
export const MAX_THREADS = 64;

/**
 * The builds: their file stem, the global their glue defines, whether they use
 * threads, and whether they use relaxed SIMD (built by clang 19 when the machine
 * has it: scripts/build.mjs; init() runs them only where the engine computes
 * relaxed SIMD correctly).
 */
export const BUILDS = Object.freeze({
  threads: Object.freeze({ file: 'mha-wasm-threads', exportName: 'MhaWasmThreads', threads: true, relaxed: false }),
  simd: Object.freeze({ file: 'mha-wasm-simd', exportName: 'MhaWasmSimd', threads: false, relaxed: false }),
  relaxedThreads: Object.freeze({ file: 'mha-wasm-relaxed-threads', exportName: 'MhaWasmRelaxedThreads', threads: true, relaxed: true }),
  relaxedSimd: Object.freeze({ file: 'mha-wasm-relaxed-simd', exportName: 'MhaWasmRelaxedSimd', threads: false, relaxed: true }),
});

/** The files of one build (the pthread worker script only for threaded builds). */
export const buildFiles = (b) => [`${b.file}.js`, `${b.file}.wasm`, ...(b.threads ? [`${b.file}.worker.js`] : [])];

/** Every file a build writes to dist/ (the pthread worker script only for threaded builds). */
export const FILES = Object.freeze(Object.values(BUILDS).flatMap(buildFiles));

// Record fields are 4 bytes each, in order: 'name' is an int32, 'name:p' a heap
// offset (uint32, 0 = absent), 'name:f' a float32.
const mask = (p) => [`${p}mask_kind`, `${p}mask:p`, `${p}mask_broadcast`, `${p}key_padding:p`, `${p}causal`];
const attn = (p) => [`${p}in_proj_weight:p`, `${p}in_proj_bias:p`, `${p}out_proj_weight:p`, `${p}out_proj_bias:p`];
const ffn = ['linear1_weight:p', 'linear1_bias:p', 'linear2_weight:p', 'linear2_bias:p'];
// Pre-quantized int8 matrices (compressed-tensors layout): when `<name>_scale` is
// set, the matrix field `<name>` points to int8 values [out, in] and the scale to
// one float per output row (w = q * scale); the layer must have weight_type INT8.
const scales = (...names) => names.map((n) => `${n}_scale:p`);
const attnScales = (p) => scales(`${p}in_proj_weight`, `${p}out_proj_weight`);
const norms = (n) => Array.from({ length: n }, (_, i) => [`norm${i + 1}_weight:p`, `norm${i + 1}_bias:p`]).flat();

// MultiHeadAttention's weights (mha::MhaWeights), also inside a model block's record.
const mhaWeights = (p) => ['in_proj_weight:p', 'q_proj_weight:p', 'k_proj_weight:p', 'v_proj_weight:p', 'in_proj_bias:p',
  'out_proj_weight:p', 'out_proj_bias:p', 'q_proj_bias:p', 'k_proj_bias:p', 'v_proj_bias:p', 'sinks:p',
  'alibi_slopes:p', 'q_norm_weight:p', 'k_norm_weight:p', 'rope_inv_freq:p',
  ...scales('in_proj_weight', 'q_proj_weight', 'k_proj_weight', 'v_proj_weight', 'out_proj_weight')].map((f) => p + f);
// mha::FeedForwardWeights' matrices, whose scales follow a record's other fields.
const ffnScales = (p) => scales(`${p}gate_weight`, `${p}up_weight`, `${p}down_weight`);
// The attention options of mha::MhaConfig past embed_dim, kdim and vdim.
const attnOptions = (p) => ['num_heads', 'bias', 'num_kv_heads', 'head_dim', 'qkv_bias', 'out_bias', 'scale:f', 'softcap:f', 'window',
  'alibi', 'sinks', 'qk_norm', 'qk_norm_eps:f', 'rope_dim', 'rope_interleaved', 'rope_attention_factor:f'].map((f) => p + f);

/** The records calls pass across the boundary: one pointer per call instead of positional arguments. */
export const RECORDS = Object.freeze({
  // Then the modern options (mha::MhaConfig): 0 / -1 mean the default.
  LayerConfig: ['embed_dim', 'kdim', 'vdim', ...attnOptions(''), 'weight_type'],
  BlockConfig: ['d_model', 'nhead', 'dim_feedforward', 'activation', 'layer_norm_eps:f', 'norm_first', 'bias', 'weight_type'],
  NormConfig: ['width', 'eps:f'],
  CacheConfig: ['batch', 'capacity', 'width', 'sliding'],
  MhaWeights: mhaWeights(''),
  // Table order = TransformerEncoderLayer's state_dict order in transformer.js, then the scales.
  EncoderWeights: [...attn('self_attn_'), ...ffn, ...norms(2), ...attnScales('self_attn_'), ...scales('linear1_weight', 'linear2_weight')],
  DecoderWeights: [...attn('self_attn_'), ...attn('multihead_attn_'), ...ffn, ...norms(3), ...attnScales('self_attn_'),
    ...attnScales('multihead_attn_'), ...scales('linear1_weight', 'linear2_weight')],
  NormWeights: ['weight:p', 'bias:p'],
  MhaForward: ['batch', 'lq', 'lk', 'query:p', 'key:p', 'value:p', ...mask(''), 'output:p', 'weights:p', 'average_weights',
    'position_ids:p', 'positions_shared', 'trace:p', 'trace_b', 'trace_h', 'trace_i'],
  EncoderForward: ['batch', 'length', 'src:p', ...mask(''), 'output:p', 'weights:p'],
  DecoderForward: ['batch', 'tgt_length', 'memory_length', 'tgt:p', 'memory:p', ...mask('tgt_'), ...mask('memory_'),
    'output:p', 'self_weights:p', 'cross_weights:p'],
  NormForward: ['rows', 'x:p', 'y:p'],
  Sdpa: ['batch', 'heads', 'lq', 'lk', 'd', 'dv', 'q:p', 'k:p', 'v:p', 'output:p', 'scale:f', ...mask(''), 'weights:p',
    'kv_heads', 'softcap:f', 'alibi:p', 'sinks:p', 'window'],
  // mha.applyRotaryEmbedding: x [B, H, L, D] ('bhld') or [B, L, H, D]; positions [B, L] or [L] (shared).
  Rotary: ['batch', 'heads', 'length', 'd', 'blhd', 'x:p', 'y:p', 'positions:p', 'positions_shared', 'dim', 'interleaved',
    'inv_freq:p', 'attention_factor:f'],
  // RMSNorm takes NormWeights (bias 0) and NormForward as LayerNorm does.
  RmsNormConfig: ['width', 'eps:f', 'weight_offset:f'],
  FeedForwardConfig: ['d_model', 'dim_feedforward', 'activation', 'gated', 'bias', 'weight_type'],
  // linear1 / linear2 of the plain block are up / down; gate only when gated.
  FeedForwardWeights: ['gate_weight:p', 'gate_bias:p', 'up_weight:p', 'up_bias:p', 'down_weight:p', 'down_bias:p', ...ffnScales('')],
  FeedForwardForward: ['rows', 'x:p', 'y:p'],
  // A whole model (mha::ModelConfig): embeddings, blocks (attention as LayerConfig's options, a feed-forward), head.
  ModelConfig: ['vocab', 'hidden', 'layers', 'max_positions', 'type_vocab', 'embed_norm', 'rms_norm', 'norm_bias', 'norm_eps:f',
    'pre_norm', 'final_norm', 'head', 'causal', 'window_from', ...attnOptions('attn_'), 'dim_feedforward', 'activation', 'gated',
    'ffn_bias', 'weight_type'],
  EmbeddingWeights: ['tokens:p', 'positions:p', 'types:p', 'norm_weight:p', 'norm_bias:p'],
  BlockWeights: ['norm1_weight:p', 'norm1_bias:p', ...mhaWeights('attn_'), 'norm2_weight:p', 'norm2_bias:p',
    'gate_weight:p', 'gate_bias:p', 'up_weight:p', 'up_bias:p', 'down_weight:p', 'down_bias:p', ...ffnScales('')],
  ModelForward: ['batch', 'length', 'ids:p', 'token_types:p', 'positions:p', 'key_padding:p', 'output:p', 'last_only', 'weights:p'],
  ModelCacheConfig: ['batch', 'capacity'],
});

/** A record's fields as [{ name, type: 'i32' | 'ptr' | 'f32', offset }]. */
export function recordFields(record) {
  return RECORDS[record].map((f, i) => {
    const [name, t] = f.split(':');
    return { name, type: t === 'p' ? 'ptr' : t === 'f' ? 'f32' : 'i32', offset: 4 * i };
  });
}
