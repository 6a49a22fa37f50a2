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
  let template = tokenizerConfig.chat_template ?? null;
  if (Array.isArray(template)) template = (template.find((t) => t && t.name === 'default') ?? template[0])?.template ?? null;
  let compiled = null;
  if (typeof template === 'string') {
    const { Template } = await import('@huggingface/jinja');
    try {
      compiled = new Template(template);
    } catch (e) {
      fail(TypeError, `tokenizerConfig.chat_template does not parse: ${e.message}`);
    }
  }
  const specials = Object.fromEntries(['bos_token', 'eos_token', 'pad_token', 'unk_token', 'cls_token', 'sep_token', 'mask_token']
    .map((k) => [k, tokenText(tokenizerConfig[k])]));
  return new Tokenizer(tok, compiled, template, specials);
}

class Tokenizer {
  #tok;
  #template;
  constructor(tok, template, source, specials) {
    this.#tok = tok;
    this.#template = template;
    /** The chat template's source (tokenizer_config.json's chat_template), or null. */
    this.chatTemplate = typeof source === 'string' ? source : null;
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

  tokenToId(token) { return this.#tok.token_to_id(token); }
  idToToken(id) { return this.#tok.id_to_token(id); }

  /**
   * messages ([{ role, content }]) through tokenizer_config.json's chat template: the prompt
   * text, or its token ids with tokenize: true (encoded without adding special tokens, since
   * the template writes them). addGenerationPrompt ends it where the assistant's answer
   * starts. Other options become template variables (tools, documents, ...).
   */
  applyChatTemplate(messages, options) {
    if (!this.#template) throw new TypeError('Tokenizer.applyChatTemplate: the tokenizer config has no chat_template');
    if (!Array.isArray(messages)) throw new TypeError(`Tokenizer.applyChatTemplate: messages must be an array of { role, content }, got ${describe(messages)}`);
    messages.forEach((m, i) => {
      if (m === null || typeof m !== 'object' || typeof m.role !== 'string')
        throw new TypeError(`Tokenizer.applyChatTemplate: messages[${i}] must be { role, content }, got ${describe(m)}`);
      const c = m.content;  // a string, or (as transformers allows) an array of parts, or none
      if (c !== undefined && c !== null && typeof c !== 'string' && !Array.isArray(c))
        throw new TypeError(`Tokenizer.applyChatTemplate: messages[${i}].content must be a string (or an array of parts), got ${describe(c)}`);
    });
    const { addGenerationPrompt = false, tokenize = false, ...variables } = options ?? {};
    if (typeof addGenerationPrompt !== 'boolean') throw new TypeError('Tokenizer.applyChatTemplate: options.addGenerationPrompt must be a boolean');
    const text = this.#template.render({
      bos_token: this.bosToken ?? '', eos_token: this.eosToken ?? '', pad_token: this.padToken ?? '', unk_token: this.unkToken ?? '',
      ...variables, messages, add_generation_prompt: addGenerationPrompt,
    });
    return tokenize ? this.encode(text, { addSpecialTokens: false }) : text;
  }
}
