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
const layers = new Map();  // id -> MultiHeadAttention, or the Error its construction threw

function layer(id) {
  const l = layers.get(id);
  if (l === undefined) throw new Error('mha-wasm/worker: this layer has been disposed');
  if (l instanceof Error) throw l;
  return l;
}

const buffersOf = (result) => [result.output.data.buffer, ...(result.weights ? [result.weights.data.buffer] : [])];

const OPS = {
  async init(options) {
    api = await init(options);
    return { threads: api.threads, features: api.features, build: api.build, threadsNote: api.threadsNote };
  },
  create(id, options) {
    try {
      layers.set(id, new api.MultiHeadAttention(options));
    } catch (e) {
      layers.set(id, e);
      throw e;
    }
  },
  setWeights(id, weights) {
    layer(id).setWeights(weights);
  },
  forward(id, q, k, v, options) {
    const r = layer(id).forward(q, k, v, options);
    return [r, buffersOf(r)];
  },
  dispose(id) {
    const l = layers.get(id);
    layers.delete(id);
    if (l && !(l instanceof Error)) l.dispose();
  },
  sdpa(q, k, v, options) {
    const r = api.scaledDotProductAttention(q, k, v, options);
    return [r, buffersOf(r)];
  },
  stats() {
    return { ...api.stats(), workerLayers: layers.size };
  },
};

// Only the error's class and message cross back; the caller rebuilds it.
const errorInfo = (e) => (e instanceof Error ? { name: e.name, message: e.message } : { name: 'Error', message: String(e) });

async function handle({ id, op, args }) {
  try {
    if (op !== 'init' && api === null) throw new Error('mha-wasm/worker: the runtime is not loaded');
    const res = await OPS[op](...args);
    const [value, transfer] = op === 'forward' || op === 'sdpa' ? res : [res, []];
    port.post({ id, ok: true, value }, transfer);
  } catch (e) {
    port.post({ id, ok: false, error: errorInfo(e) });
  }
}

let queue = Promise.resolve();  // one request at a time, in the order sent
port.listen((msg) => { queue = queue.then(() => handle(msg)); });
port.post({ ready: true });
