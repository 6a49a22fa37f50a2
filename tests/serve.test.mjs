// scripts/serve.mjs against hostile requests: malformed request-targets,
// traversal, symlinks out of a served folder, oversized URLs and headers. The
// requests go out on raw `net` sockets so nothing normalizes them on the way.
// Each test runs the server in a child process (so a crash shows up as a
// failed check, not a dead test runner), and after every hostile request a
// normal GET must still answer 200 with the cross-origin isolation headers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { serve } from '../scripts/serve.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const serveUrl = pathToFileURL(path.join(root, 'scripts', 'serve.mjs')).href;

// A served folder with symlinks that stay inside and that lead out of it, and
// a mount whose root is itself a symlink; removed in after().
const buildDir = path.join(root, 'build');
const builtBuild = !fs.existsSync(buildDir);
const fixture = path.join(buildDir, `serve-test-${process.pid}`);
const rel = (p) => path.relative(root, path.join(fixture, p));
const SECRET = 'SECRET-OUTSIDE-THE-SERVED-FOLDER';
const MOUNTS = [['/t/', rel('pub')], ['/r/', rel('publink')]];
const MEMORY = { '/mem.txt': 'from memory' };

before(() => {
  fs.mkdirSync(path.join(fixture, 'pub', 'sub'), { recursive: true });
  fs.writeFileSync(path.join(fixture, 'outside.txt'), SECRET);
  fs.writeFileSync(path.join(fixture, 'pub', 'real.txt'), 'inside');
  fs.writeFileSync(path.join(fixture, 'pub', 'sub', 'deep.txt'), 'deep inside');
  const link = (target, name) => fs.symlinkSync(target, path.join(fixture, name));
  link('real.txt', 'pub/link-in');              // inside: served
  link('../real.txt', 'pub/sub/link-up');        // inside, through ..: served
  link('sub', 'pub/dir-in');                     // a folder inside: served
  link('../outside.txt', 'pub/link-out');        // out of the folder
  link('/etc/hostname', 'pub/link-etc');         // absolute, out of the repo
  link(path.join(root, 'package.json'), 'pub/link-pkg');
  link('..', 'pub/dir-out');                     // a folder out of it
  link('pub', 'publink');                        // a mount root that is a symlink
});

after(() => {
  shared?.stop();
  fs.rmSync(fixture, { recursive: true, force: true });
  if (builtBuild) try { fs.rmdirSync(buildDir); } catch {}
});

/** Starts serve() in a child process; resolves to { port, child, stop }. */
function start(opts = {}) {
  const code = `
    const { serve } = await import(${JSON.stringify(serveUrl)});
    const o = JSON.parse(process.env.SERVE_OPTS);
    o.memory = Object.fromEntries(Object.entries(o.memory ?? {}).map(([k, v]) => [k, Buffer.from(v)]));
    const s = await serve({ port: 0, ...o });
    console.log('PORT ' + s.address().port);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
    env: { ...process.env, SERVE_OPTS: JSON.stringify({ mounts: MOUNTS, memory: MEMORY, ...opts }) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '', err = '';
  child.stderr.on('data', (d) => { err += d; });
  const stop = () => { if (child.exitCode === null && child.signalCode === null) child.kill(); };
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      const m = /PORT (\d+)/.exec(out);
      if (m) resolve({ port: Number(m[1]), child, stop, stderr: () => err });
    });
    child.once('exit', (code) => reject(new Error(`server exited (${code}) before listening: ${err}`)));
  });
}

/**
 * Runs fn with a server in a child process: with opts, a fresh one stopped
 * afterwards; without, one shared by the tests, started again if a test left
 * it dead.
 */
let shared;
async function withServer(fn, opts) {
  if (opts) {
    const s = await start(opts);
    try {
      return await fn(s);
    } finally {
      s.stop();
    }
  }
  const ok = shared && shared.child.exitCode === null && (await raw(shared.port, '/').catch(() => ({}))).status === 200;
  if (!ok) {
    shared?.stop();
    shared = await start();
  }
  return fn(shared);
}

/**
 * Sends `${method} ${target} HTTP/1.1` and extra header lines exactly as given;
 * resolves to { status, headers, body } (status 0: closed without an answer).
 */
function raw(port, target, { method = 'GET', headers = '' } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks = [];
    const done = () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const head = (end < 0 ? text : text.slice(0, end)).split('\r\n');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head[0])?.[1] ?? 0);
      const hdrs = Object.fromEntries(head.slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      resolve({ status, headers: hdrs, body: end < 0 ? '' : text.slice(end + 4) });
    };
    sock.setTimeout(2000, () => {
      sock.destroy();
      reject(new Error(`no answer to ${method} ${target.slice(0, 60)}`));
    });
    sock.on('data', (c) => chunks.push(c));
    sock.on('end', done);
    // The server may reset a connection it refuses once it has answered.
    sock.on('error', (e) => (chunks.length ? done() : reject(e)));
    sock.write(`${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${headers}\r\n`, 'latin1');
  });
}

const ISOLATION = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'same-origin',
};

/** The server still runs and still serves a normal GET with the isolation headers. */
async function assertAlive(s, after) {
  assert.equal(s.child.exitCode, null, `the server died after ${after}: ${s.stderr()}`);
  const target = (alive++ % 2) ? '/' : '/bindings/index.js';
  const r = await raw(s.port, target);
  assert.equal(r.status, 200, `GET ${target} after ${after}`);
  for (const [k, v] of Object.entries(ISOLATION)) assert.equal(r.headers[k], v, `${k} on GET ${target} after ${after}`);
}
let alive = 0;

/** Sends each request; checks the status is one of `allowed`, then that the server is alive. */
async function expectEach(s, requests, allowed, check) {
  for (const req of requests) {
    const { target, method = 'GET' } = typeof req === 'string' ? { target: req } : req;
    const what = `${method} ${target.length > 60 ? `${target.slice(0, 60)}... (${target.length} chars)` : target}`;
    let r;
    try {
      r = await raw(s.port, target, { method });
    } catch (e) {
      assert.fail(`${what}: ${e.message}; server ${s.child.exitCode === null ? 'running' : `exited: ${s.stderr()}`}`);
    }
    if (!r.status) await new Promise((ok) => setTimeout(ok, 100));  // let a crash be seen
    const state = s.child.exitCode === null ? '' : ` (the server exited: ${s.stderr().trim().split('\n').slice(0, 6).join(' | ')})`;
    assert.ok(allowed.includes(r.status), `${what} got ${r.status || 'no answer'}, expected ${allowed.join('/')}${state}`);
    check?.(r, what);
    await assertAlive(s, what);
  }
}

test('a NUL byte in the path gets 400 and the server keeps running', () => withServer(async (s) => {
  await expectEach(s, ['/%00', '/bindings/%00x', '/t/real.txt%00.js', '/mem.txt%00'], [400]);
}));

test('invalid percent-encoding gets 400', () => withServer(async (s) => {
  await expectEach(s, ['/%zz', '/%E0%A4%A', '/%', '/bindings/%C0%AFindex.js', '/%FF'], [400]);
}));

test('request-targets that are not a plain absolute path get 400', () => withServer(async (s) => {
  await expectEach(s, [
    '//x', '//bindings/index.js', '/bindings//index.js', 'http://host/path', 'http://host/bindings/index.js',
    '*', 'bindings/index.js', '/x#y', '/a\\b', '/bindings/%5Cindex.js', '/%0a', '/%7F',
  ], [400]);
}));

test('traversal never reaches a file outside and never gets 405, whatever the method', () => withServer(async (s) => {
  const targets = [
    '/bindings/../../package.json', '/../package.json', '/%2e%2e/%2e%2e/etc/passwd', '/..%5c..%5cetc/passwd',
    '/bindings%2f..%2f..%2fpackage.json', '/bindings/%2e%2e/package.json', '/bindings/..%2f..%2fpackage.json',
    '/bindings/.%2e/.%2e/package.json', '/t/../outside.txt', '/t/%2e%2e/outside.txt', '/./index.html', '/bindings/./index.js',
  ];
  const requests = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS'].flatMap((method) => targets.map((target) => ({ target, method })));
  await expectEach(s, requests, [400, 403, 404], (r, what) => {
    assert.ok(!r.body.includes(SECRET) && !r.body.includes('"devDependencies"'), `${what} served a file outside`);
  });
}));

test('symlinks out of a served folder are not followed; ones that stay inside are', () => withServer(async (s) => {
  const outside = ['/t/link-out', '/t/link-etc', '/t/link-pkg', '/t/dir-out/outside.txt', '/r/link-out', '/r/dir-out/outside.txt'];
  await expectEach(s, outside.flatMap((target) => [{ target }, { target, method: 'POST' }]), [403, 404], (r, what) => {
    assert.ok(!r.body.includes(SECRET) && !r.body.includes('"devDependencies"'), `${what} served a file outside`);
  });
  for (const [target, body] of [
    ['/t/real.txt', 'inside'], ['/t/link-in', 'inside'], ['/t/sub/link-up', 'inside'], ['/t/dir-in/deep.txt', 'deep inside'],
    ['/r/real.txt', 'inside'], ['/r/link-in', 'inside'],
  ]) {
    const res = await fetch(`http://127.0.0.1:${s.port}${target}`);
    assert.equal(res.status, 200, `GET ${target}`);
    assert.equal(await res.text(), body, `GET ${target}`);
  }
}));

test('methods: 405 with Allow for files that exist, 404 for ones that do not; HEAD works', () => withServer(async (s) => {
  for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']) {
    for (const target of ['/', '/bindings/index.js', '/mem.txt', '/t/link-in']) {
      const r = await raw(s.port, target, { method });
      assert.equal(r.status, 405, `${method} ${target}`);
      assert.equal(r.headers.allow, 'GET, HEAD', `Allow on ${method} ${target}`);
      await assertAlive(s, `${method} ${target}`);
    }
    assert.equal((await raw(s.port, '/no-such-file.js', { method })).status, 404, `${method} /no-such-file.js`);
  }
  const size = fs.statSync(path.join(root, 'bindings', 'index.js')).size;
  for (const [target, length] of [['/bindings/index.js', size], ['/mem.txt', MEMORY['/mem.txt'].length]]) {
    const r = await raw(s.port, target, { method: 'HEAD' });
    assert.equal(r.status, 200, `HEAD ${target}`);
    assert.equal(Number(r.headers['content-length']), length, `Content-Length on HEAD ${target}`);
    assert.equal(r.body, '', `HEAD ${target} has no body`);
  }
}));

test('a URL longer than 8 KiB gets 414, oversized headers 431, and the server keeps serving', () => withServer(async (s) => {
  const long = (n) => `/bindings/${'a'.repeat(n)}`;
  await expectEach(s, [long(8 * 1024), `/bindings/index.js?${'q'.repeat(9000)}`], [414]);
  // Beyond Node's header limit (16 KiB for request line and headers together).
  await expectEach(s, [long(20 * 1024)], [414, 431]);
  // A URL just under the limit is an ordinary miss.
  assert.equal((await raw(s.port, long(8000))).status, 404);
  for (const headers of [`X-Big: ${'h'.repeat(20 * 1024)}\r\n`, Array.from({ length: 800 }, (_, i) => `X-H${i}: ${'v'.repeat(20)}\r\n`).join('')]) {
    const r = await raw(s.port, '/', { headers });
    assert.equal(r.status, 431, `${headers.length} bytes of headers`);
    await assertAlive(s, `${headers.length} bytes of headers`);
  }
}));

test('the http.Server has bounded header size and header/request timeouts', async () => {
  const server = await serve({ port: 0 });
  try {
    assert.ok(server.maxHeaderSize > 0 && server.maxHeaderSize <= 16 * 1024, `maxHeaderSize ${server.maxHeaderSize}`);
    assert.ok(server.headersTimeout > 0 && server.headersTimeout <= 20_000, `headersTimeout ${server.headersTimeout}`);
    assert.ok(server.requestTimeout > 0 && server.requestTimeout <= 60_000, `requestTimeout ${server.requestTimeout}`);
  } finally {
    server.close();
  }
});

test('good requests: files, index.html, query strings, memory files, isolation headers on and off', async () => {
  await withServer(async (s) => {
    for (const [target, type] of [
      ['/', 'text/html; charset=utf-8'], ['/bindings/index.js', 'text/javascript; charset=utf-8'],
      ['/bindings/index.js?v=1&x=%2F..', 'text/javascript; charset=utf-8'], ['/style.css', 'text/css; charset=utf-8'],
      ['/models/reverse-digits.safetensors', 'application/octet-stream'], ['/mem.txt', 'application/octet-stream'],
    ]) {
      const res = await fetch(`http://127.0.0.1:${s.port}${target}`);
      assert.equal(res.status, 200, `GET ${target}`);
      assert.equal(res.headers.get('content-type'), type, `Content-Type of ${target}`);
      for (const [k, v] of Object.entries(ISOLATION)) assert.equal(res.headers.get(k), v, `${k} on ${target}`);
      await res.arrayBuffer();
    }
    assert.equal(await (await fetch(`http://127.0.0.1:${s.port}/mem.txt`)).text(), 'from memory');
    assert.equal((await fetch(`http://127.0.0.1:${s.port}/no-such-file.js`)).status, 404);
    assert.equal((await fetch(`http://127.0.0.1:${s.port}/bindings/`)).status, 404);
  });
  await withServer(async (s) => {
    const res = await fetch(`http://127.0.0.1:${s.port}/`);
    assert.equal(res.status, 200);
    for (const k of Object.keys(ISOLATION)) assert.equal(res.headers.get(k), null, `${k} without isolation`);
    await res.arrayBuffer();
  }, { isolated: false });
});
