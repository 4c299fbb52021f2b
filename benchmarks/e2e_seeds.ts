/**
 * The e2e command line (../shared/reference/e2e/official_summary.json) over many seeds, as the
 * official code behaves (`--recovery off --select official --po_bank_index subset`) and with this
 * project's defaults (collapse recovery): the distribution of the final test rsum (issue 10).
 *
 *   bun benchmarks/e2e_seeds.ts [--seeds 0-5] [--out .cache/e2e-seeds] [--jobs 1]
 *
 * Each seed runs warmup once (`--num_epochs 0`); both co-trainings start from its checkpoint with
 * `--model_path` (the same seed: exactly what an uninterrupted run would do). A finished run leaves
 * `run.json` in its folder and is not run again. Prints one line per run and a table per variant:
 * median, quartiles, min and max of the test rsum, the runs with a collapse detected, and each seed's
 * figure; `--official-log` figures for comparison are the official code's on the same set (its
 * reference run: test 77.9 for seed 0; docs/fidelity.md has its seeds 0-3: 77.9, 76.0, 589.3, 470.1).
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { OUTPUT_FILES } from "../trainer/train";
import { alarmCount, cachedTrainRun } from "./support/train_run";
import { e2eFlags } from "./cotrain_epoch0";
import { loadAverage, midpointMedian, percentile } from "./support/stats";

const { values } = parseArgs({
  options: {
    seeds: { type: "string", default: "0-5" },
    out: { type: "string", default: ".cache/e2e-seeds" },
    jobs: { type: "string", default: "1" },
  },
  strict: true,
});
const seeds = values.seeds!.split(",").flatMap((p) => {
  const m = /^(\d+)-(\d+)$/.exec(p);
  return m ? Array.from({ length: Number(m[2]) - Number(m[1]) + 1 }, (_, i) => Number(m[1]) + i) : [Number(p)];
});
const root = resolve(values.out!);
mkdirSync(root, { recursive: true });
const EPOCHS = 6;
const WARMUP = 4;

interface RunResult {
  seed: number;
  rsum: number | null;
  seconds: number;
  collapses: number;
  degenerate: number;
  bestEpoch: number | string | null;
}

async function run(name: string, seed: number, extra: string[]): Promise<RunResult> {
  const { summary: r, cached } = await cachedTrainRun(join(root, name), [...e2eFlags(), "--seed", String(seed), ...extra], ({ results, records, seconds }) => ({
    seed,
    rsum: results.rsum,
    seconds,
    collapses: alarmCount(records, "collapsed_net"),
    degenerate: alarmCount(records, "degenerate_split"),
    bestEpoch: results.best_validation_epoch ?? null,
  }));
  if (!cached) console.log(`${name}: test rsum ${r.rsum?.toFixed(1) ?? "n/a"}, collapses ${r.collapses}, degenerate splits ${r.degenerate}, ${r.seconds.toFixed(0)} s`);
  return r;
}

const VARIANTS = {
  "official behaviour": ["--recovery", "off", "--select", "official", "--po_bank_index", "subset"],
  "defaults (recovery)": [],
} as const;
const results: Record<string, RunResult[]> = Object.fromEntries(Object.keys(VARIANTS).map((k) => [k, []]));

async function seedRuns(seed: number): Promise<void> {
  await run(`warmup-${seed}`, seed, ["--num_epochs", "0"]);
  const ckpt = join(root, `warmup-${seed}`, OUTPUT_FILES.warmup(WARMUP - 1));
  if (!existsSync(ckpt)) throw new Error(`no warmup checkpoint at ${ckpt}`);
  for (const [variant, flags] of Object.entries(VARIANTS)) {
    results[variant].push(await run(`${variant.split(" ")[0]}-${seed}`, seed, ["--num_epochs", String(EPOCHS), "--model_path", ckpt, ...flags]));
  }
}

const queue = [...seeds];
await Promise.all(
  Array.from({ length: Math.max(1, Number(values.jobs)) }, async () => {
    for (let s = queue.shift(); s !== undefined; s = queue.shift()) await seedRuns(s);
  }),
);

const f = (x: number) => x.toFixed(1);

const lines = ["| variant | runs | test rsum median | quartiles | min – max | runs with a collapse detected | per seed |", "|---|---|---|---|---|---|---|"];
for (const [variant, rs] of Object.entries(results)) {
  const xs = rs.map((r) => r.rsum ?? Number.NaN);
  const per = [...rs].sort((a, b) => a.seed - b.seed).map((r) => `${r.seed}: ${r.rsum === null ? "n/a" : f(r.rsum)}${r.collapses ? "*" : ""}`);
  lines.push(`| ${variant} | ${rs.length} | ${f(midpointMedian(xs))} | ${f(percentile(xs, 25))} – ${f(percentile(xs, 75))} | ${f(Math.min(...xs))} – ${f(Math.max(...xs))} | ${rs.filter((r) => r.collapses > 0).length} | ${per.join(", ")} |`);
}
const table = `${lines.join("\n")}\n\n(* a collapse detected; ${values.jobs} seed(s) at a time; load average at the end ${loadAverage()})`;
console.log(`\n${table}`);
writeFileSync(join(root, "table.md"), `${table}\n`);
