/**
 * Two-stage search's pieces (shared/retrieval/shortlist.ts): the exact top-k against a sort, what
 * a requested shortlist means for a gallery, and the two-stage score matrix an evaluation ranks by.
 */
import { describe, expect, test } from "bun:test";
import { Random } from "../../../shared/random";
import { effectiveShortlist, shortlistUsed, topK, twoStageScores } from "../../../shared/retrieval/shortlist";
import { evaluateRecall } from "../../../shared/eval/metrics";

/** The k best by a full sort, ties to the lower index. */
function sorted(values: ArrayLike<number>, k: number): Array<[number, number]> {
  return Array.from({ length: values.length }, (_, i) => i)
    .sort((a, b) => values[b] - values[a] || a - b)
    .slice(0, k)
    .map((i) => [i, values[i]]);
}

describe("topK", () => {
  test("equals a full sort, ties included, for k from 0 past n", () => {
    const rng = new Random(7);
    for (const n of [0, 1, 5, 100, 1000]) {
      // Values from few levels: many ties.
      const values = Float32Array.from({ length: n }, () => rng.nextInt(8));
      for (const k of [0, 1, 3, 10, 128, n, n + 5]) expect([n, k, topK(values, k)]).toEqual([n, k, sorted(values, k)]);
    }
  });
});

describe("shortlist sizes", () => {
  test("0, \"all\" and any k′ at least the gallery are exhaustive", () => {
    expect([0, "all", 100, 101, 5000].map((s) => effectiveShortlist(s as number | "all", 100))).toEqual(["all", "all", "all", "all", "all"]);
    expect(effectiveShortlist(99, 100)).toBe(99);
    expect(shortlistUsed(32, 100, "distilled")).toEqual({ used: 32, stage: "distilled", scored: 32 });
    expect(shortlistUsed("all", 100, "distilled")).toEqual({ used: "all", stage: null, scored: 100 });
  });
});

describe("twoStageScores", () => {
  // 3 images, 2 captions each: full [3, 6] and first-stage [3, 6] scores.
  const full = Float32Array.from([5, 1, 2, 9, 0, 3, /**/ 4, 8, 7, 1, 6, 2, /**/ 6, 2, 1, 0, 9, 8]);
  const first = Float32Array.from([0.1, 0.9, 0.3, 0.2, 0.5, 0.4, /**/ 0.2, 0.1, 0.9, 0.8, 0.3, 0.6, /**/ 0.3, 0.5, 0.1, 0.7, 0.2, 0.9]);

  test("text→image: each caption keeps the full scores of its k′ first-stage best images, the rest below in first-stage order", () => {
    const s = twoStageScores(full, first, 3, 6, 2, "t2i");
    // Caption 0: first stage ranks images 2, 1, 0 → images 2 and 1 keep 6 and 4; image 0 falls below both.
    expect([s[12], s[6]]).toEqual([6, 4]);
    expect(s[0]).toBeLessThan(Math.min(...full));
    // Caption 3: images 1 (0.8), 2 (0.7) kept; image 0 (0.2) below.
    expect([s[1 * 6 + 3], s[2 * 6 + 3]]).toEqual([1, 0]);
    expect(s[3]).toBeLessThan(0);
    // Outside the shortlist the first-stage order holds.
    const one = twoStageScores(full, first, 3, 6, 1, "t2i");
    expect(one[0 * 6 + 1]).toBeGreaterThan(one[1 * 6 + 1]); // caption 1: image 0 (0.9) kept, image 1 (0.1) below image 2 (0.5)
    expect(one[2 * 6 + 1]).toBeGreaterThan(one[1 * 6 + 1]);
  });

  test("image→text: each image keeps the full scores of its k′ first-stage best captions", () => {
    const s = twoStageScores(full, first, 3, 6, 2, "i2t");
    // Image 0: captions 1 (0.9) and 4 (0.5) kept.
    expect([s[1], s[4]]).toEqual([1, 0]);
    for (const c of [0, 2, 3, 5]) expect(s[c]).toBeLessThan(0);
  });

  test("a shortlist of every item ranks as the full scores do", () => {
    expect(evaluateRecall(twoStageScores(full, first, 3, 6, 3, "t2i"), 3, 2).t2i).toEqual(evaluateRecall(full, 3, 2).t2i);
    expect(evaluateRecall(twoStageScores(full, first, 3, 6, 6, "i2t"), 3, 2).i2t).toEqual(evaluateRecall(full, 3, 2).i2t);
  });
});
