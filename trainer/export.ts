/**
 * The model a run exports at its end: the best-validation nets (both, for the ensemble).
 * Until the quantized edge format lands this is a float32 safetensors file with the official
 * names prefixed `model_A.` / `model_B.`.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readSafetensors, writeSafetensors } from "../shared/formats/safetensors";
import type { Data, Run } from "./train";

export async function exportRun(run: Run, _data: Data, outputDir: string): Promise<string | null> {
  const best = join(outputDir, "checkpoint_best_validation.safetensors");
  if (!existsSync(best)) return null;
  const { tensors } = readSafetensors(new Uint8Array(readFileSync(best)), best);
  const dir = join(outputDir, "model");
  mkdirSync(dir, { recursive: true });
  const nets = [...tensors].filter(([k]) => k.startsWith("model_A.") || k.startsWith("model_B."));
  writeFileSync(join(dir, "model.safetensors"), writeSafetensors(nets, { config: JSON.stringify(run.model) }));
  return dir;
}
