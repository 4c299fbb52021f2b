/**
 * What an export packages for the text side, per dataset: the vocabulary and the tokenizer that
 * makes its words from a query, or, when none can, why the model takes token ids only.
 *
 *   f30k, coco, cc152k   vocab.json, NLTK
 *   NoW jieba            the NoW vocabulary, Jieba
 *   NoW bert             the NoW vocabulary, WordPiece over its pieces (or --tokenizer_json)
 *   NoW bpe              the NoW vocabulary and --tokenizer_json; without it token ids only: the
 *                        vocabulary holds BPE's pieces but not its merges
 */
import { readFileSync } from "node:fs";
import type { Vocabulary } from "../shared/formats/vocab";
import { FormatError } from "../shared/formats/ndarray";
import type { PackagedTokenizer } from "../shared/model/package";
import { JIEBA_SPEC, NLTK_SPEC, TOKENIZER_JSON, type TextTokenizer, createTextTokenizer, hfTokenizer } from "../shared/text/text-tokenizer";
import { WORDPIECE_VERSION, wordpieceTokenizerJson } from "../shared/text/wordpiece";
import { canonicalDataName } from "./data/datasets";

export interface PackagedText {
  vocab: Vocabulary | null;
  textTokenizer?: PackagedTokenizer;
  /** NoW's `--tokenizer`. */
  tokenizer?: string;
  idsNote?: string;
}

export const BPE_IDS_ONLY =
  "NoW's BPE vocabulary (now100k_precomp_vocab_bpe.json) lists the pieces but not the merges that make them, so text cannot be split as the dataset was: " +
  "this model takes token ids only (send `tokens`); export it with --tokenizer_json <the BPE tokenizer.json> to take text";

/** Why a tokenizer.json cannot stand for the tokenizer of these captions; null when it can (NoW bpe, bert). */
export function tokenizerJsonMismatch(dataName: string, tokenizer: string): string | null {
  const now = canonicalDataName(dataName) === "now100k_precomp";
  if (now && (tokenizer === "bpe" || tokenizer === "bert")) return null;
  return `a tokenizer.json replaces the tokenizer of NoW's bpe or bert captions only (here: ${now ? `NoW --tokenizer ${tokenizer}` : dataName})`;
}

/** The text side of an export of a model trained on `dataName` (NoW: with `tokenizer`). */
export function packagedText(opts: { dataName: string; tokenizer: string; vocab: Vocabulary; tokenizerJson?: string }): PackagedText {
  const now = canonicalDataName(opts.dataName) === "now100k_precomp";
  const mismatch = opts.tokenizerJson ? tokenizerJsonMismatch(opts.dataName, opts.tokenizer) : null;
  if (mismatch) throw new FormatError("--tokenizer_json", mismatch);
  if (!now) return { vocab: opts.vocab, textTokenizer: { spec: NLTK_SPEC, files: {} } };
  const base = { vocab: opts.vocab, tokenizer: opts.tokenizer };
  if (opts.tokenizerJson) {
    const bytes = readTokenizerJson(opts.tokenizerJson);
    const type = (JSON.parse(new TextDecoder().decode(bytes)) as { model?: { type?: string } }).model?.type ?? "unknown model";
    return { ...base, textTokenizer: { spec: { kind: "tokenizer.json", version: `user-supplied tokenizer.json (${type}; ${opts.tokenizerJson.split(/[\\/]/).pop()}), run by @huggingface/tokenizers 0.2.0`, files: [TOKENIZER_JSON] }, files: { [TOKENIZER_JSON]: bytes } } };
  }
  switch (opts.tokenizer) {
    case "jieba":
      return { ...base, textTokenizer: { spec: JIEBA_SPEC, files: {} } };
    case "bert": {
      const bytes = new TextEncoder().encode(JSON.stringify(wordpieceTokenizerJson(opts.vocab.toJSON())));
      return { ...base, textTokenizer: { spec: { kind: "tokenizer.json", version: WORDPIECE_VERSION, files: [TOKENIZER_JSON] }, files: { [TOKENIZER_JSON]: bytes } } };
    }
    default:
      return { vocab: null, tokenizer: opts.tokenizer, idsNote: BPE_IDS_ONLY };
  }
}

/** Reads and checks a user's tokenizer.json: it must be one @huggingface/tokenizers loads. */
export function readTokenizerJson(path: string): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new FormatError(path, `--tokenizer_json: cannot read (${(e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new FormatError(path, `--tokenizer_json: not valid JSON (${(e as Error).message})`);
  }
  try {
    hfTokenizer({ kind: "tokenizer.json", version: "", files: [] }, json, path).tokenize("test");
  } catch (e) {
    throw new FormatError(path, `--tokenizer_json: ${(e as Error).message}`);
  }
  return bytes;
}

/** The packaged tokenizer, runnable here (the gallery's caption texts are detokenized with it). */
export async function packagedTextTokenizer(text: PackagedText): Promise<TextTokenizer | null> {
  const t = text.textTokenizer;
  if (!t || !text.vocab) return null;
  return createTextTokenizer(t.spec, async (name) => t.files[name]);
}
