// End to end: the demo page (web/) served by scripts/serve.mjs, in headless
// Chromium. Isolated: the threaded build runs; the playground's maps equal the
// same layer computed in Node (mha-wasm and the float64 reference); a good and
// a malformed .safetensors file; one benchmark shape; screenshots. Not
// isolated: one thread, the page says why, and still computes the same maps.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { init, parseSafetensors, safetensorsMetadata } from 'mha-wasm';
import { serve } from '../scripts/serve.mjs';
import { DigitsModel } from '../web/digits-model.js';
import { embedBatch, tokenize } from '../web/model.js';
import { launchChromium, watch } from '../scripts/chromium.mjs';
import { mhaReference, relErr, rng, uniform } from './reference.mjs';
import { f32File } from './safetensors-file.mjs';
import { buildName, relaxedBuilt } from './builds.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const shots = path.join(root, 'build', 'screenshots');
let context;
const servers = [];

before(async () => {
  context = await launchChromium({ viewport: { width: 1280, height: 800 } });
  fs.mkdirSync(shots, { recursive: true });
});
after(async () => {
  await context?.close();
  for (const s of servers) s.close();
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

/** The page's run recomputed in Node: mha-wasm (single-thread build) and the float64 reference. */
async function checkAgainstNode(run) {
  const s = run.settings;
  const batch = s.padding ? [tokenize(s.sentence), tokenize(s.second)] : [tokenize(s.sentence)];
  const x = embedBatch(batch, s.embedDim);
  assert.deepEqual(run.tokens, x.tokens);
  assert.deepEqual(run.dims, x.dims);
  assert.ok(relErr(f32(run.input), x.data) <= 1e-6, 'the page built the same inputs');
  const [B, L, E] = x.dims, H = s.numHeads;
  const w = Object.fromEntries(Object.entries(run.weights).map(([k, v]) => [k, f32(v)]));
  const opts = { isCausal: s.causal, needWeights: true, averageWeights: false, ...(s.padding ? { keyPaddingMask: { data: x.padMask, dims: [B, L] } } : {}) };
  const mha = await init({ threads: 1 });
  const layer = new mha.MultiHeadAttention({ embedDim: E, numHeads: H });
  layer.setWeights(w);
  const node = layer.forward({ data: x.data, dims: [B, L, E] }, null, null, opts);
  layer.dispose();
  const ref = mhaReference({ E, H, kdim: E, vdim: E, bias: true }, w, B, L, L, x.data, x.data, x.data,
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

test('isolated: threads, playground = Node, safetensors good and bad, benchmark, screenshots', async () => {
  const { page, w } = await open(true);
  assert.equal(await page.evaluate(() => self.crossOriginIsolated), true);
  const build = await page.evaluate(() => window.mhaDemo.build);
  assert.equal(build.build, buildName(true, relaxedBuilt));  // Chromium runs relaxed SIMD
  assert.ok(build.threads > 1);
  assert.equal(build.threadsNote, null);
  assert.match(await page.textContent('#status'), relaxedBuilt ? /mha-wasm-relaxed-threads: WebAssembly relaxed SIMD \+ threads, \d+ threads/
    : /mha-wasm-threads: WebAssembly SIMD128 \+ threads, \d+ threads/);

  // The default run, then causal + padding, set through the controls.
  await checkAgainstNode(await page.evaluate(() => window.mhaDemo.lastRun));
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
