// The lifecycle every public class shares, over a backend (this thread, or a
// worker: see api.js): the object lives in the backend under an id; dispose()
// frees it, a FinalizationRegistry frees it if the JS object is dropped, and
// every method checks that it is still alive.

/** The Native base class and helpers for one backend. */
export function makeNative(backend) {
  const registry = new FinalizationRegistry((id) => backend.release(id));
  const state = new WeakMap();  // object -> { id, name, noun, disposed }

  class Native {
    /**
     * name: the class name and noun: what it is ('layer', 'cache'), for errors;
     * kind and cfg: what the backend makes (cfg is validated plain data).
     */
    constructor(name, kind, cfg, noun = 'layer') {
      const id = backend.create(kind, cfg, `new ${name}`);
      state.set(this, { id, name, noun, disposed: false });
      registry.register(this, id, this);
    }

    get disposed() { return state.get(this).disposed; }

    /** Frees the object's wasm memory. Further use throws; a second dispose() does nothing. */
    dispose() {
      const s = state.get(this);
      if (s.disposed) return;
      s.disposed = true;
      registry.unregister(this);
      backend.release(s.id);
    }
  }

  /** The backend id of a live object; throws if it was disposed or the backend stopped. what: the method, for the message. */
  function live(obj, what) {
    const s = state.get(obj);
    if (s.disposed) throw new Error(`${s.name}.${what}: this ${s.noun} has been disposed`);
    backend.checkAlive();
    return s.id;
  }

  return { Native, live };
}
