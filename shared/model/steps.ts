/**
 * The official `SGRAF.train` in its modes: one optimisation step on a warmup batch (`warmup`,
 * `warmup_sele`), a labeled batch (`lb_train`) or an unlabeled batch with pseudo-captions borrowed
 * from a labeled batch (`ulb_train`), and the per-sample evaluation (`eval_loss`) used by the split.
 */
import * as tf from "./tf";
import type { Random } from "../random";
import { REGIONS } from "./config";
import { type SoftMargin, contrastiveLoss, nonContrastiveHard } from "./losses";
import { mm, oneHotFloat, resizePositions, softmax } from "./ops";
import { Adam, clipGradNorm } from "./optim";
import type { ParamStore } from "./params";
import { EVAL, type ForwardContext, captionSide, encodeImage, encodeText, imageSide, projectionHead, similarity } from "./sgraf";

/** A collated batch: images of the captions' paired images, zero-padded token ids. */
export interface ModelBatch {
  /** [B, 36, img_dim] row-major. */
  images: Float32Array;
  /** [B, T] row-major, T = max(lengths). */
  captions: Int32Array;
  lengths: Int32Array;
}

export function batchSize(b: ModelBatch): number {
  return b.lengths.length;
}

function batchWidth(b: ModelBatch): number {
  return b.captions.length / b.lengths.length;
}

/** One network with its optimizer: what the official `SGRAF` object holds. */
export interface Net {
  params: ParamStore;
  optimizer: Adam;
}

export interface StepOptions {
  margin: number;
  lambdaEn: number;
  gradClip: number;
  softMargin: SoftMargin;
  hardNegative: boolean;
  rng: Random;
  /** Overrides every dropout probability (0 for the reference fixtures). */
  dropout?: number;
}

/** Image and caption embeddings of a batch (`SGRAF.forward_emb`). */
export function forwardEmb(p: ParamStore, batch: ModelBatch, ctx: ForwardContext): { img: tf.Tensor3D; cap: tf.Tensor3D } {
  const B = batchSize(batch);
  const T = batchWidth(batch);
  const imgDim = p.config.img_dim;
  if (batch.images.length !== B * REGIONS * imgDim) throw new Error(`batch images hold ${batch.images.length} values, expected ${B} x ${REGIONS} x ${imgDim}`);
  const img = encodeImage(p, tf.tensor3d(batch.images, [B, REGIONS, imgDim]));
  const cap = encodeText(p, tf.tensor2d(batch.captions, [B, T], "int32"), batch.lengths, ctx);
  return { img, cap };
}

/** Text input of the projection head: captions resized to the 36 region positions. */
export function headTextInput(cap: tf.Tensor3D): tf.Tensor3D {
  return resizePositions(cap, REGIONS);
}

export interface StepResult {
  /** Loss terms as the official train() returns them. */
  losses: Record<string, number>;
  /** softmax(img_logits) per sample of the batch (the PO written to the bank). */
  bank: Float32Array;
  /** ulb_train only: softmax(img_logits) of the labeled batch. */
  bankLabeled?: Float32Array;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Kept only when `diagnostics` is set. */
  diagnostics?: StepDiagnostics;
}

export interface StepDiagnostics {
  sims: Float32Array;
  /** Gradients after clipping, by official name. */
  grads: Map<string, Float32Array>;
  labels?: Float32Array;
  pseudoCapEmb?: { shape: number[]; data: Float32Array };
  pseudoCapLens?: Int32Array;
}

/** The official `--warmup_type`: warmup on every pair, or on the pairs its selection keeps. */
export const WARMUP_TYPES = ["warmup", "warmup_sele"] as const;
type Mode = (typeof WARMUP_TYPES)[number] | "lb_train";

interface LossOut {
  loss: tf.Scalar;
  scalars: Record<string, tf.Tensor>;
  keep: Record<string, tf.Tensor>;
}

/**
 * Runs `lossFn` under a gradient tape over every trainable parameter, then clips, applies the
 * new batch-norm statistics and takes an Adam step.
 */
function optimise(net: Net, o: StepOptions, lossFn: (ctx: ForwardContext) => LossOut, diagnostics: boolean): { scalars: Record<string, number>; kept: Record<string, tf.Tensor>; gradNorm: number; grads?: Map<string, Float32Array> } {
  const p = net.params;
  const bnUpdates = new Map<string, tf.Tensor>();
  const ctx: ForwardContext = { training: true, rng: o.rng, dropout: o.dropout, bnUpdates };
  let out: LossOut | undefined;
  const { value, grads } = tf.variableGrads(() => {
    out = lossFn(ctx);
    for (const t of [...Object.values(out.scalars), ...Object.values(out.keep)]) tf.keep(t);
    return out.loss;
  }, p.trainable());
  const byName = new Map<string, tf.Tensor>();
  for (const v of p.trainable()) {
    const g = grads[v.name];
    if (g) byName.set(p.nameOf(v), g);
  }
  const scalars: Record<string, number> = {};
  for (const [k, t] of Object.entries(out!.scalars)) {
    scalars[k] = t.dataSync()[0];
    t.dispose();
  }
  value.dispose();
  for (const [k, v] of Object.entries(scalars)) {
    if (!Number.isFinite(v)) {
      for (const g of byName.values()) g.dispose();
      for (const t of bnUpdates.values()) t.dispose();
      for (const t of Object.values(out!.keep)) t.dispose();
      throw new NonFiniteLossError(k, v);
    }
  }
  const clipped = clipGradNorm(byName, o.gradClip);
  let gradsOut: Map<string, Float32Array> | undefined;
  if (diagnostics) {
    gradsOut = new Map();
    for (const [k, g] of clipped.grads) gradsOut.set(k, g.dataSync() as Float32Array);
  }
  net.optimizer.step(p.vars, clipped.grads);
  for (const g of clipped.grads.values()) g.dispose();
  for (const [k, t] of bnUpdates) p.setBuffer(k, t);
  return { scalars, kept: out!.keep, gradNorm: clipped.totalNorm, grads: gradsOut };
}

/** A loss term that is NaN or infinite: training must stop (the trainer reports where). */
export class NonFiniteLossError extends Error {
  constructor(
    readonly term: string,
    readonly value: number,
  ) {
    super(`loss term ${term} is ${value}`);
    this.name = "NonFiniteLossError";
  }
}

function take(t: tf.Tensor): Float32Array {
  const d = t.dataSync() as Float32Array;
  t.dispose();
  return d;
}

/**
 * Per-sample labels that scale the triplet margin. The official co-training passes them as a
 * [B, 1] tensor, which scales row i (image i) of the score matrix: `axis: "row"`. A [B] tensor
 * scales column j instead (`axis: "column"`, as the unlabeled step and the reference fixtures do).
 */
export interface MarginLabels {
  values: Float32Array;
  axis: "row" | "column";
}

/**
 * One step of `warmup`, `warmup_sele` or `lb_train`:
 * loss = triplet + ce(img_logits, argmax softmax(txt_logits)) − λ_en · H(softmax(img_logits)).
 * `labels` (lb_train) are the refined targets that scale the margin.
 */
export function trainStep(net: Net, batch: ModelBatch, mode: Mode, o: StepOptions, labels?: MarginLabels, diagnostics = false): StepResult {
  const B = batchSize(batch);
  const r = optimise(
    net,
    o,
    (ctx) => {
      const p = net.params;
      const { img, cap } = forwardEmb(p, batch, ctx);
      const imgLogits = projectionHead(p, img);
      const txtLogits = projectionHead(p, headTextInput(cap));
      const sims = similarity(p, imageSide(p, img, ctx), captionSide(p, cap, batch.lengths, ctx), ctx);
      const triplet = contrastiveLoss(sims, {
        margin: o.margin,
        mode,
        hardNegative: o.hardNegative,
        softMargin: o.softMargin,
        labels: labels ? (labels.axis === "row" ? tf.tensor2d(labels.values, [B, 1]) : tf.tensor1d(labels.values)) : undefined,
      });
      const probsCap = softmax(txtLogits) as tf.Tensor2D;
      const probsImg = softmax(imgLogits) as tf.Tensor2D;
      const img_ = nonContrastiveHard(imgLogits, probsCap);
      const cap_ = nonContrastiveHard(txtLogits, probsImg);
      const loss = tf.sub(tf.add(triplet, img_.ce), tf.mul(img_.enProbs, o.lambdaEn)) as tf.Scalar;
      return {
        loss,
        scalars: { triplet_loss: triplet, ce_loss_img: img_.ce, ce_loss_cap: cap_.ce, neg_en_loss_img: tf.neg(img_.enProbs), neg_en_loss_cap: tf.neg(img_.enTargets) },
        keep: { bank: probsImg, ...(diagnostics ? { sims } : {}) },
      };
    },
    diagnostics,
  );
  return {
    losses: r.scalars,
    bank: take(r.kept.bank),
    gradNorm: r.gradNorm,
    diagnostics: diagnostics ? { sims: take(r.kept.sims), grads: r.grads! } : undefined,
  };
}

/**
 * One `ulb_train` step: for every unlabeled sample, the labeled sample whose pseudo-classification
 * output is most cosine-similar lends its caption embedding (resized to the unlabeled batch's
 * longest caption) and length; that cosine, zeroed below 0.5, is the soft label of the margin.
 * The label is not detached (as in the official code), so the margin back-propagates into the
 * projection head. loss = hard-negative triplet only.
 */
export function unlabeledStep(net: Net, unlabeled: ModelBatch, labeled: ModelBatch, o: StepOptions, diagnostics = false): StepResult {
  const Bu = batchSize(unlabeled);
  const Bl = batchSize(labeled);
  const fixedL = batchWidth(unlabeled);
  let lensNew: Int32Array | undefined;
  const r = optimise(
    net,
    o,
    (ctx) => {
      const p = net.params;
      const { img, cap } = forwardEmb(p, unlabeled, ctx);
      const imgLogits = projectionHead(p, img);
      const lb = forwardEmb(p, labeled, ctx);
      const probsLb = softmax(projectionHead(p, lb.img));
      const probs = softmax(imgLogits);
      // Cosine similarity of every unlabeled PO with every labeled PO, [Bu, Bl] (F.cosine_similarity, eps 1e-8).
      const dots = mm(probs, tf.transpose(probsLb));
      const norms = tf.mul(tf.expandDims(tf.norm(probs, 2, 1), 1), tf.expandDims(tf.norm(probsLb, 2, 1), 0));
      const cos = tf.div(dots, tf.maximum(norms, 1e-8));
      const best = tf.argMax(cos, 1).dataSync() as Int32Array;
      const pick = oneHotFloat(tf.tensor1d(best, "int32"), Bl); // [Bu, Bl]
      let label = tf.sum(tf.mul(cos, pick), 1);
      // labels[labels < 0.5] = 0: the overwritten entries pass no gradient.
      label = tf.mul(label, tf.tensor1d(Float32Array.from(label.dataSync(), (v) => (v < 0.5 ? 0 : 1))));
      const pooledLb = resizePositions(lb.cap, fixedL); // [Bl, fixedL, E]
      const E = pooledLb.shape[2];
      const borrowed = mm(pick, pooledLb.reshape([Bl, fixedL * E])).reshape([Bu, fixedL, E]);
      const capNew = tf.add(tf.mul(cap, 1e-8), borrowed) as tf.Tensor3D;
      lensNew = Int32Array.from(best, (j) => labeled.lengths[j]);
      const sims = similarity(p, imageSide(p, img, ctx), captionSide(p, capNew, lensNew, ctx), ctx);
      const triplet = contrastiveLoss(sims, { margin: o.margin, mode: "ulb_train", hardNegative: true, softMargin: o.softMargin, labels: label });
      return {
        loss: triplet as tf.Scalar,
        scalars: { triplet_loss: triplet },
        keep: { bank: probs, bankLabeled: probsLb, ...(diagnostics ? { sims, labels: label, capNew } : {}) },
      };
    },
    diagnostics,
  );
  let diag: StepDiagnostics | undefined;
  if (diagnostics) {
    const capNew = r.kept.capNew;
    diag = {
      sims: take(r.kept.sims),
      grads: r.grads!,
      labels: take(r.kept.labels),
      pseudoCapEmb: { shape: capNew.shape, data: take(capNew) },
      pseudoCapLens: lensNew,
    };
  }
  return { losses: r.scalars, bank: take(r.kept.bank), bankLabeled: take(r.kept.bankLabeled), gradNorm: r.gradNorm, diagnostics: diag };
}

/**
 * `eval_loss`: per-sample loss (mean-negative triplet, fixed margin) and pseudo-classification
 * output of a batch, eval mode, no gradients. The split's inputs.
 */
export function evalLoss(p: ParamStore, batch: ModelBatch, margin: number): { loss: Float32Array; probs: Float32Array } {
  return tf.tidy(() => {
    const { img, cap } = forwardEmb(p, batch, EVAL);
    const probs = softmax(projectionHead(p, img));
    const sims = similarity(p, imageSide(p, img, EVAL), captionSide(p, cap, batch.lengths, EVAL), EVAL);
    const loss = contrastiveLoss(sims, { margin, mode: "eval_loss" });
    return { loss: loss.dataSync() as Float32Array, probs: probs.dataSync() as Float32Array };
  });
}

export { Adam };
