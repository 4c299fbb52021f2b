/**
 * Seconds per epoch of `bun run train` on the embedded dataset (its default configuration), read
 * back from the run's own metrics.jsonl:
 *
 *   bun benchmarks/epoch.ts [--backend wasm] [--keep] [-- <more train flags>]
 *
 * Runs the trainer CLI in a child process (a fresh output folder under the system temporary
 * folder, deleted afterwards unless --keep) and prints, per phase (warmup, co-training), the median
 * and the range of the epoch durations, the median seconds per logged step, the wall time of the
 * whole run, and what the run learned (validation rsum after warmup and at the end, test rsum at the
 * best validation, split precision/recall). Warmup epochs train both nets on every pair; a
 * co-training epoch also holds the two splits (both nets in eval mode over the training set), two
 * labeled and unlabeled passes and a validation. No asserts: numbers for the README.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { loadAverage, median } from "./support/stats";

const { values, positionals } = parseArgs({
  options: { backend: { type: "string", default: "wasm" }, keep: { type: "boolean", default: false } },
  allowPositionals: true,
});

const out = mkdtempSync(join(tmpdir(), "pc2-epoch-"));
const args = ["trainer/cli/train.ts", "--backend", values.backend!, "--output_dir", out, ...positionals];
console.log(`bun ${args.join(" ")}`);
const load0 = loadAverage();
const t0 = performance.now();
const child = Bun.spawn(["bun", ...args], { cwd: join(import.meta.dir, ".."), stdout: "pipe", stderr: "inherit" });
const log = await new Response(child.stdout).text();
const code = await child.exited;
const wall = (performance.now() - t0) / 1000;
if (code !== 0) {
  console.log(log);
  throw new Error(`the trainer exited with ${code}`);
}

type Rec = Record<string, unknown> & { type: string };
const records: Rec[] = readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "–");

for (const phase of ["warmup", "train"]) {
  const epochs = records.filter((r) => r.type === "epoch" && r.phase === phase).map((r) => r.seconds as number);
  if (!epochs.length) continue;
  // Seconds per step from consecutive logged steps of one net within one epoch.
  const steps = records.filter((r) => r.type === "step" && r.phase === phase);
  const perStep: number[] = [];
  for (let i = 1; i < steps.length; i++) {
    const a = steps[i - 1];
    const b = steps[i];
    if (a.epoch === b.epoch && a.net === b.net && (b.step as number) > (a.step as number)) perStep.push(((b.time as number) - (a.time as number)) / ((b.step as number) - (a.step as number)));
  }
  const stepsPerEpoch = steps.length ? (steps[0].steps as number) : NaN;
  console.log(
    `${phase === "train" ? "co-training" : "warmup"} epoch: median ${f(median(epochs))} s (min ${f(Math.min(...epochs))}, max ${f(Math.max(...epochs))}, ${epochs.length} epochs); ` +
      `${stepsPerEpoch} batches per net; median ${f(median(perStep), 3)} s per step (between logged steps)`,
  );
}
const vals = records.filter((r) => r.type === "validation");
const tests = records.filter((r) => r.type === "test");
const splits = records.filter((r) => r.type === "split" && r.precision !== null);
const warmVal = vals.find((r) => r.epoch === "warmup");
console.log(`validation rsum: after warmup ${f((warmVal?.rsum as number) ?? NaN)}, last ${f((vals.at(-1)?.rsum as number) ?? NaN)}; test rsum at the best validation ${f((tests.at(-1)?.rsum as number) ?? NaN)}`);
for (const s of splits) console.log(`split epoch ${s.epoch} net ${s.net} by ${s.by}: ${s.selected_noisy}/${s.size} predicted noisy, precision ${f(s.precision as number, 3)}, recall ${f(s.recall as number, 3)}`);
console.log(`wall ${f(wall)} s for the whole run; load average before ${load0}, after ${loadAverage()}`);
if (values.keep) console.log(`outputs kept in ${out}`);
else rmSync(out, { recursive: true, force: true });
