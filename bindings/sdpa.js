// mha.scaledDotProductAttention(q, k, v, options): softmax(q k^T * scale + mask) v.
import { attnMask, keyPaddingMask } from './masks.js';
import { bool, describe, expectDim, fmtDims, plainObject, tensor } from './validate.js';

const OPTIONS = ['attnMask', 'keyPaddingMask', 'isCausal', 'scale', 'needWeights'];

export function makeScaledDotProductAttention(rt) {
  /**
   * q [B, H, Lq, D], k [B, H, Lk, D], v [B, H, Lk, Dv]; [H, L, D] and [L, D] are
   * accepted too (B = 1, H = 1), and the output has the rank of q.
   */
  return function scaledDotProductAttention(q, k, v, options) {
    rt.checkAlive();
    const hint = 'dims [B, H, L, D], [H, L, D] or [L, D]';
    const tq = tensor('q', q, { ranks: [2, 3, 4], shapeHint: hint });
    const r = tq.dims.length;
    const tk = tensor('k', k, { ranks: [r], shapeHint: `${r} dims like q ${fmtDims(tq.dims)}` });
    const tv = tensor('v', v, { ranks: [r], shapeHint: `${r} dims like q ${fmtDims(tq.dims)}` });
    const lead = tq.dims.slice(0, r - 2);
    lead.forEach((d, i) => {
      const what = r === 4 && i === 0 ? 'the batch size of q' : 'the number of heads of q';
      expectDim('k', tk.dims, i, d, what);
      expectDim('v', tv.dims, i, d, what);
    });
    const B = r === 4 ? lead[0] : 1, H = r >= 3 ? lead[r - 3] : 1;
    const Lq = tq.dims[r - 2], D = tq.dims[r - 1], Lk = tk.dims[r - 2], Dv = tv.dims[r - 1];
    expectDim('k', tk.dims, r - 1, D, 'the last dim of q');
    expectDim('v', tv.dims, r - 2, Lk, 'the sequence length of k');
    const o = plainObject('scaledDotProductAttention options', options, OPTIONS);
    const mask = attnMask('options.attnMask', o.attnMask, { Lq, Lk, fullDims: [...lead, Lq, Lk] });
    const kpm = keyPaddingMask('options.keyPaddingMask', o.keyPaddingMask, { B, Lk, batched: true });
    const causal = bool('options.isCausal', o.isCausal, false);
    const needWeights = bool('options.needWeights', o.needWeights, false);
    let scale = 1 / Math.sqrt(D);
    if (o.scale !== undefined) {
      if (typeof o.scale !== 'number') throw new TypeError(`options.scale must be a finite number, got ${describe(o.scale)}`);
      if (!Number.isFinite(o.scale)) throw new RangeError(`options.scale must be a finite number, got ${describe(o.scale)}`);
      scale = o.scale;
    }
    const outN = B * H * Lq * Dv, wN = needWeights ? B * H * Lq * Lk : 0;
    const st = rt.stage([tq.data, tk.data, tv.data, mask.data, kpm, outN * 4, wN * 4], 'scaledDotProductAttention');
    try {
      const s = rt.mod.sdpa(B, H, Lq, Lk, D, Dv, st.at(0), st.at(1), st.at(2), st.at(5), scale, mask.kind,
        mask.data ? st.at(3) : 0, mask.broadcast, kpm ? st.at(4) : 0, causal, needWeights ? st.at(6) : 0);
      rt.check(s, 'scaledDotProductAttention', () => rt.mod.sdpaRequestBytes());
      return {
        output: { data: rt.readF32(st.at(5), outN), dims: [...lead, Lq, Dv] },
        weights: needWeights ? { data: rt.readF32(st.at(6), wN), dims: [...lead, Lq, Lk] } : null,
      };
    } finally {
      rt.free(st.ptr);
    }
  };
}
