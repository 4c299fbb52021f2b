/**
 * PC2 co-training (the official `co_train.main`), top to bottom:
 *   data → two SGRAF nets → warmup epochs (PO banks) → per co-training epoch:
 *   split (per-sample loss and PO consistency, two-component mixtures) → train A on B's split and
 *   B on A's (labeled batches with refined targets; unlabeled batches with pseudo-captions from
 *   `warmup_epoch_2` on) → validation with both nets → test at the best validation → checkpoints.
 *
 * Everything that lasts between steps lives in `Run` (trainer/run-state.ts) and is exactly what a
 * checkpoint stores. The schedule is a list of parts (warmup A, warmup B; split, train A, train B);
 * the cursor records the part, the step inside it and the data-order RNG at the part's start, so
 * that an interrupted run resumes at the very next step with identical state.
 */
import { appendFileSync, mkdirSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { cleanComponent, fitGmm1D } from "../shared/eval/gmm";
import { COLLAPSE_RATIO, DEGENERATE_SPLIT_SHARE, type NetReference, collapsed, degenerateSplit, rocAuc } from "../shared/eval/diagnostics";
import { formatRecall } from "../shared/eval/metrics";
import { klConsistency, minMaxNormalize, splitPrecisionRecall, splitProb } from "../shared/eval/split";
import { sgrafConfig } from "../shared/model/config";
import { Adam } from "../shared/model/optim";
import { NonFiniteLossError, type StepOptions, evalLoss, trainStep, unlabeledStep } from "../shared/model/steps";
import * as tf from "../shared/model/tf";
import { Random, type RandomState } from "../shared/random";
import type { PoBank } from "./checkpoint";
import type { TrainConfig } from "./config";
import { copyFileAtomic, outputError, removeStaleTemporaries, writeFileAtomic } from "./files";
import { type TrainBatch, batchCount, shuffledBatches } from "./data/batches";
import { type Data, loadData } from "./data/load";
import { type SplitEvaluation, evaluateSplit, formatMetricLines } from "./evaluate";
import type { AlarmRecord, MetricsRecord, Net as NetName, Phase } from "./metrics";
import { COTRAIN_PARTS, type NetSplit, type Run, TrainingFault, WARMUP_PARTS, disposeRun, nextEpoch, nextPart, partName, restoreNet, saveRun, startRun } from "./run-state";

export type { Data } from "./data/load";
export type { Run } from "./run-state";
export { TrainingFault } from "./run-state";

export interface TrainHooks {
  /** Human-readable lines (progress, official-style prints). */
  log(line: string): void;
  /** Progress of a phase: start / tick / end. */
  progress: { start(phase: string, total: number): void; tick(step: number, values?: Record<string, number>): void; end(summary?: string): void };
  /** Polled after every step: true once SIGINT/SIGTERM asked the run to stop. */
  stopRequested(): boolean;
  /** Called after each co-training split (studies may replace `run.split`, e.g. by another code's). */
  afterSplit?(run: Run, data: Data): void;
  /** Writes the report and the exported model at the end (or after an interruption). */
  finish?(run: Run, data: Data, outputDir: string): Promise<void>;
}

export class TrainingInterrupted extends Error {
  constructor(readonly checkpoint: string) {
    super(`interrupted; resumable checkpoint written to ${checkpoint}`);
    this.name = "TrainingInterrupted";
  }
}

export interface TrainResult {
  outputDir: string;
  bestEpoch: number | "warmup" | null;
  bestRsum: number;
  test: SplitEvaluation | null;
  lastValidation: SplitEvaluation | null;
}

/** Names of the files a run writes in its output directory. */
export const OUTPUT_FILES = {
  config: "config.json",
  metrics: "metrics.jsonl",
  results: "results.json",
  latest: "checkpoint_latest_validation.safetensors",
  best: "checkpoint_best_validation.safetensors",
  interrupted: "checkpoint_interrupted.safetensors",
  warmup: (epoch: number) => `warmup_model_${epoch}.safetensors`,
  report: "report.html",
  model: "model",
} as const;

export async function train(config0: TrainConfig, hooks: TrainHooks, options: { cacheDir?: string; backend?: string } = {}): Promise<TrainResult> {
  const outputDir = resolve(config0.output_dir);
  try {
    mkdirSync(outputDir, { recursive: true });
  } catch (e) {
    throw outputError(outputDir, e);
  }
  for (const name of removeStaleTemporaries(outputDir)) hooks.log(`removed ${name}, left by a run that did not finish writing it`);
  const metricsPath = join(outputDir, OUTPUT_FILES.metrics);
  const metrics = (r: MetricsRecord) => {
    try {
      appendFileSync(metricsPath, `${JSON.stringify(r)}\n`);
    } catch (e) {
      throw outputError(metricsPath, e);
    }
  };

  // Data, and the configuration as it resolved (the embedded dataset's paths, the noise file).
  hooks.log("load and process dataset ...");
  const { data, resolved } = loadData(config0, options.cacheDir ?? resolve(".cache"));
  const config: TrainConfig = { ...config0, ...resolved };
  hooks.log(`train data: ${data.train.images.count} images, ${data.train.length} captions; dev ${data.dev.length} captions; test (${data.test.split}) ${data.test.length} captions`);
  if (data.noise.source !== "none") hooks.log(`noise index ${data.noise.source === "file" ? "loaded from" : "drawn and saved to"} ${data.noise.file}: ${data.noise.noisy.reduce((a, b) => a + b, 0)} of ${data.train.length} captions mismatched`);
  const model = sgrafConfig({ ...config, vocab_size: data.vocabSize });
  writeFileAtomic(join(outputDir, OUTPUT_FILES.config), `${JSON.stringify({ ...config, vocab_size: data.vocabSize, backend_active: options.backend ?? tf.getBackend() }, null, 2)}\n`);

  // The two nets: fresh, from a warmup checkpoint, or resumed.
  const run = startRun(config, model, data, hooks.log);
  const interrupt = async (): Promise<never> => {
    const path = join(outputDir, OUTPUT_FILES.interrupted);
    await saveRun(run, path);
    metrics({ type: "event", message: `interrupted at ${run.cursor.stage} epoch ${run.cursor.epoch}, ${partName(run.cursor)}, step ${run.cursor.step}` });
    await hooks.finish?.(run, data, outputDir);
    throw new TrainingInterrupted(path);
  };
  const ctx: PartContext = { run, data, hooks, metrics, interrupt };
  let lastValidation: SplitEvaluation | null = null;
  /** The official validation, with each net's similarity spread recorded beside the recalls. */
  const validate = (epoch: number | "warmup", best: (v: SplitEvaluation) => boolean, recovered = false): SplitEvaluation => {
    hooks.log("Validating ...");
    const r = evaluateSplit([run.nets.A.params, run.nets.B.params], data.dev, { batchSize: config.batch_size });
    hooks.log(`Image to text: ${formatRecall(r.i2t)}`);
    hooks.log(`Text to image: ${formatRecall(r.t2i)}`);
    const spread = { A: r.spreads![0], B: r.spreads![1] };
    metrics({ type: "validation", epoch, i2t: r.i2t, t2i: r.t2i, rsum: r.rsum, best: best(r), spread, ...(recovered ? { recovered } : {}) });
    lastValidation = r;
    return r;
  };
  /** A test at a best validation: the checkpoint of this state becomes the best one. */
  const keepBest = async (epoch: number | "warmup", v: SplitEvaluation) => {
    run.bestRsum = v.rsum;
    run.bestEpoch = epoch;
    run.bestTest = test(ctx, epoch);
    await saveRun(run, join(outputDir, OUTPUT_FILES.latest));
    copyFileAtomic(join(outputDir, OUTPUT_FILES.latest), join(outputDir, OUTPUT_FILES.best));
  };

  try {
    // Warmup: each net alone over all (noisy) pairs, then fresh optimizers for co-training.
    if (run.cursor.stage === "warmup") {
      hooks.log("* Warmup");
      while (run.cursor.epoch < config.warmup_epoch) {
        const t0 = performance.now();
        while (run.cursor.part < WARMUP_PARTS.length) nextPart(run, await warmupPart(ctx, run.cursor.part === 0 ? "A" : "B"));
        metrics({ type: "epoch", phase: "warmup", epoch: run.cursor.epoch, seconds: (performance.now() - t0) / 1000, lr: run.nets.A.optimizer.lr });
        nextEpoch(run);
      }
      // Fresh optimizers before the warmup checkpoint, so that resuming from it (or loading it
      // with --model_path) starts co-training exactly where this run does.
      for (const k of ["A", "B"] as const) {
        run.nets[k].optimizer.reset();
        run.nets[k].optimizer = new Adam({ lr: config.learning_rate });
      }
      run.cursor = { stage: config.num_epochs > 0 ? "cotrain" : "done", epoch: 0, part: 0, step: 0, dataRng: run.cursor.dataRng };
      run.restorePoint = join(outputDir, OUTPUT_FILES.warmup(Math.max(0, config.warmup_epoch - 1)));
      await saveRun(run, run.restorePoint);
      // The post-warmup model is a candidate with --select all, and the result with --num_epochs 0
      // (plain SGRAF on the noisy pairs); the official selection starts after it.
      const candidate = config.select === "all" || config.num_epochs === 0;
      const v = validate("warmup", () => candidate);
      run.reference = netReference(v);
      if (candidate) await keepBest("warmup", v);
      writeResults(outputDir, run);
    }

    // Co-training: per epoch split → train A → train B → validate → test at the best → checkpoint.
    hooks.log("* Co-training");
    if (run.cursor.stage === "cotrain" && run.reference === null) {
      // Started from a warmup checkpoint: the collapse rule's reference is the loaded nets' spread.
      const r = evaluateSplit([run.nets.A.params, run.nets.B.params], data.dev, { batchSize: config.batch_size });
      run.reference = netReference(r);
      hooks.log(`the loaded nets on the validation split: similarity std A ${run.reference.A.std.toExponential(2)}, B ${run.reference.B.std.toExponential(2)}; own rsum A ${run.reference.A.rsum.toFixed(1)}, B ${run.reference.B.rsum.toFixed(1)}`);
    }
    while (run.cursor.stage === "cotrain" && run.cursor.epoch < config.num_epochs) {
      const epoch = run.cursor.epoch;
      const t0 = performance.now();
      const lr = learningRate(config, epoch);
      run.nets.A.optimizer.lr = lr * run.lrScale.A;
      run.nets.B.optimizer.lr = lr * run.lrScale.B;
      hooks.log(`Epoch [${epoch}/${config.num_epochs}] lr ${lr}${run.lrScale.A !== 1 || run.lrScale.B !== 1 ? ` (× ${run.lrScale.A} for A, × ${run.lrScale.B} for B after recoveries)` : ""}`);
      while (run.cursor.part < COTRAIN_PARTS.length) {
        const part = COTRAIN_PARTS[run.cursor.part];
        if (part === "split") {
          nextPart(run, await splitPart(ctx));
          hooks.afterSplit?.(run, data);
        } else nextPart(run, await trainPart(ctx, part === "train A" ? "A" : "B"));
      }
      if (epoch === config.warmup_epoch_2 && config.select === "official") run.bestRsum = 0; // the official reset when pseudo-captioning starts
      const isBest = (r: SplitEvaluation) => r.rsum > run.bestRsum;
      // A validation whose collapsed net is about to be restored is not a candidate; the one after is.
      const willRestore = (r: SplitEvaluation) => config.recovery === "restore" && run.restorePoint !== null && netCollapsed(run, r).length > 0;
      let v = validate(epoch, (r) => !willRestore(r) && isBest(r));
      if (recoverCollapsed(ctx, epoch, v)) v = validate(epoch, isBest, true);
      metrics({ type: "epoch", phase: "train", epoch, seconds: (performance.now() - t0) / 1000, lr });
      nextEpoch(run);
      run.split = null;
      if (isBest(v)) await keepBest(epoch, v);
      else await saveRun(run, join(outputDir, OUTPUT_FILES.latest));
      run.restorePoint = join(outputDir, OUTPUT_FILES.latest);
      writeResults(outputDir, run);
    }
    writeResults(outputDir, run);
    await hooks.finish?.(run, data, outputDir);
    return { outputDir, bestEpoch: run.bestEpoch, bestRsum: run.bestRsum, test: run.bestTest, lastValidation };
  } finally {
    disposeRun(run);
  }
}

// ---------------------------------------------------------------------------------------------
// Phases

interface PartContext {
  run: Run;
  data: Data;
  hooks: TrainHooks;
  metrics: (r: MetricsRecord) => void;
  /** Saves a resumable checkpoint at the current step and stops. */
  interrupt(): Promise<never>;
}

function stepOptions(run: Pick<Run, "config" | "modelRng">) {
  const c = run.config;
  return { margin: c.margin, lambdaEn: c.lambda_en, gradClip: c.grad_clip, softMargin: c.soft_margin, hardNegative: true, rng: run.modelRng };
}

function writeBank(bank: PoBank, ids: ArrayLike<number>, probs: Float32Array) {
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

/** After a training step: count it, show progress, log every `log_step` steps, answer a stop request. */
async function afterStep(ctx: PartContext, phase: Phase, which: NetName, i: number, total: number, meter: RunningMeans): Promise<void> {
  const { run } = ctx;
  run.cursor.step++;
  ctx.hooks.progress.tick(run.cursor.step, meter.values());
  if (i % run.config.log_step === 0 || run.cursor.step === total) {
    ctx.metrics({ type: "step", phase, net: which, epoch: run.cursor.epoch, step: i, steps: total, lr: run.nets[which].optimizer.lr, time: Date.now() / 1000, ...meter.values() });
  }
  if (ctx.hooks.stopRequested()) await ctx.interrupt();
}

/** Official `warmup`: one epoch of one net over all (noisy) pairs, storing PO in the bank. */
async function warmupPart(ctx: PartContext, which: "A" | "B"): Promise<RandomState> {
  const { run, data, hooks } = ctx;
  const net = run.nets[which];
  const c = run.config;
  const rng = Random.fromState(run.cursor.dataRng);
  const total = batchCount(data.train.length, c.batch_size);
  const meter = new RunningMeans();
  hooks.progress.start(`warmup ${which} [${run.cursor.epoch + 1}/${c.warmup_epoch}]`, total);
  let i = -1;
  for (const batch of shuffledBatches(data.pairs, rng, { batchSize: c.batch_size, startBatch: run.cursor.step })) {
    i = run.cursor.step;
    if (batch.size === 1) break; // batch norm needs two samples: the official loop drops it
    let r;
    try {
      r = trainStep(net, batch, c.warmup_type, stepOptions(run));
    } catch (e) {
      withContext(e, `warmup ${which}, epoch ${run.cursor.epoch}, step ${i}`, batch);
    }
    writeBank(run.banks[which], batch.ids, r.bank);
    meter.add(r.losses, batch.size);
    await afterStep(ctx, "warmup", which, i, total, meter);
  }
  hooks.progress.end();
  return rng.state();
}

/**
 * Official `eval_train`: per-sample loss and PO consistency of every training pair for both nets
 * (eval mode), min-max normalised; two-component mixtures give the clean probabilities and the
 * split rule (force 1/100 unlabeled when nothing looks noisy) the labeled sets.
 */
async function splitPart(ctx: PartContext): Promise<RandomState> {
  const { run, data, hooks } = ctx;
  const c = run.config;
  const N = data.train.length;
  const rng = Random.fromState(run.cursor.dataRng);
  hooks.progress.start(`split [${run.cursor.epoch}]`, batchCount(N, c.batch_size));
  const { losses, ctt } = splitCriteria(run, data, rng, (step, k, what, ids) => {
    throw new TrainingFault(`split, epoch ${run.cursor.epoch}, batch ${step}, net ${k}: ${what} (sample ids ${ids.slice(0, 16).join(", ")}); training stopped, the last good checkpoint is intact`);
  }, (step) => hooks.progress.tick(step));
  hooks.progress.end();
  const known = data.noise.source !== "none";
  const out = {} as { A: NetSplit; B: NetSplit };
  for (const k of ["A", "B"] as const) {
    const parts = {} as Record<"loss" | "po", { prob: Float32Array; clean: Uint8Array }>;
    for (const [by, values] of [
      ["loss", losses[k]],
      ["po", ctt[k]],
    ] as const) {
      const { x, gmm, prob, split } = mixtureSplit(values, c.p_threshold);
      if (split.forced) hooks.log("No estimated noisy data. Enforce the 1/100 data with small probability to be unlabeled.");
      const q = known ? splitPrecisionRecall(split.clean, data.noise.noisy) : null;
      const selected = split.clean.reduce((a, v) => a + (v ? 0 : 1), 0);
      // How well the criterion alone separates the known noisy pairs, whatever threshold the mixture picks.
      const auc = known ? rocAuc(values, data.noise.noisy) : null;
      hooks.log(`Split ${k} by ${by}: ${selected} of ${N} selected noisy${q ? `, precision ${q.precision.toFixed(4)}, recall ${q.recall.toFixed(4)}, AUC ${auc!.toFixed(3)}` : ""}`);
      // The loss split is what the peer trains on: one that keeps (nearly) nothing or everything starves or floods it.
      if (by === "loss" && degenerateSplit((N - selected) / N)) alarm(ctx, "degenerate_split", run.cursor.epoch, k, (N - selected) / N, DEGENERATE_SPLIT_SHARE, `reported: net ${k === "A" ? "B" : "A"} trains on it`);
      ctx.metrics({
        type: "split",
        epoch: run.cursor.epoch,
        net: k,
        by,
        size: N,
        selected_noisy: selected,
        forced: split.forced,
        precision: q ? q.precision : null,
        recall: q ? q.recall : null,
        gmm: { means: [...gmm.means], variances: [...gmm.variances], weights: [...gmm.weights] },
        hist: histogram(x, known ? data.noise.noisy : null, 50),
        auc: auc !== null && Number.isFinite(auc) ? auc : null,
      });
      parts[by] = { prob, clean: split.clean };
    }
    out[k] = { prob: parts.loss.prob, clean: parts.loss.clean, probCtt: parts.po.prob, cleanCtt: parts.po.clean };
  }
  run.split = out;
  return rng.state();
}

/**
 * The split's criteria for both nets (eval mode): each training pair's per-sample loss and the KL
 * consistency of its PO output with the bank (0 where the bank has no entry). `bad` is called
 * with the pairs whose value is not finite.
 */
export function splitCriteria(
  run: Pick<Run, "nets" | "banks" | "config" | "model">,
  data: Data,
  rng: Random,
  bad: (step: number, net: NetName, what: string, ids: number[]) => void,
  tick: (step: number) => void = () => {},
  /** The batches to walk (default: a shuffled epoch drawn from `rng`). The per-sample loss is a mean over the batch, so they matter. */
  batches?: Iterable<TrainBatch>,
): { losses: { A: Float64Array; B: Float64Array }; ctt: { A: Float64Array; B: Float64Array } } {
  const c = run.config;
  const N = data.train.length;
  const K = run.model.proj_dim;
  const losses = { A: new Float64Array(N), B: new Float64Array(N) };
  const ctt = { A: new Float64Array(N), B: new Float64Array(N) };
  let step = 0;
  for (const batch of batches ?? shuffledBatches(data.pairs, rng, { batchSize: c.batch_size })) {
    for (const k of ["A", "B"] as const) {
      const { loss, probs } = evalLoss(run.nets[k].params, batch, c.margin);
      const bank = run.banks[k];
      const found: Record<string, number[]> = {};
      for (let b = 0; b < batch.size; b++) {
        const id = batch.ids[b];
        losses[k][id] = loss[b];
        if (bank.has[id]) ctt[k][id] = klConsistency(probs.subarray(b * K, (b + 1) * K), bank.probs.subarray(id * K, (id + 1) * K), K)[0];
        if (!Number.isFinite(losses[k][id])) (found[`per-sample loss is ${losses[k][id]}`] ??= []).push(id);
        if (!Number.isFinite(ctt[k][id])) (found[`PO consistency is ${ctt[k][id]}`] ??= []).push(id);
      }
      for (const [what, ids] of Object.entries(found)) bad(step, k, what, ids);
    }
    tick(++step);
  }
  return { losses, ctt };
}

/** One criterion's split: min-max normalised, a two-component mixture, its clean posteriors, the threshold rule. */
export function mixtureSplit(values: Float64Array, pThreshold: number) {
  const x = minMaxNormalize(values);
  const gmm = fitGmm1D(x);
  const prob = Float32Array.from(gmm.predictProba(x)[cleanComponent(gmm)]);
  return { x, gmm, prob, split: splitProb(prob, pThreshold) };
}

function histogram(x: Float64Array, noisy: Uint8Array | null, bins: number): { bins: number; clean: number[]; noisy: number[] | null } {
  const clean = new Array(bins).fill(0);
  const nz = noisy ? new Array(bins).fill(0) : null;
  for (let i = 0; i < x.length; i++) {
    const b = Math.min(bins - 1, Math.max(0, Math.floor(x[i] * bins)));
    if (nz && noisy![i]) nz[b]++;
    else clean[b]++;
  }
  return { bins, clean, noisy: nz };
}

/**
 * Official `train`: net trains on the other net's split. Labeled batches carry refined targets
 * prob + (1 − prob)·ctt_prob·ctt_label; from `warmup_epoch_2` on every labeled step is followed by
 * an unlabeled step whose pseudo-captions come from that labeled batch.
 */
async function trainPart(ctx: PartContext, which: "A" | "B"): Promise<RandomState> {
  const { run, data, hooks } = ctx;
  const c = run.config;
  const other = which === "A" ? "B" : "A";
  const s = run.split![other];
  const N = data.train.length;
  const labeledIds: number[] = [];
  const unlabeledIds: number[] = [];
  for (let i = 0; i < N; i++) (s.clean[i] ? labeledIds : unlabeledIds).push(i);
  const rng = Random.fromState(run.cursor.dataRng);
  const useUnlabeled = run.cursor.epoch >= c.warmup_epoch_2;
  const total = batchCount(labeledIds.length, c.batch_size);
  hooks.log(`train ${which}: labeled data has a size of ${labeledIds.length}, unlabeled ${unlabeledIds.length}`);
  // The unlabeled loader is cycled: a fresh shuffle whenever it runs out (the official try/except).
  const unlabeledBatches = function* () {
    if (!unlabeledIds.length) return;
    for (;;) yield* shuffledBatches(data.pairs, rng, { batchSize: c.batch_size, ids: unlabeledIds });
  };
  const labeled = shuffledBatches(data.pairs, rng, { batchSize: c.batch_size, ids: labeledIds });
  const unlabeled = unlabeledBatches();
  // Replay the part's draws up to the resumed step (both loaders advance once per step).
  for (let k = 0; k < run.cursor.step; k++) {
    labeled.next();
    unlabeled.next();
  }
  const meter = new RunningMeans();
  hooks.progress.start(`train ${which} [${run.cursor.epoch}/${c.num_epochs}]`, total);
  for (;;) {
    const nextL = labeled.next();
    if (nextL.done) break;
    const bl = nextL.value;
    const nextU = unlabeled.next();
    const bu = nextU.done ? null : nextU.value;
    const i = run.cursor.step;
    if (bl.size === 1 || bu?.size === 1) break;
    try {
      const r = cotrainStep(run, which, s, bl, useUnlabeled ? bu : null);
      meter.add(r.labeled, bl.size);
      if (r.unlabeled) meter.add(r.unlabeled, bu!.size);
    } catch (e) {
      withContext(e, `train ${which}, epoch ${run.cursor.epoch}, step ${i}`, bl);
    }
    await afterStep(ctx, "train", which, i, total, meter);
  }
  hooks.progress.end();
  return rng.state();
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
 * One co-training step of net `which` on the peer's split `s`: a labeled step with the refined
 * targets as [B, 1] margin labels (the official tensor shape: they scale row i of the scores), then,
 * when an unlabeled batch is given (from `warmup_epoch_2` on), an unlabeled step with pseudo-captions
 * from the labeled batch, whose PO outputs go to the net's bank.
 */
export function cotrainStep(
  run: Pick<Run, "nets" | "banks" | "config" | "modelRng">,
  which: NetName,
  s: NetSplit,
  bl: TrainBatch,
  bu: TrainBatch | null,
  options: Partial<StepOptions> = {},
): { labeled: Record<string, number>; unlabeled: Record<string, number> | null } {
  const net = run.nets[which];
  const o = { ...stepOptions(run), ...options };
  const r = trainStep(net, bl, "lb_train", o, { values: labeledTargets(s, bl.ids), axis: "row" });
  if (!bu) return { labeled: r.losses, unlabeled: null };
  const u = unlabeledStep(net, bu, bl, o);
  // --po_bank_index subset: the official code stores these under the batch's positions inside
  // the unlabeled / labeled subsets, which are other captions' entries in the bank.
  const subset = run.config.po_bank_index === "subset";
  writeBank(run.banks[which], subset ? bu.positions : bu.ids, u.bank);
  writeBank(run.banks[which], subset ? bl.positions : bl.ids, u.bankLabeled!);
  return { labeled: r.losses, unlabeled: { triplet_loss_u: u.losses.triplet_loss } };
}

/** Records what the diagnostics found, and logs it where a user will see it. */
function alarm(ctx: PartContext, kind: AlarmRecord["kind"], epoch: number | "warmup", net: NetName, value: number, threshold: number, action: string): void {
  const what = kind === "collapsed_net" ? `net ${net} COLLAPSED: its validation similarities went nearly constant (std ${value.toExponential(2)}, under ${threshold.toExponential(2)}, a tenth of its spread after warmup) and its own ranking is lost` : `net ${net}'s split is DEGENERATE: it keeps ${(100 * value).toFixed(1)}% of the pairs as clean`;
  ctx.hooks.log(`!! epoch ${epoch}: ${what}; ${action}`);
  ctx.metrics({ type: "alarm", kind, epoch: epoch === "warmup" ? 0 : epoch, net, value, threshold, action });
}

/**
 * After a co-training epoch's validation: a collapsed net is reported and, with --recovery
 * restore, put back to its state at the start of the epoch (the last checkpoint) with its learning
 * rate divided by 10 from then on. Returns whether a net was restored (the validation is then redone).
 */
function recoverCollapsed(ctx: PartContext, epoch: number, v: SplitEvaluation): boolean {
  const { run } = ctx;
  let restored = false;
  for (const k of netCollapsed(run, v)) {
    const std = v.spreads![k === "A" ? 0 : 1].std;
    const bound = COLLAPSE_RATIO * run.reference![k].std;
    if (run.config.recovery === "restore" && run.restorePoint) {
      restoreNet(run, k, run.restorePoint);
      run.lrScale[k] /= 10;
      alarm(ctx, "collapsed_net", epoch, k, std, bound, `restored from ${basename(run.restorePoint)}, learning rate × ${run.lrScale[k]} from now on (--recovery restore)`);
      restored = true;
    } else {
      alarm(ctx, "collapsed_net", epoch, k, std, bound, run.config.recovery === "off" ? "reported (--recovery off)" : "reported (no checkpoint to restore from)");
    }
  }
  return restored;
}

/** Each net's spread and own rsum in a validation: the reference of the collapse rule. */
function netReference(v: SplitEvaluation): { A: NetReference; B: NetReference } {
  const [a, b] = v.spreads!;
  return { A: { std: a.std, rsum: a.rsum ?? 0 }, B: { std: b.std, rsum: b.rsum ?? 0 } };
}

/** The nets whose validation similarities went nearly constant and whose own ranking was lost. */
function netCollapsed(run: Run, v: SplitEvaluation): NetName[] {
  if (!run.reference) return [];
  return (["A", "B"] as const).filter((k, i) => collapsed(v.spreads![i], run.reference![k]));
}

/** The official test at a best validation (MS-COCO: five 1K folds, and the full 5K printed beside). */
function test(ctx: PartContext, epoch: number | "warmup"): SplitEvaluation {
  const { run, data, hooks, metrics } = ctx;
  const nets = [run.nets.A.params, run.nets.B.params];
  const split = data.test.split as "test" | "testall";
  const evalOpts = { batchSize: run.config.batch_size };
  hooks.log("Best validation! Testing ...");
  const fold5 = data.dataName === "coco_precomp";
  const t = evaluateSplit(nets, data.test, { ...evalOpts, fold5 });
  for (const line of formatMetricLines(t)) hooks.log(line);
  if (fold5) {
    const full = evaluateSplit(nets, data.test, evalOpts);
    hooks.log("full 5K:");
    for (const line of formatMetricLines(full)) hooks.log(line);
    metrics({ type: "test", epoch, split, fold5: false, i2t: full.i2t, t2i: full.t2i, rsum: full.rsum });
  }
  metrics({ type: "test", epoch, split, fold5, i2t: t.i2t, t2i: t.t2i, rsum: t.rsum });
  return t;
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

// ---------------------------------------------------------------------------------------------
// Schedule and results

/** Learning rate of an epoch: `learning_rate * 0.1 ** (epoch // lr_update)` (adjust_learning_rate). */
export function learningRate(config: Pick<TrainConfig, "learning_rate" | "lr_update">, epoch: number): number {
  return config.learning_rate * 0.1 ** Math.floor(epoch / config.lr_update);
}

function writeResults(outputDir: string, run: Run) {
  const t = run.bestTest;
  const results = {
    best_validation_epoch: run.bestEpoch,
    best_validation_rsum: run.bestRsum,
    ...(t ? { i2t: t.i2t, t2i: t.t2i, rsum: t.rsum } : { i2t: null, t2i: null, rsum: null }),
  };
  writeFileAtomic(join(outputDir, OUTPUT_FILES.results), `${JSON.stringify(results, null, 2)}\n`);
}
