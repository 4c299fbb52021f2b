/**
 * Pc2Engine on the committed quick model: text becomes `<start>` words `<end>` through the model's
 * vocabulary, and text that names nothing the model knows is the caller's mistake; two-stage
 * searches shortlist by the first stage and re-rank by the full model, and the evaluation reports
 * the recall that costs.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { resolve } from "node:path";
import { encodeCaptions, selectImages, sliceCaptions } from "../../../shared/model/inference";
import type { Gallery, ModelPackage } from "../../../shared/model/package";
import { dequantize, quantizeVectors, TRANGLO_WEIGHT, trangloScales, weighted } from "../../../shared/model/stage-one";
import { EngineInputError } from "../../../shared/retrieval/engine";
import { Pc2Engine } from "../../../shared/retrieval/pc2-engine";
import { initBackend } from "../../../trainer/backend";
import { readModelDir } from "../../../trainer/models";
import { QUICK_MODEL_DIR } from "../../../trainer/quick-eval";
import { loadSplit, loadVocabulary } from "../../../trainer/data/datasets";
import { ensureSynthetic } from "../../../trainer/data/synthetic";
import { buildGallery } from "../../../trainer/export";
import { REPO_ROOT } from "../../support";

let pkg: ModelPackage;
let engine: Pc2Engine;

beforeAll(async () => {
  await initBackend("wasm");
  pkg = await readModelDir(QUICK_MODEL_DIR);
  engine = new Pc2Engine(pkg);
});

async function refusal(text: string): Promise<string> {
  try {
    await engine.tokens({ text });
  } catch (e) {
    expect(e).toBeInstanceOf(EngineInputError);
    return (e as Error).message;
  }
  return "accepted";
}

describe("Pc2Engine.tokens", () => {
  test("known words map through the vocabulary between <start> and <end>", async () => {
    const v = pkg.vocab!;
    const [w1, w2] = [v.idx2word["4"], v.idx2word["5"]];
    const ids = Array.from(await engine.tokens({ text: `${w1} ${w2} zzqqxx` }));
    expect(ids).toEqual([v.word2idx["<start>"], 4, 5, v.word2idx["<unk>"], v.word2idx["<end>"]]);
  });

  test("text of unknown words only is a 400-class error naming the cause", async () => {
    for (const text of ["\u200b", "-", "\u0000", "\u0301", "zzqqxx qqzzyy"]) {
      expect([text, await refusal(text)]).toEqual([text, expect.stringMatching(/^text: (no word of the query is in the model's vocabulary|tokenizes to no words)/)]);
    }
  });

  test("ids sent as tokens pass as they are (the app checks them against vocabSize and maxTokens)", async () => {
    expect(Array.from(await engine.tokens({ tokens: [1, 3, 2] }))).toEqual([1, 3, 2]);
  });
});

/**
 * Two-stage search on the quick model with the first 24 images of the embedded test split (120
 * captions) as gallery, its first-stage vectors computed at load (a gallery built in memory has
 * none; an exported one carries them: test/shared/model/package.test.ts).
 */
describe("two-stage search", () => {
  const IMAGES = 24;
  let small: Pc2Engine;
  let gallery: Gallery;
  /** Every net's √w, read directly from the weights. */
  let scales: Float32Array[];

  beforeAll(async () => {
    const ds = ensureSynthetic(resolve(REPO_ROOT, ".cache"), { imgDim: pkg.config.img_dim });
    const { vocab, vocabSize } = loadVocabulary({ vocabPath: ds.vocabPath, dataName: ds.dataName });
    const split = loadSplit({ dataPath: ds.dataPath, dataName: ds.dataName, split: "test", vocab, vocabSize, imgDim: pkg.config.img_dim });
    const full = await buildGallery(pkg.nets, split, vocab.toJSON());
    const first = Int32Array.from({ length: IMAGES }, (_, i) => i);
    const nC = IMAGES * full.perCaptions;
    gallery = {
      ...full,
      images: full.images.map((im) => selectImages(im, first)),
      captions: full.captions.map((c) => sliceCaptions(c, 0, nC)),
      texts: full.texts.slice(0, nC),
      tokens: full.tokens.slice(0, nC),
    };
    small = new Pc2Engine({ ...pkg, gallery });
    scales = pkg.nets.map((p) => trangloScales(p.get(TRANGLO_WEIGHT).dataSync() as Float32Array, pkg.config.embed_size));
  }, 60_000);

  /** Indices of the k′ best first-stage scores of a query's pooled vectors (one per net), written out directly. */
  function stageOneBest(glo: Float32Array[], side: "images" | "captions", k: number): { best: Set<number>; score: Float32Array; kth: number } {
    const items = gallery[side];
    const score = new Float32Array(items[0].count);
    items.forEach((enc, n) => {
      const v = quantizeVectors(weighted(enc.glo, enc.count, scales[n]), enc.count, enc.embed);
      const u = dequantize(v);
      const E = v.dim;
      for (let i = 0; i < enc.count; i++) for (let e = 0; e < E; e++) score[i] -= (glo[n][e] * scales[n][e] - u[i * E + e]) ** 2;
    });
    const order = Array.from(score.keys()).sort((a, b) => score[b] - score[a]);
    return { best: new Set(order.slice(0, k)), score, kth: score[order[k - 1]] };
  }

  test("with k′ = k the hits are the first stage's top k′, re-ranked by the full model's scores", async () => {
    const tokens = gallery.tokens[17];
    const glo = pkg.nets.map((p) => encodeCaptions(p, Int32Array.from(tokens), Int32Array.from([tokens.length])).glo);
    const all = await small.searchImages({ tokens }, IMAGES, { shortlist: "all" });
    const exhaustive = new Map(all.hits.map((h) => [h.index, h.score]));
    for (const k of [5, 12]) {
      const two = await small.searchImages({ tokens }, k, { shortlist: k });
      expect(two.shortlist).toEqual({ used: k, stage: "tranglo", scored: k });
      const { best, score, kth } = stageOneBest(glo, "images", k);
      // The same set, but for items whose first-stage score ties the k′-th within the arithmetic's error.
      for (const h of two.hits) expect(best.has(h.index) || Math.abs(score[h.index] - kth) < 1e-4).toBe(true);
      // Full-model scores, best first, as the exhaustive search scores those images.
      for (const h of two.hits) expect(Math.abs(h.score - exhaustive.get(h.index)!)).toBeLessThan(1e-5);
      expect(two.hits.map((h) => h.score)).toEqual([...two.hits.map((h) => h.score)].sort((a, b) => b - a));
    }
  });

  test("image→text shortlists captions the same way", async () => {
    const image = 9;
    const glo = gallery.images.map((im) => im.glo.slice(image * im.embed, (image + 1) * im.embed));
    const two = await small.searchCaptions({ image }, 16, { shortlist: 16 });
    const { best, score, kth } = stageOneBest(glo, "captions", 16);
    for (const h of two.hits) expect(best.has(h.index) || Math.abs(score[h.index] - kth) < 1e-4).toBe(true);
    const exhaustive = new Map((await small.searchCaptions({ image }, 5 * IMAGES, { shortlist: 0 })).hits.map((h) => [h.index, h]));
    for (const h of two.hits) {
      expect(Math.abs(h.score - exhaustive.get(h.index)!.score)).toBeLessThan(1e-5);
      expect([h.caption, h.image]).toEqual([exhaustive.get(h.index)!.caption, Math.floor(h.index / 5)]);
    }
  });

  test("a shortlist of at least the gallery is the exhaustive search", async () => {
    const q = { tokens: gallery.tokens[3] };
    const exhaustive = await small.searchImages(q, 10, { shortlist: "all" });
    expect(exhaustive.shortlist).toEqual({ used: "all", stage: null, scored: IMAGES });
    for (const shortlist of [0, IMAGES, 1000]) expect(await small.searchImages(q, 10, { shortlist })).toEqual(exhaustive);
    expect(await small.searchCaptions({ image: 2 }, 10, { shortlist: 5 * IMAGES })).toEqual(await small.searchCaptions({ image: 2 }, 10));
    // Just under the gallery: the two-stage path, ranking as the exhaustive search does less the one image left out.
    const under = await small.searchImages(q, IMAGES, { shortlist: IMAGES - 1 });
    expect(under.shortlist.used).toBe(IMAGES - 1);
    const kept = new Set(under.hits.map((h) => h.index));
    expect(kept.size).toBe(IMAGES - 1);
    const ranked = (await small.searchImages(q, IMAGES, { shortlist: "all" })).hits.filter((h) => kept.has(h.index));
    expect(under.hits.map((h) => h.index)).toEqual(ranked.map((h) => h.index));
  });

  test("the evaluation reports the exhaustive and the two-stage recall; R@1 as the searches find it", async () => {
    const k = 8;
    const r = await small.evaluate({ shortlist: k });
    expect(r).toMatchObject({ images: IMAGES, captions: 5 * IMAGES, twoStage: { shortlist: k, stage: "tranglo" } });
    expect(await small.evaluate()).toEqual({ i2t: r.i2t, t2i: r.t2i, rsum: r.rsum, images: IMAGES, captions: 5 * IMAGES });
    // Two-stage R@1 counted from real two-stage searches.
    let i2tHits = 0;
    for (let i = 0; i < IMAGES; i++) i2tHits += (await small.searchCaptions({ image: i }, 1, { shortlist: k })).hits[0].image === i ? 1 : 0;
    expect(r.twoStage!.i2t.r1).toBeCloseTo((100 * i2tHits) / IMAGES, 6);
    let t2iHits = 0;
    for (let c = 0; c < 5 * IMAGES; c++) t2iHits += (await small.searchImages({ tokens: gallery.tokens[c] }, 1, { shortlist: k })).hits[0].index === Math.floor(c / 5) ? 1 : 0;
    expect(r.twoStage!.t2i.r1).toBeCloseTo((100 * t2iHits) / (5 * IMAGES), 6);
    // A shortlist of the whole gallery costs nothing.
    const whole = await small.evaluate({ shortlist: 5 * IMAGES });
    expect(whole.twoStage).toMatchObject({ i2t: r.i2t, t2i: r.t2i, rsum: r.rsum });
    console.log(`${IMAGES} images: rsum exhaustive ${r.rsum.toFixed(1)}, two-stage k′=${k} ${r.twoStage!.rsum.toFixed(1)}`);
  }, 60_000);
});
