/**
 * trainer/export.ts writes the gallery's first-stage vectors: the committed quick model exported
 * with the embedded test split as gallery, read back from the directory as the edge reads it,
 * holds exactly the vectors computed from the split's float32 pooled vectors.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileAssets } from "../../edge/adapters/bun";
import type { VocabFile } from "../../shared/formats/vocab";
import { galleryStageOne, type ModelPackage } from "../../shared/model/package";
import { netTrangloScales, trangloStage } from "../../shared/model/stage-one";
import { loadPackage, Pc2Engine } from "../../shared/retrieval/pc2-engine";
import { initBackend } from "../../trainer/backend";
import { loadSplit, loadVocabulary } from "../../trainer/data/datasets";
import { ensureSynthetic } from "../../trainer/data/synthetic";
import { buildGallery, exportModel } from "../../trainer/export";
import { QUICK_MODEL_DIR } from "../../trainer/quick-eval";
import { REPO_ROOT } from "../support";

let dir = "";
let base: ModelPackage;
let exported: ModelPackage;
let split: ReturnType<typeof loadSplit>;
let vocabJson: VocabFile;

beforeAll(async () => {
  await initBackend("wasm");
  dir = await mkdtemp(join(tmpdir(), "pc2-export-"));
  base = await loadPackage(fileAssets(QUICK_MODEL_DIR), QUICK_MODEL_DIR);
  const ds = ensureSynthetic(resolve(REPO_ROOT, ".cache"), { imgDim: base.config.img_dim });
  const { vocab, vocabSize } = loadVocabulary({ vocabPath: ds.vocabPath, dataName: ds.dataName });
  vocabJson = vocab.toJSON();
  split = loadSplit({ dataPath: ds.dataPath, dataName: ds.dataName, split: "test", vocab, vocabSize, imgDim: base.config.img_dim });
  const out = join(dir, "model");
  await exportModel(out, { config: base.config, nets: base.nets, names: base.netNames, dtype: "uint8", vocab: vocabJson, gallery: split });
  exported = await loadPackage(fileAssets(out), out);
}, 120_000);

afterAll(async () => {
  for (const p of [...(base?.nets ?? []), ...(exported?.nets ?? [])]) p.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe("exportModel", () => {
  test("the gallery's first-stage vectors round-trip through the model directory", async () => {
    const stored = exported.gallery!.stageOne!;
    expect(stored).toBeDefined();
    const gallery = await buildGallery(base.nets, split, vocabJson);
    const want = galleryStageOne(gallery, trangloStage(await Promise.all(base.nets.map(netTrangloScales))));
    expect([stored.images[0].count, stored.captions[0].count, stored.images.length]).toEqual([100, 500, 2]);
    for (const side of ["images", "captions"] as const) {
      for (let n = 0; n < 2; n++) {
        expect(Array.from(stored[side][n].values)).toEqual(Array.from(want[side][n].values));
        expect(Array.from(stored[side][n].scales)).toEqual(Array.from(want[side][n].scales));
      }
    }
  }, 60_000);

  test("with a training split it fits the distilled first stage: the package records the fit, its engine shortlists by the head", async () => {
    const ds = ensureSynthetic(resolve(REPO_ROOT, ".cache"), { imgDim: base.config.img_dim });
    const { vocab, vocabSize } = loadVocabulary({ vocabPath: ds.vocabPath, dataName: ds.dataName });
    const train = loadSplit({ dataPath: ds.dataPath, dataName: ds.dataName, split: "train", vocab, vocabSize, imgDim: base.config.img_dim });
    const out = join(dir, "with-head");
    const lines: string[] = [];
    await exportModel(out, { config: base.config, nets: base.nets, names: base.netNames, dtype: "uint8", vocab: vocabJson, gallery: split, headFrom: train, headImages: 60, log: (l) => lines.push(l) });
    expect(lines.join("\n")).toMatch(/^first stage: head fitted to the nets' scores over 60 train images and 300 captions in [\d.]+ s \(held-out loss /);
    const pkg = await loadPackage(fileAssets(out), out);
    expect(pkg.json.stageOneHead!.fit).toMatchObject({ images: 60, captions: 300, heldOutImages: 6 });
    expect(pkg.stageOneHead!.nets.length).toBe(2);
    const engine = new Pc2Engine(pkg);
    const r = await engine.searchImages({ tokens: Array.from(split.captions[0]) }, 5, { shortlist: 20 });
    expect(r.shortlist).toEqual({ used: 20, stage: "distilled", scored: 20 });
    engine.dispose();
    // headImages 0: no head, tranglo.
    const none = join(dir, "no-head");
    await exportModel(none, { config: base.config, nets: base.nets, names: base.netNames, dtype: "uint8", vocab: vocabJson, gallery: split, headFrom: train, headImages: 0 });
    const plain = await loadPackage(fileAssets(none), none);
    expect([plain.json.stageOneHead, plain.stageOneHead]).toEqual([undefined, null]);
    for (const p of plain.nets) p.dispose();
  }, 120_000);
});
