/**
 * The losses of the official `model.py`: ContrastiveLoss (triplet ranking with soft margins),
 * `entropy` and NonContrastiveLoss (pseudo-classification).
 */
import * as tf from "./tf";
import { maxLast, oneHotFloat, softmax } from "./ops";

/** The soft margins of the official `--soft_margin`. */
export const SOFT_MARGINS = ["linear", "exponential", "sin"] as const;
export type SoftMargin = (typeof SOFT_MARGINS)[number];
export type ContrastiveMode = "warmup" | "warmup_sele" | "lb_train" | "ulb_train" | "eval_loss" | "predict";

export interface ContrastiveOptions {
  margin: number;
  /**
   * Per-sample labels in [0, 1] that scale the margin. Shape matters as in the official code:
   * `[B, 1]` (labeled batches) scales row i of the score matrix, `[B]` (unlabeled batches) scales
   * column j, by PyTorch broadcasting.
   */
  labels?: tf.Tensor;
  softMargin?: SoftMargin;
  hardNegative?: boolean;
  mode: ContrastiveMode;
  /** Fraction of samples kept by `warmup_sele`. */
  warmupRate?: number;
}

/** The soft-margin scale s(label) of the official ContrastiveLoss. */
export function softMarginScale(labels: tf.Tensor, kind: SoftMargin): tf.Tensor {
  switch (kind) {
    case "linear":
      return labels;
    case "exponential":
      return tf.div(tf.sub(tf.pow(10, labels), 1), 9);
    case "sin":
      return tf.add(tf.div(tf.sin(tf.sub(tf.mul(labels, Math.PI), Math.PI / 2)), 2), 0.5);
  }
}

/**
 * ContrastiveLoss.forward on scores [B, B] (rows images, columns captions, diagonal positives).
 * Returns a scalar for the training modes and a per-sample vector [B] for `eval_loss`/`predict`.
 */
export function contrastiveLoss(scores: tf.Tensor2D, o: ContrastiveOptions): tf.Tensor {
  const B = scores.shape[0];
  const eye = tf.eye(B);
  const offDiag = tf.sub(1, eye);
  const diagonal = tf.sum(tf.mul(scores, eye), 1);
  const d1 = tf.expandDims(diagonal, 1); // compared along rows: caption retrieval
  const d2 = tf.expandDims(diagonal, 0); // along columns: image retrieval
  const margin: tf.Tensor | number = o.labels ? tf.mul(softMarginScale(o.labels, o.softMargin ?? "linear"), o.margin) : o.margin;
  const costS = tf.mul(tf.maximum(tf.sub(tf.add(scores, margin), d1), 1e-8), offDiag);
  const costIm = tf.mul(tf.maximum(tf.sub(tf.add(scores, margin), d2), 1e-8), offDiag);
  const costSMean = tf.mean(costS, 1);
  const costImMean = tf.mean(costIm, 0);

  switch (o.mode) {
    case "predict": {
      if (typeof margin !== "number") throw new Error("predict mode takes no labels");
      const p = tf.clipByValue(tf.sub(margin, tf.div(tf.add(costSMean, costImMean), 2)), 0, margin);
      const values = Array.from(p.dataSync()).sort((a, b) => a - b);
      const top = Math.floor(B / 10) + 1;
      const ref = values.slice(values.length - top).reduce((a, b) => a + b, 0) / top;
      return tf.div(p, ref);
    }
    case "warmup_sele": {
      const all = tf.add(costSMean, costImMean);
      const keep = Math.floor(B * (o.warmupRate ?? 0.5));
      const order = Array.from(all.dataSync(), (v, i) => [v, i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      const mask = new Float32Array(B);
      for (let i = 0; i < keep; i++) mask[order[i][1]] = 1;
      return tf.sum(tf.mul(all, tf.tensor1d(mask)));
    }
    case "warmup":
      return tf.add(tf.sum(costSMean), tf.sum(costImMean));
    case "lb_train":
    case "ulb_train":
      if (o.hardNegative ?? true) return tf.add(tf.sum(maxLast(costS)), tf.sum(maxLast(tf.transpose(costIm))));
      return tf.add(tf.sum(costSMean), tf.sum(costImMean));
    case "eval_loss":
      return tf.add(costSMean, costImMean);
  }
}

/**
 * The official `entropy(x, input_as_probabilities)`: mean sample entropy for [B, K] input,
 * the entropy of one distribution for [K] input.
 */
export function entropy(x: tf.Tensor, inputAsProbabilities: boolean): tf.Tensor {
  const b = inputAsProbabilities
    ? (() => {
        const c = tf.maximum(x, 1e-8);
        return tf.mul(c, tf.log(c));
      })()
    : tf.mul(softmax(x), tf.logSoftmax(x));
  if (b.rank === 2) return tf.neg(tf.mean(tf.sum(b, 1)));
  if (b.rank === 1) return tf.neg(tf.sum(b));
  throw new Error(`entropy: input tensor is ${b.rank}-dimensional`);
}

/**
 * NonContrastiveLoss with hard labels: cross-entropy of `logits` against argmax(targets) (mean),
 * the entropy of the mean target distribution and the mean sample entropy of softmax(logits).
 */
export function nonContrastiveHard(logits: tf.Tensor2D, targets: tf.Tensor2D): { ce: tf.Tensor; enTargets: tf.Tensor; enProbs: tf.Tensor } {
  const K = logits.shape[1];
  const probs = softmax(logits);
  const enTargets = entropy(tf.mean(targets, 0), true);
  const enProbs = entropy(probs, true);
  const onehot = oneHotFloat(tf.argMax(targets, -1), K);
  const ce = tf.neg(tf.mean(tf.sum(tf.mul(onehot, tf.logSoftmax(logits)), 1)));
  return { ce, enTargets, enProbs };
}

/** NonContrastiveLoss with soft labels: mean soft NLL and the entropy of the mean prediction. */
export function nonContrastiveSoft(logits: tf.Tensor2D, targets: tf.Tensor2D): { nll: tf.Tensor; en: tf.Tensor } {
  const nll = tf.mean(tf.sum(tf.neg(tf.mul(targets, tf.logSoftmax(logits))), 1));
  const en = entropy(tf.mean(softmax(logits), 0), true);
  return { nll, en };
}
