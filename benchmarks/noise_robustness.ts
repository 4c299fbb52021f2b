/**
 * The paper's comparison at this machine's scale: test rsum of plain SGRAF trained on the noisy
 * pairs (vanilla, the same total epochs as warmup + co-training), of PC2 as the official code
 * behaves (--recovery off --select official --po_bank_index subset), and of PC2 with this
 * project's defaults (collapse recovery), on the embedded dataset at several noise rates and seeds.
 *
 *   bun benchmarks/noise_robustness.ts [--noise 0,0.2,0.4,0.6] [--seeds 0,1,2] [--out .cache/noise-robustness] [--jobs 1]
 *
 * Each (noise, seed) runs: the vanilla baseline; a warmup shared by both PC2 variants
 * (`--num_epochs 0`, its checkpoint then loaded with `--model_path`, which starts co-training
 * exactly as an uninterrupted run would); and the two co-trainings. Every run is a child process
 * of `bun run train` with the embedded preset. Prints one line per run and the table (mean ± sd
 * over seeds, the loss split's AUC after warmup, collapses detected, wall time), and writes it to
 * `<out>/table.md`. `--jobs N` runs N (noise, seed) cells at once; a finished run leaves `run.json`
 * in its folder and is not run again, so an interrupted grid continues where it stopped.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { SYNTHETIC_PRESET } from "../trainer/config";
import { OUTPUT_FILES } from "../trainer/train";
import { alarmCount, cachedTrainRun } from "./support/train_run";
import { loadAverage } from "./support/stats";

const { values } = parseArgs({
  options: {
    noise: { type: "string", default: "0,0.2,0.4,0.6" },
    seeds: { type: "string", default: "0,1,2" },
    out: { type: "string", default: ".cache/noise-robustness" },
    jobs: { type: "string", default: "1" },
  },
  strict: true,
});
const noises = values.noise!.split(",").map(Number);
const seeds = values.seeds!.split(",").map(Number);
const root = resolve(values.out!);
mkdirSync(root, { recursive: true });

const WARMUP = Number(SYNTHETIC_PRESET.warmup_epoch);
const EPOCHS = Number(SYNTHETIC_PRESET.num_epochs);

interface RunResult {
  rsum: number | null;
  seconds: number;
  collapses: number;
  /** AUC of the per-sample loss against the known noise at the first split, per net. */
  auc: number[];
}

async function run(name: string, flags: Record<string, string>): Promise<RunResult> {
  const argv = Object.entries(flags).flatMap(([k, v]) => [`--${k}`, v]);
  const { summary: r, cached } = await cachedTrainRun(join(root, name), argv, ({ results, records, seconds }) => ({
    rsum: results.rsum,
    seconds,
    collapses: alarmCount(records, "collapsed_net"),
    auc: records.filter((x) => x.type === "split" && x.epoch === 0 && x.by === "loss").map((x) => (x.type === "split" ? (x.auc ?? Number.NaN) : Number.NaN)),
  }));
  if (!cached) console.log(`${name}: test rsum ${r.rsum?.toFixed(1) ?? "n/a"}, collapses ${r.collapses}, first-split AUC ${r.auc.map((a) => a.toFixed(3)).join("/") || "–"}, ${r.seconds.toFixed(0)} s`);
  return r;
}

const VARIANTS = ["vanilla", "PC2 official", "PC2 + recovery"] as const;
const cells = new Map<string, RunResult[]>();
const add = (noise: number, variant: string, r: RunResult) => cells.set(`${noise}/${variant}`, [...(cells.get(`${noise}/${variant}`) ?? []), r]);

async function cell(noise: number, seed: number): Promise<void> {
  const base = { noise_ratio: String(noise), seed: String(seed) };
  const vanilla = await run(`vanilla-${noise}-${seed}`, { ...base, num_epochs: "0", warmup_epoch: String(WARMUP + EPOCHS) });
  const warm = await run(`warmup-${noise}-${seed}`, { ...base, num_epochs: "0" });
  const ckpt = join(root, `warmup-${noise}-${seed}`, OUTPUT_FILES.warmup(WARMUP - 1));
  if (!existsSync(ckpt)) throw new Error(`no warmup checkpoint at ${ckpt}`);
  const official = await run(`official-${noise}-${seed}`, { ...base, model_path: ckpt, recovery: "off", select: "official", po_bank_index: "subset" });
  const recovery = await run(`recovery-${noise}-${seed}`, { ...base, model_path: ckpt });
  add(noise, "vanilla", vanilla);
  // The co-training runs' time includes the shared warmup once each, as a whole run would.
  add(noise, "PC2 official", { ...official, seconds: official.seconds + warm.seconds });
  add(noise, "PC2 + recovery", { ...recovery, seconds: recovery.seconds + warm.seconds });
}

const queue = noises.flatMap((noise) => seeds.map((seed) => [noise, seed] as const));
await Promise.all(
  Array.from({ length: Math.max(1, Number(values.jobs)) }, async () => {
    for (let next = queue.shift(); next; next = queue.shift()) await cell(...next);
  }),
);

const stat = (xs: number[]) => {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1)) : 0;
  return `${m.toFixed(1)} ± ${sd.toFixed(1)}`;
};
const lines = [
  `| noise | variant | test rsum (mean ± sd, ${seeds.length} seeds) | loss-split AUC after warmup (A / B) | collapses | wall time per run |`,
  "|---|---|---|---|---|---|",
];
for (const noise of noises) {
  for (const variant of VARIANTS) {
    const rs = cells.get(`${noise}/${variant}`) ?? [];
    const aucs = rs.flatMap((r) => r.auc).filter(Number.isFinite);
    const aucText = variant === "vanilla" || aucs.length === 0 ? "–" : stat(aucs.map((a) => a * 100)).replace(/([\d.]+) ± ([\d.]+)/, (_, m, s) => `${(Number(m) / 100).toFixed(3)} ± ${(Number(s) / 100).toFixed(3)}`);
    lines.push(`| ${noise} | ${variant} | ${stat(rs.map((r) => r.rsum ?? Number.NaN))} | ${aucText} | ${rs.reduce((a, r) => a + r.collapses, 0)} | ${stat(rs.map((r) => r.seconds))} s |`);
  }
}
const table = lines.join("\n");
console.log(`\n${table}`);
writeFileSync(join(root, "table.md"), `${table}\n\n(${values.jobs} run(s) at a time; load average at the end ${loadAverage()})\n`);
