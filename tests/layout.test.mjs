// The repository's dependency direction, checked on every import, dynamic
// import(), new URL(..., import.meta.url) and HTML src/href in web/, scripts/,
// tests/, bench/ and examples/:
//
//   bindings/  the package; imported by everything
//   web/       the demo page and every module it loads (some shared with Node code);
//              imports only web/ and the package (bindings/, dist/, mha-wasm); its
//              import map may also name the package's runtime dependencies (package.json
//              "dependencies"), which scripts/serve.mjs serves from node_modules/
//   scripts/   Node-side tooling: the npm entry points and the modules the others
//              share that the page does not load (serve.mjs, chromium.mjs,
//              digits-tfjs-model.mjs); imports only scripts/ and the package
//   tests/, bench/, examples/   leaves: import web/, scripts/, the package and
//              their own folder, never one another
//
// Every relative target must exist (generated dist/ and build/, and the
// deliberately missing no-such-* of error tests, excepted).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MOUNTS } from '../scripts/serve.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const PACKAGE = ['bindings', 'dist'];
const ALLOWED = {
  web: ['web', ...PACKAGE],
  scripts: ['scripts', ...PACKAGE],
  tests: ['tests', 'web', 'scripts', ...PACKAGE, '.'],
  bench: ['bench', 'web', 'scripts', ...PACKAGE, 'build', '.'],
  examples: ['examples', 'web', 'scripts', ...PACKAGE, '.'],
};
const GENERATED = ['dist', 'build'];
// The demo page's server mounts (scripts/serve.mjs): absolute URLs in web/.
const WEB_MOUNTS = MOUNTS;
// What the page may load from node_modules/: the package's own dependencies.
const DEPENDENCIES = Object.keys(JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).dependencies ?? {});
const isDependencyFile = (target) => DEPENDENCIES.some((d) => target.startsWith(`node_modules/${d}/`));

function filesUnder(dir) {
  const out = [];
  for (const e of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const rel = path.posix.join(dir, e.name);
    if (e.isDirectory() && e.name !== 'native' && e.name !== 'models' && e.name !== 'types') out.push(...filesUnder(rel));
    else if (e.isFile() && /\.(m?js|html)$/.test(e.name)) out.push(rel);
  }
  return out;
}

/** The module specifiers and URLs a file refers to. */
function references(file) {
  let text = fs.readFileSync(path.join(root, file), 'utf8');
  const refs = [];
  const grab = (re) => { for (const m of text.matchAll(re)) refs.push(m[1]); };
  if (file.endsWith('.html')) {
    grab(/<(?:script|link)\b[^>]*?\b(?:src|href)=["']([^"']+)["']/g);
    for (const m of text.matchAll(/<script type="importmap">([\s\S]*?)<\/script>/g)) refs.push(...Object.values(JSON.parse(m[1]).imports));
    return refs.filter((r) => !/^(data:|https?:|#)/.test(r)).map((r) => (/^[./]/.test(r) ? r : `./${r}`));  // URLs: relative unless /...
  }
  text = text.replace(/^\s*(\/\/|\*|\/\*).*$/gm, '');  // comment lines
  grab(/(?:^|[;\s])(?:import|export)\s*(?:[\w$*{}\s,]+?\s*from\s*)?['"]([^'"\n]+)['"]/g);
  grab(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g);
  grab(/\bnew URL\(\s*['"]([^'"]+)['"]\s*,\s*import\.meta\.url\s*\)/g);
  return refs;
}

const scanned = Object.keys(ALLOWED).flatMap(filesUnder);

test('the layout scan sees the files and their imports', () => {
  for (const f of ['web/app.js', 'web/index.html', 'scripts/serve.mjs', 'scripts/chromium.mjs', 'tests/web.test.mjs', 'bench/decode.mjs',
    'bench/browser/page.mjs', 'examples/digits/train.mjs']) assert.ok(scanned.includes(f), f);
  assert.ok(references('bench/decode.mjs').includes('../scripts/digits-tfjs-model.mjs'), 'dynamic import()');
  assert.ok(references('web/app.js').includes('./plain-worker.js'), 'new URL(..., import.meta.url)');
  assert.ok(references('web/index.html').includes('/bindings/worker.js'), 'import map');
});

test('every import follows the dependency direction and names a file that exists', () => {
  const problems = [];
  for (const file of scanned) {
    const top = file.split('/')[0];
    for (const ref of references(file)) {
      let target;
      if (ref.startsWith('.')) {
        target = path.posix.normalize(path.posix.join(path.posix.dirname(file), ref));
      } else if (ref.startsWith('/')) {
        if (top !== 'web') continue;  // inside a test or bench page: that server's own mounts
        const [prefix, dir] = WEB_MOUNTS.find(([p]) => ref.startsWith(p));
        target = path.posix.join(dir, ref.slice(prefix.length));
      } else {
        if (top === 'web' && !/^mha-wasm(\/worker|\/models)?$/.test(ref)) problems.push(`${file}: bare import '${ref}' (the page's import map has only mha-wasm's entries)`);
        continue;  // node: builtins and npm packages
      }
      const targetTop = target.includes('/') ? target.split('/')[0] : '.';
      if (target.startsWith('..')) problems.push(`${file}: '${ref}' leaves the repository`);
      else if (top === 'web' && targetTop === 'node_modules') {
        if (!isDependencyFile(target)) problems.push(`${file}: '${ref}' -> ${target} (the page may load only the package's dependencies from node_modules/)`);
        else if (!fs.existsSync(path.join(root, target))) problems.push(`${file}: '${ref}' -> ${target} does not exist`);
      } else if (!ALLOWED[top].includes(targetTop)) problems.push(`${file}: '${ref}' -> ${target} (${top}/ may import only ${ALLOWED[top].join(', ')})`);
      else if (!GENERATED.includes(targetTop) && !/(^|\/)no-such-/.test(target) && !fs.existsSync(path.join(root, target))) problems.push(`${file}: '${ref}' -> ${target} does not exist`);
    }
  }
  assert.deepEqual(problems, []);
});
