/**
 * Run by workerd-paper.test.ts in its own process:
 *
 *   bun test/edge/workerd/paper-model.ts <dir>
 *
 * Writes a paper-size model (img_dim 2048, embed 1024, word 300, sim 256, Flickr30K's vocabulary
 * of 8,481 words; net A alone, uint8 weights, random) with a 1,000-image gallery of random
 * encodings in the region store and a random distilled first stage of 256 dimensions
 * (benchmarks/support/paper-gallery.ts) into <dir>, then answers PAPER_REQUESTS in process as
 * `bun run edge` does by default (float32 weights, the wasm backend, native/bmm.wasm). Prints one
 * JSON line: the in-process answers, in order.
 */
import { fileAssets, tfjsWasmBytes } from "../../../edge/adapters/bun.ts";
import { createApp } from "../../../edge/app.ts";
import { initWasmBackend } from "../../../edge/tfjs-wasm.ts";
import { loadNativeBmm } from "../../../native/load.ts";
import { Pc2Engine, loadPackage } from "../../../shared/retrieval/pc2-engine.ts";
import { initBackend } from "../../../trainer/backend";
import { buildPaperGallery } from "../../../benchmarks/support/paper-gallery.ts";
import { PAPER, PAPER_REQUESTS } from "./paper-spec.ts";

const dir = Bun.argv[2];
if (!dir) throw new Error("usage: bun test/edge/workerd/paper-model.ts <dir>");
try {
  await initBackend("cpu"); // the random weights
  const built = await buildPaperGallery({ dir, images: PAPER.images, nets: ["A"], firstStage: "distilled", vocabSize: PAPER.vocabSize });
  await initWasmBackend({ bytes: await tfjsWasmBytes(), bmm: loadNativeBmm() });
  const engine = new Pc2Engine(await loadPackage(fileAssets(dir), dir, { transposes: "replace" }));
  const app = createApp({ engine, limits: { defaultShortlist: PAPER.shortlist } });
  const answers = [];
  for (const r of PAPER_REQUESTS) {
    const response = await app.request(r.path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(r.body) });
    answers.push({ status: response.status, body: await response.json() });
  }
  console.log(JSON.stringify({ bytes: built.bytes, buildS: built.buildS, answers }));
} catch (error) {
  console.error(error);
  process.exit(1);
}
