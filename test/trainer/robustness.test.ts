/**
 * Beyond the official code: collapse detection and recovery, --select all, the vanilla baseline
 * (--num_epochs 0) and the official PO bank indexing. A collapse is provoked for real: co-training
 * a tiny SAF warmup checkpoint at learning rate 2 saturates a net's similarity output, so its
 * validation similarities become constant (std 0).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { initBackend } from "../../trainer/backend";
import { readCheckpointFile } from "../../trainer/checkpoint";
import type { SyntheticDataset } from "../../trainer/data/synthetic";
import type { AlarmRecord, MetricsRecord, ValidationRecord } from "../../trainer/metrics";
import { renderReport } from "../../trainer/report";
import { OUTPUT_FILES, train } from "../../trainer/train";
import { checkpointDiff, readMetrics, recordingHooks, tempDir, tinyConfig, tinyDataset } from "./train-fixtures";

setDefaultTimeout(300_000);

const tmp = tempDir("pc2-robust-");
let ds: SyntheticDataset;
/** A tiny SAF warmup-only run (--num_epochs 0): the vanilla baseline, and the warmup checkpoint below. */
let vanilla: string;

beforeAll(async () => {
  await initBackend("wasm");
  // 40 dev images: enough for a net's own ranking to be lost when its scores go constant (with 5, ties alone rank well).
  ds = tinyDataset(join(tmp.dir, "data"), { devImages: 40 });
  vanilla = join(tmp.dir, "vanilla");
  await train(tinyConfig(ds, vanilla, { module_name: "SAF", num_epochs: "0" }), recordingHooks());
});
afterAll(tmp.cleanup);

const of = <T extends MetricsRecord["type"]>(records: MetricsRecord[], type: T) => records.filter((r): r is Extract<MetricsRecord, { type: T }> => r.type === type);

describe("--num_epochs 0: warmup only, tested (the vanilla baseline)", () => {
  test("results.json, the test record, the best checkpoint and the exported-model stage are the warmup's", () => {
    const results = JSON.parse(readFileSync(join(vanilla, OUTPUT_FILES.results), "utf8"));
    expect(results.best_validation_epoch).toBe("warmup");
    expect(results.rsum).toBeGreaterThan(0);
    const records = readMetrics(vanilla);
    expect(of(records, "split")).toEqual([]);
    expect(of(records, "validation").map((r) => [r.epoch, r.best])).toEqual([["warmup", true]]);
    expect(of(records, "test").map((r) => [r.epoch, r.rsum])).toEqual([["warmup", results.rsum]]);
    const best = readCheckpointFile(join(vanilla, OUTPUT_FILES.best)).state;
    expect([best.cursor.stage, best.bestEpoch]).toEqual(["done", "warmup"]);
  });
});

describe("collapse detection and recovery", () => {
  const collapseRun = async (name: string, recovery: "restore" | "off", learningRate = "2") => {
    const out = join(tmp.dir, name);
    const hooks = recordingHooks();
    await train(tinyConfig(ds, out, { module_name: "SAF", model_path: join(vanilla, OUTPUT_FILES.warmup(0)), learning_rate: learningRate, recovery }), hooks);
    return { out, hooks, records: readMetrics(out) };
  };

  test("--recovery restore: the collapsed net is put back to the last checkpoint, its learning rate ÷10, and the epoch validated again", async () => {
    const { out, hooks, records } = await collapseRun("restore", "restore");
    const alarms = of(records, "alarm").filter((a) => a.kind === "collapsed_net");
    expect(alarms.length).toBeGreaterThan(0);
    const vals = of(records, "validation");
    for (const a of alarms) {
      expect(a.value).toBeLessThan(a.threshold);
      expect(a.action).toMatch(/^restored from (warmup_model_0|checkpoint_latest_validation)\.safetensors, learning rate × 0\.1/);
      expect(hooks.lines.some((l) => l.startsWith(`!! epoch ${a.epoch}: net ${a.net} COLLAPSED`))).toBe(true);
      // The epoch's validations: the collapsed one (never a candidate), then the recovered one.
      const ofEpoch = vals.filter((v) => v.epoch === a.epoch);
      expect(ofEpoch.map((v) => v.recovered ?? false)).toEqual([false, true]);
      expect(ofEpoch[0].best).toBe(false);
      expect(ofEpoch[1].spread![a.net!].std).toBeGreaterThan(a.threshold);
    }
    const final = readCheckpointFile(join(out, OUTPUT_FILES.latest)).state;
    for (const net of ["A", "B"] as const) expect([net, final.lrScale[net]]).toEqual([net, alarms.some((a) => a.net === net) ? 0.1 ** alarms.filter((a) => a.net === net).length : 1]);
  });

  test("--recovery off (the official behaviour): the same collapse is only reported", async () => {
    const { out, records } = await collapseRun("off", "off");
    const alarms = of(records, "alarm").filter((a): a is AlarmRecord => a.kind === "collapsed_net");
    expect(alarms.length).toBeGreaterThan(0);
    expect(alarms.every((a) => a.action === "reported (--recovery off)")).toBe(true);
    expect(of(records, "validation").some((v: ValidationRecord) => v.recovered)).toBe(false);
    expect(readCheckpointFile(join(out, OUTPUT_FILES.latest)).state.lrScale).toEqual({ A: 1, B: 1 });
  });

  test("a selected model that validates below the loaded (warmup) nets is called out once, in the log, the metrics and the report", async () => {
    // A warmup that learned something (learning rate 0.05, rsum well above chance), then co-training
    // at learning rate 2, which wrecks both nets; nothing restores them.
    const warm = join(tmp.dir, "good-warmup");
    await train(tinyConfig(ds, warm, { module_name: "SAF", num_epochs: "0", warmup_epoch: "3", learning_rate: "0.05" }), recordingHooks());
    const out = join(tmp.dir, "below-warmup");
    const hooks = recordingHooks();
    await train(tinyConfig(ds, out, { module_name: "SAF", model_path: join(warm, OUTPUT_FILES.warmup(2)), num_epochs: "1", learning_rate: "2", recovery: "off" }), hooks);
    const records = readMetrics(out);
    const results = JSON.parse(readFileSync(join(out, OUTPUT_FILES.results), "utf8")) as { best_validation_rsum: number; best_validation_epoch: number };
    const below = of(records, "alarm").filter((a) => a.kind === "below_warmup");
    expect(below.length).toBe(1);
    expect([below[0].epoch, below[0].value]).toEqual([results.best_validation_epoch, results.best_validation_rsum]);
    expect(below[0].value).toBeLessThan(below[0].threshold);
    expect(hooks.lines.filter((l) => l.includes("is WORSE than the model after warmup")).length).toBe(1);
    const html = renderReport(records, { title: "t", config: {} });
    expect(html).toContain("below the model after warmup");
    expect(html).toContain(`rsum ${below[0].value.toFixed(1)} against ${below[0].threshold.toFixed(1)}`);
  });
});

describe("--select all and --po_bank_index subset", () => {
  test("--select all makes the post-warmup model a candidate and never resets the best", async () => {
    const out = join(tmp.dir, "select-all");
    await train(tinyConfig(ds, out, { module_name: "SAF", select: "all" }), recordingHooks());
    const vals = of(readMetrics(out), "validation");
    expect(vals[0]).toMatchObject({ epoch: "warmup", best: true });
    // With no reset, a later epoch is best only above every earlier validation.
    let best = -Infinity;
    for (const v of vals) {
      expect([v.epoch, v.best]).toEqual([v.epoch, v.rsum > best]);
      best = Math.max(best, v.rsum);
    }
    expect(existsSync(join(out, OUTPUT_FILES.best))).toBe(true);
    // A selected model is never below the post-warmup one when that one is a candidate.
    expect(of(readMetrics(out), "alarm").some((a) => a.kind === "below_warmup")).toBe(false);
  });

  test("--po_bank_index subset writes the unlabeled step's PO outputs at subset positions (the banks differ)", async () => {
    const runs = [] as string[];
    for (const index of ["dataset", "subset"]) {
      const out = join(tmp.dir, `po-${index}`);
      await train(tinyConfig(ds, out, { module_name: "SAF", po_bank_index: index }), recordingHooks());
      runs.push(out);
    }
    const { diffs } = checkpointDiff(join(runs[0], OUTPUT_FILES.latest), join(runs[1], OUTPUT_FILES.latest));
    expect(diffs.get("bank_A.probs") ?? 0).toBeGreaterThan(0);
  });
});
