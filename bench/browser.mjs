// `npm run bench:browser`: the same benchmark in headless Chromium, on a page
// served cross-origin isolated. One page per thread group (ORT-web's thread
// count is fixed per page); within a page the contestants are interleaved.
// Prints the table and writes build/bench/results-browser.json.
//
//   npm run bench:browser [-- --shapes S1,S2,S4 --rounds 5 --no-plain]  (the same arguments as npm run bench)
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve } from '../scripts/serve.mjs';
import { launchChromium } from '../scripts/chromium.mjs';
import { args, buildPeak, sizes } from './bench.mjs';
import { QUANT_SHAPES, SHAPES, TWO_THREAD_SHAPES, buildOnnx, macsLine, makeData, quantTable, relaxedTable, table } from './peers.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);
let a;
try {
  a = args(process.argv.slice(2));
} catch (e) {
  console.error(`bench:browser: ${e.message}`);
  process.exit(1);
}
const shapes = SHAPES.filter((s) => a.shapes.includes(s.id));

buildPeak();
const { onnx } = require('onnx-proto');
const memory = {};
for (const s of shapes) {
  memory[`/models/${s.id}.onnx`] = Buffer.from(buildOnnx(onnx, s, makeData(s)));
  // ORT-web's int8 graph, for the int8 and f16 layers of the 1-thread page (--no-quant: none).
  if (a.quant && QUANT_SHAPES.includes(s.id)) memory[`/models/${s.id}-int8.onnx`] = Buffer.from(buildOnnx(onnx, s, makeData(s), 'int8'));
}
const server = await serve({
  port: 0, memory,
  mounts: [['/bench/', 'bench'], ['/web/', 'web'], ['/peak/', 'build/bench'], ['/ort/', 'node_modules/onnxruntime-web/dist'],
    ['/tfjs-core/', 'node_modules/@tensorflow/tfjs-core/dist'], ['/tfjs-wasm/', 'node_modules/@tensorflow/tfjs-backend-wasm/dist']],
});
const context = await launchChromium();
const results = [];
let info = {}, peak = 0, macs = null;
try {
  for (const threads of [1, 2]) {
    const page = await context.newPage();
    if (threads === 1) {
      // The page's main thread's CPU time (ms), for the 1-thread comparisons.
      const cdp = await context.newCDPSession(page);
      await cdp.send('Performance.enable');
      await page.exposeFunction('mhaCpuMs', async () => 1000 * (await cdp.send('Performance.getMetrics')).metrics.find((m) => m.name === 'ThreadTime').value);
    }
    page.on('pageerror', (e) => console.error(`page (${threads} threads): ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') console.error(`page (${threads} threads): ${m.text()}`); });
    await page.goto(`http://127.0.0.1:${server.address().port}/bench/browser/index.html?threads=${threads}`);
    await page.waitForFunction(() => self.benchReady === true, null, { timeout: 120000 });
    info[`t${threads}`] = await page.evaluate(() => self.benchInfo);
    if (!info[`t${threads}`].crossOriginIsolated) throw new Error('the benchmark page is not cross-origin isolated');
    if (threads === 1) peak = await page.evaluate(() => self.peak()), macs = await page.evaluate(() => self.peakMacs());
    for (const s of shapes) {
      if (threads === 2 && !TWO_THREAD_SHAPES.includes(s.id)) continue;
      console.error(`  ${s.id} (${threads} thread${threads > 1 ? 's' : ''})`);
      results.push(...await page.evaluate(([id, o]) => self.runShape(id, o), [s.id, { rounds: a.rounds, plain: a.plain, quant: a.quant }]));
    }
    await page.close();
  }
} finally {
  await context.close();
  server.close();
}
const browser = info.t1.userAgent.match(/(Headless)?Chrome\/[\d.]+/)?.[0] ?? info.t1.userAgent;
fs.mkdirSync(path.join(root, 'build', 'bench'), { recursive: true });
fs.writeFileSync(path.join(root, 'build', 'bench', 'results-browser.json'), JSON.stringify({ info, peak, peakMacs: macs, results, sizes: sizes() }, null, 1));
console.log(`SIMD128 peak probe in the page: ${peak.toFixed(1)} GFLOP/s per core`);
if (macs) console.log(`In the page: ${macsLine(macs)}`);
console.log(`\n${browser}, cross-origin isolated, ${new Date().toISOString().slice(0, 10)}; TF.js wasm uses ${info.t1.tfjsThreads} thread(s) here. Times are medians; "vs X" and every ratio = the median over rounds of X's time / mha-wasm's in that round.`);
console.log(table(results, peak));
const rt = relaxedTable(results);
console.log(rt ? `\nThe relaxed-SIMD build (${info.t1.relaxedBuild}, ${info.t2?.relaxedBuild ?? '–'}) against the SIMD128 build and ORT-web, same pages:\n${rt}` : '\nNo relaxed-SIMD build ran in this browser.');
const qt = quantTable(results);
if (qt) console.log(`\nint8 and f16 weights (MultiHeadAttention weightType; 1 thread, the page's CPU time, medians, same page; the relaxed build's int8 kernel: ${info.t1.int8Dot}), and ORT-web's int8 graph (DynamicQuantizeLinear + MatMulInteger, per-channel int8 weights):\n${qt}`);
const bad = results.filter((r) => !(r.relDiff < (r.tolerance ?? 1e-3)));
if (bad.length) {
  console.error(`outputs disagree with plain JS: ${bad.map((r) => `${r.shape} ${r.contestant} t${r.threads}: ${r.relDiff}`).join('; ')}`);
  process.exit(1);
}
console.log('All outputs agree with the plain-JS layer (max relative difference < 1e-3).');
