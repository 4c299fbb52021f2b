/**
 * WebGPU at the paper's dimensions: median SGR and SAF training-step time (warmup mode: forward,
 * backward, clip, Adam), all-pairs evaluation similarity in pairs per second, the peak of GPU
 * memory in use and held by the buffer pool, and the adapter it ran on.
 *
 *   bun benchmarks/gpu.ts                  paper dims: img 2048, embed 1024, word 300, sim 256,
 *                                          batch 128, 36 regions, vocab 10,000 (a real GPU)
 *   bun benchmarks/gpu.ts --small          fixture dims (img 20, embed 16, …, batch 8): checks that
 *                                          it runs, e.g. on SwiftShader (paper dims there take hours)
 *   bun benchmarks/gpu.ts --small --backend wasm   the same on a CPU backend, for comparison
 * Any dimension can be set: --img_dim --embed_size --word_dim --sim_dim --proj_dim --vocab
 * --batch --len (mean caption length) --steps --images --captions.
 *
 * Bundled: `bun build benchmarks/gpu.ts --target bun --outfile out/gpu.js` works; the binaries it
 * loads at run time are not in the bundle and travel beside it:
 * - Dawn's addon: copy node_modules/webgpu/dist/linux-x64.dawn.node to out/dist/ (the bundled
 *   `webgpu` package looks next to the bundle), or set PC2_DAWN_NODE to its path.
 * - For --backend wasm: Bun inlines tfjs-backend-wasm's folder as an absolute path, which holds
 *   only on the machine that built the bundle; elsewhere copy its wasm-out/*.wasm into a folder
 *   and set PC2_TFJS_WASM_DIR to it (native/bmm.wasm, the SIMD matmul, is optional: beside the bundle).
 * SwiftShader is found in chromium's folder as usual (trainer/webgpu.ts).
 */
import { parseArgs } from "node:util";
import { type BackendChoice, initBackend } from "../trainer/backend";
import { describeAdapter, gpuBufferStats, releaseWebGpu, resetPeakBytes } from "../trainer/webgpu";
import * as tf from "../shared/model/tf";
import { REGIONS, sgrafConfig, type SgrafConfig } from "../shared/model/config";
import { ParamStore } from "../shared/model/params";
import { Adam } from "../shared/model/optim";
import { encodeCaptions, encodeImages, similarityMatrix } from "../shared/model/inference";
import { type ModelBatch, trainStep } from "../shared/model/steps";
import { Random } from "../shared/random";
import { loadAverage, median } from "./support/stats";

const PAPER = { img_dim: 2048, embed_size: 1024, word_dim: 300, sim_dim: 256, proj_dim: 128, vocab: 10_000, batch: 128, len: 12, steps: 5, images: 100, captions: 500 };
const SMALL = { img_dim: 20, embed_size: 16, word_dim: 12, sim_dim: 8, proj_dim: 5, vocab: 40, batch: 8, len: 8, steps: 3, images: 5, captions: 10 };

const num = { type: "string" } as const;
const { values } = parseArgs({
  options: {
    backend: { type: "string", default: "webgpu" },
    small: { type: "boolean", default: false },
    img_dim: num, embed_size: num, word_dim: num, sim_dim: num, proj_dim: num, vocab: num, batch: num, len: num, steps: num, images: num, captions: num,
  },
});
const base = values.small ? SMALL : PAPER;
const dims = Object.fromEntries(Object.entries(base).map(([k, d]) => [k, values[k as keyof typeof values] !== undefined ? Number(values[k as keyof typeof values]) : d])) as typeof PAPER;
for (const [k, v] of Object.entries(dims)) if (!Number.isInteger(v) || v <= 0) throw new Error(`--${k}: a positive integer, got ${values[k as keyof typeof values]}`);

if (process.env.PC2_TFJS_WASM_DIR) {
  const { setWasmPaths } = await import("@tensorflow/tfjs-backend-wasm");
  setWasmPaths(`${process.env.PC2_TFJS_WASM_DIR.replace(/\/$/, "")}/`);
}
const info = await initBackend(values.backend as BackendChoice);
const webgpu = info.name === "webgpu";
console.log(`backend ${info.name}${info.adapter ? `; adapter ${describeAdapter(info.adapter)}` : ""}; load average ${loadAverage()}`);
console.log(`dims: img ${dims.img_dim}, embed ${dims.embed_size}, word ${dims.word_dim}, sim ${dims.sim_dim}, proj ${dims.proj_dim}, vocab ${dims.vocab}, batch ${dims.batch}, ${REGIONS} regions, captions ~${dims.len} words`);

function randomBatch(rng: Random, cfg: SgrafConfig, B: number, meanLen: number): ModelBatch {
  const lengths = Int32Array.from({ length: B }, () => Math.max(3, Math.round(meanLen + 3 * rng.normal())));
  const T = Math.max(...lengths);
  const captions = new Int32Array(B * T);
  for (let b = 0; b < B; b++) for (let t = 0; t < lengths[b]; t++) captions[b * T + t] = 1 + rng.nextInt(cfg.vocab_size - 1);
  return { images: rng.uniformArray(B * REGIONS * cfg.img_dim, 0, 1), captions, lengths };
}

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;

/** GPU memory since the last call: the peak in use and what the pool holds now. */
function gpuMemory(): string {
  if (!webgpu) return `tensors ${mb(tf.memory().numBytes)}`;
  const g = gpuBufferStats();
  resetPeakBytes();
  return `GPU peak in use ${mb(g.peakBytesUsed)}, pool holds ${mb(g.bytesAllocated)} in ${g.used + g.free} buffers`;
}

for (const module_name of ["SGR", "SAF"] as const) {
  const cfg = sgrafConfig({ img_dim: dims.img_dim, embed_size: dims.embed_size, word_dim: dims.word_dim, sim_dim: dims.sim_dim, proj_dim: dims.proj_dim, vocab_size: dims.vocab, module_name });
  const rng = new Random(0);
  const net = { params: ParamStore.init(cfg, rng), optimizer: new Adam({ lr: 2e-4 }) };
  const o = { margin: 0.2, lambdaEn: 10, gradClip: 2, softMargin: "exponential" as const, hardNegative: true, rng };
  if (webgpu) resetPeakBytes();

  // Two unmeasured steps first: shader compilation and the optimizer's first allocation.
  const times: number[] = [];
  for (let i = 0; i < dims.steps + 2; i++) {
    const batch = randomBatch(rng, cfg, dims.batch, dims.len);
    const t0 = performance.now();
    trainStep(net, batch, "warmup", o); // reads the losses back: the step has finished on the device
    if (i >= 2) times.push((performance.now() - t0) / 1000);
  }
  console.log(`${module_name} training step: median ${median(times).toFixed(3)} s (min ${Math.min(...times).toFixed(3)}, max ${Math.max(...times).toFixed(3)}, ${times.length} steps); ${gpuMemory()}`);

  const imgs = encodeImages(net.params, rng.uniformArray(dims.images * REGIONS * cfg.img_dim, 0, 1), dims.images);
  const lengths = Int32Array.from({ length: dims.captions }, () => Math.max(3, dims.len - 4 + rng.nextInt(9)));
  const T = Math.max(...lengths);
  const tokens = new Int32Array(dims.captions * T);
  for (let c = 0; c < dims.captions; c++) for (let t = 0; t < lengths[c]; t++) tokens[c * T + t] = 1 + rng.nextInt(cfg.vocab_size - 1);
  const caps = encodeCaptions(net.params, tokens, lengths);
  similarityMatrix(net.params, imgs, caps); // compiles
  const simTimes: number[] = [];
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    similarityMatrix(net.params, imgs, caps);
    simTimes.push((performance.now() - t0) / 1000);
  }
  const s = median(simTimes);
  console.log(`${module_name} all-pairs similarity: ${dims.images} x ${dims.captions} in ${s.toFixed(3)} s (median of 3): ${Math.round((dims.images * dims.captions) / s)} pairs/s; ${gpuMemory()}`);
  net.params.dispose();
  net.optimizer.reset();
}
if (webgpu) releaseWebGpu();
