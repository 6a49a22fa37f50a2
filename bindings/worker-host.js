// Runs inside the worker that mha-wasm/worker starts (a module Web Worker, or
// a worker_threads Worker in Node). It owns one runtime and the objects made
// through it, runs each request from the runtime's op table (ops.js, the same
// one the main API runs), answers in order, and sends results back as
// transferables.
import { backendOf } from './api.js';
import { init } from './index.js';
import { CALLS } from './ops.js';

const OPS = ['init', 'create', 'dispose', ...CALLS];

let port;  // { post(msg, transfer), listen(fn), unreadable(fn) }
if (typeof process === 'object' && process.versions && process.versions.node && typeof importScripts !== 'function') {
  const { parentPort } = await import('node:worker_threads');
  port = { post: (m, t) => parentPort.postMessage(m, t), listen: (fn) => parentPort.on('message', fn), unreadable: (fn) => parentPort.on('messageerror', fn) };
} else {
  port = { post: (m, t) => self.postMessage(m, t), listen: (fn) => self.addEventListener('message', (e) => fn(e.data)), unreadable: (fn) => self.addEventListener('messageerror', fn) };
}

let ops = null;  // the runtime's op table, once loaded

/** The ArrayBuffers of the typed arrays in a result, each once (a SharedArrayBuffer cannot be transferred). */
function buffersOf(value, out = new Set()) {
  if (value === null || typeof value !== 'object') return out;
  if (ArrayBuffer.isView(value)) {
    if (value.buffer instanceof ArrayBuffer) out.add(value.buffer);
  } else {
    for (const v of Object.values(value)) buffersOf(v, out);
  }
  return out;
}

async function run(op, args) {
  if (op === 'init') {
    const api = await init(...args);
    ops = backendOf(api).ops;
    return { threads: api.threads, features: api.features, build: api.build, threadsNote: api.threadsNote };
  }
  if (ops === null) throw new Error('mha-wasm/worker: the runtime is not loaded');
  if (op === 'create') return ops.create(...args);
  if (op === 'dispose') return ops.dispose(...args);
  return ops.call(op, args);
}

// Only the error's class and message cross back, as strings; the caller rebuilds it.
function errorInfo(e) {
  try {
    return e instanceof Error ? { name: String(e.name), message: String(e.message) } : { name: 'Error', message: String(e) };
  } catch {
    return { name: 'Error', message: 'mha-wasm/worker: an error that cannot be described' };
  }
}

/** Answers a request with an error; the answer is plain strings, so it can always be sent. */
function fail(id, e) {
  port.post({ id, ok: false, error: errorInfo(e) });
}

/** Runs one request and answers it; never throws, so the queue goes on. */
async function handle(msg) {
  const id = msg !== null && typeof msg === 'object' ? msg.id : undefined;
  if (typeof id !== 'number') return;  // not a request (no id to answer): ignored
  let value;
  try {
    const { op, args } = msg;
    if (typeof op !== 'string' || !OPS.includes(op)) throw new TypeError(`mha-wasm/worker: unknown operation ${JSON.stringify(String(op))}`);
    if (!Array.isArray(args)) throw new TypeError(`mha-wasm/worker: the arguments of ${op} must be an array`);
    value = await run(op, args);
  } catch (e) {
    return fail(id, e);
  }
  try {
    port.post({ id, ok: true, value }, [...buffersOf(value)]);
  } catch (e) {
    fail(id, new Error(`mha-wasm/worker: the result cannot be sent back (${errorInfo(e).message})`));
  }
}

let queue = Promise.resolve();  // one request at a time, in the order sent
let lastId = 0;  // the id of the last request received
port.listen((msg) => {
  if (msg !== null && typeof msg === 'object' && typeof msg.id === 'number') lastId = msg.id;
  queue = queue.then(() => handle(msg)).catch(() => {});
});
// A request that could not be deserialized here (its id is lost with it): the
// caller rejects the first request it sent after lastId.
port.unreadable(() => port.post({ unreadable: true, after: lastId }));
port.post({ ready: true });
