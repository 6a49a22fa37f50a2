// `npm run bench:models` (not part of CI): whole models on mha-wasm/models, and the peer.
//
// - The decoder: Llama architecture with SmolLM-135M's shapes (hidden 576, 30 layers, 9 heads,
//   3 KV heads, FF 1536, vocab 49152, tied head), seeded random weights. Prefill of 128 tokens
//   (tokens/s) and greedy decoding after it (tokens/s from the median step), at each weight
//   type and 1 and 2 threads, in Node and in headless Chromium.
//   In the page both through the main API and through mha-wasm/worker (--page-api).
// - The peer: @wllama/wllama (llama.cpp in WebAssembly) running the same decoder from a GGUF
//   file written here (Q8_0, bench/models-gguf.mjs), in the same Chromium page, interleaved;
//   greedy tokens and top-5 log-probabilities are compared to show it is the same model.
// - The memory-bandwidth limit of decoding: the bytes of weights a step reads ÷ the copy
//   bandwidth measured in the same process or page (STREAM's count: read + written); for
//   context also what one wasm thread reads per second (a SIMD128 sum).
// - The encoder: BertModel with all-MiniLM-L6-v2's shapes, embed() of 128 tokens, in ms.
// Prints a table and the targets, writes build/bench/results-models.json.
//
//   npm run bench:models [-- --quick] [--rounds 5] [--steps 32] [--weight-type f32,int8] [--threads 1,2]
//                        [--int8-dot auto] (or dot_i16x8,relaxed_dot_i8x16_i7x16: both int8 kernels side by side)
//                        [--page-api main,worker] [--no-node] [--no-browser] [--no-wllama] [--no-encoder]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { launchChromium } from '../scripts/chromium.mjs';
import { serve } from '../scripts/serve.mjs';
import { decoderGguf } from './models-gguf.mjs';
import { DECODER_CONFIG, PREFILL, bytesPerToken, copyBandwidth, copyProbe, median, mhaContestants, runDecoders, runEncoders, wasmReadBandwidth } from './models-lib.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values: v } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false }, rounds: { type: 'string' }, steps: { type: 'string' },
    'weight-type': { type: 'string', default: 'f32,int8' }, threads: { type: 'string', default: '1,2' }, 'int8-dot': { type: 'string', default: 'auto' },
    'no-node': { type: 'boolean', default: false }, 'no-browser': { type: 'boolean', default: false },
    'no-wllama': { type: 'boolean', default: false }, 'page-api': { type: 'string', default: 'main,worker' }, 'no-encoder': { type: 'boolean', default: false },
  },
});
const rounds = Number(v.rounds ?? (v.quick ? 2 : 5)), steps = Number(v.steps ?? (v.quick ? 16 : 32));
const pageApis = v['page-api'].split(',').filter(Boolean);
for (const a of pageApis) if (!['main', 'worker'].includes(a)) throw new Error(`--page-api: unknown ${a} (main, worker)`);
const weightTypes = v['weight-type'].split(',').filter(Boolean), threads = v.threads.split(',').map(Number), int8Dots = v['int8-dot'].split(',').filter(Boolean);
for (const w of weightTypes) if (!['f32', 'f16', 'int8'].includes(w)) throw new Error(`--weight-type: unknown ${w} (f32, f16, int8)`);
if (!(rounds >= 1 && steps >= 1 && threads.every((t) => t >= 1))) throw new Error('--rounds, --steps and --threads must be positive');
const log = (s) => console.error(`  ${s}`);

/** The higher of two bandwidth probes (before and after the runs): { copy, read }. */
const best = (a, b) => ({ copy: a.copy.gbPerS >= b.copy.gbPerS ? a.copy : b.copy, read: a.read.gbPerS >= b.read.gbPerS ? a.read : b.read });

/** A decoder's summary: medians and rates, and its share of the bandwidth limit. */
function summarize(c, res, bandwidth) {
  const prefill = median(res.prefillMs), step = median(res.stepMs);
  const row = {
    id: c.id, lib: c.lib, api: c.api, build: c.build, weightType: c.weightType, threads: c.threads, prefillMs: prefill, prefillTokPerS: PREFILL / (prefill / 1000),
    stepMs: step, bestStepMs: Math.min(...res.stepMs), allStepMs: res.stepMs, decodeTokPerS: 1000 / step, rounds: res.prefillMs.length, steps: res.stepMs.length, tokens: res.tokens, top: res.top,
  };
  if (c.lib === 'mha-wasm' && bandwidth) {
    const bytes = bytesPerToken(DECODER_CONFIG, c.weightType), limitMs = bytes / (bandwidth.copy.gbPerS * 1e9) * 1000;
    const readMs = bytes / (bandwidth.read.gbPerS * 1e9) * 1000;
    Object.assign(row, { bytesPerToken: bytes, limitStepMs: limitMs, limitTokPerS: 1000 / limitMs, stepVsLimit: step / limitMs, readStepMs: readMs, stepVsRead: step / readMs });
    // Paired: each round's median step against the limit from the copy bandwidth measured right before it.
    if (res.roundGbPerS.length === res.roundStepMs.length && res.roundGbPerS.length)
      Object.assign(row, { roundGbPerS: res.roundGbPerS, pairedVsLimit: median(res.roundStepMs.map((ms, i) => ms / (bytes / (res.roundGbPerS[i] * 1e9) * 1000))) });
  }
  if (res.extra?.length) row.peer = res.extra;
  return row;
}

async function nodePart() {
  console.error(`Node ${process.version}: loading the models`);
  const bandwidth = { copy: copyBandwidth(), read: wasmReadBandwidth() };
  const set = await mhaContestants({ threads, weightTypes, int8Dots, encoder: !v['no-encoder'] });
  console.error(`Node: decoding (${rounds} rounds, prefill ${PREFILL}, ${steps} steps)`);
  const dec = await runDecoders(set.decoders, { rounds, steps, log, probe: copyProbe(256) });
  const enc = await runEncoders(set.encoders, { rounds: rounds * 3 });
  const bandwidthAfter = { copy: copyBandwidth(), read: wasmReadBandwidth() }, limit = best(bandwidth, bandwidthAfter);
  for (const c of [...set.decoders, ...set.encoders]) c.dispose();
  return {
    env: 'node', version: process.version, bandwidth: limit, bandwidthBefore: bandwidth, bandwidthAfter, notes: set.notes,
    decoders: set.decoders.map((c) => summarize(c, dec[c.id], limit)),
    encoders: set.encoders.map((c) => ({ id: c.id, weightType: c.weightType, threads: c.threads, embedMs: median(enc[c.id]), runs: enc[c.id] })),
  };
}

async function browserPart() {
  const memory = {};
  if (!v['no-wllama']) {
    console.error('Chromium: writing the GGUF (Q8_0)');
    memory['/models/decoder-q8_0.gguf'] = Buffer.from(decoderGguf());
    console.error(`  ${(memory['/models/decoder-q8_0.gguf'].length / 2 ** 20).toFixed(1)} MiB`);
  }
  const server = await serve({
    port: 0, memory, mounts: [['/bench/', 'bench'], ['/web/', 'web'], ['/wllama/', 'node_modules/@wllama/wllama']],
  });
  const context = await launchChromium();
  try {
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console.error: ${m.text()}`); });
    await page.goto(`http://127.0.0.1:${server.address().port}/bench/browser/models.html`);
    await page.waitForFunction(() => self.benchReady === true, null, { timeout: 120000 });
    const info = await page.evaluate(() => self.benchInfo);
    if (!info.crossOriginIsolated) throw new Error('the benchmark page is not cross-origin isolated');
    console.error(`Chromium (${info.userAgent.match(/Chrome\/[\d.]+/)?.[0]}): loading the models`);
    const bandwidth = await page.evaluate(() => self.bandwidth());  // before loading anything
    const set = await page.evaluate((o) => self.setup(o), { apis: pageApis, threads, weightTypes, int8Dots, wllama: !v['no-wllama'], encoder: !v['no-encoder'], steps });
    const proxy = (c) => ({ ...c, round: (r, n, o) => page.evaluate(([id, rr, nn, oo]) => self.round(id, rr, nn, oo), [c.id, r, n, o]) });
    console.error(`Chromium: decoding (${rounds} rounds, prefill ${PREFILL}, ${steps} steps)`);
    const decoders = set.decoders.map(proxy);
    const dec = await runDecoders(decoders, { rounds, steps, log, probe: () => page.evaluate(() => self.copyProbe()) });
    const encoders = set.encoders.map((c) => ({ ...c, embed: (r) => page.evaluate(([id, rr]) => self.embed(id, rr), [c.id, r]) }));
    const enc = await runEncoders(encoders, { rounds: rounds * 3 });
    const bandwidthAfter = await page.evaluate(() => self.bandwidth()), limit = best(bandwidth, bandwidthAfter);
    return {
      env: 'chromium', version: info.userAgent.match(/Chrome\/[\d.]+/)?.[0], info, bandwidth: limit, bandwidthBefore: bandwidth, bandwidthAfter, notes: set.notes,
      logs: await page.evaluate(() => self.logs()), problems,
      decoders: decoders.map((c) => ({ ...summarize(c, dec[c.id], c.lib === 'mha-wasm' ? limit : null), ...(c.lib === 'wllama' ? { loadMs: c.loadMs, multithread: c.multithread, nThreads: c.nThreads } : {}) })),
      encoders: encoders.map((c) => ({ id: c.id, weightType: c.weightType, threads: c.threads, embedMs: median(enc[c.id]), runs: enc[c.id] })),
    };
  } finally {
    await context.close();
    server.close();
  }
}

/** The targets of one environment: int8 against q8_0 (decode ≥ 1.5×, prefill ≥ 2×), decode within 1.5× of the bandwidth limit. */
function targets(part) {
  const out = [], ours = part.decoders.filter((d) => d.lib === 'mha-wasm');
  const apis = [...new Set(ours.map((d) => d.api))];
  for (const t of threads) {
    const peer = part.decoders.find((d) => d.lib === 'wllama' && d.threads === t);
    for (const api of apis) {
      const at = (wt) => ours.find((d) => d.api === api && d.weightType === wt && d.threads === t);
      const who = `${part.env}${api === 'worker' ? ' (worker API)' : ''} ${t}t`;
      if (peer) {
        const int8 = at('int8'), f32 = at('f32');
        for (const [what, key, need] of [['decode', 'decodeTokPerS', 1.5], ['prefill', 'prefillTokPerS', 2]]) {
          const target = `${what} int8 ≥ ${need}× wllama q8_0`, info = f32 ? `f32 vs q8_0: ${(f32[key] / peer[key]).toFixed(2)}×` : '';
          out.push(int8 ? { who, target, ratio: int8[key] / peer[key], pass: int8[key] / peer[key] >= need, info }
            : { who, target, ratio: null, pass: null, info: `no int8 in this build; ${info}` });
        }
      }
      for (const d of ours.filter((x) => x.api === api && x.threads === t))
        out.push({ who, target: `decode ${d.weightType} within 1.5× of the bandwidth limit`, ratio: d.stepVsLimit, pass: d.stepVsLimit <= 1.5,
          info: `median ${d.stepMs.toFixed(1)} ms/step (best ${d.bestStepMs.toFixed(1)}) vs ${d.limitStepMs.toFixed(1)} ms = ${(d.bytesPerToken / 1e6).toFixed(0)} MB ÷ ${part.bandwidth.copy.gbPerS.toFixed(1)} GB/s` +
            (d.pairedVsLimit ? `; paired with the bandwidth before each round (${d.roundGbPerS.map((g) => g.toFixed(1)).join(', ')} GB/s): ${d.pairedVsLimit.toFixed(2)}×` : '') });
    }
  }
  return out;
}

/**
 * How closely b computes a's model: greedy tokens equal (of the warm-up round), and per checked
 * step the overlap of the two top-5 lists and the largest log-probability difference over the ids in both.
 */
function agreement(a, b) {
  const n = Math.min(a.tokens.length, b.tokens.length);
  let same = 0;
  while (same < n && a.tokens[same] === b.tokens[same]) same++;
  const top = (a.top ?? []).slice(0, (b.top ?? []).length).map((ta, i) => {
    const tb = new Map(b.top[i].map((t) => [t.id, t.logprob]));
    const shared = ta.filter((t) => tb.has(t.id));
    return { overlap: shared.length, maxLogprobDiff: Math.max(0, ...shared.map((t) => Math.abs(t.logprob - tb.get(t.id)))) };
  });
  return { of: `${b.env} ${b.id} vs ${a.env} ${a.id}`, greedySame: same, greedyOf: n, top };
}

const f = (x, d = 1) => (x === null || x === undefined ? '–' : x.toFixed(d));
function table(parts) {
  const lines = ['| env | contestant | build | prefill 128 (ms) | prefill tok/s | decode step (ms) | decode tok/s | best step (ms) | copy-bandwidth limit (ms) | step ÷ limit | step ÷ 1-thread wasm read time |',
    '|---|---|---|---|---|---|---|---|---|---|---|'];
  const x = (r) => (r ? `${r.toFixed(2)}×` : '–');
  for (const p of parts)
    for (const d of p.decoders)
      lines.push(`| ${p.env} | ${d.id} | ${d.build?.replace(/^mha-wasm-/, '') ?? `llama.cpp ${p.info?.wllamaVersion ?? '?'}`} | ${f(d.prefillMs, 0)} | ${f(d.prefillTokPerS)} | ${f(d.stepMs, 1)} | ${f(d.decodeTokPerS)} | ${f(d.bestStepMs, 1)} | ${f(d.limitStepMs, 1)} | ${x(d.stepVsLimit)} | ${x(d.stepVsRead)} |`);
  lines.push('', '| env | encoder (MiniLM-L6 shapes), embed of 128 tokens | ms |', '|---|---|---|');
  for (const p of parts) for (const e of p.encoders) lines.push(`| ${p.env} | ${e.id} | ${f(e.embedMs, 2)} |`);
  return lines.join('\n');
}

/** The machine's CPU time so far by kind (Linux /proc/stat, in ticks), or null elsewhere. */
function cpuTimes() {
  try {
    const [user, nice, system, idle, iowait, irq, softirq, steal] = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    return { busy: user + nice + system + irq + softirq, idle: idle + iowait, steal };
  } catch {
    return null;
  }
}
/** Shares of the machine's CPU time between a and b: busy (any process), idle, stolen by the hypervisor. */
function cpuShares(a, b) {
  if (!a || !b) return null;
  const d = (k) => b[k] - a[k], all = d('busy') + d('idle') + d('steal');
  return { busy: d('busy') / all, idle: d('idle') / all, steal: d('steal') / all };
}

const load0 = os.loadavg(), cpu0 = cpuTimes();
const parts = [];
if (!v['no-node']) parts.push(await nodePart());
if (!v['no-browser']) parts.push(await browserPart());
for (const p of parts) for (const d of p.decoders) d.env = p.env;
const allTargets = parts.flatMap(targets);
// The same model everywhere: each decoder's greedy tokens and top-5 against mha-wasm f32 (1 thread) in Node, else in its page.
const reference = parts.flatMap((p) => p.decoders).find((d) => d.lib === 'mha-wasm' && d.weightType === 'f32' && d.threads === 1);
const agreements = reference ? parts.flatMap((p) => p.decoders).filter((d) => d !== reference).map((d) => agreement(reference, d)) : [];
const result = {
  date: new Date().toISOString(),
  machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, loadavgBefore: load0, loadavgAfter: os.loadavg(), cpuShares: cpuShares(cpu0, cpuTimes()) },
  options: { rounds, steps, prefill: PREFILL, weightTypes, threads }, decoderConfig: DECODER_CONFIG,
  bytesPerToken: Object.fromEntries(['f32', 'int8'].map((w) => [w, bytesPerToken(DECODER_CONFIG, w)])), parts, targets: allTargets, agreements,
};
fs.mkdirSync(path.join(root, 'build', 'bench'), { recursive: true });
fs.writeFileSync(path.join(root, 'build', 'bench', 'results-models.json'), JSON.stringify(result, null, 1));

console.log(`\nSmolLM-135M shapes (Llama, random weights), prefill ${PREFILL} tokens then ${steps} greedy steps; medians of ${rounds} rounds. ` +
  `Load average ${load0.map((x) => x.toFixed(1)).join(' ')} before, ${result.machine.loadavgAfter.map((x) => x.toFixed(1)).join(' ')} after, ${os.cpus().length} CPUs` +
  (result.machine.cpuShares ? `; over the run the CPUs were ${(100 * result.machine.cpuShares.busy).toFixed(0)}% busy (this run included), ${(100 * result.machine.cpuShares.idle).toFixed(0)}% idle, ` +
    `${(100 * result.machine.cpuShares.steal).toFixed(0)}% stolen by the hypervisor.` : '.'));
for (const p of parts) {
  const bw = (k) => `${p.bandwidth[k].gbPerS.toFixed(1)} GB/s (best of ${p.bandwidthBefore[k].gbPerS.toFixed(1)} before, ${p.bandwidthAfter[k].gbPerS.toFixed(1)} after)`;
  console.log(`${p.env} ${p.version}: copy bandwidth ${bw('copy')}, read + written; one wasm thread reads ${bw('read')}`);
  for (const n of p.notes) console.log(`  note: ${n}`);
}
console.log(`Bytes of weights read per decoding step: f32 ${(result.bytesPerToken.f32 / 1e6).toFixed(1)} MB, int8 ${(result.bytesPerToken.int8 / 1e6).toFixed(1)} MB`);
console.log(table(parts));
console.log('\nThe same model (greedy tokens of the warm-up round; the top 5 after the prefill and after step 1):');
for (const a of agreements)
  console.log(`  ${a.of}: ${a.greedySame}/${a.greedyOf} greedy tokens equal${a.top.map((t, i) => `; top-5 ${i ? 'after step 1' : 'after prefill'}: ${t.overlap}/5 shared, max |Δ logprob| ${t.maxLogprobDiff.toFixed(3)}`).join('')}`);
console.log('\nTargets:');
for (const t of allTargets)
  console.log(`  ${t.pass === null ? 'N/A ' : t.pass ? 'PASS' : 'FAIL'} ${t.who} ${t.target}: ${t.ratio === null ? '–' : `${t.ratio.toFixed(2)}×`}${t.info ? ` (${t.info})` : ''}`);
console.log('\nWritten to build/bench/results-models.json');
