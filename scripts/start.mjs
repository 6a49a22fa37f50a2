// `npm start`: installs and builds what is missing, then runs the Node example.
import path from 'node:path';
import { root, setup, run } from './setup.mjs';
import { buildWasm } from './build.mjs';

try {
  setup();
  buildWasm();
  run(process.execPath, [path.join(root, 'examples', 'node.mjs'), ...process.argv.slice(2)]);
} catch (e) {
  console.error(`npm start: ${e.message}`);
  process.exit(1);
}
