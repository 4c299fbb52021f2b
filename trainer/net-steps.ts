/**
 * One net's steps through a part: the warmup epoch (all noisy pairs, PO into the bank) and the
 * co-training pass on the peer's split (labeled steps with refined targets, then unlabeled steps
 * with pseudo-captions from `warmup_epoch_2` on). The trainer runs them in its own thread, one net
 * after the other, or each on a worker of the pool at once (--parallel on); the code is this one.
 *
 * A part's data order comes from `dataRng` as it was at the part's start (a resumed part redraws it
 * and skips the steps done); dropout draws from `modelRng`, which the steps advance.
 */
import { NonFiniteLossError, type Net, type StepOptions, trainStep, unlabeledStep } from "../shared/model/steps";
import type { Random } from "../shared/random";
import type { NetSplit, PoBank } from "./checkpoint";
import type { TrainConfig } from "./config";
import { type PairSource, type TrainBatch, batchCount, shuffledBatches } from "./data/batches";
import { TrainingFault } from "./fault";

/** The flags the steps read. */
export type StepConfig = Pick<TrainConfig, "margin" | "lambda_en" | "grad_clip" | "soft_margin" | "warmup_type" | "batch_size" | "warmup_epoch_2" | "po_bank_index">;

export interface LaneState {
  net: Net;
  bank: PoBank;
  /** The data-order RNG at the part's start (not advanced here: the caller keeps the state after the draw). */
  dataRng: Random;
  modelRng: Random;
  /** Steps of the part already done. */
  step: number;
}

/**
 * After each step: `i` (the step just done, 0-based), the part's step count, the running means of
 * the losses. Returns true to stop after this step. May throw (an interruption).
 */
export type OnStep = (i: number, total: number, values: Record<string, number>) => Promise<boolean>;

/** Where a lane ended: every step done, or stopped after `step` of them. */
export interface LaneEnd {
  step: number;
  stopped: boolean;
}

export function stepOptions(c: StepConfig, rng: Random) {
  return { margin: c.margin, lambdaEn: c.lambda_en, gradClip: c.grad_clip, softMargin: c.soft_margin, hardNegative: true, rng };
}

export function writeBank(bank: PoBank, ids: ArrayLike<number>, probs: Float32Array) {
  const K = bank.classes;
  for (let i = 0; i < ids.length; i++) {
    bank.probs.set(probs.subarray(i * K, (i + 1) * K), ids[i] * K);
    bank.has[ids[i]] = 1;
  }
}

function withContext(e: unknown, where: string, batch: TrainBatch): never {
  if (e instanceof NonFiniteLossError) {
    const ids = Array.from(batch.ids.slice(0, 16)).join(", ");
    throw new TrainingFault(`${where}: loss term ${e.term} is ${e.value} (sample ids ${ids}${batch.size > 16 ? ", …" : ""}); training stopped, the last good checkpoint is intact`);
  }
  throw e;
}

/** Official `warmup`: one epoch of one net over all (noisy) pairs, storing PO in the bank. */
export async function warmupSteps(lane: LaneState, pairs: PairSource, c: StepConfig, where: string, onStep: OnStep): Promise<LaneEnd> {
  const total = batchCount(pairs.captions.length, c.batch_size);
  const meter = new RunningMeans();
  let step = lane.step;
  for (const batch of shuffledBatches(pairs, lane.dataRng, { batchSize: c.batch_size, startBatch: lane.step })) {
    const i = step;
    if (batch.size === 1) break; // batch norm needs two samples: the official loop drops it
    let r;
    try {
      r = trainStep(lane.net, batch, c.warmup_type, stepOptions(c, lane.modelRng));
    } catch (e) {
      withContext(e, `${where}, step ${i}`, batch);
    }
    writeBank(lane.bank, batch.ids, r.bank);
    meter.add(r.losses, batch.size);
    step++;
    if (await onStep(i, total, meter.values())) return { step, stopped: step < total };
  }
  return { step, stopped: false };
}

/**
 * Official `train`: the net trains on the peer's split `s`. Labeled batches carry refined targets
 * prob + (1 − prob)·ctt_prob·ctt_label; from `warmup_epoch_2` on every labeled step is followed by
 * an unlabeled step whose pseudo-captions come from that labeled batch.
 */
export async function cotrainSteps(lane: LaneState, pairs: PairSource, c: StepConfig, s: NetSplit, epoch: number, where: string, onStep: OnStep): Promise<LaneEnd> {
  const N = pairs.captions.length;
  const labeledIds: number[] = [];
  const unlabeledIds: number[] = [];
  for (let i = 0; i < N; i++) (s.clean[i] ? labeledIds : unlabeledIds).push(i);
  const rng = lane.dataRng;
  const useUnlabeled = epoch >= c.warmup_epoch_2;
  const total = batchCount(labeledIds.length, c.batch_size);
  // The unlabeled loader is cycled: a fresh shuffle whenever it runs out (the official try/except).
  const unlabeledBatches = function* () {
    if (!unlabeledIds.length) return;
    for (;;) yield* shuffledBatches(pairs, rng, { batchSize: c.batch_size, ids: unlabeledIds });
  };
  const labeled = shuffledBatches(pairs, rng, { batchSize: c.batch_size, ids: labeledIds });
  const unlabeled = unlabeledBatches();
  // Replay the part's draws up to the resumed step (both loaders advance once per step).
  for (let k = 0; k < lane.step; k++) {
    labeled.next();
    unlabeled.next();
  }
  const meter = new RunningMeans();
  let step = lane.step;
  for (;;) {
    const nextL = labeled.next();
    if (nextL.done) break;
    const bl = nextL.value;
    const nextU = unlabeled.next();
    const bu = nextU.done ? null : nextU.value;
    const i = step;
    if (bl.size === 1 || bu?.size === 1) break;
    try {
      const r = cotrainStep(lane, c, s, bl, useUnlabeled ? bu : null);
      meter.add(r.labeled, bl.size);
      if (r.unlabeled) meter.add(r.unlabeled, bu!.size);
    } catch (e) {
      withContext(e, `${where}, step ${i}`, bl);
    }
    step++;
    if (await onStep(i, total, meter.values())) return { step, stopped: step < total };
  }
  return { step, stopped: false };
}

/**
 * The official label refinement of a labeled batch (the peer's split): per caption
 * prob + (1 − prob) · ctt_prob · ctt_label, looked up by the caption's dataset id.
 */
export function labeledTargets(s: NetSplit, ids: ArrayLike<number>): Float32Array {
  const targets = new Float32Array(ids.length);
  for (let b = 0; b < ids.length; b++) {
    const id = ids[b];
    targets[b] = s.prob[id] + (1 - s.prob[id]) * s.probCtt[id] * s.cleanCtt[id];
  }
  return targets;
}

/**
 * One co-training step on the peer's split `s`: a labeled step with the refined targets as [B, 1]
 * margin labels (the official tensor shape: they scale row i of the scores), then, when an
 * unlabeled batch is given (from `warmup_epoch_2` on), an unlabeled step with pseudo-captions from
 * the labeled batch, whose PO outputs go to the net's bank. `options` overrides step options
 * (the fixtures set dropout 0).
 */
export function cotrainStep(
  lane: Pick<LaneState, "net" | "bank" | "modelRng">,
  c: StepConfig,
  s: NetSplit,
  bl: TrainBatch,
  bu: TrainBatch | null,
  options: Partial<StepOptions> = {},
): { labeled: Record<string, number>; unlabeled: Record<string, number> | null } {
  const o = { ...stepOptions(c, lane.modelRng), ...options };
  const r = trainStep(lane.net, bl, "lb_train", o, { values: labeledTargets(s, bl.ids), axis: "row" });
  if (!bu) return { labeled: r.losses, unlabeled: null };
  const u = unlabeledStep(lane.net, bu, bl, o);
  // --po_bank_index subset: the official code stores these under the batch's positions inside
  // the unlabeled / labeled subsets, which are other captions' entries in the bank.
  const subset = c.po_bank_index === "subset";
  writeBank(lane.bank, subset ? bu.positions : bu.ids, u.bank);
  writeBank(lane.bank, subset ? bl.positions : bl.ids, u.bankLabeled!);
  return { labeled: r.losses, unlabeled: { triplet_loss_u: u.losses.triplet_loss } };
}

class RunningMeans {
  private sums = new Map<string, [number, number]>();
  add(values: Record<string, number>, n: number) {
    for (const [k, v] of Object.entries(values)) {
      const s = this.sums.get(k) ?? [0, 0];
      s[0] += v * n;
      s[1] += n;
      this.sums.set(k, s);
    }
  }
  values(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, [s, n]] of this.sums) out[k] = s / n;
    return out;
  }
}
