/**
 * The browser page (/app) in a real Chromium: `bun run edge` serves a small trained model (the
 * committed quick model exported with the embedded test split as gallery: 100 images, 500
 * captions), the page loads that package over HTTP into the same engine and answers a text
 * search and the evaluation client-side, and those answers must equal the server's
 * `/v1/search/images` and `/v1/eval`: the same images in the same order, scores within
 * SCORE_TOLERANCE (both sides read the same quantized files; only the arithmetic of the backends
 * differs), and identical recall.
 *
 * WebGPU runs on SwiftShader (a CPU implementation), where the evaluation is slow: it is checked on
 * the first WEBGPU_EVAL_IMAGES images; the wasm page evaluates the whole gallery. Chromium is
 * Debian's (apt-get install -y chromium); without it this file fails, it does not skip.
 *
 * A second server holds the tiny NoW model of now-text.test.ts (Chinese captions, Jieba ids): the
 * page segments a Chinese query with jieba-rs, whose module it fetches from /app/ for that query
 * only, and must rank as the server does.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { BROWSER_FILES } from "../../edge/browser/files.ts";
import type { EvalResult, Hit } from "../../shared/retrieval/engine.ts";
import { type EdgeServer, type PageRecall, evaluateInPage, exportNowJiebaModel, exportTestModel, launchChromium, openApp, postJson, requireChromium, searchInPage, startEdge } from "./browser/harness.ts";

const SCORE_TOLERANCE = 1e-4;
const WEBGPU_EVAL_IMAGES = 10;
/** Words of the embedded dataset's vocabulary, and one it lacks (<unk>). */
const QUERIES = [
  { text: "a black pude beside some small white fofifus", k: 10 },
  { text: "The red guves near a zebra.", k: 5 },
];
// Hooks get explicit limits: one that times out makes bun test kill the processes the file
// started, the server among them, and every later test fails for that.
const SETUP_MS = 120_000;
const EVAL_MS = 400_000;
/** Training the tiny NoW model takes about 20 s on two idle cores. */
const NOW_SETUP_MS = 300_000;

let dir = "";
let server: EdgeServer;
const browsers: Browser[] = [];

beforeAll(async () => {
  requireChromium();
  dir = await mkdtemp(join(tmpdir(), "pc2-browser-"));
  server = await startEdge(await exportTestModel(dir));
}, SETUP_MS);

afterAll(async () => {
  for (const b of browsers) await b.close();
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
}, SETUP_MS);

async function newPage(webgpu: boolean): Promise<{ page: Page; errors: string[] }> {
  const browser = await launchChromium({ webgpu });
  browsers.push(browser);
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  return { page, errors };
}

function expectSameHits(browser: Array<{ index: number; score: number }>, server: Hit[], what: string): number {
  expect({ what, indices: browser.map((h) => h.index) }).toEqual({ what, indices: server.map((h) => h.index) });
  const worst = Math.max(...browser.map((h, i) => Math.abs(h.score - server[i]!.score)));
  expect(worst).toBeLessThanOrEqual(SCORE_TOLERANCE);
  return worst;
}

function expectSameRecall(page: PageRecall, server: EvalResult): void {
  expect({ i2t: page.i2t, t2i: page.t2i, rsum: page.rsum }).toEqual({ i2t: server.i2t, t2i: server.t2i, rsum: server.rsum });
  expect(page.caption).toContain(`first ${server.images} gallery images and their ${server.captions} captions`);
}

/** The page against the server on every query; the largest score difference. */
async function compareSearches(page: Page, label: string): Promise<number> {
  let worst = 0;
  for (const q of QUERIES) {
    const fromServer = await postJson<{ results: Hit[] }>(server.url, "/v1/search/images", q);
    const fromPage = await searchInPage(page, q.text, q.k);
    worst = Math.max(worst, expectSameHits(fromPage, fromServer.results, `${label}: ${q.text}`));
  }
  console.log(`${label}: search scores differ from the server's by at most ${worst.toExponential(2)}`);
  return worst;
}

describe("the page on WebGPU (SwiftShader)", () => {
  let page: Page;
  let errors: string[];

  beforeAll(async () => {
    ({ page, errors } = await newPage(true));
  }, SETUP_MS);

  test("takes the WebGPU backend when the browser has an adapter", async () => {
    const opened = await openApp(page, server.url);
    expect(opened).toMatchObject({ state: "ready", backend: "webgpu" });
    expect(opened.text).toContain("swiftshader");
  }, SETUP_MS);

  test("search: the server's images in the server's order, scores within the tolerance", async () => {
    await compareSearches(page, "webgpu");
  }, EVAL_MS);

  test(`evaluation on the first ${WEBGPU_EVAL_IMAGES} images: the server's recall`, async () => {
    const fromServer = await postJson<EvalResult>(server.url, "/v1/eval", { limit: WEBGPU_EVAL_IMAGES });
    expectSameRecall(await evaluateInPage(page, WEBGPU_EVAL_IMAGES, EVAL_MS), fromServer);
    expect(errors).toEqual([]);
  }, EVAL_MS);
});

describe("the page on wasm (?backend=wasm)", () => {
  let page: Page;
  let errors: string[];

  beforeAll(async () => {
    ({ page, errors } = await newPage(true));
  }, SETUP_MS);

  test("takes wasm when asked, though WebGPU is there", async () => {
    expect(await openApp(page, server.url, "?backend=wasm")).toMatchObject({ state: "ready", backend: "wasm" });
  }, SETUP_MS);

  test("search: the server's images in the server's order, scores within the tolerance", async () => {
    await compareSearches(page, "wasm");
  }, EVAL_MS);

  test("evaluation on the whole gallery: the server's recall", async () => {
    const fromServer = await postJson<EvalResult>(server.url, "/v1/eval", {});
    expect(fromServer.images).toBe(100);
    expect(fromServer.rsum).toBeGreaterThan(100); // a trained model: chance is about 32
    expectSameRecall(await evaluateInPage(page, undefined, EVAL_MS), fromServer);
    expect(errors).toEqual([]);
  }, EVAL_MS);
});

describe("a browser without a WebGPU adapter", () => {
  test("auto falls back to wasm and says why", async () => {
    const { page } = await newPage(false);
    const opened = await openApp(page, server.url);
    expect(opened).toMatchObject({ state: "ready", backend: "wasm" });
    expect(opened.text).toContain("WebGPU unavailable");
    const [hit] = await searchInPage(page, QUERIES[0]!.text, 1);
    const [fromServer] = (await postJson<{ results: Hit[] }>(server.url, "/v1/search/images", { ...QUERIES[0], k: 1 })).results;
    expect(hit!.index).toBe(fromServer!.index);
  }, SETUP_MS);

  test("?backend=webgpu fails with the reason instead of falling back", async () => {
    const { page } = await newPage(false);
    const opened = await openApp(page, server.url, "?backend=webgpu");
    expect(opened.state).toBe("error");
    expect(opened.status).toContain("WebGPU was asked for");
    expect(opened.backend).toBeNull();
  }, SETUP_MS);
});

describe("a NoW model trained on Jieba ids: Chinese text in the page", () => {
  let now: EdgeServer;
  let captions: string[] = [];
  let page: Page;
  let errors: string[];
  const requested: string[] = [];
  const jiebaPath = `/app/${BROWSER_FILES.jieba}`;

  beforeAll(async () => {
    let modelDir: string;
    ({ modelDir, captions } = await exportNowJiebaModel(dir));
    now = await startEdge(modelDir);
    ({ page, errors } = await newPage(false));
    page.on("request", (r) => requested.push(new URL(r.url()).pathname));
  }, NOW_SETUP_MS);

  afterAll(async () => {
    await now?.stop();
  }, SETUP_MS);

  test("loads without Jieba's module", async () => {
    expect(await openApp(page, now.url, "?backend=wasm")).toMatchObject({ state: "ready", backend: "wasm" });
    expect(requested).toContain("/app/main.js");
    expect(requested).not.toContain(jiebaPath);
  }, SETUP_MS);

  test("a typed Chinese query: the server's images in the server's order; the module fetched once", async () => {
    for (const text of [captions[2]!, captions[4]!]) {
      const q = { text, k: captions.length };
      const fromServer = await postJson<{ results: Hit[] }>(now.url, "/v1/search/images", q);
      const fromPage = await searchInPage(page, q.text, q.k);
      expect(await page.textContent("#status")).toContain(`images for “${text}”`);
      expectSameHits(fromPage, fromServer.results, `jieba: ${text}`);
    }
    expect(requested.filter((p) => p === jiebaPath)).toEqual([jiebaPath]);
    expect(errors).toEqual([]);
  }, SETUP_MS);
});
