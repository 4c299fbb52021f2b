/**
 * Bidirectional retrieval metrics of the official `evaluation.py` (i2t, t2i, rsum, the 5-fold
 * protocol), in float64 on plain typed arrays.
 *
 * A similarity matrix is row-major, shape (nImages, perCaptions * nImages): rows are images,
 * columns captions, and caption j belongs to image floor(j / perCaptions).
 *
 * Ranking order. The official code ranks with `np.argsort(row)[::-1]`: descending score, NaN
 * first (numpy sorts NaN last), and ties in whatever order numpy's unstable sort left them, which
 * depends on the numpy version and the CPU (numpy >= 1.25 sorts with SIMD kernels, and no
 * documented order holds). This port fixes ties deterministically as the reverse of a *stable*
 * ascending sort: among equal scores the item with the larger index comes first. That is what
 * numpy gave for rows of at most 16 elements before the SIMD kernels (insertion sort), and it is
 * the only order that `[::-1]` of a stable argsort can produce. On rows without ties every numpy
 * gives the same result as this port.
 *
 * Ranks are counted, not sorted: the position of item j in the descending order is the number of
 * items that come before it, so one pass over a row gives every rank needed (O(rows x cols)).
 */
import * as v from "valibot";


/** A row-major similarity matrix: rows images, columns captions. */
export type SimMatrix = Float64Array | Float32Array | ArrayLike<number>;

/** The five numbers the official i2t/t2i print: recalls in percent, median and mean rank (1-based). */
export const RecallMetricsSchema = v.object({
  r1: v.number(),
  r5: v.number(),
  r10: v.number(),
  medr: v.number(),
  meanr: v.number(),
});
export type RecallMetrics = v.InferOutput<typeof RecallMetricsSchema>;

export interface RetrievalResult extends RecallMetrics {
  /** 0-based rank of the first ground-truth item, one per query. */
  ranks: Int32Array;
  /** Index of the item ranked first, one per query. */
  top1: Int32Array;
}

/** What `evaluateRecall` returns; the shape of the metrics JSON the trainer writes and the edge answers. */
export const RecallReportSchema = v.object({ i2t: RecallMetricsSchema, t2i: RecallMetricsSchema, rsum: v.number() });
export type RecallReport = v.InferOutput<typeof RecallReportSchema>;

/**
 * The five numbers as the official code prints them, one decimal each: `validate` separates them
 * with ", ", `evalrank` with " ".
 */
export function formatRecall(m: RecallMetrics, separator = ", "): string {
  return [m.r1, m.r5, m.r10, m.medr, m.meanr].map((x) => x.toFixed(1)).join(separator);
}

/**
 * Whether item (a, ia) comes before item (b, ib) in the order of `np.argsort(x)[::-1]` as this
 * port fixes it: higher score first, NaN above every number, ties broken by the larger index.
 */
function precedes(a: number, ia: number, b: number, ib: number): boolean {
  if (a > b) return true;
  if (a < b) return false;
  if (a === b) return ia > ib;
  const aNaN = a !== a;
  const bNaN = b !== b;
  if (aNaN && bNaN) return ia > ib;
  return aNaN;
}

function checkShape(nImages: number, sims: SimMatrix, perCaptions: number, fn: string): number {
  if (!Number.isInteger(nImages) || nImages < 1) throw new RangeError(`${fn}: nImages must be a positive integer, got ${nImages}`);
  if (!Number.isInteger(perCaptions) || perCaptions < 1) throw new RangeError(`${fn}: perCaptions must be a positive integer, got ${perCaptions}`);
  const nCaptions = nImages * perCaptions;
  if (sims.length !== nImages * nCaptions) {
    throw new RangeError(`${fn}: sims has ${sims.length} elements, expected nImages x perCaptions*nImages = ${nImages} x ${nCaptions} = ${nImages * nCaptions}`);
  }
  return nCaptions;
}

/** numpy's `np.median`: the mean of the two middle values for an even count. */
function median(values: Int32Array): number {
  const sorted = Float64Array.from(values).sort();
  const n = sorted.length;
  const mid = n >> 1;
  return n % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The official summary lines: `100.0 * count / n` in the same order of operations. */
function summarize(ranks: Int32Array, top1: Int32Array): RetrievalResult {
  const n = ranks.length;
  let below1 = 0;
  let below5 = 0;
  let below10 = 0;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const r = ranks[i];
    if (r < 1) below1++;
    if (r < 5) below5++;
    if (r < 10) below10++;
    total += r;
  }
  return {
    r1: (100.0 * below1) / n,
    r5: (100.0 * below5) / n,
    r10: (100.0 * below10) / n,
    medr: Math.floor(median(ranks)) + 1,
    meanr: total / n + 1,
    ranks,
    top1,
  };
}

/**
 * Image-to-text retrieval: for each image, the rank of its best-ranked ground-truth caption.
 * Official `evaluation.i2t` (without its side effect of writing `unique_indices.txt`).
 */
export function i2t(nImages: number, sims: SimMatrix, perCaptions = 1): RetrievalResult {
  const nCaptions = checkShape(nImages, sims, perCaptions, "i2t");
  const ranks = new Int32Array(nImages);
  const top1 = new Int32Array(nImages);
  for (let i = 0; i < nImages; i++) {
    const row = i * nCaptions;
    // The minimum position over the ground-truth captions is the position of the one that comes
    // first in the order, so only that one needs counting.
    let best = i * perCaptions;
    for (let j = best + 1; j < (i + 1) * perCaptions; j++) {
      if (precedes(sims[row + j], j, sims[row + best], best)) best = j;
    }
    const bestScore = sims[row + best];
    let rank = 0;
    let first = 0;
    for (let j = 0; j < nCaptions; j++) {
      const s = sims[row + j];
      if (precedes(s, j, bestScore, best)) rank++;
      if (j > 0 && precedes(s, j, sims[row + first], first)) first = j;
    }
    ranks[i] = rank;
    top1[i] = first;
  }
  return summarize(ranks, top1);
}

/**
 * Text-to-image retrieval: for each caption, the rank of its image among all images.
 * Official `evaluation.t2i`. The matrix is walked row by row (not transposed) so that a
 * 1000 x 5000 matrix is read sequentially.
 */
export function t2i(nImages: number, sims: SimMatrix, perCaptions = 1): RetrievalResult {
  const nCaptions = checkShape(nImages, sims, perCaptions, "t2i");
  const owner = new Int32Array(nCaptions);
  const truth = new Float64Array(nCaptions);
  for (let c = 0; c < nCaptions; c++) {
    owner[c] = Math.floor(c / perCaptions);
    truth[c] = sims[owner[c] * nCaptions + c];
  }
  const ranks = new Int32Array(nCaptions);
  const top1 = new Int32Array(nCaptions);
  const topScore = new Float64Array(nCaptions);
  for (let c = 0; c < nCaptions; c++) topScore[c] = sims[c];
  for (let i = 0; i < nImages; i++) {
    const row = i * nCaptions;
    for (let c = 0; c < nCaptions; c++) {
      const s = sims[row + c];
      if (precedes(s, i, truth[c], owner[c])) ranks[c]++;
      if (i > 0 && precedes(s, i, topScore[c], top1[c])) {
        topScore[c] = s;
        top1[c] = i;
      }
    }
  }
  return summarize(ranks, top1);
}

/** Sum of the six recalls, the official model-selection criterion (`evalrank`, `validate`). */
export function rsum(i2tMetrics: RecallMetrics, t2iMetrics: RecallMetrics): number {
  return i2tMetrics.r1 + i2tMetrics.r5 + i2tMetrics.r10 + t2iMetrics.r1 + t2iMetrics.r5 + t2iMetrics.r10;
}

function pick({ r1, r5, r10, medr, meanr }: RecallMetrics): RecallMetrics {
  return { r1, r5, r10, medr, meanr };
}

/** Both directions and rsum on one similarity matrix: official `evalrank(fold5=False)`. */
export function evaluateRecall(sims: SimMatrix, nImages: number, perCaptions = 1): RecallReport {
  const forward = pick(i2t(nImages, sims, perCaptions));
  const backward = pick(t2i(nImages, sims, perCaptions));
  return { i2t: forward, t2i: backward, rsum: rsum(forward, backward) };
}

export interface Fold5Options {
  folds: number;
  imagesPerFold: number;
  perCaptions: number;
}

export const FOLD5_DEFAULTS: Fold5Options = { folds: 5, imagesPerFold: 1000, perCaptions: 5 };

export interface Fold5Report extends RecallReport {
  perFold: RecallReport[];
}

/**
 * The 5-fold MS-COCO protocol of official `evalrank(fold5=True)`: fold k holds images
 * [k*1000, (k+1)*1000) and their 5000 captions; the metrics are averaged over folds.
 *
 * `simsOfFold(k)` returns fold k's (imagesPerFold, perCaptions*imagesPerFold) matrix, so a caller
 * computes one fold at a time and never holds the whole matrix.
 *
 * rsum is the mean of the per-fold rsums. The official code prints `mean_metrics[10] * 6`, which
 * is six times the mean i2t average recall (index 10 is `ar`, not `rsum`), and returns the last
 * fold's rsum; neither is a 5-fold rsum, so neither is reproduced.
 */
export function fold5(simsOfFold: (fold: number) => SimMatrix, options: Partial<Fold5Options> = {}): Fold5Report {
  const { folds, imagesPerFold, perCaptions } = { ...FOLD5_DEFAULTS, ...options };
  if (!Number.isInteger(folds) || folds < 1) throw new RangeError(`fold5: folds must be a positive integer, got ${folds}`);
  const perFold: RecallReport[] = [];
  for (let k = 0; k < folds; k++) perFold.push(evaluateRecall(simsOfFold(k), imagesPerFold, perCaptions));
  return foldMeans(perFold);
}

/** The five-fold report from each fold's own report: every figure is the mean over the folds. */
export function foldMeans(perFold: RecallReport[]): Fold5Report {
  const folds = perFold.length;
  const mean = (get: (r: RecallReport) => number) => perFold.reduce((acc, r) => acc + get(r), 0) / folds;
  const meanOf = (dir: "i2t" | "t2i"): RecallMetrics => ({
    r1: mean((r) => r[dir].r1),
    r5: mean((r) => r[dir].r5),
    r10: mean((r) => r[dir].r10),
    medr: mean((r) => r[dir].medr),
    meanr: mean((r) => r[dir].meanr),
  });
  return { i2t: meanOf("i2t"), t2i: meanOf("t2i"), rsum: mean((r) => r.rsum), perFold };
}
