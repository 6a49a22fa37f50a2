// The trained digit-reversal model (web/models/reverse-digits.safetensors, trained
// by `npm run train-example` with TensorFlow.js): the same held-out inputs through
// TensorFlow.js (the training code's own forward pass) and through mha-wasm agree
// to 1e-4, and mha-wasm's greedy decoding with KV caches solves the task.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { init, parseSafetensors, safetensorsMetadata } from 'mha-wasm';
import * as tf from '@tensorflow/tfjs';
import { forward as tfForward } from '../scripts/digits-tfjs-model.mjs';
import { DigitsModel } from '../web/digits-model.js';
import { MAX_DIGITS, isHeldOut, randomDigits, rng, sequence } from '../web/digits.js';

const bytes = readFileSync(new URL('../web/models/reverse-digits.safetensors', import.meta.url));
const load = (mha, options) => DigitsModel.load(mha, parseSafetensors(bytes), safetensorsMetadata(bytes), options);
const heldOut = (n, seed) => {
  const r = rng(seed);
  return Array.from({ length: n }, () => randomDigits(r, true));
};

test('held-out inputs: TensorFlow.js and mha-wasm logits agree to 1e-4', async (t) => {
  await tf.setBackend('cpu');
  const mha = await init({ threads: 1 });
  const model = await load(mha);
  const params = Object.fromEntries(Object.entries(parseSafetensors(bytes)).map(([k, t]) => [k, tf.tensor(t.data, t.dims)]));
  const examples = heldOut(160, 7);
  assert.ok(examples.every(isHeldOut));
  let worst = 0;
  for (let n = 1; n <= MAX_DIGITS; n++) {
    const batch = examples.filter((d) => d.length === n).map((d) => sequence(d).slice(0, -1));
    if (!batch.length) continue;
    const ours = await model.logits(batch);
    const theirs = tf.tidy(() => tfForward(params, model.config, tf.tensor2d(batch, undefined, 'int32')).dataSync());
    assert.equal(theirs.length, ours.data.length);
    let diff = 0, scale = 1;
    for (let i = 0; i < theirs.length; i++) {
      diff = Math.max(diff, Math.abs(theirs[i] - ours.data[i]));
      scale = Math.max(scale, Math.abs(theirs[i]));
    }
    worst = Math.max(worst, diff / scale);
  }
  tf.dispose(Object.values(params));
  model.dispose();
  t.diagnostic(`max |tfjs - mha-wasm| / max(1, max |logit|) over ${examples.length} held-out sequences: ${worst.toExponential(2)}`);
  assert.ok(worst <= 1e-4, `max |tfjs - mha-wasm| / max |logit| = ${worst}`);
});

test('held-out inputs: mha-wasm greedy decoding with KV caches reverses the digits', async (t) => {
  const mha = await init({ threads: 1 });
  const model = await load(mha);
  const examples = heldOut(400, 11);
  let solved = 0;
  for (const d of examples) {
    const streamed = [];
    const r = await model.generate(d, { onToken: (tok) => streamed.push(tok) });
    assert.deepEqual(streamed, r.answer);
    if (r.text === d.slice().reverse().join('') && r.answer.at(-1) === sequence(d).at(-1)) solved++;
    // Every head's map is a causal attention distribution over what was read.
    const N = r.read.length, H = model.config.nhead;
    for (const m of r.maps)
      for (let row = 0; row < H * N; row++) {
        const i = row % N;
        const sum = m.subarray(row * N, row * N + i + 1).reduce((a, b) => a + b, 0);
        assert.ok(Math.abs(sum - 1) < 1e-4 && m.subarray(row * N + i + 1, (row + 1) * N).every((v) => v === 0));
      }
  }
  model.dispose();
  assert.equal(mha.stats().liveLayers, 0);
  const accuracy = solved / examples.length;
  t.diagnostic(`held-out exact-match accuracy: ${solved}/${examples.length} = ${(100 * accuracy).toFixed(1)}%`);
  assert.ok(accuracy >= 0.98, `accuracy ${accuracy}`);
});

test('held-out inputs: with int8 weights the model still reverses 400 of 400', async (t) => {
  const mha = await init({ threads: 1 });
  const model = await load(mha, { weightType: 'int8' });
  const examples = heldOut(400, 11);
  let solved = 0;
  for (const d of examples) {
    const r = await model.generate(d);
    if (r.text === d.slice().reverse().join('') && r.answer.at(-1) === sequence(d).at(-1)) solved++;
  }
  model.dispose();
  t.diagnostic(`int8 held-out exact-match accuracy: ${solved}/${examples.length}`);
  assert.equal(solved, examples.length);
});
