/**
 * Whether one request can stall the Bun edge server: the real server (`bun edge/bun.ts`, a child
 * process) on the exported quick model (embedded configuration, uint8), replaying the heaviest
 * requests its default limits admit while a prober measures `/health` and a cheap search:
 *
 *   bun benchmarks/edge_stall.ts [--split test|train] [--server-root <checkout>] [-- <server flags>]
 *
 * `--split test` serves the embedded dataset's 100-image test split as the gallery, `train` its
 * 400-image split (made by test/edge/browser/export-model.ts). `--server-root` runs the edge of
 * another checkout (the numbers before this benchmark's change were taken with the main one);
 * flags after `--` go to the server (`--workers 0`, `--max-work N`, …).
 *
 * Phases, one after the other, while /health is asked every 50 ms and a 10-word text search
 * (k = 10) every 250 ms:
 *   1. three concurrent /v1/score requests of 256 pairs, each raw features and 128 tokens
 *      (about 700 KB of JSON each, the largest the default body limit takes);
 *   2. two concurrent /v1/eval requests, each the largest the server admits: the whole gallery,
 *      or, where it answers 422, the `limit` its message names;
 *   3. requests over a limit, which must be refused at once: /v1/eval {} on a gallery over the
 *      work limit, and a burst of 24 small scores (2 pairs) against the bound on requests in hand.
 *
 * RSS is the server process's (its workers are threads of it) plus any children's, from /proc,
 * sampled every 20 ms: idle is the median over one second after a warm-up request of each kind,
 * peak the largest sample during the phases. Prints p50/p95/max latencies, RSS and each heavy
 * request's status and time. No asserts: numbers for the README. Linux only (/proc).
 */
import { readFileSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { Random } from "../shared/random";
import { loadAverage, percentile } from "./support/stats";
import { exportEdgeModel, startEdgeServer } from "./support/edge_process";

const REPO = resolve(import.meta.dir, "..");
const { values, positionals } = parseArgs({
  options: { split: { type: "string", default: "test" }, "server-root": { type: "string", default: REPO } },
  allowPositionals: true,
  strict: true,
});
const split = values.split!;
if (!["test", "train"].includes(split)) throw new Error(`--split: ${JSON.stringify(split)} is not test or train`);
const serverRoot = resolve(values["server-root"]!);
const serverFlags = positionals;

// --- server ------------------------------------------------------------------------------------

const exportModel = (dir: string) => exportEdgeModel(dir, split);
const startServer = (modelDir: string) => startEdgeServer(modelDir, serverFlags, serverRoot);

/** RSS of a process and its descendants, bytes (threads, Bun's Workers among them, are in their process's). */
function treeRss(pid: number): number {
  let total = 0;
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    total += Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const children = readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").trim();
      for (const child of children ? children.split(/\s+/) : []) total += treeRss(Number(child));
    }
  } catch {
    // the process ended between two reads
  }
  return total;
}

// --- requests ----------------------------------------------------------------------------------

interface Answer {
  status: number;
  ms: number;
  body: unknown;
}

async function request(url: string, path: string, body?: unknown): Promise<Answer> {
  const t0 = performance.now();
  const init: RequestInit = body === undefined ? {} : { method: "POST", headers: { "content-type": "application/json" }, body: typeof body === "string" ? body : JSON.stringify(body) };
  const res = await fetch(url + path, init);
  const parsed = await res.json().catch(() => null);
  return { status: res.status, ms: performance.now() - t0, body: parsed };
}

/**
 * 256 pairs of raw region features (36 × imgDim values in {0, 1}, so that the body is as large in
 * pairs as the 1 MiB limit lets it be) and 128 tokens each, as the probe sent.
 */
function bigScoreBody(rng: Random, imgDim: number, vocabSize: number): string {
  const pairs = Array.from({ length: 256 }, () => ({
    features: Array.from({ length: 36 }, () => Array.from({ length: imgDim }, () => rng.nextInt(2))),
    tokens: Array.from({ length: 128 }, () => 3 + rng.nextInt(vocabSize - 3)),
  }));
  return JSON.stringify({ pairs });
}

/** Calls `probe` every `everyMs` until stopped; each call's latency when it answered 200. */
function prober(everyMs: number, probe: () => Promise<Answer>) {
  const latencies: number[] = [];
  const failures: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const next = Bun.sleep(everyMs);
      const a = await probe();
      (a.status === 200 ? latencies : failures).push(a.status === 200 ? a.ms : a.status);
      await next;
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { latencies, failures };
    },
  };
}

// --- main --------------------------------------------------------------------------------------

const cpu = cpus();
console.log(`machine: ${cpu[0]?.model} × ${cpu.length} logical CPUs, Bun ${Bun.version}; load average (1, 5, 15 min): ${loadAverage()}`);
console.log(`server: ${serverRoot}/edge/bun.ts ${serverFlags.join(" ")}; gallery: the embedded ${split} split`);

const dir = await mkdtemp(join(tmpdir(), "pc2-edge-stall-"));
const server = await startServer(await exportModel(dir));
try {
  const url = server.url;
  const model = (await request(url, "/v1/model")).body as { imgDim: number; vocabSize: number; gallery: { images: number } };
  const rng = new Random(0);
  const words = ((await request(url, "/v1/search/captions", { image: 0, k: 1 })).body as { results: Array<{ caption: string }> }).results[0]!.caption.split(" ");
  const searchText = () => Array.from({ length: 10 }, () => words[rng.nextInt(words.length)]).join(" ");
  const search = () => request(url, "/v1/search/images", { text: searchText(), k: 10 });

  // Warm-up: one request of each kind, then one second of idle samples.
  await request(url, "/health");
  await search();
  await request(url, "/v1/score", { pairs: [{ image: 0, tokens: [1, 5, 2] }] });
  await Bun.sleep(500);
  const idleSamples: number[] = [];
  for (let i = 0; i < 50; i++, await Bun.sleep(20)) idleSamples.push(treeRss(server.pid));
  const idle = percentile(idleSamples, 50);

  let peak = idle;
  const sampler = setInterval(() => (phasePeak = peak = Math.max(peak, treeRss(server.pid))), 20);
  const health = prober(50, () => request(url, "/health"));
  const searches = prober(250, search);
  const rows: string[] = [];
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MB`;
  let phasePeak = idle;
  const report = (what: string, answers: Answer[]) => {
    const line = `${what}: ${answers.map((a) => `${a.status} in ${(a.ms / 1000).toFixed(2)} s`).join(", ")}; RSS peak so far ${mb(phasePeak)}`;
    rows.push(line);
    console.log(line);
  };

  // 1. Three 256-pair scores at once.
  const scoreBody = bigScoreBody(rng, model.imgDim, model.vocabSize);
  console.log(`score body: ${(scoreBody.length / 1024).toFixed(0)} KB`);
  report("3 × /v1/score (256 pairs × 128 tokens, raw features)", await Promise.all([0, 1, 2].map(() => request(url, "/v1/score", scoreBody))));

  // 2. The largest admissible evaluation, twice at once.
  const whole = await request(url, "/v1/eval", {});
  let evalBody: { limit?: number } = {};
  if (whole.status === 422) {
    const most = /limit ≤ (\d+)/.exec((whole.body as { error: { message: string } }).error.message);
    if (!most) throw new Error(`422 without a limit: ${JSON.stringify(whole.body)}`);
    evalBody = { limit: Number(most[1]) };
    report(`/v1/eval {} (${model.gallery.images} images, over the work limit)`, [whole]);
  } else {
    report(`/v1/eval {} (${model.gallery.images} images, admitted)`, [whole]);
  }
  report(`2 × /v1/eval ${JSON.stringify(evalBody)} at once`, await Promise.all([0, 1].map(() => request(url, "/v1/eval", evalBody))));

  // 3. A burst over the bound on requests in hand.
  const small = { pairs: Array.from({ length: 2 }, (_, i) => ({ image: i, tokens: Array.from({ length: 12 }, (_, j) => 3 + ((i + j) % (model.vocabSize - 3))) })) };
  const burst = await Promise.all(Array.from({ length: 24 }, () => request(url, "/v1/score", small)));
  const statuses = new Map<number, Answer[]>();
  for (const a of burst) statuses.set(a.status, [...(statuses.get(a.status) ?? []), a]);
  for (const [status, answers] of statuses) {
    const line = `burst of 24 small /v1/score: ${answers.length} × ${status}, p50 ${percentile(answers.map((a) => a.ms), 50).toFixed(0)} ms, max ${Math.max(...answers.map((a) => a.ms)).toFixed(0)} ms`;
    rows.push(line);
    console.log(line);
  }

  const h = await health.stop();
  const s = await searches.stop();
  clearInterval(sampler);
  const stats = (xs: number[]) => `p50 ${percentile(xs, 50).toFixed(1)} ms, p95 ${percentile(xs, 95).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms (${xs.length} answered)`;
  console.log(`\n/health during the phases: ${stats(h.latencies)}${h.failures.length ? `; not 200: ${h.failures.join(", ")}` : ""}`);
  console.log(`cheap search (10 words, k = 10): ${stats(s.latencies)}${s.failures.length ? `; not 200: ${s.failures.join(", ")}` : ""}`);
  console.log(`RSS: idle ${mb(idle)}, peak ${mb(peak)} (${(peak / idle).toFixed(2)} × idle)`);
  console.log(`load average (1, 5, 15 min): ${loadAverage()}`);
} finally {
  await server.stop();
  await rm(dir, { recursive: true, force: true });
}
