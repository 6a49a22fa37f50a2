// Builds what is missing or stale: the native library, tests and benchmark
// (build/native) and the two wasm builds (build/wasm -> dist/). CMake decides
// what is stale. Usage: node scripts/build.mjs [--native] [--wasm]
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { root, run } from './setup.mjs';

export const DIST_FILES = ['mha-wasm-threads.js', 'mha-wasm-threads.wasm', 'mha-wasm-threads.worker.js',
  'mha-wasm-simd.js', 'mha-wasm-simd.wasm', 'package.json'];
const jobs = String(Math.max(1, os.cpus().length));

function configure(dir, args, env) {
  if (!fs.existsSync(path.join(root, dir, 'CMakeCache.txt'))) run(args[0], [...args.slice(1), '-S', '.', '-B', dir, '-DCMAKE_BUILD_TYPE=Release'], { env });
}

export function buildNative() {
  configure('build/native', ['cmake'], process.env);
  run('cmake', ['--build', 'build/native', '-j', jobs]);
}

export function buildWasm() {
  const haveEmscripten = fs.existsSync('/usr/bin/em++') || process.env.EMSDK;
  if (!haveEmscripten) {
    if (DIST_FILES.every((f) => fs.existsSync(path.join(root, 'dist', f)))) {
      console.log('build: Emscripten not found; using the existing dist/ files');
      return;
    }
    throw new Error('Emscripten (em++) is needed to build dist/: run `npm run setup` as root, or apt-get install emscripten');
  }
  // Debian's em++ needs acorn from /usr/share/nodejs.
  const env = { ...process.env, NODE_PATH: [process.env.NODE_PATH, '/usr/share/nodejs'].filter(Boolean).join(path.delimiter) };
  configure('build/wasm', ['emcmake', 'cmake'], env);
  run('cmake', ['--build', 'build/wasm', '-j', jobs], { env });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const all = !args.includes('--native') && !args.includes('--wasm');
  try {
    if (all || args.includes('--native')) buildNative();
    if (all || args.includes('--wasm')) buildWasm();
  } catch (e) {
    console.error(`build: ${e.message}`);
    process.exit(1);
  }
}
