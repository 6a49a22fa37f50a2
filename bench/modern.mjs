// `npm run bench:modern` (also the last group of `npm run bench`): the
// performance targets of the modern-attention options, on one thread in Node.
//
//   1. Grouped attention with numKvHeads = numHeads / 4 (1 for 4 heads) is not
//      slower than full multi-head attention with the same numHeads:
//      S1-shaped (1x128, E 768, 12 heads vs 12/3), S4-shaped (1x2048, E 256,
//      4 heads vs 4/1) and S4 causal.
//   2. The rotary embedding (rope: true) adds under 5% to an S1-shaped forward.
//   3. A causal sliding-window layer (E 256, 4 heads, W 512) is linear in L:
//      time(L = 16384) <= 1.3 x 8 x time(L = 2048).
//
// The two contestants of each case run interleaved in this one process, in
// rounds that alternate which goes first; a sample is a batch of forwards
// (about --target-ms long) timed by CPU time (process.cpuUsage: the forward
// runs on one thread, and time other processes hold the core is not counted)
// and by wall time.
// Each round gives one ratio of its two CPU samples; the verdict compares the
// median of these paired ratios with the limit, and their 95% interval (the
// boxplot notch, median ± 1.57 IQR / sqrt(rounds)) says how sure it is: a
// verdict whose interval contains the limit is marked "(within noise)". Pairing
// cancels the load the machine's other work puts on both samples of a round;
// the ratio of the two contestants' medians, CPU and wall, is printed beside it
// (on a loaded machine it wanders more). An A/A case (two identical layers)
// shows the resolution of the whole measurement. The S1-shaped cases run three
// times the rounds in shorter samples: the rotary limit (5%) is close to the
// noise.
//
// The contestants of a case compute what they should: the full layer's weights
// are the grouped layer's with each key/value head repeated for its query heads
// (Hugging Face's repeat_kv), so both give the same output; the window layer's
// first 2048 output rows at L = 16384 are its output at L = 2048; rope changes
// the output. Prints a table and writes build/bench/results-modern.json.
//
//   npm run bench:modern [-- --rounds 15 --target-ms 250 --cases gqa-S1,rope-S1]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { init } from '../bindings/index.js';
import { makeData, maxRelDiff, median } from './peers.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));

// Each case: its contestants a (the baseline) and b, the target's ratio
// b / (per · a) and its limit (`strict`: the ratio must stay below it; null:
// no target); roundsFactor times --rounds rounds, samples of sampleFactor times
// --target-ms.
const CASES = [
  { id: 'aa-S1', target: 'noise floor (A/A)', B: 1, L: 128, E: 768, H: 12, limit: null, roundsFactor: 3, sampleFactor: 0.4 },
  { id: 'gqa-S1', target: 'grouped KV heads not slower', B: 1, L: 128, E: 768, H: 12, Hkv: 3, limit: 1.0, roundsFactor: 3, sampleFactor: 0.4 },
  { id: 'gqa-S4', target: 'grouped KV heads not slower', B: 1, L: 2048, E: 256, H: 4, Hkv: 1, limit: 1.0 },
  { id: 'gqa-S4c', target: 'grouped KV heads not slower', B: 1, L: 2048, E: 256, H: 4, Hkv: 1, causal: true, limit: 1.0 },
  { id: 'rope-S1', target: 'rotary adds < 5%', B: 1, L: 128, E: 768, H: 12, limit: 1.05, strict: true, roundsFactor: 3, sampleFactor: 0.4 },
  { id: 'window', target: 'sliding window linear in L', B: 1, L: 2048, L2: 16384, E: 256, H: 4, window: 512, causal: true, per: 8, limit: 1.3,
    sampleFactor: 4 },
];

function args(argv) {
  const { values } = parseArgs({ args: argv, options: { rounds: { type: 'string', default: '15' }, 'target-ms': { type: 'string', default: '250' },
    cases: { type: 'string', default: CASES.map((c) => c.id).join(',') } } });
  const a = { rounds: Number(values.rounds), targetMs: Number(values['target-ms']), cases: values.cases.split(',') };
  if (!(Number.isInteger(a.rounds) && a.rounds > 0) || !(a.targetMs > 0)) throw new Error('--rounds and --target-ms must be positive numbers');
  const unknown = a.cases.filter((id) => !CASES.some((c) => c.id === id));
  if (unknown.length) throw new Error(`unknown case ${unknown.join(', ')} (cases: ${CASES.map((c) => c.id).join(', ')})`);
  return a;
}

/**
 * Packed in-projection weights [(H + 2·Hkv)·D, E] of a grouped layer taken from
 * a full layer's [3E, E] (its first Hkv key/value heads), and the same grouped
 * weights with every key/value head repeated for its H / Hkv query heads, [3E, E].
 */
function groupedWeights(w, E, H, Hkv) {
  const D = E / H, g = H / Hkv, rows = (r0, n) => w.inProjWeight.subarray(r0 * E, (r0 + n) * E);
  const bias = (r0, n) => w.inProjBias.subarray(r0, r0 + n);
  const grouped = { inProjWeight: new Float32Array((H + 2 * Hkv) * D * E), inProjBias: new Float32Array((H + 2 * Hkv) * D),
    outProjWeight: w.outProjWeight, outProjBias: w.outProjBias };
  const full = { inProjWeight: new Float32Array(3 * E * E), inProjBias: new Float32Array(3 * E), outProjWeight: w.outProjWeight, outProjBias: w.outProjBias };
  grouped.inProjWeight.set(rows(0, E)), grouped.inProjBias.set(bias(0, E));
  full.inProjWeight.set(rows(0, E)), full.inProjBias.set(bias(0, E));
  for (const [part, src, dstG] of [[1, E, E], [2, 2 * E, E + Hkv * D]]) {  // keys, then values
    for (let kv = 0; kv < Hkv; kv++) {
      grouped.inProjWeight.set(rows(src + kv * D, D), (dstG + kv * D) * E);
      grouped.inProjBias.set(bias(src + kv * D, D), dstG + kv * D);
      for (let r = 0; r < g; r++) {
        const h = kv * g + r;
        full.inProjWeight.set(rows(src + kv * D, D), (part * E + h * D) * E);
        full.inProjBias.set(bias(src + kv * D, D), part * E + h * D);
      }
    }
  }
  return { grouped, full };
}

/** A contestant: a layer and its input; run() returns the output data. */
function contestant(mha, name, options, weights, x, dims, forwardOptions) {
  const layer = new mha.MultiHeadAttention(options);
  layer.setWeights(weights);
  const input = { data: x, dims };
  const run = () => layer.forward(input, null, null, forwardOptions).output.data;
  return { name, options, run, dispose: () => layer.dispose() };
}

/** The two contestants of a case and the check that they compute what they should. */
function contestants(mha, c) {
  const causal = { isCausal: !!c.causal };
  if (c.id.startsWith('gqa')) {
    const d = makeData(c), { grouped, full } = groupedWeights(d.weights, c.E, c.H, c.Hkv), dims = [c.B, c.L, c.E];
    return {
      a: contestant(mha, `MHA ${c.H} heads`, { embedDim: c.E, numHeads: c.H }, full, d.x, dims, causal),
      b: contestant(mha, `GQA ${c.H}/${c.Hkv} KV heads`, { embedDim: c.E, numHeads: c.H, numKvHeads: c.Hkv }, grouped, d.x, dims, causal),
      check: (ya, yb) => ({ what: 'grouped output = full output with repeated KV heads (max rel. diff < 1e-4)', value: maxRelDiff(yb, ya), ok: maxRelDiff(yb, ya) < 1e-4 }),
    };
  }
  if (c.id.startsWith('aa')) {
    const d = makeData(c), dims = [c.B, c.L, c.E], opts = { embedDim: c.E, numHeads: c.H };
    return {
      a: contestant(mha, 'layer 1', opts, d.weights, d.x, dims, causal),
      b: contestant(mha, 'layer 2 (the same)', opts, d.weights, d.x, dims, causal),
      check: (ya, yb) => ({ what: 'identical layers give identical outputs', value: maxRelDiff(yb, ya), ok: maxRelDiff(yb, ya) === 0 }),
    };
  }
  if (c.id.startsWith('rope')) {
    const d = makeData(c), dims = [c.B, c.L, c.E];
    return {
      a: contestant(mha, 'no positions', { embedDim: c.E, numHeads: c.H }, d.weights, d.x, dims, causal),
      b: contestant(mha, 'rope: true', { embedDim: c.E, numHeads: c.H, rope: true }, d.weights, d.x, dims, causal),
      check: (ya, yb) => ({ what: 'rope changes the output (max rel. diff > 1e-3), finite', value: maxRelDiff(yb, ya),
        ok: maxRelDiff(yb, ya) > 1e-3 && yb.every(Number.isFinite) }),
    };
  }
  const d = makeData({ ...c, L: c.L2 }), opts = { embedDim: c.E, numHeads: c.H, slidingWindow: c.window };
  return {
    a: contestant(mha, `L ${c.L}`, opts, d.weights, d.x.subarray(0, c.B * c.L * c.E), [c.B, c.L, c.E], causal),
    b: contestant(mha, `L ${c.L2}`, opts, d.weights, d.x, [c.B, c.L2, c.E], causal),
    check: (ya, yb) => ({ what: `the first ${c.L} rows at L ${c.L2} = the output at L ${c.L} (max rel. diff < 1e-5)`,
      value: maxRelDiff(yb.subarray(0, ya.length), ya), ok: maxRelDiff(yb.subarray(0, ya.length), ya) < 1e-5 }),
  };
}

/** Times n forwards: per-forward CPU and wall ms. */
function sample(x, n) {
  const c0 = process.cpuUsage(), t0 = performance.now();
  for (let i = 0; i < n; i++) x.run();
  const wall = performance.now() - t0, cpu = process.cpuUsage(c0);
  return { cpu: (cpu.user + cpu.system) / 1000 / n, wall: wall / n };
}

/** Median of a and its 95% interval (the boxplot notch: median ± 1.57 IQR / sqrt(n)). */
function notch(a) {
  const b = [...a].sort((x, y) => x - y), q = (p) => {  // linear interpolation between order statistics
    const i = p * (b.length - 1), lo = Math.floor(i);
    return b[lo] + (b[Math.min(lo + 1, b.length - 1)] - b[lo]) * (i - lo);
  };
  const m = median(b), h = 1.57 * (q(0.75) - q(0.25)) / Math.sqrt(b.length);
  return { median: m, interval: [m - h, m + h] };
}

function runCase(mha, c, a, log) {
  const { a: ca, b: cb, check } = contestants(mha, c);
  const pair = [ca, cb];
  const targetMs = a.targetMs * (c.sampleFactor ?? 1);
  for (const x of pair) {  // warm up; a batch of n forwards takes about targetMs
    x.output = x.run();
    const t = Math.min(sample(x, 1).wall, sample(x, 1).wall);
    x.n = Math.max(1, Math.round(targetMs / t));
    x.cpu = [], x.wall = [];
  }
  const verified = check(ca.output, cb.output);
  const rounds = a.rounds * (c.roundsFactor ?? 1);
  for (let r = 0; r < rounds; r++) {
    for (const x of r % 2 ? [cb, ca] : pair) {
      const s = sample(x, x.n);
      x.cpu.push(s.cpu), x.wall.push(s.wall);
    }
  }
  const per = c.per ?? 1;
  const roundRatios = ca.cpu.map((t, r) => cb.cpu[r] / (per * t));
  const ratio = median(cb.cpu) / (per * median(ca.cpu)), wallRatio = median(cb.wall) / (per * median(ca.wall));
  const paired = notch(roundRatios), r = paired.median;
  const pass = c.limit === null ? null : c.strict ? r < c.limit : r <= c.limit;
  const noisy = c.limit !== null && paired.interval[0] <= c.limit && paired.interval[1] >= c.limit;
  log(`${c.id}: ${cb.name} / ${per > 1 ? `(${per} x ${ca.name})` : ca.name} = ${r.toFixed(3)} (CPU, per round)`);
  for (const x of pair) x.dispose();
  return {
    id: c.id, target: c.target, shape: { B: c.B, L: c.L, ...(c.L2 ? { L2: c.L2 } : {}), E: c.E, H: c.H, ...(c.Hkv ? { Hkv: c.Hkv } : {}),
      ...(c.window ? { window: c.window } : {}), causal: !!c.causal },
    contestants: pair.map((x) => ({ name: x.name, options: x.options, forwardsPerSample: x.n, cpuMs: median(x.cpu), wallMs: median(x.wall),
      cpuSamples: x.cpu, wallSamples: x.wall })),
    rounds, ratio: { definition: per > 1 ? `b / (${per} a)` : 'b / a', perRound: paired, ofMediansCpu: ratio, ofMediansWall: wallRatio },
    limit: c.limit, comparison: c.strict ? '<' : '<=', pass, withinNoise: noisy, check: verified,
  };
}

const fmt = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

function table(results) {
  const lines = ['| target | case | a | b | a ms CPU (wall) | b ms CPU (wall) | ratio per round, CPU: median [95%] | ratio of medians CPU (wall) | limit | verdict |',
    '|---|---|---|---|---|---|---|---|---|---|'];
  for (const r of results) {
    const [a, b] = r.contestants, s = r.shape;
    const shape = `${s.B}x${s.L2 ? `${s.L}/${s.L2}` : s.L}x${s.E}/${s.H}${s.window ? ` W${s.window}` : ''}${s.causal ? ' causal' : ''}`;
    lines.push(`| ${r.target} | ${r.id} ${shape} | ${a.name} | ${b.name} | ${fmt(a.cpuMs)} (${fmt(a.wallMs)}) | ${fmt(b.cpuMs)} (${fmt(b.wallMs)}) | ` +
      `${r.ratio.definition} = ${r.ratio.perRound.median.toFixed(3)} [${r.ratio.perRound.interval.map((q) => q.toFixed(3)).join('–')}] | ` +
      `${r.ratio.ofMediansCpu.toFixed(3)} (${r.ratio.ofMediansWall.toFixed(3)}) | ${r.limit === null ? '–' : `${r.comparison} ${r.limit}`} | ` +
      `${r.pass === null ? '–' : r.pass ? 'PASS' : 'FAIL'}${r.withinNoise ? ' (within noise)' : ''} |`);
  }
  return lines.join('\n');
}

async function main() {
  const a = args(process.argv.slice(2));
  const mha = await init({ threads: 1 });
  const log = (m) => process.stderr.write(`  ${m}\n`);
  const git = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' });
  const info = { date: new Date().toISOString().slice(0, 10), node: process.version, cpu: os.cpus()[0].model, cores: os.cpus().length,
    build: mha.build, threads: mha.threads, commit: git.status === 0 ? git.stdout.trim() : null, rounds: a.rounds, targetMs: a.targetMs,
    loadavgBefore: os.loadavg()[0] };
  const results = [];
  for (const c of CASES.filter((x) => a.cases.includes(x.id))) results.push(runCase(mha, c, a, log));
  info.loadavgAfter = os.loadavg()[0];
  const out = path.join(root, 'build', 'bench');
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'results-modern.json'), JSON.stringify({ info, results }, null, 1));
  console.log(`\nNode ${info.node}, ${info.cpu} (${info.cores} cores), ${info.build} on 1 thread, ${info.date}, load average ` +
    `${info.loadavgBefore.toFixed(1)} -> ${info.loadavgAfter.toFixed(1)}. Medians of ${a.rounds} interleaved rounds ` +
    `(${3 * a.rounds} for S1), ms per forward; the verdict is on the median of the rounds' CPU-time ratios.`);
  console.log(table(results));
  const bad = results.filter((r) => !r.check.ok);
  if (bad.length) {
    console.error(`wrong outputs: ${bad.map((r) => `${r.id}: ${r.check.what}, got ${r.check.value}`).join('; ')}`);
    process.exit(1);
  }
  console.log(`Checked: ${[...new Set(results.map((r) => r.check.what))].join('; ')}.`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url))
  main().catch((e) => { console.error(`bench:modern: ${e.message}`); process.exit(1); });
