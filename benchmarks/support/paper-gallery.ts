/**
 * A random-weights model at the paper's dims with a gallery of random encodings written straight
 * into the region store's sharded layout (benchmarks/gallery_scale.ts, the Workers test of a
 * paper-size model): what an export of a trained model writes, without running the encoders.
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Vocabulary } from "../../shared/formats/vocab";
import { REGIONS, sgrafConfig } from "../../shared/model/config";
import { halfToFloat } from "../../shared/formats/ndarray";
import type { EncodedCaptions, EncodedImages } from "../../shared/model/inference";
import { encodeModelPackage, type Gallery, sha256Hex } from "../../shared/model/package";
import { ParamStore } from "../../shared/model/params";
import { captionWords, encodeRegionShard, REGION_SHARD_ITEMS, regionLayout, type RegionGeometry, shardCount, shardItems } from "../../shared/model/region-shards";
import { distilledStage, type FirstStage, netTrangloScales, quantizeVectors, type StageOneHead, type StageOneVectors, trangloStage } from "../../shared/model/stage-one";
import { Random } from "../../shared/random";
import { PRESETS, unitRows } from "./edge_server.ts";
import { BENCH_WORDS } from "./words.ts";

/** Distinct random unit vectors the encodings are drawn from (values do not change search time). */
const POOL = 4096;

/**
 * The benchmark's words, padded with made-up ones up to `size` entries (special tokens included)
 * when given: Flickr30K's vocabulary has 8,481, and the word embedding's size follows it.
 */
export function paddedVocabulary(size?: number): Vocabulary {
  const words = [...BENCH_WORDS];
  let v = Vocabulary.fromWords(words);
  if (size !== undefined && size > v.length) {
    for (let i = 0; v.length + words.length - BENCH_WORDS.length < size; i++) words.push(`w${i}`);
    v = Vocabulary.fromWords(words);
  }
  return v;
}

/** The distilled head's dimension at the paper's size (docs/performance.md). */
const HEAD_DIM = 256;
export type StageOneKind = "distilled" | "tranglo";

export interface Built {
  images: number;
  nets: string[];
  firstStage: StageOneKind;
  shardItems: number;
  bytes: number;
  buildS: number;
}

/**
 * Writes the model directory of a gallery of `images` images: region shards first, one at a time
 * (each item's vectors copied from a pool of random unit vectors, as float16), with each item's
 * first-stage vector computed from them as an export does; then model.json and the resident files
 * through encodeModelPackage (writtenRegions). `distilled`: a random head of HEAD_DIM (an export
 * of a trained model fits one), else tranglo.
 */
export async function buildPaperGallery(options: { dir: string; images: number; nets: string[]; perShard?: number; firstStage?: StageOneKind; vocabSize?: number }): Promise<Built> {
  const { dir, images, nets: netNames, perShard = REGION_SHARD_ITEMS, firstStage = "distilled" } = options;
  const t0 = performance.now();
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const vocab = paddedVocabulary(options.vocabSize);
  const config = sgrafConfig({ ...PRESETS.big, vocab_size: vocab.length });
  const E = config.embed_size;
  const rng = new Random(images);
  const nets = netNames.map(() => ParamStore.init(config, rng));
  // One caption per image: `<start> word <end>`.
  const tokens = Array.from({ length: images }, () => [vocab.start, vocab.id(BENCH_WORDS[rng.nextInt(BENCH_WORDS.length)]!), vocab.end]);
  const texts = tokens.map((t) => vocab.word(t[1]!)!);
  const lengths = Int32Array.from(tokens, (t) => t.length);
  const offsets = Int32Array.from(lengths, (_, i) => 3 * i);
  const geo: RegionGeometry = { images, perCaptions: 1, imagesPerShard: perShard, embed: E, lengths, offsets };
  const layout = regionLayout(netNames, images, perShard, "float16");
  const files: Record<string, { bytes: number; sha256: string }> = {};
  // A pool of unit vectors as float16 bits, and as the float32 values they stand for.
  const poolHalf = new Uint16Array(encodeRegionShard(unitRows(rng, POOL, E), new Float32Array(0), "float16").buffer);
  const pool = Float32Array.from(poolHalf, halfToFloat);
  const head: StageOneHead | null =
    firstStage === "distilled" ? { dim: HEAD_DIM, nets: netNames.map(() => ({ images: rng.uniformArray(2 * E * HEAD_DIM, -1, 1), captions: rng.uniformArray(2 * E * HEAD_DIM, -1, 1) })) } : null;
  const stage: FirstStage = head ? distilledStage(head) : trangloStage(await Promise.all(nets.map(netTrangloScales)));
  const stageOne = { images: [] as StageOneVectors[], captions: [] as StageOneVectors[] };
  let bytes = 0;
  for (const [k, net] of netNames.entries()) {
    for (const side of ["images", "captions"] as const) {
      const count = images; // one caption per image
      const D = stage.dim;
      const s1: StageOneVectors = { count, dim: D, values: new Int8Array(count * D), scales: new Float32Array(count) };
      for (let s = 0; s < shardCount(images, perShard); s++) {
        const [a, b] = shardItems(geo, side, s);
        const rows = side === "images" ? (b - a) * REGIONS : captionWords(geo, a, b);
        const out = new Uint16Array((rows + (b - a)) * E);
        const values = new Float32Array(out.length);
        for (let r = 0; r < rows + (b - a); r++) {
          const p = rng.nextInt(POOL);
          out.set(poolHalf.subarray(p * E, (p + 1) * E), r * E);
          values.set(pool.subarray(p * E, (p + 1) * E), r * E);
        }
        // The shard's items as the engine decodes them, and their first-stage vectors.
        const n = b - a;
        const emb = values.subarray(0, rows * E);
        const glo = values.subarray(rows * E);
        const enc: EncodedImages | EncodedCaptions =
          side === "images" ? { count: n, embed: E, emb, glo } : { count: n, embed: E, lengths: lengths.slice(a, b), offsets: Int32Array.from(offsets.subarray(a, b), (o) => o - offsets[a]), emb, glo };
        const v = quantizeVectors(stage.vectors(k, side, enc), n, D);
        s1.values.set(v.values, a * D);
        s1.scales.set(v.scales, a);
        const data = new Uint8Array(out.buffer);
        const name = layout.nets[net][side][s];
        writeFileSync(join(dir, name), data);
        files[name] = { bytes: data.length, sha256: await sha256Hex(data) };
        bytes += data.length;
      }
      stageOne[side].push(s1);
    }
  }
  const empty = new Float32Array(0);
  const gallery: Gallery = {
    split: "benchmark",
    perCaptions: 1,
    images: netNames.map(() => ({ count: images, embed: E, emb: empty, glo: empty })),
    captions: netNames.map(() => ({ count: images, embed: E, lengths, offsets, emb: empty, glo: empty })),
    texts,
    tokens,
    stageOne,
  };
  const pkg = await encodeModelPackage({ config, netNames, nets, dtype: "uint8", vocab: vocab.toJSON(), gallery, writtenRegions: { layout, files }, stageOneHead: head && { head } });
  for (const [name, data] of pkg) {
    writeFileSync(join(dir, name), data);
    bytes += data.length;
  }
  for (const n of nets) n.dispose();
  const built: Built = { images, nets: netNames, firstStage, shardItems: perShard, bytes, buildS: (performance.now() - t0) / 1000 };
  writeFileSync(join(dir, "bench.json"), JSON.stringify(built));
  return built;
}

