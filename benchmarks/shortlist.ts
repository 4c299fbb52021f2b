/**
 * How well a first stage keeps the full model's ranking (issue 13): the recall of two-stage
 * scoring (the numbers `/v1/eval {"shortlist": k′}` reports as `twoStage`) against exhaustive
 * scoring, and the share of the full two-net model's top-1 / top-5 / top-10 that the first stage
 * keeps in its top-k′, for the two first stages (shared/model/stage-one.ts):
 *   - tranglo: the pooled vectors' squared difference weighted by sim_tranglo_w (no fitting);
 *   - distilled: the head trainer/stage-one-head.ts fits to the nets' own scores, as an export does.
 * The head is fitted on the first half of the training images only; the galleries are the test
 * split and the second half of the training images (held out from the fit).
 *
 *   bun benchmarks/shortlist.ts [--model <model dir>] [--fit-images 200] [--k 16,32,64,128,256]
 * The model defaults to the committed quick model (data: the embedded synthetic dataset); an
 * exported model of a training run reads its data flags from its run configuration.
 */
import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { evaluateRecall, formatRecall, rsum } from "../shared/eval/metrics";
import { selectImages, sliceCaptions } from "../shared/model/inference";
import { galleryStageOne } from "../shared/model/package";
import { dequantize, distilledStage, type FirstStage, netTrangloScales, stageOneIndex, stageOneScores, trangloStage } from "../shared/model/stage-one";
import { twoStageScores } from "../shared/retrieval/shortlist";
import { initBackend } from "../trainer/backend";
import { type CaptionSplit, loadSplit, loadVocabulary } from "../trainer/data/datasets";
import { ensureSynthetic } from "../trainer/data/synthetic";
import { type EncodedSplit, encodeSplit, ensembleSims } from "../trainer/evaluate";
import { readModelDir } from "../trainer/models";
import { QUICK_MODEL_DIR } from "../trainer/quick-eval";
import { fitStageOneHead } from "../trainer/stage-one-head";

const { values: args } = parseArgs({ options: { model: { type: "string" }, "fit-images": { type: "string", default: "200" }, k: { type: "string", default: "16,32,64,128,256" } } });
await initBackend("wasm");
const modelDir = resolve(args.model ?? QUICK_MODEL_DIR);
const pkg = await readModelDir(modelDir);
const run = pkg.runConfig ?? {};
const ds = run.data_path
  ? { dataPath: String(run.data_path), dataName: String(run.data_name), vocabPath: String(run.vocab_path) }
  : ensureSynthetic(resolve(import.meta.dir, "../.cache"), { imgDim: pkg.config.img_dim });
const { vocab, vocabSize } = loadVocabulary({ vocabPath: ds.vocabPath, dataName: ds.dataName });
const load = (split: "train" | "test") => loadSplit({ dataPath: ds.dataPath, dataName: ds.dataName, split, vocab, vocabSize, imgDim: pkg.config.img_dim });
const kPrimes = args.k.split(",").map(Number);
console.log(`model ${modelDir} (nets ${pkg.netNames.join("+")}, embed ${pkg.config.embed_size}); data ${ds.dataPath}`);

// The head: fitted on the first `fit-images` training images (and their captions) only.
const train = load("train");
const fitImages = Math.min(Number(args["fit-images"]), Math.floor(train.length / train.imDiv / 2));
const firstPart: Pick<CaptionSplit, "captions" | "images" | "imDiv" | "length"> = { captions: train.captions, images: train.images, imDiv: train.imDiv, length: fitImages * train.imDiv };
const t0 = performance.now();
const { head, fit } = await fitStageOneHead(pkg.nets, firstPart, { images: fitImages });
console.log(`head fitted on ${fit.images} training images (${fit.captions} captions) in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${fit.nets.map((r, n) => `${pkg.netNames[n]} held-out loss ${r.initialHeldOutLoss.toFixed(3)} → ${r.heldOutLoss.toFixed(3)} (step ${r.bestStep} of ${r.steps}${r.learned ? "" : "; not learned, left out"})`).join("; ")}`);

const stages: FirstStage[] = [trangloStage(await Promise.all(pkg.nets.map(netTrangloScales))), ...(head ? [distilledStage(head)] : [])];
if (!head) console.log("no net's scores could be distilled: tranglo only");

/** A gallery: the encodings of its images and captions by every net, and the full model's similarity matrix. */
async function gallery(name: string, split: CaptionSplit, from = 0) {
  const enc: EncodedSplit[] = [];
  for (const p of pkg.nets) enc.push(await encodeSplit(p, split, { batchSize: 128 }));
  const nI = enc[0].nImages - from;
  const per = split.perCaptions;
  const idx = Int32Array.from({ length: nI }, (_, i) => from + i);
  const parts = enc.map((e) => ({ images: selectImages(e.images, idx), captions: sliceCaptions(e.captions, from * per, (from + nI) * per) }));
  const full = await ensembleSims(parts.map((p) => ({ ...p, nImages: nI, perCaptions: per })), pkg.nets);
  return { name, nI, nC: nI * per, per, parts, full };
}

/** Indices of the k largest of values[at(0..n-1)]. */
function topIndices(n: number, at: (j: number) => number, k: number): number[] {
  return Array.from({ length: n }, (_, j) => j)
    .sort((a, b) => at(b) - at(a))
    .slice(0, k);
}

const pct = (x: number, n: number) => `${((100 * x) / n).toFixed(1)}%`;
for (const g of [await gallery("test split", load("test")), await gallery("training images held out from the fit", train, fitImages)]) {
  console.log(`\n${g.name}: ${g.nI} images, ${g.nC} captions`);
  const exhaustive = evaluateRecall(g.full, g.nI, g.per);
  console.log(`  exhaustive: i2t ${formatRecall(exhaustive.i2t)}; t2i ${formatRecall(exhaustive.t2i)}; rsum ${exhaustive.rsum.toFixed(1)}  (R@1, R@5, R@10, medr, meanr)`);
  for (const stage of stages) {
    const built = galleryStageOne({ images: g.parts.map((p) => p.images), captions: g.parts.map((p) => p.captions) }, stage);
    const first = stageOneScores(built.images.map(dequantize), g.nI, stageOneIndex(built.captions, stage.metric)); // [nI, nC]
    for (const kPrime of kPrimes) {
      if (kPrime >= g.nI && kPrime >= g.nC) continue;
      const t = evaluateRecall(twoStageScores(g.full, first, g.nI, g.nC, kPrime, "t2i"), g.nI, g.per).t2i;
      const i = evaluateRecall(twoStageScores(g.full, first, g.nI, g.nC, kPrime, "i2t"), g.nI, g.per).i2t;
      const kept = [0, 0, 0];
      if (kPrime < g.nI) {
        for (let c = 0; c < g.nC; c++) {
          const shortlist = new Set(topIndices(g.nI, (im) => first[im * g.nC + c], kPrime));
          const best = topIndices(g.nI, (im) => g.full[im * g.nC + c], 10);
          [1, 5, 10].forEach((n, j) => (kept[j] += best.slice(0, n).filter((im) => shortlist.has(im)).length / n));
        }
      }
      const keptText = kPrime < g.nI ? `; text→image top-1/5/10 kept ${kept.map((x) => pct(x, g.nC)).join(" / ")}` : "";
      console.log(`  ${stage.name.padEnd(9)} k′=${String(kPrime).padStart(3)}: i2t ${formatRecall(i)}; t2i ${formatRecall(t)}; rsum ${rsum(i, t).toFixed(1)}${keptText}`);
    }
  }
}
