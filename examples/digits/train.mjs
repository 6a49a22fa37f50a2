// npm run train-example: trains the digit-reversal Transformer with
// TensorFlow.js (pure-JS CPU backend) and writes its weights, under PyTorch's
// state_dict names, to web/models/reverse-digits.safetensors.
//
//   node examples/digits/train.mjs [--steps N] [--batch N] [--seed N] [--lr X] [--dtype F16|F32] [--out FILE]
//   node examples/digits/train.mjs --from FILE [--dtype ...] [--out FILE]   (re-export saved weights)
//
// Training takes about 45 minutes on one core of this machine. The weights are
// rounded to --dtype (F16 by default: half the download) before the held-out
// inputs (web/digits.js; never seen in training) are decoded, so the accuracy
// printed and stored in the file's metadata is that of the weights shipped.
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { encodeSafetensors, parseSafetensors, safetensorsMetadata } from '../../bindings/safetensors.js';
import { MAX_DIGITS, MAX_POSITIONS, SEP, VOCAB, randomDigits, rng, sequence } from '../../web/digits.js';
import { forward, greedyDecode, initParameters } from '../../scripts/digits-tfjs-model.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const { values: args } = parseArgs({ options: {
  steps: { type: 'string', default: '3000' }, batch: { type: 'string', default: '64' },
  seed: { type: 'string', default: '1' }, lr: { type: 'string', default: '0.002' },
  dtype: { type: 'string', default: 'F16' }, from: { type: 'string' },
  out: { type: 'string', default: resolve(root, 'web/models/reverse-digits.safetensors') },
} });
const steps = Number(args.steps), batchSize = Number(args.batch), seed = Number(args.seed), peakLr = Number(args.lr);

export const CONFIG = {
  vocab: VOCAB.length, positions: MAX_POSITIONS, dModel: 64, nhead: 4, dimFeedforward: 128, numLayers: 2,
  activation: 'gelu', normFirst: true, layerNormEps: 1e-5,
};

await tf.setBackend('cpu');
const rand = rng(seed);
const params = initParameters(CONFIG, seed * 1000);

/**
 * A batch of examples with the same number of digits (no padding): inputs [B, T],
 * targets [B, T] and loss weights [B, T]; only the answer (after '>') counts.
 */
function batch(n) {
  const len = 1 + Math.floor(rand() * MAX_DIGITS), T = 2 * len + 1;
  const inp = new Int32Array(n * T), tgt = new Int32Array(n * T), w = new Float32Array(n * T);
  for (let b = 0; b < n; b++) {
    const s = sequence(randomDigits(rand, false, len));
    for (let t = 0; t < T; t++) {
      inp[b * T + t] = s[t];
      tgt[b * T + t] = s[t + 1];
      w[b * T + t] = t >= len ? 1 : 0;
    }
  }
  return { inp: tf.tensor2d(inp, [n, T], 'int32'), tgt: tf.oneHot(tf.tensor2d(tgt, [n, T], 'int32'), VOCAB.length), w: tf.tensor2d(w, [n, T]) };
}

let trainedWith;
if (args.from) {
  const bytes = readFileSync(args.from);
  for (const [name, t] of Object.entries(parseSafetensors(bytes))) params[name].assign(tf.tensor(t.data, t.dims));
  trainedWith = safetensorsMetadata(bytes).trained_with;
  console.log(`weights from ${args.from} (${trainedWith})`);
} else {
  train();
  trainedWith = `@tensorflow/tfjs ${tf.version.tfjs} (cpu), ${steps} steps of ${batchSize}, seed ${seed}`;
}

function train() {
  const optimizer = tf.train.adam(peakLr, 0.9, 0.98, 1e-9);
  const t0 = performance.now();
  let avg = null;
  for (let step = 1; step <= steps; step++) {
    // Linear warm-up over 200 steps, then cosine decay to 5% of the peak.
    const warm = Math.min(1, step / 200), prog = Math.max(0, (step - 200) / Math.max(1, steps - 200));
    optimizer.learningRate = peakLr * warm * (0.05 + 0.95 * 0.5 * (1 + Math.cos(Math.PI * prog)));
    const { inp, tgt, w } = batch(batchSize);
    const loss = optimizer.minimize(() => {
      const logits = forward(params, CONFIG, inp);
      return tf.losses.softmaxCrossEntropy(tgt, logits, w);
    }, true);
    const l = loss.dataSync()[0];
    avg = avg === null ? l : 0.98 * avg + 0.02 * l;
    tf.dispose([inp, tgt, w, loss]);
    if (step % 50 === 0 || step === 1)
      console.log(`step ${step}/${steps}  loss ${avg.toFixed(4)}  lr ${optimizer.learningRate.toExponential(2)}  ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
}

// The weights as they will be stored (rounded to dtype), back into the model.
const tensors = {};
for (const [name, v] of Object.entries(params)) tensors[name] = { data: v.dataSync(), dims: v.shape };
for (const [name, t] of Object.entries(parseSafetensors(encodeSafetensors(tensors, undefined, { dtype: args.dtype }))))
  params[name].assign(tf.tensor(t.data, t.dims));

// Greedy decoding of held-out inputs with the TF.js model (full forward each step).
const test = rng(12345);
let solved = 0;
const N = 500;
for (let i = 0; i < N; i++) {
  const d = randomDigits(test, true), seq = greedyDecode(params, CONFIG, d, SEP);
  if (sequence(d).every((t, j) => seq[j] === t)) solved++;
}
console.log(`held-out exact-match accuracy (TF.js, greedy, ${args.dtype} weights): ${solved}/${N} = ${(100 * solved / N).toFixed(1)}%`);

const meta = {
  task: 'reverse 1 to 8 digits: "<digits>>" -> "<reversed>."', vocab: VOCAB.join(''), max_digits: String(MAX_DIGITS),
  d_model: String(CONFIG.dModel), nhead: String(CONFIG.nhead), dim_feedforward: String(CONFIG.dimFeedforward),
  num_layers: String(CONFIG.numLayers), activation: CONFIG.activation, norm_first: String(CONFIG.normFirst),
  layer_norm_eps: String(CONFIG.layerNormEps), positions: String(CONFIG.positions),
  trained_with: trainedWith, dtype: args.dtype, held_out_accuracy: `${solved}/${N}`,
};
mkdirSync(dirname(args.out), { recursive: true });
writeFileSync(args.out, encodeSafetensors(tensors, meta, { dtype: args.dtype }));
console.log(`wrote ${args.out}`);
