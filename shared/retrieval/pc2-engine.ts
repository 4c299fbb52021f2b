/**
 * The retrieval engine of an exported PC2 model: SGRAF nets on tfjs (wasm at the edge) and a
 * gallery of precomputed image-side and caption-side encodings. Text is tokenized by the
 * package's tokenizer (NLTK word_tokenize of the lower-cased text for the official vocabularies;
 * Jieba or a tokenizer.json for NoW: text-query.ts) and mapped through its vocabulary; scores of the two nets are averaged, as the official evaluation does.
 *
 * Searches are exhaustive or two-stage (shortlist.ts): the first stage (shared/model/stage-one.ts:
 * the package's distilled head, else tranglo) shortlists k′ gallery items from the gallery's int8
 * first-stage vectors, which an export writes and which are computed from the gallery's encodings
 * on the first two-stage call for a gallery without them; the full model then scores the
 * shortlist only.
 *
 * The gallery's per-item encodings come through a GalleryRegions (region-store.ts): resident, or
 * read on demand from the package's region shards, only those of the items a search scores; an
 * exhaustive search or an evaluation streams over the gallery block by block.
 *
 * It reads results back from the backend asynchronously only (inference.ts's `…Async`), so that
 * the same engine runs on WebGPU in the browser (edge/browser/) as on wasm at the edge.
 */
import { evaluateRecall, rsum } from "../eval/metrics";
import { REGIONS } from "../model/config";
import * as tf from "../model/tf";
import { simdBmmBytes } from "../model/kernels";
import { type EncodedCaptions, type EncodedImages, concatImages, encodeCaptionsAsync, encodeImagesAsync, ensembleSimilarityAsync, ensemblePairedSimilarityAsync, selectImages, type ShardOptions } from "../model/inference";
import { type DecodeOptions, type ModelPackage, decodeModelPackage, galleryStageOne, MODEL_JSON, packageFirstStage } from "../model/package";
import { dequantize, type FirstStage, firstItems, type StageOneIndex, stageOneIndex, stageOneScores } from "../model/stage-one";
import type { TextTokenizerOptions } from "../text/text-tokenizer";
import type { AssetSource } from "./assets.ts";
import { type GalleryRegions, galleryRegions, REGION_CACHE_BYTES, type RegionStats } from "./region-store.ts";
import { QueryText } from "./text-query.ts";
import { MAX_QUERY_TOKENS, type EngineLoader, type EvalOptions, type EvalResult, type ImageQuery, type ModelInfo, type RetrievalEngine, type SearchOptions, type SearchResult, type TextQuery } from "./engine.ts";
import { namesNoShortlist, SHORTLIST_DEFAULTS, type Shortlist, shortlistUsed, topK, twoStageScores } from "./shortlist.ts";

/** Pairs of one /v1/score request encoded together (see `score`). */
export const SCORE_BATCH = 16;

export interface Pc2EngineOptions {
  /** Shard budget of the similarity computations (inference.ts SHARD_DEFAULTS when absent). */
  shard?: Partial<ShardOptions>;
  /**
   * Called between the batches and shards of a long request. Each leaves tens of MB of garbage
   * (read-backs, tfjs's per-operation arrays) that a lazy garbage collector keeps for seconds, so
   * a 256-pair score or a 100-image evaluation grows the process by 150 MB; a runtime that can
   * collect on demand (Bun: `Bun.gc`) passes it here.
   */
  betweenBatches?: () => void;
  /** The shortlist of a search or evaluation that names none (SHORTLIST_DEFAULTS.defaultShortlist). */
  shortlist?: Shortlist;
  /** Byte budget of the cache of gallery region shards read on demand (REGION_CACHE_BYTES when absent; region-store.ts). */
  regionCacheBytes?: number;
  /**
   * Images an exhaustive search or an evaluation over a sharded gallery takes at once (whole
   * shards, at least one; STREAM_BLOCK_IMAGES when absent), and the captions of as many images.
   */
  streamBlockImages?: number;
}

/** Images (and captions) a streamed exhaustive search or evaluation takes at once, at least (whole region shards). */
export const STREAM_BLOCK_IMAGES = 256;

/** The first stage and the gallery's images and captions indexed for it. */
interface StageOne {
  stage: FirstStage;
  images: StageOneIndex;
  captions: StageOneIndex;
}

export class Pc2Engine implements RetrievalEngine {
  readonly imgDim: number;
  readonly regions = REGIONS;
  readonly vocabSize: number;
  readonly maxTokens = MAX_QUERY_TOKENS;
  private readonly text: QueryText;

  private readonly shard: Partial<ShardOptions>;
  private readonly betweenBatches: () => void;
  private readonly defaultShortlist: Shortlist;
  private stageOnePromise: Promise<StageOne> | null = null;
  private readonly regionCacheBytes: number;
  private galleryRegions: GalleryRegions | null = null;
  private readonly streamBlock: number;

  constructor(
    readonly pkg: ModelPackage,
    options: Pc2EngineOptions & TextTokenizerOptions = {},
  ) {
    this.shard = { ...options.shard, betweenShards: options.betweenBatches };
    this.betweenBatches = options.betweenBatches ?? (() => {});
    this.defaultShortlist = options.shortlist ?? SHORTLIST_DEFAULTS.defaultShortlist;
    this.regionCacheBytes = options.regionCacheBytes ?? REGION_CACHE_BYTES;
    this.streamBlock = options.streamBlockImages ?? STREAM_BLOCK_IMAGES;
    this.imgDim = pkg.config.img_dim;
    this.vocabSize = pkg.config.vocab_size;
    this.text = new QueryText(pkg, options);
  }

  info(): ModelInfo {
    const g = this.pkg.gallery;
    return {
      config: { ...this.pkg.config },
      dtype: this.pkg.dtype,
      sha256: this.pkg.sha256,
      nets: this.pkg.netNames,
      gallery: g ? { images: g.images[0].count, captions: g.captions[0].count, perCaptions: g.perCaptions, words: g.captions[0].lengths.reduce((a, b) => a + b, 0), firstStage: this.stageName() } : null,
      text: this.text.info(),
      weights: this.weightsInfo(),
      memory: this.memoryInfo(),
    };
  }

  private weightsInfo(): NonNullable<ModelInfo["weights"]> {
    const matrices = this.pkg.nets.flatMap((p) => [...p.int8.values()]);
    const float32Bytes = this.pkg.nets.reduce((s, p) => s + [...p.vars.values(), ...p.buffers.values()].reduce((t, x) => t + x.size * 4, 0), 0);
    return { held: matrices.length ? "int8" : "float32", int8Matrices: matrices.length, int8Bytes: matrices.reduce((s, m) => s + m.byteLength, 0), float32Bytes };
  }

  private memoryInfo(): NonNullable<ModelInfo["memory"]> {
    const m = this.memory();
    const heap = (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8?.byteLength;
    const owners = new Set(this.pkg.nets.flatMap((p) => [...p.int8.values()].map((w) => w.owner)));
    return {
      wasmHeapBytes: heap ?? null,
      int8MemoryBytes: [...owners].reduce((s, o) => s + o.byteLength, 0),
      bmmMemoryBytes: simdBmmBytes(),
      stageOneBytes: m.stageOne,
      regionCacheBytes: m.regions?.cached ?? 0,
      regionCacheBudgetBytes: m.regions?.budget ?? 0,
    };
  }

  /** Token ids of a query: `<start>` words `<end>`, as the official data.py builds captions. */
  async tokens(q: TextQuery): Promise<Int32Array> {
    if (q.tokens) return Int32Array.from(q.tokens);
    // Only the engine knows how many tokens a text makes; ids sent as `tokens` are checked by the caller.
    return this.text.ids(q.text ?? "", this.maxTokens);
  }

  private gallery() {
    const g = this.pkg.gallery;
    if (!g) throw new Error("Pc2Engine: this model has no gallery (the caller checks info().gallery first)");
    return g;
  }

  /** The gallery's per-item encodings (resident, or the region shards read on demand). */
  private regionStore(): GalleryRegions {
    this.galleryRegions ??= galleryRegions(this.gallery(), this.regionCacheBytes);
    return this.galleryRegions;
  }

  /**
   * What the engine holds in memory for good, in bytes: the nets' weights, the gallery's resident
   * encodings and first-stage vectors; and its region cache (shards read on demand).
   */
  memory(): { weights: number; gallery: number; stageOne: number; regions: RegionStats | null } {
    const g = this.pkg.gallery;
    const { float32Bytes, int8Bytes } = this.weightsInfo();
    const weights = float32Bytes + int8Bytes;
    const s1 = g?.stageOne;
    const stageOne = s1 ? [...s1.images, ...s1.captions].reduce((s, x) => s + x.values.byteLength + x.scales.byteLength, 0) : 0;
    const regions = g ? this.regionStore().stats() : null;
    return { weights, gallery: regions?.resident ?? 0, stageOne, regions };
  }

  /**
   * Scores of one query (encoded per net: `query(k)`) against items [0, count) of a gallery side,
   * streamed block by block through the region store: scores[i] is item i's.
   */
  private async streamScores(side: "images" | "captions", count: number, query: (k: number) => EncodedImages | EncodedCaptions, signal?: AbortSignal): Promise<Float32Array> {
    const g = this.gallery();
    const regions = this.regionStore();
    const out = new Float32Array(count);
    const blocks = regions.blocks(side, 0, count, side === "images" ? this.streamBlock : this.streamBlock * g.perCaptions);
    for (const [b0, b1] of blocks) {
      if (b0 > 0) this.betweenBatches();
      signal?.throwIfAborted();
      if (side === "images") {
        const items = await sequential(this.pkg.nets, (_, n) => regions.imageRange(n, b0, b1));
        out.set(await this.sims((n) => items[n], query as (k: number) => EncodedCaptions), b0);
      } else {
        const items = await sequential(this.pkg.nets, (_, n) => regions.captionRange(n, b0, b1));
        out.set(await this.sims(query as (k: number) => EncodedImages, (n) => items[n]), b0);
      }
    }
    return out;
  }

  /** Averaged similarity of the nets between images and captions given per net. */
  private sims(images: (k: number) => EncodedImages, captions: (k: number) => EncodedCaptions): Promise<Float32Array> {
    return ensembleSimilarityAsync(this.pkg.nets, images, captions, this.shard);
  }

  /** Query captions encoded by every net, in one batch per net (zero-padded to the longest). */
  private encodeQueryCaptions(tokens: Int32Array[]): Promise<EncodedCaptions[]> {
    const lengths = Int32Array.from(tokens, (t) => t.length);
    const T = Math.max(...lengths);
    const padded = new Int32Array(tokens.length * T);
    tokens.forEach((t, i) => padded.set(t, i * T));
    return sequential(this.pkg.nets, (net) => encodeCaptionsAsync(net, padded, lengths));
  }

  /**
   * Query images encoded by every net, in query order: features in one batch per net, gallery
   * images (already encoded) selected.
   */
  private async encodeQueryImages(qs: ImageQuery[]): Promise<EncodedImages[]> {
    const fresh = qs.filter((q) => q.features);
    const size = this.regions * this.imgDim;
    const features = new Float32Array(fresh.length * size);
    fresh.forEach((q, i) => features.set(q.features!, i * size));
    const encoded = fresh.length ? await sequential(this.pkg.nets, (net) => encodeImagesAsync(net, features, fresh.length)) : null;
    if (fresh.length === qs.length) return encoded!;
    // The batch's encoded features, then its gallery images; each query picks its row.
    const picked = qs.filter((q) => !q.features).map((q) => q.image!);
    let [nextFresh, nextPicked] = [0, fresh.length];
    const rows = qs.map((q) => (q.features ? nextFresh++ : nextPicked++));
    const regions = this.regionStore();
    return sequential(this.pkg.nets, async (_, n) => {
      const own = await regions.images(n, picked);
      return selectImages(encoded ? concatImages([encoded[n], own]) : own, rows);
    });
  }

  /** The first stage, built on its first use (tranglo reads the nets' √w back), the gallery's vectors indexed. */
  private stageOne(): Promise<StageOne> {
    this.stageOnePromise ??= (async () => {
      const g = this.gallery();
      const stage = await packageFirstStage(this.pkg.stageOneHead, this.pkg.nets);
      const vectors = g.stageOne ?? galleryStageOne(g, stage);
      return { stage, images: stageOneIndex(vectors.images, stage.metric), captions: stageOneIndex(vectors.captions, stage.metric) };
    })();
    return this.stageOnePromise;
  }

  /** The first stage a two-stage search uses: "distilled" when the package has a head. */
  private stageName() {
    return this.pkg.stageOneHead ? "distilled" : "tranglo";
  }

  /**
   * The gallery items a two-stage search scores with the full model, in gallery order: the
   * shortlist of the first stage for a query of the other side encoded by each net (`query`).
   */
  private async candidates(query: (EncodedImages | EncodedCaptions)[], side: "images" | "captions", shortlist: number): Promise<Int32Array> {
    const s1 = await this.stageOne();
    const querySide = side === "images" ? "captions" : "images";
    const first = stageOneScores(query.map((q, n) => s1.stage.vectors(n, querySide, q)), 1, s1[side]);
    return Int32Array.from(topK(first, shortlist), ([i]) => i).sort();
  }

  async searchImages(q: TextQuery, k: number, options: SearchOptions = {}, signal?: AbortSignal): Promise<SearchResult> {
    const g = this.gallery();
    signal?.throwIfAborted();
    const caps = await this.encodeQueryCaptions([await this.tokens(q)]);
    const shortlist = shortlistUsed(options.shortlist ?? this.defaultShortlist, g.images[0].count, this.stageName());
    if (shortlist.used === "all") {
      const s = await this.streamScores("images", g.images[0].count, (n) => caps[n], signal);
      return { hits: topK(s, k).map(([index, score]) => ({ index, score, image: index })), shortlist };
    }
    const idx = await this.candidates(caps, "images", shortlist.used);
    signal?.throwIfAborted();
    const regions = this.regionStore();
    const shortlisted = await sequential(this.pkg.nets, (_, n) => regions.images(n, idx));
    signal?.throwIfAborted();
    const s = await this.sims((n) => shortlisted[n], (n) => caps[n]);
    return { hits: topK(s, k).map(([j, score]) => ({ index: idx[j], score, image: idx[j] })), shortlist };
  }

  async searchCaptions(q: ImageQuery, k: number, options: SearchOptions = {}, signal?: AbortSignal): Promise<SearchResult> {
    const g = this.gallery();
    signal?.throwIfAborted();
    const imgs = await this.encodeQueryImages([q]);
    const shortlist = shortlistUsed(options.shortlist ?? this.defaultShortlist, g.captions[0].count, this.stageName());
    const idx = shortlist.used === "all" ? null : await this.candidates(imgs, "captions", shortlist.used);
    signal?.throwIfAborted();
    let s: Float32Array;
    if (idx) {
      const regions = this.regionStore();
      const shortlisted = await sequential(this.pkg.nets, (_, n) => regions.captions(n, idx));
      signal?.throwIfAborted();
      s = await this.sims((n) => imgs[n], (n) => shortlisted[n]);
    } else {
      s = await this.streamScores("captions", g.captions[0].count, (n) => imgs[n], signal);
    }
    const hits = topK(s, k).map(([j, score]) => {
      const index = idx ? idx[j] : j;
      return { index, score, caption: g.texts[index] ?? undefined, image: Math.floor(index / g.perCaptions) };
    });
    return { hits, shortlist };
  }

  /**
   * Pairs are scored SCORE_BATCH at a time: each batch's images and captions are encoded in one
   * call per net (a caption's GRU runs its words one step at a time, so encoding 256 captions one
   * by one is 256 × 128 steps of tiny operations), then scored pair by pair (pairedSimilarity).
   * The batch bounds the memory of one request whatever its size.
   */
  async score(pairs: Array<ImageQuery & TextQuery>, signal?: AbortSignal): Promise<number[]> {
    const tokens: Int32Array[] = [];
    for (const p of pairs) tokens.push(await this.tokens(p)); // every input error before any work
    const scores: number[] = [];
    for (let b0 = 0; b0 < pairs.length; b0 += SCORE_BATCH) {
      if (b0 > 0) this.betweenBatches();
      signal?.throwIfAborted();
      const batch = pairs.slice(b0, b0 + SCORE_BATCH);
      const imgs = await this.encodeQueryImages(batch);
      const caps = await this.encodeQueryCaptions(tokens.slice(b0, b0 + SCORE_BATCH));
      scores.push(...(await ensemblePairedSimilarityAsync(this.pkg.nets, (n) => imgs[n], (n) => caps[n], this.shard)));
    }
    return scores;
  }

  async evaluate(options: EvalOptions = {}, signal?: AbortSignal): Promise<EvalResult> {
    const g = this.gallery();
    signal?.throwIfAborted();
    const nImages = Math.min(options.limit ?? g.images[0].count, g.images[0].count);
    const nCaptions = nImages * g.perCaptions;
    const s = await this.evaluationScores(nImages, nCaptions, signal);
    const r = evaluateRecall(s, nImages, g.perCaptions);
    const result: EvalResult = { i2t: r.i2t, t2i: r.t2i, rsum: r.rsum, images: nImages, captions: nCaptions };
    const shortlist = options.shortlist ?? this.defaultShortlist;
    if (namesNoShortlist(shortlist)) return result;
    result.twoStage = { shortlist, stage: this.stageName(), ...(await this.twoStageRecall(s, nImages, shortlist)) };
    return result;
  }

  /**
   * The exhaustive matrix [nImages, nCaptions] of the first images and captions, block by block
   * through the region store: one block of images (and one of captions) decoded at a time.
   */
  private async evaluationScores(nImages: number, nCaptions: number, signal?: AbortSignal): Promise<Float32Array> {
    const regions = this.regionStore();
    const out = new Float32Array(nImages * nCaptions);
    const imageBlocks = regions.blocks("images", 0, nImages, this.streamBlock);
    const captionBlocks = regions.blocks("captions", 0, nCaptions, this.streamBlock * this.gallery().perCaptions);
    let first = true;
    for (const [i0, i1] of imageBlocks) {
      const imgs = await sequential(this.pkg.nets, (_, n) => regions.imageRange(n, i0, i1));
      for (const [c0, c1] of captionBlocks) {
        if (!first) this.betweenBatches();
        first = false;
        signal?.throwIfAborted();
        const caps = await sequential(this.pkg.nets, (_, n) => regions.captionRange(n, c0, c1));
        const block = await this.sims((n) => imgs[n], (n) => caps[n]);
        if (i1 - i0 === nImages && c1 - c0 === nCaptions) return block;
        const w = c1 - c0;
        for (let i = i0; i < i1; i++) out.set(block.subarray((i - i0) * w, (i - i0 + 1) * w), i * nCaptions + c0);
      }
    }
    return out;
  }

  /**
   * Recall of two-stage scoring from the exhaustive matrix `full` of the first `nImages` images:
   * a pair's full score does not depend on the other pairs, so masking the exhaustive matrix with
   * each query's shortlist ranks as a two-stage search does (shortlist.ts twoStageScores).
   */
  private async twoStageRecall(full: Float32Array, nImages: number, shortlist: number) {
    const g = this.gallery();
    const s1 = await this.stageOne();
    const nCaptions = nImages * g.perCaptions;
    const images = s1.images.nets.map((v) => dequantize(firstItems(v, nImages)));
    const captions = stageOneIndex(s1.captions.nets.map((v) => firstItems(v, nCaptions)), s1.stage.metric);
    const first = stageOneScores(images, nImages, captions); // [nImages, nCaptions]
    // Each direction's matrix answers for that direction only.
    const t = evaluateRecall(twoStageScores(full, first, nImages, nCaptions, shortlist, "t2i"), nImages, g.perCaptions).t2i;
    const i = evaluateRecall(twoStageScores(full, first, nImages, nCaptions, shortlist, "i2t"), nImages, g.perCaptions).i2t;
    return { i2t: i, t2i: t, rsum: rsum(i, t) };
  }

  dispose(): void {
    for (const p of this.pkg.nets) p.dispose();
  }
}

/** `run` on each item, one after the other (the backend computes one thing at a time anyway). */
async function sequential<T, R>(items: readonly T[], run: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i++) out.push(await run(items[i], i));
  return out;
}

/** Reads an exported model directory through any AssetSource (only the nets `options.nets` names, when given). */
export async function loadPackage(assets: AssetSource, source = "model", options: DecodeOptions = {}): Promise<ModelPackage> {
  const json = await assets.get(MODEL_JSON);
  if (json === null) throw new Error(`the model has no ${MODEL_JSON}; is this a model directory?`);
  return decodeModelPackage(
    json,
    async (name) => {
      const b = await assets.get(name);
      if (b === null) throw new Error(`${source}/${name}: missing file of the exported model`);
      return b;
    },
    source,
    options,
  );
}

/** The edge's engine: the weights serve retrieval only, so each one used transposed gives its place to its transpose. */
export const loadPc2Engine: EngineLoader = async (assets, options) =>
  new Pc2Engine(await loadPackage(assets, "model", { nets: options?.nets, weights: options?.weights, transposes: "replace" }), {
    regionCacheBytes: options?.regionCacheBytes,
    shard: options?.shardBytes === undefined ? undefined : { budgetBytes: options.shardBytes },
  });
