/**
 * trainer/stage-one-head.ts fits the distilled first stage to the committed quick model (a full
 * default PC2 run) on training images, and on training images it never saw the head keeps the
 * full model's ranking far better than the pooled vectors' tranglo: the reason it exists.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { resolve } from "node:path";
import { fileAssets } from "../../edge/adapters/bun";
import { evaluateRecall } from "../../shared/eval/metrics";
import { selectImages, sliceCaptions } from "../../shared/model/inference";
import { galleryStageOne, type ModelPackage } from "../../shared/model/package";
import { dequantize, distilledStage, type FirstStage, netTrangloScales, stageOneIndex, stageOneScores, trangloStage } from "../../shared/model/stage-one";
import { ParamStore } from "../../shared/model/params";
import * as tf from "../../shared/model/tf";
import { loadPackage } from "../../shared/retrieval/pc2-engine";
import { twoStageScores } from "../../shared/retrieval/shortlist";
import { initBackend } from "../../trainer/backend";
import { type CaptionSplit, loadSplit, loadVocabulary } from "../../trainer/data/datasets";
import { ensureSynthetic } from "../../trainer/data/synthetic";
import { type EncodedSplit, encodeSplit, ensembleSims } from "../../trainer/evaluate";
import { QUICK_MODEL_DIR } from "../../trainer/quick-eval";
import { fitStageOneHead, type HeadFit } from "../../trainer/stage-one-head";
import type { StageOneHead } from "../../shared/model/stage-one";
import { REPO_ROOT } from "../support";

const FIT_IMAGES = 150;
let pkg: ModelPackage;
let train: CaptionSplit;
let fitted: { head: StageOneHead | null; fit: HeadFit };

/** The first FIT_IMAGES training images and their captions: what the head may see. */
const fitPart = () => ({ captions: train.captions, images: train.images, imDiv: train.imDiv, length: FIT_IMAGES * train.imDiv });

beforeAll(async () => {
  await initBackend("wasm");
  pkg = await loadPackage(fileAssets(QUICK_MODEL_DIR), QUICK_MODEL_DIR);
  const ds = ensureSynthetic(resolve(REPO_ROOT, ".cache"), { imgDim: pkg.config.img_dim });
  const { vocab, vocabSize } = loadVocabulary({ vocabPath: ds.vocabPath, dataName: ds.dataName });
  train = loadSplit({ dataPath: ds.dataPath, dataName: ds.dataName, split: "train", vocab, vocabSize, imgDim: pkg.config.img_dim });
  fitted = await fitStageOneHead(pkg.nets, fitPart(), { images: FIT_IMAGES });
}, 120_000);

describe("fitStageOneHead", () => {
  test("lowers every net's held-out loss and keeps the head of the best check", () => {
    expect(fitted.fit.images).toBe(FIT_IMAGES);
    expect(fitted.fit.heldOutImages).toBe(15);
    expect(fitted.head!.dim).toBe(pkg.config.embed_size);
    for (const r of fitted.fit.nets) {
      expect(r.learned).toBe(true);
      expect(r.heldOutLoss).toBeLessThan(r.initialHeldOutLoss);
      expect(r.bestStep).toBeGreaterThan(0);
      expect(r.bestStep).toBeLessThanOrEqual(r.steps);
    }
  });

  test("is deterministic: the same nets, data and seed give the same head; it leaves no tensor behind", async () => {
    const before = tf.memory().numTensors;
    const a = await fitStageOneHead(pkg.nets, fitPart(), { images: 40, steps: 50 });
    expect(tf.memory().numTensors).toBe(before);
    const b = await fitStageOneHead(pkg.nets, fitPart(), { images: 40, steps: 50 });
    expect(Array.from(a.head!.nets[1].captions)).toEqual(Array.from(b.head!.nets[1].captions));
    const c = await fitStageOneHead(pkg.nets, fitPart(), { images: 40, steps: 50, seed: 1 });
    expect(Array.from(c.head!.nets[1].captions)).not.toEqual(Array.from(a.head!.nets[1].captions));
  }, 60_000);

  test("a net whose scores are constant (a collapsed net) cannot be learned: its projection is zero; with no other net there is no head", async () => {
    const arrays = new Map(pkg.nets[1].specs.map((s) => [s.name, { dtype: "float32" as const, shape: s.shape, data: Float32Array.from(pkg.nets[1].get(s.name).dataSync()) }]));
    arrays.get("sim_enc.sim_eval_w.weight")!.data.fill(0); // every score sigmoid(bias)
    const flat = ParamStore.fromArrays(pkg.config, arrays, "constant net", "", true);
    try {
      const both = await fitStageOneHead([pkg.nets[1], flat], fitPart(), { images: FIT_IMAGES });
      expect(both.fit.nets.map((r) => r.learned)).toEqual([true, false]);
      expect(both.head!.nets[1].images.every((x) => x === 0) && both.head!.nets[1].captions.every((x) => x === 0)).toBe(true);
      expect(both.head!.nets[0].images.some((x) => x !== 0)).toBe(true);
      const alone = await fitStageOneHead([flat], fitPart(), { images: 60 });
      expect(alone.head).toBeNull();
    } finally {
      flat.dispose();
    }
  }, 60_000);

  test("one caption per image (CC152K and NoW files): the fit works the same way", async () => {
    // The first caption of each of the first FIT_IMAGES training images, as a file of one caption per image would hold.
    const captions = Array.from({ length: FIT_IMAGES }, (_, i) => train.captions[i * train.imDiv]);
    const r = await fitStageOneHead([pkg.nets[1]], { captions, images: train.images, imDiv: 1, length: FIT_IMAGES }, { images: FIT_IMAGES });
    expect([r.fit.images, r.fit.captions, r.fit.heldOutImages]).toEqual([FIT_IMAGES, FIT_IMAGES, 15]);
    expect(r.fit.nets[0].learned).toBe(true);
    expect(r.head!.nets[0].images.length).toBe(2 * pkg.config.embed_size * r.head!.dim);
  }, 60_000);

  test("stops at the pause that throws (Ctrl-C) and leaves no tensor behind", async () => {
    const before = tf.memory().numTensors;
    let pauses = 0;
    const pause = async () => {
      if (++pauses === 6) throw new Error("stop requested");
    };
    await expect(fitStageOneHead(pkg.nets, fitPart(), { images: 40, pause })).rejects.toThrow("stop requested");
    expect(tf.memory().numTensors).toBe(before);
  });

  test("on 100 training images it never saw, it keeps the full model's ranking where tranglo does not", async () => {
    const from = 200;
    const nI = 100;
    const per = train.perCaptions;
    const enc: EncodedSplit[] = [];
    for (const p of pkg.nets) {
      const e = await encodeSplit(p, train, { batchSize: 128 });
      const idx = Int32Array.from({ length: nI }, (_, i) => from + i);
      enc.push({ images: selectImages(e.images, idx), captions: sliceCaptions(e.captions, from * per, (from + nI) * per), nImages: nI, perCaptions: per });
    }
    const full = await ensembleSims(enc, pkg.nets);
    const nC = nI * per;
    const exhaustive = evaluateRecall(full, nI, per).t2i.r10;
    const twoStageR10 = (stage: FirstStage, k: number) => {
      const g = galleryStageOne({ images: enc.map((e) => e.images), captions: enc.map((e) => e.captions) }, stage);
      const first = stageOneScores(g.images.map(dequantize), nI, stageOneIndex(g.captions, stage.metric));
      return evaluateRecall(twoStageScores(full, first, nI, nC, k, "t2i"), nI, per).t2i.r10;
    };
    const tranglo = trangloStage(await Promise.all(pkg.nets.map(netTrangloScales)));
    const distilled = distilledStage(fitted.head!);
    const [t, d] = [twoStageR10(tranglo, 32), twoStageR10(distilled, 32)];
    console.log(`held-out 100 images, text→image R@10: exhaustive ${exhaustive.toFixed(1)}, two-stage k′=32 tranglo ${t.toFixed(1)}, distilled ${d.toFixed(1)}`);
    expect(d).toBeGreaterThan(t + 20);
    expect(d).toBeGreaterThan(exhaustive - 5);
  }, 60_000);
});
