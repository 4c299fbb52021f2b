/**
 * Tiny training runs for the trainer tests: a small synthetic dataset in a temporary folder, the
 * command line of a tiny configuration pointing at it, quiet hooks, and checkpoint comparison.
 */
import { expect } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readCheckpointFile } from "../../trainer/checkpoint";
import { parseTrainArgs, type TrainConfig } from "../../trainer/config";
import { generateSynthetic, type SyntheticDataset, type SyntheticOptions } from "../../trainer/data/synthetic";
import { type MetricsRecord, parseMetricsJsonl } from "../../trainer/metrics";
import { OUTPUT_FILES, type TrainHooks } from "../../trainer/train";

export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A few dozen captions: every part of a run takes a handful of steps. */
export const TINY_DATA: Partial<SyntheticOptions> = { trainImages: 10, devImages: 5, testImages: 5, imgDim: 8, classes: 6, noiseRatio: 0.4 };

export function tinyDataset(dir: string, options: Partial<SyntheticOptions> = {}): SyntheticDataset {
  return generateSynthetic(dir, { ...TINY_DATA, ...options });
}

/** The tiny model and schedule: 1 warmup epoch, 2 co-training epochs, pseudo-captions from epoch 1. */
export const TINY_FLAGS: Record<string, string> = {
  embed_size: "16",
  word_dim: "12",
  sim_dim: "8",
  proj_dim: "5",
  batch_size: "8",
  num_epochs: "2",
  warmup_epoch: "1",
  warmup_epoch_2: "1",
  lambda_en: "10",
  learning_rate: "0.001",
  log_step: "1",
  seed: "0",
  // One net after the other, as the official code: the tests name parts "warmup A", "train B", …
  // (test/trainer/parallel.test.ts runs --parallel on).
  parallel: "off",
};

/** argv of a tiny run on `ds` writing to `out`; `extra` flags override (a later flag wins). */
export function tinyArgv(ds: SyntheticDataset, out: string, extra: Record<string, string | true> = {}): string[] {
  const flags: Record<string, string | true> = {
    data_path: ds.dataPath,
    data_name: ds.dataName,
    vocab_path: ds.vocabPath,
    noise_file: ds.noiseFile!,
    noise_ratio: String(ds.options.noiseRatio),
    img_dim: String(ds.imgDim),
    output_dir: out,
    ...TINY_FLAGS,
    ...extra,
  };
  return Object.entries(flags).flatMap(([k, v]) => (v === true ? [`--${k}`] : [`--${k}`, v]));
}

export function tinyConfig(ds: SyntheticDataset, out: string, extra: Record<string, string | true> = {}): TrainConfig {
  return parseTrainArgs(tinyArgv(ds, out, extra));
}

export interface RecordedHooks extends TrainHooks {
  lines: string[];
  phases: string[];
  /** Steps done (progress ticks of warmup and train parts) in this call of train(). */
  steps: number;
}

/**
 * Quiet hooks that record the log and the phases. `stopWhen(phase, tick)` is asked after every step
 * (through stopRequested); `onLog` sees every line as it is logged.
 */
export function recordingHooks(o: { stopWhen?: (phase: string, tick: number) => boolean; onLog?: (line: string) => void } = {}): RecordedHooks {
  let phase = "";
  let tick = 0;
  const h: RecordedHooks = {
    lines: [],
    phases: [],
    steps: 0,
    log(line) {
      h.lines.push(line);
      o.onLog?.(line);
    },
    progress: {
      start(p) {
        phase = p;
        tick = 0;
        h.phases.push(p);
      },
      tick(step) {
        tick = step;
        if (!phase.startsWith("split")) h.steps++;
      },
      end() {},
    },
    stopRequested: () => (o.stopWhen ? o.stopWhen(phase, tick) : false),
  };
  return h;
}

export function readMetrics(outputDir: string): MetricsRecord[] {
  return parseMetricsJsonl(readFileSync(join(outputDir, OUTPUT_FILES.metrics), "utf8"));
}

/**
 * Largest absolute difference per tensor between two checkpoints (every tensor: both nets, their
 * Adam moments and steps, both PO banks); names present in only one file are reported as Infinity.
 */
export function checkpointDiff(a: string, b: string): { max: number; worst: string; diffs: Map<string, number> } {
  const A = readCheckpointFile(a).arrays;
  const B = readCheckpointFile(b).arrays;
  const diffs = new Map<string, number>();
  for (const name of new Set([...A.keys(), ...B.keys()])) {
    const x = A.get(name);
    const y = B.get(name);
    if (!x || !y || x.data.length !== y.data.length) {
      diffs.set(name, Number.POSITIVE_INFINITY);
      continue;
    }
    let d = 0;
    for (let i = 0; i < x.data.length; i++) {
      const e = Math.abs(Number(x.data[i]) - Number(y.data[i]));
      if (!(e <= d)) d = Number.isNaN(e) ? Number.POSITIVE_INFINITY : e;
    }
    diffs.set(name, d);
  }
  let max = 0;
  let worst = "";
  for (const [k, d] of diffs) {
    if (d > max || (worst === "" && d >= max)) {
      max = d;
      worst = k;
    }
  }
  return { max, worst, diffs };
}

/** Files of a folder that a crashed atomic write would leave behind. */
export function leftoverTemporaries(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.includes(".tmp-"));
}

/**
 * Expects run `dir` to have ended in the state of run `full`: every tensor of the latest checkpoint
 * (both nets, their Adam moments and step counts, both PO banks) within `tolerance`, the schedule
 * and selection state equal, and the same results.json.
 */
export function expectSameFinalRun(full: string, dir: string, tolerance: number): void {
  const finalOf = (d: string) => join(d, OUTPUT_FILES.latest);
  const { max, worst, diffs } = checkpointDiff(finalOf(full), finalOf(dir));
  expect([...diffs.keys()].some((k) => k.startsWith("bank_A."))).toBe(true);
  expect([...diffs.keys()].some((k) => k.startsWith("optimizer_B."))).toBe(true);
  expect({ worst, max: max <= tolerance ? "within" : max }).toEqual({ worst, max: "within" });
  const a = readCheckpointFile(finalOf(full)).state;
  const b = readCheckpointFile(finalOf(dir)).state;
  for (const k of ["cursor", "bestRsum", "bestEpoch", "bestTest", "modelRng", "lr"] as const) expect([k, b[k]]).toEqual([k, a[k]]);
  expect(JSON.parse(readFileSync(join(dir, OUTPUT_FILES.results), "utf8"))).toEqual(JSON.parse(readFileSync(join(full, OUTPUT_FILES.results), "utf8")));
}
