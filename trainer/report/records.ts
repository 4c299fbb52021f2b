/**
 * Which records the report shows: after a resume the trainer writes some records again, and the
 * last written wins; the best validation is the one whose checkpoint was kept.
 */
import type { MetricsRecord, SplitRecord, ValidationRecord } from "../metrics";

/** The records of each type, in the order written. */
export type RecordsByType = { [T in MetricsRecord["type"]]: Extract<MetricsRecord, { type: T }>[] };

export function recordsByType(records: MetricsRecord[]): RecordsByType {
  const byType: RecordsByType = { step: [], split: [], validation: [], test: [], epoch: [], event: [], alarm: [] };
  // TypeScript cannot tie `r` to `byType[r.type]` through the union; the mapped type makes them agree.
  for (const r of records) (byType[r.type] as MetricsRecord[]).push(r);
  return byType;
}

/** One validation per epoch (the last written wins, as after a resume), warmup first. */
export function latestValidations(vals: ValidationRecord[]): ValidationRecord[] {
  const byEpoch = new Map<string, ValidationRecord>();
  for (const r of vals) byEpoch.set(String(r.epoch), r);
  return [...byEpoch.values()].sort((a, b) => epochOrder(a.epoch) - epochOrder(b.epoch));
}

/**
 * The validation whose checkpoint is kept as `checkpoint_best_validation`: the last one flagged
 * best (the official loop resets the best rsum when pseudo-captioning starts, so a later, lower
 * rsum can be the kept one); the highest rsum when none is flagged.
 */
export function bestValidation(vals: ValidationRecord[]): ValidationRecord | undefined {
  const flagged = vals.filter((r) => r.best);
  if (flagged.length > 0) return flagged[flagged.length - 1];
  let best: ValidationRecord | undefined;
  for (const r of vals) if (Number.isFinite(r.rsum) && (!best || r.rsum > best.rsum)) best = r;
  return best;
}

function epochOrder(e: number | "warmup"): number {
  return e === "warmup" ? -1 : e;
}

/** One split per (epoch, net, by), the last written winning. */
export function latestSplits(splits: SplitRecord[]): SplitRecord[] {
  const byKey = new Map<string, SplitRecord>();
  for (const s of splits) byKey.set(`${s.by}/${s.epoch}/${s.net}`, s);
  return [...byKey.values()];
}
