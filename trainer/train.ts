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
import { COLLAPSE_RATIO, DEGENERATE_SPLIT_SHARE, type RunReference, collapsed, degenerateSplit, rocAuc } from "../shared/eval/diagnostics";
import { formatRecall } from "../shared/eval/metrics";
import { klConsistency, minMaxNormalize, splitPrecisionRecall, splitProb } from "../shared/eval/split";
import { sgrafConfig } from "../shared/model/config";
import { Adam } from "../shared/model/optim";
import { evalLoss } from "../shared/model/steps";
import * as tf from "../shared/model/tf";
import { Random, type RandomState } from "../shared/random";
import type { TrainConfig } from "./config";
import { copyFileAtomic, outputError, removeStaleTemporaries, writeFileAtomic } from "./files";
import { type TrainBatch, batchCount, batchesInOrder, shuffledBatches, shuffledOrder } from "./data/batches";
import { EvalPool, poolSize } from "./eval-pool";
import { type Data, loadData } from "./data/load";
import { type SplitEvaluation, evaluateSplit, formatMetricLines, whilePausing } from "./evaluate";
import type { AlarmRecord, MetricsRecord, Net as NetName, Phase } from "./metrics";
import { yieldToEventLoop } from "./stop";
import { type OnStep, cotrainSteps, warmupSteps } from "./net-steps";
import { ParamStore } from "../shared/model/params";
import type { NetArrays } from "./eval-pool";
import { COTRAIN_PARTS, type NetSplit, type Run, TrainingFault, WARMUP_PARTS, disposeRun, nextEpoch, nextPart, partName, restoreNet, saveRun, startRun } from "./run-state";

export type { Data } from "./data/load";
export type { Run } from "./run-state";
export { TrainingFault } from "./run-state";

export interface TrainHooks {
  /** Human-readable lines (progress, official-style prints). */
  log(line: string): void;
  /** Progress of a phase: start / tick / end. */
  progress: { start(phase: string, total: number): void; tick(step: number, values?: Record<string, number>): void; end(summary?: string): void };
  /**
   * Polled after every step, split batch and evaluation shard, each time after a turn of the event
   * loop (so that signal handlers have run): true once SIGINT/SIGTERM asked the run to stop.
   */
  stopRequested(): boolean;
  /** Called after each co-training split (studies may replace `run.split`, e.g. by another code's). */
  afterSplit?(run: Run, data: Data): void;
  /**
   * Writes the report and the exported model at the end (or after an interruption); awaits `pause`
   * between its batches, which throws TrainingInterrupted once a stop is requested.
   */
  finish?(run: Run, data: Data, outputDir: string, pause: () => Promise<void>): Promise<void>;
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
  const interruptedPath = join(outputDir, OUTPUT_FILES.interrupted);
  let interrupting = false;
  /**
   * Saves the run where it stands (the cursor names the next thing to do: the step after the last
   * one done, or the evaluation under way, which a resume redoes), writes the report, and stops.
   */
  const interrupt = async (): Promise<never> => {
    // A stop asked again while the interruption's own report is written ends at once.
    if (interrupting) throw new TrainingInterrupted(interruptedPath);
    interrupting = true;
    await saveRun(run, interruptedPath);
    metrics({ type: "event", message: `interrupted at ${run.cursor.stage} epoch ${run.cursor.epoch}, ${partName(run.cursor)}, step ${run.cursor.step}` });
    await hooks.finish?.(run, data, outputDir, pause);
    throw new TrainingInterrupted(interruptedPath);
  };
  /** Between steps, batches and shards: let signal handlers run, then stop if one asked to. */
  const pause = async (): Promise<void> => {
    stopSelfAt(ctx.phase);
    await yieldToEventLoop();
    if (hooks.stopRequested()) await interrupt();
  };
  const pool = await startPool(config, options.backend ?? tf.getBackend(), hooks.log);
  if (run.cursor.lanes && !(config.parallel === "on" && pool)) {
    pool?.terminate();
    disposeRun(run);
    throw new TrainingFault(`${config.model_path}: the checkpoint was written while both nets ran at once (${partName(run.cursor)}); resume it with --parallel on and --eval_workers of 2 or more`);
  }
  if (config.parallel === "on" && !pool) hooks.log("--parallel on needs the evaluation pool (--eval_workers >= 2 on wasm or cpu): the nets train one after the other");
  const ctx: PartContext = { run, data, hooks, metrics, interrupt, pause, phase: "warmup", pool };
  const evalOptions = { batchSize: config.batch_size, pause, pool };
  let lastValidation: SplitEvaluation | null = null;
  /** The official validation, with each net's similarity spread recorded beside the recalls. */
  const validate = async (epoch: number | "warmup", best: (v: SplitEvaluation) => boolean, recovered = false): Promise<SplitEvaluation> => {
    ctx.phase = "validation";
    hooks.log("Validating ...");
    const r = await evaluateSplit([run.nets.A.params, run.nets.B.params], data.dev, evalOptions);
    hooks.log(`Image to text: ${formatRecall(r.i2t)}`);
    hooks.log(`Text to image: ${formatRecall(r.t2i)}`);
    const spread = { A: r.spreads![0], B: r.spreads![1] };
    metrics({ type: "validation", epoch, i2t: r.i2t, t2i: r.t2i, rsum: r.rsum, best: best(r), spread, ...(recovered ? { recovered } : {}) });
    lastValidation = r;
    return r;
  };
  /**
   * Saves the state after an evaluated epoch as the latest checkpoint and, at a best validation
   * (`tested`: the test already run on it), as the best one.
   */
  const checkpoint = async (epoch: number | "warmup", v: SplitEvaluation, tested: SplitEvaluation | null) => {
    if (tested) {
      run.bestRsum = v.rsum;
      run.bestEpoch = epoch;
      run.bestTest = tested;
    }
    await saveRun(run, join(outputDir, OUTPUT_FILES.latest));
    if (tested) copyFileAtomic(join(outputDir, OUTPUT_FILES.latest), join(outputDir, OUTPUT_FILES.best));
  };

  try {
    // Warmup: each net alone over all (noisy) pairs, then fresh optimizers for co-training.
    if (run.cursor.stage === "warmup") {
      hooks.log("* Warmup");
      while (run.cursor.epoch < config.warmup_epoch) {
        const t0 = performance.now();
        while (run.cursor.part < WARMUP_PARTS.length) {
          if (runsParallel(ctx, 0)) nextPart(run, await parallelPart(ctx, "warmup"), 2);
          else nextPart(run, await warmupPart(ctx, run.cursor.part === 0 ? "A" : "B"));
        }
        metrics({ type: "epoch", phase: "warmup", epoch: run.cursor.epoch, seconds: (performance.now() - t0) / 1000, lr: run.nets.A.optimizer.lr });
        nextEpoch(run);
      }
      // Fresh optimizers before the warmup checkpoint, so that resuming from it (or loading it
      // with --model_path) starts co-training exactly where this run does.
      for (const k of ["A", "B"] as const) {
        run.nets[k].optimizer.reset();
        run.nets[k].optimizer = new Adam({ lr: config.learning_rate });
      }
      // The warmup checkpoint starts co-training; the run's own cursor stays at the end of warmup
      // until its validation is done, so that an interruption there redoes it on resume.
      const warmupEnd = run.cursor;
      run.cursor = { stage: config.num_epochs > 0 ? "cotrain" : "done", epoch: 0, part: 0, step: 0, dataRng: warmupEnd.dataRng };
      const after = run.cursor;
      run.restorePoint = join(outputDir, OUTPUT_FILES.warmup(Math.max(0, config.warmup_epoch - 1)));
      await saveRun(run, run.restorePoint);
      run.cursor = warmupEnd;
      // The post-warmup model is a candidate with --select all, and the result with --num_epochs 0
      // (plain SGRAF on the noisy pairs); the official selection starts after it.
      const candidate = config.select === "all" || config.num_epochs === 0;
      const v = await validate("warmup", () => candidate);
      run.reference = netReference(v);
      const tested = candidate ? await test(ctx, "warmup") : null;
      run.cursor = after;
      if (candidate) await checkpoint("warmup", v, tested);
      writeResults(outputDir, run);
    }

    // Co-training: per epoch split → train A → train B → validate → test at the best → checkpoint.
    hooks.log("* Co-training");
    if (run.cursor.stage === "cotrain" && run.reference === null) {
      // Started from a warmup checkpoint: the collapse rule's reference is the loaded nets' spread.
      ctx.phase = "validation";
      const r = await evaluateSplit([run.nets.A.params, run.nets.B.params], data.dev, evalOptions);
      run.reference = netReference(r);
      hooks.log(`the loaded nets on the validation split: similarity std A ${run.reference.A.std.toExponential(2)}, B ${run.reference.B.std.toExponential(2)}; own rsum A ${run.reference.A.rsum.toFixed(1)}, B ${run.reference.B.rsum.toFixed(1)}`);
    }
    let cotrained = false;
    while (run.cursor.stage === "cotrain" && run.cursor.epoch < config.num_epochs) {
      cotrained = true;
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
        }
        else if (runsParallel(ctx, 1)) nextPart(run, await parallelPart(ctx, "cotrain"), 2);
        else nextPart(run, await trainPart(ctx, part === "train A" ? "A" : "B"));
      }
      if (epoch === config.warmup_epoch_2 && config.select === "official") run.bestRsum = 0; // the official reset when pseudo-captioning starts
      const isBest = (r: SplitEvaluation) => r.rsum > run.bestRsum;
      // A validation whose collapsed net is about to be restored is not a candidate; the one after is.
      const willRestore = (r: SplitEvaluation) => config.recovery === "restore" && run.restorePoint !== null && netCollapsed(run, r).length > 0;
      let v = await validate(epoch, (r) => !willRestore(r) && isBest(r));
      if (recoverCollapsed(ctx, epoch, v)) v = await validate(epoch, isBest, true);
      // Everything that can be interrupted happens before the cursor moves on: a resume redoes it.
      const tested = isBest(v) ? await test(ctx, epoch) : null;
      metrics({ type: "epoch", phase: "train", epoch, seconds: (performance.now() - t0) / 1000, lr });
      nextEpoch(run);
      run.split = null;
      await checkpoint(epoch, v, tested);
      run.restorePoint = join(outputDir, OUTPUT_FILES.latest);
      writeResults(outputDir, run);
    }
    if (cotrained) checkBelowWarmup(ctx);
    writeResults(outputDir, run);
    ctx.phase = "export";
    await hooks.finish?.(run, data, outputDir, pause);
    return { outputDir, bestEpoch: run.bestEpoch, bestRsum: run.bestRsum, test: run.bestTest, lastValidation };
  } finally {
    pool?.terminate();
    disposeRun(run);
  }
}

/** The evaluation pool of --eval_workers; none on one core, or on a GPU backend (the device is shared anyway). */
async function startPool(config: TrainConfig, backend: string, log: (line: string) => void): Promise<EvalPool | null> {
  const size = poolSize(config.eval_workers);
  if (size < 2) return null;
  if (backend !== "wasm" && backend !== "cpu") {
    log(`--eval_workers: evaluation stays in the main thread on the ${backend} backend`);
    return null;
  }
  const pool = await EvalPool.start(size, backend);
  log(`validation, test and the split pass on ${size} workers (--eval_workers ${config.eval_workers || `0: one per core`})`);
  return pool;
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
  /** Yields to the event loop, then interrupts if a stop was requested. */
  pause(): Promise<void>;
  /** What the run is doing (the signal tests stop the process at a phase: see stopSelfAt). */
  phase: RunPhase;
  /** Workers for evaluation and the split pass (--eval_workers), or null: all in this thread. */
  pool: EvalPool | null;
}

export const RUN_PHASES = ["warmup", "split", "train", "validation", "test", "export"] as const;
export type RunPhase = (typeof RUN_PHASES)[number];

let stoppedSelf = false;
/**
 * For the signal tests (test/trainer/signals.test.ts): with PC2_SIGSTOP_AT=<phase> the process
 * stops itself (SIGSTOP) at its first pause in that phase, once, so that a test can send a real
 * SIGINT at an exact point of a real run and then let it continue (SIGCONT). Unset, it does nothing.
 */
function stopSelfAt(phase: RunPhase): void {
  if (stoppedSelf || process.env.PC2_SIGSTOP_AT !== phase) return;
  stoppedSelf = true;
  process.kill(process.pid, "SIGSTOP");
}

/** After a training step: count it, show progress, log every `log_step` steps, answer a stop request. */
function stepLogger(ctx: PartContext, phase: Phase, which: NetName): OnStep {
  return async (i, total, values) => {
    const { run } = ctx;
    run.cursor.step++;
    ctx.hooks.progress.tick(run.cursor.step, values);
    logStep(ctx, phase, which, i, total, values);
    await ctx.pause();
    return false;
  };
}

/** The step record of `metrics.jsonl`, every `log_step` steps and at the part's last. */
function logStep(ctx: PartContext, phase: Phase, which: NetName, i: number, total: number, values: Record<string, number>): void {
  const { run } = ctx;
  if (i % run.config.log_step === 0 || i + 1 === total) {
    ctx.metrics({ type: "step", phase, net: which, epoch: run.cursor.epoch, step: i, steps: total, lr: run.nets[which].optimizer.lr, time: Date.now() / 1000, ...values });
  }
}

/** Official `warmup`: one epoch of one net over all (noisy) pairs, storing PO in the bank. */
async function warmupPart(ctx: PartContext, which: "A" | "B"): Promise<RandomState> {
  const { run, data, hooks } = ctx;
  ctx.phase = "warmup";
  const c = run.config;
  const rng = Random.fromState(run.cursor.dataRng);
  hooks.progress.start(`warmup ${which} [${run.cursor.epoch + 1}/${c.warmup_epoch}]`, batchCount(data.train.length, c.batch_size));
  const lane = { net: run.nets[which], bank: run.banks[which], dataRng: rng, modelRng: run.modelRng, step: run.cursor.step };
  await warmupSteps(lane, data.pairs, c, `warmup ${which}, epoch ${run.cursor.epoch}`, stepLogger(ctx, "warmup", which));
  hooks.progress.end();
  return rng.state();
}

/**
 * Whether the part pair starting at `first` (warmup A+B at 0, train A+B at 1) runs both nets at
 * once: --parallel on with a pool, from the pair's start or inside a parallel part (a part begun
 * one net after the other, in a checkpoint of a run without --parallel, is finished that way).
 */
function runsParallel(ctx: PartContext, first: number): boolean {
  const c = ctx.run.cursor;
  return ctx.run.config.parallel === "on" && ctx.pool !== null && c.part === first && (c.step === 0 || c.lanes !== undefined);
}

/**
 * Warmup or co-training of both nets at once, each on a worker of the pool (net-steps.ts there).
 * Each net draws its data order and dropout from its own stream, both drawn from the run's data
 * RNG at the part's start, so the result does not depend on which worker is faster. Step records
 * and progress come from the workers as they go; a stop asked meanwhile reaches them through the
 * pool's shared flag, and each stops after its current step.
 */
async function parallelPart(ctx: PartContext, kind: "warmup" | "cotrain"): Promise<RandomState> {
  const { run, data, hooks } = ctx;
  const pool = ctx.pool!;
  const c = run.config;
  ctx.phase = kind === "warmup" ? "warmup" : "train";
  const base = Random.fromState(run.cursor.dataRng);
  const seeds = [base.nextUint32(), base.nextUint32(), base.nextUint32(), base.nextUint32()];
  run.cursor.lanes ??= {
    A: { step: 0, dataRng: new Random(seeds[0]).state(), modelRng: new Random(seeds[1]).state() },
    B: { step: 0, dataRng: new Random(seeds[2]).state(), modelRng: new Random(seeds[3]).state() },
  };
  const lanes = run.cursor.lanes;
  const phase: Phase = kind === "warmup" ? "warmup" : "train";
  const peerSplit = (k: "A" | "B") => (kind === "cotrain" ? run.split![k === "A" ? "B" : "A"] : undefined);
  const totals = { A: 0, B: 0 };
  for (const k of ["A", "B"] as const) {
    const s = peerSplit(k);
    const labeled = s ? s.clean.reduce((a, v) => a + v, 0) : data.train.length;
    totals[k] = batchCount(labeled, c.batch_size);
    if (s) hooks.log(`train ${k}: labeled data has a size of ${labeled}, unlabeled ${data.train.length - labeled}`);
  }
  const label = kind === "warmup" ? `warmup A+B [${run.cursor.epoch + 1}/${c.warmup_epoch}]` : `train A+B [${run.cursor.epoch}/${c.num_epochs}]`;
  hooks.progress.start(label, totals.A + totals.B);
  let done = lanes.A.step + lanes.B.step;
  pool.clearStop();
  const runLane = async (k: "A" | "B") => {
    const net = run.nets[k];
    const bank = run.banks[k];
    const request = {
      part: kind,
      model: run.model,
      net: (await net.params.toArrays()) as NetArrays,
      optimizer: (await net.optimizer.toArrays()) as NetArrays,
      lr: net.optimizer.lr,
      bank: { probs: bank.probs, has: bank.has, classes: bank.classes },
      dataRng: lanes[k].dataRng,
      modelRng: lanes[k].modelRng,
      step: lanes[k].step,
      config: c,
      split: peerSplit(k),
      epoch: run.cursor.epoch,
      where: `${phase} ${k}, epoch ${run.cursor.epoch}`,
    };
    return pool.lane(data.pairs, request, (e) => {
      hooks.progress.tick(++done, e.values);
      logStep(ctx, phase, k, e.i, e.total, e.values);
      stopSelfAt(ctx.phase);
      if (hooks.stopRequested()) pool.requestStop();
    });
  };
  await yieldToEventLoop();
  const results = await Promise.all([runLane("A"), runLane("B")]);
  (["A", "B"] as const).forEach((k, i) => {
    const r = results[i];
    const lr = run.nets[k].optimizer.lr;
    run.nets[k].params.dispose();
    run.nets[k].optimizer.reset();
    const optimizer = new Adam({ lr });
    optimizer.loadArrays(r.optimizer);
    run.nets[k] = { params: ParamStore.fromArrays(run.model, r.net, "parallel lane"), optimizer };
    run.banks[k] = r.bank;
    lanes[k] = { step: r.step, dataRng: lanes[k].dataRng, modelRng: r.modelRng };
  });
  hooks.progress.end();
  if (results.some((r) => r.stopped)) await ctx.interrupt();
  run.cursor.lanes = undefined;
  return base.state();
}

/**
 * Official `eval_train`: per-sample loss and PO consistency of every training pair for both nets
 * (eval mode), min-max normalised; two-component mixtures give the clean probabilities and the
 * split rule (force 1/100 unlabeled when nothing looks noisy) the labeled sets.
 */
async function splitPart(ctx: PartContext): Promise<RandomState> {
  const { run, data, hooks } = ctx;
  ctx.phase = "split";
  const c = run.config;
  const N = data.train.length;
  const rng = Random.fromState(run.cursor.dataRng);
  const total = batchCount(N, c.batch_size);
  hooks.progress.start(`split [${run.cursor.epoch}]`, total);
  // Both nets walk the same batches (a sample's loss depends on the others in its batch): one order, drawn as shuffledBatches would.
  const order = shuffledOrder(N, rng);
  const pool = ctx.pool && EvalPool.canServe(data.pairs) ? ctx.pool : null;
  const scores = pool ? await poolSplitScores(ctx, pool, order) : await splitScores(ctx, order);
  hooks.progress.end();
  const all = Int32Array.from({ length: N }, (_, i) => i);
  for (const k of ["A", "B"] as const) {
    for (const [what, ids] of nonFinite(scores, k, all)) {
      throw new TrainingFault(`split, epoch ${run.cursor.epoch}, net ${k}: ${what} (sample ids ${ids.slice(0, 16).join(", ")}); training stopped, the last good checkpoint is intact`);
    }
  }
  const { losses, ctt } = scores;
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

type SplitScores = { losses: { A: Float64Array; B: Float64Array }; ctt: { A: Float64Array; B: Float64Array } };
type Scoring = Pick<Run, "nets" | "banks" | "config" | "model">;

function emptyScores(n: number): SplitScores {
  return { losses: { A: new Float64Array(n), B: new Float64Array(n) }, ctt: { A: new Float64Array(n), B: new Float64Array(n) } };
}

/** Both nets' per-sample loss and PO consistency (eval mode) of one batch, written into `out`. */
function scoreBatch(run: Scoring, batch: TrainBatch, out: SplitScores): void {
  const K = run.model.proj_dim;
  for (const k of ["A", "B"] as const) {
    const { loss, probs } = evalLoss(run.nets[k].params, batch, run.config.margin);
    const bank = run.banks[k];
    for (let b = 0; b < batch.size; b++) {
      const id = batch.ids[b];
      out.losses[k][id] = loss[b];
      if (bank.has[id]) out.ctt[k][id] = klConsistency(probs.subarray(b * K, (b + 1) * K), bank.probs.subarray(id * K, (id + 1) * K), K)[0];
    }
  }
}

/** Net k's pairs among `ids` whose loss or PO consistency is not finite, grouped by what was found. */
function nonFinite(scores: SplitScores, k: NetName, ids: ArrayLike<number>): Array<[string, number[]]> {
  const found: Record<string, number[]> = {};
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isFinite(scores.losses[k][id])) (found[`per-sample loss is ${scores.losses[k][id]}`] ??= []).push(id);
    if (!Number.isFinite(scores.ctt[k][id])) (found[`PO consistency is ${scores.ctt[k][id]}`] ??= []).push(id);
  }
  return Object.entries(found);
}

/** Per-sample loss and PO consistency of both nets, batch by batch in this thread. */
async function splitScores(ctx: PartContext, order: Int32Array): Promise<SplitScores> {
  const { run, data, hooks } = ctx;
  const N = data.train.length;
  const out = emptyScores(N);
  const ids = Int32Array.from({ length: N }, (_, i) => i);
  let step = 0;
  for (const batch of batchesInOrder(data.pairs, ids, order, { batchSize: run.config.batch_size })) {
    scoreBatch(run, batch, out);
    hooks.progress.tick(++step);
    await ctx.pause(); // an interrupted split is redone from its start: the cursor is still at step 0
  }
  return out;
}

/**
 * The split's criteria for both nets, for studies and fixtures (benchmarks/cotrain_epoch0.ts,
 * test/cotrain-parity.test.ts): each training pair's per-sample loss and the KL consistency of
 * its PO output with the bank (0 where the bank has no entry), over `batches` (default: a
 * shuffled epoch drawn from `rng`; the per-sample loss is a mean over its batch, so they matter).
 * `bad` is called with a batch's pairs whose value is not finite.
 */
export function splitCriteria(
  run: Scoring,
  data: Data,
  rng: Random,
  bad: (step: number, net: NetName, what: string, ids: number[]) => void,
  tick: (step: number) => void = () => {},
  batches?: Iterable<TrainBatch>,
): SplitScores {
  const out = emptyScores(data.train.length);
  let step = 0;
  for (const batch of batches ?? shuffledBatches(data.pairs, rng, { batchSize: run.config.batch_size })) {
    scoreBatch(run, batch, out);
    for (const k of ["A", "B"] as const) for (const [what, ids] of nonFinite(out, k, batch.ids)) bad(step, k, what, ids);
    tick(++step);
  }
  return out;
}

/** One criterion's split: min-max normalised, a two-component mixture, its clean posteriors, the threshold rule. */
export function mixtureSplit(values: Float64Array, pThreshold: number) {
  const x = minMaxNormalize(values);
  const gmm = fitGmm1D(x);
  const prob = Float32Array.from(gmm.predictProba(x)[cleanComponent(gmm)]);
  return { x, gmm, prob, split: splitProb(prob, pThreshold) };
}

/** The same scores with each net on a worker of the evaluation pool, both at once. */
async function poolSplitScores(ctx: PartContext, pool: EvalPool, order: Int32Array): Promise<SplitScores> {
  const { run, data } = ctx;
  await ctx.pause();
  const o = { batchSize: run.config.batch_size, margin: run.config.margin };
  const [a, b] = await whilePausing(
    Promise.all((["A", "B"] as const).map(async (k) => pool.losses(data.pairs, await run.nets[k].params.toArrays(), run.model, run.banks[k], order, o))),
    ctx.pause,
  );
  ctx.hooks.progress.tick(batchCount(data.train.length, run.config.batch_size));
  return { losses: { A: a.loss, B: b.loss }, ctt: { A: a.ctt, B: b.ctt } };
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

/** Official `train`: `which` trains on the other net's split (trainer/net-steps.ts). */
async function trainPart(ctx: PartContext, which: "A" | "B"): Promise<RandomState> {
  const { run, data, hooks } = ctx;
  ctx.phase = "train";
  const c = run.config;
  const s = run.split![which === "A" ? "B" : "A"];
  const labeled = s.clean.reduce((a, v) => a + v, 0);
  const rng = Random.fromState(run.cursor.dataRng);
  hooks.log(`train ${which}: labeled data has a size of ${labeled}, unlabeled ${data.train.length - labeled}`);
  hooks.progress.start(`train ${which} [${run.cursor.epoch}/${c.num_epochs}]`, batchCount(labeled, c.batch_size));
  const lane = { net: run.nets[which], bank: run.banks[which], dataRng: rng, modelRng: run.modelRng, step: run.cursor.step };
  await cotrainSteps(lane, data.pairs, c, s, run.cursor.epoch, `train ${which}, epoch ${run.cursor.epoch}`, stepLogger(ctx, "train", which));
  hooks.progress.end();
  return rng.state();
}

/** Records what the diagnostics found, and logs it where a user will see it. */
function alarm(ctx: PartContext, kind: "collapsed_net" | "degenerate_split", epoch: number | "warmup", net: NetName, value: number, threshold: number, action: string): void {
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
function netReference(v: SplitEvaluation): RunReference {
  const [a, b] = v.spreads!;
  return { A: { std: a.std, rsum: a.rsum ?? 0 }, B: { std: b.std, rsum: b.rsum ?? 0 }, rsum: v.rsum };
}

/**
 * After co-training: when the model the run hands over (its best validation) validates below the
 * model after warmup, co-training made it worse, and the user is told so loudly, with what to do.
 * The official selection never keeps the post-warmup model (`--select all` does).
 */
function checkBelowWarmup(ctx: PartContext): void {
  const { run } = ctx;
  const warm = run.reference?.rsum;
  if (warm === undefined || typeof run.bestEpoch !== "number" || !(run.bestRsum < warm)) return;
  const action = "reported: the model after warmup was better; rerun with --select all to keep it (the official selection never does), or see the report's diagnostics";
  ctx.hooks.log(`!! the selected model (epoch ${run.bestEpoch}, validation rsum ${run.bestRsum.toFixed(1)}) is WORSE than the model after warmup (validation rsum ${warm.toFixed(1)}): co-training did not help on this data; ${action}`);
  ctx.metrics({ type: "alarm", kind: "below_warmup", epoch: run.bestEpoch, value: run.bestRsum, threshold: warm, action });
}

/** The nets whose validation similarities went nearly constant and whose own ranking was lost. */
function netCollapsed(run: Run, v: SplitEvaluation): NetName[] {
  if (!run.reference) return [];
  return (["A", "B"] as const).filter((k, i) => collapsed(v.spreads![i], run.reference![k]));
}

/** The official test at a best validation (MS-COCO: five 1K folds, and the full 5K printed beside). */
async function test(ctx: PartContext, epoch: number | "warmup"): Promise<SplitEvaluation> {
  const { run, data, hooks, metrics } = ctx;
  ctx.phase = "test";
  const nets = [run.nets.A.params, run.nets.B.params];
  const split = data.test.split as "test" | "testall";
  const evalOpts = { batchSize: run.config.batch_size, pause: ctx.pause, pool: ctx.pool };
  hooks.log("Best validation! Testing ...");
  const fold5 = data.dataName === "coco_precomp";
  const t = await evaluateSplit(nets, data.test, { ...evalOpts, fold5 });
  for (const line of formatMetricLines(t)) hooks.log(line);
  if (fold5) {
    const full = await evaluateSplit(nets, data.test, evalOpts);
    hooks.log("full 5K:");
    for (const line of formatMetricLines(full)) hooks.log(line);
    metrics({ type: "test", epoch, split, fold5: false, i2t: full.i2t, t2i: full.t2i, rsum: full.rsum });
  }
  metrics({ type: "test", epoch, split, fold5, i2t: t.i2t, t2i: t.t2i, rsum: t.rsum });
  return t;
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
