// The wasm FeedForward and RMSNorm against ONNX Runtime (an implementation written by
// someone else), on the graphs of tests/ort-ops.mjs: MatMul/Add with Relu, Gelu (exact
// and tanh), Sigmoid*x for the feed-forward block, RMSNormalization for RMSNorm (with
// Gemma's offset folded into its scale). onnxruntime-node when installed, else
// onnxruntime-web (a dev dependency, the same operators).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { init } from 'mha-wasm';
import { relErr, rng, uniform } from './reference.mjs';
import { FLOAT32_EPS } from './reference-modern.mjs';
import { feedForwardModel, loadOnnxProto, loadOrt, onnxKit, rmsNormModel, runModel } from './ort-ops.mjs';

const TOL = 1e-5;
const { ort, reason, name: runtime } = await loadOrt();
const ORT = runtime ?? 'onnxruntime';
const kit = ort ? onnxKit(loadOnnxProto()) : null;

test(`FeedForward and RMSNorm agree with ${ORT}`, { skip: ort ? false : reason }, async () => {
  const mha = await init({ threads: 2 });
  const r = rng(23), E = 13, F = 37, M = 11;
  const x = uniform(r, M * E, -2, 2);
  for (const activation of ['relu', 'gelu', 'gelu_tanh', 'silu'])
    for (const gated of [false, true]) {
      const s = 1 / Math.sqrt(E);
      const w = { upProjWeight: uniform(r, F * E, -s, s), upProjBias: uniform(r, F, -s, s), downProjWeight: uniform(r, E * F, -s, s), downProjBias: uniform(r, E, -s, s) };
      if (gated) Object.assign(w, { gateProjWeight: uniform(r, F * E, -2 * s, 2 * s), gateProjBias: uniform(r, F, -s, s) });
      const ff = new mha.FeedForward({ dModel: E, dimFeedforward: F, activation, gated });
      ff.setWeights(gated
        ? { gateProjWeight: w.gateProjWeight, gateProjBias: w.gateProjBias, upProjWeight: w.upProjWeight, upProjBias: w.upProjBias, downProjWeight: w.downProjWeight, downProjBias: w.downProjBias }
        : { linear1Weight: w.upProjWeight, linear1Bias: w.upProjBias, linear2Weight: w.downProjWeight, linear2Bias: w.downProjBias });
      const ours = ff.forward({ data: x, dims: [M, E] }).data;
      const theirs = (await runModel(ort, feedForwardModel(kit, { embedDim: E, hiddenDim: F, activation, gated }, w, M), { x: [x, [M, E]] })).y;
      assert.ok(relErr(ours, theirs) <= TOL, `${activation}, gated ${gated}: ${relErr(ours, theirs)}`);
      ff.dispose();
    }
  for (const [eps, weightOffset] of [[FLOAT32_EPS, 0], [1e-6, 1]]) {
    const N = 37, w = uniform(r, N, -0.5, 1.5), xr = uniform(r, M * N, -3, 3);
    const norm = new mha.RMSNorm({ normalizedShape: N, eps, weightOffset });
    norm.setWeights({ weight: w });
    const ours = norm.forward({ data: xr, dims: [M, N] }).data;
    const theirs = (await runModel(ort, rmsNormModel(kit, M, N, Float32Array.from(w, (t) => t + weightOffset), eps), { x: [xr, [M, N]] })).y;
    assert.ok(relErr(ours, theirs) <= TOL, `RMSNorm eps ${eps}, offset ${weightOffset}`);
    norm.dispose();
  }
});
