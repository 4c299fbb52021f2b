/**
 * The seam between the HTTP app and the model: the app validates requests against the limits it
 * owns and against the engine's dimensions, then calls one of these verbs. An engine holds a
 * trained PC2 model (SGRAF nets) and, optionally, a gallery of precomputed image features and
 * captions to search.
 */
import type { AssetSource } from "./assets.ts";

/** Recall metrics as the official `evaluation.py` prints them (percent; ranks 1-based). */
export interface Metrics {
  r1: number;
  r5: number;
  r10: number;
  medr: number;
  meanr: number;
}

export interface ModelInfo {
  config: Record<string, unknown>;
  dtype: string;
  sha256: string;
  nets: string[];
  gallery: { images: number; captions: number; perCaptions: number } | null;
}

/** One search result; `index` is the gallery image (text→image) or caption (image→text) index. */
export interface Hit {
  index: number;
  score: number;
  caption?: string;
  image?: number;
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

export interface EvalResult {
  i2t: Metrics;
  t2i: Metrics;
  rsum: number;
  images: number;
  captions: number;
}

/**
 * What the app needs from a model. The app guarantees that exactly one side of each query is
 * set, that token ids are in range, that features have the engine's shape and are finite, that
 * gallery indices exist and that 1 ≤ k ≤ the app's maxK.
 */
export interface RetrievalEngine {
  info(): ModelInfo;
  imgDim: number;
  regions: number;
  vocabSize: number;
  /** text→image over the gallery. */
  searchImages(q: TextQuery, k: number): Promise<Hit[]>;
  /** image→text over the gallery captions. */
  searchCaptions(q: ImageQuery, k: number): Promise<Hit[]>;
  score(pairs: Array<ImageQuery & TextQuery>): Promise<number[]>;
  /** Official i2t/t2i over the first `limit` gallery images (all when absent). */
  evaluate(limit?: number): Promise<EvalResult>;
}

/** Turns the model's files into an engine; the runtime adapters supply the AssetSource. */
export type EngineLoader = (assets: AssetSource) => Promise<RetrievalEngine>;

/**
 * Thrown by an engine for a request it cannot serve because of the request itself (text that
 * tokenizes to nothing, say); the app answers 400 with this message instead of 500.
 */
export class EngineInputError extends Error {
  override name = "EngineInputError";
}
