/**
 * Micro-benchmark of the float64 evaluation code at the sizes PC2 meets: the GMM split on the
 * 145,000 Flickr30K training captions, and i2t/t2i on a 1000 x 5000 similarity matrix (one
 * test fold). Prints the median of several runs.  Run: bun benchmarks/gmm_metrics.ts
 */
import { fitGmm1D } from "../shared/eval/gmm";
import { i2t, t2i } from "../shared/eval/metrics";
import { Random } from "../shared/random";
import { median } from "./support/stats";

const RUNS = 7;

function time(label: string, fn: () => unknown): void {
  fn(); // warm-up: the first call includes JIT compilation
  const ms: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    fn();
    ms.push(performance.now() - t0);
  }
  console.log(`${label.padEnd(44)} median ${median(ms).toFixed(1)} ms  (min ${Math.min(...ms).toFixed(1)}, max ${Math.max(...ms).toFixed(1)}, ${RUNS} runs)`);
}

// Seeded, so that every run times the same data.
const rng = new Random(42);
const draw = () => rng.nextFloat();
const gauss = () => rng.normal();
// Loss-like: 80% clean near 0.15, 20% noisy near 0.7 (the 0.2 noise ratio), clipped to [0, 1].
const losses = Float64Array.from({ length: 145_000 }, () => Math.min(1, Math.max(0, draw() < 0.8 ? 0.15 + 0.08 * gauss() : 0.7 + 0.12 * gauss())));
time("fitGmm1D, 145,000 samples", () => fitGmm1D(losses));
const fit = fitGmm1D(losses);
time("fitGmm1D + predictProba, 145,000 samples", () => fitGmm1D(losses).predictProba(losses));

const nImages = 1000;
const sims = Float64Array.from({ length: nImages * nImages * 5 }, () => draw());
// A visible diagonal so that ranks are spread as in a real evaluation.
for (let c = 0; c < nImages * 5; c++) sims[Math.floor(c / 5) * nImages * 5 + c] += 0.02;
time("i2t, 1000 x 5000 (float64)", () => i2t(nImages, sims, 5));
time("t2i, 1000 x 5000 (float64)", () => t2i(nImages, sims, 5));
const sims32 = Float32Array.from(sims);
time("i2t + t2i, 1000 x 5000 (float32)", () => {
  i2t(nImages, sims32, 5);
  t2i(nImages, sims32, 5);
});
console.log(`(GMM on the benchmark sample: ${fit.nIter} EM iterations, means ${fit.means.map((m) => m.toFixed(3)).join(", ")})`);
