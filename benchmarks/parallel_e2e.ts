/**
 * The e2e command line (../shared/reference/e2e/official_summary.json) in one thread
 * (`--parallel off --eval_workers 1`), with evaluation on the pool (the defaults) and with
 * `--parallel on`, back to back on the same machine: wall time, its ratio, peak RSS (VmHWM of the process, workers included: they are
 * threads), and the final test rsum of each. The official code took 500.5 s there (2 threads).
 *   bun benchmarks/parallel_e2e.ts [--epochs N]   (N overrides --num_epochs to shorten the run)
 */
import { readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { epochs: { type: "string" } } });
const root = resolve(import.meta.dir, "..");
const e2e = resolve(root, "../shared/reference/e2e");
const summary = JSON.parse(readFileSync(join(e2e, "official_summary.json"), "utf8")) as { command: string };
const argv = summary.command
  .replace(/^bun run train /, "")
  .replaceAll("../shared/reference/e2e", e2e)
  .split(/\s+/);
const outIndex = argv.indexOf("--output_dir");
if (values.epochs) argv.push("--num_epochs", values.epochs);

function peakRss(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

async function run(label: string, extra: string[]): Promise<{ seconds: number; peak: number; rsum: number | null }> {
  const out = join(tmpdir(), `pc2-parallel-e2e-${label}-${process.pid}`);
  const args = [...argv];
  args[outIndex + 1] = out;
  const t0 = performance.now();
  const proc = Bun.spawn([process.execPath, "trainer/cli/train.ts", ...args, ...extra, "--backend", "wasm"], { cwd: root, stdout: "ignore", stderr: "inherit" });
  let peak = 0;
  const timer = setInterval(() => (peak = Math.max(peak, peakRss(proc.pid))), 250);
  const code = await proc.exited;
  clearInterval(timer);
  const seconds = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`${label}: exit ${code}`);
  const results = JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as { rsum: number | null };
  rmSync(out, { recursive: true, force: true });
  return { seconds, peak, rsum: results.rsum };
}

const one = await run("one-thread", ["--parallel", "off", "--eval_workers", "1"]);
console.log(`one thread: ${one.seconds.toFixed(1)} s, peak RSS ${(one.peak / 2 ** 20).toFixed(0)} MB, test rsum ${one.rsum?.toFixed(1)}`);
for (const [label, flags] of [
  ["evaluation on the pool (the default)", []],
  ["--parallel on", ["--parallel", "on"]],
] as const) {
  const r = await run(label.replace(/\W+/g, "-"), [...flags]);
  console.log(`${label}: ${r.seconds.toFixed(1)} s, peak RSS ${(r.peak / 2 ** 20).toFixed(0)} MB, test rsum ${r.rsum?.toFixed(1)}; ${(r.seconds / one.seconds).toFixed(2)} of one thread, ${(r.seconds / 500.5).toFixed(2)} of the official 500.5 s`);
}
