/**
 * PC2 co-training (the official `co_train.main`), top to bottom:
 *   data → two SGRAF nets → warmup epochs (PO banks) → per co-training epoch:
 *   split (per-sample loss and PO consistency, two-component mixtures) → train A on B's split and
 *   B on A's (labeled batches with refined targets; unlabeled batches with pseudo-captions from
 *   `warmup_epoch_2` on) → validation with both nets → checkpoints → test at the best validation.
 *
 * Everything that lasts between steps lives in `Run` and is exactly what a checkpoint stores. The
 * schedule is a list of parts (warmup A, warmup B, split, train A, train B); a checkpoint records
 * the part, the step inside it and the data-order RNG at the part's start, so that an interrupted
 * run resumes at the very next step with identical state.
 */
import { appendFileSync, copyFileSync, existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { fitGmm1D, cleanComponent } from "../shared/eval/gmm";
import { klConsistency, minMaxNormalize, splitPrecisionRecall, splitProb } from "../shared/eval/split";
import { type SgrafConfig, sgrafConfig } from "../shared/model/config";
import { Adam } from "../shared/model/optim";
import { ParamStore } from "../shared/model/params";
import { type Batch as ModelBatch, type Net, NonFiniteLossError, evalLoss, trainStep, unlabeledStep } from "../shared/model/steps";
import { Random, type RandomState } from "../shared/random";
import * as tf from "../shared/model/tf";
import type { SoftMargin } from "../shared/model/losses";
import { type Checkpoint, type PoBank, type RunState, emptyBank, restoreCheckpoint, saveCheckpoint, writeFileAtomic } from "./checkpoint";
import type { TrainConfig } from "./config";
import { type Batch, type PairSource, batchCount, shuffledBatches } from "./data/batches";
import { type CaptionSplit, canonicalDataName, loadSplit, loadVocabulary, testSplitFor } from "./data/datasets";
import { type NoiseIndex, defaultNoiseFile, effectiveNoise, loadOrCreateNoise } from "./data/noise";
import { ensureSynthetic } from "./data/synthetic";
import { type SplitEvaluation, evaluateSplit, formatMetricLines } from "./evaluate";
import type { MetricsRecord } from "./metrics";

// ---------------------------------------------------------------------------------------------
// Run state

interface Cursor {
  stage: "warmup" | "cotrain" | "done";
  epoch: number;
  /** Index into the stage's parts. */
  part: number;
  /** Steps of the part already done. */
  step: number;
  /** Data-order RNG at the start of the part. */
  dataRng: RandomState;
}

/** One net's split of the training captions (the official prob / pred / prob_ctt / pred_ctt). */
interface NetSplit {
  prob: Float32Array;
  clean: Uint8Array;
  probCtt: Float32Array;
  cleanCtt: Uint8Array;
}

export interface Run {
  config: TrainConfig;
  model: SgrafConfig;
  nets: { A: Net; B: Net };
  banks: { A: PoBank; B: PoBank };
  cursor: Cursor;
  modelRng: Random;
  split: { A: NetSplit; B: NetSplit } | null;
  bestRsum: number;
  bestEpoch: number | null;
  bestTest: SplitEvaluation | null;
}

export interface Data {
  dataName: string;
  vocabSize: number;
  train: CaptionSplit;
  dev: CaptionSplit;
  test: CaptionSplit;
  noise: NoiseIndex;
}

export interface TrainHooks {
  /** Human-readable lines (progress, official-style prints). */
  log(line: string): void;
  /** Progress of a phase: start / tick / end. */
  progress: { start(phase: string, total: number): void; tick(step: number, values?: Record<string, number>): void; end(summary?: string): void };
  /** Polled after every step: true once SIGINT/SIGTERM asked the run to stop. */
  stopRequested(): boolean;
  /** Writes the report and the exported model at the end (or after an interruption). */
  finish?(run: Run, data: Data, outputDir: string): Promise<void>;
}

export class TrainingInterrupted extends Error {
  constructor(readonly checkpoint: string) {
    super(`interrupted; resumable checkpoint written to ${checkpoint}`);
    this.name = "TrainingInterrupted";
  }
}

export class TrainingFault extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TrainingFault";
  }
}

const WARMUP_PARTS = ["warmup A", "warmup B"] as const;
const COTRAIN_PARTS = ["split", "train A", "train B"] as const;

// ---------------------------------------------------------------------------------------------
// Data

/** Loads vocabularies, splits and the noise index as co_train.main does (or the embedded dataset). */
export function loadData(config: TrainConfig, cacheDir: string): Data {
  if (config.synthetic) {
    const ds = ensureSynthetic(cacheDir, { imgDim: config.img_dim, noiseRatio: config.noise_ratio, seed: 0 });
    config.data_path = ds.dataPath;
    config.data_name = ds.dataName;
    config.vocab_path = ds.vocabPath;
    if (!config.noise_file && ds.noiseFile) config.noise_file = ds.noiseFile;
  }
  const dataName = canonicalDataName(config.data_name);
  const noise = effectiveNoise(dataName, config.noise_ratio, config.noise_file || defaultNoiseFile(config.output_dir, dataName, config.noise_ratio));
  config.noise_ratio = noise.noiseRatio;
  config.noise_file = noise.noiseFile;
  const { vocab, vocabSize } = loadVocabulary({ vocabPath: config.vocab_path, dataName: config.data_name, tokenizer: config.tokenizer });
  const common = { dataPath: config.data_path, dataName: config.data_name, vocab, vocabSize, tokenizer: config.tokenizer, imgDim: config.img_dim };
  const train = loadSplit({ ...common, split: "train" });
  const dev = loadSplit({ ...common, split: "dev" });
  const test = loadSplit({ ...common, split: testSplitFor(dataName) });
  const noiseIndex = loadOrCreateNoise({
    captions: train.length,
    images: train.images.count,
    imDiv: train.imDiv,
    noiseRatio: config.noise_ratio,
    noiseFile: config.noise_file,
    seed: config.seed,
  });
  return { dataName, vocabSize, train, dev, test, noise: noiseIndex };
}

// ---------------------------------------------------------------------------------------------
// Phases

function stepOptions(run: Run) {
  const c = run.config;
  return { margin: c.margin, lambdaEn: c.lambda_en, gradClip: c.grad_clip, softMargin: c.soft_margin as SoftMargin, hardNegative: true, rng: run.modelRng };
}

function writeBank(bank: PoBank, ids: ArrayLike<number>, probs: Float32Array) {
  const K = bank.classes;
  for (let i = 0; i < ids.length; i++) {
    bank.probs.set(probs.subarray(i * K, (i + 1) * K), ids[i] * K);
    bank.has[ids[i]] = 1;
  }
}

function withContext(e: unknown, where: string, batch: Batch): never {
  if (e instanceof NonFiniteLossError) {
    const ids = Array.from(batch.ids.slice(0, 16)).join(", ");
    throw new TrainingFault(`${where}: loss term ${e.term} is ${e.value} (sample ids ${ids}${batch.size > 16 ? ", …" : ""}); training stopped, the last good checkpoint is intact`);
  }
  throw e;
}

interface PartContext {
  run: Run;
  data: Data;
  hooks: TrainHooks;
  metrics: (r: MetricsRecord) => void;
  /** Saves a resumable checkpoint at the current step and stops. */
  interrupt(): Promise<never>;
}

/** Official `warmup`: one epoch of one net over all (noisy) pairs, storing PO in the bank. */
async function warmupPart(ctx: PartContext, which: "A" | "B"): Promise<RandomState> {
  const { run, data, hooks } = ctx;
  const net = run.nets[which];
  const c = run.config;
  const source: PairSource = { captions: data.train.captions, images: data.train.images, t2i: data.noise.t2i };
  const rng = Random.fromState(run.cursor.dataRng);
  const total = batchCount(data.train.length, c.batch_size);
  const meter = new RunningMeans();
  hooks.progress.start(`warmup ${which} [${run.cursor.epoch + 1}/${c.warmup_epoch}]`, total);
  let i = -1;
  for (const batch of shuffledBatches(source, rng, { batchSize: c.batch_size, startBatch: run.cursor.step })) {
    i = run.cursor.step;
    if (batch.size === 1) break; // batch norm needs two samples: the official loop drops it
    let r;
    try {
      r = trainStep(net, batch as ModelBatch, c.warmup_type as "warmup" | "warmup_sele", stepOptions(run));
    } catch (e) {
      withContext(e, `warmup ${which}, epoch ${run.cursor.epoch}, step ${i}`, batch);
    }
    writeBank(run.banks[which], batch.ids, r.bank);
    meter.add(r.losses, batch.size);
    run.cursor.step++;
    hooks.progress.tick(run.cursor.step, meter.values());
    if (i % c.log_step === 0 || run.cursor.step === total) {
      ctx.metrics({ type: "step", phase: "warmup", net: which, epoch: run.cursor.epoch, step: i, steps: total, lr: net.optimizer.lr, time: Date.now() / 1000, ...meter.values() });
    }
    if (hooks.stopRequested()) await ctx.interrupt();
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
  const K = run.model.proj_dim;
  const source: PairSource = { captions: data.train.captions, images: data.train.images, t2i: data.noise.t2i };
  const rng = Random.fromState(run.cursor.dataRng);
  const losses = { A: new Float64Array(N), B: new Float64Array(N) };
  const ctt = { A: new Float64Array(N), B: new Float64Array(N) };
  const total = batchCount(N, c.batch_size);
  hooks.progress.start(`split [${run.cursor.epoch}]`, total);
  let step = 0;
  for (const batch of shuffledBatches(source, rng, { batchSize: c.batch_size })) {
    for (const k of ["A", "B"] as const) {
      const { loss, probs } = evalLoss(run.nets[k].params, batch as ModelBatch, c.margin);
      const bank = run.banks[k];
      const bad: Record<string, number[]> = {};
      for (let b = 0; b < batch.size; b++) {
        const id = batch.ids[b];
        losses[k][id] = loss[b];
        if (bank.has[id]) ctt[k][id] = klConsistency(probs.subarray(b * K, (b + 1) * K), bank.probs.subarray(id * K, (id + 1) * K), K)[0];
        if (!Number.isFinite(losses[k][id])) (bad[`per-sample loss is ${losses[k][id]}`] ??= []).push(id);
        if (!Number.isFinite(ctt[k][id])) (bad[`PO consistency is ${ctt[k][id]}`] ??= []).push(id);
      }
      for (const [what, ids] of Object.entries(bad)) {
        throw new TrainingFault(`split, epoch ${run.cursor.epoch}, batch ${step}, net ${k}: ${what} (sample ids ${ids.slice(0, 16).join(", ")}); training stopped, the last good checkpoint is intact`);
      }
    }
    hooks.progress.tick(++step);
  }
  hooks.progress.end();
  const known = data.noise.source !== "none";
  const out = {} as { A: NetSplit; B: NetSplit };
  for (const k of ["A", "B"] as const) {
    const parts = {} as Record<"loss" | "po", { prob: Float32Array; clean: Uint8Array }>;
    for (const [by, values] of [
      ["loss", losses[k]],
      ["po", ctt[k]],
    ] as const) {
      const x = minMaxNormalize(values);
      const gmm = fitGmm1D(x);
      const prob = Float32Array.from(gmm.predictProba(x)[cleanComponent(gmm)]);
      const split = splitProb(prob, c.p_threshold);
      if (split.forced) hooks.log("No estimated noisy data. Enforce the 1/100 data with small probability to be unlabeled.");
      const q = known ? splitPrecisionRecall(split.clean, data.noise.noisy) : null;
      const selected = split.clean.reduce((a, v) => a + (v ? 0 : 1), 0);
      hooks.log(`Split ${k} by ${by}: ${selected} of ${N} selected noisy${q ? `, precision ${q.precision.toFixed(4)}, recall ${q.recall.toFixed(4)}` : ""}`);
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
      });
      parts[by] = { prob, clean: split.clean };
    }
    out[k] = { prob: parts.loss.prob, clean: parts.loss.clean, probCtt: parts.po.prob, cleanCtt: parts.po.clean };
  }
  run.split = out;
  return rng.state();
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
  const net = run.nets[which];
  const N = data.train.length;
  const labeledIds: number[] = [];
  const unlabeledIds: number[] = [];
  for (let i = 0; i < N; i++) (s.clean[i] ? labeledIds : unlabeledIds).push(i);
  const source: PairSource = { captions: data.train.captions, images: data.train.images, t2i: data.noise.t2i };
  const rng = Random.fromState(run.cursor.dataRng);
  const useUnlabeled = run.cursor.epoch >= c.warmup_epoch_2;
  const total = batchCount(labeledIds.length, c.batch_size);
  hooks.log(`train ${which}: labeled data has a size of ${labeledIds.length}, unlabeled ${unlabeledIds.length}`);
  // The unlabeled loader is cycled: a fresh shuffle whenever it runs out (the official try/except).
  const unlabeledBatches = function* () {
    if (!unlabeledIds.length) return;
    for (;;) yield* shuffledBatches(source, rng, { batchSize: c.batch_size, ids: unlabeledIds });
  };
  const labeled = shuffledBatches(source, rng, { batchSize: c.batch_size, ids: labeledIds });
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
    const targets = new Float32Array(bl.size);
    for (let b = 0; b < bl.size; b++) {
      const id = bl.ids[b];
      targets[b] = s.prob[id] + (1 - s.prob[id]) * s.probCtt[id] * s.cleanCtt[id];
    }
    try {
      const r = trainStep(net, bl as ModelBatch, "lb_train", stepOptions(run), { values: targets, axis: "row" });
      meter.add(r.losses, bl.size);
      if (useUnlabeled && bu) {
        const u = unlabeledStep(net, bu as ModelBatch, bl as ModelBatch, stepOptions(run));
        writeBank(run.banks[which], bu.ids, u.bank);
        writeBank(run.banks[which], bl.ids, u.bankLabeled!);
        meter.add({ triplet_loss_u: u.losses.triplet_loss }, bu.size);
      }
    } catch (e) {
      withContext(e, `train ${which}, epoch ${run.cursor.epoch}, step ${i}`, bl);
    }
    run.cursor.step++;
    hooks.progress.tick(run.cursor.step, meter.values());
    if (i % c.log_step === 0 || run.cursor.step === total) {
      ctx.metrics({ type: "step", phase: "train", net: which, epoch: run.cursor.epoch, step: i, steps: total, lr: net.optimizer.lr, time: Date.now() / 1000, ...meter.values() });
    }
    if (hooks.stopRequested()) await ctx.interrupt();
  }
  hooks.progress.end();
  return rng.state();
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
// The run

/** Learning rate of an epoch: `learning_rate * 0.1 ** (epoch // lr_update)` (adjust_learning_rate). */
export function learningRate(config: Pick<TrainConfig, "learning_rate" | "lr_update">, epoch: number): number {
  return config.learning_rate * 0.1 ** Math.floor(epoch / config.lr_update);
}

function newNet(model: SgrafConfig, rng: Random, lr: number): Net {
  return { params: ParamStore.init(model, rng), optimizer: new Adam({ lr }) };
}

function runState(run: Run): RunState & { cursor: Cursor; modelRngState: RandomState; hasSplit: boolean } {
  return {
    stage: run.cursor.stage === "warmup" ? "warmup" : "cotrain",
    warmupDone: run.cursor.stage === "warmup" ? run.cursor.epoch : run.config.warmup_epoch,
    epoch: run.cursor.stage === "cotrain" ? run.cursor.epoch - 1 : -1,
    bestRsum: run.bestRsum,
    bestEpoch: run.bestEpoch,
    bestTest: run.bestTest,
    rng: { data: run.cursor.dataRng, model: run.modelRng.state() },
    config: run.config as unknown as Record<string, unknown>,
    model: run.model,
    cursor: run.cursor,
    modelRngState: run.modelRng.state(),
    hasSplit: run.split !== null,
  };
}

async function save(run: Run, path: string) {
  const c: Checkpoint = { state: runState(run), nets: run.nets, banks: run.banks };
  if (run.split) {
    // The split of the epoch in progress (needed to resume inside train A / train B).
    (c.state as unknown as { split: unknown }).split = {
      A: splitToJson(run.split.A),
      B: splitToJson(run.split.B),
    };
  }
  await saveCheckpoint(path, c);
}

function splitToJson(s: NetSplit) {
  return { prob: Array.from(s.prob), clean: Array.from(s.clean), probCtt: Array.from(s.probCtt), cleanCtt: Array.from(s.cleanCtt) };
}

function splitFromJson(j: ReturnType<typeof splitToJson>): NetSplit {
  return { prob: Float32Array.from(j.prob), clean: Uint8Array.from(j.clean), probCtt: Float32Array.from(j.probCtt), cleanCtt: Uint8Array.from(j.cleanCtt) };
}

export interface TrainResult {
  outputDir: string;
  bestEpoch: number | null;
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

export async function train(config: TrainConfig, hooks: TrainHooks, options: { cacheDir?: string; backend?: string } = {}): Promise<TrainResult> {
  const outputDir = resolve(config.output_dir);
  mkdirSync(outputDir, { recursive: true });
  const metricsPath = join(outputDir, OUTPUT_FILES.metrics);
  const metrics = (r: MetricsRecord) => appendFileSync(metricsPath, `${JSON.stringify(r)}\n`);

  hooks.log("load and process dataset ...");
  const data = loadData(config, options.cacheDir ?? resolve(".cache"));
  hooks.log(`train data: ${data.train.images.count} images, ${data.train.length} captions; dev ${data.dev.length} captions; test (${data.test.split}) ${data.test.length} captions`);
  if (data.noise.source !== "none") hooks.log(`noise index ${data.noise.source === "file" ? "loaded from" : "drawn and saved to"} ${data.noise.file}: ${data.noise.noisy.reduce((a, b) => a + b, 0)} of ${data.train.length} captions mismatched`);
  const model = sgrafConfig({ ...config, vocab_size: data.vocabSize });
  const resolvedConfig = { ...config, vocab_size: data.vocabSize, backend_active: options.backend ?? tf.getBackend() };
  writeFileAtomic(join(outputDir, OUTPUT_FILES.config), `${JSON.stringify(resolvedConfig, null, 2)}\n`);

  const run = initRun(config, model, data, hooks);
  try {
    const interrupt = async (): Promise<never> => {
      const path = join(outputDir, OUTPUT_FILES.interrupted);
      await save(run, path);
      metrics({ type: "event", message: `interrupted at ${run.cursor.stage} epoch ${run.cursor.epoch}, ${COTRAIN_PARTS[run.cursor.part] ?? WARMUP_PARTS[run.cursor.part]}, step ${run.cursor.step}` });
      await hooks.finish?.(run, data, outputDir);
      throw new TrainingInterrupted(path);
    };
    const ctx: PartContext = { run, data, hooks, metrics, interrupt };
    const evalOpts = { batchSize: config.batch_size };
    let lastValidation: SplitEvaluation | null = null;

    const validate = (label: string | number) => {
      hooks.log("Validating ...");
      const r = evaluateSplit([run.nets.A.params, run.nets.B.params], data.dev, evalOpts);
      hooks.log(`Image to text: ${fmt(r.i2t)}`);
      hooks.log(`Text to image: ${fmt(r.t2i)}`);
      lastValidation = r;
      return r;
    };

    // Warmup.
    if (run.cursor.stage === "warmup") {
      hooks.log("* Warmup");
      while (run.cursor.epoch < config.warmup_epoch) {
        const t0 = performance.now();
        while (run.cursor.part < WARMUP_PARTS.length) {
          nextPart(run, await warmupPart(ctx, run.cursor.part === 0 ? "A" : "B"));
        }
        metrics({ type: "epoch", phase: "warmup", epoch: run.cursor.epoch, seconds: (performance.now() - t0) / 1000, lr: run.nets.A.optimizer.lr });
        run.cursor = { stage: "warmup", epoch: run.cursor.epoch + 1, part: 0, step: 0, dataRng: run.cursor.dataRng };
      }
      run.cursor = { stage: "cotrain", epoch: 0, part: 0, step: 0, dataRng: run.cursor.dataRng };
      await save(run, join(outputDir, OUTPUT_FILES.warmup(Math.max(0, config.warmup_epoch - 1))));
      const v = validate("warmup");
      metrics({ type: "validation", epoch: "warmup", i2t: v.i2t, t2i: v.t2i, rsum: v.rsum, best: false });
      // Fresh optimizers after warmup, as the official code does (unless resuming).
      for (const k of ["A", "B"] as const) {
        run.nets[k].optimizer.reset();
        run.nets[k].optimizer = new Adam({ lr: config.learning_rate });
      }
    }

    // Co-training.
    hooks.log("* Co-training");
    while (run.cursor.stage === "cotrain" && run.cursor.epoch < config.num_epochs) {
      const epoch = run.cursor.epoch;
      const t0 = performance.now();
      const lr = learningRate(config, epoch);
      run.nets.A.optimizer.lr = lr;
      run.nets.B.optimizer.lr = lr;
      hooks.log(`Epoch [${epoch}/${config.num_epochs}] lr ${lr}`);
      while (run.cursor.part < COTRAIN_PARTS.length) {
        const part = COTRAIN_PARTS[run.cursor.part];
        nextPart(run, part === "split" ? await splitPart(ctx) : await trainPart(ctx, part === "train A" ? "A" : "B"));
      }
      if (epoch === config.warmup_epoch_2) run.bestRsum = 0; // the official reset when pseudo-captioning starts
      const v = validate(epoch);
      const isBest = v.rsum > run.bestRsum;
      if (isBest) {
        run.bestRsum = v.rsum;
        run.bestEpoch = epoch;
      }
      metrics({ type: "validation", epoch, i2t: v.i2t, t2i: v.t2i, rsum: v.rsum, best: isBest });
      metrics({ type: "epoch", phase: "train", epoch, seconds: (performance.now() - t0) / 1000, lr });
      run.cursor = { stage: epoch + 1 < config.num_epochs ? "cotrain" : "done", epoch: epoch + 1, part: 0, step: 0, dataRng: run.cursor.dataRng };
      run.split = null;
      if (isBest) {
        hooks.log("Best validation! Testing ...");
        const fold5 = data.dataName === "coco_precomp";
        const t = evaluateSplit([run.nets.A.params, run.nets.B.params], data.test, { ...evalOpts, fold5 });
        for (const line of formatMetricLines(t)) hooks.log(line);
        if (fold5) {
          const full = evaluateSplit([run.nets.A.params, run.nets.B.params], data.test, evalOpts);
          hooks.log("full 5K:");
          for (const line of formatMetricLines(full)) hooks.log(line);
          metrics({ type: "test", epoch, split: data.test.split as "test" | "testall", fold5: false, i2t: full.i2t, t2i: full.t2i, rsum: full.rsum });
        }
        metrics({ type: "test", epoch, split: data.test.split as "test" | "testall", fold5, i2t: t.i2t, t2i: t.t2i, rsum: t.rsum });
        run.bestTest = t;
      }
      await save(run, join(outputDir, OUTPUT_FILES.latest));
      if (isBest) copyFileSync(join(outputDir, OUTPUT_FILES.latest), join(outputDir, OUTPUT_FILES.best));
      writeResults(outputDir, run);
    }
    writeResults(outputDir, run);
    await hooks.finish?.(run, data, outputDir);
    return { outputDir, bestEpoch: run.bestEpoch, bestRsum: run.bestRsum, test: run.bestTest, lastValidation };
  } finally {
    disposeRun(run);
  }
}

/** Releases the nets' tensors and the optimizers' state (the run owns them). */
function disposeRun(run: Run) {
  for (const k of ["A", "B"] as const) {
    run.nets[k].params.dispose();
    run.nets[k].optimizer.reset();
  }
}

function fmt(m: { r1: number; r5: number; r10: number; medr: number; meanr: number }): string {
  return [m.r1, m.r5, m.r10, m.medr, m.meanr].map((x) => x.toFixed(1)).join(", ");
}

/** Moves to the next part; its draws continue the data stream where the finished part left it. */
function nextPart(run: Run, dataRng: RandomState) {
  run.cursor = { ...run.cursor, part: run.cursor.part + 1, step: 0, dataRng };
}

function initRun(config: TrainConfig, model: SgrafConfig, data: Data, hooks: TrainHooks): Run {
  const modelRng = new Random(config.seed * 2 + 1);
  const dataRng = new Random(config.seed * 2);
  const base: Run = {
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
  };
  if (!config.model_path) return base;
  if (!existsSync(config.model_path)) throw new TrainingFault(`=> no checkpoint found at '${config.model_path}'`);
  const ck = restoreCheckpoint(config.model_path, model, { optimizers: config.resume, learningRate: config.learning_rate });
  const st = ck.state as RunState & { cursor: Cursor; modelRngState: RandomState; split?: { A: ReturnType<typeof splitToJson>; B: ReturnType<typeof splitToJson> } };
  for (const k of ["A", "B"] as const) {
    base.nets[k].params.dispose();
    base.nets[k] = ck.nets[k];
    if (ck.banks[k].has.length !== data.train.length) throw new TrainingFault(`${config.model_path}: PO bank ${k} holds ${ck.banks[k].has.length} captions, the training split has ${data.train.length}`);
    base.banks[k] = ck.banks[k];
  }
  if (config.po_dir) hooks.log(`--po_dir ${config.po_dir}: the PO banks are stored in the checkpoint itself; the folder is not read`);
  if (!config.resume) {
    // A warmup checkpoint: skip warmup, co-train from epoch 0 with fresh optimizers.
    hooks.log(`=> load warmup checkpoint '${config.model_path}'`);
    base.cursor = { stage: "cotrain", epoch: 0, part: 0, step: 0, dataRng: st.cursor?.dataRng ?? base.cursor.dataRng };
    return base;
  }
  hooks.log(`=> resume training from checkpoint '${config.model_path}' (${st.cursor.stage} epoch ${st.cursor.epoch}, part ${st.cursor.part}, step ${st.cursor.step})`);
  base.cursor = st.cursor;
  // A finished run resumed with more epochs continues with the next one (the official start_epoch = epoch + 1).
  if (base.cursor.stage === "done" && base.cursor.epoch < config.num_epochs) base.cursor = { ...base.cursor, stage: "cotrain", part: 0, step: 0 };
  base.modelRng = Random.fromState(st.modelRngState);
  base.split = st.split ? { A: splitFromJson(st.split.A), B: splitFromJson(st.split.B) } : null;
  base.bestRsum = st.bestRsum;
  base.bestEpoch = st.bestEpoch;
  base.bestTest = st.bestTest as SplitEvaluation | null;
  if (ck.lr) {
    base.nets.A.optimizer.lr = ck.lr.A;
    base.nets.B.optimizer.lr = ck.lr.B;
  }
  return base;
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
