import { describe, expect, test } from "bun:test";
import { fisherExact } from "../../benchmarks/support/stats";

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
