import { describe, expect, test } from "bun:test";
import { GMM_DEFAULTS, type Pair, cleanComponent, cleanProbability, fitGmm1D, twoMeansLabels } from "../../../shared/eval/gmm";
import { FIXTURE_ROOT, loadCase, numbers, tensor } from "./fixture";

const POSTERIOR_TOL = 1e-3;
const PARAM_TOL = 1e-4;

const fixture = await loadCase("split");
/** Every mixture the fixture holds, read from tensor names such as `input.loss_0`. */
const ks = [...fixture.tensors.keys()]
  .map((name) => /^input\.loss_(\d+)$/.exec(name)?.[1])
  .filter((k): k is string => k !== undefined);

interface MixtureScalars {
  means: Pair;
  variances: Pair;
  weights: Pair;
}

describe(`GMM fixture (${FIXTURE_ROOT})`, () => {
  test("holds at least one mixture", () => {
    expect(ks.length).toBeGreaterThan(0);
  });

  for (const k of ks) {
    test(`loss_${k}: posteriors of the clean component and mixture parameters`, () => {
      const x = numbers(tensor(fixture, `input.loss_${k}`));
      const want = numbers(tensor(fixture, `expect.clean_prob_${k}`));
      const prob = cleanProbability(x);
      expect(prob.length).toBe(want.length);
      let worstProb = 0;
      for (let i = 0; i < want.length; i++) worstProb = Math.max(worstProb, Math.abs(prob[i] - want[i]));
      expect(worstProb).toBeLessThanOrEqual(POSTERIOR_TOL);

      const scalars = fixture.scalars[`gmm_${k}`] as MixtureScalars | undefined;
      if (!scalars) throw new Error(`${FIXTURE_ROOT}/split: scalar gmm_${k} missing`);
      const model = fitGmm1D(x);
      // scikit-learn's component order follows its random k-means labels: match by mean.
      const lowFixture = scalars.means[0] <= scalars.means[1] ? 0 : 1;
      const lowHere = cleanComponent(model);
      let worstParam = 0;
      for (const [here, there] of [
        [lowHere, lowFixture],
        [1 - lowHere, 1 - lowFixture],
      ]) {
        for (const key of ["means", "variances", "weights"] as const) {
          const err = Math.abs(model[key][here] - scalars[key][there]);
          worstParam = Math.max(worstParam, err);
          if (err > PARAM_TOL) throw new Error(`gmm_${k}.${key}[${there}]: got ${model[key][here]}, expected ${scalars[key][there]}`);
        }
      }
      console.log(`gmm loss_${k}: largest posterior error ${worstProb}, parameter error ${worstParam}, ${model.nIter} EM iterations`);
    });
  }
});

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** A loss-like sample: a large clean mode near 0.15 and a small noisy one near 0.7. */
function bimodal(n: number, seed: number): Float64Array {
  const draw = lcg(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - draw())) * Math.cos(2 * Math.PI * draw());
  return Float64Array.from({ length: n }, () => (draw() < 0.75 ? 0.15 + 0.08 * gauss() : 0.7 + 0.12 * gauss()));
}

describe("k-means initialisation", () => {
  test("splits at the threshold of least within-cluster sum of squares", () => {
    expect(Array.from(twoMeansLabels([0.9, 0, 0.1, 1, 0.2]))).toEqual([1, 0, 0, 1, 0]);
  });

  test("equals the best threshold found by trying every one", () => {
    const x = bimodal(300, 5);
    const labels = twoMeansLabels(x);
    const sorted = Float64Array.from(x).sort();
    const sse = (part: number[]) => {
      const m = part.reduce((a, b) => a + b, 0) / part.length;
      return part.reduce((a, b) => a + (b - m) ** 2, 0);
    };
    let best = Infinity;
    for (let k = 1; k < sorted.length; k++) best = Math.min(best, sse(Array.from(sorted.subarray(0, k))) + sse(Array.from(sorted.subarray(k))));
    const ours = sse(Array.from(x).filter((_, i) => labels[i] === 0)) + sse(Array.from(x).filter((_, i) => labels[i] === 1));
    expect(Math.abs(ours - best)).toBeLessThanOrEqual(1e-9);
  });

  test("keeps equal values together and puts a single value in one cluster", () => {
    expect(Array.from(twoMeansLabels([0, 0, 1, 1, 1]))).toEqual([0, 0, 1, 1, 1]);
    expect(Array.from(twoMeansLabels([0.3, 0.3, 0.3]))).toEqual([0, 0, 0]);
  });
});

describe("fitGmm1D", () => {
  test("recovers a well-separated mixture and its posteriors sum to one", () => {
    const x = bimodal(4000, 1);
    const model = fitGmm1D(x, { maxIter: 200, tol: 1e-8 });
    const low = cleanComponent(model);
    expect(model.converged).toBe(true);
    expect(model.means[low]).toBeCloseTo(0.15, 1);
    expect(model.means[1 - low]).toBeCloseTo(0.7, 1);
    expect(model.weights[low]).toBeCloseTo(0.75, 1);
    expect(Math.sqrt(model.variances[low] - GMM_DEFAULTS.regCovar)).toBeCloseTo(0.08, 1);
    const [a, b] = model.predictProba(x);
    for (let i = 0; i < x.length; i++) expect(Math.abs(a[i] + b[i] - 1)).toBeLessThan(1e-12);
  });

  test("stops after maxIter without convergence and reports it", () => {
    const model = fitGmm1D(bimodal(500, 2), { maxIter: 1, tol: 0 });
    expect(model.nIter).toBe(1);
    expect(model.converged).toBe(false);
  });

  test("does not depend on the order of the samples", () => {
    const x = bimodal(700, 3);
    const reversed = Float64Array.from(x).reverse();
    const a = fitGmm1D(x);
    const b = fitGmm1D(reversed);
    expect(a.means[0]).toBeCloseTo(b.means[0], 12);
    expect(a.variances[1]).toBeCloseTo(b.variances[1], 12);
    expect(a.nIter).toBe(b.nIter);
  });

  test("a constant sample (all zeros after min-max) gives finite posteriors, clean everywhere", () => {
    const prob = cleanProbability(new Float64Array(50));
    for (const p of prob) {
      expect(Number.isFinite(p)).toBe(true);
      expect(p).toBeGreaterThan(0.999);
    }
  });

  test("refuses fewer than two samples and non-finite samples", () => {
    expect(() => fitGmm1D([0.5])).toThrow(/at least 2 samples/);
    expect(() => fitGmm1D([0.1, NaN, 0.3])).toThrow(/sample 1 is NaN/);
    expect(() => fitGmm1D([0.1, 0.2], { maxIter: 0 })).toThrow(/maxIter/);
  });
});
