// Builds what is missing or stale: the native library, tests and benchmark
// (build/native) and the two wasm builds (build/wasm -> dist/). CMake decides
// what is stale. Usage: node scripts/build.mjs [--native] [--wasm]
//
// Without Emscripten, dist/ is used only if it is provably what the current
// sources build: a successful wasm build writes dist/build-stamp.json with the
// SHA-256 of every input (WASM_INPUTS) and of every file it produced, and both
// are compared on use. Anything else is an error saying how to get Emscripten.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { FILES } from '../bindings/abi.js';
import { root, run } from './setup.mjs';

// The builds' files (bindings/abi.js) and the package.json that marks dist/ CommonJS.
export const DIST_FILES = [...FILES, 'package.json'];
export const STAMP_FILE = 'build-stamp.json';
// What the wasm build reads from the tree: [folder, file-name pattern]. The
// JS/C++ contract bindings/abi.js is compiled in too, through scripts/gen-abi.mjs
// (when they exist).
export const WASM_INPUTS = [['src', /\.(h|cpp)$/], ['bindings', /\.(cpp|h|in)$|^abi\.js$/], ['.', /^CMakeLists\.txt$/],
  ['scripts', /^gen-abi\.mjs$/]];
const INSTALL_HINT = 'run `npm run setup` as root, or `sudo apt-get install emscripten`';
const jobs = String(Math.max(1, os.cpus().length));

const sha256 = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** { 'src/kernels.cpp': sha256, ... } for every wasm build input under dir. */
export function hashInputs(dir = root) {
  const out = {};
  for (const [sub, pattern] of WASM_INPUTS) {
    const names = fs.existsSync(path.join(dir, sub)) ? fs.readdirSync(path.join(dir, sub)).filter((n) => pattern.test(n)).sort() : [];
    for (const n of names) {
      const file = path.join(dir, sub, n);
      if (fs.statSync(file).isFile()) out[path.posix.join(sub, n)] = sha256(file);
    }
  }
  return out;
}

function hashDist(dir) {
  return Object.fromEntries(DIST_FILES.map((f) => [f, fs.existsSync(path.join(dir, 'dist', f)) ? sha256(path.join(dir, 'dist', f)) : null]));
}

/** Records that dist/ under dir was built from `inputs` (default: the inputs as they are now). */
export function writeStamp(dir = root, inputs = hashInputs(dir)) {
  const stamp = { note: 'written by scripts/build.mjs after a successful wasm build', inputs, dist: hashDist(dir) };
  fs.writeFileSync(path.join(dir, 'dist', STAMP_FILE), JSON.stringify(stamp, null, 1) + '\n');
}

/** null if dist/ under dir is what its current sources build, else why not. */
export function distStaleness(dir = root) {
  const missing = DIST_FILES.filter((f) => !fs.existsSync(path.join(dir, 'dist', f)));
  if (missing.length) return `dist/ lacks ${missing.join(', ')}`;
  let stamp;
  try {
    stamp = JSON.parse(fs.readFileSync(path.join(dir, 'dist', STAMP_FILE), 'utf8'));
  } catch {
    return `dist/${STAMP_FILE} is missing or unreadable, so nothing shows which sources dist/ was built from`;
  }
  const now = hashInputs(dir), then = stamp?.inputs ?? {};
  const changed = [...new Set([...Object.keys(now), ...Object.keys(then)])].sort().filter((f) => now[f] !== then[f]);
  if (changed.length) {
    const what = changed.slice(0, 5).map((f) => !(f in then) ? `${f} (new)` : !(f in now) ? `${f} (removed)` : f);
    return `sources changed since dist/ was built: ${what.join(', ')}${changed.length > 5 ? `, and ${changed.length - 5} more` : ''}`;
  }
  const dist = hashDist(dir);
  const touched = DIST_FILES.filter((f) => dist[f] !== stamp?.dist?.[f]);
  if (touched.length) return `dist/ files changed since the build that stamped them: ${touched.join(', ')}`;
  return null;
}

export function haveEmscripten() {
  return fs.existsSync('/usr/bin/em++') || Boolean(process.env.EMSDK);
}

function configure(dir, args, env, cwd = root) {
  if (!fs.existsSync(path.join(cwd, dir, 'CMakeCache.txt'))) run(args[0], [...args.slice(1), '-S', '.', '-B', dir, '-DCMAKE_BUILD_TYPE=Release'], { env, cwd });
}

export function buildNative() {
  configure('build/native', ['cmake'], process.env);
  run('cmake', ['--build', 'build/native', '-j', jobs]);
}

/**
 * Builds dist/ with Emscripten, or, without it, checks that dist/ is up to date
 * with the sources and throws if it is not (or cannot be shown to be).
 * The options exist for tests: { haveEmscripten, root }.
 */
export function buildWasm({ haveEmscripten: emscripten = haveEmscripten(), root: dir = root } = {}) {
  if (!emscripten) {
    const stale = distStaleness(dir);
    if (stale) {
      throw new Error(`Emscripten (em++) is needed to build dist/: ${stale}.\n` +
        `Install it: ${INSTALL_HINT}; then run \`npm run build\` again.`);
    }
    console.log('build: Emscripten not found; dist/ is up to date with the sources (dist/build-stamp.json), using it');
    return;
  }
  // Debian's em++ needs acorn from /usr/share/nodejs.
  const env = { ...process.env, NODE_PATH: [process.env.NODE_PATH, '/usr/share/nodejs'].filter(Boolean).join(path.delimiter) };
  const before = hashInputs(dir);
  fs.rmSync(path.join(dir, 'dist', STAMP_FILE), { force: true });
  configure('build/wasm', ['emcmake', 'cmake'], env, dir);
  run('cmake', ['--build', 'build/wasm', '-j', jobs], { env, cwd: dir });
  // A source edited during the build may or may not be in dist/: no stamp then.
  const after = hashInputs(dir);
  if (JSON.stringify(after) === JSON.stringify(before)) writeStamp(dir, after);
  else console.log('build: sources changed during the wasm build; dist/ is left unstamped (run the build again)');
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
