// Runs the trained digit-reversal model for the page: loads mha-wasm (one
// thread: the model is small) and the weights, then answers
//   { id, digits } -> one { id, step } message per decoding step, or { id, error }.
// Workers get no import map, so the package is imported by its path.
import { init, parseSafetensors, safetensorsMetadata } from '../bindings/index.js';
import { DigitsModel } from './digits-model.js';

const ready = (async () => {
  const [mha, res] = await Promise.all([init({ threads: 1 }), fetch(new URL('./models/reverse-digits.safetensors', import.meta.url))]);
  if (!res.ok) throw new Error(`could not load the model weights: ${res.status} ${res.statusText} (${res.url})`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  const model = new DigitsModel(mha, parseSafetensors(bytes), safetensorsMetadata(bytes));
  return { model, bytes: bytes.length, build: mha.build };
})();

self.onmessage = async ({ data: { id, digits } }) => {
  try {
    const { model, bytes, build } = await ready;
    const steps = model.decode(digits);
    for (;;) {
      const t0 = performance.now();
      const { value, done } = steps.next();
      if (done) break;
      self.postMessage({ id, step: { ...value, ms: performance.now() - t0 }, config: model.config, metadata: model.metadata, bytes, build });
    }
  } catch (e) {
    self.postMessage({ id, error: { name: e?.name ?? 'Error', message: e?.message ?? String(e) } });
  }
};
