/**
 * Co-training epoch 0 from one shared warmup state, over many data-order seeds: how often does a
 * net collapse in our trainer, and how often in the official code? (issue 16)
 *
 *   bun benchmarks/cotrain_epoch0.ts --checkpoint <warmup.safetensors> --seeds 1-10 --out <dir> \
 *       [--official <official.json>] [--jobs 1] [--backend wasm] [-- <more train flags>]
 *
 * The warmup state is the official one: run the official code with the e2e command line of
 * `../shared/reference/e2e/official_summary.json` and `--num_epochs 0`, convert its
 * `warmup_model_3.pth.tar` and PO banks with `support/official_to_safetensors.py` and
 * `support/official-checkpoint.ts` (the checkpoint records no seed, so `--seed` decides data order
 * and dropout). For every seed this script runs our trainer (a child process each, reused when its
 * result file exists) with the e2e flags, `--model_path <checkpoint> --num_epochs 1 --recovery off
 * --seed <s>` and records per net: the spread of its dev similarities (std over every pair), its
 * own dev rsum, the loss split's clean share at the start of epoch 0 and the one the trained nets
 * give (the split epoch 1 would start from), and the two-net dev rsum.
 *
 * `--official` is the JSON the official runs produced (same fields per seed; the instrumentation is
 * described in docs/fidelity.md): `{ "runs": [ {seed, rsum, A: {std, rsum}, B: …, splits: [...],
 * next_split: {...}}, ... ], "reference": {A: {std, rsum}, B: …} }`.
 *
 * A net is collapsed by the trainer's rule (shared/eval/diagnostics.ts `collapsed`) against the
 * warmup state's own spread and rsum. Printed: a table, the collapse counts of each code (runs that
 * lost a net; nets lost) and the two-sided Fisher exact p of runs-with-a-collapse, ours vs official.
 *
 * Bisect switches: `--split-from <dir>` trains on the official split of each seed (SPLIT_FIELDS=all,
 * pred or prob); ORDER=reseed keeps our split but draws the training order from an unrelated stream.
 * Every run writes the split it trained on to `<out>/ours_seed<s>/split.json`.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { type NetReference, collapsed, degenerateSplit } from "../shared/eval/diagnostics";
import { fisherExact, mannWhitneyExact, median } from "./support/stats";

export const E2E = resolve(import.meta.dir, "../../shared/reference/e2e");
/** The official e2e command line (official_summary.json) without --seed, --num_epochs and --output_dir. */
export function e2eFlags(e2e = E2E): string[] {
  return [
    "--data_name", "f30k_precomp", "--data_path", e2e, "--vocab_path", join(e2e, "vocab"),
    "--noise_ratio", "0.4", "--noise_file", join(e2e, "noise_0.4.npy"),
    "--img_dim", "48", "--embed_size", "64", "--word_dim", "32", "--sim_dim", "32", "--proj_dim", "16",
    "--batch_size", "32", "--learning_rate", "0.001", "--lr_update", "4", "--warmup_epoch", "4", "--warmup_epoch_2", "4",
    "--lambda_en", "10", "--log_step", "50",
  ];
}

export interface NetResult {
  std: number;
  mean?: number;
  rsum: number;
}
export interface SeedResult {
  seed: number;
  /** The two-net dev rsum after epoch 0. */
  rsum: number;
  A: NetResult;
  B: NetResult;
  /** The splits of the epochs run (clean shares by loss and by PO). */
  splits: Array<{ epoch: number; clean_share_A: number; clean_share_B: number; clean_share_ctt_A?: number; clean_share_ctt_B?: number }>;
  /** The split the trained nets give (the one epoch 1 would start from). */
  next_split: { clean_share_A: number; clean_share_B: number; clean_share_ctt_A?: number; clean_share_ctt_B?: number };
  /** Each net of the warmup state on the dev split. */
  reference?: { A: NetReference; B: NetReference };
}

function parseSeeds(s: string): number[] {
  const out: number[] = [];
  for (const part of s.split(",")) {
    const m = /^(\d+)-(\d+)$/.exec(part.trim());
    if (m) for (let i = Number(m[1]); i <= Number(m[2]); i++) out.push(i);
    else out.push(Number(part));
  }
  return out;
}

/** One seed in this process: train epoch 0 from the checkpoint, then measure. */
async function child(checkpoint: string, seed: number, out: string, backend: string, extra: string[], splitFrom?: string): Promise<void> {
  const { initBackend } = await import("../trainer/backend");
  const { parseTrainArgs } = await import("../trainer/config");
  const { train, splitCriteria, mixtureSplit } = await import("../trainer/train");
  const { Random } = await import("../shared/random");
  await initBackend(backend as "wasm");
  const dir = join(out, `ours_seed${seed}`);
  const config = parseTrainArgs([...e2eFlags(), "--model_path", checkpoint, "--num_epochs", "1", "--recovery", "off", "--seed", String(seed), "--output_dir", dir, ...extra]);
  const lines: string[] = [];
  let nextSplit: SeedResult["next_split"] | null = null;
  let reference: SeedResult["reference"];
  const r = await train(
    config,
    {
      log: (l) => lines.push(l),
      progress: { start() {}, tick() {}, end() {} },
      stopRequested: () => false,
      afterSplit(run) {
        // Bisect: ORDER=reseed draws the training parts' order (and nothing else) from a stream
        // unrelated to the one the split pass used, keeping the split itself.
        if (process.env.ORDER === "reseed") {
          run.cursor.dataRng = new Random(1_000_003 + seed * 7919).state();
          lines.push("training order reseeded after the split");
        }
        // Our split as it came out (benchmarks/split_agreement.ts compares it with the official ones).
        const split = run.split!;
        const arrays = Object.fromEntries((["A", "B"] as const).flatMap((k) => [[`prob_${k}`, [...split[k].prob]], [`pred_${k}`, [...split[k].clean]], [`prob_ctt_${k}`, [...split[k].probCtt]], [`pred_ctt_${k}`, [...split[k].cleanCtt]]]));
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, "split.json"), JSON.stringify(arrays));
        // Bisect: train on the official code's split of this seed (its prob / pred arrays).
        if (!splitFrom) return;
        const z = JSON.parse(readFileSync(join(splitFrom, `split_seed${seed}.json`), "utf8")) as Record<string, number[]>;
        // SPLIT_FIELDS: all (default), pred (the official clean sets, our posteriors) or prob (the reverse).
        const fields = process.env.SPLIT_FIELDS ?? "all";
        const ours = run.split!;
        const net = (k: "A" | "B") => ({
          prob: fields === "pred" ? ours[k].prob : Float32Array.from(z[`prob_${k}`]),
          clean: fields === "prob" ? ours[k].clean : Uint8Array.from(z[`pred_${k}`]),
          probCtt: fields === "pred" ? ours[k].probCtt : Float32Array.from(z[`prob_ctt_${k}`]),
          cleanCtt: fields === "prob" ? ours[k].cleanCtt : Uint8Array.from(z[`pred_ctt_${k}`]),
        });
        run.split = { A: net("A"), B: net("B") };
        lines.push(`split replaced by the official one (${splitFrom}, fields ${fields})`);
      },
      async finish(run, data) {
        reference = run.reference ?? undefined;
        const { losses, ctt } = splitCriteria(run, data, new Random(12345), () => {});
        const share = (v: Float64Array) => {
          const { split } = mixtureSplit(v, run.config.p_threshold);
          return split.clean.reduce((a, b) => a + b, 0) / split.clean.length;
        };
        nextSplit = { clean_share_A: share(losses.A), clean_share_B: share(losses.B), clean_share_ctt_A: share(ctt.A), clean_share_ctt_B: share(ctt.B) };
      },
    },
    { cacheDir: join(out, ".cache") },
  );
  writeFileSync(join(dir, "log.txt"), `${lines.join("\n")}\n`);
  const v = r.lastValidation!;
  const recs = readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const splitShare = (net: string, by: string) => {
    const s = recs.find((x) => x.type === "split" && x.epoch === 0 && x.net === net && x.by === by);
    return (s.size - s.selected_noisy) / s.size;
  };
  const result: SeedResult = {
    seed,
    rsum: v.rsum,
    A: { std: v.spreads![0].std, mean: v.spreads![0].mean, rsum: v.spreads![0].rsum! },
    B: { std: v.spreads![1].std, mean: v.spreads![1].mean, rsum: v.spreads![1].rsum! },
    splits: [{ epoch: 0, clean_share_A: splitShare("A", "loss"), clean_share_B: splitShare("B", "loss"), clean_share_ctt_A: splitShare("A", "po"), clean_share_ctt_B: splitShare("B", "po") }],
    next_split: nextSplit!,
    reference,
  };
  writeFileSync(join(out, `ours_seed${seed}.json`), `${JSON.stringify(result, null, 1)}\n`);
}

/**
 * The two readings of "a net was lost in epoch 0":
 * - `split`: the symptom: the loss split the trained net gives (the one epoch 1 starts
 *   from) is degenerate, under 1% of the pairs clean (the hidden set's 2,496 of 2,500 noisy);
 * - `rule`: the trainer's collapse rule (spread under 1/100 of the warmup state's, or under 1/10 with
 *   the net's own rsum under half of the warmup state's).
 */
export type Criterion = "split" | "rule";
export function netLost(r: SeedResult, k: "A" | "B", reference: { A: NetReference; B: NetReference }, by: Criterion): boolean {
  if (by === "split") return degenerateSplit(r.next_split[`clean_share_${k}`]);
  return collapsed({ mean: 0, std: r[k].std, meanPos: 0, stdPos: 0, rsum: r[k].rsum }, reference[k]);
}

/** Runs that lost a net, and nets lost. */
export function collapseCounts(runs: SeedResult[], reference: { A: NetReference; B: NetReference }, by: Criterion = "split") {
  let runsLost = 0;
  let netsLost = 0;
  const flags = runs.map((r) => {
    const lost = (["A", "B"] as const).filter((k) => netLost(r, k, reference, by));
    if (lost.length) runsLost++;
    netsLost += lost.length;
    return lost;
  });
  return { runsLost, netsLost, flags };
}

function table(name: string, runs: SeedResult[], flags: string[][], rule: string[][]): string[] {
  const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "–");
  const rows = [`| ${name} seed | A std | A rsum | B std | B rsum | clean share at epoch 0 (A / B) | after epoch 0 (A / B) | dev rsum | degenerate next split | collapse rule |`, "|---|---|---|---|---|---|---|---|---|---|"];
  runs.forEach((r, i) => {
    const s0 = r.splits[0];
    rows.push(`| ${r.seed} | ${r.A.std.toExponential(2)} | ${f(r.A.rsum)} | ${r.B.std.toExponential(2)} | ${f(r.B.rsum)} | ${f(s0.clean_share_A, 3)} / ${f(s0.clean_share_B, 3)} | ${f(r.next_split.clean_share_A, 3)} / ${f(r.next_split.clean_share_B, 3)} | ${f(r.rsum)} | ${flags[i].join(", ") || "–"} | ${rule[i].join(", ") || "–"} |`);
  });
  return rows;
}

export function report(ours: SeedResult[], official: SeedResult[] | null, reference: { A: NetReference; B: NetReference }): string {
  const out: string[] = [];
  out.push(`warmup state on the dev split: A std ${reference.A.std.toExponential(3)} rsum ${reference.A.rsum.toFixed(1)}; B std ${reference.B.std.toExponential(3)} rsum ${reference.B.rsum.toFixed(1)}`);
  const codes: Array<[string, SeedResult[]]> = [["ours", ours], ...(official ? ([["official", official]] as Array<[string, SeedResult[]]>) : [])];
  for (const [name, runs] of codes) out.push("", ...table(name, runs, collapseCounts(runs, reference, "split").flags, collapseCounts(runs, reference, "rule").flags));
  for (const by of ["split", "rule"] as const) {
    out.push("", by === "split" ? "lost = degenerate loss split after epoch 0 (under 1% clean):" : "lost = the trainer's collapse rule:");
    const counts = codes.map(([name, runs]) => [name, runs, collapseCounts(runs, reference, by)] as const);
    for (const [name, runs, c] of counts) out.push(`  ${name}: ${c.runsLost} of ${runs.length} runs lost a net (${c.netsLost} nets of ${2 * runs.length})`);
    if (counts.length === 2) {
      const [[, ro, o], [, rf, f]] = counts;
      const p = fisherExact([
        [o.runsLost, ro.length - o.runsLost],
        [f.runsLost, rf.length - f.runsLost],
      ]);
      const pNets = fisherExact([
        [o.netsLost, 2 * ro.length - o.netsLost],
        [f.netsLost, 2 * rf.length - f.netsLost],
      ]);
      out.push(`  two-sided Fisher exact p, ours vs official: runs ${p.toPrecision(3)}, nets ${pNets.toPrecision(3)}`);
    }
  }
  if (official && official.length && ours.length) {
    // The continuous measures carry more than the counts: same distribution in both codes?
    out.push("", "per-seed measures, ours vs official (medians; two-sided exact Mann-Whitney p):");
    const measures: Array<[string, (r: SeedResult) => number]> = [
      ["A spread (std)", (r) => r.A.std],
      ["B spread (std)", (r) => r.B.std],
      ["A own rsum", (r) => r.A.rsum],
      ["B own rsum", (r) => r.B.rsum],
      ["A clean share after epoch 0", (r) => r.next_split.clean_share_A],
      ["B clean share after epoch 0", (r) => r.next_split.clean_share_B],
      ["two-net dev rsum", (r) => r.rsum],
    ];
    for (const [name, f] of measures) {
      const a = ours.map(f);
      const b = official.map(f);
      out.push(`  ${name}: ${median(a).toPrecision(3)} vs ${median(b).toPrecision(3)}, p ${mannWhitneyExact(a, b).toPrecision(2)}`);
    }
  }
  return out.join("\n");
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    options: {
      checkpoint: { type: "string" },
      seeds: { type: "string", default: "1-10" },
      out: { type: "string" },
      official: { type: "string" },
      jobs: { type: "string", default: "1" },
      backend: { type: "string", default: "wasm" },
      child: { type: "string" },
      /** Bisect: a folder of the official runs' epoch-0 splits (split_seed<s>.json) to train on instead of ours. */
      "split-from": { type: "string" },
    },
    allowPositionals: true,
  });
  if (!values.out) {
    console.error("usage: bun benchmarks/cotrain_epoch0.ts --checkpoint <warmup.safetensors> --out <dir> [--seeds 1-10] [--official <json>] [--jobs 1] [-- train flags]");
    process.exit(2);
  }
  const out = resolve(values.out);
  mkdirSync(out, { recursive: true });
  if (values.child !== undefined) {
    await child(resolve(values.checkpoint!), Number(values.child), out, values.backend!, positionals, values["split-from"] && resolve(values["split-from"]));
    process.exit(0);
  }
  const seeds = parseSeeds(values.seeds!);
  if (values.checkpoint) {
    const todo = seeds.filter((s) => !existsSync(join(out, `ours_seed${s}.json`)));
    const jobs = Math.max(1, Number(values.jobs));
    const runOne = async (s: number) => {
      const t0 = performance.now();
      const p = Bun.spawn(["nice", "bun", import.meta.path, "--child", String(s), "--checkpoint", values.checkpoint!, "--out", out, "--backend", values.backend!, ...(values["split-from"] ? ["--split-from", values["split-from"]] : []), "--", ...positionals], { stdout: "inherit", stderr: "inherit" });
      if ((await p.exited) !== 0) throw new Error(`seed ${s}: child exited with ${p.exitCode}`);
      console.error(`seed ${s} done in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    };
    const queue = [...todo];
    await Promise.all(Array.from({ length: Math.min(jobs, queue.length) }, async () => {
      while (queue.length) await runOne(queue.shift()!);
    }));
  }
  const ours = seeds.filter((s) => existsSync(join(out, `ours_seed${s}.json`))).map((s) => JSON.parse(readFileSync(join(out, `ours_seed${s}.json`), "utf8")) as SeedResult);
  const officialJson = values.official ? (JSON.parse(readFileSync(values.official, "utf8")) as { runs: SeedResult[]; reference?: { A: NetReference; B: NetReference } }) : null;
  const reference = ours.find((r) => r.reference)?.reference ?? officialJson?.reference;
  if (!reference) throw new Error("no warmup reference: neither our runs nor the official JSON hold one");
  console.log(report(ours, officialJson ? officialJson.runs.filter((r) => seeds.includes(r.seed)) : null, reference));
}
