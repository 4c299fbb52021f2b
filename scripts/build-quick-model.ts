/**
 * Builds assets/quick-model, the small exported model of the CI quick eval (`bun run eval --quick`)
 * and of the quantization-fidelity test: the warmup stage of `bun run train`'s default configuration
 * on the embedded synthetic dataset (co-training on a dataset this small collapses the retrieval
 * quality, see the README), exported as float16 without a gallery (the quick eval encodes the test
 * split itself, so that the encoders are exercised too).
 *   bun scripts/build-quick-model.ts [--seed 0]
 */
import { parseArgs } from "node:util";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initBackend } from "../trainer/backend";
import { parseTrainArgs } from "../trainer/config";
import { loadModel } from "../trainer/models";
import { exportModel } from "../trainer/export";
import { loadVocabulary } from "../trainer/data/datasets";
import { train } from "../trainer/train";
import { createProgress } from "../trainer/progress";
import { QUICK_MODEL_DIR } from "../trainer/quick-eval";

const { values } = parseArgs({ options: { seed: { type: "string", default: "0" } } });
await initBackend("wasm");
const out = mkdtempSync(join(tmpdir(), "pc2-quick-"));
const config = parseTrainArgs(["--seed", String(values.seed), "--output_dir", out, "--num_epochs", "0"]);
config.synthetic = true;
const r = await train(config, { log: (s) => console.log(s), progress: createProgress({ tty: false, logStep: 50, write: (s) => process.stdout.write(s) }), stopRequested: () => false });
console.log(`warmup done: validation rsum ${r.lastValidation?.rsum.toFixed(1)}`);
const model = await loadModel(join(out, `warmup_model_${config.warmup_epoch - 1}.safetensors`));
const { vocab } = loadVocabulary({ vocabPath: config.vocab_path, dataName: config.data_name });
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
