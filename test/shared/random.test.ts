import { describe, expect, test } from "bun:test";
import { Random } from "../../shared/random";

describe("Random", () => {
  test("xoshiro128** matches the reference outputs for state (1, 2, 3, 4)", () => {
    const r = Random.fromState({ algorithm: "xoshiro128**", s: [1, 2, 3, 4] });
    const out = Array.from({ length: 6 }, () => r.nextUint32());
    // Computed with an independent implementation of the published algorithm.
    expect(out).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492]);
  });

  test("same seed, same stream; different seeds differ", () => {
    const a = new Random(42);
    const b = new Random(42);
    const c = new Random(43);
    const xa = Array.from({ length: 20 }, () => a.nextUint32());
    expect(Array.from({ length: 20 }, () => b.nextUint32())).toEqual(xa);
    expect(Array.from({ length: 20 }, () => c.nextUint32())).not.toEqual(xa);
  });

  test("a saved state resumes the exact sequence", () => {
    const r = new Random(7);
    for (let i = 0; i < 13; i++) r.normal();
    const saved = JSON.parse(JSON.stringify(r.state()));
    const expected = [r.nextFloat(), r.nextInt(1000), r.normal(), ...r.permutation(10)];
    const resumed = Random.fromState(saved);
    expect([resumed.nextFloat(), resumed.nextInt(1000), resumed.normal(), ...resumed.permutation(10)]).toEqual(expected);
  });

  test("nextFloat is in [0, 1) and nextInt(n) is uniform over [0, n)", () => {
    const r = new Random(1);
    const counts = new Array(6).fill(0);
    const n = 60000;
    for (let i = 0; i < n; i++) {
      const f = r.nextFloat();
      expect(f >= 0 && f < 1).toBe(true);
      counts[r.nextInt(6)]++;
    }
    // Each count is Binomial(60000, 1/6): sd ≈ 91; 5 sd is a fixed, generous bound.
    for (const c of counts) expect(Math.abs(c - n / 6)).toBeLessThan(460);
  });

  test("normal() has mean 0 and variance 1", () => {
    const r = new Random(3);
    const n = 40000;
    let s = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      const x = r.normal();
      s += x;
      s2 += x * x;
    }
    expect(Math.abs(s / n)).toBeLessThan(0.03); // sd of the mean 0.005
    expect(Math.abs(s2 / n - 1)).toBeLessThan(0.05); // sd of the variance ≈ 0.007
  });

  test("permutation holds every index once", () => {
    const p = new Random(5).permutation(1000);
    expect(Array.from(p).sort((a, b) => a - b)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(Array.from(p.subarray(0, 10))).not.toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  test("rejects invalid states and arguments", () => {
    expect(() => Random.fromState({ algorithm: "xoshiro128**", s: [0, 0, 0, 0] })).toThrow(/all-zero/);
    expect(() => Random.fromState({ algorithm: "xoshiro128**", s: [1, 2, 3, -1] })).toThrow(/uint32/);
    expect(() => new Random(0).nextInt(0)).toThrow(/nextInt/);
  });
});
