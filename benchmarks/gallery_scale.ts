/**
 * Text→image search over galleries of 1,000 to 100,000 images at the paper's dims, with the
 * gallery's encodings in the region store (shared/model/region-shards.ts) on disk and only the
 * first stage resident (issue 13, "Edge retrieval at paper size"):
 *
 *   bun benchmarks/gallery_scale.ts [--sizes 1000,10000] [--dir /tmp/pc2-gallery-scale]
 *                                   [--requests 30] [--exhaustive-requests 4] [--shortlist 128]
 *                                   [--shard-items 8] [--cache-mb 64] [--sim-budget-mb 256]
 *                                   [--first-stage distilled|tranglo] [--rebuild]
 *                                   [--weights float32|int8] [--nets A]
 *
 * For each size, a random-weights model (img_dim 2048, embed 1024, word 300, sim 256, proj 128:
 * benchmarks/support/edge_server.ts's `big`; nets A and B for 1,000 images, net A alone beyond,
 * for the disk: 100,000 images × 36 regions × 1,024 float16 values are 7.4 GB per net) and a
 * gallery of random encodings written directly into the sharded layout, shard by shard (the
 * encoders are not run; search time does not depend on the values), one caption per image of one
 * word (the benchmark is text→image; the format wants a caption per image at least). The first
 * stage is a random distilled head of 256 dimensions, as an export of a trained model fits
 * (`--first-stage tranglo`: the pooled vectors, 1,024 dimensions, 4 times the resident bytes); its
 * vectors are computed from each item's encodings as an export computes them. Each gallery
 * is written once under `--dir`/<size> and reused by later runs (`--rebuild` rewrites it).
 *
 * A server process per size (this file with `--serve <model dir>`) loads the package from disk
 * (edge/adapters/bun.ts fileAssets), builds the engine (Pc2Engine, the region cache's budget
 * `--cache-mb`, 0 for none: every shortlisted shard read and verified per query; the similarity's shard budget `--sim-budget-mb`, inference.ts SHARD_DEFAULTS by
 * default: it bounds the wasm heap a search grows, which never shrinks) and serves it with the edge app on loopback, on trainer/backend.ts's wasm (one
 * thread, SIMD, native/bmm.wasm), as benchmarks/edge_latency.ts does. This process is the client:
 * POST /v1/search/images {text, k: 10, shortlist: k′}, 1 client then 8 concurrent clients (each
 * sends its next request when its previous answer arrived); exhaustive (shortlist "all") for
 * 1,000 images only. Reports p50/p95, the server's RSS after loading, at the end and at its peak
 * (/proc: VmRSS, VmHWM), and the engine's own accounting (Pc2Engine.memory(): weights, resident
 * gallery encodings, first-stage vectors, region cache), with the load average: the cores may be
 * shared, and other work inflates every timing. No asserts: numbers for docs/performance.md.
 *
 * With random weights and encodings, the first stage shortlists much the same items for every
 * query, so a region cache that holds one shortlist's shards answers most reads from memory: run
 * with `--cache-mb 0` as well, where every query reads and verifies every shard it needs (from
 * the OS's page cache here) - what a real gallery's varied shortlists approach.
 */
import { readFileSync, existsSync } from "node:fs";
import { cpus, platform, release, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createApp } from "../edge/app.ts";
import { fileAssets } from "../edge/adapters/bun.ts";
import { MODEL_JSON, type WeightHolding } from "../shared/model/package";
import { REGION_SHARD_ITEMS } from "../shared/model/region-shards";
import * as tf from "../shared/model/tf";
import { Random } from "../shared/random";
import { loadPackage, Pc2Engine } from "../shared/retrieval/pc2-engine.ts";
import { initBackend } from "../trainer/backend";
import { spawnUntilReady } from "./support/edge_process";
import { loadAverage, percentile } from "./support/stats";
import { BENCH_WORDS } from "./support/words.ts";
import { buildPaperGallery, type Built, type StageOneKind } from "./support/paper-gallery.ts";

const K = 10;

const { values } = parseArgs({
  options: {
    sizes: { type: "string", default: "1000,10000" },
    dir: { type: "string", default: "/tmp/pc2-gallery-scale" },
    requests: { type: "string", default: "30" },
    "exhaustive-requests": { type: "string", default: "4" },
    shortlist: { type: "string", default: "128" },
    "shard-items": { type: "string", default: String(REGION_SHARD_ITEMS) },
    "cache-mb": { type: "string", default: "64" },
    "sim-budget-mb": { type: "string" },
    rebuild: { type: "boolean", default: false },
    "first-stage": { type: "string", default: "distilled" },
    weights: { type: "string", default: "float32" },
    nets: { type: "string" },
    serve: { type: "string" },
  },
  strict: true,
});

function positiveInt(flag: string, raw: string, min = 1): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${flag}: ${JSON.stringify(raw)} is not an integer ≥ ${min}`);
  return n;
}

// --- building ----------------------------------------------------------------------------------

// --- server (a child process) --------------------------------------------------------------------

interface Ready {
  port: number;
  pid: number;
  loadS: number;
  backend: string;
}

async function serve(modelDir: string, cacheBytes: number, simBudgetBytes: number | undefined): Promise<void> {
  const backend = await initBackend("wasm");
  const t0 = performance.now();
  const weights = values.weights as WeightHolding;
  const nets = values.nets ? values.nets.split(",") : undefined;
  const engine = new Pc2Engine(await loadPackage(fileAssets(modelDir), modelDir, { weights, nets, transposes: "replace" }), { regionCacheBytes: cacheBytes, shard: simBudgetBytes ? { budgetBytes: simBudgetBytes } : undefined, betweenBatches: () => Bun.gc(false) });
  // The first stage is built on first use: build it now, so that loading is all measured here.
  await engine.searchImages({ text: BENCH_WORDS[0] }, 1, { shortlist: 1 });
  const loadS = (performance.now() - t0) / 1000;
  Bun.gc(true);
  const app = createApp({ engine });
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(request) {
      if (new URL(request.url).pathname === "/bench/memory") return Response.json({ memoryUsage: process.memoryUsage(), engine: engine.memory() });
      const response = await app.fetch(request);
      // As edge/engine-worker.ts after every call: the call's garbage (shards read, regions
      // gathered: tens of MB a search) collected before the next call adds its own.
      Bun.gc(false);
      return response;
    },
  });
  const ready: Ready = { port: server.port!, pid: process.pid, loadS, backend: `${backend.name} (SIMD ${tf.env().getBool("WASM_HAS_SIMD_SUPPORT")}, native/bmm.wasm kernel)` };
  console.log(JSON.stringify({ ready }));
}

// --- client ------------------------------------------------------------------------------------

type Shortlist = number | "all";

function randomQuery(rng: Random): string {
  const n = 6 + rng.nextInt(7);
  return Array.from({ length: n }, () => BENCH_WORDS[rng.nextInt(BENCH_WORDS.length)]).join(" ");
}

/** One search; the first stage it used ("distilled", "tranglo", or null for an exhaustive one). */
async function search(url: string, text: string, shortlist: Shortlist): Promise<string | null> {
  const response = await fetch(`${url}/v1/search/images`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ text, k: K, shortlist }) });
  const body = (await response.json()) as { results?: unknown[]; shortlist?: { stage: string | null } };
  if (response.status !== 200 || body.results?.length !== K) throw new Error(`POST ${url}/v1/search/images: HTTP ${response.status} ${JSON.stringify(body).slice(0, 300)}`);
  return body.shortlist?.stage ?? null;
}

/** `clients` loops until `warmup + measured` answers; latencies of the measured ones. */
async function run(url: string, clients: number, warmup: number, measured: number, seed: number, shortlist: Shortlist): Promise<{ latencies: number[]; stages: Set<string | null> }> {
  const rng = new Random(seed);
  let issued = 0;
  let answered = 0;
  const out: number[] = [];
  const stages = new Set<string | null>();
  const client = async () => {
    while (issued < warmup + measured) {
      issued++;
      const t0 = performance.now();
      stages.add(await search(url, randomQuery(rng), shortlist));
      answered++;
      if (answered > warmup) out.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: clients }, client));
  return { latencies: out, stages };
}

/** VmRSS and VmHWM of a process, in MiB. */
function procMemory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => Number(/(\d+) kB/.exec(status.split("\n").find((l) => l.startsWith(key)) ?? "")?.[1] ?? NaN);
  return { rss: kb("VmRSS:") / 1024, peak: kb("VmHWM:") / 1024 };
}

const mib = (b: number) => (b / 2 ** 20).toFixed(1);

async function main(): Promise<void> {
  const sizes = values.sizes!.split(",").map((s) => positiveInt("sizes", s));
  await initBackend("cpu"); // the builder's random weights (the server runs its own wasm backend)
  const requests = positiveInt("requests", values.requests!);
  const exhaustiveRequests = positiveInt("exhaustive-requests", values["exhaustive-requests"]!);
  const shortlist = positiveInt("shortlist", values.shortlist!);
  const perShard = positiveInt("shard-items", values["shard-items"]!);
  const cacheMb = positiveInt("cache-mb", values["cache-mb"]!, 0);
  const firstStage = values["first-stage"] as StageOneKind;
  if (firstStage !== "distilled" && firstStage !== "tranglo") throw new Error(`--first-stage: ${JSON.stringify(firstStage)} is not distilled or tranglo`);
  const cpu = cpus();
  console.log(`machine: ${cpu[0]?.model} × ${cpu.length} logical CPUs, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ${platform()} ${release()}, Bun ${Bun.version}`);
  console.log(`paper dims (img_dim 2048, embed 1024, word 300, sim 256); k ${K}; k′ ${shortlist}; ${firstStage} first stage; shards of ${perShard} images; region cache ${cacheMb} MiB; similarity shard budget ${values["sim-budget-mb"] ?? "256 (default)"} MiB; weights ${values.weights}${values.nets ? `; nets ${values.nets}` : ""}; galleries under ${values.dir}`);
  console.log(`load average (1, 5, 15 min) at start: ${loadAverage()}`);
  const rows: string[][] = [];
  for (const images of sizes) {
    const dir = join(values.dir!, String(images));
    const nets = images <= 1000 ? ["A", "B"] : ["A"];
    const meta = join(dir, "bench.json");
    let built: Built | null = existsSync(meta) && existsSync(join(dir, MODEL_JSON)) ? (JSON.parse(readFileSync(meta, "utf8")) as Built) : null;
    if (values.rebuild || !built || built.shardItems !== perShard || built.nets.join() !== nets.join() || built.firstStage !== firstStage) {
      console.log(`\n[${images}] writing the gallery (nets ${nets.join("+")}, ${firstStage} first stage) …`);
      built = await buildPaperGallery({ dir, images, nets, perShard, firstStage });
      console.log(`[${images}] written: ${(built.bytes / 2 ** 30).toFixed(2)} GiB in ${built.buildS.toFixed(1)} s`);
    } else {
      console.log(`\n[${images}] reusing ${dir} (${(built.bytes / 2 ** 30).toFixed(2)} GiB)`);
    }
    const { value: ready, stop } = await spawnUntilReady(
      [
        process.execPath,
        import.meta.path,
        "--serve",
        dir,
        "--cache-mb",
        String(cacheMb),
        "--weights",
        values.weights!,
        ...(values.nets ? ["--nets", values.nets] : []),
        ...(values["sim-budget-mb"] ? ["--sim-budget-mb", values["sim-budget-mb"]] : []),
      ],
      process.cwd(),
      (text) => {
        const line = text.split("\n").find((l) => l.startsWith('{"ready"'));
        return line ? (JSON.parse(line) as { ready: Ready }).ready : null;
      },
      `gallery_scale server ${images}`,
      10 * 60_000,
    );
    try {
      const url = `http://127.0.0.1:${ready.port}`;
      const idle = procMemory(ready.pid);
      console.log(`[${images}] server ${ready.backend}: loaded in ${ready.loadS.toFixed(1)} s, RSS ${idle.rss.toFixed(0)} MiB`);
      const plan: Array<[Shortlist, number, number]> = [
        [shortlist, 1, requests],
        [shortlist, 8, requests],
      ];
      if (images <= 1000) plan.push(["all", 1, exhaustiveRequests], ["all", 8, Math.max(8, exhaustiveRequests)]);
      for (const [sl, clients, n] of plan) {
        const load = loadAverage();
        const { latencies: lat, stages } = await run(url, clients, clients === 1 ? 2 : clients, n, clients * 7 + images, sl);
        const m = (await (await fetch(`${url}/bench/memory`)).json()) as { engine: ReturnType<Pc2Engine["memory"]> };
        const mem = procMemory(ready.pid);
        const e = m.engine;
        const row = [
          String(images),
          (values.nets ? values.nets.split(",") : nets).join("+"),
          String(sl),
          String(clients),
          String(n),
          percentile(lat, 50).toFixed(0),
          percentile(lat, 95).toFixed(0),
          idle.rss.toFixed(0),
          mem.rss.toFixed(0),
          mem.peak.toFixed(0),
          `${mib(e.weights)} / ${mib(e.gallery)} / ${mib(e.stageOne)} / ${mib(e.regions?.cached ?? 0)}`,
          `${e.regions?.reads ?? 0} / ${e.regions?.hits ?? 0}`,
          load,
        ];
        rows.push(row);
        console.log(`[${images}] k′ ${sl} (first stage: ${[...stages].join(", ") || "none"}), ${clients} client(s): p50 ${row[5]} ms, p95 ${row[6]} ms; RSS ${row[8]} MiB (peak ${row[9]}); load ${load}`);
      }
    } finally {
      await stop();
    }
  }
  console.log(`\nload average (1, 5, 15 min) at the end: ${loadAverage()}`);
  console.log("\n| images | nets | k′ | clients | requests | p50 ms | p95 ms | RSS loaded MiB | RSS after MiB | RSS peak MiB | engine: weights / resident gallery / stage one / region cache MiB | shard reads / cache hits (cumulative) | load avg before (1, 5, 15 min) |");
  console.log("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
  for (const r of rows) console.log(`| ${r.join(" | ")} |`);
}

if (values.serve) {
  const sim = values["sim-budget-mb"];
  serve(values.serve, positiveInt("cache-mb", values["cache-mb"]!, 0) * 2 ** 20, sim ? positiveInt("sim-budget-mb", sim) * 2 ** 20 : undefined).catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
} else {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
