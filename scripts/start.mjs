// `npm start`: installs and builds what is missing, then serves the demo on
// http://127.0.0.1:8080 (npm start -- --port 9000, or PORT=9000).
import { setup } from './setup.mjs';
import { buildWasm } from './build.mjs';
import { main, parseArgs } from './serve.mjs';

try {
  const argv = process.argv.slice(2);
  parseArgs(argv);  // bad arguments fail before the build
  setup();
  buildWasm();
  await main(argv);
} catch (e) {
  console.error(`npm start: ${e.message}`);
  process.exit(1);
}
