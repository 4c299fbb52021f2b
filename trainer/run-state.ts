/**
 * The state of a training run: what lasts between steps (the two nets with their optimizers, the
 * PO banks, the schedule cursor, the model RNG, the split of the epoch in progress, the best
 * validation). A checkpoint stores exactly this (trainer/checkpoint.ts); this module makes a run,
 * saves it, and rebuilds it from a checkpoint — fresh, from a warmup checkpoint (the official
 * `--model_path` without `--resume`: co-training starts at epoch 0), or resumed at the next step.
 */
import { existsSync } from "node:fs";
import type { RunReference } from "../shared/eval/diagnostics";
import type { SgrafConfig } from "../shared/model/config";
import { Adam } from "../shared/model/optim";
import { ParamStore } from "../shared/model/params";
import type { Net } from "../shared/model/steps";
import { Random, type RandomState } from "../shared/random";
import { type Cursor, type NetSplit, type PoBank, emptyBank, restoreCheckpoint, saveCheckpoint } from "./checkpoint";
import type { TrainConfig } from "./config";
import type { Data } from "./data/load";
import type { SplitEvaluation } from "./evaluate";

export type { Cursor, NetSplit };

export interface Run {
  config: TrainConfig;
  model: SgrafConfig;
  nets: { A: Net; B: Net };
  banks: { A: PoBank; B: PoBank };
  cursor: Cursor;
  modelRng: Random;
  split: { A: NetSplit; B: NetSplit } | null;
  bestRsum: number;
  bestEpoch: number | "warmup" | null;
  bestTest: SplitEvaluation | null;
  /** Each net's learning-rate factor (1 until a collapse is recovered; then ÷10 each time). */
  lrScale: { A: number; B: number };
  /** The checkpoint holding the state at the start of the co-training epoch in progress. */
  restorePoint: string | null;
  /** Each net's similarity std on the validation split after warmup (the collapse rule's reference). */
  reference: RunReference | null;
}

import { TrainingFault } from "./fault";

export { TrainingFault };

export const WARMUP_PARTS = ["warmup A", "warmup B"] as const;
export const COTRAIN_PARTS = ["split", "train A", "train B"] as const;

/** The part the cursor points at, by name ("warmup B", "train A", …). */
export function partName(c: Cursor): string {
  const name = (c.stage === "warmup" ? WARMUP_PARTS : COTRAIN_PARTS)[c.part] ?? "end of epoch";
  return c.lanes ? `${name.slice(0, -2)} A+B (A at step ${c.lanes.A.step}, B at step ${c.lanes.B.step})` : name;
}

function newNet(model: SgrafConfig, rng: Random, lr: number): Net {
  return { params: ParamStore.init(model, rng), optimizer: new Adam({ lr }) };
}

/**
 * The run a configuration starts: fresh nets (model RNG `2·seed + 1`, data RNG `2·seed`), or the
 * nets, banks and state of `--model_path`: a warmup checkpoint (co-training from epoch 0 with
 * fresh optimizers) or, with `--resume`, the very next step of the run that wrote it.
 */
export function startRun(config: TrainConfig, model: SgrafConfig, data: Data, log: (line: string) => void): Run {
  const modelRng = new Random(config.seed * 2 + 1);
  const dataRng = new Random(config.seed * 2);
  const run: Run = {
    config,
    model,
    nets: { A: newNet(model, modelRng, config.learning_rate), B: newNet(model, modelRng, config.learning_rate) },
    banks: { A: emptyBank(data.train.length, model.proj_dim), B: emptyBank(data.train.length, model.proj_dim) },
    cursor: { stage: config.warmup_epoch > 0 ? "warmup" : "cotrain", epoch: 0, part: 0, step: 0, dataRng: dataRng.state() },
    modelRng,
    split: null,
    bestRsum: 0,
    bestEpoch: null,
    bestTest: null,
    lrScale: { A: 1, B: 1 },
    restorePoint: null,
    reference: null,
  };
  if (!config.model_path) return run;
  if (!existsSync(config.model_path)) throw new TrainingFault(`=> no checkpoint found at '${config.model_path}'`);
  const ck = restoreCheckpoint(config.model_path, model, { optimizers: config.resume, learningRate: config.learning_rate });
  for (const k of ["A", "B"] as const) {
    run.nets[k].params.dispose();
    run.nets[k] = ck.nets[k];
    if (ck.banks[k].has.length !== data.train.length) throw new TrainingFault(`${config.model_path}: PO bank ${k} holds ${ck.banks[k].has.length} captions, the training split has ${data.train.length}`);
    run.banks[k] = ck.banks[k];
  }
  if (config.po_dir) log(`--po_dir ${config.po_dir}: the PO banks are stored in the checkpoint itself; the folder is not read`);
  const st = ck.state;
  if (!config.resume) {
    // Co-training from epoch 0 with fresh optimizers. With the seed of the run that wrote the
    // checkpoint, the data and model RNGs continue where its warmup left them (the same start as
    // that run); with another --seed (or a checkpoint that records none, as a converted official
    // one), data order and dropout come from --seed, as the official code draws them from its seed.
    const sameSeed = st.config.seed === config.seed;
    log(`=> load warmup checkpoint '${config.model_path}'${sameSeed ? "" : ` (data order and dropout from --seed ${config.seed})`}`);
    run.cursor = { stage: "cotrain", epoch: 0, part: 0, step: 0, dataRng: sameSeed ? st.cursor.dataRng : dataRng.state() };
    if (sameSeed) run.modelRng = Random.fromState(st.modelRng);
    run.restorePoint = config.model_path;
    return run;
  }
  log(`=> resume training from checkpoint '${config.model_path}' (${st.cursor.stage} epoch ${st.cursor.epoch}, ${partName(st.cursor)}, step ${st.cursor.step})`);
  run.cursor = st.cursor;
  // A finished run resumed with more epochs continues with the next one (the official start_epoch = epoch + 1).
  if (run.cursor.stage === "done" && run.cursor.epoch < config.num_epochs) run.cursor = { ...run.cursor, stage: "cotrain", part: 0, step: 0 };
  run.modelRng = Random.fromState(st.modelRng);
  run.split = ck.split;
  run.bestRsum = st.bestRsum;
  run.bestEpoch = st.bestEpoch;
  run.bestTest = st.bestTest;
  run.lrScale = st.lrScale;
  run.restorePoint = st.restorePoint;
  run.reference = st.reference;
  run.nets.A.optimizer.lr = st.lr.A;
  run.nets.B.optimizer.lr = st.lr.B;
  return run;
}

/** Writes the run as a checkpoint (atomically). */
export async function saveRun(run: Run, path: string): Promise<void> {
  await saveCheckpoint(path, {
    state: {
      cursor: run.cursor,
      modelRng: run.modelRng.state(),
      bestRsum: run.bestRsum,
      bestEpoch: run.bestEpoch,
      bestTest: run.bestTest,
      config: run.config as unknown as Record<string, unknown>,
      model: run.model,
      lrScale: run.lrScale,
      restorePoint: run.restorePoint,
      reference: run.reference,
    },
    nets: run.nets,
    banks: run.banks,
    split: run.split,
  });
}

/**
 * Puts net `k` back to its state in the checkpoint `path`: parameters, Adam state and PO bank (the
 * recovery of a collapsed net). The other net and the schedule are left as they are.
 */
export function restoreNet(run: Run, k: "A" | "B", path: string): void {
  const ck = restoreCheckpoint(path, run.model, { optimizers: true, learningRate: run.nets[k].optimizer.lr });
  run.nets[k].params.dispose();
  run.nets[k].optimizer.reset();
  run.nets[k] = ck.nets[k];
  run.banks[k] = ck.banks[k];
  const other = k === "A" ? "B" : "A";
  ck.nets[other].params.dispose();
  ck.nets[other].optimizer.reset();
}

/** Moves to the next part; its draws continue the data stream where the finished part left it. */
export function nextPart(run: Run, dataRng: RandomState, parts = 1): void {
  run.cursor = { stage: run.cursor.stage, epoch: run.cursor.epoch, part: run.cursor.part + parts, step: 0, dataRng };
}

/** Moves to the first part of the next epoch (or to "done" after the last co-training epoch). */
export function nextEpoch(run: Run): void {
  const c = run.cursor;
  const epoch = c.epoch + 1;
  const stage = c.stage === "warmup" ? "warmup" : epoch < run.config.num_epochs ? "cotrain" : "done";
  run.cursor = { stage, epoch, part: 0, step: 0, dataRng: c.dataRng };
}

/** Releases the nets' tensors and the optimizers' state (the run owns them). */
export function disposeRun(run: Run): void {
  for (const k of ["A", "B"] as const) {
    run.nets[k].params.dispose();
    run.nets[k].optimizer.reset();
  }
}
