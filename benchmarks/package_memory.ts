/**
 * The memory of a paper-size model loaded for serving (issue 13, "a Worker that fits"): a random
 * paper-size package (img 2048, embed 1024, word 300, sim 256, vocabulary 8,481, uint8 weights, no
 * gallery) written once, then loaded in a fresh process per configuration (all nets or net A
 * alone), reporting the peak RSS of the load, the RSS after it, the wasm heap of the tfjs backend
 * (where the weights live) and the JS objects' heap.
 *
 *   bun benchmarks/package_memory.ts [--dir /tmp/pc2-paper-package]
 * A Worker isolate has 128 MB for its JS heap and its wasm memory together; workerd does not
 * enforce it locally, so this is the figure to compare with it.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { sgrafConfig } from "../shared/model/config";
import { encodeModelPackage } from "../shared/model/package";
import { ParamStore } from "../shared/model/params";
import { Random } from "../shared/random";

const { values: args } = parseArgs({ options: { dir: { type: "string", default: "/tmp/pc2-paper-package" }, child: { type: "string" } } });
const dir = args.dir!;

if (args.child) {
  // One load, in its own process.
  const { initBackend } = await import("../trainer/backend");
  const { fileAssets } = await import("../edge/adapters/bun");
  const { loadPackage } = await import("../shared/retrieval/pc2-engine");
  const tf = await import("../shared/model/tf");
  await initBackend("wasm");
  const nets = args.child === "all" ? undefined : args.child.split(",");
  const t0 = performance.now();
  const pkg = await loadPackage(fileAssets(dir), dir, { nets });
  const seconds = (performance.now() - t0) / 1000;
  Bun.gc(true);
  const backend = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  const status = (key: string) => Number(/\d+/.exec(require("node:fs").readFileSync("/proc/self/status", "utf8").split("\n").find((l: string) => l.startsWith(key)) ?? "0")![0]) / 1024;
  console.log(
    JSON.stringify({
      nets: pkg.netNames,
      seconds,
      // VmHWM, not getrusage's maxRSS, which a spawned child inherits from its parent.
      peakRssMB: status("VmHWM:"),
      rssMB: status("VmRSS:"),
      wasmHeapMB: (backend.wasm?.HEAPU8?.byteLength ?? 0) / 2 ** 20,
      jsHeapMB: process.memoryUsage().heapUsed / 2 ** 20,
      tensorMB: tf.memory().numBytes / 2 ** 20,
    }),
  );
  process.exit(0);
}

if (!existsSync(join(dir, "model.json"))) {
  const { initBackend } = await import("../trainer/backend");
  await initBackend("wasm");
  const config = sgrafConfig({ img_dim: 2048, embed_size: 1024, word_dim: 300, sim_dim: 256, proj_dim: 128, vocab_size: 8481 });
  const rng = new Random(0);
  const nets = [ParamStore.init(config, rng), ParamStore.init(config, rng)];
  const files = await encodeModelPackage({ config, netNames: ["A", "B"], nets, dtype: "uint8", vocab: null });
  mkdirSync(dir, { recursive: true });
  for (const [name, bytes] of files) writeFileSync(join(dir, name), bytes);
  console.log(`wrote a paper-size package to ${dir}: ${[...files.values()].reduce((s, b) => s + b.length, 0) / 1e6} MB`);
}

for (const nets of ["A", "all"]) {
  const p = Bun.spawn([process.execPath, import.meta.path, "--dir", dir, "--child", nets], { stdout: "pipe", stderr: "inherit" });
  const out = await new Response(p.stdout).text();
  await p.exited;
  const r = JSON.parse(out.trim().split("\n").at(-1)!);
  console.log(
    `nets ${r.nets.join("+")}: load ${r.seconds.toFixed(1)} s; peak RSS ${r.peakRssMB.toFixed(0)} MB, RSS after ${r.rssMB.toFixed(0)} MB; wasm heap ${r.wasmHeapMB.toFixed(0)} MB (tensors ${r.tensorMB.toFixed(0)} MB); JS heap ${r.jsHeapMB.toFixed(0)} MB`,
  );
}
