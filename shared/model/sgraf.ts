/**
 * SGRAF (Similarity Graph Reasoning and Attention Filtration), as the official PC2 `model.py`
 * defines it, in dependency order: image and text encoders, visual/text self-attention, SCAN
 * attention, graph reasoning (SGR) and attention filtration (SAF), the similarity encoder and the
 * projection head.
 *
 * The official code scores one caption at a time against every image. Here every caption of a
 * batch is scored against every image at once: captions are zero-padded to the batch's longest
 * and masks keep padded words out of every mean, softmax, norm and batch statistic, so the result
 * is the official per-caption computation.
 */
import * as tf from "./tf";
import type { Random } from "../random";
import { REGIONS, type SgrafConfig } from "./config";
import { bmm, embedRows, l2norm, lengthMask, linear, maskedSoftmax, mm, sigmoid, softmax, transposeOf } from "./ops";
import { isInt8 } from "./quantized";
import { type ParamStore, gruNames } from "./params";

/** Batch-norm epsilon and momentum of PyTorch's BatchNorm1d defaults. */
const BN_EPS = 1e-5;
const BN_MOMENTUM = 0.1;
/** Inverse temperature of SCAN attention (`smooth=9.0`). */
const SCAN_SMOOTH = 9;

/** Dropout rates of the official modules. */
export const DROPOUT = { text: 0.4, selfAttention: 0.4 };

/**
 * How a forward pass runs. Training mode uses batch statistics and dropout and records the new
 * batch-norm running statistics in `bnUpdates` (applied by the caller after the step, outside any
 * gradient tape).
 */
export interface ForwardContext {
  training: boolean;
  rng?: Random;
  /** Overrides every dropout probability (the reference fixtures use 0). */
  dropout?: number;
  bnUpdates?: Map<string, tf.Tensor>;
}

export const EVAL: ForwardContext = { training: false };

function dropout(x: tf.Tensor, p: number, ctx: ForwardContext): tf.Tensor {
  const rate = ctx.dropout ?? p;
  if (!ctx.training || rate <= 0) return x;
  if (!ctx.rng) throw new Error("dropout in training mode needs ctx.rng");
  const n = x.size;
  const mask = new Float32Array(n);
  const keep = 1 / (1 - rate);
  for (let i = 0; i < n; i++) mask[i] = ctx.rng.nextFloat() >= rate ? keep : 0;
  return tf.mul(x, tf.tensor(mask, x.shape));
}

/**
 * nn.BatchNorm1d over `x` whose channel axis is `channelAxis`, statistics over every other axis
 * (or over the positions where `valid` is 1, broadcast against x).
 */
function batchNorm(p: ParamStore, prefix: string, x: tf.Tensor, channelAxis: number, ctx: ForwardContext): tf.Tensor {
  const rank = x.rank;
  const bshape = x.shape.map((d, i) => (i === channelAxis ? d : 1));
  const weight = p.get(`${prefix}.weight`).reshape(bshape);
  const bias = p.get(`${prefix}.bias`).reshape(bshape);
  if (!ctx.training) {
    const mean = p.get(`${prefix}.running_mean`).reshape(bshape);
    const variance = p.get(`${prefix}.running_var`).reshape(bshape);
    return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, BN_EPS))), weight), bias);
  }
  const axes = [...Array(rank).keys()].filter((a) => a !== channelAxis);
  const { mean, variance } = tf.moments(x, axes, true);
  const n = x.size / x.shape[channelAxis];
  recordRunningStats(p, prefix, [mean.reshape([-1])], [variance.reshape([-1])], n, ctx);
  return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, BN_EPS))), weight), bias);
}

/**
 * Running statistics after `means.length` successive training-mode calls of one batch-norm layer
 * (the SAF layer runs once per caption in the official loop), each with the unbiased variance.
 */
function recordRunningStats(p: ParamStore, prefix: string, means: tf.Tensor[], variances: tf.Tensor[], counts: number | number[], ctx: ForwardContext) {
  if (!ctx.bnUpdates) return;
  const updates = ctx.bnUpdates;
  const key = (s: string) => `${prefix}.${s}`;
  let rm = updates.get(key("running_mean")) ?? p.get(key("running_mean"));
  let rv = updates.get(key("running_var")) ?? p.get(key("running_var"));
  let nb = updates.get(key("num_batches_tracked")) ?? p.get(key("num_batches_tracked"));
  tf.tidy(() => {
    for (let i = 0; i < means.length; i++) {
      const n = Array.isArray(counts) ? counts[i] : counts;
      const unbiased = tf.mul(variances[i], n / Math.max(n - 1, 1));
      rm = tf.add(tf.mul(rm, 1 - BN_MOMENTUM), tf.mul(means[i], BN_MOMENTUM));
      rv = tf.add(tf.mul(rv, 1 - BN_MOMENTUM), tf.mul(unbiased, BN_MOMENTUM));
    }
    nb = tf.add(nb, means.length);
    for (const [k, t] of [
      ["running_mean", rm],
      ["running_var", rv],
      ["num_batches_tracked", nb],
    ] as const) {
      const old = updates.get(key(k));
      updates.set(key(k), tf.keep(t));
      if (old && old !== t) old.dispose();
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Encoders

/** EncoderImage: a linear map of every region, l2-normalised. images [N, 36, img_dim] -> [N, 36, E]. */
export function encodeImage(p: ParamStore, images: tf.Tensor3D): tf.Tensor3D {
  const e = linear(images, p.weight("img_enc.fc.weight"), p.get("img_enc.fc.bias"));
  return (p.config.no_imgnorm ? e : l2norm(e)) as tf.Tensor3D;
}

/**
 * One GRU direction over a zero-padded batch, PyTorch gate order (r, z, n) and equations:
 *   r = σ(W_ir x + b_ir + W_hr h + b_hr), z = σ(W_iz x + b_iz + W_hz h + b_hz),
 *   n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h.
 * x is [T, B, in] time-major; returns the hidden states [T][B, H]. Positions past a sequence's
 * end compute garbage that the caller masks: they never feed a valid position.
 */
function gruDirection(p: ParamStore, layer: number, reverse: boolean, x: tf.Tensor3D): tf.Tensor2D[] {
  const names = gruNames(layer, reverse);
  const H = p.config.embed_size;
  const [T, B, inF] = x.shape;
  const gx = linear(x.reshape([T * B, inF]), p.weight(names.wIh), p.get(names.bIh)).reshape([T, B, 3 * H]);
  const gxs = tf.unstack(gx) as tf.Tensor2D[];
  const wHh = p.weight(names.wHh);
  const bHh = p.get(names.bHh);
  // A float weight's transpose is made once (kept for a frozen net); an int8 one is read as it is.
  const wHhT = isInt8(wHh) ? null : transposeOf(wHh);
  let h: tf.Tensor2D = tf.zeros([B, H]);
  const out: tf.Tensor2D[] = [];
  for (let t = 0; t < T; t++) {
    const gh = wHhT ? tf.add(mm(h, wHhT), bHh) : linear(h, wHh, bHh);
    const [xr, xz, xn] = tf.split(gxs[t], 3, 1);
    const [hr, hz, hn] = tf.split(gh, 3, 1);
    const r = tf.sigmoid(tf.add(xr, hr));
    const z = tf.sigmoid(tf.add(xz, hz));
    const n = tf.tanh(tf.add(xn, tf.mul(r, hn)));
    h = tf.add(tf.mul(tf.sub(1, z), n), tf.mul(z, h)) as tf.Tensor2D;
    out.push(h);
  }
  return out;
}

/** For each caption, its first `len` positions reversed, padding left in place: [B, T] index map. */
function reverseIndex(lengths: ArrayLike<number>, T: number): Int32Array {
  const idx = new Int32Array(lengths.length * T);
  for (let b = 0; b < lengths.length; b++) {
    const l = lengths[b];
    for (let t = 0; t < T; t++) idx[b * T + t] = b * T + (t < l ? l - 1 - t : t);
  }
  return idx;
}

/**
 * EncoderText: word embedding, dropout, (bi-)GRU over packed variable-length captions (each
 * backward direction starts at its caption's own last word), outputs past a caption's length
 * zero, directions averaged, l2-normalised. captions [B, T] int32 -> [B, T, E] with T = max length.
 */
export function encodeText(p: ParamStore, captions: tf.Tensor2D, lengths: ArrayLike<number>, ctx: ForwardContext): tf.Tensor3D {
  const cfg = p.config;
  const [B, T] = captions.shape;
  const H = cfg.embed_size;
  let x: tf.Tensor = embedRows(p.weight("txt_enc.embed.weight"), captions.reshape([-1]));
  x = dropout(x.reshape([B, T, cfg.word_dim]), DROPOUT.text, ctx);
  const mask = lengthMask(lengths, T); // [B, T]
  const maskTB = tf.transpose(mask).expandDims(2); // [T, B, 1]
  const rev = cfg.bi_gru ? tf.tensor1d(reverseIndex(lengths, T), "int32") : null;
  // Time-major [T, B, F] through every layer.
  let layerIn = tf.transpose(x, [1, 0, 2]) as tf.Tensor3D;
  let outputs: tf.Tensor[] = [];
  for (let l = 0; l < cfg.num_layers; l++) {
    const fwd = tf.mul(tf.stack(gruDirection(p, l, false, layerIn)), maskTB);
    outputs = [fwd];
    if (rev) {
      // Reverse each caption within its length, run forward, reverse back.
      const flip = (t: tf.Tensor, f: number) => tf.transpose(tf.gather(tf.transpose(t, [1, 0, 2]).reshape([B * T, f]), rev).reshape([B, T, f]), [1, 0, 2]);
      const bwdIn = flip(layerIn, layerIn.shape[2]) as tf.Tensor3D;
      const bwd = tf.mul(flip(tf.stack(gruDirection(p, l, true, bwdIn)), H), maskTB);
      outputs.push(bwd);
    }
    layerIn = (outputs.length === 2 ? tf.concat(outputs, 2) : outputs[0]) as tf.Tensor3D;
  }
  let out: tf.Tensor = outputs.length === 2 ? tf.div(tf.add(outputs[0], outputs[1]), 2) : outputs[0];
  out = tf.transpose(out, [1, 0, 2]); // [B, T, E]
  return (cfg.no_txtnorm ? out : l2norm(out)) as tf.Tensor3D;
}

// ---------------------------------------------------------------------------------------------
// Self-attention for global features

/** VisualSA: attention-pooled global image feature. local [N, 36, E] -> [N, E]. */
export function visualSA(p: ParamStore, local: tf.Tensor3D, ctx: ForwardContext): tf.Tensor2D {
  const pre = "sim_enc.v_global_w";
  const rawGlobal = tf.mean(local, 1);
  let lEmb = linear(local, p.weight(`${pre}.embedding_local.0.weight`), p.get(`${pre}.embedding_local.0.bias`));
  lEmb = dropout(tf.tanh(batchNorm(p, `${pre}.embedding_local.1`, lEmb, 1, ctx)), DROPOUT.selfAttention, ctx);
  let gEmb = linear(rawGlobal, p.weight(`${pre}.embedding_global.0.weight`), p.get(`${pre}.embedding_global.0.bias`));
  gEmb = dropout(tf.tanh(batchNorm(p, `${pre}.embedding_global.1`, gEmb, 1, ctx)), DROPOUT.selfAttention, ctx);
  const common = tf.mul(lEmb, tf.expandDims(gEmb, 1));
  const weights = softmax(linear(common, p.weight(`${pre}.embedding_common.0.weight`), p.get(`${pre}.embedding_common.0.bias`)).squeeze([2]));
  return l2norm(tf.sum(tf.mul(tf.expandDims(weights, 2), local), 1)) as tf.Tensor2D;
}

/** TextSA over each caption's valid words. local [C, L, E], mask [C, L] -> [C, E]. */
export function textSA(p: ParamStore, local: tf.Tensor3D, mask: tf.Tensor2D, lengths: tf.Tensor2D, ctx: ForwardContext): tf.Tensor2D {
  const pre = "sim_enc.t_global_w";
  const rawGlobal = tf.div(tf.sum(tf.mul(local, tf.expandDims(mask, 2)), 1), lengths);
  const lEmb = dropout(tf.tanh(linear(local, p.weight(`${pre}.embedding_local.0.weight`), p.get(`${pre}.embedding_local.0.bias`))), DROPOUT.selfAttention, ctx);
  const gEmb = dropout(tf.tanh(linear(rawGlobal, p.weight(`${pre}.embedding_global.0.weight`), p.get(`${pre}.embedding_global.0.bias`))), DROPOUT.selfAttention, ctx);
  const common = tf.mul(lEmb, tf.expandDims(gEmb, 1));
  const scores = linear(common, p.weight(`${pre}.embedding_common.0.weight`), p.get(`${pre}.embedding_common.0.bias`)).squeeze([2]);
  const weights = maskedSoftmax(scores, mask);
  return l2norm(tf.sum(tf.mul(tf.expandDims(weights, 2), local), 1)) as tf.Tensor2D;
}

// ---------------------------------------------------------------------------------------------
// Similarity

/** The image-side work of the similarity encoder, computed once per image. */
export interface ImageSide {
  /** Region embeddings [N, 36, E]. */
  emb: tf.Tensor3D;
  /** VisualSA global feature [N, E]. */
  glo: tf.Tensor2D;
}

/** The caption-side work, once per caption. */
export interface CaptionSide {
  /** Word embeddings [C, L, E], zero past each caption's effective length. */
  emb: tf.Tensor3D;
  /** TextSA global feature [C, E]. */
  glo: tf.Tensor2D;
  /** 1 for valid words [C, L]. */
  mask: tf.Tensor2D;
  /** Effective lengths (the official `cap_emb[i, :n_word]` caps n_word at the tensor width). */
  lengths: Int32Array;
}

export function imageSide(p: ParamStore, imgEmb: tf.Tensor3D, ctx: ForwardContext): ImageSide {
  return { emb: imgEmb, glo: visualSA(p, imgEmb, ctx) };
}

export function captionSide(p: ParamStore, capEmb: tf.Tensor3D, lengths: ArrayLike<number>, ctx: ForwardContext): CaptionSide {
  const L = capEmb.shape[1];
  const eff = Int32Array.from(lengths, (l) => Math.min(l, L));
  const mask = lengthMask(eff, L);
  const emb = tf.mul(capEmb, tf.expandDims(mask, 2)) as tf.Tensor3D;
  const lens = tf.tensor2d(Float32Array.from(eff), [eff.length, 1]);
  return { emb, glo: textSA(p, emb, mask, lens, ctx), mask, lengths: eff };
}

/**
 * SCAN_attention of every caption word over every image's regions (LeakyReLU 0.1, l2norm over the
 * words, softmax over regions with smoothing 9) -> attended image context [N, C, L, E], l2-normalised.
 */
export function scanAttention(img: tf.Tensor3D, cap: tf.Tensor3D): tf.Tensor4D {
  const [N, R, E] = img.shape;
  const [C, L] = cap.shape;
  // attn[n, r, c, w] = <img[n, r], cap[c, w]> in one 2-D matmul.
  let attn: tf.Tensor = mm(img.reshape([N * R, E]), tf.transpose(cap.reshape([C * L, E]))).reshape([N, R, C, L]);
  attn = l2norm(tf.leakyRelu(attn, 0.1)); // over words: padded words are zero vectors and add nothing
  attn = softmax(tf.mul(tf.transpose(attn, [0, 2, 3, 1]), SCAN_SMOOTH)); // [N, C, L, R] over regions
  // context[n, c, w] = sum_r attn[n, c, w, r] img[n, r]: one product per image.
  const ctx = bmm(attn.reshape([N, C * L, R]) as tf.Tensor3D, img);
  return l2norm(ctx.reshape([N, C, L, E])) as tf.Tensor4D;
}

/** GraphReasoning, one step over nodes [P, K, S] with key mask [P or 1, 1, K] additive. */
function graphStep(p: ParamStore, k: number, nodes: tf.Tensor3D, keyMaskAdd: tf.Tensor, onlyFirst: boolean): tf.Tensor3D {
  const pre = `sim_enc.SGR_module.${k}`;
  const [P, K, S] = nodes.shape;
  const flat = nodes.reshape([P * K, S]);
  const key = linear(flat, p.weight(`${pre}.graph_key_w.weight`), p.get(`${pre}.graph_key_w.bias`)).reshape([P, K, S]);
  if (onlyFirst) {
    // Only node 0 (the global alignment) is read after the last step.
    const q0 = linear(nodes.slice([0, 0, 0], [P, 1, S]).reshape([P, S]), p.weight(`${pre}.graph_query_w.weight`), p.get(`${pre}.graph_query_w.bias`));
    const edge = softmax(tf.add(tf.sum(tf.mul(tf.expandDims(q0, 1), key), 2), keyMaskAdd.reshape([-1, K])));
    const agg = tf.sum(tf.mul(tf.expandDims(edge, 2), nodes), 1);
    return tf.relu(linear(agg, p.weight(`${pre}.sim_graph_w.weight`), p.get(`${pre}.sim_graph_w.bias`))).reshape([P, 1, S]) as tf.Tensor3D;
  }
  const query = linear(flat, p.weight(`${pre}.graph_query_w.weight`), p.get(`${pre}.graph_query_w.bias`)).reshape([P, K, S]);
  const edge = softmax(tf.add(tf.matMul(query, key, false, true), keyMaskAdd));
  const agg = tf.matMul(edge, nodes);
  return tf.relu(linear(agg, p.weight(`${pre}.sim_graph_w.weight`), p.get(`${pre}.sim_graph_w.bias`))) as tf.Tensor3D;
}

/**
 * AttentionFiltration over nodes [N, C, K, S] with node mask [C, K]. Its BatchNorm1d(1) runs once
 * per caption in the official loop: in training each caption's statistics come from its own
 * N x (length+1) valid nodes, and the running statistics advance once per caption, in order.
 */
function attentionFiltration(p: ParamStore, nodes: tf.Tensor4D, nodeMask: tf.Tensor2D, ctx: ForwardContext): tf.Tensor3D {
  const pre = "sim_enc.SAF_module";
  const [N, C, K] = nodes.shape;
  const a = linear(nodes, p.weight(`${pre}.attn_sim_w.weight`), p.get(`${pre}.attn_sim_w.bias`)).reshape([N, C, K]);
  const m = tf.expandDims(nodeMask, 0); // [1, C, K]
  let normed: tf.Tensor;
  const w = p.get(`${pre}.bn.weight`);
  const b = p.get(`${pre}.bn.bias`);
  if (ctx.training) {
    const counts = tf.mul(tf.sum(nodeMask, 1), N); // [C]
    const mean = tf.div(tf.sum(tf.mul(a, m), [0, 2]), counts); // [C]
    const centred = tf.mul(tf.sub(a, mean.reshape([1, C, 1])), m);
    const variance = tf.div(tf.sum(tf.square(centred), [0, 2]), counts); // biased, [C]
    normed = tf.div(tf.sub(a, mean.reshape([1, C, 1])), tf.sqrt(tf.add(variance.reshape([1, C, 1]), BN_EPS)));
    const countsArr = Array.from(counts.dataSync());
    recordRunningStats(p, `${pre}.bn`, tf.unstack(mean).map((t) => t.reshape([1])), tf.unstack(variance).map((t) => t.reshape([1])), countsArr, ctx);
  } else {
    normed = tf.div(tf.sub(a, p.get(`${pre}.bn.running_mean`)), tf.sqrt(tf.add(p.get(`${pre}.bn.running_var`), BN_EPS)));
  }
  let attn = tf.mul(tf.sigmoid(tf.add(tf.mul(normed, w), b)), m);
  attn = tf.div(attn, tf.add(tf.sum(tf.abs(attn), 2, true), 1e-8)); // l1norm over valid nodes
  const agg = tf.sum(tf.mul(tf.expandDims(attn, 3), nodes), 2); // [N, C, S]
  return l2norm(agg) as tf.Tensor3D;
}

/**
 * EncoderSimilarity: similarity of every image with every caption, [N images, C captions].
 */
export function similarity(p: ParamStore, img: ImageSide, cap: CaptionSide, ctx: ForwardContext): tf.Tensor2D {
  // Global alignment [N, C, E] and local alignments [N, C, L, E], before their projections.
  const gloDiff = tf.square(tf.sub(tf.expandDims(img.glo, 1), tf.expandDims(cap.glo, 0)));
  const context = scanAttention(img.emb, cap.emb);
  const locDiff = tf.square(tf.sub(context, tf.expandDims(cap.emb, 0)));
  return reasonAlignments(p, gloDiff, locDiff, cap.mask, ctx);
}

/**
 * Similarity of image b with caption b only, [B] (the official code has no such form: it scores
 * every image against every caption). Evaluation mode only. The SCAN attention is taken per pair;
 * the rest of EncoderSimilarity works per (image, caption) pair anyway, so it runs unchanged on
 * the B pairs laid out as one image's B captions. A /v1/score request costs B pairs this way, not
 * the B² of `similarity`'s matrix.
 */
export function pairedSimilarity(p: ParamStore, img: ImageSide, cap: CaptionSide): tf.Tensor1D {
  const [B] = img.emb.shape;
  let attn: tf.Tensor = tf.matMul(img.emb, cap.emb, false, true); // [B, R, L]
  attn = l2norm(tf.leakyRelu(attn, 0.1));
  attn = softmax(tf.mul(tf.transpose(attn, [0, 2, 1]), SCAN_SMOOTH)); // [B, L, R] over regions
  const context = l2norm(bmm(attn as tf.Tensor3D, img.emb)); // [B, L, E]
  const gloDiff = tf.expandDims(tf.square(tf.sub(img.glo, cap.glo)), 0); // [1, B, E]
  const locDiff = tf.expandDims(tf.square(tf.sub(context, cap.emb)), 0); // [1, B, L, E]
  return reasonAlignments(p, gloDiff, locDiff, cap.mask, EVAL).reshape([B]) as tf.Tensor1D;
}

/**
 * The rest of EncoderSimilarity from the squared differences of the global [N, C, E] and local
 * [N, C, L, E] alignments: their projections, then SGR or SAF, then the score [N, C].
 */
function reasonAlignments(p: ParamStore, gloDiff: tf.Tensor, locDiff: tf.Tensor, capMask: tf.Tensor2D, ctx: ForwardContext): tf.Tensor2D {
  const cfg = p.config;
  const [N, C, L] = locDiff.shape;
  const S = cfg.sim_dim;
  const pre = "sim_enc";
  const simGlo = l2norm(linear(gloDiff, p.weight(`${pre}.sim_tranglo_w.weight`), p.get(`${pre}.sim_tranglo_w.bias`)));
  const simLoc = l2norm(linear(locDiff, p.weight(`${pre}.sim_tranloc_w.weight`), p.get(`${pre}.sim_tranloc_w.bias`)));
  // Nodes: the global alignment first, then one per word; [N, C, L+1, S].
  const nodes = tf.concat([tf.expandDims(simGlo, 2), simLoc], 2) as tf.Tensor4D;
  const nodeMask = tf.concat([tf.ones([C, 1]), capMask], 1) as tf.Tensor2D; // [C, L+1]

  let simVec: tf.Tensor;
  if (cfg.module_name === "SGR") {
    const K = L + 1;
    const keyMaskAdd = tf.tile(tf.mul(tf.sub(1, nodeMask), -1e9).reshape([1, C, 1, K]), [N, 1, 1, 1]).reshape([N * C, 1, K]);
    let h = nodes.reshape([N * C, K, S]) as tf.Tensor3D;
    for (let k = 0; k < cfg.sgr_step; k++) h = graphStep(p, k, h, keyMaskAdd, k === cfg.sgr_step - 1);
    simVec = h.reshape([N * C, S]);
  } else {
    simVec = attentionFiltration(p, nodes, nodeMask, ctx).reshape([N * C, S]);
  }
  const score = sigmoid(linear(simVec, p.weight(`${pre}.sim_eval_w.weight`), p.get(`${pre}.sim_eval_w.bias`)));
  return score.reshape([N, C]);
}

// ---------------------------------------------------------------------------------------------
// Projection head (pseudo-classification)

/** Projection_Head: Linear(36·E, 256), ReLU, Linear(256, proj_dim). x [B, 36, E] -> logits [B, proj_dim]. */
export function projectionHead(p: ParamStore, x: tf.Tensor3D): tf.Tensor2D {
  const [B, R, E] = x.shape;
  if (R !== REGIONS) throw new Error(`projection head expects ${REGIONS} positions, got ${R}`);
  const h = tf.relu(linear(x.reshape([B, R * E]), p.get("img_pro_head.first_hidden_layer.fc.weight"), p.get("img_pro_head.first_hidden_layer.fc.bias")));
  return linear(h, p.get("img_pro_head.output_layer.weight"), p.get("img_pro_head.output_layer.bias")) as tf.Tensor2D;
}

export type { SgrafConfig };
