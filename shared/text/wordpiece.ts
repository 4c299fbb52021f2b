/**
 * NoW's `--tokenizer bert` without the original files: `BertTokenizer` of
 * bert-base-multilingual-cased, as a tokenizer.json over the pieces of the NoW vocabulary
 * (`now100k_precomp_vocab_bert.json`). The rules are BertTokenizer's for a cased model:
 *
 *   BasicTokenizer   drop control characters and U+FFFD, whitespace to spaces, a space around
 *                    every CJK ideograph, no lower-casing and no accent stripping (cased), split
 *                    on whitespace and on every punctuation character
 *   WordPiece        greedy longest match first, continuation pieces prefixed `##`; a word with
 *                    no piecing (or over 100 characters) is one `[UNK]`
 *
 * which are the Hugging Face components BertNormalizer, BertPreTokenizer and WordPiece. The
 * vocabulary holds only the pieces that occur in NoW, so a word pieced differently by the full
 * multilingual vocabulary may piece otherwise here: exporting with the original tokenizer.json
 * (`--tokenizer_json`) avoids that. No [CLS]/[SEP]: the vocabulary's `<start>`/`<end>` frame a
 * caption, as data.py does.
 */
import type { VocabFile } from "../formats/vocab";

export const WORDPIECE_VERSION = "BertTokenizer (cased) rules over the NoW vocabulary's pieces, run by @huggingface/tokenizers 0.2.0";

/** The unknown piece: BERT's `[UNK]` when the vocabulary has it, else the official `<unk>`. */
export function wordpieceUnknown(vocab: VocabFile): string {
  return "[UNK]" in vocab.word2idx ? "[UNK]" : "<unk>";
}

/** The tokenizer.json of BertTokenizer (cased) with the vocabulary's pieces and ids. */
export function wordpieceTokenizerJson(vocab: VocabFile): Record<string, unknown> {
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: { type: "BertNormalizer", clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: false },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: null,
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: { type: "WordPiece", unk_token: wordpieceUnknown(vocab), continuing_subword_prefix: "##", max_input_chars_per_word: 100, vocab: vocab.word2idx },
  };
}
