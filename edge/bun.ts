/**
 * `bun run edge --model <dir> [--port N] [--host H]`: the edge app on Bun.serve, the model read
 * from a directory. The model is loaded before the port opens, so a bad model fails at start.
 */
import { parseArgs } from "node:util";
import { stat } from "node:fs/promises";
import { createApp } from "./app.ts";
import { fileAssets, tfjsWasmBytes } from "./adapters/bun.ts";
import { loadPc2Engine } from "../shared/retrieval/pc2-engine.ts";
import { initWasmBackend } from "./tfjs-wasm.ts";
import { loadNativeBmm } from "../native/load.ts";

const USAGE = `usage: bun run edge --model <dir> [--port 8787] [--host 127.0.0.1]

  --model <dir>   model directory (weights, vocabulary, optional gallery)
  --port <n>      port to listen on (default 8787; 0 picks a free one)
  --host <addr>   address to bind (default 127.0.0.1)`;

/** A mistake of the user's: printed (with the usage for flag errors), exit 1; a bug prints its stack. */
class CliError extends Error {
  constructor(message: string, readonly showUsage = true) {
    super(message);
  }
}

function parseCli(argv: string[]) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        model: { type: "string" },
        port: { type: "string", default: "8787" },
        host: { type: "string", default: "127.0.0.1" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    });
  } catch (error) {
    throw new CliError((error as Error).message);
  }
  const { values } = parsed;
  if (values.help) return null;
  if (!values.model) throw new CliError("--model is required");
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new CliError(`--port: ${JSON.stringify(values.port)} is not a port (an integer in 0..65535)`);
  }
  return { model: values.model, port, host: values.host! };
}

async function main(): Promise<void> {
  const cli = parseCli(Bun.argv.slice(2));
  if (cli === null) {
    console.log(USAGE);
    return;
  }
  const info = await stat(cli.model).catch(() => null);
  if (!info?.isDirectory()) throw new CliError(`--model: ${cli.model} is not a directory`);
  await initWasmBackend({ bytes: await tfjsWasmBytes(), bmm: loadNativeBmm() });
  let engine;
  try {
    engine = await loadPc2Engine(fileAssets(cli.model));
  } catch (error) {
    throw new CliError(`cannot load the model in ${cli.model}: ${(error as Error).message}`, false);
  }
  const server = Bun.serve({ port: cli.port, hostname: cli.host, fetch: createApp({ engine }).fetch });
  console.log(`edge: serving ${cli.model} on http://${server.hostname}:${server.port}`);
}

main().catch((error: unknown) => {
  if (error instanceof CliError) {
    console.error(error.showUsage ? `edge: ${error.message}\n\n${USAGE}` : `edge: ${error.message}`);
  } else {
    console.error(error);
  }
  process.exit(1);
});
