// The package as web developers use it: installed from `npm pack`'s tarball into
// apps built by Vite (dev server, and `vite build` + `vite preview`), webpack 5
// and esbuild with no configuration, and imported from a second origin as from a
// CDN. Each app (tests/bundlers/main.js) runs both APIs and checks them against
// the float64 reference in the page, in headless Chromium, served with and
// without COOP/COEP: threads where the page is cross-origin isolated, one thread
// and a threadsNote saying why elsewhere, and never an error. Also: no bundler
// warns, no bundle holds a node: import or the build machine's path; a page whose
// CSP forbids workers falls back to one thread; Vitest with jsdom runs the app in
// Node; Vite's ?url imports of dist/ files work; a missing glue says HTTP 404.
// The timings go to the log (about 30 s for the whole file on a 2-core machine).
//
// The apps live in build/bundlers/ (one npm install of the tarball, shared);
// vite, webpack and esbuild are this repository's dev dependencies. Nothing is
// downloaded: npm installs the tarball --offline.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium } from '../scripts/chromium.mjs';
import { buildName, relaxedBuilt } from './builds.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const work = path.join(root, 'build', 'bundlers');
const ISOLATION = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };
const MIME = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };
const timings = {};

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 300000, ...opts });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

async function timed(name, fn) {
  const t = performance.now();
  try {
    return await fn();
  } finally {
    timings[name] = Math.round(performance.now() - t);
  }
}

/**
 * A static server for work/ on loopback (the CDN is reached as localhost, another origin). headers(pathname) gives the extra
 * headers: /coi/... is served cross-origin isolated and /plain/... without, both
 * mapping to the same files, and /coi-noworkers/... isolated with a policy that
 * forbids every Worker; cdn: true serves everything as a CDN does (CORS and
 * Cross-Origin-Resource-Policy: cross-origin, so isolated pages may load it).
 */
function serveStatic({ host, cdn = false }) {
  const server = http.createServer((req, res) => {
    let pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const headers = { 'Cache-Control': 'no-store' };
    if (cdn) Object.assign(headers, { 'Access-Control-Allow-Origin': '*', 'Cross-Origin-Resource-Policy': 'cross-origin' });
    else {
      const m = /^\/(coi|plain|coi-noworkers)(\/.*)$/.exec(pathname);
      if (m) {
        if (m[1] !== 'plain') Object.assign(headers, ISOLATION);
        if (m[1] === 'coi-noworkers') headers['Content-Security-Policy'] = "worker-src 'none'";
        pathname = m[2];
      }
    }
    const file = path.join(work, path.normalize(pathname));
    if (!file.startsWith(work + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404, { ...headers, 'Content-Type': 'text/plain' });
      return res.end('not found');
    }
    res.writeHead(200, { ...headers, 'Content-Type': MIME[path.extname(file)] || 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, host, () => resolve(server)));
}

/** Every .js/.mjs file under dir (a build's output), as { relative path: text }. */
function outputs(dir) {
  const out = {};
  for (const e of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const file = path.join(e.parentPath ?? e.path, e.name);
    if (e.isFile() && /\.m?js$/.test(e.name)) out[path.relative(dir, file)] = fs.readFileSync(file, 'utf8');
  }
  return out;
}

/** What every browser bundle must not hold: Node built-ins, or the build machine's paths. */
function checkBundle(name, dir) {
  const files = outputs(dir);
  assert.ok(Object.keys(files).length > 0, `${name}: no JS output in ${dir}`);
  for (const [f, text] of Object.entries(files)) {
    // (The inlined Emscripten glue is a string, not code: its require("fs") is never seen by a bundler.)
    assert.ok(!/["'`]node:/.test(text), `${name}: ${f} refers to a node: module`);
    assert.ok(!text.includes(root.replace(/\/$/, '')), `${name}: ${f} holds the build machine's path ${root}`);
  }
  return files;
}

// Vite's messages, collected: the package must cause none.
function viteLogger(vite, warnings) {
  const logger = vite.createLogger('warn');
  return { ...logger, warn: (msg) => warnings.push(msg), warnOnce: (msg) => warnings.push(msg), error: (msg) => warnings.push(`error: ${msg}`) };
}

let context, cdn, site, vite;
const servers = [];
const apps = {};  // name -> (isolated) => page URL, or an async function starting a server

before(async () => {
  await timed('pack + install', async () => {
    fs.rmSync(work, { recursive: true, force: true });
    fs.mkdirSync(work, { recursive: true });
    // prepack builds what is missing and writes the inline modules: the report is the last part of stdout.
    const report = sh('npm', ['pack', '--json', '--pack-destination', work], { cwd: root });
    const packed = JSON.parse(report.slice(report.search(/^\[\s*\{/m)))[0];
    fs.writeFileSync(path.join(work, 'package.json'), JSON.stringify({ name: 'bundler-apps', private: true, type: 'module' }));
    sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', `./${packed.filename}`], { cwd: work });
  });
  fs.copyFileSync(path.join(root, 'tests', 'reference.mjs'), path.join(work, 'reference.mjs'));
  for (const app of ['vite', 'vite-url', 'webpack', 'esbuild', 'cdn', 'vitest']) {
    fs.mkdirSync(path.join(work, app));
    fs.copyFileSync(path.join(root, 'tests', 'bundlers', 'main.js'), path.join(work, app, 'main.js'));
  }
  fs.copyFileSync(path.join(root, 'tests', 'bundlers', 'vitest-app.js'), path.join(work, 'vitest', 'mha.test.js'));
  fs.copyFileSync(path.join(root, 'tests', 'bundlers', 'vite-url.js'), path.join(work, 'vite-url', 'main.js'));
  const html = (script) => `<!doctype html><meta charset="utf-8"><title>mha-wasm bundler test</title><link rel="icon" href="data:,">${script}\n`;
  for (const app of ['vite', 'vite-url']) fs.copyFileSync(path.join(root, 'tests', 'bundlers', 'index.html'), path.join(work, app, 'index.html'));
  fs.writeFileSync(path.join(work, 'webpack', 'index.html'), html('<script src="./dist/main.js"></script>'));
  fs.writeFileSync(path.join(work, 'esbuild', 'index.html'), html('<script src="./out/main.js"></script>'));

  vite = await import('vite');
  [context, site, cdn] = await Promise.all([launchChromium(), serveStatic({ host: '127.0.0.1' }), serveStatic({ host: '127.0.0.1', cdn: true })]);
  servers.push(site, cdn);
  // Pages on the site's origin that load the package (or the esbuild app) from the CDN's origin.
  fs.writeFileSync(path.join(work, 'cdn', 'bundle.html'), html(`<script src="http://localhost:${cdn.address().port}/esbuild/out/main.js"></script>`));
  fs.writeFileSync(path.join(work, 'cdn', 'index.html'), html(`<script type="importmap">${JSON.stringify({ imports: {
    'mha-wasm': `http://localhost:${cdn.address().port}/node_modules/mha-wasm/bindings/index.js`,
    'mha-wasm/worker': `http://localhost:${cdn.address().port}/node_modules/mha-wasm/bindings/worker.js`,
  } })}</script><script type="module" src="./main.js"></script>`));
  // bindings/ unbundled from the page's own origin.
  fs.writeFileSync(path.join(work, 'cdn', 'same-origin.html'), html(`<script type="importmap">${JSON.stringify({ imports: {
    'mha-wasm': '../node_modules/mha-wasm/bindings/index.js', 'mha-wasm/worker': '../node_modules/mha-wasm/bindings/worker.js',
  } })}</script><script type="module" src="./main.js"></script>`));
});

after(async () => {
  await context?.close();
  for (const s of servers) s.close();
  if (Object.keys(timings).length) console.log(`bundlers: timings (ms) ${JSON.stringify(timings)}`);
});

/**
 * Opens url, waits for the app's result and returns it with the page's problems
 * (errors, warnings, failed requests). allow: messages expected there.
 */
async function runPage(url, allow = /^$/) {
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if ((m.type() === 'error' || m.type() === 'warning') && !allow.test(m.text())) problems.push(`console.${m.type()}: ${m.text()}`); });
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()} ${r.url()}`); });
  try {
    await page.goto(url);
    const result = await page.waitForFunction(() => window.mhaResult, null, { timeout: 60000 }).then(() => page.evaluate(() => window.mhaResult));
    return { result, problems };
  } finally {
    await page.close();
  }
}

function checkResult(name, isolated, { result, problems }) {
  assert.deepEqual(problems, [], `${name}: the page reported problems`);
  assert.equal(result.error, undefined, `${name}: ${result.error}`);
  assert.equal(result.isolated, isolated, `${name}: crossOriginIsolated`);
  for (const which of ['main', 'worker']) {
    const r = result[which];
    // Chromium runs relaxed SIMD: the relaxed builds, where the package has them.
    if (isolated) assert.deepEqual([r.build, r.threads, r.threadsNote], [buildName(true, relaxedBuilt), 2, null], `${name} ${which}`);
    else {
      assert.deepEqual([r.build, r.threads], [buildName(false, relaxedBuilt), 1], `${name} ${which}`);
      assert.match(r.threadsNote, /not cross-origin isolated/, `${name} ${which}`);
    }
    assert.equal(r.checks, 2 + 1 + 9, `${name} ${which}: checks run`);
    assert.ok(r.maxErr <= 1e-4, `${name} ${which}: max relative error ${r.maxErr} against the float64 reference`);
  }
  timings[`${name}${isolated ? "" : " (no COOP/COEP)"}: init ms main/worker`] = `${Math.round(result.mainLoadMs)}/${Math.round(result.workerLoadMs)}`;
}

const PAGES = [
  ['webpack 5 (production build)', (iso) => `http://127.0.0.1:${site.address().port}/${iso ? 'coi' : 'plain'}/webpack/index.html`],
  ['esbuild (bundle, default format)', (iso) => `http://127.0.0.1:${site.address().port}/${iso ? 'coi' : 'plain'}/esbuild/index.html`],
  ['CDN: bindings/ unbundled from another origin (import map)', (iso) => `http://127.0.0.1:${site.address().port}/${iso ? 'coi' : 'plain'}/cdn/index.html`],
  ['CDN: an esbuild bundle on another origin', (iso) => `http://127.0.0.1:${site.address().port}/${iso ? 'coi' : 'plain'}/cdn/bundle.html`],
];

test('webpack 5, no configuration: builds with no warnings and nothing Node-only', async () => {
  const { default: webpack } = await import('webpack');
  const dir = path.join(work, 'webpack');
  // What `npx webpack` does in dir with no webpack.config.js, but for the entry's name.
  const stats = await timed('webpack build', () => new Promise((resolve, reject) => webpack({ mode: 'production', context: dir, entry: './main.js', output: { path: path.join(dir, 'dist') } },
    (e, s) => (e ? reject(e) : resolve(s)))));
  const info = stats.toJson({ all: false, errors: true, warnings: true });
  assert.deepEqual(info.errors.map((e) => e.message), [], 'webpack errors');
  assert.deepEqual(info.warnings.map((e) => e.message), [], 'webpack warnings');
  checkBundle('webpack', path.join(dir, 'dist'));
});

test('esbuild, no configuration: bundles with no warnings and nothing Node-only', async () => {
  const esbuild = await import('esbuild');
  const dir = path.join(work, 'esbuild');
  const r = await timed('esbuild build', () => esbuild.build({ entryPoints: [path.join(dir, 'main.js')], bundle: true, outdir: path.join(dir, 'out'), logLevel: 'silent' }));
  assert.deepEqual([r.errors, r.warnings], [[], []]);
  checkBundle('esbuild', path.join(dir, 'out'));
});

test('vite build, no configuration: emits everything with no warnings and nothing Node-only', async () => {
  const dir = path.join(work, 'vite');
  const warnings = [];
  await timed('vite build', () => vite.build({ root: dir, configFile: false, logLevel: 'warn', customLogger: viteLogger(vite, warnings) }));
  assert.deepEqual(warnings, [], 'vite build warnings');
  const files = checkBundle('vite build', path.join(dir, 'dist'));
  // The inlined .wasm is gzip-compressed then base64 ("H4sI" is the gzip header's base64).
  assert.ok(Object.values(files).some((t) => t.includes('gzip+base64') && /["'`]H4sI/.test(t)), 'vite build: a chunk holds the inlined .wasm');
});

for (const isolated of [true, false]) {
  const label = isolated ? 'COOP/COEP' : 'no COOP/COEP';
  for (const [name, url] of PAGES) {
    test(`${name}, ${label}: both APIs match the float64 reference`, async () => {
      const out = await timed(`${name}, ${label}`, () => runPage(url(isolated)));
      checkResult(name, isolated, out);
    });
  }
  test(`Vite dev server, ${label}: both APIs match the float64 reference, no warnings`, async () => {
    const warnings = [];
    const server = await vite.createServer({ root: path.join(work, 'vite'), configFile: false, logLevel: 'warn', customLogger: viteLogger(vite, warnings),
      server: { host: '127.0.0.1', port: 0, headers: isolated ? ISOLATION : {} } });
    try {
      await server.listen();
      const url = server.resolvedUrls.local[0];
      const out = await timed(`vite dev, ${label}`, () => runPage(url));
      checkResult('vite dev', isolated, out);
      assert.deepEqual(warnings, [], 'vite dev warnings');
    } finally {
      await server.close();
    }
  });
  test(`vite preview, ${label}: both APIs match the float64 reference`, async () => {
    const warnings = [];
    const server = await vite.preview({ root: path.join(work, 'vite'), configFile: false, logLevel: 'warn', customLogger: viteLogger(vite, warnings),
      preview: { host: '127.0.0.1', port: 0, headers: isolated ? ISOLATION : {} } });
    try {
      const out = await timed(`vite preview, ${label}`, () => runPage(server.resolvedUrls.local[0]));
      checkResult('vite preview', isolated, out);
      assert.deepEqual(warnings, [], 'vite preview warnings');
    } finally {
      await server.close();
    }
  });
}

test('a page that forbids workers (CSP worker-src \'none\'): the threaded build falls back to one thread and says why', async (t) => {
  const site_ = `http://127.0.0.1:${site.address().port}/coi-noworkers`;
  // The esbuild app (pthread workers from blob: URLs) and bindings/ unbundled from the page's origin (a worker script URL).
  for (const url of [`${site_}/esbuild/index.html?main-only`, `${site_}/cdn/same-origin.html?main-only`]) {
    const { result, problems } = await runPage(url, /Content Security Policy/);
    assert.deepEqual(problems, [], url);
    assert.equal(result.error, undefined, `${url}: ${result.error}`);
    assert.equal(result.isolated, true);
    assert.deepEqual([result.main.build, result.main.threads], [buildName(false, relaxedBuilt), 1], url);
    assert.match(result.main.threadsNote, /^single-thread build: its pthread workers could not start/, url);
    t.diagnostic(`${url}: threadsNote ${result.main.threadsNote}`);
    assert.ok(result.main.maxErr <= 1e-4, `${url}: max relative error ${result.main.maxErr}`);
    assert.equal(result.worker, undefined);
  }
});

test('Vitest 4 with jsdom, no configuration: both APIs in Node under jsdom\'s window', async () => {
  const dir = path.join(work, 'vitest');
  const r = await timed('vitest run (jsdom)', () => spawnSync(process.execPath, [path.join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run'],
    { cwd: dir, encoding: 'utf8', timeout: 120000, env: { ...process.env, CI: 'true', NO_COLOR: '1' } }));
  assert.equal(r.status, 0, `vitest failed:\n${r.stdout}\n${r.stderr}`);
  const line = r.stdout.split('\n').find((l) => l.startsWith('MHA_RESULT '));
  assert.ok(line, r.stdout);
  const result = JSON.parse(line.slice('MHA_RESULT '.length));
  for (const which of ['main', 'worker']) {
    const x = result[which];
    assert.deepEqual([x.build, x.threads, x.threadsNote], [buildName(true), 2, null], which);  // Node: threads, whatever jsdom says
    assert.ok(x.maxErr <= 1e-4, `${which}: ${x.maxErr}`);
  }
});

test('Vite, ?url imports of the package\'s dist/ files: the single-thread build from separate files, dev and build + preview', async () => {
  const dir = path.join(work, 'vite-url');
  const warnings = [];
  const opts = { root: dir, configFile: false, logLevel: 'warn', customLogger: viteLogger(vite, warnings) };
  await timed('vite build (?url app)', () => vite.build(opts));
  assert.ok(fs.readdirSync(path.join(dir, 'dist', 'assets')).some((f) => /^mha-wasm-simd-.*\.wasm$/.test(f)), 'the .wasm is emitted as an asset');
  for (const mode of ['dev', 'preview']) {
    const server = mode === 'dev' ? await vite.createServer({ ...opts, server: { host: '127.0.0.1', port: 0 } })
      : await vite.preview({ ...opts, preview: { host: '127.0.0.1', port: 0 } });
    try {
      if (mode === 'dev') await server.listen();
      const { result, problems } = await runPage(server.resolvedUrls.local[0]);
      assert.deepEqual(problems, [], mode);
      assert.equal(result.error, undefined, `${mode}: ${result.error}`);
      assert.deepEqual([result.build, result.out], ['mha-wasm-simd', [5, 6, 7, 8]], mode);
      for (const u of result.urls) assert.match(u, mode === 'dev' ? /\/mha-wasm\/dist\/mha-wasm-simd\.(js|wasm)$/ : /^\/assets\/mha-wasm-simd-[\w-]+\.(js|wasm)$/, mode);
    } finally {
      await server.close();
    }
  }
  assert.deepEqual(warnings, [], 'vite warnings');
});

test('a glue file that is not there: the error names its URL and the HTTP status', async () => {
  const page = await context.newPage();
  try {
    await page.goto(`http://127.0.0.1:${site.address().port}/plain/cdn/same-origin.html?main-only`);
    await page.waitForFunction(() => window.mhaResult);
    const err = await page.evaluate(async () => {
      const { init } = await import('mha-wasm');
      return init({ threads: 1, relaxedSimd: false, urls: { 'mha-wasm-simd.js': '/plain/no-such-glue.js' } }).then(() => 'loaded', (e) => `${e.name}: ${e.message}`);
    });
    assert.match(err, /^Error: mha-wasm: fetching http:\/\/127\.0\.0\.1:\d+\/plain\/no-such-glue\.js failed with HTTP 404/);
  } finally {
    await page.close();
  }
});
