// Runs multi-head attention in Node and prints what each head looks at.
//   node examples/node.mjs "the cat sat on the mat"
import { init } from 'mha-wasm';

const sentence = process.argv[2] || 'the quick brown fox jumps over the lazy dog';
const tokens = sentence.trim().split(/\s+/);
const L = tokens.length, E = 32, H = 4;

// Deterministic pseudo-random numbers, so every run prints the same maps.
let seed = 42;
const rand = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
const tensor = (dims, scale = 1) => ({ data: Float32Array.from({ length: dims.reduce((a, b) => a * b) }, () => rand() * scale), dims });

// Token embeddings: one random vector per distinct word, plus sinusoidal positions.
const vocab = new Map();
const x = new Float32Array(L * E);
tokens.forEach((t, i) => {
  if (!vocab.has(t)) vocab.set(t, tensor([E]).data);
  for (let c = 0; c < E; c++) {
    const freq = 1 / 10000 ** ((2 * Math.floor(c / 2)) / E);
    x[i * E + c] = vocab.get(t)[c] + (c % 2 ? Math.cos(i * freq) : Math.sin(i * freq));
  }
});

const mha = await init({ threads: 'auto' });
console.log(`mha-wasm: ${mha.build}, ${mha.threads} thread(s)${mha.threadsNote ? ` (${mha.threadsNote})` : ''}`);
const layer = new mha.MultiHeadAttention({ embedDim: E, numHeads: H });
const s = 1 / Math.sqrt(E);
layer.setWeights({
  inProjWeight: tensor([3 * E, E], 3 * s).data, inProjBias: tensor([3 * E], s).data,
  outProjWeight: tensor([E, E], s).data, outProjBias: tensor([E], s).data,
});
const t0 = performance.now();
const { output, weights } = layer.forward({ data: x, dims: [L, E] }, null, null,
  { isCausal: true, needWeights: true, averageWeights: false });
const ms = performance.now() - t0;
console.log(`forward [${L}, ${E}] -> output dims [${output.dims}], weights dims [${weights.dims}] in ${ms.toFixed(3)} ms\n`);

const shades = ' .:-=+*#%@';
const width = Math.max(...tokens.map((t) => t.length));
for (let h = 0; h < H; h++) {
  console.log(`head ${h} (rows: queries, columns: keys; causal: no looking ahead)`);
  for (let i = 0; i < L; i++) {
    let row = '';
    for (let j = 0; j < L; j++) row += shades[Math.min(9, Math.floor(weights.data[(h * L + i) * L + j] * 10))].repeat(2);
    console.log(`  ${tokens[i].padStart(width)} |${row}|`);
  }
}
console.log(`\nfirst output row: [${Array.from(output.data.subarray(0, 6), (v) => v.toFixed(4)).join(', ')}, ...]`);
layer.dispose();
