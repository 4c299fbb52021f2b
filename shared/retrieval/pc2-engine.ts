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
 * It reads results back from the backend asynchronously only (inference.ts's `…Async`), so that
 * the same engine runs on WebGPU in the browser (edge/browser/) as on wasm at the edge.
 */
import { evaluateRecall, rsum } from "../eval/metrics";
import { REGIONS } from "../model/config";
import { type EncodedCaptions, type EncodedImages, concatImages, encodeCaptionsAsync, encodeImagesAsync, ensembleSimilarityAsync, ensemblePairedSimilarityAsync, selectCaptions, selectImages, type ShardOptions, sliceCaptions } from "../model/inference";
import { type DecodeOptions, type ModelPackage, decodeModelPackage, galleryStageOne, MODEL_JSON, packageFirstStage } from "../model/package";
import { dequantize, type FirstStage, firstItems, type StageOneIndex, stageOneIndex, stageOneScores } from "../model/stage-one";
import type { TextTokenizerOptions } from "../text/text-tokenizer";
import type { AssetSource } from "./assets.ts";
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
}

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

  constructor(
    readonly pkg: ModelPackage,
    options: Pc2EngineOptions & TextTokenizerOptions = {},
  ) {
    this.shard = { ...options.shard, betweenShards: options.betweenBatches };
    this.betweenBatches = options.betweenBatches ?? (() => {});
    this.defaultShortlist = options.shortlist ?? SHORTLIST_DEFAULTS.defaultShortlist;
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
      gallery: g ? { images: g.images[0].count, captions: g.captions[0].count, perCaptions: g.perCaptions, words: g.captions[0].emb.length / g.captions[0].embed, firstStage: this.stageName() } : null,
      text: this.text.info(),
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
    return this.gallery().images.map((g, n) => {
      const own = selectImages(g, picked);
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
      const s = await this.sims((n) => g.images[n], (n) => caps[n]);
      return { hits: topK(s, k).map(([index, score]) => ({ index, score, image: index })), shortlist };
    }
    const idx = await this.candidates(caps, "images", shortlist.used);
    signal?.throwIfAborted();
    const s = await this.sims((n) => selectImages(g.images[n], idx), (n) => caps[n]);
    return { hits: topK(s, k).map(([j, score]) => ({ index: idx[j], score, image: idx[j] })), shortlist };
  }

  async searchCaptions(q: ImageQuery, k: number, options: SearchOptions = {}, signal?: AbortSignal): Promise<SearchResult> {
    const g = this.gallery();
    signal?.throwIfAborted();
    const imgs = await this.encodeQueryImages([q]);
    const shortlist = shortlistUsed(options.shortlist ?? this.defaultShortlist, g.captions[0].count, this.stageName());
    const idx = shortlist.used === "all" ? null : await this.candidates(imgs, "captions", shortlist.used);
    signal?.throwIfAborted();
    const s = await this.sims((n) => imgs[n], (n) => (idx ? selectCaptions(g.captions[n], idx) : g.captions[n]));
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
    const idx = Int32Array.from({ length: nImages }, (_, i) => i);
    const s = await this.sims(
      (n) => (nImages === g.images[n].count ? g.images[n] : selectImages(g.images[n], idx)),
      (n) => (nCaptions === g.captions[n].count ? g.captions[n] : sliceCaptions(g.captions[n], 0, nCaptions)),
    );
    const r = evaluateRecall(s, nImages, g.perCaptions);
    const result: EvalResult = { i2t: r.i2t, t2i: r.t2i, rsum: r.rsum, images: nImages, captions: nCaptions };
    const shortlist = options.shortlist ?? this.defaultShortlist;
    if (namesNoShortlist(shortlist)) return result;
    result.twoStage = { shortlist, stage: this.stageName(), ...(await this.twoStageRecall(s, nImages, shortlist)) };
    return result;
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
async function sequential<T, R>(items: readonly T[], run: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (const item of items) out.push(await run(item));
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

export const loadPc2Engine: EngineLoader = async (assets, options) => new Pc2Engine(await loadPackage(assets, "model", options));
