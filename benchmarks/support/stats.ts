/** Small helpers shared by the benchmark scripts. */
import { loadavg } from "node:os";

/** The middle value (the upper one of the two middles for an even count); NaN when empty. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
}

/** The median with the midpoint of the two middles for an even count (a study's summary; `median` keeps the upper one). */
export function midpointMedian(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
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

/** log(n!) by summing logs (exact enough for the small counts of a 2 × 2 table). */
function logFactorial(n: number): number {
  let s = 0;
  for (let i = 2; i <= n; i++) s += Math.log(i);
  return s;
}

/**
 * Two-sided Fisher exact test of a 2 × 2 table [[a, b], [c, d]] (rows: groups, columns: outcome):
 * the probability, under independence with the margins fixed, of a table at most as likely as the
 * observed one (scipy.stats.fisher_exact's two-sided p, with its relative tolerance 1e-7 on ties).
 */
export function fisherExact(table: [[number, number], [number, number]]): number {
  const [[a, b], [c, d]] = table;
  for (const x of [a, b, c, d]) if (!Number.isInteger(x) || x < 0) throw new Error(`fisherExact: counts must be non-negative integers, got ${JSON.stringify(table)}`);
  const r1 = a + b;
  const r2 = c + d;
  const c1 = a + c;
  const n = r1 + r2;
  if (n === 0) return 1;
  const base = logFactorial(r1) + logFactorial(r2) + logFactorial(c1) + logFactorial(n - c1) - logFactorial(n);
  const logP = (x: number) => base - logFactorial(x) - logFactorial(r1 - x) - logFactorial(c1 - x) - logFactorial(r2 - c1 + x);
  const observed = logP(a);
  let p = 0;
  for (let x = Math.max(0, c1 - r2); x <= Math.min(r1, c1); x++) {
    const lp = logP(x);
    if (lp <= observed + 1e-7) p += Math.exp(lp);
  }
  return Math.min(1, p);
}

/**
 * Two-sided exact Mann-Whitney U test for two small samples without ties (scipy.stats.mannwhitneyu
 * with method="exact"): p = min(1, 2 · P(U ≤ min(U, n·m − U))) under the null, from the exact
 * distribution of U (counts of rank arrangements, by the usual recursion).
 */
export function mannWhitneyExact(x: number[], y: number[]): number {
  const n = x.length;
  const m = y.length;
  if (!n || !m) return Number.NaN;
  let u = 0;
  for (const a of x) for (const b of y) u += a > b ? 1 : a === b ? 0.5 : 0;
  // c[i][j][k]: arrangements of i x's and j y's with U = k.
  const max = n * m;
  let prev: number[][] = Array.from({ length: m + 1 }, () => new Array(max + 1).fill(0));
  for (let j = 0; j <= m; j++) prev[j][0] = 1;
  for (let i = 1; i <= n; i++) {
    const cur: number[][] = Array.from({ length: m + 1 }, () => new Array(max + 1).fill(0));
    cur[0][0] = 1;
    for (let j = 1; j <= m; j++) for (let k = 0; k <= max; k++) cur[j][k] = (k >= j ? prev[j][k - j] : 0) + cur[j - 1][k];
    prev = cur;
  }
  const counts = prev[m];
  const total = counts.reduce((a, b) => a + b, 0);
  const low = Math.min(u, max - u);
  let tail = 0;
  for (let k = 0; k <= Math.floor(low); k++) tail += counts[k];
  return Math.min(1, (2 * tail) / total);
}
