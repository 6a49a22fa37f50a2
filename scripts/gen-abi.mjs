// Writes the C++ and CMake side of bindings/abi.js (the one place the JS/C++
// contract is written) into a folder of the build tree:
//   abi.h      namespace mha::abi: enums (Status, Activation, MaskKind, WeightType, Int8Dot), limits, a struct per record
//   abi.cmake  MHA_MAX_HEAP_BYTES, MHA_MAX_THREADS, MHA_DIST_FILES, MHA_BUILDS
// CMake runs it at configure time and again whenever abi.js changes.
//   node scripts/gen-abi.mjs <out-dir>
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const abi = await import(pathToFileURL(path.join(here, '..', 'bindings', 'abi.js')).href);

const camel = (s) => s.toLowerCase().replace(/_([a-z])/g, (_, c) => c.toUpperCase());
const enumerator = (s) => 'k' + camel(s).replace(/^./, (c) => c.toUpperCase());
const CTYPE = { i32: 'int32_t', ptr: 'uint32_t', f32: 'float' };

export function header() {
  const out = ['// Generated from bindings/abi.js by scripts/gen-abi.mjs: edit abi.js, not this file.',
    '#pragma once', '#include <cstddef>', '#include <cstdint>', '', 'namespace mha {', 'namespace abi {', ''];
  const enm = (name, values, doc) => {
    out.push(`// ${doc}`, `enum class ${name} : int32_t {`);
    for (const [k, v] of Object.entries(values)) out.push(`  ${enumerator(k)} = ${v},`);
    out.push('};', '');
  };
  enm('Status', abi.STATUS, 'What every core call that can fail returns.');
  enm('Activation', abi.ACTIVATION, 'Feed-forward activations.');
  enm('MaskKind', abi.MASK, 'attn-mask kinds: none, bool (nonzero = masked), float (added to the scores).');
  enm('WeightType', abi.WEIGHT_TYPE, 'How a layer stores its weight matrices: float32, float16, int8 per output channel.');
  enm('Int8Dot', abi.INT8_DOT, 'The int8 kernels: dot_i16x8 on int16 activations, or the relaxed i8 x i7 dot on 7-bit halves.');
  out.push(`constexpr uint64_t kMaxHeapBytes = ${abi.MAX_HEAP_BYTES}ull;`, `constexpr int kMaxThreads = ${abi.MAX_THREADS};`,
    `constexpr int kInt8Pass = ${abi.INT8_PASS};  // depth of one int8 pass`, '');
  out.push('// Records: 4-byte fields; pointers are heap offsets (0 = absent).');
  for (const name of Object.keys(abi.RECORDS)) {
    const fields = abi.recordFields(name);
    out.push(`struct ${name} {`);
    for (const f of fields) out.push(`  ${CTYPE[f.type]} ${f.name};`);
    out.push('};', `static_assert(sizeof(${name}) == ${4 * fields.length}, "${name} is packed 4-byte fields");`);
    for (const f of fields) out.push(`static_assert(offsetof(${name}, ${f.name}) == ${f.offset}, "${name}.${f.name}");`);
    out.push('');
  }
  out.push('}  // namespace abi', '}  // namespace mha', '');
  return out.join('\n');
}

export function cmake() {
  return ['# Generated from bindings/abi.js by scripts/gen-abi.mjs.',
    `set(MHA_MAX_HEAP_BYTES ${abi.MAX_HEAP_BYTES})`,
    `set(MHA_MAX_THREADS ${abi.MAX_THREADS})`,
    `set(MHA_DIST_FILES ${abi.FILES.join(' ')})`,
    '# Each build as file:exportName:threads:relaxed.',
    `set(MHA_BUILDS ${Object.values(abi.BUILDS).map((b) => [b.file, b.exportName, b.threads, b.relaxed].map((v) => (v === true ? 'ON' : v === false ? 'OFF' : v)).join(':')).join(' ')})`, ''].join('\n');
}

/** Writes a file only when its text changes, so builds do not redo work. */
function write(file, text) {
  if (fs.existsSync(file) && fs.readFileSync(file, 'utf8') === text) return;
  fs.writeFileSync(file, text);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2];
  if (!dir) {
    console.error('usage: node scripts/gen-abi.mjs <out-dir>');
    process.exit(2);
  }
  fs.mkdirSync(dir, { recursive: true });
  write(path.join(dir, 'abi.h'), header());
  write(path.join(dir, 'abi.cmake'), cmake());
}
