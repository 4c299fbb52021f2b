/**
 * Fits the distilled first stage's head (shared/model/stage-one.ts, issue 13) to trained nets.
 *
 * SGRAF's own pooled vectors rank the gallery far from the full model (tranglo kept 54% of its
 * text→image top-10 at k′ = 128 of 400 images), so the export learns a first stage instead: for
 * each net, two linear maps of [pooled vector, mean of region / word embeddings] to D values whose
 * dot product ranks like that net's full SGRAF score. It is distillation: the teacher is the net's
 * own similarity matrix over a sample of training images and their captions; no pair label is
 * used, so the noisy correspondences of the training set do not matter, and the nets themselves
 * are not changed (a contrastive term during training would change them).
 *
 * The loss is listwise, in both directions: for each image of the sample the softmax of its
 * teacher row (standardized per row, so that one temperature in standard deviations suits any
 * net, collapsed or sharp) is the target of the softmax of the head's scores, and likewise for
 * each caption's column. A tenth of the sampled images (and their captions) is held out; the head
 * kept is the one of the lowest held-out loss, checked every `every` steps, and fitting stops
 * after `patience` steps without a better one. Seeded: the same nets, data and options give the
 * same head.
 *
 * A net whose scores the head cannot learn (its held-out loss not 1% below both the untrained
 * head's and that of uniform scores, the loss of knowing nothing: a collapsed net's nearly
 * constant scores, say) gets a zero projection, so that it adds nothing
 * to the ensemble's first stage rather than noise; when no net's can be learned there is no head
 * (the export's first stage is then tranglo).
 */
import { concatCaptions, concatImages, type EncodedCaptions, type EncodedImages, encodeCaptionsAsync, encodeImagesAsync, ensembleSimilarityAsync, selectImages } from "../shared/model/inference";
import type { ParamStore } from "../shared/model/params";
import type { StageOneHead } from "../shared/model/stage-one";
import { headFeatures } from "../shared/model/stage-one";
import * as tf from "../shared/model/tf";
import { Random } from "../shared/random";
import type { CaptionSplit } from "./data/datasets";
import { padCaptions } from "./evaluate";

export interface HeadFitOptions {
  /** Images of the sample, with all their captions; the teacher scores images² × captions-per-image pairs per net. */
  images: number;
  /** Most optimizer steps. */
  steps: number;
  /** Teacher temperature, in standard deviations of a row's scores. */
  tau: number;
  learningRate: number;
  /** Steps between held-out checks. */
  every: number;
  /** Steps without a better held-out loss after which fitting stops. */
  patience: number;
  seed: number;
  batchSize: number;
  /** Awaited between encoded batches, teacher chunks and held-out checks (the trainer's Ctrl-C point). */
  pause?: () => Promise<void>;
}

export const HEAD_FIT_DEFAULTS: HeadFitOptions = { images: 256, steps: 1000, tau: 0.2, learningRate: 0.03, every: 25, patience: 200, seed: 0, batchSize: 128 };

/** The head's output size for an embedding size: E, at most 256 (the paper's E = 1024 gives 256). */
export function headDim(embed: number): number {
  return Math.min(embed, 256);
}

/** How a head was fitted, as the package records it (model.json `stageOneHead.fit`). */
export type HeadFit = {
  images: number;
  captions: number;
  heldOutImages: number;
  tau: number;
  /** Per net: steps run, the step kept, and its held-out loss against the loss of the untrained head. */
  nets: Array<{ steps: number; bestStep: number; heldOutLoss: number; initialHeldOutLoss: number; learned: boolean }>;
};

type SplitPart = Pick<CaptionSplit, "captions" | "images" | "imDiv" | "length">;

/** The share of the untrained head's and of uniform scores' held-out loss a net's head must reach to count as learned. */
export const LEARNED_BELOW = 0.99;

/** Fits a head for `nets` on a sample of `split` (its training set, noisy or not); null when no net's scores could be learned. */
export async function fitStageOneHead(nets: ParamStore[], split: SplitPart, options: Partial<HeadFitOptions> = {}): Promise<{ head: StageOneHead | null; fit: HeadFit }> {
  const o = { ...HEAD_FIT_DEFAULTS, ...options };
  const nAll = Math.floor(split.length / split.imDiv);
  const n = Math.min(o.images, nAll);
  if (n < 10) throw new RangeError(`fitStageOneHead: ${n} images; the fit needs at least 10 (the held-out tenth must hold one)`);
  const rng = new Random(o.seed);
  const sample = rng.permutation(nAll).subarray(0, n);
  const heldOut = Math.max(1, Math.round(n / 10));
  const fitted = n - heldOut;
  const per = split.imDiv;
  const E = nets[0].config.embed_size;
  const D = headDim(E);
  const heads: StageOneHead["nets"] = [];
  const fit: HeadFit = { images: n, captions: n * per, heldOutImages: heldOut, tau: o.tau, nets: [] };
  for (let k = 0; k < nets.length; k++) {
    const { images, captions } = await encodeSample(nets[k], split, sample, o);
    const teacher = await teacherScores(nets[k], images, captions, o.pause);
    const X = headFeatures("images", images);
    const Y = headFeatures("captions", captions);
    const r = await fitOne(X, Y, teacher, n, per, fitted, E, D, o, k);
    heads.push(r.head);
    fit.nets.push(r.report);
  }
  return { head: fit.nets.some((r) => r.learned) ? { dim: D, nets: heads } : null, fit };
}

/** The sample's images and captions (image i's captions at i·per … i·per + per − 1) encoded by a net. */
async function encodeSample(net: ParamStore, split: SplitPart, sample: Int32Array, o: HeadFitOptions): Promise<{ images: EncodedImages; captions: EncodedCaptions }> {
  const per = split.imDiv;
  const imgs: EncodedImages[] = [];
  const caps: EncodedCaptions[] = [];
  for (let i0 = 0; i0 < sample.length; i0 += o.batchSize) {
    const idx = sample.subarray(i0, Math.min(sample.length, i0 + o.batchSize));
    imgs.push(await encodeImagesAsync(net, split.images.gather(idx), idx.length));
    const { tokens, lengths } = padCaptions(Array.from(idx).flatMap((i) => split.captions.slice(i * per, (i + 1) * per)));
    caps.push(await encodeCaptionsAsync(net, tokens, lengths));
    await o.pause?.();
  }
  return { images: concatImages(imgs), captions: concatCaptions(caps) };
}

/** The net's similarity matrix [images, captions] of the sample, a few images at a time. */
async function teacherScores(net: ParamStore, images: EncodedImages, captions: EncodedCaptions, pause?: () => Promise<void>): Promise<Float32Array> {
  const out = new Float32Array(images.count * captions.count);
  const chunk = 16;
  for (let i0 = 0; i0 < images.count; i0 += chunk) {
    const idx = Int32Array.from({ length: Math.min(chunk, images.count - i0) }, (_, j) => i0 + j);
    out.set(await ensembleSimilarityAsync([net], () => selectImages(images, idx), () => captions), i0 * captions.count);
    await pause?.();
  }
  return out;
}

/** The rows [r0, r1) and columns [c0, c1) of a row-major matrix with `cols` columns. */
function block(m: Float32Array, cols: number, r0: number, r1: number, c0: number, c1: number): Float32Array {
  const out = new Float32Array((r1 - r0) * (c1 - c0));
  for (let r = r0; r < r1; r++) out.set(m.subarray(r * cols + c0, r * cols + c1), (r - r0) * (c1 - c0));
  return out;
}

/** Softmax targets of rows standardized to mean 0 and standard deviation 1, over temperature tau. */
function targets(t: tf.Tensor2D, tau: number): tf.Tensor2D {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(t, 1, true);
    return tf.softmax(t.sub(mean).div(variance.sqrt().add(1e-6)).div(tau)) as tf.Tensor2D;
  });
}

async function fitOne(X: Float32Array, Y: Float32Array, teacher: Float32Array, n: number, per: number, fitted: number, E: number, D: number, o: HeadFitOptions, netIndex: number) {
  const F = 2 * E;
  const nC = n * per;
  const fc = fitted * per;
  const part = (r0: number, r1: number, c0: number, c1: number) => tf.tensor2d(block(teacher, nC, r0, r1, c0, c1), [r1 - r0, c1 - c0]);
  const sets = tf.tidy(() => {
    const fitT = part(0, fitted, 0, fc);
    const holdT = part(fitted, n, fc, nC);
    return {
      fit: { X: tf.tensor2d(X.subarray(0, fitted * F), [fitted, F]), Y: tf.tensor2d(Y.subarray(0, fc * F), [fc, F]), i2t: targets(fitT, o.tau), t2i: targets(fitT.transpose(), o.tau) },
      hold: { X: tf.tensor2d(X.subarray(fitted * F), [n - fitted, F]), Y: tf.tensor2d(Y.subarray(fc * F), [nC - fc, F]), i2t: targets(holdT, o.tau), t2i: targets(holdT.transpose(), o.tau) },
    };
  });
  // Start from the pooled vectors' first D dimensions, slightly perturbed (seeded).
  const variable = (init: tf.Tensor) => {
    const v = tf.variable(init); // a tensor of its own: the initial value is not the variable's
    init.dispose();
    return v;
  };
  const P = variable(tf.tidy(() => tf.eye(F, D).add(tf.randomNormal([F, D], 0, 0.01, "float32", o.seed * 2 + 1 + netIndex * 7919))));
  const Q = variable(tf.tidy(() => tf.eye(F, D).add(tf.randomNormal([F, D], 0, 0.01, "float32", o.seed * 2 + 2 + netIndex * 7919))));
  const scale = variable(tf.scalar(10));
  const loss = (s: typeof sets.fit) =>
    tf.tidy(() => {
      const S = tf.matMul(tf.matMul(s.X, P), tf.matMul(s.Y, Q), false, true).mul(scale) as tf.Tensor2D;
      const a = tf.sum(tf.mul(s.i2t, tf.logSoftmax(S))).div(-s.X.shape[0]);
      const b = tf.sum(tf.mul(s.t2i, tf.logSoftmax(S.transpose()))).div(-s.Y.shape[0]);
      return a.add(b) as tf.Scalar;
    });
  const heldOutLoss = async () => {
    const l = loss(sets.hold);
    const v = (await l.data())[0];
    l.dispose();
    return v;
  };
  const snapshot = async () => ({ P: (await P.data()) as Float32Array, Q: (await Q.data()) as Float32Array, scale: (await scale.data())[0] });
  const optimizer = tf.train.adam(o.learningRate);
  const initial = await heldOutLoss();
  let best = { loss: initial, step: 0, weights: await snapshot() };
  let step = 0;
  try {
    while (step < o.steps && step - best.step < o.patience) {
      for (let j = 0; j < o.every && step < o.steps; j++, step++) optimizer.minimize(() => loss(sets.fit), false, [P, Q, scale]);
      const l = await heldOutLoss();
      if (Number.isFinite(l) && l < best.loss) best = { loss: l, step, weights: await snapshot() };
      await o.pause?.();
    }
  } finally {
    optimizer.dispose();
    for (const t of [P, Q, scale]) t.dispose();
    tf.dispose([sets.fit.X, sets.fit.Y, sets.fit.i2t, sets.fit.t2i, sets.hold.X, sets.hold.Y, sets.hold.i2t, sets.hold.t2i]);
  }
  // Uniform scores' loss: each row's targets sum to 1, so it is log(columns) per direction.
  const uniform = Math.log(nC - fc) + Math.log(n - fitted);
  const report = { steps: step, bestStep: best.step, heldOutLoss: best.loss, initialHeldOutLoss: initial, learned: best.loss < Math.min(initial, uniform) * LEARNED_BELOW };
  if (!report.learned) return { head: { images: new Float32Array(F * D), captions: new Float32Array(F * D) }, report };
  // The learned scale folds into the image side: the scores are then the head's dot products.
  const images = Float32Array.from(best.weights.P, (x) => x * best.weights.scale);
  return { head: { images, captions: Float32Array.from(best.weights.Q) }, report };
}
