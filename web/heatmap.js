// One attention map: a canvas with query tokens down the side and key tokens
// across the top. The pointer or the arrow keys (when focused) pick a cell and
// show its value. The matrix drawn is kept on the element (el.matrix) so tests
// can read what the page shows. A click on a cell dispatches a "cellpick" event
// ({ detail: { row, col } }) from the figure.

// Viridis, 6 stops: dark for 0, bright for 1; a value that is not a number (NaN, from a
// model whose weights or inputs are not finite) is drawn grey.
const STOPS = [[68, 1, 84], [65, 68, 135], [42, 120, 142], [34, 168, 132], [122, 209, 81], [253, 231, 37]];
const NAN_COLOR = 'rgb(128,128,128)';
export function color(t) {
  if (Number.isNaN(t)) return NAN_COLOR;
  const x = Math.min(1, Math.max(0, t)) * (STOPS.length - 1), i = Math.min(STOPS.length - 2, Math.floor(x)), f = x - i;
  return `rgb(${STOPS[i].map((c, k) => Math.round(c + f * (STOPS[i + 1][k] - c))).join(',')})`;
}

const FONT = '11px system-ui, sans-serif';
const short = (s) => (s.length > 9 ? s.slice(0, 8) + '…' : s);

/**
 * @param {{ title: string, note?: string, noteTitle?: string, rows: string[], cols: string[], data: Float32Array, max?: number }} spec
 *   data: rows.length x cols.length, row-major; max: the value drawn brightest (default the largest);
 *   note: a remark after the title (noteTitle: its tooltip).
 */
export function heatmap({ title, note, noteTitle, rows, cols, data, max }) {
  const R = rows.length, C = cols.length;
  let top = 1e-9;  // the largest value (NaNs aside)
  for (const v of data.subarray(0, R * C)) if (v > top) top = v;
  const scaleMax = max ?? top;
  const fig = document.createElement('figure');
  fig.className = 'map';
  const cap = document.createElement('figcaption');
  cap.textContent = title;
  if (note) {
    const n = document.createElement('span');
    n.className = 'note';
    n.textContent = ` · ${note}`;
    if (noteTitle) n.title = noteTitle;
    cap.append(n);
  }
  const canvas = document.createElement('canvas');
  canvas.tabIndex = 0;
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', `${title}: attention weights, ${R} query tokens by ${C} key tokens. Use the arrow keys to read values.`);
  const scale = document.createElement('span');
  scale.className = 'scale';
  scale.textContent = ` brightest = ${scaleMax.toFixed(2)}`;
  cap.append(scale);
  const readout = document.createElement('p');
  readout.className = 'readout';
  readout.setAttribute('aria-live', 'polite');
  readout.textContent = 'Point at a cell (or focus the map and use the arrow keys).';
  fig.append(cap, canvas, readout);

  const ctx = canvas.getContext('2d');
  ctx.font = FONT;
  const labelW = Math.ceil(Math.max(...rows.map((s) => ctx.measureText(short(s)).width), ...cols.map((s) => ctx.measureText(short(s)).width))) + 6;
  const cell = Math.max(7, Math.min(22, Math.floor(300 / Math.max(R, C))));
  const W = labelW + C * cell + 2, H = labelW + R * cell + 2;
  const dpr = Math.min(3, globalThis.devicePixelRatio || 1);
  canvas.width = W * dpr;
  canvas.height = H * dpr;
  canvas.style.width = `${W}px`;
  canvas.style.aspectRatio = `${W} / ${H}`;
  let sel = null;  // [row, col]

  function draw() {
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);
    ctx.font = FONT;
    ctx.fillStyle = getComputedStyle(canvas).color || '#222';
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'right';
    rows.forEach((s, i) => ctx.fillText(short(s), labelW - 4, labelW + i * cell + cell / 2));
    ctx.save();
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = 'left';
    cols.forEach((s, j) => ctx.fillText(short(s), -labelW + 4, labelW + j * cell + cell / 2));
    ctx.restore();
    for (let i = 0; i < R; i++)
      for (let j = 0; j < C; j++) {
        ctx.fillStyle = color(data[i * C + j] / scaleMax);
        ctx.fillRect(labelW + j * cell, labelW + i * cell, cell, cell);
      }
    if (sel) {
      ctx.strokeStyle = '#ff3b30';
      ctx.lineWidth = 2;
      ctx.strokeRect(labelW + sel[1] * cell + 1, labelW + sel[0] * cell + 1, cell - 2, cell - 2);
    }
  }

  function pick(i, j) {
    sel = [i, j];
    const v = data[i * C + j];
    readout.textContent = `query “${rows[i]}” (${i + 1}) → key “${cols[j]}” (${j + 1}): ${v.toFixed(4)}`;
    readout.dataset.row = i;
    readout.dataset.col = j;
    readout.dataset.value = v;
    draw();
  }

  canvas.addEventListener('pointermove', (e) => {
    const r = canvas.getBoundingClientRect();
    const x = ((e.clientX - r.left) / r.width) * W - labelW, y = ((e.clientY - r.top) / r.height) * H - labelW;
    const i = Math.floor(y / cell), j = Math.floor(x / cell);
    if (i >= 0 && i < R && j >= 0 && j < C && (!sel || sel[0] !== i || sel[1] !== j)) pick(i, j);
  });
  canvas.addEventListener('keydown', (e) => {
    const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1], Home: [-R, -C], End: [R, C] };
    const m = moves[e.key];
    if (!m) return;
    e.preventDefault();
    const [i, j] = sel || [0, 0];
    pick(Math.min(R - 1, Math.max(0, sel ? i + m[0] : 0)), Math.min(C - 1, Math.max(0, sel ? j + m[1] : 0)));
  });
  canvas.addEventListener('focus', () => { if (!sel) pick(0, 0); });
  canvas.addEventListener('click', () => {
    if (sel) fig.dispatchEvent(new CustomEvent('cellpick', { bubbles: true, detail: { row: sel[0], col: sel[1] } }));
  });
  canvas.addEventListener('keydown', (e) => {
    if (sel && e.key === 'Enter') fig.dispatchEvent(new CustomEvent('cellpick', { bubbles: true, detail: { row: sel[0], col: sel[1] } }));
  });

  draw();
  fig.dataset.title = title;
  fig.matrix = { rows: R, cols: C, data: Array.from(data.subarray(0, R * C)) };
  fig.cellCenter = (i, j) => [(labelW + j * cell + cell / 2) / W, (labelW + i * cell + cell / 2) / H];  // fractions, for tests
  return fig;
}
