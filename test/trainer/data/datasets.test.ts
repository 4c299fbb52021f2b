import { afterAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { Vocabulary } from "../../../shared/formats/vocab";
import {
  buildVocabulary,
  canonicalDataName,
  loadSplit,
  loadVocabulary,
  parseCc152kTsv,
  perCaptionsFor,
  pyLines,
  pyStrip,
  resolveDataDir,
  testSplitFor,
} from "../../../trainer/data/datasets";
import { FIXTURE_WORDS, tempDir, write, writeFeatures, writeVocab } from "./fixtures";

const tmp = tempDir("pc2-datasets-");
afterAll(tmp.cleanup);

const CAPTIONS = ["A dog runs on the grass.", "the cat", "A CAT on a dog", "zebra runs .", "the grass"];

/** `n` images with five captions each (cycling through CAPTIONS). */
function fiveEach(n: number): string {
  return Array.from({ length: 5 * n }, (_, i) => `${CAPTIONS[i % CAPTIONS.length]}\n`).join("");
}

function ids(v: Vocabulary, words: string[]): number[] {
  return [v.start, ...words.map((w) => v.id(w)), v.end];
}

/** A dataset root holding one dataset of the text layouts. */
function textLayout(name: "f30k_precomp" | "coco_precomp", splits: Record<string, number>): { root: string; vocabPath: string } {
  const root = join(tmp.dir, `${name}-${Object.values(splits).join("-")}`);
  for (const [split, n] of Object.entries(splits)) {
    writeFeatures(join(root, name, `${split}_ims.npy`), n, 36, 4);
    write(join(root, name, `${split}_caps.txt`), fiveEach(n));
  }
  writeVocab(join(root, "vocab", `${name}_vocab.json`));
  return { root, vocabPath: join(root, "vocab") };
}

describe("f30k_precomp / coco_precomp", () => {
  for (const name of ["f30k_precomp", "coco_precomp"] as const) {
    test(`${name}: five captions per image, NLTK tokens mapped through the vocabulary`, () => {
      const { root, vocabPath } = textLayout(name, { train: 3, dev: 2, test: 2, testall: 4 });
      const { vocab, vocabSize, file } = loadVocabulary({ vocabPath, dataName: name });
      expect(file).toBe(join(vocabPath, `${name}_vocab.json`));
      expect(vocabSize).toBe(vocab.length);
      expect(vocabSize).toBe(4 + FIXTURE_WORDS.length);
      const s = loadSplit({ dataPath: root, dataName: name, split: "train", vocab, vocabSize, imgDim: 4 });
      expect([s.dataName, s.split, s.imDiv, s.length, s.perCaptions, s.captions.length, s.images.count]).toEqual([name, "train", 5, 15, 5, 15, 3]);
      expect(s.files).toEqual({ captions: join(root, name, "train_caps.txt"), images: join(root, name, "train_ims.npy") });
      // "grass." splits off its final period (NLTK); upper case is lowered; "zebra" is <unk>.
      expect(Array.from(s.captions[0])).toEqual(ids(vocab, ["a", "dog", "runs", "on", "the", "grass", "."]));
      expect(Array.from(s.captions[2])).toEqual(ids(vocab, ["a", "cat", "on", "a", "dog"]));
      expect(Array.from(s.captions[3])).toEqual([vocab.start, vocab.unk, vocab.id("runs"), vocab.id("."), vocab.end]);
      expect(s.imageIds).toBeUndefined();
      const split = testSplitFor(name);
      expect(split).toBe(name === "coco_precomp" ? "testall" : "test");
      const t = loadSplit({ dataPath: root, dataName: name, split, vocab, vocabSize });
      expect(t.length).toBe(name === "coco_precomp" ? 20 : 10);
      s.images.close();
      t.images.close();
    });
  }

  test("one caption per image gives im_div 1", () => {
    const root = join(tmp.dir, "one-per-image");
    writeFeatures(join(root, "f30k_precomp", "test_ims.npy"), 5, 36, 4);
    write(join(root, "f30k_precomp", "test_caps.txt"), CAPTIONS.join("\r\n"));
    const vocab = Vocabulary.fromWords(FIXTURE_WORDS);
    const s = loadSplit({ dataPath: root, dataName: "f30k_precomp", split: "test", vocab, vocabSize: vocab.length });
    // Evaluated at one caption per image (the official metric with per_captions 1), not at five.
    expect([s.imDiv, s.length, s.perCaptions]).toEqual([1, 5, 1]);
    s.images.close();
  });
});

describe("cc152k_precomp", () => {
  test("TSV of image id and caption, one per image, Python csv quoting", () => {
    const root = join(tmp.dir, "cc");
    const dir = join(root, "cc152k_precomp");
    writeFeatures(join(dir, "train_ims.npy"), 3, 36, 4);
    write(join(dir, "train_caps.tsv"), 'img0\tA dog runs\nimg1\t"the ""cat"", on\tgrass"\nimg2\t  the grass  \n');
    const vocab = writeVocab(join(root, "vocab", "cc152k_precomp_vocab.json"));
    const loaded = loadVocabulary({ vocabPath: join(root, "vocab"), dataName: "cc152k_precomp" });
    expect(loaded.vocabSize).toBe(vocab.length);
    const s = loadSplit({ dataPath: root, dataName: "cc152k_precomp", split: "train", vocab, vocabSize: vocab.length, imgDim: 4 });
    expect([s.imDiv, s.length, s.perCaptions]).toEqual([1, 3, 1]);
    expect(s.imageIds).toEqual(["img0", "img1", "img2"]);
    expect(Array.from(s.captions[0])).toEqual(ids(vocab, ["a", "dog", "runs"]));
    // The quoted field holds a TAB, a comma and doubled quotes; NLTK turns " into `` and ''.
    expect(Array.from(s.captions[1])).toEqual(ids(vocab, ["the", "``", "cat", "''", ",", "on", "grass"]));
    expect(Array.from(s.captions[2])).toEqual(ids(vocab, ["the", "grass"]));
    s.images.close();
  });

  test("parseCc152kTsv: quoted fields across lines, and a row without a caption", () => {
    expect(parseCc152kTsv('a\t"two\nlines"\nb\tc\n', "x.tsv")).toEqual([
      { imageId: "a", caption: "two\nlines" },
      { imageId: "b", caption: "c" },
    ]);
    expect(() => parseCc152kTsv("a\tok\nb only\n", "x.tsv")).toThrow("x.tsv: line 2: expected 'image id<TAB>caption', found 1 field");
    expect(() => parseCc152kTsv("a\tok\n\nb\tc\n", "x.tsv")).toThrow("x.tsv: line 2: expected 'image id<TAB>caption', found 0 fields");
  });
});

describe("now100k_precomp (NoW)", () => {
  /** A NoW folder under `folder` with ids below `idx` (the vocabulary's next free id). */
  function nowLayout(folder: string, idx: number): { root: string; vocabPath: string } {
    const root = join(tmp.dir, `now-${folder}`);
    const dir = join(root, folder);
    for (const [split, n] of [["train", 3], ["dev", 2], ["test", 2]] as const) {
      writeFeatures(join(dir, `${split}_ims.npy`), n, 36, 6);
      for (const tok of ["bpe", "bert", "jieba"]) {
        const lines = Array.from({ length: n }, (_, i) => `${tok.length},${i + 7}, ${idx - 1},\n`);
        write(join(dir, `${split}_caps_${tok}.txt`), lines.join(""));
      }
    }
    for (const tok of ["bpe", "bert", "jieba"]) {
      // NoW vocabularies list few words but their idx counts every id the tokenizer can give.
      const file = Vocabulary.fromWords(["x"]).toJSON();
      write(join(root, "vocab", `now100k_precomp_vocab_${tok}.json`), JSON.stringify({ ...file, idx }));
    }
    return { root, vocabPath: join(root, "vocab") };
  }

  for (const tok of ["bpe", "bert", "jieba"]) {
    test(`${tok}: comma-separated ids between <start> and <end>, vocab_size = vocab.idx`, () => {
      const { root, vocabPath } = nowLayout("now100k_precomp", 500);
      const { vocab, vocabSize, file } = loadVocabulary({ vocabPath, dataName: "now100k_precomp", tokenizer: tok });
      expect(file).toBe(join(vocabPath, `now100k_precomp_vocab_${tok}.json`));
      expect([vocabSize, vocab.length]).toEqual([500, 5]);
      const s = loadSplit({ dataPath: root, dataName: "now100k_precomp", split: "train", vocab, vocabSize, tokenizer: tok, imgDim: 6 });
      expect([s.imDiv, s.length, s.perCaptions]).toEqual([1, 3, 1]);
      expect(s.files.captions).toBe(join(root, "now100k_precomp", `train_caps_${tok}.txt`));
      // The trailing comma gives an empty token, which is skipped; " 499" is an int.
      expect(Array.from(s.captions[1])).toEqual([vocab.start, tok.length, 8, 499, vocab.end]);
      s.images.close();
    });
  }

  test("the download's folder name h5100k_precomp, as --data_name or as the folder of now100k_precomp", () => {
    const { root, vocabPath } = nowLayout("h5100k_precomp", 600);
    expect(canonicalDataName("h5100k_precomp")).toBe("now100k_precomp");
    expect(resolveDataDir(root, "now100k_precomp")).toBe(join(root, "h5100k_precomp"));
    expect(resolveDataDir(root, "h5100k_precomp")).toBe(join(root, "h5100k_precomp"));
    for (const dataName of ["h5100k_precomp", "now100k_precomp"]) {
      const { vocab, vocabSize, file } = loadVocabulary({ vocabPath, dataName, tokenizer: "bert" });
      expect(file).toBe(join(vocabPath, "now100k_precomp_vocab_bert.json"));
      const s = loadSplit({ dataPath: root, dataName, split: "dev", vocab, vocabSize, tokenizer: "bert" });
      expect([s.dataName, s.length, s.perCaptions]).toEqual(["now100k_precomp", 2, 1]);
      expect(s.dir).toBe(join(root, "h5100k_precomp"));
      s.images.close();
    }
    expect(perCaptionsFor("h5100k_precomp")).toBe(1);
  });

  test("errors: id outside the vocabulary, non-integer token, empty caption, bad tokenizer", () => {
    const { root, vocabPath } = nowLayout("now100k_precomp", 50);
    const { vocab, vocabSize } = loadVocabulary({ vocabPath, dataName: "now100k_precomp", tokenizer: "bpe" });
    const caps = join(root, "now100k_precomp", "test_caps_bpe.txt");
    const load = () => loadSplit({ dataPath: root, dataName: "now100k_precomp", split: "test", vocab, vocabSize, tokenizer: "bpe" });
    write(caps, "1,2\n3,50\n");
    expect(load).toThrow(`${caps}: line 2: token id 50 outside the vocabulary [0, 50)`);
    write(caps, "1,2\n3,-1\n");
    expect(load).toThrow(`${caps}: line 2: token id -1 outside the vocabulary [0, 50)`);
    write(caps, "1,2\n3,x4\n");
    expect(load).toThrow(`${caps}: line 2: token 'x4' is not an integer id`);
    write(caps, "1,2\n3.5\n");
    expect(load).toThrow(`${caps}: line 2: token '3.5' is not an integer id`);
    write(caps, "1,2\n ,\n");
    expect(load).toThrow(`${caps}: line 2: empty caption (no token ids)`);
    expect(() => loadVocabulary({ vocabPath, dataName: "now100k_precomp", tokenizer: "wordpiece" })).toThrow(
      "--tokenizer: 'wordpiece' is not a NoW tokenizer (allowed: bpe, bert, jieba)",
    );
  });
});

describe("the dev cap: min(1000 images, the split)", () => {
  test("fewer than 1000 images: the whole split (the official code crashes here)", () => {
    const { root, vocabPath } = textLayout("f30k_precomp", { dev: 3 });
    const { vocab, vocabSize } = loadVocabulary({ vocabPath, dataName: "f30k_precomp" });
    const s = loadSplit({ dataPath: root, dataName: "f30k_precomp", split: "dev", vocab, vocabSize });
    expect([s.length, s.captions.length]).toEqual([15, 15]);
    s.images.close();
  });

  test("more than 1000 images: 1000 × im_div captions, except for NoW", () => {
    const vocab = Vocabulary.fromWords(FIXTURE_WORDS);
    const { root } = textLayout("f30k_precomp", { dev: 1003 });
    const f = loadSplit({ dataPath: root, dataName: "f30k_precomp", split: "dev", vocab, vocabSize: vocab.length });
    expect([f.imDiv, f.length, f.captions.length, f.images.count]).toEqual([5, 5000, 5000, 1003]);
    f.images.close();

    const cc = join(tmp.dir, "cc-dev");
    writeFeatures(join(cc, "cc152k_precomp", "dev_ims.npy"), 1002, 36, 1);
    write(join(cc, "cc152k_precomp", "dev_caps.tsv"), Array.from({ length: 1002 }, (_, i) => `id${i}\tthe dog\n`).join(""));
    const c = loadSplit({ dataPath: cc, dataName: "cc152k_precomp", split: "dev", vocab, vocabSize: vocab.length });
    expect([c.imDiv, c.length, c.captions.length, c.imageIds?.length]).toEqual([1, 1000, 1000, 1000]);
    c.images.close();

    const now = join(tmp.dir, "now-dev");
    writeFeatures(join(now, "now100k_precomp", "dev_ims.npy"), 1002, 36, 1);
    write(join(now, "now100k_precomp", "dev_caps_bpe.txt"), "5,6\n".repeat(1002));
    const n = loadSplit({ dataPath: now, dataName: "now100k_precomp", split: "dev", vocab, vocabSize: 100, tokenizer: "bpe" });
    expect(n.length).toBe(1002);
    n.images.close();
  });
});

describe("bad files", () => {
  const vocab = Vocabulary.fromWords(FIXTURE_WORDS);
  const base = { vocab, vocabSize: vocab.length, dataName: "f30k_precomp" } as const;

  test("caption/image count mismatch names both files and both counts", () => {
    const root = join(tmp.dir, "mismatch");
    const dir = join(root, "f30k_precomp");
    writeFeatures(join(dir, "train_ims.npy"), 4, 36, 4);
    write(join(dir, "train_caps.txt"), fiveEach(3));
    expect(() => loadSplit({ ...base, dataPath: root, split: "train" })).toThrow(
      `${join(dir, "train_caps.txt")}: 15 captions for 4 images in ${join(dir, "train_ims.npy")}: expected one caption per image (4) or five (20)`,
    );
  });

  test("an empty caption line names the file and the line", () => {
    const root = join(tmp.dir, "empty-line");
    const dir = join(root, "f30k_precomp");
    writeFeatures(join(dir, "test_ims.npy"), 1, 36, 4);
    write(join(dir, "test_caps.txt"), "a dog\nthe cat\n   \nthe grass\na cat\n");
    expect(() => loadSplit({ ...base, dataPath: root, split: "test" })).toThrow(`${join(dir, "test_caps.txt")}: line 3: empty caption (no tokens)`);
  });

  test("features of the wrong img_dim, regions or rank", () => {
    const root = join(tmp.dir, "bad-features");
    const dir = join(root, "f30k_precomp");
    write(join(dir, "test_caps.txt"), "a dog\n");
    writeFeatures(join(dir, "test_ims.npy"), 1, 36, 48);
    expect(() => loadSplit({ ...base, dataPath: root, split: "test", imgDim: 2048 })).toThrow(
      `${join(dir, "test_ims.npy")}: image features have shape (1, 36, 48) (img_dim 48) but --img_dim is 2048; pass --img_dim 48`,
    );
    writeFeatures(join(dir, "test_ims.npy"), 1, 10, 48);
    expect(() => loadSplit({ ...base, dataPath: root, split: "test" })).toThrow(
      `${join(dir, "test_ims.npy")}: image features have 10 regions per image (shape (1, 10, 48)), expected 36`,
    );
  });

  test("missing files list what the layout expects", () => {
    const root = join(tmp.dir, "missing");
    const dir = join(root, "coco_precomp");
    write(join(dir, "train_caps.txt"), "a dog\n");
    expect(() => loadSplit({ ...base, dataName: "coco_precomp", dataPath: root, split: "train" })).toThrow(
      `${join(dir, "train_ims.npy")}: file not found; the coco_precomp layout in ${dir} expects train_ims.npy, train_caps.txt, dev_ims.npy, dev_caps.txt, test_ims.npy, test_caps.txt, testall_ims.npy, testall_caps.txt`,
    );
    expect(() => loadSplit({ ...base, dataPath: root, split: "train" })).toThrow(
      `${join(root, "f30k_precomp")}: dataset folder not found: --data_path ${root} must hold f30k_precomp/ with train_ims.npy, train_caps.txt, dev_ims.npy, dev_caps.txt, test_ims.npy, test_caps.txt`,
    );
    expect(() => loadSplit({ ...base, dataName: "now100k_precomp", tokenizer: "bert", dataPath: root, split: "train" })).toThrow(
      /now100k_precomp: dataset folder not found: .* must hold now100k_precomp or h5100k_precomp\/ with train_ims\.npy, train_caps_bert\.txt/,
    );
    expect(() => loadVocabulary({ vocabPath: root, dataName: "f30k_precomp" })).toThrow(
      `${join(root, "f30k_precomp_vocab.json")}: vocabulary file not found (--vocab_path ${root}, --data_name f30k_precomp)`,
    );
    expect(() => canonicalDataName("f8k_precomp")).toThrow(
      "--data_name: unsupported dataset 'f8k_precomp' (allowed: f30k_precomp, coco_precomp, cc152k_precomp, now100k_precomp, h5100k_precomp)",
    );
  });
});

describe("helpers", () => {
  test("pyLines and pyStrip read lines as Python's text mode and str.strip() do", () => {
    expect(pyLines("a\nb\r\nc\rd\n")).toEqual(["a", "b", "c", "d"]);
    expect(pyLines("a\n\n")).toEqual(["a", ""]);
    expect(pyLines("")).toEqual([]);
    expect(pyStrip("\x1c\x85 a b \u3000")).toBe("a b");
    expect(pyStrip("\ufeffa")).toBe("\ufeffa");
  });

  test("buildVocabulary keeps words seen at least `threshold` times in first-seen order", () => {
    const v = buildVocabulary(["The dog runs.", "a dog", "the cat"], 2);
    expect(Object.keys(v.toJSON().word2idx)).toEqual(["<pad>", "<start>", "<end>", "<unk>", "the", "dog"]);
    expect(buildVocabulary(["b a", "a"], 1).length).toBe(6);
  });
});
