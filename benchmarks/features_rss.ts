/**
 * Resident memory and throughput of FeatureStore over a feature file far larger than a batch.
 *
 *   bun benchmarks/features_rss.ts [--gb 4] [--dim 2048] [--regions 36] [--batch 128]
 *                                  [--dir /tmp] [--modes read,mmap,mmap-drop]
 *
 * Writes a float32 (rows, regions, dim) `.npy` of about --gb GB into a temporary folder (in chunks,
 * never whole in memory), then for each access mode runs a fresh process that gathers shuffled
 * batches of --batch rows over every row once (an epoch), and prints rows/s, MB/s, the peak of
 * sampled `process.memoryUsage().rss` and the kernel's VmHWM. The folder is deleted afterwards.
 *
 * Modes: "read" (the trainer's positioned reads into the batch), "mmap" (Bun.mmap windows kept for
 * the epoch, support/mmap-source.ts), "mmap-drop" (the mapping is dropped and the collector forced
 * every --drop-every batches).
 * The file was just written, so it sits in the page cache: these are warm-cache figures.
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { featuresFromSource, fileSource } from "../trainer/data/features";
import { encodeNpyHeader } from "../shared/formats/npy";
import { Random } from "../shared/random";
import { mmapSource } from "./support/mmap-source";

interface Args {
  gb: number;
  dim: number;
  regions: number;
  batch: number;
  dir: string;
  modes: string[];
  dropEvery: number;
  child?: string;
  file?: string;
}

function readArgs(argv: string[]): Args {
  const { values } = parseArgs({
    args: argv,
    options: {
      gb: { type: "string", default: "4" },
      dim: { type: "string", default: "2048" },
      regions: { type: "string", default: "36" },
      batch: { type: "string", default: "128" },
      dir: { type: "string", default: tmpdir() },
      modes: { type: "string", default: "read,mmap,mmap-drop" },
      "drop-every": { type: "string", default: "8" },
      // Passed by main to the process that measures one mode.
      child: { type: "string" },
      file: { type: "string" },
    },
    strict: true,
  });
  return {
    gb: Number(values.gb),
    dim: Number(values.dim),
    regions: Number(values.regions),
    batch: Number(values.batch),
    dir: values.dir!,
    modes: values.modes!.split(","),
    dropEvery: Number(values["drop-every"]),
    child: values.child,
    file: values.file,
  };
}

/** Row r holds r in its first element, so that the benchmark can check what it gathered. */
function writeFile(path: string, rows: number, regions: number, dim: number): void {
  const rowLen = regions * dim;
  const fd = openSync(path, "w");
  try {
    writeSync(fd, encodeNpyHeader("float32", [rows, regions, dim]));
    const rowsPerChunk = Math.max(1, Math.floor((64 << 20) / (rowLen * 4)));
    const chunk = new Float32Array(rowsPerChunk * rowLen);
    for (let i = 0; i < chunk.length; i++) chunk[i] = (i % 97) * 0.01;
    for (let r = 0; r < rows; r += rowsPerChunk) {
      const n = Math.min(rowsPerChunk, rows - r);
      for (let k = 0; k < n; k++) chunk[k * rowLen] = r + k;
      writeSync(fd, new Uint8Array(chunk.buffer, 0, n * rowLen * 4));
    }
  } finally {
    closeSync(fd);
  }
}

function vmStatus(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of readFileSync("/proc/self/status", "utf8").split("\n")) {
    const m = /^(VmHWM|VmRSS|RssAnon|RssFile):\s+(\d+) kB/.exec(line);
    if (m) out[m[1]] = Number(m[2]) * 1024;
  }
  return out;
}

/** One epoch of shuffled batches in this process; prints one JSON line. */
async function runChild(a: Args): Promise<void> {
  const mode = a.child!;
  const file = a.file!;
  // "read" is what openFeatures does; the mapped modes pass the benchmark's own source.
  const open = () => featuresFromSource(mode === "read" ? fileSource(file) : mmapSource(file), file, { regions: a.regions });
  let store = open();
  const rowLen = store.regions * store.dim;
  const order = new Random(0).permutation(store.count);
  const out = new Float32Array(a.batch * rowLen);
  let peakRss = process.memoryUsage().rss;
  const t0 = performance.now();
  let batches = 0;
  for (let b = 0; b < order.length; b += a.batch) {
    const ids = order.subarray(b, Math.min(order.length, b + a.batch));
    store.gather(ids, out);
    for (let k = 0; k < ids.length; k++) {
      if (out[k * rowLen] !== ids[k]) throw new Error(`row ${ids[k]} gathered wrongly (found ${out[k * rowLen]})`);
    }
    batches++;
    if (mode === "mmap-drop" && batches % a.dropEvery === 0) {
      store.close();
      // Bun unmaps in the finalizer of the mapped array: collect, let finalizers run, collect.
      Bun.gc(true);
      await Bun.sleep(0);
      Bun.gc(true);
      store = open();
    }
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }
  const seconds = (performance.now() - t0) / 1000;
  const status = vmStatus();
  store.close();
  const bytes = order.length * rowLen * 4;
  console.log(
    JSON.stringify({
      mode,
      rows: order.length,
      batches,
      seconds,
      rowsPerSecond: order.length / seconds,
      mbPerSecond: bytes / 1e6 / seconds,
      peakRssMB: peakRss / 1e6,
      vmHwmMB: status.VmHWM / 1e6,
      endRssFileMB: status.RssFile / 1e6,
      endRssAnonMB: status.RssAnon / 1e6,
      batchBufferMB: out.byteLength / 1e6,
    }),
  );
}

async function main(): Promise<void> {
  const a = readArgs(process.argv.slice(2));
  if (a.child) return runChild(a);
  const rowLen = a.regions * a.dim;
  const rows = Math.max(a.batch, Math.floor((a.gb * 1e9) / (rowLen * 4)));
  const dir = mkdtempSync(join(a.dir, "pc2-features-rss-"));
  const file = join(dir, "train_ims.npy");
  try {
    const tw = performance.now();
    writeFile(file, rows, a.regions, a.dim);
    const gb = (rows * rowLen * 4) / 1e9;
    console.log(`wrote ${file}: (${rows}, ${a.regions}, ${a.dim}) float32, ${gb.toFixed(2)} GB in ${((performance.now() - tw) / 1000).toFixed(1)} s`);
    console.log(`batch ${a.batch} rows = ${((a.batch * rowLen * 4) / 1e6).toFixed(1)} MB`);
    for (const mode of a.modes) {
      const args = ["--child", mode, "--file", file, "--regions", String(a.regions), "--batch", String(a.batch), "--drop-every", String(a.dropEvery)];
      const proc = Bun.spawnSync([process.execPath, import.meta.path, ...args], { stdout: "pipe", stderr: "pipe" });
      const text = proc.stdout.toString().trim();
      if (proc.exitCode !== 0) {
        console.log(`${mode}: failed (exit ${proc.exitCode}): ${proc.stderr.toString().trim().split("\n").slice(-3).join(" | ")}`);
        continue;
      }
      const r = JSON.parse(text.split("\n").pop()!);
      console.log(
        `${mode.padEnd(9)} ${r.rowsPerSecond.toFixed(0).padStart(7)} rows/s ${r.mbPerSecond.toFixed(0).padStart(6)} MB/s` +
          `  peak RSS ${r.peakRssMB.toFixed(0)} MB  VmHWM ${r.vmHwmMB.toFixed(0)} MB  (end RssFile ${r.endRssFileMB.toFixed(0)} MB, RssAnon ${r.endRssAnonMB.toFixed(0)} MB)`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
