/**
 * The real Bun edge (`edge/bun.ts`) as a child process on an exported model, for the benchmarks
 * that measure it from outside (edge_stall.ts, edge_workers.ts).
 */
import { join, resolve } from "node:path";

const REPO = resolve(import.meta.dir, "../..");

export interface EdgeServer {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/**
 * Exports the committed quick model with the embedded dataset's `split` as gallery (test: 100
 * images, train: 400) into `<dir>/model` (test/edge/browser/export-model.ts, in its own process).
 */
export async function exportEdgeModel(dir: string, split: "test" | "train" | string = "test"): Promise<string> {
  const modelDir = join(dir, "model");
  const proc = Bun.spawn([process.execPath, join(REPO, "test/edge/browser/export-model.ts"), modelDir, split], { cwd: REPO, stdout: "pipe", stderr: "pipe" });
  const [err, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`export-model.ts exited ${code}:\n${err}`);
  return modelDir;
}

/**
 * Spawns a server process (stdout piped, stderr inherited) and reads its stdout until `ready`
 * finds what it announces; the process is killed if it ends first or takes over `timeoutMs`.
 */
export async function spawnUntilReady<T>(cmd: string[], cwd: string, ready: (stdout: string) => T | null, what: string, timeoutMs = 120_000): Promise<{ value: T; pid: number; stop: () => Promise<void> }> {
  const proc = Bun.spawn(cmd, { cwd, stdout: "pipe", stderr: "inherit", stdin: "ignore" });
  const stop = async () => {
    proc.kill();
    await proc.exited;
  };
  const reader = proc.stdout.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const timer = setTimeout(() => proc.kill(), timeoutMs);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`${what} exited (${await proc.exited}) before it was ready:\n${text}`);
      text += decoder.decode(value, { stream: true });
      const found = ready(text);
      if (found !== null) return { value: found, pid: proc.pid, stop };
    }
  } catch (error) {
    await stop();
    throw error;
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
}

/** Starts `bun edge/bun.ts --model <dir> --port 0 [flags]` from `root`; resolves once it listens. */
export async function startEdgeServer(modelDir: string, flags: string[] = [], root = REPO): Promise<EdgeServer> {
  let announced = "";
  const { value: url, pid, stop } = await spawnUntilReady([process.execPath, "edge/bun.ts", "--model", modelDir, "--port", "0", ...flags], root, (text) => {
    announced = text;
    return /on (http:\/\/\S+)/.exec(text)?.[1] ?? null;
  }, "the edge server");
  console.log(announced.trim());
  return { url, pid, stop };
}
