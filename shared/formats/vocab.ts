/**
 * The official vocabulary JSON (`vocab.py`'s serialize_vocab): `{word2idx, idx2word, idx}`,
 * with `<pad>` 0, `<start>`, `<end>` and `<unk>`.
 */
import * as v from "valibot";
import { FormatError } from "./ndarray";

export const VocabFileSchema = v.object({
  word2idx: v.record(v.string(), v.pipe(v.number(), v.integer(), v.minValue(0))),
  idx2word: v.record(v.string(), v.string()),
  idx: v.pipe(v.number(), v.integer(), v.minValue(0)),
});
export type VocabFile = v.InferOutput<typeof VocabFileSchema>;

export const SPECIAL_TOKENS = ["<pad>", "<start>", "<end>", "<unk>"] as const;

export class Vocabulary {
  private readonly words: Map<string, number>;
  readonly unk: number;
  readonly start: number;
  readonly end: number;
  readonly pad: number;

  constructor(
    readonly file: VocabFile,
    readonly source = "vocabulary",
  ) {
    this.words = new Map(Object.entries(file.word2idx));
    for (const t of SPECIAL_TOKENS) {
      if (!this.words.has(t)) throw new FormatError(source, `vocabulary lacks the special token ${t}`);
    }
    this.pad = this.words.get("<pad>")!;
    this.start = this.words.get("<start>")!;
    this.end = this.words.get("<end>")!;
    this.unk = this.words.get("<unk>")!;
  }

  /** `len(vocab)` of the official code: the number of words (the model's vocab_size for f30k/coco/cc152k). */
  get length(): number {
    return this.words.size;
  }

  /** `vocab.idx`: the next free id (the official vocab_size for now100k_precomp). */
  get idx(): number {
    return this.file.idx;
  }

  /** `vocab(word)`: the word's id, `<unk>` when absent. */
  id(word: string): number {
    return this.words.get(word) ?? this.unk;
  }

  has(word: string): boolean {
    return this.words.has(word);
  }

  word(id: number): string | undefined {
    return this.file.idx2word[String(id)];
  }

  static parse(text: string, source: string): Vocabulary {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new FormatError(source, `not valid JSON (${(e as Error).message})`);
    }
    const r = v.safeParse(VocabFileSchema, json);
    if (!r.success) {
      const issue = r.issues[0];
      const path = v.getDotPath(issue) ?? "(root)";
      throw new FormatError(source, `not an official vocabulary file: ${path}: ${issue.message}`);
    }
    return new Vocabulary(r.output, source);
  }

  /** Builds a vocabulary as `vocab.py`'s build_vocab does from an ordered word list. */
  static fromWords(words: readonly string[]): Vocabulary {
    const word2idx: Record<string, number> = {};
    const idx2word: Record<string, string> = {};
    let idx = 0;
    for (const w of [...SPECIAL_TOKENS, ...words]) {
      if (w in word2idx) continue;
      word2idx[w] = idx;
      idx2word[String(idx)] = w;
      idx++;
    }
    return new Vocabulary({ word2idx, idx2word, idx });
  }

  toJSON(): VocabFile {
    return this.file;
  }
}
