/**
 * `bun run edge --model <dir> [--port N] [--host H]`: the edge app on Bun.serve, the model read
 * from a directory. The model is loaded before the port opens, so a bad model fails at start.
 * The browser page (/app) is bundled here in memory at start; the model's files are served to it
 * from the same directory.
 */
import { CliError, intFlag, parseFlags, runCli } from "../shared/cli.ts";
import { stat } from "node:fs/promises";
import { createApp } from "./app.ts";
import { fileAssets, tfjsWasmBytes } from "./adapters/bun.ts";
import { Pc2Engine, loadPackage } from "../shared/retrieval/pc2-engine.ts";
import { initWasmBackend } from "./tfjs-wasm.ts";
import { loadNativeBmm } from "../native/load.ts";
import { memoryAssets } from "../shared/retrieval/assets.ts";
import { buildBrowserFiles } from "./browser/build.ts";

const USAGE = `usage: bun run edge --model <dir> [--port 8787] [--host 127.0.0.1]

  --model <dir>   model directory (weights, vocabulary, optional gallery)
  --port <n>      port to listen on (default 8787; 0 picks a free one)
  --host <addr>   address to bind (default 127.0.0.1)`;

function parseCli(argv: string[]) {
  const values = parseFlags(argv, {
    model: { type: "string" },
    port: { type: "string", default: "8787" },
    host: { type: "string", default: "127.0.0.1" },
  });
  if (values === null) return null;
  if (!values.model) throw new CliError("--model is required");
  return { model: String(values.model), port: intFlag("port", values.port, 0, 65535), host: String(values.host) };
}

async function main(): Promise<number> {
  const cli = parseCli(Bun.argv.slice(2));
  if (cli === null) {
    console.log(USAGE);
    return 0;
  }
  const info = await stat(cli.model).catch(() => null);
  if (!info?.isDirectory()) throw new CliError(`--model: ${cli.model} is not a directory`);
  await initWasmBackend({ bytes: await tfjsWasmBytes(), bmm: loadNativeBmm() });
  let engine;
  try {
    engine = new Pc2Engine(await loadPackage(fileAssets(cli.model), cli.model));
  } catch (error) {
    throw new CliError(`cannot load the model in ${cli.model}: ${(error as Error).message}`, false);
  }
  const browserAssets = memoryAssets(Object.fromEntries(await buildBrowserFiles()));
  const app = createApp({ engine, modelAssets: fileAssets(cli.model), browserAssets });
  const server = Bun.serve({ port: cli.port, hostname: cli.host, fetch: app.fetch });
  console.log(`edge: serving ${cli.model} (manifest digest ${engine.pkg.json.digest}) on http://${server.hostname}:${server.port} (in the browser: /app)`);
  return 0;
}

const code = await runCli("edge", USAGE, main);
if (code !== 0) process.exit(code);
