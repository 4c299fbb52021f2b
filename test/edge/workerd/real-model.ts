/**
 * Run by workerd.test.ts in its own process (tfjs's backend registry is process-wide, and other
 * test files keep theirs):
 *
 *   bun test/edge/workerd/real-model.ts <dir>
 *
 * Exports a tiny random-weights PC2 model the way the trainer does (trainer/export.ts
 * exportModel: nets A and B, uint8, a 6-image × 5-caption gallery encoded by buildGallery) into
 * <dir>/model, then loads it as `bun run edge` does (edge/tfjs-wasm.ts backend from the tfjs wasm
 * binary, fileAssets, the engine loader) and answers real-model-spec.ts's REQUESTS with the edge
 * app in process. Prints one JSON line, a ReferenceRun.
 */
import { join } from "node:path";
import { fileAssets, tfjsWasmBytes } from "../../../edge/adapters/bun.ts";
import { createApp } from "../../../edge/app.ts";
import { loadPc2Engine as loadEngine } from "../../../shared/retrieval/pc2-engine.ts";
import { initWasmBackend } from "../../../edge/tfjs-wasm.ts";
import { Vocabulary } from "../../../shared/formats/vocab";
import { REGIONS, sgrafConfig } from "../../../shared/model/config";
import { ParamStore } from "../../../shared/model/params";
import * as tf from "../../../shared/model/tf";
import { Random } from "../../../shared/random";
import type { CaptionSplit } from "../../../trainer/data/datasets";
import type { FeatureStore } from "../../../trainer/data/features";
import { exportModel } from "../../../trainer/export";
import { DIMS, GALLERY, REQUESTS, SEED, WORDS, type ReferenceRun } from "./real-model-spec.ts";

const SCORE_WEIGHT = "sim_enc.sim_eval_w.weight";

/** A test split held in memory, shaped as the trainer's dataset loader gives one. */
function memorySplit(rng: Random, vocab: Vocabulary): CaptionSplit {
  const { images, perCaptions } = GALLERY;
  const features = rng.uniformArray(images * REGIONS * DIMS.img_dim, 0, 1);
  const row = REGIONS * DIMS.img_dim;
  const store: FeatureStore = {
    file: "(memory)",
    count: images,
    regions: REGIONS,
    dim: DIMS.img_dim,
    dtype: "float32",
    gather(indices, out = new Float32Array(indices.length * row)) {
      for (let i = 0; i < indices.length; i++) out.set(features.subarray(indices[i] * row, (indices[i] + 1) * row), i * row);
      return out;
    },
    close() {},
  };
  // Captions of 2 to 6 words, a few of them unknown to the vocabulary (<unk>).
  const captions = Array.from({ length: images * perCaptions }, () => {
    const words = Array.from({ length: 2 + rng.nextInt(5) }, () => (rng.nextInt(10) === 0 ? "zebra" : WORDS[rng.nextInt(WORDS.length)]));
    return Int32Array.from([vocab.start, ...words.map((w) => vocab.id(w)), vocab.end]);
  });
  return {
    dataName: "f30k_precomp",
    split: "test",
    dir: "(memory)",
    files: { captions: "(memory)", images: "(memory)" },
    captions,
    images: store,
    imDiv: perCaptions,
    length: captions.length,
    perCaptions,
  };
}

async function main(): Promise<void> {
  const dir = Bun.argv[2];
  if (!dir) throw new Error("usage: bun test/edge/workerd/real-model.ts <dir>");
  await initWasmBackend({ bytes: await tfjsWasmBytes() });

  const vocab = Vocabulary.fromWords(WORDS);
  const config = sgrafConfig({ ...DIMS, vocab_size: vocab.length });
  const rng = new Random(SEED);
  const nets = [ParamStore.init(config, rng), ParamStore.init(config, rng)];
  // Freshly initialised nets score every pair within ~1e-3 of 0.5; a steeper last layer spreads
  // the scores over (0, 1), so that a 1e-5 tolerance and the result order say something.
  for (const net of nets) {
    const w = net.vars.get(SCORE_WEIGHT)!;
    w.assign(tf.mul(w, 20));
  }
  const modelDir = join(dir, "model");
  await exportModel(modelDir, { config, nets, names: ["A", "B"], dtype: "uint8", vocab: vocab.toJSON(), gallery: memorySplit(rng, vocab), batchSize: 4 });
  for (const net of nets) net.dispose();

  const app = createApp({ engine: await loadEngine(fileAssets(modelDir)) });
  const answers: ReferenceRun["answers"] = [];
  for (const r of REQUESTS) {
    const init: RequestInit = r.body === undefined ? { method: r.method } : { method: r.method, headers: { "content-type": "application/json" }, body: JSON.stringify(r.body) };
    const response = await app.request(r.path, init);
    answers.push({ status: response.status, body: await response.json() });
  }
  const out: ReferenceRun = { config, modelDir, answers };
  console.log(JSON.stringify(out));
}

// Awaited at the top level, as browser/export-model.ts is: a bare main().catch() can let Bun exit 0
// halfway through.
try {
  await main();
} catch (error: unknown) {
  console.error(error);
  process.exit(1);
}
