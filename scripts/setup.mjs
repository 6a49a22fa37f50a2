// Installs what building and testing need, so a newcomer types only `npm test`
// or `npm start`: Debian packages (when run as root; otherwise prints the
// command), the npm dev dependencies, and on linux-x64 a Node.js 22 (node22.mjs).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { installNode22 } from './node22.mjs';

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

// Optional: the toolchain for relaxed-SIMD builds. Debian's em++ 3.1.6 drives these
// instead of its clang 14 (whose relaxed opcodes no engine accepts) when run with
// EM_LLVM_ADD_VERSION=19 EM_CLANG_ADD_VERSION=19; em++ then also calls llvm-nm-19 and
// llvm-ar-19 (llvm-19). The SIMD128 builds never use them, so setup succeeds without.
export const APT_OPTIONAL = [
  ['clang-19', '/usr/bin/clang-19'],
  ['lld-19', '/usr/bin/wasm-ld-19'],
  ['llvm-19', '/usr/bin/llvm-nm-19'],
];

export function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}`);
}

const lacking = (list) => list.filter(([, file]) => !fs.existsSync(file)).map(([pkg]) => pkg);

export function setup({ extraApt = [] } = {}) {
  const missing = lacking([...APT, ...extraApt]);
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let updated = false;
  if (missing.length) {
    if (!isRoot) {
      throw new Error(`missing Debian packages: ${missing.join(' ')}\n` +
        `install them with: sudo apt-get update && sudo apt-get install -y ${missing.join(' ')}`);
    }
    console.log(`setup: installing ${missing.join(' ')}`);
    run('apt-get', ['update', '-q'], { env });
    updated = true;
    run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { env });
  }
  const optional = lacking(APT_OPTIONAL);
  if (optional.length) {
    const note = `setup: note: without ${optional.join(' ')} there are no relaxed-SIMD builds (the SIMD128 builds do not need them)`;
    if (!isRoot) {
      console.log(`${note}; to add them: sudo apt-get install -y ${optional.join(' ')}`);
    } else {
      console.log(`setup: installing ${optional.join(' ')} (optional: the relaxed-SIMD toolchain)`);
      try {
        if (!updated) run('apt-get', ['update', '-q'], { env });
        run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...optional], { env });
      } catch (e) {
        console.log(`${note}; installing them failed (${e.message})`);
      }
    }
  }
  const lock = path.join(root, 'package-lock.json');
  const stamp = path.join(root, 'node_modules', '.package-lock.json');
  const hasDeps = fs.existsSync(lock) && Object.keys(JSON.parse(fs.readFileSync(lock, 'utf8')).packages || {}).length > 1;
  if (hasDeps && (!fs.existsSync(stamp) || fs.statSync(stamp).mtimeMs < fs.statSync(lock).mtimeMs)) {
    console.log('setup: npm ci');
    run('npm', ['ci', '--no-audit', '--no-fund']);
  }
  installNode22();
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    setup();
  } catch (e) {
    console.error(`setup: ${e.message}`);
    process.exit(1);
  }
}
