/**
 * Seconds per training step (warmup mode: forward, backward, clip, Adam) on a chosen backend.
 *   bun benchmarks/train_step.ts [--backend wasm] [--steps 10]
 * Prints the median and the spread for the reference fixture size and for the issue's
 * embed 64 / word 32 / sim 32 / batch 64 / img_dim 64 configuration (random weights and data).
 */
import { parseArgs } from "node:util";
import { initBackend, type BackendChoice } from "../trainer/backend";
import * as tf from "../shared/model/tf";
import { sgrafConfig, type SgrafConfig, REGIONS } from "../shared/model/config";
import { ParamStore } from "../shared/model/params";
import { Adam } from "../shared/model/optim";
import { type ModelBatch, trainStep, unlabeledStep } from "../shared/model/steps";
import { Random } from "../shared/random";
import { median } from "./support/stats";

const { values } = parseArgs({ options: { backend: { type: "string", default: "wasm" }, steps: { type: "string", default: "10" }, only: { type: "string" } } });
const info = await initBackend(values.backend as BackendChoice);
console.log(`backend ${info.name}`);

function randomBatch(rng: Random, cfg: SgrafConfig, B: number, meanLen: number): ModelBatch {
  const lengths = Int32Array.from({ length: B }, () => Math.max(3, Math.round(meanLen + 3 * rng.normal())));
  const T = Math.max(...lengths);
  const captions = new Int32Array(B * T);
  for (let b = 0; b < B; b++) for (let t = 0; t < lengths[b]; t++) captions[b * T + t] = 1 + rng.nextInt(cfg.vocab_size - 1);
  const images = rng.uniformArray(B * REGIONS * cfg.img_dim, 0, 1);
  return { images, captions, lengths };
}

const setups: Array<{ name: string; cfg: Record<string, unknown>; batch: number; len: number }> = [
  { name: "fixture size (img 20, embed 16, word 12, sim 8, batch 6)", cfg: { img_dim: 20, embed_size: 16, word_dim: 12, sim_dim: 8, proj_dim: 5, vocab_size: 40 }, batch: 6, len: 8 },
  { name: "e2e (img 48, embed 64, word 32, sim 32, batch 32)", cfg: { img_dim: 48, embed_size: 64, word_dim: 32, sim_dim: 32, proj_dim: 16, vocab_size: 70 }, batch: 32, len: 12 },
  { name: "issue size (img 64, embed 64, word 32, sim 32, batch 64)", cfg: { img_dim: 64, embed_size: 64, word_dim: 32, sim_dim: 32, proj_dim: 16, vocab_size: 300 }, batch: 64, len: 12 },
];

const steps = Number(values.steps);
for (const s of setups) {
  if (values.only && !s.name.includes(values.only)) continue;
  for (const module_name of ["SGR", "SAF"] as const) {
    const cfg = sgrafConfig({ ...s.cfg, module_name });
    const rng = new Random(0);
    const net = { params: ParamStore.init(cfg, rng), optimizer: new Adam({ lr: 2e-4 }) };
    const o = { margin: 0.2, lambdaEn: 10, gradClip: 2, softMargin: "exponential" as const, hardNegative: true, rng };
    const batches = Array.from({ length: steps + 2 }, () => randomBatch(rng, cfg, s.batch, s.len));
    const times: number[] = [];
    const timesU: number[] = [];
    for (let i = 0; i < batches.length; i++) {
      const t0 = performance.now();
      trainStep(net, batches[i], "warmup", o);
      if (i >= 2) times.push((performance.now() - t0) / 1000);
      const t1 = performance.now();
      unlabeledStep(net, batches[i], batches[(i + 1) % batches.length], o);
      if (i >= 2) timesU.push((performance.now() - t1) / 1000);
    }
    console.log(`${s.name} ${module_name}: labeled/warmup step median ${median(times).toFixed(3)} s (min ${Math.min(...times).toFixed(3)}, max ${Math.max(...times).toFixed(3)}); unlabeled step median ${median(timesU).toFixed(3)} s; tensors alive ${tf.memory().numTensors}`);
    net.params.dispose();
    net.optimizer.reset();
  }
}
