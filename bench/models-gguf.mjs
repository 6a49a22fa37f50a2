// The decoder of bench/models-lib.mjs as a GGUF v3 file for llama.cpp (run through
// @wllama/wllama by `npm run bench:models`): llama.cpp's "llama" architecture metadata, a
// minimal SentencePiece-style vocabulary, the matrices and the token table in Q8_0 (blocks of
// 32 weights: an f16 scale and 32 int8), the norms in F32. The same seeded weights as the
// mha-wasm model, so both run the same model:
// - GGUF dims are listed innermost first: HF's [out, in] matrix is ne = [in, out];
// - q_proj and k_proj rows are permuted as llama.cpp's convert_hf_to_gguf.py does (HF's rotary
//   rotates the two halves of each head; llama.cpp's LLAMA_ROPE_TYPE_NORM rotates adjacent pairs);
// - the head is tied: llama.cpp uses token_embd.weight when output.weight is absent.
import { toHalfBits } from '../bindings/safetensors.js';
import { CHAR_FIRST_ID, DECODER_CONFIG, decoderTensors, tokenText, tensorValues } from './models-lib.mjs';

const ALIGN = 32;
const T = { UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12 };
const GGML = { F32: 0, F16: 1, Q8_0: 8 };
const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, BYTE: 6 };

/** A growable little-endian byte writer. */
class Writer {
  constructor(size = 1 << 20) { this.buf = new Uint8Array(size); this.dv = new DataView(this.buf.buffer); this.n = 0; }
  room(k) {
    if (this.n + k <= this.buf.length) return;
    const b = new Uint8Array(Math.max(this.buf.length * 2, this.n + k));
    b.set(this.buf.subarray(0, this.n));
    this.buf = b;
    this.dv = new DataView(b.buffer);
  }
  u8(v) { this.room(1); this.dv.setUint8(this.n, v); this.n += 1; }
  u32(v) { this.room(4); this.dv.setUint32(this.n, v, true); this.n += 4; }
  i32(v) { this.room(4); this.dv.setInt32(this.n, v, true); this.n += 4; }
  u64(v) { this.room(8); this.dv.setBigUint64(this.n, BigInt(v), true); this.n += 8; }
  f32(v) { this.room(4); this.dv.setFloat32(this.n, v, true); this.n += 4; }
  bytes(b) { this.room(b.length); this.buf.set(b, this.n); this.n += b.length; }
  str(s) { const b = new TextEncoder().encode(s); this.u64(b.length); this.bytes(b); }
  pad(a) { while (this.n % a) this.u8(0); }
  done() { return this.buf.subarray(0, this.n); }
}

/** A metadata value: [type, value] with type a GGUF type name, or ['ARRAY', itemType, values]. */
function writeValue(w, [type, v, items]) {
  w.u32(T[type]);
  const one = { UINT32: (x) => w.u32(x), INT32: (x) => w.i32(x), FLOAT32: (x) => w.f32(x), BOOL: (x) => w.u8(x ? 1 : 0), STRING: (x) => w.str(x) };
  if (type !== 'ARRAY') return one[type](v);
  w.u32(T[v]);
  w.u64(items.length);
  for (const x of items) one[v](x);
}

/** HF's q_proj/k_proj rows [heads * hd, in] reordered for llama.cpp's rotary: per head, (2, hd/2) -> (hd/2, 2). */
export function permuteQK(a, heads, inDim) {
  const rows = a.length / inDim, hd = rows / heads, out = new Float32Array(a.length);
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < hd / 2; j++)
        out.set(a.subarray((h * hd + i * (hd / 2) + j) * inDim, (h * hd + i * (hd / 2) + j + 1) * inDim), (h * hd + 2 * j + i) * inDim);
  return out;
}

/** Q8_0 blocks of a (its length a multiple of 32), as ggml's quantize_row_q8_0_ref. */
export function quantizeQ8_0(a) {
  const nb = a.length / 32, out = new Uint8Array(nb * 34), dv = new DataView(out.buffer);
  for (let b = 0; b < nb; b++) {
    let amax = 0;
    for (let k = 0; k < 32; k++) amax = Math.max(amax, Math.abs(a[b * 32 + k]));
    const d = amax / 127, id = d ? 1 / d : 0;
    dv.setUint16(b * 34, toHalfBits(d), true);
    for (let k = 0; k < 32; k++) {
      const x = a[b * 32 + k] * id;
      dv.setInt8(b * 34 + 2 + k, Math.sign(x) * Math.round(Math.abs(x)));  // roundf: halves away from zero
    }
  }
  return out;
}

/** The vocabulary: <unk>, <s>, </s>, the 256 byte tokens, then normal tokens (models-lib.mjs's tokenText). */
function vocabulary(V) {
  const tokens = ['<unk>', '<s>', '</s>'], types = [TOKEN_TYPE.UNKNOWN, TOKEN_TYPE.CONTROL, TOKEN_TYPE.CONTROL];
  for (let b = 0; b < 256; b++) tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`), types.push(TOKEN_TYPE.BYTE);
  if (tokens.length !== CHAR_FIRST_ID) throw new Error('the vocabulary does not match models-lib.mjs');
  for (let i = tokens.length; i < V; i++) tokens.push(tokenText(i)), types.push(TOKEN_TYPE.NORMAL);
  return { tokens, types, scores: tokens.map((_, i) => -i) };
}

/** llama.cpp's name of an HF tensor name, or null for none. */
function ggufName(name) {
  if (name === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (name === 'model.norm.weight') return 'output_norm.weight';
  const m = name.match(/^model\.layers\.(\d+)\.(.+)$/);
  const map = {
    'input_layernorm.weight': 'attn_norm.weight', 'post_attention_layernorm.weight': 'ffn_norm.weight',
    'self_attn.q_proj.weight': 'attn_q.weight', 'self_attn.k_proj.weight': 'attn_k.weight', 'self_attn.v_proj.weight': 'attn_v.weight',
    'self_attn.o_proj.weight': 'attn_output.weight', 'mlp.gate_proj.weight': 'ffn_gate.weight', 'mlp.up_proj.weight': 'ffn_up.weight',
    'mlp.down_proj.weight': 'ffn_down.weight',
  };
  return m && map[m[2]] ? `blk.${m[1]}.${map[m[2]]}` : null;
}

/** The GGUF file (a Uint8Array) of the decoder of config with the weights of seed. */
export function decoderGguf(c = DECODER_CONFIG, seed = 1) {
  const E = c.hidden_size, heads = c.num_attention_heads, kv = c.num_key_value_heads;
  const { tokens, types, scores } = vocabulary(c.vocab_size);
  const meta = [
    ['general.architecture', ['STRING', 'llama']], ['general.name', ['STRING', 'mha-wasm bench: SmolLM-135M shapes, random weights']],
    ['general.alignment', ['UINT32', ALIGN]], ['general.file_type', ['UINT32', 7]],  // LLAMA_FTYPE_MOSTLY_Q8_0
    ['llama.context_length', ['UINT32', c.max_position_embeddings]], ['llama.embedding_length', ['UINT32', E]],
    ['llama.block_count', ['UINT32', c.num_hidden_layers]], ['llama.feed_forward_length', ['UINT32', c.intermediate_size]],
    ['llama.attention.head_count', ['UINT32', heads]], ['llama.attention.head_count_kv', ['UINT32', kv]],
    ['llama.rope.dimension_count', ['UINT32', E / heads]], ['llama.rope.freq_base', ['FLOAT32', c.rope_theta]],
    ['llama.attention.layer_norm_rms_epsilon', ['FLOAT32', c.rms_norm_eps]], ['llama.vocab_size', ['UINT32', c.vocab_size]],
    ['tokenizer.ggml.model', ['STRING', 'llama']], ['tokenizer.ggml.tokens', ['ARRAY', 'STRING', tokens]],
    ['tokenizer.ggml.scores', ['ARRAY', 'FLOAT32', scores]], ['tokenizer.ggml.token_type', ['ARRAY', 'INT32', types]],
    ['tokenizer.ggml.unknown_token_id', ['UINT32', 0]], ['tokenizer.ggml.bos_token_id', ['UINT32', c.bos_token_id]],
    ['tokenizer.ggml.eos_token_id', ['UINT32', c.eos_token_id]], ['tokenizer.ggml.add_bos_token', ['BOOL', false]],
    ['tokenizer.ggml.add_space_prefix', ['BOOL', false]],
  ];
  // The tensors' data first (quantized one at a time), then the header that points into it.
  const list = decoderTensors(c), infos = [], parts = [];
  let offset = 0;
  for (const t of list) {
    const [name, dims] = t;
    let values = tensorValues(t, seed);
    if (/q_proj/.test(name)) values = permuteQK(values, heads, E);
    if (/k_proj/.test(name)) values = permuteQK(values, kv, E);
    const type = dims.length === 2 ? GGML.Q8_0 : GGML.F32;
    const data = type === GGML.Q8_0 ? quantizeQ8_0(values) : new Uint8Array(values.buffer);
    infos.push({ name: ggufName(name), ne: [...dims].reverse(), type, offset });
    parts.push(data);
    offset += Math.ceil(data.length / ALIGN) * ALIGN;
  }
  const w = new Writer(4 << 20);
  w.u32(0x46554747);  // "GGUF"
  w.u32(3);
  w.u64(infos.length);
  w.u64(meta.length);
  for (const [key, value] of meta) w.str(key), writeValue(w, value);
  for (const ti of infos) {
    w.str(ti.name);
    w.u32(ti.ne.length);
    for (const d of ti.ne) w.u64(d);
    w.u32(ti.type);
    w.u64(ti.offset);
  }
  w.pad(ALIGN);
  const head = w.done(), out = new Uint8Array(head.length + offset);
  out.set(head);
  parts.forEach((p, i) => out.set(p, head.length + infos[i].offset));
  return out;
}
