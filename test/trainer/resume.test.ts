/**
 * Resume equivalence on the cpu backend (deterministic JavaScript kernels): a resumed or
 * interrupted-and-resumed run must end with the parameters, Adam state and PO banks of the
 * uninterrupted run.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { initBackend } from "../../trainer/backend";
import { readCheckpointFile } from "../../trainer/checkpoint";
import type { SyntheticDataset } from "../../trainer/data/synthetic";
import { OUTPUT_FILES, TrainingInterrupted, train } from "../../trainer/train";
import { checkpointDiff, expectSameFinalRun, readMetrics, recordingHooks, tempDir, tinyConfig, tinyDataset } from "./train-fixtures";

// The cpu backend is slow (a tiny run takes tens of seconds on 2 cores): generous bounds, not assertions.
setDefaultTimeout(600_000);

/** Parameters are compared to this (float32 runs that replay the same operations agree exactly). */
const TOLERANCE = 1e-6;

const tmp = tempDir("pc2-resume-");
let ds: SyntheticDataset;
/** The uninterrupted run: 1 warmup epoch + 2 co-training epochs (pseudo-captions in epoch 1). */
let full: string;
/** A copy of the full run's latest checkpoint taken as epoch 1 began (a checkpoint at an epoch boundary). */
let boundary: string;

const finalOf = (dir: string) => join(dir, OUTPUT_FILES.latest);
const expectSameFinalState = (dir: string) => expectSameFinalRun(full, dir, TOLERANCE);

beforeAll(async () => {
  await initBackend("cpu");
  ds = tinyDataset(join(tmp.dir, "data"));
  full = join(tmp.dir, "full");
  boundary = join(tmp.dir, "boundary.safetensors");
  const hooks = recordingHooks({
    onLog: (line) => {
      if (line.startsWith("Epoch [1/")) copyFileSync(join(full, OUTPUT_FILES.latest), boundary);
    },
  });
  await train(tinyConfig(ds, full), hooks);
  expect(existsSync(boundary)).toBe(true);
  expect(JSON.parse(readFileSync(join(full, OUTPUT_FILES.config), "utf8")).backend_active).toBe("cpu");
});
afterAll(tmp.cleanup);

describe("resume equivalence (cpu)", () => {
  test("--resume from the checkpoint written at the end of epoch 0 finishes as the uninterrupted run", async () => {
    const out = join(tmp.dir, "from-boundary");
    const hooks = recordingHooks();
    await train(tinyConfig(ds, out, { resume: true, model_path: boundary }), hooks);
    expect(hooks.phases.some((p) => p.startsWith("warmup"))).toBe(false);
    expect(hooks.phases.filter((p) => p.startsWith("split"))).toEqual(["split [1]"]);
    expectSameFinalState(out);
  });

  // The warmup checkpoint is the state co-training starts from: fresh optimizers, the RNGs where
  // warmup left them. Before this was so it held the warmup's Adam moments (epoch-0 validation rsum
  // 43.8 against 35.0 uninterrupted in the probe that found it).
  for (const resume of [true, false]) {
    test(`${resume ? "--resume --model_path" : "--model_path"} warmup_model_0 finishes as the uninterrupted run`, async () => {
      const out = join(tmp.dir, `from-warmup-${resume}`);
      const warmup = join(full, OUTPUT_FILES.warmup(0));
      const hooks = recordingHooks();
      await train(tinyConfig(ds, out, resume ? { resume: true, model_path: warmup } : { model_path: warmup }), hooks);
      expect(hooks.phases.some((p) => p.startsWith("warmup"))).toBe(false);
      expect(hooks.phases.filter((p) => p.startsWith("split"))).toEqual(["split [0]", "split [1]"]);
      expectSameFinalState(out);
    });
  }

  // A seed study from one warmup state (benchmarks/cotrain_epoch0.ts): with another --seed the data
  // order and dropout of co-training come from that seed, as the official code draws them from its seed.
  test("--model_path warmup_model_0 with another --seed co-trains with that seed's data order", async () => {
    const warmup = join(full, OUTPUT_FILES.warmup(0));
    const seed = String(tinyConfig(ds, "x").seed + 1);
    const runs = ["a", "b"].map((name) => join(tmp.dir, `other-seed-${name}`));
    for (const out of runs) {
      const hooks = recordingHooks();
      await train(tinyConfig(ds, out, { model_path: warmup, seed }), hooks);
      expect(hooks.lines.some((l) => l.includes(`data order and dropout from --seed ${seed}`))).toBe(true);
    }
    // Not the uninterrupted run's continuation...
    expect(checkpointDiff(finalOf(full), finalOf(runs[0])).max).toBeGreaterThan(1e-3);
    // ...but a function of the seed: two runs with it agree.
    expect(checkpointDiff(finalOf(runs[0]), finalOf(runs[1])).max).toBeLessThanOrEqual(TOLERANCE);
  });

  test("a run of 1 epoch resumed with --num_epochs 2 (same output dir) equals a run of 2 epochs", async () => {
    const out = join(tmp.dir, "one-then-two");
    await train(tinyConfig(ds, out, { num_epochs: "1" }), recordingHooks());
    const hooks = recordingHooks();
    await train(tinyConfig(ds, out, { resume: true, model_path: join(out, OUTPUT_FILES.latest) }), hooks);
    // The second call must train co-training epoch 1, and only it.
    expect(hooks.phases.filter((p) => p.startsWith("split"))).toEqual(["split [1]"]);
    expect(readMetrics(out).filter((r) => r.type === "validation").map((r) => r.epoch)).toEqual(["warmup", 0, 1]);
    expectSameFinalState(out);
  });

  test("interrupted twice (in warmup B, then mid co-training epoch 1 with pseudo-captions) and resumed: same final state", async () => {
    const out = join(tmp.dir, "interrupted");
    const first = recordingHooks({ stopWhen: (phase, tick) => phase.startsWith("warmup B") && tick === 3 });
    let error: unknown = null;
    try {
      await train(tinyConfig(ds, out), first);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TrainingInterrupted);
    const ck = (error as TrainingInterrupted).checkpoint;
    expect(ck).toBe(join(out, OUTPUT_FILES.interrupted));
    expect(readCheckpointFile(ck).state.cursor).toMatchObject({ stage: "warmup", epoch: 0, part: 1, step: 3 });

    const second = recordingHooks({ stopWhen: (phase, tick) => phase.startsWith("train A [1/") && tick === 1 });
    error = null;
    try {
      await train(tinyConfig(ds, out, { resume: true, model_path: ck }), second);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TrainingInterrupted);
    expect(second.phases[0]).toMatch(/^warmup B/);
    expect(readCheckpointFile(ck).state.cursor).toMatchObject({ stage: "cotrain", epoch: 1, part: 1, step: 1 });

    const third = recordingHooks();
    await train(tinyConfig(ds, out, { resume: true, model_path: ck }), third);
    expect(third.phases[0]).toMatch(/^train A \[1\//);
    // Steps done over the three calls are those of the uninterrupted run.
    const fullSteps = readMetrics(full).filter((r) => r.type === "step").length;
    expect(first.steps + second.steps + third.steps).toBe(fullSteps);
    expectSameFinalState(out);
  });
});
