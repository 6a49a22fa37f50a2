// The lifecycle shared by the classes that own an Embind object: dispose()
// frees it, a FinalizationRegistry frees it if the JS object is dropped, and
// every method checks that it is still alive.
import { withLayerConfig } from './layer-config.js';

const registry = new FinalizationRegistry((handle) => { try { handle.delete(); } catch { /* runtime gone */ } });
const state = new WeakMap();  // object -> { handle, name, rt, noun }

export class Native {
  /** handle: the Embind object; name: the class name and noun: what it is ('layer'), for errors. */
  constructor(rt, name, handle, noun = 'layer') {
    state.set(this, { handle, name, rt, noun });
    registry.register(this, handle, this);
  }

  get disposed() { return state.get(this).handle === null; }

  /** Frees the object's wasm memory. Further use throws; a second dispose() does nothing. */
  dispose() {
    const s = state.get(this);
    if (s.handle === null) return;
    registry.unregister(this);
    s.handle.delete();
    s.handle = null;
  }
}

/** A Native with the layer configuration getters (embedDim, numHeads, ...); cfg comes first. */
export class NativeLayer extends withLayerConfig(Native) {}

/** The Embind object of a live object; throws if it was disposed or the runtime stopped. */
export function live(obj, what) {
  const s = state.get(obj);
  if (s.handle === null) throw new Error(`${s.name}.${what}: this ${s.noun} has been disposed`);
  s.rt.checkAlive();
  return s.handle;
}
