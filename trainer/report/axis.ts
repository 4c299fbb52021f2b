/**
 * Chart axes as numbers, before any markup: round tick steps (1, 2 or 5 × 10^k), labels that read
 * alike along an axis, epoch axes with the warmup point apart, and the map from an axis to pixels.
 */

export interface Tick {
  value: number;
  label: string;
}

export interface Axis {
  lo: number;
  hi: number;
  ticks: Tick[];
  label: string;
}

export type Scale = (v: number) => number;

export function scale(a: Axis, from: number, to: number): Scale {
  const span = a.hi - a.lo;
  return (v) => from + ((v - a.lo) / span) * (to - from);
}

/** An axis over [lo, hi] widened to round tick steps (1, 2 or 5 × 10^k). */
export function niceAxis(lo: number, hi: number, label: string, opts: { integer?: boolean; from0?: boolean; target?: number } = {}): Axis {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) {
    lo = 0;
    hi = 1;
  }
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo = opts.from0 && lo >= 0 ? lo : lo - pad;
    hi += pad;
  }
  let step = niceStep((hi - lo) / (opts.target ?? 5));
  if (opts.integer) step = Math.max(1, step);
  const a = Math.floor(lo / step + 1e-9) * step;
  const b = Math.ceil(hi / step - 1e-9) * step;
  const ticks: Tick[] = [];
  const count = Math.round((b - a) / step);
  // Thousands as "k" on the whole axis or not at all, so that labels read alike.
  const thousands = Math.max(Math.abs(a), Math.abs(b)) >= 10000 && step >= 100;
  for (let k = 0; k <= count; k++) {
    const value = a + k * step;
    ticks.push({ value, label: thousands && Math.abs(value) >= step / 2 ? `${tickLabel(value / 1000, step / 1000)}k` : tickLabel(value, step) });
  }
  return { lo: a, hi: b, ticks, label };
}

function niceStep(raw: number): number {
  const mag = 10 ** Math.floor(Math.log10(raw));
  const n = raw / mag;
  return (n < 1.5 ? 1 : n < 3 ? 2 : n < 7 ? 5 : 10) * mag;
}

function tickLabel(value: number, step: number): string {
  if (Math.abs(value) < step * 1e-6) return "0";
  const decimals = Math.max(0, Math.min(10, -Math.floor(Math.log10(step) + 1e-9)));
  return value.toFixed(decimals);
}

/** Integer epochs from lo to hi, padded half an epoch; every epoch ticked while few, else round ones; `special` labelled "warmup". */
export function epochAxis(lo: number, hi: number, label: string, special?: number): Axis {
  const count = hi - lo + 1;
  const every = count <= 20 ? 1 : niceStep(count / 10);
  const ticks: Tick[] = [];
  for (let e = lo; e <= hi; e++) {
    if (e === special) ticks.push({ value: e, label: "warmup" });
    else if (e % every === 0) ticks.push({ value: e, label: String(e) });
  }
  return { lo: lo - 0.5, hi: hi + 0.5, ticks, label };
}
