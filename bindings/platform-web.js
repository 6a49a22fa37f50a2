// What browsers (pages and their workers) need to load a build and start
// workers. Shared by platform.js (Node and unbundled pages) and
// platform-browser.js (bundlers); nothing here is Node-only.
//
// Browsers start a Worker only from a script of the page's own origin. A
// script on another origin (a CDN) is loaded through a same-origin blob: URL
// instead: for a module worker, a one-line module that imports it; for
// Emscripten's pthread worker, a copy of its text fetched with CORS.

/** The URL relative URLs are resolved against: the page's (or the worker's) location. */
export const here = () => (typeof location === 'object' && location && location.href) || undefined;

export const hardwareConcurrency = () => (typeof navigator === 'object' && navigator && navigator.hardwareConcurrency) || 1;

/** Whether a Worker may be constructed from url directly (same origin as this context). */
export function sameOrigin(url) {
  try {
    const origin = typeof location === 'object' && location ? location.origin : undefined;
    return origin !== undefined && origin !== 'null' && new URL(url, here()).origin === origin;
  } catch {
    return false;
  }
}

const blobUrl = (text) => URL.createObjectURL(new Blob([text], { type: 'text/javascript' }));

/** An Error marking a failure to start workers: the caller may fall back to one thread. */
export function workerFailure(message, cause) {
  const e = new Error(message, cause === undefined ? undefined : { cause });
  e.workerFailure = true;
  return e;
}

/** fetch() that fails with the URL and the HTTP status in the message. */
export async function fetchOk(url) {
  let res;
  try {
    res = await fetch(url, { credentials: 'same-origin' });
  } catch (e) {
    throw new Error(`mha-wasm: cannot fetch ${url}: ${e.message}`, { cause: e });
  }
  if (!res.ok) throw new Error(`mha-wasm: fetching ${url} failed with HTTP ${res.status} ${res.statusText}`.trim());
  return res;
}

export const fetchBytes = async (url) => new Uint8Array(await (await fetchOk(url)).arrayBuffer());

/** The factory an Emscripten glue script publishes on globalThis (bindings/extern-post.js.in). */
function published(build, where) {
  const factory = globalThis[build.exportName];
  if (typeof factory !== 'function') throw new Error(`mha-wasm: ${where} did not define ${build.exportName}`);
  return factory;
}

/**
 * Loads a build's glue: { url } or { text }. Returns { factory, script }, script
 * being what its pthread workers load (mainScriptUrlOrBlob): the URL when they
 * can load it, else a Blob of its text.
 */
export async function loadGlue(build, src) {
  if (src.text === undefined && (!build.threads || sameOrigin(src.url))) {
    try {
      await import(/* @vite-ignore */ /* webpackIgnore: true */ src.url);
    } catch (e) {
      // import() says only that it failed: ask the server why (HTTP 404, say).
      await fetchOk(src.url);
      throw new Error(`mha-wasm: cannot load ${src.url}: ${e.message}`, { cause: e });
    }
    return { factory: published(build, src.url), script: src.url };
  }
  // Inline, or a threaded build's glue on another origin: its pthread workers
  // (same-origin blob: workers) get the text as a Blob.
  const text = src.text ?? await (await fetchOk(src.url)).text();
  const where = src.url ?? `the inlined ${build.file}.js`;
  const url = blobUrl(text);
  try {
    await import(/* @vite-ignore */ /* webpackIgnore: true */ url);
  } catch (e) {
    throw new Error(`mha-wasm: cannot load ${where} from a blob: URL: ${e.message}`, { cause: e });
  } finally {
    URL.revokeObjectURL(url);
  }
  return { factory: published(build, where), script: new Blob([text], { type: 'text/javascript' }) };
}

/**
 * The URL to start Emscripten's pthread workers from ({ url } or { text }):
 * { url, release() }, a blob: URL unless url is on this origin.
 */
export async function pthreadWorker(src) {
  if (src.text === undefined && sameOrigin(src.url)) return { url: src.url, release: () => {} };
  let text = src.text;
  if (text === undefined) {
    try {
      text = await (await fetchOk(src.url)).text();
    } catch (e) {
      throw workerFailure(`mha-wasm: its pthread workers could not start: ${src.url} is on another origin and could not be fetched to start them from a blob: URL (${e.message.replace(/^mha-wasm: /, '')})`, e);
    }
  }
  const url = blobUrl(text);
  return { url, release: () => URL.revokeObjectURL(url) };
}

/**
 * Starts a module Web Worker: from url (a blob: wrapper that imports it when
 * it is on another origin) or from { source } (a module's text). Returns
 * { w, on(event, fn), started() }: started() frees the wrapper once the worker
 * has loaded.
 */
export function moduleWorker(target, name) {
  let url, made = null;
  if (target instanceof URL && sameOrigin(target)) {
    url = target;
  } else {
    made = url = blobUrl(target instanceof URL ? `import ${JSON.stringify(target.href)};\n` : target.source);
  }
  let w;
  try {
    w = new Worker(url, { type: 'module', name });
  } catch (e) {
    if (made) URL.revokeObjectURL(made);
    throw new Error(`mha-wasm/worker: cannot start a Worker from ${target instanceof URL ? target.href : 'the inlined worker host'}: ${e && e.message}`, { cause: e });
  }
  const on = (ev, fn) => {
    if (ev === 'message') w.addEventListener('message', (e) => fn(e.data));
    else if (ev === 'error') w.addEventListener('error', (e) => { e.preventDefault(); fn(e.message ? new Error(e.message) : null); });
    else if (ev === 'messageerror') w.addEventListener('messageerror', () => fn(new Error('a message could not be decoded')));
  };
  return { w, on, started: () => { if (made) URL.revokeObjectURL(made); made = null; } };
}

/** The worker host's side of the channel, in a Web Worker. */
export function webPort() {
  return {
    post: (m, t) => self.postMessage(m, t),
    listen: (fn) => self.addEventListener('message', (e) => fn(e.data)),
    unreadable: (fn) => self.addEventListener('messageerror', fn),
  };
}
