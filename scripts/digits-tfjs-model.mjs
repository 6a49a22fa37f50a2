// The digit-reversal model in TensorFlow.js ops: a decoder-only Transformer
// (token + learned position embeddings, pre-norm nn.TransformerEncoderLayer
// blocks with a causal mask, a final LayerNorm, a linear head). Parameters are
// kept under PyTorch's state_dict names, so the trained weights export as they
// are and load into mha-wasm's TransformerEncoderLayer and LayerNorm.
// Node-only (TF.js is a dev dependency), shared by the training example
// (examples/digits/train.mjs), the test that checks mha-wasm against it
// (tests/trained-model.test.mjs) and npm run bench:decode.
import * as tf from '@tensorflow/tfjs';

/** PyTorch's state_dict names and dims of the model. */
export function parameterShapes({ vocab, positions, dModel: E, nhead, dimFeedforward: F, numLayers }) {
  const shapes = { 'embed.weight': [vocab, E], 'pos_embed.weight': [positions, E] };
  for (let l = 0; l < numLayers; l++) {
    const p = `layers.${l}.`;
    Object.assign(shapes, {
      [`${p}self_attn.in_proj_weight`]: [3 * E, E], [`${p}self_attn.in_proj_bias`]: [3 * E],
      [`${p}self_attn.out_proj.weight`]: [E, E], [`${p}self_attn.out_proj.bias`]: [E],
      [`${p}linear1.weight`]: [F, E], [`${p}linear1.bias`]: [F],
      [`${p}linear2.weight`]: [E, F], [`${p}linear2.bias`]: [E],
      [`${p}norm1.weight`]: [E], [`${p}norm1.bias`]: [E], [`${p}norm2.weight`]: [E], [`${p}norm2.bias`]: [E],
    });
  }
  Object.assign(shapes, { 'norm.weight': [E], 'norm.bias': [E], 'head.weight': [vocab, E], 'head.bias': [vocab] });
  if (nhead <= 0 || E % nhead) throw new RangeError('dModel must be divisible by nhead');
  return shapes;
}

/** PyTorch's default initialisation of each parameter, as tf.Variables. */
export function initParameters(cfg, seed) {
  const params = {};
  let s = seed;
  for (const [name, dims] of Object.entries(parameterShapes(cfg))) {
    const fanIn = dims[dims.length - 1];
    let t;
    if (name.endsWith('embed.weight')) t = tf.randomNormal(dims, 0, 1, 'float32', s++);
    else if (/norm\d?\.weight$/.test(name)) t = tf.ones(dims);
    else if (/norm\d?\.bias$/.test(name) || name.endsWith('in_proj_bias') || name.endsWith('out_proj.bias')) t = tf.zeros(dims);
    else if (name.endsWith('in_proj_weight')) {
      const a = Math.sqrt(6 / (dims[1] + dims[1]));  // xavier_uniform_ on each [E, E] block
      t = tf.randomUniform(dims, -a, a, 'float32', s++);
    } else {
      const a = 1 / Math.sqrt(name.endsWith('.bias') ? parameterShapes(cfg)[name.replace(/bias$/, 'weight')][1] : fanIn);
      t = tf.randomUniform(dims, -a, a, 'float32', s++);
    }
    params[name] = tf.variable(t, true, name);
  }
  return params;
}

// x [..., in] -> x W^T + b, W [out, in]
const linear = (x, w, b) => {
  const dims = x.shape;
  const y = tf.matMul(x.reshape([-1, dims[dims.length - 1]]), w, false, true);
  return (b ? y.add(b) : y).reshape([...dims.slice(0, -1), w.shape[0]]);
};

function layerNorm(x, g, b, eps) {
  const { mean, variance } = tf.moments(x, -1, true);
  return x.sub(mean).div(variance.add(eps).sqrt()).mul(g).add(b);
}

const gelu = (x) => x.mul(0.5).mul(tf.erf(x.div(Math.SQRT2)).add(1));

/** Causal self-attention of x [B, T, E]; also returns the probabilities [B, H, T, T] when asked. */
function selfAttention(x, p, prefix, nhead, keep) {
  const [B, T, E] = x.shape, D = E / nhead;
  const qkv = linear(x, p[`${prefix}in_proj_weight`], p[`${prefix}in_proj_bias`]);
  const [q, k, v] = tf.split(qkv, 3, -1).map((t) => t.reshape([B, T, nhead, D]).transpose([0, 2, 1, 3]));
  const future = tf.sub(1, tf.linalg.bandPart(tf.ones([T, T]), -1, 0)).mul(-1e9);  // j > i gets -1e9
  const probs = tf.softmax(tf.matMul(q, k, false, true).mul(1 / Math.sqrt(D)).add(future));
  if (keep) keep.push(probs);
  const o = tf.matMul(probs, v).transpose([0, 2, 1, 3]).reshape([B, T, E]);
  return linear(o, p[`${prefix}out_proj.weight`], p[`${prefix}out_proj.bias`]);
}

/**
 * Logits [B, T, vocab] of tokens [B, T] (int32). keep: an array that receives
 * each layer's attention probabilities [B, H, T, T].
 */
export function forward(params, cfg, tokens, keep = null) {
  const p = params, T = tokens.shape[1];
  let x = tf.gather(p['embed.weight'], tokens).add(p['pos_embed.weight'].slice([0, 0], [T, -1]));
  for (let l = 0; l < cfg.numLayers; l++) {
    const n = `layers.${l}.`;
    x = x.add(selfAttention(layerNorm(x, p[`${n}norm1.weight`], p[`${n}norm1.bias`], cfg.layerNormEps), p, `${n}self_attn.`, cfg.nhead, keep));
    const h = layerNorm(x, p[`${n}norm2.weight`], p[`${n}norm2.bias`], cfg.layerNormEps);
    x = x.add(linear(gelu(linear(h, p[`${n}linear1.weight`], p[`${n}linear1.bias`])), p[`${n}linear2.weight`], p[`${n}linear2.bias`]));
  }
  x = layerNorm(x, p['norm.weight'], p['norm.bias'], cfg.layerNormEps);
  return linear(x, p['head.weight'], p['head.bias']);
}

/** Greedy decoding with a full forward per step: digits, SEP, then one token per digit and END. Returns every token. */
export function greedyDecode(params, cfg, digits, sep) {
  const seq = [...digits, sep];
  for (let k = 0; k <= digits.length; k++)
    seq.push(tf.tidy(() => forward(params, cfg, tf.tensor2d([seq], [1, seq.length], 'int32')).slice([0, seq.length - 1, 0], [1, 1, -1]).argMax(-1).dataSync()[0]));
  return seq;
}
