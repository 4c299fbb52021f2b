/**
 * `bun run edge --model <dir> [--port N] [--host H] [--workers N] [limits]`: the edge app on
 * Bun.serve, the model read from a directory. The model is loaded before the port opens, so a bad
 * model fails at start. The browser page (/app) is bundled here in memory at start; the model's
 * files are served to it from the same directory.
 *
 * The engine is a pool of Bun Workers (edge/engine-pool.ts), each with its own copy of the model,
 * so that no request's computation blocks the thread that answers the others; `--workers 0`
 * computes on the server's own thread instead.
 */
import { choiceFlag, CliError, intFlag, parseFlags, runCli } from "../shared/cli.ts";
import { WEIGHT_HOLDINGS, type WeightHolding } from "../shared/model/package.ts";
import { stat } from "node:fs/promises";
import { createApp } from "./app.ts";
import { fileAssets, tfjsWasmBytes } from "./adapters/bun.ts";
import { EnginePool } from "./engine-pool.ts";
import { Pc2Engine, loadPackage } from "../shared/retrieval/pc2-engine.ts";
import type { RetrievalEngine } from "../shared/retrieval/engine.ts";
import { initWasmBackend } from "./tfjs-wasm.ts";
import { loadNativeBmm } from "../native/load.ts";
import { memoryAssets } from "../shared/retrieval/assets.ts";
import { buildBrowserFiles } from "./browser/build.ts";
import { DEFAULT_EDGE_LIMITS, type EdgeLimits } from "./schemas.ts";
import { AUTO_SHORTLIST, autoShortlist } from "../shared/retrieval/shortlist.ts";
import { REGION_CACHE_BYTES } from "../shared/retrieval/region-store.ts";

const D = DEFAULT_EDGE_LIMITS;
const DEFAULT_WORKERS = 2;

const USAGE = `usage: bun run edge --model <dir> [--port 8787] [--host 127.0.0.1] [--workers ${DEFAULT_WORKERS}] [limits]

  --model <dir>        model directory (weights, vocabulary, optional gallery)
  --port <n>           port to listen on (default 8787; 0 picks a free one)
  --host <addr>        address to bind (default 127.0.0.1)
  --workers <n>        engine workers, each with its own copy of the model (default ${DEFAULT_WORKERS};
                       0 computes on the server's thread, which then answers nothing else meanwhile)
  --nets <A,B>         the package's nets to serve (default all): A alone takes half the memory
                       and half the work of the ensemble; /v1/model lists the nets served
  --weights <float32|int8>
                       how the nets' encoder matrices are held (default float32): int8 keeps a
                       uint8 export's at a byte per value (a paper-size net A: 16 MB of int8 and
                       4 MB of float32, not 69 MB plus tfjs's packed copies; queries about 12% slower)
  --region-cache-mb <n>
                       each engine's cache of gallery region shards read on demand (default
                       ${REGION_CACHE_BYTES / 2 ** 20}; a 1,000-image paper-size gallery of two nets is 147 MB)

limits (a request over one is refused, never queued without end):
  --max-work <cells>   most work one request may ask for, estimated before it runs
                       (shared/retrieval/cost.ts; default ${D.maxWork}: 422 over it)
  --max-pending <n>    engine requests in hand at once, running or waiting (default ${D.maxPending}; 503)
  --max-evals <n>      concurrent /v1/eval requests (default ${D.maxEvals}; 503)
  --deadline-ms <ms>   time one engine request may take (default ${D.deadlineMs}; 504, its work stopped)

two-stage search (a request's \`shortlist\` field; 0 or "all": exhaustive):
  --shortlist <n|all|auto>
                       shortlist of a search or evaluation that names none (default auto:
                       ${AUTO_SHORTLIST} for a model with a distilled first stage, which bun run train
                       and bun run export fit; "all" for one without)
  --max-shortlist <n>  largest shortlist a request may name (default ${D.maxShortlist}; 400 over it)`;

function parseCli(argv: string[]) {
  const values = parseFlags(argv, {
    model: { type: "string" },
    port: { type: "string", default: "8787" },
    host: { type: "string", default: "127.0.0.1" },
    workers: { type: "string", default: String(DEFAULT_WORKERS) },
    nets: { type: "string" },
    weights: { type: "string", default: "float32" },
    "region-cache-mb": { type: "string", default: String(REGION_CACHE_BYTES / 2 ** 20) },
    "max-work": { type: "string", default: String(D.maxWork) },
    "max-pending": { type: "string", default: String(D.maxPending) },
    "max-evals": { type: "string", default: String(D.maxEvals) },
    "deadline-ms": { type: "string", default: String(D.deadlineMs) },
    shortlist: { type: "string", default: "auto" },
    "max-shortlist": { type: "string", default: String(D.maxShortlist) },
  });
  if (values === null) return null;
  if (!values.model) throw new CliError("--model is required");
  const limits: Partial<EdgeLimits> = {
    maxWork: intFlag("max-work", values["max-work"], 1),
    maxPending: intFlag("max-pending", values["max-pending"], 1),
    maxEvals: intFlag("max-evals", values["max-evals"], 1),
    deadlineMs: intFlag("deadline-ms", values["deadline-ms"], 1),
    maxShortlist: intFlag("max-shortlist", values["max-shortlist"], 0),
  };
  const shortlist = values.shortlist === "auto" ? ("auto" as const) : shortlistFlag(String(values.shortlist), limits.maxShortlist!);
  return {
    shortlist,
    model: String(values.model),
    port: intFlag("port", values.port, 0, 65535),
    host: String(values.host),
    workers: intFlag("workers", values.workers, 0, 64),
    nets: values.nets === undefined ? undefined : netsFlag(String(values.nets)),
    weights: choiceFlag("weights", String(values.weights), WEIGHT_HOLDINGS),
    regionCacheBytes: intFlag("region-cache-mb", values["region-cache-mb"], 0, 65536) * 2 ** 20,
    limits,
  };
}

function netsFlag(value: string): string[] {
  const nets = value.split(",").map((n) => n.trim());
  if (nets.some((n) => n === "") || new Set(nets).size !== nets.length) throw new CliError(`--nets: invalid value ${JSON.stringify(value)} (net names separated by commas, each once: A, B or A,B)`);
  return nets;
}

function shortlistFlag(value: string, max: number): number | "all" {
  if (value === "all") return "all";
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n > max) throw new CliError(`--shortlist: invalid value ${JSON.stringify(value)} ("all", "auto" or an integer in 0..${max}, the --max-shortlist)`);
  return n;
}

/** The engine: a pool of workers, or one on this thread (`--workers 0`). */
async function startEngine(model: string, workers: number, nets: string[] | undefined, weights: WeightHolding, regionCacheBytes: number): Promise<{ engine: RetrievalEngine; digest: string }> {
  if (workers > 0) {
    const pool = await EnginePool.start({ modelDir: model, workers, nets, weights, regionCacheBytes });
    return { engine: pool, digest: pool.digest };
  }
  await initWasmBackend({ bytes: await tfjsWasmBytes(), bmm: loadNativeBmm() });
  const engine = new Pc2Engine(await loadPackage(fileAssets(model), model, { nets, weights, transposes: "replace" }), { regionCacheBytes });
  return { engine, digest: engine.pkg.json.digest };
}

async function main(): Promise<number> {
  const cli = parseCli(Bun.argv.slice(2));
  if (cli === null) {
    console.log(USAGE);
    return 0;
  }
  const info = await stat(cli.model).catch(() => null);
  if (!info?.isDirectory()) throw new CliError(`--model: ${cli.model} is not a directory`);
  let started;
  try {
    started = await startEngine(cli.model, cli.workers, cli.nets, cli.weights, cli.regionCacheBytes);
  } catch (error) {
    throw new CliError(`cannot load the model in ${cli.model}: ${(error as Error).message}`, false);
  }
  const firstStage = started.engine.info().gallery?.firstStage;
  cli.limits.defaultShortlist = cli.shortlist === "auto" ? autoShortlist(firstStage, cli.limits.maxShortlist!) : cli.shortlist;
  const browserAssets = memoryAssets(Object.fromEntries(await buildBrowserFiles()));
  const app = createApp({ engine: started.engine, limits: cli.limits, modelAssets: fileAssets(cli.model), browserAssets });
  const server = Bun.serve({ port: cli.port, hostname: cli.host, fetch: app.fetch });
  const engineText = cli.workers > 0 ? `${cli.workers} engine worker${cli.workers === 1 ? "" : "s"}` : "engine on the server thread";
  const netsText = `nets ${started.engine.info().nets.join("+")}`;
  const shortlistText = `${netsText}, default shortlist ${cli.limits.defaultShortlist}${firstStage ? ` (first stage: ${firstStage})` : ""}`;
  console.log(`edge: serving ${cli.model} (manifest digest ${started.digest}, ${engineText}, ${shortlistText}) on http://${server.hostname}:${server.port} (in the browser: /app)`);
  return 0;
}

const code = await runCli("edge", USAGE, main);
if (code !== 0) process.exit(code);
