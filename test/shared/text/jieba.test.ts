/**
 * The Jieba segmenter against Python Jieba 0.42.1: the reference captions (jieba.json, `tokens` =
 * `jieba.lcut(text)`), and digit ranges inside out-of-dictionary runs (fixtures/, made with
 * Debian's python3-jieba 0.42.1), where jieba-rs alone differs from Python.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { fixSkipSplits, loadJieba } from "../../../shared/text/jieba";
import { REFERENCE_DIR } from "../../support";

interface JiebaFixture {
  cases: Array<{ text: string; tokens: string[] }>;
}

const reference = JSON.parse(readFileSync(resolve(REFERENCE_DIR, "tokenize/jieba.json"), "utf8")) as JiebaFixture;
const digits = JSON.parse(readFileSync(resolve(import.meta.dir, "fixtures/jieba-hmm-digits.json"), "utf8")) as JiebaFixture;
const jieba = await loadJieba();

describe("jieba.lcut on the reference captions", () => {
  test("the fixture holds the 40 cases", () => {
    expect(reference.cases.length).toBe(40);
  });
  for (const [i, c] of reference.cases.entries()) {
    test(`case ${i}: ${c.text}`, () => {
      expect(jieba.cut(c.text)).toEqual(c.tokens);
    });
  }
});

describe("digit ranges in out-of-dictionary runs (Python's re_skip)", () => {
  for (const c of digits.cases) {
    test(c.text, () => {
      expect(jieba.cut(c.text)).toEqual(c.tokens);
    });
  }

  test("runs without a jieba-rs-only token are left as they are", () => {
    const tokens = ["C++", "11", "标准", "3.5", "分"];
    expect(fixSkipSplits(tokens)).toBe(tokens);
  });

  test("a run is re-split whole, dictionary words stay", () => {
    expect(fixSkipSplits(["C++", "1-2", ".", "5", "版"])).toEqual(["C++", "1", "-", "2.5", "版"]);
  });
});

test("loadJieba gives one segmenter per process", async () => {
  expect(await loadJieba()).toBe(jieba);
});
