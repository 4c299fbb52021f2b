/**
 * Evaluation of one or two networks on a split: the official `validate` (during training) and
 * `evalrank` (test, MS-COCO five folds): encode every image once and every caption once, score
 * all pairs by shards, average the similarity matrices of the nets, then i2t / t2i.
 */
import * as v from "valibot";
import { type SimilaritySpread, SimilaritySpreadSchema, similaritySpread } from "../shared/eval/diagnostics";
import { type RecallReport, RecallReportSchema, evaluateRecall, foldMeans, formatRecall } from "../shared/eval/metrics";
import { type EncodedCaptions, type EncodedImages, type ShardOptions, type EnsembleOptions, concatCaptions, concatImages, encodeCaptionsAsync, encodeImagesAsync, ensembleSimilarityAsync, sliceCaptions, selectImages } from "../shared/model/inference";
import type { ParamStore } from "../shared/model/params";
import type { CaptionSplit } from "./data/datasets";
import { type Block, EvalPool, rowRanges } from "./eval-pool";

export interface EncodedSplit {
  images: EncodedImages;
  captions: EncodedCaptions;
  /** Images used: captions / imDiv (after the dev cap). */
  nImages: number;
  perCaptions: number;
}

export interface EvalOptions extends Partial<ShardOptions> {
  batchSize: number;
  onProgress?: (done: number, total: number) => void;
  /**
   * Awaited after every encoded batch and every similarity shard: the trainer yields to the event
   * loop there (so that SIGINT is heard within one shard) and throws to stop.
   */
  pause?: () => Promise<void>;
  /** Workers to compute on (trainer/eval-pool.ts); without one, or for an in-memory split, this thread. */
  pool?: EvalPool | null;
}

/** What encoding a split reads: its captions, features and caption-per-image layout. */
export type EvalSplit = Pick<CaptionSplit, "length" | "imDiv" | "images" | "captions" | "perCaptions">;

/** Encodes the images (once each) and the captions of a split with one net (the official encode_data). */
export async function encodeSplit(p: ParamStore, split: EvalSplit, o: EvalOptions): Promise<EncodedSplit> {
  const nImages = Math.floor(split.length / split.imDiv);
  const imgParts: EncodedImages[] = [];
  const total = nImages + split.length;
  for (let i0 = 0; i0 < nImages; i0 += o.batchSize) {
    const idx = Int32Array.from({ length: Math.min(o.batchSize, nImages - i0) }, (_, k) => i0 + k);
    imgParts.push(await encodeImagesAsync(p, split.images.gather(idx), idx.length));
    o.onProgress?.(i0 + idx.length, total);
    await o.pause?.();
  }
  const capParts: EncodedCaptions[] = [];
  for (let c0 = 0; c0 < split.length; c0 += o.batchSize) {
    const caps = split.captions.slice(c0, Math.min(split.length, c0 + o.batchSize));
    const { tokens, lengths } = padCaptions(caps);
    capParts.push(await encodeCaptionsAsync(p, tokens, lengths));
    o.onProgress?.(nImages + c0 + caps.length, total);
    await o.pause?.();
  }
  return { images: concatImages(imgParts), captions: concatCaptions(capParts), nImages, perCaptions: split.perCaptions };
}

/** Zero-padded token ids [n, maxLen] and lengths (data.py's collate_fn). */
export function padCaptions(caps: readonly Int32Array[]): { tokens: Int32Array; lengths: Int32Array } {
  const lengths = Int32Array.from(caps, (c) => c.length);
  const T = lengths.reduce((a, b) => Math.max(a, b), 1);
  const tokens = new Int32Array(caps.length * T);
  caps.forEach((c, i) => tokens.set(c, i * T));
  return { tokens, lengths };
}

/** Similarities [nImages, nCaptions] of a split's encodings, optionally of some images and a caption range, averaged over the nets. */
export function ensembleSims(
  encoded: EncodedSplit[],
  nets: ParamStore[],
  o: EnsembleOptions = {},
  images?: ArrayLike<number>,
  captions?: [number, number],
): Promise<Float32Array> {
  return ensembleSimilarityAsync(
    nets,
    (k) => (images ? selectImages(encoded[k].images, images) : encoded[k].images),
    (k) => (captions ? sliceCaptions(encoded[k].captions, captions[0], captions[1]) : encoded[k].captions),
    o,
  );
}

export const SplitEvaluationSchema = v.object({
  ...RecallReportSchema.entries,
  images: v.number(),
  captions: v.number(),
  /** MS-COCO five-fold results when requested (the report's i2t/t2i/rsum are then the fold means). */
  folds: v.optional(v.array(RecallReportSchema)),
  /** How spread each net's own similarities are, in net order (the whole split; not with fold5). */
  spreads: v.optional(v.array(SimilaritySpreadSchema)),
});
export type SplitEvaluation = v.InferOutput<typeof SplitEvaluationSchema>;

/** Recall of one or two nets on a split; `fold5` evaluates five 1K-image folds as evalrank(fold5=True). */
export async function evaluateSplit(nets: ParamStore[], split: CaptionSplit, o: EvalOptions & { fold5?: boolean }): Promise<SplitEvaluation> {
  if (o.pool && o.pool.size > 1 && EvalPool.canServe(split)) return evaluateOnPool(o.pool, nets, split, o);
  const encoded: EncodedSplit[] = [];
  for (const p of nets) encoded.push(await encodeSplit(p, split, o));
  const { nImages, perCaptions } = encoded[0];
  if (o.fold5) {
    const per = 1000;
    if (nImages < 5 * per) throw new Error(`--fold5 needs 5000 images in ${split.files.images}, found ${nImages}`);
    const perFold: RecallReport[] = [];
    for (let f = 0; f < 5; f++) {
      const imgs = Int32Array.from({ length: per }, (_, i) => f * per + i);
      perFold.push(evaluateRecall(await ensembleSims(encoded, nets, o, imgs, [f * per * perCaptions, (f + 1) * per * perCaptions]), per, perCaptions));
    }
    const report = foldMeans(perFold);
    return { i2t: report.i2t, t2i: report.t2i, rsum: report.rsum, folds: report.perFold, images: nImages, captions: split.length };
  }
  const spreads: SimilaritySpread[] = [];
  const sims = await ensembleSims(encoded, nets, { ...o, onNet: (k, s) => (spreads[k] = { ...similaritySpread(s, nImages, perCaptions), rsum: evaluateRecall(s, nImages, perCaptions).rsum }) });
  return { ...evaluateRecall(sims, nImages, perCaptions), images: nImages, captions: split.length, spreads };
}

/** The official metric lines of evalrank. */
export function formatMetricLines(r: RecallReport): string[] {
  const f = (m: RecallReport["i2t"]) => formatRecall(m, " ");
  return [
    `rsum: ${r.rsum.toFixed(1)}`,
    `Average i2t Recall: ${((r.i2t.r1 + r.i2t.r5 + r.i2t.r10) / 3).toFixed(1)}`,
    `Image to text: ${f(r.i2t)}`,
    `Average t2i Recall: ${((r.t2i.r1 + r.t2i.r5 + r.t2i.r10) / 3).toFixed(1)}`,
    `Text to image: ${f(r.t2i)}`,
  ];
}

/**
 * evaluateSplit on the pool: each net's similarities by one worker or, with more workers than
 * nets, by image rows over several; then the same averaging and metrics as in this thread.
 */
async function evaluateOnPool(pool: EvalPool, nets: ParamStore[], split: CaptionSplit, o: EvalOptions & { fold5?: boolean }): Promise<SplitEvaluation> {
  await o.pause?.(); // the evaluation has begun: a stop asked now is answered before any work
  const nImages = Math.floor(split.length / split.imDiv);
  const perCaptions = split.perCaptions;
  const arrays = await Promise.all(nets.map((p) => p.toArrays()));
  const opts = { batchSize: o.batchSize, budgetBytes: o.budgetBytes };
  const average = (perNet: Float32Array[]): Float32Array => {
    // The order of ensembleSimilarity: the first net's matrix, each other added, then divided.
    const out = perNet[0];
    for (let k = 1; k < perNet.length; k++) for (let i = 0; i < out.length; i++) out[i] += perNet[k][i];
    if (perNet.length > 1) for (let i = 0; i < out.length; i++) out[i] /= perNet.length;
    return out;
  };
  if (o.fold5) {
    const per = 1000;
    if (nImages < 5 * per) throw new Error(`--fold5 needs 5000 images in ${split.files.images}, found ${nImages}`);
    const blocks: Block[] = Array.from({ length: 5 }, (_, f) => ({ images: [f * per, (f + 1) * per], captions: [f * per * perCaptions, (f + 1) * per * perCaptions] }));
    const perNet = await whilePausing(Promise.all(nets.map((p, k) => pool.sims(split, arrays[k], p.config, blocks, opts))), o.pause);
    const perFold = blocks.map((_, f) => evaluateRecall(average(perNet.map((b) => b[f])), per, perCaptions));
    const report = foldMeans(perFold);
    return { i2t: report.i2t, t2i: report.t2i, rsum: report.rsum, folds: report.perFold, images: nImages, captions: split.length };
  }
  const ranges = rowRanges(nImages, Math.max(1, Math.floor(pool.size / nets.length)));
  const perNet = await whilePausing(
    Promise.all(
      nets.map(async (p, k) => {
        const parts = await Promise.all(ranges.map((r) => pool.sims(split, arrays[k], p.config, [{ images: r, captions: [0, split.length] }], opts)));
        const sims = new Float32Array(nImages * split.length);
        ranges.forEach(([i0], j) => sims.set(parts[j][0], i0 * split.length));
        return sims;
      }),
    ),
    o.pause,
  );
  const spreads: SimilaritySpread[] = perNet.map((s) => ({ ...similaritySpread(s, nImages, perCaptions), rsum: evaluateRecall(s, nImages, perCaptions).rsum }));
  const sims = average(perNet);
  return { ...evaluateRecall(sims, nImages, perCaptions), images: nImages, captions: split.length, spreads };
}

/** Awaits `work`, calling `pause` every 50 ms meanwhile (it may throw to stop waiting). */
export async function whilePausing<T>(work: Promise<T>, pause?: () => Promise<void>): Promise<T> {
  if (!pause) return work;
  let settled = false;
  const done = work.finally(() => (settled = true));
  done.catch(() => {}); // observed below; a stop may leave it unawaited
  while (!settled) {
    await Promise.race([done, Bun.sleep(50)]);
    if (!settled) await pause();
  }
  return done;
}
