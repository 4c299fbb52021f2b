/**
 * The clean/noisy split of official `co_train.eval_train`: min-max normalisation of per-sample
 * scores, PO consistency (KL between the stored and the current pseudo-classification
 * distribution), the thresholded split, and the split's precision and recall against the known
 * noisy captions. Plain float64 on typed arrays.
 */

/**
 * `(x - x.min()) / (x.max() - x.min())`, as `eval_train` normalises losses and consistencies.
 * When every value is equal numpy yields NaN (0 / 0) and the GMM fit would then fail; here the
 * result is all zeros instead, i.e. every sample sits at the minimum, which is what a
 * normalisation of a constant means.
 */
export function minMaxNormalize(x: ArrayLike<number>): Float64Array {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
  }
  const out = new Float64Array(x.length);
  const range = max - min;
  if (!(range > 0)) return out;
  for (let i = 0; i < x.length; i++) out[i] = (x[i] - min) / range;
  return out;
}

export interface SplitResult {
  /** The official `pred`: 1 where prob > threshold (kept as labeled, i.e. predicted clean). */
  clean: Uint8Array;
  /** The threshold applied: the one given, or the forced one. */
  threshold: number;
  /** Whether every prob exceeded the given threshold, so the 1/100 rule chose the threshold. */
  forced: boolean;
}

/**
 * Official `co_train.split_prob`: `pred = prob > threshold`, except that when no sample falls at
 * or below the threshold the threshold becomes `np.sort(prob)[len(prob) // 100]`, so that about
 * the 1/100 least-clean samples go to the unlabeled set.
 */
export function splitProb(prob: ArrayLike<number>, threshold: number): SplitResult {
  const n = prob.length;
  if (n === 0) throw new RangeError("splitProb: prob is empty; the official min() has no value to compare");
  let min = Infinity;
  for (let i = 0; i < n; i++) if (prob[i] < min) min = prob[i];
  const forced = min > threshold;
  const applied = forced ? Float64Array.from(prob).sort()[Math.floor(n / 100)] : threshold;
  const clean = new Uint8Array(n);
  for (let i = 0; i < n; i++) clean[i] = prob[i] > applied ? 1 : 0;
  return { clean, threshold: applied, forced };
}

/**
 * PO consistency of each sample: `F.kl_div(bank.log(), current, reduction='sum')` in official
 * `eval_train`, i.e. sum_c current * (log current - log bank), for row-major (n, nClasses)
 * distributions. A class with current = 0 adds 0 (the limit of c log c, as PyTorch's xlogy does);
 * one with current > 0 and bank = 0 adds +Infinity.
 */
export function klConsistency(current: ArrayLike<number>, bank: ArrayLike<number>, nClasses: number): Float64Array {
  if (!Number.isInteger(nClasses) || nClasses < 1) throw new RangeError(`klConsistency: nClasses must be a positive integer, got ${nClasses}`);
  if (current.length !== bank.length || current.length % nClasses !== 0) {
    throw new RangeError(`klConsistency: current has ${current.length} values and bank ${bank.length}; both must be n x nClasses = n x ${nClasses}`);
  }
  const n = current.length / nClasses;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let c = i * nClasses; c < (i + 1) * nClasses; c++) {
      const p = current[c];
      if (p > 0) sum += p * (Math.log(p) - Math.log(bank[c]));
    }
    out[i] = sum;
  }
  return out;
}

/**
 * Which captions are truly noisy: 1 where the image a caption was paired with (the official noise
 * file holds one image index per caption) is not its own image, `caption_id // perCaptions`.
 */
export function noisyCaptions(imageOfCaption: ArrayLike<number | bigint>, perCaptions = 5): Uint8Array {
  const noisy = new Uint8Array(imageOfCaption.length);
  for (let j = 0; j < noisy.length; j++) noisy[j] = Number(imageOfCaption[j]) !== Math.floor(j / perCaptions) ? 1 : 0;
  return noisy;
}

export interface SplitQuality {
  /** Of the captions predicted noisy, the share truly noisy; 0 when none is predicted noisy. */
  precision: number;
  /** Of the truly noisy captions, the share predicted noisy; 0 when none is noisy. */
  recall: number;
  /** Captions predicted noisy (the official "Selected noisy data"). */
  selected: number;
  /** Truly noisy captions. */
  noisy: number;
  /** Captions both predicted and truly noisy. */
  truePositives: number;
}

/**
 * Precision and recall of the predicted-noisy set (`clean` false) against the truly noisy
 * captions: what the diagnostics of official `eval_train` mean to print (they test caption ids
 * against the set of image indices in the noise file, which measures nothing). The official code
 * prints precision 0 for an empty prediction; recall of an empty noisy set is 0 here as well,
 * where the official code divides by zero.
 */
export function splitPrecisionRecall(predClean: ArrayLike<boolean | number>, noisy: ArrayLike<number>): SplitQuality {
  if (predClean.length !== noisy.length) {
    throw new RangeError(`splitPrecisionRecall: ${predClean.length} predictions for ${noisy.length} noise labels; one of each per caption`);
  }
  let selected = 0;
  let noisyCount = 0;
  let truePositives = 0;
  for (let i = 0; i < noisy.length; i++) {
    const predictedNoisy = !predClean[i];
    const isNoisy = noisy[i] !== 0;
    if (predictedNoisy) selected++;
    if (isNoisy) noisyCount++;
    if (predictedNoisy && isNoisy) truePositives++;
  }
  return {
    precision: selected > 0 ? truePositives / selected : 0,
    recall: noisyCount > 0 ? truePositives / noisyCount : 0,
    selected,
    noisy: noisyCount,
    truePositives,
  };
}
