// mha-wasm/models: loadTokenizer, a Hugging Face tokenizer.json (+ tokenizer_config.json)
// read by @huggingface/tokenizers, and the chat template of tokenizer_config.json rendered
// by @huggingface/jinja. Both libraries are loaded on the first loadTokenizer() call, so
// an app that only runs models never loads them (and the core entry never does).
import { describe, plainObject } from './validate.js';

const fail = (Err, msg) => { throw new Err(`loadTokenizer: ${msg}`); };
const json = (name, v) => {
  if (typeof v === 'string') {
    try {
      return JSON.parse(v);
    } catch (e) {
      return fail(TypeError, `${name} is not JSON: ${e.message}`);
    }
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) fail(TypeError, `${name} must be the parsed JSON file (an object) or its text, got ${describe(v)}`);
  return v;
};

/** A special token of tokenizer_config.json: a string or an AddedToken { content }. */
const tokenText = (v) => (typeof v === 'string' ? v : v && typeof v === 'object' && typeof v.content === 'string' ? v.content : null);

/**
 * { tokenizerJson, tokenizerConfig? } (parsed objects or JSON text) -> a Tokenizer:
 * encode(text, { addSpecialTokens = true }) -> number[], decode(ids, { skipSpecialTokens = false }),
 * decodeStream(promptIds, { skipSpecialTokens = false }) -> a TextStream (a generation's text, token by token),
 * applyChatTemplate(messages, { addGenerationPrompt = false, tokenize = false, ...variables }),
 * tokenToId(token), idToToken(id), the special tokens (bosToken, eosToken, ...), chatTemplate.
 */
export async function loadTokenizer(options) {
  const o = plainObject('loadTokenizer options', options, ['tokenizerJson', 'tokenizerConfig']);
  if (o.tokenizerJson === undefined) fail(TypeError, 'options.tokenizerJson (tokenizer.json) is required');
  const tokenizerJson = json('options.tokenizerJson', o.tokenizerJson);
  const tokenizerConfig = o.tokenizerConfig === undefined || o.tokenizerConfig === null ? {} : json('options.tokenizerConfig', o.tokenizerConfig);
  if (!tokenizerJson.model || typeof tokenizerJson.model !== 'object') fail(TypeError, 'options.tokenizerJson has no "model" (is it tokenizer.json?)');
  const { Tokenizer: HfTokenizer } = await import('@huggingface/tokenizers');
  let tok;
  try {
    tok = new HfTokenizer(tokenizerJson, tokenizerConfig);
  } catch (e) {
    fail(TypeError, `@huggingface/tokenizers cannot read this tokenizer.json: ${e.message}`);
  }
  // chat_template: one template, or (as some tokenizer_config.json files have) a list of named
  // ones [{ name, template }], from which applyChatTemplate picks as transformers does.
  const source = tokenizerConfig.chat_template ?? null;
  const named = new Map();
  if (Array.isArray(source)) {
    source.forEach((t, i) => {
      if (t === null || typeof t !== 'object' || typeof t.name !== 'string' || typeof t.template !== 'string')
        fail(TypeError, `tokenizerConfig.chat_template[${i}] must be { name, template } (strings), got ${describe(t)}`);
      named.set(t.name, t.template);
    });
  } else if (typeof source === 'string') {
    named.set('default', source);
  } else if (source !== null) {
    fail(TypeError, `tokenizerConfig.chat_template must be a template or a list of { name, template }, got ${describe(source)}`);
  }
  const jinja = await import('@huggingface/jinja');
  const compiled = new Map();  // template source -> Template
  const compile = (text, where, prefix) => {
    if (!compiled.has(text)) {
      try {
        compiled.set(text, new jinja.Template(text));
      } catch (e) {
        throw new TypeError(`${prefix}: ${where} does not parse: ${e.message}`);
      }
    }
    return compiled.get(text);
  };
  for (const [name, text] of named) compile(text, Array.isArray(source) ? `tokenizerConfig.chat_template "${name}"` : 'tokenizerConfig.chat_template', 'loadTokenizer');
  const specials = Object.fromEntries(['bos_token', 'eos_token', 'pad_token', 'unk_token', 'cls_token', 'sep_token', 'mask_token']
    .map((k) => [k, tokenText(tokenizerConfig[k])]));
  // transformers' special_tokens_map holds additional_special_tokens only when the list has some
  const extra = Array.isArray(tokenizerConfig.additional_special_tokens) ? tokenizerConfig.additional_special_tokens.map(tokenText).filter((t) => t !== null) : [];
  const templates = { named, compile: (text) => compile(text, 'options.chatTemplate', 'Tokenizer.applyChatTemplate'), Environment: jinja.Environment };
  return new Tokenizer(tok, templates, specials, extra);
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/**
 * transformers' strftime_now: Python's strftime of the local time now, in the C locale (English
 * names), for the directives chat templates use; any other stays as written.
 */
function strftimeNow(format) {
  if (typeof format !== 'string') throw new TypeError(`strftime_now() takes a format string, got ${describe(format)}`);
  const now = new Date(), two = (n) => String(n).padStart(2, '0');
  const start = new Date(now.getFullYear(), 0, 1), day = Math.round((new Date(now.getFullYear(), now.getMonth(), now.getDate()) - start) / 864e5) + 1;
  const field = {
    Y: () => String(now.getFullYear()), y: () => two(now.getFullYear() % 100), m: () => two(now.getMonth() + 1), d: () => two(now.getDate()),
    e: () => String(now.getDate()).padStart(2, ' '), j: () => String(day).padStart(3, '0'),
    b: () => MONTHS[now.getMonth()].slice(0, 3), B: () => MONTHS[now.getMonth()], a: () => DAYS[now.getDay()].slice(0, 3), A: () => DAYS[now.getDay()],
    H: () => two(now.getHours()), I: () => two(now.getHours() % 12 || 12), p: () => (now.getHours() < 12 ? 'AM' : 'PM'),
    M: () => two(now.getMinutes()), S: () => two(now.getSeconds()), '%': () => '%',
  };
  // %-d and the like (glibc's flag, which Linux's Python passes on): the number without its padding
  return format.replace(/%(-?)(.)/g, (all, flag, c) => {
    if (!Object.hasOwn(field, c)) return all;
    const v = field[c]();
    return flag && /^[ 0-9]+$/.test(v) ? String(Number(v)) : v;
  });
}

/** The text transformers continues with continue_final_message: the last message's content, or its last text part. */
function finalText(message) {
  const c = message?.content;
  if (typeof c === 'string') return c;
  if (Array.isArray(c))
    for (let i = c.length - 1; i >= 0; i--) if (c[i] && typeof c[i] === 'object' && typeof c[i].text === 'string') return c[i].text;
  throw new TypeError('Tokenizer.applyChatTemplate: continueFinalMessage: the last message has no text to continue');
}

// The prompt tokens a TextStream decodes before the new ones (only whether the list starts
// before them matters to the decoders; a few give a byte-level character's first bytes too).
const STREAM_CONTEXT = 8;
// What a TextStream holds back at the end of the text: characters whose bytes have not all
// come (U+FFFD) and whitespace (tokenizers that clean up spaces remove one before punctuation
// that follows).
const UNSETTLED = /[\s\uFFFD]+$/u;

/**
 * A generation's text, one token at a time (Tokenizer.decodeStream). The tokens are decoded
 * whole after the prompt's last ones, and the text after the prompt's is the generation's; where
 * the prompt's text is not a prefix of it, the tokens' own decoding is. push returns what the
 * text gained, up to its unsettled end (UNSETTLED), which end() gives. shown is what push and end
 * returned; text the whole text now. Where a decoder changes text already shown, the stream goes
 * on from the same length of the new text (shown then differs from text there; none of the
 * field's decoders does this to text followed by a settled character).
 */
class TextStream {
  #decode;
  #context;
  #base;
  #at = 0;  // the length of text returned so far, in the text's terms
  #tokens = [];
  constructor(decode, context) {
    this.#decode = decode;
    this.#context = context;
    this.#base = context.length ? decode(context) : '';
    this.shown = '';
    Object.seal(this);
  }

  /** The token ids pushed so far. */
  get tokens() { return this.#tokens.slice(); }

  /** The whole text of the tokens pushed so far (nothing held back). */
  get text() {
    if (!this.#context.length) return this.#decode(this.#tokens);
    const all = this.#decode([...this.#context, ...this.#tokens]);
    return all.startsWith(this.#base) ? all.slice(this.#base.length) : this.#decode(this.#tokens);
  }

  #advance(upTo) {
    if (upTo.length <= this.#at) return '';
    const add = upTo.slice(this.#at);
    this.#at = upTo.length;
    this.shown += add;
    return add;
  }

  /** Adds a token id; returns the text to append to what was shown ('' while nothing settled came). */
  push(id) {
    if (typeof id !== 'number' && typeof id !== 'bigint') throw new TypeError(`TextStream.push: id must be a token id (a number), got ${describe(id)}`);
    const n = Number(id);
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`TextStream.push: ${describe(id)} is not a token id`);
    this.#tokens.push(n);
    return this.#advance(this.text.replace(UNSETTLED, ''));
  }

  /** The text held back, once no token follows. */
  end() {
    return this.#advance(this.text);
  }
}

class Tokenizer {
  #tok;
  #templates;
  #specials;
  #extra;
  constructor(tok, templates, specials, extra) {
    this.#tok = tok;
    this.#templates = templates;
    this.#specials = specials;
    this.#extra = extra;
    /** The chat template's source (tokenizer_config.json's chat_template; of a list, the one named default), or null. */
    this.chatTemplate = templates.named.get('default') ?? null;
    /** The names of tokenizer_config.json's chat templates (['default'] for a single one). */
    this.chatTemplateNames = Object.freeze([...templates.named.keys()]);
    this.bosToken = specials.bos_token;
    this.eosToken = specials.eos_token;
    this.padToken = specials.pad_token;
    this.unkToken = specials.unk_token;
    this.clsToken = specials.cls_token;
    this.sepToken = specials.sep_token;
    this.maskToken = specials.mask_token;
    Object.freeze(this);
  }

  /** Token ids of text; addSpecialTokens (default true) applies the post-processor (BOS, [CLS] ... [SEP]). */
  encode(text, options) {
    if (typeof text !== 'string') throw new TypeError(`Tokenizer.encode: text must be a string, got ${describe(text)}`);
    const o = plainObject('Tokenizer.encode options', options ?? {}, ['addSpecialTokens']);
    if (o.addSpecialTokens !== undefined && typeof o.addSpecialTokens !== 'boolean') throw new TypeError('Tokenizer.encode: options.addSpecialTokens must be a boolean');
    return this.#tok.encode(text, { add_special_tokens: o.addSpecialTokens ?? true }).ids;
  }

  /** The text of token ids (a number[] or typed array); skipSpecialTokens drops BOS, EOS, padding, ... */
  decode(ids, options) {
    if (!Array.isArray(ids) && !ArrayBuffer.isView(ids)) throw new TypeError(`Tokenizer.decode: ids must be an array of token ids, got ${describe(ids)}`);
    const o = plainObject('Tokenizer.decode options', options ?? {}, ['skipSpecialTokens']);
    const list = Array.from(ids, Number);
    for (const id of list) if (!Number.isSafeInteger(id) || id < 0) throw new RangeError(`Tokenizer.decode: ${describe(id)} is not a token id`);
    return this.#tok.decode(list, { skip_special_tokens: !!o.skipSpecialTokens });
  }

  /**
   * The text of a generation as its tokens come: push(id) returns what to append, end() the
   * rest held back (see TextStream). promptIds: the tokens before the first pushed one (a SentencePiece
   * tokenizer drops the space a list's first word starts with, so the new tokens are decoded
   * after the prompt's last ones).
   */
  decodeStream(promptIds, options) {
    const what = 'Tokenizer.decodeStream';
    if (promptIds !== undefined && promptIds !== null && !Array.isArray(promptIds) && !(ArrayBuffer.isView(promptIds) && !(promptIds instanceof DataView)))
      throw new TypeError(`${what}: promptIds must be an array of token ids, got ${describe(promptIds)}`);
    const o = plainObject(`${what} options`, options ?? {}, ['skipSpecialTokens']);
    if (o.skipSpecialTokens !== undefined && typeof o.skipSpecialTokens !== 'boolean') throw new TypeError(`${what}: options.skipSpecialTokens must be a boolean`);
    const ids = Array.from(promptIds ?? [], Number);
    for (const id of ids) if (!Number.isSafeInteger(id) || id < 0) throw new RangeError(`${what}: promptIds holds ${describe(id)}, not a token id`);
    const context = ids.slice(-STREAM_CONTEXT);
    const skip = !!o.skipSpecialTokens;
    return new TextStream((ids) => this.#tok.decode(ids, { skip_special_tokens: skip }), context);
  }

  tokenToId(token) { return this.#tok.token_to_id(token); }
  idToToken(id) { return this.#tok.id_to_token(id); }

  /**
   * messages ([{ role, content }]) through tokenizer_config.json's chat template, as
   * transformers' apply_chat_template renders it: the prompt text, or its token ids with
   * tokenize: true (encoded without adding special tokens, since the template writes them).
   * addGenerationPrompt ends it where the assistant's answer starts; continueFinalMessage ends
   * it inside the last message instead (a prefill the model continues). chatTemplate: the name
   * of one of the config's templates, or a template of your own (default: 'tool_use' when tools
   * are given and the config has it, else 'default'). Other options become template variables
   * (tools, documents, date_string, ...); the special tokens, tools = none and documents = none
   * are set as transformers sets them, and strftime_now writes English names as Python does.
   */
  applyChatTemplate(messages, options) {
    const what = 'Tokenizer.applyChatTemplate';
    if (!Array.isArray(messages)) throw new TypeError(`${what}: messages must be an array of { role, content }, got ${describe(messages)}`);
    messages.forEach((m, i) => {
      if (m === null || typeof m !== 'object' || typeof m.role !== 'string')
        throw new TypeError(`${what}: messages[${i}] must be { role, content }, got ${describe(m)}`);
      const c = m.content;  // a string, or (as transformers allows) an array of parts, an object (a tool's result), or none
      if (c !== undefined && c !== null && typeof c !== 'string' && typeof c !== 'object')
        throw new TypeError(`${what}: messages[${i}].content must be a string, an array of parts or an object, got ${describe(c)}`);
    });
    const { addGenerationPrompt = false, tokenize = false, continueFinalMessage = false, chatTemplate, ...variables } = options ?? {};
    for (const [name, v] of [['addGenerationPrompt', addGenerationPrompt], ['tokenize', tokenize], ['continueFinalMessage', continueFinalMessage]])
      if (typeof v !== 'boolean') throw new TypeError(`${what}: options.${name} must be a boolean, got ${describe(v)}`);
    if (continueFinalMessage && addGenerationPrompt)
      throw new TypeError(`${what}: continueFinalMessage and addGenerationPrompt exclude each other (continue the last message, or start a new assistant message)`);
    const template = this.#pick(chatTemplate, variables.tools);
    const specials = Object.fromEntries(Object.entries(this.#specials).filter(([, v]) => v !== null));
    if (this.#extra.length) specials.additional_special_tokens = this.#extra;
    let text;
    // The engine declares its globals (strftime_now among them) before the variables, and a
    // variable may not redeclare one; its strftime_now names months in the browser's language
    // (Llama 3.2 printed "Today Date: 01 Dez 2026" in German). So for this synchronous render
    // its Environment's set() hands it Python's English one instead, and is then restored.
    const { Environment } = this.#templates, set = Environment.prototype.set;
    Environment.prototype.set = function english(name, value) {
      return set.call(this, name, name === 'strftime_now' && typeof value === 'function' ? strftimeNow : value);
    };
    try {
      text = template.render({
        ...specials, tools: null, documents: null, ...variables, messages, add_generation_prompt: addGenerationPrompt,
      });
    } catch (e) {
      const declared = /^Variable already declared: (.*)$/.exec(e.message);
      if (declared) throw new TypeError(`${what}: options.${declared[1]} is a name the template engine defines itself`);
      throw new Error(`${what}: the chat template stopped: ${e.message}`, { cause: e });
    } finally {
      Environment.prototype.set = set;
    }
    if (continueFinalMessage) {
      // transformers: cut the rendered text just after the last message's content
      const final = finalText(messages.at(-1)), at = text.lastIndexOf(final.trim());
      if (at < 0) throw new Error(`${what}: continueFinalMessage: the last message does not appear in the rendered chat (the template changes it)`);
      text = text.slice(0, at + (text.slice(at, at + final.trimStart().length) === final ? final.trimStart().length : final.trim().length));
    }
    return tokenize ? this.encode(text, { addSpecialTokens: false }) : text;
  }

  /** The template to render: a name, a template's text, or transformers' choice. */
  #pick(chatTemplate, tools) {
    const { named } = this.#templates, what = 'Tokenizer.applyChatTemplate';
    if (chatTemplate !== undefined) {
      if (typeof chatTemplate !== 'string') throw new TypeError(`${what}: options.chatTemplate must be a template's name or text, got ${describe(chatTemplate)}`);
      if (named.has(chatTemplate)) return this.#templates.compile(named.get(chatTemplate));
      if (!/[{]/.test(chatTemplate))
        throw new RangeError(`${what}: options.chatTemplate ${JSON.stringify(chatTemplate)} is not one of the config's templates (${[...named.keys()].join(', ') || 'none'})`);
      return this.#templates.compile(chatTemplate);
    }
    if (named.size === 0) throw new TypeError(`${what}: the tokenizer config has no chat_template (give one as options.chatTemplate)`);
    if (tools !== undefined && tools !== null && named.has('tool_use')) return this.#templates.compile(named.get('tool_use'));
    if (named.has('default')) return this.#templates.compile(named.get('default'));
    throw new TypeError(`${what}: the tokenizer config has several chat templates (${[...named.keys()].join(', ')}) and none named default: choose one with options.chatTemplate`);
  }
}
