import { describe, expect, test } from "bun:test";
import { type RecallMetrics, evaluateRecall, fold5, i2t, rsum, t2i } from "../../../shared/eval/metrics";
import { FIXTURE_ROOT, loadCase, numbers, tensor } from "./fixture";

const SCALAR_TOL = 1e-9;
const KEYS = ["r1", "r5", "r10", "medr", "meanr"] as const;

const fixture = await loadCase("metrics");
/** Every (n, per) the fixture holds, read from tensor names such as `input.sims_n12_per5`. */
const sizes = [...fixture.tensors.keys()]
  .map((name) => /^input\.sims_n(\d+)_per(\d+)$/.exec(name))
  .filter((m): m is RegExpExecArray => m !== null)
  .map((m) => ({ n: Number(m[1]), per: Number(m[2]), tag: `n${m[1]}_per${m[2]}` }));

function expectMetrics(actual: RecallMetrics, expected: unknown, where: string): number {
  let worst = 0;
  for (const key of KEYS) {
    const want = (expected as Record<string, number>)[key];
    if (typeof want !== "number") throw new Error(`${FIXTURE_ROOT}/metrics: scalar ${where}.${key} missing`);
    const err = Math.abs(actual[key] - want);
    worst = Math.max(worst, err);
    if (err > SCALAR_TOL) throw new Error(`${where}.${key}: got ${actual[key]}, expected ${want} (|err| ${err} > ${SCALAR_TOL})`);
  }
  return worst;
}

describe(`metrics fixture (${FIXTURE_ROOT})`, () => {
  test("holds at least one similarity matrix", () => {
    expect(sizes.length).toBeGreaterThan(0);
  });

  for (const { n, per, tag } of sizes) {
    test(`i2t, t2i and rsum on ${tag}`, () => {
      const sims = tensor(fixture, `input.sims_${tag}`);
      expect(sims.shape).toEqual([n, n * per]);
      const data = sims.data as Float64Array | Float32Array;
      const forward = i2t(n, data, per);
      const backward = t2i(n, data, per);
      const worst = Math.max(
        expectMetrics(forward, fixture.scalars[`i2t_${tag}`], `i2t_${tag}`),
        expectMetrics(backward, fixture.scalars[`t2i_${tag}`], `t2i_${tag}`),
      );
      const wantRsum = fixture.scalars[`rsum_${tag}`] as number;
      expect(Math.abs(rsum(forward, backward) - wantRsum)).toBeLessThanOrEqual(SCALAR_TOL);
      expect(Array.from(forward.ranks)).toEqual(numbers(tensor(fixture, `expect.i2t_ranks_${tag}`)));
      expect(Array.from(forward.top1)).toEqual(numbers(tensor(fixture, `expect.i2t_top1_${tag}`)));
      expect(Array.from(backward.ranks)).toEqual(numbers(tensor(fixture, `expect.t2i_ranks_${tag}`)));
      expect(Array.from(backward.top1)).toEqual(numbers(tensor(fixture, `expect.t2i_top1_${tag}`)));
      const report = evaluateRecall(data, n, per);
      expect(Object.keys(report).sort()).toEqual(["i2t", "rsum", "t2i"]);
      expect(Object.keys(report.i2t).sort()).toEqual([...KEYS].sort());
      expect(report.rsum).toBeCloseTo(wantRsum, 9);
      console.log(`metrics ${tag}: largest scalar error ${worst}`);
    });
  }
});

/** `np.argsort(x, kind="stable")[::-1]`, written the slow and obvious way. */
function reversedStableOrder(row: ArrayLike<number>): number[] {
  const idx = Array.from({ length: row.length }, (_, i) => i);
  const key = (v: number) => (Number.isNaN(v) ? Infinity : v);
  const nanRank = (v: number) => (Number.isNaN(v) ? 1 : 0);
  idx.sort((a, b) => key(row[a]) - key(row[b]) || nanRank(row[a]) - nanRank(row[b]) || a - b);
  return idx.reverse();
}

function bruteForce(n: number, sims: Float64Array, per: number) {
  const m = n * per;
  const i2tRanks: number[] = [];
  const i2tTop1: number[] = [];
  for (let i = 0; i < n; i++) {
    const order = reversedStableOrder(sims.subarray(i * m, (i + 1) * m));
    let rank = Infinity;
    for (let j = i * per; j < (i + 1) * per; j++) rank = Math.min(rank, order.indexOf(j));
    i2tRanks.push(rank);
    i2tTop1.push(order[0]);
  }
  const t2iRanks: number[] = [];
  const t2iTop1: number[] = [];
  for (let c = 0; c < m; c++) {
    const column = Array.from({ length: n }, (_, i) => sims[i * m + c]);
    const order = reversedStableOrder(column);
    t2iRanks.push(order.indexOf(Math.floor(c / per)));
    t2iTop1.push(order[0]);
  }
  return { i2tRanks, i2tTop1, t2iRanks, t2iTop1 };
}

/** A small deterministic generator (mulberry32) so that failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("ties and degenerate scores", () => {
  test("equal scores rank the larger index first (reverse of a stable ascending sort)", () => {
    // One caption per image; every score equal: caption j is preceded by every caption k > j.
    const sims = new Float64Array(9).fill(0.5);
    const forward = i2t(3, sims, 1);
    expect(Array.from(forward.ranks)).toEqual([2, 1, 0]);
    expect(Array.from(forward.top1)).toEqual([2, 2, 2]);
    const backward = t2i(3, sims, 1);
    expect(Array.from(backward.ranks)).toEqual([2, 1, 0]);
    expect(Array.from(backward.top1)).toEqual([2, 2, 2]);
  });

  test("NaN ranks above every number, as numpy sorts NaN last ascending", () => {
    // Row 0 is [1, NaN]: the NaN comes first. Row 1 is [0, 0]: the tie puts caption 1 first.
    const sims = Float64Array.from([1, NaN, 0, 0]);
    expect(Array.from(i2t(2, sims, 1).ranks)).toEqual([1, 0]);
    expect(Array.from(i2t(2, sims, 1).top1)).toEqual([1, 1]);
  });

  test("i2t takes the best-ranked of an image's captions", () => {
    // Image 0 owns captions 0, 1; caption 1 ties caption 2 but has the smaller index.
    const sims = Float64Array.from([0.1, 0.7, 0.7, 0.9, 0.3, 0.3, 0.2, 0.8]);
    const forward = i2t(2, sims, 2);
    expect(Array.from(forward.ranks)).toEqual([2, 0]);
    expect(Array.from(forward.top1)).toEqual([3, 3]);
  });

  test("matches a brute-force reversed stable argsort on matrices full of ties", () => {
    const draw = rng(7);
    for (const [n, per] of [[1, 1], [2, 3], [7, 1], [9, 5], [23, 2]]) {
      const sims = Float64Array.from({ length: n * n * per }, () => Math.floor(draw() * 4) / 4);
      if (n > 2) sims[3] = NaN;
      const want = bruteForce(n, sims, per);
      const forward = i2t(n, sims, per);
      const backward = t2i(n, sims, per);
      expect(Array.from(forward.ranks)).toEqual(want.i2tRanks);
      expect(Array.from(forward.top1)).toEqual(want.i2tTop1);
      expect(Array.from(backward.ranks)).toEqual(want.t2iRanks);
      expect(Array.from(backward.top1)).toEqual(want.t2iTop1);
    }
  });

  test("medr takes numpy's median (mean of the middle pair) before the floor", () => {
    // Ranks 0, 1, 2, 3: median 1.5, medr = floor(1.5) + 1 = 2, meanr = 1.5 + 1.
    const sims = Float64Array.from([
      [4, 3, 2, 1],
      [4, 3, 2, 1],
      [4, 3, 2, 1],
      [4, 3, 2, 1],
    ].flat());
    const forward = i2t(4, sims, 1);
    expect(Array.from(forward.ranks)).toEqual([0, 1, 2, 3]);
    expect(forward.medr).toBe(2);
    expect(forward.meanr).toBeCloseTo(2.5, 12);
    expect(forward.r1).toBeCloseTo(25, 12);
    expect(forward.r5).toBe(100);
  });

  test("Float32 input ranks as the same values in Float64", () => {
    const draw = rng(3);
    const sims32 = Float32Array.from({ length: 6 * 18 }, () => draw());
    const sims64 = Float64Array.from(sims32);
    expect(i2t(6, sims32, 3)).toEqual(i2t(6, sims64, 3));
    expect(t2i(6, sims32, 3)).toEqual(t2i(6, sims64, 3));
  });

  test("a matrix of the wrong size is refused with the expected shape", () => {
    expect(() => i2t(3, new Float64Array(10), 1)).toThrow(/expected nImages x perCaptions\*nImages = 3 x 3 = 9/);
    expect(() => t2i(2, new Float64Array(8), 0)).toThrow(/perCaptions must be a positive integer/);
  });
});

describe("fold5", () => {
  test("averages every metric and rsum over folds", () => {
    const draw = rng(11);
    const folds = Array.from({ length: 5 }, () => Float64Array.from({ length: 4 * 20 }, () => draw()));
    const report = fold5((k) => folds[k], { imagesPerFold: 4, perCaptions: 5 });
    const each = folds.map((sims) => evaluateRecall(sims, 4, 5));
    expect(report.perFold).toEqual(each);
    for (const key of KEYS) {
      expect(report.i2t[key]).toBeCloseTo(each.reduce((s, r) => s + r.i2t[key], 0) / 5, 12);
      expect(report.t2i[key]).toBeCloseTo(each.reduce((s, r) => s + r.t2i[key], 0) / 5, 12);
    }
    expect(report.rsum).toBeCloseTo(each.reduce((s, r) => s + r.rsum, 0) / 5, 12);
    // The folds differ, so a mean that ignored some of them would show.
    expect(new Set(each.map((r) => r.rsum)).size).toBeGreaterThan(1);
  });

  test("asks for each fold once, in order, with the default 1000 x 5000 shape", () => {
    const asked: number[] = [];
    const sims = new Float64Array(1000 * 5000);
    for (let i = 0; i < 1000; i++) for (let p = 0; p < 5; p++) sims[i * 5000 + i * 5 + p] = 1;
    const report = fold5((k) => {
      asked.push(k);
      return sims;
    });
    expect(asked).toEqual([0, 1, 2, 3, 4]);
    expect(report.rsum).toBe(600);
    expect(report.i2t.medr).toBe(1);
  });
});
