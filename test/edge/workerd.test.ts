/**
 * The Workers build inside workerd: bundled by wrangler with wrangler.toml, run by Miniflare.
 * The probe Worker (workerd/probe-worker.ts) is the real edge/worker.ts plumbing with an engine
 * that multiplies on tfjs: it proves that the wasm backend starts from the imported module and
 * computes inside workerd, and that the ASSETS binding reaches the engine loader. The real entry
 * (edge/worker.ts) is run twice: without a model (503, not a crash), and serving a tiny model
 * exported as the trainer exports (workerd/real-model.ts), whose every answer must equal, to
 * 1e-5, the answer of the same package served in process under Bun: the Workers build computes
 * what the trainer and `bun run edge` compute.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO, startWorker, withTimeout, type RunningWorker } from "./workerd/harness.ts";
import { DIMS, GALLERY, REQUESTS, type ReferenceRun, type SpecRequest } from "./workerd/real-model-spec.ts";
import { buildBrowserFiles } from "../../edge/browser/build.ts";
import { BROWSER_ASSETS_PREFIX, BROWSER_FILES } from "../../edge/browser/files.ts";

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

async function json(worker: RunningWorker, path: string, body?: unknown, method = body === undefined ? "GET" : "POST"): Promise<{ status: number; body: any }> {
  const init: RequestInit =
    body === undefined ? { method } : { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
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

describe("edge/worker.ts in workerd without a model", () => {
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

// --- edge/worker.ts serving an exported model ------------------------------------------------

/** Score tolerance between workerd and Bun (the same wasm binary: in practice they are equal). */
const TOLERANCE = 1e-5;
const REFERENCE_MS = 30_000;

/** Builds the model and answers REQUESTS in a Bun child process (see workerd/real-model.ts). */
async function referenceRun(dir: string): Promise<ReferenceRun> {
  const proc = Bun.spawn([process.execPath, join(REPO, "test/edge/workerd/real-model.ts"), dir], { cwd: REPO, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const output = Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  try {
    const code = await withTimeout(proc.exited, REFERENCE_MS, () => "test/edge/workerd/real-model.ts");
    const [out, err] = await output;
    if (code !== 0) throw new Error(`real-model.ts exited ${code}:\n${err}\n${out}`);
    return JSON.parse(out.trim().split("\n").at(-1)!) as ReferenceRun;
  } finally {
    if (proc.exitCode === null) proc.kill();
  }
}

async function send(worker: RunningWorker, r: SpecRequest) {
  return json(worker, r.path, r.body, r.method);
}

/** Where `actual` differs from `expected`: numbers beyond TOLERANCE, anything else unequal. */
function differences(actual: unknown, expected: unknown, at = "body"): string[] {
  if (typeof expected === "number" && typeof actual === "number") {
    return Math.abs(actual - expected) <= TOLERANCE ? [] : [`${at}: ${actual} vs ${expected}`];
  }
  if (Array.isArray(expected) && Array.isArray(actual)) {
    if (actual.length !== expected.length) return [`${at}: length ${actual.length} vs ${expected.length}`];
    return expected.flatMap((e, i) => differences(actual[i], e, `${at}[${i}]`));
  }
  if (expected !== null && typeof expected === "object" && actual !== null && typeof actual === "object" && !Array.isArray(actual)) {
    const keys = [...new Set([...Object.keys(expected), ...Object.keys(actual)])].sort();
    return keys.flatMap((k) => differences((actual as Record<string, unknown>)[k], (expected as Record<string, unknown>)[k], `${at}.${k}`));
  }
  return Object.is(actual, expected) ? [] : [`${at}: ${JSON.stringify(actual)} vs ${JSON.stringify(expected)}`];
}

/** The largest |a − b| over the numbers of two bodies of the same shape. */
function largestGap(a: unknown, b: unknown): number {
  if (typeof a === "number" && typeof b === "number") return Math.abs(a - b);
  if (a !== null && b !== null && typeof a === "object" && typeof b === "object") {
    return Math.max(0, ...Object.keys(b).map((k) => largestGap((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])));
  }
  return 0;
}

function expectRanked(results: Array<{ index: number; score: number }>, k: number, pool: number) {
  expect(results).toHaveLength(Math.min(k, pool));
  for (let i = 1; i < results.length; i++) expect(results[i]!.score).toBeLessThanOrEqual(results[i - 1]!.score);
  expect(new Set(results.map((r) => r.index)).size).toBe(results.length);
  for (const r of results) expect(r.index >= 0 && r.index < pool).toBe(true);
}

describe("edge/worker.ts in workerd serving an exported model", () => {
  let dir = "";
  let reference: ReferenceRun;
  let worker: RunningWorker;
  const answers = new Map<string, { status: number; body: any }>();
  const expected = (name: string) => reference.answers[REQUESTS.findIndex((r) => r.name === name)]!;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "pc2-edge-model-"));
    reference = await referenceRun(dir);
    // The browser page, prebuilt into the assets as `bun run build:browser` does before a deploy.
    const page = join(reference.modelDir, BROWSER_ASSETS_PREFIX);
    await mkdir(page, { recursive: true });
    for (const [name, bytes] of await buildBrowserFiles()) await writeFile(join(page, name), bytes);
    worker = await startWorker("edge/worker.ts", reference.modelDir);
    const { buildMs, startMs } = worker.timings;
    console.log(`workerd edge/worker.ts + model: wrangler bundle ${buildMs.toFixed(0)} ms, workerd ready ${startMs.toFixed(0)} ms`);
    // Every request once, in order, as the reference process sent them.
    for (const r of REQUESTS) answers.set(r.name, await send(worker, r));
  }, STARTUP_MS + REFERENCE_MS);

  afterAll(async () => {
    await worker?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("the model loads: /v1/model has the exported configuration and gallery", async () => {
    const r = answers.get("model")!;
    expect(r.status).toBe(200);
    expect(r.body.config).toEqual(reference.config);
    expect(r.body.config).toMatchObject({ ...DIMS, vocab_size: 18 });
    expect(r.body.gallery).toEqual({ images: GALLERY.images, captions: GALLERY.images * GALLERY.perCaptions, perCaptions: GALLERY.perCaptions, words: expect.any(Number), firstStage: "tranglo" });
    expect([r.body.nets, r.body.dtype, r.body.regions, r.body.imgDim]).toEqual([["A", "B"], "uint8", 36, DIMS.img_dim]);
    expect((await json(worker, "/health")).body.engine).toBe("loaded");
  });

  test("text→image search: k results, best first", () => {
    for (const name of ["search images by text", "search images, all", "search images by tokens"]) {
      const r = answers.get(name)!;
      expect(r.status).toBe(200);
      const { k } = REQUESTS.find((q) => q.name === name)!.body as { k: number };
      expectRanked(r.body.results, k, GALLERY.images);
    }
  });

  test("image→text search: k captions, best first, with their texts and images", () => {
    for (const name of ["search captions of image 0", "search captions by features"]) {
      const r = answers.get(name)!;
      expect(r.status).toBe(200);
      const { k } = REQUESTS.find((q) => q.name === name)!.body as { k: number };
      expectRanked(r.body.results, k, GALLERY.images * GALLERY.perCaptions);
      for (const hit of r.body.results) {
        expect(hit.image).toBe(Math.floor(hit.index / GALLERY.perCaptions));
        expect(typeof hit.caption).toBe("string");
      }
    }
  });

  test("score and eval answer with numbers in range", () => {
    const score = answers.get("score")!;
    expect(score.status).toBe(200);
    expect(score.body.scores).toHaveLength(3);
    for (const s of score.body.scores) expect(s > 0 && s < 1).toBe(true);
    const all = answers.get("eval")!;
    expect(all.status).toBe(200);
    expect([all.body.images, all.body.captions]).toEqual([GALLERY.images, GALLERY.images * GALLERY.perCaptions]);
    expect(answers.get("eval, first 3 images")!.body.images).toBe(3);
  });

  test("two-stage searches and evaluation: the shortlist used, the re-ranked hits, both recalls", () => {
    const images = answers.get("search images, two-stage")!;
    expect([images.status, images.body.shortlist]).toEqual([200, { used: 3, stage: "tranglo", scored: 3 }]);
    expectRanked(images.body.results, 3, GALLERY.images);
    const captions = answers.get("search captions, two-stage")!;
    expect([captions.status, captions.body.shortlist]).toEqual([200, { used: 6, stage: "tranglo", scored: 6 }]);
    expectRanked(captions.body.results, 4, GALLERY.images * GALLERY.perCaptions);
    const evaluated = answers.get("eval with a shortlist")!;
    // (Not toMatchObject with expect.any: Bun's writes the matcher into the object it checks, which the comparison below reads.)
    const { shortlist, stage, rsum } = evaluated.body.twoStage;
    expect([shortlist, stage, typeof rsum]).toEqual([2, "tranglo", "number"]);
    expect(evaluated.body.rsum).toBe(answers.get("eval")!.body.rsum);
    const over = answers.get("search images, shortlist over the maximum")!;
    expect([over.status, over.body.error.message]).toEqual([400, expect.stringContaining("shortlist: 100000 is more than the server's maximum")]);
  });

  test("a bad body is a 400 naming the field", () => {
    const noText = answers.get("search images without text")!;
    expect(noText.status).toBe(400);
    expect(noText.body.error.message).toContain("text or tokens");
    const badImage = answers.get("search captions, image out of range")!;
    expect(badImage.status).toBe(400);
    expect(badImage.body.error.message).toContain(`image: ${GALLERY.images}`);
  });

  test("serves the model's files (only those model.json lists) and the prebuilt browser page", async () => {
    const modelJson = await worker.fetch("/model/model.json");
    expect(modelJson.status).toBe(200);
    expect(await modelJson.text()).toBe(await readFile(join(reference.modelDir, "model.json"), "utf8"));
    const listed = Object.keys(JSON.parse(await readFile(join(reference.modelDir, "model.json"), "utf8")).files);
    for (const name of listed) expect({ name, status: (await worker.fetch(`/model/${name}`)).status }).toEqual({ name, status: 200 });
    for (const path of [`/model/${BROWSER_ASSETS_PREFIX}${BROWSER_FILES.script}`, `/model/..%2F${BROWSER_FILES.script}`, "/app/model.json"]) {
      expect({ path, status: (await worker.fetch(path)).status }).toEqual({ path, status: 404 });
    }
    const page = await worker.fetch("/app");
    expect([page.status, page.headers.get("content-type")]).toEqual([200, "text/html; charset=utf-8"]);
    expect(await page.text()).toContain(`src="app/${BROWSER_FILES.script}"`);
    const wasm = await worker.fetch(`/app/${BROWSER_FILES.wasmSimd}`);
    expect([wasm.status, wasm.headers.get("content-type")]).toEqual([200, "application/wasm"]);
    expect(WebAssembly.validate(new Uint8Array(await wasm.arrayBuffer()))).toBe(true);
  });

  test("every answer equals the in-process Bun engine's (scores within 1e-5)", () => {
    // /v1/model's `memory` is each runtime's own (heap sizes, the Worker's smaller region cache): compared apart.
    const comparable = (body: any) => (body && typeof body === "object" && "memory" in body ? { ...body, memory: undefined } : body);
    const mismatches = REQUESTS.flatMap((r) => {
      const got = answers.get(r.name)!;
      const want = expected(r.name);
      if (got.status !== want.status) return [`${r.name}: HTTP ${got.status} vs ${want.status}`];
      return differences(comparable(got.body), comparable(want.body)).map((d) => `${r.name}: ${d}`);
    });
    const memory = (answers.get("model")!.body as { memory: { regionCacheBudgetBytes: number; wasmHeapBytes: number } }).memory;
    expect(memory.regionCacheBudgetBytes).toBe(16 * 2 ** 20); // the Worker's, not Bun's 256 MB
    expect(memory.wasmHeapBytes).toBeGreaterThan(0);
    expect((expected("model").body as { memory: { regionCacheBudgetBytes: number } }).memory.regionCacheBudgetBytes).toBe(256 * 2 ** 20);
    expect(mismatches).toEqual([]);
    const gap = Math.max(...REQUESTS.map((r) => largestGap(answers.get(r.name)!.body, expected(r.name).body)));
    console.log(`workerd vs Bun: largest numeric difference over all answers ${gap}`);
    // The comparison is not vacuous: the reference answered with scores.
    expect(expected("score").body).toMatchObject({ scores: expect.any(Array) });
  });
});
