// scripts/build.mjs without Emscripten: dist/ is used only when its stamp shows
// it was built from the sources as they are now; otherwise the build fails and
// says how to install Emscripten. Runs on a temporary copy of the wasm build's
// inputs and a fake dist/, with haveEmscripten: false (Emscripten itself stays
// installed and is never run here).
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUILDS, buildFiles } from '../bindings/abi.js';
import {
  DIST_FILES, RELAXED_BUILDS, REQUIRED_BUILDS, STAMP_FILE, WASM_INPUTS, buildWasm, distStaleness, emscriptenEnv, hashInputs, writeStamp,
} from '../scripts/build.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
let dir;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mha-build-test-'));
  for (const [sub, pattern] of WASM_INPUTS) {
    fs.mkdirSync(path.join(dir, sub), { recursive: true });
    for (const n of fs.readdirSync(path.join(root, sub)).filter((n) => pattern.test(n)))
      fs.copyFileSync(path.join(root, sub, n), path.join(dir, sub, n));
  }
  fs.mkdirSync(path.join(dir, 'dist'));
  for (const f of DIST_FILES) fs.writeFileSync(path.join(dir, 'dist', f), `fake ${f}\n`);
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const noEmscripten = () => buildWasm({ haveEmscripten: false, root: dir });
const refused = (why) => (e) => {
  assert.match(e.message, /Emscripten \(em\+\+\) is needed/);
  assert.match(e.message, /npm run setup/);
  assert.match(e.message, /apt-get install emscripten/);
  assert.match(e.message, why);
  return true;
};
const edit = (rel, text = '\n// edited\n') => fs.appendFileSync(path.join(dir, rel), text);

test('the inputs are every src/*.{h,cpp}, bindings/*.{cpp,h,in}, CMakeLists.txt and the scripts the build runs', () => {
  const files = Object.keys(hashInputs(dir));
  assert.ok(files.includes('scripts/gen-abi.mjs') && files.includes('scripts/minify-glue.mjs') && files.includes('scripts/optimize-wasm.mjs'), files.join(' '));
  assert.ok(files.includes('CMakeLists.txt'));
  assert.ok(files.includes('bindings/extern-post.js.in'));
  assert.ok(files.some((f) => /^src\/.*\.cpp$/.test(f)) && files.some((f) => /^src\/.*\.h$/.test(f)));
  assert.ok(files.some((f) => /^bindings\/embind_.*\.cpp$/.test(f)));
  // The wrapper's JS is not compiled in; only the contract abi.js is.
  assert.ok(!files.some((f) => (f.endsWith('.js') && f !== 'bindings/abi.js') || f.endsWith('.d.ts')), files.join(' '));
});

test('dist/ files present but no stamp: refused (nothing shows what they were built from)', () => {
  assert.throws(noEmscripten, refused(/build-stamp\.json is missing/));
});

test('a stamp matching the sources: dist/ is used', () => {
  writeStamp(dir);
  assert.equal(distStaleness(dir), null);
  assert.doesNotThrow(noEmscripten);
});

for (const rel of ['src/kernels.cpp', 'src/kernels.h', 'bindings/embind_layer.cpp', 'bindings/extern-post.js.in', 'CMakeLists.txt']) {
  test(`${rel} edited after the build: refused, naming it`, () => {
    writeStamp(dir);
    edit(rel);
    assert.throws(noEmscripten, refused(new RegExp(`sources changed since dist/ was built: ${rel.replace(/\./g, '\\.')}`)));
  });
}

test('a new or removed source file: refused', () => {
  writeStamp(dir);
  fs.writeFileSync(path.join(dir, 'src', 'extra.h'), '#pragma once\n');
  assert.throws(noEmscripten, refused(/src\/extra\.h \(new\)/));
  fs.rmSync(path.join(dir, 'src', 'extra.h'));
  assert.doesNotThrow(noEmscripten);
  fs.rmSync(path.join(dir, 'src', 'kernels.h'));
  assert.throws(noEmscripten, refused(/src\/kernels\.h \(removed\)/));
});

test('an edit undone: the stamp matches again (contents, not times)', () => {
  writeStamp(dir);
  const file = path.join(dir, 'src', 'mha.cpp');
  const text = fs.readFileSync(file);
  edit('src/mha.cpp');
  assert.throws(noEmscripten);
  fs.writeFileSync(file, text);
  fs.utimesSync(file, new Date(), new Date(Date.now() + 60_000));
  assert.doesNotThrow(noEmscripten);
});

test('bindings/abi.js and scripts/gen-abi.mjs (compiled in as abi.h) count as sources', () => {
  for (const rel of ['bindings/abi.js', 'scripts/gen-abi.mjs']) {
    writeStamp(dir);
    edit(rel);
    assert.throws(noEmscripten, refused(new RegExp(rel.replace(/\./g, '\\.'))));
  }
});

test('files other than the inputs do not matter', () => {
  writeStamp(dir);
  fs.writeFileSync(path.join(dir, 'bindings', 'index.js'), 'export {};\n');
  fs.writeFileSync(path.join(dir, 'src', 'notes.txt'), 'x\n');
  assert.doesNotThrow(noEmscripten);
});

test('a dist/ file replaced or missing after the stamp: refused', () => {
  writeStamp(dir);
  fs.writeFileSync(path.join(dir, 'dist', 'mha-wasm-simd.wasm'), 'other bytes\n');
  assert.throws(noEmscripten, refused(/dist\/ files changed since the build that stamped them: mha-wasm-simd\.wasm/));
  writeStamp(dir);
  fs.rmSync(path.join(dir, 'dist', 'mha-wasm-threads.worker.js'));
  assert.throws(noEmscripten, refused(/dist\/ lacks mha-wasm-threads\.worker\.js/));
});

const relaxedFiles = RELAXED_BUILDS.flatMap((b) => buildFiles(BUILDS[b]));

test('built without the relaxed-SIMD toolchain: a dist/ without the relaxed builds is up to date, and stamped so', () => {
  for (const f of relaxedFiles) fs.rmSync(path.join(dir, 'dist', f));
  writeStamp(dir);
  const stamp = JSON.parse(fs.readFileSync(path.join(dir, 'dist', STAMP_FILE), 'utf8'));
  assert.deepEqual(stamp.builds, REQUIRED_BUILDS);
  for (const f of relaxedFiles) assert.equal(stamp.dist[f], null, f);
  assert.equal(distStaleness(dir), null);
  assert.doesNotThrow(noEmscripten);
  // Relaxed files that appear afterwards were not built from these sources.
  fs.writeFileSync(path.join(dir, 'dist', relaxedFiles[0]), 'from elsewhere\n');
  assert.throws(noEmscripten, refused(new RegExp(`dist/ files changed since the build that stamped them: ${relaxedFiles[0].replace(/\./g, '\\.')}`)));
});

test('relaxed builds stamped, then a file of theirs missing: refused, naming it', () => {
  writeStamp(dir);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'dist', STAMP_FILE), 'utf8')).builds, Object.keys(BUILDS));
  fs.rmSync(path.join(dir, 'dist', 'mha-wasm-relaxed-threads.worker.js'));
  assert.throws(noEmscripten, refused(/dist\/ lacks mha-wasm-relaxed-threads\.worker\.js/));
});

test('the SIMD128 builds are never optional', () => {
  for (const f of relaxedFiles) fs.rmSync(path.join(dir, 'dist', f));
  fs.rmSync(path.join(dir, 'dist', 'mha-wasm-simd.js'));
  writeStamp(dir);
  assert.throws(noEmscripten, refused(/dist\/ lacks mha-wasm-simd\.js/));
});

test('no dist/ at all, or an unreadable stamp: refused', () => {
  fs.writeFileSync(path.join(dir, 'dist', STAMP_FILE), '{ not json');
  assert.throws(noEmscripten, refused(/missing or unreadable/));
  fs.rmSync(path.join(dir, 'dist'), { recursive: true });
  assert.throws(noEmscripten, refused(/dist\/ lacks/));
});

test('em++ runs without npm scripts\' node_modules/.bin on PATH (the npm package binaryen\'s wasm-opt would rewrite the SIMD128 builds)', () => {
  const sep = path.delimiter;
  const env = emscriptenEnv({ PATH: ['/a/node_modules/.bin', '/usr/local/bin', '/b/node_modules/.bin/', '/usr/bin', '/c/node_modules/.binx'].join(sep), NODE_PATH: '/x', KEEP: '1' });
  assert.equal(env.PATH, ['/usr/local/bin', '/usr/bin', '/c/node_modules/.binx'].join(sep));
  assert.equal(env.NODE_PATH, ['/x', '/usr/share/nodejs'].join(sep));
  assert.equal(env.KEEP, '1');
});
