// The same layer (nn.MultiheadAttention forward, self-attention, packed
// in_proj) in plain JavaScript with Float32Arrays: the benchmark's baseline.
// Written the ordinary way a careful JS developer would, no SIMD, no threads.

/** y[M, N] = x[M, K] W[N, K]^T + b */
function linear(x, M, K, W, N, bias, wOffset = 0, bOffset = 0) {
  const y = new Float32Array(M * N);
  for (let m = 0; m < M; m++) {
    const xo = m * K;
    for (let n = 0; n < N; n++) {
      const wo = wOffset + n * K;
      let s = bias ? bias[bOffset + n] : 0;
      for (let k = 0; k < K; k++) s += x[xo + k] * W[wo + k];
      y[m * N + n] = s;
    }
  }
  return y;
}

/** x [B, L, E]; returns output [B, L, E]. causal: query i sees keys j <= i. */
export function plainMha(x, B, L, E, H, w, { causal = false } = {}) {
  const D = E / H, scale = 1 / Math.sqrt(D), M = B * L;
  const q = linear(x, M, E, w.inProjWeight, E, w.inProjBias, 0, 0);
  const k = linear(x, M, E, w.inProjWeight, E, w.inProjBias, E * E, E);
  const v = linear(x, M, E, w.inProjWeight, E, w.inProjBias, 2 * E * E, 2 * E);
  const ctx = new Float32Array(M * E), s = new Float32Array(L);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < L; i++) {
        const qo = (b * L + i) * E + h * D, n = causal ? i + 1 : L;
        let max = -Infinity;
        for (let j = 0; j < n; j++) {
          const ko = (b * L + j) * E + h * D;
          let d = 0;
          for (let c = 0; c < D; c++) d += q[qo + c] * k[ko + c];
          s[j] = d * scale;
          if (s[j] > max) max = s[j];
        }
        let sum = 0;
        for (let j = 0; j < n; j++) sum += (s[j] = Math.exp(s[j] - max));
        for (let j = 0; j < n; j++) {
          const p = s[j] / sum, vo = (b * L + j) * E + h * D;
          for (let c = 0; c < D; c++) ctx[qo + c] += p * v[vo + c];
        }
      }
  return linear(ctx, M, E, w.outProjWeight, E, w.outProjBias);
}
