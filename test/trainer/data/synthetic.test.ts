import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { type CaptionSplit, loadSplit, loadVocabulary } from "../../../trainer/data/datasets";
import { cleanIndex, loadOrCreateNoise } from "../../../trainer/data/noise";
import { ensureSynthetic, generateSynthetic, SYNTHETIC_DEFAULTS, type SyntheticDataset } from "../../../trainer/data/synthetic";
import { tempDir } from "./fixtures";

const tmp = tempDir("pc2-synthetic-");
afterAll(tmp.cleanup);

/** Every file under `dir` (relative path → bytes). */
function snapshot(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.set(relative(dir, p), readFileSync(p));
    }
  };
  walk(dir);
  return out;
}

const SMALL = { trainImages: 40, devImages: 10, testImages: 10, imgDim: 8 };

describe("generateSynthetic", () => {
  test("same seed → identical bytes; another seed → different data", () => {
    const a = snapshot(generateSynthetic(join(tmp.dir, "a"), SMALL).dir);
    const b = snapshot(generateSynthetic(join(tmp.dir, "b"), SMALL).dir);
    expect([...a.keys()]).toEqual([
      "f30k_precomp/dev_caps.txt",
      "f30k_precomp/dev_ims.npy",
      "f30k_precomp/test_caps.txt",
      "f30k_precomp/test_ims.npy",
      "f30k_precomp/train_caps.txt",
      "f30k_precomp/train_ims.npy",
      "noise/f30k_precomp_0.4.npy",
      "synthetic.json",
      "vocab/f30k_precomp_vocab.json",
    ]);
    for (const [k, v] of a) expect(b.get(k)!.equals(v)).toBe(true);
    const c = snapshot(generateSynthetic(join(tmp.dir, "c"), { ...SMALL, seed: 1 }).dir);
    expect(c.get("f30k_precomp/train_ims.npy")!.equals(a.get("f30k_precomp/train_ims.npy")!)).toBe(false);
    expect(c.get("f30k_precomp/train_caps.txt")!.equals(a.get("f30k_precomp/train_caps.txt")!)).toBe(false);
    // Splits come from their own streams: a bigger train split leaves the test split as it was.
    const d = snapshot(generateSynthetic(join(tmp.dir, "d"), { ...SMALL, trainImages: 41 }).dir);
    expect(d.get("f30k_precomp/test_ims.npy")!.equals(a.get("f30k_precomp/test_ims.npy")!)).toBe(true);
    expect(d.get("f30k_precomp/test_caps.txt")!.equals(a.get("f30k_precomp/test_caps.txt")!)).toBe(true);
    const none = snapshot(generateSynthetic(join(tmp.dir, "e"), { ...SMALL, noiseRatio: 0 }).dir);
    expect([...none.keys()].some((k) => k.startsWith("noise/"))).toBe(false);
  });

  test("ensureSynthetic generates once per options and reuses the folder", () => {
    const cache = join(tmp.dir, "cache");
    const first = ensureSynthetic(cache, SMALL);
    const stamp = statSync(join(first.dir, "synthetic.json")).mtimeMs;
    const again = ensureSynthetic(cache, SMALL);
    expect(again).toEqual(first);
    expect(statSync(join(again.dir, "synthetic.json")).mtimeMs).toBe(stamp);
    const other = ensureSynthetic(cache, { ...SMALL, seed: 9 });
    expect(other.dir).not.toBe(first.dir);
    // Only the finished folders remain (no temporary ones).
    expect(readdirSync(cache).sort()).toEqual([first.dir, other.dir].map((d) => relative(cache, d)).sort());
    expect(() => ensureSynthetic(cache, { ...SMALL, noiseRatio: 1 })).toThrow(/noiseRatio must be in \[0, 1\)/);
  });
});

describe("the default synthetic dataset", () => {
  let ds: SyntheticDataset;
  let train: CaptionSplit;
  let test_: CaptionSplit;
  beforeAll(() => {
    ds = generateSynthetic(join(tmp.dir, "default"));
    const { vocab, vocabSize } = loadVocabulary({ vocabPath: ds.vocabPath, dataName: ds.dataName });
    const load = (split: "train" | "test") => loadSplit({ dataPath: ds.dataPath, dataName: ds.dataName, split, vocab, vocabSize, imgDim: ds.imgDim });
    train = load("train");
    test_ = load("test");
  });
  afterAll(() => {
    train.images.close();
    test_.images.close();
  });

  test("reads back through the official f30k_precomp layout", () => {
    const o = SYNTHETIC_DEFAULTS;
    expect([train.length, train.images.count, train.imDiv, train.images.dim]).toEqual([5 * o.trainImages, o.trainImages, 5, o.imgDim]);
    expect(test_.length).toBe(5 * o.testImages);
    const { vocab } = loadVocabulary({ vocabPath: ds.vocabPath, dataName: ds.dataName });
    // The vocabulary was built from train + dev with threshold 1: no train word is unknown.
    expect(train.captions.every((c) => !c.includes(vocab.unk))).toBe(true);
    const noise = loadOrCreateNoise({ captions: train.length, images: train.images.count, imDiv: 5, noiseRatio: o.noiseRatio, noiseFile: ds.noiseFile });
    expect(noise.source).toBe("file");
    const frac = noise.noisy.reduce((a, b) => a + b, 0) / train.length;
    expect(frac).toBeGreaterThan(o.noiseRatio - 0.02);
    expect(frac).toBeLessThanOrEqual(o.noiseRatio);
  });

  test("features look like precomputed CNN features: non-negative, sparse-ish, unnormalized", () => {
    const all = train.images.gather(Array.from({ length: train.images.count }, (_, i) => i));
    let min = Infinity;
    let max = 0;
    let sum = 0;
    let zeros = 0;
    for (const x of all) {
      min = Math.min(min, x);
      max = Math.max(max, x);
      sum += x;
      if (x === 0) zeros++;
    }
    expect(min).toBe(0);
    expect(sum / all.length).toBeGreaterThan(0.2);
    expect(sum / all.length).toBeLessThan(3);
    expect(max).toBeGreaterThan(3);
    expect(max).toBeLessThan(50);
    expect(zeros / all.length).toBeGreaterThan(0.2);
    expect(zeros / all.length).toBeLessThan(0.8);
  });

  test("learnable: a training-free linear baseline retrieves far above chance, worse from noisy pairs", () => {
    const clean = ridgeRetrieval(train, test_, cleanIndex(train.length, 5));
    const noise = loadOrCreateNoise({ captions: train.length, images: train.images.count, imDiv: 5, noiseRatio: 0.4, noiseFile: ds.noiseFile });
    const noisy = ridgeRetrieval(train, test_, noise.t2i);
    const chance = 1 / test_.images.count; // R@1 of random scores: 1%
    expect(clean.r1).toBeGreaterThan(30 * chance);
    expect(clean.r5).toBeGreaterThan(0.6);
    // Captions name every object, so a linear map learns through 40% noise almost as well (0.86 against 0.89).
    expect(noisy.r1).toBeLessThan(clean.r1);
    expect(noisy.r1).toBeGreaterThan(10 * chance);
  });
});

/**
 * Text-to-image retrieval by a ridge regression from a caption's bag of words to its image's
 * mean-pooled region features (fit on `train` paired by `t2i`), scored by cosine on `test`.
 */
function ridgeRetrieval(train: CaptionSplit, test: CaptionSplit, t2i: Int32Array, lambda = 1): { r1: number; r5: number } {
  const d = train.images.dim;
  const pooled = (s: CaptionSplit) => {
    const n = s.images.count;
    const R = s.images.regions;
    const f = s.images.gather(Array.from({ length: n }, (_, i) => i));
    const out = new Float64Array(n * d);
    for (let i = 0; i < n; i++) for (let r = 0; r < R; r++) for (let j = 0; j < d; j++) out[i * d + j] += f[(i * R + r) * d + j] / R;
    return out;
  };
  const words = (c: Int32Array) => [...new Set(Array.from(c.subarray(1, c.length - 1)))];
  let V = 0;
  for (const c of [...train.captions, ...test.captions]) for (const w of c) V = Math.max(V, w + 1);

  const Ptr = pooled(train);
  const mean = new Float64Array(d);
  for (let i = 0; i < train.images.count; i++) for (let j = 0; j < d; j++) mean[j] += Ptr[i * d + j] / train.images.count;
  // Normal equations (XᵀX + λI) W = XᵀY on centred targets.
  const A = new Float64Array(V * V);
  const B = new Float64Array(V * d);
  train.captions.forEach((c, i) => {
    const ws = words(c);
    for (const a of ws) {
      for (const b of ws) A[a * V + b]++;
      for (let j = 0; j < d; j++) B[a * d + j] += Ptr[t2i[i] * d + j] - mean[j];
    }
  });
  for (let v = 0; v < V; v++) A[v * V + v] += lambda;
  const W = choleskySolve(A, B, V, d);

  const Pte = pooled(test);
  const M = test.images.count;
  for (let i = 0; i < M; i++) for (let j = 0; j < d; j++) Pte[i * d + j] -= mean[j];
  let r1 = 0;
  let r5 = 0;
  test.captions.forEach((c, ci) => {
    const y = new Float64Array(d);
    for (const w of words(c)) for (let j = 0; j < d; j++) y[j] += W[w * d + j];
    const score = (i: number) => {
      let dot = 0;
      let nn = 0;
      for (let j = 0; j < d; j++) {
        dot += y[j] * Pte[i * d + j];
        nn += Pte[i * d + j] ** 2;
      }
      return dot / Math.sqrt(nn);
    };
    const target = score(Math.floor(ci / test.imDiv));
    let rank = 0;
    for (let i = 0; i < M; i++) if (score(i) > target) rank++;
    if (rank < 1) r1++;
    if (rank < 5) r5++;
  });
  return { r1: r1 / test.length, r5: r5 / test.length };
}

/** Solves A X = B for symmetric positive definite A (n × n) and B (n × m). */
function choleskySolve(A: Float64Array, B: Float64Array, n: number, m: number): Float64Array {
  const L = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i * n + j];
      for (let k = 0; k < j; k++) s -= L[i * n + k] * L[j * n + k];
      L[i * n + j] = i === j ? Math.sqrt(s) : s / L[j * n + j];
    }
  }
  const X = Float64Array.from(B);
  for (let c = 0; c < m; c++) {
    for (let i = 0; i < n; i++) {
      let s = X[i * m + c];
      for (let k = 0; k < i; k++) s -= L[i * n + k] * X[k * m + c];
      X[i * m + c] = s / L[i * n + i];
    }
    for (let i = n - 1; i >= 0; i--) {
      let s = X[i * m + c];
      for (let k = i + 1; k < n; k++) s -= L[k * n + i] * X[k * m + c];
      X[i * m + c] = s / L[i * n + i];
    }
  }
  return X;
}
