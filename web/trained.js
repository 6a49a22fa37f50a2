// The "Trained model" tab: a 2-layer Transformer trained with TensorFlow.js to
// reverse digits (npm run train-example) runs on mha-wasm/worker, like the rest
// of the page (the model's code awaits each layer call, which the worker
// computes); the answer appears token by token (one KV-cached step each) and
// every head of every layer shows where each position looked.
import { init, parseSafetensors, safetensorsMetadata } from 'mha-wasm/worker';
import { heatmap } from './heatmap.js';
import { DigitsModel } from './digits-model.js';
import { END, SEP, VOCAB, parseDigits } from './digits.js';

const $ = (id) => document.getElementById(id);
const state = { model: null, id: 0, queue: [], steps: [], drawing: false, last: null, runs: 0 };
window.mhaDemo.model = state;

/** The model on its own one-thread worker (it is small), loaded once. */
function model() {
  state.model ??= (async () => {
    const [mha, res] = await Promise.all([init({ threads: 1 }), fetch(new URL('./models/reverse-digits.safetensors', import.meta.url))]);
    if (!res.ok) throw new Error(`could not load the model weights: ${res.status} ${res.statusText} (${res.url})`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    const meta = safetensorsMetadata(bytes);
    return { model: await DigitsModel.load(mha, parseSafetensors(bytes), meta), bytes: bytes.length, metadata: meta };
  })();
  state.model.catch(() => { state.model = null; });  // a failed load is tried again on the next run
  return state.model;
}

/** Decodes digits step by step into the drawing queue; a newer run (state.id) stops this one. */
async function decode(id, digits) {
  try {
    const { model: m, bytes, metadata } = await model();
    for await (const step of m.decode(digits)) {
      if (id !== state.id) return;  // superseded: return() frees the caches
      state.queue.push({ step, config: m.config, metadata, bytes, build: m.build });
      drain();
    }
  } catch (e) {
    if (id === state.id) fail(e);
  }
}

function fail(e) {
  state.queue = [];
  const el = $('model-error');
  el.hidden = false;
  el.textContent = `${e.name}: ${e.message}`;
  $('model-run').disabled = false;
}

const delay = () => (($('model-speed').value === 'step') ? 180 : 0);

async function drain() {
  if (state.drawing) return;
  state.drawing = true;
  try {
    while (state.queue.length) {
      const msg = state.queue.shift();
      draw(msg);
      if (state.queue.length || !msg.step.done) await new Promise((r) => setTimeout(r, delay()));
    }
  } finally {
    state.drawing = false;
  }
}

function draw({ step, config, metadata, bytes, build }) {
  const { read, answer, maps, done } = step;
  const out = $('model-answer');
  const tok = document.createElement('span');
  tok.className = 'tok';
  tok.textContent = VOCAB[step.token];
  tok.title = `p = ${step.probability.toFixed(4)}`;
  tok.style.opacity = String(0.35 + 0.65 * step.probability);
  out.append(tok);
  state.steps.push(step.ms);
  const labels = read.map((t) => VOCAB[t]);
  const box = $('model-maps');
  box.replaceChildren();
  const N = read.length, H = config.nhead;
  maps.forEach((m, l) => {
    const h3 = document.createElement('h3');
    h3.textContent = `Layer ${l + 1}`;
    const row = document.createElement('div');
    row.className = 'maps';
    for (let h = 0; h < H; h++)
      row.append(heatmap({ title: `Layer ${l + 1}, head ${h + 1}`, rows: labels, cols: labels, data: m.subarray(h * N * N, (h + 1) * N * N), max: 1 }));
    box.append(h3, row);
  });
  if (!done) return;
  const text = answer.filter((t) => t !== END).map((t) => VOCAB[t]).join('');
  const digits = read.slice(0, read.indexOf(SEP)).join('');
  const right = text === [...digits].reverse().join('') && answer.at(-1) === END;
  const ms = state.steps.reduce((a, b) => a + b, 0);
  $('model-info').textContent = `${right ? 'Correct' : 'Wrong'}: ${digits} reversed is ${[...digits].reverse().join('')}. ` +
    `${answer.length} tokens in ${answer.length} steps, ${ms.toFixed(1)} ms in all, worker messages included (first step ${state.steps[0].toFixed(2)} ms: ` +
    `it reads ${digits.length + 1} tokens; later steps read 1 and attend over the cache). ` +
    `Model: ${config.numLayers} layers, dModel ${config.dModel}, ${config.nhead} heads, ${(bytes / 1024).toFixed(0)} KiB of weights, ` +
    `held-out accuracy at training ${metadata.held_out_accuracy ?? 'n/a'}; ${build}.`;
  $('model-run').disabled = false;
  state.last = { digits, text, right, read, answer, maps: maps.map((m) => Array.from(m)), nhead: H };
  state.runs++;
}

function run() {
  $('model-error').hidden = true;
  let digits;
  try {
    digits = parseDigits($('digits').value);
  } catch (e) {
    return fail(e);
  }
  state.id++;
  state.queue = [];
  state.steps = [];
  $('model-answer').replaceChildren();
  $('model-info').textContent = 'Running…';
  $('model-run').disabled = true;
  decode(state.id, digits);
}

$('model-form').addEventListener('submit', (e) => { e.preventDefault(); run(); });
// Run the example the first time the tab is shown.
const panel = $('panel-model');
const first = () => { if (!panel.hidden && state.id === 0) run(); };
new MutationObserver(first).observe(panel, { attributes: true, attributeFilter: ['hidden'] });
first();
