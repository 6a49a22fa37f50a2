// Numbers shared by the demo's benchmark tab and the project's bench/.

/** FLOPs of one self-attention forward with the four projections (causal counted as dense): 8·B·L·E² + 4·B·L²·E. */
export const flops = ({ B = 1, L, E }) => 8 * B * L * E * E + 4 * B * L * L * E;

export function median(a) {
  const b = [...a].sort((x, y) => x - y), n = b.length;
  return n % 2 ? b[(n - 1) / 2] : (b[n / 2 - 1] + b[n / 2]) / 2;
}

/** max |a - ref| relative to max(1, max |ref|). */
export function maxRelDiff(a, ref) {
  let m = 0, r = 1;
  for (let i = 0; i < ref.length; i++) { m = Math.max(m, Math.abs(a[i] - ref[i])); r = Math.max(r, Math.abs(ref[i])); }
  return m / r;
}
