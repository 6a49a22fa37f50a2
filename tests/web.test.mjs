// End to end: the demo page (web/) served by scripts/serve.mjs, in headless
// Chromium. Isolated: the threaded build runs; the playground's maps equal the
// same layer computed in Node (mha-wasm and the float64 reference), and each
// head's name is true of its map; a good and a malformed .safetensors file; one
// benchmark shape; screenshots. The modern options (grouped KV heads, rotary,
// ALiBi, a sliding window, soft-capping) change the maps as they should, and
// "Inside one head" shows the package's numbers. Not isolated: one thread, the
// page says why, and still computes the same maps.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { init, parseSafetensors, safetensorsMetadata } from 'mha-wasm';
import { loadModel, loadTokenizer } from 'mha-wasm/models';
import { serve } from '../scripts/serve.mjs';
import { DigitsModel } from '../web/digits-model.js';
import { PAD, playInput, tokenize } from '../web/model.js';
import { launchChromium, watch } from '../scripts/chromium.mjs';
import { mhaReference, relErr, rng, uniform } from './reference.mjs';
import { modernAttentionReference } from './reference-modern.mjs';
import { f32File } from './safetensors-file.mjs';
import { tinyModel, writeSafetensors } from './models/tiny.mjs';
import { greedyReference, sentenceEmbeddingReference } from './models/reference.mjs';
import { buildName, relaxedBuilt } from './builds.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const shots = path.join(root, 'build', 'screenshots');
let context;
const servers = [];
const temps = [];

before(async () => {
  context = await launchChromium({ viewport: { width: 1280, height: 800 } });
  fs.mkdirSync(shots, { recursive: true });
});
after(async () => {
  await context?.close();
  for (const s of servers) s.close();
  for (const t of temps) fs.rmSync(t, { recursive: true, force: true });
});

async function open(isolated) {
  const server = await serve({ port: 0, isolated });
  servers.push(server);
  const page = await context.newPage();
  const w = watch(page);
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.waitForFunction(() => window.mhaDemo?.runs > 0, null, { timeout: 60000 });
  return { page, w };
}

/** Waits for the playground run that follows an action. */
async function nextRun(page, action) {
  const before = await page.evaluate(() => window.mhaDemo.runs);
  await action();
  await page.waitForFunction((n) => window.mhaDemo.runs > n && !window.mhaDemo.busy, before, { timeout: 30000 });
  assert.equal(await page.isHidden('#play-error'), true, await page.textContent('#play-error'));
  return page.evaluate(() => window.mhaDemo.lastRun);
}

const f32 = (a) => Float32Array.from(a);

/** The layer options the playground's settings stand for (the package's names). */
function optionsOf(s) {
  return {
    embedDim: s.embedDim, numHeads: s.numHeads, numKvHeads: s.numKvHeads ?? s.numHeads, rope: s.rope ? true : null, alibi: !!s.alibi,
    slidingWindow: s.window || null, softcap: s.softcap || null,
  };
}

/** The page's run recomputed in Node: mha-wasm (single-thread build) and the float64 reference. */
async function checkAgainstNode(run) {
  const s = run.settings;
  const batch = s.padding ? [tokenize(s.sentence), tokenize(s.second)] : [tokenize(s.sentence)];
  const x = playInput(batch, s);
  assert.deepEqual(run.tokens, x.tokens);
  assert.deepEqual(run.dims, x.dims);
  assert.ok(relErr(f32(run.input), x.data) <= 1e-6, 'the page built the same inputs');
  const [B, L, E] = x.dims, H = s.numHeads;
  const w = Object.fromEntries(Object.entries(run.weights).map(([k, v]) => [k, f32(v)]));
  const opts = { isCausal: s.causal, needWeights: true, averageWeights: false, ...(s.padding ? { keyPaddingMask: { data: x.padMask, dims: [B, L] } } : {}) };
  const mha = await init({ threads: 1 });
  const layer = new mha.MultiHeadAttention(optionsOf(s));
  layer.setWeights(w);
  const node = layer.forward({ data: x.data, dims: [B, L, E] }, null, null, opts);
  layer.dispose();
  const ref = modernAttentionReference(optionsOf(s), w, B, L, L, x.data, x.data, x.data,
    { ...opts, keyPaddingMask: s.padding ? x.padMask : undefined });
  assert.deepEqual(run.attnDims, [B, H, L, L]);
  const attn = f32(run.attn);
  assert.ok(relErr(attn, node.weights.data) <= 1e-5, `page vs Node mha-wasm: ${relErr(attn, node.weights.data)}`);
  assert.ok(relErr(attn, ref.weights) <= 1e-4, `page vs float64 reference: ${relErr(attn, ref.weights)}`);
  assert.ok(relErr(f32(run.output), ref.output) <= 1e-4);
  // What the page drew: one map per head for the shown batch item, and their mean.
  const b = s.padding ? s.item : 0;
  assert.equal(run.drawn.length, H > 1 ? H + 1 : H);
  for (let h = 0; h < H; h++)
    assert.ok(relErr(f32(run.drawn[h].data), ref.weights.subarray((b * H + h) * L * L, (b * H + h + 1) * L * L)) <= 1e-4, `map of head ${h + 1}`);
  if (H > 1) {
    const mean = new Float64Array(L * L);
    for (let h = 0; h < H; h++) for (let i = 0; i < L * L; i++) mean[i] += ref.weights[(b * H + h) * L * L + i] / H;
    assert.ok(relErr(f32(run.drawn[H].data), mean) <= 1e-4, 'the head-averaged map');
  }
  return { node, ref, L, H, B };
}

/**
 * What a head's name promises, read from the map's title ("Head 3: next token"):
 * for query i of the tokens, the keys that should get most of the weight, or
 * 'even' (equal weights over the keys it sees), or null (no such key).
 */
function promise(title) {
  const m = /^Head \d+: ([a-z0-9 ]+?)(?= ·| brightest|$)/.exec(title);
  assert.ok(m, `a head map's title names what it looks at: ${JSON.stringify(title)}`);
  const name = m[1];
  const far = /^(\d+) tokens (back|ahead)$/.exec(name);
  const ahead = name === 'previous token' ? -1 : name === 'next token' ? 1 : far ? Number(far[1]) * (far[2] === 'back' ? -1 : 1) : null;
  if (name === 'same word') return { name, keys: (tok, i) => tok.flatMap((t, j) => (t === tok[i] ? [j] : [])) };
  if (name === 'all tokens equally') return { name, keys: () => 'even' };
  assert.ok(Number.isInteger(ahead), `a known head name: ${name}`);
  return { name, keys: (tok, i) => (i + ahead >= 0 && i + ahead < tok.length && tok[i + ahead] !== PAD ? [i + ahead] : null) };
}

/**
 * For each drawn head map: the mean, over the non-pad query rows whose promised
 * keys are visible (weight > 0), of the weight on them (for 'even': one minus the
 * total variation distance from equal weights over the keys with weight > 0).
 */
function nameShares(run) {
  const tokens = run.tokens[run.settings.padding ? run.settings.item : 0];
  return run.drawn.filter((d) => d.title.startsWith('Head ')).map((d) => {
    const p = promise(d.title), L = d.rows;
    let sum = 0, rows = 0;
    for (let i = 0; i < L; i++) {
      if (tokens[i] === PAD) continue;
      const row = d.data.slice(i * L, (i + 1) * L), keys = p.keys(tokens, i);
      if (keys === 'even') {
        const seen = row.flatMap((v, j) => (v > 0 && tokens[j] !== PAD ? [v] : []));
        sum += 1 - seen.reduce((a, v) => a + Math.abs(v - 1 / seen.length), 0) / 2;
      } else {
        if (!keys || !keys.some((j) => row[j] > 0)) continue;
        sum += keys.reduce((a, j) => a + row[j], 0);
      }
      rows++;
    }
    return { title: d.title, name: p.name, share: rows ? sum / rows : null, rows };
  });
}

/** Each head puts most of its weight where its name says, and its caption shows that share. */
function checkHeadNames(run, min = 0.5) {
  const shares = nameShares(run);
  assert.equal(shares.length, run.settings.numHeads);
  for (const { title, share } of shares) {
    assert.ok(share !== null, `${title}: some row can see what the name promises`);
    assert.ok(share > min, `${title}: ${(share * 100).toFixed(1)}% of the weight is where the name says, want > ${min * 100}%`);
  }
  for (const { title, share } of shares) {
    const shown = /· (\d+)% (there|even)/.exec(title);
    assert.ok(shown, `${title}: the caption shows the share`);
    assert.ok(Math.abs(Number(shown[1]) - share * 100) <= 0.51, `${title}: the caption's share, ${shown[1]}%, is ${(share * 100).toFixed(1)}%`);
  }
  return shares;
}

test('isolated: threads, playground = Node, safetensors good and bad, benchmark, screenshots', async () => {
  const { page, w } = await open(true);
  assert.equal(await page.evaluate(() => self.crossOriginIsolated), true);
  const build = await page.evaluate(() => window.mhaDemo.build);
  assert.equal(build.build, buildName(true, relaxedBuilt));  // Chromium runs relaxed SIMD
  assert.ok(build.threads > 1);
  assert.equal(build.threadsNote, null);
  assert.match(await page.textContent('#status'), relaxedBuilt ? /mha-wasm-relaxed-threads: WebAssembly relaxed SIMD \+ threads, \d+ threads/
    : /mha-wasm-threads: WebAssembly SIMD128 \+ threads, \d+ threads/);

  // The default run (its head names true of its maps), then causal + padding, set through the controls.
  const first = await page.evaluate(() => window.mhaDemo.lastRun);
  await checkAgainstNode(first);
  checkHeadNames(first);
  await nextRun(page, () => page.fill('#sentence', 'Every head of a transformer looks at the words in its own way'));
  await nextRun(page, () => page.selectOption('#numHeads', '8'));
  await nextRun(page, () => page.check('#causal'));
  await nextRun(page, () => page.check('#padding'));
  const run = await nextRun(page, () => page.selectOption('#item', { value: '1' }));
  assert.equal(run.settings.causal, true);
  assert.equal(run.settings.padding, true);
  assert.equal(run.settings.item, 1);
  assert.equal(run.build, buildName(true, relaxedBuilt));
  const { ref, L, H } = await checkAgainstNode(run);
  assert.ok(run.padMask.some((p) => p === 1), 'the second sentence is padded');
  assert.match(await page.textContent('#play-info'), /forward took [\d.]+ ms .* threads/);

  // One thread, through the threads control: the single-thread build, same maps.
  const one = await nextRun(page, () => page.selectOption('#threads', { value: '1' }));
  assert.equal(one.build, buildName(false, relaxedBuilt));
  await checkAgainstNode(one);
  await nextRun(page, () => page.selectOption('#threads', { value: 'auto' }));

  // Hover a cell of head 2 and read the value the page shows.
  const maps = page.locator('#maps figure');
  assert.equal(await maps.count(), H + 1);
  const [i, j] = [4, 3];
  const frac = await maps.nth(1).evaluate((fig, [i, j]) => fig.cellCenter(i, j), [i, j]);
  await maps.nth(1).locator('canvas').scrollIntoViewIfNeeded();
  const box = await maps.nth(1).locator('canvas').boundingBox();
  await page.mouse.move(box.x + frac[0] * box.width, box.y + frac[1] * box.height);
  const readout = maps.nth(1).locator('.readout');
  await page.waitForFunction((el) => el.dataset.row !== undefined, await readout.elementHandle());
  assert.deepEqual([Number(await readout.getAttribute('data-row')), Number(await readout.getAttribute('data-col'))], [i, j]);
  const want = ref.weights[((1 * H + 1) * L + i) * L + j];
  assert.ok(Math.abs(Number(await readout.getAttribute('data-value')) - want) <= 1e-5);
  assert.ok((await readout.textContent()).includes(want.toFixed(4)));
  // The keyboard reaches the same readout.
  await maps.nth(1).locator('canvas').focus();
  await page.keyboard.press('ArrowRight');
  assert.equal(Number(await readout.getAttribute('data-col')), j + 1);
  // Tabs work from the keyboard.
  await page.focus('#tab-play');
  await page.keyboard.press('ArrowRight');
  assert.equal(await page.getAttribute('#tab-model', 'aria-selected'), 'true');
  await page.keyboard.press('ArrowRight');
  assert.equal(await page.getAttribute('#tab-weights', 'aria-selected'), 'true');
  assert.equal(await page.isVisible('#panel-weights'), true);

  // Your weights: a state dict saved under a prefix, then a malformed file, then a misshapen one, then the good one again.
  const r = rng(77), E = 32, NH = 4, s = 1 / Math.sqrt(E);
  const tw = { in_proj_weight: uniform(r, 3 * E * E, -s, s), in_proj_bias: uniform(r, 3 * E, -s, s), 'out_proj.weight': uniform(r, E * E, -s, s), 'out_proj.bias': uniform(r, E, -s, s) };
  const dims = { in_proj_weight: [3 * E, E], in_proj_bias: [3 * E], 'out_proj.weight': [E, E], 'out_proj.bias': [E] };
  const good = f32File(Object.fromEntries(Object.entries(tw).map(([k, v]) => [`encoder.self_attn.${k}`, { data: v, dims: dims[k] }])), { num_heads: String(NH) });
  const upload = async (name, buffer) => {
    await page.evaluate(() => { window.mhaDemo.lastWeightsRun = null; window.mhaDemo.lastWeightsError = undefined; document.querySelector('#st-error').hidden = true; });
    await page.setInputFiles('#st-file', { name, mimeType: 'application/octet-stream', buffer: Buffer.from(buffer) });
    await page.waitForFunction(() => window.mhaDemo.lastWeightsRun || window.mhaDemo.lastWeightsError || !document.querySelector('#st-error').hidden, null, { timeout: 30000 });
  };
  const checkGood = async () => {
    const wr = await page.evaluate(() => window.mhaDemo.lastWeightsRun);
    assert.ok(wr, await page.textContent('#st-error'));
    assert.deepEqual([wr.E, wr.H, wr.bias], [E, NH, true]);
    const Lw = wr.tokens.length;
    const x = f32(wr.input);
    const wref = mhaReference({ E, H: NH, kdim: E, vdim: E, bias: true },
      { inProjWeight: tw.in_proj_weight, inProjBias: tw.in_proj_bias, outProjWeight: tw['out_proj.weight'], outProjBias: tw['out_proj.bias'] },
      1, Lw, Lw, x, x, x, { needWeights: true, averageWeights: false });
    assert.ok(relErr(f32(wr.attn), wref.weights) <= 1e-4);
    assert.equal(await page.locator('#st-maps figure').count(), NH + 1);
    assert.equal(await page.isHidden('#st-error'), true);
  };
  await upload('mha.safetensors', good);
  await checkGood();
  assert.match(await page.textContent('#st-table'), /encoder\.self_attn\.out_proj\.weight.*\[32, 32\].*out_proj\.weight/s);

  const bad = Buffer.from(good);  // a copy
  bad.writeBigUInt64LE(BigInt(bad.length * 4), 0);  // header length beyond the file
  await upload('truncated.safetensors', bad);
  assert.match(await page.textContent('#st-error'), /RangeError: parseSafetensors: the header length field says \d+ bytes, but only \d+ bytes follow it/);
  assert.equal(await page.locator('#st-maps figure').count(), 0);

  const misshapen = f32File({ ...Object.fromEntries(Object.entries(tw).map(([k, v]) => [k, { data: v, dims: dims[k] }])), in_proj_bias: { data: tw.in_proj_bias.subarray(0, 2 * E), dims: [2 * E] } }, { num_heads: String(NH) });
  await upload('misshapen.safetensors', misshapen);
  assert.match(await page.textContent('#st-error'), /RangeError: setWeights: in_proj_bias must have 96 = \[96\] elements, got 64|in_proj_bias must have dims \[96\], got \[64\]/);

  await upload('mha.safetensors', good);
  await checkGood();
  await page.screenshot({ path: path.join(shots, 'weights-1280.png'), fullPage: true });

  // Benchmark: one shape.
  await page.click('#tab-bench');
  await page.uncheck('#shape-s2');
  await page.uncheck('#shape-s4');
  await page.check('#shape-s1');
  await page.click('#bench-run');
  await page.waitForFunction(() => window.mhaDemo.lastBench || !document.querySelector('#bench-error').hidden, null, { timeout: 180000 });
  assert.equal(await page.isHidden('#bench-error'), true, await page.textContent('#bench-error'));
  const bench = await page.evaluate(() => window.mhaDemo.lastBench);
  assert.deepEqual(bench.map((b) => b.impl), ['plain JavaScript', 'mha-wasm, 1 thread', `mha-wasm, ${build.threads} threads`]);
  for (const b of bench) {
    assert.ok(b.ms > 0 && Number.isFinite(b.gflops) && b.gflops > 0, JSON.stringify(b));
    if (b.diff !== undefined) assert.ok(b.diff < 1e-3);
  }
  assert.equal(await page.locator('#bench-table tbody tr').count(), 3);
  assert.equal(await page.locator('#bench-chart .bar').count(), 3);
  await page.screenshot({ path: path.join(shots, 'bench-1280.png'), fullPage: true });

  await page.click('#tab-play');
  await page.screenshot({ path: path.join(shots, 'playground-1280.png'), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), 'no sideways scrolling on a phone');
  await page.screenshot({ path: path.join(shots, 'playground-390.png'), fullPage: true });
  assert.deepEqual(w.problems(), []);
  await page.close();
});

const maxAbsDiff = (a, b) => {
  assert.equal(a.length, b.length);
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
};
/** Head h's map (batch item b) of a run, as rows of the package's weights. */
const mapOf = (run, h, b = 0) => {
  const [, H, L] = run.attnDims;
  return Array.from({ length: L }, (_, i) => run.attn.slice(((b * H + h) * L + i) * L, ((b * H + h) * L + i + 1) * L));
};

/** "Inside one head" as drawn: per step, its strips' numbers (el.values), their cells' tooltips, and its grids (fig.matrix). */
const drawnSteps = (page) => page.evaluate(() => Object.fromEntries([...document.querySelectorAll('#steps .step')].map((li) => [li.dataset.step, {
  strips: [...li.querySelectorAll('.strip')].map((el) => el.values),
  titles: [...li.querySelectorAll('.strip')].map((el) => [...el.children].map((c) => c.title)),
  grids: [...li.querySelectorAll('figure.grid')].map((f) => f.matrix),
  text: li.textContent,
}])));

/** Picks a token and a head in "Inside one head" through its controls; returns the package's result the page drew. */
async function inspectAt(page, token, head) {
  await page.selectOption('#in-head', String(head));
  await page.selectOption('#in-token', String(token));
  await page.waitForFunction(([t, h]) => {
    const r = window.mhaDemo.lastInspect;
    return r && r.token === t && r.head === h;
  }, [token, head], { timeout: 30000 });
  await page.evaluate(() => window.mhaDemo.inspecting);
  assert.equal(await page.isHidden('#inside-error'), true, await page.textContent('#inside-error'));
  return page.evaluate(() => window.mhaDemo.lastInspect);
}

test('playground options change the maps as they should; "Inside one head" draws the package\'s numbers', async () => {
  const { page, w } = await open(true);
  let run = await page.evaluate(() => window.mhaDemo.lastRun);
  const E = run.settings.embedDim, H = run.settings.numHeads, D = E / H;
  let L = run.dims[1];

  // Inside one head, default settings, token 5 of head 2.
  let ins = await inspectAt(page, 4, 1);
  let steps = await drawnSteps(page);
  const outRow = run.output.slice(4 * E, 5 * E);
  assert.ok(maxAbsDiff(steps.output.strips[0], outRow) <= 1e-5, 'the output step is row 5 of forward()\'s output');
  assert.ok(steps.output.titles[0][3].endsWith(outRow[3].toFixed(4)), `a cell's tooltip shows its value: ${steps.output.titles[0][3]}`);
  assert.ok(maxAbsDiff(steps.softmax.strips[0], mapOf(run, 1)[4]) <= 1e-5, 'the softmax step is row 5 of head 2\'s map');
  assert.ok(maxAbsDiff(steps.concat.strips[0].slice(D, 2 * D), steps.sum.strips[0]) <= 1e-5, 'head 2\'s part of the concatenation is its weighted sum');
  assert.deepEqual(steps.qkv.strips[0], ins.q);
  assert.deepEqual(steps.qkv.grids.map((g) => [g.rows, g.cols]), [[L, D], [L, D]]);
  assert.deepEqual(steps.qkv.grids[0].data, ins.k.data);
  assert.deepEqual(steps.qkv.grids[1].data, ins.v.data);
  for (const k of ['raw', 'scaled', 'softcapped', 'biased', 'masked']) assert.deepEqual(steps[k].strips[0], ins[k], k);
  assert.ok(maxAbsDiff(ins.scaled, ins.raw.map((x) => x / Math.sqrt(D))) <= 1e-5);
  assert.match(steps.qkv.text, /q = WQxi \+ bQ/);
  assert.match(steps.softmax.text, /wj = esj \/ Σk esk/);

  // A click on a cell of head 3's map: the view follows its row and head.
  const maps = page.locator('#maps figure');
  const frac = await maps.nth(2).evaluate((fig) => fig.cellCenter(6, 7));
  await maps.nth(2).locator('canvas').scrollIntoViewIfNeeded();
  const box = await maps.nth(2).locator('canvas').boundingBox();
  await page.mouse.click(box.x + frac[0] * box.width, box.y + frac[1] * box.height);
  await page.waitForFunction(() => window.mhaDemo.lastInspect.head === 2 && window.mhaDemo.lastInspect.token === 6);
  assert.deepEqual([await page.inputValue('#in-head'), await page.inputValue('#in-token')], ['2', '6']);
  await page.evaluate(() => window.mhaDemo.inspecting);
  assert.ok(maxAbsDiff((await drawnSteps(page)).output.strips[0], run.output.slice(6 * E, 7 * E)) <= 1e-5);

  // A sliding window of 3: every weight outside the band |i - j| < 3 is 0, every one inside is not.
  run = await nextRun(page, () => page.selectOption('#window', '3'));
  await checkAgainstNode(run);
  checkHeadNames(run);
  L = run.dims[1];
  for (let h = 0; h < H; h++)
    mapOf(run, h).forEach((row, i) => row.forEach((v, j) => assert.ok(Math.abs(i - j) < 3 ? v > 0 : v === 0, `head ${h + 1} (${i}, ${j}): ${v}`)));
  ins = await inspectAt(page, 5, 0);
  ins.masked.forEach((v, j) => assert.equal(v === -Infinity, Math.abs(5 - j) >= 3, `masked score ${j}: ${v}`));
  assert.match((await drawnSteps(page)).masked.text, /the window hides \|i − j\| ≥ 3/);
  run = await nextRun(page, () => page.selectOption('#window', '0'));

  // ALiBi: head 1 gives every key the same score, so its map is ALiBi alone: weights fall by e^(-1/4) per step of distance.
  run = await nextRun(page, () => page.check('#alibi'));
  await checkAgainstNode(run);
  const uniform = mapOf(run, 0);
  for (let i = 0; i < L; i++)
    for (let j = 0; j < L; j++) assert.ok(Math.abs(Math.log(uniform[i][j] / uniform[i][i]) + Math.abs(i - j) / 4) <= 1e-3, `ALiBi decay at (${i}, ${j})`);
  assert.match(run.drawn[0].title, /ALiBi slope 1\/4/);
  assert.match(run.drawn[3].title, /ALiBi slope 1\/256/);
  ins = await inspectAt(page, 3, 0);
  ins.biased.forEach((v, j) => assert.ok(Math.abs(v - ins.softcapped[j] + Math.abs(3 - j) / 4) <= 1e-5, 'biased = softcapped - slope |i - j|'));
  run = await nextRun(page, () => page.uncheck('#alibi'));

  // Soft-capping at 2: the sharp position heads flatten; scores stay within ±2.
  const peak = (r, h) => mapOf(r, h).reduce((a, row) => a + Math.max(...row), 0) / L;
  const sharp = [peak(run, 1), peak(run, 2)];
  run = await nextRun(page, () => page.selectOption('#softcap', '2'));
  await checkAgainstNode(run);
  const flat = [peak(run, 1), peak(run, 2)];
  for (let k = 0; k < 2; k++) assert.ok(flat[k] < sharp[k] * 0.75, `head ${k + 2}: mean row maximum ${sharp[k]} -> ${flat[k]} with softcap 2`);
  ins = await inspectAt(page, 3, 1);
  ins.softcapped.forEach((v, j) => {
    assert.ok(Math.abs(v) <= 2 + 1e-6);
    assert.ok(Math.abs(v - 2 * Math.tanh(ins.scaled[j] / 2)) <= 1e-5 * Math.max(1, Math.abs(ins.scaled[j])));
  });
  run = await nextRun(page, () => page.selectOption('#softcap', '0'));

  // Grouped KV heads. One KV head: one frame around every head, and heads 1 and 2 read the same keys and values with their own queries.
  run = await nextRun(page, () => page.selectOption('#numKvHeads', '1'));
  await checkAgainstNode(run);
  checkHeadNames(run);
  assert.equal(await page.locator('#maps .kv-group').count(), 1);
  assert.match(await page.locator('#maps .kv-group h3').first().textContent(), /^KV head 1 · keys and values shared by heads 1–4/);
  assert.equal(await page.locator('#maps .kv-group figure').count(), H);
  const a = await inspectAt(page, 3, 0), stepsA = await drawnSteps(page);
  const b = await inspectAt(page, 3, 1), stepsB = await drawnSteps(page);
  assert.deepEqual([a.kvHead, b.kvHead], [0, 0]);
  assert.deepEqual(stepsA.qkv.grids[0].data, stepsB.qkv.grids[0].data, 'the K vectors shown for heads 1 and 2 are equal');
  assert.deepEqual(stepsA.qkv.grids[1].data, stepsB.qkv.grids[1].data, 'so are the V vectors');
  assert.notDeepEqual(stepsA.qkv.strips[0], stepsB.qkv.strips[0], 'their queries differ');
  assert.match(stepsB.qkv.text, /which heads 1, 2, 3, 4 share/);
  // Two: two frames of two heads; heads 2 and 3 now read different keys.
  run = await nextRun(page, () => page.selectOption('#numKvHeads', '2'));
  await checkAgainstNode(run);
  assert.equal(await page.locator('#maps .kv-group').count(), 2);
  assert.deepEqual(await page.locator('#maps .kv-group').evaluateAll((gs) => gs.map((g) => g.querySelectorAll('figure').length)), [2, 2]);
  const k2 = await inspectAt(page, 3, 2);
  assert.equal(k2.kvHead, 1);
  assert.notDeepEqual(k2.k.data, b.k.data);
  assert.match(await page.textContent('#play-info'), new RegExp(`A KV cache would keep ${2 * 2 * D} numbers per token \\(${2 * H * D} without grouping\\)`));

  // Rotary positions: the input carries no position, and the heads still find theirs.
  run = await nextRun(page, () => page.check('#rope'));
  await checkAgainstNode(run);
  checkHeadNames(run);
  for (let t = 0; t < L; t++) assert.ok(run.input.slice(t * E + E / 2, (t + 1) * E).every((v) => v === 0), 'no position in the input');
  ins = await inspectAt(page, 4, 1);
  assert.match((await drawnSteps(page)).qkv.text, /q = RoPEi\(WQxi \+ bQ\)/);

  // Everything at once, with causal masking and a padded batch: the page still equals Node and the float64 reference.
  await nextRun(page, () => page.check('#alibi'));
  await nextRun(page, () => page.selectOption('#window', '4'));
  await nextRun(page, () => page.selectOption('#softcap', '10'));
  await nextRun(page, () => page.check('#causal'));
  await nextRun(page, () => page.check('#padding'));
  run = await nextRun(page, () => page.selectOption('#item', { value: '1' }));
  await checkAgainstNode(run);
  ins = await inspectAt(page, 2, 3);
  assert.equal(ins.batch, 1);
  const Lp = run.dims[1];
  assert.ok(maxAbsDiff((await drawnSteps(page)).output.strips[0], run.output.slice((Lp + 2) * E, (Lp + 3) * E)) <= 1e-5, 'batch item 2, token 3');
  await page.screenshot({ path: path.join(shots, 'playground-options-1280.png'), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), 'no sideways scrolling on a phone');
  assert.deepEqual(w.problems(), []);
  await page.close();
});

test('trained model tab: the answer token by token, and every head of every layer as Node computes it', async () => {
  const { page, w } = await open(true);
  await page.click('#tab-model');
  const waitRun = (n) => page.waitForFunction((n) => window.mhaDemo.model.runs > n || !document.querySelector('#model-error').hidden, n, { timeout: 60000 });
  await waitRun(0);
  assert.equal(await page.isHidden('#model-error'), true, await page.textContent('#model-error'));
  const bytes = fs.readFileSync(path.join(root, 'web/models/reverse-digits.safetensors'));
  const mha = await init({ threads: 1 });
  const model = await DigitsModel.load(mha, parseSafetensors(bytes), safetensorsMetadata(bytes));
  const check = async (digits) => {
    const last = await page.evaluate(() => window.mhaDemo.model.last);
    assert.equal(last.digits, digits);
    const node = await model.generate([...digits].map(Number));
    assert.deepEqual(last.answer, node.answer);
    assert.equal(last.text, [...digits].reverse().join(''), 'the model reverses the digits');
    assert.equal(last.right, true);
    assert.equal(await page.textContent('#model-answer'), `${last.text}.`);
    assert.match(await page.textContent('#model-info'), /^Correct: .* \d+ tokens in \d+ steps/);
    // Every head of every layer, drawn: the maps equal Node's to 1e-5.
    const H = model.config.nhead, N = node.read.length;
    assert.equal(await page.locator('#model-maps figure').count(), model.config.numLayers * H);
    node.maps.forEach((m, l) => assert.ok(relErr(f32(last.maps[l]), m) <= 1e-5, `layer ${l + 1}`));
    const drawn = await page.locator('#model-maps figure').nth(H + 1).evaluate((fig) => fig.matrix);
    assert.deepEqual([drawn.rows, drawn.cols], [N, N]);
    assert.ok(relErr(f32(drawn.data), node.maps[1].subarray(N * N, 2 * N * N)) <= 1e-5, 'layer 2, head 2 as drawn');
  };
  await check('31415926');
  await page.screenshot({ path: path.join(shots, 'model-1280.png'), fullPage: true });
  await page.selectOption('#model-speed', 'instant');
  await page.fill('#digits', '9081726');
  await page.click('#model-run');
  await waitRun(1);
  await check('9081726');
  await page.fill('#digits', '12a');
  await page.click('#model-run');
  await page.waitForSelector('#model-error:not([hidden])');
  assert.match(await page.textContent('#model-error'), /TypeError: type digits only \(0-9\)/);
  model.dispose();
  assert.deepEqual(w.problems(), []);
  await page.close();
});

/**
 * A tiny model's files in the Hugging Face layout (config.json, the safetensors files and
 * their index, tokenizer.json, tokenizer_config.json, and extra: { relative path: JSON })
 * written into a new folder `name` in a temporary directory; returns the folder's path.
 */
function writeModelFolder(m, name, { config = m.config, extra = {} } = {}) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mha-hf-'));
  temps.push(tmp);
  const dir = path.join(tmp, name);
  const write = (rel, data) => {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), typeof data === 'string' || data instanceof Uint8Array ? data : JSON.stringify(data, null, 2));
  };
  write('config.json', config);
  for (const f of m.files) write(f.name, f.bytes);
  if (m.index) write('model.safetensors.index.json', m.index);
  write('tokenizer.json', m.tokenizerJson);
  write('tokenizer_config.json', m.tokenizerConfig);
  for (const [rel, data] of Object.entries(extra)) write(rel, data);
  return dir;
}

/** Runs an action of the "Your model" tab and waits until window.mhaDemo.hf[key] grows, or an error is shown. */
async function hfAction(page, key, action, { error = false } = {}) {
  const [n, errors] = await page.evaluate((k) => [window.mhaDemo.hf[k], window.mhaDemo.hf.errors], key);
  await action();
  await page.waitForFunction(([k, n, e]) => window.mhaDemo.hf[k] > n || window.mhaDemo.hf.errors > e, [key, n, errors], { timeout: 30000 });
  const shown = await page.evaluate(() => [window.mhaDemo.hf.errors, document.querySelector('#hf-error').hidden ? null : document.querySelector('#hf-error').textContent]);
  if (error) {
    assert.equal(shown[0], errors + 1, `an error is shown (${key} ran instead)`);
    return shown[1];
  }
  assert.equal(shown[0], errors, `no error: ${shown[1]}`);
  assert.equal(shown[1], null);
  return null;
}

/** The attention maps the page computed last: { ids, labels, what, maps: [{ data: number[], dims }] per layer }. */
const pageAttention = (page) => page.evaluate(() => {
  const a = window.mhaDemo.hf.attention;
  return a && { ids: a.ids, labels: a.labels, what: a.what, maps: a.maps.map((m) => ({ data: Array.from(m.data), dims: m.dims })) };
});

/** The page's maps equal Node's forward with needWeights on the same ids, layer by layer; the drawn maps equal their blocks. */
async function checkAttention(page, nodeModel, ids, { layer = 0 } = {}) {
  const a = await pageAttention(page);
  assert.deepEqual(a.ids, Array.from(ids));
  const node = nodeModel.forward(Array.from(ids), { needWeights: true });
  assert.equal(a.maps.length, nodeModel.numLayers);
  const H = nodeModel.numHeads, L = ids.length;
  a.maps.forEach((m, l) => {
    assert.deepEqual(m.dims, [1, H, L, L]);
    assert.ok(relErr(f32(m.data), node.attentions[l].data) <= 1e-5, `layer ${l + 1}: ${relErr(f32(m.data), node.attentions[l].data)}`);
  });
  const drawn = await page.locator('#hf-maps figure').evaluateAll((fs) => fs.map((f) => ({ title: f.dataset.title, ...f.matrix })));
  assert.equal(drawn.length, H);
  const n = Math.min(L, 64), r0 = L - n;
  drawn.forEach((d, h) => {
    assert.equal(d.title, `Layer ${layer + 1}, head ${h + 1}`);
    assert.deepEqual([d.rows, d.cols], [n, n]);
    const want = [];
    for (let i = r0; i < L; i++) want.push(...node.attentions[layer].data.subarray((h * L + i) * L + r0, (h * L + i + 1) * L));
    assert.ok(relErr(f32(d.data), want) <= 1e-5, `drawn map of layer ${layer + 1}, head ${h + 1}`);
  });
  return a;
}

/** What loadModel throws in Node for these options, as the page shows it ('Name: message'), or null. */
async function nodeLoadError(mha, options) {
  try {
    (await loadModel(mha, options)).dispose();
    return null;
  } catch (e) {
    return `${e.name}: ${e.message}`;
  }
}

test('your model tab: a tiny Llama from its files generates greedily as the reference does, stops; a tiny BERT folder compares sentences as Node embeds them; attention maps; int8; named errors; nothing fetched', async () => {
  const { page, w } = await open(true);
  const origin = new URL(page.url()).origin, requests = [];
  page.on('request', (r) => requests.push(r.url()));
  await page.click('#tab-hf');
  assert.equal(await page.isVisible('#panel-hf'), true);
  const mha = await init({ threads: 1 });
  const weightsOf = (m) => m.files.map((f) => parseSafetensors(f.bytes));

  // A Llama 3-style model in two shards, chosen as files (config, index, both shards, tokenizer files).
  const m = tinyModel('llama', { seed: 11, shards: 2 });
  const llamaDir = writeModelFolder(m, 'tiny-llama');
  const llamaFiles = ['config.json', 'model.safetensors.index.json', ...m.files.map((f) => f.name), 'tokenizer.json', 'tokenizer_config.json'].map((n) => path.join(llamaDir, n));
  // One shard missing: the page names it.
  const missing = await hfAction(page, 'loads', () => page.setInputFiles('#hf-files', llamaFiles.filter((f) => !f.endsWith(m.files[1].name))), { error: true });
  assert.equal(missing, `Error: model.safetensors.index.json names ${m.files[1].name}, which was not chosen: choose every shard (or the whole folder).`);
  await hfAction(page, 'attentions', () => page.setInputFiles('#hf-files', llamaFiles));
  const model = await loadModel(mha, { config: m.config, weights: weightsOf(m) });
  const tok = await loadTokenizer({ tokenizerJson: m.tokenizerJson, tokenizerConfig: m.tokenizerConfig });
  const loaded = await page.evaluate(() => window.mhaDemo.hf.lastLoad);
  assert.deepEqual([loaded.architecture, loaded.numLayers, loaded.numHeads, loaded.numKvHeads, loaded.isEncoder, loaded.weightType], ['LlamaForCausalLM', 2, 4, 2, false, 'f32']);
  assert.deepEqual(loaded.files, m.files.map((f) => f.name));
  assert.equal(loaded.memoryBytes, model.memoryBytes);
  const memory = await page.evaluate(() => window.mhaDemo.hf.lastMemory);
  assert.ok(memory.wasmMemoryBytes >= memory.memoryBytes);
  assert.match(await page.textContent('#hf-memory'), /the weights take [\d.]+ KiB of wasm memory \(f32\); the worker's wasm heap is [\d.]+ MiB/);
  assert.match(await page.textContent('#hf-info'), /^LlamaForCausalLM from the chosen files: 2 layers, 4 heads sharing 2 KV heads, hidden size 48, vocabulary 301; weights as f32\./);
  assert.equal(await page.isVisible('#hf-chat'), true, 'the tokenizer has a chat template');
  // The prompt's maps, drawn on load.
  await checkAttention(page, model, tok.applyChatTemplate([{ role: 'user', content: 'Once upon a time' }], { addGenerationPrompt: true, tokenize: true }));

  // Greedy generation, streamed: the tokens of the float64 reference's argmax (while its top two logits are apart) and of Node.
  await page.uncheck('#hf-chat');
  await page.fill('#hf-prompt', 'The capital of France is');
  await page.fill('#hf-max', '10');
  await hfAction(page, 'attentions', () => page.click('#hf-run'));
  const gen = await page.evaluate(() => window.mhaDemo.hf.lastGeneration);
  const ids = tok.encode('The capital of France is');
  assert.deepEqual(gen.promptIds, ids);
  const ref = greedyReference({ config: m.config, tensors: m.tensors, prompts: ids, maxNewTokens: 10 });
  const node = [];
  for await (const t of model.generate(ids, { maxNewTokens: 10 })) node.push(t);
  assert.equal(gen.tokens.length, ref.tokens[0].length);
  for (let s = 0; s < ref.steps.length && ref.margins[s][0] > 1e-3; s++) {
    assert.equal(gen.tokens[s], ref.steps[s][0], `step ${s} equals the reference`);
    assert.equal(gen.tokens[s], node[s], `step ${s} equals Node`);
  }
  assert.ok(ref.margins[0][0] > 1e-3, 'the first step at least is decided');
  const decode = (t) => tok.decode(t, { skipSpecialTokens: true });
  const text = decode([...ids, ...gen.tokens]).slice(decode(ids).length);
  assert.equal(gen.text, text);
  assert.equal(await page.textContent('#hf-output .gen'), text);
  assert.equal(await page.textContent('#hf-output .prompt'), decode(ids));
  assert.match(await page.textContent('#hf-speed'), new RegExp(`^${gen.tokens.length} new tokens?: the prompt's ${ids.length} tokens were read and the first token chosen in [\\d.]+ ms, then [\\d.]+ tokens/s`));
  // Its attention maps: the prompt and the generated tokens, every layer; then layer 2 through the selector.
  await checkAttention(page, model, [...ids, ...gen.tokens]);
  await page.selectOption('#hf-layer', '1');
  await checkAttention(page, model, [...ids, ...gen.tokens], { layer: 1 });

  // Stop: as a chat message, up to 200 tokens; the stop button is pressed when the first token shows.
  await page.check('#hf-chat');
  await page.fill('#hf-max', '200');
  await page.evaluate(() => {
    const out = document.querySelector('#hf-output');
    const mo = new MutationObserver(() => {
      if (Number(out.dataset.tokens) >= 1) {
        document.querySelector('#hf-stop').click();
        mo.disconnect();
      }
    });
    mo.observe(out, { attributes: true, attributeFilter: ['data-tokens'] });
  });
  await hfAction(page, 'attentions', () => page.click('#hf-run'));
  const stopped = await page.evaluate(() => window.mhaDemo.hf.lastGeneration);
  const chatIds = tok.applyChatTemplate([{ role: 'user', content: 'The capital of France is' }], { addGenerationPrompt: true, tokenize: true });
  assert.deepEqual(stopped.promptIds, chatIds);
  assert.equal(stopped.stopped, true);
  assert.ok(stopped.tokens.length >= 1 && stopped.tokens.length <= 3, `stopped after ${stopped.tokens.length} tokens`);
  assert.match(await page.textContent('#hf-speed'), /Stopped\.$/);
  assert.equal(await page.isDisabled('#hf-stop'), true);

  // A kept conversation: each turn's prompt is every turn so far through the chat template, the
  // earlier turns' tokens taken from the KV cache (one new token a turn: each prompt extends the
  // cache exactly); the answers are the float64 reference's.
  assert.equal(await page.isVisible('#hf-keep'), true, 'offered with the chat template');
  await page.check('#hf-keep');
  await page.fill('#hf-max', '1');
  const talk = [];
  let before = 0;
  for (const [i, turn] of ['Hello there', 'And the cat?', 'Thanks'].entries()) {
    await page.fill('#hf-prompt', turn);
    await hfAction(page, 'attentions', () => page.click('#hf-run'));
    const g = await page.evaluate(() => window.mhaDemo.hf.lastGeneration);
    talk.push({ role: 'user', content: turn });
    const all = tok.applyChatTemplate(talk, { addGenerationPrompt: true, tokenize: true });
    assert.deepEqual(g.promptIds, all, `turn ${i + 1}'s prompt: the whole conversation`);
    assert.equal(g.fromCache, before, `turn ${i + 1}: the earlier turns' tokens from the cache`);
    const r = greedyReference({ config: m.config, tensors: m.tensors, prompts: all, maxNewTokens: 1 });
    if (r.margins[0][0] > 1e-3) assert.deepEqual(g.tokens, r.tokens[0], `turn ${i + 1}'s answer`);
    assert.match(await page.textContent('#hf-speed'), new RegExp(`Turn ${i + 1} of the conversation: ${before} of the prompt's tokens came from the KV cache\\.$`));
    talk.push({ role: 'assistant', content: g.text });
    before = all.length;
  }
  // Unchecked: the conversation ends; Generate is a single turn again.
  await page.uncheck('#hf-keep');
  await hfAction(page, 'attentions', () => page.click('#hf-run'));
  const single = await page.evaluate(() => window.mhaDemo.hf.lastGeneration);
  assert.deepEqual(single.promptIds, tok.applyChatTemplate([{ role: 'user', content: 'Thanks' }], { addGenerationPrompt: true, tokenize: true }));
  assert.equal(single.fromCache, 0);
  await page.screenshot({ path: path.join(shots, 'your-model-1280.png'), fullPage: true });

  // int8 on load: the page does what loadModel does in Node (loads, or shows its refusal as-is).
  const int8Error = await nodeLoadError(mha, { config: m.config, weights: weightsOf(m), weightType: 'int8' });
  if (int8Error) {
    const shown = await hfAction(page, 'loads', () => page.check('#hf-int8'), { error: true });
    assert.equal(shown, int8Error);
    assert.equal(await page.isHidden('#hf-gen'), true, 'no model is loaded');
  } else {
    await hfAction(page, 'attentions', () => page.check('#hf-int8'));
    const q = await page.evaluate(() => window.mhaDemo.hf.lastLoad);
    const nodeQ = await loadModel(mha, { config: m.config, weights: weightsOf(m), weightType: 'int8' });
    assert.equal(q.weightType, 'int8');
    assert.match(await page.textContent('#hf-info'), new RegExp(`; weights as int8 \\(kernel ${q.int8Dot}\\)\\. `));
    // The page's int8 kernel may be the relaxed dot (Chromium with AVX-VNNI), whose panels also hold
    // 4 bytes of column sums per column and 512-deep pass; this Node.js runs dot_i16x8.
    if (q.int8Dot === mha.features.int8Dot) assert.equal(q.memoryBytes, nodeQ.memoryBytes);
    else assert.ok(q.int8Dot === 'relaxed_dot_i8x16_i7x16' && q.memoryBytes > nodeQ.memoryBytes && q.memoryBytes < nodeQ.memoryBytes * 1.1, `${q.memoryBytes} vs ${nodeQ.memoryBytes}`);
    assert.ok(q.memoryBytes < model.memoryBytes);
    nodeQ.dispose();
  }
  await hfAction(page, 'attentions', () => page.uncheck('#hf-int8'));
  assert.equal((await page.evaluate(() => window.mhaDemo.hf.lastLoad)).weightType, 'f32');

  // A config the loader refuses: its error, as it words it.
  const badConfig = { ...m.config, rope_scaling: { rope_type: 'longrope', factor: 2 } };
  const refusal = await nodeLoadError(mha, { config: badConfig, weights: weightsOf(m) });
  assert.ok(refusal, 'loadModel refuses the config');
  const shown = await hfAction(page, 'loads', () => page.setInputFiles('#hf-folder', writeModelFolder(m, 'bad-llama', { config: badConfig })), { error: true });
  assert.equal(shown, refusal);
  assert.equal(await page.isHidden('#hf-gen'), true);
  model.dispose();

  // A sentence-transformers BERT folder (with 1_Pooling/config.json asking for the CLS token): its sentences' similarities.
  const b = tinyModel('bert', { seed: 2 });
  const pooling = { word_embedding_dimension: 32, pooling_mode_cls_token: true, pooling_mode_mean_tokens: false, pooling_mode_max_tokens: false };
  await hfAction(page, 'attentions', () => page.setInputFiles('#hf-folder', writeModelFolder(b, 'tiny-bert', { extra: { '1_Pooling/config.json': pooling } })));
  const bert = await loadModel(mha, { config: b.config, weights: weightsOf(b) });
  const btok = await loadTokenizer({ tokenizerJson: b.tokenizerJson, tokenizerConfig: b.tokenizerConfig });
  assert.equal(await page.isHidden('#hf-gen'), true);
  const checkEmbed = async () => {
    const e = await page.evaluate(() => window.mhaDemo.hf.lastEmbed);
    assert.equal(e.pooling, 'cls');
    const rows = e.sentences.map((s) => btok.encode(s));
    assert.deepEqual(e.ids, rows);
    const B = rows.length, L = Math.max(...rows.map((r) => r.length)), E = bert.hiddenSize;
    const nodeEmb = bert.embed(rows, { pooling: 'cls', normalize: true });
    const data = new Int32Array(B * L), mask = new Int32Array(B * L);
    rows.forEach((r, i) => { data.set(r, i * L); mask.fill(1, i * L, i * L + r.length); });
    const refEmb = sentenceEmbeddingReference({ config: b.config, tensors: b.tensors, ids: { data, dims: [B, L] }, attentionMask: { data: mask, dims: [B, L] }, pooling: 'cls', normalize: true });
    const cos = (v, i, j) => { let s = 0; for (let k = 0; k < E; k++) s += v[i * E + k] * v[j * E + k]; return s; };
    const want = (v) => Array.from({ length: B * B }, (_, ij) => cos(v, Math.floor(ij / B), ij % B));
    assert.ok(relErr(f32(e.cosines), want(nodeEmb.data)) <= 1e-5, 'the page\'s similarities = Node\'s embed');
    assert.ok(relErr(f32(e.cosines), want(refEmb.data)) <= 1e-4, 'and the float64 reference\'s');
    const cells = await page.locator('#hf-sim tbody td').evaluateAll((tds) => tds.map((td) => td.textContent));
    assert.deepEqual(cells, e.cosines.map((c) => c.toFixed(3)));
    for (let i = 0; i < B; i++) assert.equal(cells[i * B + i], '1.000');
    return { e, rows };
  };
  let { rows } = await checkEmbed();
  assert.equal(rows.length, 4);
  await checkAttention(page, bert, rows[0]);
  await page.fill('#hf-sentences', 'The cat sat on the mat.\n\nA dog slept on the rug.\nStocks fell.');
  await hfAction(page, 'attentions', () => page.click('#hf-embed'));
  ({ rows } = await checkEmbed());
  assert.equal(rows.length, 3);
  await hfAction(page, 'attentions', () => page.selectOption('#hf-att-sentence', '1'));
  await checkAttention(page, bert, rows[1]);
  await page.screenshot({ path: path.join(shots, 'your-model-bert-1280.png'), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), 'no sideways scrolling on a phone');
  await page.setViewportSize({ width: 1280, height: 800 });
  // A sentence longer than the model's positions: named, before anything runs.
  await page.fill('#hf-sentences', `Short one.\n${'word '.repeat(b.config.max_position_embeddings)}`);
  const tooLong = await hfAction(page, 'embeds', () => page.click('#hf-embed'), { error: true });
  assert.match(tooLong, new RegExp(`^RangeError: Sentence 2 is \\d+ tokens long; this model reads at most ${b.config.max_position_embeddings}: shorten it\\.$`));
  await page.fill('#hf-sentences', 'The cat sat on the mat.\nA dog slept on the rug.');
  bert.dispose();

  // The next BERT has no 1_Pooling: the page's default (mean) again, not the last model's CLS.
  await hfAction(page, 'attentions', () => page.setInputFiles('#hf-folder', writeModelFolder(tinyModel('bert', { seed: 3 }), 'tiny-bert-2')));
  assert.equal(await page.inputValue('#hf-pooling'), 'mean');
  assert.equal((await page.evaluate(() => window.mhaDemo.hf.lastEmbed)).pooling, 'mean');
  // A language model after it: the encoder's sentence selector goes.
  await hfAction(page, 'attentions', () => page.setInputFiles('#hf-files', llamaFiles));
  assert.equal(await page.isHidden('#hf-att-sentence-field'), true, 'no sentence selector for a decoder');
  // Weights holding NaN: the maps draw (NaN cells grey) and generate's refusal is shown, with no stale status line.
  const nanModel = { ...m, files: [{ name: 'model.safetensors', bytes: writeSafetensors(Object.fromEntries(Object.entries(m.tensors).map(([k, t]) => [k, /layers\.0\.self_attn\.q_proj\.weight$/.test(k) ? { ...t, data: t.data.map(() => NaN) } : t]))) }], index: null };
  await hfAction(page, 'attentions', () => page.setInputFiles('#hf-folder', writeModelFolder(nanModel, 'nan-llama')));
  assert.ok((await pageAttention(page)).maps[0].data.every(Number.isNaN), 'the NaN model\'s maps are NaN');
  const nanError = await hfAction(page, 'generations', () => page.click('#hf-run'), { error: true });
  assert.match(nanError, /^RangeError: generate: step 0: the logits hold NaN/);
  assert.equal(await page.textContent('#hf-speed'), '', 'the status line does not say the prompt is still being read');

  await page.click('#hf-unload');
  await page.waitForFunction(() => document.querySelector('#hf-info').textContent.startsWith('Unloaded'));
  assert.equal(await page.isHidden('#hf-emb'), true);
  assert.equal(await page.isHidden('#hf-att'), true);
  assert.equal(await page.isHidden('#hf-att-sentence-field'), true);
  // The model links are there; nothing was fetched from anywhere but this server.
  assert.equal(await page.locator('#panel-hf table.models a[href^="https://huggingface.co/"]').count(), 6);
  assert.deepEqual(requests.filter((u) => !u.startsWith(`${origin}/`) && !/^(data|blob):/.test(u)), []);
  assert.deepEqual(w.problems(), []);
  await page.close();
});

test('not isolated: one thread, the page says why, and the maps are still right', async () => {
  const { page, w } = await open(false);
  assert.equal(await page.evaluate(() => self.crossOriginIsolated), false);
  const build = await page.evaluate(() => window.mhaDemo.build);
  assert.equal(build.build, buildName(false, relaxedBuilt));
  assert.equal(build.threads, 1);
  assert.match(await page.textContent('#status'), /single thread\. Threads are off: .*not cross-origin isolated/);
  const run = await nextRun(page, () => page.check('#causal'));
  assert.equal(run.build, buildName(false, relaxedBuilt));
  await checkAgainstNode(run);
  // A wrong file location: an HTML page served where the .wasm should be gives an error naming that URL.
  const err = await page.evaluate(async () => {
    const { init } = await import('mha-wasm/worker');
    return init({ threads: 1, relaxedSimd: false, urls: { 'mha-wasm-simd.wasm': '/index.html' } }).then(() => 'loaded', (e) => `${e.name}: ${e.message}`);
  });
  assert.match(err, /^Error: mha-wasm: http:\/\/127\.0\.0\.1:\d+\/index\.html is not a WebAssembly module \(it starts with "<!doctype html>/);
  await page.screenshot({ path: path.join(shots, 'fallback-1280.png'), fullPage: false });
  assert.deepEqual(w.problems(), []);
  await page.close();
});
