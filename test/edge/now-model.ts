/**
 * The tiny NoW-layout model of the Jieba text tests: a dataset with Chinese captions and Jieba ids
 * (trainer/data/now-synthetic.ts), a few training steps, and `bun run export` of the run's
 * checkpoint. now-text.test.ts uses it in process; the browser test through
 * browser/export-model.ts, in a process of its own.
 */
import { join } from "node:path";
import { loadJieba } from "../../shared/text/jieba";
import { initBackend } from "../../trainer/backend";
import { parseTrainArgs } from "../../trainer/config";
import { main as exportMain } from "../../trainer/cli/export";
import { generateNowSynthetic, type NowSyntheticDataset } from "../../trainer/data/now-synthetic";
import { OUTPUT_FILES, train } from "../../trainer/train";
import { recordingHooks, TINY_FLAGS } from "../trainer/train-fixtures";

export interface NowJiebaRun {
  ds: NowSyntheticDataset;
  /** The run's last checkpoint. */
  checkpoint: string;
}

/** Generates the dataset into `<dir>/` and trains the tiny configuration on it into `<dir>/run`. */
export async function trainNowJieba(dir: string): Promise<NowJiebaRun> {
  await initBackend("wasm");
  const ds = generateNowSynthetic(dir, await loadJieba(), { trainImages: 24, devImages: 6, testImages: 6, imgDim: 8, classes: 6 });
  const out = join(dir, "run");
  const flags: Record<string, string> = { ...TINY_FLAGS, data_path: ds.dataPath, data_name: ds.dataName, vocab_path: ds.vocabPath, tokenizer: "jieba", img_dim: String(ds.imgDim), output_dir: out, noise_ratio: "0" };
  await train(parseTrainArgs(Object.entries(flags).flatMap(([k, v]) => [`--${k}`, v])), recordingHooks());
  return { ds, checkpoint: join(out, OUTPUT_FILES.latest) };
}

/** `bun run export --model_path <checkpoint> --out <out> --gallery test --backend wasm [extra]`, quiet; its exit code. */
export async function exportQuietly(checkpoint: string, out: string, extra: string[] = []): Promise<number> {
  const log = console.log;
  console.log = () => {};
  try {
    return await exportMain(["--model_path", checkpoint, "--out", out, "--gallery", "test", "--backend", "wasm", ...extra]);
  } finally {
    console.log = log;
  }
}
