/**
 * Server half of benchmarks/edge_latency.ts, run as its own process so that the client's work
 * (JSON, timing) never shares the server's thread:
 *
 *   bun benchmarks/support/edge_server.ts --preset big|embedded [--images 1000] [--seed 0]
 *
 * Builds a random-weights SGRAF model (nets A and B) and a gallery of random encodings, packs
 * them as `bun run export` does (uint8, shared/model/package.ts), loads the package
 * back with the edge's Pc2Engine and serves it with the edge app on Bun.serve (loopback, free
 * port): once as the A+B ensemble and once as net A alone, both from the same encodings. Prints
 * one JSON line `{"ready": …}` on stdout when both ports listen; runs until killed.
 *
 * The tfjs backend is trainer/backend.ts's wasm (one thread, SIMD, with the SIMD batched-matmul
 * kernel of native/bmm.wasm), not edge/tfjs-wasm.ts's plain one: this measures the fastest CPU
 * path the project has.
 */
import { parseArgs } from "node:util";
import { createApp } from "../../edge/app.ts";
import { memoryAssets } from "../../shared/retrieval/assets.ts";
import { loadPc2Engine } from "../../shared/retrieval/pc2-engine.ts";
import { Vocabulary } from "../../shared/formats/vocab";
import { REGIONS, sgrafConfig, type SgrafConfig } from "../../shared/model/config";
import type { EncodedCaptions, EncodedImages } from "../../shared/model/inference";
import { encodeModelPackage, type Gallery } from "../../shared/model/package";
import { ParamStore } from "../../shared/model/params";
import * as tf from "../../shared/model/tf";
import { Random } from "../../shared/random";
import { initBackend } from "../../trainer/backend";
import { SYNTHETIC_PRESET } from "../../trainer/config";
import { BENCH_WORDS } from "./words.ts";

/** The two configurations of the issue; dims as the official run.py flags name them. */
export const PRESETS = {
  big: { img_dim: 2048, embed_size: 1024, word_dim: 300, sim_dim: 256, proj_dim: 128 },
  /** trainer/config.ts SYNTHETIC_PRESET, whatever it currently holds. */
  embedded: {
    img_dim: SYNTHETIC_PRESET.img_dim as number,
    embed_size: SYNTHETIC_PRESET.embed_size as number,
    word_dim: SYNTHETIC_PRESET.word_dim as number,
    sim_dim: SYNTHETIC_PRESET.sim_dim as number,
    proj_dim: SYNTHETIC_PRESET.proj_dim as number,
  },
};
export type PresetName = keyof typeof PRESETS;

export interface ServerReady {
  preset: PresetName;
  config: SgrafConfig;
  images: number;
  captions: number;
  buildMs: number;
  packageBytes: Record<string, number>;
  backend: string;
  wasmThreads: number;
  /** Base URL per variant: "ensemble" (A+B), "single" (A). */
  urls: Record<"ensemble" | "single", string>;
}

/** `<start>` w1 … wn `<end>` with n in [6, 12], as a tokenized official caption. */
function randomCaption(rng: Random, vocab: Vocabulary): number[] {
  const n = 6 + rng.nextInt(7);
  return [vocab.start, ...Array.from({ length: n }, () => vocab.id(BENCH_WORDS[rng.nextInt(BENCH_WORDS.length)]!)), vocab.end];
}

/** n rows of `dim` values, each row a random unit vector. */
export function unitRows(rng: Random, n: number, dim: number): Float32Array {
  const out = rng.uniformArray(n * dim, -1, 1);
  for (let r = 0; r < n; r++) {
    const row = out.subarray(r * dim, (r + 1) * dim);
    let sq = 0;
    for (let i = 0; i < dim; i++) sq += row[i] * row[i];
    const norm = Math.sqrt(sq);
    for (let i = 0; i < dim; i++) row[i] /= norm;
  }
  return out;
}

/**
 * A gallery's encodings drawn at random in the shape the encoders give them (every region, word
 * and global vector l2-normalised, as encodeImage, encodeText and VisualSA/TextSA end): search
 * time does not depend on the values, and encoding 1,000 images at img_dim 2048 with each net
 * would take minutes on one wasm thread.
 */
function randomEncodings(rng: Random, E: number, images: number, captions: number[][]): { images: EncodedImages; captions: EncodedCaptions } {
  const lengths = Int32Array.from(captions, (t) => t.length);
  const offsets = new Int32Array(lengths.length);
  for (let i = 1; i < lengths.length; i++) offsets[i] = offsets[i - 1]! + lengths[i - 1]!;
  const words = offsets.at(-1)! + lengths.at(-1)!;
  return {
    images: { count: images, embed: E, emb: unitRows(rng, images * REGIONS, E), glo: unitRows(rng, images, E) },
    captions: { count: captions.length, embed: E, lengths, offsets, emb: unitRows(rng, words, E), glo: unitRows(rng, captions.length, E) },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Bun.argv.slice(2),
    options: { preset: { type: "string" }, images: { type: "string", default: "1000" }, seed: { type: "string", default: "0" } },
    strict: true,
  });
  const preset = values.preset as PresetName;
  if (!(preset in PRESETS)) throw new Error(`--preset: ${JSON.stringify(values.preset)} is not one of ${Object.keys(PRESETS).join(", ")}`);
  const images = Number(values.images);
  const seed = Number(values.seed);

  const backend = await initBackend("wasm");
  const wasmThreads = (tf.backend() as unknown as { wasm: { tfjs: { getThreadsCount(): number } } }).wasm.tfjs.getThreadsCount();

  const t0 = performance.now();
  const vocab = Vocabulary.fromWords(BENCH_WORDS);
  const config = sgrafConfig({ ...PRESETS[preset], vocab_size: vocab.length });
  const rng = new Random(seed);
  const nets = [ParamStore.init(config, rng), ParamStore.init(config, rng)];
  // One short caption per image: /v1/search/images never reads them, the format requires some.
  const tokens = Array.from({ length: images }, () => randomCaption(rng, vocab));
  const texts = tokens.map((t) => t.slice(1, -1).map((id) => vocab.word(id)!).join(" "));
  const encoded = nets.map(() => randomEncodings(rng, config.embed_size, images, tokens));
  const gallery = (k: number[]): Gallery => ({
    split: "benchmark",
    perCaptions: 1,
    images: k.map((i) => encoded[i]!.images),
    captions: k.map((i) => encoded[i]!.captions),
    texts,
    tokens,
  });
  const variants = {
    ensemble: { netNames: ["A", "B"], nets, gallery: gallery([0, 1]) },
    single: { netNames: ["A"], nets: [nets[0]!], gallery: gallery([0]) },
  };
  const urls = {} as ServerReady["urls"];
  const packageBytes: Record<string, number> = {};
  for (const [name, v] of Object.entries(variants) as Array<[keyof typeof variants, (typeof variants)["ensemble"]]>) {
    const files = await encodeModelPackage({ config, dtype: "uint8", vocab: vocab.toJSON(), ...v });
    packageBytes[name] = [...files.values()].reduce((s, b) => s + b.length, 0);
    const engine = await loadPc2Engine(memoryAssets(Object.fromEntries(files)));
    const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: createApp({ engine }).fetch });
    urls[name] = `http://127.0.0.1:${server.port}`;
  }
  for (const net of nets) net.dispose();
  const ready: ServerReady = {
    preset,
    config,
    images,
    captions: tokens.length,
    buildMs: performance.now() - t0,
    packageBytes,
    backend: `${backend.name} (${backend.provider}, SIMD ${tf.env().getBool("WASM_HAS_SIMD_SUPPORT")}, native/bmm.wasm kernel)`,
    wasmThreads,
    urls,
  };
  console.log(JSON.stringify({ ready }));
  console.error(`edge_server: ${preset} ready on ${Object.values(urls).join(", ")}`);
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
