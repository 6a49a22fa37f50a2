// What inlining the builds for bundlers costs (bindings/platform-browser.js):
// the gzipped size of each dist/*.inline.mjs against the separate files it
// replaces, and init() times in headless Chromium for the same unbundled page
// loading the builds both ways (an import map sends bindings/platform.js to
// platform-browser.js for the inline way), cross-origin isolated (threads) and
// not. Not a test: `node tests/bundlers/measure.mjs [rounds]` prints a table.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { BUILDS } from '../../bindings/abi.js';
import { launchChromium } from '../../scripts/chromium.mjs';
import { inlineModules } from '../../scripts/inline-dist.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const rounds = Number(process.argv[2] || 15);
const gz = (buf) => zlib.gzipSync(buf, { level: 9 }).length;
const kb = (n) => `${(n / 1000).toFixed(1)} KB`;

const modules = await inlineModules();
for (const [f, text] of Object.entries(modules)) fs.writeFileSync(path.join(root, 'dist', f), text);  // as npm run build would
console.log('| gzip -9 | separate files | inlined module | difference |\n|---|---|---|---|');
for (const b of Object.values(BUILDS)) {
  const files = [`${b.file}.js`, `${b.file}.wasm`, ...(b.threads ? [`${b.file}.worker.js`] : [])];
  const separate = files.reduce((s, f) => s + gz(fs.readFileSync(path.join(root, 'dist', f))), 0);
  const inline = gz(Buffer.from(modules[`${b.file}.inline.mjs`]));
  console.log(`| ${b.file} (${files.join(' + ')}) | ${kb(separate)} | ${kb(inline)} | +${kb(inline - separate)} (+${Math.round(100 * (inline / separate - 1))}%) |`);
}
// The modules the worker host loads in a browser, as esbuild resolves its imports (package.json's
// "browser" field applies; the builds themselves are given by the page).
const esbuild = await import('esbuild');
const { metafile } = await esbuild.build({
  entryPoints: [path.join(root, 'bindings', 'worker-host.js')], absWorkingDir: root, bundle: true, format: 'esm', platform: 'browser',
  write: false, metafile: true, logLevel: 'silent', external: ['*.inline.mjs', '*/dist/builds.mjs'] });
const hostFiles = Object.keys(metafile.inputs).filter((f) => f.startsWith('bindings/'));
const hostSeparate = hostFiles.reduce((s, f) => s + gz(fs.readFileSync(path.join(root, f))), 0);
console.log(`| worker host (the ${hostFiles.length} bindings/*.js it loads, each gzipped) | ${kb(hostSeparate)} | ${kb(gz(Buffer.from(modules['worker-host.inline.mjs'])))} (minified) | |`);

// The page: bindings/ and dist/ as a CDN or static host serves them.
const page = (inline) => `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,">
<script type="importmap">${JSON.stringify({ imports: { 'mha-wasm': './bindings/index.js', 'mha-wasm/worker': './bindings/worker.js',
  ...(inline && { './bindings/platform.js': './bindings/platform-browser.js' }) } })}</script>
<script type="module">
const t0 = performance.now();
const { init } = await import('mha-wasm');
const mha = await init({ threads: 2 });
const t1 = performance.now();
const w = await (await import('mha-wasm/worker')).init({ threads: 2 });
const t2 = performance.now();
window.r = { main: t1 - t0, worker: t2 - t1, build: mha.build, workerBuild: w.build };
</script>`;
const server = http.createServer((req, res) => {
  const [, mode, rest] = /^\/(coi|plain)(\/.*)$/.exec(req.url.split('?')[0]) || [];
  const headers = { 'Cache-Control': 'no-cache', ...(mode === 'coi' && { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' }) };
  if (rest === '/url.html' || rest === '/inline.html') {
    res.writeHead(200, { ...headers, 'Content-Type': 'text/html' });
    return res.end(page(rest === '/inline.html'));
  }
  const file = rest && path.join(root, path.normalize(rest));
  if (!file || !/^\/(bindings|dist)\//.test(rest) || !fs.existsSync(file)) {
    res.writeHead(404, headers);
    return res.end();
  }
  res.writeHead(200, { ...headers, 'Content-Type': file.endsWith('.wasm') ? 'application/wasm' : 'text/javascript' });
  fs.createReadStream(file).pipe(res);
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const context = await launchChromium();
const times = {};
try {
  for (let i = 0; i < rounds; i++) {
    for (const mode of i % 2 ? ['coi', 'plain'] : ['plain', 'coi']) {
      for (const how of i % 2 ? ['url', 'inline'] : ['inline', 'url']) {
        const p = await context.newPage();
        await p.goto(`http://127.0.0.1:${server.address().port}/${mode}/${how}.html`);
        const r = await p.waitForFunction(() => window.r).then((h) => h.jsonValue());
        await p.close();
        (times[`${mode} ${how}`] ??= { main: [], worker: [], build: r.build }).main.push(r.main);
        times[`${mode} ${how}`].worker.push(r.worker);
      }
    }
  }
} finally {
  await context.close();
  server.close();
}
const median = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];
console.log(`\n| init() in Chromium, median of ${rounds} | build | main API | worker API |\n|---|---|---|---|`);
for (const [k, v] of Object.entries(times)) console.log(`| ${k === 'coi url' || k === 'coi inline' ? 'isolated' : 'not isolated'}, ${k.endsWith('inline') ? 'inlined modules' : 'separate files'} | ${v.build} | ${median(v.main).toFixed(0)} ms | ${median(v.worker).toFixed(0)} ms |`);
