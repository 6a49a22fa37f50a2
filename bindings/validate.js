// Argument checks. Every error names the argument, what was expected and what
// was given: TypeError for a wrong kind of value, RangeError for a wrong size.

export function describe(v) {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  if (typeof v !== 'object') return `${typeof v} ${String(v)}`;
  if (Array.isArray(v)) return v.length > 8 ? `an Array of length ${v.length}` : `[${v.map(describe).join(', ')}]`;
  const name = v.constructor && v.constructor.name;
  if (ArrayBuffer.isView(v)) return `${name} of length ${v.length}`;
  return name && name !== 'Object' ? `a ${name}` : 'an object';
}

export const fmtDims = (dims) => `[${dims.join(', ')}]`;
export const product = (dims) => dims.reduce((a, b) => a * b, 1);
export const sameDims = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

export function positiveInt(name, v) {
  if (typeof v !== 'number') throw new TypeError(`${name} must be a positive integer, got ${describe(v)}`);
  if (!Number.isInteger(v) || v < 1 || v > 0x7fffffff) throw new RangeError(`${name} must be a positive integer, got ${describe(v)}`);
  return v;
}

export function bool(name, v, dflt) {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw new TypeError(`${name} must be a boolean, got ${describe(v)}`);
  return v;
}

export function plainObject(name, v, allowed) {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v) || ArrayBuffer.isView(v))
    throw new TypeError(`${name} must be an object, got ${describe(v)}`);
  for (const k of Object.keys(v))
    if (!allowed.includes(k)) throw new TypeError(`${name}: unknown option "${k}" (expected ${allowed.join(', ')})`);
  return v;
}

/**
 * A tensor { data, dims }. types: allowed typed-array constructors; ranks:
 * allowed lengths of dims. Returns { data, dims } with dims copied.
 */
export function tensor(name, t, { types = [Float32Array], ranks, shapeHint }) {
  const typeNames = types.map((c) => c.name).join(' or ');
  if (t === null || typeof t !== 'object' || ArrayBuffer.isView(t) || Array.isArray(t))
    throw new TypeError(`${name} must be a tensor { data: ${typeNames}, dims: number[] }, got ${describe(t)}`);
  const { data, dims } = t;
  if (!types.some((c) => data instanceof c)) throw new TypeError(`${name}.data must be a ${typeNames}, got ${describe(data)}`);
  if (!Array.isArray(dims)) throw new TypeError(`${name}.dims must be an array of positive integers, got ${describe(dims)}`);
  dims.forEach((d, i) => positiveInt(`${name}.dims[${i}]`, d));
  if (ranks && !ranks.includes(dims.length))
    throw new RangeError(`${name} must have ${shapeHint}, got dims ${fmtDims(dims)}`);
  const n = product(dims);
  if (data.length !== n)
    throw new RangeError(`${name}.data has ${data.length} elements but dims ${fmtDims(dims)} need ${n}`);
  return { data, dims: dims.slice() };
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
