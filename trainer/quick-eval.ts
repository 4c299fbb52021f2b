/**
 * The quick eval of CI (`bun run eval --quick`): the committed small model (assets/quick-model,
 * built by scripts/build-quick-model.ts) is read as the exported package it is, on the wasm
 * backend; the embedded dataset's test split is encoded with it into a gallery, and the retrieval
 * engine's evaluation path (the one the edge serves) scores it. Fails (exit 1) when rsum is below
 * QUICK_EVAL_FLOOR.
 */
import { resolve } from "node:path";
import { formatRecall } from "../shared/eval/metrics";
import type { EvalResult } from "../shared/retrieval/engine";
import { Pc2Engine } from "../shared/retrieval/pc2-engine";
import { describeBackend, initBackend } from "./backend";
import { loadSplit, loadVocabulary } from "./data/datasets";
import { ensureSynthetic } from "./data/synthetic";
import { buildGallery } from "./export";
import { readModelDir } from "./models";

export const QUICK_MODEL_DIR = resolve(import.meta.dir, "../assets/quick-model");

/**
 * The floor: 90% of the committed model's measured test rsum (549.8, a full default PC2 run),
 * far above chance (about 32 for 100 images) and above the vanilla warmup model, so that a broken
 * encoder, similarity, metric or export fails CI.
 */
export const QUICK_EVAL_FLOOR = 495;

export async function quickEval(modelDir = QUICK_MODEL_DIR): Promise<EvalResult & { backend: string }> {
  const backend = await initBackend("wasm");
  const pkg = await readModelDir(modelDir);
  const ds = ensureSynthetic(resolve(".cache"), { imgDim: pkg.config.img_dim });
  const { vocab, vocabSize } = loadVocabulary({ vocabPath: ds.vocabPath, dataName: ds.dataName });
  if (vocabSize !== pkg.config.vocab_size) {
    throw new Error(`${modelDir}: the model's vocabulary (${pkg.config.vocab_size}) is not the embedded dataset's (${vocabSize}); rebuild it with bun scripts/build-quick-model.ts`);
  }
  const test = loadSplit({ dataPath: ds.dataPath, dataName: ds.dataName, split: "test", vocab, vocabSize, imgDim: pkg.config.img_dim });
  pkg.gallery = await buildGallery(pkg.nets, test, vocab.toJSON());
  const engine = new Pc2Engine(pkg);
  const r = await engine.evaluate();
  engine.dispose();
  return { ...r, backend: describeBackend(backend) };
}

export async function runQuickEval(o: { json: boolean }): Promise<number> {
  const r = await quickEval();
  if (o.json) console.log(JSON.stringify({ i2t: r.i2t, t2i: r.t2i, rsum: r.rsum }));
  else {
    console.log(r.backend);
    console.log(`quick eval: ${r.images} images, ${r.captions} captions of the embedded test split, model ${QUICK_MODEL_DIR}`);
    console.log(`Image to text: ${formatRecall(r.i2t)}`);
    console.log(`Text to image: ${formatRecall(r.t2i)}`);
    console.log(`rsum: ${r.rsum.toFixed(1)} (floor ${QUICK_EVAL_FLOOR})`);
  }
  if (!(r.rsum >= QUICK_EVAL_FLOOR)) {
    console.error(`quick eval FAILED: rsum ${r.rsum.toFixed(1)} < floor ${QUICK_EVAL_FLOOR}`);
    return 1;
  }
  return 0;
}
