/**
 * The two-component Gaussian mixture that PC2 fits to per-sample losses and PO consistencies
 * (official `co_train.eval_train`: `GaussianMixture(n_components=2, max_iter=10, tol=1e-2,
 * reg_covar=5e-4)` then `predict_proba(x)[:, means_.argmin()]`), in float64.
 *
 * The fit follows scikit-learn's `GaussianMixture.fit` with `init_params='kmeans'` and a full
 * covariance in one dimension step by step, so that its few EM iterations (at most 10, stopped
 * early at tol 1e-2) start from the same point and land where scikit-learn lands:
 * k-means labels -> hard responsibilities -> initial parameters; then E-step, M-step and the
 * lower bound (the mean log-likelihood of the E-step, i.e. before that iteration's M-step), until
 * the bound changes by less than tol. The parameters kept are those of the last M-step.
 *
 * The one departure is the k-means. scikit-learn runs one k-means++ start with a random seed and
 * Lloyd's algorithm from it, stopped once the centres move by less than 1e-4 x var(x), so its
 * labels near the boundary, and hence its posteriors, change from run to run. Measured with
 * scikit-learn 1.2.1 over 8 seeds, the largest posterior difference between two of its own runs
 * was 5e-4 on a loss-like sample of 145,000 (a large clean mode, a small noisy one), 8e-3 on a
 * min-max-normalised lognormal, 4e-2 on a uniform sample and 0.17 on three equal modes. Here the
 * 2-means partition is computed exactly instead: in one dimension an optimal partition is a
 * threshold on the sorted values, and the threshold of least within-cluster sum of squares is
 * found in one pass over prefix sums. That optimum is a fixed point of Lloyd's algorithm, the
 * point scikit-learn's runs approach; it is deterministic and O(n log n). On the reference
 * fixtures it reproduces scikit-learn to 1e-14.
 */

export interface GmmOptions {
  maxIter: number;
  tol: number;
  regCovar: number;
}

/** The official call: `GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4)`. */
export const GMM_DEFAULTS: GmmOptions = { maxIter: 10, tol: 1e-2, regCovar: 5e-4 };

export type Pair = [number, number];

export interface Gmm1D {
  means: Pair;
  variances: Pair;
  weights: Pair;
  /** Whether the lower bound changed by less than tol before maxIter iterations ran out. */
  converged: boolean;
  nIter: number;
  /** The mean log-likelihood of the last E-step (scikit-learn's `lower_bound_`). */
  lowerBound: number;
  /** Posterior of each component for every sample: scikit-learn's `predict_proba` by column. */
  predictProba(x: ArrayLike<number>): [Float64Array, Float64Array];
}

/** scikit-learn adds 10 * eps(float64) to every component's count so that none is zero. */
const COUNT_EPS = 10 * Number.EPSILON;
const LOG_2PI = Math.log(2 * Math.PI);

interface Params {
  means: Pair;
  variances: Pair;
  weights: Pair;
}

/**
 * Hard labels (0 for the lower cluster, 1 for the upper) of the optimal 1-D 2-means partition.
 * All samples fall in cluster 0 when they hold a single distinct value, as scikit-learn's
 * k-means then leaves the second cluster empty.
 */
export function twoMeansLabels(x: ArrayLike<number>): Uint8Array {
  const n = x.length;
  const sorted = Float64Array.from(x).sort();
  // Centering keeps the between-cluster score below free of cancellation.
  let mean = 0;
  for (let i = 0; i < n; i++) mean += sorted[i];
  mean /= n;
  let total = 0;
  for (let i = 0; i < n; i++) total += sorted[i] - mean;
  // Minimizing the within-cluster sum of squares is maximizing L^2/k + R^2/(n-k) over the
  // centered sums L, R of the k lowest and n-k highest values.
  let bestScore = -Infinity;
  let threshold = Infinity;
  let left = 0;
  for (let k = 1; k < n; k++) {
    left += sorted[k - 1] - mean;
    if (sorted[k - 1] === sorted[k]) continue; // equal values always share a cluster
    const right = total - left;
    const score = (left * left) / k + (right * right) / (n - k);
    if (score > bestScore) {
      bestScore = score;
      threshold = sorted[k - 1];
    }
  }
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) labels[i] = x[i] > threshold ? 1 : 0;
  return labels;
}

/**
 * scikit-learn `_estimate_gaussian_parameters` (full covariance, 1-D). The weights are the counts
 * over `total`: scikit-learn's `_initialize` divides by n, its `_m_step` by the sum of the counts
 * (which is n + 20 eps); both are kept.
 */
function estimateParameters(x: ArrayLike<number>, resp0: Float64Array, resp1: Float64Array, regCovar: number, total?: number): Params {
  const n = x.length;
  let nk0 = 0;
  let nk1 = 0;
  let sx0 = 0;
  let sx1 = 0;
  for (let i = 0; i < n; i++) {
    nk0 += resp0[i];
    nk1 += resp1[i];
    sx0 += resp0[i] * x[i];
    sx1 += resp1[i] * x[i];
  }
  nk0 += COUNT_EPS;
  nk1 += COUNT_EPS;
  const m0 = sx0 / nk0;
  const m1 = sx1 / nk1;
  let sd0 = 0;
  let sd1 = 0;
  for (let i = 0; i < n; i++) {
    const d0 = x[i] - m0;
    const d1 = x[i] - m1;
    sd0 += resp0[i] * d0 * d0;
    sd1 += resp1[i] * d1 * d1;
  }
  const sum = total ?? nk0 + nk1;
  return {
    means: [m0, m1],
    variances: [sd0 / nk0 + regCovar, sd1 / nk1 + regCovar],
    weights: [nk0 / sum, nk1 / sum],
  };
}

/**
 * scikit-learn `_estimate_log_prob_resp`: log responsibilities into out0/out1, returns the mean
 * of log p(x) (the lower bound). Written as scikit-learn writes it, (x*p - mu*p)^2 with
 * p = 1/sqrt(var), so that rounding matches as closely as float64 allows.
 */
function eStep(x: ArrayLike<number>, params: Params, out0: Float64Array, out1: Float64Array): number {
  const p0 = 1 / Math.sqrt(params.variances[0]);
  const p1 = 1 / Math.sqrt(params.variances[1]);
  const mp0 = params.means[0] * p0;
  const mp1 = params.means[1] * p1;
  const c0 = Math.log(p0) + Math.log(params.weights[0]);
  const c1 = Math.log(p1) + Math.log(params.weights[1]);
  let total = 0;
  for (let i = 0; i < x.length; i++) {
    const y0 = x[i] * p0 - mp0;
    const y1 = x[i] * p1 - mp1;
    const l0 = -0.5 * (LOG_2PI + y0 * y0) + c0;
    const l1 = -0.5 * (LOG_2PI + y1 * y1) + c1;
    // scipy's logsumexp: shift by the maximum unless it is infinite.
    let top = l0 > l1 ? l0 : l1;
    if (!Number.isFinite(top)) top = 0;
    const norm = Math.log(Math.exp(l0 - top) + Math.exp(l1 - top)) + top;
    out0[i] = l0 - norm;
    out1[i] = l1 - norm;
    total += norm;
  }
  return total / x.length;
}

function checkInput(x: ArrayLike<number>): void {
  if (x.length < 2) throw new RangeError(`fitGmm1D: need at least 2 samples for 2 components, got ${x.length}`);
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i])) throw new RangeError(`fitGmm1D: sample ${i} is ${x[i]}; every sample must be finite`);
  }
}

function makeModel(params: Params, converged: boolean, nIter: number, lowerBound: number): Gmm1D {
  return {
    means: params.means,
    variances: params.variances,
    weights: params.weights,
    converged,
    nIter,
    lowerBound,
    predictProba(x: ArrayLike<number>): [Float64Array, Float64Array] {
      const a = new Float64Array(x.length);
      const b = new Float64Array(x.length);
      eStep(x, params, a, b);
      for (let i = 0; i < x.length; i++) {
        a[i] = Math.exp(a[i]);
        b[i] = Math.exp(b[i]);
      }
      return [a, b];
    },
  };
}

/** Fits the mixture as scikit-learn `GaussianMixture(n_components=2, ...).fit(x.reshape(-1, 1))`. */
export function fitGmm1D(x: ArrayLike<number>, options: Partial<GmmOptions> = {}): Gmm1D {
  const { maxIter, tol, regCovar } = { ...GMM_DEFAULTS, ...options };
  if (!Number.isInteger(maxIter) || maxIter < 1) throw new RangeError(`fitGmm1D: maxIter must be a positive integer, got ${maxIter}`);
  checkInput(x);
  const n = x.length;
  const labels = twoMeansLabels(x);
  const r0 = new Float64Array(n);
  const r1 = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    r0[i] = labels[i] === 0 ? 1 : 0;
    r1[i] = 1 - r0[i];
  }
  let params = estimateParameters(x, r0, r1, regCovar, n);
  let lowerBound = -Infinity;
  let converged = false;
  let nIter = 0;
  for (let iter = 1; iter <= maxIter; iter++) {
    nIter = iter;
    const previous = lowerBound;
    lowerBound = eStep(x, params, r0, r1);
    for (let i = 0; i < n; i++) {
      r0[i] = Math.exp(r0[i]);
      r1[i] = Math.exp(r1[i]);
    }
    params = estimateParameters(x, r0, r1, regCovar);
    if (Math.abs(lowerBound - previous) < tol) {
      converged = true;
      break;
    }
  }
  return makeModel(params, converged, nIter, lowerBound);
}

/** Index of the lower-mean component, the clean one: numpy's `means_.argmin()` (first on a tie). */
export function cleanComponent(model: Pick<Gmm1D, "means">): 0 | 1 {
  return model.means[1] < model.means[0] ? 1 : 0;
}

/**
 * Posterior of the lower-mean (clean) component for every sample, as official `eval_train`:
 * `gmm.fit(x); gmm.predict_proba(x)[:, gmm.means_.argmin()]`.
 */
export function cleanProbability(x: ArrayLike<number>, options: Partial<GmmOptions> = {}): Float64Array {
  const model = fitGmm1D(x, options);
  return model.predictProba(x)[cleanComponent(model)];
}
