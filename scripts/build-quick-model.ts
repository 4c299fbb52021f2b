/**
 * Builds assets/quick-model, the small exported model of the CI quick eval (`bun run eval --quick`)
 * and of the quantization-fidelity test: what `bun run train`'s default configuration hands a user
 * (full PC2: warmup, then co-training; the best-validation checkpoint), exported as float16 without
 * a gallery (the quick eval encodes the test split itself, so that the encoders are exercised too).
 *   bun scripts/build-quick-model.ts [--seed 0]
 */
import { parseArgs } from "node:util";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initBackend } from "../trainer/backend";
import { parseTrainArgs } from "../trainer/config";
import { loadModel } from "../trainer/models";
import { exportModel } from "../trainer/export";
import { loadVocabulary } from "../trainer/data/datasets";
import { OUTPUT_FILES, train } from "../trainer/train";
import { createProgress } from "../trainer/progress";
import { QUICK_MODEL_DIR } from "../trainer/quick-eval";

const { values } = parseArgs({ options: { seed: { type: "string", default: "0" } } });
await initBackend("wasm");
const out = mkdtempSync(join(tmpdir(), "pc2-quick-"));
const config = parseTrainArgs(["--seed", String(values.seed), "--output_dir", out]);
const r = await train(config, { log: (s) => console.log(s), progress: createProgress({ tty: false, logStep: 50, write: (s) => process.stdout.write(s) }), stopRequested: () => false });
console.log(`PC2 done: best validation rsum ${r.bestRsum.toFixed(1)} at epoch ${r.bestEpoch}, test rsum ${r.test?.rsum.toFixed(1)}`);
const model = await loadModel(join(out, OUTPUT_FILES.best));
const resolved = JSON.parse(readFileSync(join(out, OUTPUT_FILES.config), "utf8")) as { vocab_path: string; data_name: string };
const { vocab } = loadVocabulary({ vocabPath: resolved.vocab_path, dataName: resolved.data_name });
const e = await exportModel(QUICK_MODEL_DIR, {
  config: model.config,
  nets: model.nets,
  names: model.names,
  dtype: "float16",
  vocab: vocab.toJSON(),
  runConfig: { synthetic: true, seed: config.seed },
});
console.log(`exported ${e.dir}: ${e.files} files, ${(e.bytes / 1e6).toFixed(2)} MB`);
rmSync(out, { recursive: true, force: true });
