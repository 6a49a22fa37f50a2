// The lifecycle shared by the classes that own an Embind object: dispose()
// frees it, a FinalizationRegistry frees it if the JS object is dropped, and
// every method checks that it is still alive.
import { LayerConfig } from './layer-config.js';

const registry = new FinalizationRegistry((handle) => { try { handle.delete(); } catch { /* runtime gone */ } });
const state = new WeakMap();  // layer -> { handle, name, rt }

export class NativeLayer extends LayerConfig {
  /** cfg: the frozen configuration; handle: the Embind object; name: the class name for errors. */
  constructor(cfg, rt, name, handle) {
    super(cfg);
    state.set(this, { handle, name, rt });
    registry.register(this, handle, this);
  }

  get disposed() { return state.get(this).handle === null; }

  /** Frees the layer's wasm memory. Further use throws; a second dispose() does nothing. */
  dispose() {
    const s = state.get(this);
    if (s.handle === null) return;
    registry.unregister(this);
    s.handle.delete();
    s.handle = null;
  }
}

/** The Embind object of a live layer; throws if it was disposed or the runtime stopped. */
export function live(layer, what) {
  const s = state.get(layer);
  if (s.handle === null) throw new Error(`${s.name}.${what}: this layer has been disposed`);
  s.rt.checkAlive();
  return s.handle;
}
