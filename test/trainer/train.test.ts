import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as tf from "../../shared/model/tf";
import { initBackend } from "../../trainer/backend";
import { FormatError } from "../../shared/formats/ndarray";
import { readCheckpointFile } from "../../trainer/checkpoint";
import { exportRun } from "../../trainer/export";
import { main as evalMain } from "../../trainer/cli/eval";
import { writeReport } from "../../trainer/cli/train";
import type { TrainConfig } from "../../trainer/config";
import { readNoiseFile } from "../../trainer/data/noise";
import type { SyntheticDataset } from "../../trainer/data/synthetic";
import type { MetricsRecord, SplitRecord } from "../../trainer/metrics";
import { OUTPUT_FILES, type TrainResult, TrainingFault, TrainingInterrupted, learningRate, train } from "../../trainer/train";
import { leftoverTemporaries, readMetrics, recordingHooks, type RecordedHooks, tempDir, tinyConfig, tinyDataset } from "./train-fixtures";

// Generous bounds for the training runs (a few seconds each on 2 cores); not assertions on speed.
setDefaultTimeout(300_000);

const tmp = tempDir("pc2-train-");
let ds: SyntheticDataset;
/** Captions of the tiny dataset whose noise index moves them to another image. */
let knownNoisy: number;

beforeAll(async () => {
  // wasm: the fastest backend available everywhere; the exact resume checks run on cpu (resume.test.ts).
  await initBackend("wasm");
  ds = tinyDataset(join(tmp.dir, "data"));
  const t2i = readNoiseFile(ds.noiseFile!, CAPTIONS, CAPTIONS / 5);
  knownNoisy = Array.from(t2i).filter((img, i) => img !== Math.floor(i / 5)).length;
  expect(knownNoisy).toBeGreaterThan(5);
});
afterAll(tmp.cleanup);

const CAPTIONS = 50; // TINY_DATA: 10 training images, five captions each
const METRIC_KEYS = ["r1", "r5", "r10", "medr", "meanr"];

function byType<T extends MetricsRecord["type"]>(records: MetricsRecord[], type: T): Extract<MetricsRecord, { type: T }>[] {
  return records.filter((r): r is Extract<MetricsRecord, { type: T }> => r.type === type);
}

async function expectRejects<E extends Error>(p: Promise<unknown>, kind: new (...a: never[]) => E): Promise<E> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(kind);
    return e as E;
  }
  throw new Error(`expected a ${kind.name}`);
}

/** What the report checks need from the HTML: the ids and classes of its SVG charts. */
async function reportCharts(html: string): Promise<{ id: string; className: string; paths: number; rects: number }[]> {
  const svgs: { id: string; className: string; paths: number; rects: number }[] = [];
  await new HTMLRewriter()
    .on("svg", { element: (el) => void svgs.push({ id: el.getAttribute("id") ?? "", className: el.getAttribute("class") ?? "", paths: 0, rects: 0 }) })
    .on("svg path", { element: () => void svgs[svgs.length - 1].paths++ })
    .on("svg rect", { element: () => void svgs[svgs.length - 1].rects++ })
    .transform(new Response(html))
    .text();
  return svgs;
}

for (const moduleName of ["SGR", "SAF"] as const) {
  describe(`end to end, ${moduleName}: 1 warmup + 2 co-training epochs on a tiny synthetic dataset`, () => {
    let out: string;
    let config: TrainConfig;
    let hooks: RecordedHooks;
    let result: TrainResult;
    let records: MetricsRecord[];

    beforeAll(async () => {
      out = join(tmp.dir, `run-${moduleName}`);
      config = tinyConfig(ds, out, { module_name: moduleName });
      hooks = recordingHooks();
      result = await train(config, hooks);
      records = readMetrics(out);
    });

    test("writes config.json with the resolved configuration", () => {
      const c = JSON.parse(readFileSync(join(out, OUTPUT_FILES.config), "utf8"));
      expect(c).toMatchObject({ module_name: moduleName, embed_size: 16, img_dim: ds.imgDim, data_path: ds.dataPath, noise_ratio: 0.4, noise_file: ds.noiseFile, backend_active: "wasm", synthetic: false });
      expect(c.vocab_size).toBeGreaterThan(4);
    });

    test("metrics.jsonl: warmup and co-training step records, every step logged (log_step 1)", () => {
      const steps = byType(records, "step");
      for (const net of ["A", "B"] as const) {
        const warm = steps.filter((s) => s.phase === "warmup" && s.net === net);
        // 50 captions in batches of 8: 7 batches (the last of 2).
        expect([net, warm.map((s) => s.step)]).toEqual([net, [0, 1, 2, 3, 4, 5, 6]]);
        expect(warm.every((s) => s.steps === 7 && s.epoch === 0 && Number.isFinite(s.triplet_loss) && s.lr === 0.001)).toBe(true);
        for (const epoch of [0, 1]) {
          const tr = steps.filter((s) => s.phase === "train" && s.net === net && s.epoch === epoch);
          expect([net, epoch, tr.length > 0]).toEqual([net, epoch, true]);
          // Steps run from 0; the last batch is skipped when it (or its unlabeled partner) holds one
          // sample (batch norm needs two), as the official loop breaks there.
          const n = tr.length;
          expect(n === tr[0].steps || n === tr[0].steps - 1).toBe(true);
          expect(tr.map((s) => s.step)).toEqual(Array.from({ length: n }, (_, i) => i));
          expect(tr.every((s) => s.lr === learningRate(config, epoch))).toBe(true);
        }
      }
      // Pseudo-captioning (the unlabeled loss) from warmup_epoch_2 = 1 on, not before.
      const tr = steps.filter((s) => s.phase === "train");
      expect(tr.filter((s) => s.epoch === 0).some((s) => s.triplet_loss_u != null)).toBe(false);
      expect(tr.filter((s) => s.epoch === 1).some((s) => s.triplet_loss_u != null)).toBe(true);
    });

    test("metrics.jsonl: split records for both nets and both criteria, with precision and recall", () => {
      const splits = byType(records, "split");
      expect(splits.map((s) => `${s.epoch}${s.net}${s.by}`).sort()).toEqual(["0Aloss", "0Apo", "0Bloss", "0Bpo", "1Aloss", "1Apo", "1Bloss", "1Bpo"]);
      for (const s of splits) {
        expect(s.size).toBe(CAPTIONS);
        expect(s.precision).not.toBeNull();
        expect(s.recall).not.toBeNull();
        expect(s.precision!).toBeGreaterThanOrEqual(0);
        expect(s.precision!).toBeLessThanOrEqual(1);
        expect(s.recall!).toBeGreaterThanOrEqual(0);
        expect(s.recall!).toBeLessThanOrEqual(1);
        expect(s.hist.noisy).not.toBeNull();
        const counted = s.hist.clean.reduce((a, b) => a + b, 0) + s.hist.noisy!.reduce((a, b) => a + b, 0);
        expect(counted).toBe(CAPTIONS);
        // The histogram's noisy counts are the known noisy captions (moved to another image).
        expect(s.hist.noisy!.reduce((a, b) => a + b, 0)).toBe(knownNoisy);
      }
    });

    test("metrics.jsonl: validation after warmup and after every epoch; epoch records; tests at the best", () => {
      const vals = byType(records, "validation");
      expect(vals.map((v) => v.epoch)).toEqual(["warmup", 0, 1]);
      for (const v of vals) {
        expect(Object.keys(v.i2t).sort()).toEqual([...METRIC_KEYS].sort());
        expect(v.rsum).toBeCloseTo(v.i2t.r1 + v.i2t.r5 + v.i2t.r10 + v.t2i.r1 + v.t2i.r5 + v.t2i.r10, 6);
      }
      expect(byType(records, "epoch").map((e) => `${e.phase} ${e.epoch}`)).toEqual(["warmup 0", "train 0", "train 1"]);
      const bestEpochs = vals.filter((v) => v.best).map((v) => v.epoch);
      expect(byType(records, "test").map((t) => t.epoch)).toEqual(bestEpochs);
    });

    test("results.json has the documented shape and agrees with the metrics", () => {
      const r = JSON.parse(readFileSync(join(out, OUTPUT_FILES.results), "utf8"));
      expect(Object.keys(r).sort()).toEqual(["best_validation_epoch", "best_validation_rsum", "i2t", "rsum", "t2i"]);
      const vals = byType(records, "validation").filter((v) => v.epoch !== "warmup");
      const best = vals.filter((v) => v.best).at(-1);
      if (!best) {
        expect(r).toEqual({ best_validation_epoch: null, best_validation_rsum: 0, i2t: null, t2i: null, rsum: null });
        return;
      }
      expect(r.best_validation_epoch).toBe(best.epoch);
      expect(r.best_validation_rsum).toBeCloseTo(best.rsum, 9);
      for (const dir of ["i2t", "t2i"]) {
        expect(Object.keys(r[dir]).sort()).toEqual([...METRIC_KEYS].sort());
        for (const k of METRIC_KEYS) expect(typeof r[dir][k]).toBe("number");
      }
      const t = byType(records, "test").find((x) => x.epoch === best.epoch)!;
      expect({ i2t: r.i2t, t2i: r.t2i, rsum: r.rsum }).toEqual({ i2t: t.i2t, t2i: t.t2i, rsum: t.rsum });
      expect(result.bestEpoch).toBe(best.epoch as number);
      expect(result.test!.rsum).toBe(r.rsum);
    });

    test("checkpoints: warmup, latest and best validation, each readable; no temporary files left", () => {
      const files = readdirSync(out).filter((f) => f.endsWith(".safetensors")).sort();
      const best = byType(records, "validation").some((v) => v.best);
      expect(files).toEqual([...(best ? [OUTPUT_FILES.best] : []), OUTPUT_FILES.latest, OUTPUT_FILES.warmup(0)].sort());
      const latest = readCheckpointFile(join(out, OUTPUT_FILES.latest));
      expect(latest.state.cursor.stage).toBe("done");
      expect(latest.state.model.module_name).toBe(moduleName);
      for (const k of ["A", "B"]) {
        expect(latest.arrays.get(`bank_${k}.probs`)!.shape).toEqual([CAPTIONS, 5]);
        expect(latest.arrays.has(`model_${k}.img_enc.fc.weight`)).toBe(true);
      }
      if (best) expect(readCheckpointFile(join(out, OUTPUT_FILES.best)).state.bestEpoch).toBe(result.bestEpoch);
      expect(leftoverTemporaries(out)).toEqual([]);
    });

    test("the log prints the official validation and test lines", () => {
      expect(hooks.lines.filter((l) => /^Image to text: [\d.]+, [\d.]+, [\d.]+, [\d.]+, [\d.]+$/.test(l)).length).toBe(3);
      if (result.bestEpoch !== null) expect(hooks.lines).toContainEqual(expect.stringMatching(/^rsum: \d+\.\d$/));
      expect(hooks.lines).toContainEqual(expect.stringMatching(/^Split A by loss: \d+ of 50 selected noisy, precision [\d.]+, recall [\d.]+, AUC [\d.]+$/));
    });

    test("the report renders every chart from the run's metrics", async () => {
      await writeReport(out, config as unknown as Record<string, unknown>);
      const html = readFileSync(join(out, OUTPUT_FILES.report), "utf8");
      expect(html).not.toMatch(/NaN|undefined|Infinity/);
      const svgs = await reportCharts(html);
      const ids = new Set(svgs.map((s) => s.id));
      for (const id of ["chart-loss", "chart-validation", "chart-split"]) {
        expect([id, ids.has(id)]).toEqual([id, true]);
        expect(svgs.find((s) => s.id === id)!.paths).toBeGreaterThan(0);
      }
      const hists = svgs.filter((s) => s.className.split(" ").includes("hist")).map((s) => s.id).sort();
      expect(hists).toEqual(["loss", "po"].flatMap((by) => [0, 1].flatMap((e) => ["A", "B"].map((n) => `hist-${by}-e${e}-${n}`))).sort());
      for (const h of svgs.filter((s) => s.className.split(" ").includes("hist"))) expect(h.rects).toBeGreaterThan(0);
    });
  });
}

describe("--model_path alone: a warmup checkpoint skips warmup", () => {
  let first: string;
  let second: string;
  let hooks: RecordedHooks;

  beforeAll(async () => {
    first = join(tmp.dir, "warm-first");
    second = join(tmp.dir, "warm-second");
    await train(tinyConfig(ds, first, { num_epochs: "1" }), recordingHooks());
    hooks = recordingHooks();
    await train(tinyConfig(ds, second, { num_epochs: "1", model_path: join(first, OUTPUT_FILES.warmup(0)) }), hooks);
  });

  test("no warmup step, epoch or validation records; co-training epoch 0 is done", () => {
    const records = readMetrics(second);
    expect(byType(records, "step").filter((s) => s.phase === "warmup")).toEqual([]);
    expect(byType(records, "epoch").map((e) => `${e.phase} ${e.epoch}`)).toEqual(["train 0"]);
    expect(byType(records, "validation").map((v) => v.epoch)).toEqual([0]);
    expect(hooks.phases.some((p) => p.startsWith("warmup"))).toBe(false);
    expect(hooks.lines).toContainEqual(expect.stringContaining("=> load warmup checkpoint"));
    expect(existsSync(join(second, OUTPUT_FILES.warmup(0)))).toBe(false);
  });

  test("the first split is computed from the warmup nets: it equals the split of the run that wrote them", () => {
    const strip = (s: SplitRecord) => ({ ...s });
    const a = byType(readMetrics(first), "split").filter((s) => s.epoch === 0).map(strip);
    const b = byType(readMetrics(second), "split").filter((s) => s.epoch === 0).map(strip);
    expect(b.length).toBe(4);
    expect(b).toEqual(a);
  });
});

describe("train() leaves no tensors behind", () => {
  test("a finished run disposes its nets and optimizers", async () => {
    const before = tf.memory().numTensors;
    await train(tinyConfig(ds, join(tmp.dir, "leak"), { num_epochs: "1" }), recordingHooks());
    expect(tf.memory().numTensors - before).toBe(0);
  });
});

/** Overwrites every feature of an .npy file (format 1.0, float32) with NaN. */
function poisonFeatures(file: string, which: "all" | number[] = "all"): void {
  const bytes = new Uint8Array(readFileSync(file));
  expect(bytes[6]).toBe(1); // npy format version 1.x: header length is a uint16 at offset 8
  const start = 10 + (bytes[8] | (bytes[9] << 8));
  const data = new Float32Array(bytes.buffer.slice(start));
  if (which === "all") data.fill(Number.NaN);
  else for (const i of which) data[i] = Number.NaN;
  bytes.set(new Uint8Array(data.buffer), start);
  writeFileSync(file, bytes);
}

function snapshot(dir: string): Map<string, Buffer> {
  return new Map(
    readdirSync(dir)
      .filter((f) => f.endsWith(".safetensors"))
      .map((f) => [f, readFileSync(join(dir, f))]),
  );
}

describe("a NaN loss stops training with a TrainingFault", () => {
  test("in co-training: names the part, epoch, step, sample ids and term; the last good checkpoints stay byte-identical", async () => {
    const data = tinyDataset(join(tmp.dir, "nan-data"));
    const out = join(tmp.dir, "nan-run");
    // A good run interrupted inside co-training epoch 1 leaves latest/best/warmup/interrupted checkpoints.
    const stop = recordingHooks({ stopWhen: (phase, tick) => phase.startsWith("train A [1/") && tick >= 1 });
    const interrupted = await expectRejects(train(tinyConfig(data, out), stop), TrainingInterrupted);
    const before = snapshot(out);
    expect([...before.keys()]).toContain(OUTPUT_FILES.interrupted);
    expect([...before.keys()]).toContain(OUTPUT_FILES.latest);

    poisonFeatures(join(data.dataPath, data.dataName, "train_ims.npy"));
    const fault = await expectRejects(train(tinyConfig(data, out, { resume: true, model_path: interrupted.checkpoint }), recordingHooks()), TrainingFault);
    expect(fault.message).toMatch(/^train [AB], epoch 1, step \d+: /);
    expect(fault.message).toMatch(/loss term \w+ is NaN/);
    const ids = /sample ids ([\d, ]+)/.exec(fault.message);
    expect(ids).not.toBeNull();
    const named = ids![1].split(", ").map(Number);
    expect(named.length).toBeGreaterThan(1);
    expect(named.every((i) => Number.isInteger(i) && i >= 0 && i < CAPTIONS)).toBe(true);

    const after = snapshot(out);
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [f, b] of before) expect([f, after.get(f)!.equals(b)]).toEqual([f, true]);
    expect(leftoverTemporaries(out)).toEqual([]);
  });

  test("in warmup: the first step names warmup A, epoch 0, step 0", async () => {
    const data = tinyDataset(join(tmp.dir, "nan-warmup-data"));
    poisonFeatures(join(data.dataPath, data.dataName, "train_ims.npy"));
    const out = join(tmp.dir, "nan-warmup");
    const fault = await expectRejects(train(tinyConfig(data, out), recordingHooks()), TrainingFault);
    expect(fault.message).toMatch(/^warmup A, epoch 0, step 0: loss term \w+ is NaN \(sample ids /);
    expect(readdirSync(out).filter((f) => f.endsWith(".safetensors"))).toEqual([]);
  });

  test("in the split: a NaN per-sample loss is a TrainingFault naming the split, the epoch and the sample ids", async () => {
    const data = tinyDataset(join(tmp.dir, "nan-split-data"));
    const first = join(tmp.dir, "nan-split-first");
    await train(tinyConfig(data, first, { num_epochs: "1" }), recordingHooks());
    // One NaN feature of image 0: the warmup checkpoint's nets meet it first in the split.
    poisonFeatures(join(data.dataPath, data.dataName, "train_ims.npy"), [3]);
    const fault = await expectRejects(train(tinyConfig(data, join(tmp.dir, "nan-split-second"), { num_epochs: "1", model_path: join(first, OUTPUT_FILES.warmup(0)) }), recordingHooks()), TrainingFault);
    expect(fault.message).toMatch(/split/);
    expect(fault.message).toMatch(/epoch 0/);
    expect(fault.message).toMatch(/sample ids \d+/);
  });
});

describe("the export at the end of a run (exportRun)", () => {
  test("exports the best checkpoint; a corrupt best checkpoint is an error, a missing one is said", async () => {
    const out = join(tmp.dir, "run-export");
    const seen: { exported?: string; corrupt?: unknown; missingLog?: string[]; fallback?: string } = {};
    const hooks = recordingHooks();
    hooks.finish = async (run, data, outputDir) => {
      seen.exported = await exportRun(run, data, outputDir, () => {});
      const best = join(outputDir, OUTPUT_FILES.best);
      const bytes = readFileSync(best);
      bytes[bytes.length - 1] ^= 0xff;
      writeFileSync(best, bytes);
      seen.corrupt = await exportRun(run, data, outputDir, () => {}).catch((e: unknown) => e);
      rmSync(best);
      const lines: string[] = [];
      seen.fallback = await exportRun(run, data, outputDir, (l) => lines.push(l));
      seen.missingLog = lines;
    };
    await train(tinyConfig(ds, out, { module_name: "SAF", num_epochs: "1" }), hooks);
    expect(seen.exported).toBe(join(out, OUTPUT_FILES.model));
    expect(existsSync(join(out, OUTPUT_FILES.model, "model.json"))).toBe(true);
    expect(seen.corrupt).toBeInstanceOf(FormatError);
    expect(String((seen.corrupt as Error).message)).toMatch(/checkpoint_best_validation\.safetensors.*checksum mismatch/);
    expect(seen.missingLog!.join("\n")).toMatch(/no checkpoint_best_validation\.safetensors .*exporting the final nets/);
    expect(seen.fallback).toBe(join(out, OUTPUT_FILES.model));
  });
});

describe("dev and test files with one caption per image (where five are usual)", () => {
  test("train validates and tests at one caption per image; bun run eval scores the split", async () => {
    const dir = join(tmp.dir, "one-caption-data");
    const one = tinyDataset(dir);
    for (const split of ["dev", "test"]) {
      const file = join(one.dataPath, one.dataName, `${split}_caps.txt`);
      const lines = readFileSync(file, "utf8").split("\n").filter((l) => l !== "");
      writeFileSync(file, `${lines.filter((_, i) => i % 5 === 0).join("\n")}\n`);
    }
    const out = join(tmp.dir, "run-one-caption");
    const r = await train(tinyConfig(one, out, { module_name: "SAF", num_epochs: "1" }), recordingHooks());
    const v = byType(readMetrics(out), "validation");
    expect(v.map((x) => x.epoch)).toEqual(["warmup", 0]);
    expect(r.test).not.toBeNull();
    expect({ images: r.test!.images, captions: r.test!.captions }).toEqual({ images: 5, captions: 5 });
    const lines: string[] = [];
    const log = console.log;
    console.log = (...a: unknown[]) => void lines.push(a.join(" "));
    try {
      expect(await evalMain(["--model_path", join(out, OUTPUT_FILES.best), "--backend", "wasm", "--json"])).toBe(0);
    } finally {
      console.log = log;
    }
    expect(JSON.parse(lines.at(-1)!).rsum).toBeCloseTo(r.test!.rsum, 6);
  });
});
