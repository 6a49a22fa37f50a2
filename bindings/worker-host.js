// Runs inside the worker that mha-wasm/worker starts (a module Web Worker, or
// a worker_threads Worker in Node). It owns one runtime and the layers made
// through it, answers each request in order, and sends results back as
// transferables.
import { init } from './index.js';

let port;  // { post(msg, transfer), listen(fn) }
if (typeof process === 'object' && process.versions && process.versions.node && typeof importScripts !== 'function') {
  const { parentPort } = await import('node:worker_threads');
  port = { post: (m, t) => parentPort.postMessage(m, t), listen: (fn) => parentPort.on('message', fn) };
} else {
  port = { post: (m, t) => self.postMessage(m, t), listen: (fn) => self.addEventListener('message', (e) => fn(e.data)) };
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

/** The buffers of the tensors in a result (a tensor, or an object of tensors). */
const buffersOf = (r) => (r && ArrayBuffer.isView(r.data) ? [r.data.buffer] : Object.values(r ?? {}).flatMap((t) => (t && ArrayBuffer.isView(t.data) ? [t.data.buffer] : [])));

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

// Only the error's class and message cross back; the caller rebuilds it.
const errorInfo = (e) => (e instanceof Error ? { name: e.name, message: e.message } : { name: 'Error', message: String(e) });

async function handle({ id, op, args }) {
  try {
    if (op !== 'init' && api === null) throw new Error('mha-wasm/worker: the runtime is not loaded');
    const res = await OPS[op](...args);
    const [value, transfer] = op === 'invoke' || op === 'sdpa' ? res : [res, []];
    port.post({ id, ok: true, value }, transfer);
  } catch (e) {
    port.post({ id, ok: false, error: errorInfo(e) });
  }
}

let queue = Promise.resolve();  // one request at a time, in the order sent
port.listen((msg) => { queue = queue.then(() => handle(msg)); });
port.post({ ready: true });
