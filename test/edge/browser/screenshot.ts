/**
 * Makes docs/browser.png, the README's picture of the browser page: the test model served by
 * `bun run edge`, the page on WebGPU (SwiftShader), one search and one evaluation.
 *
 *   bun test/edge/browser/screenshot.ts [--limit 20] [--backend webgpu] [--out docs/browser.png]
 *
 * SwiftShader computes on the CPU, so the evaluation takes the first --limit images (minutes for
 * 20 on two cores); on wasm (--backend wasm) the whole gallery takes seconds (--limit 0).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { choiceFlag, intFlag, parseFlags, runCli } from "../../../shared/cli.ts";
import type { Hit } from "../../../shared/retrieval/engine.ts";
import { REPO, evaluateInPage, exportTestModel, launchChromium, openApp, postJson, searchInPage, startEdge } from "./harness.ts";

const USAGE = "usage: bun test/edge/browser/screenshot.ts [--limit 20] [--backend webgpu|wasm] [--out docs/browser.png]";

/** A caption of the gallery that the server ranks its own image first for: a search that shows something. */
async function queryWithAHit(url: string): Promise<string> {
  const texts = (await (await fetch(`${url}/model/gallery.json`)).json()) as { captions: string[] };
  const perCaptions = 5;
  for (let c = 0; c < texts.captions.length; c++) {
    const { results } = await postJson<{ results: Hit[] }>(url, "/v1/search/images", { text: texts.captions[c], k: 1 });
    if (results[0]!.index === Math.floor(c / perCaptions)) return texts.captions[c]!;
  }
  return texts.captions[0]!;
}

async function main(): Promise<number> {
  const values = parseFlags(Bun.argv.slice(2), {
    limit: { type: "string", default: "20" },
    backend: { type: "string", default: "webgpu" },
    out: { type: "string", default: "docs/browser.png" },
  });
  if (values === null) {
    console.log(USAGE);
    return 0;
  }
  const limit = intFlag("limit", values.limit, 0);
  const backend = choiceFlag("backend", values.backend, ["webgpu", "wasm"] as const);
  const out = resolve(REPO, String(values.out));
  const dir = await mkdtemp(join(tmpdir(), "pc2-screenshot-"));
  const server = await startEdge(await exportTestModel(dir));
  const browser = await launchChromium({ webgpu: true });
  try {
    const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
    const opened = await openApp(page, server.url, `?backend=${backend}`);
    if (opened.state !== "ready") throw new Error(`the page did not start: ${opened.status}`);
    await searchInPage(page, await queryWithAHit(server.url), 5);
    await evaluateInPage(page, limit === 0 ? undefined : limit, 3_600_000);
    await page.screenshot({ path: out, fullPage: true });
    console.log(`screenshot: ${out} (${opened.text.trim()}; ${await page.textContent("#timings")})`);
  } finally {
    await browser.close();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
  return 0;
}

const code = await runCli("screenshot", USAGE, main);
if (code !== 0) process.exit(code);
