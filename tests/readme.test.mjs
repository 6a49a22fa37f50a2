// The README's code compiles: every ```js/```ts block in README.md is
// type-checked against the package's declarations, under `strict`, once with
// moduleResolution node16 and once with bundler, so the README cannot drift from
// the API. Each block is its own module; the names a block uses without
// defining them (its inputs: weights, tensors, file bytes) come from PLACEHOLDERS
// below, declared only where the block does not define them itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = fileURLToPath(new URL('..', import.meta.url));
const work = path.join(root, 'build', 'readme');

// What a README block may use without defining it, with its type.
const T = "import('mha-wasm').Tensor";
const PLACEHOLDERS = {
  inProjWeight: 'Float32Array', inProjBias: 'Float32Array', outProjWeight: 'Float32Array', outProjBias: 'Float32Array',
  weight: 'Float32Array', bias: 'Float32Array', bytes: 'Uint8Array',
  x: T, tgt: T, memory: T, prompt: T, nextToken: T, newPositions: T,
  memoryKeyPaddingMask: `${T}<Uint8Array>`,
  mha: "import('mha-wasm').Mha", enc: "import('mha-wasm').TransformerEncoderLayer",
};
// Module declarations the README's bundler examples rely on (as vite/client declares them).
const AMBIENT = "declare module '*?url' { const url: string; export default url; }\n";

/** The README's JS/TS blocks: { line (of the first code line), code }. */
export function readmeBlocks(text) {
  const blocks = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^```(js|javascript|mjs|ts|typescript)\s*$/.exec(lines[i]);
    if (!m) continue;
    const start = i + 1;
    while (++i < lines.length && !/^```\s*$/.test(lines[i]));
    blocks.push({ line: start + 1, code: lines.slice(start, i).join('\n') });
  }
  return blocks;
}

/** The names a block declares at its top level (imports, variables, functions, classes). */
function declaredNames(code) {
  const sf = ts.createSourceFile('block.mts', code, ts.ScriptTarget.ES2022, false, ts.ScriptKind.TS);
  const names = new Set();
  const bind = (n) => {
    if (ts.isIdentifier(n)) names.add(n.text);
    else if (ts.isObjectBindingPattern(n) || ts.isArrayBindingPattern(n)) for (const e of n.elements) if (!ts.isOmittedExpression(e)) bind(e.name);
  };
  for (const s of sf.statements) {
    if (ts.isVariableStatement(s)) for (const d of s.declarationList.declarations) bind(d.name);
    else if ((ts.isFunctionDeclaration(s) || ts.isClassDeclaration(s)) && s.name) names.add(s.name.text);
    else if (ts.isImportDeclaration(s) && s.importClause) {
      const c = s.importClause;
      if (c.name) names.add(c.name.text);
      if (c.namedBindings && ts.isNamespaceImport(c.namedBindings)) names.add(c.namedBindings.name.text);
      else if (c.namedBindings) for (const e of c.namedBindings.elements) names.add(e.name.text);
    }
  }
  return names;
}

test('README.md has JS/TS blocks to check', () => {
  const blocks = readmeBlocks(fs.readFileSync(path.join(root, 'README.md'), 'utf8'));
  assert.ok(blocks.length >= 5, `only ${blocks.length} blocks`);
});

for (const resolution of ['node16', 'bundler']) {
  test(`every README.md JS/TS block type-checks under strict, moduleResolution ${resolution}`, () => {
    const dir = path.join(work, resolution);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(path.join(dir, 'node_modules'), { recursive: true });
    // The package as an app sees it: by name, through package.json's exports and types.
    fs.symlinkSync(root, path.join(dir, 'node_modules', 'mha-wasm'), 'dir');
    const blocks = readmeBlocks(fs.readFileSync(path.join(root, 'README.md'), 'utf8'));
    const files = [], where = {};
    blocks.forEach(({ line, code }, i) => {
      const defined = declaredNames(code);
      const prelude = Object.entries(PLACEHOLDERS).filter(([name]) => !defined.has(name)).map(([name, type]) => `declare const ${name}: ${type};`);
      const file = `block-${String(i + 1).padStart(2, '0')}.mts`;
      // Line 1: export {} (a module even with no import); then the prelude on one line; then the block.
      fs.writeFileSync(path.join(dir, file), `export {};\n${prelude.join(' ')}\n${code}\n`);
      files.push(file);
      where[file] = line;
    });
    fs.writeFileSync(path.join(dir, 'ambient.d.ts'), AMBIENT);
    const module = resolution === 'node16' ? 'Node16' : 'ESNext';
    fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, target: 'ES2022', module, moduleResolution: resolution === 'node16' ? 'Node16' : 'Bundler',
        lib: ['ES2022', 'DOM'], types: [], skipLibCheck: true },
      files: ['ambient.d.ts', ...files],
    }, null, 1));
    const r = spawnSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir, '--pretty', 'false'], { encoding: 'utf8', timeout: 120000 });
    // block-NN.mts(L,C): error ... -> README.md:line
    const out = `${r.stdout}${r.stderr}`.replace(/(?:[^\s(]*\/)?(block-\d+\.mts)\((\d+),(\d+)\)/g, (_, f, l, c) => `README.md:${where[f] + Number(l) - 3}:${c} (${f})`);
    assert.equal(r.status, 0, `README.md code does not type-check with moduleResolution ${resolution}:\n${out}`);
  });
}
