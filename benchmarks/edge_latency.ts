/**
 * Latency of `POST /v1/search/images` (text query, k = 10) over a 1,000-image gallery, served by
 * the edge app (createApp + Pc2Engine over an exported package) on a real Bun.serve on loopback:
 *
 *   bun benchmarks/edge_latency.ts [--requests 60] [--big-requests 6] [--images 1000] [--only big|embedded]
 *
 * Two configurations, random weights and a gallery of random encodings (latency does not depend
 * on the values): `big`, the paper's (img_dim 2048, embed 1024, word 300, sim 256, proj 128), and
 * `embedded`, trainer/config.ts SYNTHETIC_PRESET (img_dim 32, embed 32, word 32, sim 16, proj 16).
 * Each is served as the A+B ensemble a real export holds and as net A alone. The server
 * (benchmarks/support/edge_server.ts) is a child process on one wasm thread, with
 * trainer/backend.ts's SIMD batched-matmul kernel (native/bmm.wasm); this process is the client:
 * 1 client, then 8 concurrent clients, each sending its next request when the previous answer
 * arrived, until N requests are answered after the discarded warm-up ones.
 *
 * One server thread answers one request at a time, so 8 clients see about 8 times the latency
 * at the same requests/s; for net A alone at the big size only 1 client is run, to keep the whole
 * benchmark near 10 minutes (one big request takes seconds).
 *
 * Prints p50/p95 of the client-side latency (request sent → JSON body read) and requests/s over
 * the measured window (with the default 6 big requests, p95 is their maximum), and the load average before and after: other processes on the machine
 * inflate every number. No asserts: numbers for the README.
 */
import { cpus, platform, release, totalmem } from "node:os";
import { loadAverage, percentile } from "./support/stats";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Random } from "../shared/random";
import type { PresetName, ServerReady } from "./support/edge_server.ts";
import { BENCH_WORDS } from "./support/words.ts";
import { spawnUntilReady } from "./support/edge_process";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "60" },
    "big-requests": { type: "string", default: "6" },
    images: { type: "string", default: "1000" },
    only: { type: "string" },
  },
  strict: true,
});

const K = 10;
/** Concurrent clients per preset and variant (see the header for the missing big/A/8). */
const PLAN: Record<PresetName, Record<"ensemble" | "single", number[]>> = {
  embedded: { ensemble: [1, 8], single: [1, 8] },
  big: { ensemble: [1, 8], single: [1] },
};
/** A server build (encoding 1,000 images at img_dim 2048 twice) may take a few minutes. */
const SERVER_START_MS = 8 * 60_000;

function positiveInt(flag: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag}: ${JSON.stringify(raw)} is not a positive integer`);
  return n;
}

const requests: Record<PresetName, number> = {
  embedded: positiveInt("requests", values.requests!),
  big: positiveInt("big-requests", values["big-requests"]!),
};
const images = positiveInt("images", values.images!);
const presets: PresetName[] = values.only ? [values.only as PresetName] : ["embedded", "big"];
if (!presets.every((p) => p in requests)) throw new Error(`--only: ${JSON.stringify(values.only)} is not one of embedded, big`);

// --- server ------------------------------------------------------------------------------------

interface Server {
  ready: ServerReady;
  stop(): Promise<void>;
}

async function startServer(preset: PresetName): Promise<Server> {
  const { value: ready, stop } = await spawnUntilReady(
    [process.execPath, join(import.meta.dir, "support/edge_server.ts"), "--preset", preset, "--images", String(images)],
    process.cwd(),
    (text) => {
      const line = text.split("\n").find((l) => l.startsWith('{"ready"'));
      return line ? (JSON.parse(line) as { ready: ServerReady }).ready : null;
    },
    `edge_server ${preset}`,
    SERVER_START_MS,
  );
  return { ready, stop };
}

// --- client ------------------------------------------------------------------------------------

interface RunResult {
  latenciesMs: number[];
  seconds: number;
}

function randomQuery(rng: Random): string {
  const n = 6 + rng.nextInt(7);
  return Array.from({ length: n }, () => BENCH_WORDS[rng.nextInt(BENCH_WORDS.length)]).join(" ");
}

async function search(url: string, text: string): Promise<void> {
  const response = await fetch(`${url}/v1/search/images`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ text, k: K }),
  });
  const body = (await response.json()) as { results?: unknown[] };
  // Not an assert on the numbers: a failed request has no latency worth reporting.
  if (response.status !== 200 || body.results?.length !== K) {
    throw new Error(`POST ${url}/v1/search/images ${JSON.stringify(text)}: HTTP ${response.status} ${JSON.stringify(body).slice(0, 300)}`);
  }
}

/**
 * `clients` loops, each sending its next request when its previous answer arrived, until
 * `warmup + measured` requests are answered; the first `warmup` answers are discarded, and the
 * rate is over the window from the last discarded answer to the last answer.
 */
async function run(url: string, clients: number, warmup: number, measured: number, seed: number): Promise<RunResult> {
  const rng = new Random(seed);
  const total = warmup + measured;
  let issued = 0;
  let answered = 0;
  let windowStart = performance.now();
  const latenciesMs: number[] = [];
  const client = async () => {
    while (issued < total) {
      issued++;
      const text = randomQuery(rng);
      const t0 = performance.now();
      await search(url, text);
      const t1 = performance.now();
      answered++;
      if (answered === warmup) windowStart = t1;
      else if (answered > warmup) latenciesMs.push(t1 - t0);
    }
  };
  await Promise.all(Array.from({ length: clients }, client));
  return { latenciesMs, seconds: (performance.now() - windowStart) / 1000 };
}

// --- main --------------------------------------------------------------------------------------

const cpu = cpus();
console.log(`machine: ${cpu[0]?.model} × ${cpu.length} logical CPUs, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ${platform()} ${release()}, Bun ${Bun.version}`);
console.log(`load average (1, 5, 15 min): ${loadAverage()}`);
console.log(`endpoint: POST /v1/search/images {text, k: ${K}}; text: 6-12 random caption words; gallery: ${images} images`);

const rows: string[][] = [];
for (const preset of presets) {
  const t0 = performance.now();
  console.log(`\n[${preset}] building the model and the gallery in the server process …`);
  const server = await startServer(preset);
  try {
    const r = server.ready;
    const c = r.config;
    console.log(
      `[${preset}] img_dim ${c.img_dim}, embed ${c.embed_size}, word ${c.word_dim}, sim ${c.sim_dim}, proj ${c.proj_dim}, vocab ${c.vocab_size}, ${c.module_name}; ` +
        `${r.images} images, ${r.captions} captions; package (uint8) ${(r.packageBytes.ensemble! / 2 ** 20).toFixed(1)} MiB (A+B), ` +
        `${(r.packageBytes.single! / 2 ** 20).toFixed(1)} MiB (A); built in ${(r.buildMs / 1000).toFixed(1)} s (started after ${((performance.now() - t0) / 1000).toFixed(1)} s)`,
    );
    console.log(`[${preset}] server: ${r.backend}, ${r.wasmThreads} wasm thread(s)`);
    for (const variant of ["ensemble", "single"] as const) {
      for (const clients of PLAN[preset][variant]) {
        // 1 client: the first calls pay for JIT and first-use allocations; 8 clients: the first 8
        // answers come while the queue fills.
        const warmup = clients === 1 ? 2 : clients;
        const n = requests[preset];
        const res = await run(r.urls[variant], clients, warmup, n, clients * 1000 + (variant === "single" ? 1 : 0));
        const sorted = [...res.latenciesMs].sort((a, b) => a - b);
        const row = [
          preset,
          variant === "ensemble" ? "A+B" : "A",
          String(clients),
          String(n),
          percentile(sorted, 50).toFixed(1),
          percentile(sorted, 95).toFixed(1),
          (res.latenciesMs.length / res.seconds).toFixed(2),
        ];
        rows.push(row);
        console.log(`[${preset}] nets ${row[1]}, ${clients} client(s): p50 ${row[4]} ms, p95 ${row[5]} ms, ${row[6]} req/s (${n} requests, ${warmup} warm-up discarded)`);
      }
    }
  } finally {
    await server.stop();
  }
}

const header = ["config", "nets", "clients", "requests", "p50 ms", "p95 ms", "req/s"];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]) => `| ${cells.map((x, i) => x.padStart(widths[i]!)).join(" | ")} |`;
console.log(`\nload average (1, 5, 15 min): ${loadAverage()}`);
console.log(`\n${line(header)}\n|${widths.map((w) => "-".repeat(w + 2)).join("|")}|\n${rows.map(line).join("\n")}`);
