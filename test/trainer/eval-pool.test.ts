/**
 * The evaluation pool (trainer/eval-pool.ts): validation, test and the split pass computed on
 * workers must give the numbers of the main thread exactly — recall, each net's spread, and a
 * whole training run's final state.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { sgrafConfig } from "../../shared/model/config";
import { ParamStore } from "../../shared/model/params";
import { Random } from "../../shared/random";
import { initBackend } from "../../trainer/backend";
import { type Data, loadData } from "../../trainer/data/load";
import { memoryFeatures } from "../../trainer/data/features";
import { EvalPool, poolSize, rowRanges } from "../../trainer/eval-pool";
import { evaluateSplit } from "../../trainer/evaluate";
import { train } from "../../trainer/train";
import { expectSameFinalRun, readMetrics, recordingHooks, tempDir, tinyConfig, tinyDataset } from "./train-fixtures";

setDefaultTimeout(600_000);

const tmp = tempDir("pc2-pool-");
let data: Data;
let nets: ParamStore[];
let pool: EvalPool;

beforeAll(async () => {
  await initBackend("wasm");
  // 23 dev images: row ranges of unequal size.
  const ds = tinyDataset(join(tmp.dir, "data"), { devImages: 23 });
  const config = tinyConfig(ds, join(tmp.dir, "out"));
  data = loadData(config, join(tmp.dir, "cache")).data;
  const model = sgrafConfig({ ...config, vocab_size: data.vocabSize });
  const rng = new Random(7);
  nets = [ParamStore.init(model, rng), ParamStore.init(model, rng)];
  pool = await EvalPool.start(3, "wasm");
});
afterAll(() => {
  pool?.terminate();
  for (const p of nets ?? []) p.dispose();
  tmp.cleanup();
});

describe("evaluation on the pool", () => {
  test("two nets, one per worker: the recall and each net's spread of the main thread, exactly", async () => {
    const here = await evaluateSplit(nets, data.dev, { batchSize: 8 });
    const there = await evaluateSplit(nets, data.dev, { batchSize: 8, pool });
    expect(there).toEqual(here);
    expect(there.spreads).toHaveLength(2);
  });

  test("one net cut into row ranges over the workers: the same matrix, hence the same recall", async () => {
    const here = await evaluateSplit([nets[1]], data.dev, { batchSize: 5 });
    const there = await evaluateSplit([nets[1]], data.dev, { batchSize: 5, pool });
    expect(there).toEqual(here);
  });

  test("a split held in memory is evaluated in the calling thread", async () => {
    const images = data.dev.images.gather(Int32Array.from({ length: data.dev.images.count }, (_, i) => i));
    const memory = { ...data.dev, images: memoryFeatures(images, data.dev.images.count, data.dev.images.regions, data.dev.images.dim) };
    expect(EvalPool.canServe(memory)).toBe(false);
    expect(EvalPool.canServe(data.dev)).toBe(true);
    expect(await evaluateSplit(nets, memory, { batchSize: 8, pool })).toEqual(await evaluateSplit(nets, data.dev, { batchSize: 8 }));
  });

  test("a worker's failure reaches the caller with its message, and the pool goes on", async () => {
    const broken = new Map(await nets[0].toArrays());
    broken.delete([...broken.keys()][0]);
    await expect(pool.sims(data.dev, broken, nets[0].config, [{ images: [0, 2], captions: [0, 10] }], { batchSize: 8 })).rejects.toThrow(/evaluation worker: /);
    expect(await evaluateSplit(nets, data.dev, { batchSize: 8, pool })).toEqual(await evaluateSplit(nets, data.dev, { batchSize: 8 }));
  });

  test("row ranges cover every row once, in order", () => {
    expect(rowRanges(23, 3)).toEqual([
      [0, 7],
      [7, 15],
      [15, 23],
    ]);
    expect(rowRanges(2, 5)).toEqual([
      [0, 1],
      [1, 2],
    ]);
    expect(poolSize(0, 6)).toBe(6);
    expect(poolSize(3, 6)).toBe(3);
  });
});

describe("a training run with --eval_workers", () => {
  test("on 2 workers it ends in the state of the run on none, with the same splits", async () => {
    const ds = tinyDataset(join(tmp.dir, "train-data"));
    const runs: Record<string, string> = {};
    for (const workers of ["1", "2"]) {
      const out = join(tmp.dir, `run-${workers}`);
      const hooks = recordingHooks();
      await train(tinyConfig(ds, out, { eval_workers: workers }), hooks);
      expect([workers, hooks.lines.some((l) => l.includes("on 2 workers"))]).toEqual([workers, workers === "2"]);
      runs[workers] = out;
    }
    expectSameFinalRun(runs["1"], runs["2"], 0);
    const splits = (dir: string) => readMetrics(dir).filter((r) => r.type === "split");
    expect(splits(runs["2"])).toEqual(splits(runs["1"]));
    const validations = (dir: string) => readMetrics(dir).filter((r) => r.type === "validation");
    expect(validations(runs["2"])).toEqual(validations(runs["1"]));
  });
});
