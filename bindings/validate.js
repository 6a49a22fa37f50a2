// Argument checks. Every error names the argument, what was expected and what
// was given: TypeError for a wrong kind of value, RangeError for a wrong size.
//
// Arguments are read once: each option, each tensor's data and dims, each
// element of a dims array is read a single time into a plain value, and only
// those values are used afterwards. Typed arrays are recognised and measured
// with the intrinsic %TypedArray%.prototype getters, which run no user code and
// cannot be shadowed by an own `length` or a subclass getter; a validated array
// is replaced by a fixed-length view of the same memory, so a buffer detached or
// shrunk later in the call is caught (checkIntact) before anything is copied.

/**
 * The engine's own getter key of proto, as a function of the object to read: it
 * reads internal slots and runs none of the caller's code (throwing when the
 * object has no such slots).
 */
export function intrinsic(proto, key) {
  const get = Object.getOwnPropertyDescriptor(proto, key).get;
  return (self) => Reflect.apply(get, self, []);
}
export const TypedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype);
const BUFFER = intrinsic(TypedArrayPrototype, 'buffer'), BYTE_OFFSET = intrinsic(TypedArrayPrototype, 'byteOffset');
const AB_BYTES = intrinsic(ArrayBuffer.prototype, 'byteLength');
const AB_DETACHED = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'detached') ? intrinsic(ArrayBuffer.prototype, 'detached') : null;
const CONSTRUCTORS = new Map([Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float32Array, Float64Array, BigInt64Array, BigUint64Array].map((c) => [c.name, c]));

/** The typed array's kind ('Float32Array', ...) or undefined when v is not a typed array (Proxies are not). */
export const typedArrayKind = intrinsic(TypedArrayPrototype, Symbol.toStringTag);
/** Elements of a typed array, from its buffer: 0 once the buffer is detached or shrunk past the view. */
export const typedArrayLength = intrinsic(TypedArrayPrototype, 'length');

/** Whether buffer is an ArrayBuffer (not a SharedArrayBuffer). */
export function isArrayBuffer(buffer) {
  try {
    AB_BYTES(buffer);
    return true;
  } catch {
    return false;
  }
}

/** Whether an ArrayBuffer is detached (transferred away). A SharedArrayBuffer never is. */
export function isDetached(buffer) {
  if (!isArrayBuffer(buffer)) return false;
  if (AB_DETACHED) return AB_DETACHED(buffer);
  if (AB_BYTES(buffer) !== 0) return false;
  try {
    new Uint8Array(buffer);  // throws on a detached buffer, before ArrayBuffer.prototype.detached (Node < 22)
    return false;
  } catch {
    return true;
  }
}
export const isTypedArray = (v) => typedArrayKind(v) !== undefined;

// Validated views -> { name, length }, for checkIntact.
const validated = new WeakMap();

/**
 * A fixed-length view of the same memory as the typed array v (whose kind is
 * checked by the caller), remembered under name. Throws a TypeError naming the
 * argument when its buffer is detached.
 */
export function snapshotView(name, v) {
  const kind = typedArrayKind(v), length = typedArrayLength(v);
  let view;
  try {
    view = new (CONSTRUCTORS.get(kind))(BUFFER(v), BYTE_OFFSET(v), length);
  } catch (e) {
    throw new TypeError(`${name} is a view of a detached or out-of-bounds ArrayBuffer (${e.message})`);
  }
  validated.set(view, { name, length });
  return view;
}

/** The argument name a validated view was checked under, or undefined. */
export const viewName = (view) => validated.get(view)?.name;

/** Throws a TypeError if a validated view's buffer was detached or shrunk since it was checked. */
export function checkIntact(view) {
  const v = validated.get(view);
  if (v && typedArrayLength(view) !== v.length)
    throw new TypeError(`${v.name} is a view of an ArrayBuffer that was detached or resized during the call`);
}

export function describe(v) {
  try {
    if (v === null) return 'null';
    if (v === undefined) return 'undefined';
    if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v);
    if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
    if (typeof v === 'bigint') return `bigint ${v}`;
    if (typeof v !== 'object' && typeof v !== 'function') return `${typeof v} ${String(v)}`;
    if (typeof v === 'function') return 'a function';
    const kind = typedArrayKind(v);
    if (kind !== undefined) return `${kind} of length ${typedArrayLength(v)}`;
    if (Array.isArray(v)) {
      const n = v.length;
      return n > 8 || !Number.isInteger(n) ? `an Array of length ${n}` : `[${Array.prototype.map.call(v, describe).join(', ')}]`;
    }
    const name = v.constructor && v.constructor.name;
    return typeof name === 'string' && name && name !== 'Object' ? `a ${name}` : 'an object';
  } catch {
    return 'an object that cannot be read';
  }
}

export const fmtDims = (dims) => `[${dims.join(', ')}]`;
export const product = (dims) => dims.reduce((a, b) => a * b, 1);
export const sameDims = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

export function positiveInt(name, v) {
  if (typeof v !== 'number') throw new TypeError(`${name} must be a positive integer, got ${describe(v)}`);
  if (!Number.isInteger(v) || v < 1 || v > 0x7fffffff) throw new RangeError(`${name} must be a positive integer, got ${describe(v)}`);
  return v;
}

export function nonNegativeInt(name, v) {
  if (typeof v !== 'number') throw new TypeError(`${name} must be a non-negative integer, got ${describe(v)}`);
  if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) throw new RangeError(`${name} must be a non-negative integer, got ${describe(v)}`);
  return v;
}

export function bool(name, v, dflt) {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw new TypeError(`${name} must be a boolean, got ${describe(v)}`);
  return v;
}

/**
 * A snapshot of an options object: a null-prototype object holding each
 * allowed option read once (undefined ones, and ones only Object.prototype has,
 * left out). Unknown own keys throw.
 */
export function plainObject(name, v, allowed) {
  const out = Object.create(null);
  if (v === undefined || v === null) return out;
  if (typeof v !== 'object' || Array.isArray(v) || isTypedArray(v))
    throw new TypeError(`${name} must be an object, got ${describe(v)}`);
  for (const k of Object.keys(v))
    if (!allowed.includes(k)) throw new TypeError(`${name}: unknown option "${k}" (expected ${allowed.join(', ')})`);
  for (const k of allowed) {
    const x = given(v, k) ? v[k] : undefined;
    if (x !== undefined) out[k] = x;
  }
  return out;
}

/**
 * Whether object v gives option k itself or through a prototype of its own, not only
 * through Object.prototype: a polluted Object.prototype must not supply options.
 */
export function given(v, k) {
  for (let o = v; o !== null && o !== Object.prototype; o = Object.getPrototypeOf(o))
    if (Object.prototype.hasOwnProperty.call(o, k)) return true;
  return false;
}

/** The elements of an array, each read once, after reading its length once (at most maxLength). */
export function readArray(name, v, maxLength, what = 'an array') {
  if (!Array.isArray(v)) throw new TypeError(`${name} must be ${what}, got ${describe(v)}`);
  const n = v.length;
  if (!Number.isInteger(n) || n < 0 || n > maxLength)
    throw new RangeError(`${name} must be ${what} of at most ${maxLength} elements, got length ${describe(n)}`);
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[i] = v[i];
  return out;
}

const MAX_RANK = 16;

/**
 * A tensor { data, dims }. types: allowed typed-array constructors; ranks:
 * allowed lengths of dims. Returns { data, dims }: data a validated view
 * (snapshotView), dims a plain copy.
 */
export function tensor(name, t, { types = [Float32Array], ranks, shapeHint }) {
  const typeNames = types.map((c) => c.name).join(' or ');
  if (t === null || typeof t !== 'object' || isTypedArray(t) || Array.isArray(t))
    throw new TypeError(`${name} must be a tensor { data: ${typeNames}, dims: number[] }, got ${describe(t)}`);
  const data = t.data, dimsIn = t.dims;
  const kind = typedArrayKind(data);
  if (!types.some((c) => c.name === kind)) throw new TypeError(`${name}.data must be a ${typeNames}, got ${describe(data)}`);
  const dims = readArray(`${name}.dims`, dimsIn, MAX_RANK, 'an array of positive integers');
  dims.forEach((d, i) => positiveInt(`${name}.dims[${i}]`, d));
  if (ranks && !ranks.includes(dims.length))
    throw new RangeError(`${name} must have ${shapeHint}, got dims ${fmtDims(dims)}`);
  const view = snapshotView(`${name}.data`, data), n = product(dims), length = typedArrayLength(view);
  if (length !== n)
    throw new RangeError(`${name}.data has ${length} elements but dims ${fmtDims(dims)} need ${n}`);
  return { data: view, dims };
}

export function expectDim(name, dims, axis, want, what) {
  if (dims[axis] !== want)
    throw new RangeError(`${name}.dims[${axis}] must be ${what} (${want}), got ${dims[axis]} in dims ${fmtDims(dims)}`);
}

/** Float masks may hold finite values or -Infinity (NaN or +Infinity would poison the softmax). */
export function finiteOrMinusInf(name, data) {
  for (let i = 0; i < data.length; i++) {
    const x = data[i];
    if (x !== x || x === Infinity)
      throw new RangeError(`${name}[${i}] is ${x}; a float mask may hold finite values or -Infinity`);
  }
}

/**
 * A snapshot of an object's own enumerable entries (a state_dict, say) in a
 * null-prototype object, each value read once; undefined values are left out.
 * expected describes the object in the TypeError for a non-object.
 */
export function readEntries(name, v, expected) {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || isTypedArray(v))
    throw new TypeError(`${name} must be ${expected}, got ${describe(v)}`);
  const out = Object.create(null);
  for (const k of Object.keys(v)) {
    const x = v[k];
    if (x !== undefined) out[k] = x;
  }
  return out;
}

/**
 * Where the runtime is (an op): arr must be one of types with exactly n
 * elements, since the op sizes its copies and the core's reads from n. The main
 * API's checks make this always hold; it guards the worker host against
 * messages that do not match their own sizes.
 */
export function expectArray(name, arr, types, n) {
  checkIntact(arr);  // a view detached or shrunk since it was read: say so, by the argument's name
  if (!types.some((c) => arr instanceof c) || arr.length !== n)
    throw new RangeError(`${name}: expected a ${types.map((c) => c.name).join(' or ')} of ${n} elements; the call does not match its own sizes`);
}

/** Where the runtime is: each named value must be a positive 32-bit integer. */
export function expectCounts(what, values) {
  for (const [k, v] of Object.entries(values))
    if (!(Number.isInteger(v) && v > 0 && v <= 0x7fffffff)) throw new RangeError(`${what}: ${k} must be a positive integer, got ${describe(v)}`);
}
