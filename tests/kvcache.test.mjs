// Incremental decoding: feeding a sequence through layer.forward(newTokens,
// { cache, isCausal: true }) a token at a time (or in uneven chunks) equals the
// float64 reference of the full causal forward, for every length 1..64; the
// cache refuses to overflow, resets, truncates, and is checked like a layer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { init } from 'mha-wasm';
import { blockStateDict, decoderReference, encoderReference, mhaReference, relErr, rng, uniform } from './reference.mjs';

const CHUNKINGS = [Array(64).fill(1), [1, 3, 4, 5, 17, 1, 33], [64]];
const L = 64;

/** Rows [pos, pos + n) of each batch item of x [B, L, E]. */
function rows(x, B, L, E, pos, n) {
  const out = new Float32Array(B * n * E);
  for (let b = 0; b < B; b++) out.set(x.subarray((b * L + pos) * E, (b * L + pos + n) * E), b * n * E);
  return out;
}

for (const threads of [1, 2]) {
  test(`threads=${threads}: TransformerEncoderLayer with a KV cache equals the full causal forward, 1..64 steps`, async () => {
    const mha = await init({ threads });
    const r = rng(300 + threads);
    for (const [normFirst, activation] of [[false, 'gelu'], [true, 'relu']]) {
      const B = 2, E = 32, H = 4, F = 48;
      const layer = new mha.TransformerEncoderLayer({ dModel: E, nhead: H, dimFeedforward: F, normFirst, activation });
      const sd = blockStateDict(r, E, F, true);
      layer.setWeights(sd);
      const x = uniform(r, B * L * E, -2, 2);
      const cfg = { E, H, F, activation, eps: 1e-5, normFirst, bias: true };
      const ref = encoderReference(cfg, sd, B, L, x, { isCausal: true });
      const attnW = { inProjWeight: sd['self_attn.in_proj_weight'], inProjBias: sd['self_attn.in_proj_bias'], outProjWeight: sd['self_attn.out_proj.weight'], outProjBias: sd['self_attn.out_proj.bias'] };
      const refW = mhaReference({ E, H, kdim: E, vdim: E, bias: true }, attnW, B, L, L, x, x, x, { isCausal: true, needWeights: true, averageWeights: false }).weights;
      const cache = layer.createCache({ maxLength: L, batch: B });
      assert.deepEqual([cache.batch, cache.maxLength, cache.length], [B, L, 0]);
      for (const chunks of CHUNKINGS) {
        cache.reset();
        let pos = 0;
        for (const n of chunks) {
          const { output: y, weights } = layer.forward({ data: rows(x, B, L, E, pos, n), dims: [B, n, E] }, { cache, isCausal: true, needWeights: true });
          assert.equal(cache.length, pos + n);
          assert.deepEqual(y.dims, [B, n, E]);
          const e = relErr(y.data, rows(Float32Array.from(ref), B, L, E, pos, n));
          assert.ok(e <= 1e-4, `normFirst=${normFirst} chunk of ${n} at ${pos}: ${e}`);
          // Post-norm: the self-attention reads x itself, so the weights over the cached keys are the reference's rows.
          assert.deepEqual(weights.dims, [B, H, n, pos + n]);
          if (!normFirst)
            for (let bh = 0; bh < B * H; bh++)
              for (let i = 0; i < n; i++) {
                const got = weights.data.subarray(((bh * n) + i) * (pos + n), ((bh * n) + i + 1) * (pos + n));
                const want = refW.subarray((bh * L + pos + i) * L, (bh * L + pos + i) * L + pos + n);
                assert.ok(relErr(got, want) <= 1e-5, `weights row ${pos + i}`);
              }
          pos += n;
        }
      }
      // Full: one more position is refused, names the sizes, and changes nothing.
      const one = { data: new Float32Array(B * E), dims: [B, 1, E] };
      assert.throws(() => layer.forward(one, { cache, isCausal: true }), {
        name: 'RangeError', message: /TransformerEncoderLayer\.forward: options\.cache holds 64 of its maxLength 64 positions; 1 more do not fit \(call cache\.reset\(\)/,
      });
      assert.equal(cache.length, L);
      cache.reset();
      assert.equal(cache.length, 0);
      const y0 = layer.forward({ data: rows(x, B, L, E, 0, 1), dims: [B, 1, E] }, { cache, isCausal: true });
      assert.ok(relErr(y0.data, rows(Float32Array.from(ref), B, L, E, 0, 1)) <= 1e-4);
      cache.dispose();
      layer.dispose();
    }
    assert.equal(mha.stats().liveLayers, 0);
  });

  test(`threads=${threads}: TransformerDecoderLayer with a KV cache equals the full causal forward, 1..64 steps`, async () => {
    const mha = await init({ threads });
    const r = rng(400 + threads);
    for (const normFirst of [false, true]) {
      const B = 2, E = 24, H = 3, F = 40, S = 13;
      const layer = new mha.TransformerDecoderLayer({ dModel: E, nhead: H, dimFeedforward: F, normFirst, activation: 'gelu' });
      const sd = blockStateDict(r, E, F, true, true);
      layer.setWeights(sd);
      const tgt = uniform(r, B * L * E, -2, 2), mem = uniform(r, B * S * E, -2, 2);
      const memPad = Uint8Array.from({ length: B * S }, (_, i) => (i >= 2 * S - 3 ? 1 : 0));  // the second memory is 3 shorter
      const ref = Float32Array.from(decoderReference({ E, H, F, activation: 'gelu', eps: 1e-5, normFirst, bias: true }, sd, B, L, S, tgt, mem,
        { isCausal: true }, { keyPaddingMask: memPad }));
      const memory = { data: mem, dims: [B, S, E] }, memoryKeyPaddingMask = { data: memPad, dims: [B, S] };
      const cache = layer.createCache({ maxLength: L, batch: B });
      for (const chunks of CHUNKINGS) {
        cache.reset();
        let pos = 0;
        for (const n of chunks) {
          const y = layer.forward({ data: rows(tgt, B, L, E, pos, n), dims: [B, n, E] }, memory, { cache, tgtIsCausal: true, memoryKeyPaddingMask });
          const e = relErr(y.data, rows(ref, B, L, E, pos, n));
          assert.ok(e <= 1e-4, `normFirst=${normFirst} chunk of ${n} at ${pos}: ${e}`);
          pos += n;
        }
      }
      cache.reset();
      layer.forward({ data: rows(tgt, B, L, E, 0, 1), dims: [B, 1, E] }, memory, { cache, tgtIsCausal: true });
      assert.throws(() => layer.forward({ data: rows(tgt, B, L, E, 1, 1), dims: [B, 1, E] }, { data: new Float32Array(B * 5 * E), dims: [B, 5, E] }, { cache }), {
        name: 'RangeError', message: /options\.cache holds a memory of length 13, got memory of length 5/,
      });
      cache.dispose();
      layer.dispose();
    }
  });
}

/** CHUNKINGS cut to sum to n. */
function chunkingsOf(n) {
  return CHUNKINGS.map((cs) => {
    const out = [];
    let left = n;
    for (const c of cs) if (left > 0) out.push(Math.min(c, left)), left -= Math.min(c, left);
    if (left > 0) out.push(left);
    return out;
  });
}

// memoryIsCausal lines the target up with the memory from the start: target position t
// (counting the cached positions) sees memory positions j <= t, as the bool memory mask
// j > t would. That does not depend on how long the target grows, so cached steps give
// the full forward's rows for T < S, T == S and T > S.
for (const threads of [1, 2]) {
  test(`threads=${threads}: TransformerDecoderLayer with memoryIsCausal: cached steps equal the full forward`, async () => {
    const mha = await init({ threads });
    const r = rng(450 + threads), B = 2, E = 24, H = 3, F = 40;
    for (const [T, S, normFirst] of [[64, 13, false], [20, 33, true], [24, 24, false], [40, 9, true]]) {
      const layer = new mha.TransformerDecoderLayer({ dModel: E, nhead: H, dimFeedforward: F, normFirst, activation: 'gelu' });
      const sd = blockStateDict(r, E, F, true, true);
      layer.setWeights(sd);
      const tgt = uniform(r, B * T * E, -2, 2), mem = uniform(r, B * S * E, -2, 2);
      const memory = { data: mem, dims: [B, S, E] }, options = { tgtIsCausal: true, memoryIsCausal: true, needWeights: true };
      const ref = Float32Array.from(decoderReference({ E, H, F, activation: 'gelu', eps: 1e-5, normFirst, bias: true }, sd, B, T, S, tgt, mem,
        { isCausal: true }, { isCausal: true }));
      const full = layer.forward({ data: tgt, dims: [B, T, E] }, memory, options);
      const where = `T=${T} S=${S}`;
      assert.ok(relErr(full.output.data, ref) <= 1e-4, `${where} full forward: ${relErr(full.output.data, ref)}`);
      // The same as the explicit mask.
      const explicit = Uint8Array.from({ length: T * S }, (_, k) => (k % S > Math.floor(k / S) ? 1 : 0));
      const withMask = layer.forward({ data: tgt, dims: [B, T, E] }, memory, { tgtIsCausal: true, memoryMask: { data: explicit, dims: [T, S] } });
      assert.ok(relErr(withMask.data, full.output.data) <= 1e-6, `${where} explicit mask`);
      const cache = layer.createCache({ maxLength: T, batch: B });
      for (const chunks of chunkingsOf(T)) {
        cache.reset();
        let pos = 0;
        for (const n of chunks) {
          const y = layer.forward({ data: rows(tgt, B, T, E, pos, n), dims: [B, n, E] }, memory, { cache, ...options });
          const e = relErr(y.output.data, rows(ref, B, T, E, pos, n));
          assert.ok(e <= 1e-4, `${where} normFirst=${normFirst} chunk of ${n} at ${pos}: ${e}`);
          assert.ok(relErr(y.output.data, rows(full.output.data, B, T, E, pos, n)) <= 1e-4, `${where} chunk of ${n} at ${pos} against the full forward`);
          // Cross-attention weights [B, H, n, S]: the full forward's rows pos..pos+n.
          assert.ok(relErr(y.crossWeights.data, rows(full.crossWeights.data, B * H, T, S, pos, n)) <= 1e-5, `${where} cross weights at ${pos}`);
          pos += n;
        }
      }
      cache.dispose();
      layer.dispose();
    }
    assert.equal(mha.stats().liveLayers, 0);
  });
}

for (const threads of [1, 2]) {
  test(`threads=${threads}: MultiHeadAttention self-attention with a KV cache equals the full causal forward, 1..64 steps`, async () => {
    const mha = await init({ threads });
    const r = rng(500 + threads), B = 3, E = 24, H = 6, s = 1 / Math.sqrt(E);
    const w = { inProjWeight: uniform(r, 3 * E * E, -s, s), inProjBias: uniform(r, 3 * E, -s, s), outProjWeight: uniform(r, E * E, -s, s), outProjBias: uniform(r, E, -s, s) };
    const layer = new mha.MultiHeadAttention({ embedDim: E, numHeads: H });
    layer.setWeights(w);
    const x = uniform(r, B * L * E, -2, 2);
    const ref = mhaReference({ E, H, kdim: E, vdim: E, bias: true }, w, B, L, L, x, x, x, { isCausal: true, needWeights: true });
    const out = Float32Array.from(ref.output);
    const cache = layer.createCache({ maxLength: L, batch: B });
    for (const chunks of CHUNKINGS) {
      cache.reset();
      let pos = 0;
      for (const n of chunks) {
        const { output, weights } = layer.forward({ data: rows(x, B, L, E, pos, n), dims: [B, n, E] }, null, null, { cache, isCausal: true, needWeights: true });
        assert.ok(relErr(output.data, rows(out, B, L, E, pos, n)) <= 1e-4, `chunk of ${n} at ${pos}`);
        assert.deepEqual(weights.dims, [B, n, pos + n]);  // averaged over heads
        for (let b = 0; b < B; b++)
          for (let i = 0; i < n; i++)
            assert.ok(relErr(weights.data.subarray((b * n + i) * (pos + n), (b * n + i + 1) * (pos + n)),
              ref.weights.subarray((b * L + pos + i) * L, (b * L + pos + i) * L + pos + n)) <= 1e-5);
        pos += n;
      }
    }
    assert.throws(() => layer.forward({ data: x.subarray(0, E), dims: [1, E] }, null, null, { cache }), { name: 'RangeError', message: /the input has batch size 1 but options\.cache was created for batch 3/ });
    cache.reset();
    const kv = { data: uniform(r, B * 2 * E, -1, 1), dims: [B, 2, E] };
    assert.throws(() => layer.forward(kv, kv, kv, { cache }), { name: 'TypeError', message: /options\.cache is for self-attention; omit key and value/ });
    const cross = new mha.MultiHeadAttention({ embedDim: E, numHeads: H, kdim: 8 });
    assert.throws(() => cross.createCache({ maxLength: 4 }), { name: 'TypeError', message: /a KV cache is for self-attention, which needs kdim == vdim == embedDim/ });
    for (const o of [cross, cache, layer]) o.dispose();
    assert.equal(mha.stats().liveLayers, 0);
  });
}

test('KV cache with masks: the rows of an attn mask and the columns of a key padding mask, step by step', async () => {
  const mha = await init({ threads: 2 });
  const r = rng(600), B = 2, E = 16, H = 4, F = 32, N = 23;
  const layer = new mha.TransformerEncoderLayer({ dModel: E, nhead: H, dimFeedforward: F });
  const sd = blockStateDict(r, E, F, true);
  layer.setWeights(sd);
  const x = uniform(r, B * N * E, -2, 2);
  // A float mask over the whole sequence (some keys -inf, the diagonal always visible) and padded keys.
  const m = Float32Array.from({ length: N * N }, (_, i) => (i % N === Math.floor(i / N) ? 0 : r() < 0.25 ? -Infinity : r() - 0.5));
  const kpm = Uint8Array.from({ length: B * N }, (_, i) => (i % N !== 0 && r() < 0.2 ? 1 : 0));
  for (let i = 0; i < N; i++) kpm[N + i] = kpm[N + i] && i !== 0 ? 1 : 0;
  const ref = Float32Array.from(encoderReference({ E, H, F, activation: 'relu', eps: 1e-5, normFirst: false, bias: true }, sd, B, N, x,
    { isCausal: true, attnMask: m, maskBroadcast: true, keyPaddingMask: kpm }));
  const cache = layer.createCache({ maxLength: N, batch: B });
  let pos = 0;
  for (const n of [1, 4, 1, 9, 8]) {
    const Lk = pos + n;
    const rowsOfMask = new Float32Array(n * Lk);
    for (let i = 0; i < n; i++) rowsOfMask.set(m.subarray((pos + i) * N, (pos + i) * N + Lk), i * Lk);
    const pad = new Uint8Array(B * Lk);
    for (let b = 0; b < B; b++) pad.set(kpm.subarray(b * N, b * N + Lk), b * Lk);
    const y = layer.forward({ data: rows(x, B, N, E, pos, n), dims: [B, n, E] },
      { cache, isCausal: true, srcMask: { data: rowsOfMask, dims: [n, Lk] }, srcKeyPaddingMask: { data: pad, dims: [B, Lk] } });
    const e = relErr(y.data, rows(ref, B, N, E, pos, n));
    assert.ok(e <= 1e-4, `chunk of ${n} at ${pos}: ${e}`);
    pos += n;
  }
  assert.equal(pos, N);
  cache.dispose();
  layer.dispose();
});

test('truncate keeps a cache\'s first positions: the next ones continue from there as the full causal forward does (encoder and decoder layers; the decoder\'s memory stays); a sliding cache that let go of positions refuses; misuse named', async () => {
  const mha = await init({ threads: 1 });
  const r = rng(710);
  const B = 2, E = 24, H = 3, F = 40, S = 7, cut = 24, ahead = 40;
  // Encoder: positions 0..39 of another sequence go in, the first 24 are kept (they are x's), then x's 24..63.
  const enc = new mha.TransformerEncoderLayer({ dModel: E, nhead: H, dimFeedforward: F, activation: 'gelu' });
  const sd = blockStateDict(r, E, F, true);
  enc.setWeights(sd);
  const x = uniform(r, B * L * E, -2, 2), other = uniform(r, B * L * E, -2, 2);
  for (let b = 0; b < B; b++) other.set(x.subarray(b * L * E, (b * L + cut) * E), b * L * E);  // the same first 24
  const ref = Float32Array.from(encoderReference({ E, H, F, activation: 'gelu', eps: 1e-5, normFirst: false, bias: true }, sd, B, L, x, { isCausal: true }));
  const cache = enc.createCache({ maxLength: L, batch: B });
  enc.forward({ data: rows(other, B, L, E, 0, ahead), dims: [B, ahead, E] }, { cache, isCausal: true });
  assert.equal(cache.length, ahead);
  cache.truncate(cut);
  assert.equal(cache.length, cut);
  const y = enc.forward({ data: rows(x, B, L, E, cut, L - cut), dims: [B, L - cut, E] }, { cache, isCausal: true });
  assert.ok(relErr(y.data, rows(ref, B, L, E, cut, L - cut)) <= 1e-4, 'after truncate: the reference');
  cache.truncate(L);  // its length: nothing changes
  assert.throws(() => cache.truncate(L + 1), { name: 'RangeError', message: `KVCache.truncate: the cache holds ${L} positions; it cannot keep ${L + 1}` });
  for (const bad of [-1, 1.5, NaN]) assert.throws(() => cache.truncate(bad), { name: 'RangeError', message: /^KVCache\.truncate: length must be an integer from 0 to the cache's length, got/ });
  assert.throws(() => cache.truncate('3'), { name: 'TypeError', message: /^KVCache\.truncate: length must be an integer/ });
  assert.equal(cache.length, L, 'refusals change nothing');
  cache.truncate(0);
  assert.equal(cache.length, 0);
  cache.dispose();
  assert.throws(() => cache.truncate(0), { message: 'KVCache.truncate: this cache has been disposed' });
  const fresh = enc.createCache({ maxLength: 8 });
  fresh.truncate(0);  // nothing allocated yet: 0 is what it holds
  assert.throws(() => fresh.truncate(1), { name: 'RangeError', message: 'KVCache.truncate: the cache holds 0 positions; it cannot keep 1' });
  fresh.dispose();
  enc.dispose();

  // Decoder: the self-attention's positions are cut, the projected memory stays.
  const dec = new mha.TransformerDecoderLayer({ dModel: E, nhead: H, dimFeedforward: F, activation: 'gelu' });
  const dsd = blockStateDict(r, E, F, true, true);
  dec.setWeights(dsd);
  const mem = uniform(r, B * S * E, -2, 2), memory = { data: mem, dims: [B, S, E] };
  const dref = Float32Array.from(decoderReference({ E, H, F, activation: 'gelu', eps: 1e-5, normFirst: false, bias: true }, dsd, B, L, S, x, mem, { isCausal: true }, {}));
  const dc = dec.createCache({ maxLength: L, batch: B });
  dec.forward({ data: rows(other, B, L, E, 0, ahead), dims: [B, ahead, E] }, memory, { cache: dc, tgtIsCausal: true });
  dc.truncate(cut);
  const z = dec.forward({ data: rows(x, B, L, E, cut, L - cut), dims: [B, L - cut, E] }, memory, { cache: dc, tgtIsCausal: true });
  assert.ok(relErr(z.data, rows(dref, B, L, E, cut, L - cut)) <= 1e-4, 'decoder after truncate: the reference');
  dc.dispose();
  dec.dispose();

  // A sliding window (4): while every position is held, truncate works; once the cache (8) let go of some, it refuses.
  const att = new mha.MultiHeadAttention({ embedDim: E, numHeads: H, slidingWindow: 4 });
  att.setWeights({ inProjWeight: uniform(r, 3 * E * E, -0.3, 0.3), inProjBias: uniform(r, 3 * E, -0.1, 0.1), outProjWeight: uniform(r, E * E, -0.3, 0.3), outProjBias: uniform(r, E, -0.1, 0.1) });
  const sc = att.createCache({ maxLength: 8 });
  const step = (i) => att.forward({ data: x.subarray(i * E, (i + 1) * E), dims: [1, 1, E] }, null, null, { cache: sc, isCausal: true });
  for (let i = 0; i < 6; i++) step(i);
  sc.truncate(3);
  assert.equal(sc.length, 3);
  for (let i = 3; i < 14; i++) step(i);
  assert.throws(() => sc.truncate(10), { name: 'RangeError', message: /^KVCache\.truncate: this sliding-window cache has let go of its first positions \(it holds the last ones of 14\); it can keep all of them or none$/ });
  assert.equal(sc.length, 14);
  sc.truncate(14);  // all of them
  // None: a new sequence, as after reset(), whose steps equal a fresh cache's.
  sc.truncate(0);
  const fresh8 = att.createCache({ maxLength: 8 });
  for (let i = 0; i < 10; i++) {
    const a = step(i).output.data, b = att.forward({ data: x.subarray(i * E, (i + 1) * E), dims: [1, 1, E] }, null, null, { cache: fresh8, isCausal: true }).output.data;
    assert.deepEqual(Array.from(a), Array.from(b), `step ${i} after truncate(0)`);
  }
  fresh8.dispose();
  sc.reset();
  sc.dispose();
  att.dispose();
  assert.equal(mha.stats().liveLayers, 0);
});

test('KV cache: misuse is refused with a named error, and the layers keep working', async () => {
  const mha = await init({ threads: 1 });
  const r = rng(8), E = 8, F = 8;
  const a = new mha.TransformerEncoderLayer({ dModel: E, nhead: 2, dimFeedforward: F });
  const b = new mha.TransformerEncoderLayer({ dModel: E, nhead: 2, dimFeedforward: F });
  const sd = blockStateDict(r, E, F, true);
  a.setWeights(sd);
  b.setWeights(sd);
  const x = { data: uniform(r, 3 * E, -1, 1), dims: [3, E] };
  const cache = a.createCache({ maxLength: 8 });
  assert.throws(() => a.createCache(), { name: 'TypeError', message: /TransformerEncoderLayer\.createCache: options \{ maxLength \} are required/ });
  assert.throws(() => a.createCache({ maxLength: 0 }), { name: 'RangeError', message: /maxLength must be a positive integer, got 0/ });
  assert.throws(() => a.createCache({ maxLength: NaN }), { name: 'RangeError', message: /maxLength must be a positive integer, got NaN/ });
  assert.throws(() => a.createCache({ maxLength: 4, batch: '2' }), { name: 'TypeError', message: /batch must be a positive integer, got "2"/ });
  assert.throws(() => a.createCache({ maxLength: 4, size: 2 }), { name: 'TypeError', message: /unknown option "size"/ });
  assert.throws(() => a.createCache({ maxLength: 2 ** 30, batch: 64 }), { name: 'RangeError', message: /TransformerEncoderLayer\.createCache needs about .* of wasm working memory/ });
  assert.throws(() => new cache.constructor(), { name: 'TypeError', message: /create a cache with layer\.createCache/ });
  assert.throws(() => b.forward(x, { cache }), { name: 'TypeError', message: /options\.cache was created by another layer/ });
  assert.throws(() => a.forward(x, { cache: {} }), { name: 'TypeError', message: /options\.cache must be a KVCache from layer\.createCache\(\), got an object/ });
  assert.throws(() => a.forward({ data: new Float32Array(2 * 3 * E), dims: [2, 3, E] }, { cache }), { name: 'RangeError', message: /the input has batch size 2 but options\.cache was created for batch 1/ });
  assert.equal(cache.length, 0);
  // Masks cover the cached positions too: [L, length + L].
  a.forward(x, { cache, isCausal: true });
  assert.throws(() => a.forward(x, { cache, srcKeyPaddingMask: { data: new Uint8Array(3), dims: [3] } }), { name: 'RangeError', message: /options\.srcKeyPaddingMask must have dims \[6\], got \[3\]/ });
  const y = a.forward(x, { cache, srcKeyPaddingMask: { data: new Uint8Array(6), dims: [6] } });
  assert.deepEqual(y.dims, [3, E]);
  assert.equal(cache.length, 6);
  cache.dispose();
  cache.dispose();
  assert.equal(cache.disposed, true);
  assert.throws(() => cache.length, { message: 'KVCache.length: this cache has been disposed' });
  assert.throws(() => cache.reset(), { message: 'KVCache.reset: this cache has been disposed' });
  assert.throws(() => a.forward(x, { cache }), { message: 'TransformerEncoderLayer.forward: options.cache has been disposed' });
  // A cache outlives its layer safely (it owns its memory).
  const c2 = b.createCache({ maxLength: 4 });
  b.dispose();
  assert.throws(() => b.forward(x, { cache: c2 }), { message: 'TransformerEncoderLayer.forward: this layer has been disposed' });
  assert.equal(c2.length, 0);
  c2.dispose();
  assert.ok(relErr(a.forward(x).data, encoderReference({ E, H: 2, F, activation: 'relu', eps: 1e-5, normFirst: false, bias: true }, sd, 1, 3, x.data)) <= 1e-4);
  a.dispose();
  assert.equal(mha.stats().liveLayers, 0);
});
