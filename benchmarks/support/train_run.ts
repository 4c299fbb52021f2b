/**
 * One `bun run train` as a child process for the benchmarks that run many (noise_robustness.ts,
 * e2e_seeds.ts): its outputs read back and summarised, and the summary kept in `<out>/run.json`
 * so that a finished run is not run again when an interrupted study is restarted.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { type MetricsRecord, parseMetricsJsonl } from "../../trainer/metrics";
import { OUTPUT_FILES } from "../../trainer/train";

const TRAIN = resolve(import.meta.dir, "../../trainer/cli/train.ts");

/** What a finished run left: results.json, metrics.jsonl, and its wall time. */
export interface FinishedRun {
  results: { rsum: number | null; best_validation_epoch?: number | string | null };
  records: MetricsRecord[];
  seconds: number;
}

/** Alarms of one kind a run raised. */
export function alarmCount(records: MetricsRecord[], kind: string): number {
  return records.filter((r) => r.type === "alarm" && r.kind === kind).length;
}

/**
 * Trains with `argv` into `out` (emptied first) unless `out/run.json` holds an earlier summary;
 * returns the summary `summarize` makes of the finished run, and whether it was cached.
 */
export async function cachedTrainRun<T>(out: string, argv: string[], summarize: (run: FinishedRun) => T): Promise<{ summary: T; cached: boolean }> {
  const done = join(out, "run.json");
  if (existsSync(done)) return { summary: JSON.parse(readFileSync(done, "utf8")) as T, cached: true };
  rmSync(out, { recursive: true, force: true });
  const t0 = performance.now();
  const p = Bun.spawn([process.execPath, TRAIN, ...argv, "--output_dir", out], { stdout: "ignore", stderr: "pipe" });
  const stderr = await new Response(p.stderr).text();
  const seconds = (performance.now() - t0) / 1000;
  if ((await p.exited) !== 0) throw new Error(`${out}: bun run train exited ${p.exitCode}: ${stderr.slice(-2000)}`);
  const results = JSON.parse(readFileSync(join(out, OUTPUT_FILES.results), "utf8")) as FinishedRun["results"];
  const records = parseMetricsJsonl(readFileSync(join(out, OUTPUT_FILES.metrics), "utf8"));
  const summary = summarize({ results, records, seconds });
  writeFileSync(done, `${JSON.stringify(summary)}\n`);
  return { summary, cached: false };
}
