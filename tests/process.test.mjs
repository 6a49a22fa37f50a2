// A Node script that imports the package, runs attention and returns must exit
// by itself: the pthread pool must not keep the process alive.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { buildName } from './builds.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const script = (threads) => `
  import { init } from 'mha-wasm';
  const mha = await init({ threads: ${JSON.stringify(threads)} });
  const layer = new mha.MultiHeadAttention({ embedDim: 64, numHeads: 4 });
  const f = (n) => Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 0.1);
  layer.setWeights({ inProjWeight: f(3 * 64 * 64), inProjBias: f(192), outProjWeight: f(64 * 64), outProjBias: f(64) });
  const { output } = layer.forward({ data: f(2 * 200 * 64), dims: [2, 200, 64] }, null, null, { isCausal: true });
  console.log(JSON.stringify({ threads: mha.threads, build: mha.build, n: output.data.length, finite: output.data.every(Number.isFinite) }));
`;

for (const threads of ['auto', 2, 4, 1]) {
  test(`a script with threads=${threads} exits by itself`, () => {
    const t0 = Date.now();
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script(threads)], { cwd: root, encoding: 'utf8', timeout: 30000 });
    assert.equal(r.error, undefined, `did not exit within 30 s: ${r.error}`);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim());
    assert.equal(out.n, 2 * 200 * 64);
    assert.equal(out.finite, true);
    if (threads !== 1) assert.equal(out.build, buildName(true));
    if (typeof threads === 'number') assert.equal(out.threads, threads);
    assert.ok(Date.now() - t0 < 15000, 'took too long to exit');
  });
}
