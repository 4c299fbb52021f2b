import { describe, expect, test } from "bun:test";
import { fisherExact, mannWhitneyExact } from "../../benchmarks/support/stats";

describe("fisherExact (two-sided)", () => {
  // Expected values: scipy.stats.fisher_exact(table)[1], SciPy 1.10.
  const cases: Array<[[[number, number], [number, number]], number]> = [
    [[[8, 2], [1, 5]], 0.034965034965034975],
    [[[6, 2], [1, 4]], 0.10256410256410256],
    [[[3, 1], [1, 3]], 0.48571428571428565],
    [[[1, 9], [11, 3]], 0.0027594561852200836],
    [[[0, 8], [8, 0]], 0.0001554001554001554],
    [[[3, 5], [3, 5]], 1.0],
    [[[1, 7], [3, 5]], 0.5692307692307692],
    [[[0, 10], [0, 10]], 1.0],
  ];
  for (const [table, p] of cases) {
    test(JSON.stringify(table), () => {
      expect(fisherExact(table)).toBeCloseTo(p, 12);
    });
  }
  test("symmetric in rows and columns", () => {
    expect(fisherExact([[2, 7], [9, 1]])).toBeCloseTo(fisherExact([[9, 1], [2, 7]]), 14);
    expect(fisherExact([[2, 7], [9, 1]])).toBeCloseTo(fisherExact([[2, 9], [7, 1]]), 14);
  });
  test("refuses counts that are not non-negative integers", () => {
    expect(() => fisherExact([[1.5, 2], [3, 4]])).toThrow();
    expect(() => fisherExact([[-1, 2], [3, 4]])).toThrow();
  });
});

describe("mannWhitneyExact (two-sided, no ties)", () => {
  // Expected: scipy.stats.mannwhitneyu(x, y, alternative="two-sided", method="exact").pvalue, SciPy 1.10.
  const cases: Array<[number[], number[], number]> = [
    [[1, 2, 3, 4], [5, 6, 7, 8], 0.02857142857142857],
    [[1.5, 2.2, 3.1, 9.0, 4.4], [2.0, 5.5, 6.1, 7.3, 8.8, 0.3], 0.7922077922077921],
    [[0.2, 0.4, 0.1], [0.3, 0.5, 0.6, 0.05], 0.6285714285714286],
  ];
  for (const [x, y, p] of cases) test(`${JSON.stringify(x)} vs ${JSON.stringify(y)}`, () => expect(mannWhitneyExact(x, y)).toBeCloseTo(p, 12));
  test("symmetric in the samples", () => expect(mannWhitneyExact([5, 6, 7, 8], [1, 2, 3, 4])).toBeCloseTo(0.02857142857142857, 12));
});
