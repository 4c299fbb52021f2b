/**
 * How well a cheap first stage, computed from what SGRAF already pools, keeps the full model's best
 * answers (issue 13, item 1): for every query, the share of the full two-net model's top-1 / top-5 /
 * top-10 found in the first stage's top-k′. Candidates (each averaged over the nets):
 *   - cosine: cosine of the pooled image vector (VisualSA) and the pooled caption vector (TextSA);
 *   - tranglo: minus the squared difference of the pooled vectors weighted per dimension by the
 *     squared column norms of `sim_tranglo_w` (how much each dimension feeds SGRAF's global alignment).
 * On the committed quick model (a full default PC2 run) with the embedded test split (100 images,
 * 500 captions) and train split (400 images, 2,000 captions) as galleries.
 *
 * Then the first stage as built (shared/model/stage-one.ts: tranglo on int8 vectors) in what a
 * user sees: the official recall of exhaustive and two-stage scoring, as /v1/eval reports it
 * (Pc2Engine.evaluate with a shortlist; k′ counts images for text→image, captions for image→text).
 *   bun benchmarks/shortlist.ts
 */
import { resolve } from "node:path";
import { evaluateRecall, formatRecall, rsum } from "../shared/eval/metrics";
import type { EncodedCaptions, EncodedImages } from "../shared/model/inference";
import { galleryStageOne } from "../shared/model/package";
import { dequantize, netTrangloScales, stageOneIndex, stageOneScores } from "../shared/model/stage-one";
import { twoStageScores } from "../shared/retrieval/shortlist";
import type { ParamStore } from "../shared/model/params";
import { initBackend } from "../trainer/backend";
import { loadSplit, loadVocabulary } from "../trainer/data/datasets";
import { ensureSynthetic } from "../trainer/data/synthetic";
import { encodeSplit, ensembleSims } from "../trainer/evaluate";
import { readModelDir } from "../trainer/models";
import { QUICK_MODEL_DIR } from "../trainer/quick-eval";

await initBackend("wasm");
const pkg = await readModelDir(QUICK_MODEL_DIR);
const ds = ensureSynthetic(resolve(import.meta.dir, "../.cache"), { imgDim: pkg.config.img_dim });
const { vocab, vocabSize } = loadVocabulary({ vocabPath: ds.vocabPath, dataName: ds.dataName });

type StageOne = (p: ParamStore, imgs: EncodedImages, caps: EncodedCaptions) => Promise<Float32Array>;

const cosine: StageOne = async (_p, imgs, caps) => {
  const E = imgs.embed;
  const norm = (v: Float32Array, n: number) => Float32Array.from({ length: n }, (_, i) => Math.hypot(...v.subarray(i * E, (i + 1) * E)));
  const ni = norm(imgs.glo, imgs.count);
  const nc = norm(caps.glo, caps.count);
  const out = new Float32Array(imgs.count * caps.count);
  for (let i = 0; i < imgs.count; i++)
    for (let c = 0; c < caps.count; c++) {
      let d = 0;
      for (let e = 0; e < E; e++) d += imgs.glo[i * E + e] * caps.glo[c * E + e];
      out[i * caps.count + c] = d / (ni[i] * nc[c] + 1e-12);
    }
  return out;
};

const tranglo: StageOne = async (p, imgs, caps) => {
  const E = imgs.embed;
  const W = (await p.get("sim_enc.sim_tranglo_w.weight").data()) as Float32Array; // [S, E]
  const S = W.length / E;
  const w = Float32Array.from({ length: E }, (_, e) => {
    let s = 0;
    for (let k = 0; k < S; k++) s += W[k * E + e] ** 2;
    return s;
  });
  const out = new Float32Array(imgs.count * caps.count);
  for (let i = 0; i < imgs.count; i++)
    for (let c = 0; c < caps.count; c++) {
      let d = 0;
      for (let e = 0; e < E; e++) d += w[e] * (imgs.glo[i * E + e] - caps.glo[c * E + e]) ** 2;
      out[i * caps.count + c] = -d;
    }
  return out;
};

/** Indices of the k largest of values[at(0..n-1)]. */
function topIndices(n: number, at: (j: number) => number, k: number): number[] {
  return Array.from({ length: n }, (_, j) => j)
    .sort((a, b) => at(b) - at(a))
    .slice(0, k);
}

for (const split of ["test", "train"] as const) {
  const data = loadSplit({ dataPath: ds.dataPath, dataName: ds.dataName, split, vocab, vocabSize, imgDim: pkg.config.img_dim });
  const enc = [];
  for (const p of pkg.nets) enc.push(await encodeSplit(p, data, { batchSize: 128 }));
  const nI = enc[0].nImages;
  const nC = data.length;
  const images = Int32Array.from({ length: nI }, (_, i) => i);
  const full = await ensembleSims(enc, pkg.nets, {}, images);
  console.log(`\n${split} split as gallery: ${nI} images, ${nC} captions`);
  for (const [name, stage] of [
    ["cosine", cosine],
    ["tranglo", tranglo],
  ] as const) {
    const one = new Float32Array(nI * nC);
    for (let k = 0; k < pkg.nets.length; k++) {
      const s = await stage(pkg.nets[k], { ...enc[k].images, count: nI }, enc[k].captions);
      for (let i = 0; i < s.length; i++) one[i] += s[i] / pkg.nets.length;
    }
    for (const kPrime of [10, 32, 64, 128].filter((k) => k < nI)) {
      const found = { t2i: [0, 0, 0], i2t: [0, 0, 0] };
      for (let c = 0; c < nC; c++) {
        const shortlist = new Set(topIndices(nI, (i) => one[i * nC + c], kPrime));
        const best = topIndices(nI, (i) => full[i * nC + c], 10);
        [1, 5, 10].forEach((t, j) => (found.t2i[j] += best.slice(0, t).filter((i) => shortlist.has(i)).length / t));
      }
      for (let i = 0; i < nI; i++) {
        const shortlist = new Set(topIndices(nC, (c) => one[i * nC + c], kPrime * data.perCaptions));
        const best = topIndices(nC, (c) => full[i * nC + c], 10);
        [1, 5, 10].forEach((t, j) => (found.i2t[j] += best.slice(0, t).filter((c) => shortlist.has(c)).length / t));
      }
      const pct = (x: number, n: number) => `${((100 * x) / n).toFixed(1)}%`;
      console.log(
        `  ${name.padEnd(7)} k′=${String(kPrime).padStart(3)}: text→image top-1/5/10 kept ${found.t2i.map((x) => pct(x, nC)).join(" / ")}; image→text (k′×${data.perCaptions} captions) ${found.i2t.map((x) => pct(x, nI)).join(" / ")}`,
      );
    }
  }

  // The first stage as built, and the recall a user sees (Pc2Engine.twoStageRecall's computation).
  const scales = await Promise.all(pkg.nets.map(netTrangloScales));
  const built = galleryStageOne({ images: enc.map((e) => ({ ...e.images, count: nI })), captions: enc.map((e) => e.captions) }, scales);
  const first = stageOneScores(built.images.map(dequantize), nI, stageOneIndex(built.captions));
  const exhaustive = evaluateRecall(full, nI, data.perCaptions);
  console.log(`  recall (R@1, R@5, R@10, medr, meanr): exhaustive i2t ${formatRecall(exhaustive.i2t)}; t2i ${formatRecall(exhaustive.t2i)}; rsum ${exhaustive.rsum.toFixed(1)}`);
  for (const kPrime of [32, 64, 128, 256]) {
    const t = evaluateRecall(twoStageScores(full, first, nI, nC, kPrime, "t2i"), nI, data.perCaptions).t2i;
    const i = evaluateRecall(twoStageScores(full, first, nI, nC, kPrime, "i2t"), nI, data.perCaptions).i2t;
    console.log(`  two-stage k′=${String(kPrime).padStart(3)}: i2t ${formatRecall(i)}; t2i ${formatRecall(t)}; rsum ${rsum(i, t).toFixed(1)}`);
  }
}
