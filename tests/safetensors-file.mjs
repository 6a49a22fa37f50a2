// .safetensors files for the tests, written byte by byte with Buffer (not with
// the package's encoder, which is under test).

/** A file from a header object and raw data bytes, with the header length given or computed. */
export function file(header, data = new Uint8Array(0), headerLength) {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerLength ?? json.length));
  return new Uint8Array(Buffer.concat([len, json, Buffer.from(data)]));
}

/** { name: { data, dims } } as F32 tensors in the given order, via Buffer.writeFloatLE. */
export function f32File(tensors, metadata) {
  const header = metadata ? { __metadata__: metadata } : {};
  const chunks = [];
  let off = 0;
  for (const [name, { data, dims }] of Object.entries(tensors)) {
    const b = Buffer.alloc(data.length * 4);
    data.forEach((x, i) => b.writeFloatLE(x, 4 * i));
    header[name] = { dtype: 'F32', shape: dims, data_offsets: [off, off + b.length] };
    chunks.push(b);
    off += b.length;
  }
  return file(header, Buffer.concat(chunks));
}
