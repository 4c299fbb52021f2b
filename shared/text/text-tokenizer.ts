/**
 * The text side of an exported model: which tokenizer turns a query into the words or pieces of
 * the model's vocabulary, as the dataset's captions were tokenized.
 *
 *   nltk            f30k/coco/cc152k: NLTK word_tokenize of the lower-cased text (tokenize.ts)
 *   jieba           NoW `--tokenizer jieba`: jieba.lcut (jieba.ts)
 *   tokenizer.json  NoW `--tokenizer bert`: WordPiece as BertTokenizer (cased) over the pieces of
 *                   the NoW vocabulary (wordpiece.ts builds the file at export), or the user's
 *                   own tokenizer.json; NoW `--tokenizer bpe`: the user's tokenizer.json only
 *
 * A tokenizer gives strings; the vocabulary maps them to ids (`<unk>` for the rest), so the ids
 * are those of the dataset's `*_caps_<tokenizer>.txt` whatever ids a tokenizer.json holds itself.
 * Runs through @huggingface/tokenizers, which is plain JavaScript (Bun, workerd, browsers).
 */
import { Tokenizer } from "@huggingface/tokenizers";
import * as v from "valibot";
import { JIEBA_VERSION, type JiebaSource, loadJieba } from "./jieba";
import { tokenizeCaption } from "./tokenize";

export const TOKENIZER_KINDS = ["nltk", "jieba", "tokenizer.json"] as const;
export type TokenizerKind = (typeof TOKENIZER_KINDS)[number];

/** The tokenizer a package names; its files are package files, listed with their SHA-256 in `files`. */
export const TokenizerSpecSchema = v.object({
  kind: v.picklist(TOKENIZER_KINDS),
  /** What defines its output: library and version, dictionary, where its file came from. */
  version: v.string(),
  /** Package files it reads, besides the vocabulary. */
  files: v.array(v.string()),
});
export type TokenizerSpec = v.InferOutput<typeof TokenizerSpecSchema>;

export const NLTK_VERSION = "NLTK 3.8.1 word_tokenize(text.lower(), preserve_line=True), reimplemented (shared/text/tokenize.ts)";
export const TOKENIZER_JSON = "tokenizer.json";

export const NLTK_SPEC: TokenizerSpec = { kind: "nltk", version: NLTK_VERSION, files: [] };
export const JIEBA_SPEC: TokenizerSpec = { kind: "jieba", version: JIEBA_VERSION, files: [] };

/**
 * The manifest's `text`: `words` when the package can tokenize text (vocabulary and tokenizer),
 * `ids` when a query must come as token ids. `tokenizer` is the tokenizer the package carries, or,
 * as a string, the name of the one outside it that made the dataset's ids (NoW's `--tokenizer`);
 * `dataset` is NoW's `--tokenizer`; `note` says why a model takes ids only.
 */
export const TextSpecSchema = v.object({
  kind: v.picklist(["words", "ids"]),
  vocab: v.optional(v.string()),
  tokenizer: v.optional(v.union([v.string(), TokenizerSpecSchema])),
  dataset: v.optional(v.string()),
  note: v.optional(v.string()),
});
export type TextSpec = v.InferOutput<typeof TextSpecSchema>;

/** What /v1/model says of the text side. */
export const TextInfoSchema = v.object({
  accepts: v.pipe(v.picklist(["text", "tokens"]), v.description("`text`: text or token ids; `tokens`: token ids only")),
  tokenizer: v.nullable(v.object({ ...TokenizerSpecSchema.entries, sha256: v.record(v.string(), v.string()) })),
  dataset: v.nullable(v.string()),
  note: v.nullable(v.string()),
});
export type TextInfo = v.InferOutput<typeof TextInfoSchema>;

/** The tokenizer a version-2 package without a `tokenizer` object has: NLTK for words. */
export function tokenizerOf(text: TextSpec): TokenizerSpec | null {
  if (typeof text.tokenizer === "object") return text.tokenizer;
  return text.kind === "words" ? NLTK_SPEC : null;
}

/** Why a model takes token ids only, for messages; null when it tokenizes text. */
export function idsOnlyReason(text: TextSpec): string | null {
  if (text.kind === "words") return null;
  const name = typeof text.tokenizer === "string" ? text.tokenizer : undefined;
  return (
    text.note ??
    `this model takes token ids only: its captions were tokenized outside the project${name ? ` (NoW's ${name} tokenizer)` : ""}; send \`tokens\``
  );
}

export interface TextTokenizer {
  readonly spec: TokenizerSpec;
  /** The words or pieces of `text`, as the dataset's tokenizer gave them. */
  tokenize(text: string): string[];
  /** A caption's text from its words (the gallery's caption texts). */
  detokenize(words: string[]): string;
}

export interface TextTokenizerOptions {
  /** Where jieba's WebAssembly comes from (Workers: the imported module). */
  jieba?: JiebaSource;
}

/** Builds the tokenizer a package names from its files (`read` gives a listed file's bytes). */
export async function createTextTokenizer(spec: TokenizerSpec, read: (name: string) => Promise<Uint8Array>, options: TextTokenizerOptions = {}): Promise<TextTokenizer> {
  switch (spec.kind) {
    case "nltk":
      return { spec, tokenize: tokenizeCaption, detokenize: (w) => w.join(" ") };
    case "jieba": {
      const jieba = await loadJieba(options.jieba);
      return { spec, tokenize: (t) => jieba.cut(t), detokenize: (w) => w.join("") };
    }
    case "tokenizer.json": {
      const file = spec.files.find((f) => f.endsWith(".json"));
      if (!file) throw new Error(`tokenizer ${spec.kind}: the package names no .json file (files: ${spec.files.join(", ") || "none"})`);
      return hfTokenizer(spec, JSON.parse(new TextDecoder().decode(await read(file))), file);
    }
  }
}

/** A Hugging Face tokenizer.json; special tokens ([CLS], [SEP], …) are not added: the vocabulary's `<start>`/`<end>` frame a caption. */
export function hfTokenizer(spec: TokenizerSpec, json: unknown, source = TOKENIZER_JSON): TextTokenizer {
  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(json as object, {});
  } catch (e) {
    throw new Error(`${source}: not a tokenizer.json that @huggingface/tokenizers reads (${(e as Error).message})`);
  }
  return {
    spec,
    tokenize: (text) => tokenizer.tokenize(text, { add_special_tokens: false }),
    detokenize: (words) => {
      const ids = words.map((w) => tokenizer.token_to_id(w));
      return ids.every((id) => id !== undefined) ? tokenizer.decode(ids as number[], { skip_special_tokens: true }) : words.join(" ");
    },
  };
}
