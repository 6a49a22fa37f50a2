// The browser side of bench/browser.mjs: ?threads=1 runs mha-wasm (1 thread),
// ORT-web (1 thread), TF.js wasm and plain JS; ?threads=2 runs mha-wasm with 1
// and 2 threads and ORT-web with 2 (ORT-web's thread count is fixed per page).
// Same shapes, data and timing loop as the Node bench (../peers.mjs).
import { init } from '/bindings/index.js';
import { SHAPES, flops, interleave, probePeak, makeData, makeMhaWasm, makeOrt, makePlainJs, makeTfjs, maxRelDiff, median } from '../peers.mjs';

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
const m1 = await init({ threads: 1 }), m2 = threads === 2 ? await init({ threads: 2 }) : null;

/** Builds the ONNX graph in Node (onnx-proto is a Node package): the runner serves it. */
const onnxFor = async (s) => new Uint8Array(await (await fetch(`/models/${s.id}.onnx`)).arrayBuffer());

self.benchInfo = { crossOriginIsolated: self.crossOriginIsolated, hardwareConcurrency: navigator.hardwareConcurrency, mhaBuild: (m2 ?? m1).build,
  mhaThreads: (m2 ?? m1).threads, tfjsThreads: tf ? tf.wasm.getThreadsCount() : null, userAgent: navigator.userAgent };

self.runShape = async (id, { rounds, plain }) => {
  const s = SHAPES.find((x) => x.id === id), d = makeData(s);
  const cs = [{ name: 'mha-wasm', threads: 1, run: await makeMhaWasm(m1, s, d) }];
  if (m2) cs.push({ name: 'mha-wasm', threads: 2, run: await makeMhaWasm(m2, s, d) });
  const bytes = await onnxFor(s);
  cs.push({ name: 'ORT-web', threads, run: await makeOrt(ort, { bytes }, s, d) });
  if (tf && !s.needWeights) cs.push({ name: 'TF.js wasm', threads: 1, run: makeTfjs(tf, s, d) });
  const ref = await makePlainJs(s, d)();
  if (plain && threads === 1 && !s.needWeights) cs.push({ name: 'plain JS', threads: 1, run: makePlainJs(s, d) });
  await interleave(cs, { rounds, warm: flops(s) > 2e9 ? 1 : 3 });
  const out = cs.map((c) => ({ shape: s.id, contestant: c.name, threads: c.threads, group: `t${threads}`, ms: median(c.times), runs: c.times.length,
    gflops: flops(s) / median(c.times) / 1e6, relDiff: maxRelDiff(c.output, ref) }));
  for (const c of cs) c.run.dispose?.();
  return out;
};
// The SIMD128 peak probe (bench/peak.cpp, built by the runner).
self.peak = async () => {
  await new Promise((res, rej) => { const el = document.createElement('script'); el.src = '/peak/peak.js'; el.onload = res; el.onerror = rej; document.head.append(el); });
  const M = await self.MhaPeak({ locateFile: (f) => `/peak/${f}` });
  return probePeak(M);
};
self.benchReady = true;
