// `npm test`: installs what is missing, builds, then runs the native C++ tests
// (CTest) and the Node tests (node --test).
import fs from 'node:fs';
import path from 'node:path';
import { root, setup, run } from './setup.mjs';
import { buildNative, buildWasm } from './build.mjs';

try {
  setup();
  buildNative();
  buildWasm();
  // The bundlers' self-contained builds (dist/*.inline.mjs) from the dist/ and bindings/ just built.
  run(process.execPath, [path.join('scripts', 'inline-dist.mjs')]);
  console.log('\n== native tests (CTest) ==');
  run('ctest', ['--test-dir', 'build/native', '--output-on-failure']);
  console.log('\n== Node tests (node --test) ==');
  const files = fs.readdirSync(path.join(root, 'tests')).filter((f) => f.endsWith('.test.mjs')).sort().map((f) => path.join('tests', f));
  run(process.execPath, ['--test', ...files]);
} catch (e) {
  console.error(`\nnpm test: ${e.message}`);
  process.exit(1);
}
