// "Inside one head": draws what MultiHeadAttention.inspect() returns for one
// query token and one head, one step per list item: the formula, a small
// picture (a heat strip, bars, or a grid for the keys and values) and each
// number on hover. Nothing here computes attention: every number drawn comes
// from the package. Each picture keeps the numbers it shows (el.values, or
// el.matrix for a grid) so tests can read what the page shows.
import { color as viridis } from './heatmap.js';

const fmt = (x) => (x === -Infinity ? '−∞' : x === Infinity ? '∞' : Number.isNaN(x) ? 'NaN' : x.toFixed(4));
const short = (s) => (s.length > 8 ? s.slice(0, 7) + '…' : s);

/** Blue for negative, light grey for 0, red for positive; t in [-1, 1]. */
function diverging(t) {
  const x = Math.max(-1, Math.min(1, t));
  const [a, b] = x < 0 ? [[236, 236, 236], [33, 102, 172]] : [[236, 236, 236], [178, 24, 43]];
  const f = Math.abs(x);
  return `rgb(${a.map((c, i) => Math.round(c + f * (b[i] - c))).join(',')})`;
}

const finiteMaxAbs = (values) => Math.max(1e-12, ...Array.from(values, (v) => (Number.isFinite(v) ? Math.abs(v) : 0)));

/**
 * A heat strip: one cell per value. kind 'signed' (diverging colors), 'weights'
 * (viridis, 0 to the largest) or 'bars' (bar heights, 0 to 1). labels: a name per
 * cell for the tooltip (and, with showLabels, under the strip); mark: indices
 * outlined; segment: [from, to) underlined (one head's part of a longer vector).
 * Under it, the range of its numbers: each strip's colors span its own range.
 */
function strip(values, { kind = 'signed', labels, name, mark = [], segment = null, showLabels = false }) {
  const el = document.createElement('div');
  el.className = `strip ${kind}`;
  el.style.setProperty('--n', String(values.length));
  el.setAttribute('role', 'group');
  el.setAttribute('aria-label', `${name}: ${values.length} values`);
  const top = kind === 'signed' ? finiteMaxAbs(values) : Math.max(1e-12, ...Array.from(values, (v) => (Number.isFinite(v) ? v : 0)));
  const marked = new Set(mark);
  values.forEach((v, j) => {
    const c = document.createElement('span');
    c.className = 'cell';
    if (marked.has(j)) c.classList.add('mark');
    if (segment && j >= segment[0] && j < segment[1]) c.classList.add('seg');
    const label = labels ? labels[j] : `${j}`;
    c.title = `${name}[${label}] = ${fmt(v)}`;
    if (!Number.isFinite(v)) c.classList.add('inf');
    else if (kind === 'bars') {
      const bar = document.createElement('span');
      bar.className = 'bar-fill';
      bar.style.height = `${Math.max(0, Math.min(1, v)) * 100}%`;
      c.append(bar);
    } else c.style.background = kind === 'weights' ? viridis(v / top) : diverging(v / top);
    el.append(c);
  });
  el.values = Array.from(values);
  const wrap = document.createElement('div');
  wrap.className = 'strip-wrap';
  wrap.append(el);
  if (showLabels && labels) {
    const names = document.createElement('div');
    names.className = 'strip-labels';
    names.style.setProperty('--n', String(values.length));
    names.setAttribute('aria-hidden', 'true');
    for (const l of labels) {
      const s = document.createElement('span');
      s.textContent = short(l);
      names.append(s);
    }
    wrap.append(names);
  }
  const finite = Array.from(values).filter(Number.isFinite), hidden = values.length - finite.length;
  const range = document.createElement('span');
  range.className = 'range';
  range.textContent = (finite.length ? `${fmt(Math.min(...finite))} … ${fmt(Math.max(...finite))}` : '') +
    (hidden ? `${finite.length ? ', ' : ''}${hidden} × −∞` : '');
  wrap.append(range);
  return wrap;
}

/** A rows x cols grid of signed values on a canvas (the keys or values of every token); the pointer reads a cell. */
function grid({ data, dims: [R, C] }, { rows, name }) {
  const fig = document.createElement('figure');
  fig.className = 'grid';
  const canvas = document.createElement('canvas');
  const cw = Math.max(3, Math.min(14, Math.floor(360 / C))), ch = Math.max(6, Math.min(14, Math.floor(300 / R)));
  const labelW = 64, W = labelW + C * cw, H = R * ch;
  const dpr = Math.min(3, globalThis.devicePixelRatio || 1);
  canvas.width = W * dpr;
  canvas.height = H * dpr;
  canvas.style.width = `${W}px`;
  canvas.style.aspectRatio = `${W} / ${H}`;
  canvas.tabIndex = 0;
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', `${name}: ${R} tokens by ${C} channels. Point at a cell or use the arrow keys to read it.`);
  const readout = document.createElement('figcaption');
  readout.className = 'readout';
  readout.textContent = `${name}: one row per token, one column per channel.`;
  const ctx = canvas.getContext('2d');
  const top = finiteMaxAbs(data);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.font = '10px system-ui, sans-serif';
  ctx.textBaseline = 'middle';
  ctx.textAlign = 'right';
  ctx.fillStyle = getComputedStyle(document.body).color || '#222';
  if (ch >= 9) rows.forEach((s, i) => ctx.fillText(short(s), labelW - 4, i * ch + ch / 2));
  for (let i = 0; i < R; i++)
    for (let j = 0; j < C; j++) {
      ctx.fillStyle = diverging(data[i * C + j] / top);
      ctx.fillRect(labelW + j * cw, i * ch, cw, ch);
    }
  let sel = [0, 0];
  const show = (i, j) => {
    sel = [i, j];
    const text = `${name} of “${rows[i]}” (${i + 1}), channel ${j}: ${fmt(data[i * C + j])}`;
    readout.textContent = text;
    canvas.title = text;
  };
  canvas.addEventListener('pointermove', (e) => {
    const r = canvas.getBoundingClientRect();
    const j = Math.floor((((e.clientX - r.left) / r.width) * W - labelW) / cw), i = Math.floor((((e.clientY - r.top) / r.height) * H) / ch);
    if (i >= 0 && i < R && j >= 0 && j < C) show(i, j);
  });
  canvas.addEventListener('keydown', (e) => {
    const m = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] }[e.key];
    if (!m) return;
    e.preventDefault();
    show(Math.min(R - 1, Math.max(0, sel[0] + m[0])), Math.min(C - 1, Math.max(0, sel[1] + m[1])));
  });
  fig.append(canvas, readout);
  fig.matrix = { rows: R, cols: C, data: Array.from(data) };
  return fig;
}

/** One step: its title, formula (HTML of the page's own text, never of user input), pictures and a note. */
function step(id, title, formula, pictures, note) {
  const li = document.createElement('li');
  li.className = 'step';
  li.dataset.step = id;
  const head = document.createElement('div');
  head.className = 'step-head';
  const h = document.createElement('h3');
  h.textContent = title;
  const f = document.createElement('p');
  f.className = 'formula';
  f.innerHTML = formula;
  head.append(h, f);
  if (note) {
    const n = document.createElement('p');
    n.className = 'note';
    n.textContent = note;
    head.append(n);
  }
  const body = document.createElement('div');
  body.className = 'step-body';
  for (const [label, el] of pictures) {
    const row = document.createElement('div');
    row.className = 'pic';
    if (label) {
      const l = document.createElement('span');
      l.className = 'pic-label';
      l.innerHTML = label;
      row.append(l);
    }
    row.append(el);
    body.append(row);
  }
  li.append(head, body);
  return li;
}

/**
 * Draws an inspect() result into the list `ol`.
 * r: the result; keys: the key tokens' labels; query: the query token's label;
 * cfg: { numHeads, numKvHeads, headDim, embedDim, scale, softcap, slope (ALiBi, or null),
 *   window, causal, padding, rope }.
 */
export function renderInspect(ol, r, { keys, query, cfg }) {
  const H = cfg.numHeads, D = cfg.headDim, group = H / cfg.numKvHeads;
  const i = r.token, h = r.head;
  const sharers = Array.from({ length: group }, (_, n) => r.kvHead * group + n + 1);
  const ch = Array.from({ length: D }, (_, c) => `channel ${c}`);
  const rope = (s) => (cfg.rope ? `RoPE<sub>${s}</sub>(` : '');
  const close = cfg.rope ? ')' : '';
  const hidden = [cfg.causal && 'the causal mask hides j > i', cfg.window && `the window hides |i − j| ≥ ${cfg.window}`, cfg.padding && 'the padding mask hides pads']
    .filter(Boolean);
  const sinkNote = r.sink === null ? '' : ` The sink (${fmt(r.sink)}) is in the denominator only.`;
  const sum = r.weights.reduce((a, b) => a + b, 0);
  const steps = [
    step('qkv', '1. Query, keys and values',
      `<var>q</var> = ${rope('i')}<var>W</var><sub>Q</sub><var>x</var><sub>i</sub> + <var>b</var><sub>Q</sub>${close}, ` +
      `<var>k</var><sub>j</sub> = ${rope('j')}<var>W</var><sub>K</sub><var>x</var><sub>j</sub> + <var>b</var><sub>K</sub>${close}, ` +
      `<var>v</var><sub>j</sub> = <var>W</var><sub>V</sub><var>x</var><sub>j</sub> + <var>b</var><sub>V</sub>`,
      [[`<var>q</var> of “${escapeHtml(query)}”`, strip(r.q, { name: 'q', labels: ch })],
        [`<var>k</var><sub>j</sub> (KV head ${r.kvHead + 1})`, grid(r.k, { rows: keys, name: 'k' })],
        [`<var>v</var><sub>j</sub> (KV head ${r.kvHead + 1})`, grid(r.v, { rows: keys, name: 'v' })]],
      `Head ${h + 1} reads KV head ${r.kvHead + 1}` + (group > 1 ? `, which heads ${sharers.join(', ')} share: their keys and values are the same, their queries are not.` : '.') +
      (cfg.rope ? ' q and k are shown after the rotary embedding.' : '')),
    step('raw', '2. Raw scores', '<var>s</var><sub>j</sub> = <var>q</var> · <var>k</var><sub>j</sub>',
      [['', strip(r.raw, { name: 'q·k', labels: keys, showLabels: true, mark: [i] })]]),
    step('scaled', '3. Scaled', `<var>s</var><sub>j</sub> · ${fmt(cfg.scale)} &nbsp;(= <var>s</var><sub>j</sub> / √${D})`,
      [['', strip(r.scaled, { name: 'scaled', labels: keys, showLabels: true, mark: [i] })]]),
    step('softcapped', '4. Soft-capped', cfg.softcap ? `${cfg.softcap} · tanh(<var>s</var><sub>j</sub> / ${cfg.softcap})` : 'no soft-capping: unchanged',
      [['', strip(r.softcapped, { name: 'soft-capped', labels: keys, showLabels: true, mark: [i] })]],
      cfg.softcap ? `No score can leave ±${cfg.softcap}, so the largest scores move closer together.` : ''),
    step('biased', '5. Position bias', cfg.slope !== null ? `<var>s</var><sub>j</sub> − ${fmt(cfg.slope)} · |<var>i</var> − <var>j</var>| &nbsp;(ALiBi)` : 'no ALiBi: unchanged',
      [['', strip(r.biased, { name: 'biased', labels: keys, showLabels: true, mark: [i] })]]),
    step('masked', '6. Masked', '<var>s</var><sub>j</sub> = −∞ where key <var>j</var> is hidden',
      [['', strip(r.masked, { name: 'masked', labels: keys, showLabels: true, mark: [i] })]],
      hidden.length ? `${hidden.join('; ')} (grey: −∞).` : 'Nothing is hidden.'),
    step('softmax', '7. Softmax', '<var>w</var><sub>j</sub> = e<sup><var>s</var><sub>j</sub></sup> / Σ<sub>k</sub> e<sup><var>s</var><sub>k</sub></sup>',
      [['', strip(r.weights, { kind: 'bars', name: 'w', labels: keys, showLabels: true, mark: [i] })]],
      `The weights sum to ${sum.toFixed(4)}; this is row ${i + 1} of head ${h + 1}'s map.${sinkNote}`),
    step('sum', '8. Weighted sum of the values', '<var>o</var><sub>h</sub> = Σ<sub>j</sub> <var>w</var><sub>j</sub> <var>v</var><sub>j</sub>',
      [['', strip(r.headOutput, { name: `o${h + 1}`, labels: ch })]]),
    step('concat', '9. All heads side by side', `[<var>o</var><sub>1</sub>, …, <var>o</var><sub>${H}</sub>] &nbsp;(${H} × ${D} = ${H * D} numbers)`,
      [['', strip(r.concat, { name: 'concat', segment: [h * D, (h + 1) * D] })]],
      `Underlined: head ${h + 1}'s part, step 8's vector.`),
    step('output', '10. Output projection', '<var>y</var><sub>i</sub> = <var>W</var><sub>O</sub> [<var>o</var><sub>1</sub>, …, <var>o</var><sub>H</sub>] + <var>b</var><sub>O</sub>',
      [['', strip(r.output, { name: 'y' })]],
      `The layer's output for “${query}”: ${cfg.embedDim} numbers, the same as row ${i + 1} of forward()'s output.`),
  ];
  ol.replaceChildren(...steps);
}

function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}
