/**
 * The Workers build inside workerd: bundled by wrangler with wrangler.toml, run by Miniflare.
 * The probe Worker (workerd/probe-worker.ts) is the real edge/worker.ts plumbing with an engine
 * that multiplies on tfjs: it proves that the wasm backend starts from the imported module and
 * computes inside workerd, and that the ASSETS binding reaches the engine loader. The real entry
 * (edge/worker.ts) is run too, to show that it bundles and serves with the placeholder loader.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startWorker, type RunningWorker } from "./workerd/harness.ts";

const WEIGHTS = [0.5, -1, 2, 0.25];
const STARTUP_MS = 45_000;

let assetsDir = "";

beforeAll(async () => {
  assetsDir = await mkdtemp(join(tmpdir(), "pc2-edge-assets-"));
  await mkdir(join(assetsDir, "probe"));
  await writeFile(join(assetsDir, "probe/weights.json"), JSON.stringify({ weights: WEIGHTS }));
});

afterAll(async () => {
  await rm(assetsDir, { recursive: true, force: true });
});

async function json(worker: RunningWorker, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const init: RequestInit =
    body === undefined ? {} : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
  const response = await worker.fetch(path, init);
  const text = await response.text();
  try {
    return { status: response.status, body: JSON.parse(text) };
  } catch {
    throw new Error(`${path}: not JSON (${response.status}): ${text.slice(0, 500)}\n--- log ---\n${worker.logs()}`);
  }
}

describe("probe Worker in workerd (tfjs wasm)", () => {
  let worker: RunningWorker;

  beforeAll(async () => {
    worker = await startWorker("test/edge/workerd/probe-worker.ts", assetsDir);
    const { buildMs, startMs } = worker.timings;
    console.log(`workerd probe: wrangler bundle ${buildMs.toFixed(0)} ms, workerd ready ${startMs.toFixed(0)} ms`);
  }, STARTUP_MS);

  afterAll(async () => {
    await worker?.stop();
  });

  test("/health answers before the engine is loaded", async () => {
    const r = await json(worker, "/health");
    expect(r).toEqual({ status: 200, body: { status: "ok", engine: "idle" } });
  });

  test("/openapi.json lists the routes", async () => {
    const r = await json(worker, "/openapi.json");
    expect(r.status).toBe(200);
    expect(Object.keys(r.body.paths).sort()).toEqual(
      ["/health", "/v1/eval", "/v1/model", "/v1/score", "/v1/search/captions", "/v1/search/images"].sort(),
    );
  });

  test("the engine runs on the wasm backend", async () => {
    const r = await json(worker, "/v1/model");
    expect(r.status).toBe(200);
    expect(r.body.config).toEqual({ probe: true, backend: "wasm" });
    expect([r.body.regions, r.body.imgDim]).toEqual([2, WEIGHTS.length]);
  });

  test("a tfjs matMul on wasm gives the expected scores", async () => {
    const pairs = [
      [[1, 2, 3, 4], [-1, 0.5, 0, 8]],
      [[0, 0, 0, 0], [0, 0, 0, 0]],
      [[1e3, -2e3, 3e3, -4e3], [0.125, 0.25, 0.5, 1]],
    ];
    const expected = pairs.map((rows) => rows.flat().reduce((sum, x, i) => sum + x * WEIGHTS[i % WEIGHTS.length]!, 0));
    const r = await json(worker, "/v1/score", { pairs: pairs.map((features) => ({ features, tokens: [1] })) });
    expect(r.status).toBe(200);
    expect(r.body.scores).toHaveLength(pairs.length);
    r.body.scores.forEach((s: number, i: number) => expect(s).toBeCloseTo(expected[i]!, 3));
    expect((await json(worker, "/health")).body.engine).toBe("loaded");
  });

  test("bad input is a 400 in workerd too", async () => {
    const r = await json(worker, "/v1/score", { pairs: [{ features: [[1, 2, 3]], tokens: [1] }] });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain("features");
  });
});

describe("edge/worker.ts in workerd (placeholder engine loader)", () => {
  let worker: RunningWorker;

  beforeAll(async () => {
    worker = await startWorker("edge/worker.ts", assetsDir);
    const { buildMs, startMs } = worker.timings;
    console.log(`workerd edge/worker.ts: wrangler bundle ${buildMs.toFixed(0)} ms, workerd ready ${startMs.toFixed(0)} ms`);
  }, STARTUP_MS);

  afterAll(async () => {
    await worker?.stop();
  });

  test("serves /health and /openapi.json", async () => {
    expect(await json(worker, "/health")).toEqual({ status: 200, body: { status: "ok", engine: "idle" } });
    expect((await json(worker, "/openapi.json")).body.openapi).toBe("3.1.0");
  });

  test("a model request without a model answers 503, not a crash", async () => {
    const r = await json(worker, "/v1/model");
    expect(r.status).toBe(503);
    expect(r.body.error.message).toContain("could not be loaded");
    expect((await json(worker, "/health")).body.engine).toBe("failed");
  });
});
