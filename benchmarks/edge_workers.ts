/**
 * The Bun edge on one engine worker against several: `POST /v1/search/images` (a 10-word text
 * query, k 10) from 8 concurrent clients, each sending its next request when the previous answer
 * arrived, on the exported quick model (embedded configuration, uint8) with the embedded test
 * split as gallery (100 images; `--split train`: 400). Servers run one after the other, back to
 * back: `--workers 0` (the engine on the server's thread), 1, and one per core.
 *
 *   bun benchmarks/edge_workers.ts [--requests 200] [--split test|train]
 *
 * Prints p50/p95 latency and requests/s per server, and the ratio of each to one worker.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Random } from "../shared/random";
import { exportEdgeModel, startEdgeServer } from "./support/edge_process";
import { loadAverage, percentile } from "./support/stats";

const { values } = parseArgs({ options: { requests: { type: "string", default: "200" }, split: { type: "string", default: "test" } }, strict: true });
const requests = Number(values.requests);
const CLIENTS = 8;
const WARMUP = 16;
const cores = availableParallelism();

const dir = await mkdtemp(join(tmpdir(), "pc2-edge-workers-"));
const modelDir = await exportEdgeModel(dir, values.split!);
// Words of the model's vocabulary (the special tokens left out), so that every query is answered.
const vocab = JSON.parse(await Bun.file(join(modelDir, "vocab.json")).text()) as { word2idx: Record<string, number> };
const words = Object.keys(vocab.word2idx).filter((w) => !w.startsWith("<"));
const rng = new Random(1);
const text = () => Array.from({ length: 10 }, () => words[rng.nextInt(words.length)]).join(" ");
console.log(`${cores} cores; load average before ${loadAverage()}`);

const rows: Array<{ workers: number; p50: number; p95: number; rps: number }> = [];
for (const workers of [0, 1, cores]) {
  const server = await startEdgeServer(modelDir, ["--workers", String(workers)]);
  try {
    const one = async () => {
      const t0 = performance.now();
      const r = await fetch(`${server.url}/v1/search/images`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ text: text(), k: 10 }) });
      await r.json();
      if (r.status !== 200) throw new Error(`status ${r.status}`);
      return performance.now() - t0;
    };
    for (let i = 0; i < WARMUP; i++) await one();
    const latencies: number[] = [];
    let sent = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        while (sent < requests) {
          sent++;
          latencies.push(await one());
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const row = { workers, p50: percentile(latencies, 50), p95: percentile(latencies, 95), rps: latencies.length / seconds };
    rows.push(row);
    console.log(`--workers ${workers}: 8 clients p50 ${row.p50.toFixed(0)} ms, p95 ${row.p95.toFixed(0)} ms, ${row.rps.toFixed(1)} requests/s`);
  } finally {
    await server.stop();
  }
}
const base = rows.find((r) => r.workers === 1)!;
for (const r of rows) console.log(`--workers ${r.workers}: ${(r.rps / base.rps).toFixed(2)}× the requests/s of one worker`);
console.log(`load average after ${loadAverage()}`);
await rm(dir, { recursive: true, force: true });
