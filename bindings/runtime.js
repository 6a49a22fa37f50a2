// One instantiated wasm module: heap views, allocation with clear errors, and
// the copies across the JS/wasm boundary.
const MAX_HEAP = 2 ** 31;  // -sMAXIMUM_MEMORY=2GB

export function fmtBytes(n) {
  if (n < 1024) return `${n} bytes`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let u = -1;
  do { n /= 1024; u++; } while (n >= 1024 && u < units.length - 1);
  return `${n.toFixed(n < 10 ? 2 : 1)} ${units[u]}`;
}

const Status = { OK: 0, INVALID_ARGUMENT: 1, OUT_OF_MEMORY: 2, NO_WEIGHTS: 3 };

export class Runtime {
  constructor(inst) {
    this.mod = inst.mod;
    this.isAborted = inst.isAborted;
    this._buf = null;
  }

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
    const why = this.isAborted();
    if (why) throw new Error(`mha-wasm: the WebAssembly instance stopped (${why}); call init() again`);
  }

  /**
   * Lays out parts in one allocation, each 16-byte aligned: a typed array is
   * copied in, a number reserves that many bytes (for outputs), null takes no
   * room. Returns { ptr, at(i) } with the byte offset of part i. what names the
   * call in the out-of-memory error. Free ptr with free().
   */
  stage(parts, what) {
    const offsets = [];
    let total = 0;
    for (const p of parts) {
      offsets.push(total);
      const bytes = p === null ? 0 : typeof p === 'number' ? p : p.byteLength;
      total += Math.ceil(bytes / 16) * 16;
    }
    const ptr = this.malloc(Math.max(16, total), what);
    const v = this.views();
    parts.forEach((p, i) => {
      if (p === null || typeof p === 'number') return;
      const at = ptr + offsets[i];
      if (p instanceof Float32Array) v._f32.set(p, at >>> 2);
      else v._u8.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), at);  // bytes of any typed array
    });
    return { ptr, at: (i) => ptr + offsets[i] };
  }

  /** Writes 32-bit unsigned values (e.g. a table of heap offsets) at byte offset ptr (4-aligned). */
  writeU32(ptr, values) {
    new Uint32Array(this.buffer(), ptr, values.length).set(values);
  }

  malloc(bytes, what) {
    const have = this.memoryBytes();
    if (bytes >= MAX_HEAP)
      throw new RangeError(`${what} needs ${fmtBytes(bytes)} of wasm memory for its inputs and outputs, ` +
        `more than the ${fmtBytes(MAX_HEAP)} a wasm heap can hold`);
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

  /** Throws the Error for a non-OK status from the core; requestBytes() is asked only on out-of-memory. */
  check(status, what, requestBytes) {
    if (status === Status.OK) return;
    if (status === Status.OUT_OF_MEMORY)
      throw new RangeError(`${what} needs about ${fmtBytes(requestBytes())} of wasm working memory, ` +
        `more than the heap (${fmtBytes(this.memoryBytes())} now, ${fmtBytes(MAX_HEAP)} at most) could provide`);
    if (status === Status.NO_WEIGHTS) throw new Error(`${what}: weights are not set; call setWeights() first`);
    throw new Error(`${what}: the core rejected the arguments (status ${status}); this is a bug in mha-wasm`);
  }
}
