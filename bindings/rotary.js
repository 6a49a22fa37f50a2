// mha.applyRotaryEmbedding(x, options): rotary position embeddings on a tensor of
// heads, the same rotation MultiHeadAttention's `rope` option applies.
// defineRotary: the function where calls are made; rotaryOps: what runs where the runtime is.
import { checkData } from './masks.js';
import { expectArray, bool, describe, fmtDims, plainObject, tensor } from './validate.js';
import { positionsLayout, readPositions, readRope } from './modern.js';
import { recordBytes } from './runtime.js';

const OPTIONS = ['positions', 'base', 'dim', 'interleaved', 'invFreq', 'attentionFactor', 'layout', 'transfer'];

/** The public function over a backend. ctx: { backend } (api.js). */
export function defineRotary({ backend }) {
  /**
   * x [B, H, L, D] (layout 'bhld', the default) or [B, L, H, D] ('blhd'); positions
   * [L] or [B, L] (an Int32Array or a tensor), default 0..L-1. Returns a new tensor.
   */
  return function applyRotaryEmbedding(x, options) {
    return backend.run(() => {
      const t = tensor('x', x, { ranks: [4], shapeHint: "dims [B, H, L, D] (or [B, L, H, D] with layout: 'blhd')" });
      const o = plainObject('applyRotaryEmbedding options', options, OPTIONS);
      const layout = o.layout === undefined ? 'bhld' : o.layout;
      if (layout !== 'bhld' && layout !== 'blhd')
        throw new (typeof layout === 'string' ? RangeError : TypeError)(`options.layout must be 'bhld' or 'blhd', got ${describe(layout)}`);
      const D = t.dims[3];
      const { positions, layout: _l, transfer, ...ropeOptions } = o;
      const rope = readRope('options', Object.fromEntries(Object.entries(ropeOptions).filter(([, v]) => v !== undefined)), D);
      const call = { x: t, blhd: layout === 'blhd', positions: readPositions('options.positions', positions), rope };
      return backend.call('applyRotaryEmbedding', [call], { transfer: bool('options.transfer', transfer, false), what: 'applyRotaryEmbedding' });
    });
  };
}

/** What runs where the runtime is. ctx: { rt } (ops.js). */
export function rotaryOps({ rt }) {
  return {
    applyRotaryEmbedding({ x, blhd, positions, rope }) {
      const what = 'applyRotaryEmbedding';
      checkData('x', x, [Float32Array]);
      if (x.dims.length !== 4) throw new RangeError(`${what}: x must have 4 dims, got ${fmtDims(x.dims)}`);
      const [B, a1, a2, D] = x.dims, H = blhd ? a2 : a1, L = blhd ? a1 : a2;
      const r = readRope('options', { dim: rope.dim, interleaved: rope.interleaved, invFreq: rope.invFreq, attentionFactor: rope.attentionFactor }, D);
      const pos = positionsLayout('options.positions', positions, { B, L, batched: true });
      const n = B * H * L * D;
      expectArray('x.data', x.data, [Float32Array], n);
      const st = rt.stage([x.data, n * 4, pos && pos.data, r.invFreq, recordBytes('Rotary')], what);
      try {
        rt.writeRecord(st.at(4), 'Rotary', {
          batch: B, heads: H, length: L, d: D, blhd, x: st.at(0), y: st.at(1), positions: pos ? st.at(2) : 0,
          positions_shared: pos ? pos.shared : false, dim: r.dim, interleaved: r.interleaved, inv_freq: st.at(3),
          attention_factor: r.attentionFactor,
        });
        rt.check(rt.mod.rotary(st.at(4)), what, () => rt.mod.sdpaRequestBytes());
        return { data: rt.readF32(st.at(1), n), dims: x.dims.slice() };
      } finally {
        rt.free(st.ptr);
      }
    },
  };
}
