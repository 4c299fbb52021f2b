/**
 * The Bun edge's worker pool (edge/engine-pool.ts) on the exported quick model with its 100-image
 * gallery: real Workers, each loading the model into its own wasm tfjs. Its answers equal the
 * in-process engine's exactly; a call stopped by its signal (running or waiting) rejects with the
 * signal's reason and the pool goes on with a fresh worker; an engine input error keeps its class.
 * The in-process engine's batched score equals scoring each pair alone.
 * Then the real server (`bun edge/bun.ts`, a child process): /health answers while the pool
 * evaluates, which the same server computing on its own thread (`--workers 0`) cannot do.
 * Ordering only, no wall times.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EnginePool } from "../../edge/engine-pool.ts";
import { fileAssets } from "../../edge/adapters/bun.ts";
import { EngineInputError, type ImageQuery, type TextQuery } from "../../shared/retrieval/engine.ts";
import { Pc2Engine, loadPackage } from "../../shared/retrieval/pc2-engine.ts";
import { initBackend } from "../../trainer/backend";
import { exportTestModel, startEdge } from "./browser/harness.ts";

let root = "";
let modelDir = "";
let pool: EnginePool;
let local: Pc2Engine;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "pc2-engine-pool-"));
  modelDir = await exportTestModel(root);
  // The workers' backend: wasm, SIMD, native/bmm.wasm (edge/tfjs-wasm.ts through engine-worker.ts).
  await initBackend("wasm");
  local = new Pc2Engine(await loadPackage(fileAssets(modelDir), modelDir), { shard: { budgetBytes: 32 * 2 ** 20 } });
  pool = await EnginePool.start({ modelDir, workers: 2 });
}, 120_000);

afterAll(async () => {
  pool?.close();
  local?.dispose();
  await rm(root, { recursive: true, force: true });
});

const features = (seed: number) => Float32Array.from({ length: 36 * local.imgDim }, (_, j) => Math.sin(seed * 7 + j));

describe("EnginePool", () => {
  test("describes the model as the in-process engine does", () => {
    // What a worker held at its load is not what it holds now: the pool leaves memory out.
    const { memory, ...described } = local.info();
    expect(memory?.wasmHeapBytes).toBeGreaterThan(0);
    expect(pool.info()).toEqual(described);
    expect([pool.imgDim, pool.regions, pool.vocabSize, pool.maxTokens]).toEqual([local.imgDim, local.regions, local.vocabSize, local.maxTokens]);
  });

  test("answers every verb exactly as the in-process engine", async () => {
    const caption = (await local.searchCaptions({ image: 7 }, 1)).hits[0]!.caption!;
    // More pairs than one score batch, captions of 5 to 119 tokens, features and gallery images.
    const pairs: Array<ImageQuery & TextQuery> = [
      ...Array.from({ length: 20 }, (_, i) => ({ features: features(i), tokens: Array.from({ length: 5 + i * 6 }, (_, j) => 3 + ((i + j) % (local.vocabSize - 3))) })),
      { image: 3, text: caption },
    ];
    const calls = [
      (e: typeof local | EnginePool) => e.searchImages({ text: caption }, 10),
      (e: typeof local | EnginePool) => e.searchImages({ tokens: [1, 5, 9, 2] }, 3),
      (e: typeof local | EnginePool) => e.searchCaptions({ image: 12 }, 10),
      (e: typeof local | EnginePool) => e.searchCaptions({ features: features(99) }, 4),
      // Two-stage: the options cross the worker.
      (e: typeof local | EnginePool) => e.searchImages({ text: caption }, 10, { shortlist: 32 }),
      (e: typeof local | EnginePool) => e.searchCaptions({ image: 12 }, 10, { shortlist: 64 }),
      (e: typeof local | EnginePool) => e.score(pairs),
      (e: typeof local | EnginePool) => e.evaluate({ limit: 40, shortlist: 16 }),
    ];
    for (const call of calls) expect(await call(pool)).toEqual(await call(local));
  }, 120_000);

  test("an engine input error crosses the worker as itself", async () => {
    const error = await pool.searchImages({ text: "zzqqxx qqzzyy" }, 3).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EngineInputError);
    expect((error as Error).message).toContain("no word of the query is in the model's vocabulary");
  });

  test("a signal stops a running call and a waiting one; the pool goes on with fresh workers", async () => {
    const controller = new AbortController();
    const reason = new Error("deadline");
    // Two workers, one lane for evaluations: the second evaluation waits in the queue.
    const running = pool.evaluate(undefined, controller.signal).catch((e: unknown) => e);
    const waiting = pool.evaluate(undefined, controller.signal).catch((e: unknown) => e);
    await Bun.sleep(50);
    expect(pool.waiting()).toBe(1);
    controller.abort(reason);
    expect([await running, await waiting]).toEqual([reason, reason]);
    expect(pool.waiting()).toBe(0);
    expect(await pool.evaluate({ limit: 10 })).toEqual(await local.evaluate({ limit: 10 }));
  }, 60_000);
});

describe("Pc2Engine.score in batches (the fixture's gallery is here)", () => {
  test("each pair scores as it does alone, gallery images and features mixed in any order", async () => {
    const pairs: Array<ImageQuery & TextQuery> = Array.from({ length: 37 }, (_, i) => ({
      ...(i % 3 === 0 ? { features: features(i) } : { image: (i * 13) % 100 }),
      tokens: Array.from({ length: 3 + ((i * 7) % 40) }, (_, j) => 3 + ((i + j) % (local.vocabSize - 3))),
    }));
    const batched = await local.score(pairs);
    const alone: number[] = [];
    for (const pair of pairs) alone.push(...(await local.score([pair])));
    expect(batched.length).toBe(pairs.length);
    for (let i = 0; i < pairs.length; i++) expect(Math.abs(batched[i]! - alone[i]!)).toBeLessThan(1e-6);
    // Not all alike: a wrong row order would show.
    expect(new Set(alone.map((x) => x.toFixed(5))).size).toBeGreaterThan(30);
  }, 60_000);
});

describe("the Bun server", () => {
  /** Whether /health, asked while a full evaluation runs, is answered before the evaluation. */
  async function healthBeforeEval(workers: number): Promise<string[]> {
    const server = await startEdge(modelDir, 60_000, ["--workers", String(workers)]);
    try {
      const order: string[] = [];
      const post = { method: "POST", headers: { "content-type": "application/json" }, body: "{}" };
      const evaluation = fetch(`${server.url}/v1/eval`, post).then(async (r) => order.push(`eval ${r.status} ${((await r.json()) as { images: number }).images}`));
      await Bun.sleep(300); // the request is in the engine's hands
      const health = fetch(`${server.url}/health`).then(async (r) => order.push(`health ${r.status}`));
      await Promise.all([evaluation, health]);
      return order;
    } finally {
      await server.stop();
    }
  }

  test("with the worker pool, /health answers while an evaluation computes", async () => {
    expect(await healthBeforeEval(1)).toEqual(["health 200", "eval 200 100"]);
  }, 120_000);

  test("computing on the server's thread (--workers 0), /health waits for the evaluation", async () => {
    expect(await healthBeforeEval(0)).toEqual(["eval 200 100", "health 200"]);
  }, 120_000);
});
