/**
 * --parallel on: both nets' warmup and co-training parts at once, each on a worker of the pool.
 * A lane on a worker must compute what the same lane computes in the main thread; a parallel run
 * interrupted inside its parallel parts and resumed must end as the uninterrupted parallel run.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { sgrafConfig } from "../../shared/model/config";
import { Adam } from "../../shared/model/optim";
import { ParamStore } from "../../shared/model/params";
import { Random } from "../../shared/random";
import { initBackend } from "../../trainer/backend";
import { emptyBank, readCheckpointFile } from "../../trainer/checkpoint";
import type { SyntheticDataset } from "../../trainer/data/synthetic";
import { loadData } from "../../trainer/data/load";
import { EvalPool, type NetArrays } from "../../trainer/eval-pool";
import { warmupSteps } from "../../trainer/net-steps";
import { OUTPUT_FILES, TrainingFault, TrainingInterrupted, train } from "../../trainer/train";
import { checkpointDiff, expectSameFinalRun, readMetrics, recordingHooks, tempDir, tinyConfig, tinyDataset } from "./train-fixtures";

setDefaultTimeout(600_000);

const tmp = tempDir("pc2-parallel-");
let ds: SyntheticDataset;
let full: string;
const PARALLEL = { parallel: "on", eval_workers: "2" } as const;

beforeAll(async () => {
  await initBackend("wasm");
  ds = tinyDataset(join(tmp.dir, "data"));
  full = join(tmp.dir, "full");
  const hooks = recordingHooks();
  await train(tinyConfig(ds, full, PARALLEL), hooks);
  expect(hooks.phases.filter((p) => p.includes("A+B"))).toEqual(["warmup A+B [1/1]", "train A+B [0/2]", "train A+B [1/2]"]);
});
afterAll(tmp.cleanup);

describe("--parallel on", () => {
  test("a lane on a worker ends where the same lane in the main thread does", async () => {
    const config = tinyConfig(ds, join(tmp.dir, "lane"));
    const { data } = loadData(config, join(tmp.dir, "cache"));
    const model = sgrafConfig({ ...config, vocab_size: data.vocabSize });
    const init = ParamStore.init(model, new Random(5));
    const arrays = (await init.toArrays()) as NetArrays;
    const here = { net: { params: ParamStore.fromArrays(model, arrays, "test"), optimizer: new Adam({ lr: 0.001 }) }, bank: emptyBank(data.train.length, model.proj_dim), dataRng: new Random(11), modelRng: new Random(12), step: 0 };
    const steps: number[] = [];
    await warmupSteps(here, data.pairs, config, "warmup A, epoch 0", async (i) => (steps.push(i), false));
    const pool = await EvalPool.start(2, "wasm");
    try {
      const events: number[] = [];
      const there = await pool.lane(
        data.pairs,
        { part: "warmup", model, net: arrays, optimizer: new Map(), lr: 0.001, bank: emptyBank(data.train.length, model.proj_dim), dataRng: new Random(11).state(), modelRng: new Random(12).state(), step: 0, config, epoch: 0, where: "warmup A, epoch 0" },
        (e) => events.push(e.i),
      );
      expect(events).toEqual(steps);
      expect(there.modelRng).toEqual(here.modelRng.state());
      const mine = await here.net.params.toArrays();
      for (const [name, a] of mine) expect([name, Array.from(there.net.get(name)!.data as Float32Array)]).toEqual([name, Array.from(a.data as Float32Array)]);
      expect(Array.from(there.bank.probs)).toEqual(Array.from(here.bank.probs));
      const opt = await here.net.optimizer.toArrays();
      for (const [name, a] of opt) expect([name, Array.from(there.optimizer.get(name)!.data as Float32Array)]).toEqual([name, Array.from(a.data)]);
    } finally {
      pool.terminate();
      init.dispose();
      here.net.params.dispose();
    }
  });

  test("the run records each net's steps, from both lanes", () => {
    const steps = readMetrics(full).filter((r) => r.type === "step");
    for (const phase of ["warmup", "train"]) for (const net of ["A", "B"]) expect([phase, net, steps.some((r) => r.type === "step" && r.phase === phase && r.net === net)]).toEqual([phase, net, true]);
  });

  test("interrupted inside warmup A+B and inside train A+B, resumed each time: the uninterrupted parallel run's final state", async () => {
    const dir = join(tmp.dir, "interrupted");
    const interrupted = join(dir, OUTPUT_FILES.interrupted);
    const stopIn = async (extra: Record<string, string | true>, part: string) => {
      const hooks = recordingHooks({ stopWhen: (phase, tick) => phase.startsWith(part) && tick >= 2 });
      const e = await train(tinyConfig(ds, dir, { ...PARALLEL, ...extra }), hooks).then(
        () => null,
        (err) => err,
      );
      expect(e).toBeInstanceOf(TrainingInterrupted);
      return readCheckpointFile(interrupted).state.cursor;
    };
    const first = await stopIn({}, "warmup A+B");
    expect(first.lanes).toBeDefined();
    expect(first.lanes!.A.step + first.lanes!.B.step).toBeGreaterThanOrEqual(2);
    const firstCheckpoint = join(tmp.dir, "inside-warmup.safetensors");
    copyFileSync(interrupted, firstCheckpoint);
    // The lanes of a co-training part are a few steps each: the stop lands inside the part or, when
    // both lanes finished first, at the next pause (the validation); either must resume exactly.
    const second = await stopIn({ resume: true, model_path: interrupted }, "train A+B [1/");
    expect([second.stage, second.epoch]).toEqual(["cotrain", 1]);
    expect(second.lanes === undefined ? second.part : 1).toBe(second.lanes === undefined ? 3 : second.part);

    // A checkpoint taken inside a parallel part is refused without --parallel on, saying how to resume it.
    const refused = await train(tinyConfig(ds, join(tmp.dir, "refused"), { resume: true, model_path: firstCheckpoint, parallel: "off" }), recordingHooks()).then(
      () => null,
      (err) => err,
    );
    expect(refused).toBeInstanceOf(TrainingFault);
    expect((refused as Error).message).toContain("resume it with --parallel on");

    await train(tinyConfig(ds, dir, { ...PARALLEL, resume: true, model_path: interrupted }), recordingHooks());
    expectSameFinalRun(full, dir, 0);
  });

  test("each net's data order is its own: the parallel run differs from the one-thread run", async () => {
    const dir = join(tmp.dir, "sequential");
    await train(tinyConfig(ds, dir, { eval_workers: "2" }), recordingHooks());
    const d = checkpointDiff(join(full, OUTPUT_FILES.latest), join(dir, OUTPUT_FILES.latest));
    expect(d.max).toBeGreaterThan(0);
  });
});
