// Where the package runs unbundled: Node.js (and Deno, Bun, and Node under
// jsdom, as in Vitest), and pages that import bindings/ as it is (an import
// map, a CDN). Files are found beside this module, in ../dist/.
//
// Bundlers never see this file: package.json's "browser" field puts
// platform-browser.js in its place. The Node built-ins are still imported with
// import() of a variable, which no bundler follows, so a bundle that does
// include this file (Rollup without the browser field, say) builds and runs.
import * as web from './platform-web.js';

/**
 * Node.js or a runtime with its APIs. Not "no window": jsdom (Vitest, Jest)
 * defines window in Node, where the files are still read from disk.
 */
export const isNode = typeof process === 'object' && process !== null && typeof process.versions === 'object' &&
  process.versions !== null && typeof process.versions.node === 'string' && typeof importScripts !== 'function' &&
  !process.browser;

const nodeImport = (name) => import(/* webpackIgnore: true */ /* @vite-ignore */ name);

/** Where the build files are unless init() is told: this package's dist/ folder. */
export const defaultBase = () => new URL('../dist/', import.meta.url);

/** The worker host mha-wasm/worker starts unless told otherwise. */
export const defaultWorker = () => new URL('./worker-host.js', import.meta.url);

/** Built-in sources: only bundles have them (platform-browser.js). */
export const inlineSources = null;

export async function hardwareConcurrency() {
  if (!isNode) return web.hardwareConcurrency();
  const os = await nodeImport('node:os');
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

/** A URL (not a filesystem path) resolved against the page, or for Node paths the working directory. */
export function resolveUrl(s) {
  if (isNode && !/^[a-z][a-z0-9+.-]*:/i.test(s))  // a filesystem path in Node
    return new URL(s, 'file://' + (s.startsWith('/') ? '' : process.cwd() + '/'));
  return new URL(s, web.here() ?? import.meta.url);
}

const isFile = (url) => isNode && url.startsWith('file:');

export async function readWasm(url) {
  if (!isFile(url)) return web.fetchBytes(url);
  const [fs, { fileURLToPath }] = await Promise.all([nodeImport('node:fs/promises'), nodeImport('node:url')]);
  try {
    return new Uint8Array(await fs.readFile(fileURLToPath(url)));
  } catch (e) {
    throw new Error(`mha-wasm: cannot read ${url}: ${e.message}`, { cause: e });
  }
}

/** { factory, script }: see platform-web.js. In Node the glue is required (it is CommonJS). */
export async function loadGlue(build, src) {
  if (src.url === undefined || !isFile(src.url)) {
    if (isNode) throw new Error(`mha-wasm: in Node.js the build files must be files (file: URLs or paths), got ${src.url ?? 'inline sources'}`);
    return web.loadGlue(build, src);
  }
  const [{ createRequire }, { fileURLToPath }] = await Promise.all([nodeImport('node:module'), nodeImport('node:url')]);
  try {
    return { factory: createRequire(import.meta.url)(fileURLToPath(src.url)), script: undefined };
  } catch (e) {
    throw new Error(`mha-wasm: cannot load ${src.url}: ${e.message.split('\n')[0]}`, { cause: e });
  }
}

/** { url, release() } for Emscripten's pthread workers: a filesystem path in Node. */
export async function pthreadWorker(src) {
  if (src.url === undefined || !isFile(src.url)) return web.pthreadWorker(src);
  const { fileURLToPath } = await nodeImport('node:url');
  return { url: fileURLToPath(src.url), release: () => {} };
}

/** Lets Node exit while pool threads sleep (Emscripten 3.1.6 does not unref its workers). */
export function unrefWorkers(mod) {
  if (!isNode || !mod.PThread) return;
  for (const w of [...mod.PThread.unusedWorkers, ...mod.PThread.runningWorkers]) if (w && w.unref) w.unref();
}

/**
 * Starts mha-wasm/worker's worker: a worker_threads Worker in Node (unref'd
 * while idle: see worker.js), else a module Web Worker. Returns { w, on, started }.
 */
export async function startWorker(target, name) {
  if (!isNode) return web.moduleWorker(target, name);
  const { Worker } = await nodeImport('node:worker_threads');
  // No flags from the parent: the worker needs none, Node refuses many in a
  // worker (--max-old-space-size, --expose-gc, --stack-size, --title, ...:
  // ERR_WORKER_INVALID_EXEC_ARGV), and some would break it (--input-type).
  // V8 flags are process-wide, so the worker gets them anyway.
  const w = new Worker(target, { execArgv: [] });
  w.unref();
  return { w, on: (ev, fn) => w.on(ev, ev === 'exit' ? (code) => fn(`it exited with code ${code}`) : fn), started: () => {} };
}

/** The worker host's side of the channel. */
export async function hostPort() {
  if (!isNode) return web.webPort();
  const { parentPort } = await nodeImport('node:worker_threads');
  return { post: (m, t) => parentPort.postMessage(m, t), listen: (fn) => parentPort.on('message', fn), unreadable: (fn) => parentPort.on('messageerror', fn) };
}
