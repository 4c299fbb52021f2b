/**
 * The fitted two-component mixture as the histograms draw it: its density, kept finite when a
 * component has collapsed, and where the clean component's posterior crosses the split threshold.
 * The fit itself is `shared/eval/gmm.ts`; the split record carries its parameters.
 */

/** Smallest variance drawn: a collapsed component is shown as a spike, not a division by zero. */
const MIN_VARIANCE = 1e-6;

export function gauss(x: number, mean: number, variance: number): number {
  const v = Math.max(variance, MIN_VARIANCE);
  return Math.exp(-((x - mean) ** 2) / (2 * v)) / Math.sqrt(2 * Math.PI * v);
}

/** Where on [0, 1] the clean component's posterior crosses the threshold (official `split_prob`'s `prob > p`). */
export function posteriorCrossings(comps: { mean: number; variance: number; weight: number }[], cleanK: number, threshold: number): number[] {
  const STEPS = 1000;
  const out: number[] = [];
  let prev: number | null = null;
  let prevX = 0;
  for (let i = 0; i <= STEPS; i++) {
    const x = i / STEPS;
    const pc = comps[cleanK].weight * gauss(x, comps[cleanK].mean, comps[cleanK].variance);
    const pn = comps[1 - cleanK].weight * gauss(x, comps[1 - cleanK].mean, comps[1 - cleanK].variance);
    const total = pc + pn;
    if (!(total > 0) || !Number.isFinite(total)) {
      prev = null;
      continue;
    }
    const d = pc / total - threshold;
    if (prev !== null && Math.sign(d) !== Math.sign(prev) && d !== 0) {
      out.push(prevX + (x - prevX) * (prev / (prev - d)));
    }
    prev = d;
    prevX = x;
  }
  return out;
}
