#!/usr/bin/env node
// The package's command line: `npx mha-wasm quantize <in.safetensors> <out.safetensors>`.
// Node only; nothing imports it.
import fs from 'node:fs';
import { quantizeSafetensors } from './quantize.js';

const USAGE = `usage: mha-wasm quantize <in.safetensors> <out.safetensors> [--embeddings] [--float16]
  Writes the weight matrices as int8 per output channel (compressed-tensors layout:
  <name> I8 and <name>_scale F32 [out, 1]); norms, biases and embeddings stay float.
  --embeddings  quantize embedding tables too
  --float16     store what stays float as F16`;

function main(argv) {
  const [command, ...rest] = argv;
  if (command === '--help' || command === '-h' || command === undefined) return console.log(USAGE), 0;
  if (command !== 'quantize') return console.error(`mha-wasm: unknown command ${JSON.stringify(command)}\n${USAGE}`), 2;
  const flags = rest.filter((a) => a.startsWith('--')), files = rest.filter((a) => !a.startsWith('--'));
  const unknown = flags.filter((f) => f !== '--embeddings' && f !== '--float16');
  if (unknown.length || files.length !== 2) return console.error(`mha-wasm: ${unknown.length ? `unknown flag ${unknown[0]}` : 'quantize takes an input and an output file'}\n${USAGE}`), 2;
  const [input, output] = files;
  let bytes;
  try {
    bytes = fs.readFileSync(input);
  } catch (e) {
    return console.error(`mha-wasm: cannot read ${input}: ${e.message}`), 1;
  }
  try {
    const out = quantizeSafetensors(bytes, { type: 'int8', embeddings: flags.includes('--embeddings'), floatDtype: flags.includes('--float16') ? 'F16' : 'F32' });
    fs.writeFileSync(output, out);
    console.log(`mha-wasm: wrote ${output} (${(out.length / 1e6).toFixed(2)} MB, from ${(bytes.length / 1e6).toFixed(2)} MB)`);
    return 0;
  } catch (e) {
    return console.error(`mha-wasm: ${e.message}`), 1;
  }
}

process.exitCode = main(process.argv.slice(2));
