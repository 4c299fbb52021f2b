/**
 * Do two codes split the training set alike from one warmup state? (issue 16)
 *
 *   bun benchmarks/split_agreement.ts --a <dir> --b <dir> [--noise <noise.npy>]
 *
 * Each folder holds one epoch-0 split per data order: `split_seed<s>.json` (what
 * support/official_splits.py writes for the official code) or `ours_seed<s>/split.json` (what
 * benchmarks/cotrain_epoch0.ts writes for ours), with `pred_A`, `prob_A`, … arrays over the training
 * pairs. A pair's loss depends on the batch it is scored in, so one split is one draw; over several
 * orders each code gives every pair a clean frequency. Printed per field: the clean share, the share of
 * known-noisy and known-clean pairs kept clean, and the mean per-pair |frequency difference| between the
 * codes next to the same figure between two halves of each code's orders (the order noise): a real
 * difference between the codes would stand above the noise.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { readNpy } from "../shared/formats/npy";

type Split = Record<string, number[]>;

export function loadSplits(dir: string): Split[] {
  const out: Split[] = [];
  for (const f of readdirSync(dir).sort()) {
    const path = /^split_seed\d+\.json$/.test(f) ? join(dir, f) : /^ours_seed\d+$/.test(f) && existsSync(join(dir, f, "split.json")) ? join(dir, f, "split.json") : null;
    if (path) out.push(JSON.parse(readFileSync(path, "utf8")) as Split);
  }
  if (out.length < 2) throw new Error(`${dir}: needs at least two splits (split_seed<s>.json or ours_seed<s>/split.json), found ${out.length}`);
  return out;
}

/** Per-pair mean of `field` over `splits`. */
function frequency(splits: Split[], field: string): Float64Array {
  const n = splits[0][field].length;
  const f = new Float64Array(n);
  for (const s of splits) {
    if (s[field].length !== n) throw new Error(`${field}: splits of ${n} and ${s[field].length} pairs`);
    for (let i = 0; i < n; i++) f[i] += s[field][i] / splits.length;
  }
  return f;
}

function meanAbsDiff(x: Float64Array, y: Float64Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += Math.abs(x[i] - y[i]);
  return s / x.length;
}

function meanOver(x: Float64Array, keep: (i: number) => boolean): number {
  let s = 0;
  let n = 0;
  for (let i = 0; i < x.length; i++) if (keep(i)) (s += x[i]), n++;
  return n ? s / n : Number.NaN;
}

export interface FieldAgreement {
  field: string;
  share: [number, number];
  noisyKept: [number, number] | null;
  cleanKept: [number, number] | null;
  /** Mean per-pair |frequency a − frequency b|. */
  between: number;
  /** The same between two halves of a's orders and of b's, scaled to the full sample sizes. */
  within: [number, number];
}

export function agreement(a: Split[], b: Split[], noisy: Uint8Array | null, fields = ["pred_A", "pred_B", "pred_ctt_A", "pred_ctt_B"]): FieldAgreement[] {
  const half = (s: Split[], f: string) => {
    const h = s.length >> 1;
    // Two halves of h orders each differ by sqrt(2/h)·σ; codes of |a| and |b| orders by sqrt(1/|a| + 1/|b|)·σ.
    const scale = Math.sqrt((1 / a.length + 1 / b.length) / (2 / h));
    return meanAbsDiff(frequency(s.slice(0, h), f), frequency(s.slice(h, 2 * h), f)) * scale;
  };
  return fields.map((field) => {
    const fa = frequency(a, field);
    const fb = frequency(b, field);
    const all = () => true;
    return {
      field,
      share: [meanOver(fa, all), meanOver(fb, all)],
      noisyKept: noisy ? [meanOver(fa, (i) => noisy[i] === 1), meanOver(fb, (i) => noisy[i] === 1)] : null,
      cleanKept: noisy ? [meanOver(fa, (i) => noisy[i] === 0), meanOver(fb, (i) => noisy[i] === 0)] : null,
      between: meanAbsDiff(fa, fb),
      within: [half(a, field), half(b, field)],
    };
  });
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { a: { type: "string" }, b: { type: "string" }, noise: { type: "string" }, "per-image": { type: "string", default: "5" } } });
  if (!values.a || !values.b) {
    console.error("usage: bun benchmarks/split_agreement.ts --a <dir> --b <dir> [--noise <noise.npy>]");
    process.exit(2);
  }
  const a = loadSplits(values.a);
  const b = loadSplits(values.b);
  let noisy: Uint8Array | null = null;
  if (values.noise) {
    const t2i = readNpy(new Uint8Array(readFileSync(values.noise)), values.noise);
    const per = Number(values["per-image"]);
    noisy = Uint8Array.from({ length: t2i.data.length }, (_, i) => (Number(t2i.data[i]) !== Math.floor(i / per) ? 1 : 0));
  }
  console.log(`${a.length} splits of a (${values.a}), ${b.length} of b (${values.b})\n`);
  console.log("| field | clean share a / b | noisy pairs kept clean a / b | clean pairs kept clean a / b | per-pair frequency difference a–b | the same within a / within b |");
  console.log("|---|---|---|---|---|---|");
  const p = (x: [number, number] | null) => (x ? `${x[0].toFixed(4)} / ${x[1].toFixed(4)}` : "–");
  for (const r of agreement(a, b, noisy)) console.log(`| ${r.field} | ${p(r.share)} | ${p(r.noisyKept)} | ${p(r.cleanKept)} | ${r.between.toFixed(4)} | ${p(r.within)} |`);
}
