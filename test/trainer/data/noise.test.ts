import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { readNpy, writeNpy } from "../../../shared/formats/npy";
import { loadSplit, loadVocabulary } from "../../../trainer/data/datasets";
import {
  cleanIndex,
  defaultNoiseFile,
  drawNoise,
  effectiveNoise,
  loadOrCreateNoise,
  pythonFloatStr,
  readNoiseFile,
} from "../../../trainer/data/noise";
import { Random } from "../../../shared/random";
import { REFERENCE_DIR, SHARED_DIR } from "../../support";
import { tempDir, write } from "./fixtures";

const tmp = tempDir("pc2-noise-");
afterAll(tmp.cleanup);

const count = (m: Uint8Array) => m.reduce((a, b) => a + b, 0);

describe("loadOrCreateNoise", () => {
  test("noise ratio 0: the clean pairing floor(i / im_div), no file", () => {
    const n = loadOrCreateNoise({ captions: 10, images: 2, imDiv: 5, noiseRatio: 0, noiseFile: join(tmp.dir, "unused.npy") });
    expect(n.source).toBe("none");
    expect(Array.from(n.t2i)).toEqual([0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
    expect(count(n.noisy)).toBe(0);
    expect(existsSync(join(tmp.dir, "unused.npy"))).toBe(false);
  });

  test("generates, saves int64, and reads the same index back", () => {
    const file = join(tmp.dir, "gen", "f30k_precomp_0.4.npy");
    const opts = { captions: 1000, images: 200, imDiv: 5, noiseRatio: 0.4, noiseFile: file, seed: 3 };
    const g = loadOrCreateNoise(opts);
    expect(g.source).toBe("generated");
    expect(g.file).toBe(file);
    const saved = readNpy(new Uint8Array(readFileSync(file)), file);
    expect(saved.dtype).toBe("int64");
    expect(saved.shape).toEqual([1000]);
    expect(Array.from(saved.data as BigInt64Array, Number)).toEqual(Array.from(g.t2i));
    // floor(0.4·1000) captions are moved; a few may land on their own image again.
    expect(count(g.noisy)).toBeLessThanOrEqual(400);
    expect(count(g.noisy)).toBeGreaterThan(380);
    for (let i = 0; i < 1000; i++) expect(g.noisy[i]).toBe(g.t2i[i] !== Math.floor(i / 5) ? 1 : 0);
    // The moved captions swap images among themselves: every image keeps five captions.
    const perImage = new Array(200).fill(0);
    for (const t of g.t2i) perImage[t]++;
    expect(perImage.every((c) => c === 5)).toBe(true);

    const r = loadOrCreateNoise({ ...opts, seed: 99 });
    expect(r.source).toBe("file");
    expect(r.t2i).toEqual(g.t2i);
    expect(r.noisy).toEqual(g.noisy);
  });

  test("the draw is deterministic in the seed", () => {
    const clean = cleanIndex(500, 5);
    expect(drawNoise(clean, 0.2, new Random(1))).toEqual(drawNoise(clean, 0.2, new Random(1)));
    expect(drawNoise(clean, 0.2, new Random(1))).not.toEqual(drawNoise(clean, 0.2, new Random(2)));
    expect(clean).toEqual(cleanIndex(500, 5)); // not modified
  });

  test("a name without .npy is saved as np.save saves it, and found again under that name", () => {
    const stem = join(tmp.dir, "stem", "coco_precomp_0.2");
    const opts = { captions: 50, images: 10, imDiv: 5, noiseRatio: 0.2, noiseFile: stem };
    const g = loadOrCreateNoise(opts);
    expect(g.file).toBe(`${stem}.npy`);
    expect(existsSync(stem)).toBe(false);
    const r = loadOrCreateNoise(opts);
    expect([r.source, r.file]).toEqual(["file", `${stem}.npy`]);
    expect(r.t2i).toEqual(g.t2i);
  });

  test("the official e2e noise file with the e2e dataset", () => {
    const root = join(REFERENCE_DIR, "e2e");
    const { vocab, vocabSize } = loadVocabulary({ vocabPath: join(root, "vocab"), dataName: "f30k_precomp" });
    const train = loadSplit({ dataPath: root, dataName: "f30k_precomp", split: "train", vocab, vocabSize, imgDim: 48 });
    expect([train.length, train.images.count, train.imDiv]).toEqual([2000, 400, 5]);
    const noiseFile = join(root, "noise_0.4.npy");
    const n = loadOrCreateNoise({ captions: train.length, images: train.images.count, imDiv: train.imDiv, noiseRatio: 0.4, noiseFile });
    expect([n.source, n.file]).toEqual(["file", noiseFile]);
    const frac = count(n.noisy) / train.length;
    expect(frac).toBeGreaterThan(0.38);
    expect(frac).toBeLessThanOrEqual(0.4);
    train.images.close();
  });

  test("the official Flickr30K noise indices read as 145,000 captions of 29,000 images", () => {
    for (const r of [0.2, 0.4, 0.6]) {
      const t2i = readNoiseFile(join(SHARED_DIR, "noise_index", `f30k_precomp_${r}.npy`), 145000, 29000);
      let noisy = 0;
      for (let i = 0; i < t2i.length; i++) if (t2i[i] !== Math.floor(i / 5)) noisy++;
      expect(Math.abs(noisy / 145000 - r)).toBeLessThan(0.01);
    }
  });

  test("bad noise files name the file and the problem", () => {
    const f = (name: string) => join(tmp.dir, "bad", name);
    write(f("short.npy"), writeNpy({ dtype: "int64", shape: [9], data: new BigInt64Array(9) }));
    expect(() => loadOrCreateNoise({ captions: 10, images: 2, imDiv: 5, noiseRatio: 0.4, noiseFile: f("short.npy") })).toThrow(
      `${f("short.npy")}: noise index has 9 entries but the training split has 10 captions`,
    );
    write(f("range.npy"), writeNpy({ dtype: "int64", shape: [10], data: BigInt64Array.from([0, 1, 0, 1, 0, 1, 0, 2, 0, 1].map(BigInt)) }));
    expect(() => readNoiseFile(f("range.npy"), 10, 2)).toThrow(
      `${f("range.npy")}: entry 7 is image index 2, outside [0, 2) (the training split has 2 images)`,
    );
    write(f("neg.npy"), writeNpy({ dtype: "int64", shape: [2], data: BigInt64Array.from([0n, -1n]) }));
    expect(() => readNoiseFile(f("neg.npy"), 2, 2)).toThrow(/neg\.npy: entry 1 is image index -1, outside \[0, 2\)/);
    write(f("rank.npy"), writeNpy({ dtype: "int64", shape: [2, 5], data: new BigInt64Array(10) }));
    expect(() => readNoiseFile(f("rank.npy"), 10, 2)).toThrow(`${f("rank.npy")}: noise index must be 1-D (one image index per caption), found shape (2, 5)`);
    write(f("float.npy"), writeNpy({ dtype: "float32", shape: [10], data: new Float32Array(10) }));
    expect(() => readNoiseFile(f("float.npy"), 10, 2)).toThrow(`${f("float.npy")}: expected an integer array, found float32`);
    expect(() => loadOrCreateNoise({ captions: 10, images: 2, imDiv: 5, noiseRatio: 1 })).toThrow("--noise_ratio must be in [0, 1), got 1");
    expect(() => loadOrCreateNoise({ captions: 10, images: 2, imDiv: 5, noiseRatio: 0.2 })).toThrow(/--noise_file is required/);
  });
});

describe("run.py's noise flags", () => {
  test("defaultNoiseFile writes the ratio as Python's str(float)", () => {
    expect(defaultNoiseFile("out", "f30k_precomp", 0.4)).toBe(join("out", "f30k_precomp_0.4.npy"));
    expect(defaultNoiseFile("out", "coco_precomp", 0)).toBe(join("out", "coco_precomp_0.0.npy"));
    expect([0.2, 0.1 + 0.2, 1e-5, 1.5e-5, 123, 1e16, 0.0001, -2.5].map(pythonFloatStr)).toEqual([
      "0.2",
      "0.30000000000000004",
      "1e-05",
      "1.5e-05",
      "123.0",
      "1e+16",
      "0.0001",
      "-2.5",
    ]);
  });

  test("cc152k and NoW have natural noise: ratio 0, no file", () => {
    expect(effectiveNoise("cc152k_precomp", 0.2, "x.npy")).toEqual({ noiseRatio: 0, noiseFile: "" });
    expect(effectiveNoise("h5100k_precomp", 0.2, "x.npy")).toEqual({ noiseRatio: 0, noiseFile: "" });
    expect(effectiveNoise("f30k_precomp", 0.2, "x.npy")).toEqual({ noiseRatio: 0.2, noiseFile: "x.npy" });
  });
});
