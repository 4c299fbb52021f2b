/**
 * Evaluation over workers: validation of the e2e dev split (150 images × 750 captions, e2e model
 * size, random weights) in the main thread and on pools of 2.. workers, back to back, alternating,
 * medians over reps; the ratio is what matters (another busy process shifts every figure).
 *   bun benchmarks/eval_pool.ts [--reps 3] [--workers 2] [--module SGR]
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { sgrafConfig } from "../shared/model/config";
import { ParamStore } from "../shared/model/params";
import { Random } from "../shared/random";
import { initBackend } from "../trainer/backend";
import { loadSplit, loadVocabulary } from "../trainer/data/datasets";
import { EvalPool } from "../trainer/eval-pool";
import { evaluateSplit } from "../trainer/evaluate";

const { values } = parseArgs({ options: { reps: { type: "string", default: "3" }, workers: { type: "string", default: "2" }, module: { type: "string", default: "SGR" } } });
const reps = Number(values.reps);
const workers = Number(values.workers);
const e2e = resolve(import.meta.dir, "../../shared/reference/e2e");
await initBackend("wasm");
const { vocab, vocabSize } = loadVocabulary({ vocabPath: resolve(e2e, "vocab"), dataName: "f30k_precomp" });
const split = loadSplit({ dataPath: e2e, dataName: "f30k_precomp", split: "dev", vocab, vocabSize, imgDim: 48 });
const model = sgrafConfig({ img_dim: 48, embed_size: 64, word_dim: 32, sim_dim: 32, proj_dim: 16, vocab_size: vocabSize, module_name: values.module as "SGR" | "SAF" });
const rng = new Random(0);
const nets = [ParamStore.init(model, rng), ParamStore.init(model, rng)];
const pool = await EvalPool.start(workers, "wasm");
const nImages = Math.floor(split.length / split.imDiv);
console.log(`e2e dev split: ${nImages} images × ${split.length} captions, ${values.module}, wasm; pool of ${workers} workers`);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const n of [2, 1]) {
  const times = { main: [] as number[], pool: [] as number[] };
  let rsum = { main: 0, pool: 0 };
  for (let r = 0; r < reps; r++) {
    for (const where of ["main", "pool"] as const) {
      const t0 = performance.now();
      const out = await evaluateSplit(nets.slice(0, n), split, { batchSize: 128, pool: where === "pool" ? pool : null });
      times[where].push((performance.now() - t0) / 1000);
      rsum[where] = out.rsum;
    }
  }
  const pairs = n * nImages * split.length;
  const m = median(times.main);
  const p = median(times.pool);
  console.log(
    `${n} net${n > 1 ? "s" : ""}: main thread ${m.toFixed(2)} s (${Math.round(pairs / m)} pairs/s), ${workers} workers ${p.toFixed(2)} s (${Math.round(pairs / p)} pairs/s): ${(m / p).toFixed(2)}× ; rsum ${rsum.main.toFixed(1)} = ${rsum.pool.toFixed(1)}`,
  );
}
pool.terminate();
for (const p of nets) p.dispose();
