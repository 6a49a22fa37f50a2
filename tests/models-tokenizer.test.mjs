// mha-wasm/models' loadTokenizer: the tiny tokenizer.json files of tests/models (every
// family's layout) encode to the ids of the independent plain implementation and decode
// back; chat templates render as the templates say (written out here by hand); bad inputs
// are named; and the core entries never import the tokenizer libraries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTokenizer } from 'mha-wasm/models';
import { tinyModel } from './models/tiny.mjs';

const TEXTS = ['The capital of France is Paris.', 'Hello world! How are you today?', "It's 2024, isn't it?  Yes.\nA new line"];

test('encode gives the ids of the plain implementation; decode gives the text back', async () => {
  for (const arch of ['bert', 'gpt2', 'llama', 'qwen2', 'mistral']) {
    const m = tinyModel(arch);
    // as the files arrive: JSON text
    const tok = await loadTokenizer({ tokenizerJson: JSON.stringify(m.tokenizerJson), tokenizerConfig: JSON.stringify(m.tokenizerConfig) });
    for (const text of TEXTS) {
      const ids = tok.encode(text);
      assert.deepEqual(ids, m.tokenizer.expectedEncode(text), `${arch}: ${JSON.stringify(text)}`);
      const back = tok.decode(ids, { skipSpecialTokens: true });
      if (arch === 'bert') assert.equal(back.replace(/\s+/g, ''), text.toLowerCase().replace(/\s+/g, ''));
      else assert.equal(back, text, arch);
      assert.deepEqual(tok.encode(text, { addSpecialTokens: false }).length < ids.length, ['bert', 'llama', 'mistral'].includes(arch), `${arch}: special tokens added`);
      assert.equal(tok.decode(Int32Array.from(ids), { skipSpecialTokens: true }), back);
    }
    for (const [content, id] of Object.entries(m.tokenizer.special)) {
      assert.equal(tok.tokenToId(content), id);
      assert.equal(tok.idToToken(id), content);
    }
  }
});

test('applyChatTemplate renders tokenizer_config.json\'s chat template (Llama 3, ChatML, Mistral)', async () => {
  const llama = await loadTokenizer({ tokenizerJson: tinyModel('llama').tokenizerJson, tokenizerConfig: tinyModel('llama').tokenizerConfig });
  const msgs = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi there ' }];
  const expected = '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>';
  assert.equal(llama.applyChatTemplate(msgs), expected);
  assert.throws(() => llama.applyChatTemplate([{ role: 'user', content: 5 }]), { name: 'TypeError', message: /messages\[0\]\.content must be a string, an array of parts or an object, got 5/ });
  assert.equal(llama.applyChatTemplate(msgs, { addGenerationPrompt: true }), `${expected}<|start_header_id|>assistant<|end_header_id|>\n\n`);
  // tokenize: the template's own BOS, not a second one
  const ids = llama.applyChatTemplate(msgs, { addGenerationPrompt: true, tokenize: true });
  const bos = llama.tokenToId('<|begin_of_text|>');
  assert.equal(ids[0], bos);
  assert.equal(ids.filter((i) => i === bos).length, 1);
  assert.equal(llama.decode(ids), `${expected}<|start_header_id|>assistant<|end_header_id|>\n\n`);

  const q = tinyModel('qwen2');
  const qwen = await loadTokenizer({ tokenizerJson: q.tokenizerJson, tokenizerConfig: q.tokenizerConfig });
  assert.equal(qwen.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true }),
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
  assert.equal(qwen.eosToken, '<|im_end|>');

  const mi = tinyModel('mistral');
  const mistral = await loadTokenizer({ tokenizerJson: mi.tokenizerJson, tokenizerConfig: mi.tokenizerConfig });
  assert.equal(mistral.applyChatTemplate([{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello' }, { role: 'user', content: 'Bye' }]),
    '<s>[INST] Hi [/INST]Hello</s>[INST] Bye [/INST]');
  assert.throws(() => mistral.applyChatTemplate([{ role: 'assistant', content: 'Hi' }]), /Conversation roles must alternate/);

  // named templates (a list in tokenizer_config.json): 'default' is used; template variables pass through
  const cfg = { ...q.tokenizerConfig, chat_template: [{ name: 'tool_use', template: 'tools' }, { name: 'default', template: '{{ greeting }} {{ messages[0].content }}{% if add_generation_prompt %}!{% endif %}' }] };
  const named = await loadTokenizer({ tokenizerJson: q.tokenizerJson, tokenizerConfig: cfg });
  assert.equal(named.applyChatTemplate([{ role: 'user', content: 'x' }], { addGenerationPrompt: true, greeting: 'hey' }), 'hey x!');
  assert.deepEqual(named.chatTemplateNames, ['tool_use', 'default']);
  // transformers' choice: 'tool_use' when tools are given, else 'default'; or one by name, or a template's text
  assert.equal(named.applyChatTemplate([{ role: 'user', content: 'x' }], { tools: [{ type: 'function' }] }), 'tools');
  assert.equal(named.applyChatTemplate([{ role: 'user', content: 'x' }], { chatTemplate: 'tool_use' }), 'tools');
  assert.equal(named.applyChatTemplate([{ role: 'user', content: 'x' }], { chatTemplate: '<{{ messages[0].content }}>' }), '<x>');
  assert.throws(() => named.applyChatTemplate([{ role: 'user', content: 'x' }], { chatTemplate: 'rag' }), { name: 'RangeError', message: /"rag" is not one of the config's templates \(tool_use, default\)/ });
  const noDefault = await loadTokenizer({ tokenizerJson: q.tokenizerJson, tokenizerConfig: { ...q.tokenizerConfig, chat_template: [{ name: 'a', template: 'A' }, { name: 'b', template: 'B' }] } });
  assert.throws(() => noDefault.applyChatTemplate([{ role: 'user', content: 'x' }]), /several chat templates \(a, b\) and none named default/);
  assert.equal(noDefault.applyChatTemplate([{ role: 'user', content: 'x' }], { chatTemplate: 'b' }), 'B');
});

test('applyChatTemplate sets what transformers sets: special tokens (only those the config has), tools and documents none, strftime_now in English; continueFinalMessage', async () => {
  const q = tinyModel('qwen2');
  // Llama 3.1 falls back to a fixed date when date_string is not given (transformers does not give it);
  // Llama 3.2 asks strftime_now, which Python answers in the C locale (English month names).
  const probe = '{{ bos_token is defined }} {{ eos_token }} {{ cls_token is defined }} {{ tools is none }} {{ documents is none }} ' +
    '{%- if not date_string is defined %}{%- set date_string = "26 Jul 2024" %}{%- endif %} {{ date_string }} | {{ strftime_now("%d %b %Y / %B %A") }} | {{ messages[0].content.name }}';
  const tok = await loadTokenizer({ tokenizerJson: q.tokenizerJson, tokenizerConfig: { ...q.tokenizerConfig, chat_template: probe, bos_token: null, additional_special_tokens: [] } });
  const months = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
  const days = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
  const dateOf = (now) => `${String(now.getDate()).padStart(2, '0')} ${months[now.getMonth()].slice(0, 3)} ${now.getFullYear()} / ${months[now.getMonth()]} ${days[now.getDay()]}`;
  // The day may turn while rendering: either side of it is right.
  const around = (render) => { const before = dateOf(new Date()), got = render(), after = dateOf(new Date()); return { got, dates: [before, after] }; };
  const a = around(() => tok.applyChatTemplate([{ role: 'tool', content: { name: 'calc', result: 4 } }]));
  assert.ok(a.dates.some((d) => a.got === `false <|im_end|> false true true 26 Jul 2024 | ${d} | calc`), a.got);
  const b = around(() => tok.applyChatTemplate([{ role: 'user', content: { name: 'x' } }], { date_string: '01 Jan 2025', tools: [] }));
  assert.ok(b.dates.some((d) => b.got === `false <|im_end|> false false true 01 Jan 2025 | ${d} | x`), b.got);
  // Only the function changes: the name in text, in a string or as a key is left alone; %-d drops the padding.
  const text = await loadTokenizer({ tokenizerJson: q.tokenizerJson, tokenizerConfig: { ...q.tokenizerConfig, chat_template:
    'strftime_now(x) {{ "strftime_now" }} {{ cfg.strftime_now }} {{ strftime_now("%-d|%Y") == (now_day ~ "|" ~ now_year) }}' } });
  const n = new Date();
  assert.equal(text.applyChatTemplate([], { cfg: { strftime_now: 'key' }, now_day: String(n.getDate()), now_year: String(n.getFullYear()) }), 'strftime_now(x) strftime_now key true');
  const bad = await loadTokenizer({ tokenizerJson: q.tokenizerJson, tokenizerConfig: { ...q.tokenizerConfig, chat_template: '{{ strftime_now() }}' } });
  assert.throws(() => bad.applyChatTemplate([]), /the chat template stopped: strftime_now\(\) takes a format string/);
  const extra = await loadTokenizer({ tokenizerJson: q.tokenizerJson, tokenizerConfig: { ...q.tokenizerConfig, chat_template: '{{ additional_special_tokens | join(",") }}', additional_special_tokens: ['<|a|>', { content: '<|b|>' }] } });
  assert.equal(extra.applyChatTemplate([]), '<|a|>,<|b|>');
  const none = await loadTokenizer({ tokenizerJson: q.tokenizerJson, tokenizerConfig: { ...q.tokenizerConfig, chat_template: '{{ additional_special_tokens is defined }}', additional_special_tokens: [] } });
  assert.equal(none.applyChatTemplate([]), 'false', 'an empty list is not passed, as transformers does not');
  // A template of the caller's own, where the config has none.
  const g = tinyModel('gpt2');
  const plain = await loadTokenizer({ tokenizerJson: g.tokenizerJson, tokenizerConfig: g.tokenizerConfig });
  assert.equal(plain.applyChatTemplate([{ role: 'user', content: 'hi' }], { chatTemplate: '[{{ messages[0].content }}]' }), '[hi]');
  assert.throws(() => plain.applyChatTemplate([{ role: 'user', content: 'hi' }], { chatTemplate: '{% if %}' }), { name: 'TypeError', message: /^Tokenizer\.applyChatTemplate: options\.chatTemplate does not parse/ });
  // continueFinalMessage: the rendered chat cut just after the last message's text (ChatML closes it with <|im_end|>)
  const chatml = await loadTokenizer({ tokenizerJson: q.tokenizerJson, tokenizerConfig: q.tokenizerConfig });
  const msgs = [{ role: 'user', content: 'Name a color.' }, { role: 'assistant', content: 'Sure, the answer is' }];
  assert.equal(chatml.applyChatTemplate(msgs, { continueFinalMessage: true }),
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nName a color.<|im_end|>\n<|im_start|>assistant\nSure, the answer is');
  assert.equal(chatml.applyChatTemplate([msgs[0], { role: 'assistant', content: [{ type: 'text', text: 'It is ' }] }], { continueFinalMessage: true }).slice(-6), 'It is ');
  assert.throws(() => chatml.applyChatTemplate(msgs, { continueFinalMessage: true, addGenerationPrompt: true }), { name: 'TypeError', message: /continueFinalMessage and addGenerationPrompt exclude each other/ });
  // Refusals: a boolean option that is not one, a variable the engine owns, a template's own exception
  assert.throws(() => chatml.applyChatTemplate(msgs, { tokenize: 'yes' }), { name: 'TypeError', message: /options\.tokenize must be a boolean/ });
  assert.throws(() => chatml.applyChatTemplate(msgs, { strftime_now: () => 'x' }), { name: 'TypeError', message: /options\.strftime_now is a name the template engine defines itself/ });
  const strict = await loadTokenizer({ tokenizerJson: q.tokenizerJson, tokenizerConfig: { ...q.tokenizerConfig, chat_template: "{{ raise_exception('roles must alternate') }}" } });
  assert.throws(() => strict.applyChatTemplate(msgs), { name: 'Error', message: 'Tokenizer.applyChatTemplate: the chat template stopped: roles must alternate' });
});

test('decodeStream gives a generation\'s text token by token: the prompt\'s last tokens before it, characters whole', async () => {
  const sentence = 'Hello world, the café is open 😀 today.';
  for (const arch of ['bert', 'gpt2', 'llama', 'qwen2', 'mistral']) {
    const m = tinyModel(arch);
    const tok = await loadTokenizer({ tokenizerJson: m.tokenizerJson, tokenizerConfig: m.tokenizerConfig });
    const ids = tok.encode(sentence, { addSpecialTokens: false });
    for (const cut of [1, 3]) {
      const prompt = ids.slice(0, cut), rest = ids.slice(cut);
      // What the new tokens add to the text: the whole decode after the prompt's.
      const full = tok.decode(ids), base = tok.decode(prompt);
      assert.ok(full.startsWith(base), `${arch}: ${JSON.stringify(full)} after ${JSON.stringify(base)}`);
      const want = full.slice(base.length);
      const stream = tok.decodeStream(prompt);
      const parts = rest.map((id) => stream.push(id));
      assert.ok(parts.every((p) => !p.includes('\uFFFD')), `${arch}: a part with half a character: ${JSON.stringify(parts)}`);
      assert.equal(parts.join('') + stream.end(), want, arch);
      assert.equal(stream.shown, want);
      assert.equal(stream.text, want);
      assert.deepEqual(stream.tokens, rest);
      if (arch === 'mistral' && cut === 1) {
        // SentencePiece drops the space a list's first word starts with: decoding the new tokens alone loses it
        assert.ok(want.startsWith(' ') && !tok.decode(rest).startsWith(' '), JSON.stringify(want));
      }
      if (arch !== 'bert') assert.ok(parts.includes(''), `${arch}: the emoji's first bytes were held back`);
    }
    // Without a prompt: the tokens' own text.
    const alone = tok.decodeStream();
    assert.equal(ids.map((id) => alone.push(id)).join('') + alone.end(), tok.decode(ids));
  }
});

test('decodeStream holds back an unsettled end (a character not yet whole, whitespace a clean-up may drop) and never stalls; skips special tokens when asked; names bad input', async () => {
  const m = tinyModel('llama');  // byte-level, clean_up_tokenization_spaces: true
  const tok = await loadTokenizer({ tokenizerJson: m.tokenizerJson, tokenizerConfig: m.tokenizerConfig });
  const enc = (text) => tok.encode(text, { addSpecialTokens: false });
  const emoji = enc('😀'), lead = emoji[0];  // the byte F0, and the emoji's four bytes
  // Lead bytes that stay invalid, then the emoji whole, then words: nothing half-made is shown, nothing is lost.
  const a = tok.decodeStream(enc('a'));
  const parts = [lead, lead, lead, ...emoji, ...enc(' and more words')].map((id) => a.push(id));
  assert.deepEqual(parts.slice(0, 6), ['', '', '', '', '', ''], 'held while the text ends in U+FFFD');
  assert.equal(parts.join('') + a.end(), a.text);
  assert.equal(a.shown, '\uFFFD\uFFFD\uFFFD😀 and more words');
  // Only invalid bytes: given by end().
  const b = tok.decodeStream(enc('a'));
  assert.deepEqual([lead, lead].map((id) => b.push(id)), ['', '']);
  assert.equal(b.end(), '\uFFFD\uFFFD');
  // " hello" " " "." decodes to " hello." (the clean-up drops the space): the space was held, so the text goes on.
  const c = tok.decodeStream(enc('I said'));
  const pieces = [...enc(' hello'), ...enc(' '), ...enc('.'), ...enc(' The end')].map((id) => c.push(id));
  assert.ok(!pieces.some((p) => /\s$/.test(p)), JSON.stringify(pieces));
  assert.equal(pieces.join('') + c.end(), ' hello. The end');
  assert.equal(c.shown, c.text);
  // Special tokens.
  const eos = tok.tokenToId(tok.eosToken), word = enc(' cat');
  const skipping = tok.decodeStream([], { skipSpecialTokens: true }), keeping = tok.decodeStream(null);
  assert.equal([...word, eos].map((id) => skipping.push(id)).join('') + skipping.end(), ' cat');
  assert.equal([...word, eos].map((id) => keeping.push(id)).join(''), ` cat${tok.eosToken}`);
  // BigInt ids, as I64 tensors hold them, in the prompt and pushed.
  const big = tok.decodeStream(BigInt64Array.of(...enc('a').map(BigInt))), cat = enc('cat');
  assert.equal(cat.map((id) => big.push(BigInt(id))).join('') + big.end(), tok.decode([...enc('a'), ...cat]).slice(tok.decode(enc('a')).length));
  // Bad input, named; a refused id is not kept.
  assert.throws(() => tok.decodeStream('hello'), (e) => e instanceof TypeError && /^Tokenizer\.decodeStream: promptIds must be an array of token ids/.test(e.message));
  assert.throws(() => tok.decodeStream(new DataView(new ArrayBuffer(8))), (e) => e instanceof TypeError && /promptIds must be an array of token ids/.test(e.message));
  assert.throws(() => tok.decodeStream([2.5, ...new Array(9).fill(1)]), (e) => e instanceof RangeError && /promptIds holds 2\.5, not a token id/.test(e.message));
  assert.throws(() => tok.decodeStream([], { skip: true }), (e) => e instanceof TypeError && /unknown option "skip"/.test(e.message));
  assert.throws(() => tok.decodeStream([], { skipSpecialTokens: 1 }), (e) => e instanceof TypeError && /options\.skipSpecialTokens must be a boolean/.test(e.message));
  assert.throws(() => a.push('5'), (e) => e instanceof TypeError && /^TextStream\.push: id must be a token id/.test(e.message));
  assert.throws(() => a.push([5]), (e) => e instanceof TypeError && /^TextStream\.push: id must be a token id/.test(e.message));
  assert.throws(() => a.push(-1), (e) => e instanceof RangeError && /^TextStream\.push: -1 is not a token id/.test(e.message));
  assert.equal(a.tokens.length, 3 + emoji.length + enc(' and more words').length);
});

test('bad inputs are named', async () => {
  const m = tinyModel('gpt2');
  await assert.rejects(loadTokenizer({}), /tokenizerJson/);
  await assert.rejects(loadTokenizer({ tokenizerJson: '{not json' }), (e) => e instanceof TypeError && /not JSON/.test(e.message));
  await assert.rejects(loadTokenizer({ tokenizerJson: { version: '1.0' } }), /no "model"/);
  await assert.rejects(loadTokenizer({ tokenizerJson: m.tokenizerJson, vocab: {} }), /unknown option "vocab"/);
  const tok = await loadTokenizer({ tokenizerJson: m.tokenizerJson, tokenizerConfig: m.tokenizerConfig });
  assert.throws(() => tok.applyChatTemplate([{ role: 'user', content: 'x' }]), /no chat_template/);
  assert.throws(() => tok.encode(42), TypeError);
  assert.throws(() => tok.decode('abc'), TypeError);
  assert.throws(() => tok.decode([1, -2]), RangeError);
  assert.deepEqual(tok.encode('Hello'), m.tokenizer.expectedEncode('Hello'));
});

test('the core entries (mha-wasm, mha-wasm/worker) never import the tokenizer libraries; mha-wasm/models does, when loadTokenizer runs', () => {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const bare = new Set();
  const seen = new Set();
  const walk = (file) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = fs.readFileSync(file, 'utf8').split('\n').filter((l) => !/^\s*(\/\/|\*|\/\*)/.test(l)).join('\n');  // code, not comments
    for (const [, ref] of text.matchAll(/(?:^|[;\s])(?:import|export)\s*(?:[\w$*{}\s,]+?\s*from\s*)?['"]([^'"\n]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) {
      if (!ref) continue;
      if (ref.startsWith('.')) walk(path.join(path.dirname(file), ref));
      else bare.add(ref);
    }
  };
  for (const entry of ['index.js', 'worker.js', 'worker-host.js']) walk(path.join(root, 'bindings', entry));
  assert.ok(seen.size > 10);
  assert.deepEqual([...bare].filter((r) => !r.startsWith('node:')), [], 'the core imports no package');
  const models = fs.readFileSync(path.join(root, 'bindings', 'hf-tokenizer.js'), 'utf8');
  assert.match(models, /import\('@huggingface\/tokenizers'\)/);
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  assert.ok(pkg.dependencies['@huggingface/tokenizers'] && pkg.dependencies['@huggingface/jinja']);
  assert.deepEqual(pkg.exports['./models'], { types: './bindings/models.d.ts', default: './bindings/models.js' });
});

test('strftime_now names months in English whatever the default locale (a child process in German)', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const q = tinyModel('qwen2');
  const script = `
    const { loadTokenizer } = await import(${JSON.stringify(new URL('../bindings/models.js', import.meta.url).href)});
    const tok = await loadTokenizer({ tokenizerJson: ${JSON.stringify(JSON.stringify(q.tokenizerJson))}, tokenizerConfig: { chat_template: '{{ strftime_now("%b %B") }}' } });
    const locale = new Intl.DateTimeFormat(undefined, { month: 'short' }).format(new Date(2026, 11, 1));
    console.log(JSON.stringify({ locale, text: tok.applyChatTemplate([]), month: new Date().getMonth() }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'de_DE.UTF-8', LANG: 'de_DE.UTF-8' } });
  assert.equal(r.status, 0, r.stderr);
  const { locale, text, month } = JSON.parse(r.stdout);
  if (locale !== 'Dez') return t.skip(`this Node's default locale did not follow LC_ALL (December is ${locale})`);
  const months = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
  assert.equal(text, `${months[month].slice(0, 3)} ${months[month]}`);
});
