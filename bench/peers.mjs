// The benchmark's shapes, data and contestants, shared by the Node runner
// (bench.mjs) and the browser page (browser/page.mjs). Every contestant computes
// the same layer: nn.MultiheadAttention self-attention with the four
// projections (PyTorch layout: in_proj_weight [3E, E], out_proj.weight [E, E]).
import { plainMha } from '../web/plain-mha.js';
import { flops, maxRelDiff, median } from '../web/stats.js';

export { flops, maxRelDiff, median };

export const SHAPES = [
  { id: 'S1', B: 1, L: 128, E: 768, H: 12 },
  { id: 'S2', B: 1, L: 512, E: 768, H: 12 },
  { id: 'S3', B: 8, L: 64, E: 256, H: 4 },
  { id: 'S4', B: 1, L: 2048, E: 256, H: 4 },
  { id: 'S5', B: 1, L: 32, E: 64, H: 2 },
  { id: 'S2c', B: 1, L: 512, E: 768, H: 12, causal: true },
  { id: 'S4c', B: 1, L: 2048, E: 256, H: 4, causal: true },
  { id: 'S1w', B: 1, L: 128, E: 768, H: 12, needWeights: true },
];
export const LONG = { id: 'L16k', B: 1, L: 16384, E: 256, H: 4 };

export const label = (s) => `${s.id} ${s.B}x${s.L}x${s.E}/${s.H}${s.causal ? ' causal' : ''}${s.needWeights ? ' +weights' : ''}`;

function rng(seed) {
  let x = seed >>> 0 || 1;
  return () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x / 4294967296 - 0.5; };
}

/** Inputs in [-1, 1], weights in ±1/sqrt(E) (PyTorch layout, camelCase). */
export function makeData(s, seed = 1234) {
  const r = rng(seed), E = s.E;
  const f = (n, sc) => Float32Array.from({ length: n }, () => 2 * r() * sc);
  const w = 1 / Math.sqrt(E);
  return {
    x: f(s.B * s.L * E, 1),
    weights: { inProjWeight: f(3 * E * E, w), inProjBias: f(3 * E, w), outProjWeight: f(E * E, w), outProjBias: f(E, w) },
  };
}

/**
 * GFLOP/s of the peak probe (bench/peak.cpp, an instantiated module M): the best
 * of 12 runs, after the engine has had time to tier the loop up to its
 * optimizing compiler (a browser may run the first calls in its baseline tier).
 */
export function probePeak(M, iterations = 2e7) {
  let best = 0;
  for (let r = 0; r < 12; r++) {
    const t0 = performance.now();
    M._peak(iterations);
    best = Math.max(best, M._peak_flops(iterations) / (performance.now() - t0) / 1e6);
  }
  return best;
}

/**
 * Multiply-accumulates per second (G) of each kernel operation on one core, the
 * best of 12 interleaved runs each: simd is the SIMD128 probe module, relaxed the
 * one built with relaxed SIMD (bench/peak.cpp) or null. The ceilings of int8
 * against float32 layers.
 */
export function probeMacs(simd, relaxed = null, iterations = 1e7) {
  const probes = { 'f32 mul+add': [simd, '_peak', 4], 'int8 dot_i16x8': [simd, '_peak_dot16', 8] };
  if (relaxed) Object.assign(probes, { 'f32 relaxed_madd': [relaxed, '_peak_fma', 4], 'relaxed int8 dot (i7)': [relaxed, '_peak_rdot', 16] });
  const best = {};
  for (let r = 0; r < 12; r++) {
    for (const [k, [M, fn, per]] of Object.entries(probes)) {
      const t0 = performance.now();
      M[fn](iterations);
      best[k] = Math.max(best[k] ?? 0, M._peak_macs(iterations, per) / (performance.now() - t0) / 1e6);
    }
  }
  return best;
}

/** One line about probeMacs' result. */
export function macsLine(macs) {
  return `Peak multiply-accumulates per core, G/s (the ceilings of int8 vs float32 layers): ${Object.entries(macs).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')}` +
    (macs['f32 relaxed_madd'] ? `; int8 dot_i16x8 / relaxed_madd = ${(macs['int8 dot_i16x8'] / macs['f32 relaxed_madd']).toFixed(2)}x` : '') +
    `; int8 dot_i16x8 / mul+add = ${(macs['int8 dot_i16x8'] / macs['f32 mul+add']).toFixed(2)}x`;
}

// ---- contestants: each make*(s, d) returns an async () => Float32Array output ----

export async function makeMhaWasm(mha, s, d, weightType = 'f32') {
  const layer = new mha.MultiHeadAttention({ embedDim: s.E, numHeads: s.H, weightType });
  layer.setWeights(d.weights);
  const x = { data: d.x, dims: [s.B, s.L, s.E] };
  const opts = { isCausal: !!s.causal, needWeights: !!s.needWeights };
  const run = async () => layer.forward(x, null, null, opts).output.data;
  run.dispose = () => layer.dispose();
  return run;
}

export function makePlainJs(s, d) {
  return async () => plainMha(d.x, s.B, s.L, s.E, s.H, d.weights, { causal: !!s.causal });
}

/** W [N, K] (PyTorch rows = outputs) -> [K, N] for ONNX MatMul / tf.matMul. */
function transpose(w, N, K, rowOffset = 0) {
  const t = new Float32Array(K * N);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) t[k * N + n] = w[(rowOffset + n) * K + k];
  return t;
}

/**
 * The layer as an ONNX graph of standard ops (MatMul, Add, Reshape, Transpose,
 * Mul, Softmax), built with onnx-proto: no Python here. needWeights adds the
 * head-averaged probabilities as a second output.
 *
 * weightType 'int8' builds the graph onnxruntime's quantize_dynamic makes (and
 * transformers.js's q8 models run): each of the four projections becomes
 * DynamicQuantizeLinear of its input (uint8, per tensor; x's is shared by Q, K
 * and V) + MatMulInteger with int8 weights quantized per output channel,
 * symmetric (zero point 0), + Cast + Mul by x_scale * w_scale[n]; the
 * attention between them stays float32.
 */
export function buildOnnx(onnx, s, d, weightType = 'f32') {
  const { B, L, E, H } = s, D = E / H, F32 = onnx.TensorProto.DataType.FLOAT, I64 = onnx.TensorProto.DataType.INT64;
  const bytes = (a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const tf = (name, dims, data) => onnx.TensorProto.create({ name, dims, dataType: F32, rawData: bytes(data) });
  const ti = (name, vals) => onnx.TensorProto.create({ name, dims: [vals.length], dataType: I64, rawData: bytes(BigInt64Array.from(vals.map(BigInt))) });
  const vi = (name, dims) => onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: F32, shape: { dim: dims.map((v) => ({ dimValue: v })) } } } });
  const ints = (name, v) => onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INTS, ints: v });
  const int = (name, v) => onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INT, i: v });
  const node = (opType, input, output, attribute = []) => onnx.NodeProto.create({ opType, input, output, attribute, name: output[0] });
  const w = d.weights, int8 = weightType === 'int8';
  if (!['f32', 'int8'].includes(weightType)) throw new Error(`buildOnnx: weightType ${weightType} (expected 'f32' or 'int8')`);
  const inits = [], n = [];
  // W [N, K] rows from rowOffset -> the [K, N] initializer `name` (int8: + `name`_s, one scale per output column).
  const weight = (name, src, rowOffset) => {
    if (!int8) return inits.push(tf(name, [E, E], transpose(src, E, E, rowOffset)));
    const q = new Int8Array(E * E), sc = new Float32Array(E);
    for (let o = 0; o < E; o++) {
      let m = 0;
      for (let k = 0; k < E; k++) m = Math.max(m, Math.abs(src[(rowOffset + o) * E + k]));
      sc[o] = m > 0 ? m / 127 : 1;
      for (let k = 0; k < E; k++) q[k * E + o] = Math.max(-127, Math.min(127, Math.round(src[(rowOffset + o) * E + k] / sc[o])));
    }
    inits.push(onnx.TensorProto.create({ name, dims: [E, E], dataType: onnx.TensorProto.DataType.INT8, rawData: bytes(q) }), tf(`${name}_s`, [E], sc));
  };
  // input @ W -> output (float32): MatMul, or the dynamic-quantization chain (xq: an already quantized input's prefix).
  const matmul = (input, W, output, xq = null) => {
    if (!int8) return n.push(node('MatMul', [input, W], [output]));
    const q = xq ?? `${input}_q`;
    if (!xq) n.push(onnx.NodeProto.create({ opType: 'DynamicQuantizeLinear', input: [input], output: [q, `${q}_s`, `${q}_z`], name: q }));
    n.push(node('MatMulInteger', [q, W, `${q}_z`], [`${output}_i`]), node('Cast', [`${output}_i`], [`${output}_f`], [int('to', F32)]),
      node('Mul', [`${q}_s`, `${W}_s`], [`${output}_sc`]), node('Mul', [`${output}_f`, `${output}_sc`], [output]));
  };
  for (const [i, t] of ['q', 'k', 'v'].entries()) weight(`W${t}`, w.inProjWeight, i * E), inits.push(tf(`b${t}`, [E], w.inProjBias.slice(i * E, (i + 1) * E)));
  weight('Wo', w.outProjWeight, 0);
  inits.push(tf('bo', [E], w.outProjBias), ti('shp4', [B, L, H, D]), ti('shp3', [B, L, E]), tf('scale', [], Float32Array.of(1 / Math.sqrt(D))));
  for (const [i, t] of ['q', 'k', 'v'].entries()) {
    matmul('x', `W${t}`, `${t}m`, int8 && i > 0 ? 'x_q' : null);
    n.push(node('Add', [`${t}m`, `b${t}`], [`${t}p`]), node('Reshape', [`${t}p`, 'shp4'], [`${t}r`]));
  }
  n.push(node('Transpose', ['qr'], ['qt'], [ints('perm', [0, 2, 1, 3])]), node('Transpose', ['kr'], ['kt'], [ints('perm', [0, 2, 3, 1])]),
    node('Transpose', ['vr'], ['vt'], [ints('perm', [0, 2, 1, 3])]), node('MatMul', ['qt', 'kt'], ['s0']), node('Mul', ['s0', 'scale'], ['s1']));
  let scores = 's1';
  if (s.causal) {
    const m = new Float32Array(L * L);
    for (let i = 0; i < L; i++) for (let j = i + 1; j < L; j++) m[i * L + j] = -Infinity;
    inits.push(tf('mask', [L, L], m));
    n.push(node('Add', ['s1', 'mask'], ['s2']));
    scores = 's2';
  }
  n.push(node('Softmax', [scores], ['p'], [int('axis', -1)]), node('MatMul', ['p', 'vt'], ['o']), node('Transpose', ['o'], ['ot'], [ints('perm', [0, 2, 1, 3])]),
    node('Reshape', ['ot', 'shp3'], ['oc']));
  matmul('oc', 'Wo', 'ym');
  n.push(node('Add', ['ym', 'bo'], ['y']));
  const outputs = [vi('y', [B, L, E])];
  if (s.needWeights) {
    n.push(node('ReduceMean', ['p'], ['pw'], [ints('axes', [1]), int('keepdims', 0)]));
    outputs.push(vi('pw', [B, L, L]));
  }
  const graph = onnx.GraphProto.create({ name: 'mha', node: n, initializer: inits, input: [vi('x', [B, L, E])], output: outputs });
  return onnx.ModelProto.encode(onnx.ModelProto.create({ irVersion: 8, producerName: 'mha-wasm bench', opsetImport: [{ domain: '', version: 17 }], graph })).finish();
}

/** onnx: the onnx-proto namespace (the graph is built here), or { bytes } of a graph built elsewhere (int8: { int8Bytes }). */
export async function makeOrt(ort, onnx, s, d, weightType = 'f32', options = {}) {
  const model = (weightType === 'int8' ? onnx.int8Bytes : onnx.bytes) ?? buildOnnx(onnx, s, d, weightType);
  const sess = await ort.InferenceSession.create(model, { graphOptimizationLevel: 'all', executionMode: 'sequential', ...options });
  const feed = { x: new ort.Tensor('float32', d.x, [s.B, s.L, s.E]) };
  const run = async () => (await sess.run(feed)).y.data;
  run.dispose = () => sess.release();
  return run;
}

/** The classic TF tutorial MHA in tf ops (dense = matMul + bias, split heads = reshape + transpose). */
export function makeTfjs(tf, s, d) {
  const { B, L, E, H } = s, D = E / H, w = d.weights;
  const W = {}, b = {};
  for (const [i, t] of ['q', 'k', 'v'].entries()) {
    W[t] = tf.tensor2d(transpose(w.inProjWeight, E, E, i * E), [E, E]);
    b[t] = tf.tensor1d(w.inProjBias.slice(i * E, (i + 1) * E));
  }
  W.o = tf.tensor2d(transpose(w.outProjWeight, E, E), [E, E]);
  b.o = tf.tensor1d(w.outProjBias);
  const x = tf.tensor3d(d.x, [B, L, E]);
  let mask = null;
  if (s.causal) {
    const m = new Float32Array(L * L);
    for (let i = 0; i < L; i++) for (let j = i + 1; j < L; j++) m[i * L + j] = -1e9;
    mask = tf.tensor2d(m, [L, L]);
  }
  const dense = (t, k) => tf.reshape(tf.add(tf.matMul(tf.reshape(t, [-1, E]), W[k]), b[k]), [B, -1, E]);
  const split = (t) => tf.transpose(tf.reshape(t, [B, -1, H, D]), [0, 2, 1, 3]);
  const run = async () => {
    const y = tf.tidy(() => {
      let logits = tf.mul(tf.matMul(split(dense(x, 'q')), split(dense(x, 'k')), false, true), 1 / Math.sqrt(D));
      if (mask) logits = tf.add(logits, mask);
      const o = tf.matMul(tf.softmax(logits, -1), split(dense(x, 'v')));
      return dense(tf.reshape(tf.transpose(o, [0, 2, 1, 3]), [B, -1, E]), 'o');
    });
    const out = y.dataSync();
    y.dispose();
    return out;
  };
  run.dispose = () => tf.dispose([...Object.values(W), ...Object.values(b), x, ...(mask ? [mask] : [])]);
  return run;
}

/** The results as a Markdown table, one row per shape and thread count; peak: GFLOP/s of one core. */
export const fmt = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(3));

export function table(results, peak) {
  // "vs X": speedup() (the median of per-round ratios).
  const lines = ['| shape | threads | mha-wasm ms | GFLOP/s | % of peak | ORT-web ms | vs ORT | TF.js wasm ms | vs TF.js | plain JS ms | vs plain |', '|---|---|---|---|---|---|---|---|---|---|---|'];
  // mha-wasm here is the SIMD128 build (relaxedTable has the relaxed one); a "(CPU time)" row times every contestant by CPU time.
  for (const s of SHAPES) {
    for (const threads of [1, 2]) {
      const group = results.filter((r) => r.shape === s.id && r.group === `t${threads}`);
      const me = group.find((r) => r.contestant === 'mha-wasm' && r.threads === threads);
      if (!me) continue;
      const cell = (name) => {
        const p = group.find((r) => r.contestant === name);
        return p ? [fmt(p.ms), `${speedup(p, me).toFixed(2)}x`] : ['–', '–'];
      };
      const self1 = threads === 2 ? group.find((r) => r.contestant === 'mha-wasm' && r.threads === 1) : null;
      lines.push(`| ${label(s)} | ${threads}${self1 ? ` (${speedup(self1, me).toFixed(2)}x our 1 thread)` : ''}${me.clock === 'cpu' ? ' (CPU time)' : ''} | ${fmt(me.ms)} | ${fmt(me.gflops)} | ${(100 * me.gflops / (peak * threads)).toFixed(0)}% | ${cell('ORT-web').join(' | ')} | ${cell('TF.js wasm').join(' | ')} | ${cell('plain JS').join(' | ')} |`);
    }
  }
  return lines.join('\n');
}

/** The shapes the two-thread groups run (the issue's 2-thread targets, plus the causal ones). */
export const TWO_THREAD_SHAPES = ['S1', 'S2', 'S4', 'S2c', 'S4c'];

/**
 * How many times faster `fast` ran than `slow` (two result rows of one group):
 * the median over rounds of the round's time ratio, so that the machine's drift
 * between rounds (its load swings times by up to 2x) cancels; contestants of a
 * round run back to back. Falls back to the ratio of medians without rounds.
 */
export function speedup(slow, fast) {
  const a = slow.perRound, b = fast.perRound;
  if (!a?.length || a.length !== b?.length) return slow.ms / fast.ms;
  return median(a.map((x, i) => x / b[i]));
}

/** The relaxed-SIMD build's rows: relaxed vs the SIMD128 build and vs ORT-web, same group (see benchShape). */
export function relaxedTable(results) {
  const lines = ['| shape | threads | relaxed ms | (wall ms) | GFLOP/s | SIMD128 ms | relaxed vs SIMD128 | ORT-web ms | relaxed vs ORT |', '|---|---|---|---|---|---|---|---|---|'];
  for (const s of SHAPES) {
    for (const threads of [1, 2]) {
      const group = results.filter((r) => r.shape === s.id && r.group === `t${threads}`);
      const me = group.find((r) => r.contestant === RELAXED && r.threads === threads);
      const simd = group.find((r) => r.contestant === 'mha-wasm' && r.threads === threads), ort = group.find((r) => r.contestant === 'ORT-web');
      if (!me || !simd) continue;
      lines.push(`| ${label(s)} | ${threads}${me.clock === 'cpu' ? ' (CPU time)' : ''} | ${fmt(me.ms)} | ${fmt(me.wallMs)} | ${fmt(me.gflops)} | ${fmt(simd.ms)} | ` +
        `${speedup(simd, me).toFixed(2)}x | ${ort ? fmt(ort.ms) : '–'} | ${ort ? `${speedup(ort, me).toFixed(2)}x` : '–'} |`);
    }
  }
  return lines.length > 2 ? lines.join('\n') : null;
}

/** The shapes whose 1-thread group also runs int8 and f16 layers and ORT-web's int8 graph (benchShape's quant). */
export const QUANT_SHAPES = ['S1', 'S2', 'S3', 'S4'];

/**
 * Agreement with the plain-JS float32 layer (maxRelDiff), per weight type: int8
 * (ours and ORT-web's) is compared with the unquantized layer, so it differs by
 * the quantization error (about 1e-3 here); f16 by the rounding of the weights.
 */
export const TOLERANCE = { f32: 1e-3, f16: 1e-3, int8: 5e-3 };

/**
 * The int8/f16 rows (1-thread group, CPU time): each build's int8 and f16 layer
 * against its f32 layer, and our int8 layer against ORT-web's int8 graph, with
 * PASS/FAIL against the issue's targets (int8/f32 on S1: SIMD128 >= 1.6x, relaxed
 * >= 2x; ours int8 vs ORT-web int8 >= 1.5x on S1-S3, S4 reported). Null if none ran.
 */
export function quantTable(results) {
  const lines = ['| shape | build | f32 ms | int8 ms | int8 vs f32 | f16 ms | f16 vs f32 | ORT-web f32 ms | ORT-web int8 ms | ORT int8 vs its f32 | our int8 vs ORT int8 |',
    '|---|---|---|---|---|---|---|---|---|---|---|'];
  const verdicts = [];
  const pf = (ok) => (ok ? 'PASS' : 'FAIL');
  for (const s of SHAPES) {
    const group = results.filter((r) => r.shape === s.id && r.group === 't1');
    const get = (name) => group.find((r) => r.contestant === name);
    const ort = get('ORT-web'), ort8 = get('ORT-web int8');
    for (const [build, base] of [['SIMD128', 'mha-wasm'], ['relaxed', RELAXED]]) {
      const f32 = get(base), i8 = get(`${base} int8`), f16 = get(`${base} f16`);
      if (!f32 || !i8) continue;
      const x = (a, b) => (a && b ? `${speedup(a, b).toFixed(2)}x` : '–');
      lines.push(`| ${label(s)} | ${build} | ${fmt(f32.ms)} | ${fmt(i8.ms)} | ${x(f32, i8)} | ${f16 ? fmt(f16.ms) : '–'} | ${x(f32, f16)} | ` +
        `${ort ? fmt(ort.ms) : '–'} | ${ort8 ? fmt(ort8.ms) : '–'} | ${x(ort, ort8)} | ${x(ort8, i8)} |`);
      if (s.id === 'S1') {
        const want = build === 'SIMD128' ? 1.6 : 2, got = speedup(f32, i8);
        verdicts.push(`${pf(got >= want)} int8 vs f32, ${build}, S1: ${got.toFixed(2)}x (${fmt(f32.ms)} / ${fmt(i8.ms)} ms CPU; target >= ${want}x)`);
      }
      if (ort8) {
        const got = speedup(ort8, i8);
        verdicts.push(s.id === 'S4' ? `(report) int8 vs ORT-web int8, ${build}, S4: ${got.toFixed(2)}x (${fmt(ort8.ms)} / ${fmt(i8.ms)} ms CPU)`
          : `${pf(got >= 1.5)} int8 vs ORT-web int8, ${build}, ${s.id}: ${got.toFixed(2)}x (${fmt(ort8.ms)} / ${fmt(i8.ms)} ms CPU; target >= 1.5x)`);
      }
    }
  }
  return lines.length > 2 ? `${lines.join('\n')}\n${verdicts.join('\n')}` : null;
}

/** The native reference's contestant name: onnxruntime-node (CPU, 256-bit FMA where the CPU has it), 1 thread. */
export const NATIVE = 'ORT-node native';

/**
 * Our best build on 1 thread (relaxed where it ran, else SIMD128) against native
 * onnxruntime-node on 1 thread, per shape, with the issue's target on S1 (within
 * 2x: native has twice our lanes). Null when the native reference did not run.
 */
export function nativeTable(results) {
  const lines = ['| shape | our build | ours ms (CPU) | ORT-node native ms (CPU) | ours / native |', '|---|---|---|---|---|'];
  const verdicts = [];
  for (const s of SHAPES) {
    const group = results.filter((r) => r.shape === s.id && r.group === 't1');
    const nat = group.find((r) => r.contestant === NATIVE);
    const me = group.find((r) => r.contestant === RELAXED) ?? group.find((r) => r.contestant === 'mha-wasm');
    if (!nat || !me) continue;
    const x = speedup(me, nat);
    lines.push(`| ${label(s)} | ${me.contestant === RELAXED ? 'relaxed' : 'SIMD128'} | ${fmt(me.ms)} | ${fmt(nat.ms)} | ${x.toFixed(2)}x |`);
    if (s.id === 'S1') verdicts.push(`${x <= 2 ? 'PASS' : 'FAIL'} ${me.contestant === RELAXED ? 'relaxed' : 'SIMD128 (no relaxed build ran)'} S1 within 2x of native onnxruntime-node, 1 thread: ${x.toFixed(2)}x (${fmt(me.ms)} / ${fmt(nat.ms)} ms CPU)`);
  }
  return lines.length > 2 ? `${lines.join('\n')}\n${verdicts.join('\n')}` : null;
}

/** The relaxed-SIMD build's contestant name (the plain name is the SIMD128 build). */
export const RELAXED = 'mha-wasm relaxed';

/**
 * Times one shape for one thread group, the same way in Node and in a page:
 * m1/m2 are mha-wasm runtimes of a SIMD128 build with 1 and 2 threads (m2 null
 * in the 1-thread group), r1/r2 the same of a relaxed-SIMD build (null where the
 * engine has none), ort is onnxruntime-web set to `threads`, onnx as for makeOrt,
 * tf the TF.js module or null. cpu: an async () => ms clock of this thread's (or
 * process's) CPU time, or null: in the 1-thread group it times every contestant,
 * and `ms` is CPU time, with the wall time beside it (wallMs); this machine's
 * load swings wall times. native: onnxruntime-node (Node only, where installed)
 * or null; it joins the 1-thread group with one intra-op thread as
 * NATIVE. Returns one result row per contestant.
 */
export async function benchShape(s, { m1, m2, r1 = null, r2 = null, ort, onnx, tf, threads, plain, rounds, log, cpu = null, quant = false, native = null }) {
  const d = makeData(s);
  // quant: in the 1-thread group, on QUANT_SHAPES, int8 and f16 layers of each build and ORT-web's int8 graph run too.
  const q = quant && threads === 1 && QUANT_SHAPES.includes(s.id) && (onnx.int8Bytes || !onnx.bytes);
  const cs = [{ name: 'mha-wasm', threads: 1, run: await makeMhaWasm(m1, s, d) }];
  if (r1) cs.push({ name: RELAXED, threads: 1, run: await makeMhaWasm(r1, s, d) });
  for (const wt of q ? ['int8', 'f16'] : []) {
    cs.push({ name: `mha-wasm ${wt}`, threads: 1, run: await makeMhaWasm(m1, s, d, wt), weightType: wt });
    if (r1) cs.push({ name: `${RELAXED} ${wt}`, threads: 1, run: await makeMhaWasm(r1, s, d, wt), weightType: wt });
  }
  if (m2) cs.push({ name: 'mha-wasm', threads: 2, run: await makeMhaWasm(m2, s, d) });
  if (r2) cs.push({ name: RELAXED, threads: 2, run: await makeMhaWasm(r2, s, d) });
  cs.push({ name: 'ORT-web', threads, run: await makeOrt(ort, onnx, s, d) });
  if (q) cs.push({ name: 'ORT-web int8', threads, run: await makeOrt(ort, onnx, s, d, 'int8'), weightType: 'int8' });
  if (native && threads === 1) cs.push({ name: NATIVE, threads: 1, run: await makeOrt(native, onnx, s, d, 'f32', { intraOpNumThreads: 1, interOpNumThreads: 1 }) });
  if (tf && !s.needWeights) cs.push({ name: 'TF.js wasm', threads: 1, run: makeTfjs(tf, s, d) });
  const ref = await makePlainJs(s, d)();
  if (plain && threads === 1 && !s.needWeights) cs.push({ name: 'plain JS', threads: 1, run: makePlainJs(s, d) });
  const clock = threads === 1 ? cpu : null;
  await interleave(cs, { rounds, warm: flops(s) > 2e9 ? 1 : 3, targetMs: 150, log, cpu: clock });
  const rows = cs.map((c) => {
    const wallMs = median(c.times), ms = clock ? median(c.cpuTimes) : wallMs;
    // Per round: the CPU time per call, or the median wall time of the round's calls.
    const perRound = clock ? c.cpuTimes : Array.from({ length: rounds }, (_, r) => median(c.times.slice(r * c.n, (r + 1) * c.n)));
    return { shape: s.id, contestant: c.name, threads: c.threads, group: `t${threads}`, ms, wallMs, perRound, clock: clock ? 'cpu' : 'wall', runs: c.times.length,
      gflops: flops(s) / ms / 1e6, relDiff: maxRelDiff(c.output, ref), weightType: c.weightType ?? 'f32', tolerance: TOLERANCE[c.weightType ?? 'f32'] };
  });
  for (const c of cs) c.run.dispose?.();
  return rows;
}

/**
 * Interleaved timing: warm each contestant up, pick a per-round repeat count
 * so a round takes about targetMs, then run rounds rotating the start.
 * contestants: [{ name, run }]; returns them with times[] (wall, per call),
 * cpuTimes[] (with a cpu clock: CPU time per call, one value per round) and output.
 */
export async function interleave(contestants, { rounds = 5, warm = 2, targetMs = 150, maxPerRound = 200, log = () => {}, cpu = null } = {}) {
  for (const c of contestants) {
    const w = [];
    for (let i = 0; i < warm; i++) {
      const t0 = performance.now();
      c.output = await c.run();
      w.push(performance.now() - t0);
    }
    c.n = Math.max(1, Math.min(maxPerRound, Math.round(targetMs / Math.max(1e-3, Math.min(...w)))));
    c.times = [];
    c.cpuTimes = [];
  }
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < contestants.length; i++) {
      const c = contestants[(i + r) % contestants.length];
      const c0 = cpu ? await cpu() : 0;
      for (let k = 0; k < c.n; k++) {
        const t0 = performance.now();
        await c.run();
        c.times.push(performance.now() - t0);
      }
      if (cpu) c.cpuTimes.push((await cpu() - c0) / c.n);
    }
    log(`round ${r + 1}/${rounds}`);
  }
  return contestants;
}
