/**
 * Jieba inside workerd: the jieba-rs module imported as a precompiled WebAssembly.Module (as
 * edge/worker.ts imports it), segmenting the 40 reference captions and the digit-range cases as
 * Python's jieba.lcut does, and the WebAssembly memory that costs (logged: the isolate has 128 MB).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { REFERENCE_DIR } from "../support.ts";
import { startWorker, type RunningWorker } from "./workerd/harness.ts";

interface Fixture {
  cases: Array<{ text: string; tokens: string[] }>;
}

const STARTUP_MS = 60_000;
let worker: RunningWorker;
let assetsDir = "";

beforeAll(async () => {
  assetsDir = await mkdtemp(join(tmpdir(), "pc2-jieba-assets-"));
  worker = await startWorker("test/edge/workerd/jieba-worker.ts", assetsDir, STARTUP_MS);
}, STARTUP_MS);

afterAll(async () => {
  await worker?.stop();
  await rm(assetsDir, { recursive: true, force: true });
});

async function cut(texts: string[]): Promise<{ tokens: string[][]; memoryBefore: number; memoryAfter: number }> {
  const r = await worker.fetch("/cut", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ texts }) });
  if (r.status !== 200) throw new Error(`/cut: ${r.status} ${await r.text()}\n${worker.logs()}`);
  return r.json() as never;
}

describe("jieba.lcut in workerd", () => {
  for (const [name, file] of [
    ["the 40 reference captions", resolve(REFERENCE_DIR, "tokenize/jieba.json")],
    ["digit ranges in out-of-dictionary runs", resolve(import.meta.dir, "../shared/text/fixtures/jieba-hmm-digits.json")],
  ] as const) {
    // The first cut instantiates the 4 MB module inside the isolate: seconds on a loaded machine.
    test(name, async () => {
      const fixture = JSON.parse(await readFile(file, "utf8")) as Fixture;
      const r = await cut(fixture.cases.map((c) => c.text));
      expect(r.tokens.map((t, i) => [fixture.cases[i]!.text, t])).toEqual(fixture.cases.map((c) => [c.text, c.tokens]));
      console.log(`workerd jieba: WebAssembly memory ${(r.memoryBefore / 1e6).toFixed(1)} MB before, ${(r.memoryAfter / 1e6).toFixed(1)} MB after cutting ${fixture.cases.length} texts`);
    }, STARTUP_MS);
  }
});
