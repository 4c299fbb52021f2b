import { describe, expect, test } from "bun:test";
import { COLLAPSE_FLAT_RATIO, COLLAPSE_RATIO, DEGENERATE_SPLIT_SHARE, collapsed, degenerateSplit, rocAuc, similaritySpread } from "../../../shared/eval/diagnostics";

describe("rocAuc", () => {
  test("perfect, reversed, chance and ties (Mann-Whitney with mid-ranks)", () => {
    expect(rocAuc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])).toBe(1);
    expect(rocAuc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0])).toBe(0);
    expect(rocAuc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1])).toBe(0.5);
    // positives 0.4, 0.7; negatives 0.1, 0.4, 0.9: pairs won 1 + 0.5 (tie) + 0 + 1 + 1 + 0 = 3.5 of 6
    expect(rocAuc([0.1, 0.4, 0.9, 0.4, 0.7], [0, 0, 0, 1, 1])).toBeCloseTo(3.5 / 6, 12);
    expect(rocAuc([1, 2], [1, 1])).toBeNaN();
  });
});

describe("similaritySpread", () => {
  test("all pairs and matching pairs (caption j belongs to image floor(j / perCaptions))", () => {
    // 2 images × 4 captions (2 per image): matching pairs are (0,0) (0,1) (1,2) (1,3).
    const sims = [0.9, 0.7, 0.1, 0.3, 0.2, 0.4, 0.8, 0.6];
    const s = similaritySpread(sims, 2, 2);
    const mean = sims.reduce((a, b) => a + b, 0) / 8;
    expect(s.mean).toBeCloseTo(mean, 12);
    expect(s.std).toBeCloseTo(Math.sqrt(sims.reduce((a, b) => a + (b - mean) ** 2, 0) / 8), 12);
    expect(s.meanPos).toBeCloseTo(0.75, 12);
    expect(s.stdPos).toBeCloseTo(Math.sqrt((0.15 ** 2 + 0.05 ** 2 + 0.05 ** 2 + 0.15 ** 2) / 4), 12);
  });
});

describe("rules", () => {
  test("a split that keeps under 1% or over 99% of the pairs is degenerate", () => {
    expect([0, 0.002, DEGENERATE_SPLIT_SHARE - 1e-9, 0.5, 1 - DEGENERATE_SPLIT_SHARE + 1e-9, 1].map(degenerateSplit)).toEqual([true, true, true, false, true, true]);
    expect(degenerateSplit(0.02)).toBe(false);
  });

  test("a net is collapsed when its spread is under a tenth of its post-warmup one and its own rsum under half", () => {
    const ref = { std: 0.03, rsum: 300 };
    const at = (std: number, rsum?: number) => ({ mean: 0.5, std, meanPos: 0.5, stdPos: std, rsum });
    expect(collapsed(at(0.03 * COLLAPSE_RATIO * 0.99, 100), ref)).toBe(true);
    expect(collapsed(at(0.03 * COLLAPSE_RATIO * 1.01, 100), ref)).toBe(false);
    expect(collapsed(at(0, 50), ref)).toBe(true);
    expect(collapsed(at(Number.NaN, 50), ref)).toBe(true);
    // A flat but still well-ranked net (the default run's net A: 0.036 of its spread, ensemble rsum 550) is not collapsed.
    expect(collapsed(at(0.001, 0.6 * 300), ref)).toBe(false);
    expect(collapsed(at(0.001, 0.4 * 300), ref)).toBe(true);
    // Under a hundredth of its spread a net is collapsed whatever ties leave of its ranking.
    expect(collapsed(at(0.03 * COLLAPSE_FLAT_RATIO * 0.99, 300), ref)).toBe(true);
    // A tiny net whose healthy spread is small is not collapsed for it.
    expect(collapsed(at(0.004, 300), { std: 0.0044, rsum: 300 })).toBe(false);
  });
});
