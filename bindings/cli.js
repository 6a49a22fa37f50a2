#!/usr/bin/env node
// The package's command line: `npx mha-wasm quantize <in.safetensors> <out.safetensors>`.
// Node only; nothing imports it.
import fs from 'node:fs';
import path from 'node:path';
import { quantizeSafetensors } from './quantize.js';

const USAGE = `usage: mha-wasm quantize <in.safetensors> <out.safetensors> [--embeddings] [--float16]
  Writes the weight matrices as int8 per output channel (compressed-tensors layout:
  <name> I8 and <name>_scale F32 [out, 1]); norms, biases and embeddings stay float.
  --embeddings  quantize embedding tables too
  --float16     store what stays float as F16 (a value beyond float16's range is refused)
  A config.json beside the input (a Hugging Face model folder) is read: GPT-2's Conv1D
  matrices, stored [in, out], are then quantized per output column (<name>_scale [1, out]).
  A sharded checkpoint is quantized shard by shard; loadModel does not read
  model.safetensors.index.json, whose weight_map then lacks the _scale tensors.`;

function main(argv) {
  const [command, ...rest] = argv;
  if (command === '--help' || command === '-h' || command === undefined) return console.log(USAGE), 0;
  if (command !== 'quantize') return console.error(`mha-wasm: unknown command ${JSON.stringify(command)}\n${USAGE}`), 2;
  if (rest.includes('--help') || rest.includes('-h')) return console.log(USAGE), 0;
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
  const configFile = path.join(path.dirname(input), 'config.json');
  let config;
  if (fs.existsSync(configFile)) {
    try {
      config = JSON.parse(fs.readFileSync(configFile, 'utf8'));
    } catch (e) {
      return console.error(`mha-wasm: cannot read ${configFile}: ${e.message}`), 1;
    }
  }
  let out;
  try {
    out = quantizeSafetensors(bytes, { type: 'int8', embeddings: flags.includes('--embeddings'), floatDtype: flags.includes('--float16') ? 'F16' : 'F32', config });
  } catch (e) {
    return console.error(`mha-wasm: ${input}: ${e.message}`), 1;
  }
  try {
    fs.writeFileSync(output, out);
  } catch (e) {
    return console.error(`mha-wasm: cannot write ${output}: ${e.message}`), 1;
  }
  console.log(`mha-wasm: wrote ${output} (${(out.length / 1e6).toFixed(2)} MB, from ${(bytes.length / 1e6).toFixed(2)} MB${config ? `; read ${configFile}` : ''})`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
