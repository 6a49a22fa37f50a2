// Tiny tokenizers in Hugging Face tokenizers' tokenizer.json format (with the matching
// tokenizer_config.json), laid out like the real files of each family:
//   'wordpiece'      BERT (bert-base-uncased / all-MiniLM-L6-v2): BertNormalizer (lowercase),
//                    BertPreTokenizer, WordPiece with ##-continuations, [CLS] A [SEP] template.
//   'gpt2'           GPT-2: ByteLevel pre-tokenizer (GPT-2's regex), byte-level BPE with merges
//                    as "a b" strings, <|endoftext|>.
//   'llama3'         Llama 3 / SmolLM-style: Split (Llama 3's regex) + ByteLevel, BPE with
//                    ignore_merges and merges as [a, b] pairs, <|begin_of_text|> prepended by a
//                    TemplateProcessing, Llama 3's chat template.
//   'qwen2'          Qwen2: NFC, Split (Qwen2's regex) + ByteLevel, <|endoftext|> <|im_start|>
//                    <|im_end|>, ChatML chat template, no BOS.
//   'sentencepiece'  Llama 2 / Mistral / TinyLlama-style: Prepend + Replace "▁" normalizer, BPE
//                    with byte_fallback (<0x00>..<0xFF>), <unk> <s> </s>, <s> prepended, the
//                    decoder Sequence Replace / ByteFallback / Fuse / Strip, Mistral's template.
// The BPE merges are learned here from a small English corpus, so simple ASCII text encodes
// into a few dozen tokens. Each tokenizer also carries expectedEncode(text): the ids by a
// plain implementation of the same rules (regex split, byte-level map, merges by rank), to
// check a tokenizer library against.

const CORPUS = [
  'The capital of France is Paris. The capital of Italy is Rome.',
  'Hello world! Hello there, how are you today?',
  'The quick brown fox jumps over the lazy dog.',
  'Once upon a time there was a little girl who lived in a village near the forest.',
  'She liked to read books and to play in the garden with her friends.',
  'What is the answer? The answer is 42.',
].join('\n');

// ---------------------------------------------------------------------------------
// GPT-2's byte-level alphabet (bytes_to_unicode)

/** [byte -> character] of GPT-2's bytes_to_unicode, and the byte order of the base vocabulary. */
export function bytesToUnicode() {
  const bs = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) { bs.push(b); cs.push(256 + n); n++; }
  const map = new Array(256);
  bs.forEach((b, i) => { map[b] = String.fromCodePoint(cs[i]); });
  return { map, order: bs };  // order: the bytes in vocabulary order (id i = byte order[i])
}

const BYTE = bytesToUnicode();
const byteLevel = (s) => Array.from(new TextEncoder().encode(s), (b) => BYTE.map[b]).join('');

// Pre-tokenizer regexes as the real files have them, and JS equivalents (no inline (?i:))
const GPT2_RE = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
const CONTRACTIONS = "'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]";
const LLAMA3_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const LLAMA3_RE = new RegExp(`${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`, 'gu');
const QWEN2_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_RE = new RegExp(`${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`, 'gu');

// ---------------------------------------------------------------------------------
// BPE: learning merges and applying them

/**
 * Learns `count` merges from words (arrays of symbols, with their frequencies): each round
 * merges the most frequent adjacent pair (ties: the smaller "a b" string).
 */
function learnMerges(words, count) {
  const ws = [...words.entries()].map(([w, f]) => ({ syms: w.split('\u0000'), f }));
  const merges = [];
  for (let r = 0; r < count; r++) {
    const pairs = new Map();
    for (const { syms, f } of ws)
      for (let i = 0; i + 1 < syms.length; i++) {
        const key = `${syms[i]} ${syms[i + 1]}`;
        pairs.set(key, (pairs.get(key) ?? 0) + f);
      }
    let best = null, bestN = 0;
    for (const [k, n] of pairs) if (n > bestN || (n === bestN && k < best)) { best = k; bestN = n; }
    if (!best || bestN < 2) break;
    const [a, b] = best.split(' ');
    merges.push([a, b]);
    for (const w of ws) {
      const out = [];
      for (let i = 0; i < w.syms.length; i++) {
        if (i + 1 < w.syms.length && w.syms[i] === a && w.syms[i + 1] === b) { out.push(a + b); i++; } else out.push(w.syms[i]);
      }
      w.syms = out;
    }
  }
  return merges;
}

/** Applies merges (by rank, lowest first, every occurrence left to right) to a list of symbols. */
function applyMerges(syms, ranks) {
  syms = syms.slice();
  for (;;) {
    let best = Infinity, at = -1;
    for (let i = 0; i + 1 < syms.length; i++) {
      const r = ranks.get(`${syms[i]} ${syms[i + 1]}`);
      if (r !== undefined && r < best) { best = r; at = i; }
    }
    if (at < 0) return syms;
    const a = syms[at], b = syms[at + 1], out = [];
    for (let i = 0; i < syms.length; i++) {
      if (i + 1 < syms.length && syms[i] === a && syms[i + 1] === b) { out.push(a + b); i++; } else out.push(syms[i]);
    }
    syms = out;
  }
}

const countWords = (chunks) => {
  const m = new Map();
  for (const c of chunks) {
    const key = Array.from(c).join('\u0000');
    m.set(key, (m.get(key) ?? 0) + 1);
  }
  return m;
};

const addedToken = (id, content, normalized = false) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized, special: true });
const bpeModel = (vocab, merges, extra) => ({ type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, ...extra, vocab, merges });
const byteLevelStep = (o) => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true, ...o });

/**
 * A byte-level BPE tokenizer of one family ('gpt2' | 'llama3' | 'qwen2') with `merges`
 * merges learned from the corpus. Returns { tokenizerJson, tokenizerConfig, special (name ->
 * id), size (number of ids), expectedEncode(text) }.
 */
function byteLevelTokenizer(kind, { merges: mergeCount = 40 } = {}) {
  const re = kind === 'gpt2' ? GPT2_RE : kind === 'llama3' ? LLAMA3_RE : QWEN2_RE;
  const split = (text) => text.match(re) ?? [];
  const merges = learnMerges(countWords(split(CORPUS).map(byteLevel)), mergeCount);
  const vocab = {};
  BYTE.order.forEach((b, i) => { vocab[BYTE.map[b]] = i; });
  let next = 256;
  for (const [a, b] of merges) if (!(a + b in vocab)) vocab[a + b] = next++;
  const specials = {
    gpt2: ['<|endoftext|>'],
    llama3: ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>'],
    qwen2: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'],
  }[kind];
  const special = {};
  for (const s of specials) special[s] = next++;
  const added = specials.map((s) => addedToken(special[s], s, kind === 'gpt2'));
  const ranks = new Map(merges.map(([a, b], i) => [`${a} ${b}`, i]));
  const ignoreMerges = kind === 'llama3';
  const expectedEncode = (text) => {
    const ids = kind === 'llama3' ? [special['<|begin_of_text|>']] : [];
    for (const chunk of split(kind === 'qwen2' ? text.normalize('NFC') : text)) {
      const bl = byteLevel(chunk);
      const syms = ignoreMerges && bl in vocab ? [bl] : applyMerges(Array.from(bl), ranks);
      for (const s of syms) ids.push(vocab[s]);
    }
    return ids;
  };
  let tokenizerJson, tokenizerConfig;
  const base = { version: '1.0', truncation: null, padding: null, added_tokens: added };
  if (kind === 'gpt2') {
    tokenizerJson = {
      ...base, normalizer: null, pre_tokenizer: byteLevelStep(),
      post_processor: byteLevelStep({ add_prefix_space: true, trim_offsets: false }),
      decoder: byteLevelStep({ add_prefix_space: true }),
      model: bpeModel(vocab, merges.map(([a, b]) => `${a} ${b}`)),
    };
    tokenizerConfig = {
      add_bos_token: false, add_prefix_space: false,
      added_tokens_decoder: { [special['<|endoftext|>']]: { content: '<|endoftext|>', lstrip: false, normalized: true, rstrip: false, single_word: false, special: true } },
      bos_token: '<|endoftext|>', clean_up_tokenization_spaces: false, eos_token: '<|endoftext|>', errors: 'replace',
      model_max_length: 1024, pad_token: null, tokenizer_class: 'GPT2Tokenizer', unk_token: '<|endoftext|>',
    };
  } else if (kind === 'llama3') {
    const bot = '<|begin_of_text|>';
    tokenizerJson = {
      ...base, normalizer: null,
      pre_tokenizer: { type: 'Sequence', pretokenizers: [
        { type: 'Split', pattern: { Regex: LLAMA3_PATTERN }, behavior: 'Isolated', invert: false },
        byteLevelStep({ use_regex: false }),
      ] },
      post_processor: { type: 'Sequence', processors: [
        byteLevelStep({ add_prefix_space: true, trim_offsets: false }),
        {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: bot, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [{ SpecialToken: { id: bot, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: bot, type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
          special_tokens: { [bot]: { id: bot, ids: [special[bot]], tokens: [bot] } },
        },
      ] },
      decoder: byteLevelStep({ add_prefix_space: true }),
      model: bpeModel(vocab, merges, { continuing_subword_prefix: null, end_of_word_suffix: null, ignore_merges: true }),
    };
    tokenizerConfig = {
      added_tokens_decoder: Object.fromEntries(specials.map((s) => [special[s], { content: s, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true }])),
      bos_token: bot,
      chat_template: "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
      clean_up_tokenization_spaces: true, eos_token: '<|eot_id|>', model_input_names: ['input_ids', 'attention_mask'],
      model_max_length: 131072, tokenizer_class: 'PreTrainedTokenizerFast',
    };
  } else {
    tokenizerJson = {
      ...base, normalizer: { type: 'NFC' },
      pre_tokenizer: { type: 'Sequence', pretokenizers: [
        { type: 'Split', pattern: { Regex: QWEN2_PATTERN }, behavior: 'Isolated', invert: false },
        byteLevelStep({ trim_offsets: false, use_regex: false }),
      ] },
      post_processor: byteLevelStep({ trim_offsets: false, use_regex: false }),
      decoder: byteLevelStep({ trim_offsets: false, use_regex: false }),
      model: bpeModel(vocab, merges.map(([a, b]) => `${a} ${b}`)),
    };
    tokenizerConfig = {
      add_prefix_space: false,
      added_tokens_decoder: Object.fromEntries(specials.map((s) => [special[s], { content: s, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true }])),
      additional_special_tokens: ['<|im_start|>', '<|im_end|>'], bos_token: null,
      chat_template: "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
      clean_up_tokenization_spaces: false, eos_token: '<|im_end|>', errors: 'replace', model_max_length: 32768,
      pad_token: '<|endoftext|>', split_special_tokens: false, tokenizer_class: 'Qwen2Tokenizer', unk_token: null,
    };
  }
  return { kind, tokenizerJson, tokenizerConfig, special, size: next, expectedEncode };
}

/** Llama 2 / Mistral / TinyLlama-style BPE over "▁"-joined text with byte fallback. */
function sentencepieceTokenizer({ merges: mergeCount = 40 } = {}) {
  const SP = '\u2581';
  const normalize = (text) => SP + text.replaceAll(' ', SP);
  // pieces start at each "▁" (SentencePiece never merges across them)
  const pieces = (s) => s.split(new RegExp(`(?=${SP})`, 'u')).filter(Boolean);
  const norm = normalize(CORPUS.replaceAll('\n', ' '));
  const merges = learnMerges(countWords(pieces(norm)), mergeCount);
  const vocab = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  let next = 3;
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = next++;
  for (const ch of [...new Set(Array.from(norm))].sort()) if (!(ch in vocab)) vocab[ch] = next++;
  for (const [a, b] of merges) if (!(a + b in vocab)) vocab[a + b] = next++;
  const special = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  const ranks = new Map(merges.map(([a, b], i) => [`${a} ${b}`, i]));
  const expectedEncode = (text) => {
    const ids = [1];
    for (const s of applyMerges(Array.from(normalize(text)), ranks)) {
      if (s in vocab) ids.push(vocab[s]);
      else for (const byte of new TextEncoder().encode(s)) ids.push(vocab[`<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`]);
    }
    return ids;
  };
  const tokenizerJson = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [addedToken(0, '<unk>'), addedToken(1, '<s>'), addedToken(2, '</s>')],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: SP }, { type: 'Replace', pattern: { String: ' ' }, content: SP }] },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: { type: 'Sequence', decoders: [
      { type: 'Replace', pattern: { String: SP }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 },
    ] },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges: merges.map(([a, b]) => `${a} ${b}`) },
  };
  const tokenizerConfig = {
    add_bos_token: true, add_eos_token: false,
    added_tokens_decoder: Object.fromEntries(Object.entries(special).map(([s, id]) => [id, { content: s, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true }])),
    bos_token: '<s>',
    chat_template: "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}",
    clean_up_tokenization_spaces: false, eos_token: '</s>', legacy: false, model_max_length: 32768, pad_token: null,
    sp_model_kwargs: {}, spaces_between_special_tokens: false, tokenizer_class: 'LlamaTokenizer', unk_token: '<unk>', use_default_system_prompt: false,
  };
  return { kind: 'sentencepiece', tokenizerJson, tokenizerConfig, special, size: next, expectedEncode };
}

/** BERT's uncased WordPiece: specials, single characters and their ## forms, and some whole words. */
function wordpieceTokenizer() {
  const specials = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
  const chars = [...'abcdefghijklmnopqrstuvwxyz0123456789', ...'!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'];
  const words = ['the', 'of', 'is', 'a', 'capital', 'france', 'paris', 'hello', 'world', 'how', 'are', 'you', 'cat', 'dog', 'sat', 'on', 'mat', 'quick', 'brown', 'fox', '##s', '##ing', '##ed'];
  const vocab = {};
  let next = 0;
  for (const t of [...specials, ...chars, ...chars.filter((c) => /[a-z0-9]/.test(c)).map((c) => `##${c}`), ...words]) if (!(t in vocab)) vocab[t] = next++;
  const special = Object.fromEntries(specials.map((s) => [s, vocab[s]]));
  // BertPreTokenizer: split on whitespace and around punctuation; WordPiece: greedy longest-match-first
  const expectedEncode = (text) => {
    const ids = [special['[CLS]']];
    for (const word of text.toLowerCase().match(/[a-z0-9]+|[^\sa-z0-9]/g) ?? []) {
      const out = [];
      let start = 0, bad = false;
      while (start < word.length) {
        let end = word.length, cur = null;
        while (start < end) {
          const sub = (start > 0 ? '##' : '') + word.slice(start, end);
          if (sub in vocab) { cur = sub; break; }
          end--;
        }
        if (cur === null) { bad = true; break; }
        out.push(vocab[cur]);
        start = end;
      }
      ids.push(...(bad ? [special['[UNK]']] : out));
    }
    ids.push(special['[SEP]']);
    return ids;
  };
  const tokenizerJson = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: specials.map((s) => addedToken(vocab[s], s)),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: '[SEP]', type_id: 1 } }],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [special['[CLS]']], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [special['[SEP]']], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
  const tokenizerConfig = {
    clean_up_tokenization_spaces: true, cls_token: '[CLS]', do_basic_tokenize: true, do_lower_case: true, mask_token: '[MASK]',
    model_max_length: 512, never_split: null, pad_token: '[PAD]', sep_token: '[SEP]', strip_accents: null,
    tokenize_chinese_chars: true, tokenizer_class: 'BertTokenizer', unk_token: '[UNK]',
  };
  return { kind: 'wordpiece', tokenizerJson, tokenizerConfig, special, size: next, expectedEncode };
}

/**
 * A tiny tokenizer: kind 'wordpiece' | 'gpt2' | 'llama3' | 'qwen2' | 'sentencepiece'.
 * Returns { kind, tokenizerJson, tokenizerConfig, special: { token: id }, size, expectedEncode }.
 * The objects are fresh each call (JSON-serialisable, as the files would be parsed).
 */
export function tinyTokenizer(kind, options = {}) {
  if (kind === 'wordpiece') return wordpieceTokenizer();
  if (kind === 'sentencepiece') return sentencepieceTokenizer(options);
  if (kind === 'gpt2' || kind === 'llama3' || kind === 'qwen2') return byteLevelTokenizer(kind, options);
  throw new Error(`tokenizer kind ${kind}`);
}
