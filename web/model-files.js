// What the "Your model" tab (your-model.js) computes without a page: which of the files a
// user chose make up a Hugging Face model, the text a generation has produced so far, the
// cosine similarities of sentence embeddings, and labels for tokens. The Node tests use
// these too, to recompute what the page shows.

/** A chosen file's path: relative to the chosen folder's parent (webkitRelativePath), else its name. */
export const pathOf = (f) => f.webkitRelativePath || f.name;
const dirOf = (p) => p.slice(0, Math.max(0, p.lastIndexOf('/')));
const baseOf = (p) => p.slice(p.lastIndexOf('/') + 1);
const join = (dir, name) => (dir ? `${dir}/${name}` : name);

/** Longest prompt plus generation, or sentence, whose attention maps the tab computes (layers × heads × L² floats). */
export const MAX_ATTENTION_TOKENS = 256;
/** Positions drawn per map (the last ones): larger maps would not fit on a screen. */
export const MAX_DRAWN_TOKENS = 64;

/**
 * The model among the chosen files (File objects, or anything with name, webkitRelativePath
 * and size): the folder holding config.json (the shallowest one that also holds weights, so
 * a sentence-transformers model's 1_Pooling/config.json is not taken for it), and in it
 * model.safetensors.index.json, the .safetensors files, tokenizer.json and
 * tokenizer_config.json; 1_Pooling/config.json below it. Throws an Error saying what is
 * missing. Returns { folder, config, index, safetensors: File[], tokenizer, tokenizerConfig, pooling }.
 */
export function pickModelFiles(files) {
  const list = Array.from(files ?? []);
  if (list.length === 0) throw new Error('No files were chosen.');
  const byPath = new Map(list.map((f) => [pathOf(f), f]));
  const inDir = (dir) => list.filter((f) => dirOf(pathOf(f)) === dir);
  const hasWeights = (dir) => inDir(dir).some((f) => f.name.endsWith('.safetensors') || f.name === 'model.safetensors.index.json');
  const dirs = list.filter((f) => baseOf(pathOf(f)) === 'config.json').map((f) => dirOf(pathOf(f)))
    .sort((a, b) => a.split('/').length - b.split('/').length || a.length - b.length);
  if (dirs.length === 0)
    throw new Error(`There is no config.json among the ${list.length} chosen file${list.length > 1 ? 's' : ''}: choose the model's folder, or its config.json, *.safetensors and tokenizer.json together.`);
  const folder = dirs.find(hasWeights) ?? dirs[0];
  // Another model beside it (not one of its own subfolders, such as 1_Pooling): which one is meant is unclear.
  const other = dirs.find((d) => d !== folder && hasWeights(d) && !(folder === '' || d.startsWith(`${folder}/`)) && !(d === '' || folder.startsWith(`${d}/`)));
  if (other !== undefined)
    throw new Error(`The chosen files hold more than one model (${folder || 'the top folder'} and ${other || 'the top folder'}): choose one model's folder.`);
  const here = inDir(folder), named = (n) => byPath.get(join(folder, n)) ?? null;
  const index = named('model.safetensors.index.json');
  let safetensors = here.filter((f) => f.name.endsWith('.safetensors')).sort((a, b) => (a.name < b.name ? -1 : 1));
  if (!index && safetensors.some((f) => f.name === 'model.safetensors')) safetensors = [named('model.safetensors')];
  const where = folder ? `in ${folder}/` : 'beside config.json';
  if (!index && safetensors.length === 0) {
    const other = here.map((f) => f.name).filter((n) => /\.(bin|pt|pth|ckpt|onnx|gguf|h5|msgpack|ot)$/.test(n));
    throw new Error(`There is no .safetensors file ${where}${other.length ? ` (${other.join(', ')} cannot be read here; the Hub lists model.safetensors for the models this page runs)` : ''}.`);
  }
  const tokenizer = named('tokenizer.json');
  if (!tokenizer) throw new Error(`There is no tokenizer.json ${where}: the page needs it to turn text into token ids (it is in the model's files on the Hub).`);
  return { folder, config: named('config.json'), index, safetensors, tokenizer, tokenizerConfig: named('tokenizer_config.json'), pooling: named('1_Pooling/config.json') };
}

/**
 * The shards a parsed model.safetensors.index.json names (its weight_map's files, in
 * order), found among the chosen .safetensors files. Throws naming any that were not chosen.
 */
export function shardFiles(index, safetensors) {
  const map = index?.weight_map;
  if (map === null || typeof map !== 'object' || Array.isArray(map)) throw new TypeError('model.safetensors.index.json has no "weight_map" object');
  const names = [...new Set(Object.values(map))].sort();
  if (names.length === 0) throw new TypeError('model.safetensors.index.json lists no weight files (its "weight_map" is empty)');
  const bad = names.find((n) => typeof n !== 'string');
  if (bad !== undefined) throw new TypeError(`model.safetensors.index.json maps a tensor to ${JSON.stringify(bad)}, not a file name`);
  const have = new Map(safetensors.map((f) => [f.name, f]));
  const missing = names.filter((n) => !have.has(n));
  if (missing.length)
    throw new Error(`model.safetensors.index.json names ${missing.join(', ')}, which ${missing.length > 1 ? 'were' : 'was'} not chosen: choose every shard (or the whole folder).`);
  return names.map((n) => have.get(n));
}

/** The pooling a sentence-transformers 1_Pooling/config.json asks for: 'mean', 'cls', or null (another mode). */
export function poolingMode(pooling) {
  if (pooling?.pooling_mode_mean_tokens) return 'mean';
  if (pooling?.pooling_mode_cls_token) return 'cls';
  return null;
}

/** Cosine similarities [B, B] of B vectors of E values (rows of data). */
export function cosineMatrix(data, B, E) {
  const norm = Array.from({ length: B }, (_, i) => {
    let s = 0;
    for (let k = 0; k < E; k++) s += data[i * E + k] ** 2;
    return Math.sqrt(s);
  });
  const out = new Float64Array(B * B);
  for (let i = 0; i < B; i++)
    for (let j = 0; j < B; j++) {
      let s = 0;
      for (let k = 0; k < E; k++) s += data[i * E + k] * data[j * E + k];
      out[i * B + j] = s / Math.max(norm[i] * norm[j], 1e-30);
    }
  return out;
}

/** A token as a map label: its text (spaces as ␣, newlines as ↵), or its vocabulary entry when its text is not whole. */
export function tokenLabel(tokenizer, id) {
  const text = tokenizer.decode([id]);
  const s = text === '' || text.includes('\uFFFD') ? tokenizer.idToToken(id) ?? `#${id}` : text;
  return s.replace(/ /g, '␣').replace(/\n/g, '↵').replace(/\t/g, '⇥');
}

/** Bytes as MiB or KiB. */
export function formatBytes(n) {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${(n / 2 ** 10).toFixed(1)} KiB`;
}
