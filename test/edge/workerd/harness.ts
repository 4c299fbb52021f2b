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
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
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
  /**
   * The Worker isolate's V8 heap now (garbage included: workerd does not take HeapProfiler.collectGarbage), through workerd's inspector
   * (`startWorker(..., { inspect: true })` only): `usedSize`, and where V8 reports it
   * `backingStorageSize`, the ArrayBuffer and wasm memory backing stores outside the heap.
   */
  heapUsage(): Promise<HeapUsage>;
  stop(): Promise<void>;
}

export interface HeapUsage {
  usedSize: number;
  totalSize: number;
  backingStorageSize?: number;
  embedderHeapUsedSize?: number;
}

/** A loopback port free a moment ago. */
function freePort(): number {
  const s = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
  const port = s.port!;
  s.stop(true);
  return port;
}

/** Loopback ports that the workerd processes under this one listen on (/proc: their sockets' inodes). */
function workerdListeningPorts(): number[] {
  const inodes = new Set<string>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (!readFileSync(`/proc/${entry}/comm`, "utf8").includes("workerd")) continue;
      let p = Number(readFileSync(`/proc/${entry}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
      while (p > 1 && p !== process.pid) p = Number(readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
      if (p !== process.pid) continue;
      for (const fd of readdirSync(`/proc/${entry}/fd`)) {
        const link = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${entry}/fd/${fd}`));
        if (link) inodes.add(link[1]!);
      }
    } catch {
      // a process gone meanwhile
    }
  }
  const ports: number[] = [];
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[3] === "0A" && inodes.has(f[9]!)) ports.push(parseInt(f[1]!.split(":")[1]!, 16));
  }
  return ports;
}

/** Calls DevTools protocol methods in order on the Worker's target of workerd's own inspector; returns the last result. */
async function inspectorCall(methods: string[], timeoutMs: number): Promise<unknown> {
  let target: { webSocketDebuggerUrl?: string } | undefined;
  for (const port of workerdListeningPorts()) {
    const list = await fetch(`http://127.0.0.1:${port}/json/list`)
      .then((r) => (r.ok ? r.json() : null))
      .catch(() => null);
    if (Array.isArray(list)) target = list.find((t: { id?: string }) => t.id === "core:user:pc2-edge-test");
    if (target) break;
  }
  if (!target?.webSocketDebuggerUrl) throw new Error("workerd's inspector lists no target core:user:pc2-edge-test");
  const url = target.webSocketDebuggerUrl;
  const ws = new WebSocket(url);
  try {
    await withTimeout(new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error(`inspector ${url}: connection failed`));
    }), timeoutMs, () => "connecting to workerd's inspector");
    let last: unknown;
    for (const [i, method] of methods.entries()) {
      last = await withTimeout(new Promise((resolve, reject) => {
        ws.onmessage = (event) => {
          const msg = JSON.parse(String(event.data)) as { id?: number; result?: unknown; error?: { message: string } };
          if (msg.id !== i + 1) return;
          if (msg.error) reject(new Error(`${method}: ${msg.error.message}`));
          else resolve(msg.result);
        };
        ws.send(JSON.stringify({ id: i + 1, method }));
      }), timeoutMs, () => `inspector ${method}`);
    }
    return last;
  } finally {
    ws.close();
  }
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
export async function startWorker(
  entry: string,
  assetsDir: string,
  timeoutMs = 30_000,
  /** inspect: workerd's inspector on (heapUsage); bindings: the Worker's plain-text variables (wrangler.toml [vars]). */
  options: { inspect?: boolean; bindings?: Record<string, string> } = {},
): Promise<RunningWorker> {
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
    const inspectorPort = options.inspect ? freePort() : undefined;
    mf = new Miniflare(
      convertV4MiniflareOptions({
        ...(inspectorPort === undefined ? {} : { inspectorPort }),
        ...(options.bindings ? { bindings: options.bindings } : {}),
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
      heapUsage: async () => {
        if (inspectorPort === undefined) throw new Error("startWorker: heapUsage needs { inspect: true }");
        return (await inspectorCall(["Runtime.getHeapUsage"], timeoutMs)) as HeapUsage;
      },
      stop,
    };
  } catch (error) {
    await stop();
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`${message}\n--- log ---\n${logs()}`);
  }
}

export { withTimeout };
