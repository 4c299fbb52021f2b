/**
 * An official PC2 warmup checkpoint as a checkpoint of this trainer, so that both codes can
 * co-train from the very same state (`bun run train --model_path <out>` without `--resume`).
 *
 * Input: the safetensors file that `official_to_safetensors.py` (beside this file) writes from the
 * official `warmup_model_N.pth.tar` and `warmup_distri_bank_{A,B}.pkl`: `model_A.<official name>`,
 * `model_B.…`, `bank_A.probs` / `bank_A.has`, `bank_B.…`.
 *
 * The checkpoint records no seed (`config.seed` null), so every `--seed` co-trains from it with the
 * data order and dropout of that seed (trainer/run-state.ts).
 */
import { readFileSync } from "node:fs";
import { FormatError } from "../../shared/formats/ndarray";
import { readSafetensors } from "../../shared/formats/safetensors";
import { Adam } from "../../shared/model/optim";
import { ParamStore, inferConfig } from "../../shared/model/params";
import type { Net } from "../../shared/model/steps";
import { Random } from "../../shared/random";
import { type PoBank, saveCheckpoint } from "../../trainer/checkpoint";

export async function convertOfficialWarmup(src: string, out: string, learningRate = 0.001): Promise<void> {
  const { tensors, metadata } = readSafetensors(new Uint8Array(readFileSync(src)), src);
  const shapes = new Map([...tensors].map(([k, v]) => [k, v.shape] as const));
  const model = inferConfig(shapes, src, "model_A.");
  const nets = {} as { A: Net; B: Net };
  const banks = {} as { A: PoBank; B: PoBank };
  for (const k of ["A", "B"] as const) {
    nets[k] = { params: ParamStore.fromArrays(model, tensors, src, `model_${k}.`), optimizer: new Adam({ lr: learningRate }) };
    const probs = tensors.get(`bank_${k}.probs`);
    const has = tensors.get(`bank_${k}.has`);
    if (!probs || !has) throw new FormatError(src, `no PO bank ${k} (bank_${k}.probs / bank_${k}.has)`);
    banks[k] = { probs: Float32Array.from(probs.data as Float32Array), has: Uint8Array.from(has.data as Uint8Array), classes: probs.shape[1] };
  }
  await saveCheckpoint(out, {
    state: {
      cursor: { stage: "cotrain", epoch: 0, part: 0, step: 0, dataRng: new Random(0).state() },
      modelRng: new Random(1).state(),
      bestRsum: 0,
      bestEpoch: null,
      bestTest: null,
      config: { seed: null, converted_from: src, official_seed: metadata.seed ?? null, official_epoch: metadata.epoch ?? null },
      model,
      lrScale: { A: 1, B: 1 },
      restorePoint: null,
      reference: null,
    },
    nets,
    banks,
    split: null,
  });
  for (const k of ["A", "B"] as const) nets[k].params.dispose();
}

if (import.meta.main) {
  const [src, out] = process.argv.slice(2);
  if (!src || !out) {
    console.error("usage: bun benchmarks/support/official-checkpoint.ts <official.safetensors> <checkpoint.safetensors>");
    process.exit(2);
  }
  const { initBackend } = await import("../../trainer/backend");
  await initBackend("cpu");
  await convertOfficialWarmup(src, out);
  console.log(`wrote ${out}`);
}
