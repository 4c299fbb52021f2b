/**
 * What the browser test (and the screenshot script beside it) needs: a small trained model
 * exported with a gallery, `bun run edge` serving it on a free loopback port, the system Chromium
 * driven by playwright-core (which downloads no browser), and the page's answers read back from
 * its DOM, where data attributes carry them at full precision.
 */
import { withTimeout } from "../../support.ts";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { type Browser, type Page, chromium } from "playwright-core";

export const REPO = resolve(import.meta.dir, "../../..");

/** Debian's chromium; PC2_CHROMIUM names another binary. */
export const CHROMIUM = process.env.PC2_CHROMIUM ?? "/usr/bin/chromium";

/**
 * WebGPU on SwiftShader, Chromium's CPU implementation of Vulkan, so that a machine without a GPU
 * still gives the page an adapter (headless Chromium offers none otherwise).
 */
export const WEBGPU_FLAGS = ["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader"];

export function requireChromium(): void {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: the browser test drives the system Chromium; install it with 'apt-get install -y chromium' (or set PC2_CHROMIUM to its binary)`);
  }
}

/** Runs export-model.ts (in its own process) with `args`; its stdout. */
async function runExportModel(args: string[]): Promise<string> {
  const proc = Bun.spawn([process.execPath, join(import.meta.dir, "export-model.ts"), ...args], { cwd: REPO, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`export-model.ts exited ${code}:\n${out}\n${err}`);
  return out;
}

/** Writes the test model (export-model.ts) to `<dir>/model`, with the embedded test split (or train split) as gallery. */
export async function exportTestModel(dir: string, split: "test" | "train" = "test"): Promise<string> {
  const modelDir = join(dir, "model");
  await runExportModel([modelDir, split]);
  return modelDir;
}

/** Trains and writes the tiny NoW jieba model (export-model.ts now-jieba) to `<dir>/now-jieba`; its test captions. */
export async function exportNowJiebaModel(dir: string): Promise<{ modelDir: string; captions: string[] }> {
  const modelDir = join(dir, "now-jieba");
  const out = await runExportModel([modelDir, "now-jieba"]);
  const { captions } = JSON.parse(out.trim().split("\n").at(-1)!) as { captions: string[] };
  return { modelDir, captions };
}

export interface EdgeServer {
  url: string;
  logs(): string;
  stop(): Promise<void>;
}

/** `bun run edge --model <dir> --port 0 [args]`, ready once it prints its address. */
export async function startEdge(modelDir: string, timeoutMs = 60_000, args: string[] = []): Promise<EdgeServer> {
  const proc = Bun.spawn([process.execPath, "edge/bun.ts", "--model", modelDir, "--port", "0", "--host", "127.0.0.1", ...args], {
    cwd: REPO,
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
  });
  let log = "";
  const collect = async (stream: ReadableStream<Uint8Array>, onText: (text: string) => void) => {
    const decoder = new TextDecoder();
    const reader = stream.getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) onText(decoder.decode(r.value, { stream: true }));
  };
  const address = new Promise<string>((resolveUrl, reject) => {
    void collect(proc.stdout, (text) => {
      log += text;
      const m = /on (http:\/\/\S+)/.exec(log);
      if (m) resolveUrl(m[1]!);
    });
    void collect(proc.stderr, (text) => (log += text));
    void proc.exited.then((code) => reject(new Error(`bun run edge exited ${code} before it served:\n${log}`)));
  });
  const stop = async () => {
    if (proc.exitCode === null) proc.kill();
    await proc.exited;
  };
  try {
    const url = await withTimeout(address, timeoutMs, () => `bun run edge to start:\n${log}`);
    return { url, logs: () => log, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

export function launchChromium(options: { webgpu: boolean }): Promise<Browser> {
  requireChromium();
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: options.webgpu ? WEBGPU_FLAGS : [] });
}

export interface PageBackend {
  state: string;
  backend: string | null;
  text: string;
  status: string;
}

/** Opens /app (with `query`, e.g. "?backend=wasm") and waits until it is ready or has failed. */
export async function openApp(page: Page, url: string, query = "", timeoutMs = 120_000): Promise<PageBackend> {
  await page.goto(`${url}/app${query}`);
  await page.waitForSelector("#page:not([data-state=loading])", { timeout: timeoutMs });
  return {
    state: (await page.getAttribute("#page", "data-state")) ?? "",
    backend: await page.getAttribute("#backend", "data-backend"),
    text: (await page.textContent("#backend")) ?? "",
    status: (await page.textContent("#status")) ?? "",
  };
}

/** Submits the search form; the hits as the page shows them. */
export async function searchInPage(page: Page, text: string, k: number, timeoutMs = 120_000): Promise<Array<{ index: number; score: number }>> {
  await page.fill("#query", text);
  await page.fill("#k", String(k));
  await page.click("#search-form button");
  await page.waitForSelector("#page[data-state=ready]", { timeout: timeoutMs });
  return page.$$eval("#results li", (items) => items.map((li) => ({ index: Number(li.getAttribute("data-index")), score: Number(li.getAttribute("data-score")) })));
}

export interface PageRecall {
  i2t: Record<string, number>;
  t2i: Record<string, number>;
  rsum: number;
  caption: string;
}

/** Submits the evaluation form (all images when `limit` is absent); the recall table's numbers. */
export async function evaluateInPage(page: Page, limit: number | undefined, timeoutMs: number): Promise<PageRecall> {
  await page.fill("#limit", limit === undefined ? "" : String(limit));
  await page.click("#eval-form button");
  await page.waitForSelector("#page[data-state=ready]", { timeout: timeoutMs });
  return page.evaluate(() => {
    const row = (direction: string) =>
      Object.fromEntries(Array.from(document.querySelectorAll<HTMLElement>(`tr[data-direction="${direction}"] td`), (td) => [td.dataset.key!, Number(td.dataset.value)]));
    return {
      i2t: row("i2t"),
      t2i: row("t2i"),
      rsum: Number(document.getElementById("rsum")!.dataset.value),
      caption: document.getElementById("recall-caption")!.textContent ?? "",
    };
  });
}

/** POST a JSON body to the server. */
export async function postJson<T>(url: string, path: string, body: unknown): Promise<T> {
  const res = await fetch(`${url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

export { withTimeout };
