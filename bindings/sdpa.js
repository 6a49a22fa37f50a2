// mha.scaledDotProductAttention(q, k, v, options): softmax(q k^T * scale + mask) v.
// defineSdpa: the function where calls are made; sdpaOps: what runs where the runtime is.
import { checkData, maskFields, maskLayout, paddingLayout, readMask, readPadding } from './masks.js';
import { recordBytes } from './runtime.js';
import { finiteFloat32, floatArray, optional, positiveFloat32 } from './modern.js';
import { bool, describe, expectArray, expectDim, fmtDims, plainObject, positiveInt, tensor } from './validate.js';

const OPTIONS = ['attnMask', 'keyPaddingMask', 'isCausal', 'scale', 'needWeights', 'slidingWindow', 'softcap', 'alibiSlopes', 'sinks',
  'transfer'];

/** The public function over a backend. ctx: { backend } (api.js). */
export function defineSdpa({ backend }) {
  /**
   * q [B, H, Lq, D], k [B, Hkv, Lk, D], v [B, Hkv, Lk, Dv] (Hkv dividing H: query
   * head h reads head floor(h / (H / Hkv)), PyTorch's enable_gqa); [H, L, D] and
   * [L, D] are accepted too (B = 1, H = 1), and the output has the rank of q.
   */
  return function scaledDotProductAttention(q, k, v, options) {
    return backend.run(() => {
      const hint = 'dims [B, H, L, D], [H, L, D] or [L, D]';
      const tq = tensor('q', q, { ranks: [2, 3, 4], shapeHint: hint });
      const r = tq.dims.length;
      const tk = tensor('k', k, { ranks: [r], shapeHint: `${r} dims like q ${fmtDims(tq.dims)}` });
      const tv = tensor('v', v, { ranks: [r], shapeHint: `${r} dims like q ${fmtDims(tq.dims)}` });
      const lead = tq.dims.slice(0, r - 2);
      lead.forEach((d, i) => {
        if (i === r - 3) return;  // heads: k and v may have fewer (grouped-query)
        expectDim('k', tk.dims, i, d, 'the batch size of q');
        expectDim('v', tv.dims, i, d, 'the batch size of q');
      });
      const H = r >= 3 ? tq.dims[r - 3] : 1, Hkv = r >= 3 ? tk.dims[r - 3] : 1;
      if (r >= 3) {
        expectDim('v', tv.dims, r - 3, Hkv, 'the number of heads of k');
        if (H % Hkv !== 0)
          throw new RangeError(`k and v must have a number of heads that divides q's ${H} (grouped-query attention), got ${Hkv}`);
      }
      const D = tq.dims[r - 1], Lk = tk.dims[r - 2];
      expectDim('k', tk.dims, r - 1, D, 'the last dim of q');
      expectDim('v', tv.dims, r - 2, Lk, 'the sequence length of k');
      const o = plainObject('scaledDotProductAttention options', options, OPTIONS);
      let scale = 1 / Math.sqrt(D);
      if (o.scale !== undefined) {
        scale = finiteFloat32('options.scale', o.scale);
      }
      const perHead = (name, v) => Float32Array.from(floatArray(name, v, H));
      const call = {
        slidingWindow: optional('options.slidingWindow', o.slidingWindow, positiveInt),
        softcap: optional('options.softcap', o.softcap, positiveFloat32),
        alibiSlopes: optional('options.alibiSlopes', o.alibiSlopes, perHead),
        sinks: optional('options.sinks', o.sinks, perHead),
        q: tq, k: tk, v: tv, scale, attnMask: readMask('options.attnMask', o.attnMask),
        keyPaddingMask: readPadding('options.keyPaddingMask', o.keyPaddingMask),
        causal: bool('options.isCausal', o.isCausal, false), needWeights: bool('options.needWeights', o.needWeights, false),
      };
      return backend.call('scaledDotProductAttention', [call],
        { transfer: bool('options.transfer', o.transfer, false), what: 'scaledDotProductAttention' });
    });
  };
}

/** What runs where the runtime is. ctx: { rt } (ops.js). */
export function sdpaOps({ rt }) {
  return {
    scaledDotProductAttention({ q, k, v, scale, attnMask, keyPaddingMask, causal, needWeights, slidingWindow, softcap, alibiSlopes, sinks }) {
      const what = 'scaledDotProductAttention';
      for (const [name, t] of [['q', q], ['k', k], ['v', v]]) checkData(name, t, [Float32Array]);
      const r = q.dims.length, lead = q.dims.slice(0, r - 2);
      const H = r >= 3 ? lead[r - 3] : 1, Hkv = r >= 3 ? k.dims[r - 3] : 1;
      if (r < 2 || r > 4 || k.dims.length !== r || v.dims.length !== r ||
          lead.some((d, i) => i !== r - 3 && (k.dims[i] !== d || v.dims[i] !== d)) || v.dims[r - 3] !== k.dims[r - 3] || H % Hkv !== 0 ||
          k.dims[r - 1] !== q.dims[r - 1] || v.dims[r - 2] !== k.dims[r - 2] || typeof scale !== 'number' || !Number.isFinite(scale) ||
          !(slidingWindow === null || (Number.isInteger(slidingWindow) && slidingWindow > 0 && slidingWindow < 2 ** 31)) ||
          !(softcap === null || (softcap > 0 && Number.isFinite(softcap))))
        throw new RangeError(`${what}: q, k and v do not fit together`);
      for (const [name, a] of [['options.alibiSlopes', alibiSlopes], ['options.sinks', sinks]])
        if (a !== null) expectArray(name, a, [Float32Array], H);
      const B = r === 4 ? lead[0] : 1;
      const Lq = q.dims[r - 2], D = q.dims[r - 1], Lk = k.dims[r - 2], Dv = v.dims[r - 1];
      const mask = maskLayout('options.attnMask', attnMask, { Lq, Lk, fullDims: [...lead, Lq, Lk] });
      // [B, Lk]; for [H, L, D] and [L, D] inputs (B = 1) also [Lk], as an unbatched layer takes it.
      const kpm = paddingLayout('options.keyPaddingMask', keyPaddingMask, { B, Lk, batched: r === 4 || keyPaddingMask?.dims.length !== 1 });
      const outN = B * H * Lq * Dv, wN = needWeights ? B * H * Lq * Lk : 0;
      const st = rt.stage([q.data, k.data, v.data, mask.data, kpm, outN * 4, wN * 4, recordBytes('Sdpa'), alibiSlopes, sinks], what);
      try {
        const at = (d) => (d ? st.at(d === mask.data ? 3 : 4) : 0);
        rt.writeRecord(st.at(7), 'Sdpa', {
          batch: B, heads: H, lq: Lq, lk: Lk, d: D, dv: Dv, q: st.at(0), k: st.at(1), v: st.at(2), output: st.at(5), scale,
          ...maskFields('', mask, kpm, causal, at), weights: needWeights ? st.at(6) : 0,
          kv_heads: Hkv, softcap: softcap ?? 0, alibi: alibiSlopes ? st.at(8) : 0, sinks: sinks ? st.at(9) : 0, window: slidingWindow ?? 0,
        });
        rt.check(rt.mod.sdpa(st.at(7)), what, () => rt.mod.sdpaRequestBytes());
        return {
          output: { data: rt.readF32(st.at(5), outN), dims: [...lead, Lq, Dv] },
          weights: needWeights ? { data: rt.readF32(st.at(6), wN), dims: [...lead, Lq, Lk] } : null,
        };
      } finally {
        rt.free(st.ptr);
      }
    },
  };
}
