/**
 * The seam between a front end (the edge's HTTP app, the quick eval) and the model: the caller
 * validates requests against the engine's limits, then calls one of these verbs. An engine holds a
 * trained PC2 model (SGRAF nets) and, optionally, a gallery of precomputed image features and
 * captions to search.
 *
 * The records that cross this seam and leave through the API (model info, hits, evaluation) are
 * valibot schemas, their types inferred from them: the edge documents its responses with the same
 * definitions.
 */
import * as v from "valibot";
import { RecallReportSchema } from "../eval/metrics";
import { TextInfoSchema } from "../text/text-tokenizer";
import { STAGE_ONES } from "../model/stage-one";
import { WEIGHT_HOLDINGS, type WeightHolding } from "../model/package";
import type { AssetSource } from "./assets.ts";
import { type Shortlist, ShortlistUsedSchema } from "./shortlist.ts";

/**
 * Longest caption an engine takes, in token ids (`<start>` and `<end>` included); the official
 * captions are far shorter. The edge's schema caps `tokens` at this length by default.
 */
export const MAX_QUERY_TOKENS = 128;

export const GalleryInfoSchema = v.object({
  images: v.number(),
  captions: v.number(),
  perCaptions: v.number(),
  /** Tokens of all captions together (a request's cost depends on them: shared/retrieval/cost.ts). */
  words: v.number(),
  /** The first stage of a two-stage search (shared/model/stage-one.ts): the package's distilled head, or tranglo. */
  firstStage: v.optional(v.picklist(STAGE_ONES)),
});
export type GalleryInfo = v.InferOutput<typeof GalleryInfoSchema>;

export const ModelInfoSchema = v.object({
  config: v.record(v.string(), v.unknown()),
  dtype: v.string(),
  sha256: v.string(),
  nets: v.array(v.string()),
  gallery: v.nullable(GalleryInfoSchema),
  /** How text becomes token ids (absent: the engine takes token ids only). */
  text: v.optional(TextInfoSchema),
  /** How the nets' weights are held: `int8` matrices at a byte per value (DecodeOptions.weights), the rest float32. */
  weights: v.optional(v.object({ held: v.picklist(WEIGHT_HOLDINGS), int8Matrices: v.number(), int8Bytes: v.number(), float32Bytes: v.number() })),
  /**
   * What the engine holds now, in bytes (an engine computing in this process; a pool of workers
   * leaves it out): the tfjs wasm heap (weights, activations; a wasm heap never shrinks), the
   * memory of the int8 products (their weights and scratch), the first-stage vectors and the
   * region cache with its budget.
   */
  memory: v.optional(
    v.object({
      wasmHeapBytes: v.nullable(v.number()),
      int8MemoryBytes: v.number(),
      /** The batched-product module's memory (native/bmm.c; its inputs and outputs are copied in). */
      bmmMemoryBytes: v.number(),
      stageOneBytes: v.number(),
      regionCacheBytes: v.number(),
      regionCacheBudgetBytes: v.number(),
    }),
  ),
});
export type ModelInfo = v.InferOutput<typeof ModelInfoSchema>;

/** One search result; `index` is the gallery image (text→image) or caption (image→text) index. */
export const HitSchema = v.object({ index: v.number(), score: v.number(), caption: v.optional(v.string()), image: v.optional(v.number()) });
export type Hit = v.InferOutput<typeof HitSchema>;

/** A search's hits, best first, and the shortlist it used (shared/retrieval/shortlist.ts). */
export const SearchResultSchema = v.object({ hits: v.array(HitSchema), shortlist: ShortlistUsedSchema });
export type SearchResult = v.InferOutput<typeof SearchResultSchema>;

/**
 * Official i2t/t2i recall over the first `images` gallery images and their captions, scored
 * exhaustively; with a shortlist, `twoStage` holds the recall of two-stage scoring as well
 * (each query's k′ first-stage best re-ranked by the full model, the rest after them in
 * first-stage order), so that the two can be compared.
 */
export const EvalResultSchema = v.object({
  ...RecallReportSchema.entries,
  images: v.number(),
  captions: v.number(),
  twoStage: v.optional(v.object({ shortlist: v.number(), stage: v.picklist(STAGE_ONES), ...RecallReportSchema.entries })),
});
export type EvalResult = v.InferOutput<typeof EvalResultSchema>;

export interface SearchOptions {
  /** Items the full model re-ranks; 0 or "all": every item (exhaustive). The engine's default when absent. */
  shortlist?: Shortlist;
}

export interface EvalOptions {
  /** Evaluate on the first `limit` gallery images (all when absent). */
  limit?: number;
  /** Also report two-stage recall with this shortlist; 0 or "all": exhaustive only. The engine's default when absent. */
  shortlist?: Shortlist;
}

/** Text side of a query: raw text (the engine tokenizes) or vocabulary ids in [0, vocabSize). */
export interface TextQuery {
  text?: string;
  tokens?: number[];
}

/**
 * Image side of a query: a gallery image index, or region features, row-major
 * (regions × imgDim, `regions * imgDim` values).
 */
export interface ImageQuery {
  image?: number;
  features?: Float32Array;
}

/**
 * What a front end needs from a model. Each verb takes an optional AbortSignal: an engine stops
 * (rejecting with the signal's reason) where it can once the signal fires, and a front end that
 * gave up on a request ignores the outcome. The caller guarantees that exactly one side of each query
 * is set, that token lists are at most `maxTokens` long with ids in [0, vocabSize), that features
 * have the engine's shape and are finite, that a gallery exists where one is used, that gallery
 * indices exist, that k ≥ 1 and that a shortlist is "all" or a non-negative integer.
 */
export interface RetrievalEngine {
  info(): ModelInfo;
  imgDim: number;
  regions: number;
  vocabSize: number;
  /** Longest token list a query may have (ids, `<start>`/`<end>` included). */
  maxTokens: number;
  /** text→image over the gallery. */
  searchImages(q: TextQuery, k: number, options?: SearchOptions, signal?: AbortSignal): Promise<SearchResult>;
  /** image→text over the gallery captions. */
  searchCaptions(q: ImageQuery, k: number, options?: SearchOptions, signal?: AbortSignal): Promise<SearchResult>;
  score(pairs: Array<ImageQuery & TextQuery>, signal?: AbortSignal): Promise<number[]>;
  /** Official i2t/t2i over the first `options.limit` gallery images (all when absent). */
  evaluate(options?: EvalOptions, signal?: AbortSignal): Promise<EvalResult>;
}

/** Turns the model's files into an engine; the runtime adapters supply the AssetSource. */
export type EngineLoader = (
  assets: AssetSource,
  options?: { nets?: string[]; weights?: WeightHolding; regionCacheBytes?: number; /** The similarity's shard budget (inference.ts ShardOptions). */ shardBytes?: number },
) => Promise<RetrievalEngine>;

/**
 * Thrown by an engine for a request it cannot serve because of the request itself, found only
 * once the engine has looked at it (text that tokenizes to nothing, or to too many tokens); the
 * edge answers 400 with this message instead of 500.
 */
export class EngineInputError extends Error {
  override name = "EngineInputError";
}

/**
 * Thrown for a valid request that this build of the engine cannot serve (a Worker built without
 * the Jieba module given Chinese text); the edge answers 501 with this message, which says what
 * would serve it.
 */
export class EngineUnsupportedError extends Error {
  override name = "EngineUnsupportedError";
}

/**
 * Thrown when the model's stored data cannot be read for a request: a gallery region shard that
 * is missing or does not match model.json (size or SHA-256). The message names the file; the edge
 * answers 500 with it (never a ranking computed without the data).
 */
export class EngineStorageError extends Error {
  override name = "EngineStorageError";
}
