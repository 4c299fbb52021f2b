/**
 * Training on the webgpu backend: the machine's GPU, or SwiftShader (chromium's CPU Vulkan
 * driver, found in-process by trainer/webgpu.ts) where there is none. Without either, every test
 * here fails with the reason and what to install.
 *
 * SwiftShader runs a training step in seconds (about 2 ms per dispatched op on 2 cores), so the
 * runs here are the smallest that still take every path: 10 training captions, batches of 5,
 * 1 warmup epoch and 1 co-training epoch (7 steps, the split, validation and test).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as tf from "../../shared/model/tf";
import { REGIONS, sgrafConfig } from "../../shared/model/config";
import { Adam } from "../../shared/model/optim";
import { ParamStore } from "../../shared/model/params";
import { trainStep } from "../../shared/model/steps";
import { Random } from "../../shared/random";
import { initBackend } from "../../trainer/backend";
import type { SyntheticDataset } from "../../trainer/data/synthetic";
import { OUTPUT_FILES, TrainingInterrupted, train } from "../../trainer/train";
import { type BufferManager, boundFreePool, gpuBufferStats, releaseWebGpu } from "../../trainer/webgpu";
import { BufferManager as TfjsBufferManager } from "@tensorflow/tfjs-backend-webgpu/dist/buffer_manager";
import { recordingHooks, tempDir, tinyConfig, tinyDataset } from "./train-fixtures";
import { readCheckpointFile } from "../../trainer/checkpoint";
import type { NdArray } from "../../shared/formats/ndarray";

// SwiftShader is slow (see above): generous bounds, not assertions on speed.
setDefaultTimeout(900_000);

const SMALL = { trainImages: 2, devImages: 1, testImages: 1 };
const FLAGS = { num_epochs: "1", batch_size: "5" };
const LR = 0.001; // TINY_FLAGS' learning_rate

/** How far apart two checkpoints of the same run are, by kind of tensor (see crossBackendDiff). */
interface RunDiff {
  /** Largest difference of a parameter element whose gradient is real (see below), absolute, and its tensor. */
  params: number;
  paramsWorst: string;
  /** Largest difference of any other parameter element, or of a running mean, over the Adam bound 2·lr·steps (≤ 1 is within it). */
  noiseOverBound: number;
  /**
   * Largest difference of Adam's first / second moments over the reference suite's gradient
   * tolerance: 1e-3 of the largest element of their tensor, at least 1e-6 of the net's largest
   * (≤ 1 is within it).
   */
  firstMoment: number;
  secondMoment: number;
  /** Largest difference of the PO banks' probabilities, absolute. */
  banks: number;
  /** Tensors in one checkpoint only, and step counts that differ. */
  mismatched: string[];
}

/**
 * Compares two checkpoints of the same run that took steps on different backends, as the
 * reference suite compares an Adam step. Float32 kernels differ in summation order, so gradients
 * differ by rounding; Adam divides a gradient by its own magnitude, so where a gradient is itself
 * rounding noise (a bias before a softmax or a batch norm, zero by construction: measured here at
 * ~1e-9 against a largest gradient of ~0.5) its step of up to lr is decided by that noise. A
 * parameter element has a real gradient when Adam's bias-corrected first moment exceeds 1e-6 of
 * the net's largest.
 */
const num = (x: NdArray, i: number) => Number(x.data[i]);
const maxOf = (x: NdArray) => Array.from(x.data as ArrayLike<number>, (v) => Math.abs(Number(v))).reduce((p, v) => Math.max(p, v), 0);

/**
 * Parameter elements ("model_A.name:i") whose Adam step was decided by rounding noise: Adam's
 * bias-corrected first moment at most 1e-6 of the net's largest.
 */
function noiseDecided(ck: Map<string, NdArray>): Set<string> {
  const out = new Set<string>();
  for (const net of ["A", "B"]) {
    const opt = `optimizer_${net}.`;
    const mHat = (name: string) => {
      const m = ck.get(`${opt}${name}.exp_avg`);
      const t = Number(ck.get(`${opt}${name}.step`)?.data[0] ?? 0);
      return m ? Array.from(m.data as ArrayLike<number>, (v) => Math.abs(Number(v)) / (1 - 0.9 ** t)) : null;
    };
    const names = [...ck.keys()].filter((k) => k.startsWith(opt) && k.endsWith(".exp_avg")).map((k) => k.slice(opt.length, -".exp_avg".length));
    const scale = Math.max(0, ...names.map((n) => Math.max(...mHat(n)!)));
    for (const n of names) mHat(n)!.forEach((g, i) => g <= 1e-6 * scale && out.add(`model_${net}.${n}:${i}`));
  }
  return out;
}

/**
 * Compares two checkpoints of the same run that took steps on different backends. Elements whose
 * step was noise-decided in `a` or in any of `alsoNoiseIn` (where the run diverged) are held to the
 * Adam bound; so is every batch norm's running mean, which follows the bias before it.
 */
function crossBackendDiff(a: string, b: string, alsoNoiseIn: string[] = []): RunDiff {
  const A = readCheckpointFile(a).arrays;
  const B = readCheckpointFile(b).arrays;
  const d: RunDiff = { params: 0, paramsWorst: "", noiseOverBound: 0, firstMoment: 0, secondMoment: 0, banks: 0, mismatched: [] };
  for (const k of new Set([...A.keys(), ...B.keys()])) if (!A.has(k) || !B.has(k) || A.get(k)!.data.length !== B.get(k)!.data.length) d.mismatched.push(k);
  const noise = noiseDecided(A);
  for (const extra of alsoNoiseIn) for (const e of noiseDecided(readCheckpointFile(extra).arrays)) noise.add(e);
  const diffs = (k: string) => Array.from({ length: A.get(k)!.data.length }, (_, i) => Math.abs(num(A.get(k)!, i) - num(B.get(k)!, i)));
  for (const net of ["A", "B"]) {
    const opt = `optimizer_${net}.`;
    const keys = [...A.keys()].filter((k) => !d.mismatched.includes(k));
    const stepOf = (name: string) => Number(A.get(`${opt}${name}.step`)?.data[0] ?? 0);
    const maxStep = Math.max(0, ...keys.filter((k) => k.startsWith(opt) && k.endsWith(".step")).map((k) => num(A.get(k)!, 0)));
    const netMax = (suffix: string) => Math.max(0, ...keys.filter((k) => k.startsWith(opt) && k.endsWith(suffix)).map((k) => maxOf(A.get(k)!)));
    const moments = { ".exp_avg": netMax(".exp_avg"), ".exp_avg_sq": netMax(".exp_avg_sq") };
    for (const k of keys) {
      const x = A.get(k)!;
      if (k.startsWith(opt) && k.endsWith(".step")) {
        if (num(x, 0) !== num(B.get(k)!, 0)) d.mismatched.push(`${k}: ${num(x, 0)} vs ${num(B.get(k)!, 0)}`);
      } else if (k.startsWith(opt)) {
        const kind = k.endsWith(".exp_avg") ? ".exp_avg" : ".exp_avg_sq";
        const ratio = Math.max(...diffs(k)) / Math.max(1e-3 * maxOf(x), 1e-6 * moments[kind], 1e-30);
        if (kind === ".exp_avg") d.firstMoment = Math.max(d.firstMoment, ratio);
        else d.secondMoment = Math.max(d.secondMoment, ratio);
      } else if (k.startsWith(`bank_${net}.`)) {
        d.banks = Math.max(d.banks, ...diffs(k));
      } else if (k.startsWith(`model_${net}.`)) {
        const name = k.slice(`model_${net}.`.length);
        const runningMean = name.endsWith("running_mean");
        const bound = 2 * LR * (runningMean ? maxStep : stepOf(name));
        diffs(k).forEach((e, i) => {
          if (runningMean || noise.has(`${k}:${i}`)) d.noiseOverBound = Math.max(d.noiseOverBound, e / bound);
          else if (e > d.params) [d.params, d.paramsWorst] = [e, k];
        });
      }
    }
  }
  return d;
}

function formatDiff(r: RunDiff): string {
  return `parameters ${r.params.toExponential(2)} (${r.paramsWorst}), noise-decided ${r.noiseOverBound.toFixed(2)} of the Adam bound, moments ${r.firstMoment.toExponential(2)} / ${r.secondMoment.toExponential(2)} of their tolerance, banks ${r.banks.toExponential(2)}`;
}

const tmp = tempDir("pc2-webgpu-");
let ds: SyntheticDataset;
let unavailable: Error | null = null;

async function use(backend: "webgpu" | "wasm") {
  if (unavailable) throw unavailable;
  await initBackend(backend);
  expect(tf.getBackend()).toBe(backend);
}

beforeAll(async () => {
  ds = tinyDataset(join(tmp.dir, "data"), SMALL);
  try {
    await initBackend("webgpu");
  } catch (e) {
    unavailable = e as Error;
  }
});
afterAll(() => {
  releaseWebGpu();
  tmp.cleanup();
});

async function interrupted(run: Promise<unknown>): Promise<string> {
  try {
    await run;
  } catch (e) {
    if (e instanceof TrainingInterrupted) return e.checkpoint;
    throw e;
  }
  throw new Error("expected the run to be interrupted");
}

/** The checkpoint a run interrupted after `tick` steps of `part` writes, copied to `name`. */
async function interruptAt(config: ReturnType<typeof tinyConfig>, part: string, tick: number, name: string): Promise<string> {
  const ck = await interrupted(train(config, recordingHooks({ stopWhen: (phase, t) => phase.startsWith(part) && t === tick })));
  const copy = join(tmp.dir, name);
  copyFileSync(ck, copy);
  return copy;
}

describe("training on webgpu", () => {
  test("the tiny synthetic run end to end: no tensor left behind, tensors and GPU buffers flat across steps", async () => {
    await use("webgpu");
    const out = join(tmp.dir, "webgpu-full");
    const samples: { phase: string; tensors: number; buffers: number }[] = [];
    const hooks = recordingHooks();
    const tick = hooks.progress.tick;
    let phase = "";
    const start = hooks.progress.start;
    hooks.progress.start = (p, n) => {
      phase = p;
      start(p, n);
    };
    hooks.progress.tick = (step, values) => {
      tick(step, values);
      samples.push({ phase, tensors: tf.memory().numTensors, buffers: gpuBufferStats().used });
    };
    const tensorsBefore = tf.memory().numTensors;
    const buffersBefore = gpuBufferStats().used;
    const r = await train(tinyConfig(ds, out, FLAGS), hooks);

    expect(JSON.parse(readFileSync(join(out, OUTPUT_FILES.config), "utf8")).backend_active).toBe("webgpu");
    expect(hooks.phases).toEqual(["warmup A [1/1]", "warmup B [1/1]", "split [0]", "train A [0/1]", "train B [0/1]"]);
    expect(Number.isFinite(r.bestRsum)).toBe(true);
    expect(r.test).not.toBeNull();
    // Within a phase, every step ends with the same tensors and GPU buffers in use.
    const phases = new Set(samples.map((s) => s.phase));
    for (const p of phases) {
      const inPhase = samples.filter((s) => s.phase === p);
      expect({ p, tensors: new Set(inPhase.map((s) => s.tensors)).size, buffers: new Set(inPhase.map((s) => s.buffers)).size }).toEqual({ p, tensors: 1, buffers: 1 });
    }
    expect(samples.filter((s) => s.phase.startsWith("warmup")).length).toBeGreaterThanOrEqual(4);
    // The finished run released everything: tensors and the GPU buffers behind them.
    expect(tf.memory().numTensors - tensorsBefore).toBe(0);
    expect(gpuBufferStats().used - buffersBefore).toBe(0);
  });

  test("the same step repeated: the GPU buffer pool stops growing after the first", async () => {
    await use("webgpu");
    const cfg = sgrafConfig({ img_dim: 8, embed_size: 16, word_dim: 12, sim_dim: 8, proj_dim: 5, vocab_size: 30, module_name: "SGR" });
    const rng = new Random(1);
    const net = { params: ParamStore.init(cfg, rng), optimizer: new Adam({ lr: 1e-3 }) };
    const B = 4;
    const T = 6;
    const batch = { images: rng.uniformArray(B * REGIONS * 8, 0, 1), captions: Int32Array.from({ length: B * T }, () => 1 + rng.nextInt(29)), lengths: Int32Array.from({ length: B }, () => T) };
    const o = { margin: 0.2, lambdaEn: 10, gradClip: 2, softMargin: "exponential" as const, hardNegative: true, rng, dropout: 0 };
    const after: { tensors: number; used: number; pooled: number; bytes: number }[] = [];
    for (let i = 0; i < 3; i++) {
      trainStep(net, batch, "warmup", o);
      const g = gpuBufferStats();
      after.push({ tensors: tf.memory().numTensors, used: g.used, pooled: g.used + g.free, bytes: g.bytesAllocated });
    }
    // Step 1 allocates the optimizer state; from step 2 on nothing new is kept or allocated.
    expect(after[2]).toEqual(after[1]);
    net.params.dispose();
    net.optimizer.reset();
  });
});

describe("checkpoints cross backends", () => {
  test("written on wasm, resumed on webgpu; written on webgpu, resumed on wasm: the same state as the run that stayed on wasm", async () => {
    await use("wasm");
    const full = join(tmp.dir, "wasm-full");
    await train(tinyConfig(ds, full, FLAGS), recordingHooks());
    const fromWasm = await interruptAt(tinyConfig(ds, join(tmp.dir, "wasm-stop"), FLAGS), "train A", 1, "wasm-written.safetensors");
    const wasmAtB = await interruptAt(tinyConfig(ds, join(tmp.dir, "wasm-resume"), { ...FLAGS, resume: true, model_path: fromWasm }), "train B", 1, "wasm-at-b.safetensors");

    // wasm -> webgpu: the steps taken on webgpu from the wasm checkpoint give wasm's state.
    await use("webgpu");
    const fromGpu = await interruptAt(tinyConfig(ds, join(tmp.dir, "webgpu-resume"), { ...FLAGS, resume: true, model_path: fromWasm }), "train B", 1, "webgpu-written.safetensors");
    const onGpu = crossBackendDiff(wasmAtB, fromGpu);
    console.log(`cross-backend, after the webgpu steps: ${formatDiff(onGpu)}`);
    // One step each of A and B on webgpu: the tolerances of the reference suite for one step.
    expect(onGpu).toMatchObject({ mismatched: [] });
    expect(onGpu.params).toBeLessThanOrEqual(1e-5);
    expect(onGpu.noiseOverBound).toBeLessThanOrEqual(1);
    expect(onGpu.firstMoment).toBeLessThanOrEqual(1);
    expect(onGpu.secondMoment).toBeLessThanOrEqual(1);
    expect(onGpu.banks).toBeLessThanOrEqual(1e-5);

    // webgpu -> wasm: the rest of the run on wasm from the webgpu checkpoint ends as the full wasm run.
    await use("wasm");
    const out = join(tmp.dir, "wasm-finish");
    await train(tinyConfig(ds, out, { ...FLAGS, resume: true, model_path: fromGpu }), recordingHooks());
    // Steps noise-decided on webgpu stay apart by up to their bound: classify by that checkpoint too.
    const end = crossBackendDiff(join(full, OUTPUT_FILES.latest), join(out, OUTPUT_FILES.latest), [fromGpu]);
    console.log(`cross-backend, at the end: ${formatDiff(end)}`);
    expect(end).toMatchObject({ mismatched: [] });
    expect(end.params).toBeLessThanOrEqual(1e-5);
    expect(end.noiseOverBound).toBeLessThanOrEqual(1);
    expect(end.firstMoment).toBeLessThanOrEqual(1);
    expect(end.secondMoment).toBeLessThanOrEqual(1);
    expect(end.banks).toBeLessThanOrEqual(1e-5);
    // Ranks, recalls and the best epoch: the same.
    expect(JSON.parse(readFileSync(join(out, OUTPUT_FILES.results), "utf8"))).toEqual(JSON.parse(readFileSync(join(full, OUTPUT_FILES.results), "utf8")));

  });
});

describe("the free buffer pool", () => {
  // tfjs-backend-webgpu's own BufferManager on a stand-in device: no GPU needed.
  function manager() {
    const device = { createBuffer: ({ size, usage }: { size: number; usage: number }) => ({ size, usage, destroyed: false, destroy() { this.destroyed = true; } }) };
    return new TfjsBufferManager(device as unknown as GPUDevice) as unknown as BufferManager;
  }
  /** Tensors of 200 sizes, 3 alive at a time, as captions of ever new lengths make. */
  function churn(bm: BufferManager) {
    const live: GPUBuffer[] = [];
    for (let n = 1; n <= 200; n++) {
      live.push(bm.acquireBuffer(1024 * n, 128));
      if (live.length > 3) bm.releaseBuffer(live.shift()!);
    }
    for (const b of live) bm.releaseBuffer(b);
  }

  test("tfjs keeps every released buffer: the pool grows with every new size", () => {
    const bm = manager();
    churn(bm);
    expect(bm.numFreeBuffers).toBe(200);
  });

  test("bounded: the free bytes stay under the largest working set (at least the floor), and reuse still works", () => {
    const bm = manager();
    boundFreePool(bm, 64 * 1024);
    let worst = 0;
    const release = bm.releaseBuffer.bind(bm);
    bm.releaseBuffer = (b, reuse) => {
      release(b, reuse);
      worst = Math.max(worst, bm.numBytesAllocated - bm.numBytesUsed);
    };
    churn(bm);
    const peak = bm.peakBytesUsed!;
    expect(peak).toBe(1024 * (197 + 198 + 199 + 200));
    expect(worst).toBeLessThanOrEqual(Math.max(64 * 1024, peak));
    expect(bm.numFreeBuffers).toBeLessThan(200);
    expect(bm.numUsedBuffers).toBe(0);
    // A size released and asked for again comes from the pool, not the device.
    const before = bm.numBytesAllocated;
    const again = bm.acquireBuffer(1024 * 200, 128);
    expect(bm.numBytesAllocated).toBe(before);
    bm.releaseBuffer(again);
  });
});
