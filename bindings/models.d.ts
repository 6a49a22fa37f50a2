// Type declarations for mha-wasm/models: Hugging Face checkpoints (config.json,
// *.safetensors, tokenizer.json) run on mha-wasm's Model, in this thread ('sync', from
// init() of 'mha-wasm') or in a worker ('async', from init() of 'mha-wasm/worker', whose
// methods return Promises of the same values).
import type { KVCacheOf, Mha, ModelOptions, Mode, Returns, TensorMap, WeightType } from './index.js';
import type { WorkerMha } from './worker.js';

export { parseSafetensors, readSafetensors, safetensorsMetadata } from './index.js';
export type { TensorMap, WeightType } from './index.js';

/** One sequence of token ids: numbers, or an integer typed array (BigInt64Array too, as I64 tensors hold them). */
export type IdRow = number[] | Int32Array | Uint32Array | Int16Array | Uint16Array | Int8Array | Uint8Array | BigInt64Array | BigUint64Array;
/** Token ids: one sequence, rows of sequences (padded by the model), or a batch { data, dims: [B, L] }. */
export type TokenIds = IdRow | IdRow[] | { data: IdRow; dims: number[] };

export interface LoadProgress {
  /** Parts copied into the model so far (embeddings, each layer, final norm, head), and how many there are. */
  loaded: number;
  total: number;
  /** The part just loaded: 'embeddings', 'block 3', 'final norm', 'head'. */
  part: string;
}

export interface LoadModelOptions {
  /** The parsed config.json. architectures[0] (or model_type) picks the architecture. */
  config: Record<string, unknown>;
  /**
   * The checkpoint's .safetensors Files or Blobs (one, or its shards), or what parseSafetensors returns for each
   * (F32, F16, BF16; I8 with <name>_scale). Files are read part by part as the model is loaded: the size check
   * and the tensors' names and dims come first, from the config and the headers.
   */
  weights: TensorMap | Blob | Array<TensorMap | Blob>;
  /** How the blocks' matrices, the head and the token table are stored in wasm memory: 'f32' (default), 'f16' or 'int8'. */
  weightType?: WeightType;
  onProgress?: (progress: LoadProgress) => void;
}

export interface HfForwardOptions<M extends Mode = 'sync'> {
  /** 1 = token, 0 = padding (HF's polarity). [B, L], or with a cache [B, cache length + L] (or [B, L]: the cache's mask is remembered). */
  attentionMask?: TokenIds | null;
  /** Positions of the new tokens [B, L]. Default: from the mask as HF's generate() computes them (cumsum(mask) - 1), else after the cache. */
  positionIds?: TokenIds | null;
  /** BERT's segment ids [B, L] (default 0). */
  tokenTypeIds?: TokenIds | null;
  cache?: KVCacheOf<M> | null;
  /** Also return each layer's attention maps. */
  needWeights?: boolean;
  /** Only each sequence's last position: logits [B, 1, vocab]. */
  lastOnly?: boolean;
  /** A Float32Array of the logits' size, filled and returned as data (reused across decoding steps, say). */
  out?: Float32Array | null;
}

/** @deprecated The old name of HfForwardOptions (mha-wasm's own ModelForwardOptions is Model.forward's). */
export type ModelForwardOptions<M extends Mode = 'sync'> = HfForwardOptions<M>;

/** Logits [B, L, vocab] (BertModel: the last hidden state [B, L, hidden]); attentions [B, heads, L, Lk] per layer with needWeights. */
export interface ModelOutput {
  data: Float32Array;
  dims: number[];
  attentions?: Array<{ data: Float32Array; dims: number[] }>;
}

export interface EmbedOptions {
  attentionMask?: TokenIds | null;
  tokenTypeIds?: TokenIds | null;
  /** 'mean' (default): the average over real tokens; 'cls': the first token's hidden state (not BERT's tanh pooler). */
  pooling?: 'mean' | 'cls';
  /** Divide by the L2 norm. Default false. */
  normalize?: boolean;
}

export interface GenerateOptions {
  /** Default 20. */
  maxNewTokens?: number;
  /** Sampling temperature; 0 is greedy. Sampling happens when temperature, topK or topP is given; otherwise greedy (HF's do_sample=False). */
  temperature?: number;
  topK?: number;
  topP?: number;
  /** Seed of the sampler (default: random). */
  seed?: number;
  /** HF's repetition_penalty (1 = none). */
  repetitionPenalty?: number;
  /** Token ids that end a sequence, besides config.eos_token_id. */
  stopTokens?: IdRow;
  /** Called with each step's token (a number; an array of B for a batch) before the iterator yields it. */
  onToken?: (token: number | number[], step: number) => void;
  /** For ids given as { data, dims }: 1 = token, 0 = (left) padding. */
  attentionMask?: TokenIds | null;
  /**
   * Once aborted, the iterator throws the signal's reason (an AbortError by default) instead of the next token, and frees
   * the generation's cache. A step already under way (the prompt's, in a worker) finishes first.
   */
  signal?: AbortSignal | null;
  /**
   * A cache of this model (createCache, batch B) whose positions the prompt continues: a conversation's earlier turns are
   * not computed again. It is kept, holding the prompt and the new tokens but the last yielded; cache.length says how
   * many positions (after the loop is left early, in a worker, the last yielded token's step may have run too). Without
   * it the generation makes its own and frees it. The repetition penalty then counts ids and the new tokens, not what the
   * cache held. With a sliding window, padded rows cannot continue a cache.
   */
  cache?: { readonly length: number; readonly maxLength: number; readonly batch: number } | null;
}

export interface HfModelOf<M extends Mode> {
  /** The config.json the model was loaded from. */
  readonly config: Record<string, unknown>;
  /** config.architectures[0] (or model_type). */
  readonly architecture: string;
  /** The mha-wasm Model options it runs as (new mha.Model(modelOptions) takes them), weightType included. */
  readonly modelOptions: ModelOptions;
  /** Bytes of wasm memory its weights take. */
  readonly memoryBytes: number;
  readonly eosTokenIds: readonly number[];
  readonly padTokenId: number;
  readonly isEncoder: boolean;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly disposed: boolean;
  /** KV caches for every layer. */
  createCache(options: { maxLength: number; batch?: number }): KVCacheOf<M>;
  forward(ids: TokenIds, options?: HfForwardOptions<M>): Returns<M, ModelOutput>;
  /** Sentence embeddings [B, hidden] (encoders). */
  embed(ids: TokenIds, options?: EmbedOptions): Returns<M, { data: Float32Array; dims: number[] }>;
  /** Next tokens, one step at a time: a number per step for one prompt, an array of B for a batch. */
  generate(ids: IdRow | { data: IdRow; dims: [number] }, options?: GenerateOptions): AsyncGenerator<number, void, undefined>;
  generate(ids: IdRow[] | { data: IdRow; dims: [number, number] }, options?: GenerateOptions): AsyncGenerator<number[], void, undefined>;
  generate(ids: TokenIds, options?: GenerateOptions): AsyncGenerator<number | number[], void, undefined>;
  dispose(): void;
}
export type HfModel = HfModelOf<'sync'>;

/** Loads a Hugging Face checkpoint into mha's Model. The size is checked from the config before anything is allocated. */
export declare function loadModel(mha: WorkerMha, options: LoadModelOptions): Promise<HfModelOf<'async'>>;
export declare function loadModel(mha: Mha, options: LoadModelOptions): Promise<HfModelOf<'sync'>>;
export declare function loadModel(mha: Mha | WorkerMha, options: LoadModelOptions): Promise<HfModelOf<'sync'> | HfModelOf<'async'>>;

export interface ChatMessage {
  role: string;
  /** Text, transformers' content parts ({ type: 'text', text } ...), an object (a tool's result), or none (an assistant turn with only tool calls). */
  content?: string | Array<Record<string, unknown>> | Record<string, unknown> | null;
  [key: string]: unknown;
}

export interface ChatTemplateOptions {
  /** End with the header of a new assistant message. Default false. */
  addGenerationPrompt?: boolean;
  /** End inside the last message, for the model to continue it (a prefill); excludes addGenerationPrompt. Default false. */
  continueFinalMessage?: boolean;
  /** Token ids (encoded without adding special tokens again) instead of text. Default false. */
  tokenize?: boolean;
  /** One of chatTemplateNames, or a template's text. Default: 'tool_use' when tools are given and the config has it, else 'default'. */
  chatTemplate?: string;
  [variable: string]: unknown;
}

/** A generation's text, token by token (Tokenizer.decodeStream). */
export interface TextStream {
  /**
   * Adds a token id; returns the text to append. The text's unsettled end is held back: a character whose bytes have not
   * all come (U+FFFD), and whitespace (a tokenizer's clean-up may drop a space before punctuation that follows).
   */
  push(id: number | bigint): string;
  /** The text held back, once no token follows. */
  end(): string;
  /** What push and end have returned, joined (the same as text, unless a decoder changed text already shown). */
  readonly shown: string;
  /** The whole text of the tokens pushed so far. */
  readonly text: string;
  /** The token ids pushed so far. */
  readonly tokens: number[];
}

export interface Tokenizer {
  /** tokenizer_config.json's chat template (of a list of named ones, the one named default), or null. */
  readonly chatTemplate: string | null;
  /** The names of its chat templates (['default'] for a single one; [] for none). */
  readonly chatTemplateNames: readonly string[];
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly padToken: string | null;
  readonly unkToken: string | null;
  readonly clsToken: string | null;
  readonly sepToken: string | null;
  readonly maskToken: string | null;
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  decode(ids: ArrayLike<number>, options?: { skipSpecialTokens?: boolean }): string;
  /**
   * The text of a generation as its tokens come: `push(id)` returns what to append, `end()` the rest.
   * promptIds: the tokens before the first pushed one (SentencePiece tokenizers drop a list's first space).
   */
  decodeStream(promptIds?: IdRow | null, options?: { skipSpecialTokens?: boolean }): TextStream;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
  /**
   * The chat template of tokenizer_config.json, rendered as transformers' apply_chat_template does; other options
   * become template variables (tools, documents, date_string, ...).
   */
  applyChatTemplate(messages: ChatMessage[], options?: ChatTemplateOptions & { tokenize?: false }): string;
  applyChatTemplate(messages: ChatMessage[], options: ChatTemplateOptions & { tokenize: true }): number[];
  applyChatTemplate(messages: ChatMessage[], options?: ChatTemplateOptions): string | number[];
}

/** tokenizer.json (+ tokenizer_config.json), parsed or as text, read by @huggingface/tokenizers. */
export declare function loadTokenizer(options: { tokenizerJson: object | string; tokenizerConfig?: object | string | null }): Promise<Tokenizer>;
