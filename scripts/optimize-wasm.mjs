// Optimizes a relaxed-SIMD build's .wasm in place with binaryen's wasm-opt -O3, from
// the npm package binaryen (a dev dependency): the binaryen half of what em++ does at
// -O2 and above. The relaxed builds link at -O1, where em++ runs no binaryen, because
// Debian's binaryen 108 cannot read the final relaxed opcodes (CMakeLists.txt); the npm
// package (version 132) reads them. wasm-opt takes the module's features from its
// target_features section, and drops the function names as em++ does. Measured on the
// relaxed threaded build: 77.6 -> 72.8 KB gzipped, decoding and layer speed unchanged.
// Without the package the .wasm stays as linked, and this says so. CMake runs it after
// each relaxed link:
//   node scripts/optimize-wasm.mjs <module.wasm>
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const [file] = process.argv.slice(2);
if (!file) {
  console.error('usage: node scripts/optimize-wasm.mjs <module.wasm>');
  process.exit(2);
}
let wasmOpt;
try {
  wasmOpt = path.join(path.dirname(createRequire(import.meta.url).resolve('binaryen/package.json')), 'bin', 'wasm-opt');
} catch {
  console.log(`optimize-wasm: the npm package binaryen is not installed (\`npm ci\` installs it): ${path.basename(file)} stays as linked, about 5 KB larger gzipped`);
  process.exit(0);
}
const tmp = `${file}.opt`;
const r = spawnSync(process.execPath, [wasmOpt, '-O3', file, '-o', tmp], { encoding: 'utf8', maxBuffer: 64 << 20 });
if (r.status !== 0 || !fs.existsSync(tmp)) {
  fs.rmSync(tmp, { force: true });
  console.error(`optimize-wasm: ${file}: ${r.error ? r.error.message : r.stderr || `wasm-opt exited with ${r.status}`}`);
  process.exit(1);
}
fs.renameSync(tmp, file);
