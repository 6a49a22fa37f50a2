// Runs inside the worker that mha-wasm/worker starts (a module Web Worker, or
// a worker_threads Worker in Node). It owns one runtime and the layers made
// through it, answers each request in order, and sends results back as
// transferables.
import { init } from './index.js';

let port;  // { post(msg, transfer), listen(fn), unreadable(fn) }
if (typeof process === 'object' && process.versions && process.versions.node && typeof importScripts !== 'function') {
  const { parentPort } = await import('node:worker_threads');
  port = { post: (m, t) => parentPort.postMessage(m, t), listen: (fn) => parentPort.on('message', fn), unreadable: (fn) => parentPort.on('messageerror', fn) };
} else {
  port = { post: (m, t) => self.postMessage(m, t), listen: (fn) => self.addEventListener('message', (e) => fn(e.data)), unreadable: (fn) => self.addEventListener('messageerror', fn) };
}

let api = null;
const objects = new Map();  // id -> a layer or KV cache, or the Error its construction threw
const KINDS = ['MultiHeadAttention', 'TransformerEncoderLayer', 'TransformerDecoderLayer', 'LayerNorm'];
const METHODS = ['setWeights', 'forward', 'reset'];

function object(id) {
  const l = objects.get(id);
  if (l === undefined) throw new Error('mha-wasm/worker: this layer has been disposed');
  if (l instanceof Error) throw l;
  return l;
}

function make(id, fn) {
  try {
    objects.set(id, fn());
  } catch (e) {
    objects.set(id, e);
    throw e;
  }
}

/**
 * The buffers of the tensors in a result (a tensor, or an object of tensors),
 * each once: only ArrayBuffers (a SharedArrayBuffer cannot be transferred).
 */
const buffersOf = (r) => {
  const tensors = r && ArrayBuffer.isView(r.data) ? [r] : Object.values(r ?? {});
  const list = tensors.flatMap((t) => (t && ArrayBuffer.isView(t.data) && t.data.buffer instanceof ArrayBuffer ? [t.data.buffer] : []));
  return [...new Set(list)];
};

const OPS = {
  async init(options) {
    api = await init(options);
    return { threads: api.threads, features: api.features, build: api.build, threadsNote: api.threadsNote };
  },
  create(id, kind, options) {
    if (!KINDS.includes(kind)) throw new TypeError(`mha-wasm/worker: unknown class ${kind}`);
    make(id, () => new api[kind](options));
  },
  createCache(id, layerId, options) {
    make(id, () => object(layerId).createCache(options));
  },
  invoke(id, method, args) {
    if (!METHODS.includes(method)) throw new TypeError(`mha-wasm/worker: unknown method ${method}`);
    if (method !== 'forward') return [object(id)[method](...args), []];
    const options = args.at(-1), ref = options?.cache;
    if (ref) options.cache = object(ref.cacheId);
    const result = object(id).forward(...args);
    return [{ result, cacheLength: ref ? options.cache.length : undefined }, buffersOf(result)];
  },
  dispose(id) {
    const l = objects.get(id);
    objects.delete(id);
    if (l && !(l instanceof Error)) l.dispose();
  },
  sdpa(q, k, v, options) {
    const r = api.scaledDotProductAttention(q, k, v, options);
    return [r, buffersOf(r)];
  },
  stats() {
    return { ...api.stats(), workerLayers: objects.size };
  },
};

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
  let value, transfer;
  try {
    const { op, args } = msg;
    if (typeof op !== 'string' || !Object.hasOwn(OPS, op)) throw new TypeError(`mha-wasm/worker: unknown operation ${JSON.stringify(String(op))}`);
    if (!Array.isArray(args)) throw new TypeError(`mha-wasm/worker: the arguments of ${op} must be an array`);
    if (op !== 'init' && api === null) throw new Error('mha-wasm/worker: the runtime is not loaded');
    const res = await OPS[op](...args);
    [value, transfer] = op === 'invoke' || op === 'sdpa' ? res : [res, []];
  } catch (e) {
    return fail(id, e);
  }
  try {
    port.post({ id, ok: true, value }, transfer);
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
