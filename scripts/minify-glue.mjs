// Shrinks a relaxed-SIMD build's Emscripten glue in place with Emscripten's own
// JS optimizer (tools/acorn-optimizer.js: dead-code elimination, then whitespace):
// the JS half of what em++ does at -O2 and above. The relaxed builds link at -O1,
// where em++ skips it (CMakeLists.txt says why), and their glue would otherwise be
// twice the SIMD128 builds'. CMake runs it after each relaxed link:
//   node scripts/minify-glue.mjs <emscripten-root> <glue.js>
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const [emscripten, file] = process.argv.slice(2);
if (!emscripten || !file) {
  console.error('usage: node scripts/minify-glue.mjs <emscripten-root> <glue.js>');
  process.exit(2);
}
// Debian's Emscripten finds acorn in /usr/share/nodejs.
const env = { ...process.env, NODE_PATH: [process.env.NODE_PATH, '/usr/share/nodejs'].filter(Boolean).join(path.delimiter) };
const r = spawnSync(process.execPath, [path.join(emscripten, 'tools', 'acorn-optimizer.js'), file, 'AJSDCE', 'minifyWhitespace'],
  { env, encoding: 'utf8', maxBuffer: 64 << 20 });
if (r.status !== 0 || !r.stdout) {
  console.error(`minify-glue: ${file}: ${r.error ? r.error.message : r.stderr || `exited with ${r.status}`}`);
  process.exit(1);
}
fs.writeFileSync(file, r.stdout);
