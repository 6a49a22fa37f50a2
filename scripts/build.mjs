// Builds what is missing or stale: the native library, tests and benchmark
// (build/native), the SIMD128 wasm builds (build/wasm -> dist/) and, where the
// relaxed-SIMD toolchain is installed, the relaxed-SIMD builds (build/wasm-relaxed
// -> dist/). CMake decides what is stale. Usage: node scripts/build.mjs [--native] [--wasm]
//
// The relaxed builds are optional: Debian's em++ 3.1.6 drives clang-19 for them
// (RELAXED_ENV; clang-19, lld-19 and llvm-19 from apt, see APT_OPTIONAL in
// setup.mjs). Without those packages, or with MHA_NO_RELAXED=1 in the environment
// (a quicker build), they are skipped, their files are removed from dist/, and the
// package works with the SIMD128 builds alone: init() then never picks a relaxed
// build (bindings/index.js).
//
// Without Emscripten, dist/ is used only if it is provably what the current
// sources build: a successful wasm build writes dist/build-stamp.json with the
// SHA-256 of every input (WASM_INPUTS), the builds it produced, and the SHA-256
// of every file it produced (null for the files of a skipped build), and all
// are compared on use. Anything else is an error saying how to get Emscripten.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { BUILDS, FILES, buildFiles } from '../bindings/abi.js';
import { APT_OPTIONAL, root, run } from './setup.mjs';

// Every file a wasm build may write (bindings/abi.js), and the package.json that marks dist/ CommonJS.
export const DIST_FILES = [...FILES, 'package.json'];
export const STAMP_FILE = 'build-stamp.json';
/** The builds every wasm build produces; the relaxed ones need the optional toolchain. */
export const REQUIRED_BUILDS = Object.keys(BUILDS).filter((b) => !BUILDS[b].relaxed);
export const RELAXED_BUILDS = Object.keys(BUILDS).filter((b) => BUILDS[b].relaxed);
// What the wasm build reads from the tree: [folder, file-name pattern]. The
// JS/C++ contract bindings/abi.js is compiled in too, through scripts/gen-abi.mjs
// (when they exist).
export const WASM_INPUTS = [['src', /\.(h|cpp)$/], ['bindings', /\.(cpp|h|in)$|^abi\.js$/], ['.', /^CMakeLists\.txt$/],
  ['scripts', /^(gen-abi|minify-glue|optimize-wasm)\.mjs$/]];
/**
 * What makes Debian's em++ 3.1.6 use clang-19 and wasm-ld-19 (its config appends
 * a version to tool names) and read the link's metadata itself instead of asking
 * binaryen 108, which cannot parse the final relaxed opcodes. The relaxed builds
 * link at -O1 with WASM_BIGINT, where em++ runs no binaryen pass (CMakeLists.txt).
 */
export const RELAXED_ENV = Object.freeze({ EM_LLVM_ADD_VERSION: '19', EM_CLANG_ADD_VERSION: '19', EMCC_READ_METADATA: 'python' });
const INSTALL_HINT = 'run `npm run setup` as root, or `sudo apt-get install emscripten`';
const jobs = String(Math.max(1, os.cpus().length));

const sha256 = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/**
 * The environment em++ runs in: Debian's em++ finds acorn in /usr/share/nodejs (NODE_PATH), and
 * it calls binaryen's tools by name, so PATH must not lead to the npm package binaryen's
 * (node_modules/.bin, which npm scripts put first): its wasm-opt 132 rewrites the SIMD128 builds
 * in ways Emscripten 3.1.6's glue does not expect (the module's imports no longer match). The
 * relaxed builds reach that package by its path instead (scripts/optimize-wasm.mjs).
 */
export function emscriptenEnv(env = process.env) {
  const PATH = (env.PATH ?? '').split(path.delimiter).filter((d) => !/(^|[\\/])node_modules[\\/]\.bin[\\/]?$/.test(d)).join(path.delimiter);
  return { ...env, PATH, NODE_PATH: [env.NODE_PATH, '/usr/share/nodejs'].filter(Boolean).join(path.delimiter) };
}

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

/** The builds whose files are all in dist/ under dir. */
export function builtBuilds(dir = root) {
  return Object.keys(BUILDS).filter((b) => buildFiles(BUILDS[b]).every((f) => fs.existsSync(path.join(dir, 'dist', f))));
}

/**
 * Records that dist/ under dir was built from `inputs` (default: the inputs as
 * they are now), with the builds whose files are there.
 */
export function writeStamp(dir = root, inputs = hashInputs(dir)) {
  const stamp = { note: 'written by scripts/build.mjs after a successful wasm build', inputs, builds: builtBuilds(dir), dist: hashDist(dir) };
  fs.writeFileSync(path.join(dir, 'dist', STAMP_FILE), JSON.stringify(stamp, null, 1) + '\n');
}

/** null if dist/ under dir is what its current sources build, else why not. */
export function distStaleness(dir = root) {
  const required = ['package.json', ...REQUIRED_BUILDS.flatMap((b) => buildFiles(BUILDS[b]))];
  const lacking = (files) => files.filter((f) => !fs.existsSync(path.join(dir, 'dist', f)));
  if (lacking(required).length) return `dist/ lacks ${lacking(required).join(', ')}`;
  let stamp;
  try {
    stamp = JSON.parse(fs.readFileSync(path.join(dir, 'dist', STAMP_FILE), 'utf8'));
  } catch {
    return `dist/${STAMP_FILE} is missing or unreadable, so nothing shows which sources dist/ was built from`;
  }
  const stamped = Array.isArray(stamp?.builds) ? stamp.builds.filter((b) => Object.hasOwn(BUILDS, b)) : [];
  const gone = lacking(stamped.flatMap((b) => buildFiles(BUILDS[b])));
  if (gone.length) return `dist/ lacks ${gone.join(', ')}`;
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

/** The optional packages the relaxed builds need that are not installed (setup.mjs APT_OPTIONAL). */
export function missingRelaxedToolchain() {
  return APT_OPTIONAL.filter(([, file]) => !fs.existsSync(file)).map(([pkg]) => pkg);
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
 * Returns { skipped: null or why the relaxed builds were not built }.
 * The options exist for tests: { haveEmscripten, root }.
 */
export function buildWasm({ haveEmscripten: emscripten = haveEmscripten(), root: dir = root } = {}) {
  if (!emscripten) {
    const stale = distStaleness(dir);
    if (stale) {
      throw new Error(`Emscripten (em++) is needed to build dist/: ${stale}.\n` +
        `Install it: ${INSTALL_HINT}; then run \`npm run build\` again.`);
    }
    const absent = RELAXED_BUILDS.filter((b) => !builtBuilds(dir).includes(b));
    console.log('build: Emscripten not found; dist/ is up to date with the sources (dist/build-stamp.json), using it' +
      (absent.length ? ` (without the ${absent.map((b) => BUILDS[b].file).join(', ')} builds)` : ''));
    return { skipped: absent.length ? 'not in dist/' : null };
  }
  const env = emscriptenEnv();
  const before = hashInputs(dir);
  fs.rmSync(path.join(dir, 'dist', STAMP_FILE), { force: true });
  configure('build/wasm', ['emcmake', 'cmake'], env, dir);
  run('cmake', ['--build', 'build/wasm', '-j', jobs], { env, cwd: dir });
  const missing = missingRelaxedToolchain();
  const off = process.env.MHA_NO_RELAXED === '1';
  let skipped = null;
  if (missing.length === 0 && !off) {
    const relaxedEnv = { ...env, ...RELAXED_ENV };
    configure('build/wasm-relaxed', ['emcmake', 'cmake', '-DMHA_RELAXED=ON'], relaxedEnv, dir);
    run('cmake', ['--build', 'build/wasm-relaxed', '-j', jobs], { env: relaxedEnv, cwd: dir });
  } else {
    // Files of an earlier relaxed build would not match these sources: they go.
    for (const b of RELAXED_BUILDS) for (const f of buildFiles(BUILDS[b])) fs.rmSync(path.join(dir, 'dist', f), { force: true });
    skipped = off ? 'MHA_NO_RELAXED=1' : `${missing.join(', ')} not installed`;
    console.log(`build: relaxed-SIMD builds skipped (${skipped}${off ? '' : '; `npm run setup` as root installs them'}); ` +
      'the package works without them, with the SIMD128 builds');
  }
  // A source edited during the build may or may not be in dist/: no stamp then.
  const after = hashInputs(dir);
  if (JSON.stringify(after) === JSON.stringify(before)) writeStamp(dir, after);
  else console.log('build: sources changed during the wasm build; dist/ is left unstamped (run the build again)');
  return { skipped };
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
