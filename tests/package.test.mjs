// `npm pack` gives a package that installs into an empty folder and runs with
// only `import { init } from 'mha-wasm'`, with no Emscripten (or anything but
// node) on PATH; and the TypeScript declarations accept the documented usage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildName, relaxedBuilt } from './builds.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const sh = (cmd, args, opts = {}) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 300000, ...opts });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
};

test('npm pack -> install in an empty folder -> runs without Emscripten', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mha-pack-'));
  try {
    // prepack (the build) prints to stdout too: the JSON report is the last part.
    const report = sh('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: root });
    const packed = JSON.parse(report.slice(report.search(/^\[\s*\{/m)))[0];
    const files = packed.files.map((f) => f.path).sort();
    for (const f of ['bindings/index.js', 'bindings/index.d.ts', 'bindings/loader.js', 'bindings/worker.js', 'bindings/worker.d.ts',
      'bindings/worker-host.js', 'bindings/safetensors.js', 'dist/package.json',
      'dist/mha-wasm-threads.js', 'dist/mha-wasm-threads.wasm', 'dist/mha-wasm-threads.worker.js',
      'dist/mha-wasm-simd.js', 'dist/mha-wasm-simd.wasm', 'package.json', 'README.md',
      ...(relaxedBuilt ? ['dist/mha-wasm-relaxed-threads.js', 'dist/mha-wasm-relaxed-threads.wasm', 'dist/mha-wasm-relaxed-threads.worker.js',
        'dist/mha-wasm-relaxed-simd.js', 'dist/mha-wasm-relaxed-simd.wasm'] : [])])
      assert.ok(files.includes(f), `${f} missing from the package: ${files}`);
    for (const f of files) assert.ok(!/^(src|tests|scripts|build)\//.test(f), `${f} should not be packaged`);

    const app = path.join(tmp, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', path.join(tmp, packed.filename)], { cwd: app });
    fs.writeFileSync(path.join(app, 'main.mjs'), `
      import { init } from 'mha-wasm';
      for (const threads of [1, 2]) {
        const mha = await init({ threads });
        const layer = new mha.MultiHeadAttention({ embedDim: 4, numHeads: 2 });
        const eye = new Float32Array(16); for (let i = 0; i < 4; i++) eye[i * 5] = 1;
        const inProj = new Float32Array(48); inProj.set(eye, 0); inProj.set(eye, 16); inProj.set(eye, 32);
        layer.setWeights({ inProjWeight: inProj, inProjBias: new Float32Array(12), outProjWeight: eye, outProjBias: new Float32Array(4) });
        // Identity projections, one key: attention returns that key's value.
        const q = { data: Float32Array.of(1, 2, 3, 4), dims: [1, 4] };
        const kv = { data: Float32Array.of(5, 6, 7, 8), dims: [1, 4] };
        console.log(mha.build, mha.threads, Array.from(layer.forward(q, kv, kv).output.data).join(','));
        layer.dispose();
        const norm = new mha.LayerNorm({ normalizedShape: 4 });
        console.log('LayerNorm', Array.from(norm.forward(q).data, (v) => v.toFixed(3)).join(','));
        norm.dispose();
      }
      const { init: initWorker, encodeSafetensors, parseSafetensors } = await import('mha-wasm/worker');
      const w = await initWorker({ threads: 2 });
      const layer = new w.MultiHeadAttention({ embedDim: 4, numHeads: 2 });
      const eye = new Float32Array(16); for (let i = 0; i < 4; i++) eye[i * 5] = 1;
      const inProj = new Float32Array(48); inProj.set(eye, 0); inProj.set(eye, 16); inProj.set(eye, 32);
      const file = encodeSafetensors({ in_proj_weight: { data: inProj, dims: [12, 4] }, in_proj_bias: new Float32Array(12),
        'out_proj.weight': { data: eye, dims: [4, 4] }, 'out_proj.bias': new Float32Array(4) });
      await layer.setWeights(parseSafetensors(file));
      const kv = { data: Float32Array.of(5, 6, 7, 8), dims: [1, 4] };
      const r = await layer.forward({ data: Float32Array.of(1, 2, 3, 4), dims: [1, 4] }, kv, kv);
      console.log('worker', w.build, w.threads, Array.from(r.output.data).join(','));
      w.terminate();`);
    const bin = path.join(tmp, 'bin');  // PATH with node alone: no em++, cmake, npm
    fs.mkdirSync(bin);
    fs.symlinkSync(process.execPath, path.join(bin, 'node'));
    const out = sh(path.join(bin, 'node'), ['main.mjs'], { cwd: app, env: { PATH: bin, HOME: tmp } });
    const norm = 'LayerNorm -1.342,-0.447,0.447,1.342';  // (x - 2.5) / sqrt(1.25 + 1e-5)
    assert.deepEqual(out.trim().split('\n'), [`${buildName(false)} 1 5,6,7,8`, norm, `${buildName(true)} 2 5,6,7,8`, norm, `worker ${buildName(true)} 2 5,6,7,8`]);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('TypeScript declarations accept the documented usage and reject misuse', () => {
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  sh(process.execPath, [tsc, '-p', path.join(root, 'tests', 'types', 'tsconfig.json')], { cwd: root });
});
