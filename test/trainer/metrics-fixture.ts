/** Records of a small run, as the trainer writes them to metrics.jsonl: warmup epochs then co-training. */
import { LOSS_TERMS, type MetricsRecord, NETS, SPLIT_BY, type SplitRecord, type StepRecord } from "../../trainer/metrics";

export interface RunOptions {
  warmupEpochs: number;
  trainEpochs: number;
  /** Whether the noisy pairs are known (f30k/coco with injected noise) or not (cc152k, NoW). */
  knownNoise: boolean;
  stepsPerEpoch?: number;
  logStep?: number;
  bins?: number;
  size?: number;
}

/** Deterministic pseudo-noise in [0, 1), so fixtures are the same on every run. */
function wobble(i: number): number {
  const x = Math.sin(i * 12.9898 + 78.233) * 43758.5453;
  return x - Math.floor(x);
}

/** Counts of `n` samples of a bump centred at `mean` over `bins` bins of [0, 1]. */
function bump(n: number, mean: number, width: number, bins: number): number[] {
  const w = Array.from({ length: bins }, (_, i) => Math.exp(-(((i + 0.5) / bins - mean) ** 2) / (2 * width * width)));
  const total = w.reduce((a, b) => a + b, 0);
  const counts = w.map((x) => Math.floor((x / total) * n));
  counts[Math.min(bins - 1, Math.floor(mean * bins))] += n - counts.reduce((a, b) => a + b, 0);
  return counts;
}

export function splitRecord(epoch: number, net: "A" | "B", by: "loss" | "po", knownNoise: boolean, bins = 50, size = 2000): SplitRecord {
  const nNoisy = Math.round(size * 0.2);
  const clean = bump(size - nNoisy, 0.15 + 0.02 * epoch, 0.08, bins);
  const noisy = bump(nNoisy, 0.7 - 0.03 * epoch, 0.12, bins);
  return {
    type: "split",
    epoch,
    net,
    by,
    size,
    selected_noisy: Math.min(size, 400 + 10 * epoch + (net === "B" ? 7 : 0)),
    forced: false,
    precision: knownNoise ? Math.min(0.98, 0.6 + 0.1 * epoch + (by === "po" ? 0.05 : 0)) : null,
    recall: knownNoise ? Math.min(0.97, 0.55 + 0.1 * epoch) : null,
    gmm: { means: [0.16 + 0.02 * epoch, 0.68], variances: [0.0064, 0.0144], weights: [0.8, 0.2] },
    hist: knownNoise ? { bins, clean, noisy } : { bins, clean: clean.map((c, i) => c + noisy[i]), noisy: null },
  };
}

export function runRecords(o: RunOptions): MetricsRecord[] {
  const steps = o.stepsPerEpoch ?? 63;
  const logStep = o.logStep ?? 20;
  const out: MetricsRecord[] = [];
  let t = 1_700_000_000;
  let k = 0;
  const stepRecord = (phase: "warmup" | "train", net: "A" | "B", epoch: number, step: number, progress: number): StepRecord => {
    const r: StepRecord = { type: "step", phase, net, epoch, step, steps, lr: 0.0002, time: (t += 1.3) };
    const decay = Math.exp(-progress / 200);
    for (const [i, term] of LOSS_TERMS.entries()) {
      if (phase === "warmup" && term !== "triplet_loss") continue;
      if (term === "triplet_loss_u" && epoch < 1) continue;
      const sign = term.startsWith("neg_en") ? -1 : 1;
      r[term] = sign * (0.5 + i * 0.2 + decay * 1.5) + 0.05 * wobble(k++);
    }
    return r;
  };
  for (let e = 0; e < o.warmupEpochs; e++) {
    for (const net of NETS) {
      for (let s = 0; s < steps; s++) if (s % logStep === 0 || s === steps - 1) out.push(stepRecord("warmup", net, e, s, e * steps + s));
    }
    out.push({ type: "epoch", phase: "warmup", epoch: e, seconds: 81.2, lr: 0.0002 });
  }
  if (o.warmupEpochs > 0) {
    out.push({ type: "validation", epoch: "warmup", i2t: { r1: 20, r5: 45, r10: 58, medr: 7, meanr: 30.2 }, t2i: { r1: 15, r5: 38, r10: 50, medr: 10, meanr: 41 }, rsum: 226, best: false });
  }
  const rsums = [240.5, 262.25, 255];
  for (let e = 0; e < o.trainEpochs; e++) {
    for (const by of SPLIT_BY) for (const net of NETS) out.push(splitRecord(e, net, by, o.knownNoise, o.bins, o.size));
    for (const net of NETS) {
      for (let s = 0; s < steps; s++) if (s % logStep === 0 || s === steps - 1) out.push(stepRecord("train", net, e, s, (o.warmupEpochs + e) * steps + s));
    }
    out.push({ type: "epoch", phase: "train", epoch: e, seconds: 120.5, lr: 0.0002 });
    const rsum = rsums[e % rsums.length] + Math.floor(e / rsums.length);
    const best = rsum > Math.max(0, ...out.flatMap((r) => (r.type === "validation" && r.epoch !== "warmup" ? [r.rsum] : [])));
    out.push({ type: "validation", epoch: e, i2t: { r1: 30 + e, r5: 55, r10: 66, medr: 4, meanr: 18 }, t2i: { r1: 22, r5: 48, r10: 60, medr: 6, meanr: 25 }, rsum, best });
    if (best) {
      out.push({ type: "test", epoch: e, split: "test", fold5: false, i2t: { r1: 31, r5: 56, r10: 67, medr: 4, meanr: 17 }, t2i: { r1: 23, r5: 49, r10: 61, medr: 6, meanr: 24 }, rsum: rsum + 1 });
    }
  }
  return out;
}
