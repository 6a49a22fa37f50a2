// The demo page. All computation runs in Web Workers through the package's
// worker API (mha-wasm/worker); this thread only draws.
import { encodeSafetensors, init, parseSafetensors, safetensorsMetadata } from 'mha-wasm/worker';
import { heatmap } from './heatmap.js';
import { renderInspect } from './inspect.js';
import { averageHeads, demoWeights, embedBatch, headChoices, headRole, playInput, rng, roleName, roleShare, tokenize } from './model.js';
import { flops, maxRelDiff, median } from './stats.js';

const $ = (id) => document.getElementById(id);
const fmt = (x, d = 2) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(d));

// What the page did last, for the curious (and the end-to-end test).
const demo = { lastRun: null, lastWeightsRun: null, lastBench: null, runs: 0 };
window.mhaDemo = demo;

// One worker per thread setting, started when first needed.
const runtimes = {};
const runtime = (threads) => (runtimes[threads] ??= init({ threads: threads === '1' ? 1 : 'auto' }));
const describeBuild = (m) => {
  const simd = m.features.relaxedSimd ? 'WebAssembly relaxed SIMD' : 'WebAssembly SIMD128';
  return m.features.threads ? `${simd} + threads, ${m.threads} threads` : `${simd}, single thread`;
};

function showError(el, e) {
  el.hidden = !e;
  el.textContent = e ? (e instanceof Error ? `${e.name}: ${e.message}` : String(e)) : '';
}

// ---- tabs (WAI-ARIA tabs: arrow keys move between them) ----
const tabs = [...document.querySelectorAll('[role=tab]')];
function selectTab(tab, focus = true) {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute('aria-selected', String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute('aria-controls')).hidden = !on;
  }
  if (focus) tab.focus();
  history.replaceState(null, '', `#${tab.id.slice(4)}`);
}
tabs.forEach((t, i) => {
  t.addEventListener('click', () => selectTab(t));
  t.addEventListener('keydown', (e) => {
    const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
    if (to === undefined) return;
    e.preventDefault();
    selectTab(tabs[(to + tabs.length) % tabs.length]);
  });
});
const fromHash = tabs.find((t) => `#${t.id.slice(4)}` === location.hash);
if (fromHash) selectTab(fromHash, false);

// ---- status: which build runs ----
demo.ready = runtime('auto').then((m) => {
  const st = $('status');
  st.textContent = `Running ${m.build}: ${describeBuild(m)}.`;
  if (m.threadsNote) {
    st.textContent += ` Threads are off: ${m.threadsNote.replace(/^single-thread build: /, '')}.`;
    st.classList.add('warn');
  }
  $('threads').options[0].textContent = `all (${m.threads})`;
  demo.build = { build: m.build, threads: m.threads, threadsNote: m.threadsNote };
  return m;
}, (e) => {
  $('status').textContent = `Could not load mha-wasm: ${e.message}`;
  $('status').classList.add('warn');
  throw e;
});

// ---- maps ----
function drawMaps(container, { tokens, attn, B, H, L, item, average = true, roleOf = null }) {
  const maps = [];
  const b = Math.min(item, B - 1);
  const rows = tokens[b];
  for (let h = 0; h < H; h++) {
    const data = attn.subarray((b * H + h) * L * L, (b * H + h + 1) * L * L);
    const spec = { title: `Head ${h + 1}`, rows, cols: rows, data };
    if (roleOf) Object.assign(spec, roleOf(h, rows, data));
    const m = heatmap(spec);
    m.dataset.head = String(h);
    maps.push(m);
  }
  let avg = null;
  if (average && H > 1) {
    const mean = averageHeads(attn, B, H, L);
    avg = heatmap({ title: 'All heads (mean)', rows, cols: rows, data: mean.subarray(b * L * L, (b + 1) * L * L) });
    avg.classList.add('average');
  }
  return { maps, avg, put: () => container.replaceChildren(...maps, ...(avg ? [avg] : [])) };
}

// ---- playground ----
const form = $('play-form');
// Heads of at least 8 dims: smaller ones have too few channels for both a word and a position.
const MIN_HEAD_DIM = 8;
function fillHeads(select, E, want, min = 1) {
  const choices = headChoices(E, 16).filter((h) => E / h >= min);
  select.replaceChildren(...choices.map((h) => new Option(String(h), String(h))));
  select.value = String(choices.includes(want) ? want : choices.filter((h) => h <= 8).pop());
}
function fillKvHeads(H, want) {
  const choices = headChoices(H, H);
  $('numKvHeads').replaceChildren(...choices.map((k) => new Option(k === H ? `${k} (one per head)` : k === 1 ? '1 (multi-query)' : `${k} (groups of ${H / k})`, String(k))));
  $('numKvHeads').value = String(choices.includes(want) ? want : H);
}
fillHeads($('numHeads'), 64, 4, MIN_HEAD_DIM);
fillKvHeads(4, 4);

function settings() {
  return {
    sentence: $('sentence').value, second: $('second').value, embedDim: Number($('embedDim').value),
    numHeads: Number($('numHeads').value), sharpness: Number($('sharpness').value), seed: Math.max(1, Math.floor(Number($('seed').value) || 1)),
    threads: $('threads').value, causal: $('causal').checked, padding: $('padding').checked, item: Number($('item').value),
    numKvHeads: Number($('numKvHeads').value), rope: $('rope').checked, alibi: $('alibi').checked,
    window: Number($('window').value), softcap: Number($('softcap').value),
  };
}

/** The layer's constructor options for the settings: the package's names, off options left out. */
function layerOptions(s) {
  const o = { embedDim: s.embedDim, numHeads: s.numHeads };
  if (s.numKvHeads !== s.numHeads) o.numKvHeads = s.numKvHeads;
  if (s.rope) o.rope = true;
  if (s.alibi) o.alibi = true;
  if (s.window) o.slidingWindow = s.window;
  if (s.softcap) o.softcap = s.softcap;
  return o;
}

let layerCache = null;  // { key, layer, weights }
async function playLayer(mha, s) {
  const options = layerOptions(s);
  const key = JSON.stringify([s.threads, options, s.seed, s.sharpness]);
  if (layerCache && layerCache.key === key) return layerCache;
  layerCache?.layer.dispose();
  layerCache = null;
  const layer = new mha.MultiHeadAttention(options);
  const weights = demoWeights(s);
  await layer.setWeights(weights);
  return (layerCache = { key, layer, weights, options });
}

const pct = (x) => `${Math.round(x * 100)}%`;

/** A map's caption: the head's role and how much of its weight the package's map puts there. */
function roleCaption(slopes) {
  return (h, rows, data) => {
    const role = headRole(h), name = roleName(role);
    const { share } = roleShare(role, rows, data);
    const notes = [];
    let tip;
    if (share === null) {
      notes.push('hidden by the mask');
      tip = `No row can see its ${name}: the mask hides it.`;
    } else if (role.kind === 'uniform') {
      notes.push(`${pct(share)} even`);
      tip = 'How evenly each row spreads its weight over the keys it sees (100% = equal weights), averaged over the rows.';
    } else {
      notes.push(`${pct(share)} there`);
      tip = `The share of each row's weight on the ${name}, averaged over the rows that can see it.`;
    }
    if (slopes) notes.push(`ALiBi slope ${slopeText(slopes[h])}`);
    return { title: `Head ${h + 1}: ${name}`, note: notes.join(' · '), noteTitle: tip };
  };
}
const slopeText = (m) => {
  const inv = 1 / m;
  return Number.isInteger(Math.round(inv * 1e6) / 1e6) ? `1/${Math.round(inv)}` : m.toPrecision(3);
};

/** The maps of heads that share a KV head, framed together. */
function groupMaps(maps, H, Hkv) {
  if (Hkv === H) return maps;
  const g = H / Hkv;
  return Array.from({ length: Hkv }, (_, k) => {
    const box = document.createElement('section');
    box.className = 'kv-group';
    box.dataset.kvHead = String(k);
    const h = document.createElement('h3');
    h.textContent = `KV head ${k + 1}`;
    const sub = document.createElement('span');
    sub.className = 'scale';
    sub.textContent = ` · keys and values shared by heads ${k * g + 1}–${(k + 1) * g}`;
    h.append(sub);
    const grid = document.createElement('div');
    grid.className = 'maps';
    grid.append(...maps.slice(k * g, (k + 1) * g));
    box.append(h, grid);
    return box;
  });
}

let current = null;  // the last playground run: what "Inside one head" inspects

async function runPlayground() {
  const s = settings();
  const tokens = tokenize(s.sentence);
  if (tokens.length === 0) throw new Error('Type a sentence: there are no words to attend to.');
  const batch = s.padding ? [tokens, tokenize(s.second)] : [tokens];
  if (s.padding && batch[1].length === 0) throw new Error('The second sentence is empty.');
  const mha = await runtime(s.threads);
  const { layer, weights, options: ctor } = await playLayer(mha, s);
  const x = playInput(batch, s);
  const [B, L] = x.dims;
  const options = { needWeights: true, averageWeights: false, isCausal: s.causal };
  if (s.padding) options.keyPaddingMask = { data: x.padMask, dims: [B, L] };
  const t0 = performance.now();
  const r = await layer.forward({ data: x.data, dims: x.dims }, null, null, options);
  const ms = performance.now() - t0;
  const slopes = s.alibi ? await layer.alibi : null;
  const { maps, avg } = drawMaps($('maps'), { tokens: x.tokens, attn: r.weights.data, B, H: s.numHeads, L, item: s.item, roleOf: roleCaption(slopes) });
  $('maps').replaceChildren(...groupMaps(maps, s.numHeads, s.numKvHeads), ...(avg ? [avg] : []));
  const D = s.embedDim / s.numHeads;
  $('play-info').textContent = `${L} tokens × ${s.embedDim} dims, ${s.numHeads} heads of ${D} dims` +
    `${s.numKvHeads < s.numHeads ? ` reading ${s.numKvHeads} KV head${s.numKvHeads > 1 ? 's' : ''}` : ''}${B > 1 ? `, batch of ${B}` : ''}: ` +
    `forward took ${fmt(ms)} ms (in a worker, messaging included) on ${describeBuild(mha)}${mha.threadsNote ? ' (threads unavailable here)' : ''}. ` +
    `A KV cache would keep ${2 * s.numKvHeads * D} numbers per token${s.numKvHeads < s.numHeads ? ` (${2 * s.numHeads * D} without grouping)` : ''}.`;
  current = { s, layer, x, options, tokens: x.tokens, B, L };
  demo.lastRun = {
    settings: s, layerOptions: ctor, tokens: x.tokens, dims: x.dims, input: Array.from(x.data), padMask: s.padding ? Array.from(x.padMask) : null,
    weights: Object.fromEntries(Object.entries(weights).map(([k, v]) => [k, Array.from(v)])),
    attnDims: r.weights.dims, attn: Array.from(r.weights.data), output: Array.from(r.output.data), ms, build: mha.build, threads: mha.threads,
    drawn: [...$('maps').querySelectorAll('figure')].map((m) => ({ title: m.querySelector('figcaption').textContent, name: m.dataset.title, ...m.matrix })),
  };
  fillInspectControls();
  await inspectNow();
  demo.runs++;
}

// ---- inside one head ----
function fillInspectControls() {
  const { s, tokens } = current;
  const row = tokens[Math.min(s.item, tokens.length - 1)];
  const tSel = $('in-token'), hSel = $('in-head');
  const t = Math.min(Number(tSel.value || 1), row.length - 1), h = Math.min(Number(hSel.value || 1), s.numHeads - 1);
  tSel.replaceChildren(...row.map((w, i) => new Option(`${i + 1}: ${w}`, String(i))));
  hSel.replaceChildren(...Array.from({ length: s.numHeads }, (_, k) => new Option(`${k + 1}: ${roleName(headRole(k))}`, String(k))));
  tSel.value = String(t);
  hSel.value = String(h);
}

let inspectId = 0;
async function runInspect() {
  if (!current) return;
  const id = ++inspectId;
  const { s, layer, x, options, tokens, B } = current;
  const batch = Math.min(s.item, B - 1), token = Number($('in-token').value), head = Number($('in-head').value);
  const { needWeights, averageWeights, ...opts } = options;
  const r = await layer.inspect({ data: x.data, dims: x.dims }, null, null, { ...opts, token, head, batch });
  if (id !== inspectId) return;  // a newer one is on its way
  const slopes = s.alibi ? await layer.alibi : null;
  const keys = tokens[batch];
  renderInspect($('steps'), r, {
    keys, query: keys[token],
    cfg: {
      numHeads: s.numHeads, numKvHeads: s.numKvHeads, headDim: s.embedDim / s.numHeads, embedDim: s.embedDim, scale: await layer.scale,
      softcap: s.softcap || null, slope: slopes ? slopes[head] : null, window: s.window || null, causal: s.causal, padding: s.padding, rope: s.rope,
    },
  });
  demo.inspects = (demo.inspects ?? 0) + 1;
  const arr = (a) => Array.from(a);
  demo.lastInspect = {
    batch: r.batch, token: r.token, head: r.head, kvHead: r.kvHead, q: arr(r.q), k: { data: arr(r.k.data), dims: r.k.dims }, v: { data: arr(r.v.data), dims: r.v.dims },
    raw: arr(r.raw), scaled: arr(r.scaled), softcapped: arr(r.softcapped), biased: arr(r.biased), masked: arr(r.masked), weights: arr(r.weights),
    sink: r.sink, headOutput: arr(r.headOutput), concat: arr(r.concat), output: arr(r.output),
  };
}

async function inspectNow() {
  try {
    await runInspect();
    showError($('inside-error'), null);
  } catch (e) {
    showError($('inside-error'), e);
  }
}
$('in-token').addEventListener('change', () => { demo.inspecting = inspectNow(); });
$('in-head').addEventListener('change', () => { demo.inspecting = inspectNow(); });
$('maps').addEventListener('cellpick', (e) => {
  const fig = e.target.closest('figure');
  if (!fig || fig.dataset.head === undefined) return;
  $('in-head').value = fig.dataset.head;
  $('in-token').value = String(e.detail.row);
  demo.inspecting = inspectNow();
  $('inside').scrollIntoView({ behavior: 'smooth', block: 'start' });
});

// Runs on every change; while one run is in flight, later changes fold into one more run.
let running = null, again = false;
function schedule() {
  if (running) { again = true; return running; }
  demo.busy = true;
  running = (async () => {
    do {
      again = false;
      try {
        await runPlayground();
        showError($('play-error'), null);
      } catch (e) {
        showError($('play-error'), e);
      }
    } while (again);
    running = null;
    demo.busy = false;
  })();
  return running;
}
demo.runPlayground = schedule;

form.addEventListener('submit', (e) => { e.preventDefault(); schedule(); });
form.addEventListener('change', (e) => {
  if (e.target.id === 'embedDim') fillHeads($('numHeads'), Number($('embedDim').value), Number($('numHeads').value), MIN_HEAD_DIM);
  if (e.target.id === 'embedDim' || e.target.id === 'numHeads') fillKvHeads(Number($('numHeads').value), Number($('numKvHeads').value));
  if (e.target.id === 'padding') $('second-field').hidden = $('item-field').hidden = !$('padding').checked;
  schedule();
});
let typing;
form.addEventListener('input', (e) => {
  if (e.target.id === 'sharpness') $('sharpness-out').value = e.target.value;
  if (e.target.type === 'text' || e.target.type === 'number') {
    clearTimeout(typing);
    typing = setTimeout(schedule, 250);
  }
});
demo.ready.then(schedule, () => {});

// ---- your weights ----
const SUFFIX = 'out_proj.weight';
let stLayer = null;

async function loadWeightsFile(bytes, fileName) {
  stLayer?.dispose();
  stLayer = null;
  $('st-maps').replaceChildren();
  $('st-table').hidden = true;
  const all = parseSafetensors(bytes);  // throws on a malformed file
  const names = Object.keys(all);
  const outName = names.find((n) => n.endsWith(SUFFIX));
  if (!outName)
    throw new Error(`${fileName} has no "${SUFFIX}" tensor, so it is not an nn.MultiheadAttention state dict (it has ${names.slice(0, 8).join(', ') || 'no tensors'}).`);
  const prefix = outName.slice(0, -SUFFIX.length);
  const t = prefix ? parseSafetensors(bytes, { prefix }) : all;
  const outDims = t[SUFFIX].dims;
  if (outDims.length !== 2 || outDims[0] !== outDims[1]) throw new Error(`${prefix}${SUFFIX} must be square [E, E], got [${outDims}]`);
  const E = outDims[0];
  const kdim = t.k_proj_weight?.dims[1] ?? E, vdim = t.v_proj_weight?.dims[1] ?? E;
  const bias = 'in_proj_bias' in t || 'out_proj.bias' in t;
  const meta = safetensorsMetadata(bytes);
  const metaHeads = Number(meta.num_heads ?? meta.numHeads);
  const sel = $('st-heads');
  fillHeads(sel, E, Number.isInteger(metaHeads) && E % metaHeads === 0 ? metaHeads : Number(sel.value) || 4);
  sel.disabled = false;
  const used = new Set(['in_proj_weight', 'q_proj_weight', 'k_proj_weight', 'v_proj_weight', 'in_proj_bias', 'out_proj.weight', 'out_proj.bias']);
  $('st-table').tBodies[0].replaceChildren(...names.map((n) => {
    const tr = document.createElement('tr');
    const local = n.startsWith(prefix) ? n.slice(prefix.length) : null;
    for (const text of [n, `[${all[n].dims.join(', ')}]`, local !== null && used.has(local) ? local : '(not used)']) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.append(td);
    }
    return tr;
  }));
  $('st-table').hidden = false;
  const weights = Object.fromEntries(Object.entries(t).filter(([n]) => used.has(n)));
  return { fileName, E, kdim, vdim, bias, weights };
}

let stFile = null;
async function runWeights() {
  if (!stFile) return;
  const { E, kdim, vdim, bias, weights, fileName } = stFile;
  const H = Number($('st-heads').value);
  const mha = await runtime('auto');
  stLayer?.dispose();
  stLayer = new mha.MultiHeadAttention({ embedDim: E, numHeads: H, kdim, vdim, bias });
  await stLayer.setWeights(weights);
  const tokens = tokenize($('sentence').value);
  if (tokens.length === 0) throw new Error('The playground sentence is empty: type one there first.');
  const q = embedBatch([tokens], E), k = kdim === E ? q : embedBatch([tokens], kdim), v = vdim === E ? q : embedBatch([tokens], vdim);
  const L = q.dims[1];
  const t0 = performance.now();
  const t = (e) => ({ data: e.data, dims: e.dims });
  const r = await stLayer.forward(t(q), k === q ? null : t(k), v === q ? null : t(v), { needWeights: true, averageWeights: false });
  const ms = performance.now() - t0;
  drawMaps($('st-maps'), { tokens: q.tokens, attn: r.weights.data, B: 1, H, L, item: 0 }).put();
  $('st-info').textContent = `${fileName}: embedDim ${E}${kdim !== E || vdim !== E ? `, kdim ${kdim}, vdim ${vdim}` : ''}, ${H} heads, ` +
    `bias ${bias ? 'yes' : 'no'}. Forward over the playground sentence (${L} tokens) took ${fmt(ms)} ms.`;
  demo.lastWeightsRun = { fileName, E, H, kdim, vdim, bias, tokens: q.tokens[0], input: Array.from(q.data), attnDims: r.weights.dims, attn: Array.from(r.weights.data) };
}

async function guarded(fn, errEl) {
  try {
    await fn();
    showError(errEl, null);
  } catch (e) {
    showError(errEl, e);
  }
}

$('st-file').addEventListener('change', () => guarded(async () => {
  const f = $('st-file').files[0];
  showError($('st-error'), null);
  stFile = null;
  demo.lastWeightsRun = null;
  $('st-info').textContent = '';
  if (!f) return;
  try {
    stFile = await loadWeightsFile(new Uint8Array(await f.arrayBuffer()), f.name);
  } catch (e) {
    $('st-heads').disabled = true;
    demo.lastWeightsError = `${e.name}: ${e.message}`;
    throw e;
  }
  demo.lastWeightsError = null;
  await runWeights();
}, $('st-error')));
$('st-heads').addEventListener('change', () => guarded(runWeights, $('st-error')));

$('st-example').addEventListener('click', () => {
  const E = 32, H = 4;
  const w = demoWeights({ embedDim: E, numHeads: H, seed: 3, sharpness: 2 });
  const bytes = encodeSafetensors({
    in_proj_weight: { data: w.inProjWeight, dims: [3 * E, E] }, in_proj_bias: { data: w.inProjBias, dims: [3 * E] },
    'out_proj.weight': { data: w.outProjWeight, dims: [E, E] }, 'out_proj.bias': { data: w.outProjBias, dims: [E] },
  }, { num_heads: String(H), note: 'mha-wasm demo weights (untrained)' });
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
  a.download = 'example-mha.safetensors';
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
});

// ---- benchmark ----
const SHAPES = {
  s1: { label: 'L=128, E=768, 12 heads', L: 128, E: 768, H: 12, reps: 7, plainReps: 3 },
  s2: { label: 'L=512, E=768, 12 heads', L: 512, E: 768, H: 12, reps: 5, plainReps: 1 },
  s4: { label: 'L=2048, E=256, 4 heads', L: 2048, E: 256, H: 4, reps: 3, plainReps: 1 },
};

let plainWorker = null, plainId = 0;
function plainRun(msg) {
  plainWorker ??= new Worker(new URL('./plain-worker.js', import.meta.url), { type: 'module', name: 'plain-js' });
  const id = ++plainId;
  return new Promise((resolve, reject) => {
    const on = ({ data }) => {
      if (data.id !== id) return;
      plainWorker.removeEventListener('message', on);
      data.error ? reject(new Error(data.error)) : resolve(data);
    };
    plainWorker.addEventListener('message', on);
    plainWorker.postMessage({ id, ...msg });
  });
}

async function timeWasm(mha, shape, x, weights) {
  const layer = new mha.MultiHeadAttention({ embedDim: shape.E, numHeads: shape.H });
  try {
    await layer.setWeights(weights);
    const input = { data: x, dims: [1, shape.L, shape.E] };
    let out = (await layer.forward(input)).output.data;  // warm-up
    const times = [];
    for (let i = 0; i < shape.reps; i++) {
      const t0 = performance.now();
      out = (await layer.forward(input)).output.data;
      times.push(performance.now() - t0);
    }
    return { times, out };
  } finally {
    layer.dispose();
  }
}

async function runBench() {
  const picked = Object.keys(SHAPES).filter((k) => $(`shape-${k}`).checked);
  if (picked.length === 0) throw new Error('Pick at least one shape.');
  const [one, all] = await Promise.all([runtime('1'), runtime('auto')]);
  const impls = [['mha-wasm, 1 thread', one]];
  if (all.threads > 1) impls.push([`mha-wasm, ${all.threads} threads`, all]);
  const results = [];
  for (const k of picked) {
    const shape = SHAPES[k];
    const r = rng(12345);
    const x = Float32Array.from({ length: shape.L * shape.E }, () => 2 * r() - 1);
    const weights = demoWeights({ embedDim: shape.E, numHeads: shape.H, seed: 5 });
    $('bench-info').textContent = `Running ${shape.label}: plain JavaScript (${shape.plainReps} run${shape.plainReps > 1 ? 's' : ''})…`;
    const plain = await plainRun({ x, B: 1, L: shape.L, E: shape.E, H: shape.H, weights, reps: shape.plainReps });
    const rows = [{ shape: k, label: shape.label, impl: 'plain JavaScript', ms: median(plain.times), runs: plain.times.length }];
    for (const [name, mha] of impls) {
      $('bench-info').textContent = `Running ${shape.label}: ${name}…`;
      const { times, out } = await timeWasm(mha, shape, x, weights);
      const diff = maxRelDiff(out, plain.output);
      if (!(diff < 1e-3)) throw new Error(`${name} and plain JavaScript disagree on ${shape.label} (max relative difference ${diff})`);
      rows.push({ shape: k, label: shape.label, impl: name, ms: median(times), runs: times.length, diff });
    }
    for (const row of rows) {
      row.gflops = flops(shape) / row.ms / 1e6;
      row.speedup = rows[0].ms / row.ms;
    }
    results.push(...rows);
    renderBench(results);
  }
  $('bench-info').textContent = `Done. mha-wasm outputs agree with plain JavaScript to ${Math.max(...results.filter((r) => r.diff !== undefined).map((r) => r.diff)).toExponential(1)} (max relative difference).` +
    (all.threadsNote ? ` Only one thread here: ${all.threadsNote.replace(/^single-thread build: /, '')}.` : '');
  demo.lastBench = results;
}

function renderBench(results) {
  const tbody = $('bench-table').tBodies[0];
  tbody.replaceChildren(...results.map((r) => {
    const tr = document.createElement('tr');
    const cells = [[r.label], [r.impl], [`${fmt(r.ms)}${r.runs > 1 ? '' : ' (1 run)'}`, 'num'], [fmt(r.gflops), 'num'], [`${fmt(r.speedup, 2)}×`, 'num']];
    for (const [text, cls] of cells) {
      const td = document.createElement('td');
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
    }
    return tr;
  }));
  $('bench-table').hidden = false;
  const top = Math.max(...results.map((r) => r.gflops));
  const bars = $('bench-chart').querySelector('.bars');
  bars.replaceChildren(...results.flatMap((r) => {
    const label = document.createElement('span');
    label.textContent = `${r.label.split(',')[0]} · ${r.impl}`;
    const row = document.createElement('div');
    row.className = 'bar-row';
    const bar = document.createElement('div');
    bar.className = r.impl.startsWith('plain') ? 'bar plain' : 'bar';
    bar.style.width = `${Math.max(0.5, (r.gflops / top) * 85)}%`;
    bar.setAttribute('role', 'img');
    bar.setAttribute('aria-label', `${fmt(r.gflops)} GFLOP/s`);
    const val = document.createElement('span');
    val.textContent = `${fmt(r.gflops)} GFLOP/s`;
    row.append(bar, val);
    return [label, row];
  }));
  $('bench-chart').hidden = false;
}

$('bench-run').addEventListener('click', async () => {
  const btn = $('bench-run');
  btn.disabled = true;
  demo.benchRunning = true;
  await guarded(runBench, $('bench-error'));
  btn.disabled = false;
  demo.benchRunning = false;
});
