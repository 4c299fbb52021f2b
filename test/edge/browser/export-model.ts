/**
 * Run by the browser test in its own process (tfjs's backend registry is process-wide):
 *
 *   bun test/edge/browser/export-model.ts <dir> [test|train|now-jieba]
 *
 * Exports the committed small trained model (assets/quick-model) the way the trainer exports at
 * the end of training (trainer/export.ts: uint8 weights, a float16 gallery) with the embedded
 * dataset's test split (100 images, 500 captions) as its gallery, into <dir>; `train` gives its
 * 400-image split instead (benchmarks/edge_stall.ts). A trained model,
 * so that the recall the test compares is far from chance and the screenshot shows real captions.
 *
 * `now-jieba`: instead, the tiny NoW-layout model of now-text.test.ts (Chinese captions, Jieba
 * ids; ../now-model.ts), trained in <dir>.data and exported with its test split as gallery;
 * prints the test captions as JSON.
 */
import { resolve } from "node:path";
import { initBackend } from "../../../trainer/backend";
import { loadSplit, loadVocabulary } from "../../../trainer/data/datasets";
import { ensureSynthetic } from "../../../trainer/data/synthetic";
import { exportModel } from "../../../trainer/export";
import { QUICK_MODEL_DIR } from "../../../trainer/quick-eval";
import { loadPackage } from "../../../shared/retrieval/pc2-engine";
import { fileAssets } from "../../../edge/adapters/bun";
import { REPO_ROOT } from "../../support";
import { exportQuietly, trainNowJieba } from "../now-model";

async function main(): Promise<void> {
  const out = Bun.argv[2];
  if (!out) throw new Error("usage: bun test/edge/browser/export-model.ts <dir> [test|train|now-jieba]");
  if (Bun.argv[3] === "now-jieba") return exportNowJieba(out);
  const split = (Bun.argv[3] ?? "test") as "test" | "train";
  if (!["test", "train"].includes(split)) throw new Error("usage: bun test/edge/browser/export-model.ts <dir> [test|train|now-jieba]");
  await initBackend("wasm");
  const base = await loadPackage(fileAssets(QUICK_MODEL_DIR), QUICK_MODEL_DIR);
  const ds = ensureSynthetic(resolve(REPO_ROOT, ".cache"), { imgDim: base.config.img_dim });
  const { vocab, vocabSize } = loadVocabulary({ vocabPath: ds.vocabPath, dataName: ds.dataName });
  const test = loadSplit({ dataPath: ds.dataPath, dataName: ds.dataName, split, vocab, vocabSize, imgDim: base.config.img_dim });
  const r = await exportModel(out, { config: base.config, nets: base.nets, names: base.netNames, dtype: "uint8", vocab: vocab.toJSON(), gallery: test });
  for (const p of base.nets) p.dispose();
  console.log(JSON.stringify(r));
}

async function exportNowJieba(out: string): Promise<void> {
  const { ds, checkpoint } = await trainNowJieba(`${out}.data`);
  const code = await exportQuietly(checkpoint, out);
  if (code !== 0) throw new Error(`bun run export exited ${code}`);
  console.log(JSON.stringify({ captions: ds.captions.test }));
}

// Awaited at the top level: with a bare main().catch(), Bun exited 0 halfway through (while the
// wasm backend and Jieba compiled, nothing it counts kept the process alive) and wrote no model.
try {
  await main();
} catch (error: unknown) {
  console.error(error);
  process.exit(1);
}
