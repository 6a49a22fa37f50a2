// Installs what building and testing need, so a newcomer types only `npm test`
// or `npm start`: Debian packages (when run as root; otherwise prints the
// command) and the npm dev dependencies.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// What each Debian package provides, checked by a file it installs.
const APT = [
  ['emscripten', '/usr/bin/em++'],
  ['libxsimd-dev', '/usr/include/xsimd/xsimd.hpp'],
  ['cmake', '/usr/bin/cmake'],
  ['g++', '/usr/bin/g++'],
  ['make', '/usr/bin/make'],
  ['libgtest-dev', '/usr/include/gtest/gtest.h'],
  ['libbenchmark-dev', '/usr/include/benchmark/benchmark.h'],
  ['wabt', '/usr/bin/wasm-objdump'],
  ['chromium', '/usr/bin/chromium'],  // browser tests (driven by playwright-core)
];

export function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}`);
}

export function setup({ extraApt = [] } = {}) {
  const missing = [...APT, ...extraApt].filter(([, file]) => !fs.existsSync(file)).map(([pkg]) => pkg);
  if (missing.length) {
    const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    if (!isRoot) {
      throw new Error(`missing Debian packages: ${missing.join(' ')}\n` +
        `install them with: sudo apt-get update && sudo apt-get install -y ${missing.join(' ')}`);
    }
    console.log(`setup: installing ${missing.join(' ')}`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    run('apt-get', ['update', '-q'], { env });
    run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { env });
  }
  const lock = path.join(root, 'package-lock.json');
  const stamp = path.join(root, 'node_modules', '.package-lock.json');
  const hasDeps = fs.existsSync(lock) && Object.keys(JSON.parse(fs.readFileSync(lock, 'utf8')).packages || {}).length > 1;
  if (hasDeps && (!fs.existsSync(stamp) || fs.statSync(stamp).mtimeMs < fs.statSync(lock).mtimeMs)) {
    console.log('setup: npm ci');
    run('npm', ['ci', '--no-audit', '--no-fund']);
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    setup();
  } catch (e) {
    console.error(`setup: ${e.message}`);
    process.exit(1);
  }
}
