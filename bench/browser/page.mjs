// The browser side of bench/browser.mjs: ?threads=1 runs mha-wasm (1 thread),
// ORT-web (1 thread), TF.js wasm and plain JS; ?threads=2 runs mha-wasm with 1
// and 2 threads and ORT-web with 2 (ORT-web's thread count is fixed per page).
// mha-wasm runs both its SIMD128 and (Chromium runs relaxed SIMD) its
// relaxed-SIMD build. Same shapes, data and timing loop as the Node bench
// (../peers.mjs); the 1-thread page times CPU time of its main thread through
// self.mhaCpuMs, which the runner exposes (Chrome DevTools Protocol).
import { init } from '/bindings/index.js';
import { QUANT_SHAPES, SHAPES, benchShape, probeMacs, probePeak } from '../peers.mjs';

const threads = Number(new URLSearchParams(location.search).get('threads') || 1);
const ort = await import('/ort/ort.wasm.min.mjs');
ort.env.wasm.wasmPaths = '/ort/';
ort.env.wasm.numThreads = threads;
ort.env.wasm.proxy = false;
let tf = null;
if (threads === 1) {
  tf = self.tf;
  tf.wasm.setWasmPaths('/tfjs-wasm/');
  await tf.setBackend('wasm');
  await tf.ready();
}
const both = async (n) => {
  const relaxed = await init({ threads: n });
  return [await init({ threads: n, relaxedSimd: false }), relaxed.features.relaxedSimd ? relaxed : null];
};
const [m1, r1] = await both(1), [m2, r2] = threads === 2 ? await both(2) : [null, null];

/** Builds the ONNX graph in Node (onnx-proto is a Node package): the runner serves it. */
const onnxFor = async (s) => new Uint8Array(await (await fetch(`/models/${s.id}.onnx`)).arrayBuffer());

self.benchInfo = { crossOriginIsolated: self.crossOriginIsolated, hardwareConcurrency: navigator.hardwareConcurrency, mhaBuild: (m2 ?? m1).build,
  relaxedBuild: (r2 ?? r1)?.build ?? null, int8Dot: (r1 ?? m1).features.int8Dot, mhaThreads: (m2 ?? m1).threads, tfjsThreads: tf ? tf.wasm.getThreadsCount() : null, userAgent: navigator.userAgent };

self.runShape = async (id, { rounds, plain, quant = false }) => {
  const s = SHAPES.find((x) => x.id === id);
  const cpu = typeof self.mhaCpuMs === 'function' ? self.mhaCpuMs : null;
  const q = quant && threads === 1 && QUANT_SHAPES.includes(s.id);
  const onnx = { bytes: await onnxFor(s), ...(q ? { int8Bytes: await onnxFor({ id: `${s.id}-int8` }) } : {}) };
  return benchShape(s, { m1, m2, r1, r2, ort, onnx, tf, threads, plain, rounds, cpu, quant: q });
};
// The SIMD128 peak probe (bench/peak.cpp, built by the runner).
self.peak = async () => {
  await new Promise((res, rej) => { const el = document.createElement('script'); el.src = '/peak/peak.js'; el.onload = res; el.onerror = rej; document.head.append(el); });
  const M = await self.MhaPeak({ locateFile: (f) => `/peak/${f}` });
  return probePeak(M);
};
// The multiply-accumulate probes (bench/peak.cpp; the relaxed build where this page runs relaxed SIMD).
const loadPeak = async (name) => {
  await new Promise((res, rej) => { const el = document.createElement('script'); el.src = `/peak/${name}.js`; el.onload = res; el.onerror = rej; document.head.append(el); });
  return self.MhaPeak({ locateFile: (f) => `/peak/${f}` });
};
self.peakMacs = async () => {
  const simd = await loadPeak('peak');
  let relaxed = null;
  if (r1 || r2) {
    const bytes = await fetch('/peak/peak-relaxed.wasm').then((r) => (r.ok ? r.arrayBuffer() : null));
    if (bytes && WebAssembly.validate(bytes)) relaxed = await loadPeak('peak-relaxed');
  }
  return probeMacs(simd, relaxed);
};
self.benchReady = true;
