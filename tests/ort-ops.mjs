// ONNX graphs of the modern attention options, built in JS with onnx-proto (as
// bench/peers.mjs does) and run by onnxruntime-node, to cross-check the float64
// reference of tests/reference-modern.mjs against an implementation written by
// someone else. Ops: opset 23 Attention (q_num_heads, kv_num_heads, is_causal, scale,
// softcap, qk_matmul_output_mode), RotaryEmbedding and RMSNormalization; com.microsoft
// GroupQueryAttention (local_window_size, softcap, head_sink); Relu, Gelu, Sigmoid for
// the feed-forward block.
//
// What ONNX Runtime 1.30 (CPU, node and web alike) was seen to do, and the graphs rely on:
// - Attention's is_causal is top-left aligned (query i sees keys j <= i) when there is
//   no past_key; with past_key/past_value it is bottom-right, as this package's is. So a
//   decode step (Lq < Lk) passes the earlier keys as past_key/past_value.
// - Attention applies softcap to the scaled scores before the mask (bool or float) and
//   a row left with no key gives zero output and zero weights, as this package does.
// - Attention's attn_mask must have Lq rows ([B, 1, 1, Lk] is refused); a bool mask is
//   true = attend, the opposite of this package's.
// - GroupQueryAttention is always causal (bottom-right); local_window_size W lets a
//   query see the keys j with i - W < j <= i (the contract's slidingWindow W with
//   isCausal); head_sink adds one logit per head to each softmax denominator; with past
//   keys and more than one new token it takes batch size 1 only.
//
// onnxruntime-node is loaded with require() from here, so it is found in the
// repository's node_modules once it is a dev dependency, or through NODE_PATH (e.g.
// NODE_PATH=/tmp/ortnode/node_modules for a scratch `npm install --prefix /tmp/ortnode
// --ignore-scripts onnxruntime-node`).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/**
 * { ort, name }: onnxruntime-node when it is installed, else onnxruntime-web (a dev
 * dependency; its WebAssembly CPU backend has the same ops), single-threaded.
 * MHA_ORT_BACKEND=web or =node picks one; { ort: null, reason } when it cannot load.
 */
export async function loadOrt() {
  const want = process.env.MHA_ORT_BACKEND;
  if (want === 'web' || (want !== 'node' && !loadOrtNode().ort)) {
    const ort = await import('onnxruntime-web');
    ort.env.wasm.numThreads = 1;
    return { ort, name: `onnxruntime-web ${ort.env.versions.web}` };
  }
  const r = loadOrtNode();
  return r.ort ? { ...r, name: `onnxruntime-node ${r.ort.env.versions.node}` } : r;
}

/** { ort } or { ort: null, reason } when onnxruntime-node cannot be loaded. */
export function loadOrtNode() {
  try {
    return { ort: require('onnxruntime-node') };
  } catch (e) {
    const missing = e && e.code === 'MODULE_NOT_FOUND' && /onnxruntime-node/.test(e.message);
    return { ort: null, reason: missing ? 'onnxruntime-node is not installed (a dev dependency, installed with its install script skipped; or NODE_PATH=<a scratch install>/node_modules; or MHA_ORT_BACKEND=web)' : `onnxruntime-node failed to load: ${e.message}` };
  }
}

export function loadOnnxProto() {
  return require('onnx-proto').onnx;
}

/** Small helpers over the onnx-proto namespace. */
export function onnxKit(onnx) {
  const DT = onnx.TensorProto.DataType;
  const AT = onnx.AttributeProto.AttributeType;
  const raw = (a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const typeOf = (a) => (a instanceof Float32Array ? DT.FLOAT : a instanceof BigInt64Array ? DT.INT64 : a instanceof Int32Array ? DT.INT32 : a instanceof Uint8Array ? DT.BOOL : null);
  const kit = {
    DT,
    /** An initializer from a Float32Array, BigInt64Array, Int32Array or Uint8Array (bool). */
    init: (name, dims, data) => onnx.TensorProto.create({ name, dims, dataType: typeOf(data), rawData: raw(data) }),
    value: (name, dims, dataType = DT.FLOAT) => onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: dataType, shape: { dim: dims.map((v) => ({ dimValue: v })) } } } }),
    int: (name, i) => onnx.AttributeProto.create({ name, type: AT.INT, i }),
    float: (name, f) => onnx.AttributeProto.create({ name, type: AT.FLOAT, f }),
    ints: (name, ints) => onnx.AttributeProto.create({ name, type: AT.INTS, ints }),
    string: (name, str) => onnx.AttributeProto.create({ name, type: AT.STRING, s: new TextEncoder().encode(str) }),
    node: (opType, input, output, attribute = [], domain = '') => onnx.NodeProto.create({ opType, input, output, attribute, domain, name: `${opType}_${output[0]}` }),
    /** Encoded ModelProto: opset 23 and com.microsoft 1. */
    model: (nodes, inits, inputs, outputs) => {
      const graph = onnx.GraphProto.create({ name: 'g', node: nodes, initializer: inits, input: inputs, output: outputs });
      return onnx.ModelProto.encode(onnx.ModelProto.create({
        irVersion: 10, producerName: 'mha-wasm tests', graph,
        opsetImport: [{ domain: '', version: 23 }, { domain: 'com.microsoft', version: 1 }],
      })).finish();
    },
  };
  return kit;
}

/** W [N, K] (PyTorch layout) -> its transpose [K, N], for MatMul. */
export function transposed(w, N, K) {
  const t = new Float32Array(K * N);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) t[k * N + n] = w[n * K + k];
  return t;
}

/** Runs an encoded model once; feeds: { name: [typedArray, dims] }; returns { name: Float32Array }. */
export async function runModel(ort, bytes, feeds) {
  const session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3, graphOptimizationLevel: 'disabled' });
  try {
    const typeOf = (a) => (a instanceof Float32Array ? 'float32' : a instanceof BigInt64Array ? 'int64' : a instanceof Int32Array ? 'int32' : 'bool');
    const inputs = {};
    for (const [name, [data, dims]] of Object.entries(feeds)) inputs[name] = new ort.Tensor(typeOf(data), data, dims);
    const out = await session.run(inputs);
    const result = {};
    for (const [name, t] of Object.entries(out)) result[name] = t.data;
    return result;
  } finally {
    await session.release();
  }
}

/**
 * cos and sin tables [maxPos + 1, dim / 2] for RotaryEmbedding: cos(p * invFreq[c]) and
 * sin(p * invFreq[c]), both times attentionFactor.
 */
export function rotaryCaches(invFreq, maxPos, attentionFactor = 1) {
  const half = invFreq.length;
  const cos = new Float32Array((maxPos + 1) * half), sin = new Float32Array((maxPos + 1) * half);
  for (let p = 0; p <= maxPos; p++)
    for (let c = 0; c < half; c++) {
      cos[p * half + c] = Math.cos(p * invFreq[c]) * attentionFactor;
      sin[p * half + c] = Math.sin(p * invFreq[c]) * attentionFactor;
    }
  return { cos, sin };
}

/** RMSNormalization over the last axis of x [M, N]. */
export function rmsNormModel(kit, M, N, scale, eps) {
  return kit.model(
    [kit.node('RMSNormalization', ['x', 'scale'], ['y'], [kit.int('axis', -1), kit.float('epsilon', eps)])],
    [kit.init('scale', [N], scale)], [kit.value('x', [M, N])], [kit.value('y', [M, N])],
  );
}

/**
 * RotaryEmbedding of x [B, heads, L, D] with positions [B, L] (BigInt64Array) into the
 * tables of rotaryCaches; rotary on the first `dim` channels.
 */
export function rotaryModel(kit, { B, heads, L, D, dim, interleaved, cos, sin, positions }) {
  const half = dim / 2, rows = cos.length / half;
  return kit.model(
    [kit.node('RotaryEmbedding', ['x', 'cos', 'sin', 'pos'], ['y'], [kit.int('interleaved', interleaved ? 1 : 0), kit.int('rotary_embedding_dim', dim)])],
    [kit.init('cos', [rows, half], cos), kit.init('sin', [rows, half], sin), kit.init('pos', [B, L], positions)],
    [kit.value('x', [B, heads, L, D])], [kit.value('y', [B, heads, L, D])],
  );
}

/**
 * The feed-forward block on x [M, E]: activation relu | gelu | gelu_tanh | silu, gated or
 * not, weights as feedForwardReference's.
 */
export function feedForwardModel(kit, cfg, w, M) {
  const E = cfg.embedDim, F = cfg.hiddenDim;
  const nodes = [], inits = [];
  const dense = (x, name, W, b, N, K) => {
    inits.push(kit.init(`${name}W`, [K, N], transposed(W, N, K)));
    nodes.push(kit.node('MatMul', [x, `${name}W`], [b ? `${name}m` : name]));
    if (b) {
      inits.push(kit.init(`${name}b`, [N], b));
      nodes.push(kit.node('Add', [`${name}m`, `${name}b`], [name]));
    }
    return name;
  };
  const act = (x, name) => {
    const a = cfg.activation ?? 'relu';
    if (a === 'relu') nodes.push(kit.node('Relu', [x], [name]));
    else if (a === 'gelu') nodes.push(kit.node('Gelu', [x], [name]));
    else if (a === 'gelu_tanh') nodes.push(kit.node('Gelu', [x], [name], [kit.string('approximate', 'tanh')]));
    else if (a === 'silu') nodes.push(kit.node('Sigmoid', [x], [`${name}s`]), kit.node('Mul', [x, `${name}s`], [name]));
    else throw new Error(`activation ${a}`);
    return name;
  };
  const up = dense('x', 'up', w.upProjWeight, w.upProjBias, F, E);
  let h;
  if (cfg.gated) {
    const gate = act(dense('x', 'gate', w.gateProjWeight, w.gateProjBias, F, E), 'gact');
    nodes.push(kit.node('Mul', [gate, up], ['h']));
    h = 'h';
  } else h = act(up, 'h');
  dense(h, 'y', w.downProjWeight, w.downProjBias, E, F);
  return kit.model(nodes, inits, [kit.value('x', [M, E])], [kit.value('y', [M, E])]);
}


/**
 * The whole attention layer as one ONNX graph: projections (MatMul, Add), per-head
 * RMSNormalization (qkNorm), RotaryEmbedding at the given positions, then either the
 * opset 23 Attention op (op 'Attention') or com.microsoft GroupQueryAttention (op 'GQA',
 * always causal; keys before Lk - Lq become its past_key/past_value), then the output
 * projection.
 *
 * c: the resolved config (resolveConfig); p: the split weights (splitWeights);
 * g: { B, Lq, Lk, op, qPositions [B*Lq], kPositions [B*Lk] (BigInt64Array), isCausal,
 *   past (Attention: the keys before Lk - Lq go in as past_key/past_value, so that
 *   is_causal is bottom-right),
 *   onnxMask: an attn_mask for Attention ({ data: Uint8Array (1 = attend) or
 *   Float32Array, dims }), localWindowSize (GQA), sinks (GQA head_sink), needWeights
 *   (Attention: qk_matmul_output_mode 3, output 'w' [B, H, Lq, Lk]) }.
 * Inputs 'query' [B, Lq, E], 'key' [B, Lk, kdim], 'value' [B, Lk, vdim]; output 'y'.
 */
export function attentionLayerModel(kit, c, p, qNormWeight, kNormWeight, g) {
  const { E, H, Hkv, D } = c, { B, Lq, Lk } = g;
  const nodes = [], inits = [];
  const i64 = (name, vals) => { inits.push(kit.init(name, [vals.length], BigInt64Array.from(vals.map(BigInt)))); return name; };
  const dense = (x, name, W, b, N, K) => {
    inits.push(kit.init(`${name}W`, [K, N], transposed(W, N, K)));
    nodes.push(kit.node('MatMul', [x, `${name}W`], [b ? `${name}m` : name]));
    if (b) {
      inits.push(kit.init(`${name}b`, [N], Float32Array.from(b)));
      nodes.push(kit.node('Add', [`${name}m`, `${name}b`], [name]));
    }
    return name;
  };
  // [B, L, heads*D] -> [B, heads, L, D], normalised and rotated
  const heads = (x, name, L, n, normWeight, positions) => {
    nodes.push(kit.node('Reshape', [x, i64(`${name}Shape`, [B, L, n, D])], [`${name}4`]));
    let t = `${name}4`;
    if (c.qkNorm === 'rms') {
      inits.push(kit.init(`${name}NormW`, [D], Float32Array.from(normWeight)));
      nodes.push(kit.node('RMSNormalization', [t, `${name}NormW`], [`${name}N`], [kit.int('axis', -1), kit.float('epsilon', c.qkNormEps)]));
      t = `${name}N`;
    }
    nodes.push(kit.node('Transpose', [t], [`${name}T`], [kit.ints('perm', [0, 2, 1, 3])]));
    t = `${name}T`;
    if (c.rope) {
      inits.push(kit.init(`${name}Pos`, [B, L], positions));
      nodes.push(kit.node('RotaryEmbedding', [t, 'cosCache', 'sinCache', `${name}Pos`], [`${name}R`],
        [kit.int('interleaved', c.rope.interleaved ? 1 : 0), kit.int('rotary_embedding_dim', c.rope.dim)]));
      t = `${name}R`;
    }
    return t;
  };
  if (c.rope) {
    // at least a row per position of the sequence: onnxruntime-web refuses a cos/sin cache
    // with fewer rows than the sequence length, even when the positions are all smaller
    let maxPos = Math.max(Lq, Lk) - 1;
    for (const v of [...g.qPositions, ...g.kPositions]) maxPos = Math.max(maxPos, Number(v));
    const { cos, sin } = rotaryCaches(c.rope.invFreq, maxPos, c.rope.attentionFactor);
    inits.push(kit.init('cosCache', [maxPos + 1, c.rope.dim / 2], cos), kit.init('sinCache', [maxPos + 1, c.rope.dim / 2], sin));
  }
  const q = heads(dense('query', 'q', p.wq, p.bq, H * D, E), 'q', Lq, H, qNormWeight, g.qPositions);
  const k = heads(dense('key', 'k', p.wk, p.bk, Hkv * D, c.kdim), 'k', Lk, Hkv, kNormWeight, g.kPositions);
  nodes.push(kit.node('Reshape', [dense('value', 'v', p.wv, p.bv, Hkv * D, c.vdim), i64('vShape', [B, Lk, Hkv, D])], ['v4']),
    kit.node('Transpose', ['v4'], ['vT'], [kit.ints('perm', [0, 2, 1, 3])]));
  const outputs = [kit.value('y', [B, Lq, E])];
  if (g.op === 'Attention') {
    const attrs = [kit.int('q_num_heads', H), kit.int('kv_num_heads', Hkv), kit.float('scale', c.scale)];
    if (g.isCausal) attrs.push(kit.int('is_causal', 1));
    if (c.softcap) attrs.push(kit.float('softcap', c.softcap));
    if (g.needWeights) attrs.push(kit.int('qk_matmul_output_mode', 3));
    let ins = [q, k, 'vT'];
    if (g.onnxMask) inits.push(kit.init('mask', g.onnxMask.dims, g.onnxMask.data));
    if (g.past) {
      // the keys before Lk - Lq as past_key / past_value (inputs 4 and 5), the rest as new
      const P = Lk - Lq;
      const slice = (t, name, from, to) => {
        nodes.push(kit.node('Slice', [t, i64(`${name}St`, [from]), i64(`${name}En`, [to]), i64(`${name}Ax`, [2])], [name]));
        return name;
      };
      ins = [q, slice(k, 'newK', P, Lk), slice('vT', 'newV', P, Lk), g.onnxMask ? 'mask' : '', slice(k, 'pastK', 0, P), slice('vT', 'pastV', 0, P)];
    } else if (g.onnxMask) ins.push('mask');
    nodes.push(kit.node('Attention', ins, g.needWeights ? ['o', g.past ? 'presentK' : '', g.past ? 'presentV' : '', 'w'] : g.past ? ['o', 'presentK', 'presentV'] : ['o'], attrs));
    if (g.needWeights) outputs.push(kit.value('w', [B, H, Lq, Lk]));
    nodes.push(kit.node('Transpose', ['o'], ['oT'], [kit.ints('perm', [0, 2, 1, 3])]),
      kit.node('Reshape', ['oT', i64('oShape', [B, Lq, H * D])], ['o3']));
  } else if (g.op === 'GQA') {
    // GroupQueryAttention takes [B, S, heads*D] for the new tokens and BNSH past caches.
    const P = Lk - Lq;
    const bsh = (t, name, n, from, to) => {
      nodes.push(kit.node('Slice', [t, i64(`${name}St`, [from]), i64(`${name}En`, [to]), i64(`${name}Ax`, [2])], [`${name}S`]),
        kit.node('Transpose', [`${name}S`], [`${name}B`], [kit.ints('perm', [0, 2, 1, 3])]),
        kit.node('Reshape', [`${name}B`, i64(`${name}Sh`, [B, to - from, n * D])], [`${name}3`]));
      return `${name}3`;
    };
    const past = (t, name) => {
      nodes.push(kit.node('Slice', [t, i64(`${name}St`, [0]), i64(`${name}En`, [P]), i64(`${name}Ax`, [2])], [name]));
      return name;
    };
    const ins = [bsh(q, 'gq', H, 0, Lq), bsh(k, 'gk', Hkv, P, Lk), bsh('vT', 'gv', Hkv, P, Lk),
      P > 0 ? past(k, 'pastK') : '', P > 0 ? past('vT', 'pastV') : '', 'seqlensK', 'totalLen'];
    inits.push(kit.init('seqlensK', [B], new Int32Array(B).fill(Lk - 1)), kit.init('totalLen', [1], Int32Array.of(Lk)));
    if (g.sinks) {
      ins.push('', '', '', '', 'headSink');  // 7-10: cos_cache, sin_cache, position_ids, attention_bias
      inits.push(kit.init('headSink', [H], Float32Array.from(g.sinks)));
    }
    const attrs = [kit.int('num_heads', H), kit.int('kv_num_heads', Hkv), kit.float('scale', c.scale)];
    if (c.softcap) attrs.push(kit.float('softcap', c.softcap));
    if (g.localWindowSize != null) attrs.push(kit.int('local_window_size', g.localWindowSize));
    nodes.push(kit.node('GroupQueryAttention', ins, ['o3', 'presentK', 'presentV'], attrs, 'com.microsoft'));
  } else throw new Error(`op ${g.op}`);
  dense('o3', 'y', p.wo, p.bo, E, H * D);
  return kit.model(nodes, inits, [kit.value('query', [B, Lq, E]), kit.value('key', [B, Lk, c.kdim]), kit.value('value', [B, Lk, c.vdim])], outputs);
}
