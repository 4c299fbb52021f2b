import { describe, expect, test } from "bun:test";
import { resolve } from "node:path";
import { klConsistency, minMaxNormalize, noisyCaptions, splitPrecisionRecall, splitProb } from "../../../shared/eval/split";
import { readNpy } from "../../../shared/formats/npy";
import { SHARED_DIR } from "../../support";
import { FIXTURE_ROOT, loadCase, numbers, tensor } from "./fixture";

const KL_REL_TOL = 1e-5;

describe(`KL consistency fixture (${FIXTURE_ROOT})`, () => {
  test("kl[i] = sum(cur * (log cur - log bank)) for every sample", async () => {
    const fixture = await loadCase("split");
    const current = tensor(fixture, "input.current");
    const bank = tensor(fixture, "input.bank");
    const want = numbers(tensor(fixture, "expect.kl"));
    expect(bank.shape).toEqual(current.shape);
    const kl = klConsistency(numbers(current), numbers(bank), current.shape[1]);
    expect(kl.length).toBe(want.length);
    let worst = 0;
    for (let i = 0; i < want.length; i++) {
      const rel = Math.abs(kl[i] - want[i]) / Math.max(Math.abs(want[i]), 1e-12);
      worst = Math.max(worst, rel);
      expect(rel).toBeLessThanOrEqual(KL_REL_TOL);
    }
    console.log(`kl: largest relative error ${worst}`);
  });

  test("is zero for identical distributions, skips zero classes, is infinite where the bank has none", () => {
    const kl = klConsistency([0.5, 0.5, 0, 1, 0.2, 0.8], [0.5, 0.5, 0.3, 0.7, 0, 1], 2);
    expect(kl[0]).toBe(0);
    expect(kl[1]).toBeCloseTo(-Math.log(0.7), 12);
    expect(kl[2]).toBe(Infinity);
    expect(() => klConsistency([0.5, 0.5, 1], [0.5, 0.5, 1], 2)).toThrow(/n x nClasses = n x 2/);
  });
});

describe("minMaxNormalize", () => {
  test("maps the minimum to 0 and the maximum to 1", () => {
    expect(Array.from(minMaxNormalize([2, 4, 3, 6]))).toEqual([0, 0.5, 0.25, 1]);
  });

  test("a constant input becomes all zeros, not NaN", () => {
    expect(Array.from(minMaxNormalize([0.7, 0.7, 0.7]))).toEqual([0, 0, 0]);
    expect(Array.from(minMaxNormalize([]))).toEqual([]);
  });
});

describe("splitProb", () => {
  test("keeps prob > threshold as clean when some sample falls at or below it", () => {
    const split = splitProb([0.9, 0.5, 0.2, 0.51], 0.5);
    expect(Array.from(split.clean)).toEqual([1, 0, 0, 1]);
    expect(split.forced).toBe(false);
    expect(split.threshold).toBe(0.5);
  });

  test("forces the 1/100 least-clean samples out when every prob exceeds the threshold", () => {
    // 250 samples: the threshold becomes sort(prob)[2], so the three smallest are unlabeled.
    // (i * 37) % 250 is a permutation of 0..249, so the three smallest are where it is 0, 1, 2.
    const order = (i: number) => (i * 37) % 250;
    const prob = Float64Array.from({ length: 250 }, (_, i) => 0.6 + order(i) / 1000);
    const split = splitProb(prob, 0.5);
    expect(split.forced).toBe(true);
    expect(split.threshold).toBeCloseTo(0.602, 12);
    const unlabeled = Array.from(split.clean.keys()).filter((i) => split.clean[i] === 0);
    expect(unlabeled.map(order).sort()).toEqual([0, 1, 2]);
  });

  test("under 100 samples the forced threshold is the minimum, which alone is unlabeled", () => {
    const split = splitProb([0.8, 0.7, 0.9], 0.5);
    expect(split.forced).toBe(true);
    expect(Array.from(split.clean)).toEqual([1, 0, 1]);
  });

  test("refuses an empty prob", () => {
    expect(() => splitProb([], 0.5)).toThrow(/empty/);
  });
});

describe("splitPrecisionRecall", () => {
  test("scores the predicted-noisy set against the truly noisy captions", () => {
    // Predicted noisy: 1, 2, 4. Truly noisy: 2, 3, 4, 5.
    const quality = splitPrecisionRecall([true, false, false, true, false, true], Uint8Array.from([0, 0, 1, 1, 1, 1]));
    expect(quality).toEqual({ precision: 2 / 3, recall: 2 / 4, selected: 3, noisy: 4, truePositives: 2 });
  });

  test("empty predicted or noisy sets give 0, not NaN", () => {
    const none = splitPrecisionRecall(Uint8Array.from([1, 1]), Uint8Array.from([0, 1]));
    expect(none.precision).toBe(0);
    expect(none.recall).toBe(0);
    const clean = splitPrecisionRecall([false, true], Uint8Array.from([0, 0]));
    expect(clean.precision).toBe(0);
    expect(clean.recall).toBe(0);
    expect(() => splitPrecisionRecall([true], Uint8Array.from([0, 1]))).toThrow(/one of each per caption/);
  });

  test("the official Flickr30K noise file at ratio 0.2 marks about 20% of captions noisy", async () => {
    const file = resolve(SHARED_DIR, "noise_index/f30k_precomp_0.2.npy");
    const index = readNpy(new Uint8Array(await Bun.file(file).arrayBuffer()), file);
    const noisy = noisyCaptions(index.data as BigInt64Array, 5);
    expect(noisy.length).toBe(145_000);
    const share = noisy.reduce((a, b) => a + b, 0) / noisy.length;
    expect(share).toBeGreaterThan(0.19);
    expect(share).toBeLessThan(0.21);
    expect(Array.from(noisyCaptions([0, 0, 1, 1, 0, 1], 2))).toEqual([0, 0, 0, 0, 1, 1]);
  });
});
