// Runs inside the worker that mha-wasm/worker starts (a module Web Worker, or
// a worker_threads Worker in Node). It owns one runtime and the objects made
// through it, runs each request from the runtime's op table (ops.js, the same
// one the main API runs), answers in order, and sends results back as
// transferables.
import { backendOf } from './api.js';
import { init } from './index.js';
import { INLINE_SOURCES } from './loader.js';
import { CALLS } from './ops.js';
import { hostPort } from './platform.js';

const OPS = ['init', 'create', 'dispose', ...CALLS];

// { post(msg, transfer), listen(fn), unreadable(fn) }: parentPort in Node, self in a Web Worker.
const raw = await hostPort();
// Built-in builds: when the caller's init() has no base URL (a bundle: see
// platform-browser.js), it sends { inline: true } and this host, which may run
// from a blob: URL with nothing beside it, asks it for each build it loads:
// { need: build } -> { sources: build, glue, wasm, worker } or { sources: build, error }.
const asked = new Map();  // build -> [{ resolve, reject }]
const port = {
  post: raw.post,
  unreadable: raw.unreadable,
  listen: (fn) => raw.listen((m) => {
    if (m !== null && typeof m === 'object' && typeof m.sources === 'string' && asked.has(m.sources)) {
      const waiting = asked.get(m.sources);
      asked.delete(m.sources);
      const ok = typeof m.glue === 'string' && m.wasm instanceof Uint8Array;
      const why = typeof m.error === 'string' ? m.error : 'the answer is malformed';
      for (const { resolve, reject } of waiting) {
        if (ok) resolve({ glue: m.glue, wasm: m.wasm, worker: typeof m.worker === 'string' ? m.worker : null });
        else reject(new Error(`mha-wasm/worker: the ${m.sources} build could not be sent to the worker: ${why}`));
      }
      return;
    }
    fn(m);
  }),
};
function askSources(build) {
  return new Promise((resolve, reject) => {
    if (!asked.has(build)) {
      asked.set(build, []);
      port.post({ need: build });
    }
    asked.get(build).push({ resolve, reject });
  });
}

/** init()'s options from the caller's: { inline: true } becomes the request for the builds. */
function initArgs(args) {
  const [o, ...rest] = args;
  if (o === null || typeof o !== 'object' || o.inline !== true) return args;
  const { inline, ...options } = o;
  return [{ ...options, [INLINE_SOURCES]: askSources }, ...rest];
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
    const api = await init(...initArgs(args));
    ops = backendOf(api).ops;
    return { threads: api.threads, features: api.features, build: api.build, threadsNote: api.threadsNote, relaxedSimdNote: api.relaxedSimdNote };
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
