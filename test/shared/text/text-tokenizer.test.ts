/**
 * The packaged text tokenizers on small files: WordPiece over a NoW-style bert vocabulary
 * (BertTokenizer's rules, cased), a user's BPE tokenizer.json, and Jieba and NLTK through the
 * same entry point.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { Vocabulary } from "../../../shared/formats/vocab";
import { JIEBA_SPEC, NLTK_SPEC, TOKENIZER_JSON, createTextTokenizer, idsOnlyReason, tokenizerOf } from "../../../shared/text/text-tokenizer";
import { wordpieceTokenizerJson, wordpieceUnknown } from "../../../shared/text/wordpiece";

const BERT_PIECES = ["[UNK]", "支", "付", "宝", "Hello", "world", "##s", "!", ",", "un", "##aff", "##able", "Wor", "##ld", "é", "APP", "下", "载", "下载"];

async function tokenizerFor(json: unknown) {
  const bytes = new TextEncoder().encode(JSON.stringify(json));
  return createTextTokenizer({ kind: "tokenizer.json", version: "test", files: [TOKENIZER_JSON] }, async () => bytes);
}

describe("WordPiece over the NoW vocabulary (BertTokenizer, cased)", () => {
  const vocab = Vocabulary.fromWords(BERT_PIECES).toJSON();
  const cases: Array<[string, string, string[]]> = [
    ["CJK ideographs are split one by one", "支付宝", ["支", "付", "宝"]],
    ["greedy longest match with ## pieces", "unaffable worlds", ["un", "##aff", "##able", "world", "##s"]],
    ["punctuation splits a word", "Hello,world!", ["Hello", ",", "world", "!"]],
    ["cased: no lower-casing", "hello Wor ld World", ["[UNK]", "Wor", "[UNK]", "Wor", "##ld"]],
    ["cased: accents are kept, an unpieceable word is one [UNK]", "Héllo é", ["[UNK]", "é"]],
    ["control characters are dropped, whitespace splits", "APP\u0000下\t载", ["APP", "下", "载"]],
    ["CJK splits Latin from Chinese", "APP下载", ["APP", "下", "载"]],
  ];
  for (const [name, text, pieces] of cases) {
    test(name, async () => {
      expect((await tokenizerFor(wordpieceTokenizerJson(vocab))).tokenize(text)).toEqual(pieces);
    });
  }

  test("the unknown piece is [UNK] when the vocabulary has it, else <unk>", () => {
    expect(wordpieceUnknown(vocab)).toBe("[UNK]");
    expect(wordpieceUnknown(Vocabulary.fromWords(["a"]).toJSON())).toBe("<unk>");
  });

  test("detokenize joins ## pieces", async () => {
    expect((await tokenizerFor(wordpieceTokenizerJson(vocab))).detokenize(["un", "##aff", "##able", "world", "##s"])).toBe("unaffable worlds");
  });
});

describe("a user's BPE tokenizer.json", () => {
  const json = JSON.parse(readFileSync(resolve(import.meta.dir, "../../edge/fixtures/bpe-tokenizer.json"), "utf8"));

  test("merges apply in rank order, unmerged characters stay", async () => {
    const t = await tokenizerFor(json);
    expect(t.tokenize("支付宝扫码付款")).toEqual(["支付宝", "扫码", "付", "款"]);
    expect(t.tokenize("支付 宝")).toEqual(["支付", "宝"]);
  });

  test("a file that is no tokenizer.json is refused with its name", async () => {
    await expect(tokenizerFor({ model: { type: "Nope" } })).rejects.toThrow(/tokenizer\.json/);
  });
});

describe("Jieba and NLTK through the same entry", () => {
  test("jieba: jieba.lcut, captions rejoined without spaces", async () => {
    const t = await createTextTokenizer(JIEBA_SPEC, async () => new Uint8Array());
    expect(t.tokenize("手机银行APP下载")).toEqual(["手机", "银行", "APP", "下载"]);
    expect(t.detokenize(["手机", "银行"])).toBe("手机银行");
  });

  test("nltk: word_tokenize of the lower-cased text", async () => {
    const t = await createTextTokenizer(NLTK_SPEC, async () => new Uint8Array());
    expect(t.tokenize("A Dog's toy.")).toEqual(["a", "dog", "'s", "toy", "."]);
  });

  test("a version-2 manifest without a tokenizer object: NLTK for words, none for ids", () => {
    expect(tokenizerOf({ kind: "words", vocab: "vocab.json" })).toEqual(NLTK_SPEC);
    expect(tokenizerOf({ kind: "ids", tokenizer: "bpe" })).toBeNull();
    expect(idsOnlyReason({ kind: "ids", tokenizer: "bpe" })).toContain("NoW's bpe tokenizer");
  });
});
