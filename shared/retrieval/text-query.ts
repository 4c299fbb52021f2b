/**
 * A query's text as the model's token ids: `<start>`, the vocabulary ids of the words or pieces
 * the package's tokenizer gives, `<end>` (data.py's caption framing). The tokenizer is built on
 * the first text query, not when the model loads: a model queried by ids only never unpacks
 * Jieba's dictionary (~60 MB of WebAssembly memory).
 */
import { Vocabulary } from "../formats/vocab";
import type { ModelPackage } from "../model/package";
import { JiebaUnavailableError } from "../text/jieba";
import { type TextInfo, type TextTokenizer, type TextTokenizerOptions, createTextTokenizer, idsOnlyReason, tokenizerOf } from "../text/text-tokenizer";
import { EngineInputError, EngineUnsupportedError } from "./engine.ts";

export class QueryText {
  private readonly vocab: Vocabulary | null;
  private tokenizer: Promise<TextTokenizer> | null = null;

  constructor(
    private readonly pkg: ModelPackage,
    private readonly options: TextTokenizerOptions = {},
  ) {
    this.vocab = pkg.vocab ? new Vocabulary(pkg.vocab, "vocab.json") : null;
  }

  info(): TextInfo {
    const text = this.pkg.json.text;
    const spec = tokenizerOf(text);
    const sha256 = Object.fromEntries((spec?.files ?? []).map((f) => [f, this.pkg.json.files[f]?.sha256 ?? ""]));
    return {
      accepts: this.vocab && spec ? "text" : "tokens",
      tokenizer: spec ? { ...spec, sha256 } : null,
      dataset: text.dataset ?? (typeof text.tokenizer === "string" ? text.tokenizer : null),
      note: idsOnlyReason(text),
    };
  }

  private name(): string {
    const info = this.info();
    return `the model's ${info.tokenizer?.kind ?? "?"} tokenizer${info.dataset ? ` (NoW --tokenizer ${info.dataset})` : ""}`;
  }

  /** The words or pieces of `text` (ids-only models: an EngineInputError saying why). */
  async words(text: string): Promise<string[]> {
    const spec = tokenizerOf(this.pkg.json.text);
    if (!this.vocab || !spec) throw new EngineInputError(`text: ${idsOnlyReason(this.pkg.json.text)}`);
    this.tokenizer ??= createTextTokenizer(spec, async (name) => this.pkg.textFiles.get(name)!, this.options).catch((e: unknown) => {
      this.tokenizer = null;
      if (e instanceof JiebaUnavailableError) throw new EngineUnsupportedError(`text: ${e.message}; token ids (\`tokens\`) still work here`);
      throw e;
    });
    return (await this.tokenizer).tokenize(text);
  }

  /** `<start>` ids `<end>`; text that names nothing the vocabulary knows is the caller's mistake. */
  async ids(text: string, maxTokens: number): Promise<Int32Array> {
    const words = await this.words(text);
    const vocab = this.vocab!;
    if (!words.length) throw new EngineInputError(`text: tokenizes to no words with ${this.name()}`);
    const ids = [vocab.start, ...words.map((w) => vocab.id(w)), vocab.end];
    // A query of unknown words only would rank the gallery by `<unk>`: an answer to nothing.
    if (ids.every((id, i) => i === 0 || i === ids.length - 1 || id === vocab.unk || vocab.word(id) === "[UNK]")) {
      throw new EngineInputError(`text: no word of the query is in the model's vocabulary (${words.length} word${words.length === 1 ? "" : "s"} from ${this.name()}, all unknown)`);
    }
    if (ids.length > maxTokens) throw new EngineInputError(`text: tokenizes to ${ids.length} tokens with ${this.name()}, at most ${maxTokens}`);
    return Int32Array.from(ids);
  }
}
