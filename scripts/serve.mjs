// A static server for the demo: web/ at /, the package's bindings/ and dist/
// beside it, and the headers that make the page cross-origin isolated (so the
// threaded build can run). isolated: false leaves them out, to see the fallback.
//
//   node scripts/serve.mjs [--port 8080] [--host 127.0.0.1] [--no-isolation]
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { root } from './setup.mjs';

const MIME = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.wasm': 'application/wasm', '.json': 'application/json', '.svg': 'image/svg+xml',
  '.safetensors': 'application/octet-stream', '.png': 'image/png',
};
// URL prefix -> folder. Everything else is a 404.
const MOUNTS = [['/bindings/', 'bindings'], ['/dist/', 'dist'], ['/', 'web']];

function resolve(pathname, mounts) {
  for (const [prefix, dir] of mounts) {
    if (!pathname.startsWith(prefix)) continue;
    const base = path.join(root, dir);
    const rel = pathname.slice(prefix.length) || 'index.html';
    const file = path.join(base, rel);
    if (file !== base && !file.startsWith(base + path.sep)) return null;  // ../ escapes
    return file;
  }
  return null;
}

/**
 * Starts the server; resolves to the http.Server once listening. port 0 picks a
 * free port. mounts: extra [urlPrefix, folder under the repo] pairs, tried
 * first; memory: { path: Buffer } served from memory (the benchmark's models).
 */
export function serve({ port = 8080, host = '127.0.0.1', isolated = true, log = false, mounts = [], memory = {} } = {}) {
  const all = [...mounts, ...MOUNTS];
  const server = http.createServer((req, res) => {
    const headers = { 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff' };
    if (isolated) Object.assign(headers, {
      'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp', 'Cross-Origin-Resource-Policy': 'same-origin',
    });
    let pathname;
    try {
      pathname = decodeURIComponent(new URL(req.url, 'http://localhost').pathname);
    } catch {
      res.writeHead(400, headers);
      return res.end('bad request');
    }
    if (Object.hasOwn(memory, pathname) && req.method === 'GET') {
      res.writeHead(200, { ...headers, 'Content-Type': MIME[path.extname(pathname)] || 'application/octet-stream' });
      return res.end(memory[pathname]);
    }
    const file = req.method === 'GET' || req.method === 'HEAD' ? resolve(pathname, all) : null;
    fs.stat(file ?? '', (err, st) => {
      if (err || !st.isFile()) {
        if (log) console.log(`404 ${req.method} ${req.url}`);
        res.writeHead(file ? 404 : 405, { ...headers, 'Content-Type': 'text/plain' });
        return res.end(file ? 'not found' : 'method not allowed');
      }
      res.writeHead(200, { ...headers, 'Content-Type': MIME[path.extname(file)] || 'application/octet-stream', 'Content-Length': st.size });
      if (req.method === 'HEAD') return res.end();
      fs.createReadStream(file).pipe(res);
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
