/**
 * Runs a Worker entry for real: bundled by wrangler with the repository's wrangler.toml (module
 * rules, compatibility settings), then served by workerd through the Miniflare API on a free
 * loopback port. No network: the variables below stop wrangler's and Miniflare's calls home.
 *
 * Why not `wrangler dev`: its request proxy cannot forward under Bun (Bun's fetch ignores the
 * undici dispatcher it relies on), and wrangler refuses Node < 22.12, which is what this machine
 * has. `wrangler deploy --dry-run --outdir` bundles fine under Bun, and Miniflare starts workerd.
 */
import { withTimeout } from "../../support.ts";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { Log, LogLevel, Miniflare, convertV4MiniflareOptions } from "miniflare";

export const REPO = resolve(import.meta.dir, "../../..");

export const NO_NETWORK_ENV = {
  WRANGLER_SEND_METRICS: "false",
  WRANGLER_SEND_ERROR_REPORTS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
} as const;

/** Everything workerd and Miniflare said, for failure messages. */
class CapturingLog extends Log {
  readonly lines: string[] = [];
  constructor() {
    super(LogLevel.DEBUG);
  }
  protected override log(message: string): void {
    this.lines.push(message);
  }
}

export interface RunningWorker {
  url: URL;
  /** Milliseconds: wrangler's bundle, workerd's start. */
  timings: { buildMs: number; startMs: number };
  /** Build output, workerd's and the Worker's log lines so far. */
  logs(): string;
  fetch(path: string, init?: RequestInit): Promise<Response>;
  stop(): Promise<void>;
}

/** `wrangler deploy --dry-run` of `entry` into `outDir`; returns its output for diagnostics. */
async function bundle(entry: string, assetsDir: string, outDir: string, timeoutMs: number): Promise<string> {
  const wrangler = join(REPO, "node_modules/wrangler/bin/wrangler.js");
  const proc = Bun.spawn(
    [process.execPath, "--bun", wrangler, "deploy", "--dry-run", "--outdir", outDir, "--config", "wrangler.toml", "--assets", assetsDir, entry],
    {
      cwd: REPO,
      // Plain text for failure messages; wrangler's debug log goes to the temporary folder.
      env: { ...process.env, ...NO_NETWORK_ENV, NO_COLOR: "1", FORCE_COLOR: "0", WRANGLER_LOG_PATH: join(outDir, "logs") },
      stdout: "pipe",
      stderr: "pipe",
      stdin: "ignore",
    },
  );
  const output = Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]).then(
    ([out, err]) => `${out}\n${err}`,
  );
  try {
    const code = await withTimeout(proc.exited, timeoutMs, () => `wrangler bundling ${entry}`);
    const text = await output;
    if (code !== 0) throw new Error(`wrangler bundling ${entry} exited ${code}:\n${text}`);
    return text;
  } finally {
    if (proc.exitCode === null) proc.kill();
  }
}

/**
 * Bundles `entry` (a path relative to the repository) with wrangler.toml's settings and serves it
 * in workerd with `assetsDir` as its ASSETS binding (run_worker_first, as wrangler.toml says).
 */
export async function startWorker(entry: string, assetsDir: string, timeoutMs = 30_000): Promise<RunningWorker> {
  Object.assign(process.env, NO_NETWORK_ENV); // Miniflare reads these from its own process
  const outDir = await mkdtemp(join(tmpdir(), "pc2-edge-workerd-"));
  const log = new CapturingLog();
  const workerLines: string[] = [];
  let buildOutput = "";
  let mf: Miniflare | null = null;
  const logs = () => [buildOutput, ...log.lines, ...workerLines].join("\n").slice(-8000);
  const stop = async () => {
    const current = mf;
    mf = null;
    if (current) await withTimeout(current.dispose(), 10_000, () => "stopping workerd").catch(() => undefined);
    await rm(outDir, { recursive: true, force: true });
  };
  try {
    let t = performance.now();
    buildOutput = await bundle(entry, assetsDir, outDir, timeoutMs);
    const buildMs = performance.now() - t;

    const toml = Bun.TOML.parse(await Bun.file(join(REPO, "wrangler.toml")).text()) as {
      compatibility_date: string;
      compatibility_flags?: string[];
    };
    const files = await readdir(outDir);
    const main = `${basename(entry).replace(/\.[cm]?[tj]s$/, "")}.js`;
    if (!files.includes(main)) throw new Error(`wrangler wrote no ${main} in ${outDir}: ${files.join(", ")}`);
    t = performance.now();
    mf = new Miniflare(
      convertV4MiniflareOptions({
        host: "127.0.0.1",
        port: 0,
        log,
        handleStructuredLogs: ({ level, message }) => workerLines.push(`[worker ${level}] ${message}`),
        name: "pc2-edge-test",
        compatibilityDate: toml.compatibility_date,
        compatibilityFlags: toml.compatibility_flags ?? [],
        modulesRoot: outDir,
        modules: [
          { type: "ESModule", path: join(outDir, main) },
          // wrangler.toml's rule: every .wasm import is a CompiledWasm module.
          ...files.filter((f) => f.endsWith(".wasm")).map((f) => ({ type: "CompiledWasm" as const, path: join(outDir, f) })),
        ],
        assets: {
          directory: assetsDir,
          binding: "ASSETS",
          routerConfig: { has_user_worker: true, invoke_user_worker_ahead_of_assets: true },
        },
      }),
    );
    const url = await withTimeout(mf.ready, timeoutMs, () => `workerd did not become ready; log:\n${logs()}`);
    const startMs = performance.now() - t;
    return {
      url,
      timings: { buildMs, startMs },
      logs,
      fetch: (path, init) => withTimeout(fetch(new URL(path, url), init), timeoutMs, () => `${path}; log:\n${logs()}`),
      stop,
    };
  } catch (error) {
    await stop();
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`${message}\n--- log ---\n${logs()}`);
  }
}

export { withTimeout };
