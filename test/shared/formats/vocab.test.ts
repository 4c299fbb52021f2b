import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { Vocabulary } from "../../../shared/formats/vocab";
import { tokenizeCaption } from "../../../shared/text/tokenize";
import { expectFormatError } from "./expect";
import { REFERENCE_DIR } from "../../support";

const E2E_VOCAB = resolve(REFERENCE_DIR, "e2e/vocab/f30k_precomp_vocab.json");
const SOURCE = "vocab.json";

const valid = () => ({
  word2idx: { "<pad>": 0, "<start>": 1, "<end>": 2, "<unk>": 3, dog: 4 } as Record<string, unknown>,
  idx2word: { "0": "<pad>", "1": "<start>", "2": "<end>", "3": "<unk>", "4": "dog" } as Record<string, unknown>,
  idx: 5 as unknown,
});

describe("the e2e vocabulary", () => {
  const vocab = Vocabulary.parse(readFileSync(E2E_VOCAB, "utf8"), E2E_VOCAB);

  test("special tokens in the official order", () => {
    expect(vocab.pad).toBe(0);
    expect(vocab.start).toBe(1);
    expect(vocab.end).toBe(2);
    expect(vocab.unk).toBe(3);
    expect(vocab.word(0)).toBe("<pad>");
    expect(vocab.word(3)).toBe("<unk>");
  });

  test("lookups and the <unk> fallback", () => {
    expect(vocab.id(".")).toBe(4);
    expect(vocab.id("a")).toBe(5);
    expect(vocab.word(5)).toBe("a");
    expect(vocab.has("a")).toBe(true);
    expect(vocab.has("zebra")).toBe(false);
    expect(vocab.id("zebra")).toBe(vocab.unk);
    // Lookups are exact: the official code lower-cases captions before the lookup, not the vocabulary.
    expect(vocab.id("A")).toBe(vocab.unk);
    expect(vocab.word(10_000)).toBeUndefined();
  });

  test("length (len(vocab)) and idx agree for a vocabulary built by build_vocab", () => {
    expect(vocab.length).toBe(69);
    expect(vocab.idx).toBe(69);
  });

  test("word2idx and idx2word are inverse", () => {
    for (let i = 0; i < vocab.idx; i++) expect(vocab.id(vocab.word(i)!)).toBe(i);
  });

  test("every token of the e2e captions is in the vocabulary (no <unk>)", () => {
    for (const split of ["train", "dev", "test"]) {
      const lines = readFileSync(resolve(REFERENCE_DIR, `e2e/f30k_precomp/${split}_caps.txt`), "utf8").split("\n");
      let captions = 0;
      for (const line of lines) {
        if (!line.trim()) continue;
        captions++;
        for (const token of tokenizeCaption(line.trim())) {
          if (!vocab.has(token)) throw new Error(`${split}: token ${JSON.stringify(token)} of ${JSON.stringify(line)} is not in the vocabulary`);
        }
      }
      expect(captions).toBeGreaterThan(0);
    }
  });

  test("toJSON gives back the file", () => {
    const text = readFileSync(E2E_VOCAB, "utf8");
    expect(JSON.parse(JSON.stringify(Vocabulary.parse(text, E2E_VOCAB)))).toEqual(JSON.parse(text));
  });
});

describe("vocabularies built and parsed", () => {
  test("length and idx differ when ids have gaps", () => {
    const file = valid();
    file.idx = 10;
    const v = Vocabulary.parse(JSON.stringify(file), SOURCE);
    expect(v.length).toBe(5);
    expect(v.idx).toBe(10);
  });

  test("fromWords numbers words after the special tokens and skips repeats", () => {
    const v = Vocabulary.fromWords(["dog", "a", "dog", "<unk>", "cat"]);
    expect(v.length).toBe(7);
    expect(v.idx).toBe(7);
    expect(v.id("dog")).toBe(4);
    expect(v.id("a")).toBe(5);
    expect(v.id("cat")).toBe(6);
    expect(v.word(6)).toBe("cat");
    expect(v.id("bird")).toBe(3);
    const again = Vocabulary.parse(JSON.stringify(v), SOURCE);
    expect(again.id("cat")).toBe(6);
  });
});

describe("malformed vocabularies name the field", () => {
  test("not JSON", () => {
    expectFormatError(() => Vocabulary.parse("{word2idx:", SOURCE), SOURCE, /not valid JSON/);
  });

  test("missing word2idx", () => {
    const { word2idx: _, ...rest } = valid();
    expectFormatError(() => Vocabulary.parse(JSON.stringify(rest), SOURCE), SOURCE, /word2idx/);
  });

  test("a negative id", () => {
    const file = valid();
    file.word2idx.dog = -4;
    expectFormatError(() => Vocabulary.parse(JSON.stringify(file), SOURCE), SOURCE, /word2idx\.dog/);
  });

  test("a fractional id", () => {
    const file = valid();
    file.word2idx.dog = 4.5;
    expectFormatError(() => Vocabulary.parse(JSON.stringify(file), SOURCE), SOURCE, /word2idx\.dog/);
  });

  test("idx2word holding a number", () => {
    const file = valid();
    file.idx2word["4"] = 4;
    expectFormatError(() => Vocabulary.parse(JSON.stringify(file), SOURCE), SOURCE, /idx2word\.4/);
  });

  test("idx not an integer", () => {
    const file = valid();
    file.idx = "5";
    expectFormatError(() => Vocabulary.parse(JSON.stringify(file), SOURCE), SOURCE, /\bidx\b/);
  });

  test("a missing special token", () => {
    const file = valid();
    delete file.word2idx["<unk>"];
    expectFormatError(() => Vocabulary.parse(JSON.stringify(file), SOURCE), SOURCE, /lacks the special token <unk>/);
  });

  test("not an object", () => {
    expectFormatError(() => Vocabulary.parse("[]", SOURCE), SOURCE, /not an official vocabulary file/);
  });
});
