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
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { SYNTHETIC_PRESET } from "../trainer/config";
import { type MetricsRecord, parseMetricsJsonl } from "../trainer/metrics";
import { OUTPUT_FILES } from "../trainer/train";
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

const TRAIN = resolve(import.meta.dir, "../trainer/cli/train.ts");
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
  const out = join(root, name);
  const done = join(out, "run.json");
  if (existsSync(done)) return JSON.parse(readFileSync(done, "utf8")) as RunResult;
  rmSync(out, { recursive: true, force: true });
  const argv = Object.entries({ ...flags, output_dir: out }).flatMap(([k, v]) => [`--${k}`, v]);
  const t0 = performance.now();
  const p = Bun.spawn([process.execPath, TRAIN, ...argv], { stdout: "ignore", stderr: "pipe" });
  const stderr = await new Response(p.stderr).text();
  const seconds = (performance.now() - t0) / 1000;
  if ((await p.exited) !== 0) throw new Error(`${name} exited ${p.exitCode}: ${stderr.slice(-2000)}`);
  const results = JSON.parse(readFileSync(join(out, OUTPUT_FILES.results), "utf8")) as { rsum: number | null };
  const records: MetricsRecord[] = parseMetricsJsonl(readFileSync(join(out, OUTPUT_FILES.metrics), "utf8"));
  const collapses = records.filter((r) => r.type === "alarm" && r.kind === "collapsed_net").length;
  const auc = records.filter((r) => r.type === "split" && r.epoch === 0 && r.by === "loss").map((r) => (r.type === "split" ? (r.auc ?? Number.NaN) : Number.NaN));
  const r = { rsum: results.rsum, seconds, collapses, auc };
  console.log(`${name}: test rsum ${r.rsum?.toFixed(1) ?? "n/a"}, collapses ${collapses}, first-split AUC ${auc.map((a) => a.toFixed(3)).join("/") || "–"}, ${seconds.toFixed(0)} s`);
  writeFileSync(done, `${JSON.stringify(r)}\n`);
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
