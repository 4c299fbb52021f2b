/**
 * Builds the browser page's files (edge/browser/files.ts): main.ts bundled for the browser by
 * Bun.build (tfjs-core, its WebGPU and wasm backends and the engine in one minified module; no
 * CDN), index.html, tfjs-backend-wasm's binaries, native/bmm.wasm and jieba-rs's module.
 *
 * `bun run edge` builds them in memory at start (about a second) and hands them to the app.
 * Workers cannot run Bun.build, so a deployment builds them first into its static assets:
 *
 *   bun run build:browser [--out model/app]
 *
 * and the Worker serves them from its ASSETS binding under BROWSER_ASSETS_PREFIX.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { CliError, parseFlags, runCli } from "../../shared/cli.ts";
import { BROWSER_FILES } from "./files.ts";

const HERE = import.meta.dir;

async function fileBytes(path: string): Promise<Uint8Array> {
  return new Uint8Array(await Bun.file(path).arrayBuffer());
}

/** Every file of BROWSER_FILES, by name. */
export async function buildBrowserFiles(): Promise<Map<string, Uint8Array>> {
  const result = await Bun.build({
    entrypoints: [join(HERE, "main.ts")],
    target: "browser",
    format: "esm",
    minify: true,
    // tfjs-core's package.json lists its side-effect modules by glob ("./dist/platforms/*.js",
    // the chained ops, the gradients), which Bun's bundler does not match: it would drop the
    // browser platform and the chained ops. This keeps every module that is imported.
    ignoreDCEAnnotations: true,
  });
  if (!result.success) {
    throw new Error(`bundling edge/browser/main.ts failed:\n${result.logs.map(String).join("\n")}`);
  }
  const script = result.outputs.find((o) => o.kind === "entry-point");
  if (!script) throw new Error("bundling edge/browser/main.ts gave no entry point");
  const wasmDir = resolve(Bun.resolveSync("@tensorflow/tfjs-backend-wasm/package.json", HERE), "../dist");
  // jieba-wasm's package exports do not list its .wasm: it lies beside the web glue.
  const jiebaDir = dirname(Bun.resolveSync("jieba-wasm/web", HERE));
  return new Map([
    [BROWSER_FILES.page, await fileBytes(join(HERE, "index.html"))],
    [BROWSER_FILES.script, new Uint8Array(await script.arrayBuffer())],
    [BROWSER_FILES.wasmPlain, await fileBytes(join(wasmDir, BROWSER_FILES.wasmPlain))],
    [BROWSER_FILES.wasmSimd, await fileBytes(join(wasmDir, BROWSER_FILES.wasmSimd))],
    [BROWSER_FILES.bmm, await fileBytes(join(HERE, "../../native/bmm.wasm"))],
    [BROWSER_FILES.jieba, await fileBytes(join(jiebaDir, BROWSER_FILES.jieba))],
  ]);
}

const USAGE = `usage: bun run build:browser [--out model/app]

  --out <dir>   where to write the page's files (default model/app: wrangler.toml's assets
                directory is ./model, and the Worker reads the page under app/)`;

async function main(): Promise<number> {
  const values = parseFlags(Bun.argv.slice(2), { out: { type: "string", default: "model/app" } });
  if (values === null) {
    console.log(USAGE);
    return 0;
  }
  const out = String(values.out);
  if (out.trim() === "") throw new CliError("--out: an empty path");
  const files = await buildBrowserFiles();
  await mkdir(out, { recursive: true });
  for (const [name, bytes] of files) await writeFile(join(out, name), bytes);
  const total = [...files.values()].reduce((s, b) => s + b.length, 0);
  console.log(`build:browser: ${files.size} files, ${(total / 2 ** 20).toFixed(2)} MiB in ${out}`);
  return 0;
}

if (import.meta.main) {
  const code = await runCli("build:browser", USAGE, main);
  if (code !== 0) process.exit(code);
}
