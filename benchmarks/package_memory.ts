/**
 * The memory of a paper-size model loaded for serving (issue 13, "a Worker that fits"): a random
 * paper-size package (img 2048, embed 1024, word 300, sim 256, vocabulary 8,481, uint8 weights, no
 * gallery) written once, then loaded in a fresh process per configuration (all nets or net A
 * alone; transposes kept, made per call, or kept in the weights' place), reporting the wasm heap of the tfjs backend (where
 * the weights live) after the load and after a query's work (a caption encoded and scored against
 * 128 images per net, under a 16 MB shard budget), and the process's peak and current RSS.
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
  const [which, keep, held] = args.child.split(":");
  const nets = which === "all" ? undefined : which.split(",");
  const t0 = performance.now();
  const transposes = (keep ?? "keep") as "keep" | "replace" | "per-call";
  const weights = (held ?? "float32") as "float32" | "int8";
  const pkg = await loadPackage(fileAssets(dir), dir, { nets, transposes, weights });
  const seconds = (performance.now() - t0) / 1000;
  Bun.gc(true);
  const { encodeCaptionsAsync, ensembleSimilarityAsync } = await import("../shared/model/inference");
  type Encoded = import("../shared/model/inference").EncodedImages;
  type Captions = import("../shared/model/inference").EncodedCaptions;
  const loadedWasm = ((tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8?.byteLength ?? 0) / 2 ** 20;
  // A query's work: one 12-word caption encoded and scored against 128 gallery images (a k′ = 128
  // shortlist; their encodings, random here, come from the gallery), per net.
  const rng = new (await import("../shared/random")).Random(1);
  const E = pkg.config.embed_size;
  const tokens = Int32Array.from({ length: 12 }, (_, i) => 1 + ((i * 37) % (pkg.config.vocab_size - 1)));
  const imgs: Encoded[] = pkg.nets.map(() => ({ count: 128, embed: E, emb: rng.uniformArray(128 * 36 * E, -0.05, 0.05), glo: rng.uniformArray(128 * E, -0.05, 0.05) }));
  const query = async () => {
    const q0 = performance.now();
    const caps: Captions[] = [];
    for (const p of pkg.nets) caps.push(await encodeCaptionsAsync(p, tokens, Int32Array.from([12])));
    const encodeSeconds = (performance.now() - q0) / 1000;
    await ensembleSimilarityAsync(pkg.nets, (n) => imgs[n], (n) => caps[n], { budgetBytes: Number(process.env.BUDGET_MB ?? 16) * 2 ** 20 });
    return { encodeSeconds, seconds: (performance.now() - q0) / 1000 };
  };
  const querySeconds = (await query()).seconds;
  // Warm queries: the median of five, the caption encoding apart.
  const warm = [];
  for (let i = 0; i < 5; i++) warm.push(await query());
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const backend = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  const status = (key: string) => Number(/\d+/.exec(require("node:fs").readFileSync("/proc/self/status", "utf8").split("\n").find((l: string) => l.startsWith(key)) ?? "0")![0]) / 1024;
  console.log(
    JSON.stringify({
      nets: pkg.netNames,
      transposes,
      seconds,
      querySeconds,
      warmQuerySeconds: median(warm.map((w) => w.seconds)),
      warmEncodeSeconds: median(warm.map((w) => w.encodeSeconds)),
      weights,
      int8MB: pkg.nets.reduce((s, p) => s + [...p.int8.values()].reduce((a, m) => a + m.byteLength, 0), 0) / 2 ** 20,
      loadedWasmMB: loadedWasm,
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

const configs = process.env.CONFIGS?.split(",") ?? ["A", "A:per-call", "A:replace", "A:replace:int8", "all", "all:replace", "all:replace:int8"];
for (const nets of configs) {
  const p = Bun.spawn([process.execPath, import.meta.path, "--dir", dir, "--child", nets], { stdout: "pipe", stderr: "inherit" });
  const out = await new Response(p.stdout).text();
  await p.exited;
  const r = JSON.parse(out.trim().split("\n").at(-1)!);
  console.log(
    `nets ${r.nets.join("+")}, transposes ${r.transposes}, weights ${r.weights}${r.weights === "int8" ? ` (${r.int8MB.toFixed(1)} MB int8)` : ""}: load ${r.seconds.toFixed(1)} s, wasm heap ${r.loadedWasmMB.toFixed(0)} MB; after a query's work (${r.querySeconds.toFixed(2)} s; warm median ${(r.warmQuerySeconds * 1000).toFixed(0)} ms, of which encoding ${(r.warmEncodeSeconds * 1000).toFixed(0)} ms): wasm heap ${r.wasmHeapMB.toFixed(0)} MB (tensors ${r.tensorMB.toFixed(0)} MB), peak RSS ${r.peakRssMB.toFixed(0)} MB, RSS ${r.rssMB.toFixed(0)} MB`,
  );
}
