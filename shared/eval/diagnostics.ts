/**
 * Diagnostics that make PC2's premise visible, beyond the official code: how well a per-sample
 * criterion separates the noisy pairs (ROC-AUC), how spread a net's similarities are (a collapsed
 * net scores every pair alike), and the rules that call a split degenerate or a net collapsed.
 */
import * as v from "valibot";

/**
 * ROC-AUC of `scores` for telling the positives (`labels[i]` = 1) from the rest: the probability
 * that a random positive scores above a random negative, ties counting one half (the
 * Mann-Whitney U statistic over the product of the class sizes). NaN when a class is empty.
 */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a] - scores[b]);
  let pos = 0;
  let rankSum = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1]] === scores[order[i]]) j++;
    const midRank = (i + j) / 2 + 1; // 1-based average rank of the tie group
    for (let k = i; k <= j; k++) {
      if (labels[order[k]]) {
        pos++;
        rankSum += midRank;
      }
    }
    i = j + 1;
  }
  const neg = n - pos;
  if (pos === 0 || neg === 0) return Number.NaN;
  return (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}

/**
 * How spread one net's similarity matrix is: mean and standard deviation over every (image,
 * caption) pair, and over the matching pairs (caption j of image floor(j / perCaptions)).
 */
export const SimilaritySpreadSchema = v.object({
  mean: v.number(),
  std: v.number(),
  meanPos: v.number(),
  stdPos: v.number(),
  /** The net's own rsum on the split (its ranking alone, before the two-net average). */
  rsum: v.optional(v.number()),
});
export type SimilaritySpread = v.InferOutput<typeof SimilaritySpreadSchema>;

/** The spread of a similarity matrix [nImages, nImages · perCaptions], rows images. */
export function similaritySpread(sims: ArrayLike<number>, nImages: number, perCaptions: number): SimilaritySpread {
  const nCaptions = nImages * perCaptions;
  let s = 0;
  let ss = 0;
  for (let i = 0; i < sims.length; i++) {
    s += sims[i];
    ss += sims[i] * sims[i];
  }
  let p = 0;
  let pp = 0;
  for (let c = 0; c < nCaptions; c++) {
    const v = sims[Math.floor(c / perCaptions) * nCaptions + c];
    p += v;
    pp += v * v;
  }
  const mean = s / sims.length;
  const meanPos = p / nCaptions;
  return { mean, std: Math.sqrt(Math.max(0, ss / sims.length - mean * mean)), meanPos, stdPos: Math.sqrt(Math.max(0, pp / nCaptions - meanPos * meanPos)) };
}

/** A split that keeps fewer than this share of the pairs, or more than 1 minus it, is degenerate. */
export const DEGENERATE_SPLIT_SHARE = 0.01;

export function degenerateSplit(cleanShare: number): boolean {
  return cleanShare < DEGENERATE_SPLIT_SHARE || cleanShare > 1 - DEGENERATE_SPLIT_SHARE;
}

/**
 * A net is collapsed when the standard deviation of its similarities over all validation pairs
 * falls below this fraction of its own after warmup: its scores went nearly constant. The spread
 * of a healthy net depends on the configuration (tiny SGR nets of the tests score with std 0.004,
 * e2e-size nets after warmup 0.10–0.16), so the rule is relative. Measured (docs/fidelity.md,
 * "Collapse"): collapsed e2e nets, ranking at chance, score with std 1e-4–1.3e-3, under 1/70 of
 * their post-warmup spread; healthy nets stayed above 0.17 of it (tiny SAF at a high learning rate).
 * A spread can also shrink while the ranking holds (the default run's net A went to 0.036 of its
 * spread with the ensemble at validation rsum 550), so between 1/100 and 1/10 of its spread a
 * collapse also needs the net's own rsum to have fallen under half of its post-warmup rsum
 * (collapsed e2e nets: 46–58 against 217–290). Under 1/100 the scores are constant in all but
 * rounding, and whatever ranking is left comes from ties.
 */
export const COLLAPSE_RATIO = 0.1;

/** What a net's later validations are measured against: its spread and own rsum after warmup. */
export const NetReferenceSchema = v.object({ std: v.number(), rsum: v.number() });
export type NetReference = v.InferOutput<typeof NetReferenceSchema>;

/**
 * What a run compares its co-training against, measured on the validation split after warmup (or
 * on the nets loaded with --model_path): each net's spread and own rsum, and the two-net rsum
 * (absent in checkpoints written before it was kept).
 */
export const RunReferenceSchema = v.object({ A: NetReferenceSchema, B: NetReferenceSchema, rsum: v.optional(v.number()) });
export type RunReference = v.InferOutput<typeof RunReferenceSchema>;

/** The share of its post-warmup rsum under which a net's own ranking counts as lost. */
export const COLLAPSE_RSUM_RATIO = 0.5;
/** Under this share of its post-warmup spread a net is collapsed whatever its ranking. */
export const COLLAPSE_FLAT_RATIO = 0.01;

export function collapsed(spread: SimilaritySpread, reference: NetReference): boolean {
  if (!(spread.std >= COLLAPSE_FLAT_RATIO * reference.std)) return true;
  const flat = !(spread.std >= COLLAPSE_RATIO * reference.std);
  const lost = spread.rsum === undefined || !(spread.rsum >= COLLAPSE_RSUM_RATIO * reference.rsum);
  return flat && lost;
}
