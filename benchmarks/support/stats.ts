/** Small helpers shared by the benchmark scripts. */
import { loadavg } from "node:os";

/** The middle value (the upper one of the two middles for an even count); NaN when empty. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
}

/** The 1, 5 and 15 minute load averages: other work on the machine inflates every timing. */
export function loadAverage(): string {
  return loadavg().map((x) => x.toFixed(2)).join(", ");
}

/** Nearest-rank percentile (p in [0, 100]); NaN when empty. */
export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] : NaN;
}
