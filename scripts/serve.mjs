// A static server for the demo: web/ at /, the package's bindings/ and dist/
// beside it, and the headers that make the page cross-origin isolated (so the
// threaded build can run). isolated: false leaves them out, to see the fallback.
//
//   node scripts/serve.mjs [--port 8080] [--host 127.0.0.1] [--no-isolation]
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream';
import { root } from './setup.mjs';

const MIME = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.wasm': 'application/wasm', '.json': 'application/json', '.svg': 'image/svg+xml',
  '.safetensors': 'application/octet-stream', '.png': 'image/png',
};
// URL prefix -> folder. Everything else is a 404. Besides the page and the package, the
// built files of mha-wasm/models' two dependencies, which the page's import map names.
export const MOUNTS = [
  ['/bindings/', 'bindings'], ['/dist/', 'dist'],
  ['/node_modules/@huggingface/tokenizers/dist/', 'node_modules/@huggingface/tokenizers/dist'],
  ['/node_modules/@huggingface/jinja/dist/', 'node_modules/@huggingface/jinja/dist'],
  ['/', 'web'],
];

// Limits. A request-target longer than MAX_URL gets 414; the request line and
// headers together beyond MAX_HEADER get 431 from Node's parser (so a URL
// longer than that gets 431 too). Slow clients are cut off by the timeouts.
const MAX_URL = 8 * 1024;
const MAX_HEADER = 16 * 1024;
const HEADERS_TIMEOUT = 10_000, REQUEST_TIMEOUT = 30_000, CHECK_INTERVAL = 5_000;
const STATUS_TEXT = { 400: 'bad request', 403: 'forbidden', 404: 'not found', 405: 'method not allowed', 414: 'URI too long', 500: 'internal server error' };

/**
 * The request-target's path as decoded segments, or an error status. Only
 * origin-form ("/a/b?q") is accepted: not "*", not absolute-form, no empty,
 * "." or ".." segment (raw or percent-encoded), no invalid percent-encoding,
 * and no NUL or other control character, "/", "\" or "#" inside a segment.
 * The query is ignored.
 */
function parseTarget(target) {
  if (target.length > MAX_URL) return 414;
  const q = target.indexOf('?');
  const raw = q < 0 ? target : target.slice(0, q);
  if (!raw.startsWith('/')) return 400;
  const segments = raw.slice(1).split('/');
  for (let i = 0; i < segments.length; i++) {
    let s;
    try {
      s = decodeURIComponent(segments[i]);
    } catch {
      return 400;
    }
    if ((s === '' && i < segments.length - 1) || s === '.' || s === '..' || /[\x00-\x1f\x7f/\\#]/.test(s)) return 400;
    segments[i] = s;
  }
  return segments;
}

/**
 * The file a path names: { file, size, type } for a regular file whose real path
 * (symlinks resolved) is inside the real path of its mount's folder, else
 * { status: 404 } or { status: 403 } (a symlink that leads out of the folder).
 */
async function locate(pathname, mounts) {
  const mount = mounts.find(([prefix]) => pathname.startsWith(prefix));
  if (!mount) return { status: 404 };
  const [prefix, dir] = mount;
  const base = path.join(root, dir);
  const file = path.join(base, pathname.slice(prefix.length) || 'index.html');
  if (file !== base && !file.startsWith(base + path.sep)) return { status: 404 };  // parseTarget already rules this out
  let realBase, real;
  try {
    [realBase, real] = await Promise.all([fsp.realpath(base), fsp.realpath(file)]);
  } catch {
    return { status: 404 };
  }
  if (real !== realBase && !real.startsWith(realBase + path.sep)) return { status: 403 };
  const st = await fsp.stat(real).catch(() => null);
  if (!st?.isFile()) return { status: 404 };
  return { file: real, size: st.size, type: MIME[path.extname(file)] || 'application/octet-stream' };
}

/**
 * Starts the server; resolves to the http.Server once listening. port 0 picks a
 * free port. mounts: extra [urlPrefix, folder under the repo] pairs, tried
 * first; memory: { path: Buffer } served from memory (the benchmark's models).
 * Only GET and HEAD are served; other methods get 405 for what exists. Files
 * are served only from inside the mounted folders, symlinks included.
 */
export function serve({ port = 8080, host = '127.0.0.1', isolated = true, log = false, mounts = [], memory = {} } = {}) {
  const all = [...mounts, ...MOUNTS];
  const headers = { 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff' };
  if (isolated) Object.assign(headers, {
    'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp', 'Cross-Origin-Resource-Policy': 'same-origin',
  });
  const fail = (req, res, status) => {
    if (log) console.log(`${status} ${req.method} ${JSON.stringify(req.url.length > 200 ? `${req.url.slice(0, 200)}...` : req.url)}`);
    res.writeHead(status, { ...headers, 'Content-Type': 'text/plain', ...(status === 405 && { Allow: 'GET, HEAD' }) });
    res.end(STATUS_TEXT[status]);
  };

  async function handle(req, res) {
    const segments = parseTarget(req.url);
    if (typeof segments === 'number') return fail(req, res, segments);
    const pathname = `/${segments.join('/')}`;
    const inMemory = Object.hasOwn(memory, pathname);
    const found = inMemory ? { type: MIME[path.extname(pathname)] || 'application/octet-stream' } : await locate(pathname, all);
    if (found.status) return fail(req, res, found.status);
    if (req.method !== 'GET' && req.method !== 'HEAD') return fail(req, res, 405);
    if (inMemory) {
      const body = memory[pathname];
      res.writeHead(200, { ...headers, 'Content-Type': found.type, 'Content-Length': Buffer.byteLength(body) });
      return res.end(req.method === 'HEAD' ? undefined : body);
    }
    res.writeHead(200, { ...headers, 'Content-Type': found.type, 'Content-Length': found.size });
    if (req.method === 'HEAD') return res.end();
    pipeline(fs.createReadStream(found.file), res, () => {});  // closes the file however the response ends
  }

  const server = http.createServer({
    maxHeaderSize: MAX_HEADER, headersTimeout: HEADERS_TIMEOUT, requestTimeout: REQUEST_TIMEOUT, connectionsCheckingInterval: CHECK_INTERVAL,
  }, (req, res) => {
    handle(req, res).catch((e) => {
      if (res.headersSent) return res.destroy();
      if (log) console.error(e);
      fail(req, res, 500);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e) => reject(e.code === 'EADDRINUSE' ? new Error(`port ${port} on ${host} is in use; pick another with --port N (or PORT=N)`) : e));
    server.listen(port, host, () => resolve(server));
  });
}

export function parseArgs(argv) {
  const opts = { port: Number(process.env.PORT || 8080), host: '127.0.0.1', isolated: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--port') opts.port = Number(argv[++i]);
    else if (a.startsWith('--port=')) opts.port = Number(a.slice(7));
    else if (a === '--host') opts.host = argv[++i];
    else if (a === '--no-isolation') opts.isolated = false;
    else throw new Error(`unknown argument ${a} (expected --port N, --host H, --no-isolation)`);
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new Error(`--port must be 0-65535, got ${opts.port}`);
  return opts;
}

export async function main(argv) {
  const opts = parseArgs(argv);
  const server = await serve({ ...opts, log: true });
  const { port } = server.address();
  console.log(`mha-wasm demo: http://${opts.host}:${port}/  (${opts.isolated ? 'cross-origin isolated: threads available' : 'no COOP/COEP headers: single-thread fallback'}; Ctrl-C stops)`);
  return server;
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  main(process.argv.slice(2)).catch((e) => { console.error(`serve: ${e.message}`); process.exit(1); });
}
