// One instantiated wasm module: heap views, allocation with clear errors, and
// the copies across the JS/wasm boundary.
import { MAX_HEAP_BYTES, STATUS, recordFields } from './abi.js';
import { checkIntact } from './validate.js';

export const MAX_HEAP = MAX_HEAP_BYTES;
const FIELDS = new Map();  // record name -> its fields (abi.js)

export function fmtBytes(n) {
  if (n < 1024) return `${n} bytes`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let u = -1;
  do { n /= 1024; u++; } while (n >= 1024 && u < units.length - 1);
  return `${n.toFixed(n < 10 ? 2 : 1)} ${units[u]}`;
}


// What the Embind glue defines, wrapped by guardModule.
const CLASSES = ['Layer', 'Encoder', 'Decoder', 'LayerNorm', 'Cache', 'RMSNorm', 'FeedForward', 'Model', 'ModelCache'];
const FUNCTIONS = ['sdpa', 'sdpaRequestBytes', 'rotary', 'setThreads', 'threads', 'liveLayers', '_malloc', '_free'];

/**
 * A view of the Emscripten module whose every Embind class, method and function
 * turns a failure of the instance itself (a trap, abort(), or a C++ exception,
 * which arrives as a bare number) into an Error and marks the runtime dead
 * through fatal(error). Errors Embind throws for misuse pass through unchanged.
 */
function guardModule(mod, fatal) {
  const guard = (fn, what) => function guarded(...args) {
    try {
      return new.target ? new fn(...args) : Reflect.apply(fn, this, args);
    } catch (e) {
      if (e instanceof Error && !(e instanceof WebAssembly.RuntimeError)) throw e;
      throw fatal(e, what);
    }
  };
  const view = Object.create(mod);
  for (const name of CLASSES) {
    const proto = mod[name].prototype;
    for (const key of Object.getOwnPropertyNames(proto)) {
      const d = Object.getOwnPropertyDescriptor(proto, key);
      if (key !== 'constructor' && typeof d.value === 'function') proto[key] = guard(d.value, `${name}.${key}`);
    }
    view[name] = guard(mod[name], name);
  }
  for (const name of FUNCTIONS) view[name] = guard(mod[name], name);
  return view;
}

export class Runtime {
  #dead = null;
  constructor(inst) {
    this.#dead = inst.aborted();
    inst.onAbort((why) => this.#die(`abort(${why ? JSON.stringify(why) : ''}) was called`));
    this.mod = guardModule(inst.mod, (e, what) => this.#die(`${what} failed: ${e instanceof Error ? e.message : `C++ exception ${String(e)}`}`, e));
    this._buf = null;
  }

  /** Marks the instance dead (the first reason sticks) and returns the Error to throw. */
  #die(why, cause) {
    if (!this.#dead) this.#dead = why;
    return new Error(`mha-wasm: the WebAssembly instance stopped (${this.#dead}); call init() again`, { cause });
  }

  /** Why the instance stopped, or null while it is alive. */
  get deadReason() { return this.#dead; }

  // The threaded build exports its (shared) memory; in the single-thread build
  // Module.HEAPU8 is replaced whenever the heap grows.
  buffer() {
    return this.mod.wasmMemory ? this.mod.wasmMemory.buffer : this.mod.HEAPU8.buffer;
  }

  memoryBytes() {
    return this.buffer().byteLength;
  }

  views() {
    const buf = this.buffer();
    if (buf !== this._buf) {
      this._buf = buf;
      this._u8 = new Uint8Array(buf);
      this._f32 = new Float32Array(buf);
    }
    return this;
  }

  checkAlive() {
    if (this.#dead) throw this.#die(this.#dead);
  }

  /**
   * Lays out parts in one allocation, each 16-byte aligned: a typed array is
   * copied in, a number reserves that many bytes (for outputs), null takes no
   * room. Returns { ptr, at(i) } with the byte offset of part i. what names the
   * call in the out-of-memory error. Free ptr with free(). The typed arrays are
   * validated views (validate.js); one whose buffer was detached or resized since
   * it was checked is refused before anything is allocated.
   */
  stage(parts, what) {
    this.checkAlive();
    const offsets = [];
    let total = 0;
    for (const p of parts) {
      offsets.push(total);
      let bytes = 0;
      if (typeof p === 'number') bytes = p;
      else if (p !== null) {
        checkIntact(p);
        bytes = p.byteLength;
      }
      total += Math.ceil(bytes / 16) * 16;
    }
    const ptr = this.malloc(Math.max(16, total), what);
    try {
      const v = this.views();
      parts.forEach((p, i) => {
        if (p === null || typeof p === 'number') return;
        const at = ptr + offsets[i];
        if (p instanceof Float32Array) v._f32.set(p, at >>> 2);
        else v._u8.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), at);  // bytes of any typed array
      });
    } catch (e) {
      this.free(ptr);
      throw e;
    }
    return { ptr, at: (i) => ptr + offsets[i] };
  }

  /**
   * Writes record name (abi.js) at byte offset ptr (4-aligned, RECORD_BYTES(name)
   * reserved): every field from values (heap offsets for pointers, 0 = absent;
   * booleans as 0/1). A missing field is a bug, so it throws.
   */
  writeRecord(ptr, name, values) {
    let fields = FIELDS.get(name);
    if (!fields) FIELDS.set(name, (fields = recordFields(name)));
    const buf = this.buffer(), i32 = new Int32Array(buf, ptr, fields.length), f32 = new Float32Array(buf, ptr, fields.length);
    for (const f of fields) {
      const v = values[f.name];
      if (v === undefined) throw new Error(`mha-wasm: record ${name} has no value for ${f.name}; this is a bug in mha-wasm`);
      if (f.type === 'f32') f32[f.offset >> 2] = v;
      else i32[f.offset >> 2] = typeof v === 'boolean' ? Number(v) : v;
    }
  }

  /** Calls fn(ptr) with record name written from values in wasm memory, then frees it. */
  withRecord(name, values, fn, what) {
    const st = this.stage([recordBytes(name)], what);
    try {
      this.writeRecord(st.ptr, name, values);
      return fn(st.ptr);
    } finally {
      this.free(st.ptr);
    }
  }

  malloc(bytes, what) {
    const have = this.memoryBytes();
    if (!(bytes < MAX_HEAP)) throw tooLarge(what, bytes, 'memory for its inputs and outputs');
    const p = this.mod._malloc(bytes) >>> 0;
    if (!p)
      throw new RangeError(`${what} needs ${fmtBytes(bytes)} of wasm memory for its inputs and outputs, ` +
        `but the heap (${fmtBytes(have)} now, ${fmtBytes(MAX_HEAP)} at most) could not provide it`);
    return p;
  }

  free(ptr) {
    if (ptr) this.mod._free(ptr);
  }

  /** A caller-owned copy of n floats at byte offset ptr. */
  readF32(ptr, n) {
    return this.views()._f32.slice(ptr >>> 2, (ptr >>> 2) + n);
  }

  /** The same into a caller's Float32Array (its length; not a view of this heap: callers check). */
  readF32Into(ptr, out) {
    out.set(this.views()._f32.subarray(ptr >>> 2, (ptr >>> 2) + out.length));
    return out;
  }

  /** Throws the Error for a non-OK status from the core; requestBytes() is asked only on out-of-memory. */
  check(status, what, requestBytes) {
    if (status === STATUS.OK) return;
    if (status === STATUS.OUT_OF_MEMORY) {
      const need = requestBytes();
      if (!(need < MAX_HEAP)) throw tooLarge(what, need, 'working memory', true);
      throw new RangeError(`${what} needs about ${fmtBytes(need)} of wasm working memory, ` +
        `more than the heap (${fmtBytes(this.memoryBytes())} now, ${fmtBytes(MAX_HEAP)} at most) could provide`);
    }
    if (status === STATUS.NO_WEIGHTS) throw new Error(`${what}: weights are not set; call setWeights() first`);
    throw new Error(`${what}: the core rejected the arguments (status ${status}); this is a bug in mha-wasm`);
  }
}

/**
 * The RangeError for a size no wasm heap can hold: "<what> needs [about] <size>
 * of wasm <kind>, more than ...". bytes may be beyond 2^53 or Infinity.
 */
export function tooLarge(what, bytes, kind, about = false) {
  const size = Number.isFinite(bytes) && bytes < 2 ** 60 ? fmtBytes(bytes) : 'more bytes than can be counted';
  return new RangeError(`${what} needs ${about ? 'about ' : ''}${size} of wasm ${kind}, more than the ${fmtBytes(MAX_HEAP)} a wasm heap can hold`);
}

/** The bytes record name takes (4 per field). */
export const recordBytes = (name) => 4 * recordFields(name).length;
