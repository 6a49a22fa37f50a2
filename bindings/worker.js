// mha-wasm/worker: the same API, computed in a worker so the caller's thread
// (a page's main thread, say) never blocks. Methods return Promises; results
// come back as transferables; several layers can share one worker.
//
//   import { init } from 'mha-wasm/worker';
//   const mha = await init({ threads: 'auto' });        // starts one worker
//   const layer = new mha.MultiHeadAttention({ embedDim: 64, numHeads: 4 });
//   await layer.setWeights(weights);
//   const { output, weights } = await layer.forward(x, null, null, { needWeights: true });
//   layer.dispose();
//   mha.terminate();
// The classes are the main API's, defined once in api.js over a backend; here the
// backend posts each op to the worker host, which runs it from the same op table.
import { BUILDS } from './abi.js';
import { defineApi, memoizedApi } from './api.js';
import { initOptions, isNode, probeFeatures, resolveUrl } from './loader.js';
import * as platform from './platform.js';
import { checkIntact, describe, intrinsic, isArrayBuffer, isDetached, isTypedArray, viewName } from './validate.js';

export { probeFeatures };
export { encodeSafetensors, parseSafetensors, readSafetensors, safetensorsMetadata } from './safetensors.js';
export { quantizeSafetensors } from './quantize.js';

// The error classes a worker's error is rebuilt as (any other name: Error).
const ERRORS = Object.freeze(Object.assign(Object.create(null), { TypeError, RangeError, Error }));

/** An Error of the class an error message from the worker names, with its message. */
function rebuildError(info) {
  if (info === null || typeof info !== 'object' || typeof info.message !== 'string')
    return new Error('mha-wasm/worker: the worker reported an error it could not describe');
  return new (typeof info.name === 'string' && Object.hasOwn(ERRORS, info.name) ? ERRORS[info.name] : Error)(info.message);
}

/**
 * A worker with request/response messaging. Node: worker_threads, unref'd
 * while no request is pending, so it never keeps a finished script alive.
 * Browsers: a module Web Worker, from a blob: URL when the script is on
 * another origin or built in (platform.js, platform-browser.js).
 */
async function startWorker(url) {
  const { w, on, started } = await platform.startWorker(url, 'mha-wasm');
  const pending = new Map();  // id -> { resolve, reject, what }, in the order sent
  let nextId = 1, dead = null, readyResolve, readyReject;
  const ready = new Promise((res, rej) => { readyResolve = res; readyReject = rej; });
  const idle = () => { if (isNode && pending.size === 0) w.unref(); };
  const settle = (id, fn) => {
    const p = pending.get(id);
    if (!p) return;
    pending.delete(id);
    idle();
    fn(p);
  };
  const die = (why) => {
    if (dead) return;
    dead = new Error(`mha-wasm/worker: the worker stopped (${why})`);
    readyReject(dead);
    for (const p of pending.values()) p.reject(dead);
    pending.clear();
    idle();
    started();
    w.terminate();
  };
  on('message', (m) => {
    if (m === null || typeof m !== 'object') return;  // not from worker-host.js: ignored
    if (m.ready === true) {
      started();
      return readyResolve();
    }
    // The worker host asks for a build it was told is built in (see worker-host.js).
    if (typeof m.need === 'string') return sendSources(m.need);
    if (m.unreadable === true) {
      // The worker could not deserialize the first request it got after id
      // m.after (a buffer detached while the message was being serialized, say):
      // messages arrive in order, so that is the first pending id after it.
      for (const [id, p] of pending) {
        if (id > m.after) {
          settle(id, () => p.reject(new TypeError(`${p.what}: the worker could not read the arguments (was a buffer in them detached while they were being sent?)`)));
          break;
        }
      }
      return;
    }
    settle(m.id, (p) => (m.ok === true ? p.resolve(m.value) : p.reject(rebuildError(m.error))));
  });
  // An answer that cannot be deserialized here: the worker answers in the
  // order it was asked, so it is the oldest pending request's.
  on('messageerror', () => {
    const [first] = pending.keys();
    if (first !== undefined) settle(first, (p) => p.reject(new Error(`${p.what}: could not read the worker's answer`)));
  });
  on('error', (e) => die(e ? e.message : `the worker script ${url instanceof URL ? url.href : url} failed to load or threw`));

  async function sendSources(build) {
    let msg;
    try {
      if (typeof platform.inlineSources !== 'function' || !Object.hasOwn(BUILDS, build)) throw new Error(`no built-in ${build} build here`);
      const { glue, wasm, worker } = await platform.inlineSources(build);
      msg = { sources: build, glue, wasm, worker };
    } catch (e) {
      msg = { sources: build, error: e instanceof Error ? e.message : String(e) };
    }
    if (!dead) w.postMessage(msg, msg.wasm ? [msg.wasm.buffer] : []);
  }
  on('exit', (why) => die(why));

  /**
   * Sends one request and returns the Promise of its answer; throws (sending
   * nothing) if it cannot be sent. transfer: Map of ArrayBuffer -> argument
   * name, the buffers to move.
   */
  function send(op, args, transfer = new Map(), what = op) {
    if (dead) throw dead;
    // A detached buffer in the transfer list would make postMessage "succeed"
    // with a message the worker cannot read. marshal() checked each one, but
    // a getter it ran afterwards may have detached an earlier one.
    for (const [buffer, name] of transfer)
      if (isDetached(buffer)) throw detachedError(what, name);
    const id = nextId++;
    try {
      w.postMessage({ id, op, args }, [...transfer.keys()]);
    } catch (e) {
      throw new TypeError(`${what}: the arguments cannot be sent to the worker (${e instanceof Error ? `${e.name}: ${e.message}` : String(e)})`, { cause: e });
    }
    const answer = new Promise((resolve, reject) => pending.set(id, { resolve, reject, what }));
    if (isNode && pending.size === 1) w.ref();
    return answer;
  }

  return {
    ready,
    get dead() { return dead; },
    send,
    /** send(), with a failure to send as a rejection. */
    call(...a) {
      try {
        return send(...a);
      } catch (e) {
        return Promise.reject(e);
      }
    },
    terminate() {
      die('terminate() was called');
    },
  };
}


const abBytes = intrinsic(ArrayBuffer.prototype, 'byteLength');

const detachedError = (what, name) =>
  new TypeError(`${what}: ${name} is a view of a detached ArrayBuffer (moved away earlier, e.g. by a call with transfer: true, or by structuredClone/postMessage with transfer); it cannot be sent to the worker`);

/**
 * A validated call's arguments (plain objects, arrays, primitives and the
 * validated typed-array views of validate.js) made ready to post: each view is
 * checked to be intact, then sent as it is when it covers its whole buffer (moved
 * with ctx.transfer, recorded in ctx.list as buffer -> argument name), or as a
 * copy of just its elements (a part of a buffer, or shared memory, which the
 * caller could change while the worker reads it).
 */
function marshal(value, ctx) {
  if (value === null || typeof value !== 'object') return value;
  if (isTypedArray(value)) {
    checkIntact(value);
    const name = viewName(value) ?? 'an argument';
    const { buffer, byteOffset, byteLength } = value;  // a view validate.js made: its own getters are the intrinsic ones
    if (isDetached(buffer)) throw detachedError(ctx.what, name);
    const whole = isArrayBuffer(buffer) && byteOffset === 0 && byteLength === abBytes(buffer);
    if (!whole) return value.slice();
    if (ctx.transfer && !ctx.list.has(buffer)) ctx.list.set(buffer, name);
    return value;
  }
  if (Array.isArray(value)) return value.map((v) => marshal(v, ctx));
  const out = {};
  for (const k of Object.keys(value)) out[k] = marshal(value[k], ctx);
  return out;
}

/** The backend of a worker (see api.js): ops run in the worker host, in the order they are sent. */
function workerBackend(conn) {
  let nextId = 1;
  return {
    async: true,
    run(fn) {
      try {
        return Promise.resolve(fn());
      } catch (e) {
        return Promise.reject(e);
      }
    },
    then: (value, fn) => value.then(fn),
    checkAlive() {
      if (conn.dead) throw conn.dead;
    },
    /** Sends the creation and returns the id at once; it throws only if it cannot be sent. */
    create(kind, cfg, what) {
      const id = nextId++;
      conn.send('create', [id, kind, cfg], undefined, what).catch(() => { /* reported by the object's next call */ });
      return id;
    },
    /** move: views of the library's own arrays whose buffers are moved to the worker, transfer or not. */
    call(op, args, { transfer = false, move = [], what = op } = {}) {
      const ctx = { what, transfer, list: new Map(move.map((v) => [v.buffer, 'a spare array'])) };
      return conn.send(op, marshal(args, ctx), ctx.list, what);
    },
    release(id) {
      if (!conn.dead) conn.call('dispose', [id]).catch(() => {});
    },
  };
}

const workers = new Map();  // memo key -> { promise, api } (memoizedApi)

/**
 * Starts a worker and loads the runtime in it. Memoized like init() from
 * 'mha-wasm': the same options give the same worker (until terminate()). Options
 * as init() from 'mha-wasm', plus workerUrl: where bindings/worker-host.js is
 * served from.
 * @param {import('./worker').WorkerInitOptions} [options]
 * @returns {Promise<import('./worker').WorkerMha>}
 */
export function init(options = {}) {
  let opts, url;
  try {
    opts = initOptions(options, { extra: ['workerUrl'] });
    const { workerUrl } = opts.extra;
    if (workerUrl !== undefined && typeof workerUrl !== 'string' && !(workerUrl instanceof URL))
      throw new TypeError(`init (mha-wasm/worker): workerUrl must be a string or URL, got ${describe(workerUrl)}`);
    url = workerUrl === undefined ? platform.defaultWorker() : resolveUrl(workerUrl);
  } catch (e) {
    return Promise.reject(e);
  }
  const key = JSON.stringify([opts.threads, opts.relaxedSimd, opts.int8Dot, opts.base ? opts.base.href : null, opts.urls, url instanceof URL ? url.href : url]);
  return memoizedApi(workers, key, async () => {
    const conn = await startWorker(url);
    try {
      await conn.ready;
      // No base: the files urls does not name are built in, and the host asks for them.
      const where = opts.base ? { baseUrl: opts.base.href } : { inline: true };
      const info = await conn.call('init', [{ threads: opts.threads, relaxedSimd: opts.relaxedSimd, int8Dot: opts.int8Dot, ...where, urls: opts.urls }]);
      return defineApi(workerBackend(conn), info, {
        /** Stops the worker. Pending and later calls reject; init() with the same options starts a new one. */
        terminate: () => conn.terminate(),
      });
    } catch (e) {
      conn.terminate();
      throw e;
    }
  });
}
