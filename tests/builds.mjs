// Which build init() should pick, decided without the loader's probe: from the
// engine's known behaviour and from what dist/ holds.
//   - The relaxed-SIMD builds exist only where the build had clang-19 (scripts/build.mjs).
//   - Node.js 22+ and Chromium run relaxed SIMD by default; Node.js 20 only behind
//     --experimental-wasm-relaxed-simd (and then computes its int8 dot wrong).
import fs from 'node:fs';
import { BUILDS, buildFiles } from '../bindings/abi.js';

/** Whether dist/ holds every relaxed-SIMD build. */
export const relaxedBuilt = Object.values(BUILDS).filter((b) => b.relaxed)
  .every((b) => buildFiles(b).every((f) => fs.existsSync(new URL(`../dist/${f}`, import.meta.url))));

/** Whether this Node.js runs relaxed SIMD without flags. */
export const nodeRunsRelaxed = Number(process.versions.node.split('.')[0]) >= 22;

/** Whether init() should load a relaxed build in this Node.js (with its default relaxedSimd: true). */
export const relaxedHere = relaxedBuilt && nodeRunsRelaxed;

/** The build file stem init() loads: threaded or not, relaxed (default: as in this Node.js) or not. */
export function buildName(threaded, relaxed = relaxedHere) {
  return Object.values(BUILDS).find((b) => b.threads === threaded && b.relaxed === relaxed).file;
}
